// The HTTP layer on its own: every route driven with fastify's inject against a small
// in-memory SiteApi, checking status codes, JSON errors, sessions, CSRF, bearer auth,
// rate limiting, CSV output, metrics and that secrets never reach the log.
import { siteId } from '../crdt/names.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { totalUsageBy } from '../crdt/accounting.ts'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import {
  InvalidJobStateError, JobNotFoundError, NotAuthorizedError, PrinterNotFoundError,
  type Actor, type JobRecord, type JobState
} from '../devices/jobs/types.ts'
import {
  type PrinterView, type SiteApi, type SiteInfo, type UsageQuery, type UsageRecordView,
  type UsageTotal, type UserView, type JobList, type RoamingView
} from '../ui/api.ts'
import { buildHttpApp, createHttpServer, JSON_BODY_LIMIT } from '../ui/server.ts'
import { MAX_BEARER_FAILURES_PER_IP, MAX_FAILURES_PER_IP, MAX_FAILURES_PER_PAIR, MAX_FAILURES_PER_USER, FAILURE_WINDOW_MS } from '../ui/rate-limit.ts'
import { SESSION_IDLE_MS } from '../ui/sessions.ts'

const ADMIN_TOKEN = 'adm-tok-9f8e7d6c5b4a'
const ALICE_PIN = 'pin-alice-4821'
const BOB_PIN = 'pin-bob-5730'
const T0 = Date.UTC(2024, 4, 31, 9, 0, 0)

/** An in-memory site: alice and bob, two printers, a few jobs and usage records. */
class FakeSite implements SiteApi {
  readonly pins = new Map([['alice', ALICE_PIN], ['bob', BOB_PIN]])
  readonly directory = new Map<string, string>([['alice', 'Alice Liddell'], ['bob', 'Bob Builder']])
  readonly jobs: JobRecord[] = [
    job('j-alice-1', 'alice', 'Quarterly report, final "v2"', 'held'),
    job('j-alice-2', 'alice', 'Old memo', 'printed'),
    job('j-bob-1', 'bob', 'Bob\'s <script>alert(1)</script>', 'held')
  ]

  readonly usage: UsageRecordView[] = [
    usage('u1', 'alice', 'Report, "final"\nsecond line', 4, 1, T0),
    usage('u2', 'bob', '=HYPERLINK("http://evil")', 2, 0, T0 + 86_400_000)
  ]

  /** Slows authenticateUser down so parallel logins overlap. */
  authDelayMs = 0
  /** Makes every call throw this (an unexpected failure). */
  explode: Error | undefined
  lastUsageQuery: UsageQuery | undefined
  lastImport: string | undefined

  info (): SiteInfo {
    this.check()
    return { site: 'site-a', hostname: 'site-a.example', ippUri: 'ipp://site-a.example:8631/ipp/print', version: '0.1.0' }
  }

