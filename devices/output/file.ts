/**
 * The `file:` output device: a virtual printer that drops each released document into a
 * folder (the built-in printer of `npm start`, and a handy sink for tests and demos).
 *
 * `file:///var/spool/printmesh-out` writes, per released job:
 *
 *   `<timestamp>-<job-name>.<ext>`       the document, byte for byte
 *   `<timestamp>-<job-name>.<ext>.json`  a sidecar with the job's metadata ({@link FileSidecar})
 *
 * Durability and visibility: each file is streamed into a hidden temp file in the same
 * folder (`.<random>.partial`), fsynced, then hard-linked to its final name (which fails
 * instead of overwriting when the name is taken, so two jobs never clobber each other;
 * renamed instead on file systems without hard links) and the temp name removed; the folder is fsynced afterwards. A reader therefore never
 * sees a partial document under a final name, and a crash leaves at most a `.partial`
 * file behind. The document is written before its sidecar.
 *
 * The folder is created when missing. Impressions are not known (a folder does not render
 * pages), so the outcome of `print()` carries none.
 *
 * Printer job id: the document's inode number, passed to `progress.accepted(id)` once the
 * document is complete under its final name (not returned by `print()`, whose outcome is
 * `{}`). `outcome(id)` looks for a document with that inode in the folder: found →
 * `completed` (acceptance comes only after the whole document was fsynced and published, so
 * a document under its final name is complete); not found → `unknown` (removed since, e.g.
 * by whatever consumes the folder). A folder job is never `pending`, so `follow(id)` is
 * `outcome(id)`. An inode freed by a removed document and reused by a later one would
 * still answer `completed`, which is what the accepted job was anyway.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { access, constants as fsConstants, link, mkdir, open, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import {
  InvalidPrinterJobIdError,
  PrinterError,
  UNKNOWN_REASONS,
  isPrinterJobId,
  type OutputDevice,
  type PrintOutcome,
  type PrinterJobOutcome,
  type PrintProgress,
  type PrintRequest
} from './types.ts'

/** Longest sanitized job-name part of a file name: keeps names far below NAME_MAX (255). */
const MAX_NAME_PART = 80
/** Name used when a job name sanitizes to nothing. */
const FALLBACK_NAME = 'untitled'
/** How many `-2`, `-3`, … suffixes to try when a final name is taken (same name, same ms). */
const MAX_NAME_COLLISIONS = 100

/** File extension per document format; anything else is written as `.bin`. */
const EXTENSIONS: Readonly<Record<string, string>> = {
  'application/pdf': 'pdf',
  'application/postscript': 'ps',
  'application/vnd.hp-pcl': 'pcl',
  'image/pwg-raster': 'pwg',
  'image/urf': 'urf',
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'text/plain': 'txt'
}

/** What the `.json` sidecar next to each document holds. */
export interface FileSidecar {
  jobName: string
  userName: string
  format: string
  copies: number
  sides: string
  media?: string
  /** `monochrome` when the site's print policy allows the user no colour (what a real printer is told as `print-color-mode`). */
  colorMode?: 'monochrome'
  /** Size of the written document in bytes. */
  size: number
  /** sha256 (hex) of the written document. */
  sha256: string
  /** ISO 8601 time the document was written. */
  writtenAt: string
  /** File name of the document this sidecar describes (same folder). */
  document: string
}

/** Options of {@link FileOutputDevice}. */
export interface FileOutputDeviceOptions {
  logger: Logger
  /** Clock for the timestamp in file names (tests). */
  now?: () => Date
}

/** The document could not be written (folder not creatable or writable, source unreadable). */
export class FileDeviceError extends PrinterError {
  constructor (message: string, beforeAccept: boolean, options?: { cause?: unknown }) {
    super(message, 'file-device-error', beforeAccept)
    this.name = 'FileDeviceError'
    if (options?.cause !== undefined) this.cause = options.cause
  }
}

/**
 * Lowercases a job name into `[a-z0-9-]` runs joined by `_`, at most {@link MAX_NAME_PART}
 * characters; `untitled` when nothing is left.
 */
export function sanitizeJobName (name: string): string {
  const cleaned = name
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '') // drop the accents NFKD split off: é → e
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, MAX_NAME_PART)
    .replace(/_+$/, '')
  return cleaned === '' ? FALLBACK_NAME : cleaned
}

