// PIN-only login with real processes on loopback: central (users imported with the CLI, their
// PINs indexed by the import), site-a, and a terminal of site-a started with
// `--pin-only-login`, fronting its own ippeveprinter. The terminal says so in its enrolment
// document; once central holds it, central's admin API and CLI refuse a PIN another user
// holds, and so does the panel's PIN change, without naming the holder. Chromium at 800×480:
// the panel shows only the keypad, alice types her PIN and Enter and sees the job she printed
// to the site, and changes her PIN there. Wrong PINs typed alone lock the address out (429),
// the right one included, also after the terminal restarts.
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startTerminal, type SiteProcess } from '../simulations/node-process.ts'
import { readLoginFailures } from '../node/login-state.ts'
import { defaultStoreKeyFile, readStoreKey } from '../node/store-key.ts'
import { until } from '../simulations/wait.ts'
import { printFile } from './helpers/ipptool.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, makeDocument, MESH_TIMEOUT_MS, type TerminalMesh } from './helpers/terminal-mesh.ts'

/** Longest wait for the panel to show something (it polls every 2 s). */
const UI_TIMEOUT_MS = 20_000
/** Longest a `printmesh users` run may take (tsx start on a loaded machine). */
const CLI_TIMEOUT_MS = 60_000
/** Wrong logins one address may make per window before the right one is refused too (ui/rate-limit.ts MAX_FAILURES_PER_PAIR). */
const PAIR_FAILURES = 5
const ALICE_PIN = '246801'
const BOB_PIN = '135702'
/** The PIN alice changes to at the panel. */
const NEW_ALICE_PIN = '975310'
const CLI = new URL('../node/cli.ts', import.meta.url).pathname

let mesh: TerminalMesh | undefined
let browser: TestBrowser | undefined
/** The terminal started again on its data folder (the lockout test). */
let restarted: SiteProcess | undefined
function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const terminal = (): SiteProcess => m().terminals[0].node
const pinOnly = async (pin: string): ReturnType<typeof panelLogin> => await panelLogin(terminal(), '#pin', pin)

test.before(async () => {
  mesh = await startTerminalMesh({ alice: ALICE_PIN, bob: BOB_PIN }, [['--pin-only-login']])
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['restarted terminal', async () => await restarted?.stop()],
    ['mesh', async () => await mesh?.stop()]
  ])
})

test('the terminal offers PIN-only login, and central learns it: a PIN another user holds is refused at the admin API and the CLI, not naming them', async () => {
  const status = await (await fetch(`${terminal().httpUrl}/api/panel/status`)).json() as { pinOnlyLogin: boolean }
  assert.is(status.pinOnlyLogin, true)
  // the terminal's statement (its enrolment document) reaches central
  await until(async () => {
    const at = await admin<{ documents: Array<{ doc: string, peers: Record<string, string>, changes: number }> }>(m().central, '/api/mesh')
    return at.documents.some((d) => d.doc.startsWith('v1/enrol/') && d.changes > 0 && Object.values(d.peers).includes('in-sync'))
  }, MESH_TIMEOUT_MS, 'the terminal\'s enrolment document at central')
  const res = await fetch(`${m().central.httpUrl}/api/users/bob/pin`, { method: 'POST', headers: { authorization: `Bearer ${m().central.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ pin: ALICE_PIN }) })
  const body = await res.json() as { error: string }
  assert.is(res.status, 409)
  assert.match(body.error, /already another user's/)
  assert.not.match(body.error, /alice/)
  const added = await fetch(`${m().central.httpUrl}/api/users`, { method: 'POST', headers: { authorization: `Bearer ${m().central.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', fullName: 'Carol', pin: BOB_PIN }) })
  assert.is(added.status, 409, 'a new user with bob\'s PIN')
  // the CLI, its PIN on standard input
  const tokenFile = join(m().docs, 'central-token')
  await writeFile(tokenFile, `${m().central.adminToken}\n`, { mode: 0o600 })
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'users', 'set-pin', 'bob', '--url', m().central.httpUrl, '--admin-token-file', tokenFile], { stdio: ['pipe', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  child.stdout.resume()
  child.stdin.end(`${ALICE_PIN}\n`)
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`printmesh users set-pin did not end within ${CLI_TIMEOUT_MS} ms`)) }, CLI_TIMEOUT_MS)
    child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
  })
  assert.is(code, 1, 'printmesh users set-pin fails')
  assert.match(err, /already another user's/)
  assert.not.match(err, /alice/)
  assert.is((await pinOnly(BOB_PIN)).body.user, 'bob', 'bob\'s PIN unchanged')
})

