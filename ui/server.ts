/**
 * A node's HTTP layer: the core (sessions and logins, `/api/info`, security headers, the
 * one error mapping) and the route families of the services the role has, one fastify
 * plugin each (ui/routes/: jobs, roaming, accounting, users, mesh, panel, metrics, pages),
 * which talk to the node only through {@link SiteApi} (the print service), {@link MeshApi}
 * (peers, sync state, join tokens, revocation) and `PanelApi` (a terminal's panel). A site
 * registers the print service's four, mesh, metrics and its pages; central mesh, metrics
 * and the admin page; a terminal adds its panel; the routes of an absent service answer
 * 404 with a JSON error saying so.
 *
 * Authentication: a web session (httpOnly, SameSite=Strict cookie holding a random id;
 * the session lives in server memory) or, for admin calls, `Authorization: Bearer <token>`.
 * Session-authenticated mutating calls must echo the session's CSRF token in
 * `X-CSRF-Token`; bearer calls carry no ambient credentials and need none.
 */
import type { AddressInfo, Server as NetServer } from 'node:net'
import type { RequestListener } from 'node:http'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerFactory } from 'fastify'
import { TlsPort, type TlsMaterial } from '../transports/tls-port.ts'
import fastifyCookie from '@fastify/cookie'
import type { Logger } from 'pino'
import type { Actor } from '../devices/jobs/types.ts'
import type { MeshApi, SiteApi, SiteInfo, TerminalStatus, UserAuthenticator } from './api.ts'
import { CSV_IMPORT_BODY_LIMIT, MAX_NAME_LENGTH, type AuthLevel, type Caller, type HttpPlugin, type RouteContext } from './routes/plugin.ts'
import { jobsRoutes, JOBS_ROUTES } from './routes/jobs.ts'
import { roamingRoutes, ROAMING_ROUTES } from './routes/roaming.ts'
import { accountingRoutes, ACCOUNTING_ROUTES } from './routes/accounting.ts'
import { usersRoutes, USERS_ROUTES } from './routes/users.ts'
import { meshRoutes, MESH_ROUTES } from './routes/mesh.ts'
import { PANEL_ROUTES } from './routes/panel.ts'
import { metricsRoutes, METRICS_ROUTES } from './routes/metrics.ts'
import { pagesRoutes, PAGES_ROUTES } from './routes/pages.ts'
import { REPORTS_ROUTES } from './routes/reports.ts'
import { LDAP_ROUTES } from './routes/ldap.ts'
import { LICENSE_ROUTES } from './routes/license.ts'
import { registerAuditHooks, type AuditApi } from './routes/audit.ts'
import type { AuditVia } from '../crdt/audit.ts'
import {
  describeError, ForbiddenError, HttpServerConfigError, ServiceNotHereError, TooManyLoginAttemptsError, UnauthenticatedError
} from './errors.ts'
import { NodeMetrics } from './metrics.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { LoginGuard, type LoginOutcome, type LoginPolicy } from './rate-limit.ts'
import { adminTokenAuthenticator, csrfTokenMatches, SessionStore, type AdminAuthenticator, type Session } from './sessions.ts'
import type { AdminAccountsApi, AdminPrincipal, AdminRole } from './admin-accounts-api.ts'

/** JSON bodies are small (logins, release requests); anything bigger is a mistake or an attack. */
export const JSON_BODY_LIMIT = 64 * 1024
/** How often expired sessions and stale login failures are dropped from memory. */
const SWEEP_INTERVAL_MS = 60_000
/** Longest username or PIN accepted; real ones are far shorter, so longer ones are junk. */
const MAX_CREDENTIAL_LENGTH = 256
/** Longest admin token accepted. */
const MAX_TOKEN_LENGTH = 1024
/** Methods that change state and therefore need the CSRF token on session calls. */
const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** Header the pages send the CSRF token in. */
const CSRF_HEADER = 'x-csrf-token'
/** Longest admin password accepted at the login (node/admin-accounts.ts refuses longer ones when set). */
const MAX_PASSWORD_LENGTH = 256
/** Writes every signed-in admin may make whatever their role: ending their own session. */
const ROLE_FREE_WRITES = new Set(['/api/logout'])
/**
 * The mesh's own administration: a site admin may not write these even on a node of its
 * sites (the directory, admin accounts and the mesh token, the license, LDAP, peers and
 * enrolment, the mesh's card conflicts and price list).
 */
