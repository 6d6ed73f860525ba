// The console's users page does what /admin does (issue 16): delete a user, import users from a
// CSV file, settle card conflicts. Real processes and a real Chromium: central, site-a and a
// terminal of site-a joined over libp2p on loopback (no printer: the terminal only registers a
// card). A mesh admin account (ada) deletes a user on central's console after a confirmation
// (cancelled once): the list and central's API no longer have it; the same delete on site-a's
// console (a site of a mesh) is refused and the API's reason shown, the user staying. She imports
// users from a CSV file: a file with a line in error previews (a dry run: nothing written) with
// that line's error and no import possible (the API imports all or nothing); the corrected file of
// three users previews, then imports (progress shown while the API works each time); the users
// exist with their fields. A card conflict is made the cheapest real way found, without two terminals or a
// stopped central: the terminal and the others block each other (PUT /api/mesh/blocked), central
// gives the card to bob meanwhile, alice registers it at the cut-off terminal, the blocks are
// lifted and central's merge flags it (both claims: bob's from the directory, alice's from the
// terminal). A report viewer (rita) sees the conflict and users without a delete, import or
// assign control; ada gives the card to alice (not the suggested bob) and the API has it
// resolved to alice, by ada. The users page is screenshotted at 1280 and 390 px (kept with
// PRINTMESH_SCREENSHOT_DIR) in each state and does not overflow a phone's width.
// Runs in about 10-15 s (`npm test -- console-users-browser` on a 2-core machine, no other test running).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startSite, startCentral, startTerminal, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { visitConsolePages, explainConsoleFailure } from './helpers/console.ts'
import { panelLogin } from './helpers/terminal-mesh.ts'
import type { Page, Request } from 'playwright-core'

/** Replication waits at most this long: anti-entropy runs every second in tests. */
const MESH_TIMEOUT_MS = 30_000
/** Longest wait for something on a page: a change crosses the mesh and an event first. */
const UI_TIMEOUT_MS = 30_000
/** Passwords of the two admin accounts (12 characters or more). */
const ADA_PASSWORD = 'ada-lovelace-1815'
const RITA_PASSWORD = 'rita-reports-2024'
const PINS = { alice: '246810', bob: '135790', yan: '112358', zoe: '314159' }
/** The card both alice and bob end up claiming, as a keyboard-wedge reader types it. */
const DISPUTED_CARD = '0099887766'
/** Three users with every optional column (the fields read by name from the header). */
const IMPORT_CSV = [
  'username,full name,PIN,email,groups,home site',
  'carl,Carl Carlsson,480151,carl@example.org,finance;print-room,site-a',
  'dana,Dana Scully,480152,dana@example.org,research,site-a',
  'erik,Erik Satie,480153,,music,'
].join('\n') + '\n'
/** The same with a line (5) the import refuses: a new user without a PIN (the import is all or nothing). */
const IMPORT_CSV_WITH_ERROR = `${IMPORT_CSV}fay,Fay Wray\n`
/** Buttons a report viewer may see: searching and paging change nothing. */
const READ_BUTTONS = new Set(['Search', 'Previous', 'Next'])

interface UserView { username: string, fullName: string, email?: string, groups: string[], homeSite?: string, disabled: boolean, cards: unknown[] }
interface Conflict { id: string, claims: Array<{ user: string, at: number, by: string }>, suggested: string, resolvedTo?: string, resolvedBy?: string }

let central: SiteProcess | undefined
let siteA: SiteProcess | undefined
let terminal: SiteProcess | undefined
let browser: TestBrowser | undefined
/** The page's requests not answered yet (told when a test fails: a hung request from a slow one). */
const unanswered = new Map<Request, string>()
/** The card conflict, made while the first tests run. */
let conflictMade: Promise<Conflict> | undefined

const c = (): SiteProcess => central as SiteProcess
const a = (): SiteProcess => siteA as SiteProcess
const t = (): SiteProcess => terminal as SiteProcess
const br = (): TestBrowser => browser as TestBrowser

