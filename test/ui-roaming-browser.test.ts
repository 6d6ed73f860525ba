// Job roaming in the web pages, in a real headless Chromium, against the HTTP layer served
// in-process with a fake site (site-a) whose partner site-b holds some of alice's jobs:
// in shared mode they are listed in My jobs marked with site-b's host name; in separate
// mode they are listed apart, and releasing one there goes through the API; refusals
// (holder unreachable, 503; no longer partners, 403) show the server's message; the admin
// sees the source host in all jobs and edits partners and mode in the Roaming section.
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { peerId, siteId } from '../crdt/names.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import type { Locator, Page } from 'playwright-core'
import {
  type JobList, type PrinterView, type RoamingView, type SiteApi, type SiteInfo,
  type UsageRecordView, type UsageTotal, type UserView
} from '../ui/api.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import {
  HolderUnreachableError, InvalidJobStateError, JobNotFoundError, NotAuthorizedError, NotPartnerError,
  type Actor, type JobView, type JobState
} from '../devices/jobs/types.ts'
import { InvalidSiteSettingsError, validateClientSettings, validatePrintPolicy, validateRoaming, type ClientSettings, type PrintPolicy, type RoamingMode } from '../crdt/site-config.ts'
import { logIn, runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'

/** Longest wait for something to appear on a page (the pages poll every 2 s). */
const UI_TIMEOUT_MS = 10_000
const ADMIN_TOKEN = 'adm-tok-roaming-31cc42dd'
const ALICE_PIN = '482193'
const SITE_A = siteId('site-a')
const SITE_B = siteId('site-b')
const SITE_C = 'site-c'
const HOST_A = 'print.site-a.example'
const HOST_B = 'print.site-b.example'
const HOST_C = 'print.site-c.example'
const PEER_B = peerId('12D3KooWSiteBRoaming0000000000000000000000000000')
const PRINTER = 'lobby'
/** Job ids, so rows are found by `data-job-id` whatever their name cell shows. */
const LOCAL_MEMO = 'job-local-memo'
const BOB_SLIDES = 'job-bob-slides'
const BRANCH_REPORT = 'job-branch-report'
const POSTER = 'job-poster'

/** What another site's settings say, once they reached site-a. */
interface KnownSite { hostname: string, partners: string[] }

/** A fake site-a: its own jobs, replicas of site-b's jobs, roaming settings; records every call. */
class RoamingSite implements SiteApi {
  readonly now = Date.now()
  settings: { partners: string[], mode: RoamingMode } = { partners: [SITE_B], mode: 'shared' }
  /** Other sites' settings as they reached this site; site-d's never did. */
  readonly known = new Map<string, KnownSite>([
    [SITE_B, { hostname: HOST_B, partners: [SITE_A] }],
    [SITE_C, { hostname: HOST_C, partners: [] }]
  ])

  /** Sites whose holder does not answer. */
  readonly unreachable = new Set<string>()
  readonly releases: Array<{ user: string, jobId: string, printer?: string }> = []
  readonly local: JobView[] = [
    this.job({ id: LOCAL_MEMO, name: 'Local memo', owner: 'alice', createdAt: this.now - 60_000 }),
    this.job({ id: BOB_SLIDES, name: 'Bob slides', owner: 'bob', createdAt: this.now - 50_000 })
  ]

  readonly partnerJobs: JobView[] = [
    this.job({ id: BRANCH_REPORT, name: 'Branch report', owner: 'alice', site: SITE_B, createdAt: this.now - 120_000, source: { site: SITE_B, hostname: HOST_B, peer: PEER_B }, prefetched: true }),
    this.job({ id: POSTER, name: 'Poster', owner: 'alice', site: SITE_B, createdAt: this.now - 180_000, colorPages: 1, source: { site: SITE_B, hostname: HOST_B, peer: PEER_B } })
  ]

  private job (fields: Pick<JobView, 'id' | 'name' | 'owner' | 'createdAt'> & Partial<JobView>): JobView {
    return {
      ippId: 1, site: SITE_A, queue: 'print', state: 'held', pages: 2, colorPages: 0, copies: 1, sides: 'one-sided', updatedAt: fields.createdAt, ...fields
    }
  }

  info (): SiteInfo {
    return { site: SITE_A, hostname: HOST_A, ippUri: `ipp://${HOST_A}:8631/ipp/print`, version: 'test' }
  }

  async authenticateUser (username: string, pin: string): Promise<Actor | undefined> {
    return username === 'alice' && pin === ALICE_PIN ? { user: 'alice', admin: false } : undefined
  }

  authenticateAdmin (token: string): Actor | undefined {
    return token === ADMIN_TOKEN ? { user: 'admin', admin: true } : undefined
  }

  /** Like the node: `all` lists every job in one list; `mine` lists partners' jobs per the mode. */
  listJobs (actor: Actor, scope: 'mine' | 'all'): JobList {
    if (scope === 'all') return { jobs: [...this.local, ...this.partnerJobs], remote: [] }
    const own = (jobs: JobView[]): JobView[] => jobs.filter((j) => j.owner === actor.user).map((j) => ({ ...j }))
    if (this.settings.mode === 'shared') return { jobs: own([...this.local, ...this.partnerJobs]), remote: [] }
    return { jobs: own(this.local), remote: own(this.partnerJobs) }
  }

  async releaseJob (actor: Actor, jobId: string, printer?: string): Promise<JobView> {
    this.releases.push({ user: actor.user, jobId, printer })
    const job = this.find(actor, jobId)
    if (job.source !== undefined) this.reachPartner(job.source.site)
    if (job.state !== 'held') throw new InvalidJobStateError(`job ${jobId} is ${job.state}, not held`)
    Object.assign(job, { state: 'printing', printer: printer ?? PRINTER, updatedAt: Date.now() })
    return { ...job }
  }

  async deleteJob (actor: Actor, jobId: string): Promise<JobView> {
    const job = this.find(actor, jobId)
    if (job.source !== undefined) this.reachPartner(job.source.site)
    Object.assign(job, { state: 'deleted', updatedAt: Date.now() })
    return { ...job }
  }

  roaming (): RoamingView {
    return {
      site: SITE_A,
      hostname: HOST_A,
      mode: this.settings.mode,
      partners: this.settings.partners.map((site) => {
        const theirs = this.known.get(site)
        return { site, ...(theirs !== undefined ? { hostname: theirs.hostname } : {}), mutual: this.roamsWith(site) }
      }),
      clients: { ...this.clients },
      terminals: { configured: false, trustUserName: true },
      policy: { ...this.policy, monoGroups: [...this.policy.monoGroups] },
      times: { holdHours: 48, retentionHours: 168, set: [], startUp: { holdHours: 48, retentionHours: 168 } }
    }
  }

  clients: ClientSettings = { otherUsers: false, spooling: true }

  /** Validates as the node does (the crdt family's rules): what is left out stays. */
  async setClientSettings (input: unknown): Promise<RoamingView> {
    try {
      this.clients = { ...this.clients, ...validateClientSettings(input) }
    } catch (err) {
      if (err instanceof InvalidSiteSettingsError) throw new InvalidRequestError(err.message)
      throw err
    }
    return this.roaming()
  }
  async setTerminalModes (): Promise<RoamingView> { throw new Error('not in this test') }
  async setTimes (): Promise<RoamingView> { throw new Error('not in this test') }
  policy: PrintPolicy = { forceDuplex: false, monoGroups: [] }

  /** Validates as the node does: what is left out stays. */
  async setPrintPolicy (input: unknown): Promise<RoamingView> {
    try {
      this.policy = { ...this.policy, ...validatePrintPolicy(input) }
    } catch (err) {
      if (err instanceof InvalidSiteSettingsError) throw new InvalidRequestError(err.message)
      throw err
    }
    return this.roaming()
  }

  /** Validates as the node does (the crdt family's rules), so the page shows its real messages. */
  async setRoaming (input: unknown): Promise<RoamingView> {
    try {
      this.settings = validateRoaming(SITE_A, input)
    } catch (err) {
      if (err instanceof InvalidSiteSettingsError) throw new InvalidRequestError(err.message)
      throw err
    }
    return this.roaming()
  }

  async printers (): Promise<PrinterView[]> {
    return [{ name: PRINTER, uri: 'ipp://127.0.0.1:8632/ipp/print', state: 'idle', message: '' }]
  }

  usageRecords (): UsageRecordView[] { return [] }
  usageTotals (): UsageTotal[] { return [] }
  jobStates (): ReadonlyMap<JobState, number> { return new Map() }
  users (): UserView[] { return [{ username: 'alice', fullName: 'Alice Liddell' }] }
  async importUsers (): Promise<{ imported: number }> { return { imported: 0 } }

  private roamsWith (site: string): boolean {
    return this.settings.partners.includes(site) && this.known.get(site)?.partners.includes(SITE_A) === true
  }

  private find (actor: Actor, jobId: string): JobView {
    const job = [...this.local, ...this.partnerJobs].find((j) => j.id === jobId)
    if (job === undefined) throw new JobNotFoundError(jobId)
    if (!actor.admin && job.owner !== actor.user) throw new NotAuthorizedError(`job ${jobId} is not yours`)
    return job
  }

  /** What the node checks before asking a holder: still partners, and the holder answers. */
  private reachPartner (site: string): void {
    if (!this.roamsWith(site)) throw new NotPartnerError(`sites ${SITE_A} and ${site} are not roaming partners`)
    if (this.unreachable.has(site)) throw new HolderUnreachableError(site, 'connection refused')
  }
}

interface World {
  site: RoamingSite
  server: HttpServer
  browser: TestBrowser
  base: string
}

const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.site = new RoamingSite()
    world.server = createHttpServer({ api: world.site, logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0 })
    await world.server.start()
    world.base = `http://127.0.0.1:${world.server.port}`
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['server', async () => await world.server?.stop()]
  ])
})

