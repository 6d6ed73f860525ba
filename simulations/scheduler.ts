/**
 * The simulator's sense of time and of "nothing is happening any more":
 *
 * - {@link VirtualClock}: a virtual clock with a timer queue. The memory network delivers
 *   every message through it (its `schedule`), the output devices finish printing on it,
 *   and job services read it (plus a per-peer skew) as `now`. Timers run in (time, order of
 *   scheduling) order, only when the simulator advances the clock.
 * - {@link AsyncTracker}: counts real asynchronous work in flight (level I/O, spool I/O,
 *   signing, verifying), which the simulator wraps. {@link settle} waits until no tracked
 *   work is pending and no microtask is left, so the simulator runs one timer at a time and
 *   lets its consequences finish before the next: the order in which peers act, and so the
 *   order in which the seeded generators are consulted, does not depend on I/O timing.
 *   Work that waits for virtual time (a write of a slow disk, completed by a timer:
 *   {@link AsyncTracker.park}) does not count meanwhile, nor does the tracked work it is
 *   part of: it cannot progress until the simulator runs timers.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { setImmediate as nextTurn } from 'node:timers/promises'

/** A settle that takes longer than this (real time) means something hangs: fail loudly. */
export const SETTLE_TIMEOUT_MS = 30_000

export class SimulationStalledError extends Error {
  constructor (what: string) { super(`simulation stalled: ${what}`); this.name = 'SimulationStalledError' }
}

interface Timer { at: number, order: number, fn: () => void }

/** A virtual clock: `now()` moves only when {@link VirtualClock.advanceTo} or {@link VirtualClock.runNext} runs. */
export class VirtualClock {
  private time: number
  private order = 0
  /** Kept sorted by (at, order); small enough that insertion sort is fine. */
  private readonly timers: Timer[] = []

  constructor (start: number) { this.time = start }

  now (): number { return this.time }

  /** Runs `fn` `ms` virtual milliseconds from now (the memory network's `schedule`). */
  readonly schedule = (fn: () => void, ms: number): void => {
    const timer: Timer = { at: this.time + Math.max(0, ms), order: this.order++, fn }
    let i = this.timers.length
    while (i > 0 && (this.timers[i - 1].at > timer.at || (this.timers[i - 1].at === timer.at && this.timers[i - 1].order > timer.order))) i--
    this.timers.splice(i, 0, timer)
  }

  /** Timers not yet run. */
  pending (): number { return this.timers.length }

  /** When the next timer is due, if any. */
  nextAt (): number | undefined { return this.timers[0]?.at }

  /** Runs the earliest timer if it is due by `until`, moving the clock to it; false when none is. */
  runNext (until: number): boolean {
    const t = this.timers[0]
    if (t === undefined || t.at > until) return false
    this.timers.shift()
    if (t.at > this.time) this.time = t.at
    t.fn()
    return true
  }

  /** Moves the clock forward to `time` (never back) without running anything. */
  advanceTo (time: number): void {
    if (time > this.time) this.time = time
  }
}

/** One tracked operation, while it runs. */
interface Frame { live: boolean }

/** Counts asynchronous work in flight; see the file comment. */
export class AsyncTracker {
  private inFlight = 0
  private waiters: Array<() => void> = []
  /**
   * The tracked operations the current code runs inside, outermost first: only when work may
   * be parked (async context tracking slows every promise, so other runs go without).
   */
  private frames?: AsyncLocalStorage<readonly Frame[]>
  /** Live tracked operations waiting for virtual time (how many parked waits each is in). */
  private readonly blocked = new Map<Frame, number>()

  /** Lets work be parked from now on (before any is tracked). */
  enableParking (): void {
    if (this.inFlight > 0) throw new Error('parking must be enabled before any work is tracked')
    this.frames ??= new AsyncLocalStorage()
  }

  /** Tracked work that can progress without the virtual clock moving. */
  get pending (): number { return this.inFlight - this.blocked.size }

  /** Runs `fn`, counting it as in flight until its promise settles. */
  async track<T> (fn: () => Promise<T> | T): Promise<T> {
    this.inFlight++
    const frame: Frame = { live: true }
    try {
      return this.frames === undefined ? await fn() : await this.frames.run([...(this.frames.getStore() ?? []), frame], fn)
    } finally {
      frame.live = false
      this.blocked.delete(frame)
      this.inFlight--
      this.wake()
    }
  }

  /**
   * Waits for `promise`, which only virtual time settles (a timer of the simulator's clock) or
   * other tracked work: meanwhile the tracked operations this runs inside do not count as in
   * flight.
   */
  async park<T> (promise: Promise<T>): Promise<T> {
    if (this.frames === undefined) throw new Error('parking is not enabled on this tracker')
    const chain = (this.frames.getStore() ?? []).filter((f) => f.live)
    for (const f of chain) this.blocked.set(f, (this.blocked.get(f) ?? 0) + 1)
    this.wake()
    try {
      return await promise
    } finally {
      for (const f of chain) {
        const n = this.blocked.get(f)
        if (n === undefined) continue
        if (n <= 1) this.blocked.delete(f)
        else this.blocked.set(f, n - 1)
      }
    }
  }

  /**
   * Waits for `promise`, which the rest of the tracked work settles: meanwhile the tracked
   * operations this runs inside do not count as in flight (nothing without parking).
   */
  async waiting<T> (promise: Promise<T>): Promise<T> {
    return this.frames === undefined ? await promise : await this.park(promise)
  }

  private wake (): void {
    if (this.pending === 0) for (const w of this.waiters.splice(0)) w()
  }

  /** Resolves when nothing tracked is in flight (parked work aside). */
  async idle (): Promise<void> {
    if (this.pending === 0) return
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }
}

/**
 * Waits until the process is quiet: nothing tracked in flight and a whole event-loop turn
 * passed without new tracked work (so every microtask chain has run). Throws
 * {@link SimulationStalledError} after {@link SETTLE_TIMEOUT_MS}.
 */
export async function settle (tracker: AsyncTracker, what = 'settle'): Promise<void> {
  // tracked work that waits here for the rest to settle (the simulator's own, run as tracked work while a slow disk's writes are driven) does not count
  await tracker.waiting(quiet(tracker, what))
}

async function quiet (tracker: AsyncTracker, what: string): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS
  for (;;) {
    await nextTurn()
    if (tracker.pending === 0) {
      // one more turn: work started by the microtasks of the last one shows up here
      await nextTurn()
      if (tracker.pending === 0) return
    }
    if (Date.now() > deadline) throw new SimulationStalledError(`${what}: ${tracker.pending} operations still in flight after ${SETTLE_TIMEOUT_MS} ms`)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([tracker.idle(), new Promise((resolve) => { timer = setTimeout(resolve, SETTLE_TIMEOUT_MS) })])
    clearTimeout(timer)
  }
}
