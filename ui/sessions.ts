/**
 * Server-side web sessions: a random id in an httpOnly cookie maps to the actor who logged
 * in and that session's CSRF token. Nothing but the id ever leaves the server in a cookie.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Actor } from '../devices/jobs/types.ts'
import type { AdminPrincipal } from './admin-accounts-api.ts'

/** Bytes of randomness in a session id and a CSRF token: 256 bits, unguessable. */
const TOKEN_BYTES = 32
/** A session unused this long is dropped: a release station left logged in closes itself. */
export const SESSION_IDLE_MS = 30 * 60_000
/** No session outlives one working day, however busy. */
export const SESSION_MAX_AGE_MS = 12 * 60 * 60_000
/** Bounds memory when someone logs in over and over; the oldest sessions go first. */
export const MAX_SESSIONS = 10_000

/** One logged-in browser. */
export interface Session {
  id: string
  actor: Actor
  /** Sent back by the page in `X-CSRF-Token` on every mutating call. */
  csrfToken: string
  /** The named admin account this session is (ui/server.ts checks it is unchanged on every call). */
  account?: AdminPrincipal
  /** For an admin session opened with a token: which token (the mesh token's stamp, or `own`); the session ends when that changes. */
  tokenStamp?: string
  createdAt: number
  lastSeenAt: number
}

export interface SessionStoreInit {
  /** Clock, injectable so tests can move time without sleeping. */
  now?: () => number
  idleMs?: number
  maxAgeMs?: number
  maxSessions?: number
}

/** In-memory session map with idle and absolute expiry. */
export class SessionStore {
  private readonly sessions = new Map<string, Session>()
  private readonly now: () => number
  private readonly idleMs: number
  private readonly maxAgeMs: number
  private readonly maxSessions: number

  constructor (init: SessionStoreInit = {}) {
    this.now = init.now ?? Date.now
    this.idleMs = init.idleMs ?? SESSION_IDLE_MS
    this.maxAgeMs = init.maxAgeMs ?? SESSION_MAX_AGE_MS
    this.maxSessions = init.maxSessions ?? MAX_SESSIONS
  }

  /** Opens a session for `actor` with fresh random id and CSRF token; `how` says which account or token it stands for. */
  create (actor: Actor, how: { account?: AdminPrincipal, tokenStamp?: string } = {}): Session {
    while (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.keys().next().value
      if (oldest === undefined) break
      this.sessions.delete(oldest)
    }
    const t = this.now()
    const session: Session = {
      id: randomBytes(TOKEN_BYTES).toString('base64url'),
      actor: { user: actor.user, admin: actor.admin },
      csrfToken: randomBytes(TOKEN_BYTES).toString('base64url'),
      ...(how.account !== undefined ? { account: { ...how.account, sites: [...how.account.sites] } } : {}),
      ...(how.tokenStamp !== undefined ? { tokenStamp: how.tokenStamp } : {}),
      createdAt: t,
      lastSeenAt: t
    }
    this.sessions.set(session.id, session)
    return session
  }

  /** The live session with this id (and marks it used), or undefined when unknown or expired. */
  get (id: string | undefined): Session | undefined {
    if (id === undefined || id === '') return undefined
    const session = this.sessions.get(id)
    if (session === undefined) return undefined
    const t = this.now()
    if (this.expired(session, t)) {
      this.sessions.delete(id)
      return undefined
    }
    session.lastSeenAt = t
    return session
  }

  delete (id: string | undefined): void {
    if (id !== undefined) this.sessions.delete(id)
  }

  /** Drops every expired session; called periodically so abandoned ones do not pile up. */
  sweep (): void {
    const t = this.now()
    for (const [id, session] of this.sessions) {
      if (this.expired(session, t)) this.sessions.delete(id)
    }
  }

  clear (): void {
    this.sessions.clear()
  }

  get size (): number {
    return this.sessions.size
  }

  private expired (session: Session, t: number): boolean {
    return t - session.lastSeenAt >= this.idleMs || t - session.createdAt >= this.maxAgeMs
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfTokenMatches (session: Session, presented: string | undefined): boolean {
  if (presented === undefined) return false
  const a = Buffer.from(session.csrfToken)
  const b = Buffer.from(presented)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Checks a presented admin bearer token; the admin actor when it is right, else undefined. */
export type AdminAuthenticator = (token: string) => Actor | undefined

/**
 * An {@link AdminAuthenticator} for one configured token, for nodes without a SiteApi
 * (central). Compares SHA-256 digests in constant time, so neither the token's content
 * nor its length leaks through timing.
 */
export function adminTokenAuthenticator (expected: string, actor: Actor = { user: 'admin', admin: true }): AdminAuthenticator {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  const expectedDigest = digest(expected)
  return (token) => timingSafeEqual(digest(token), expectedDigest) ? { user: actor.user, admin: actor.admin } : undefined
}