/** The world, or the setup's own error (uvu would otherwise hide it). */
function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

/** A job's row in one of the pages' job tables (`jobs`, `remote-jobs`). */
function jobRow (page: Page, table: string, jobId: string): Locator {
  return page.locator(`#${table} tbody tr[data-job-id="${jobId}"]`)
}

test('shared mode: alice sees her local job and site-b\'s job, marked with site-b\'s host, in one list', async () => {
  const w = ready()
  const { page } = w.browser
  await logIn(page, `${w.base}/`, 'alice', ALICE_PIN)
  await page.getByRole('heading', { name: 'My jobs' }).waitFor()

  const branch = jobRow(page, 'jobs', BRANCH_REPORT)
  await branch.locator('.source-host').filter({ hasText: `from ${HOST_B}` }).waitFor()
  assert.is(await branch.getByRole('rowheader').textContent(), `Branch report from ${HOST_B}`)
  assert.is(await jobRow(page, 'jobs', POSTER).locator('.source-host').textContent(), `from ${HOST_B}`)
  const memo = jobRow(page, 'jobs', LOCAL_MEMO)
  assert.is(await memo.getByRole('rowheader').textContent(), 'Local memo')
  assert.is(await memo.locator('.source-host').count(), 0, 'a local job has no source badge')
  assert.is(await jobRow(page, 'jobs', BOB_SLIDES).count(), 0, 'bob\'s job is not hers')
  assert.is(await branch.getByRole('button', { name: `Release Branch report from ${HOST_B}` }).isVisible(), true)
  assert.is(await page.getByRole('heading', { name: 'Jobs at other sites' }).isVisible(), false, 'no separate list in shared mode')
  await w.browser.screenshot('roaming-1-shared')
})

