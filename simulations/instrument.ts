/**
 * Wrappers that let the simulator see (and cut) a peer's real asynchronous work:
 * - {@link CrashablePersistence}: level persistence whose calls are tracked, and which can
 *   "die" like a kill -9: from the crash instant on, nothing more reaches the disk. Its disk
 *   can be full (every write fails with ENOSPC), fail single writes (EIO) or be slow (a write
 *   completes a while later on the virtual clock; a crash meanwhile loses it).
 * - {@link trackSpool}, {@link trackSigner}, {@link trackVerifier}: the same tracking for
 *   spool I/O and Ed25519 work.
 */
import type { Persistence } from '../crdt/persistence.ts'
import type { DocName } from '../crdt/names.ts'
import type { Signer, Verifier } from '../crdt/envelope.ts'
import type { Spool } from '../devices/spool.ts'
import type { AsyncTracker } from './scheduler.ts'

/** Every persistence call after a simulated kill -9 fails with this. */
export class PeerCrashedError extends Error {
  constructor (peer: string) { super(`${peer} crashed (simulated kill -9): nothing more reaches its disk`); this.name = 'PeerCrashedError' }
}

/** What a write fails with while the simulated disk is full (as Node's ENOSPC: `code` set). */
export class SimulatedDiskFullError extends Error {
  readonly code = 'ENOSPC'
  constructor (peer: string) { super(`${peer}: no space left on device (simulated)`); this.name = 'SimulatedDiskFullError' }
}

/** What a write fails with when the disk reports an I/O error (as Node's EIO: `code` set). */
export class SimulatedIOError extends Error {
  readonly code = 'EIO'
  constructor (peer: string) { super(`${peer}: i/o error (simulated)`); this.name = 'SimulatedIOError' }
}

/** A disk failing single writes (the `io-error` fault): asked once per write, when it is issued. */
export interface FailingWrites { fails: () => boolean }

/** A slow disk (the `slow-disk` fault): how long (virtual ms) a write issued now takes. */
export interface SlowWrites { delayMs: () => number }

/** The simulator's clock, on which slow writes complete. */
export interface WriteClock {
  now: () => number
  schedule: (fn: () => void, ms: number) => void
}

/**
 * A {@link Persistence} that counts its calls, can be crashed, can run out of disk space,
 * fail single writes, and be slow.
 */
export class CrashablePersistence implements Persistence {
  private dead = false
  /** While true every write (append, compact) fails with {@link SimulatedDiskFullError}; reads still work and the process lives on. */
  diskFull = false
  /** While set, the writes (append, compact) it picks fail with {@link SimulatedIOError}, nothing of them written. */
  failingWrites?: FailingWrites
  /**
   * While set, every write (append, compact, remove) completes only after its delay on the
   * virtual clock, after every write issued before it (the disk's order); until then it is
   * not on disk, and a crash loses it.
   */
  slowWrites?: SlowWrites
  /** Writes waiting for their time on a slow disk, in issue order. */
  private readonly waiting = new Set<(err: Error) => void>()
  /** Writes of a slow disk not yet handed to the database (later ones queue behind them). */
  private queued = 0
  /** When the last write issued on a slow disk completes. */
  private lastDueAt = 0
  /** Appends still allowed before an armed crash strikes; undefined when none is armed. */
  private appendsLeft?: number

  constructor (
    private readonly inner: Persistence,
    private readonly tracker: AsyncTracker,
    private readonly peer: string,
    /** Called once, synchronously, at the crash instant. */
    private readonly onCrash: () => void,
    /** Needed for {@link slowWrites} (with a tracker made for parking). */
    private readonly clock?: WriteClock
  ) {}

  get crashed (): boolean { return this.dead }

  /** Crashes now. */
  crash (): void {
    if (this.dead) return
    this.dead = true
    // writes a slow disk had not completed never reach it
    for (const fail of [...this.waiting]) fail(new PeerCrashedError(this.peer))
    this.waiting.clear()
    this.onCrash()
  }