  async authenticateUser (username: string, pin: string): Promise<Actor | undefined> {
    this.check()
    if (this.authDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.authDelayMs))
    return this.pins.get(username) === pin ? { user: username, admin: false } : undefined
  }

  authenticateAdmin (token: string): Actor | undefined {
    return token === ADMIN_TOKEN ? { user: 'admin', admin: true } : undefined
  }

  jobStates (): ReadonlyMap<JobState, number> {
    const tally = new Map<JobState, number>()
    for (const j of this.jobs) tally.set(j.state, (tally.get(j.state) ?? 0) + 1)
    return tally
  }

  listJobs (actor: Actor, scope: 'mine' | 'all'): JobList {
    this.check()
    if (scope === 'all' && !actor.admin) throw new NotAuthorizedError('admins only')
    return { jobs: this.jobs.filter((j) => scope === 'all' || j.owner === actor.user), remote: [] }
  }

  private roamingSettings: RoamingView = { site: 'site-a', hostname: 'site-a.example', mode: 'separate', partners: [], clients: { otherUsers: false, spooling: true }, terminals: { configured: false, trustUserName: true }, policy: { forceDuplex: false, monoGroups: [] }, times: { holdHours: 48, retentionHours: 168, set: [], startUp: { holdHours: 48, retentionHours: 168 } } }
  roaming (): RoamingView { return this.roamingSettings }
  async setRoaming (input: unknown): Promise<RoamingView> {
    const { partners, mode } = input as { partners?: unknown, mode?: unknown }
    if (!Array.isArray(partners) || (mode !== 'shared' && mode !== 'separate')) throw new InvalidRequestError('partners and mode required')
    this.roamingSettings = { ...this.roamingSettings, mode, partners: partners.map((site) => ({ site: String(site), mutual: false })) }
    return this.roamingSettings
  }

  async setClientSettings (input: unknown): Promise<RoamingView> {
    const { otherUsers } = input as { otherUsers?: unknown }
    if (typeof otherUsers !== 'boolean') throw new InvalidRequestError('otherUsers must be true or false')
    this.roamingSettings = { ...this.roamingSettings, clients: { ...this.roamingSettings.clients, otherUsers } }
    return this.roamingSettings
  }

  async setTerminalModes (): Promise<RoamingView> { throw new Error('not in this test') }
  async setPrintPolicy (): Promise<RoamingView> { throw new Error('not in this test') }
  async setTimes (): Promise<RoamingView> { throw new Error('not in this test') }

  async releaseJob (actor: Actor, jobId: string, printer?: string): Promise<JobRecord> {
    this.check()
    const j = this.find(actor, jobId)
    if (j.state !== 'held') throw new InvalidJobStateError(`job ${jobId} is ${j.state}, not held`)
    const target = printer ?? 'lobby'
    if (!['lobby', 'floor2'].includes(target)) throw new PrinterNotFoundError(target)
    Object.assign(j, { state: 'releasing', printer: target })
    return j
  }

  async deleteJob (actor: Actor, jobId: string): Promise<JobRecord> {
    this.check()
    const j = this.find(actor, jobId)
    if (j.state === 'printed') throw new InvalidJobStateError(`job ${jobId} is already printed`)
    j.state = 'deleted'
    return j
  }

  async printers (): Promise<PrinterView[]> {
    this.check()
    return [
      { name: 'lobby', uri: 'ipp://127.0.0.1:1/ipp/print', state: 'idle', message: '' },
      { name: 'floor2', uri: 'ipp://127.0.0.1:2/ipp/print', state: 'unreachable', message: 'connection refused' }
    ]
  }

  usageRecords (query: UsageQuery): UsageRecordView[] {
    this.check()
    this.lastUsageQuery = query
    return this.usage.filter((u) => (query.from === undefined || u.time >= query.from) && (query.to === undefined || u.time < query.to))
  }

  usageTotals (query: UsageQuery, by: 'user' | 'printer' | 'day'): UsageTotal[] {
    return totalUsageBy(this.usageRecords(query), by)
  }

  users (): UserView[] {
    this.check()
    return [...this.directory].map(([username, fullName]) => ({ username, fullName }))
  }

  async importUsers (csv: string): Promise<{ imported: number }> {
    this.check()
    this.lastImport = csv
    let imported = 0
    for (const line of csv.split(/\r?\n/).filter((l) => l.trim() !== '')) {
      const [username, fullName, pin] = line.split(',')
      if (pin === undefined) throw new InvalidRequestError(`bad row: ${username}`)
      this.directory.set(username, fullName)
      this.pins.set(username, pin)
      imported++
    }
    return { imported }
  }

  private find (actor: Actor, jobId: string): JobRecord {
    const j = this.jobs.find((x) => x.id === jobId)
    if (j === undefined) throw new JobNotFoundError(jobId)
    if (!actor.admin && j.owner !== actor.user) throw new NotAuthorizedError(`job ${jobId} belongs to someone else`)
    return j
  }

  private check (): void {
    if (this.explode !== undefined) throw this.explode
  }
}

function job (id: string, owner: string, name: string, state: JobRecord['state']): JobRecord {
  return { id, ippId: 1, site: siteId('site-a'), queue: 'print', owner, name, state, copies: 1, sides: 'one-sided', pages: 3, colorPages: 1, createdAt: T0, updatedAt: T0 }
}

function usage (id: string, user: string, jobName: string, pages: number, colorPages: number, time: number): UsageRecordView {
  return { id, kind: 'print', user, jobId: `job-${id}`, jobName, printer: 'lobby', site: 'site-a', pages, colorPages, sheets: pages, duplex: false, copies: 1, time }
}

/** One app per test: a fresh fake site, a controllable clock and a captured log. */
interface Harness {
  app: FastifyInstance
  site: FakeSite
  clock: { now: number }
  log: () => string
}

async function harness (): Promise<Harness> {
  const site = new FakeSite()
  const clock = { now: T0 }
  let captured = ''
  const sink = new Writable({ write (chunk, _enc, cb) { captured += String(chunk); cb() } })
  const logger: Logger = pino({ level: 'trace' }, sink)
  const app = buildHttpApp({ api: site, logger, now: () => clock.now })
  await app.ready()
  return { app, site, clock, log: () => captured }
}

