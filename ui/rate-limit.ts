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
 *
 * {@link LoginGuard} applies these limits; a node has one, shared by the web login and
 * IPP's HTTP authentication.
 */
import type { Actor } from '../devices/jobs/types.ts'

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

  /** Every key with failures still in the window, and their times (for {@link load} after a restart). */
  entries (): Array<[string, number[]]> {
    this.sweep()
    return [...this.failures].map(([key, stamps]) => [key, [...stamps]])
  }

  /** Takes back failures saved by {@link entries} (older ones than the window are dropped as they are read). */
  load (entries: ReadonlyArray<[string, readonly number[]]>): void {
    for (const [key, stamps] of entries) {
      if (stamps.length === 0) continue
      this.evictIfFull()
      this.failures.set(key, [...stamps].sort((a, b) => a - b))
      this.live(key)
    }
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

/** What a login attempt came to. */
export type LoginOutcome =
  | { ok: true, actor: Actor }
  /** Wrong username, PIN or token (counted against the attempt's keys). */
  | { ok: false, refusal: 'wrong' }
  /** Not checked at all: a limit is reached; `retryAfterMs` until it frees. */
  | { ok: false, refusal: 'throttled', limit: LoginLimit, retryAfterMs: number }

/** Where the guard reports failures and refusals (the node's metrics). */
export interface LoginReport {
  failed (method: LoginMethod | 'admin-token'): void
  refused (limit: LoginLimit): void
  /** A user logged in (PIN or card); optional: only the HTTP doors that say how count logins. */
  succeeded? (method: LoginMethod): void
}

/** How a user proved who they are: a PIN (with a username) or a card number. */
export type LoginMethod = 'pin' | 'card' | 'password'

export interface LoginGuardInit {
  policy?: Partial<LoginPolicy>
  now?: () => number
  report?: LoginReport
  /** Called after every change of the counted failures, so a node can keep them across restarts ({@link LoginGuard.snapshot}). */
  onChange?: () => void
}

/** The counted failures as a node stores them (versioned, so a later format can tell). */
export interface LoginSnapshot {
  version: 1
  failures: Array<[string, number[]]>
}

/** A stored snapshot that is not one. */
export class InvalidLoginSnapshotError extends Error {
  override readonly name = 'InvalidLoginSnapshotError'
}

/**
 * The login limits of {@link LoginPolicy} applied to PIN logins and admin tokens, wherever
 * they come from: the web login, the API's bearer token, IPP's HTTP authentication. One
 * guard per node, so failures through one door count at the others. Never throws for a
 * refusal: callers turn the outcome into their protocol's answer.
 */
export class LoginGuard {
  readonly policy: LoginPolicy
  private readonly limiter: LoginLimiter
  private readonly report: LoginReport | undefined
  private readonly changed: () => void

  constructor (init: LoginGuardInit = {}) {
    this.policy = { ...DEFAULT_LOGIN_POLICY, ...init.policy }
    this.limiter = new LoginLimiter({ ...(init.now !== undefined ? { now: init.now } : {}), windowMs: this.policy.windowMs })
    this.report = init.report
    this.changed = init.onChange ?? (() => {})
  }

  /** The failures counted now, to store. */
  snapshot (): LoginSnapshot {
    return { version: 1, failures: this.limiter.entries() }
  }

  /**
   * Takes back stored failures (a restart must not wipe a lockout).
   * @throws InvalidLoginSnapshotError when `snapshot` is not a {@link LoginSnapshot}
   */
  restore (snapshot: unknown): void {
    const s = snapshot as Partial<LoginSnapshot> | null
    const valid = s !== null && typeof s === 'object' && s.version === 1 && Array.isArray(s.failures) &&
      s.failures.every((e) => Array.isArray(e) && typeof e[0] === 'string' && Array.isArray(e[1]) && e[1].every((t) => Number.isFinite(t)))
    if (!valid) throw new InvalidLoginSnapshotError('stored login failures are not a version 1 snapshot')
    this.limiter.load(s.failures as Array<[string, number[]]>)
  }

  /**
   * A username and PIN from `address`, checked by `check` (undefined: wrong) unless a limit
   * is reached. Counted before the slow check and forgiven on success, so parallel guesses
   * are limited too; a failure of `check` itself (the directory) is forgiven and rethrown.
   */
  async pin (username: string, address: string, check: () => Promise<Actor | undefined>, method: LoginMethod = 'pin'): Promise<LoginOutcome> {
    const name = username.normalize('NFC').toLowerCase()
    const uKey = `user:${name}`
    const pKey = `pair:${name}|${address}` // (username, address): where wrong PINs count first
    const iKey = `ip:${address}`
    // many wrong PINs for this username from everywhere: each address gets fewer tries
    const slowMode = this.limiter.count(uKey) >= this.policy.userFailures
    const refused = this.limited([
      [pKey, slowMode ? this.policy.slowModePairFailures : this.policy.pairFailures, slowMode ? 'slow-mode' : 'pair'],
      [iKey, this.policy.addressFailures, 'address']
    ])
    if (refused !== undefined) return refused
    const hadPairFailures = this.limiter.count(pKey) > 0
    const keys = [pKey, iKey, uKey]
    const stamps = keys.map((key) => this.limiter.hit(key))
    const forgive = (): void => { keys.forEach((key, i) => this.limiter.forgive(key, stamps[i])) }
    let actor: Actor | undefined
    try {
      actor = await check()
    } catch (err) {
      forgive() // not a wrong PIN: the directory failed
      throw err
    }
    if (actor === undefined) {
      this.report?.failed(method)
      this.changed()
      return { ok: false, refusal: 'wrong' }
    }
    forgive()
    this.limiter.reset(pKey)
    this.report?.succeeded?.(method)
    if (hadPairFailures) this.changed() // a right PIN after wrong ones clears them; one without changes nothing stored
    return { ok: true, actor }
  }

  /**
   * An admin token from `address`. The right token is never refused, whatever failed before
   * from the address; wrong ones count against the address under a key of their own.
   */
  token (token: string, address: string, check: (token: string) => Actor | undefined): LoginOutcome {
    const actor = check(token)
    if (actor !== undefined) return { ok: true, actor }
    const key = `bearer:${address}`
    const refused = this.limited([[key, this.policy.bearerFailures, 'bearer']])
    if (refused !== undefined) return refused
    this.limiter.hit(key)
    this.report?.failed('admin-token')
    this.changed()
    return { ok: false, refusal: 'wrong' }
  }

  /** Whether wrong admin tokens from `address` are at their limit now (a caller may then skip a slow check it would make). */
  tokenThrottled (address: string): boolean {
    return this.limiter.retryAfterMs(`bearer:${address}`, this.policy.bearerFailures) > 0
  }

  /** Drops failures that left the window. */
  sweep (): void {
    this.limiter.sweep()
  }

  clear (): void {
    this.limiter.clear()
  }

  /** The refusal when any key is at its limit (the one freeing last is reported), else undefined. */
  private limited (limits: Array<[key: string, limit: number, name: LoginLimit]>): LoginOutcome | undefined {
    let worst: { waitMs: number, name: LoginLimit } = { waitMs: 0, name: 'pair' }
    for (const [key, limit, name] of limits) {
      const waitMs = this.limiter.retryAfterMs(key, limit)
      if (waitMs > worst.waitMs) worst = { waitMs, name }
    }
    if (worst.waitMs === 0) return undefined
    this.report?.refused(worst.name)
    return { ok: false, refusal: 'throttled', limit: worst.name, retryAfterMs: worst.waitMs }
  }
}