const MESH_WIDE_PREFIXES = ['/api/users', '/api/admin-accounts', '/api/admin-token', '/api/license', '/api/ldap', '/api/mesh', '/api/enrol/conflicts']
const MESH_WIDE_PATHS = new Set(['/api/prices'])
/**
 * Paths naming the site they change (the console's printers of any site, sent there as a
 * signed admin action, ui/routes/console.ts): a site admin may name only its own sites, even
 * from a node of one of them.
 */
const TARGET_SITE_PATH = /^\/api\/console\/sites\/([^/]+)(?:\/|$)/
/** Wrong admin passwords count under this prefix and the account name: never the same key as a user's PIN login (no `/` in usernames). */
const ADMIN_LOGIN_KEY = 'admin/'
/** A session opened with a node's own start-up token (no mesh token yet): it ends once a mesh token arrives. */
const OWN_TOKEN_STAMP = 'own'
/** Static files of the web UI: URL name → content type. Nothing outside this list is served. */
/** Log paths that may carry secrets; pino replaces them before anything is written. */
const REDACTED_LOG_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]', 'req.body.pin', 'req.body.card', 'req.body.token', 'req.body.joinString',
  'headers.authorization', 'headers.cookie', 'headers["x-csrf-token"]',
  'body.pin', 'body.card', 'body.token', 'body.joinString', 'pin', 'card', 'token', 'csrfToken', 'joinString',
  '*.pin', '*.card', '*.token', '*.csrfToken', '*.joinString',
  // named admin accounts: passwords, TOTP codes and the otpauth:// URI (its secret) never reach a log line
  'req.body.password', 'req.body.totp', 'req.body.code', 'body.password', 'body.totp', 'body.code', 'password', 'totp', 'otpauthUri',
  '*.password', '*.totp', '*.otpauthUri'
]

/**
 * Options of {@link createHttpServer}. At least one of `api` and `mesh` is required, and a
 * way to check admin tokens: `adminToken`, or else `api.authenticateAdmin`.
 *
 * - site: `{ api, mesh?, logger, host, port }` (the SiteApi checks the admin token)
 * - central, terminal: `{ mesh, adminToken, logger, host, port }`
 */
export interface HttpServerInit {
  /** The print service (jobs, printers, accounting, users); absent on central. */
  api?: SiteApi
  /** Checks users' PINs for `/api/login` on a node without `api` (a terminal's panel). */
  users?: UserAuthenticator
  /** The mesh side (peers, sync state, enrollment); absent on a node without a mesh. */
  mesh?: MeshApi
  /**
   * The admin bearer token (also what the admin login takes), compared in constant time.
   * Required without `api`; when given it wins over `api.authenticateAdmin`.
   */
  adminToken?: string
  logger: Logger
  /** Address to listen on, e.g. `127.0.0.1` or `::`. */
  host: string
  /** TCP port; 0 picks a free one (read it back from {@link HttpServer.port}). */
  port: number
  /** Mark the session cookie `Secure` (behind HTTPS); uses the `__Host-` cookie prefix. Default: on when TLS is on and plain HTTP off. */
  secureCookies?: boolean
  /** HTTPS on the same port (node/tls.ts provides it); without it, plain HTTP only. */
  tls?: HttpTls
  /** While TLS is on, serve pages and the API over plain HTTP too (default: plain HTTP only redirects to https). */
  plainHttp?: boolean
  /** Clock for sessions and rate limits; tests inject one to move time without sleeping. */
  now?: () => number
  /** The node's metrics (the role shares them with its IPP server and sync engine); default: the HTTP server's own. */
  metrics?: NodeMetrics
  /** Login limits (defaults in ui/rate-limit.ts); ignored when `logins` is given. */
  loginPolicy?: Partial<LoginPolicy>
  /**
   * The node's login guard, when other doors share it (a site's IPP authentication): wrong
   * PINs and tokens then count wherever they were tried. Default: a guard of this server's own.
   */
  logins?: LoginGuard
  /**
   * The route families to serve, one per service the role has (ui/routes/); default: jobs,
   * roaming, accounting and users with `api`, mesh with `mesh`.
   */
  plugins?: readonly HttpPlugin[]
  /** A terminal's own state, shown as `/api/info`'s `terminal` section. */
  terminal?: () => TerminalStatus
  /** The node's audit log (sites, central): every successful admin write is recorded in it (ui/routes/audit.ts). */
  audit?: AuditApi
  /**
   * Named admin accounts and the mesh token (node/admin-accounts.ts): `/api/login/admin` then
   * takes `{username, password, totp?}`, and once the mesh has a mesh token it is the only
   * admin token accepted here (the node's own, `adminToken` or the SiteApi's, no longer is).
   */
  accounts?: AdminAccountsApi
}