const conflicts = async (): Promise<Conflict[]> => (await admin<{ conflicts: Conflict[] }>(c(), '/api/enrol/conflicts')).conflicts
const userAt = async (node: SiteProcess, username: string): Promise<{ status: number, user?: UserView }> => {
  const res = await fetch(`${node.httpUrl}/api/users/${username}`, { headers: { authorization: `Bearer ${node.adminToken}` } })
  const body = await res.json() as { user?: UserView }
  return { status: res.status, ...(body.user !== undefined ? { user: body.user } : {}) }
}
type DocStates = Array<{ doc: string, peers: Record<string, string> }>
const meshOf = async (node: SiteProcess): Promise<{ peers: Array<{ peer: string, connected: boolean }>, documents: DocStates }> => await admin(node, '/api/mesh')
const block = async (node: SiteProcess, peers: string[]): Promise<void> => { await admin(node, '/api/mesh/blocked', { method: 'PUT', body: { peers } }) }

test.before(async () => {
  central = await startCentral()
  const users = Object.entries(PINS).map(([name, pin]) => `${name},${name[0].toUpperCase()}${name.slice(1)},${pin}\n`).join('')
  const res = await fetch(`${c().httpUrl}/api/users/import`, { method: 'POST', headers: { authorization: `Bearer ${c().adminToken}`, 'content-type': 'text/csv' }, body: users })
  assert.is(res.status, 200, await res.text())
  await admin(c(), '/api/admin-accounts', { method: 'POST', body: { username: 'ada', role: 'mesh-admin', password: ADA_PASSWORD } })
  await admin(c(), '/api/admin-accounts', { method: 'POST', body: { username: 'rita', role: 'report-viewer', password: RITA_PASSWORD } })
  const joinString = async (role: string): Promise<string> =>
    (await admin<{ joinString: string }>(c(), '/api/mesh/tokens', { method: 'POST', body: { role, site: 'site-a' } })).joinString
  ;[siteA, terminal, browser] = await Promise.all([
    joinString('site').then(async (join) => await startSite({ args: ['--site', 'site-a', '--join', join] })),
    joinString('terminal').then(async (join) => await startTerminal({ args: ['--join', join, '--name', 'mfp-lobby'] })),
    startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  ])
  const page = br().page
  page.on('request', (r) => unanswered.set(r, `${r.method()} ${r.url()} (since ${new Date().toISOString()})`))
  page.on('requestfinished', (r) => unanswered.delete(r))
  page.on('requestfailed', (r) => unanswered.delete(r))
  conflictMade = makeConflict()
  conflictMade.catch(() => {}) // awaited (and failing) in the tests that need it
})

test.after(async () => {
  await conflictMade?.catch(() => {}) // its calls end before the processes do
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['terminal', async () => await terminal?.stop()],
    ['site-a', async () => await siteA?.stop()],
    ['central', async () => await central?.stop()]
  ])
})

/**
 * A card conflict, made for real: the terminal (with the directory) is cut off from site-a and
 * central; central gives DISPUTED_CARD to bob; alice, logged in at the terminal's panel,
 * registers the same card (the terminal cannot tell it is bob's); the blocks are lifted and
 * central's merge of the terminal's enrolment flags it. Resolves with central's conflict.
 */
