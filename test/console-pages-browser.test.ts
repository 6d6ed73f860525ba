// The admin console's administration pages (issue 16 item 4) with real processes and a real
// Chromium: central, site-a and a client joined over libp2p on loopback. At central's console a
// mesh admin account (ada) signs in with its password, adds a user on #/users (central's
// directory has it, the list shows it, never a PIN), edits it, resets its PIN (site-a's login
// takes the new PIN and refuses the old one once the directory reached it), disables it;
// #/accounts lists the admin accounts; #/peers follows connections live, without polling or a
// reload: a client process joining shows as connected, then as not connected once stopped, then
// as revoked (central's /api/events sends a change event naming `peers` for the connection and
// the disconnection, which are no document change); #/audit shows ada's
// actions, and its filters (who, what, outcome, period) and pager narrow and page them. A report
// viewer (rita, with an authenticator) signs in on the reports page with username, password
// and TOTP code, and on the console sees the pages without a single write button; another (rex,
// no authenticator) signs in on site-a's reports page, refused first with a wrong password. Every
// console page is screenshotted at 1280 and 390 px wide (PRINTMESH_SCREENSHOT_DIR keeps them)
// and does not overflow a phone's width.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as OTPAuth from 'otpauth'
import { startSite, startCentral, startClient, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { visitConsolePages, explainConsoleFailure, openEventStream, WIDE, PHONE } from './helpers/console.ts'
import { PEERS_FEED } from '../ui/routes/events.ts'
import type { Page } from 'playwright-core'

/** Replication waits at most this long: anti-entropy runs every second in tests. */
const MESH_TIMEOUT_MS = 30_000
/** Longest wait for something on a page: a change crosses the mesh and an event first. */
const UI_TIMEOUT_MS = 30_000
const PAGES = ['dashboard', 'sites', 'printers', 'jobs', 'users', 'accounts', 'peers', 'audit'] as const
/** Passwords of the two admin accounts (12 characters or more). */
const ADA_PASSWORD = 'ada-lovelace-1815'
const RITA_PASSWORD = 'rita-reports-2024'
const REX_PASSWORD = 'rex-reads-reports-99'
/** Users imported beside bob, so that the users list and the audit log have more than a page. */
const MORE_USERS = 30
/** Admin changes made through the API, so that the audit log has more than its page of 50. */
const MORE_CHANGES = 55
/** A TOTP code's step: the sign-in uses the next step's code (accepted, one step either way), the current one confirmed the authenticator and is spent. */
const TOTP_STEP_MS = 30_000
/** Buttons a report viewer may see: searching, filtering and paging change nothing. */
const READ_BUTTONS = new Set(['Search', 'Filter', 'Previous', 'Next'])

let central: SiteProcess | undefined
let siteA: SiteProcess | undefined
/** A workstation's client, started while #/peers is shown and stopped there. */
let client: SiteProcess | undefined
let browser: TestBrowser | undefined
let ritaTotp: OTPAuth.TOTP | undefined

const c = (): SiteProcess => central as SiteProcess
const a = (): SiteProcess => siteA as SiteProcess
const br = (): TestBrowser => browser as TestBrowser

interface UserView { username: string, fullName: string, groups: string[], homeSite?: string, disabled: boolean, updatedAt: number }
interface PeerView { peer: string, role?: string, site?: string, connected: boolean }

/** A join string of central's for a new peer. */
const joinString = async (role: string, site: string): Promise<string> =>
  (await admin<{ joinString: string }>(c(), '/api/mesh/tokens', { method: 'POST', body: { role, site } })).joinString

test.before(async () => {
  central = await startCentral()
  ;[siteA, browser] = await Promise.all([
    joinString('site', 'site-a').then(async (join) => await startSite({ args: ['--site', 'site-a', '--join', join] })),
    startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  ])
  // the admin accounts: ada administers the mesh, rita only reads (with an authenticator)
  await admin(c(), '/api/admin-accounts', { method: 'POST', body: { username: 'ada', role: 'mesh-admin', password: ADA_PASSWORD } })
  await admin(c(), '/api/admin-accounts', { method: 'POST', body: { username: 'rita', role: 'report-viewer', password: RITA_PASSWORD } })
  await admin(c(), '/api/admin-accounts', { method: 'POST', body: { username: 'rex', role: 'report-viewer', password: REX_PASSWORD } })
  const { otpauthUri } = await admin<{ otpauthUri: string }>(c(), '/api/admin-accounts/rita/totp', { method: 'POST' })
  ritaTotp = OTPAuth.URI.parse(otpauthUri) as OTPAuth.TOTP
  await admin(c(), '/api/admin-accounts/rita/totp/confirm', { method: 'POST', body: { code: ritaTotp.generate() } })
  // more users than a page
  const csv = Array.from({ length: MORE_USERS }, (_, i) => `user${String(i).padStart(2, '0')},User ${i},${700000 + i}\n`).join('')
  const res = await fetch(`${c().httpUrl}/api/users/import`, { method: 'POST', headers: { authorization: `Bearer ${c().adminToken}`, 'content-type': 'text/csv' }, body: csv })
  assert.is(res.status, 200, await res.text())
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['client', async () => await client?.stop()],
    ['site-a', async () => await siteA?.stop()],
    ['central', async () => await central?.stop()]
  ])
})