/** Runs a test body with a fresh harness and always closes the app. */
function withApp (name: string, body: (h: Harness) => Promise<void>): void {
  test(name, async () => {
    const h = await harness()
    try {
      await body(h)
    } finally {
      await h.app.close()
    }
  })
}

interface Login { cookie: string, csrfToken: string, res: LightMyRequestResponse }

async function login (app: FastifyInstance, username: string, pin: string, remoteAddress = '127.0.0.1'): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url: '/api/login', payload: { username, pin }, remoteAddress })
}

async function loginOk (app: FastifyInstance, username = 'alice', pin = ALICE_PIN): Promise<Login> {
  const res = await login(app, username, pin)
  assert.is(res.statusCode, 200, res.body)
  const c = res.cookies.find((x) => x.name === 'printmesh-session')
  assert.ok(c, 'session cookie set')
  return { cookie: `printmesh-session=${c.value}`, csrfToken: res.json().csrfToken, res }
}

async function adminLogin (app: FastifyInstance): Promise<Login> {
  const res = await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: ADMIN_TOKEN } })
  assert.is(res.statusCode, 200, res.body)
  const c = res.cookies.find((x) => x.name === 'printmesh-session')
  assert.ok(c)
  return { cookie: `printmesh-session=${c.value}`, csrfToken: res.json().csrfToken, res }
}

function assertJsonError (res: LightMyRequestResponse, status: number, pattern?: RegExp): void {
  assert.is(res.statusCode, status, res.body)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const body = res.json()
  assert.type(body.error, 'string')
  assert.ok(body.error.length > 0)
  if (pattern !== undefined) assert.match(body.error, pattern)
}

// ---- sessions ----

withApp('login sets an httpOnly SameSite=Strict session cookie and returns the CSRF token', async ({ app }) => {
  const { res, cookie, csrfToken } = await loginOk(app)
  assert.equal({ ...res.json(), csrfToken: undefined }, { user: 'alice', admin: false, csrfToken: undefined })
  assert.ok(csrfToken.length >= 32)
  const c = res.cookies[0]
  assert.is(c.httpOnly, true)
  assert.is(c.sameSite, 'Strict')
  assert.is(c.path, '/')
  assert.ok(c.value.length >= 32, 'random id')
  assert.is.not(c.value, csrfToken)
  const session = await app.inject({ url: '/api/session', headers: { cookie } })
  assert.is(session.statusCode, 200)
  assert.equal(session.json(), { user: 'alice', admin: false, csrfToken })
})

withApp('a second login gets a new session id and the old one stops working', async ({ app }) => {
  const first = await loginOk(app)
  const second = await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'alice', pin: ALICE_PIN }, headers: { cookie: first.cookie } })
  const c = second.cookies.find((x) => x.name === 'printmesh-session')
  assert.ok(c)
  assert.is.not(`printmesh-session=${c.value}`, first.cookie)
  assertJsonError(await app.inject({ url: '/api/session', headers: { cookie: first.cookie } }), 401)
})

withApp('wrong PIN and unknown user get 401 with the same message', async ({ app }) => {
  const wrong = await login(app, 'alice', 'nope')
  assertJsonError(wrong, 401, /wrong username or PIN/)
  const unknown = await login(app, 'mallory', 'nope')
  assertJsonError(unknown, 401)
  assert.is(unknown.json().error, wrong.json().error)
  assert.is(wrong.cookies.length, 0)
})

withApp('login validates its body', async ({ app }) => {
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'alice' } }), 400, /pin/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', payload: { username: '', pin: 'x' } }), 400)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', payload: [] }), 400)
})

withApp('no session, an unknown session or an expired one is 401', async ({ app, clock }) => {
  assertJsonError(await app.inject({ url: '/api/jobs' }), 401, /not logged in/)
  assertJsonError(await app.inject({ url: '/api/jobs', headers: { cookie: 'printmesh-session=forged' } }), 401)
  const { cookie } = await loginOk(app)
  clock.now += SESSION_IDLE_MS - 1000
  assert.is((await app.inject({ url: '/api/jobs', headers: { cookie } })).statusCode, 200)
  clock.now += SESSION_IDLE_MS - 1000 // still alive: the last call renewed it
  assert.is((await app.inject({ url: '/api/jobs', headers: { cookie } })).statusCode, 200)
  clock.now += SESSION_IDLE_MS
  assertJsonError(await app.inject({ url: '/api/jobs', headers: { cookie } }), 401)
})

