/**
 * The audit log in the HTTP layer: the one place admin actions are recorded, and
 * `GET /api/audit` to read them.
 *
 * Recording ({@link registerAuditHooks}, installed by ui/server.ts when the node keeps an
 * audit log: sites and central): every POST, PUT, PATCH and DELETE that an admin made
 * (bearer token or admin session) and that succeeded (status below 400) becomes one entry
 * of this node's audit document (crdt/audit.ts), whatever route family served it, so a new
 * admin route is audited without knowing it. An entry says who (the admin's name and how
 * they proved it), which node, when, what (`PATCH /api/users/:username`) on what
 * (`/api/users/bob`), and:
 * - `before`: the resource as `GET <same path>` answered before a PUT, PATCH or DELETE
 *   (asked as the same admin, inside the server), when that GET answers 200;
 * - `after`: the resource as that GET answers after a PUT or PATCH; for a POST, the answer;
 * - `request`: the request's JSON body.
 * Secrets never reach the log: PINs, card numbers, tokens, join strings and passwords are
 * replaced by `[redacted]` wherever they appear, a CSV body (PINs, cards) is not kept, and
 * a value over {@link MAX_VALUE_BYTES} is kept as its size only. The entry is durable before
 * the answer leaves; a failure to record is logged as an error (the action itself was done).
 *
 * Refused attempts are recorded too (issue 16 item 6): a wrong admin token (actor `(wrong
 * token)`), a wrong account password or TOTP code at the sign-in (the name tried, `via:
 * password`), and the 403s of the server core's checks (administrators only, an account's
 * role, an admin session's CSRF token), each with `refused` (why, as answered) and its status.
 * Throttled attempts (429) and routes' own refusals are not: the log stays bounded.
 *
 * Reading: `GET /api/audit` (admin) → `{entries, total, limit, offset}`, newest first, over every
 * audit document this node holds (central and sites hold every node's): filters `actor`
 * (exact), `action` (a case-insensitive part of the action or target), `node` (a peer id or
 * site id), `outcome` (`done` or `refused`), `since`, `until` (ISO date or ms; `until` exclusive),
 * `limit` (1–1000, 100), `offset` (how many of the newest matching to skip: paging, 0).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { AuditEntry, AuditVia } from '../../crdt/audit.ts'
import { parseTimeParam } from './accounting.ts'
import { MAX_NAME_LENGTH, type Caller, type HttpPlugin } from './plugin.ts'

/** What the HTTP layer hands the node's audit log for one admin action, or one refused attempt. */
export interface AuditRecord {
  actor: string
  via: AuditVia
  action: string
  target: string
  status: number
  /** Why an attempt was refused (its answer's message). */
  refused?: string
  before?: unknown
  after?: unknown
  request?: unknown
}

/** An entry's outcome: `done` (an action that succeeded) or `refused` (an attempt the node refused). */
export type AuditOutcome = 'done' | 'refused'
const OUTCOMES: readonly AuditOutcome[] = ['done', 'refused']

/** Filters of `GET /api/audit`. */
export interface AuditQuery {
  actor?: string
  /** Part of the action or the target, any case. */
  action?: string
  /** A peer id or a site id. */
  node?: string
  /** Only the actions done, or only the refused attempts. */
  outcome?: AuditOutcome
  since?: number
  until?: number
  limit: number
  /** How many of the newest matching entries to skip (absent: none). */
  offset?: number
}

export interface AuditPage {
  /** Newest first, at most `limit`, from the `offset`-th newest matching. */
  entries: AuditEntry[]
  /** How many entries matched. */
  total: number
  limit: number
  offset: number
}

/** What a node's audit log (node/audit.ts) gives the HTTP layer. */
export interface AuditApi {
  /** Appends one entry to this node's log; resolves once it is durable. */
  record: (r: AuditRecord) => Promise<void>
  query: (q: AuditQuery) => AuditPage
}

