/**
 * Who an IPP request comes from. A request may carry HTTP authentication (`Authorization:
 * Basic base64(user:PIN)`, or `Bearer <admin token>`); the server hands it to the
 * {@link IppAuthenticator} the node passes in (the site's user directory and login limits:
 * devices/ knows neither) and the operations see the outcome as `ctx.actor`.
 *
 * What needs it: operations on existing jobs (Cancel-Job, Hold-Job, Release-Job) always;
 * job creation (Print-Job, Create-Job, Send-Document, Validate-Job) on a queue with
 * `authenticatedIntake`. Without it such a request is answered HTTP 401 with a Basic
 * challenge and the IPP status client-error-not-authenticated, which is what makes CUPS
 * clients (ipptool with user:password in the URI, `cancel`, `lp`) ask for the password
 * and send the request again.
 *
 * What it shows: job attributes that name a job or its user ({@link PRIVATE_JOB_ATTRIBUTES})
 * are left out of answers about other users' jobs, as CUPS does with its default
 * JobPrivateValues: only the authenticated owner and admins see them.
 */
import type { Actor, JobRecord } from '../jobs/types.ts'

/** Credentials of one request, as its Authorization header carried them. */
export type IppCredentials =
  | { scheme: 'basic', user: string, secret: string }
  | { scheme: 'bearer', token: string }

/** What checking credentials came to. */
export type IppAuthentication =
  | { ok: true, actor: Actor }
  /** Wrong username, PIN or token. */
  | { ok: false, refusal: 'wrong' }
  /** Not checked: too many failed logins (the node's login limits); try again after this. */
  | { ok: false, refusal: 'throttled', retryAfterSeconds: number }

/**
 * Checks credentials sent from `remoteAddress` (the limits count failures per address).
 * The node supplies it; rejects only when the check itself failed (the directory).
 */
export type IppAuthenticator = (credentials: IppCredentials, remoteAddress: string) => Promise<IppAuthentication>

/** What Get-Jobs shows a client that did not authenticate. */
export type AnonymousJobList =
  /** Every job, with the attributes that name it or its user left out. */
  | 'private'
  /** No job at all. */
  | 'none'

/** The realm of the Basic challenge when the node names none. */
export const DEFAULT_REALM = 'printmesh'
/** name(255) is the longest user name IPP carries (RFC 8011 requesting-user-name). */
const MAX_USER_OCTETS = 255
/** Longer secrets are not PINs or admin tokens: refused without asking the directory. */
const MAX_SECRET_OCTETS = 1024

/**
 * The credentials of an Authorization header: undefined without one, `malformed` for one
 * that names no usable Basic or Bearer credentials (answered like wrong ones).
 */
export function credentialsOf (header: string | undefined): IppCredentials | 'malformed' | undefined {
  if (header === undefined) return undefined
  const m = /^(\S+)\s+(\S+)\s*$/.exec(header)
  if (m === null) return 'malformed'
  const scheme = m[1].toLowerCase()
  if (scheme === 'bearer') return Buffer.byteLength(m[2]) > MAX_SECRET_OCTETS ? 'malformed' : { scheme: 'bearer', token: m[2] }
  if (scheme !== 'basic' || !/^[A-Za-z0-9+/]+={0,2}$/.test(m[2])) return 'malformed'
  const decoded = Buffer.from(m[2], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon <= 0) return 'malformed'
  const user = decoded.slice(0, colon)
  const secret = decoded.slice(colon + 1)
  if (Buffer.byteLength(user) > MAX_USER_OCTETS || Buffer.byteLength(secret) > MAX_SECRET_OCTETS || secret === '') return 'malformed'
  return { scheme: 'basic', user, secret }
}

/** The `WWW-Authenticate` header of a 401 (RFC 7617: user names and PINs are UTF-8). */
export function basicChallenge (realm: string): string {
  return `Basic realm="${realm.replace(/["\\]/g, '')}", charset="UTF-8"`
}

/**
 * Job attributes that name the job, its document or its user: hidden from anyone but the
 * authenticated owner and admins (CUPS's default JobPrivateValues, plus the document and
 * user attributes of RFC 8011 and PWG 5100.x a server may one day return).
 */
export const PRIVATE_JOB_ATTRIBUTES: ReadonlySet<string> = new Set([
  'job-name', 'job-originating-user-name', 'job-originating-user-uri', 'job-originating-host-name',
  'document-name-supplied', 'document-name', 'phone'
])

/** Whether `actor` (undefined: not authenticated) may see the private attributes of `job`. */
export function maySeePrivate (actor: Actor | undefined, job: JobRecord): boolean {
  return actor !== undefined && (actor.admin || actor.user === job.owner)
}
