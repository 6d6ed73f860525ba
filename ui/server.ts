/**
 * The site's HTTP layer: the JSON API under `/api`, Prometheus metrics at `/metrics` and
 * the web pages at `/`. Every route talks to the node only through {@link SiteApi}.
 *
 * Authentication: a web session (httpOnly, SameSite=Strict cookie holding a random id;
 * the session lives in server memory) or, for admin calls, `Authorization: Bearer <token>`.
 * Session-authenticated mutating calls must echo the session's CSRF token in
 * `X-CSRF-Token`; bearer calls carry no ambient credentials and need none.
 */
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import type { Logger } from 'pino'
import type { Actor } from '../devices/jobs/types.ts'
import { InvalidRequestError, type SiteApi, type UsageQuery, type UsageRecordView } from './api.ts'
import { toCsv } from './csv.ts'
import {
  describeError, ForbiddenError, TooManyLoginAttemptsError, UnauthenticatedError
} from './errors.ts'
import { HttpCounter, METRICS_CONTENT_TYPE, renderMetrics } from './metrics.ts'
import { LoginLimiter, MAX_FAILURES_PER_IP, MAX_FAILURES_PER_USER } from './rate-limit.ts'
import { csrfTokenMatches, SessionStore, type Session } from './sessions.ts'

/** JSON bodies are small (logins, release requests); anything bigger is a mistake or an attack. */
export const JSON_BODY_LIMIT = 64 * 1024
/** A user directory CSV of ~100k rows fits. */
export const CSV_IMPORT_BODY_LIMIT = 8 * 1024 * 1024
/** How often expired sessions and stale login failures are dropped from memory. */
const SWEEP_INTERVAL_MS = 60_000
/** Longest username or PIN accepted; real ones are far shorter, so longer ones are junk. */
const MAX_CREDENTIAL_LENGTH = 256
/** Longest admin token accepted. */
const MAX_TOKEN_LENGTH = 1024
/** Longest job id or printer name accepted in a request. */
const MAX_NAME_LENGTH = 256
/** Methods that change state and therefore need the CSRF token on session calls. */
const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** Header the pages send the CSRF token in. */
const CSRF_HEADER = 'x-csrf-token'
/** Static files of the web UI: URL name → content type. Nothing outside this list is served. */
const WEB_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'admin.html': 'text/html; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'user.js': 'text/javascript; charset=utf-8',
  'admin.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8'
}
/** Pages may load only their own scripts and styles, so injected markup could not run anyway. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
/** Log paths that may carry secrets; pino replaces them before anything is written. */
const REDACTED_LOG_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]', 'req.body.pin', 'req.body.token',
  'headers.authorization', 'headers.cookie', 'headers["x-csrf-token"]',
  'body.pin', 'body.token', 'pin', 'token', 'csrfToken', '*.pin', '*.token', '*.csrfToken'
]

const webDir = new URL('./web/', import.meta.url)

/** Options of {@link createHttpServer}. */
export interface HttpServerInit {
  api: SiteApi
  logger: Logger
  /** Address to listen on, e.g. `127.0.0.1` or `::`. */
  host: string
  /** TCP port; 0 picks a free one (read it back from {@link HttpServer.port}). */
  port: number
  /** Mark the session cookie `Secure` (behind HTTPS); uses the `__Host-` cookie prefix. */
  secureCookies?: boolean
  /** Clock for sessions and rate limits; tests inject one to move time without sleeping. */
  now?: () => number
}

/** A startable HTTP server. */
export interface HttpServer {
  /** Listens; calling it again while started does nothing. */
  start: () => Promise<void>
  /** Closes the listener and drops all sessions; safe when not started. */
  stop: () => Promise<void>
  /** The bound port once started (the configured one before). */
  readonly port: number
}

/** Who is calling, and how they proved it. */
interface Caller {
  actor: Actor
  /** Undefined for bearer-token calls. */
  session?: Session
}

type AuthLevel = 'user' | 'admin'

/**
 * Builds the fastify application with every route, without listening; tests drive it
 * with `inject`. {@link createHttpServer} wraps it into a startable server.
 */