async function makeConflict (): Promise<Conflict> {
  await until(async () => (await meshOf(c())).documents.find((d) => d.doc === 'v1/directory')?.peers[t().peer] === 'in-sync', MESH_TIMEOUT_MS, 'the directory at the terminal')
  await Promise.all([block(t(), [c().peer, a().peer]), block(c(), [t().peer]), block(a(), [t().peer])])
  await until(async () => (await meshOf(t())).peers.every((p) => !p.connected), MESH_TIMEOUT_MS, 'the terminal cut off')
  await admin(c(), '/api/users/bob/cards', { method: 'POST', body: { card: DISPUTED_CARD } })
  const { session, status, body } = await panelLogin(t(), 'alice', PINS.alice)
  if (session === undefined) throw new Error(`alice could not log in at the terminal: ${status} ${JSON.stringify(body)}`)
  const enrolled = await fetch(`${t().httpUrl}/api/enrol/card`, { method: 'POST', headers: { cookie: session.cookie, 'x-csrf-token': session.csrf, 'content-type': 'application/json' }, body: JSON.stringify({ card: DISPUTED_CARD }) })
  assert.is(enrolled.status, 200, `the cut-off terminal takes alice's card: ${await enrolled.text()}`)
  await Promise.all([block(t(), []), block(c(), []), block(a(), [])])
  await until(async () => (await conflicts()).some((x) => x.resolvedTo === undefined), MESH_TIMEOUT_MS, 'the conflict flagged at central')
  const [conflict] = (await conflicts()).filter((x) => x.resolvedTo === undefined)
  return conflict
}

/** A test of the page: on a failure, what the page showed and its requests still unanswered are added to the error (and a screenshot taken). */
function browserTest (name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn()
    } catch (err) {
      await explainConsoleFailure(br(), name, err, () => `the page's requests unanswered at ${new Date().toISOString()}: ${[...unanswered.values()].join('; ')}`)
    }
  })
}

/** Opens `node`'s console at #/users signed in as `username` (signing out whoever was; kept when it is them already). */
async function signIn (node: SiteProcess, username: string, password: string): Promise<Page> {
  const page = br().page
  if (page.url().startsWith(`${node.httpUrl}/console`) && await page.locator('#whoami:visible #user-name', { hasText: new RegExp(`^${username}$`) }).count() === 1) {
    await page.evaluate(() => { location.hash = '#/users' })
    await page.locator('#page[data-route="users"]').waitFor()
    return page
  }
  await page.goto(`${node.httpUrl}/console#/users`)
  const signedIn = page.locator('#whoami:visible')
  await page.locator('#whoami:visible, #login-view:visible').first().waitFor()
  if (await signedIn.isVisible()) {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.locator('#login-view:visible').waitFor()
  }
  await page.getByLabel('Your account').fill(username)
  await page.getByLabel('Your password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#whoami:visible, #login-error:visible').first().waitFor()
  assert.ok(await signedIn.isVisible(), `${username} not signed in: ${await page.locator('#login-error').textContent() ?? ''}`)
  await page.locator('#user-name', { hasText: username }).waitFor()
  await page.locator('#page[data-route="users"]').waitFor()
  return page
}

browserTest('ada deletes a user on central\'s console after a confirmation: the list and the API no longer have it; on site-a\'s console the API\'s refusal is shown and the user stays', async () => {
  // site-a's directory is central's: a delete there is refused, with the reason
  await until(async () => (await userAt(a(), 'yan')).status === 200 && (await admin<{ accounts: Array<{ username: string }> }>(a(), '/api/admin-accounts')).accounts.some((x) => x.username === 'ada'), MESH_TIMEOUT_MS, 'the directory and ada at site-a')
  let page = await signIn(a(), 'ada', ADA_PASSWORD)
  const yan = page.locator('tr[data-user="yan"]')
  await yan.getByRole('button', { name: 'Delete' }).click()
  await page.locator('form[data-form="delete-user-yan"]').getByRole('button', { name: 'Delete yan' }).click()
  await page.locator('#users-message.error', { hasText: 'users are managed on central' }).waitFor()
  await page.locator('form[data-form="delete-user-yan"]').waitFor() // the confirmation stays open with the refusal
  assert.is((await userAt(a(), 'yan')).status, 200, 'yan is still at site-a')
  assert.ok(await yan.isVisible(), 'and still listed')

  page = await signIn(c(), 'ada', ADA_PASSWORD)
  const zoe = page.locator('tr[data-user="zoe"]')
  const confirmation = page.locator('form[data-form="delete-user-zoe"]')
  // cancelled: nothing deleted
  await zoe.getByRole('button', { name: 'Delete' }).click()
  await confirmation.locator('p', { hasText: 'Delete zoe (Zoe)?' }).waitFor()
  await confirmation.getByRole('button', { name: 'Cancel' }).click()
  await confirmation.waitFor({ state: 'detached' })
  assert.is((await userAt(c(), 'zoe')).status, 200, 'a cancelled delete deletes nothing')
  // confirmed: gone from the list and the directory
  await zoe.getByRole('button', { name: 'Delete' }).click()
  await visitConsolePages(br(), ['users'], 'delete-confirmation')
  await confirmation.getByRole('button', { name: 'Delete zoe' }).click()
  await page.locator('#users-message', { hasText: 'Deleted zoe.' }).waitFor()
  await zoe.waitFor({ state: 'detached' })
  assert.is((await userAt(c(), 'zoe')).status, 404, 'central\'s API no longer has zoe')
  await page.locator('tr[data-user="yan"]').waitFor()
  assert.equal(br().pageErrors, [])
})

