// Copy sessions at the MFP terminal, charged from the device's page counters read over SNMP:
// real processes on loopback (central, site-a, a terminal fronting its own ippeveprinter),
// and a real snmpd (helpers/snmpd.ts) serving the MFP's counters, which the test moves as
// copies at the device would. A session charges exactly the pages the counters moved, as one
// `copy` usage record reaching the site; a print released during the session is not charged
// as copies; a device that does not answer at the end charges nothing; a terminal killed
// mid-session closes it at its next start; /metrics counts the sessions and pages. Then
// Chromium taps Copy and Done on the panel at 800×480.
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, startSite, startTerminal, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { printFile } from './helpers/ipptool.ts'
import { runCleanup, startBrowser, type CleanupStep, type TestBrowser } from './helpers/browser.ts'
import { startSnmpd, TEST_OIDS, type TestSnmpd } from './helpers/snmpd.ts'
import { admin } from './helpers/node-api.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type Usage
} from './helpers/terminal-mesh.ts'

/** Longest wait for the panel to show something (it polls every 2 s). */
const UI_TIMEOUT_MS = 20_000
const ALICE_PIN = '246810'
const BOB_PIN = '135790'
const CAROL_PIN = '975310'
/** A terminal cut off from its site notices within this (libp2p's connection close, then its own reconnect attempts). */
const OFFLINE_MS = 30_000
/** The MFP's life counters when the test starts: a device that has printed for a while. */
const START = { total: 50_000, color: 10_000, mono: 40_000 }
/** How long the MFP takes to print a job: a print is still printing when its copy session ends. */
const PRINT_MS = 2_000

let mesh: TerminalMesh | undefined
let snmpd: TestSnmpd | undefined
let browser: TestBrowser | undefined
/** Processes and folders made by the tests themselves (the restarted terminal), undone in `after`. */
const extra: CleanupStep[] = []
let secrets = ''
let counterArgs: string[] = []
const counters = { ...START }

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
function agent (): TestSnmpd { if (snmpd === undefined) throw new Error('no snmpd'); return snmpd }
let terminal: () => SiteProcess = () => m().terminals[0].node
/** The site (restarted by the offline test). */
let site: () => SiteProcess = () => m().site

/** Copies (or prints) at the device: its counters move by `mono` and `color` impressions. */
async function move (mono: number, color: number): Promise<void> {
  counters.mono += mono
  counters.color += color
  counters.total += mono + color
  await agent().set(counters)
}

async function login (user: string, pin: string): Promise<PanelSession> {
  const r = await panelLogin(terminal(), user, pin)
  if (r.session === undefined) throw new Error(`${user} could not log in: ${JSON.stringify(r.body)}`)
  return r.session
}

interface Session { id: string, startedAt: number, device: string, copied?: { pages: number, colorPages: number }, countersError?: string }
interface End { outcome: string, id: string, pages?: number, colorPages?: number, sheets?: number, printPages?: number, message?: string }
const copyNow = async (s: PanelSession): Promise<Session | null> => (await panel<{ session: Session | null }>(s, 'GET', '/api/panel/copy')).body.session
const startCopy = async (s: PanelSession): Promise<{ status: number, body: { session?: Session, error?: string } }> => await panel(s, 'POST', '/api/panel/copy/start')
const endCopy = async (s: PanelSession): Promise<{ status: number, body: End }> => await panel<End>(s, 'POST', '/api/panel/copy/end')
const copyRecords = async (user: string): Promise<Usage[]> => (await usageAt(site())).filter((u) => u.kind === 'copy' && u.user === user)

test.before(async () => {
  snmpd = await startSnmpd({ ...START, serial: 'MFP-TEST-1' })
  secrets = await tempDir('printmesh-copy-secrets-')
  const communityFile = join(secrets, 'community')
  await writeFile(communityFile, `${agent().community}\n`, { mode: 0o600 })
  counterArgs = ['--counters', `snmp://127.0.0.1:${agent().port}?color=${TEST_OIDS.color}&mono=${TEST_OIDS.mono}`, '--counters-community-file', communityFile]
  mesh = await startTerminalMesh({ alice: ALICE_PIN, bob: BOB_PIN, carol: CAROL_PIN }, [counterArgs], { processMs: PRINT_MS })
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ...extra.reverse(),
    ['mesh', async () => await mesh?.stop()],
    ['snmpd', async () => await snmpd?.stop()],
    ['secrets', async () => await rm(secrets, { recursive: true, force: true })]
  ])
})

