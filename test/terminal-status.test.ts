// A terminal's status and supplies for admins, its login metrics, and the card reader
// daemon's door (issue 12 items 2 and 6), with real processes on loopback: central, site-a,
// and a terminal of site-a fronting its own ippeveprinter.
// - The terminal's /api/info `terminal` section shows its printer's state, reasons and
//   supplies exactly as ipptool reads them from the ippeveprinter (none before its first job,
//   an empty list; after it, what the job reported), its directory copy and sync.
// - /metrics counts a PIN login, a card login, a failed login and a lockout exactly.
// - A reader daemon posts a card (loopback, daemon token from a file): the open panel page in
//   Chromium logs that user in; a wrong token or a malformed card is refused and holds nothing.
// - The site's admin page (Chromium) lists the terminal online with a bar per supply, and
//   offline with when it was last seen after the terminal is stopped.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { runIpptool, ippTest, printFile } from './helpers/ipptool.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { MAX_FAILURES_PER_PAIR } from '../ui/rate-limit.ts'
import { startTerminalMesh, panelLogin, makeDocument, MESH_TIMEOUT_MS, type TerminalMesh } from './helpers/terminal-mesh.ts'

/** Longest wait for a page or the terminal to show something (the panel polls every 1–5 s, the admin page every 5 s, the printer is probed every 10 s). */
const UI_TIMEOUT_MS = 25_000
const ALICE_PIN = '246810'
const BOB_PIN = '135790'
const ALICE_CARD = '0004417223'
const BOB_CARD = 'A1B2C3D4E5'
const TERMINAL_NAME = 'mfp-lobby'
/** What the MFP reports of its supplies once it has printed (ippeveprinter `ATTR:`): two toners and a waste bin. */
const SUPPLIES = 'marker-names=Black,Cyan,Waste marker-levels=80,45,-3 marker-colors=#000000,#00FFFF,none marker-types=toner,toner,waste-toner'

let mesh: TerminalMesh | undefined
let browser: TestBrowser | undefined
let tokenDir: string | undefined
/** The reader daemon's token, as in the file the terminal was started with. */
const READER_TOKEN = randomBytes(24).toString('hex')

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
function terminalNode (): SiteProcess { return m().terminals[0].node }
function b (): TestBrowser { if (browser === undefined) throw new Error('no browser'); return browser }

interface Marker { name: string, level: number, color?: string, type?: string }
interface TerminalInfo { name: string, site: string, online: boolean, users: number, lastSync?: number, printer: { state: string, uri: string, reasons?: string[], markers?: Marker[] } }

const info = async (): Promise<{ role: string, terminal?: TerminalInfo }> => await (await fetch(`${terminalNode().httpUrl}/api/info`)).json() as { role: string, terminal?: TerminalInfo }

/** What ipptool reads from the printer: its state, reasons and supplies (marker-* paired by index). */
async function printerAsIpptoolSees (uri: string): Promise<{ state: string, reasons: string[], markers: Marker[] }> {
  const names = ['marker-names', 'marker-levels', 'marker-colors', 'marker-types', 'printer-state', 'printer-state-reasons']
  const { code, out } = await runIpptool(uri, ippTest('Get-Printer-Attributes', 'Get-Printer-Attributes', [
    `ATTR keyword requested-attributes ${names.join(',')}`, 'STATUS successful-ok', ...names.map((n) => `DISPLAY ${n}`)
  ]))
  if (code !== 0) throw new Error(`ipptool failed: ${out}`)
  const values = (name: string): string[] => {
    const line = out.match(new RegExp(`^\\s*${name} \\([^)]*\\) = (.*)$`, 'm'))
    return line === null ? [] : line[1].split(',')
  }
  const levels = values('marker-levels').map(Number)
  const colors = values('marker-colors')
  const types = values('marker-types')
  return {
    state: values('printer-state')[0],
    reasons: values('printer-state-reasons').filter((r) => r !== 'none'),
    markers: values('marker-names').map((name, i) => ({ name, level: levels[i], color: colors[i], type: types[i] }))
  }
}

