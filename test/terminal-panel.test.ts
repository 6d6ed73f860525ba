// The MFP terminal with real processes on loopback: central (users imported with the CLI),
// site-a, and a terminal of site-a fronting its own ippeveprinter. Jobs printed to the site
// with ipptool are listed at the terminal's panel for their owner only, released there (the
// site grants, the document moves site → terminal → printer with identical bytes), deleted
// there, and charged once — with the exact pages and colour pages — in the terminal's own
// accounting, which reaches the site. Then Chromium drives the panel at 800×480: keypad PIN
// login, print, print all, delete, log out, and logout after the idle time.
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, startCentral, startTerminal, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { printFile } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'

/** Mesh operations wait at most this long (joining, first sync, a release across two peers). */
const MESH_TIMEOUT_MS = 45_000
/** Longest wait for the panel to show something (it polls every 2 s). */
const UI_TIMEOUT_MS = 20_000
/** The panel's idle logout in this file: short, so the test sees it happen, long enough for a loaded machine between two clicks. */
const IDLE_LOGOUT_S = 15
const ALICE_PIN = '246810'
const BOB_PIN = '135790'
const CLI = new URL('../node/cli.ts', import.meta.url).pathname

let central: SiteProcess | undefined
let site: SiteProcess | undefined
let terminal: SiteProcess | undefined
let printer: IppEvePrinter | undefined
let browser: TestBrowser | undefined
let docs = ''
let centralDir = ''

/** A logged-in panel user: the session cookie and CSRF token the panel page would hold. */
interface PanelSession { cookie: string, csrf: string }

