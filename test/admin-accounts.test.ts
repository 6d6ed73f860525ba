// Named admin accounts with roles and the mesh admin token (issue 16 item 5), below the
// processes: the routes (fastify's inject) over a real store, the login with password and
// TOTP (refused and throttled), each role's allowed and forbidden calls as the server core's
// one check enforces them, the audit log naming the account, token rotation (old token and
// its sessions refused, new one accepted), and the sync engine rejecting a forged account or
// mesh token written by a peer that is not the authority.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import * as OTPAuth from 'otpauth'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { TestMesh } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { tempDir } from '../simulations/node-process.ts'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc, licenseDoc } from '../crdt/names.ts'
import { getAdminAccount, getMeshToken, listAdoptable, putAdminAccount, setMeshToken, type AdminAccount } from '../crdt/admin-accounts.ts'
import { mergeAdminHandover } from '../node/admin-handover.ts'
import type { Certificate } from '../crdt/license.ts'
import { slowHash } from '../crdt/directory.ts'
import { generateIdentity } from '../transports/identity.ts'
import { AdminAccounts } from '../node/admin-accounts.ts'
import { replaceOwnTokenFile } from '../node/admin-token.ts'
import { createAuditLog } from '../node/audit.ts'
import { buildHttpApp } from '../ui/server.ts'
import type { MeshApi } from '../ui/api.ts'
import { auditRoutes, type AuditPage } from '../ui/routes/audit.ts'
import { adminAccountsRoutes } from '../ui/routes/admin-accounts.ts'
import type { HttpPlugin } from '../ui/routes/plugin.ts'
import type { AdminAccountView, AdoptableAccountView, AdoptedAccount } from '../ui/admin-accounts-api.ts'

const OWN_TOKEN = 'own-start-up-token-9f8e7d6c'
const T0 = Date.UTC(2026, 11, 7, 9, 0, 0)
const PASSWORD = 'correct horse battery'
/** Wrong passwords one (account, address) pair may make before 429: low, so the test makes few slow hashes. */
const PAIR_FAILURES = 3
/** Wrong tokens one address may present before 429: low for the same reason. */
const BEARER_FAILURES = 3

interface World { store: DocStore, self: string, accounts: AdminAccounts, clock: { t: number }, close: () => Promise<void> }

/** A node over a store of its own: the mesh's authority, or (given the authority's id) a node that receives what it writes. */
async function world (authorityId?: string): Promise<World> {
  const dir = await tempDir('printmesh-admins-')
  const { signer } = await generateIdentity()
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), signer)
  const clock = { t: T0 }
  const accounts = new AdminAccounts({ store, cardKey: randomBytes(32), authority: () => authorityId === undefined, authorityId: () => authorityId ?? signer.id, now: () => clock.t })
  return { store, self: signer.id, accounts, clock, close: async () => { await store.close(); await rm(dir, { recursive: true, force: true }) } }
}

/** Routes standing for a site's own (printers) and for the mesh's administration (directory, license), each an admin write and read. */
function standInRoutes (): HttpPlugin {
  return {
    service: 'mesh',
    prefixes: ['/api/things', '/api/users', '/api/license', '/api/console'],
    register (app, { authenticate }) {
      for (const path of ['/api/things/:id', '/api/users/:id', '/api/license', '/api/console/sites/:site/printers/:name']) {
        app.get(path, async (request) => { authenticate(request, 'admin'); return { ok: true } })
        app.put(path, async (request) => { authenticate(request, 'admin'); return { ok: true } })
      }
    }
  }
}

/** Every mutating route registered after it, for "a report viewer cannot change anything". */
function routeRecorder (into: Array<{ method: string, url: string }>): HttpPlugin {
  return {
    service: 'mesh',
    prefixes: [],
    register (app) {
      app.addHook('onRoute', (route: RouteOptions) => {
        for (const method of [route.method].flat()) {
          if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) into.push({ method, url: route.url })
        }
      })
    }
  }
}

