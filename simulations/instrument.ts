/**
 * Wrappers that let the simulator see (and cut) a peer's real asynchronous work:
 * - {@link CrashablePersistence}: level persistence whose calls are tracked, and which can
 *   "die" like a kill -9: from the crash instant on, nothing more reaches the disk.
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

/** A {@link Persistence} that counts its calls, can be crashed, and can run out of disk space. */
export class CrashablePersistence implements Persistence {
  private dead = false
  /** While true every write (append, compact) fails with {@link SimulatedDiskFullError}; reads still work and the process lives on. */
  diskFull = false
  /** Appends still allowed before an armed crash strikes; undefined when none is armed. */
  private appendsLeft?: number

  constructor (
    private readonly inner: Persistence,
    private readonly tracker: AsyncTracker,
    private readonly peer: string,
    /** Called once, synchronously, at the crash instant. */
    private readonly onCrash: () => void
  ) {}

  get crashed (): boolean { return this.dead }

  /** Crashes now. */
  crash (): void {
    if (this.dead) return
    this.dead = true
    this.onCrash()
  }

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
  async remove (name: DocName): Promise<void> { await this.call(async () => await this.inner.remove(name)) }
  async compact (name: DocName, entries: Uint8Array[]): Promise<void> { await this.call(async () => { this.checkSpace(); await this.inner.compact(name, entries) }) }

  private checkSpace (): void {
    if (this.diskFull) throw new SimulatedDiskFullError(this.peer)
  }

  /**
   * Every append called before the crash instant reaches the disk (in call order: the real
   * persistence group-commits in order). A real kill -9 may also lose a suffix of appends
   * still queued; nothing built on them was acknowledged or sent yet (the store emits and
   * resolves only once durable), so that equals a crash a moment earlier, which the
   * simulator injects too. Losing them here by I/O timing would break exact replay.
   */
  async append (name: DocName, update: Uint8Array): Promise<void> {
    if (this.appendsLeft !== undefined && !this.dead) {
      if (this.appendsLeft === 0) this.crash()
      else this.appendsLeft--
    }
    await this.call(async () => { this.checkSpace(); await this.inner.append(name, update) })
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
