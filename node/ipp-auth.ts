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
 */
import type { IppAuthenticator } from '../devices/ipp/auth.ts'
import type { Actor } from '../devices/jobs/types.ts'
import type { LoginGuard, LoginOutcome } from '../ui/rate-limit.ts'

/** The Basic user name whose password is the admin token. */
export const IPP_ADMIN_USER = 'admin'

export interface IppAuthInit {
  logins: LoginGuard
  /** True when `username` exists and `pin` is theirs (node/users.ts `checkPin`). */
  checkPin: (username: string, pin: string) => Promise<boolean>
  /** The admin actor when `token` is the admin token (compared in constant time). */
  checkAdminToken: (token: string) => Actor | undefined
}

export function ippAuthenticator (init: IppAuthInit): IppAuthenticator {
  const { logins, checkPin, checkAdminToken } = init
  const settled = (outcome: LoginOutcome): Awaited<ReturnType<IppAuthenticator>> => {
    if (outcome.ok) return outcome
    if (outcome.refusal === 'wrong') return { ok: false, refusal: 'wrong' }
    return { ok: false, refusal: 'throttled', retryAfterSeconds: Math.ceil(outcome.retryAfterMs / 1000) }
  }
  return async (credentials, address) => {
    if (credentials.scheme === 'bearer') return settled(logins.token(credentials.token, address, checkAdminToken))
    const { user, secret } = credentials
    if (user === IPP_ADMIN_USER) {
      const admin = checkAdminToken(secret)
      if (admin !== undefined) return { ok: true, actor: admin }
    }
    const outcome = await logins.pin(user, address, async () => await checkPin(user, secret) ? { user, admin: false } : undefined)
    return settled(outcome)
  }
}