function http (w: World, where: { role: string, site?: string } = { role: 'site', site: 'lab' }, routes: Array<{ method: string, url: string }> = []): FastifyInstance {
  const mesh = { status: () => ({ self: { peer: w.self, ...where }, peers: [] }) } as unknown as MeshApi
  const audit = createAuditLog({ store: w.store, self: { peer: w.self, role: 'site', site: 'lab' }, now: () => w.clock.t })
  return buildHttpApp({
    mesh,
    adminToken: OWN_TOKEN,
    accounts: w.accounts,
    audit,
    logger: pino({ level: 'silent' }),
    now: () => w.clock.t,
    loginPolicy: { pairFailures: PAIR_FAILURES, bearerFailures: BEARER_FAILURES },
    plugins: [routeRecorder(routes), adminAccountsRoutes(w.accounts), standInRoutes(), auditRoutes(audit)]
  })
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

interface Login { status: number, headers: Record<string, string>, body: Record<string, unknown> }
async function login (app: FastifyInstance, payload: Record<string, unknown>, ip = '10.0.0.1'): Promise<Login> {
  const res = await app.inject({ method: 'POST', url: '/api/login/admin', payload, remoteAddress: ip })
  const cookie = res.cookies.find((c) => c.name === 'printmesh-session')
  const body = res.json() as Record<string, unknown>
  return { status: res.statusCode, body, headers: cookie === undefined ? {} : { cookie: `printmesh-session=${cookie.value}`, 'x-csrf-token': String(body.csrfToken) } }
}

async function addAccount (app: FastifyInstance, body: Record<string, unknown>): Promise<AdminAccountView> {
  const res = await app.inject({ method: 'POST', url: '/api/admin-accounts', headers: bearer(OWN_TOKEN), payload: { password: PASSWORD, ...body } })
  assert.is(res.statusCode, 201, res.body)
  return (res.json() as { account: AdminAccountView }).account
}

test('accounts are added, listed, edited, disabled and deleted; no password hash or TOTP secret is ever answered or kept in clear', async () => {
  const w = await world()
  try {
    const app = http(w)
    const ann = await addAccount(app, { username: 'ann', role: 'site-admin', sites: ['lab', 'annex'] })
    assert.equal([ann.username, ann.role, ann.sites, ann.totp, ann.disabled, ann.by], ['ann', 'site-admin', ['annex', 'lab'], false, false, 'admin'])
    await addAccount(app, { username: 'rita', role: 'report-viewer' })
    const list = await app.inject({ url: '/api/admin-accounts', headers: bearer(OWN_TOKEN) })
    assert.equal((list.json() as { accounts: AdminAccountView[] }).accounts.map((a) => a.username), ['ann', 'rita'])
    assert.not.ok(list.body.includes('scrypt') || list.body.includes(PASSWORD), 'no hash, no password')
    const patched = await app.inject({ method: 'PATCH', url: '/api/admin-accounts/ann', headers: bearer(OWN_TOKEN), payload: { role: 'mesh-admin', sites: [] } })
    assert.is(patched.statusCode, 200, patched.body)
    assert.equal((patched.json() as { account: AdminAccountView }).account.role, 'mesh-admin')
    assert.is((await app.inject({ method: 'POST', url: '/api/admin-accounts', headers: bearer(OWN_TOKEN), payload: { username: 'ann', role: 'mesh-admin', password: PASSWORD } })).statusCode, 409, 'a taken name')
    assert.is((await login(app, { username: 'rita', password: PASSWORD })).status, 200)
    assert.is((await app.inject({ method: 'PATCH', url: '/api/admin-accounts/rita', headers: bearer(OWN_TOKEN), payload: { disabled: true } })).statusCode, 200)
    assert.is((await login(app, { username: 'rita', password: PASSWORD })).status, 401, 'a disabled account cannot log in')
    assert.is((await app.inject({ method: 'DELETE', url: '/api/admin-accounts/rita', headers: bearer(OWN_TOKEN) })).statusCode, 200)
    assert.is((await app.inject({ url: '/api/admin-accounts/rita', headers: bearer(OWN_TOKEN) })).statusCode, 404)
    assert.is((await app.inject({ method: 'DELETE', url: '/api/admin-accounts/rita', headers: bearer(OWN_TOKEN) })).statusCode, 404)
    const stored = JSON.stringify(getAdminAccount(await w.store.open(directoryDoc()), w.self, 'ann'))
    assert.ok(stored.includes('"passwordHash":"scrypt$32768$8$1$'), 'the password as the directory\'s scrypt hash')
    assert.not.ok(stored.includes(PASSWORD))
  } finally {
    await w.close()
  }
})

test('bad input is 400 naming the field; writes on a node that is not the authority are 409', async () => {
  const w = await world()
  try {
    const app = http(w)
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ username: 'bob', role: 'mesh-admin' }, /password must be a string/],
      [{ username: 'bob', role: 'mesh-admin', password: 'short' }, /password must be 12 to 256 characters/],
      [{ username: 'bob', role: 'boss', password: PASSWORD }, /role must be one of mesh-admin, site-admin, report-viewer/],
      [{ username: 'bob', role: 'site-admin', password: PASSWORD }, /sites must name at least one site id/],
      [{ username: 'bob', role: 'site-admin', sites: ['no/slash'], password: PASSWORD }, /sites: "no\/slash" is not a site id/],
      [{ username: 'bob', role: 'report-viewer', sites: ['lab'], password: PASSWORD }, /sites are only for a site-admin/],
      [{ username: 'b o b', role: 'mesh-admin', password: PASSWORD }, /username must be 1-64 letters/],
      [{ username: 'bob', role: 'mesh-admin', password: PASSWORD, pin: '1234' }, /unknown field pin/]
    ]
    for (const [payload, message] of bad) {
      const res = await app.inject({ method: 'POST', url: '/api/admin-accounts', headers: bearer(OWN_TOKEN), payload })
      assert.is(res.statusCode, 400, JSON.stringify(payload))
      assert.match((res.json() as { error: string }).error, message)
    }
    assert.is((await app.inject({ method: 'PATCH', url: '/api/admin-accounts/bob', headers: bearer(OWN_TOKEN), payload: { disabled: 'yes' } })).statusCode, 400)
    assert.is((await login(app, { username: 'bob' })).status, 400, 'a login without password')
    const elsewhere = await world('the-central-peer')
    try {
      const res = await http(elsewhere).inject({ method: 'POST', url: '/api/admin-accounts', headers: bearer(OWN_TOKEN), payload: { username: 'bob', role: 'mesh-admin', password: PASSWORD } })
      assert.is(res.statusCode, 409)
      assert.match(res.body, /managed on central/)
    } finally {
      await elsewhere.close()
    }
  } finally {
    await w.close()
  }
})