/** A test of the page: on a failure, what the page showed is added to the error (and a screenshot taken), to tell a slow mesh from a wrong page. */
function browserTest (name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn()
    } catch (err) {
      await explainConsoleFailure(br(), name, err)
    }
  })
}

async function go (page: Page, route: string): Promise<void> {
  await page.evaluate((r) => { location.hash = `#/${r}` }, route)
  await page.locator(`#page[data-route="${route}"]`).waitFor()
}

/** Screenshots of every console page at both widths; at a phone's width nothing is wider than the screen. */
async function screenshots (tag: string): Promise<void> {
  await visitConsolePages(br(), PAGES, tag)
}

/** Submits the sign-in form (filled) and waits for its outcome: signed in, or the error it shows (failing with it). */
async function signedIn (page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#whoami:visible, #login-error:visible').first().waitFor()
  const error = await page.locator('#login-error').textContent()
  assert.ok(await page.locator('#whoami').isVisible(), `not signed in: ${error ?? ''}`)
}

/** A user's login at site-a's release page API (what the panel and the release page use): the HTTP status. */
async function siteLogin (username: string, pin: string): Promise<number> {
  const res = await fetch(`${a().httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  await res.body?.cancel()
  return res.status
}

browserTest('a mesh admin account signs in at central\'s console; #/users adds, finds, edits, resets the PIN of and disables a user', async () => {
  const page = br().page
  await page.goto(`${c().httpUrl}/console`)
  // accounts exist: the account's fields come first; a wrong password is refused in the page
  await page.getByLabel('Your account').fill('ada')
  await page.getByLabel('Your password').fill('not-adas-password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#login-error', { hasText: 'Wrong username, password or authenticator code.' }).waitFor()
  assert.is(await page.getByLabel('Your password').inputValue(), '', 'the password is not left in the form')
  await page.getByLabel('Your password').fill(ADA_PASSWORD)
  await signedIn(page)
  await page.locator('#user-name', { hasText: 'ada' }).waitFor()
  await page.locator('#user-role', { hasText: '(mesh admin)' }).waitFor()
  await page.locator('#live.on').waitFor()

  await page.getByRole('link', { name: 'Users' }).click()
  await page.locator('#page[data-route="users"]').waitFor()
  // more than a page: 25 shown, the next page has the rest
  await page.locator('#users-range', { hasText: `1–25 of ${MORE_USERS}` }).waitFor()
  await page.getByRole('button', { name: 'Next' }).click()
  await page.locator('#users-range', { hasText: `26–${MORE_USERS} of ${MORE_USERS}` }).waitFor()
  await page.getByRole('button', { name: 'Previous' }).click()
  await page.locator('#users-range', { hasText: `1–25 of ${MORE_USERS}` }).waitFor()

  // add bob
  const addForm = page.locator('form[data-form="add-user"]')
  await addForm.getByLabel('Username').fill('bob')
  await addForm.getByLabel('Full name').fill('Bob Builder')
  await addForm.getByLabel('PIN (4 to 12 digits)').fill('135790')
  await addForm.getByLabel('Email').fill('bob@example.org')
  await addForm.getByLabel('Groups (a; b)').fill('finance; print-room')
  await addForm.getByLabel('Home site').fill('site-a')
  await addForm.getByRole('button', { name: 'Add user' }).click()
  await page.locator('#users-message', { hasText: 'Added bob.' }).waitFor()
  const stored = (await admin<{ user: UserView }>(c(), '/api/users/bob')).user
  assert.equal([stored.fullName, stored.groups, stored.homeSite, stored.disabled], ['Bob Builder', ['finance', 'print-room'], 'site-a', false], 'central\'s directory has bob as added')
  // the list shows him (found by the search), with his card state, and never a PIN
  await page.getByLabel('Search').fill('bob')
  await page.getByRole('button', { name: 'Search' }).click()
  const bob = page.locator('tr[data-user="bob"]')
  await page.locator('#users-range', { hasText: '1–1 of 1' }).waitFor()
  assert.equal(await bob.locator('th, td').allTextContents().then((cells) => cells.slice(0, 6)), ['bob', 'Bob Builderbob@example.org', 'site-a', 'finance, print-room', 'active', 'none'])
  assert.not.ok((await page.content()).includes('135790'), 'no PIN on the page')
  // a taken username is refused, the reason shown in the page
  await addForm.getByLabel('Username').fill('bob')
  await addForm.getByLabel('Full name').fill('Another Bob')
  await addForm.getByLabel('PIN (4 to 12 digits)').fill('975310')
  await addForm.getByRole('button', { name: 'Add user' }).click()
  await page.locator('#users-message.error', { hasText: 'bob' }).waitFor()

  // edit his full name
  await bob.getByRole('button', { name: 'Edit' }).click()
  await page.locator('form[data-form="edit-user-bob"]').getByLabel('Full name').fill('Bob the Builder')
  await page.locator('form[data-form="edit-user-bob"]').getByRole('button', { name: 'Save' }).click()
  await page.locator('#users-message', { hasText: 'Saved bob.' }).waitFor()
  await bob.locator('td', { hasText: 'Bob the Builder' }).waitFor()
  assert.is((await admin<{ user: UserView }>(c(), '/api/users/bob')).user.fullName, 'Bob the Builder')

  // reset his PIN: once site-a has the new one, its login takes it and refuses the old
  await until(async () => (await fetch(`${a().httpUrl}/api/users/bob`, { headers: { authorization: `Bearer ${a().adminToken}` } })).status === 200, MESH_TIMEOUT_MS, 'bob at site-a')
  await bob.getByRole('button', { name: 'Reset PIN' }).click()
  await page.getByLabel('New PIN for bob').fill('246801')
  await page.getByRole('button', { name: 'Set PIN', exact: true }).click()
  await page.locator('#users-message', { hasText: 'New PIN set for bob.' }).waitFor()
  await page.locator('form[data-form="pin-bob"]').waitFor({ state: 'detached' }) // the PIN form closed
  const reset = (await admin<{ user: UserView }>(c(), '/api/users/bob')).user.updatedAt
  await until(async () => (await admin<{ user: UserView }>(a(), '/api/users/bob')).user.updatedAt >= reset, MESH_TIMEOUT_MS, 'the reset at site-a')
  assert.is(await siteLogin('bob', '246801'), 200, 'the new PIN logs bob in at site-a')
  assert.is(await siteLogin('bob', '135790'), 401, 'the old PIN is refused')

  // disable him
  await bob.getByRole('button', { name: 'Disable' }).click()
  await page.locator('#users-message', { hasText: 'bob is disabled' }).waitFor()
  await bob.locator('.state', { hasText: 'disabled' }).waitFor()
  assert.ok((await admin<{ user: UserView }>(c(), '/api/users/bob')).user.disabled, 'disabled in the directory')
  await bob.getByRole('button', { name: 'Enable' }).waitFor()
})

browserTest('#/accounts lists the admin accounts with their roles and authenticators', async () => {
  const page = br().page
  await go(page, 'accounts')
  const rita = page.locator('tr[data-account="rita"]')
  await rita.waitFor()
  assert.equal((await rita.locator('th, td').allTextContents()).slice(0, 5), ['rita', 'report viewer', '–', 'set up', 'enabled'])
  assert.equal((await page.locator('tr[data-account="ada"]').locator('th, td').allTextContents()).slice(0, 5), ['ada', 'mesh admin', '–', 'none', 'enabled'])
  await page.getByRole('button', { name: 'Add account' }).waitFor()
})

browserTest('#/peers follows connections live: a client joining shows as connected, stopped as not connected, then revoked; each connection change is an event', async () => {
  const page = br().page
  await go(page, 'peers')
  await page.locator('dd', { hasText: 'central' }).first().waitFor()
  const row = (peer: string): ReturnType<Page['locator']> => page.locator(`tr[data-peer="${peer}"]`)
  await page.locator(`tr[data-peer="${a().peer}"][data-connected="true"]`).waitFor()
  assert.equal((await row(a().peer).locator('td').allTextContents()).slice(0, 3), ['site', 'site-a', 'connected'])
  // the license: unlicensed here (an evaluation), with what is in use
  await page.locator('#license-state', { hasText: 'unlicensed' }).waitFor()
  await page.locator('tr[data-limit="sites"] td').first().filter({ hasText: '1' }).waitFor()
  await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true })
  const notReloaded = async (): Promise<boolean> => await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded === true)
  // what the console hears: central's event stream, as an admin
  const stream = await openEventStream(c())
  const peersEvents = (from: number): number => stream.changes().slice(from).filter((families) => families.includes(PEERS_FEED)).length
  try {
    // a second real peer process joins while the page is shown
    client = await startClient({ args: ['--join', await joinString('client', 'site-a'), '--user', 'alice', '--name', 'alice-pc'] })
    const joined = client.peer
    await page.locator(`tr[data-peer="${joined}"][data-connected="true"]`).waitFor()
    assert.equal((await row(joined).locator('td').allTextContents()).slice(0, 4), ['client', 'site-a', 'connected', 'valid'])
    await until(() => peersEvents(0) > 0, UI_TIMEOUT_MS, 'a change event naming peers for the client\'s connection')
    // what central's API says, row for row
    const { peers } = await admin<{ peers: PeerView[] }>(c(), '/api/mesh')
    assert.equal(await page.locator('tr[data-peer]').count(), peers.length)

    // stopped: no document changes, the connection event alone brings the page up to date
    const before = stream.changes().length
    await client.stop()
    client = undefined
    await row(joined).locator('td', { hasText: /^not connected, last seen / }).waitFor()
    assert.is(await row(joined).getAttribute('data-connected'), 'false')
    assert.is(await row(a().peer).getAttribute('data-connected'), 'true')
    await until(() => peersEvents(before) > 0, UI_TIMEOUT_MS, 'a change event naming peers for the client\'s disconnection')

    // revoked (by the token, as automation would): the license document's change shows it
    await admin(c(), `/api/mesh/peers/${joined}/revoke`, { method: 'POST', body: { reason: 'laptop stolen' } })
    await row(joined).locator('td', { hasText: /^revoked$/ }).waitFor()
    assert.ok(await notReloaded(), 'the page was not reloaded')
  } finally {
    await stream.close()
  }
})

browserTest('#/audit shows ada\'s actions; who, what, outcome and period narrow them; more than a page is paged', async () => {
  const page = br().page
  await go(page, 'audit')
  const rows = page.locator('tr[data-audit]')
  // ada's addition of bob, with her name
  const added = rows.filter({ hasText: 'POST /api/users' }).filter({ hasText: '/api/users' }).filter({ has: page.locator('td.audit-actor', { hasText: /^ada$/ }) })
  await added.first().waitFor()
  assert.ok((await added.first().textContent() ?? '').includes('central'), 'written at central')
  // the PIN reset, never the PIN
  await rows.filter({ hasText: '/api/users/bob/pin' }).first().waitFor()
  assert.not.ok((await page.content()).includes('246801'), 'no PIN in the audit view')

  // who: only ada's entries
  await page.getByLabel('Who', { exact: true }).fill('ada')
  await page.getByRole('button', { name: 'Filter' }).click()
  await until(async () => (await page.locator('td.audit-actor').allTextContents()).every((t) => t === 'ada' || t === 'ada (password)'), UI_TIMEOUT_MS, 'only ada\'s entries')
  const adas = await page.locator('td.audit-actor').allTextContents()
  assert.ok(adas.length >= 4, `ada's entries: ${adas.join(', ')}`)
  assert.ok(adas.includes('ada (password)'), 'her refused sign-in is there too')
  // outcome: only the refused attempt (the wrong password)
  await page.getByLabel('Outcome').selectOption('refused')
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.locator('#audit-range', { hasText: '1–1 of 1' }).waitFor()
  assert.is(await rows.first().getAttribute('data-outcome'), 'refused')
  assert.equal(await page.locator('td.audit-actor').allTextContents(), ['ada (password)'])
  // what: ada's PIN reset only
  await page.getByLabel('Outcome').selectOption('')
  await page.getByLabel('What', { exact: true }).fill('/pin')
  await page.getByRole('button', { name: 'Filter' }).click()
  // the refused attempt's page also read "1–1 of 1": wait for the PIN reset's row itself
  await rows.filter({ hasText: 'POST /api/users/:username/pin' }).first().waitFor()
  await page.locator('#audit-range', { hasText: '1–1 of 1' }).waitFor()
  assert.is(await rows.count(), 1, 'only the PIN reset')
  // period: nothing from tomorrow on, all of it today
  const day = (offset: number): string => { const d = new Date(Date.now() + offset * 86_400_000); return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}` }
  await page.getByLabel('What', { exact: true }).fill('')
  await page.getByLabel('From', { exact: true }).fill(day(1))
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.locator('#page p', { hasText: 'No entry matches.' }).waitFor()
  await page.getByLabel('From', { exact: true }).fill(day(0))
  await page.getByLabel('To', { exact: true }).fill(day(0))
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.locator('#audit-range', { hasText: `1–${adas.length} of ${adas.length}` }).waitFor()

  // more than a page: the admin token's changes, newest first, paged by 50
  await page.getByLabel('Who', { exact: true }).fill('')
  await page.getByLabel('From', { exact: true }).fill('')
  await page.getByLabel('To', { exact: true }).fill('')
  await page.getByRole('button', { name: 'Filter' }).click()
  for (let i = 0; i < MORE_CHANGES; i++) await admin(c(), `/api/users/user${String(i % MORE_USERS).padStart(2, '0')}`, { method: 'PATCH', body: { fullName: `User number ${i}` } })
  const { total } = await admin<{ total: number }>(c(), '/api/audit?limit=1')
  await page.locator('#audit-range', { hasText: `1–50 of ${total}` }).waitFor() // live: the changes arrived without a reload
  assert.ok((await rows.first().textContent() ?? '').includes(`/api/users/user${String((MORE_CHANGES - 1) % MORE_USERS).padStart(2, '0')}`), 'the newest first')
  await page.getByRole('button', { name: 'Next' }).click()
  await page.locator('#audit-range', { hasText: `51–${Math.min(100, total)} of ${total}` }).waitFor()
  assert.is(await rows.count(), Math.min(100, total) - 50)
  await page.getByRole('button', { name: 'Previous' }).click()
  await page.locator('#audit-range', { hasText: `1–50 of ${total}` }).waitFor()

  await screenshots('mesh-admin')
  assert.equal(br().pageErrors, [])
})

browserTest('a report viewer signs in on the reports page with username, password and TOTP code; on the console she sees every page and no write button', async () => {
  const page = br().page
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByLabel('Your account').waitFor()

  await page.goto(`${c().httpUrl}/reports`)
  await page.getByLabel('Your account').fill('rita')
  await page.getByLabel('Your password').fill(RITA_PASSWORD)
  // without her code she is refused
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#login-error', { hasText: 'Wrong username, password or authenticator code.' }).waitFor()
  await page.getByLabel('Your password').fill(RITA_PASSWORD)
  await page.getByLabel('Authenticator code (if set up)').fill((ritaTotp as OTPAuth.TOTP).generate({ timestamp: Date.now() + TOTP_STEP_MS }))
  await signedIn(page)
  await page.locator('#report-view').waitFor()
  await page.locator('#user-name', { hasText: 'rita' }).waitFor()
  await page.locator('#user-role', { hasText: '(report viewer)' }).waitFor()
  await page.locator('[data-total="Records"]').waitFor()
  assert.not.ok(await page.getByRole('button', { name: /^Save/ }).first().isVisible(), 'no price list to save')
  for (const size of [WIDE, PHONE]) {
    await page.setViewportSize(size)
    await br().screenshot(`reports-${size.width}-report-viewer`)
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(width <= size.width, `the reports page at ${size.width} px is ${width} px wide`)
  }
  await page.setViewportSize(WIDE)

  // the same session on the console: every page shown, nothing to change
  await page.goto(`${c().httpUrl}/console#/users`)
  await page.locator('#user-role', { hasText: '(report viewer)' }).waitFor()
  for (const name of PAGES) {
    await go(page, name)
    if (name === 'users') await page.locator('tr[data-user="bob"]').waitFor()
    if (name === 'accounts') await page.locator('tr[data-account="ada"]').waitFor()
    if (name === 'peers') await page.locator(`tr[data-peer="${a().peer}"]`).waitFor()
    if (name === 'audit') await page.locator('tr[data-audit]').first().waitFor()
    if (name === 'printers') await page.locator('tr[data-printer="site-a/virtual"]').waitFor()
    const buttons = (await page.locator('#page button').allTextContents()).filter((t) => !READ_BUTTONS.has(t))
    assert.equal(buttons, [], `no write buttons on ${name}`)
    assert.is(await page.locator('#page summary', { hasText: 'settings' }).count(), 0, `no settings forms on ${name}`)
  }
  assert.equal(br().pageErrors, [])
})

