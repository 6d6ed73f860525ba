// A standalone site with named admin accounts joins a mesh (real processes on loopback): its
// accounts are added to central's, narrowed to the joining site (its mesh admin becomes a
// site admin of that site, never an admin of the mesh); an account central already has keeps
// central's; a second factor is dropped to be enrolled again; a disabled account stays
// disabled. The handed-over admins sign in with their old passwords at central and at the site.
// The account central could not take (a name it has) is kept for adoption: central lists it
// (who wrote it on the site and when; never its hash) to a mesh admin only; adopting it under
// the taken name is refused and changes nothing; adopted under another name in the console
// (Chromium), it signs in at central and at the site with its old password, without its
// second factor (which could not move), and the adoption is in central's audit log.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import * as OTPAuth from 'otpauth'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { explainConsoleFailure } from './helpers/console.ts'
import type { AuditPage } from '../ui/routes/audit.ts'

/** Central's directory reaches the site by sync within this. */
const MESH_TIMEOUT_MS = 30_000
/** Longest wait for something to appear on the console page. */
const UI_TIMEOUT_MS = 20_000
const PASSWORDS = { central: 'central-clash-pass', ops: 'ops-password-123', viewer: 'viewer-password-1', clash: 'site-clash-pass-1', second: 'second-password-1', off: 'off-password-1234' }

interface AccountView { username: string, role: string, sites: string[], totp: boolean, disabled: boolean }

let central: SiteProcess | undefined
let standalone: SiteProcess | undefined
let site: SiteProcess | undefined
let dataDir = ''
let browser: TestBrowser | undefined
/** The site's peer id (the standalone authority that wrote its accounts). */
let sitePeer = ''

