// The admin console (issue 16 item 4) with real processes and a real Chromium: central, site-a
// and site-b joined over libp2p on loopback, an ippeveprinter nobody configured. At site-b's
// console an admin adds that printer at site-a: the page says the change is pending (a signed
// admin action site-a applies), then lists it applied, and so for site-a's roaming settings and
// hold time (a bad one refused by name); `lp` sends a job to site-a, site-a
// releases it to the new printer, the printer gets it, and site-b's dashboard shows the pages
// without a reload (server-sent events). Every console page is screenshotted at 1280 and 390
// px wide (PRINTMESH_SCREENSHOT_DIR keeps them) and does not overflow a phone's width;
// central's console shows the same printers.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { rm } from 'node:fs/promises'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { makePdf } from './fixtures/documents.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { visitConsolePages, WIDE } from './helpers/console.ts'
import type { ConsoleSite } from '../ui/routes/console.ts'

const run = promisify(execFile)
/** Replication waits at most this long: anti-entropy runs every second in tests. */
const MESH_TIMEOUT_MS = 30_000
/** Longest wait for something on a page: a change crosses the mesh and an event first. */
const UI_TIMEOUT_MS = 30_000
/** `lp` gives up after this. */
const LP_TIMEOUT_MS = 20_000
const PAGES = ['dashboard', 'sites', 'printers', 'jobs'] as const

let central: SiteProcess | undefined
let siteA: SiteProcess | undefined
let siteB: SiteProcess | undefined
let printer: IppEvePrinter | undefined
let browser: TestBrowser | undefined
let docs = ''

const a = (): SiteProcess => siteA as SiteProcess
const b = (): SiteProcess => siteB as SiteProcess
const br = (): TestBrowser => browser as TestBrowser

test.before(async () => {
  docs = await tempDir('printmesh-console-docs-')
  central = await startCentral()
  const joinString = async (site: string): Promise<string> =>
    (await admin<{ joinString: string }>(central as SiteProcess, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site } })).joinString
  ;[siteA, siteB, printer, browser] = await Promise.all([
    joinString('site-a').then(async (join) => await startSite({ args: ['--site', 'site-a', '--join', join] })),
    joinString('site-b').then(async (join) => await startSite({ args: ['--site', 'site-b', '--join', join] })),
    startIppEvePrinter({ name: 'console lobby', impressions: 1 }),
    startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  ])
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['site-a', async () => await siteA?.stop()],
    ['site-b', async () => await siteB?.stop()],
    ['central', async () => await central?.stop()],
    ['printer', async () => await printer?.stop()],
    ['documents', async () => await rm(docs, { recursive: true, force: true })]
  ])
})

/** Screenshots of every console page at both widths; at a phone's width nothing is wider than the screen. */
async function screenshots (tag: string): Promise<void> {
  await visitConsolePages(br(), PAGES, tag)
}

