/**
 * The HTTP layer's own errors and the one place that maps every error a route can meet
 * to a status code and a message safe to show the caller.
 */
import {
  InvalidJobStateError, JobNotFoundError, NotAuthorizedError, PrinterNotFoundError, QueueNotFoundError, NotPartnerError, HolderUnreachableError
} from '../devices/jobs/types.ts'
import { EnrollmentError } from '../crdt/license.ts'
import { InvalidRequestError, NotCentralError } from './api.ts'

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
export type HttpService = 'print' | 'mesh'

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

/** Maps any thrown value to the status, message and headers to answer with. */
export function describeError (err: unknown): HttpErrorReply {
  const plain = (status: number, message: string): HttpErrorReply => ({ status, message, headers: {} })
  if (err instanceof JobNotFoundError || err instanceof PrinterNotFoundError || err instanceof QueueNotFoundError) {
    return plain(404, err.message)
  }
  if (err instanceof NotAuthorizedError || err instanceof ForbiddenError || err instanceof NotPartnerError) return plain(403, err.message)
  if (err instanceof HolderUnreachableError) return plain(503, err.message)
  if (err instanceof ServiceNotHereError) return plain(404, err.message)
  if (err instanceof InvalidJobStateError || err instanceof NotCentralError) return plain(409, err.message)
  if (err instanceof InvalidRequestError || err instanceof EnrollmentError) return plain(400, err.message)
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