test('a copy session charges the user exactly the pages the counters moved, as one copy record at the site', async () => {
  const alice = await login('alice', ALICE_PIN)
  assert.is(await copyNow(alice), null, 'no session before Copy')
  const started = await startCopy(alice)
  assert.is(started.status, 200, JSON.stringify(started.body))
  assert.is(started.body.session?.device, `snmp://127.0.0.1:${agent().port}`)
  await move(7, 3)
  // the panel's running count follows the counters
  await until(async () => (await copyNow(alice))?.copied?.pages === 10, UI_TIMEOUT_MS, 'the running count at 10 pages')
  assert.equal((await copyNow(alice))?.copied, { pages: 10, colorPages: 3 })
  const end = await endCopy(alice)
  assert.is(end.status, 200)
  assert.equal(end.body, { outcome: 'charged', id: started.body.session?.id, pages: 10, colorPages: 3, sheets: 10, printPages: 0 })
  assert.is(await copyNow(alice), null, 'the session is over')
  await until(async () => (await copyRecords('alice')).length > 0, MESH_TIMEOUT_MS, 'alice\'s copy record at the site')
  const records = await copyRecords('alice')
  assert.is(records.length, 1, 'one record')
  assert.equal([records[0].pages, records[0].colorPages, records[0].sheets, records[0].site, records[0].jobId], [10, 3, 10, 'site-a', started.body.session?.id])
  // ending again charges nothing more
  const again = await endCopy(alice)
  assert.is(again.status, 409)
})

test('a print released at the terminal during a copy session, still printing when Done is tapped, is charged as a print, not as copies', async () => {
  const alice = await login('alice', ALICE_PIN)
  const doc = await makeDocument(m().docs, 'handout', 3, [0])
  const ippId = await printFile(m().site.ippUri, doc.path, { user: 'alice', format: 'application/pdf', name: 'handout' })
  let jobId = ''
  await until(async () => {
    const job = (await jobsAt(m().site)).find((j) => j.ippId === ippId && j.state === 'held')
    jobId = job?.id ?? ''
    return job !== undefined && (await panelJobs(alice)).some((j) => j.id === jobId)
  }, MESH_TIMEOUT_MS, 'the handout listed at the panel')
  const started = await startCopy(alice)
  assert.is(started.status, 200)
  assert.is((await panel(alice, 'POST', `/api/panel/jobs/${encodeURIComponent(jobId)}/release`)).status, 200)
  await until(async () => (await panelJobs(alice)).find((j) => j.id === jobId)?.state === 'printing', MESH_TIMEOUT_MS, 'the handout printing')
  // the device counts the print (2 mono + 1 colour) and 4 mono + 2 colour copies; Done while the print is still printing
  await move(2 + 4, 1 + 2)
  const end = await endCopy(alice)
  assert.is((await panelJobs(alice)).find((j) => j.id === jobId)?.state, 'printed', 'the end waited for the print to be charged')
  assert.equal(end.body, { outcome: 'charged', id: started.body.session?.id, pages: 6, colorPages: 2, sheets: 6, printPages: 3 })
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === started.body.session?.id) && (await usageAt(m().site)).some((u) => u.jobId === jobId), MESH_TIMEOUT_MS, 'both records at the site')
  const usage = await usageAt(m().site)
  assert.equal(usage.filter((u) => u.jobId === jobId).map((u) => [u.kind, u.pages, u.colorPages]), [['print', 3, 1]])
  assert.equal(usage.filter((u) => u.jobId === started.body.session?.id).map((u) => [u.kind, u.pages, u.colorPages]), [['copy', 6, 2]])
})

test('a session ended while the device does not answer charges nothing, says so, and leaves the panel free for a new session', async () => {
  const bob = await login('bob', BOB_PIN)
  const failed = await startCopy(bob)
  assert.is(failed.status, 200)
  await move(5, 0)
  await agent().halt()
  try {
    const end = await endCopy(bob)
    assert.is(end.body.outcome, 'failed')
    assert.match(end.body.message ?? '', 'nothing was charged')
    assert.match(end.body.message ?? '', 'did not answer')
    assert.is(await copyNow(bob), null, 'the session is closed')
    // a start the device cannot count is refused, not opened
    const refused = await startCopy(bob)
    assert.is(refused.status, 503)
    assert.match(refused.body.error ?? '', 'not started')
  } finally {
    await agent().start()
  }
  // the failed session is kept for an admin, with the counters at its start
  const kept = await admin<{ failed: Array<{ id: string, user: string, reason: string, start: { total: number, color: number, mono: number, device: { serial: string } } }> }>(terminal(), '/api/panel/copy/failed')
  assert.equal(kept.failed.map((f) => [f.id, f.user, f.reason, f.start.mono, f.start.color, f.start.device.serial]), [[failed.body.session?.id, 'bob', 'done', counters.mono - 5, counters.color, 'MFP-TEST-1']])
  // the next session is charged from its own start: the 5 uncounted pages are not in it
  const next = await startCopy(bob)
  assert.is(next.status, 200)
  await move(2, 0)
  assert.equal((await endCopy(bob)).body, { outcome: 'charged', id: next.body.session?.id, pages: 2, colorPages: 0, sheets: 2, printPages: 0 })
  await until(async () => (await copyRecords('bob')).length > 0, MESH_TIMEOUT_MS, 'bob\'s copy record at the site')
  assert.equal((await copyRecords('bob')).map((u) => [u.jobId, u.pages]), [[next.body.session?.id, 2]], 'only the counted session is charged')
})