withApp('logout needs the CSRF token and ends the session', async ({ app }) => {
  const { cookie, csrfToken } = await loginOk(app)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie } }), 403, /CSRF/)
  const out = await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie, 'x-csrf-token': csrfToken } })
  assert.is(out.statusCode, 200)
  const cleared = out.cookies.find((c) => c.name === 'printmesh-session')
  assert.ok(cleared)
  assert.is(cleared.value, '')
  assertJsonError(await app.inject({ url: '/api/session', headers: { cookie } }), 401)
  // Logging out without a session is harmless.
  assert.is((await app.inject({ method: 'POST', url: '/api/logout' })).statusCode, 200)
})

// ---- jobs ----

withApp('users see only their own jobs; scope=all is for admins; a bad scope is 400', async ({ app }) => {
  const { cookie } = await loginOk(app)
  const mine = await app.inject({ url: '/api/jobs?scope=mine', headers: { cookie } })
  assert.is(mine.statusCode, 200)
  assert.equal(mine.json().jobs.map((j: JobRecord) => j.id), ['j-alice-1', 'j-alice-2'])
  const byDefault = await app.inject({ url: '/api/jobs', headers: { cookie } })
  assert.equal(byDefault.json().jobs.length, 2)
  assertJsonError(await app.inject({ url: '/api/jobs?scope=all', headers: { cookie } }), 403, /administrators/)
  assertJsonError(await app.inject({ url: '/api/jobs?scope=everything', headers: { cookie } }), 400)
})

withApp('release and delete need the session CSRF token', async ({ app, site }) => {
  const { cookie, csrfToken } = await loginOk(app)
  const url = '/api/jobs/j-alice-1/release'
  assertJsonError(await app.inject({ method: 'POST', url, headers: { cookie }, payload: { printer: 'lobby' } }), 403, /CSRF/)
  assertJsonError(await app.inject({ method: 'POST', url, headers: { cookie, 'x-csrf-token': 'x'.repeat(csrfToken.length) }, payload: { printer: 'lobby' } }), 403)
  assertJsonError(await app.inject({ method: 'DELETE', url: '/api/jobs/j-alice-1', headers: { cookie } }), 403)
  assert.is(site.jobs[0].state, 'held', 'nothing happened without the token')
  const ok = await app.inject({ method: 'POST', url, headers: { cookie, 'x-csrf-token': csrfToken }, payload: { printer: 'lobby' } })
  assert.is(ok.statusCode, 200, ok.body)
  assert.is(ok.json().job.state, 'releasing')
  assert.is(ok.json().job.printer, 'lobby')
})

withApp('job errors map to 404, 403 and 409', async ({ app }) => {
  const { cookie, csrfToken } = await loginOk(app)
  const headers = { cookie, 'x-csrf-token': csrfToken }
  assertJsonError(await app.inject({ method: 'POST', url: '/api/jobs/nope/release', headers, payload: {} }), 404, /job nope not found/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/jobs/j-alice-1/release', headers, payload: { printer: 'moon' } }), 404, /printer moon not found/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/jobs/j-bob-1/release', headers, payload: {} }), 403, /someone else/)
  assertJsonError(await app.inject({ method: 'DELETE', url: '/api/jobs/j-bob-1', headers }), 403)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/jobs/j-alice-2/release', headers, payload: {} }), 409, /printed/)
  assertJsonError(await app.inject({ method: 'DELETE', url: '/api/jobs/j-alice-2', headers }), 409)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/jobs/j-alice-1/release', headers, payload: { printer: 42 } }), 400, /printer/)
  const del = await app.inject({ method: 'DELETE', url: '/api/jobs/j-alice-1', headers })
  assert.is(del.statusCode, 200)
  assert.is(del.json().job.state, 'deleted')
})