async function login (username: string, pin: string): Promise<{ status: number, session?: PanelSession, body: Record<string, unknown> }> {
  const res = await fetch(`${terminalNode().httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  const body = await res.json() as Record<string, unknown>
  const cookie = res.headers.get('set-cookie')?.split(';')[0]
  return { status: res.status, body, ...(cookie !== undefined && res.ok ? { session: { cookie, csrf: String(body.csrfToken) } } : {}) }
}

async function panel<T> (s: PanelSession, method: string, path: string): Promise<{ status: number, body: T }> {
  const res = await fetch(`${terminalNode().httpUrl}${path}`, { method, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })
  return { status: res.status, body: await res.json() as T }
}

interface PanelJob { id: string, name: string, state: string, pages?: number, colorPages?: number, copies: number, sides: string, createdAt: number, source?: string, message?: string }
const panelJobs = async (s: PanelSession): Promise<PanelJob[]> => (await panel<{ jobs: PanelJob[] }>(s, 'GET', '/api/panel/jobs')).body.jobs

interface SiteJob { id: string, ippId: number, state: string, name: string, owner: string, printer?: string }
const siteJob = async (id: string): Promise<SiteJob | undefined> => (await admin<{ jobs: SiteJob[] }>(siteNode(), '/api/jobs?scope=all')).jobs.find((j) => j.id === id)
interface Usage { id: string, kind: string, user: string, jobId: string, printer: string, site: string, pages: number, colorPages: number, sheets: number, copies: number }
const usageAtSite = async (): Promise<Usage[]> => (await admin<{ records: Usage[] }>(siteNode(), '/api/usage/records')).records

function siteNode (): SiteProcess { if (site === undefined) throw new Error('no site'); return site }
function terminalNode (): SiteProcess { if (terminal === undefined) throw new Error('no terminal'); return terminal }

/** Prints a PDF of `pages` pages (`color` of them in colour) to the site as `user`; returns the job's mesh id and the document's sha256. */
async function printAtSite (user: string, name: string, pages: number, color: number[]): Promise<{ id: string, sha256: string }> {
  const pdf = await makePdf(docs, { pages, colorPages: color, title: name }) // its own bytes: the printer's files tell jobs apart
  const ippId = await printFile(siteNode().ippUri, pdf, { user, format: 'application/pdf', name })
  const sha256 = createHash('sha256').update(await readFile(pdf)).digest('hex')
  let id = ''
  await until(async () => {
    const job = (await admin<{ jobs: SiteJob[] }>(siteNode(), '/api/jobs?scope=all')).jobs.find((j) => j.ippId === ippId && j.state === 'held')
    id = job?.id ?? ''
    return job !== undefined
  }, MESH_TIMEOUT_MS, `${name} held at the site`)
  return { id, sha256 }
}

async function printedFiles (): Promise<string[]> {
  if (printer === undefined) return []
  const files = await printer.jobFiles()
  return await Promise.all(files.map(async (f) => createHash('sha256').update(await readFile(f)).digest('hex')))
}

test.before(async () => {
  docs = await tempDir('printmesh-docs-')
  centralDir = await tempDir('printmesh-central-')
  // users come from central's directory, imported before its first start
  const csv = join(docs, 'users.csv')
  await writeFile(csv, `alice,Alice Liddell,${ALICE_PIN}\nbob,Bob Builder,${BOB_PIN}\n`)
  const imported = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'users', 'import', csv, '--data', centralDir], { encoding: 'utf8' })
  if (imported.status !== 0) throw new Error(`users import failed: ${imported.stderr}`)
  central = await startCentral({ dataDir: centralDir })
  const token = async (role: string): Promise<string> =>
    (await admin<{ joinString: string }>(central as SiteProcess, '/api/mesh/tokens', { method: 'POST', body: { role, site: 'site-a' } })).joinString
  site = await startSite({ args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--join', await token('site')] })
  printer = await startIppEvePrinter({ name: 'terminal mfp' })
  terminal = await startTerminal({ args: ['--join', await token('terminal'), '--printer', printer.uri, '--idle-logout-seconds', String(IDLE_LOGOUT_S)] })
  // the terminal logs users in from the directory replicated to it: wait until it has it
  await until(async () => {
    const status = await (await fetch(`${terminalNode().httpUrl}/api/panel/status`)).json() as { online: boolean }
    const mesh = await admin<{ documents: Array<{ doc: string, peers: Record<string, string> }> }>(terminalNode(), '/api/mesh')
    return status.online && mesh.documents.some((d) => d.doc === 'v1/directory' && Object.values(d.peers).includes('in-sync'))
  }, MESH_TIMEOUT_MS, 'the terminal online with the directory')
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['terminal', async () => await terminal?.stop()],
    ['site', async () => await site?.stop()],
    ['central', async () => await central?.stop()],
    ['printer', async () => await printer?.stop()],
    ['folders', async () => { for (const d of [docs, centralDir]) if (d !== '') await rm(d, { recursive: true, force: true }) }]
  ])
})

test('the panel says which site and printer it serves, and that it is online', async () => {
  const status = await (await fetch(`${terminalNode().httpUrl}/api/panel/status`)).json() as { site: string, online: boolean, printer: { uri: string, state: string }, idleLogoutMs: number }
  assert.is(status.site, 'site-a')
  assert.is(status.online, true)
  assert.is(status.printer.uri, printer?.uri)
  assert.is(status.idleLogoutMs, IDLE_LOGOUT_S * 1000)
  await until(async () => ((await (await fetch(`${terminalNode().httpUrl}/api/panel/status`)).json()) as { printer: { state: string } }).printer.state === 'idle', UI_TIMEOUT_MS, 'the printer probed idle')
})

test('a wrong PIN is refused at the panel; no session is opened', async () => {
  const wrong = await login('alice', '999999')
  assert.is(wrong.status, 401)
  assert.is(wrong.session, undefined)
  assert.match(String(wrong.body.error), /wrong username or PIN/)
  const listed = await fetch(`${terminalNode().httpUrl}/api/panel/jobs`)
  assert.is(listed.status, 401, 'no jobs without a login')
})

test('alice releases her job at the terminal: the site grants it, the printer gets identical bytes, charged once with exact pages in the terminal\'s accounting', async () => {
  const job = await printAtSite('alice', 'quarterly.pdf', 3, [2])
  const bobJob = await printAtSite('bob', 'bob-salary-review.pdf', 1, [])
  const alice = (await login('alice', ALICE_PIN)).session
  const bob = (await login('bob', BOB_PIN)).session
  assert.ok(alice !== undefined && bob !== undefined, 'both log in')
  // listed once the job and the site's settings (its host name) reached the terminal
  await until(async () => (await panelJobs(alice)).some((j) => j.id === job.id && j.source !== undefined), MESH_TIMEOUT_MS, 'alice\'s job listed at the panel')
  const listed = (await panelJobs(alice)).find((j) => j.id === job.id)
  assert.equal(listed, { id: job.id, name: 'quarterly.pdf', state: 'held', pages: 3, colorPages: 1, copies: 1, sides: 'one-sided', createdAt: listed?.createdAt ?? 0, source: 'print.site-a.example' })
  assert.not.ok((await panelJobs(alice)).some((j) => j.id === bobJob.id), 'bob\'s job is not on alice\'s panel')
  assert.equal((await panelJobs(bob)).map((j) => j.name), ['bob-salary-review.pdf'], 'bob sees only his own job')
  const stolen = await panel<{ error: string }>(bob, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(stolen.status, 403, 'bob cannot release alice\'s job')

  const released = await panel<{ job: PanelJob }>(alice, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => (await siteJob(job.id))?.state === 'printed', MESH_TIMEOUT_MS, 'printed, as the site sees it')
  assert.equal(await printedFiles(), [job.sha256], 'the printer received the document, byte for byte, once')
  await until(async () => (await usageAtSite()).some((u) => u.jobId === job.id), MESH_TIMEOUT_MS, 'usage replicated to the site')
  const usage = (await usageAtSite()).filter((u) => u.jobId === job.id)
  assert.equal(usage.map((u) => ({ kind: u.kind, user: u.user, pages: u.pages, colorPages: u.colorPages, sheets: u.sheets, copies: u.copies, site: u.site, printer: u.printer })),
    [{ kind: 'print', user: 'alice', pages: 3, colorPages: 1, sheets: 3, copies: 1, site: 'site-a', printer: 'device' }], 'one usage record with the exact pages')
  await until(async () => (await panelJobs(alice)).find((j) => j.id === job.id)?.state === 'printed', UI_TIMEOUT_MS, 'the panel shows it printed')
  const again = await panel<{ error: string }>(alice, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(again.status, 409, 'a printed job cannot be released again')
  assert.equal(await printedFiles(), [job.sha256], 'still printed once')

  // bob deletes his own job at the panel: deleted at its holder, nothing printed or charged
  const deleted = await panel<{ ok: boolean }>(bob, 'DELETE', `/api/panel/jobs/${bobJob.id}`)
  assert.is(deleted.status, 200, JSON.stringify(deleted.body))
  await until(async () => (await siteJob(bobJob.id))?.state === 'deleted', MESH_TIMEOUT_MS, 'deleted at the site')
  assert.equal(await panelJobs(bob), [])
  assert.not.ok((await usageAtSite()).some((u) => u.jobId === bobJob.id), 'a deleted job is not charged')
})

test('Chromium at 800×480: keypad login, print one, print all, delete, log out, and logout after the idle time', async () => {
  const one = await printAtSite('alice', 'one.pdf', 1, [])
  const two = await printAtSite('alice', 'two.pdf', 2, [0, 1])
  const three = await printAtSite('alice', 'three.pdf', 1, [])
  const four = await printAtSite('alice', 'four.pdf', 1, [])
  browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = browser.page
  await page.setViewportSize({ width: 800, height: 480 })
  await page.goto(`${terminalNode().httpUrl}/panel`)
  await page.getByText('Online').waitFor()
  await browser.screenshot('panel-login')
  await page.getByLabel('User name').fill('alice')
  for (const digit of ALICE_PIN) await page.locator(`.keypad button[data-key="${digit}"]`).click()
  assert.is(await page.getByLabel('PIN', { exact: true }).inputValue(), ALICE_PIN, 'the keypad typed the PIN')
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByText('Hello, alice').waitFor()
  const row = (id: string) => page.locator(`li[data-job="${id}"]`)
  await row(four.id).waitFor()
  const noScroll = await page.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth)
  assert.ok(noScroll, 'the job list fits the 800×480 screen without scrolling the page')
  const small = await page.locator('button:visible').evaluateAll((els) => els.filter((e) => { const r = e.getBoundingClientRect(); return r.height < 48 || r.width < 48 }).map((e) => e.textContent))
  assert.equal(small, [], 'every button is a large touch target')
  await browser.screenshot('panel-jobs')

  await row(one.id).getByRole('button', { name: 'Print' }).click()
  await row(one.id).locator('.job-state', { hasText: 'Printed' }).waitFor()
  await browser.screenshot('panel-printed')
  await row(two.id).getByRole('button', { name: 'Delete' }).click()
  await row(two.id).waitFor({ state: 'detached' })
  await page.getByRole('button', { name: 'Print all' }).click()
  await page.getByText('Sent 2 jobs to the printer.').waitFor()
  // the session stays while her jobs print, even past the idle time
  for (const j of [three, four]) await row(j.id).locator('.job-state', { hasText: 'Printed' }).waitFor({ timeout: MESH_TIMEOUT_MS })
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('heading', { name: 'Log in to print' }).waitFor()
  assert.is(await page.getByLabel('PIN', { exact: true }).inputValue(), '', 'the PIN is cleared on logout')
  const afterLogout = await page.evaluate(async () => (await fetch('/api/panel/jobs')).status)
  assert.is(afterLogout, 401, 'the session ended')

  await until(async () => (await siteJob(three.id))?.state === 'printed' && (await siteJob(four.id))?.state === 'printed', MESH_TIMEOUT_MS, 'print all printed both')
  assert.is((await siteJob(two.id))?.state, 'deleted')
  const printed = await printedFiles()
  for (const j of [one, three, four]) assert.is(printed.filter((s) => s === j.sha256).length, 1, 'each printed once')
  assert.not.ok(printed.includes(two.sha256), 'the deleted job never reached the printer')
  await until(async () => { const u = await usageAtSite(); return [one, three, four].every((j) => u.some((r) => r.jobId === j.id)) }, MESH_TIMEOUT_MS, 'usage of all three at the site')
  assert.equal((await usageAtSite()).filter((u) => [one.id, two.id, three.id, four.id].includes(u.jobId)).map((u) => u.pages).sort(), [1, 1, 1], 'charged once each, one page each')

  // left alone after logging in, the panel logs the user out by itself
  await page.getByLabel('User name').fill('alice')
  await page.getByLabel('PIN', { exact: true }).fill(ALICE_PIN)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByText('Hello, alice').waitFor()
  await page.getByText(`Logged out after ${IDLE_LOGOUT_S} s without use.`).waitFor({ timeout: IDLE_LOGOUT_S * 1000 + UI_TIMEOUT_MS })
  await browser.screenshot('panel-idle-logout')
  assert.is(await page.evaluate(async () => (await fetch('/api/panel/jobs')).status), 401, 'the idle logout ended the session')
  assert.equal(browser.pageErrors, [])
})

test.run()
