/**
 * What a route family (a fastify plugin of the HTTP layer, one per service: jobs, roaming,
 * accounting, users, mesh) is given by the server core: the one authentication check, the
 * clock. A role registers the families of the services it has (node/site.ts); the core
 * answers the routes of an absent one with 404 and `this node has no … service`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Actor } from '../../devices/jobs/types.ts'
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { HttpService } from '../errors.ts'
import type { Session } from '../sessions.ts'

/** A user directory CSV of ~100k rows fits. */
export const CSV_IMPORT_BODY_LIMIT = 8 * 1024 * 1024
/** Longest job id or printer name accepted in a request. */
export const MAX_NAME_LENGTH = 256

/** Who is calling, and how they proved it. */
export interface Caller {
  actor: Actor
  /** Undefined for bearer-token calls. */
  session?: Session
}

export type AuthLevel = 'user' | 'admin'

/** What the server core gives every route family. */
export interface RouteContext {
  /** Resolves the caller of a protected route, enforcing the admin role and CSRF; throws the 401/403 errors. */
  authenticate: (request: FastifyRequest, level: AuthLevel) => Caller
  now: () => number
}

/** One route family: the service it belongs to, the path prefixes it owns, and its routes. */
export interface HttpPlugin {
  readonly service: HttpService
  /** Paths starting with one of these belong to this family (for the 404 of an absent service). */
  readonly prefixes: readonly string[]
  register: (app: FastifyInstance, ctx: RouteContext) => void
}

/** The body must be a JSON object; returns it as a record. */
export function objectBody (body: unknown, example: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError(`body must be a JSON object like ${example}`)
  return body as Record<string, unknown>
}