export function buildHttpApp (init: Omit<HttpServerInit, 'host' | 'port'>): FastifyInstance {
  const { api } = init
  const now = init.now ?? Date.now
  const sessions = new SessionStore({ now })
  const limiter = new LoginLimiter({ now })
  const httpCounter = new HttpCounter()
  const secure = init.secureCookies === true
  const cookieName = secure ? '__Host-printmesh-session' : 'printmesh-session'
  const logger = init.logger.child({ component: 'http' }, { redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } })

  const app = Fastify({
    loggerInstance: logger,
    // Pages poll every few seconds: no info lines per request; onResponse logs one at debug.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    trustProxy: false
  }) as unknown as FastifyInstance
  void app.register(fastifyCookie)

  app.addContentTypeParser(['text/csv'], { parseAs: 'string', bodyLimit: CSV_IMPORT_BODY_LIMIT }, (_req, body, done) => {
    done(null, body)
  })

  // ---- cross-cutting hooks ----

  let sweeper: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    sweeper = setInterval(() => { sessions.sweep(); limiter.sweep() }, SWEEP_INTERVAL_MS)
    sweeper.unref()
  })
  app.addHook('onClose', async () => {
    if (sweeper !== undefined) clearInterval(sweeper)
    sweeper = undefined
    sessions.clear()
    limiter.clear()
  })

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('x-frame-options', 'DENY')
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store')
    return payload
  })

  app.addHook('onResponse', async (request, reply) => {
    httpCounter.record(reply.statusCode)
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
  })

  app.setErrorHandler(async (err, request, reply) => {
    const described = describeError(err)
    if (described.status >= 500) {
      request.log.error({ err, method: request.method, url: request.url }, 'request failed')
    } else {
      request.log.info({ method: request.method, url: request.url, status: described.status, error: err instanceof Error ? err.name : typeof err }, described.message)
    }
    return await reply.code(described.status).headers(described.headers).send({ error: described.message })
  })

  app.setNotFoundHandler(async (request, reply) => {
    return await reply.code(404).send({ error: `no such resource: ${request.method} ${request.url.split('?')[0]}` })
  })

  // ---- authentication helpers ----

  function bearerToken (request: FastifyRequest): string | undefined {
    const header = request.headers.authorization
    if (header === undefined) return undefined
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (m === null) throw new UnauthenticatedError('Authorization header must be "Bearer <token>"')
    return m[1]
  }

  function ipKey (request: FastifyRequest): string {
    return `ip:${request.ip}`
  }

  function userKey (username: string): string {
    return `user:${username.normalize('NFC').toLowerCase()}`
  }

  /** Refuses with 429 when any of the keys is at its failure limit. */
  function enforceLimits (limits: Array<[key: string, limit: number]>): void {
    const waitMs = Math.max(...limits.map(([key, limit]) => limiter.retryAfterMs(key, limit)))
    if (waitMs > 0) throw new TooManyLoginAttemptsError(Math.ceil(waitMs / 1000))
  }

  /** Checks an admin bearer token, counting wrong ones against the caller's address. */
  function authenticateBearer (request: FastifyRequest, token: string): Actor {
    const ip = ipKey(request)
    enforceLimits([[ip, MAX_FAILURES_PER_IP]])
    const stamp = limiter.hit(ip)
    const actor = api.authenticateAdmin(token)
    if (actor === undefined) throw new UnauthenticatedError('invalid bearer token')
    limiter.forgive(ip, stamp)
    return actor
  }

  /** Resolves the caller of a protected route, enforcing admin role and CSRF. */
  function authenticate (request: FastifyRequest, level: AuthLevel): Caller {
    const token = bearerToken(request)
    let caller: Caller
    if (token !== undefined) {
      caller = { actor: authenticateBearer(request, token) }
    } else {
      const session = sessions.get(request.cookies[cookieName])
      if (session === undefined) throw new UnauthenticatedError('not logged in (or the session expired)')
      caller = { actor: session.actor, session }
      if (MUTATING_METHODS.has(request.method)) {
        const presented = request.headers[CSRF_HEADER]
        if (!csrfTokenMatches(session, typeof presented === 'string' ? presented : undefined)) {
          throw new ForbiddenError('missing or wrong X-CSRF-Token header')
        }
      }
    }
    if (level === 'admin' && !caller.actor.admin) throw new ForbiddenError('administrators only')
    return caller
  }

  function openSession (request: FastifyRequest, reply: FastifyReply, actor: Actor): { user: string, admin: boolean, csrfToken: string } {
    sessions.delete(request.cookies[cookieName]) // a fresh id on every login: no session fixation
    const session = sessions.create(actor)
    reply.setCookie(cookieName, session.id, { path: '/', httpOnly: true, sameSite: 'strict', secure })
    return { user: session.actor.user, admin: session.actor.admin, csrfToken: session.csrfToken }
  }

  // ---- session routes ----

  app.post('/api/login', {
    schema: {
      body: {
        type: 'object',
        required: ['username', 'pin'],
        properties: {
          username: { type: 'string', minLength: 1, maxLength: MAX_CREDENTIAL_LENGTH },
          pin: { type: 'string', minLength: 1, maxLength: MAX_CREDENTIAL_LENGTH }
        }
      }
    }
  }, async (request, reply) => {
    const { username, pin } = request.body as { username: string, pin: string }
    const uKey = userKey(username)
    const iKey = ipKey(request)
    enforceLimits([[uKey, MAX_FAILURES_PER_USER], [iKey, MAX_FAILURES_PER_IP]])
    // Counted before the slow check and forgiven on success, so parallel guesses are limited too.
    const uStamp = limiter.hit(uKey)
    const iStamp = limiter.hit(iKey)
    let actor: Actor | undefined
    try {
      actor = await api.authenticateUser(username, pin)
    } catch (err) {
      limiter.forgive(uKey, uStamp) // not a wrong PIN: the directory failed
      limiter.forgive(iKey, iStamp)
      throw err
    }
    if (actor === undefined) {
      request.log.warn({ user: username }, 'login failed: wrong username or PIN')
      throw new UnauthenticatedError('wrong username or PIN')
    }
    limiter.reset(uKey)
    limiter.forgive(iKey, iStamp)
    request.log.info({ user: actor.user }, 'user logged in')
    return openSession(request, reply, actor)
  })

  app.post('/api/login/admin', {
    schema: {
      body: {
        type: 'object',
        required: ['token'],
        properties: { token: { type: 'string', minLength: 1, maxLength: MAX_TOKEN_LENGTH } }
      }
    }
  }, async (request, reply) => {
    const { token } = request.body as { token: string }
    let actor: Actor
    try {
      actor = authenticateBearer(request, token)
    } catch (err) {
      if (err instanceof UnauthenticatedError) {
        request.log.warn('admin login failed: wrong token')
        throw new UnauthenticatedError('wrong admin token')
      }
      throw err
    }
    request.log.info({ user: actor.user }, 'admin logged in')
    return openSession(request, reply, actor)
  })

  app.post('/api/logout', async (request, reply) => {
    const id = request.cookies[cookieName]
    if (sessions.get(id) !== undefined) {
      authenticate(request, 'user') // a live session must prove it is the page (CSRF) to end itself
      sessions.delete(id)
    }
    reply.clearCookie(cookieName, { path: '/', httpOnly: true, sameSite: 'strict', secure })
    return { ok: true }
  })

  app.get('/api/session', async (request) => {
    const caller = authenticate(request, 'user')
    return { user: caller.actor.user, admin: caller.actor.admin, csrfToken: caller.session?.csrfToken }
  })

  // ---- site, jobs, printers ----

  app.get('/api/info', async () => api.info())

  app.get('/api/jobs', {
    schema: {
      querystring: {
        type: 'object',
        properties: { scope: { type: 'string', enum: ['mine', 'all'], default: 'mine' } }
      }
    }
  }, async (request) => {
    const { scope } = request.query as { scope: 'mine' | 'all' }
    const caller = authenticate(request, scope === 'all' ? 'admin' : 'user')
    return { jobs: api.listJobs(caller.actor, scope) }
  })

  const jobParams = {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } }
  } as const

  app.post('/api/jobs/:id/release', { schema: { params: jobParams } }, async (request) => {
    const caller = authenticate(request, 'user')
    const { id } = request.params as { id: string }
    const printer = releasePrinter(request.body)
    const job = await api.releaseJob(caller.actor, id, printer)
    request.log.info({ user: caller.actor.user, job: job.id, printer: job.printer ?? printer }, 'job released')
    return { job }
  })

  app.delete('/api/jobs/:id', { schema: { params: jobParams } }, async (request) => {
    const caller = authenticate(request, 'user')
    const { id } = request.params as { id: string }
    const job = await api.deleteJob(caller.actor, id)
    request.log.info({ user: caller.actor.user, job: job.id }, 'job deleted')
    return { job }
  })

  app.get('/api/printers', async (request) => {
    authenticate(request, 'user')
    return { printers: await api.printers() }
  })

  // ---- accounting ----

  app.get('/api/usage/totals', async (request) => {
    authenticate(request, 'admin')
    const query = request.query as Record<string, unknown>
    const by = query.by
    if (by !== 'user' && by !== 'printer' && by !== 'day') {
      throw new InvalidRequestError('query parameter "by" must be user, printer or day')
    }
    return { by, totals: api.usageTotals(parseUsageQuery(query), by) }
  })

  app.get('/api/usage/records', async (request) => {
    authenticate(request, 'admin')
    return { records: api.usageRecords(parseUsageQuery(request.query as Record<string, unknown>)) }
  })

  app.get('/api/usage.csv', async (request, reply) => {
    authenticate(request, 'admin')
    const records = api.usageRecords(parseUsageQuery(request.query as Record<string, unknown>))
    const day = new Date(now()).toISOString().slice(0, 10)
    return await reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="printmesh-usage-${day}.csv"`)
      .send(usageCsv(records))
  })

  // ---- users ----

  app.get('/api/users', async (request) => {
    authenticate(request, 'admin')
    return { users: api.users() }
  })

  app.post('/api/users/import', { bodyLimit: CSV_IMPORT_BODY_LIMIT }, async (request) => {
    const caller = authenticate(request, 'admin')
    if (typeof request.body !== 'string') {
      throw new InvalidRequestError('send the users as a text/csv body of "username,full name,PIN" rows')
    }
    const result = await api.importUsers(request.body)
    request.log.info({ by: caller.actor.user, imported: result.imported }, 'users imported')
    return { imported: result.imported }
  })

  // ---- metrics ----

  app.get('/metrics', async (_request, reply) => {
    return await reply.type(METRICS_CONTENT_TYPE).send(renderMetrics(api, httpCounter))
  })

  // ---- web pages ----

  async function sendWebFile (reply: FastifyReply, name: string): Promise<FastifyReply> {
    const type = WEB_FILES[name]
    if (type === undefined) return await reply.code(404).send({ error: `no such file: ${name}` })
    const body = await readFile(new URL(name, webDir))
    reply.type(type).header('cache-control', 'no-cache')
    if (type.startsWith('text/html')) reply.header('content-security-policy', CONTENT_SECURITY_POLICY)
    return await reply.send(body)
  }

  app.get('/', async (_request, reply) => await sendWebFile(reply, 'index.html'))
  app.get('/admin', async (_request, reply) => await sendWebFile(reply, 'admin.html'))
  app.get('/web/:file', async (request, reply) => {
    const { file } = request.params as { file: string }
    return await sendWebFile(reply, Object.hasOwn(WEB_FILES, file) ? file : '')
  })

  return app
}

/** `{printer?}` from a release request's body (which may be absent). */
function releasePrinter (body: unknown): string | undefined {
  if (body === undefined || body === null) return undefined
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequestError('body must be a JSON object like {"printer": "name"}')
  const printer = (body as { printer?: unknown }).printer
  if (printer === undefined || printer === null || printer === '') return undefined
  if (typeof printer !== 'string' || printer.length > MAX_NAME_LENGTH) throw new InvalidRequestError('"printer" must be a printer name')
  return printer
}

/** Reads one time bound: milliseconds since epoch, or an ISO 8601 date / date-time. */
export function parseTimeParam (value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined
  if (typeof value !== 'string') throw new InvalidRequestError(`"${name}" must be given once`)
  if (/^\d+$/.test(value)) return Number(value)
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const ms = Date.parse(value)
    if (!Number.isNaN(ms)) return ms
  }
  throw new InvalidRequestError(`"${name}" must be an ISO date (2024-05-31, 2024-05-31T12:00:00Z) or milliseconds since epoch`)
}

/** `from`, `to` and `user` query parameters of the accounting routes. */
function parseUsageQuery (query: Record<string, unknown>): UsageQuery {
  const out: UsageQuery = {}
  const from = parseTimeParam(query.from, 'from')
  const to = parseTimeParam(query.to, 'to')
  if (from !== undefined) out.from = from
  if (to !== undefined) out.to = to
  if (from !== undefined && to !== undefined && to < from) throw new InvalidRequestError('"to" is before "from"')
  if (typeof query.user === 'string' && query.user !== '') out.user = query.user
  return out
}

/** Column headers of the accounting export, in order. */
const USAGE_CSV_HEADER = ['id', 'time', 'kind', 'user', 'job id', 'job name', 'printer', 'site', 'pages', 'colour pages', 'sheets', 'duplex', 'copies']

/** The accounting export: one row per usage record, times in ISO 8601 UTC. */
export function usageCsv (records: readonly UsageRecordView[]): string {
  return toCsv(USAGE_CSV_HEADER, records.map((r) => [
    r.id, new Date(r.time).toISOString(), r.kind, r.user, r.jobId, r.jobName, r.printer, r.site,
    r.pages, r.colorPages, r.sheets, r.duplex, r.copies
  ]))
}

/** A startable HTTP server for a site (see the module comment for its routes). */
export function createHttpServer (init: HttpServerInit): HttpServer {
  let app: FastifyInstance | undefined
  let starting: Promise<void> | undefined
  let boundPort = init.port

  async function listen (): Promise<void> {
    const instance = buildHttpApp(init)
    try {
      await instance.listen({ host: init.host, port: init.port })
    } catch (err) {
      await instance.close()
      throw err
    }
    app = instance
    boundPort = (instance.server.address() as AddressInfo).port
    init.logger.info({ host: init.host, port: boundPort }, 'http server listening')
  }

  return {
    async start () {
      if (starting === undefined) {
        starting = listen()
        // A failed start leaves the server stopped, so start() may be retried.
        starting.catch(() => { starting = undefined })
      }
      await starting
    },
    async stop () {
      const pending = starting
      if (pending === undefined) return
      starting = undefined
      await pending.catch(() => undefined) // its failure was already reported to start()'s caller
      const instance = app
      app = undefined
      if (instance !== undefined) await instance.close()
    },
    get port () { return boundPort }
  }
}