test('wrong passwords and TOTP codes are refused and throttled; TOTP is enrolled with a valid code and each code works once', async () => {
  const w = await world()
  try {
    const app = http(w)
    await addAccount(app, { username: 'max', role: 'mesh-admin' })
    const ok = await login(app, { username: 'max', password: PASSWORD })
    assert.equal([ok.status, ok.body.user, ok.body.role, ok.body.account], [200, 'max', 'mesh-admin', true])
    const session = await app.inject({ url: '/api/session', headers: ok.headers })
    assert.equal(session.json(), { user: 'max', admin: true, csrfToken: ok.body.csrfToken, role: 'mesh-admin', sites: [], account: true })

    // TOTP: the URI once, confirmed only by a valid code of it
    const started = await app.inject({ method: 'POST', url: '/api/admin-accounts/max/totp', headers: ok.headers })
    assert.is(started.statusCode, 200, started.body)
    const uri = (started.json() as { otpauthUri: string }).otpauthUri
    assert.match(uri, /^otpauth:\/\/totp\/printmesh:max\?/)
    const totp = OTPAuth.URI.parse(uri) as OTPAuth.TOTP
    const code = (): string => totp.generate({ timestamp: w.clock.t })
    const wrong = (): string => String((Number(code()) + 1) % 1_000_000).padStart(6, '0')
    const refused = await app.inject({ method: 'POST', url: '/api/admin-accounts/max/totp/confirm', headers: ok.headers, payload: { code: wrong() } })
    assert.is(refused.statusCode, 400)
    assert.match(refused.body, /not a valid code/)
    assert.is((await app.inject({ method: 'POST', url: '/api/admin-accounts/max/totp/confirm', headers: ok.headers, payload: { code: 'abc' } })).statusCode, 400)
    const confirmed = await app.inject({ method: 'POST', url: '/api/admin-accounts/max/totp/confirm', headers: ok.headers, payload: { code: code() } })
    assert.is(confirmed.statusCode, 200, confirmed.body)
    assert.is((confirmed.json() as { account: AdminAccountView }).account.totp, true)
    const stored = JSON.stringify(getAdminAccount(await w.store.open(directoryDoc()), w.self, 'max'))
    assert.not.ok(stored.includes(totp.secret.base32), 'the secret is kept sealed')
    assert.is((await app.inject({ url: '/api/session', headers: ok.headers })).statusCode, 401, 'the change ended the sessions opened before it')

    w.clock.t += 30_000 // the next step: the code used to confirm is spent
    assert.is((await login(app, { username: 'max', password: PASSWORD })).status, 401, 'password alone is not enough now')
    assert.is((await login(app, { username: 'max', password: PASSWORD, totp: wrong() })).status, 401, 'a wrong code')
    const withCode = await login(app, { username: 'max', password: PASSWORD, totp: code() })
    assert.is(withCode.status, 200, 'password and code')
    assert.is((await login(app, { username: 'max', password: PASSWORD, totp: code() }, '10.0.0.2')).status, 401, 'the same code again')

    // throttled: wrong passwords per (account, address), the right one still works from elsewhere
    for (let i = 0; i < PAIR_FAILURES; i++) assert.is((await login(app, { username: 'max', password: 'wrong password!' })).status, 401)
    const throttled = await login(app, { username: 'max', password: PASSWORD, totp: code() })
    assert.is(throttled.status, 429, 'the pair reached its limit')
    w.clock.t += 30_000
    assert.is((await login(app, { username: 'max', password: PASSWORD, totp: code() }, '10.0.0.3')).status, 200, 'another address is not locked out')
    assert.is((await login(app, { username: 'nobody', password: PASSWORD })).status, 401, 'an unknown name: the same answer')
    const attempts = ((await app.inject({ url: '/api/audit?outcome=refused', headers: bearer(OWN_TOKEN) })).json() as AuditPage).entries
    assert.equal(attempts.filter((e) => e.action === 'POST /api/login/admin').map((e) => [e.actor, e.via, e.status]), [
      ['nobody', 'password', 401], ...Array.from({ length: PAIR_FAILURES + 3 }, () => ['max', 'password', 401])
    ], 'each wrong sign-in recorded with the name tried; the throttled one (429) not')
    assert.not.ok(JSON.stringify(attempts).includes('wrong password!'), 'no password in the log')
  } finally {
    await w.close()
  }
})