test('at site-b\'s console an admin adds a printer at site-a: pending, then applied; site-a releases a job to it; site-b\'s dashboard counts its pages live', async () => {
  const page = br().page
  // both sites known at site-b, site-a's printers published
  await until(async () => {
    const { sites } = await admin<{ sites: ConsoleSite[] }>(b(), '/api/console/sites')
    return sites.find((s) => s.site === 'site-a')?.printers.some((p) => p.name === 'virtual' && p.state !== undefined) === true && sites.some((s) => s.site === 'site-b')
  }, MESH_TIMEOUT_MS, 'site-a\'s printers at site-b')

  await page.goto(`${b().httpUrl}/console`)
  await signInAdmin(page, b().adminToken)
  await page.locator('#live.on').waitFor()
  await page.locator('[data-tile="Sites up"] .figure', { hasText: '2 / 2' }).waitFor()
  await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true })

  // the admin adds ippeveprinter at site-a from site-b
  await page.evaluate(() => { location.hash = '#/printers' })
  await page.locator('#page[data-route="printers"]').waitFor()
  await page.getByLabel('Site', { exact: true }).selectOption('site-a')
  await page.getByLabel('Printer name').fill('lobby')
  await page.getByLabel('Printer address').fill(printer?.uri ?? '')
  await page.getByLabel('Description', { exact: true }).fill('Lobby, ground floor')
  await page.getByRole('button', { name: 'Add printer' }).click()
  await page.locator('#printer-message', { hasText: 'Add lobby at site-a: pending until the site applies it.' }).waitFor()
  const action = page.locator('tr[data-action]', { hasText: 'add printer lobby' })
  await action.waitFor()
  await action.locator('.applied').waitFor() // site-a's outcome came back
  await page.locator('tr[data-printer="site-a/lobby"]').waitFor()
  await page.locator('tr[data-printer="site-a/lobby"] .printer-ok').waitFor() // site-a asked the printer: idle
  assert.equal((await admin<{ printers: Array<{ name: string, uri: string }> }>(a(), '/api/printers')).printers.map((p) => p.name).sort(), ['lobby', 'virtual'], 'site-a prints to it now, no restart')

  // a bad address is refused by name, at site-b already
  await page.getByLabel('Site', { exact: true }).selectOption('site-a')
  await page.getByLabel('Printer name').fill('hall')
  await page.getByLabel('Printer address').fill('file:///tmp')
  await page.getByRole('button', { name: 'Add printer' }).click()
  await page.locator('#printer-message.error', { hasText: 'uri must start with ipp:// or ipps://' }).waitFor()

  // and site-a's settings: site-a roams with site-b, asked at site-b's Sites page
  await page.evaluate(() => { location.hash = '#/sites' })
  const siteACard = page.locator('section[data-site="site-a"]')
  await siteACard.locator('summary').click()
  await siteACard.getByLabel('Partner sites').fill('site-b')
  await siteACard.getByRole('button', { name: 'Save roaming' }).click()
  await siteACard.locator('.message', { hasText: 'Roaming: pending until site-a applies it.' }).waitFor()
  await siteACard.locator('tr[data-action]', { hasText: 'change roaming' }).locator('.applied').waitFor()
  assert.equal((await admin<{ partners: Array<{ site: string }> }>(a(), '/api/roaming')).partners.map((p) => p.site), ['site-b'])
  // and its hold time, no restart: a bad value refused by name at site-b, a good one applied by site-a's job service
  await siteACard.getByLabel('Hold held jobs (hours)').fill('100000')
  await siteACard.getByRole('button', { name: 'Save hold and retention' }).click()
  await siteACard.locator('.message.error', { hasText: 'holdHours must be a number of hours' }).waitFor()
  await siteACard.getByLabel('Hold held jobs (hours)').fill('6')
  await siteACard.getByRole('button', { name: 'Save hold and retention' }).click()
  await siteACard.locator('.message', { hasText: 'Hold and retention: pending until site-a applies it.' }).waitFor()
  await siteACard.locator('tr[data-action]', { hasText: 'change hold and retention times' }).locator('.applied').waitFor()
  await siteACard.locator('dd', { hasText: 'held jobs kept 6 hours (set by an admin); finished jobs kept 7 days' }).waitFor()
  assert.equal((await admin<{ times: unknown }>(a(), '/api/roaming')).times, { holdHours: 6, retentionHours: 168, set: ['holdHours'], startUp: { holdHours: 48, retentionHours: 168 } })

  // the dashboard, before anything printed today
  await page.evaluate(() => { location.hash = '#/dashboard' })
  const pages = page.locator('[data-tile="Pages today"] .figure')
  await pages.waitFor()
  const before = Number(await pages.textContent())
  assert.ok(Number.isInteger(before), `pages today: ${await pages.textContent() ?? ''}`)

  // lp to site-a; site-a releases it to the printer site-b added
  const pdf = await makePdf(docs, { pages: 2, title: 'console-memo' })
  await run('lp', ['-h', `127.0.0.1:${a().ippPort}`, '-d', 'print', '-U', 'alice', '-t', 'console-memo', pdf], { encoding: 'utf8', timeout: LP_TIMEOUT_MS })
  let jobId = ''
  await until(async () => {
    const { jobs } = await admin<{ jobs: Array<{ id: string, name: string, state: string }> }>(a(), '/api/jobs?scope=all')
    jobId = jobs.find((j) => j.name === 'console-memo' && j.state === 'held')?.id ?? ''
    return jobId !== ''
  }, MESH_TIMEOUT_MS, 'the job held at site-a')
  await page.locator('[data-tile="Held jobs"] .figure', { hasText: /^[1-9]/ }).waitFor() // site-b saw it held, live
  await admin(a(), `/api/jobs/${jobId}/release`, { method: 'POST', body: { printer: 'lobby' } })
  await until(async () => (await printer?.jobFiles() ?? []).length === 1, MESH_TIMEOUT_MS, 'the job at the printer')
  await until(async () => (await admin<{ jobs: Array<{ id: string, state: string, printer?: string }> }>(a(), '/api/jobs?scope=all')).jobs.some((j) => j.id === jobId && j.state === 'printed' && j.printer === 'lobby'), MESH_TIMEOUT_MS, 'printed on lobby')

  // site-b's dashboard shows the two pages printed at site-a, without a reload
  await page.locator('[data-tile="Pages today"] .figure', { hasText: String(before + 2) }).waitFor()
  assert.ok(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded === true), 'the page was not reloaded')
  await page.evaluate(() => { location.hash = '#/jobs' })
  await page.locator('tr[data-job-id]', { hasText: 'console-memo' }).locator('.state-printed').waitFor()

  await screenshots('after')

  // central's console shows the same mesh: both sites, the printer site-b added at site-a
  await page.goto(`${(central as SiteProcess).httpUrl}/console#/printers`)
  await signInAdmin(page, (central as SiteProcess).adminToken)
  await page.locator('tr[data-printer="site-a/lobby"] .printer-ok').waitFor()
  await page.locator('tr[data-printer="site-b/virtual"]').waitFor()
  await br().screenshot('console-printers-1280-central')
  assert.equal(br().pageErrors, [])
})

test.run()