browserTest('a report viewer without an authenticator signs in on site-a\'s reports page and sees its report; a wrong password is refused with a clear error', async () => {
  const page = br().page
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByLabel('Your account').waitFor()
  // rex's account, made at central, has reached site-a
  await until(async () => (await admin<{ accounts: Array<{ username: string }> }>(a(), '/api/admin-accounts')).accounts.some((x) => x.username === 'rex'), MESH_TIMEOUT_MS, 'rex\'s account at site-a')

  await page.goto(`${a().httpUrl}/reports`)
  await page.getByLabel('Your account').fill('rex')
  await page.getByLabel('Your password').fill('not-rexs-password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#login-error', { hasText: 'Wrong username, password or authenticator code.' }).waitFor()
  assert.is(await page.getByLabel('Your password').inputValue(), '', 'the password is not left in the form')
  assert.not.ok(await page.locator('#report-view').isVisible(), 'no report without a sign-in')

  await page.getByLabel('Your password').fill(REX_PASSWORD)
  await signedIn(page)
  await page.locator('#user-name', { hasText: 'rex' }).waitFor()
  await page.locator('#user-role', { hasText: '(report viewer)' }).waitFor()
  await page.locator('#report-view').waitFor()
  // the report shown is site-a's: its totals for the page's query, as site-a's API answers it
  await page.locator('[data-total="Records"]').waitFor()
  const query = (await page.locator('#csv-link').getAttribute('href') ?? '').replace('/api/reports.csv', '/api/reports')
  const { totals } = await admin<{ totals: { records: number, pages: number } }>(a(), query)
  assert.equal([await page.locator('[data-total="Records"]').textContent(), await page.locator('[data-total="Pages"]').textContent()], [String(totals.records), String(totals.pages)])
  await page.locator(`#peers tr[data-peer="${a().peer}"]`).waitFor()
  assert.not.ok(await page.getByRole('button', { name: /^Save/ }).first().isVisible(), 'no price list to save')
  assert.equal(br().pageErrors, [])
})

test.run()
