/**
 * The document store: the Y.Docs a peer holds, persisted as signed envelopes
 * (crdt/envelope.ts). Invariants, all enforced here:
 *   1. Every local change is sealed (signed, next sequence number) and appended to
 *      persistence; `transact` resolves only after that append is durable, so a caller may
 *      acknowledge the change.
 *   2. Envelopes replayed from storage are never persisted again; envelopes from peers are
 *      persisted as received (unchanged bytes, so they can be relayed and re-verified).
 *   3. An envelope already held (same document, author and sequence) is not applied,
 *      persisted or emitted again.
 *   4. A persistence failure rejects the call that caused it; it is never swallowed. Later
 *      envelopes of that document (maybe built on the lost change) are not acknowledged
 *      either until the next local write has stored the document whole again as a snapshot,
 *      and this peer's sequence numbers are never reused, even across a hole on disk.
 *   5. After {@link COMPACT_THRESHOLD} entries, and once the entries written since this
 *      peer's last snapshot of a document outweigh that snapshot, its own envelopes of the
 *      document are replaced by one snapshot envelope; a snapshot received from an author
 *      replaces that author's earlier envelopes.
 * The store does not decide whether a peer's envelope is authorized: crdt/sync.ts does,
 * before calling {@link DocStore.applyEnvelope}.
 */
import * as Y from 'yjs'
import { EventEmitter } from 'node:events'
import type { Persistence } from './persistence.ts'
import type { DocName } from './names.ts'
import { seal, open, KIND_SNAPSHOT, KIND_UPDATE, type Envelope, type Signer } from './envelope.ts'

/** Who made a change; persistence, relay and accounting decide by it. */
export type Origin =
  | { kind: 'storage' }
  | { kind: 'local', service: string }
  | { kind: 'ipp', user: string }
  | { kind: 'admin', user: string }
  | { kind: 'user', user: string }
  | { kind: 'peer', peer: string }

/** Entries of one document after which its own envelopes are compacted into a snapshot. */
export const COMPACT_THRESHOLD = 500
/**
 * ...and once the bytes appended since this peer's last snapshot reach this multiple of
 * that snapshot's size: a large document (a busy month of jobs) is then re-encoded, stored
 * and relayed in proportion to what was written, not every 500 writes.
 */
export const COMPACT_LOG_RATIO = 1

/** Highest contiguous sequence number held, per author. */
export type LogVector = Map<string, number>

export interface StoreEvents {
  /** An envelope was accepted and is durable: `bytes` is what to relay. */
  entry: [name: DocName, bytes: Uint8Array, envelope: Envelope, origin: Origin]
}

export class StoreClosedError extends Error {
  constructor () { super('document store is closed'); this.name = 'StoreClosedError' }
}

interface Entry {
  doc: Y.Doc
  vector: LogVector
  /** Sequence numbers held beyond the contiguous prefix, per author (out-of-order arrivals). */
  ahead: Map<string, Set<number>>
  /** Tail of the per-document write queue: sealing and issuing appends, one at a time, in order. */
  writes: Promise<void>
  /**
   * Tail of the appends issued but maybe not yet durable, in issue order: the next envelope
   * is sealed while the previous one is on its way to disk, and persistence group-commits
   * them. Each envelope is emitted once durable, in order.
   */
  durable: Promise<void>
  /**
   * Set when one of this peer's own envelopes failed to be stored: the in-memory document
   * holds a change the disk lacks, and later own envelopes may build on it. None of them
   * counts as durable until a snapshot has stored the document whole again.
   */
  unstored?: unknown
  /**
   * The next local write first stores a snapshot: after a failed write or compaction, or
   * when this peer's own numbers on disk have a hole (found on load).
   */
  restore: boolean
  /** Durability of the envelope sealed by the latest local change, read by `transact` right after it. */
  sealed?: Promise<void>
  entries: number
  /** Bytes of entries appended since this peer's last snapshot of the document (or since it was loaded). */
  sinceSnapshot: number
  /** Size of this peer's last snapshot of the document made by this process (0 before one). */
  snapshotBytes: number
}