/** Where the HTTP server gets its certificate (node/tls.ts `TlsProvider`). */
export interface HttpTls {
  /** The certificate and key to present; undefined while TLS is off. */
  material (): TlsMaterial | undefined
  /** The CA certificate (PEM) behind it, offered at `GET /ca.pem` so admins can trust it once. */
  ca (): string | undefined
  /** Called with new material (renewal) while running. */
  onChange (listener: (material: TlsMaterial) => void): void
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


/**
 * `GET /api/info`, public: what this node is, for the pages' header and for deciding which
 * sections to show. On a site it carries every {@link SiteInfo} field; on central only `role`,
 * `peer`, `services` (and `site` when the mesh reports one).
 */
export interface NodeInfo extends Partial<SiteInfo> {
  /** `site`, `central`, … as the mesh knows this node; `site` for a print service without mesh. */
  role: string
  /** This node's peer id, when it has a mesh. */
  peer?: string
  /** Which route families answer here. */
  services: { print: boolean, mesh: boolean, users?: true, reports?: true }
  /** Present when named admin accounts exist: the admin page offers the account login first. */
  adminAccounts?: true
  /** On a terminal: online, directory copy, last sync, its printer's state, reasons and supplies. */
  terminal?: TerminalStatus
}

/**
 * Builds the fastify application with every route, without listening; tests drive it
 * with `inject`. {@link createHttpServer} wraps it into a startable server.
 */
export function buildHttpApp (init: Omit<HttpServerInit, 'host' | 'port'>, serverFactory?: (handler: RequestListener) => NetServer): FastifyInstance {
  const { api, mesh, accounts } = init
  const ownToken = checkedAuthenticator(init)
  /** The mesh token once the mesh has one (verified by the onRequest hook below), else the node's own start-up token. */
  const authenticateAdmin: AdminAuthenticator = (token) => {
    if (accounts === undefined || accounts.meshTokenStamp() === undefined) return ownToken(token)
    return accounts.meshTokenKnown(token) ? { user: 'admin', admin: true } : undefined
  }
  /** The print service, or a 404 on a node without one. */
  const site = (): SiteApi => {
    if (api === undefined) throw new ServiceNotHereError('print')
    return api
  }
  /** Who checks users' PINs: the print service, or a terminal's own check (its panel). */
  const users = (): UserAuthenticator => init.users ?? site()
  /** Route hook that refuses a print-service route first, before authentication or body validation. */
  const printService = { onRequest: async (): Promise<void> => { site() } }
  /** Route hook of the user login: refused first on a node that logs no users in. */
  const userLogins = { onRequest: async (): Promise<void> => { users() } }
  const now = init.now ?? Date.now
  const sessions = new SessionStore({ now })
  const metrics = init.metrics ?? new NodeMetrics()
  const plugins = init.plugins ?? servicePlugins(api, mesh, metrics)
  const ownGuard = init.logins === undefined
  const logins = init.logins ?? new LoginGuard({
    now,
    ...(init.loginPolicy !== undefined ? { policy: init.loginPolicy } : {}),
    report: { failed: metrics.loginFailed, refused: metrics.loginRefused, succeeded: metrics.loginSucceeded }
  })
  metrics.use({
    ...(api !== undefined ? { jobStates: () => api.jobStates() } : {}),
    ...(mesh !== undefined ? { mesh: () => mesh.status() } : {})
  })
  const secure = init.secureCookies ?? (init.tls?.material() !== undefined && init.plainHttp !== true)
  const cookieName = secure ? '__Host-printmesh-session' : 'printmesh-session'
  const logger = init.logger.child({ component: 'http' }, { redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' } })

  const app = Fastify({
    loggerInstance: logger,
    // Pages poll every few seconds: no info lines per request; onResponse logs one at debug.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    // Path parameters are job ids and peer ids; fastify's default (100) would 414 the longest legal ones.
    routerOptions: { maxParamLength: MAX_NAME_LENGTH },
    trustProxy: false,
    ...(serverFactory !== undefined ? { serverFactory: serverFactory as unknown as FastifyServerFactory } : {})
  }) as unknown as FastifyInstance
  void app.register(fastifyCookie)

  app.addContentTypeParser(['text/csv'], { parseAs: 'string', bodyLimit: CSV_IMPORT_BODY_LIMIT }, (_req, body, done) => {
    done(null, body)
  })

  // ---- cross-cutting hooks ----

  let sweeper: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    sweeper = setInterval(() => { sessions.sweep(); logins.sweep() }, SWEEP_INTERVAL_MS)
    sweeper.unref()
  })
  app.addHook('onClose', async () => {
    if (sweeper !== undefined) clearInterval(sweeper)
    sweeper = undefined
    sessions.clear()
    if (ownGuard) logins.clear() // a shared guard belongs to the node, which still serves other doors
  })

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
    reply.header('x-frame-options', 'DENY')
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'no-store')
    return payload
  })

  app.addHook('onResponse', async (request, reply) => {
    metrics.httpAnswered(reply.statusCode)
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
  })

  // the mesh token's slow hash is checked here, before any route, so authenticate() stays synchronous
  if (accounts !== undefined) {
    app.addHook('onRequest', async (request) => {
      await accounts.ready()
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
      // an address at its limit of wrong tokens gets no more slow hashes: only a token checked before still works from there
      if (bearer !== null && bearer[1].length <= MAX_TOKEN_LENGTH && accounts.meshTokenStamp() !== undefined && !logins.tokenThrottled(request.ip)) await accounts.verifyMeshToken(bearer[1])
    })
  }

  // a named account's role is enforced before a route validates the body too, so a refused write is 403 whatever it sent
  if (accounts !== undefined) {
    app.addHook('preValidation', async (request) => {
      if (!MUTATING_METHODS.has(request.method) || request.headers.authorization !== undefined || request.url.startsWith('/api/login')) return
      const account = liveSession(request)?.account
      if (account !== undefined) enforceRole(request, account)
    })
  }

  // ---- the audit log: every admin write that succeeded, recorded by one pair of hooks ----

  /** Who `authenticate` (or the admin login) resolved for each request, for the audit hooks. */
  const callers = new WeakMap<FastifyRequest, Caller>()
  /** Who made each attempt the core refused (wrong token or password, a role's, the admin or CSRF check's 403), for the audit hooks. */
  const refusals = new WeakMap<FastifyRequest, { actor: string, via: AuditVia }>()
  /** `err`, after noting who made the refused attempt. */
  const refused = (request: FastifyRequest, who: { actor: string, via: AuditVia }, err: Error): Error => {
    refusals.set(request, who)
    return err
  }
  /** The audit log's name for whoever presented a token no node accepts. */
  const WRONG_TOKEN_ACTOR = '(wrong token)'
  if (init.audit !== undefined) {
    registerAuditHooks(app, init.audit, {
      caller: (request) => callers.get(request),
      refused: (request) => refusals.get(request),
      carriesAdmin: (request) => {
        const bearer = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
        if (bearer !== null) return authenticateAdmin(bearer[1]) !== undefined
        return liveSession(request)?.actor.admin === true
      }
    })
  }

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
    const path = request.url.split('?')[0]
    // a route of a service this node does not run: say so, not just "no such resource"
    const absent = ROUTE_FAMILIES.find((f) => f.prefixes.some((prefix) => path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}.`)))
    if (absent !== undefined && !plugins.some((p) => p.prefixes.includes(absent.prefixes[0]))) throw new ServiceNotHereError(absent.service)
    return await reply.code(404).send({ error: `no such resource: ${request.method} ${path}` })
  })

  // ---- authentication helpers ----

  function bearerToken (request: FastifyRequest): string | undefined {
    const header = request.headers.authorization
    if (header === undefined) return undefined
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (m === null) throw new UnauthenticatedError('Authorization header must be "Bearer <token>"')
    return m[1]
  }

  /** A refused login as the HTTP error: 429 with Retry-After when throttled, else 401 with `wrong`. */
  function refusal (outcome: Exclude<LoginOutcome, { ok: true }>, wrong: string): Error {
    if (outcome.refusal === 'throttled') return new TooManyLoginAttemptsError(Math.ceil(outcome.retryAfterMs / 1000))
    return new UnauthenticatedError(wrong)
  }

  /**
   * Checks an admin bearer token. The right token is never refused, whatever failed before
   * from the address; wrong ones count against the address under a key of their own.
   */
  function authenticateBearer (request: FastifyRequest, token: string): Actor {
    const outcome = logins.token(token, request.ip, authenticateAdmin)
    if (!outcome.ok) {
      const err = refusal(outcome, 'invalid bearer token')
      throw outcome.refusal === 'wrong' ? refused(request, { actor: WRONG_TOKEN_ACTOR, via: 'token' }, err) : err
    }
    return outcome.actor
  }

  /** The stamp of the admin token accepted now: the mesh token's, or the node's own. */
  const tokenStamp = (): string => accounts?.meshTokenStamp() ?? OWN_TOKEN_STAMP

  /** The live session of the request's cookie; an admin session whose account or token changed since it opened is ended. */
  function liveSession (request: FastifyRequest): Session | undefined {
    const id = request.cookies[cookieName]
    const session = sessions.get(id)
    if (session === undefined) return undefined
    const stale = session.account !== undefined
      ? accounts?.current(session.account.username, session.account.version) === undefined
      : session.tokenStamp !== undefined && session.tokenStamp !== tokenStamp()
    if (stale) {
      sessions.delete(id)
      return undefined
    }
    return session
  }

  /** Where this node stands, for a site admin's writes: its role and site id. */
  function place (): { role: string, site?: string } {
    const self = mesh?.status().self
    const site = self?.site ?? api?.info().site
    return { role: self?.role ?? 'site', ...(site !== undefined ? { site } : {}) }
  }

  /**
   * The one place roles are enforced (issue 16 item 5): a report viewer only reads; a site
   * admin writes only on a site node of its sites, and never the mesh's own administration;
   * a mesh admin (and the admin token) everything. Reads are the routes' own business.
   */
  function enforceRole (request: FastifyRequest, principal: Pick<AdminPrincipal, 'username' | 'role' | 'sites'>): void {
    const path = request.url.split('?')[0]
    if (!MUTATING_METHODS.has(request.method) || ROLE_FREE_WRITES.has(path)) return
    const what = `${request.method} ${path}`
    const forbidden = (message: string): Error => refused(request, { actor: principal.username, via: 'session' }, new ForbiddenError(message))
    if (principal.role === 'report-viewer') throw forbidden(`a report viewer may only read: ${what} is a change`)
    if (principal.role === 'site-admin') {
      if (MESH_WIDE_PATHS.has(path) || MESH_WIDE_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) {
        throw forbidden(`a site admin may not change the mesh's administration (${what}): ask a mesh admin`)
      }
      const here = place()
      if (here.role !== 'site' || here.site === undefined || !principal.sites.includes(here.site)) {
        throw forbidden(`a site admin of ${principal.sites.join(', ')} may change only the site nodes of those sites, not this ${here.role}${here.site !== undefined ? ` of ${here.site}` : ''}`)
      }
      const target = TARGET_SITE_PATH.exec(path)?.[1]
      if (target !== undefined && !principal.sites.includes(decodeURIComponent(target))) {
        throw forbidden(`a site admin of ${principal.sites.join(', ')} may not change site ${decodeURIComponent(target)} (${what})`)
      }
    }
  }

  /** Resolves the caller of a protected route, enforcing admin role and CSRF. */
  function authenticate (request: FastifyRequest, level: AuthLevel): Caller {
    const token = bearerToken(request)
    let caller: Caller
    if (token !== undefined) {
      caller = { actor: authenticateBearer(request, token) }
    } else {
      const session = liveSession(request)
      if (session === undefined) throw new UnauthenticatedError('not logged in (or the session expired)')
      caller = { actor: session.actor, session }
      if (MUTATING_METHODS.has(request.method)) {
        const presented = request.headers[CSRF_HEADER]
        if (!csrfTokenMatches(session, typeof presented === 'string' ? presented : undefined)) {
          // a user's page without its token is no admin attempt; an admin session's is worth a line in the log
          const err = new ForbiddenError('missing or wrong X-CSRF-Token header')
          throw session.actor.admin ? refused(request, { actor: session.actor.user, via: 'session' }, err) : err
        }
      }
    }
    if (level === 'admin' && !caller.actor.admin) throw refused(request, { actor: caller.actor.user, via: 'session' }, new ForbiddenError('administrators only'))
    const account = caller.session?.account
    if (account !== undefined) enforceRole(request, account)
    callers.set(request, caller)
    return caller
  }

  /** What `/api/session` and the logins answer about an admin: the account and its role (the token is a mesh admin). */
  function adminView (session: Session): { role?: AdminRole, sites?: string[], account?: boolean } {
    if (!session.actor.admin || accounts === undefined) return {} // a node without accounts answers as before them
    if (session.account === undefined) return { role: 'mesh-admin', account: false }
    return { role: session.account.role, sites: [...session.account.sites], account: true }
  }

  /** Sessions as opened, by the answer of the login that opened them (the audit hook's `via`). */
  const opened = new WeakMap<object, Session>()
  const sessionOf = (answer: object): Session | undefined => opened.get(answer)

  function openSession (request: FastifyRequest, reply: FastifyReply, actor: Actor, how: { account?: AdminPrincipal, tokenStamp?: string } = {}): { user: string, admin: boolean, csrfToken: string } {
    sessions.delete(request.cookies[cookieName]) // a fresh id on every login: no session fixation
    const session = sessions.create(actor, how)
    reply.setCookie(cookieName, session.id, { path: '/', httpOnly: true, sameSite: 'strict', secure })
    const answer = { user: session.actor.user, admin: session.actor.admin, csrfToken: session.csrfToken, ...adminView(session) }
    opened.set(answer, session)
    return answer
  }

  /**
   * A user's login under the guard's limits (counted as `key`): a session on success, else
   * the refusal (`wrong` as its message). Never logs the credential.
   */
  async function userLogin (request: FastifyRequest, reply: FastifyReply, key: string, check: () => Promise<Actor | undefined>, wrong: string): Promise<{ user: string, admin: boolean, csrfToken: string }> {
    const outcome = await logins.pin(key, request.ip, check, key === CARD_LOGIN_KEY ? 'card' : 'pin')
    if (!outcome.ok) {
      if (outcome.refusal === 'wrong') request.log.warn({ user: key }, `login failed: ${wrong}`)
      throw refusal(outcome, wrong)
    }
    request.log.info({ user: outcome.actor.user }, 'user logged in')
    return openSession(request, reply, outcome.actor)
  }

  // ---- session routes ----

  app.post('/api/login', {
    ...userLogins,
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
    const checker = users()
    const { username, pin } = request.body as { username: string, pin: string }
    return await userLogin(request, reply, username, async () => await checker.authenticateUser(username, pin), 'wrong username or PIN')
  })

  /** Wrong cards count under one pseudo-user no username can be (directory names have no `#`): per address, never locking out a right card from elsewhere. */
  const CARD_LOGIN_KEY = '#card'

  app.post('/api/login/card', {
    ...userLogins,
    schema: {
      body: {
        type: 'object',
        required: ['card'],
        properties: { card: { type: 'string', minLength: 1, maxLength: MAX_CREDENTIAL_LENGTH } }
      }
    }
  }, async (request, reply) => {
    const checker = users()
    if (checker.authenticateCard === undefined) throw new ServiceNotHereError('panel')
    const authenticateCard = checker.authenticateCard.bind(checker)
    const { card } = request.body as { card: string }
    return await userLogin(request, reply, CARD_LOGIN_KEY, async () => await authenticateCard(card), 'unknown card')
  })

  app.post('/api/login/admin', {
    schema: {
      body: {
        type: 'object',
        properties: {
          token: { type: 'string', minLength: 1, maxLength: MAX_TOKEN_LENGTH },
          username: { type: 'string', minLength: 1, maxLength: MAX_CREDENTIAL_LENGTH },
          password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
          totp: { type: 'string', maxLength: MAX_CREDENTIAL_LENGTH }
        },
        additionalProperties: false
      }
    }
  }, async (request, reply) => {
    const body = request.body as { token?: string, username?: string, password?: string, totp?: string }
    if (body.token === undefined) return await accountLogin(request, reply, body)
    const { token } = body
    if (accounts !== undefined && accounts.meshTokenStamp() !== undefined && !logins.tokenThrottled(request.ip)) await accounts.verifyMeshToken(token)
    let actor: Actor
    try {
      actor = authenticateBearer(request, token)
    } catch (err) {
      if (err instanceof UnauthenticatedError) {
        request.log.warn('admin login failed: wrong token')
        throw refused(request, { actor: WRONG_TOKEN_ACTOR, via: 'token' }, new UnauthenticatedError('wrong admin token'))
      }
      throw err
    }
    request.log.info({ user: actor.user }, 'admin logged in')
    callers.set(request, { actor }) // an admin's sign-in is audited too
    return openSession(request, reply, actor, { tokenStamp: tokenStamp() })
  })

  /** `{username, password, totp?}` at `/api/login/admin`: a named account, throttled as PIN logins are (per account and address). */
  async function accountLogin (request: FastifyRequest, reply: FastifyReply, body: { username?: string, password?: string, totp?: string }): Promise<ReturnType<typeof openSession>> {
    const { username, password, totp } = body
    if (username === undefined || password === undefined) throw new InvalidRequestError('give username and password (and totp when the account has a second factor), or token')
    if (accounts === undefined) throw new UnauthenticatedError('this node has no admin accounts: sign in with the admin token')
    let principal: AdminPrincipal | undefined
    const outcome = await logins.pin(`${ADMIN_LOGIN_KEY}${username}`, request.ip, async () => {
      principal = await accounts.login(username, password, totp === '' ? undefined : totp)
      return principal === undefined ? undefined : { user: principal.username, admin: true }
    }, 'password')
    if (!outcome.ok || principal === undefined) {
      const err = refusal(outcome.ok ? { ok: false, refusal: 'wrong' } : outcome, 'wrong username, password or TOTP code')
      if (outcome.ok || outcome.refusal !== 'wrong') throw err // throttled: not recorded, the log stays bounded
      request.log.warn({ account: username }, 'admin login failed: wrong username, password or TOTP code')
      throw refused(request, { actor: username, via: 'password' }, err)
    }
    request.log.info({ user: principal.username, role: principal.role }, 'admin logged in')
    const answer = openSession(request, reply, outcome.actor, { account: principal })
    // an admin's sign-in is audited too, as the session it opened
    callers.set(request, { actor: outcome.actor, ...(sessionOf(answer) !== undefined ? { session: sessionOf(answer) } : {}) })
    return answer
  }

  app.post('/api/logout', async (request, reply) => {
    const id = request.cookies[cookieName]
    if (liveSession(request) !== undefined) {
      authenticate(request, 'user') // a live session must prove it is the page (CSRF) to end itself
      sessions.delete(id)
    }
    reply.clearCookie(cookieName, { path: '/', httpOnly: true, sameSite: 'strict', secure })
    return { ok: true }
  })

  app.get('/api/session', async (request) => {
    const caller = authenticate(request, 'user')
    const session = caller.session
    // a bearer call is the admin token: a mesh admin
    const role = session !== undefined ? adminView(session) : (caller.actor.admin && accounts !== undefined ? { role: 'mesh-admin' as const, account: false } : {})
    return { user: caller.actor.user, admin: caller.actor.admin, csrfToken: session?.csrfToken, ...role }
  })

  // the CA behind this node's certificate: an admin who imports it once trusts every node of the mesh
  app.get('/ca.pem', async (_request, reply) => {
    const pem = init.tls?.ca()
    if (pem === undefined) return await reply.code(404).send({ error: 'not-found', message: 'this node presents no mesh-CA certificate (TLS is off, or the certificate is the admin\'s own)' })
    return await reply.type('application/x-pem-file').header('Content-Disposition', 'attachment; filename="printmesh-ca.pem"').send(pem)
  })

  // ---- site, jobs, printers ----

  app.get('/api/info', async (): Promise<NodeInfo> => {
    const self = mesh?.status().self
    // users: the directory's admin routes (ui/routes/directory.ts), on central and sites
    const services = { print: api !== undefined, mesh: mesh !== undefined, ...(plugins.some((p) => p.service === 'users') ? { users: true as const } : {}), ...(plugins.some((p) => p.service === 'reports') ? { reports: true as const } : {}) }
    return {
      ...(self?.site !== undefined ? { site: self.site } : {}),
      ...api?.info(),
      role: self?.role ?? 'site',
      ...(self !== undefined ? { peer: self.peer } : {}),
      services,
      ...(accounts?.any() === true ? { adminAccounts: true as const } : {}),
      ...(init.terminal !== undefined ? { terminal: init.terminal() } : {})
    }
  })

  // ---- the route families of the services this node has ----

  const context: RouteContext = { authenticate, now }
  for (const plugin of plugins) plugin.register(app, context)

  return app
}