test('separate mode: site-b\'s jobs are listed apart; releasing one calls the API and its state updates', async () => {
  const w = ready()
  const { page } = w.browser
  w.site.settings.mode = 'separate'
  await page.getByRole('heading', { name: 'Jobs at other sites' }).waitFor()
  const branch = jobRow(page, 'remote-jobs', BRANCH_REPORT)
  await branch.waitFor()
  assert.equal(await branch.locator('td').allTextContents().then((cells) => cells.slice(0, 3)), [HOST_B, '2', 'held'])
  assert.is(await branch.getByRole('rowheader').textContent(), 'Branch report')
  await jobRow(page, 'jobs', BRANCH_REPORT).waitFor({ state: 'detached' })
  assert.is(await jobRow(page, 'jobs', LOCAL_MEMO).isVisible(), true, 'local jobs stay in My jobs')

  await page.getByLabel('Release to printer').selectOption(PRINTER)
  await branch.getByRole('button', { name: `Release Branch report from ${HOST_B}` }).click()
  await page.getByRole('status').filter({ hasText: `Released “Branch report from ${HOST_B}” to ${PRINTER}.` }).waitFor()
  await branch.getByText('printing', { exact: true }).waitFor()
  assert.equal(w.site.releases, [{ user: 'alice', jobId: BRANCH_REPORT, printer: PRINTER }])
  assert.is(await branch.getByRole('button', { name: /^Release / }).isVisible(), false, 'no release button once printing')
  await w.browser.screenshot('roaming-2-separate')
})

