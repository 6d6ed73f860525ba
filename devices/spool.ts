/**
 * The content-addressed spool: job documents on disk, named by their sha256. A document is
 * written to a temp file while being hashed, fsync'd, renamed into place and the folder
 * fsync'd, so once {@link Spool.write} resolves the bytes survive a crash or kill -9.
 * Job bytes never live in a CRDT; only the sha256 does.
 *
 *   <dir>/tmp/<random>            being written
 *   <dir>/<ab>/<abcdef…>          complete, immutable
 */
import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, rename, rm, stat, readdir, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform, type Readable } from 'node:stream'

/** Largest single document accepted (2 GiB): bounds disk use by one job. */
export const MAX_DOCUMENT_BYTES = 2 * 1024 ** 3

export class DocumentTooLargeError extends Error {
  constructor (readonly limit: number) { super(`document exceeds ${limit} bytes`); this.name = 'DocumentTooLargeError' }
}

/** How one write is bounded beyond the spool's own {@link MAX_DOCUMENT_BYTES}. */
export interface WriteLimits {
  /** A lower limit for this document: past it the write fails with {@link DocumentTooLargeError}. */
  maxBytes?: number
  /** Told of every chunk's size before it is written; throwing fails the write with that error. */
  meter?: (bytes: number) => void
}
export class SpoolIntegrityError extends Error {
  constructor (sha256: string) { super(`spooled document ${sha256} is missing or does not match its hash`); this.name = 'SpoolIntegrityError' }
}

const SHA256_HEX = /^[0-9a-f]{64}$/

export interface SpooledDocument {
  sha256: string
  size: number
  path: string
}

async function fsyncPath (path: string): Promise<void> {
  const handle = await open(path, 'r')
  try { await handle.sync() } finally { await handle.close() }
}

export class Spool {
  /** Subfolders known to exist: created once per process, not before every write (the spool never removes them). */
  private readonly folders = new Set<string>()

  private constructor (readonly dir: string, private readonly maxBytes: number) {}

  /** Creates `<dir>/<ab>` unless this process made or saw it already. */
  private async folder (sha256: string): Promise<string> {
    const dir = join(this.dir, sha256.slice(0, 2))
    if (!this.folders.has(dir)) {
      // a folder made now is made durable in the spool's own folder, once
      if (await mkdir(dir, { recursive: true }) !== undefined) await fsyncPath(this.dir)
      this.folders.add(dir)
    }
    return dir
  }

  static async open (dir: string, maxBytes = MAX_DOCUMENT_BYTES): Promise<Spool> {
    await mkdir(join(dir, 'tmp'), { recursive: true })
    // leftovers of writes interrupted by a crash were never acknowledged
    await rm(join(dir, 'tmp'), { recursive: true, force: true })
    await mkdir(join(dir, 'tmp'), { recursive: true })
    return new Spool(dir, maxBytes)
  }

  /** Where a document with this hash lives. */
  path (sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new SpoolIntegrityError(sha256)
    return join(this.dir, sha256.slice(0, 2), sha256)
  }

  /** The path for a document written by someone else (a transfer), with its folder created. */
  async prepare (sha256: string): Promise<string> {
    const path = this.path(sha256)
    await this.folder(sha256)
    return path
  }

  /**
   * Streams `data` into the spool; durable when resolved. On failure (the source's error, a
   * limit, the meter's) nothing of it stays in the spool.
   */
  async write (data: Readable, limits: WriteLimits = {}): Promise<SpooledDocument> {
    const tmp = join(this.dir, 'tmp', randomUUID())
    const hash = createHash('sha256')
    let size = 0
    const limit = Math.min(this.maxBytes, limits.maxBytes ?? Infinity)
    const meter = new Transform({
      transform (chunk: Buffer, _enc, cb) {
        size += chunk.length
        if (size > limit) { cb(new DocumentTooLargeError(limit)); return }
        try {
          limits.meter?.(chunk.length)
        } catch (err) {
          cb(err as Error)
          return
        }
        hash.update(chunk)
        cb(null, chunk)
      }
    })
    try {
      // one handle for writing and fsync: a second open and close per document cost more than the fsync's wait at c=8.
      // Opened inside the pipeline, so that the source is in it (its errors handled) from the first moment.
      let handle: FileHandle | undefined
      try {
        await pipeline(data, meter, async (chunks: AsyncIterable<Buffer>) => {
          const file = handle = await open(tmp, 'wx')
          for await (const chunk of chunks) {
            // a regular file takes all of it at once; a short write (a signal, a full disk's last bytes) is continued
            for (let at = 0; at < chunk.length;) {
              const { bytesWritten } = await file.write(chunk, at)
              if (bytesWritten === 0) throw new Error(`spool write made no progress at byte ${at} of a chunk`)
              at += bytesWritten
            }
          }
          await file.sync()
        })
      } catch (err) {
        await handle?.close().catch(() => {}) // the write's own error is the one to report
        throw err
      }
      await handle?.close()
      const sha256 = hash.digest('hex')
      const final = this.path(sha256)
      let folder = await this.folder(sha256)
      try {
        await rename(tmp, final)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
        // the subfolder was removed behind this process's back (an operator, a tmp cleaner): made again
        this.folders.delete(folder)
        folder = await this.folder(sha256)
        await rename(tmp, final)
      }
      await fsyncPath(folder)
      return { sha256, size, path: final }
    } catch (err) {
      data.destroy() // not read to its end (the temp file could not be made, or the write failed): its descriptor goes
      await rm(tmp, { force: true })
      throw err
    }
  }

  async has (sha256: string): Promise<boolean> {
    try { await stat(this.path(sha256)); return true } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  /** Re-hashes a stored document; throws {@link SpoolIntegrityError} if it was damaged. */
  async verify (sha256: string): Promise<void> {
    const hash = createHash('sha256')
    try {
      await pipeline(createReadStream(this.path(sha256)), hash)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SpoolIntegrityError(sha256)
      throw err
    }
    if (hash.digest('hex') !== sha256) throw new SpoolIntegrityError(sha256)
  }

  async remove (sha256: string): Promise<void> {
    await rm(this.path(sha256), { force: true })
  }

  /** Hashes of every stored document. */
  async list (): Promise<string[]> {
    const out: string[] = []
    for (const sub of await readdir(this.dir)) {
      if (sub === 'tmp') continue
      for (const name of await readdir(join(this.dir, sub))) if (SHA256_HEX.test(name)) out.push(name)
    }
    return out
  }
}