/** This family's paths (part of the mesh's administration, on sites and central). */
export const AUDIT_ROUTES = { service: 'mesh', prefixes: ['/api/audit'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** A before, after or request value larger than this (as JSON) is kept as its size: a log of changes, not a backup. */
export const MAX_VALUE_BYTES = 16 * 1024
/** Entries an answer lists unless asked for fewer: a screenful and more. */
const DEFAULT_LIMIT = 100
const MAX_LIMIT = 1000
/** Fields whose values are secrets wherever they appear (bodies, answers). */
const SECRET_FIELDS = new Set(['pin', 'oldpin', 'newpin', 'repeat', 'card', 'token', 'jointoken', 'joinstring', 'password', 'secret', 'csrftoken', 'pinhash', 'hash', 'passwordhash', 'totp', 'code', 'otpauthuri'])
/** Fields whose string items are card numbers (`cards: ["CAFE0001"]` when adding a user); objects in them (card ids) are kept. */
const CARD_LIST_FIELDS = new Set(['cards'])
const REDACTED = '[redacted]'
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** Methods whose target is a resource that exists before the action. */
const HAS_BEFORE = new Set(['PUT', 'PATCH', 'DELETE'])
/** Methods whose target is the resource after it. */
const HAS_AFTER = new Set(['PUT', 'PATCH'])

/** `value` with every secret replaced (see the module comment). */
export function redactSecrets (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets)
  if (typeof value !== 'object' || value === null) return value
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) {
    const k = key.toLowerCase()
    if (SECRET_FIELDS.has(k)) out[key] = REDACTED
    else if (CARD_LIST_FIELDS.has(k) && Array.isArray(v)) out[key] = v.map((item) => typeof item === 'object' && item !== null ? redactSecrets(item) : REDACTED)
    else out[key] = redactSecrets(v)
  }
  return out
}

/** A value as the log keeps it: redacted, and as its size when larger than {@link MAX_VALUE_BYTES}. */
export function keptValue (value: unknown): unknown {
  const redacted = redactSecrets(value)
  const bytes = Buffer.byteLength(JSON.stringify(redacted) ?? '')
  return bytes > MAX_VALUE_BYTES ? { omitted: `${bytes} bytes, over the audit log's ${MAX_VALUE_BYTES}` } : redacted
}

/** A JSON text's value, or undefined for anything else (CSV, empty, malformed). */
function parsedJson (payload: unknown): unknown {
  if (typeof payload !== 'string' || payload === '') return undefined
  try {
    return JSON.parse(payload) as unknown
  } catch {
    return undefined // not JSON (a CSV export, a page): nothing to keep as a value
  }
}

/** The request's JSON body when it is an object or array (a CSV import's text, full of PINs, is not kept). */
function requestBody (request: FastifyRequest): unknown {
  const body = request.body
  return typeof body === 'object' && body !== null ? keptValue(body) : undefined
}

/** A refusal's message kept at most this long: the answers' own are far shorter. */
const MAX_REFUSAL_CHARS = 512

/** What the server core lends the audit hooks. */
export interface AuditHookContext {
  /**
   * Who made an attempt the server core refused (a wrong admin token or password, a role's,
   * the admin check's or the CSRF check's 403), if this request is one; undefined otherwise
   * (throttled attempts and domain refusals are not recorded: the log stays bounded).
   */
  refused: (request: FastifyRequest) => { actor: string, via: AuditVia } | undefined
  /** The caller `authenticate` resolved for this request, if any. */
  caller: (request: FastifyRequest) => Caller | undefined
  /** Whether the request carries an admin's credentials, checked without counting a failure anywhere (before the route authenticates). */
  carriesAdmin: (request: FastifyRequest) => boolean
}

/**
 * Installs the recording hooks on the root application: `preHandler` takes the resource's
 * state before an admin's PUT, PATCH or DELETE; `onSend` records the action once the route
 * succeeded, before the answer leaves.
 */