test('a release refused by the holder (503) or by a partner that left (403) shows the server\'s message', async () => {
  const w = ready()
  const { page } = w.browser
  const poster = jobRow(page, 'remote-jobs', POSTER)
  const release = poster.getByRole('button', { name: `Release Poster from ${HOST_B}` })
  const status = page.locator('#status')

  w.site.unreachable.add(SITE_B)
  await release.click()
  await status.filter({ hasText: `Could not release “Poster from ${HOST_B}”: site ${SITE_B}, which holds this job, is unreachable (connection refused)` }).waitFor()
  assert.ok(await status.evaluate((el) => el.classList.contains('error')), 'shown as an error')
  await w.browser.screenshot('roaming-3-unreachable')

  w.site.unreachable.delete(SITE_B)
  const siteB = w.site.known.get(SITE_B)
  assert.ok(siteB !== undefined)
  siteB.partners = []
  try {
    await release.click()
    await status.filter({ hasText: `Could not release “Poster from ${HOST_B}”: sites ${SITE_A} and ${SITE_B} are not roaming partners` }).waitFor()
  } finally {
    siteB.partners = [SITE_A]
  }
  assert.equal(w.site.releases.filter((r) => r.jobId === POSTER).length, 2, 'both attempts reached the API')
  assert.is(await poster.getByText('held', { exact: true }).isVisible(), true, 'the job is still held')
  assert.is(await page.getByRole('heading', { name: 'My jobs' }).isVisible(), true, 'a refusal does not end the session')
})