withApp('release without a body uses the default printer', async ({ app }) => {
  const res = await app.inject({ method: 'POST', url: '/api/jobs/j-alice-1/release', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.is(res.statusCode, 200, res.body)
  assert.is(res.json().job.printer, 'lobby')
})

// ---- admin: bearer and session ----

withApp('admin calls accept a bearer token without session or CSRF', async ({ app, site }) => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const all = await app.inject({ url: '/api/jobs?scope=all', headers: auth })
  assert.equal((await app.inject({ url: '/api/jobs', headers: auth })).json(), all.json(), 'an admin without a scope sees every job')
  assert.is(all.statusCode, 200)
  assert.is(all.json().jobs.length, 3)
  const rel = await app.inject({ method: 'POST', url: '/api/jobs/j-bob-1/release', headers: auth, payload: { printer: 'floor2' } })
  assert.is(rel.statusCode, 200, rel.body)
  assert.is(site.jobs[2].printer, 'floor2')
  const users = await app.inject({ url: '/api/users', headers: auth })
  assert.equal(users.json().users.map((u: UserView) => u.username), ['alice', 'bob'])
  assertJsonError(await app.inject({ url: '/api/users', headers: { authorization: 'Bearer wrong' } }), 401, /bearer/)
  assertJsonError(await app.inject({ url: '/api/users', headers: { authorization: `Basic ${ADMIN_TOKEN}` } }), 401, /Bearer/)
})

withApp('admin login by token opens an admin session; users get 403 on admin routes', async ({ app }) => {
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: 'guess' } }), 401, /admin token/)
  const admin = await adminLogin(app)
  assert.equal({ ...admin.res.json(), csrfToken: undefined }, { user: 'admin', admin: true, csrfToken: undefined })
  assert.is((await app.inject({ url: '/api/jobs?scope=all', headers: { cookie: admin.cookie } })).statusCode, 200)
  assert.is((await app.inject({ url: '/api/usage/records', headers: { cookie: admin.cookie } })).statusCode, 200)
  const user = await loginOk(app)
  for (const url of ['/api/users', '/api/usage/records', '/api/usage/totals?by=user', '/api/usage.csv']) {
    assertJsonError(await app.inject({ url, headers: { cookie: user.cookie } }), 403)
  }
  assertJsonError(await app.inject({ method: 'POST', url: '/api/users/import', headers: { cookie: user.cookie, 'x-csrf-token': user.csrfToken, 'content-type': 'text/csv' }, payload: 'eve,Eve,1' }), 403)
})

withApp('user import takes text/csv from admins, with CSRF on sessions', async ({ app, site }) => {
  const admin = await adminLogin(app)
  const csv = 'carol,Carol Danvers,1111\r\ndave,"Dave",2222\r\n'
  const headers = { cookie: admin.cookie, 'content-type': 'text/csv' }
  assertJsonError(await app.inject({ method: 'POST', url: '/api/users/import', headers, payload: csv }), 403, /CSRF/)
  const ok = await app.inject({ method: 'POST', url: '/api/users/import', headers: { ...headers, 'x-csrf-token': admin.csrfToken }, payload: csv })
  assert.is(ok.statusCode, 200, ok.body)
  assert.equal(ok.json(), { imported: 2 })
  assert.is(site.lastImport, csv, 'the body reaches the API untouched')
  const bad = await app.inject({ method: 'POST', url: '/api/users/import', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'text/csv' }, payload: 'just-a-name' })
  assertJsonError(bad, 400, /bad row/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/users/import', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { rows: [] } }), 400, /text\/csv/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/users/import', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-whatever' }, payload: 'x' }), 415)
})

// ---- rate limiting ----

withApp('wrong PINs from one address lock that username at that address only, with Retry-After until the window passes', async ({ app, clock }) => {
  for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) {
    assertJsonError(await login(app, 'alice', `wrong-${i}`, '10.0.0.1'), 401)
  }
  const locked = await login(app, 'alice', ALICE_PIN, '10.0.0.1')
  assertJsonError(locked, 429, /too many/)
  const retryAfter = Number(locked.headers['retry-after'])
  assert.ok(retryAfter > 0 && retryAfter <= FAILURE_WINDOW_MS / 1000, `Retry-After ${retryAfter}`)
  assertJsonError(await login(app, 'ALICE', ALICE_PIN, '10.0.0.1'), 429, undefined) // case is no way around it
  assert.is((await login(app, 'alice', ALICE_PIN, '10.0.1.1')).statusCode, 200, 'the guesser cannot lock alice out from elsewhere')
  assert.is((await login(app, 'bob', BOB_PIN, '10.0.0.1')).statusCode, 200, 'other users at that address are not affected')
  clock.now += retryAfter * 1000
  assert.is((await login(app, 'alice', ALICE_PIN, '10.0.0.1')).statusCode, 200)
})

