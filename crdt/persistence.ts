/**
 * Persistence of document entries (signed envelopes, crdt/envelope.ts): one small interface (load / append / compact / remove /
 * close) and its level implementation. It only stores bytes; when to compact and what to
 * persist is the store's decision (crdt/store.ts). Errors always reach the caller.
 *
 * Level layout (after y-leveldb): keys are `v1␀<docName>␀u␀<clock>` with the clock as
 * 16 hex digits so keys sort in append order; values are envelope bytes.
 */
import { ClassicLevel } from 'classic-level'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { DocName } from './names.ts'

export interface Persistence {
  /** Every stored update of a document, in append order (empty when unknown). */
  load (name: DocName): Promise<Uint8Array[]>
  /**
   * Appends one update; durable (synced to disk) when the promise resolves. Appends made
   * without waiting for earlier ones become durable in call order (never a later one alone).
   */
  append (name: DocName, update: Uint8Array): Promise<void>
  /** Atomically replaces all stored entries of a document by `entries` (in that order). */
  compact (name: DocName, entries: Uint8Array[]): Promise<void>
  /** Removes a whole document. */
  remove (name: DocName): Promise<void>
  /** Names of all stored documents. */
  names (): Promise<DocName[]>
  close (): Promise<void>
}

export class PersistenceError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PersistenceError'
  }
}

/**
 * The file that marks a database folder as encrypted at rest (crdt/encrypted-persistence.ts
 * writes it; level ignores files it did not name itself). Only the encrypted persistence
 * opens such a database: a plain open would read sealed values as envelopes and write
 * plaintext among them.
 */
export const ENCRYPTION_FILE = 'printmesh-encryption.json'

/** A plain open of a database that is encrypted at rest. */
export class EncryptedDatabaseError extends PersistenceError {
  constructor (dir: string) {
    super(`the database ${dir} is encrypted at rest: open it with its store key (--store-key-file)`)
    this.name = 'EncryptedDatabaseError'
  }
}

/** Key layout version, bumped if the key tuple changes. */
const KEY_VERSION = 'v1'
const SEP = '\u0000'
/** Clock digits: 16 hex digits sort correctly up to 2^64 updates. */
const CLOCK_DIGITS = 16

const updateKey = (name: DocName, clock: number): string =>
  [KEY_VERSION, name, 'u', clock.toString(16).padStart(CLOCK_DIGITS, '0')].join(SEP)
const docPrefix = (name: DocName): string => [KEY_VERSION, name, 'u', ''].join(SEP)

async function exists (path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new PersistenceError(`cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
}

/** Most appends written in one group commit: bounds one batch's memory and latency. */
const MAX_GROUP_APPENDS = 1_000

interface QueuedAppend {
  name: DocName
  update: Uint8Array
  resolve: () => void
  reject: (err: unknown) => void
}

export class LevelPersistence implements Persistence {
  private readonly db: ClassicLevel<string, Uint8Array>
  /** Appends waiting for the next group commit, in call order. */
  private readonly queued: QueuedAppend[] = []
  /** The group-commit loop while it runs. */
  private writing: Promise<void> | undefined
  /** Next clock per document, learnt lazily from the last stored key. */
  private readonly clocks = new Map<string, number>()

  private constructor (db: ClassicLevel<string, Uint8Array>) {
    this.db = db
  }

  /**
   * Opens (creating if needed) the database in `dir`. Fails clearly if another process holds
   * it, or if it is encrypted at rest (unless `encrypted`: the encrypted persistence's own open).
   */
  static async open (dir: string, options: { encrypted?: boolean } = {}): Promise<LevelPersistence> {
    if (options.encrypted !== true && await exists(join(dir, ENCRYPTION_FILE))) throw new EncryptedDatabaseError(dir)
    const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const locked = (err as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw new PersistenceError(locked
        ? `database ${dir} is in use by another printmesh process`
        : `cannot open database ${dir}: ${(err as Error).message}`, { cause: err })
    }
    return new LevelPersistence(db)
  }

  async load (name: DocName): Promise<Uint8Array[]> {
    const prefix = docPrefix(name)
    const out: Uint8Array[] = []
    let last = -1
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
      out.push(value)
      last = parseInt(key.slice(prefix.length), 16)
    }
    // never lower the clock: an append may be in flight that this read did not see
    this.clocks.set(name, Math.max(this.clocks.get(name) ?? 0, last + 1))
    return out
  }

  private async nextClock (name: DocName): Promise<number> {
    let clock = this.clocks.get(name)
    if (clock === undefined) {
      const prefix = docPrefix(name)
      clock = 0
      for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\uffff', reverse: true, limit: 1 })) {
        clock = parseInt(key.slice(prefix.length), 16) + 1
      }
      // another append may have assigned clocks while we looked
      clock = Math.max(clock, this.clocks.get(name) ?? 0)
    }
    this.clocks.set(name, clock + 1)
    return clock
  }

  /**
   * Appends are group-committed: those made while a write is on its way to disk go out
   * together in the next batch (one sync for many). Batches are written one after another
   * in call order, so an append is never durable before one made earlier.
   */
  async append (name: DocName, update: Uint8Array): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.queued.push({ name, update, resolve, reject })
      this.writing ??= this.writeQueued()
    })
  }

  private async writeQueued (): Promise<void> {
    while (this.queued.length > 0) {
      const group = this.queued.splice(0, MAX_GROUP_APPENDS)
      try {
        const ops: Array<{ type: 'put', key: string, value: Uint8Array }> = []
        for (const a of group) ops.push({ type: 'put', key: updateKey(a.name, await this.nextClock(a.name)), value: a.update })
        await this.db.batch(ops, { sync: true })
        for (const a of group) a.resolve()
      } catch (err) {
        for (const a of group) a.reject(err)
      }
    }
    this.writing = undefined
  }

  async compact (name: DocName, entries: Uint8Array[]): Promise<void> {
    const prefix = docPrefix(name)
    const batch = this.db.batch()
    let last = -1
    for await (const key of this.db.keys({ gte: prefix, lt: prefix + '\uffff' })) {
      batch.del(key)
      last = Math.max(last, parseInt(key.slice(prefix.length), 16))
    }
    let clock = Math.max(last + 1, this.clocks.get(name) ?? 0)
    for (const e of entries) batch.put(updateKey(name, clock++), e)
    this.clocks.set(name, clock)
    await batch.write({ sync: true })
  }

  async remove (name: DocName): Promise<void> {
    const prefix = docPrefix(name)
    await this.db.clear({ gte: prefix, lt: prefix + '\uffff' })
    this.clocks.delete(name)
  }

  async names (): Promise<DocName[]> {
    const names: DocName[] = []
    let cursor = KEY_VERSION + SEP
    // skip from one document to the next instead of reading every key
    for (;;) {
      let found: string | undefined
      for await (const key of this.db.keys({ gt: cursor, lt: KEY_VERSION + SEP + '\uffff', limit: 1 })) found = key
      if (found === undefined) break
      const name = found.split(SEP)[1] as DocName
      names.push(name)
      cursor = [KEY_VERSION, name, '\uffff'].join(SEP)
    }
    return names
  }

  /**
   * Compacts the whole database so deleted and replaced values leave the disk (level keeps
   * them in older files until a compaction reaches them): after values were rewritten that
   * must not stay readable (crdt/encrypted-persistence.ts, migrating a plaintext database).
   */
  async purge (): Promise<void> {
    await this.writing
    await this.db.compactRange(KEY_VERSION + SEP, KEY_VERSION + SEP + '\uffff')
  }

  async close (): Promise<void> {
    await this.writing
    await this.db.close()
  }
}
