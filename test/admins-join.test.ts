// A standalone site with named admin accounts joins a mesh (real processes on loopback): its
// accounts are added to central's, narrowed to the joining site (its mesh admin becomes a
// site admin of that site, never an admin of the mesh); an account central already has keeps
// central's; a second factor is dropped to be enrolled again; a disabled account stays
// disabled. The handed-over admins sign in with their old passwords at central and at the site.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import * as OTPAuth from 'otpauth'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'

/** Central's directory reaches the site by sync within this. */
const MESH_TIMEOUT_MS = 30_000
const PASSWORDS = { central: 'central-clash-pass', ops: 'ops-password-123', viewer: 'viewer-password-1', clash: 'site-clash-pass-1', second: 'second-password-1', off: 'off-password-1234' }

interface AccountView { username: string, role: string, sites: string[], totp: boolean, disabled: boolean }

let central: SiteProcess | undefined
let standalone: SiteProcess | undefined
let site: SiteProcess | undefined
let dataDir = ''

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
  // second enrols TOTP on the standalone site: signed in as itself, confirmed with a code
  const second = await signIn(alone, 'second', PASSWORDS.second)
  const headers = { cookie: second.cookie ?? '', 'x-csrf-token': second.csrf ?? '', 'content-type': 'application/json' }
  const started = await fetch(`${alone.httpUrl}/api/admin-accounts/second/totp`, { method: 'POST', headers, body: '{}' })
  assert.is(started.status, 200, await started.clone().text())
  const totp = OTPAuth.URI.parse((await started.json() as { otpauthUri: string }).otpauthUri) as OTPAuth.TOTP
  const confirmed = await fetch(`${alone.httpUrl}/api/admin-accounts/second/totp/confirm`, { method: 'POST', headers, body: JSON.stringify({ code: totp.generate() }) })
  assert.is(confirmed.status, 200, await confirmed.text())
  assert.is((await accounts(alone)).get('second')?.totp, true)
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

test.run()
