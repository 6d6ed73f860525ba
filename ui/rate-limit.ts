/**
 * Login rate limiting: counts failed attempts per key in a sliding window and refuses
 * further attempts once a key reaches its limit.
 *
 * The limits are shaped so that nobody can use them to lock someone else out
 * ({@link LoginPolicy}): wrong PINs count against the pair (username, address), so a
 * guesser locks only itself out at its own address; wrong logins across usernames count
 * against the address, but never against the admin bearer token; many wrong PINs for one
 * username from many addresses put that username in a slow mode where each address gets
 * one wrong try per window — the right PIN from an address that has not failed still works.
 *
 * An attempt is counted *before* the (slow) credential check and forgiven when it
 * succeeds, so firing many attempts in parallel cannot slip past the limit.
 */

/** Wrong PINs one username may collect from one address per window: typos pass, guessing from one place stops. */
export const MAX_FAILURES_PER_PAIR = 5
/** Wrong logins one address may collect per window across usernames: a kiosk gets typos, a sprayer does not get many users. */
export const MAX_FAILURES_PER_IP = 20
/** Wrong PINs for one username from all addresses per window before it goes to slow mode (a distributed guess). */
export const MAX_FAILURES_PER_USER = 20
/** In slow mode, wrong PINs per (username, address) per window: 10,000 PINs then need thousands of addresses for days. */
export const SLOW_MODE_FAILURES_PER_PAIR = 1
/** Wrong admin bearer tokens per address per window (a 128-bit token is not guessed; this only quiets the log). */
export const MAX_BEARER_FAILURES_PER_IP = 20
/** How long a failure counts against a key. */
export const FAILURE_WINDOW_MS = 15 * 60_000
/** Bounds memory when an attacker cycles through made-up usernames. */
export const MAX_TRACKED_KEYS = 50_000

/** The login limits, all tunable (HttpServerInit.loginPolicy); defaults above. */
export interface LoginPolicy {
  pairFailures: number
  addressFailures: number
  userFailures: number
  slowModePairFailures: number
  bearerFailures: number
  windowMs: number
}

export const DEFAULT_LOGIN_POLICY: Readonly<LoginPolicy> = {
  pairFailures: MAX_FAILURES_PER_PAIR,
  addressFailures: MAX_FAILURES_PER_IP,
  userFailures: MAX_FAILURES_PER_USER,
  slowModePairFailures: SLOW_MODE_FAILURES_PER_PAIR,
  bearerFailures: MAX_BEARER_FAILURES_PER_IP,
  windowMs: FAILURE_WINDOW_MS
}

/** Which limit refused an attempt (a label of the throttling metric). */
export type LoginLimit = 'pair' | 'address' | 'slow-mode' | 'bearer'

export interface LoginLimiterInit {
  now?: () => number
  windowMs?: number
  maxTrackedKeys?: number
}

/** Sliding-window failure counter keyed by string. */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>()
  private readonly now: () => number
  private readonly windowMs: number
  private readonly maxTrackedKeys: number

  constructor (init: LoginLimiterInit = {}) {
    this.now = init.now ?? Date.now
    this.windowMs = init.windowMs ?? FAILURE_WINDOW_MS
    this.maxTrackedKeys = init.maxTrackedKeys ?? MAX_TRACKED_KEYS
  }

  /**
   * Milliseconds until `key` may try again when it has `limit` failures in the window,
   * otherwise 0.
   */
  retryAfterMs (key: string, limit: number): number {
    const stamps = this.live(key)
    if (stamps.length < limit) return 0
    // The attempt that frees a slot is the (length - limit + 1)-th oldest one expiring.
    const freeing = stamps[stamps.length - limit]
    return Math.max(1, freeing + this.windowMs - this.now())
  }

  /** Counts one attempt against `key`; returns its timestamp for {@link forgive}. */
  hit (key: string): number {
    const t = this.now()
    const stamps = this.live(key)
    if (stamps.length === 0) {
      this.evictIfFull()
      this.failures.set(key, stamps)
    }
    stamps.push(t)
    return t
  }

  /** Failures of `key` in the window. */
  count (key: string): number {
    return this.live(key).length
  }

  /** Takes back one attempt counted at `stamp` (the attempt turned out right). */
  forgive (key: string, stamp: number): void {
    const stamps = this.failures.get(key)
    if (stamps === undefined) return
    const i = stamps.lastIndexOf(stamp)
    if (i >= 0) stamps.splice(i, 1)
    if (stamps.length === 0) this.failures.delete(key)
  }

  /** Forgets every failure of `key` (a successful login for that username). */
  reset (key: string): void {
    this.failures.delete(key)
  }

  /** Drops keys whose failures have all expired. */
  sweep (): void {
    for (const key of [...this.failures.keys()]) this.live(key)
  }

  clear (): void {
    this.failures.clear()
  }

  private live (key: string): number[] {
    const stamps = this.failures.get(key)
    if (stamps === undefined) return []
    const cutoff = this.now() - this.windowMs
    let drop = 0
    while (drop < stamps.length && stamps[drop] <= cutoff) drop++
    if (drop > 0) stamps.splice(0, drop)
    if (stamps.length === 0) this.failures.delete(key)
    return stamps
  }

  private evictIfFull (): void {
    if (this.failures.size < this.maxTrackedKeys) return
    const oldest = this.failures.keys().next().value
    if (oldest !== undefined) this.failures.delete(oldest)
  }
}