  /** Writes issued but not yet completed by a slow disk. */
  get pendingWrites (): number { return this.waiting.size }

  /** Crashes in the middle of the peer's work: after `n` more appends, the next one dies. */
  crashAfterAppends (n: number): void {
    this.appendsLeft = n
  }

  private async call<T> (fn: () => Promise<T>): Promise<T> {
    return await this.tracker.track(async () => {
      if (this.dead) throw new PeerCrashedError(this.peer)
      return await fn()
    })
  }

  async load (name: DocName): Promise<Uint8Array[]> { return await this.call(async () => await this.inner.load(name)) }
  async names (): Promise<DocName[]> { return await this.call(async () => await this.inner.names()) }
  async remove (name: DocName): Promise<void> { await this.write(false, async () => await this.inner.remove(name)) }
  async compact (name: DocName, entries: Uint8Array[]): Promise<void> { await this.write(true, async () => await this.inner.compact(name, entries)) }

  /**
   * A write: failing (when `faulty`) if the disk is full then or picked it for an I/O error
   * when issued; on a slow disk (or behind writes still waiting for one) done only when its
   * time comes, in issue order.
   */
  private async write (faulty: boolean, fn: () => Promise<void>): Promise<void> {
    const ioError = faulty && !this.dead && this.failingWrites?.fails() === true
    const run = async (): Promise<void> => {
      await this.call(async () => {
        if (faulty && this.diskFull) throw new SimulatedDiskFullError(this.peer)
        if (ioError) throw new SimulatedIOError(this.peer)
        await fn()
      })
    }
    if ((this.slowWrites === undefined && this.queued === 0) || this.dead) { await run(); return }
    const clock = this.clock
    if (clock === undefined) throw new Error('a slow disk needs the simulator\'s clock')
    const dueAt = Math.max(this.lastDueAt, clock.now() + (this.slowWrites?.delayMs() ?? 0))
    this.lastDueAt = dueAt
    const due = new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(err)
      this.waiting.add(fail)
      clock.schedule(() => { if (this.waiting.delete(fail)) resolve() }, dueAt - clock.now())
    })
    this.queued++
    try {
      await this.tracker.park(due)
    } finally {
      this.queued--
    }
    await run()
  }

  /**
   * On a working disk every append called before the crash instant reaches the disk (in call
   * order: the real persistence group-commits in order). A real kill -9 may also lose a
   * suffix of appends still queued; nothing built on them was acknowledged or sent yet (the
   * store emits and resolves only once durable), so that equals a crash a moment earlier,
   * which the simulator injects too. Losing them here by I/O timing would break exact
   * replay; a slow disk (`slowWrites`) loses them by virtual time instead.
   */
  async append (name: DocName, update: Uint8Array): Promise<void> {
    if (this.appendsLeft !== undefined && !this.dead) {
      if (this.appendsLeft === 0) this.crash()
      else this.appendsLeft--
    }
    await this.write(true, async () => await this.inner.append(name, update))
  }

  /** Closes the database for real, crashed or not (the next process opens it again). */
  async close (): Promise<void> {
    await this.tracker.track(async () => await this.inner.close())
  }
}

/** The spool with every I/O method counted by `tracker`. */
export function trackSpool (spool: Spool, tracker: AsyncTracker): Spool {
  const tracked = new Set<string | symbol>(['write', 'has', 'verify', 'remove', 'list', 'prepare'])
  return new Proxy(spool, {
    get (target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver)
      if (!tracked.has(prop) || typeof value !== 'function') return value
      return async (...args: unknown[]) => await tracker.track(async () => await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args))
    }
  })
}

export function trackSigner (signer: Signer, tracker: AsyncTracker): Signer {
  return { id: signer.id, sign: async (data) => await tracker.track(async () => await signer.sign(data)) }
}

export function trackVerifier (verify: Verifier, tracker: AsyncTracker): Verifier {
  return async (author, data, signature) => await tracker.track(async () => await verify(author, data, signature))
}