export function registerAuditHooks (app: FastifyInstance, audit: AuditApi, ctx: AuditHookContext): void {
  const befores = new WeakMap<FastifyRequest, unknown>()

  /** The resource at `request`'s path as the same admin would GET it now; undefined unless 200 JSON. */
  async function resourceAt (request: FastifyRequest): Promise<unknown> {
    const headers: Record<string, string> = {}
    if (request.headers.authorization !== undefined) headers.authorization = request.headers.authorization
    if (request.headers.cookie !== undefined) headers.cookie = request.headers.cookie
    const answer = await app.inject({ method: 'GET', url: request.url, headers })
    return answer.statusCode === 200 ? parsedJson(answer.body) : undefined
  }

  app.addHook('preHandler', async (request) => {
    if (!HAS_BEFORE.has(request.method) || !request.url.startsWith('/api/') || !ctx.carriesAdmin(request)) return
    const before = await resourceAt(request)
    if (before !== undefined) befores.set(request, before)
  })

  /** Appends `record`; a failure is logged loudly (the answer is on its way either way). */
  async function save (request: FastifyRequest, record: AuditRecord): Promise<void> {
    try {
      await audit.record(record)
    } catch (err) {
      request.log.error({ err, action: record.action, target: record.target, by: record.actor }, 'audit entry not recorded')
    }
  }

  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const refused = reply.statusCode >= 400 ? ctx.refused(request) : undefined
    if (refused !== undefined) {
      const message = (parsedJson(payload) as { error?: unknown } | undefined)?.error
      await save(request, {
        ...refused,
        action: `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`,
        target: request.url,
        status: reply.statusCode,
        refused: typeof message === 'string' && message !== '' ? message.slice(0, MAX_REFUSAL_CHARS) : `answered ${reply.statusCode}`
      })
      return payload
    }
    if (!MUTATING.has(request.method) || reply.statusCode >= 400) return payload
    const caller = ctx.caller(request)
    if (caller === undefined || !caller.actor.admin) return payload
    const before = befores.get(request)
    const after = HAS_AFTER.has(request.method) ? await resourceAt(request) : request.method === 'POST' ? parsedJson(payload) : undefined
    const body = requestBody(request)
    const record: AuditRecord = {
      actor: caller.actor.user,
      via: caller.session === undefined ? 'token' : 'session',
      action: `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`,
      target: request.url,
      status: reply.statusCode,
      ...(before !== undefined ? { before: keptValue(before) } : {}),
      ...(after !== undefined ? { after: keptValue(after) } : {}),
      ...(body !== undefined ? { request: body } : {})
    }
    await save(request, record)
    return payload
  })
}

function textParam (query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name]
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string') throw new InvalidRequestError(`"${name}" must be given once`)
  if (v.length > MAX_NAME_LENGTH) throw new InvalidRequestError(`"${name}" is longer than ${MAX_NAME_LENGTH} characters`)
  return v
}

const AUDIT_PARAMS = ['actor', 'action', 'node', 'outcome', 'since', 'until', 'limit', 'offset']
/** Deepest page: past it, a period narrows the search (a log is bounded by its retention anyway). */
const MAX_OFFSET = 1_000_000

/** `GET /api/audit`'s query; @throws InvalidRequestError naming the bad parameter. */
export function parseAuditQuery (query: Record<string, unknown>): AuditQuery {
  for (const key of Object.keys(query)) if (!AUDIT_PARAMS.includes(key)) throw new InvalidRequestError(`unknown query parameter "${key}" (${AUDIT_PARAMS.join(', ')})`)
  const since = parseTimeParam(query.since, 'since')
  const until = parseTimeParam(query.until, 'until')
  if (since !== undefined && until !== undefined && until < since) throw new InvalidRequestError('"until" is before "since"')
  const limitText = textParam(query, 'limit')
  if (limitText !== undefined && (!/^\d+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_LIMIT)) {
    throw new InvalidRequestError(`"limit" must be a whole number from 1 to ${MAX_LIMIT}`)
  }
  const out: AuditQuery = { limit: limitText === undefined ? DEFAULT_LIMIT : Number(limitText) }
  const offsetText = textParam(query, 'offset')
  if (offsetText !== undefined) {
    if (!/^\d+$/.test(offsetText) || Number(offsetText) > MAX_OFFSET) throw new InvalidRequestError(`"offset" must be a whole number from 0 to ${MAX_OFFSET}`)
    out.offset = Number(offsetText)
  }
  for (const name of ['actor', 'action', 'node'] as const) {
    const v = textParam(query, name)
    if (v !== undefined) out[name] = v
  }
  const outcome = textParam(query, 'outcome')
  if (outcome !== undefined) {
    if (!OUTCOMES.includes(outcome as AuditOutcome)) throw new InvalidRequestError(`"outcome" must be ${OUTCOMES.join(' or ')}`)
    out.outcome = outcome as AuditOutcome
  }
  if (since !== undefined) out.since = since
  if (until !== undefined) out.until = until
  return out
}

/** `GET /api/audit` (admin). */
export function auditRoutes (audit: AuditApi): HttpPlugin {
  return {
    ...AUDIT_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/audit', async (request): Promise<AuditPage> => {
        authenticate(request, 'admin')
        return audit.query(parseAuditQuery(request.query as Record<string, unknown>))
      })
    }
  }
}