/**
 * Checks the init is a node's (a SiteApi, a MeshApi or both) and returns its admin token
 * check: `init.adminToken`'s, else the SiteApi's; throws {@link HttpServerConfigError}.
 */
function checkedAuthenticator (init: Pick<HttpServerInit, 'api' | 'mesh' | 'adminToken'>): AdminAuthenticator {
  if (init.api === undefined && init.mesh === undefined) throw new HttpServerConfigError('the HTTP layer needs a SiteApi, a MeshApi or both')
  if (init.adminToken !== undefined) {
    if (init.adminToken === '') throw new HttpServerConfigError('the admin token must not be empty')
    return adminTokenAuthenticator(init.adminToken)
  }
  const { api } = init
  if (api === undefined) throw new HttpServerConfigError('without a SiteApi the HTTP layer needs adminToken')
  return (token) => api.authenticateAdmin(token)
}

/** The route families of a print service (`api`) and of a mesh (`mesh`), with metrics and the pages such a node shows. */
export function servicePlugins (api: SiteApi | undefined, mesh: MeshApi | undefined, metrics: NodeMetrics): HttpPlugin[] {
  return [
    ...(api !== undefined ? [jobsRoutes(api), roamingRoutes(api), accountingRoutes(api), usersRoutes(api)] : []),
    ...(mesh !== undefined ? [meshRoutes(mesh)] : []),
    metricsRoutes(metrics),
    pagesRoutes(api !== undefined ? ['release', 'admin'] : ['admin'])
  ]
}