withApp('wrong PINs for one username from many addresses: each address gets one try per window, the right PIN from a new address still logs in', async ({ app }) => {
  for (let i = 0; i < MAX_FAILURES_PER_USER; i++) {
    assertJsonError(await login(app, 'alice', `wrong-${i}`, `10.2.0.${i + 1}`), 401)
  }
  // slow mode: a fresh address gets one wrong try, then waits
  assertJsonError(await login(app, 'alice', 'wrong-again', '10.3.0.1'), 401)
  assertJsonError(await login(app, 'alice', 'wrong-again-2', '10.3.0.1'), 429)
  assertJsonError(await login(app, 'alice', ALICE_PIN, '10.3.0.1'), 429)
  assert.is((await login(app, 'alice', ALICE_PIN, '10.4.0.1')).statusCode, 200, 'alice at her own desk is not refused outright')
  assert.is((await login(app, 'bob', 'wrong', '10.3.0.1')).statusCode, 401, 'bob is not in slow mode')
})

withApp('wrong logins from one address across usernames lock that address for PIN logins, never the admin bearer token', async ({ app }) => {
  for (let i = 0; i < MAX_FAILURES_PER_IP; i++) {
    assertJsonError(await login(app, `user${i}`, 'wrong', '192.0.2.7'), 401)
  }
  const res = await login(app, 'alice', ALICE_PIN, '192.0.2.7')
  assertJsonError(res, 429)
  assert.ok(Number(res.headers['retry-after']) > 0)
  assert.is((await login(app, 'alice', ALICE_PIN, '192.0.2.8')).statusCode, 200, 'other addresses are not affected')
  const bearer = (token: string): Promise<LightMyRequestResponse> => app.inject({ url: '/api/users', remoteAddress: '192.0.2.7', headers: { authorization: `Bearer ${token}` } })
  assert.is((await bearer(ADMIN_TOKEN)).statusCode, 200, 'PIN failures never throttle the admin token')
  for (let i = 0; i < MAX_BEARER_FAILURES_PER_IP; i++) assertJsonError(await bearer(`wrong-${i}`), 401)
  assertJsonError(await bearer('wrong-again'), 429)
  assert.is((await bearer(ADMIN_TOKEN)).statusCode, 200, 'nor do wrong tokens: the right one always works')
  const metrics = (await app.inject({ url: '/metrics' })).body
  assert.match(metrics, `printmesh_login_failures_total{method="pin"} ${MAX_FAILURES_PER_IP}`)
  assert.match(metrics, `printmesh_login_failures_total{method="admin-token"} ${MAX_BEARER_FAILURES_PER_IP}`)
  assert.match(metrics, 'printmesh_login_refused_total{limit="address"} 1')
  assert.match(metrics, 'printmesh_login_refused_total{limit="bearer"} 1')
})

withApp('parallel wrong PINs from one address cannot slip past the limit', async ({ app, site }) => {
  site.authDelayMs = 30
  const results = await Promise.all(Array.from({ length: 3 * MAX_FAILURES_PER_PAIR }, async (_, i) =>
    (await login(app, 'alice', `wrong-${i}`, '10.1.0.1')).statusCode))
  assert.is(results.filter((s) => s === 401).length, MAX_FAILURES_PER_PAIR)
  assert.is(results.filter((s) => s === 429).length, 2 * MAX_FAILURES_PER_PAIR)
})

withApp('a successful login clears the failures of that username at that address', async ({ app }) => {
  for (let i = 0; i < MAX_FAILURES_PER_PAIR - 1; i++) assertJsonError(await login(app, 'alice', 'wrong'), 401)
  await loginOk(app)
  for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) assertJsonError(await login(app, 'alice', 'wrong'), 401)
  assertJsonError(await login(app, 'alice', 'wrong'), 429)
})

// ---- request errors ----

