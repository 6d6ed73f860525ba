// The MFP terminal with real processes on loopback: central (users imported with the CLI),
// site-a, and a terminal of site-a fronting its own ippeveprinter. Jobs printed to the site
// with ipptool are listed at the terminal's panel for their owner only, released there (the
// site grants, the document moves site → terminal → printer with identical bytes), deleted
// there, and charged once — with the exact pages and colour pages — in the terminal's own
// accounting, which reaches the site. Then Chromium drives the panel at 800×480: keypad PIN
// login, print, print all, delete, log out, logout after the idle time, and card login by a
// keyboard-wedge reader (fast keystrokes ending in Enter).
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import type { IppEvePrinter } from './helpers/ippeveprinter.ts'
import { printFile } from './helpers/ipptool.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { containsBytes } from './helpers/files.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type PanelJob, type SiteJob, type Usage
} from './helpers/terminal-mesh.ts'

/** Longest wait for the panel to show something (it polls every 2 s). */
const UI_TIMEOUT_MS = 20_000
/** The panel's idle logout in this file: short, so the test sees it happen, long enough for a loaded machine between two clicks. */
const IDLE_LOGOUT_S = 15
const ALICE_PIN = '246810'
const BOB_PIN = '135790'
/** Badge numbers as 125 kHz readers type them; bob's in lower case, as some readers send hex. */
const ALICE_CARD = '0004417223'
const BOB_CARD = 'a1b2c3d4e5'

let mesh: TerminalMesh | undefined
let browser: TestBrowser | undefined

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
function siteNode (): SiteProcess { return m().site }
function terminalNode (): SiteProcess { return m().terminals[0].node }
function printerOf (): IppEvePrinter { return m().terminals[0].printer }
const login = async (username: string, pin: string): Promise<{ status: number, session?: PanelSession, body: Record<string, unknown> }> => await panelLogin(terminalNode(), username, pin)
const siteJob = async (id: string): Promise<SiteJob | undefined> => (await jobsAt(siteNode())).find((j) => j.id === id)
const usageAtSite = async (): Promise<Usage[]> => await usageAt(siteNode())
const printedFiles = async (): Promise<string[]> => await printedBy(printerOf())

/** Prints a PDF of `pages` pages (`color` of them in colour) to the site as `user`; returns the job's mesh id and the document's sha256. */
async function printAtSite (user: string, name: string, pages: number, color: number[]): Promise<{ id: string, sha256: string }> {
  const doc = await makeDocument(m().docs, name, pages, color)
  const ippId = await printFile(siteNode().ippUri, doc.path, { user, format: 'application/pdf', name })
  let id = ''
  await until(async () => {
    const job = (await jobsAt(siteNode())).find((j) => j.ippId === ippId && j.state === 'held')
    id = job?.id ?? ''
    return job !== undefined
  }, MESH_TIMEOUT_MS, `${name} held at the site`)
  return { id, sha256: doc.sha256 }
}

test.before(async () => {
  mesh = await startTerminalMesh({ alice: { pin: ALICE_PIN, card: ALICE_CARD }, bob: { pin: BOB_PIN, card: BOB_CARD.toUpperCase() } }, [['--idle-logout-seconds', String(IDLE_LOGOUT_S)]])
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['mesh', async () => await mesh?.stop()]
  ])
})

test('the panel says which site and printer it serves, and that it is online', async () => {
  const status = await (await fetch(`${terminalNode().httpUrl}/api/panel/status`)).json() as { site: string, online: boolean, printer: { uri: string, state: string }, idleLogoutMs: number }
  assert.is(status.site, 'site-a')
  assert.is(status.online, true)
  assert.is(status.printer.uri, printerOf().uri)
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

test('a card logs its holder in (any case of a hex number); an unknown card is refused; no card number is stored or logged anywhere', async () => {
  const post = async (card: string): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`${terminalNode().httpUrl}/api/login/card`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card }) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const alice = await post(ALICE_CARD)
  assert.is(alice.status, 200, JSON.stringify(alice.body))
  assert.is(alice.body.user, 'alice')
  assert.is((await post(BOB_CARD)).body.user, 'bob', 'the reader\'s lower-case hex matches the imported upper case')
  const unknown = await post('0004417224')
  assert.is(unknown.status, 401)
  assert.match(String(unknown.body.error), /unknown card/)
  // neither the replicated documents (database, at central, site and terminal) nor any log holds a card number
  for (const node of [m().central, siteNode(), terminalNode()]) {
    for (const card of [ALICE_CARD, BOB_CARD.toUpperCase(), BOB_CARD]) {
      assert.not.ok(await containsBytes(node.dataDir, card), `${card} found in ${node.dataDir}`)
      assert.not.ok(node.logs().some((l) => l.includes(card)), `${card} in a log`)
    }
  }
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

test('Chromium at 800×480: keypad login, print one, print all, delete, log out, logout after the idle time, card login by typed keystrokes + Enter', async () => {
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

  // a card reader types the number and Enter, fast, whatever has the focus
  await page.getByLabel('User name').click()
  await page.keyboard.type(ALICE_CARD, { delay: 5 })
  await page.keyboard.press('Enter')
  await page.getByText('Hello, alice').waitFor()
  assert.is(await page.getByLabel('User name').inputValue(), '', 'the card number did not stay in the field')
  await browser.screenshot('panel-card-login')
  // the next card logs the first user out and its holder in
  await page.keyboard.type(BOB_CARD, { delay: 5 })
  await page.keyboard.press('Enter')
  await page.getByText('Hello, bob').waitFor()
  assert.is(await page.evaluate(async () => ((await (await fetch('/api/session')).json()) as { user: string }).user), 'bob')
  // a person typing a user name slowly is not taken for a card
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByLabel('User name').click()
  await page.keyboard.type('alice', { delay: 120 })
  await page.keyboard.press('Tab')
  assert.is(await page.getByLabel('User name').inputValue(), 'alice')
  assert.equal(browser.pageErrors, [])
})

test.run()