/** A sample of /metrics: its value, 0 when the series has none yet. */
async function metric (name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${terminalNode().httpUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

const postCard = async (body: unknown, token?: string): Promise<{ status: number, body: Record<string, unknown> }> => {
  const res = await fetch(`${terminalNode().httpUrl}/api/panel/card`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

test.before(async () => {
  tokenDir = await tempDir('printmesh-reader-token-')
  const tokenFile = join(tokenDir, 'reader-token')
  await writeFile(tokenFile, `${READER_TOKEN}\n`, { mode: 0o600 })
  mesh = await startTerminalMesh({ alice: { pin: ALICE_PIN, card: ALICE_CARD }, bob: { pin: BOB_PIN, card: BOB_CARD } },
    [['--name', TERMINAL_NAME, '--card-reader-token-file', tokenFile]], { reports: [SUPPLIES] })
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['mesh', async () => await mesh?.stop()],
    ['token folder', async () => { if (tokenDir !== undefined) await rm(tokenDir, { recursive: true, force: true }) }]
  ])
})

test('a printer that reports no supplies shows an empty list of them, not an error', async () => {
  const seen = await printerAsIpptoolSees(m().terminals[0].printer.uri)
  assert.equal(seen.markers, [], 'no supplies before the first job')
  let terminal: TerminalInfo | undefined
  await until(async () => { terminal = (await info()).terminal; return terminal?.printer.markers !== undefined }, UI_TIMEOUT_MS, 'the printer probed')
  assert.equal(terminal?.printer.markers, [])
  assert.is(terminal?.printer.state, 'idle')
})

test('the terminal\'s /api/info shows its printer\'s state, reasons and supplies as ipptool reads them, its directory copy and its last sync', async () => {
  // the MFP prints something (straight to it), and then reports its supplies
  const doc = await makeDocument(m().docs, 'toner check', 1, [])
  await printFile(m().terminals[0].printer.uri, doc.path, { user: 'alice', format: 'application/pdf' })
  let seen = await printerAsIpptoolSees(m().terminals[0].printer.uri)
  await until(async () => { seen = await printerAsIpptoolSees(m().terminals[0].printer.uri); return seen.markers.length === 3 }, UI_TIMEOUT_MS, 'the printer reporting its supplies after the job')
  assert.equal(seen.markers, [
    { name: 'Black', level: 80, color: '#000000', type: 'toner' },
    { name: 'Cyan', level: 45, color: '#00FFFF', type: 'toner' },
    { name: 'Waste', level: -3, color: 'none', type: 'waste-toner' }
  ], 'ipptool reads what the MFP reported')
  let terminal: TerminalInfo | undefined
  await until(async () => { terminal = (await info()).terminal; return terminal?.printer.markers?.length === 3 }, UI_TIMEOUT_MS, 'the printer probed again with its supplies')
  if (terminal === undefined) throw new Error('no terminal section')
  assert.is((await info()).role, 'terminal')
  assert.is(terminal.name, TERMINAL_NAME)
  assert.is(terminal.site, 'site-a')
  assert.is(terminal.online, true)
  assert.is(terminal.users, 2, 'alice and bob in its directory copy')
  assert.ok(terminal.lastSync !== undefined && terminal.lastSync <= Date.now(), 'the directory arrived from a peer')
  assert.is(terminal.printer.uri, m().terminals[0].printer.uri)
  assert.is(terminal.printer.state, seen.state)
  assert.equal(terminal.printer.reasons, seen.reasons)
  assert.equal(terminal.printer.markers, seen.markers)
})

test('/metrics counts a PIN login, a card login and a failed login exactly', async () => {
  const before = {
    pin: await metric('printmesh_logins_total', 'method="pin"'),
    card: await metric('printmesh_logins_total', 'method="card"'),
    failedPin: await metric('printmesh_login_failures_total', 'method="pin"'),
    failedCard: await metric('printmesh_login_failures_total', 'method="card"')
  }
  assert.is((await panelLogin(terminalNode(), 'alice', ALICE_PIN)).status, 200)
  const card = await fetch(`${terminalNode().httpUrl}/api/login/card`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card: BOB_CARD }) })
  assert.is(card.status, 200)
  assert.is((await panelLogin(terminalNode(), 'alice', '999999')).status, 401)
  assert.is(await metric('printmesh_logins_total', 'method="pin"'), before.pin + 1)
  assert.is(await metric('printmesh_logins_total', 'method="card"'), before.card + 1)
  assert.is(await metric('printmesh_login_failures_total', 'method="pin"'), before.failedPin + 1)
  assert.is(await metric('printmesh_login_failures_total', 'method="card"'), before.failedCard)
  const text = await (await fetch(`${terminalNode().httpUrl}/metrics`)).text()
  for (const family of ['printmesh_logins_total', 'printmesh_login_failures_total', 'printmesh_login_refused_total', 'printmesh_release_duration_seconds', 'printmesh_usage_jobs_total']) {
    assert.match(text, new RegExp(`^# HELP ${family} \\S`, 'm'), `${family} has its help`)
  }
})

test('a user locked out after five wrong PINs counts five failed logins and one lockout in /metrics', async () => {
  const failed = await metric('printmesh_login_failures_total', 'method="pin"')
  const lockouts = await metric('printmesh_login_refused_total', 'limit="pair"')
  for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) assert.is((await panelLogin(terminalNode(), 'mallory', `00000${i}`)).status, 401)
  const locked = await panelLogin(terminalNode(), 'mallory', '000009')
  assert.is(locked.status, 429)
  assert.match(String(locked.body.error), /too many failed login attempts; try again in \d+ seconds/)
  assert.is(await metric('printmesh_login_failures_total', 'method="pin"'), failed + MAX_FAILURES_PER_PAIR)
  assert.is(await metric('printmesh_login_refused_total', 'limit="pair"'), lockouts + 1)
})