/** Whether a document's own envelopes should be compacted now (see {@link COMPACT_LOG_RATIO}). */
function dueForCompaction (entry: Entry): boolean {
  return entry.entries >= COMPACT_THRESHOLD && entry.sinceSnapshot >= entry.snapshotBytes * COMPACT_LOG_RATIO
}

export class DocStore extends EventEmitter<StoreEvents> {
  private readonly docs = new Map<string, Entry>()
  private readonly opening = new Map<string, Promise<Entry>>()
  private closed = false

  constructor (private readonly persistence: Persistence, private readonly signer: Signer) {
    super()
  }

  /** This peer's id, the author of its envelopes. */
  get self (): string { return this.signer.id }

  async open (name: DocName): Promise<Y.Doc> {
    return (await this.entry(name)).doc
  }

  get (name: DocName): Y.Doc | undefined {
    return this.docs.get(name)?.doc
  }

  openNames (): DocName[] {
    return [...this.docs.keys()] as DocName[]
  }

  async storedNames (): Promise<DocName[]> {
    return await this.persistence.names()
  }

  /** The log vector of an open document (empty when not open). */
  vector (name: DocName): LogVector {
    return new Map(this.docs.get(name)?.vector ?? [])
  }

  private async entry (name: DocName): Promise<Entry> {
    if (this.closed) throw new StoreClosedError()
    const ready = this.docs.get(name)
    if (ready !== undefined) return ready
    let pending = this.opening.get(name)
    if (pending === undefined) {
      pending = this.load(name).finally(() => this.opening.delete(name))
      this.opening.set(name, pending)
    }
    return await pending
  }