test('roles: a report viewer cannot change anything; a site admin writes only on its sites\' site nodes and never the mesh\'s administration; the audit log names the account', async () => {
  const w = await world()
  try {
    const writes: Array<{ method: string, url: string }> = []
    const lab = http(w, { role: 'site', site: 'lab' }, writes)
    const annex = http(w, { role: 'site', site: 'annex' })
    const central = http(w, { role: 'central' })
    await addAccount(lab, { username: 'rita', role: 'report-viewer' })
    await addAccount(lab, { username: 'sam', role: 'site-admin', sites: ['lab'] })
    await addAccount(lab, { username: 'meg', role: 'mesh-admin' })

    const rita = await login(lab, { username: 'rita', password: PASSWORD })
    assert.equal([rita.body.role, rita.body.account], ['report-viewer', true])
    for (const url of ['/api/things/p1', '/api/users/bob', '/api/license', '/api/admin-accounts', '/api/audit']) {
      assert.is((await lab.inject({ url, headers: rita.headers })).statusCode, 200, `rita reads ${url}`)
    }
    assert.ok(writes.length >= 12, `every write route seen (${writes.length})`)
    for (const { method, url } of writes) {
      const res = await lab.inject({ method: method as 'POST', url: url.replace(/:(\w+)/g, 'x'), headers: rita.headers, payload: {} })
      assert.is(res.statusCode, 403, `${method} ${url}: ${res.body}`)
      assert.match(res.body, /a report viewer may only read/)
    }
    assert.is((await lab.inject({ method: 'POST', url: '/api/logout', headers: rita.headers })).statusCode, 200, 'but may log out')

    const sam = await login(lab, { username: 'sam', password: PASSWORD })
    assert.is((await lab.inject({ method: 'PUT', url: '/api/things/p1', headers: sam.headers, payload: {} })).statusCode, 200, 'sam changes lab')
    for (const url of ['/api/users/bob', '/api/license']) {
      const res = await lab.inject({ method: 'PUT', url, headers: sam.headers, payload: {} })
      assert.is(res.statusCode, 403, url)
      assert.match(res.body, /may not change the mesh's administration/)
    }
    assert.is((await lab.inject({ method: 'POST', url: '/api/admin-token/rotate', headers: sam.headers })).statusCode, 403)
    assert.is((await lab.inject({ method: 'PUT', url: '/api/console/sites/lab/printers/p1', headers: sam.headers, payload: {} })).statusCode, 200, 'lab\'s printers through the console')
    const elsewhere = await lab.inject({ method: 'PUT', url: '/api/console/sites/annex/printers/p1', headers: sam.headers, payload: {} })
    assert.is(elsewhere.statusCode, 403, 'another site\'s printers through the console, even from lab')
    assert.match(elsewhere.body, /may not change site annex/)
    assert.is((await lab.inject({ method: 'POST', url: '/api/admin-accounts', headers: sam.headers, payload: { username: 'x', role: 'mesh-admin', password: PASSWORD } })).statusCode, 403)
    for (const [app, name] of [[annex, 'annex'], [central, 'central']] as const) {
      const there = await login(app, { username: 'sam', password: PASSWORD })
      const res = await app.inject({ method: 'PUT', url: '/api/things/p1', headers: there.headers, payload: {} })
      assert.is(res.statusCode, 403, `sam at ${name}`)
      assert.match(res.body, /may change only the site nodes of those sites/)
      assert.is((await app.inject({ url: '/api/things/p1', headers: there.headers })).statusCode, 200, `sam reads at ${name}`)
    }

    w.clock.t += 1000 // after sam's change, in the log's order
    const meg = await login(central, { username: 'meg', password: PASSWORD })
    for (const url of ['/api/things/p1', '/api/users/bob', '/api/license']) assert.is((await central.inject({ method: 'PUT', url, headers: meg.headers, payload: {} })).statusCode, 200, url)
    // a changed role applies at once: the session opened before ends
    assert.is((await central.inject({ method: 'PATCH', url: '/api/admin-accounts/sam', headers: meg.headers, payload: { role: 'report-viewer', sites: [] } })).statusCode, 200)
    assert.is((await lab.inject({ method: 'PUT', url: '/api/things/p1', headers: sam.headers, payload: {} })).statusCode, 401)

    const page = (await lab.inject({ url: '/api/audit?action=/api/things/p1&outcome=done', headers: bearer(OWN_TOKEN) })).json() as AuditPage
    assert.equal(page.entries.map((e) => [e.actor, e.via]).reverse(), [['sam', 'session'], ['meg', 'session']], 'each change under the account that made it')
    const refusals = ((await lab.inject({ url: '/api/audit?outcome=refused&limit=1000', headers: bearer(OWN_TOKEN) })).json() as AuditPage).entries
    assert.is(refusals.filter((e) => e.actor === 'rita').length, writes.length, 'each of rita\'s refused writes recorded under her name')
    assert.ok(refusals.some((e) => e.actor === 'sam' && e.status === 403 && /site admin may not change/.test(e.refused ?? '')))
    const signIns = ((await lab.inject({ url: '/api/audit?action=login&outcome=done', headers: bearer(OWN_TOKEN) })).json() as AuditPage).entries
    assert.ok(signIns.length >= 3 && signIns.every((e) => e.via === 'session'), 'an account\'s sign-in is recorded as its session')
  } finally {
    await w.close()
  }
})

test('accounts a joining site could not hand over: kept aside only for a taken name (not on a repeat); listed, adopted and dismissed by a mesh admin only; bad names refused; the dismissal audited with what it was', async () => {
  const w = await world()
  try {
    const app = http(w, { role: 'central' })
    await addAccount(app, { username: 'ann', role: 'mesh-admin' })
    await addAccount(app, { username: 'rita', role: 'report-viewer' })
    const ritaHash = getAdminAccount(await w.store.open(directoryDoc()), w.self, 'rita')?.passwordHash ?? ''
    const hash = await slowHash(PASSWORD + ' of the lab')
    const cert = { peer: 'the-lab-peer', role: 'site', site: 'lab' } as unknown as Certificate
    const report = await mergeAdminHandover(w.store, cert, w.self, [
      { username: 'ann', role: 'mesh-admin', passwordHash: hash, hadTotp: true, sites: [], by: 'admin', createdAt: T0 - 5000, updatedAt: T0 - 1000 },
      { username: 'rita', role: 'report-viewer', passwordHash: ritaHash } // the same hash as central's: a repeated hand-over's, not kept
    ], T0)
    assert.equal(report.conflicts.map((c) => c.username), ['ann', 'rita'])
    assert.equal(listAdoptable(await w.store.open(directoryDoc()), w.self).map((a) => a.id), ['lab:ann'], 'rita is not kept aside: central has that very account')

    const list = await app.inject({ url: '/api/admin-accounts/adoptable', headers: bearer(OWN_TOKEN) })
    const [ann] = (list.json() as { adoptable: AdoptableAccountView[] }).adoptable
    assert.equal(ann, { id: 'lab:ann', site: 'lab', sitePeer: 'the-lab-peer', username: 'ann', standaloneRole: 'mesh-admin', standaloneSites: [], role: 'site-admin', sites: ['lab'], totp: true, disabled: false, by: 'admin', createdAt: T0 - 5000, updatedAt: T0 - 1000, handedAt: T0, reason: 'central already has an account of this name: kept central\'s', taken: true })
    assert.not.ok(list.body.includes('scrypt'), 'no hash')
    assert.is((await app.inject({ url: '/api/admin-accounts/adoptable/lab%3Aann', headers: bearer(OWN_TOKEN) })).statusCode, 200)

    const rita = await login(app, { username: 'rita', password: PASSWORD })
    assert.is((await app.inject({ url: '/api/admin-accounts/adoptable', headers: rita.headers })).statusCode, 403, 'a report viewer does not list them')
    assert.is((await app.inject({ method: 'POST', url: '/api/admin-accounts/adoptable/lab%3Aann/adopt', headers: rita.headers, payload: { username: 'ann-lab' } })).statusCode, 403)

    const adopt = async (payload: unknown, id = 'lab%3Aann'): Promise<{ status: number, body: Record<string, unknown> }> => {
      const res = await app.inject({ method: 'POST', url: `/api/admin-accounts/adoptable/${id}/adopt`, headers: bearer(OWN_TOKEN), payload: payload as Record<string, unknown> })
      return { status: res.statusCode, body: res.json() as Record<string, unknown> }
    }
    for (const [payload, status, message] of [
      [{}, 409, /central already has an admin account ann, which is not overwritten/],
      [{ username: 'a b' }, 400, /username must be 1-64 letters/],
      [{ username: 'adoptable' }, 400, /adoptable is not an account name/],
      [{ username: 'rita' }, 409, /central already has an admin account rita/],
      [{ name: 'x' }, 400, /unknown field name/]
    ] as const) {
      const res = await adopt(payload)
      assert.is(res.status, status, `${JSON.stringify(payload)}: ${JSON.stringify(res.body)}`)
      assert.match(String(res.body.error), message)
    }
    assert.is((await adopt({}, 'lab%3Anobody')).status, 404)
    assert.is((await login(app, { username: 'ann', password: PASSWORD + ' of the lab' })).status, 401, 'nothing adopted yet')
    assert.is((await app.inject({ method: 'POST', url: '/api/admin-accounts', headers: bearer(OWN_TOKEN), payload: { username: 'adoptable', role: 'mesh-admin', password: PASSWORD } })).statusCode, 400, 'the reserved name')

    // another copy, adopted under a new name: the old password, the narrowed role, no second factor
    const adopted = await adopt({ username: 'ann-lab' })
    assert.is(adopted.status, 201, JSON.stringify(adopted.body))
    const answer = adopted.body as unknown as AdoptedAccount
    assert.equal([answer.account.username, answer.account.role, answer.account.sites, answer.account.totp, answer.totpDropped, answer.adoptedFrom.username], ['ann-lab', 'site-admin', ['lab'], false, true, 'ann'])
    const signedIn = await login(app, { username: 'ann-lab', password: PASSWORD + ' of the lab' })
    assert.equal([signedIn.status, signedIn.body.role], [200, 'site-admin'])
    assert.is((await adopt({ username: 'ann-lab2' })).status, 404, 'adopted once')
    // the site's join retried: the same account handed over again is not put back to be adopted twice
    await mergeAdminHandover(w.store, cert, w.self, [{ username: 'ann', role: 'mesh-admin', passwordHash: hash }], T0 + 1)
    assert.equal(listAdoptable(await w.store.open(directoryDoc()), w.self), [], 'the adopted account is not offered again')

    // a dismissal: audited with what was dismissed
    await mergeAdminHandover(w.store, cert, w.self, [{ username: 'ann', role: 'report-viewer', passwordHash: await slowHash('yet another one') }], T0 + 1)
    assert.is((await app.inject({ method: 'DELETE', url: '/api/admin-accounts/adoptable/lab%3Aann', headers: rita.headers })).statusCode, 403)
    assert.is((await app.inject({ method: 'DELETE', url: '/api/admin-accounts/adoptable/lab%3Aann', headers: bearer(OWN_TOKEN) })).statusCode, 200)
    assert.equal(listAdoptable(await w.store.open(directoryDoc()), w.self), [])
    const page = (await app.inject({ url: '/api/audit?action=adoptable&outcome=done', headers: bearer(OWN_TOKEN) })).json() as AuditPage
    assert.equal(page.entries.map((e) => e.action), ['DELETE /api/admin-accounts/adoptable/:id', 'POST /api/admin-accounts/adoptable/:id/adopt'])
    assert.equal((page.entries[0].before as { adoptable: { username: string, role: string } }).adoptable.role, 'report-viewer')
  } finally {
    await w.close()
  }
})

test('the mesh token: rotation answers it once, the node\'s own token and the old mesh token (and their sessions) stop working', async () => {
  const w = await world()
  try {
    const app = http(w)
    const site = await world(w.self) // another node, which receives the mesh token
    try {
      const other = http(site)
      const ownSession = await login(app, { token: OWN_TOKEN })
      assert.is(ownSession.status, 200)
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(OWN_TOKEN) })).statusCode, 200, 'before: each node\'s own token')
      const first = await app.inject({ method: 'POST', url: '/api/admin-token/rotate', headers: bearer(OWN_TOKEN) })
      assert.is(first.statusCode, 200, first.body)
      const token1 = (first.json() as { token: string }).token
      assert.ok(token1.length >= 43)
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: bearer(OWN_TOKEN) })).statusCode, 401, 'the own token no longer works here')
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: ownSession.headers })).statusCode, 401, 'nor its session')
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: bearer(token1) })).statusCode, 200)

      // the other node receives the record (as sync would bring it): its own token stops, the mesh token works
      const record = getMeshToken(await w.store.open(licenseDoc()), w.self)
      assert.ok(record !== undefined)
      assert.not.ok(JSON.stringify(record).includes(token1), 'only a hash is replicated')
      // a token the other node set while it was standalone (its own id) does not count under this authority
      await site.store.transact(licenseDoc(), { kind: 'local', service: 'test' }, (d) => { setMeshToken(d, site.self, { ...record, by: 'standalone days' }) })
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(OWN_TOKEN) })).statusCode, 200)
      await site.store.transact(licenseDoc(), { kind: 'local', service: 'test' }, (d) => { setMeshToken(d, w.self, record) })
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(OWN_TOKEN) })).statusCode, 401)
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(token1) })).statusCode, 200)
      assert.is((await login(other, { token: token1 })).status, 200, 'the admin login takes it too')

      const mesh1 = await login(app, { token: token1 })
      const second = await app.inject({ method: 'POST', url: '/api/admin-token/rotate', headers: mesh1.headers })
      const token2 = (second.json() as { token: string }).token
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: bearer(token1) })).statusCode, 401, 'the old mesh token is refused')
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: mesh1.headers })).statusCode, 401, 'and the sessions it opened')
      assert.is((await app.inject({ url: '/api/admin-accounts', headers: bearer(token2) })).statusCode, 200)
      // the other node, which had checked token 1, receives the second rotation
      const record2 = getMeshToken(await w.store.open(licenseDoc()), w.self)
      assert.ok(record2 !== undefined)
      await site.store.transact(licenseDoc(), { kind: 'local', service: 'test' }, (d) => { setMeshToken(d, w.self, record2) })
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(token1) })).statusCode, 401, 'token 1 refused where it was checked before')
      assert.is((await other.inject({ url: '/api/admin-accounts', headers: bearer(token2) })).statusCode, 200)
      const audit = (await app.inject({ url: '/api/audit?action=rotate', headers: bearer(token2) })).json() as AuditPage
      assert.is(audit.total, 2)
      assert.not.ok(JSON.stringify(audit).includes(token1) || JSON.stringify(audit).includes(token2), 'no token in the audit log')
    } finally {
      await site.close()
    }
  } finally {
    await w.close()
  }
})