browserTest('ada imports a CSV file of three users: a preview first (nothing written; a line in error shown, and nothing importable until corrected; progress while it runs), then the import; the users exist with their fields', async () => {
  const page = await signIn(c(), 'ada', ADA_PASSWORD)
  // the progress line is there while the API works: recorded as it appears, however briefly
  await page.evaluate(() => {
    const seen: string[] = []
    ;(window as unknown as { progressSeen: string[] }).progressSeen = seen
    new MutationObserver(() => {
      const text = document.getElementById('import-progress')?.textContent
      if (text !== undefined && seen[seen.length - 1] !== text) seen.push(text)
    }).observe(document.body, { childList: true, subtree: true })
  })
  const file = page.locator('#import-file')
  const status = page.locator('#import-status')
  const report = page.locator('#import-report li')
  const importButton = page.locator('#import-panel button.primary')
  // a file with a line in error: the preview names the line, and nothing can be imported
  await page.getByLabel('CSV file', { exact: true }).setInputFiles({ name: 'staff.csv', mimeType: 'text/csv', buffer: Buffer.from(IMPORT_CSV_WITH_ERROR) })
  await status.filter({ hasText: 'Preview of staff.csv, nothing written yet: would add 3, change 0, leave 0 unchanged; 1 line in error: nothing can be imported until they are corrected' }).waitFor()
  assert.equal(await report.allTextContents(), ['Would add: carl, dana, erik', 'Line 5: fay is new and needs a PIN'])
  assert.equal([await importButton.textContent(), await importButton.isDisabled()], ['Correct the lines in error first', true])
  await visitConsolePages(br(), ['users'], 'import-error')
  // the corrected file: its preview, then the import
  await file.setInputFiles({ name: 'staff-corrected.csv', mimeType: 'text/csv', buffer: Buffer.from(IMPORT_CSV) })
  await status.filter({ hasText: 'Preview of staff-corrected.csv, nothing written yet: would add 3, change 0, leave 0 unchanged.' }).waitFor()
  assert.equal(await report.allTextContents(), ['Would add: carl, dana, erik'])
  for (const name of ['carl', 'dana', 'erik']) assert.is((await userAt(c(), name)).status, 404, `the previews wrote nothing (${name})`)
  await visitConsolePages(br(), ['users'], 'import-preview')

  await page.getByRole('button', { name: 'Import 3 users' }).click()
  await status.filter({ hasText: 'Imported 3 users from staff-corrected.csv: 3 added, 0 changed, 0 unchanged.' }).waitFor()
  assert.equal(await report.allTextContents(), ['Added: carl, dana, erik'])
  assert.equal(await page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen),
    ['Checking staff.csv: nothing is written yet…', 'Checking staff-corrected.csv: nothing is written yet…', 'Importing staff-corrected.csv…'], 'progress shown while each ran')
  const fields = async (name: string): Promise<unknown[]> => {
    const { user } = await userAt(c(), name)
    return [user?.fullName, user?.email, user?.groups, user?.homeSite]
  }
  assert.equal(await fields('carl'), ['Carl Carlsson', 'carl@example.org', ['finance', 'print-room'], 'site-a'])
  assert.equal(await fields('dana'), ['Dana Scully', 'dana@example.org', ['research'], 'site-a'])
  assert.equal(await fields('erik'), ['Erik Satie', undefined, ['music'], undefined])
  assert.is((await userAt(c(), 'fay')).status, 404)
  // the list shows them, without a reload
  await page.locator('tr[data-user="dana"] td', { hasText: 'Dana Scully' }).waitFor()
  assert.equal((await page.locator('tr[data-user="carl"]').locator('th, td').allTextContents()).slice(0, 4), ['carl', 'Carl Carlssoncarl@example.org', 'site-a', 'finance, print-room'])
  await page.getByRole('button', { name: 'Done' }).click()
  await status.waitFor({ state: 'detached' })
  assert.equal(br().pageErrors, [])
})

