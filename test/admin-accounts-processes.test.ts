// Named admin accounts and the mesh token with real processes (issue 16 item 5): central and a
// site joined to it. Accounts created on central log in at the site once the directory arrives
// (each role doing there what it may, and refused what it may not, and the audit log naming
// the account at central); a report viewer signs in on central's admin page in Chromium and
// is refused the write controls it tries while staying signed in; rotating the mesh token at
// central makes the site refuse the old tokens and take the new one.
import { listJobs } from './helpers/ipptool.ts'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startSite, startCentral, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import type { AuditPage } from '../ui/routes/audit.ts'

/** Replication runs at once or at the next anti-entropy round (a second in tests): well within this. */
const MESH_TIMEOUT_MS = 30_000
/** Longest wait for something to appear on the page. */
const UI_TIMEOUT_MS = 20_000
const PASSWORD = 'a long admin password'

interface World { central: SiteProcess, site: SiteProcess, browser: TestBrowser }
const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.central = await startCentral()
    const { joinString } = await admin<{ joinString: string }>(world.central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'lab' } })
    world.site = await startSite({ args: ['--site', 'lab', '--join', joinString] })
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['site', async () => await world.site?.stop()],
    ['central', async () => await world.central?.stop()]
  ])
})

function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

interface Call { status: number, body: Record<string, unknown> }
async function call (node: SiteProcess, method: string, path: string, auth: Record<string, string>, body?: unknown): Promise<Call> {
  const res = await fetch(node.httpUrl + path, {
    method,
    headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** An admin session at `node` (cookie and CSRF token), or the refusal's status. */
async function signIn (node: SiteProcess, credentials: Record<string, string>): Promise<{ status: number, headers: Record<string, string> }> {
  const res = await fetch(`${node.httpUrl}/api/login/admin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials) })
  if (res.status !== 200) return { status: res.status, headers: {} }
  const { csrfToken } = await res.json() as { csrfToken: string }
  return { status: 200, headers: { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0], 'x-csrf-token': csrfToken } }
}

test('accounts made on central log in at the site; each role does there what it may; the audit log names the account', async () => {
  const { central, site } = ready()
  for (const account of [
    { username: 'meg', role: 'mesh-admin' },
    { username: 'sam', role: 'site-admin', sites: ['lab'] },
    { username: 'rita', role: 'report-viewer' }
  ]) await admin(central, '/api/admin-accounts', { method: 'POST', body: { ...account, password: PASSWORD } })
  let rita = { status: 0, headers: {} as Record<string, string> }
  await until(async () => (rita = await signIn(site, { username: 'rita', password: PASSWORD })).status === 200, MESH_TIMEOUT_MS, 'rita logs in at the site')
  assert.is((await signIn(site, { username: 'rita', password: 'not her password' })).status, 401)
  const session = await call(site, 'GET', '/api/session', rita.headers)
  assert.equal([session.body.user, session.body.role], ['rita', 'report-viewer'])
  assert.is((await call(site, 'GET', '/api/roaming', rita.headers)).status, 200, 'rita reads')
  const refused = await call(site, 'PUT', '/api/roaming', rita.headers, { partners: [], mode: 'shared' })
  assert.is(refused.status, 403)
  assert.match(String(refused.body.error), /a report viewer may only read/)

  const sam = await signIn(site, { username: 'sam', password: PASSWORD })
  assert.is((await call(site, 'PUT', '/api/roaming', sam.headers, { partners: ['annex'], mode: 'shared' })).status, 200, 'the site admin of lab changes lab')
  assert.is((await call(site, 'POST', '/api/mesh/tokens', sam.headers, { role: 'terminal', site: 'lab' })).status, 403, 'but not the mesh')
  const samAtCentral = await signIn(central, { username: 'sam', password: PASSWORD })
  assert.is((await call(central, 'PUT', '/api/prices', samAtCentral.headers, { currency: 'EUR', rules: [] })).status, 403, 'nor anything at central')

  // a report viewer at central: every kind of write refused
  const ritaAtCentral = await signIn(central, { username: 'rita', password: PASSWORD })
  for (const [method, path, body] of [
    ['POST', '/api/users', { username: 'x', fullName: 'X', pin: '1234' }],
    ['PUT', '/api/license', {}],
    ['POST', '/api/mesh/tokens', { role: 'site', site: 'x' }],
    ['POST', '/api/admin-token/rotate', undefined],
    ['POST', '/api/admin-accounts', { username: 'x', role: 'mesh-admin', password: PASSWORD }],
    ['PUT', '/api/prices', {}],
    ['POST', '/api/ldap/sync', undefined]
  ] as const) {
    const res = await call(central, method, path, ritaAtCentral.headers, body)
    assert.is(res.status, 403, `${method} ${path}: ${JSON.stringify(res.body)}`)
  }
  assert.is((await call(central, 'GET', '/api/reports', ritaAtCentral.headers)).status, 200, 'rita reads reports')

  await until(async () => {
    const page = await admin<AuditPage>(central, `/api/audit?actor=sam&node=${site.peer}`)
    return page.entries.some((e) => e.action === 'PUT /api/roaming' && e.via === 'session')
  }, MESH_TIMEOUT_MS, 'sam\'s change at the site in central\'s audit log')
})

test('a report viewer signs in on the admin page and is refused the write controls, staying signed in', async () => {
  const { central, browser } = ready()
  const { page } = browser
  await page.goto(`${central.httpUrl}/admin`)
  await page.getByLabel('Your account').fill('rita')
  await page.getByLabel('Your password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('(report viewer)').waitFor()
  await page.getByRole('heading', { name: 'Admin accounts' }).waitFor()
  await page.locator('#accounts tbody tr').filter({ hasText: 'meg' }).waitFor()

  await page.getByLabel('New account name').fill('newbie')
  await page.getByLabel('New account password').fill(PASSWORD)
  await page.getByRole('button', { name: 'Add account' }).click()
  await page.locator('#status').getByText('a report viewer may only read').waitFor()
  page.once('dialog', (dialog) => { void dialog.accept() })
  await page.getByRole('button', { name: 'Rotate the mesh admin token' }).click()
  await page.locator('#status').getByText('POST /api/admin-token/rotate').waitFor()
  assert.ok(await page.locator('#whoami').isVisible(), 'still signed in')
  assert.is(await page.locator('#new-mesh-token').isVisible(), false, 'no token shown')
  await browser.screenshot('admin-accounts-report-viewer')
  const accounts = await admin<{ accounts: Array<{ username: string }> }>(central, '/api/admin-accounts')
  assert.not.ok(accounts.accounts.some((a) => a.username === 'newbie'), 'nothing was added')
})

test('rotating the mesh token at central: the site refuses its own and the old token and takes the new one', async () => {
  const { central, site } = ready()
  const own = { authorization: `Bearer ${site.adminToken}` }
  assert.is((await call(site, 'GET', '/api/admin-accounts', own)).status, 200, 'before: the site\'s own token')
  const rotated = await call(central, 'POST', '/api/admin-token/rotate', { authorization: `Bearer ${central.adminToken}` })
  assert.is(rotated.status, 200)
  const token = String(rotated.body.token)
  assert.is((await call(central, 'GET', '/api/admin-accounts', { authorization: `Bearer ${central.adminToken}` })).status, 401, 'central refuses the old token at once')
  await until(async () => (await call(site, 'GET', '/api/admin-accounts', own)).status === 401, MESH_TIMEOUT_MS, 'the site refuses its own token')
  assert.is((await call(site, 'GET', '/api/admin-accounts', { authorization: `Bearer ${central.adminToken}` })).status, 401)
  assert.is((await call(site, 'GET', '/api/admin-accounts', { authorization: `Bearer ${token}` })).status, 200, 'the new mesh token works at the site')
  // the IPP door too: ipptool as `admin` with the site's own token is refused, with the mesh token it lists every job
  let refused: unknown
  try { await listJobs(site.ippUri, { user: 'admin', password: site.adminToken }) } catch (err) { refused = err }
  assert.instance(refused, Error, 'the site\'s own token no longer logs in over IPP')
  assert.ok(Array.isArray(await listJobs(site.ippUri, { user: 'admin', password: token })), 'the mesh token does')
  for (const node of [central, site]) {
    const logs = node.logs().join('\n')
    for (const secret of [PASSWORD, token]) assert.not.ok(logs.includes(secret), 'no password or token in a log line')
  }
})

test.run()