withApp('malformed, empty and oversized bodies get JSON 400 / 413', async ({ app }) => {
  const bad = await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' }, payload: '{"username":"alice","pin":' })
  assertJsonError(bad, 400, /not valid JSON/)
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' }, payload: '' }), 400, /empty/)
  const big = JSON.stringify({ username: 'alice', pin: 'x'.repeat(JSON_BODY_LIMIT) })
  assertJsonError(await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' }, payload: big }), 413, /too large/)
})

withApp('unknown routes are JSON 404', async ({ app }) => {
  assertJsonError(await app.inject({ url: '/api/nothing-here' }), 404, /no such resource/)
  assertJsonError(await app.inject({ url: '/web/../server.ts' }), 404)
  assertJsonError(await app.inject({ url: '/web/api.ts' }), 404)
})

withApp('unexpected failures are a generic 500, logged with the details', async ({ app, site, log }) => {
  const { cookie } = await loginOk(app)
  site.explode = new Error('database file is corrupt at /var/lib/x')
  const res = await app.inject({ url: '/api/jobs', headers: { cookie } })
  assertJsonError(res, 500)
  assert.is(res.json().error, 'internal server error')
  assert.not.match(res.body, /corrupt/)
  assert.match(log(), /database file is corrupt/)
})

// ---- accounting ----

withApp('usage totals: by is required, dates accept ISO and ms', async ({ app, site }) => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }
  assertJsonError(await app.inject({ url: '/api/usage/totals', headers: auth }), 400, /"by"/)
  assertJsonError(await app.inject({ url: '/api/usage/totals?by=month', headers: auth }), 400)
  const all = await app.inject({ url: '/api/usage/totals?by=user', headers: auth })
  assert.is(all.statusCode, 200)
  assert.equal(all.json(), {
    by: 'user',
    totals: [
      { key: 'alice', jobs: 1, pages: 4, colorPages: 1, sheets: 4 },
      { key: 'bob', jobs: 1, pages: 2, colorPages: 0, sheets: 2 }
    ]
  })
  const day = await app.inject({ url: '/api/usage/totals?by=day&from=2024-06-01&to=2024-06-02', headers: auth })
  assert.equal(day.json().totals.map((t: UsageTotal) => t.key), ['2024-06-01'])
  assert.equal(site.lastUsageQuery, { from: Date.UTC(2024, 5, 1), to: Date.UTC(2024, 5, 2) })
  await app.inject({ url: `/api/usage/records?from=${T0}&to=2024-06-01T00:00:00Z&user=alice`, headers: auth })
  assert.equal(site.lastUsageQuery, { from: T0, to: Date.UTC(2024, 5, 1), user: 'alice' })
  assertJsonError(await app.inject({ url: '/api/usage/totals?by=user&from=yesterday', headers: auth }), 400, /ISO date/)
  assertJsonError(await app.inject({ url: '/api/usage/records?from=2024-06-02&to=2024-06-01', headers: auth }), 400, /before/)
})

