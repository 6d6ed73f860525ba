// The mesh side of the HTTP layer, driven with fastify's inject against an in-memory
// MeshApi: every /api/mesh route, admin auth (bearer, session + CSRF, 401/403), body and
// path validation, the error mapping (NotCentralError 409, EnrollmentError 400), mesh
// metrics, join strings kept out of the log, and a central node built without a SiteApi.
import { NotCentralError } from '../crdt/errors.ts'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Actor, JobRecord, JobState } from '../devices/jobs/types.ts'
import { EnrollmentError } from '../crdt/license.ts'
import {
  type DocPeerState, type JoinRequestView, type MeshApi, type MeshStatus, type PrinterView,
  type SiteApi, type SiteInfo, type UsageRecordView, type UsageTotal, type UserView, type JobList, type RoamingView
} from '../ui/api.ts'
import { buildHttpApp, createHttpServer, type HttpServerInit } from '../ui/server.ts'
import { HttpServerConfigError } from '../ui/errors.ts'
import { adminTokenAuthenticator } from '../ui/sessions.ts'

const ADMIN_TOKEN = 'adm-tok-mesh-1a2b3c4d5e'
const ALICE_PIN = 'pin-alice-9931'
const T0 = Date.UTC(2024, 4, 31, 9, 0, 0)
/** Peer ids of the mesh the fake describes. */
const CENTRAL = '12D3KooWCentral0000000000000000000000000000000000'
const SITE_A = '12D3KooWSiteA00000000000000000000000000000000000'
const SITE_B = '12D3KooWSiteB00000000000000000000000000000000000'
const TERMINAL_A1 = '12D3KooWTerminalA1000000000000000000000000000000'
const CLIENT_GONE = '12D3KooWClientGone00000000000000000000000000000'
/** The join string the fake hands out: must reach the caller and nothing else. */
const JOIN_SECRET = 'pmjoin1.c2VjcmV0LWpvaW4tc3RyaW5nLTQyNDI0Mg'
const APPROVAL_JOIN_STRING = 'pmjoin1.YXBwcm92YWwtam9pbi1zdHJpbmctOTk5'

/** An in-memory mesh: central (or a site, when `role` is `site`) with a few peers and documents. */
class FakeMesh implements MeshApi {
  blockList: string[] = []
  readonly requests: JoinRequestView[] = [
    { peer: TERMINAL_A1, role: 'terminal', site: 'site-a', requestedAt: T0 },
    { peer: SITE_B, role: 'site', site: 'site-b', requestedAt: T0 - 3_600_000, approvedAt: T0 - 60_000 }
  ]

  readonly revoked = new Map<string, string>()
  lastToken: { role: string, site: string, ttlHours?: number } | undefined
  /** Makes createJoinToken throw this. */
  tokenError: Error | undefined
  stats: MeshStatus['stats'] = {
    envelopesIn: 1200,
    envelopesOut: 980,
    bytesIn: 5_242_880,
    bytesOut: 4_194_304,
    rejected: { 'bad-signature': 3, 'no-certificate': 1, 'odd "reason"\nhere': 2 }
  }

  constructor (readonly role: 'central' | 'site' = 'central') {}

  status (): MeshStatus {
    const self = this.role === 'central'
      ? { peer: CENTRAL, role: 'central', authority: CENTRAL, addresses: ['/ip4/127.0.0.1/tcp/4001'] }
      : { peer: SITE_A, role: 'site', site: 'site-a', authority: CENTRAL, addresses: ['/ip4/127.0.0.1/tcp/4002'] }
    const doc = (name: string, peers: Record<string, DocPeerState>): MeshStatus['documents'][number] => ({ doc: name, peers, changes: 1 })
    return {
      self,
      peers: [
        { peer: SITE_A, role: 'site', site: 'site-a', addresses: ['/ip4/127.0.0.1/tcp/4002'], connected: true, lastSeen: T0, revoked: false },
        { peer: SITE_B, role: 'site', site: 'site-b', addresses: [], connected: true, lastSeen: T0, revoked: false },
        { peer: CLIENT_GONE, role: 'client', site: 'site-a', addresses: [], connected: false, lastSeen: T0 - 86_400_000, revoked: this.revoked.has(CLIENT_GONE) }
      ],
      documents: [
        doc('v1/license', { [SITE_A]: 'in-sync', [SITE_B]: 'in-sync' }),
        doc('v1/directory', { [SITE_A]: 'behind', [SITE_B]: 'in-sync' }),
        doc('v1/acct/x/2024-05', { [SITE_A]: 'ahead', [SITE_B]: 'behind' }),
        // Behind only a peer that is not connected: not lag this node can catch up on now.
        doc('v1/jobs/site-a', { [CLIENT_GONE]: 'behind', [SITE_B]: 'unknown' })
      ],
      stats: this.stats
    }
  }

