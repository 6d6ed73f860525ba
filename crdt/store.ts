/**
 * The document store: the Y.Docs a peer holds, loaded from and persisted to a
 * {@link Persistence}. Invariants, all enforced in {@link DocStore.transact} and the update
 * handler:
 *   1. Every change not loaded from storage is appended to persistence; `transact` resolves
 *      only after that append is durable, so a caller may acknowledge the change.
 *   2. Updates replayed from storage (origin `storage`) are never persisted again.
 *   3. A persistence failure rejects the `transact` that caused it; it is never swallowed.
 *   4. After {@link COMPACT_THRESHOLD} appended updates a document is compacted to one.
 */
import * as Y from 'yjs'
import { EventEmitter } from 'node:events'
import type { Persistence } from './persistence.ts'
import type { DocName } from './names.ts'

/** Who made a change; persistence, relay and accounting decide by it. */
export type Origin =
  | { kind: 'storage' }
  | { kind: 'local', service: string }
  | { kind: 'ipp', user: string }
  | { kind: 'admin', user: string }
  | { kind: 'user', user: string }
  | { kind: 'peer', peer: string }

/** Appended updates after which a document is rewritten as one merged update. */
export const COMPACT_THRESHOLD = 500

export interface StoreEvents {
  /** A document changed (after the update is durable). */
  update: [name: DocName, update: Uint8Array, origin: Origin]
}

export class StoreClosedError extends Error {
  constructor () { super('document store is closed'); this.name = 'StoreClosedError' }
}

interface Entry {
  doc: Y.Doc
  /** Tail of the per-document write queue: appends run one at a time, in order. */
  writes: Promise<void>
  /** Failure of the latest append not yet reported to a transact. */
  pendingError?: unknown
  appended: number
}

export class DocStore extends EventEmitter<StoreEvents> {
  private readonly entries = new Map<string, Entry>()
  private readonly opening = new Map<string, Promise<Entry>>()
  private closed = false

  constructor (private readonly persistence: Persistence) {
    super()
  }

  /** Opens a document, loading its stored updates on first use. */
  async open (name: DocName): Promise<Y.Doc> {
    return (await this.entry(name)).doc
  }

  /** The document if it is open. */
  get (name: DocName): Y.Doc | undefined {
    return this.entries.get(name)?.doc
  }

  /** Names of the open documents. */
  openNames (): DocName[] {
    return [...this.entries.keys()] as DocName[]
  }

  /** Names of every stored document (open or not). */
  async storedNames (): Promise<DocName[]> {
    return await this.persistence.names()
  }

  private async entry (name: DocName): Promise<Entry> {
    if (this.closed) throw new StoreClosedError()
    const open = this.entries.get(name)
    if (open !== undefined) return open
    let pending = this.opening.get(name)
    if (pending === undefined) {
      pending = this.load(name).finally(() => this.opening.delete(name))
      this.opening.set(name, pending)
    }
    return await pending
  }

  private async load (name: DocName): Promise<Entry> {
    const updates = await this.persistence.load(name)
    const doc = new Y.Doc({ gc: true })
    const entry: Entry = { doc, writes: Promise.resolve(), appended: updates.length }
    doc.transact(() => {
      for (const u of updates) Y.applyUpdate(doc, u, STORAGE)
    }, STORAGE)
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === STORAGE) return
      this.enqueueAppend(name, entry, update, origin as Origin)
    })
    this.entries.set(name, entry)
    return entry
  }

  private enqueueAppend (name: DocName, entry: Entry, update: Uint8Array, origin: Origin): void {
    entry.writes = entry.writes.then(async () => {
      await this.persistence.append(name, update)
      entry.appended++
      this.emit('update', name, update, origin)
      if (entry.appended >= COMPACT_THRESHOLD) await this.compactEntry(name, entry)
    }).catch((err: unknown) => { entry.pendingError = err })
  }

  private async compactEntry (name: DocName, entry: Entry): Promise<void> {
    await this.persistence.compact(name, Y.encodeStateAsUpdate(entry.doc))
    entry.appended = 1
  }

  /**
   * Runs `fn` in one Yjs transaction with `origin` and resolves with its result once the
   * resulting update is durable. Rejects if persisting fails.
   */
  async transact<T> (name: DocName, origin: Origin, fn: (doc: Y.Doc) => T): Promise<T> {
    const entry = await this.entry(name)
    const result = entry.doc.transact(() => fn(entry.doc), origin)
    await this.flush(entry)
    return result
  }

  /** Applies an update received from elsewhere (a peer) with its origin; durable on resolve. */
  async applyUpdate (name: DocName, update: Uint8Array, origin: Origin): Promise<void> {
    const entry = await this.entry(name)
    Y.applyUpdate(entry.doc, update, origin)
    await this.flush(entry)
  }

  private async flush (entry: Entry): Promise<void> {
    await entry.writes
    if (entry.pendingError !== undefined) {
      const err = entry.pendingError
      entry.pendingError = undefined
      throw err
    }
  }

  /** Rewrites a document's stored updates as one. */
  async compact (name: DocName): Promise<void> {
    const entry = await this.entry(name)
    await this.flush(entry)
    await this.compactEntry(name, entry)
  }

  /** Drops a whole document from memory and storage (retention). */
  async remove (name: DocName): Promise<void> {
    const entry = this.entries.get(name)
    if (entry !== undefined) {
      await this.flush(entry)
      entry.doc.destroy()
      this.entries.delete(name)
    }
    await this.persistence.remove(name)
  }

  /** Waits for pending writes, then closes persistence. Safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.opening.values()])
    for (const entry of this.entries.values()) {
      await entry.writes
      entry.doc.destroy()
    }
    this.entries.clear()
    await this.persistence.close()
  }
}

/** The one origin object for replays from storage (compared by identity). */
const STORAGE: Origin = Object.freeze({ kind: 'storage' })