/** The extension used for a MIME type (parameters such as `; charset=…` ignored). */
export function extensionFor (format: string): string {
  const base = format.split(';')[0]?.trim().toLowerCase() ?? ''
  return EXTENSIONS[base] ?? 'bin'
}

/** `2024-05-01T10:20:30.123Z` → `20240501T102030123Z`: sortable and safe in any file system. */
function compactTimestamp (d: Date): string {
  return d.toISOString().replace(/[-:.]/g, '')
}

function abortError (signal: AbortSignal): PrinterError {
  const err = new PrinterError('release aborted before the document was written', 'release-aborted', true)
  err.cause = signal.reason
  return err
}

/** errno codes of file systems without hard links (some network and FUSE mounts). */
const NO_HARD_LINKS: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'])

/**
 * Makes `tmp` visible as `final`, failing with EEXIST rather than replacing an existing
 * file: a hard link where the file system has them, else an exists-check and rename
 * (atomic for the content, though not against a concurrent writer of the same name).
 */
async function publish (tmp: string, final: string): Promise<void> {
  try {
    await link(tmp, final)
  } catch (err) {
    if (!NO_HARD_LINKS.has((err as NodeJS.ErrnoException).code ?? '')) throw err
    const taken = await access(final).then(() => true, () => false)
    if (taken) throw Object.assign(new Error(`${final} exists`), { code: 'EEXIST' })
    await rename(tmp, final)
  }
}

/** fsync a file or folder by path. */
async function fsyncPath (path: string, flags: string): Promise<void> {
  const handle = await open(path, flags)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Removes a temp file, logging (not hiding) a failure to do so. */
async function removeTemp (path: string, logger: Logger): Promise<void> {
  try {
    await unlink(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, path }, 'could not remove temp file')
  }
}

/**
 * Writes the document to a folder. Construct through `createOutputDevice('file:///dir')`
 * or directly with the folder path.
 */
export class FileOutputDevice implements OutputDevice {
  readonly uri: string
  readonly #dir: string
  readonly #logger: Logger
  readonly #now: () => Date

  constructor (uri: string, dir: string, opts: FileOutputDeviceOptions) {
    this.uri = uri
    this.#dir = dir
    this.#logger = opts.logger.child({ device: uri })
    this.#now = opts.now ?? (() => new Date())
  }

  /** The folder documents are written to. */
  get directory (): string {
    return this.#dir
  }