test('the admin sees source hosts in all jobs, edits roaming partners and mode, turns client spooling off and sets a print policy', async () => {
  const w = ready()
  const { page } = w.browser
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('heading', { name: /Log in to release/ }).waitFor()
  await page.goto(`${w.base}/admin`)
  await signInAdmin(page, ADMIN_TOKEN)
  await page.getByRole('heading', { name: 'Roaming', exact: true }).waitFor()

  // All jobs: site-b's are marked with its host, local ones are not.
  await jobRow(page, 'jobs', POSTER).locator('.source-host').filter({ hasText: `from ${HOST_B}` }).waitFor()
  assert.is(await jobRow(page, 'jobs', BOB_SLIDES).locator('.source-host').count(), 0)

  // This site's settings as the page loaded them.
  await page.locator('#roaming-site').filter({ hasText: SITE_A }).waitFor()
  assert.is(await page.locator('#roaming-hostname').textContent(), HOST_A)
  const partner = (site: string): Locator => page.locator(`#roaming-partners tbody tr[data-site="${site}"]`)
  await partner(SITE_B).waitFor()
  assert.equal(await partner(SITE_B).locator('td').allTextContents(), [HOST_B, 'roaming'])
  assert.is(await page.getByLabel('Roam with these sites').inputValue(), SITE_B)
  assert.is(await page.getByRole('radio', { name: /^Separate/ }).isChecked(), true, 'separate since alice\'s second test')

  // Bad input: the server's 400 message, nothing changed, the admin's text kept.
  await page.getByLabel('Roam with these sites').fill(`${SITE_B}, bad/site`)
  await page.getByRole('button', { name: 'Save roaming' }).click()
  await page.locator('#roaming-status').filter({ hasText: 'Could not save roaming: not a site id: "bad/site"' }).waitFor()
  assert.equal(w.site.settings, { partners: [SITE_B], mode: 'separate' })
  assert.is(await page.getByLabel('Roam with these sites').inputValue(), `${SITE_B}, bad/site`)

  // Two more partners, separated by a space and a new line, and shared mode.
  await page.getByLabel('Roam with these sites').fill(`${SITE_C} ${SITE_B}\nsite-d`)
  await page.getByRole('radio', { name: /^Shared/ }).check()
  await page.getByRole('button', { name: 'Save roaming' }).click()
  await page.locator('#roaming-status').filter({ hasText: 'Roaming settings saved; 2 partners still to add this site.' }).waitFor()
  assert.equal(w.site.settings, { partners: [SITE_B, SITE_C, 'site-d'], mode: 'shared' })
  assert.equal(await partner(SITE_C).locator('td').allTextContents(), [HOST_C, `waiting for ${SITE_C} to add this site`])
  assert.equal(await partner('site-d').locator('td').allTextContents(), ['not known yet', 'waiting for site-d to add this site'])
  assert.equal(await partner(SITE_B).locator('td').allTextContents(), [HOST_B, 'roaming'])
  assert.match(await page.locator('#roaming-mode-now').textContent() ?? '', /^shared/)
  assert.is(await page.getByLabel('Roam with these sites').inputValue(), `${SITE_B}, ${SITE_C}, site-d`, 'the form shows the saved, normalized list')
  await w.browser.screenshot('roaming-4-admin')

  // Site-c adds site-a: the page's polling shows the partnership as working.
  const siteC = w.site.known.get(SITE_C)
  assert.ok(siteC !== undefined)
  siteC.partners = [SITE_A]
  await partner(SITE_C).getByText('roaming', { exact: true }).waitFor({ timeout: 2 * UI_TIMEOUT_MS })

  // And back to separate mode, with the same partners.
  await page.getByRole('radio', { name: /^Separate/ }).check()
  await page.getByRole('button', { name: 'Save roaming' }).click()
  await page.locator('#roaming-status').filter({ hasText: 'Roaming settings saved; 1 partner still to add this site.' }).waitFor()
  assert.equal(w.site.settings, { partners: [SITE_B, SITE_C, 'site-d'], mode: 'separate' })
  assert.match(await page.locator('#roaming-mode-now').textContent() ?? '', /^separate/)

  // Workstation clients: client spooling on by default; the admin turns it off and lets workstations print for others
  await page.locator('#clients-now').filter({ hasText: 'Client spooling on: jobs stay on the workstations; each workstation prints for its own user only.' }).waitFor()
  assert.is(await page.locator('#clients-spooling').isChecked(), true)
  await page.locator('#clients-spooling').uncheck()
  await page.locator('#clients-other-users').check()
  await page.getByRole('button', { name: 'Save client settings' }).click()
  await page.locator('#clients-status').filter({ hasText: 'Client settings saved' }).waitFor()
  assert.equal(w.site.clients, { otherUsers: true, spooling: false }, 'saved through the API')
  await page.locator('#clients-now').filter({ hasText: 'Client spooling off: jobs are handed to this site\'s server; workstations take jobs for other users.' }).waitFor()
  await w.browser.screenshot('roaming-5-clients')

  // Print policy: two-sided for every job, monochrome for two groups (typed with a space and a new line)
  await page.locator('#policy-now').filter({ hasText: 'Jobs print as sent; no group prints in monochrome only.' }).waitFor()
  await page.locator('#policy-force-duplex').check()
  await page.locator('#policy-mono-groups').fill('students\n interns \n\nSales, EMEA')
  await page.getByRole('button', { name: 'Save print policy' }).click()
  await page.locator('#policy-status').filter({ hasText: 'Print policy saved' }).waitFor()
  assert.equal(w.site.policy, { forceDuplex: true, monoGroups: ['Sales, EMEA', 'interns', 'students'] }, 'saved through the API, one per line, trimmed')
  await page.locator('#policy-now').filter({ hasText: 'Every job prints two-sided; monochrome only for “Sales, EMEA”, “interns”, “students”.' }).waitFor()
  assert.is(await page.locator('#policy-mono-groups').inputValue(), 'Sales, EMEA\ninterns\nstudents', 'the form shows what was saved')
  // a bad group name: the server's message, nothing changed
  await page.locator('#policy-mono-groups').fill('ok\nbad;name')
  await page.getByRole('button', { name: 'Save print policy' }).click()
  await page.locator('#policy-status').filter({ hasText: 'Could not save the print policy: monoGroups: not a group name' }).waitFor()
  assert.equal(w.site.policy, { forceDuplex: true, monoGroups: ['Sales, EMEA', 'interns', 'students'] })
  await w.browser.screenshot('roaming-6-policy')
  assert.equal(w.browser.pageErrors, [], 'no script errors on the pages')
})

test.run()