test('with the site killed and central stopped, a copy at the terminal is recorded offline and reaches the site once both are back', async () => {
  const { central } = m()
  const before = site()
  const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(before), portOf(central)]
  await before.kill('SIGKILL')
  await central.kill('SIGTERM')
  await until(async () => ((await (await fetch(`${terminal().httpUrl}/api/panel/status`)).json()) as { online: boolean }).online === false, OFFLINE_MS, 'the terminal working offline')
  const alice = await login('alice', ALICE_PIN)
  const started = await startCopy(alice)
  assert.is(started.status, 200)
  await move(3, 2)
  assert.equal((await endCopy(alice)).body, { outcome: 'charged', id: started.body.session?.id, pages: 5, colorPages: 2, sheets: 5, printPages: 0 })
  // central and the site come back on their data and ports
  const centralBack = await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] })
  extra.push(['restarted central', async () => await centralBack.stop()])
  const siteBack = await startSite({ dataDir: before.dataDir, adminToken: before.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] })
  extra.push(['restarted site', async () => await siteBack.stop()])
  site = () => siteBack
  await until(async () => (await copyRecords('alice')).some((u) => u.jobId === started.body.session?.id), MESH_TIMEOUT_MS, 'the offline copy at the site')
  assert.equal((await copyRecords('alice')).filter((u) => u.jobId === started.body.session?.id).map((u) => [u.pages, u.colorPages]), [[5, 2]], 'charged once')
})

test('a copy session open when the terminal is killed is charged at its next start, once', async () => {
  const carol = await login('carol', CAROL_PIN)
  const started = await startCopy(carol)
  assert.is(started.status, 200)
  await move(4, 1)
  const first = m().terminals[0]
  await first.node.kill('SIGKILL')
  // more copies while the terminal is down: the device counts them for the same user
  await move(1, 0)
  const again = await startTerminal({ dataDir: first.node.dataDir, args: ['--printer', first.printer.uri, ...counterArgs] })
  extra.push(['restarted terminal', async () => await again.stop()])
  terminal = () => again
  await again.waitForLog('copy session charged', MESH_TIMEOUT_MS)
  await until(async () => (await copyRecords('carol')).length > 0, MESH_TIMEOUT_MS, 'carol\'s copy record at the site')
  assert.equal((await copyRecords('carol')).map((u) => [u.jobId, u.pages, u.colorPages]), [[started.body.session?.id, 6, 1]])
  const carolAgain = await login('carol', CAROL_PIN)
  assert.is(await copyNow(carolAgain), null, 'no session left open')
})

test('/metrics counts copy sessions by outcome and the pages copied by colour', async () => {
  const text = await (await fetch(`${terminal().httpUrl}/metrics`)).text()
  const value = (name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  // this process (restarted) closed carol's session only
  assert.is(value('printmesh_copy_sessions_ended_total{outcome="charged"}'), 1)
  assert.is(value('printmesh_copy_pages_total{color="mono"}'), 5)
  assert.is(value('printmesh_copy_pages_total{color="color"}'), 1)
  assert.is(value('printmesh_copy_sessions_started_total'), 0)
})

test('Chromium: the panel\'s Copy button opens a session showing the pages copied, and Done charges them (800×480)', async () => {
  browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = browser.page
  await page.setViewportSize({ width: 800, height: 480 })
  await page.goto(`${terminal().httpUrl}/panel`)
  await page.getByLabel('User name').fill('bob')
  await page.getByLabel('PIN', { exact: true }).fill(BOB_PIN)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByText('Hello, bob').waitFor()
  await page.getByRole('button', { name: 'Copy' }).click()
  await page.getByRole('heading', { name: 'Copying' }).waitFor()
  await browser.screenshot('panel-copy-started')
  await move(2, 1)
  await page.getByText('3 pages copied (1 colour)').waitFor()
  const fits = await page.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth)
  assert.ok(fits, 'the copy screen fits 800×480 without scrolling')
  await browser.screenshot('panel-copying')
  await page.getByRole('button', { name: 'Done' }).click()
  await page.getByText('Copies charged: 3 pages, 1 in colour.').waitFor()
  await browser.screenshot('panel-copy-charged')
  await until(async () => (await copyRecords('bob')).some((u) => u.pages === 3), MESH_TIMEOUT_MS, 'the panel\'s copy record at the site')
  // a session left open is ended by logging out
  await page.getByRole('button', { name: 'Copy' }).click()
  await page.getByRole('heading', { name: 'Copying' }).waitFor()
  await move(1, 0)
  await page.getByText('1 page copied').waitFor()
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByText('Copies charged: 1 page.').waitFor()
  await until(async () => (await copyRecords('bob')).some((u) => u.pages === 1), MESH_TIMEOUT_MS, 'the logout\'s copy record at the site')
  assert.equal((await copyRecords('bob')).map((u) => u.pages).sort(), [1, 2, 3])
  assert.equal(browser.pageErrors, [])
})

test.run()