  blocked (): string[] { return [...this.blockList] }

  async setBlocked (peers: string[]): Promise<void> { this.blockList = [...peers] }

  async createJoinToken (role: string, site: string, ttlHours?: number): Promise<{ joinString: string, tokenId: string, expiresAt: number }> {
    this.central()
    if (this.tokenError !== undefined) throw this.tokenError
    this.lastToken = { role, site, ...(ttlHours !== undefined ? { ttlHours } : {}) }
    return { joinString: JOIN_SECRET, tokenId: 'tok-0001', expiresAt: T0 + (ttlHours ?? 168) * 3_600_000 }
  }

  async approvalJoinString (): Promise<string> {
    this.central()
    return APPROVAL_JOIN_STRING
  }

  joinRequests (): JoinRequestView[] {
    this.central()
    return this.requests.map((r) => ({ ...r }))
  }

  async approve (peer: string): Promise<void> {
    this.central()
    const r = this.requests.find((x) => x.peer === peer)
    if (r === undefined) throw new EnrollmentError(`no join request from ${peer}`)
    r.approvedAt = T0
  }

  async revoke (peer: string, reason: string): Promise<void> {
    this.central()
    this.revoked.set(peer, reason)
  }

  private central (): void {
    if (this.role !== 'central') throw new NotCentralError()
  }
}

/** Just enough of a site for user logins and the print routes to answer. */
class TinySite implements SiteApi {
  info (): SiteInfo { return { site: 'site-a', hostname: 'site-a.example', ippUri: 'ipp://site-a.example:631/ipp/print', version: '0.1.0' } }
  async authenticateUser (username: string, pin: string): Promise<Actor | undefined> {
    return username === 'alice' && pin === ALICE_PIN ? { user: 'alice', admin: false } : undefined
  }

  authenticateAdmin (token: string): Actor | undefined { return token === ADMIN_TOKEN ? { user: 'admin', admin: true } : undefined }
  listJobs (): JobList { return { jobs: [], remote: [] } }
  roaming (): RoamingView { return { site: 'site-a', hostname: 'site-a.example', mode: 'separate', partners: [], clients: { otherUsers: false, spooling: true }, terminals: { configured: false, trustUserName: true }, policy: { forceDuplex: false, monoGroups: [] }, times: { holdHours: 48, retentionHours: 168, set: [], startUp: { holdHours: 48, retentionHours: 168 } } } }
  async setRoaming (): Promise<RoamingView> { throw new Error('not in this test') }
  async setClientSettings (): Promise<RoamingView> { throw new Error('not in this test') }
  async setTerminalModes (): Promise<RoamingView> { throw new Error('not in this test') }
  async setPrintPolicy (): Promise<RoamingView> { throw new Error('not in this test') }
  async setTimes (): Promise<RoamingView> { throw new Error('not in this test') }
  async releaseJob (): Promise<JobRecord> { throw new Error('not in this test') }
  async deleteJob (): Promise<JobRecord> { throw new Error('not in this test') }
  async printers (): Promise<PrinterView[]> { return [] }
  usageRecords (): UsageRecordView[] { return [] }
  usageTotals (): UsageTotal[] { return [] }
  jobStates (): ReadonlyMap<JobState, number> { return new Map() }
  users (): UserView[] { return [] }
  async importUsers (): Promise<{ imported: number }> { return { imported: 0 } }
}

interface Harness {
  app: FastifyInstance
  mesh: FakeMesh | undefined
  log: () => string
}

/**
 * central: mesh (as central) and the admin token, no SiteApi. site: SiteApi and a
 * mesh that is not central. bare-site: SiteApi only. both: SiteApi and a central mesh, so
 * user logins and central calls meet in one app (for the auth checks).
 */