test('a PIN alone logs its user in at the terminal; the panel\'s PIN change refuses another user\'s PIN', async () => {
  const bob = await pinOnly(BOB_PIN)
  assert.is(bob.status, 200)
  assert.is(bob.body.user, 'bob')
  const session = bob.session
  if (session === undefined) throw new Error('no session')
  const change = await fetch(`${terminal().httpUrl}/api/enrol/pin`, {
    method: 'POST', headers: { cookie: session.cookie, 'x-csrf-token': session.csrf, 'content-type': 'application/json' }, body: JSON.stringify({ oldPin: BOB_PIN, newPin: ALICE_PIN, repeat: ALICE_PIN })
  })
  const refused = await change.json() as { error: string }
  assert.is(change.status, 409)
  assert.match(refused.error, /already another user's/)
  assert.not.match(refused.error, /alice/)
  assert.is((await panel(session, 'POST', '/api/logout')).status, 200)
  assert.is((await panelLogin(terminal(), 'alice', ALICE_PIN)).status, 200, 'username + PIN still works')
})

test('Chromium at 800×480: the panel shows only the keypad; alice types her PIN and Enter and sees her held job; her PIN change refuses bob\'s PIN and takes a free one', async () => {
  const doc = await makeDocument(m().docs, 'pin-only.pdf', 2, [])
  const ippId = await printFile(m().site.ippUri, doc.path, { user: 'alice', format: 'application/pdf', name: 'pin-only.pdf' })
  let jobId = ''
  await until(async () => {
    jobId = (await jobsAt(m().site)).find((j) => j.ippId === ippId && j.state === 'held')?.id ?? ''
    return jobId !== ''
  }, MESH_TIMEOUT_MS, 'the job held at the site')
  browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = browser.page
  await page.setViewportSize({ width: 800, height: 480 })
  await page.goto(`${terminal().httpUrl}/panel`)
  await page.getByText('Online').waitFor()
  await page.getByText('enter your PIN.').waitFor()
  assert.is(await page.getByLabel('User name').isVisible(), false, 'no user name field')
  assert.is(await page.getByRole('button', { name: 'Log in' }).isVisible(), false, 'the keypad\'s Enter logs in')
  const noScroll = await page.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth)
  assert.ok(noScroll, 'the keypad fits 800×480 without scrolling')
  const small = await page.locator('button:visible').evaluateAll((els) => els.filter((e) => { const r = e.getBoundingClientRect(); return r.height < 48 || r.width < 48 }).map((e) => e.textContent))
  assert.equal(small, [], 'every button is a large touch target')
  await browser.screenshot('panel-pin-only-login')
  // a wrong PIN first: refused, the field cleared
  for (const digit of '999999') await page.locator(`#login-keypad button[data-key="${digit}"]`).click()
  await page.locator('#login-keypad button[data-key="enter"]').click()
  await page.getByText('Wrong PIN.').waitFor()
  assert.is(await page.getByLabel('PIN', { exact: true }).inputValue(), '')
  for (const digit of ALICE_PIN) await page.locator(`#login-keypad button[data-key="${digit}"]`).click()
  assert.is(await page.getByLabel('PIN', { exact: true }).inputValue(), ALICE_PIN, 'the keypad typed the PIN')
  await page.locator('#login-keypad button[data-key="enter"]').click()
  await page.getByText('Hello, alice').waitFor()
  const offScreen = await page.locator('button:visible').evaluateAll((els) => els.filter((e) => { const r = e.getBoundingClientRect(); return r.right > window.innerWidth || r.bottom > window.innerHeight }).map((e) => e.textContent))
  assert.equal(offScreen, [], 'every action is on the 800×480 screen')
  const row = page.locator(`li[data-job="${jobId}"]`)
  await row.waitFor()
  await row.getByText('pin-only.pdf').waitFor()
  await row.locator('.job-state', { hasText: 'Waiting' }).waitFor()
  await browser.screenshot('panel-pin-only-jobs')
  // Change PIN: bob's PIN is refused (not naming him), the screen still fits; then a free one is set
  await page.getByRole('button', { name: 'Change PIN' }).click()
  const typeInto = async (field: string, pin: string): Promise<void> => {
    await page.getByLabel(field, { exact: true }).click()
    for (const digit of pin) await page.locator(`#pin-keypad button[data-key="${digit}"]`).click()
  }
  await typeInto('Current PIN', ALICE_PIN)
  await typeInto('New PIN', BOB_PIN)
  await typeInto('New PIN again', BOB_PIN)
  const fits = await page.evaluate(() => document.documentElement.scrollHeight <= window.innerHeight && document.documentElement.scrollWidth <= window.innerWidth)
  assert.ok(fits, 'the PIN change fits 800×480 without scrolling')
  const smallHere = await page.locator('button:visible').evaluateAll((els) => els.filter((e) => { const r = e.getBoundingClientRect(); return r.height < 48 || r.width < 48 }).map((e) => e.textContent))
  assert.equal(smallHere, [], 'every button of the PIN change is a large touch target')
  await page.getByRole('button', { name: 'Save PIN' }).click()
  await page.getByText('already another user\'s').waitFor()
  assert.not.match(await page.locator('#pin-error').innerText(), /bob/)
  const outside = await page.locator('button:visible, input:visible, #pin-error').evaluateAll((els) => els.filter((e) => { const r = e.getBoundingClientRect(); return r.right > window.innerWidth || r.bottom > window.innerHeight }).map((e) => e.id !== '' ? e.id : e.textContent))
  assert.equal(outside, [], 'the PIN change and its refusal fit the 800×480 screen')
  await browser.screenshot('panel-pin-only-pin-taken')
  await typeInto('New PIN', NEW_ALICE_PIN)
  await typeInto('New PIN again', NEW_ALICE_PIN)
  await page.getByRole('button', { name: 'Save PIN' }).click()
  await page.getByText('Your PIN is changed').waitFor()
  await row.waitFor()
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('heading', { name: 'Log in to print' }).waitFor()
  assert.is((await pinOnly(ALICE_PIN)).status, 401, 'alice\'s old PIN no longer logs her in')
  for (const digit of NEW_ALICE_PIN) await page.locator(`#login-keypad button[data-key="${digit}"]`).click()
  await page.locator('#login-keypad button[data-key="enter"]').click()
  await page.getByText('Hello, alice').waitFor()
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('heading', { name: 'Log in to print' }).waitFor()
  // the keyboard's Enter too (a USB keypad at the device): type the PIN into the focused field
  await page.getByLabel('PIN', { exact: true }).click()
  await page.keyboard.type(BOB_PIN, { delay: 120 }) // a person's pace, not a card reader's burst
  await page.keyboard.press('Enter')
  await page.getByText('Hello, bob').waitFor()
  assert.not.ok(await page.locator(`li[data-job="${jobId}"]`).isVisible(), 'bob does not see alice\'s job')
  await page.getByRole('button', { name: 'Log out' }).click()
  assert.equal(browser.pageErrors, [])
  const again = (await pinOnly(NEW_ALICE_PIN)).session
  assert.ok(again !== undefined && (await panelJobs(again)).some((j) => j.id === jobId && j.state === 'held'), 'the job still held for alice')
})