async function signIn (node: SiteProcess, username: string, password: string, code?: string): Promise<{ status: number, role?: string, sites?: string[], cookie?: string, csrf?: string }> {
  const res = await fetch(`${node.httpUrl}/api/login/admin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password, ...(code !== undefined ? { code } : {}) }) })
  const body = await res.json() as { role?: string, sites?: string[], csrfToken?: string }
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('printmesh-session='))?.split(';')[0]
  return { status: res.status, ...(body.role !== undefined ? { role: body.role } : {}), ...(body.sites !== undefined ? { sites: body.sites } : {}), ...(cookie !== undefined ? { cookie } : {}), ...(body.csrfToken !== undefined ? { csrf: body.csrfToken } : {}) }
}

async function accounts (node: SiteProcess): Promise<Map<string, AccountView>> {
  const { accounts } = await admin<{ accounts: AccountView[] }>(node, '/api/admin-accounts')
  return new Map(accounts.map((a) => [a.username, a]))
}

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['standalone site', async () => await standalone?.stop()],
    ['site', async () => await site?.stop()],
    ['central', async () => await central?.stop()],
    ['site data', async () => await rm(dataDir, { recursive: true, force: true })]
  ])
})

test('a standalone site\'s admin accounts reach central when it joins, narrowed to that site; central keeps its own of a name both have; a second factor is to be enrolled again', async () => {
  central = await startCentral()
  await admin(central, '/api/admin-accounts', { method: 'POST', body: { username: 'clash', role: 'mesh-admin', password: PASSWORDS.central } })

  // the site runs standalone first, its own authority: a mesh admin, a report viewer, a name central has, a second mesh admin with TOTP, a disabled site admin
  dataDir = await tempDir('printmesh-admins-join-')
  const alone = await startSite({ dataDir, args: ['--site', 'site-j'] })
  standalone = alone
  const add = async (username: keyof typeof PASSWORDS, role: string, sites?: string[]): Promise<void> => {
    await admin(alone, '/api/admin-accounts', { method: 'POST', body: { username, role, password: PASSWORDS[username], ...(sites !== undefined ? { sites } : {}) } })
  }
  await add('ops', 'mesh-admin')
  await add('viewer', 'report-viewer')
  await add('clash', 'mesh-admin')
  await add('second', 'mesh-admin')
  await add('off', 'site-admin', ['site-j'])
  await admin(alone, '/api/admin-accounts/off', { method: 'PATCH', body: { disabled: true } })
  // second and clash enrol TOTP on the standalone site: each signed in as itself, confirmed with a code
  const enrolTotp = async (username: 'second' | 'clash'): Promise<void> => {
    const session = await signIn(alone, username, PASSWORDS[username])
    const headers = { cookie: session.cookie ?? '', 'x-csrf-token': session.csrf ?? '', 'content-type': 'application/json' }
    const started = await fetch(`${alone.httpUrl}/api/admin-accounts/${username}/totp`, { method: 'POST', headers, body: '{}' })
    assert.is(started.status, 200, await started.clone().text())
    const totp = OTPAuth.URI.parse((await started.json() as { otpauthUri: string }).otpauthUri) as OTPAuth.TOTP
    const confirmed = await fetch(`${alone.httpUrl}/api/admin-accounts/${username}/totp/confirm`, { method: 'POST', headers, body: JSON.stringify({ code: totp.generate() }) })
    assert.is(confirmed.status, 200, await confirmed.text())
    assert.is((await accounts(alone)).get(username)?.totp, true)
  }
  await enrolTotp('second')
  await enrolTotp('clash')
  sitePeer = alone.peer
  await alone.stop()
  standalone = undefined

  const { joinString } = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-j' } })
  site = await startSite({ dataDir, args: ['--join', joinString] })
  await site.waitForLog('standalone admin accounts handed to central')
  assert.match(site.logs().find((l) => l.includes('admin account not handed over')) ?? '', /"account":"clash".*central already has an account of this name: kept central's/)
  assert.match(site.logs().find((l) => l.includes('enrol their second factor')) ?? '', /"accounts":\["second"\]/)

  // at central: each with its narrowed role, none an admin of the mesh
  const atCentral = await accounts(central)
  const view = (name: string): unknown => { const a = atCentral.get(name); return a === undefined ? undefined : { role: a.role, sites: a.sites, totp: a.totp, disabled: a.disabled } }
  assert.equal(view('ops'), { role: 'site-admin', sites: ['site-j'], totp: false, disabled: false }, 'the standalone mesh admin administers its site only')
  assert.equal(view('viewer'), { role: 'report-viewer', sites: [], totp: false, disabled: false })
  assert.equal(view('second'), { role: 'site-admin', sites: ['site-j'], totp: false, disabled: false }, 'the second factor is to be enrolled again')
  assert.equal(view('off'), { role: 'site-admin', sites: ['site-j'], totp: false, disabled: true })
  assert.equal(view('clash'), { role: 'mesh-admin', sites: [], totp: false, disabled: false }, 'central\'s own account')

  // the old passwords work at central; central's clash keeps its password
  const ops = await signIn(central, 'ops', PASSWORDS.ops)
  assert.equal([ops.status, ops.role, ops.sites], [200, 'site-admin', ['site-j']])
  assert.is((await signIn(central, 'second', PASSWORDS.second)).status, 200, 'no second factor asked any more')
  assert.is((await signIn(central, 'off', PASSWORDS.off)).status, 401, 'still disabled')
  assert.is((await signIn(central, 'clash', PASSWORDS.clash)).status, 401, 'the site\'s clash is not central\'s')
  assert.is((await signIn(central, 'clash', PASSWORDS.central)).status, 200)
  // a site admin cannot administer the mesh: no join tokens
  const token = await fetch(`${central.httpUrl}/api/mesh/tokens`, { method: 'POST', headers: { cookie: ops.cookie ?? '', 'x-csrf-token': ops.csrf ?? '', 'content-type': 'application/json' }, body: JSON.stringify({ role: 'site', site: 'site-k' }) })
  assert.is(token.status, 403)

  // the site now holds central's directory: the handed-over admin signs in there too
  const joined = site
  await until(async () => (await signIn(joined, 'ops', PASSWORDS.ops)).status === 200, MESH_TIMEOUT_MS, 'ops signs in at the joined site')
  assert.equal((await signIn(joined, 'ops', PASSWORDS.ops)).role, 'site-admin')
})

interface Adoptable {
  id: string, site: string, sitePeer: string, username: string, standaloneRole: string, standaloneSites: string[], role: string, sites: string[],
  totp: boolean, disabled: boolean, by?: string, createdAt?: number, updatedAt?: number, handedAt: number, reason: string, taken: boolean
}

const adoptable = async (node: SiteProcess): Promise<Adoptable[]> => (await admin<{ adoptable: Adoptable[] }>(node, '/api/admin-accounts/adoptable')).adoptable

async function call (node: SiteProcess, method: string, path: string, session: { cookie?: string, csrf?: string }, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(node.httpUrl + path, {
    method,
    headers: { cookie: session.cookie ?? '', 'x-csrf-token': session.csrf ?? '', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

test('central lists the account it could not take for a mesh admin only; the taken name is refused; adopted under another name in the console, it signs in everywhere with its old password', async () => {
  const c = central
  const joined = site
  if (c === undefined || joined === undefined) throw new Error('the join above did not run')
  const ID = 'site-j:clash'

  // listed at central: where it came from, who wrote it there and when, what it becomes; never its hash
  const listed = await adoptable(c)
  assert.equal(listed.map((a) => a.id), [ID], 'only the account central could not take (the others were added at the join)')
  const [clash] = listed
  assert.equal({ site: clash.site, sitePeer: clash.sitePeer, username: clash.username, standaloneRole: clash.standaloneRole, role: clash.role, sites: clash.sites, totp: clash.totp, disabled: clash.disabled, by: clash.by, taken: clash.taken },
    { site: 'site-j', sitePeer, username: 'clash', standaloneRole: 'mesh-admin', role: 'site-admin', sites: ['site-j'], totp: true, disabled: false, by: 'clash', taken: true })
  assert.ok(typeof clash.updatedAt === 'number' && typeof clash.createdAt === 'number' && clash.updatedAt >= clash.createdAt && clash.handedAt >= clash.updatedAt, 'when it was written there and received')
  assert.not.match(JSON.stringify(listed), /scrypt/, 'no password hash in the answer')

  // a report viewer and a site admin may neither list nor adopt
  for (const [name, password] of [['viewer', PASSWORDS.viewer], ['ops', PASSWORDS.ops]] as const) {
    const session = await signIn(c, name, password)
    assert.is(session.status, 200)
    const list = await call(c, 'GET', '/api/admin-accounts/adoptable', session)
    assert.is(list.status, 403, `${name} lists: ${JSON.stringify(list.body)}`)
    const adopt = await call(c, 'POST', `/api/admin-accounts/adoptable/${encodeURIComponent(ID)}/adopt`, session, { username: `by-${name}` })
    assert.is(adopt.status, 403, `${name} adopts: ${JSON.stringify(adopt.body)}`)
  }

  // adopting it under the name central has is refused, and changes nothing
  const refused = await fetch(`${c.httpUrl}/api/admin-accounts/adoptable/${encodeURIComponent(ID)}/adopt`, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}`, 'content-type': 'application/json' }, body: '{}' })
  assert.is(refused.status, 409)
  assert.match((await refused.json() as { error: string }).error, /central already has an admin account clash, which is not overwritten: adopt clash of site-j under another name/)
  assert.equal((await adoptable(c)).map((a) => a.id), [ID], 'still waiting')
  assert.equal((await accounts(c)).get('clash')?.role, 'mesh-admin', 'central\'s own account unchanged')
  assert.is((await signIn(c, 'clash', PASSWORDS.central)).status, 200)
  assert.is((await signIn(c, 'clash', PASSWORDS.clash)).status, 401)

  // central's mesh admin adopts it under another name in the console
  const b = browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = b.page
  try {
    await page.goto(`${c.httpUrl}/console#/accounts`)
    await page.getByLabel('Your account').fill('clash')
    await page.getByLabel('Your password').fill(PASSWORDS.central)
    await page.getByRole('button', { name: 'Sign in' }).click()
    const row = page.locator(`tr[data-adoptable="${ID}"]`)
    await row.waitFor()
    const cells = await row.locator('th, td').allTextContents()
    assert.match(cells[1], /^site-j/)
    assert.match(cells[2], /mesh admin.*becomes site admin of site-j/)
    assert.match(cells[3], /by clash/)
    assert.match(cells[4], /not carried over/)
    assert.is(await row.getByLabel('Adopt as').inputValue(), '', 'the taken name is not offered')
    await row.getByLabel('Adopt as').fill('clash-j')
    await row.getByRole('button', { name: 'Adopt' }).click()
    await page.locator('#accounts-message', { hasText: 'Adopted clash of site-j as clash-j' }).waitFor()
    assert.match(await page.locator('#accounts-message').textContent() ?? '', /authenticator could not be carried over/)
    await page.locator('tr[data-account="clash-j"]').waitFor()
    assert.is(await page.locator('tr[data-adoptable]').count(), 0, 'no longer listed')
    assert.equal(b.pageErrors, [])
  } catch (err) {
    await explainConsoleFailure(b, 'adopt', err)
  }

  // the adopted account signs in at central with the password it had, as a site admin of its site, without a code
  assert.equal(await adoptable(c), [])
  const adopted = await signIn(c, 'clash-j', PASSWORDS.clash)
  assert.equal([adopted.status, adopted.role, adopted.sites], [200, 'site-admin', ['site-j']])
  assert.is((await signIn(c, 'clash', PASSWORDS.central)).status, 200, 'central\'s clash is untouched')
  // and at the site, once central's directory arrives there
  await until(async () => (await signIn(joined, 'clash-j', PASSWORDS.clash)).status === 200, MESH_TIMEOUT_MS, 'clash-j signs in at the joined site')
  // the adoption is in central's audit log: who, from where, what it became
  const { entries } = await admin<AuditPage>(c, '/api/audit?action=adoptable')
  const entry = entries.find((e) => e.action === 'POST /api/admin-accounts/adoptable/:id/adopt' && e.refused === undefined)
  assert.ok(entry !== undefined, `an audit entry of the adoption: ${JSON.stringify(entries)}`)
  assert.is(entry.actor, 'clash')
  const after = entry.after as { account: { username: string, role: string }, adoptedFrom: { site: string, username: string }, totpDropped: boolean }
  assert.equal([after.account.username, after.account.role, after.adoptedFrom.site, after.adoptedFrom.username, after.totpDropped], ['clash-j', 'site-admin', 'site-j', 'clash', true])
})

test.run()