  private async load (name: DocName): Promise<Entry> {
    const stored = await this.persistence.load(name)
    const doc = new Y.Doc({ gc: true })
    const entry: Entry = { doc, vector: new Map(), ahead: new Map(), writes: Promise.resolve(), durable: Promise.resolve(), restore: false, entries: stored.length, sinceSnapshot: stored.reduce((sum, b) => sum + b.byteLength, 0), snapshotBytes: 0 }
    doc.transact(() => {
      for (const bytes of stored) {
        const { envelope } = open(bytes)
        Y.applyUpdate(doc, envelope.update, STORAGE)
        this.note(entry, envelope)
      }
    }, STORAGE)
    entry.restore = entry.ahead.has(this.self) // a hole in own numbers: peers would wait for it forever
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      const o = origin as Origin
      if (o === STORAGE || o.kind === 'peer') return // persisted as received
      this.sealLocal(name, entry, update, o)
    })
    this.docs.set(name, entry)
    return entry
  }

  /**
   * A peer's envelope that was applied but could not be stored: no longer counted as held,
   * so the next anti-entropy round asks for it again (applying it twice changes nothing).
   */
  private forget (entry: Entry, e: Envelope): void {
    const ahead = entry.ahead.get(e.author)
    if (ahead?.delete(e.seq) === true) {
      if (ahead.size === 0) entry.ahead.delete(e.author)
      return
    }
    const top = entry.vector.get(e.author) ?? 0
    if (e.kind !== KIND_UPDATE || e.seq > top) return // a snapshot moved the vector: its author's later snapshot repairs it
    // held up to `top` contiguously; what was above the forgotten one is held out of order again
    entry.vector.set(e.author, e.seq - 1)
    if (e.seq < top) {
      const set = entry.ahead.get(e.author) ?? new Set<number>()
      for (let s = e.seq + 1; s <= top; s++) set.add(s)
      entry.ahead.set(e.author, set)
    }
  }

  /** Records that an envelope is held. */
  private note (entry: Entry, e: Envelope): void {
    const have = entry.vector.get(e.author) ?? 0
    if (e.kind === KIND_SNAPSHOT && e.seq > have) {
      entry.vector.set(e.author, e.seq)
    } else if (e.seq === have + 1) {
      entry.vector.set(e.author, e.seq)
    } else if (e.seq > have) {
      let set = entry.ahead.get(e.author)
      if (set === undefined) entry.ahead.set(e.author, set = new Set())
      set.add(e.seq)
    }
    // pull in anything that arrived early and is now contiguous
    const ahead = entry.ahead.get(e.author)
    if (ahead !== undefined) {
      let top = entry.vector.get(e.author) ?? 0
      for (const s of [...ahead]) if (s <= top) ahead.delete(s)
      while (ahead.delete(top + 1)) top++
      entry.vector.set(e.author, top)
      if (ahead.size === 0) entry.ahead.delete(e.author)
    }
  }

  /** Whether an envelope (document, author, sequence) is already held; false for closed documents. */
  has (e: Pick<Envelope, 'doc' | 'author' | 'seq'>): boolean {
    const entry = this.docs.get(e.doc)
    return entry !== undefined && this.holds(entry, e)
  }

  private holds (entry: Entry, e: Pick<Envelope, 'author' | 'seq'>): boolean {
    return e.seq <= (entry.vector.get(e.author) ?? 0) || (entry.ahead.get(e.author)?.has(e.seq) ?? false)
  }

  /**
   * Reserves this peer's next sequence number in a document, now, so the next change gets
   * the one after. Above every own envelope held, also one held out of order after a failed
   * write left a hole: a number already on disk (and maybe at peers) is never reused.
   */
  private reserveSeq (entry: Entry): number {
    const seq = Math.max(entry.vector.get(this.self) ?? 0, ...(entry.ahead.get(this.self) ?? [])) + 1
    entry.vector.set(this.self, seq)
    entry.ahead.delete(this.self) // all below the vector now
    return seq
  }

  /** Seals and persists a local change; `entry.sealed` tells when it is durable (rejects if it never is). */
  private sealLocal (name: DocName, entry: Entry, update: Uint8Array, origin: Origin): void {
    const seq = this.reserveSeq(entry)
    const durable = this.enqueueIssue(entry, async () => {
      if (entry.restore) {
        await this.snapshot(name, entry)
        return { durable: Promise.resolve() } // the snapshot holds this change too (the document is ahead of the update)
      }
      const { envelope, bytes } = await seal(this.signer, { doc: name, seq, kind: KIND_UPDATE, update })
      return { durable: this.appendInOrder(name, entry, bytes, envelope, origin) }
    })
    durable.catch(() => {}) // reported to the transact that waits on it; a direct doc change has no one to tell
    entry.sealed = durable
    if (dueForCompaction(entry)) {
      this.enqueue(entry, async () => {
        if (dueForCompaction(entry)) await this.snapshot(name, entry) // still: an earlier one may have run meanwhile
      }).catch(() => {}) // nothing is lost (compaction replaces atomically); the next write tries again
    }
  }

  /**
   * Issues the append of an envelope now (persistence keeps call order) and emits it once
   * durable, after every envelope issued before it. Runs inside the write queue. Resolves
   * when durable; rejects if this append failed, or (own envelopes) an earlier own one did
   * and the document is not stored whole again yet. A peer's envelope that failed is
   * forgotten, so anti-entropy asks for it again.
   */
  private appendInOrder (name: DocName, entry: Entry, bytes: Uint8Array, envelope: Envelope, origin: Origin): Promise<void> {
    const own = envelope.author === this.self
    const appended = this.persistence.append(name, bytes)
    appended.catch(() => {}) // awaited below, in order; not an unhandled rejection meanwhile
    const durable = entry.durable.then(async () => {
      await appended
      if (own && entry.unstored !== undefined) throw entry.unstored // on disk, but maybe built on a change that is not
      entry.entries++
      entry.sinceSnapshot += bytes.byteLength
      this.emit('entry', name, bytes, envelope, origin)
    })
    entry.durable = durable.catch((err: unknown) => {
      if (!own) {
        this.forget(entry, envelope)
      } else {
        entry.unstored ??= err
        entry.restore = true
      }
    })
    return durable
  }

  /** Runs `work` after everything queued before it; the queue goes on whatever it does. */
  private async enqueue<T> (entry: Entry, work: () => Promise<T>): Promise<T> {
    const run = entry.writes.then(work)
    entry.writes = run.then(() => {}, () => {})
    return await run
  }

  /**
   * Queues `issue`, which issues an append and returns its durability, and resolves once that
   * append is durable, without holding the queue meanwhile (the next envelope is sealed while
   * this one is written). A failure to seal marks the document unstored.
   */
  private async enqueueIssue (entry: Entry, issue: () => Promise<{ durable: Promise<void> }>): Promise<void> {
    // wrapped in an object: an async function returning the promise itself would wait for it
    const issued = this.enqueue(entry, async () => {
      try {
        return await issue()
      } catch (err) {
        entry.restore = true // a local change failed to seal: the document holds what the disk lacks
        throw err
      }
    })
    await (await issued).durable
  }

  /** Waits until everything queued so far has settled. */
  private async flush (entry: Entry): Promise<void> {
    await entry.writes
    await entry.durable
  }

  /**
   * Runs `fn` in one Yjs transaction with `origin` and resolves with its result once the
   * resulting envelope is durable. Rejects if sealing or persisting fails; the change is then
   * still in the document in memory and is stored later with the whole document
   * ({@link storeUnstored}): a caller that acts as if it did not happen must write what it did
   * instead (devices/jobs/roaming.ts `record`).
   */
  async transact<T> (name: DocName, origin: Origin, fn: (doc: Y.Doc) => T): Promise<T> {
    // a change tagged as a peer's would be taken for one already persisted, and silently never sealed or stored
    if (origin.kind === 'peer' || origin.kind === 'storage') throw new TypeError(`transact is for local changes, not origin ${origin.kind}; peers' updates go through applyEnvelope`)
    const entry = await this.entry(name)
    entry.sealed = undefined
    const result = entry.doc.transact(() => fn(entry.doc), origin)
    const sealed = entry.sealed as Promise<void> | undefined // set by the update handler, synchronously, if fn changed anything
    entry.sealed = undefined
    await (sealed ?? this.flush(entry))
    return result
  }

  /**
   * Applies and persists an envelope received from a peer (already verified and authorized
   * by the caller). Returns false when it was already held.
   */
  async applyEnvelope (bytes: Uint8Array, envelope: Envelope, origin: Origin): Promise<boolean> {
    const name = envelope.doc as DocName
    const entry = await this.entry(name)
    if (this.holds(entry, envelope)) return false
    Y.decodeUpdate(envelope.update) // throws on a malformed update before anything is applied
    Y.applyUpdate(entry.doc, envelope.update, origin)
    this.note(entry, envelope)
    await this.enqueueIssue(entry, async () => {
      if (envelope.kind !== KIND_SNAPSHOT) return { durable: this.appendInOrder(name, entry, bytes, envelope, origin) }
      await entry.durable
      await this.replaceAuthored(name, envelope.author, envelope.seq, bytes)
      this.emit('entry', name, bytes, envelope, origin)
      return { durable: Promise.resolve() }
    })
    return true
  }

  /** Stored envelopes of `author` older than `seq` are replaced by `snapshot`. */
  private async replaceAuthored (name: DocName, author: string, seq: number, snapshot: Uint8Array): Promise<void> {
    const kept = (await this.persistence.load(name)).filter((b) => {
      const { envelope } = open(b)
      return envelope.author !== author || envelope.seq > seq
    })
    await this.persistence.compact(name, [snapshot, ...kept])
    const entry = this.docs.get(name)
    if (entry !== undefined) entry.entries = kept.length + 1
  }

  /** Seals this peer's view of a document as one snapshot, replacing its own envelopes. */
  private async snapshot (name: DocName, entry: Entry): Promise<void> {
    await entry.durable // it replaces what is stored, so everything issued must be there
    const seq = this.reserveSeq(entry)
    try {
      const { envelope, bytes } = await seal(this.signer, { doc: name, seq, kind: KIND_SNAPSHOT, update: Y.encodeStateAsUpdate(entry.doc) })
      await this.replaceAuthored(name, this.self, seq, bytes)
      this.snapshotStored(entry, bytes)
      this.emit('entry', name, bytes, envelope, { kind: 'local', service: 'compaction' })
    } catch (err) {
      // nothing is lost (compaction replaces atomically); its number is a hole until a later
      // snapshot: the compaction condition still holds, so the next local write tries again
      throw err
    }
  }

  /** This peer's snapshot of the document is on disk: it holds everything in memory. */
  private snapshotStored (entry: Entry, bytes: Uint8Array): void {
    entry.unstored = undefined
    entry.restore = false
    entry.sinceSnapshot = 0
    entry.snapshotBytes = bytes.byteLength
  }

  /**
   * Stores whole, now, every document an own change of which failed to reach the disk (a full
   * disk, a failing write). Until then the document holds in memory what the disk and the
   * peers lack, and its vector names a number no envelope carries, so peers never catch up
   * with it; the next local change of that document would store it, but an old month's
   * document may never change again (the simulator's disk-full fault found one). Anti-entropy
   * calls this; a document whose write still fails waits for the next call. Resolves with
   * how many were stored.
   */
  async storeUnstored (): Promise<number> {
    let stored = 0
    for (const [name, entry] of [...this.docs]) {
      // only where this peer wrote: a peer's snapshot that failed to be stored marks the document too (enqueueIssue), and a snapshot of a document this peer may not write would be refused everywhere
      if (!entry.restore || this.closed || !entry.vector.has(this.self)) continue
      try {
        await this.enqueue(entry, async () => { if (entry.restore) await this.snapshot(name as DocName, entry) })
        stored++
      } catch {
        // still failing: nothing is lost (compaction replaces atomically); the next call tries again
      }
    }
    return stored
  }

  /** Compacts this peer's own envelopes of a document now. */
  async compact (name: DocName): Promise<void> {
    const entry = await this.entry(name)
    await this.enqueue(entry, async () => await this.snapshot(name, entry))
  }

  /** Stored envelopes a peer lacks, given its log vector for the document. */
  async missingFor (name: DocName, theirs: LogVector): Promise<Uint8Array[]> {
    const entry = await this.entry(name)
    const mine = entry.vector
    const behind = [...mine].some(([author, seq]) => (theirs.get(author) ?? 0) < seq) || entry.ahead.size > 0
    if (!behind) return []
    await this.flush(entry)
    return (await this.persistence.load(name)).filter((b) => {
      const { envelope } = open(b)
      return envelope.seq > (theirs.get(envelope.author) ?? 0)
    })
  }

  /** Drops a whole document from memory and storage (retention). */
  async remove (name: DocName): Promise<void> {
    const entry = this.docs.get(name)
    if (entry !== undefined) {
      await this.flush(entry)
      entry.doc.destroy()
      this.docs.delete(name)
    }
    await this.persistence.remove(name)
  }

  /** Waits for pending writes, then closes persistence. Safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.opening.values()])
    for (const entry of this.docs.values()) {
      await entry.writes
      await entry.durable
      entry.doc.destroy()
    }
    this.docs.clear()
    await this.persistence.close()
  }
}

/** The one origin object for replays from storage (compared by identity). */
const STORAGE: Origin = Object.freeze({ kind: 'storage' })
