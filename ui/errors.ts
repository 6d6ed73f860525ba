/**
 * The HTTP layer's own errors and the one place that maps every error a route can meet
 * to a status code and a message safe to show the caller.
 */
import { isKinded, type ErrorKind } from '../crdt/errors.ts'

/** No (valid) session cookie or bearer token. */
export class UnauthenticatedError extends Error {
  constructor (message: string) { super(message); this.name = 'UnauthenticatedError' }
}

/** Authenticated, but the request is refused (admin-only call, missing CSRF token). */
export class ForbiddenError extends Error {
  constructor (message: string) { super(message); this.name = 'ForbiddenError' }
}

/** Too many failed logins for a username or an address; retry after the given time. */
export class TooManyLoginAttemptsError extends Error {
  readonly retryAfterSeconds: number
  constructor (retryAfterSeconds: number) {
    super(`too many failed login attempts; try again in ${retryAfterSeconds} seconds`)
    this.name = 'TooManyLoginAttemptsError'
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** The services a node's HTTP layer may be built with; a route of an absent one answers 404. */
export type HttpService = 'print' | 'mesh' | 'panel' | 'metrics' | 'pages' | 'users' | 'ldap' | 'reports' | 'client' | 'credit'

/** A route of a service this node does not run (jobs on central, mesh routes without a mesh). */
export class ServiceNotHereError extends Error {
  readonly service: HttpService
  constructor (service: HttpService) {
    super(`this node has no ${service} service`)
    this.name = 'ServiceNotHereError'
    this.service = service
  }
}

/** The HTTP layer was assembled wrongly (no way to check admin tokens, no service at all). */
export class HttpServerConfigError extends Error {
  constructor (message: string) { super(message); this.name = 'HttpServerConfigError' }
}

/** What the error handler sends for one error. */
export interface HttpErrorReply {
  status: number
  message: string
  headers: Record<string, string>
}

/** Shown for every unexpected failure; the details go to the log only. */
export const INTERNAL_ERROR_MESSAGE = 'internal server error'

/** Messages for fastify's own request errors, worded for API callers. */
const FASTIFY_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'request body is not valid JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request body is empty although Content-Type is application/json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'request body is too large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported Content-Type for this request',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'Content-Length does not match the body'
}

interface FastifyLikeError {
  code?: unknown
  statusCode?: unknown
  validation?: unknown
  message: string
}

/** The HTTP status of each error kind (crdt/errors.ts): the one mapping, whatever layer raised the error. */
export const KIND_STATUS: Readonly<Record<ErrorKind, number>> = {
  'not-found': 404,
  'not-authorized': 403,
  'invalid-state': 409,
  'invalid-request': 400,
  unavailable: 503
}

/** Maps any thrown value to the status, message and headers to answer with. */
export function describeError (err: unknown): HttpErrorReply {
  const plain = (status: number, message: string): HttpErrorReply => ({ status, message, headers: {} })
  if (isKinded(err)) return plain(KIND_STATUS[err.kind], err.message)
  if (err instanceof ForbiddenError) return plain(403, err.message)
  if (err instanceof ServiceNotHereError) return plain(404, err.message)
  if (err instanceof UnauthenticatedError) return plain(401, err.message)
  if (err instanceof TooManyLoginAttemptsError) {
    return { status: 429, message: err.message, headers: { 'retry-after': String(err.retryAfterSeconds) } }
  }
  if (err instanceof Error) {
    const e = err as Error & FastifyLikeError
    const status = typeof e.statusCode === 'number' ? e.statusCode : undefined
    if (status !== undefined && status >= 400 && status < 500) {
      if (e.validation !== undefined) return plain(400, `invalid request: ${e.message}`)
      const known = typeof e.code === 'string' ? FASTIFY_MESSAGES[e.code] : undefined
      // Other fastify 4xx messages describe the request's shape, never its content.
      return plain(status, known ?? e.message)
    }
  }
  return plain(500, INTERNAL_ERROR_MESSAGE)
}