  async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<PrintOutcome> {
    if (signal.aborted) throw abortError(signal)
    try {
      await mkdir(this.#dir, { recursive: true })
    } catch (err) {
      throw new FileDeviceError(`cannot create output folder ${this.#dir}: ${(err as Error).message}`, true, { cause: err })
    }

    const writtenAt = this.#now()
    const base = `${compactTimestamp(writtenAt)}-${sanitizeJobName(req.jobName)}`
    const ext = extensionFor(req.format)
    const tmp = join(this.#dir, `.${randomBytes(8).toString('hex')}.partial`)

    let size = 0
    const hash = createHash('sha256')
    const tap = new Transform({
      transform (chunk: Buffer, _enc, done) {
        size += chunk.length
        hash.update(chunk)
        done(null, chunk)
      }
    })
    try {
      await pipeline(createReadStream(req.documentPath), tap, createWriteStream(tmp, { flags: 'wx' }), { signal })
      await fsyncPath(tmp, 'r')
    } catch (err) {
      await removeTemp(tmp, this.#logger)
      if (signal.aborted) throw abortError(signal)
      throw new FileDeviceError(`cannot write ${req.documentPath} into ${this.#dir}: ${(err as Error).message}`, true, { cause: err })
    }

    // From here on the document is complete: linking it in is the "printer accepts" moment.
    let docName: string
    try {
      docName = await this.#linkUnique(tmp, base, ext)
    } catch (err) {
      throw new FileDeviceError(`cannot publish document in ${this.#dir}: ${(err as Error).message}`, true, { cause: err })
    } finally {
      await removeTemp(tmp, this.#logger)
    }
    progress.accepted(await this.#jobIdOf(docName))

    const sidecar: FileSidecar = {
      jobName: req.jobName,
      userName: req.userName,
      format: req.format,
      copies: req.copies,
      sides: req.sides,
      ...(req.media !== undefined ? { media: req.media } : {}),
      ...(req.colorMode !== undefined ? { colorMode: req.colorMode } : {}),
      size,
      sha256: hash.digest('hex'),
      writtenAt: writtenAt.toISOString(),
      document: docName
    }
    try {
      await this.#writeSidecar(`${docName}.json`, sidecar)
      await fsyncPath(this.#dir, 'r')
    } catch (err) {
      // The document is already out, so this is an after-accept failure: never retried.
      throw new FileDeviceError(`document ${docName} written but its sidecar failed: ${(err as Error).message}`, false, { cause: err })
    }
    this.#logger.info({ document: docName, size }, 'document written')
    return {}
  }

  async probe (_signal: AbortSignal): Promise<{ ok: boolean, message: string }> {
    try {
      await access(this.#dir, fsConstants.W_OK)
      return { ok: true, message: `writes documents to ${this.#dir}` }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { ok: true, message: `will create ${this.#dir} on the first print` }
      }
      return { ok: false, message: `cannot write to ${this.#dir}: ${(err as Error).message}` }
    }
  }

  async outcome (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    if (!isPrinterJobId(printerJobId)) throw new InvalidPrinterJobIdError(printerJobId, 'a file device job id is the inode number of a document it wrote')
    const aborted: PrinterJobOutcome = { state: 'unknown', reason: UNKNOWN_REASONS.aborted, message: `stopped looking for document ${printerJobId}` }
    let names: string[]
    try {
      names = await readdir(this.#dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'unknown', reason: UNKNOWN_REASONS.notFound, message: `output folder ${this.#dir} does not exist` }
      return { state: 'unknown', reason: UNKNOWN_REASONS.unreachable, message: `cannot read output folder ${this.#dir}: ${(err as Error).message}` }
    }
    const wanted = BigInt(printerJobId)
    for (const name of names) {
      if (signal.aborted) return aborted
      if (name.startsWith('.') || name.endsWith('.json')) continue // temp files and sidecars
      let ino: bigint
      try {
        const st = await stat(join(this.#dir, name), { bigint: true })
        if (!st.isFile()) continue
        ino = st.ino
      } catch {
        continue // removed while we looked
      }
      if (ino === wanted) return { state: 'completed', message: `document ${name} is in ${this.#dir}` }
    }
    return { state: 'unknown', reason: UNKNOWN_REASONS.notFound, message: `no document with id ${printerJobId} in ${this.#dir}: removed since it was written` }
  }

  async follow (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    return await this.outcome(printerJobId, signal)
  }

  /** The printer job id of a published document: its inode number, when it is a safe integer. */
  async #jobIdOf (docName: string): Promise<number | undefined> {
    try {
      const { ino } = await stat(join(this.#dir, docName), { bigint: true })
      return ino > 0n && ino <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(ino) : undefined
    } catch (err) {
      // the document is out regardless; without an id a restart assumes it printed, which it did
      this.#logger.warn({ err, document: docName }, 'cannot read the inode of the written document')
      return undefined
    }
  }

  /** Hard-links `tmp` to `<base>.<ext>` or `<base>-N.<ext>`, whichever is free; returns the name. */
  async #linkUnique (tmp: string, base: string, ext: string): Promise<string> {
    for (let n = 1; n <= MAX_NAME_COLLISIONS; n++) {
      const name = n === 1 ? `${base}.${ext}` : `${base}-${n}.${ext}`
      try {
        await publish(tmp, join(this.#dir, name))
        return name
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
    }
    throw new Error(`${MAX_NAME_COLLISIONS} files named ${base}.* already exist`)
  }

  async #writeSidecar (name: string, sidecar: FileSidecar): Promise<void> {
    const tmp = join(this.#dir, `.${randomBytes(8).toString('hex')}.partial`)
    try {
      await writeFile(tmp, JSON.stringify(sidecar, null, 2) + '\n', { flag: 'wx' })
      await fsyncPath(tmp, 'r')
      await publish(tmp, join(this.#dir, name))
    } finally {
      await removeTemp(tmp, this.#logger)
    }
  }
}