type Shape = 'central' | 'site' | 'bare-site' | 'both'

async function harness (shape: Shape): Promise<Harness> {
  let captured = ''
  const sink = new Writable({ write (chunk, _enc, cb) { captured += String(chunk); cb() } })
  const logger: Logger = pino({ level: 'trace' }, sink)
  const mesh = shape === 'bare-site' ? undefined : new FakeMesh(shape === 'site' ? 'site' : 'central')
  const init: Omit<HttpServerInit, 'host' | 'port'> = shape === 'central'
    ? { mesh, adminToken: ADMIN_TOKEN, logger, now: () => T0 }
    : { api: new TinySite(), ...(mesh !== undefined ? { mesh } : {}), logger, now: () => T0 }
  const app = buildHttpApp(init)
  await app.ready()
  return { app, mesh, log: () => captured }
}

function withApp (name: string, shape: Shape, body: (h: Harness & { mesh: FakeMesh }) => Promise<void>): void {
  test(name, async () => {
    const h = await harness(shape)
    try {
      await body(h as Harness & { mesh: FakeMesh })
    } finally {
      await h.app.close()
    }
  })
}

const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` }

interface Login { cookie: string, csrfToken: string }

async function sessionOf (res: LightMyRequestResponse): Promise<Login> {
  assert.is(res.statusCode, 200, res.body)
  const c = res.cookies.find((x) => x.name === 'printmesh-session')
  assert.ok(c, 'session cookie set')
  return { cookie: `printmesh-session=${c.value}`, csrfToken: res.json().csrfToken }
}

async function adminLogin (app: FastifyInstance): Promise<Login> {
  return await sessionOf(await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: ADMIN_TOKEN } }))
}

function assertJsonError (res: LightMyRequestResponse, status: number, pattern?: RegExp): void {
  assert.is(res.statusCode, status, res.body)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const body = res.json()
  assert.type(body.error, 'string')
  if (pattern !== undefined) assert.match(body.error, pattern)
}

// ---- central without a SiteApi ----

withApp('central: no SiteApi, so print routes are 404 while the mesh and admin login work', 'central', async ({ app }) => {
  for (const [method, url] of [['GET', '/api/jobs'], ['GET', '/api/jobs?scope=all'], ['POST', '/api/jobs/j1/release'], ['DELETE', '/api/jobs/j1'],
    ['GET', '/api/printers'], ['GET', '/api/usage/totals?by=user'], ['GET', '/api/usage/records'], ['GET', '/api/usage.csv'],
    ['GET', '/api/users'], ['POST', '/api/users/import']] as const) {
    // Refused before authentication or body checks, with and without credentials.
    assertJsonError(await app.inject({ method, url }), 404, /this node has no print service/)
    assertJsonError(await app.inject({ method, url, headers: bearer }), 404, /no print service/)
  }
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'alice', pin: ALICE_PIN } }), 404, /no print service/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', payload: {} }), 404, /no print service/)

  const status = await app.inject({ url: '/api/mesh', headers: bearer })
  assert.is(status.statusCode, 200, status.body)
  assert.is(status.json().self.role, 'central')

  assertJsonError(await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: 'nope' } }), 401, /wrong admin token/)
  const admin = await adminLogin(app)
  const session = await app.inject({ url: '/api/session', headers: { cookie: admin.cookie } })
  assert.equal(session.json(), { user: 'admin', admin: true, csrfToken: admin.csrfToken })
  assert.is((await app.inject({ url: '/api/mesh', headers: { cookie: admin.cookie } })).statusCode, 200)
})

withApp('central: /api/info says central, with no print service', 'central', async ({ app }) => {
  const res = await app.inject({ url: '/api/info' })
  assert.is(res.statusCode, 200)
  assert.equal(res.json(), { role: 'central', peer: CENTRAL, services: { print: false, mesh: true } })
})

withApp('site with mesh: /api/info carries the site fields, role and peer', 'site', async ({ app }) => {
  const res = await app.inject({ url: '/api/info' })
  assert.equal(res.json(), {
    site: 'site-a', hostname: 'site-a.example', ippUri: 'ipp://site-a.example:631/ipp/print', version: '0.1.0',
    role: 'site', peer: SITE_A, services: { print: true, mesh: true }
  })
})

withApp('site without mesh: mesh routes are 404, /api/info says site', 'bare-site', async ({ app }) => {
  for (const [method, url] of [['GET', '/api/mesh'], ['GET', '/api/mesh/blocked'], ['PUT', '/api/mesh/blocked'], ['POST', '/api/mesh/tokens'],
    ['GET', '/api/mesh/requests'], ['POST', `/api/mesh/requests/${SITE_B}/approve`], ['POST', `/api/mesh/peers/${SITE_B}/revoke`], ['GET', '/api/license']] as const) {
    assertJsonError(await app.inject({ method, url, headers: bearer }), 404, /this node has no mesh service/)
  }
  // central's LDAP sync is not a site's: said so, not a bare 404
  for (const [method, url] of [['GET', '/api/ldap/status'], ['POST', '/api/ldap/sync']] as const) {
    assertJsonError(await app.inject({ method, url, headers: bearer }), 404, /this node has no ldap service/)
  }
  const info = (await app.inject({ url: '/api/info' })).json()
  assert.equal({ role: info.role, services: info.services, site: info.site }, { role: 'site', services: { print: true, mesh: false }, site: 'site-a' })
  const metrics = (await app.inject({ url: '/metrics' })).body
  assert.not.match(metrics, /printmesh_mesh_/)
  assert.match(metrics, /printmesh_jobs\{state="held"\} 0/)
})

withApp('GET /api/mesh/join-string gives admins the approval join string and never logs it', 'central', async ({ app, log }) => {
  assert.is((await app.inject({ method: 'GET', url: '/api/mesh/join-string' })).statusCode, 401)
  const ok = await app.inject({ method: 'GET', url: '/api/mesh/join-string', headers: bearer })
  assert.is(ok.statusCode, 200)
  assert.equal(ok.json(), { joinString: APPROVAL_JOIN_STRING })
  assert.not.ok(log().includes(APPROVAL_JOIN_STRING), 'the join string reached the log')
})

withApp('GET /api/mesh/join-string off central is a 409', 'site', async ({ app }) => {
  assert.is((await app.inject({ method: 'GET', url: '/api/mesh/join-string', headers: bearer })).statusCode, 409)
})

test('a wrongly assembled HTTP layer fails when built', () => {
  const logger = pino({ level: 'silent' })
  assert.throws(() => buildHttpApp({ mesh: new FakeMesh(), logger }), (err: unknown) => err instanceof HttpServerConfigError && /adminToken/.test(err.message))
  assert.throws(() => buildHttpApp({ mesh: new FakeMesh(), adminToken: '', logger }), (err: unknown) => err instanceof HttpServerConfigError && /empty/.test(err.message))
  assert.throws(() => buildHttpApp({ adminToken: ADMIN_TOKEN, logger }), (err: unknown) => err instanceof HttpServerConfigError && /SiteApi, a MeshApi/.test(err.message))
  assert.throws(() => createHttpServer({ mesh: new FakeMesh(), logger, host: '127.0.0.1', port: 0 }), (err: unknown) => err instanceof HttpServerConfigError)
})

test('an adminToken in the init wins over the SiteApi\'s check', async () => {
  const app = buildHttpApp({ api: new TinySite(), mesh: new FakeMesh('site'), adminToken: 'the-http-token-1234', logger: pino({ level: 'silent' }) })
  try {
    assert.is((await app.inject({ url: '/api/mesh', headers: { authorization: 'Bearer the-http-token-1234' } })).statusCode, 200)
    assertJsonError(await app.inject({ url: '/api/mesh', headers: bearer }), 401, /bearer/)
    assert.is((await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: 'the-http-token-1234' } })).statusCode, 200)
  } finally {
    await app.close()
  }
})

test('adminTokenAuthenticator accepts only the exact token', () => {
  const check = adminTokenAuthenticator(ADMIN_TOKEN)
  assert.equal(check(ADMIN_TOKEN), { user: 'admin', admin: true })
  assert.is(check(ADMIN_TOKEN.slice(0, -1)), undefined)
  assert.is(check(`${ADMIN_TOKEN}x`), undefined)
  assert.is(check(''), undefined)
})

// ---- auth ----

withApp('mesh routes: 401 without credentials, 403 for users, 403 without CSRF on session writes', 'both', async ({ app, mesh }) => {
  const routes = [['GET', '/api/mesh'], ['GET', '/api/mesh/blocked'], ['PUT', '/api/mesh/blocked'], ['POST', '/api/mesh/tokens'],
    ['GET', '/api/mesh/requests'], ['POST', `/api/mesh/requests/${TERMINAL_A1}/approve`], ['POST', `/api/mesh/peers/${SITE_B}/revoke`]] as const
  const alice = await sessionOf(await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'alice', pin: ALICE_PIN } }))
  for (const [method, url] of routes) {
    assertJsonError(await app.inject({ method, url }), 401, /not logged in/)
    assertJsonError(await app.inject({ method, url, headers: { authorization: 'Bearer wrong-token' } }), 401, /bearer/)
    assertJsonError(await app.inject({ method, url, headers: { cookie: alice.cookie, 'x-csrf-token': alice.csrfToken }, payload: {} }), 403, /administrators/)
  }
  const admin = await adminLogin(app)
  const writes = [
    ['PUT', '/api/mesh/blocked', { peers: [CLIENT_GONE] }],
    ['POST', '/api/mesh/tokens', { role: 'site', site: 'site-c' }],
    ['POST', `/api/mesh/requests/${TERMINAL_A1}/approve`, {}],
    ['POST', `/api/mesh/peers/${SITE_B}/revoke`, { reason: 'decommissioned' }]
  ] as const
  for (const [method, url, payload] of writes) {
    assertJsonError(await app.inject({ method, url, headers: { cookie: admin.cookie }, payload }), 403, /CSRF/)
    assertJsonError(await app.inject({ method, url, headers: { cookie: admin.cookie, 'x-csrf-token': 'x'.repeat(admin.csrfToken.length) }, payload }), 403, /CSRF/)
  }
  assert.equal(mesh.blockList, [], 'nothing changed without the CSRF token')
  assert.is(mesh.lastToken, undefined)
  assert.is(mesh.requests[0].approvedAt, undefined)
  assert.is(mesh.revoked.size, 0)
  for (const [method, url, payload] of writes) {
    const res = await app.inject({ method, url, headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrfToken }, payload })
    assert.ok(res.statusCode === 200 || res.statusCode === 201, `${method} ${url}: ${res.statusCode} ${res.body}`)
  }
  // Reads need no CSRF token.
  assert.is((await app.inject({ url: '/api/mesh/requests', headers: { cookie: admin.cookie } })).statusCode, 200)
})

// ---- status and block list ----

withApp('GET /api/mesh returns the MeshStatus as JSON', 'central', async ({ app, mesh }) => {
  const res = await app.inject({ url: '/api/mesh', headers: bearer })
  assert.is(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  assert.is(res.headers['cache-control'], 'no-store')
  assert.equal(res.json(), JSON.parse(JSON.stringify(mesh.status())))
})

withApp('block list: GET, PUT replaces it (duplicates dropped), 1000 entries fit', 'site', async ({ app, mesh }) => {
  assert.equal((await app.inject({ url: '/api/mesh/blocked', headers: bearer })).json(), { peers: [] })
  const put = await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: { peers: [CLIENT_GONE, SITE_B, CLIENT_GONE] } })
  assert.is(put.statusCode, 200, put.body)
  assert.equal(put.json(), { peers: [CLIENT_GONE, SITE_B] })
  assert.equal(mesh.blockList, [CLIENT_GONE, SITE_B])
  assert.equal((await app.inject({ url: '/api/mesh/blocked', headers: bearer })).json(), { peers: [CLIENT_GONE, SITE_B] })
  const many = Array.from({ length: 1000 }, (_, i) => `Peer${i}`)
  const full = await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: { peers: many } })
  assert.is(full.statusCode, 200, full.body)
  assert.is(full.json().peers.length, 1000)
  const cleared = await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: { peers: [] } })
  assert.equal(cleared.json(), { peers: [] })
})

withApp('block list: bad bodies are 400 and change nothing', 'central', async ({ app, mesh }) => {
  mesh.blockList = [SITE_B]
  const bad: unknown[] = [
    [SITE_B], {}, { peers: SITE_B }, { peers: null }, { peers: [42] }, { peers: [''] }, { peers: ['has space'] },
    { peers: ['semi;colon'] }, { peers: ['x'.repeat(129)] }, { peers: ['../etc'] },
    { peers: Array.from({ length: 1001 }, (_, i) => `Peer${i}`) }
  ]
  for (const payload of bad) {
    assertJsonError(await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: payload as object }), 400, /peers|JSON object/)
  }
  assertJsonError(await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer }), 400)
  assertJsonError(await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: { ...bearer, 'content-type': 'application/json' }, payload: '{"peers": [' }), 400, /not valid JSON/)
  assert.equal(mesh.blockList, [SITE_B])
  assert.ok((await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: { peers: ['x'.repeat(128)] } })).statusCode === 200)
})

// ---- join tokens ----

withApp('join tokens: 201 with the join string, id and expiry; ttlHours is passed on', 'central', async ({ app, mesh }) => {
  const res = await app.inject({ method: 'POST', url: '/api/mesh/tokens', headers: bearer, payload: { role: 'terminal', site: 'site-a' } })
  assert.is(res.statusCode, 201, res.body)
  assert.equal(res.json(), { joinString: JOIN_SECRET, tokenId: 'tok-0001', expiresAt: T0 + 168 * 3_600_000 })
  assert.equal(mesh.lastToken, { role: 'terminal', site: 'site-a' })
  const withTtl = await app.inject({ method: 'POST', url: '/api/mesh/tokens', headers: bearer, payload: { role: 'client', site: 'branch_7.lab:2', ttlHours: 1.5 } })
  assert.is(withTtl.statusCode, 201)
  assert.equal(mesh.lastToken, { role: 'client', site: 'branch_7.lab:2', ttlHours: 1.5 })
})

withApp('join tokens: bad role, site or ttl is 400', 'central', async ({ app, mesh }) => {
  const bad: unknown[] = [
    {}, { site: 'site-a' }, { role: 'central', site: 'site-a' }, { role: 'admin', site: 'site-a' }, { role: 'site' },
    { role: 'site', site: '' }, { role: 'site', site: 'a b' }, { role: 'site', site: 'x'.repeat(129) }, { role: 'site', site: 7 },
    { role: 'site', site: 'site-a', ttlHours: 0 }, { role: 'site', site: 'site-a', ttlHours: -1 }, { role: 'site', site: 'site-a', ttlHours: '24' },
    { role: 'site', site: 'site-a', ttlHours: 721 }, ['site', 'site-a']
  ]
  for (const payload of bad) {
    assertJsonError(await app.inject({ method: 'POST', url: '/api/mesh/tokens', headers: bearer, payload: payload as object }), 400, /role|site|ttlHours|JSON object/)
  }
  assert.is(mesh.lastToken, undefined)
})

withApp('join tokens: an EnrollmentError from central is 400 with its message', 'central', async ({ app, mesh }) => {
  mesh.tokenError = new EnrollmentError('license limit reached: 50 terminals')
  assertJsonError(await app.inject({ method: 'POST', url: '/api/mesh/tokens', headers: bearer, payload: { role: 'terminal', site: 'site-a' } }), 400, /^license limit reached: 50 terminals$/)
})

// ---- requests, approve, revoke ----

withApp('join requests: list and approve; an unknown peer is 400; a bad peer id is 400', 'central', async ({ app, mesh }) => {
  const list = await app.inject({ url: '/api/mesh/requests', headers: bearer })
  assert.equal(list.json(), { requests: mesh.joinRequests() })
  const ok = await app.inject({ method: 'POST', url: `/api/mesh/requests/${TERMINAL_A1}/approve`, headers: bearer })
  assert.is(ok.statusCode, 200, ok.body)
  assert.equal(ok.json(), { ok: true })
  assert.is(mesh.requests[0].approvedAt, T0)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/mesh/requests/12D3KooWNobody/approve', headers: bearer }), 400, /no join request from 12D3KooWNobody/)
  for (const peer of ['bad%20peer', 'x'.repeat(129), 'a.b', 'a%2Fb']) {
    assertJsonError(await app.inject({ method: 'POST', url: `/api/mesh/requests/${peer}/approve`, headers: bearer }), 400, /peer id/)
  }
})

withApp('revoke: needs a reason; records it; bad peer ids are 400', 'central', async ({ app, mesh }) => {
  const url = `/api/mesh/peers/${CLIENT_GONE}/revoke`
  for (const payload of [undefined, {}, { reason: '' }, { reason: '   ' }, { reason: 42 }, { reason: 'x'.repeat(501) }]) {
    assertJsonError(await app.inject({ method: 'POST', url, headers: bearer, ...(payload !== undefined ? { payload } : {}) }), 400, /reason|JSON object/)
  }
  assert.is(mesh.revoked.size, 0)
  const ok = await app.inject({ method: 'POST', url, headers: bearer, payload: { reason: ' laptop stolen ' } })
  assert.is(ok.statusCode, 200, ok.body)
  assert.equal(ok.json(), { ok: true })
  assert.equal([...mesh.revoked], [[CLIENT_GONE, 'laptop stolen']])
  assertJsonError(await app.inject({ method: 'POST', url: '/api/mesh/peers/no-dashes/revoke', headers: bearer, payload: { reason: 'x' } }), 400, /peer id/)
})

withApp('central-only calls on a site are 409 with NotCentralError\'s message', 'site', async ({ app }) => {
  const calls = [
    ['POST', '/api/mesh/tokens', { role: 'site', site: 'site-c' }],
    ['GET', '/api/mesh/requests', undefined],
    ['POST', `/api/mesh/requests/${TERMINAL_A1}/approve`, undefined],
    ['POST', `/api/mesh/peers/${SITE_B}/revoke`, { reason: 'gone' }]
  ] as const
  for (const [method, url, payload] of calls) {
    assertJsonError(await app.inject({ method, url, headers: bearer, ...(payload !== undefined ? { payload } : {}) }), 409, /^only the central node can do this$/)
  }
  // What every node can do still works on a site.
  assert.is((await app.inject({ url: '/api/mesh', headers: bearer })).json().self.role, 'site')
  assert.is((await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers: bearer, payload: { peers: [SITE_B] } })).statusCode, 200)
})

// ---- metrics ----

/** Checks the exposition format: HELP and TYPE before samples, label values escaped, one family per name. */
function parseMetrics (text: string): Map<string, number> {
  assert.ok(text.endsWith('\n'))
  const declared = new Map<string, string>()
  const helped = new Set<string>()
  const samples = new Map<string, number>()
  for (const line of text.split('\n').filter((l) => l !== '')) {
    const help = /^# HELP (\w+) \S.*$/.exec(line)
    if (help !== null) { assert.not.ok(helped.has(help[1]), `HELP twice: ${help[1]}`); helped.add(help[1]); continue }
    const type = /^# TYPE (\w+) (gauge|counter|histogram|summary)$/.exec(line)
    if (type !== null) { assert.ok(helped.has(type[1]), `TYPE before HELP: ${line}`); declared.set(type[1], type[2]); continue }
    const sample = /^(\w+)(\{[a-z_]+="(?:[^"\\\n]|\\\\|\\"|\\n)*"(?:,[a-z_]+="(?:[^"\\\n]|\\\\|\\"|\\n)*")*\})? (-?[\d.]+(?:e[+-]?\d+)?|[Nn]a[Nn]|[+-]Inf)$/.exec(line)
    assert.ok(sample, `bad sample line: ${line}`)
    const family = sample[1].replace(/_(bucket|sum|count)$/, '')
    assert.ok(declared.has(sample[1]) || declared.get(family) === 'histogram' || declared.get(family) === 'summary', `undeclared family: ${line}`)
    if (declared.get(sample[1]) === 'counter') assert.match(sample[1], /_total$/, 'counters end in _total')
    samples.set(`${sample[1]}${sample[2] ?? ''}`, Number(sample[3]))
  }
  return samples
}

withApp('metrics on central: mesh and sync families, no job families', 'central', async ({ app, mesh }) => {
  const res = await app.inject({ url: '/metrics' })
  assert.is(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const m = parseMetrics(res.body)
  assert.is(m.get('printmesh_mesh_peers{state="connected"}'), 2)
  assert.is(m.get('printmesh_mesh_peers{state="known"}'), 3)
  assert.is(m.get('printmesh_mesh_documents'), 4)
  assert.is(m.get('printmesh_sync_envelopes_total{direction="in"}'), 1200)
  assert.is(m.get('printmesh_sync_envelopes_total{direction="out"}'), 980)
  assert.is(m.get('printmesh_sync_bytes_total{direction="in"}'), 5_242_880)
  assert.is(m.get('printmesh_sync_bytes_total{direction="out"}'), 4_194_304)
  assert.is(m.get('printmesh_sync_rejected_total{reason="bad-signature"}'), 3)
  assert.is(m.get('printmesh_sync_rejected_total{reason="no-certificate"}'), 1)
  assert.is(m.get('printmesh_sync_rejected_total{reason="odd \\"reason\\"\\nhere"}'), 2)
  // directory (behind site-a) and acct (behind site-b); jobs is behind only a disconnected peer.
  assert.is(m.get('printmesh_sync_lag_documents'), 2)
  assert.match(res.body, /^# TYPE printmesh_mesh_peers gauge$/m)
  assert.match(res.body, /^# TYPE printmesh_sync_rejected_total counter$/m)
  assert.match(res.body, /^# TYPE printmesh_sync_lag_documents gauge$/m)
  assert.not.match(res.body, /printmesh_jobs|printmesh_usage_/)
  assert.match(res.body, /^# TYPE printmesh_http_requests_total counter$/m)

  mesh.stats = { envelopesIn: 0, envelopesOut: 0, bytesIn: 0, bytesOut: 0, rejected: {} }
  const quiet = parseMetrics((await app.inject({ url: '/metrics' })).body)
  assert.is([...quiet.keys()].filter((k) => k.startsWith('printmesh_sync_rejected_total')).length, 0, 'no reasons, no samples')
})

withApp('metrics on a site with a mesh: job and mesh families side by side', 'site', async ({ app }) => {
  const m = parseMetrics((await app.inject({ url: '/metrics' })).body)
  assert.is(m.get('printmesh_jobs{state="held"}'), 0)
  assert.is(m.get('printmesh_usage_pages_total'), 0)
  assert.is(m.get('printmesh_mesh_peers{state="connected"}'), 2)
  assert.is(m.get('printmesh_sync_lag_documents'), 2)
})

// ---- logs ----

withApp('the join string is returned once and never logged; admin actions are', 'central', async ({ app, log }) => {
  const admin = await adminLogin(app)
  const headers = { cookie: admin.cookie, 'x-csrf-token': admin.csrfToken }
  const res = await app.inject({ method: 'POST', url: '/api/mesh/tokens', headers, payload: { role: 'site', site: 'site-c', ttlHours: 24 } })
  assert.is(res.json().joinString, JOIN_SECRET)
  // A client echoing the join string back (say, pasted in the wrong field) does not leak it either.
  await app.inject({ method: 'PUT', url: '/api/mesh/blocked', headers, payload: { peers: [JOIN_SECRET], joinString: JOIN_SECRET } })
  await app.inject({ method: 'POST', url: `/api/mesh/peers/${SITE_B}/revoke`, headers, payload: { reason: 'moved', joinString: JOIN_SECRET } })
  await app.inject({ method: 'POST', url: `/api/mesh/requests/${TERMINAL_A1}/approve`, headers })
  const output = log()
  assert.match(output, /join token created/)
  assert.match(output, /tok-0001/)
  assert.match(output, /peer revoked/)
  assert.match(output, /join request approved/)
  for (const secret of [JOIN_SECRET, JOIN_SECRET.slice('pmjoin1.'.length), ADMIN_TOKEN, admin.csrfToken, admin.cookie.split('=')[1]]) {
    assert.not.ok(output.includes(secret), `secret ${secret.slice(0, 12)}… found in the log`)
  }
})

// ---- lifecycle ----

test('createHttpServer: a central node (mesh, token checker, no SiteApi) serves on a real port', async () => {
  const server = createHttpServer({ mesh: new FakeMesh(), adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0 })
  await server.start()
  try {
    const base = `http://127.0.0.1:${server.port}`
    assert.is((await (await fetch(`${base}/api/info`)).json()).role, 'central')
    assert.is((await fetch(`${base}/api/mesh`, { headers: bearer })).status, 200)
    assert.is((await fetch(`${base}/api/jobs`)).status, 404)
    assert.is((await fetch(`${base}/admin`)).status, 200)
  } finally {
    await server.stop()
  }
})

test.run()