test('a reader daemon with a wrong or no token, or a malformed card, is refused with a clear 4xx and no card is held', async () => {
  const wrong = await postCard({ card: ALICE_CARD }, 'not-the-reader-token-at-all')
  assert.is(wrong.status, 401)
  assert.match(String(wrong.body.error), /card reader token/)
  const none = await postCard({ card: ALICE_CARD })
  assert.is(none.status, 401)
  const admin = await postCard({ card: ALICE_CARD }, terminalNode().adminToken)
  assert.is(admin.status, 401, 'the admin token is not the reader\'s')
  const malformed = await postCard({ card: '12;DROP' }, READER_TOKEN)
  assert.is(malformed.status, 400)
  assert.match(String(malformed.body.error), /card must be 4 to 64 letters or digits/)
  const notString = await postCard({ card: 4417223 }, READER_TOKEN)
  assert.is(notString.status, 400)
  const claim = await (await fetch(`${terminalNode().httpUrl}/api/panel/card/claim`, { method: 'POST' })).json() as { card: string | null }
  assert.is(claim.card, null, 'nothing was held for the panel')
})

test('a card a reader daemon posts logs its user in at the open panel page, and the next card logs them out and the next user in', async () => {
  browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = b().page
  await page.setViewportSize({ width: 800, height: 480 })
  await page.goto(`${terminalNode().httpUrl}/panel`)
  await page.getByRole('heading', { name: 'Log in to print' }).waitFor()
  const posted = await postCard({ card: BOB_CARD }, READER_TOKEN)
  assert.is(posted.status, 202)
  await page.getByText('Hello, bob').waitFor()
  await b().screenshot('panel-reader-daemon-bob')
  assert.is((await postCard({ card: ALICE_CARD }, READER_TOKEN)).status, 202)
  await page.getByText('Hello, alice').waitFor()
  const who = await page.evaluate(async () => await (await fetch('/api/session')).json() as { user: string })
  assert.is(who.user, 'alice')
  assert.equal(b().pageErrors, [])
})

test('the site\'s admin page lists the terminal online with a bar per supply, then offline with when it was last seen once the terminal stops', async () => {
  const seen = await printerAsIpptoolSees(m().terminals[0].printer.uri)
  const page = b().page
  await page.setViewportSize({ width: 1280, height: 900 })
  await page.goto(`${m().site.httpUrl}/admin`)
  await signInAdmin(page, m().site.adminToken)
  const row = page.locator(`#terminals tr[data-peer="${terminalNode().peer}"]`)
  await row.locator('meter').first().waitFor()
  assert.is(await row.getAttribute('data-online'), 'true')
  assert.is(await row.locator('th').textContent(), TERMINAL_NAME)
  assert.is(await row.locator('.terminal-connection').textContent(), 'online')
  assert.is(await row.locator('.terminal-printer').textContent(), seen.state)
  assert.is(await row.locator('.terminal-reasons').textContent(), seen.reasons.join(', ') || 'none')
  const bars = await row.locator('li.supply').evaluateAll((els) => els.map((e) => ({ name: e.getAttribute('data-marker'), value: Number(e.querySelector('meter')?.getAttribute('value')) })))
  assert.equal(bars, seen.markers.map((mk) => ({ name: mk.name, value: Math.max(0, mk.level) })))
  await b().screenshot('admin-terminals-online')

  const stoppedAt = Date.now()
  await terminalNode().stop()
  await until(async () => await row.getAttribute('data-online') === 'false', MESH_TIMEOUT_MS, 'the terminal shown offline')
  const text = await row.locator('.terminal-connection').textContent() ?? ''
  assert.match(text, /^offline, last seen /)
  const api = await (await fetch(`${m().site.httpUrl}/api/terminals`, { headers: { authorization: `Bearer ${m().site.adminToken}` } })).json() as { terminals: Array<{ peer: string, online: boolean, lastSeen?: number }> }
  const listed = api.terminals.find((t) => t.peer === terminalNode().peer)
  assert.ok(listed?.lastSeen !== undefined && listed.lastSeen >= stoppedAt && listed.lastSeen <= Date.now(), 'last seen when it stopped')
  assert.is(await row.locator('li.supply').count(), seen.markers.length, 'its last known supplies stay shown')
  await b().screenshot('admin-terminals-offline')
  assert.equal(b().pageErrors, [])
})

test.run()
