/**
 * A site's IPP authentication: the {@link IppAuthenticator} its IPP server is given. It
 * checks what the web login checks — a username and PIN against the directory, or the
 * admin token — through the node's one {@link LoginGuard}, so wrong PINs count the same
 * whether they were typed at the release page or sent by `cancel`, and the same limits
 * (which cannot lock anyone else out) apply.
 *
 * Credentials, as HTTP authentication on the IPP request:
 * - `Basic base64(user:PIN)`: a user of the directory, acting on their own jobs.
 * - `Basic base64(admin:<admin token>)`: an admin, acting on any job (what `ipptool
 *   ipp://admin:TOKEN@host…` sends). The token is checked first and never refused for
 *   others' failures; when it does not match, a directory user named `admin` may still log
 *   in with their PIN, as an ordinary user.
 * - `Bearer <admin token>`: an admin, as with the HTTP API.
 *
 * CUPS clients send each password they were given twice before asking again (and ipptool
 * the one in its URI up to three times): a wrong PIN resent as it was is refused without
 * asking the directory or counting it again, so each PIN a user types counts once.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { IppAuthenticator } from '../devices/ipp/auth.ts'
import type { Actor } from '../devices/jobs/types.ts'
import type { LoginGuard, LoginOutcome } from '../ui/rate-limit.ts'

/** The Basic user name whose password is the admin token. */
export const IPP_ADMIN_USER = 'admin'
/** A wrong PIN resent within this is the client retrying, not a new guess. */
const REPEAT_WINDOW_MS = 60_000
/** Bounds the memory of recent wrong PINs when they come from everywhere; the oldest go first. */
const MAX_REMEMBERED_REFUSALS = 10_000

/** Recently refused (user, address, PIN) triples, kept only as salted digests. */
class RecentRefusals {
  private readonly salt = randomBytes(16)
  /** digest → when it stops counting as a repeat */
  private readonly until = new Map<string, number>()

  constructor (private readonly now: () => number) {}

  has (user: string, address: string, secret: string): boolean {
    const key = this.key(user, address, secret)
    const until = this.until.get(key)
    if (until === undefined) return false
    if (until > this.now()) return true
    this.until.delete(key)
    return false
  }

  add (user: string, address: string, secret: string): void {
    const key = this.key(user, address, secret)
    this.until.delete(key) // re-inserted last: the map's order is oldest first
    if (this.until.size >= MAX_REMEMBERED_REFUSALS) {
      const oldest = this.until.keys().next().value
      if (oldest !== undefined) this.until.delete(oldest)
    }
    this.until.set(key, this.now() + REPEAT_WINDOW_MS)
  }

  private key (user: string, address: string, secret: string): string {
    return createHash('sha256').update(this.salt).update(JSON.stringify([user, address, secret])).digest('base64')
  }
}

export interface IppAuthInit {
  logins: LoginGuard
  /** True when `username` exists and `pin` is theirs (node/users.ts `checkPin`). */
  checkPin: (username: string, pin: string) => Promise<boolean>
  /** The admin actor when `token` is the admin token (compared in constant time). */
  checkAdminToken: (token: string) => Actor | undefined
  /**
   * Checks a token against the mesh's admin token (its slow hash) before `checkAdminToken`
   * looks (node/admin-accounts.ts): once the mesh has one, only it is the admin token here too.
   * Not asked for an address at its limit of wrong tokens.
   */
  verifyToken?: (token: string, address: string) => Promise<void>
  /** Clock of the repeat window (tests move it). */
  now?: () => number
}

export function ippAuthenticator (init: IppAuthInit): IppAuthenticator {
  const { logins, checkPin, checkAdminToken } = init
  const refused = new RecentRefusals(init.now ?? Date.now)
  const settled = (outcome: LoginOutcome): Awaited<ReturnType<IppAuthenticator>> => {
    if (outcome.ok) return outcome
    if (outcome.refusal === 'wrong') return { ok: false, refusal: 'wrong' }
    return { ok: false, refusal: 'throttled', retryAfterSeconds: Math.ceil(outcome.retryAfterMs / 1000) }
  }
  return async (credentials, address) => {
    if (credentials.scheme === 'bearer') {
      await init.verifyToken?.(credentials.token, address)
      return settled(logins.token(credentials.token, address, checkAdminToken))
    }
    const { user, secret } = credentials
    if (user === IPP_ADMIN_USER) {
      await init.verifyToken?.(secret, address)
      const admin = checkAdminToken(secret)
      if (admin !== undefined) return { ok: true, actor: admin }
    }
    if (refused.has(user, address, secret)) return { ok: false, refusal: 'wrong' } // the client resending, not a new guess
    const outcome = await logins.pin(user, address, async () => await checkPin(user, secret) ? { user, admin: false } : undefined)
    if (!outcome.ok && outcome.refusal === 'wrong') refused.add(user, address, secret)
    return settled(outcome)
  }
}