withApp('usage CSV: attachment, header row, RFC 4180 quoting, formulas defused', async ({ app }) => {
  const res = await app.inject({ url: '/api/usage.csv', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.is(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/csv/)
  assert.match(String(res.headers['content-disposition']), /^attachment; filename="printmesh-usage-2024-05-31\.csv"$/)
  const expected = [
    'id,time,kind,user,job id,job name,printer,site,pages,colour pages,sheets,duplex,copies',
    'u1,2024-05-31T09:00:00.000Z,print,alice,job-u1,"Report, ""final""\nsecond line",lobby,site-a,4,1,4,false,1',
    'u2,2024-06-01T09:00:00.000Z,print,bob,job-u2,"\'=HYPERLINK(""http://evil"")",lobby,site-a,2,0,2,false,1',
    ''
  ].join('\r\n')
  assert.is(res.body, expected)
})

// ---- metrics, pages ----

withApp('metrics: jobs by state, HTTP requests and process metrics in Prometheus text format', async ({ app }) => {
  await app.inject({ url: '/api/jobs' }) // a 401
  const res = await app.inject({ url: '/metrics' })
  assert.is(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const lines = res.body.split('\n')
  assert.ok(lines.includes('printmesh_jobs{state="held"} 2'))
  assert.ok(lines.includes('printmesh_jobs{state="printed"} 1'))
  assert.ok(lines.includes('printmesh_jobs{state="failed"} 0'))
  assert.ok(lines.includes('printmesh_usage_pages_total 0'), 'usage counters count charges as they happen (test/metrics.test.ts), not the API\'s records')
  assert.ok(lines.some((l) => /^process_resident_memory_bytes \d+$/.test(l)), 'process metrics')
  assert.ok(lines.some((l) => /^nodejs_eventloop_lag_seconds [\d.e-]+$/.test(l)), 'event-loop metrics')
  assert.ok(lines.includes('printmesh_http_requests_total{status="401"} 1'))
  assert.ok(lines.includes('# TYPE printmesh_http_requests_total counter'))
  // Every sample line is `name{labels} value` and its family was declared before.
  const declared = new Set<string>()
  for (const line of lines.filter((l) => l !== '')) {
    const type = /^# TYPE (\w+) (gauge|counter|histogram|summary)$/.exec(line)
    if (type !== null) { declared.add(type[1]); continue }
    if (line.startsWith('# HELP ')) continue
    const sample = /^(\w+?)(_bucket|_sum|_count)?(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[\d.]+(e[+-]?\d+)?|[Nn]a[Nn]|[+-]Inf)$/.exec(line)
    assert.ok(sample, `bad sample line: ${line}`)
    assert.ok(declared.has(sample[1]) || declared.has(sample[1] + (sample[2] ?? '')), `undeclared family: ${line}`)
  }
  assert.ok(res.body.endsWith('\n'))
})

withApp('pages and their scripts are served with a strict CSP', async ({ app }) => {
  const page = await app.inject({ url: '/' })
  assert.is(page.statusCode, 200)
  assert.match(String(page.headers['content-type']), /^text\/html/)
  assert.match(String(page.headers['content-security-policy']), /script-src 'self'/)
  assert.match(page.body, /<label for="pin">PIN<\/label>/)
  const admin = await app.inject({ url: '/admin' })
  assert.match(admin.body, /<h2 id="login-title">Administrator sign-in<\/h2>/)
  assert.match(String(admin.headers['content-security-policy']), /script-src 'self'/)
  const js = await app.inject({ url: '/web/user.js' })
  assert.is(js.statusCode, 200)
  assert.match(String(js.headers['content-type']), /^text\/javascript/)
  assert.is(js.headers['x-content-type-options'], 'nosniff')
  for (const file of ['common.js', 'user.js', 'admin.js']) {
    const body = (await app.inject({ url: `/web/${file}` })).body
    assert.not.match(body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, `${file} builds DOM from text only`)
  }
})

// ---- logs ----

withApp('PINs, tokens, session ids and CSRF tokens never reach the log', async ({ app, log }) => {
  const user = await loginOk(app)
  await login(app, 'alice', 'pin-wrong-0042')
  await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' }, payload: `{"username":"alice","pin":"${ALICE_PIN}"` })
  const admin = await adminLogin(app)
  await app.inject({ method: 'POST', url: '/api/login/admin', payload: { token: 'adm-guess-31337' } })
  await app.inject({ url: '/api/users', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  await app.inject({ url: '/api/users', headers: { authorization: 'Bearer adm-guess-31337' } })
  await app.inject({ method: 'POST', url: '/api/users/import', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'text/csv' }, payload: 'erin,Erin,pin-erin-7777' })
  const output = log()
  assert.match(output, /login failed/, 'the failures were logged')
  assert.match(output, /user logged in/)
  for (const secret of [ALICE_PIN, 'pin-wrong-0042', ADMIN_TOKEN, 'adm-guess-31337', 'pin-erin-7777',
    user.cookie.split('=')[1], user.csrfToken, admin.cookie.split('=')[1], admin.csrfToken]) {
    assert.not.ok(output.includes(secret), `secret ${secret.slice(0, 6)}… found in the log`)
  }
})

// ---- lifecycle ----

test('createHttpServer: start twice and stop twice are safe, and it serves on a real port', async () => {
  const logger = pino({ level: 'silent' })
  const never = createHttpServer({ api: new FakeSite(), logger, host: '127.0.0.1', port: 0 })
  await never.stop() // stop without start
  const server = createHttpServer({ api: new FakeSite(), logger, host: '127.0.0.1', port: 0 })
  try {
    await Promise.all([server.start(), server.start()])
    await server.start()
    assert.ok(server.port > 0)
    const res = await fetch(`http://127.0.0.1:${server.port}/api/info`)
    assert.is(res.status, 200)
    assert.is((await res.json()).site, 'site-a')
  } finally {
    await server.stop()
    await server.stop()
  }
  const afterStop = await fetch(`http://127.0.0.1:${server.port}/api/info`).then(() => 'answered', () => 'refused')
  assert.is(afterStop, 'refused')
  // And it can start again after a stop.
  await server.start()
  try {
    assert.is((await fetch(`http://127.0.0.1:${server.port}/api/info`)).status, 200)
  } finally {
    await server.stop()
  }
})

test('secureCookies marks the cookie Secure with the __Host- prefix', async () => {
  const app = buildHttpApp({ api: new FakeSite(), logger: pino({ level: 'silent' }), secureCookies: true })
  try {
    const res = await login(app, 'alice', ALICE_PIN)
    const c = res.cookies.find((x) => x.name === '__Host-printmesh-session')
    assert.ok(c)
    assert.is(c.secure, true)
    assert.is(c.path, '/')
  } finally {
    await app.close()
  }
})

test.run()