test('wrong mesh tokens are throttled per address, and an address at its limit costs no more slow hashes', async () => {
  const w = await world()
  try {
    const app = http(w)
    const token = (await w.accounts.rotateToken('admin')).token
    let slow = 0
    const verify = w.accounts.verifyMeshToken.bind(w.accounts)
    w.accounts.verifyMeshToken = async (t: string) => { if (!w.accounts.meshTokenKnown(t)) slow++; return await verify(t) }
    const wrong = (): string => randomBytes(32).toString('base64url')
    const statuses: number[] = []
    for (let i = 0; i < BEARER_FAILURES + 3; i++) statuses.push((await app.inject({ url: '/api/admin-accounts', headers: bearer(wrong()), remoteAddress: '10.9.9.9' })).statusCode)
    assert.equal(statuses, [...Array(BEARER_FAILURES).fill(401), 429, 429, 429])
    assert.is(slow, BEARER_FAILURES, 'no slow hash once the address is throttled')
    assert.is((await app.inject({ url: '/api/admin-accounts', headers: bearer(token), remoteAddress: '10.9.9.9' })).statusCode, 200, 'the right token (checked before) still works from there')
  } finally {
    await w.close()
  }
})

test('after a rotation the authority\'s own token file gets the new token, only when it held the token the node used', async () => {
  const dir = await tempDir('printmesh-token-file-')
  try {
    const file = join(dir, 'admin-token')
    assert.is(await replaceOwnTokenFile(dir, 'start', 'new-1'), undefined, 'no file: nothing written')
    await writeFile(file, 'start\n')
    assert.is(await replaceOwnTokenFile(dir, 'start', 'new-1'), file)
    assert.is((await readFile(file, 'utf8')).trim(), 'new-1')
    assert.is(await replaceOwnTokenFile(dir, 'start', 'new-2'), undefined, 'the file holds another token (the admin\'s own): left alone')
    assert.is((await readFile(file, 'utf8')).trim(), 'new-1')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a forged admin account or mesh token written by a peer that is not the authority is rejected; central\'s reach the site', async () => {
  const mesh = new TestMesh()
  try {
    const central = await mesh.addCentral()
    const site = await mesh.addPeer('site-a', 'site', 'a')
    await mesh.connect(site, central)
    await until(() => site.membership.info(central.id) !== undefined, 10_000, 'connected')
    const t = Date.now()
    const account = (username: string): AdminAccount => ({ username, role: 'mesh-admin', sites: [], passwordHash: 'scrypt$1$1$1$AAAA$AAAA', version: 1, createdAt: t, updatedAt: t, by: 'test' })
    const local = { kind: 'local', service: 'test' } as const
    // the site writes into central's accounts and token, as if it were central
    await site.store.transact(directoryDoc(), local, (d) => { putAdminAccount(d, central.id, account('mallory')) })
    await site.store.transact(licenseDoc(), local, (d) => { setMeshToken(d, central.id, { hash: await0, rotatedAt: t, by: 'mallory' }) })
    await central.store.transact(directoryDoc(), local, (d) => { putAdminAccount(d, central.id, account('meg')) })
    await until(() => site.store.get(directoryDoc()) !== undefined && getAdminAccount(site.store.get(directoryDoc()) as never, central.id, 'meg') !== undefined, 10_000, 'central\'s account at the site')
    const dir = await central.store.open(directoryDoc())
    assert.is(getAdminAccount(dir, central.id, 'mallory'), undefined, 'the site\'s forged account is not at central')
    assert.is(getMeshToken(await central.store.open(licenseDoc()), central.id), undefined, 'nor its mesh token')
    assert.ok(central.sync.getStats().rejected['not-authorized'] >= 1)
  } finally {
    await mesh.teardown()
  }
})
const await0 = await slowHash('forged-token')

test.run()