test('guessing PINs is locked out: after 5 wrong PINs typed alone, the address is refused with the time to wait, the right PIN too, also after a restart', async () => {
  for (let i = 0; i < PAIR_FAILURES; i++) assert.is((await pinOnly(String(100000 + i))).status, 401, `wrong PIN ${i + 1}`)
  const locked = await pinOnly(NEW_ALICE_PIN)
  assert.is(locked.status, 429, 'the right PIN from the locked-out address')
  assert.match(String(locked.body.error), /try again in \d+ seconds/)
  const metrics = await (await fetch(`${terminal().httpUrl}/metrics`)).text()
  assert.match(metrics, /printmesh_login_refused_total\{limit="pair"\} [1-9]/)
  // the lockout survives a restart (the guard's failures are kept in the data folder)
  // (sealed with the terminal's store key: node/login-state.ts)
  await until(async () => ((await readLoginFailures(terminal().dataDir, await readStoreKey(defaultStoreKeyFile(terminal().dataDir)))) ?? '').includes('pair:#pin|'), UI_TIMEOUT_MS, 'the lockout stored')
  const { dataDir } = terminal()
  await terminal().kill('SIGTERM')
  restarted = await startTerminal({ dataDir, args: ['--printer', m().terminals[0].printer.uri, '--pin-only-login'] })
  const after = await panelLogin(restarted, '#pin', NEW_ALICE_PIN)
  assert.is(after.status, 429, 'still locked out after the restart')
})

test.run()