browserTest('a report viewer sees the users and the card conflict, with no delete, import or assign control', async () => {
  const conflict = await conflictMade as Conflict
  const page = await signIn(c(), 'rita', RITA_PASSWORD)
  await page.locator('#user-role', { hasText: '(report viewer)' }).waitFor()
  await page.locator('tr[data-user="alice"]').waitFor()
  const item = page.locator(`li.conflict[data-conflict="${conflict.id}"]`)
  await item.locator('li[data-claim="alice"]').waitFor()
  const buttons = (await page.locator('#page button').allTextContents()).filter((text) => !READ_BUTTONS.has(text))
  assert.equal(buttons, [], 'no write buttons')
  assert.is(await page.locator('#page input[type=file]').count(), 0, 'no import')
  assert.is(await page.locator('#import-section, form[data-form="add-user"]').count(), 0)
  await visitConsolePages(br(), ['users'], 'report-viewer')
  assert.equal(br().pageErrors, [])
})

browserTest('ada settles the card conflict on central\'s console: both claims shown, the first suggested; given to alice, the API has it resolved to her', async () => {
  const conflict = await conflictMade as Conflict
  assert.equal(conflict.claims.map((k) => [k.user, k.by]), [['bob', 'directory'], ['alice', t().peer]], 'bob\'s card from the directory first, alice\'s registration second')
  assert.is(conflict.suggested, 'bob')
  const page = await signIn(c(), 'ada', ADA_PASSWORD)
  const item = page.locator(`#open-conflicts li.conflict[data-conflict="${conflict.id}"]`)
  await item.waitFor()
  assert.equal(await item.locator('li[data-claim]').allTextContents(), [
    'bob (first claim): held in the directory before (added by an admin or an import)',
    `alice: registered ${await page.evaluate((at) => new Date(at).toLocaleString(), conflict.claims[1].at)} at terminal of site-a ${t().peer.slice(0, 8)}…${t().peer.slice(-6)}`
  ])
  assert.equal(await item.getByRole('button').allTextContents(), ['Give to bob (suggested)', 'Give to alice'])
  await visitConsolePages(br(), ['users'], 'conflict')

  await item.getByRole('button', { name: 'Give to alice' }).click()
  await page.locator('#users-message', { hasText: 'The card is alice\'s now' }).waitFor()
  await item.waitFor({ state: 'detached' })
  await page.locator('#no-conflicts').waitFor()
  await page.locator('summary', { hasText: 'Decided (1)' }).click()
  await page.locator(`#decided-conflicts li[data-conflict="${conflict.id}"][data-resolved-to="alice"]`, { hasText: 'given to alice by ada' }).waitFor()
  const decided = (await conflicts()).find((x) => x.id === conflict.id)
  assert.equal([decided?.resolvedTo, decided?.resolvedBy], ['alice', 'ada'], 'central\'s API has it resolved to alice, by ada')
  assert.equal([(await userAt(c(), 'alice')).user?.cards.length, (await userAt(c(), 'bob')).user?.cards.length], [1, 0], 'the card is alice\'s')
  assert.equal(br().pageErrors, [])
})

test.run()