/** Every route family's service and prefixes, for the 404 of a service a node does not run. */
const ROUTE_FAMILIES: ReadonlyArray<Pick<HttpPlugin, 'service' | 'prefixes'>> = [JOBS_ROUTES, ROAMING_ROUTES, ACCOUNTING_ROUTES, USERS_ROUTES, MESH_ROUTES, PANEL_ROUTES, METRICS_ROUTES, PAGES_ROUTES, REPORTS_ROUTES, LDAP_ROUTES, LICENSE_ROUTES]

/** A startable HTTP server for a node (see the module comment for its routes). */
export function createHttpServer (init: HttpServerInit): HttpServer {
  checkedAuthenticator(init) // a wrongly assembled node fails when it is built, not when it starts
  let app: FastifyInstance | undefined
  let starting: Promise<void> | undefined
  let boundPort = init.port

  async function listen (): Promise<void> {
    const tls = init.tls?.material()
    let port: TlsPort | undefined
    // one port for http:// and https:// (transports/tls-port.ts); plain HTTP redirects to https unless asked to serve
    const instance = buildHttpApp(init, tls === undefined
      ? undefined
      : (handler) => (port = new TlsPort({ tls, plain: init.plainHttp === true ? 'serve' : 'redirect' }, handler)))
    init.tls?.onChange((material) => { port?.setTls(material) })
    try {
      await instance.listen({ host: init.host, port: init.port })
    } catch (err) {
      await instance.close()
      throw err
    }
    app = instance
    boundPort = (instance.server.address() as AddressInfo).port
    init.logger.info({ host: init.host, port: boundPort, tls: tls !== undefined, plainHttp: tls === undefined || init.plainHttp === true }, 'http server listening')
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
