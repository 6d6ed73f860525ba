/**
 * Buffered, bounded reading of spooled files: parsers never load a whole document into
 * memory just to walk it.
 */
import { open, type FileHandle } from 'node:fs/promises'

/** Bytes read from disk at a time: large enough to amortise syscalls, small enough to keep. */
const READ_CHUNK_BYTES = 1 << 20

/**
 * A forward-only reader over a file with a window of buffered bytes. Hot loops read
 * `buf[pos]` directly after {@link ensure}; everything else uses the helpers.
 */
export class BufferedFile {
  /** The buffered bytes; valid from {@link pos} to {@link end}. */
  buf: Buffer = Buffer.alloc(READ_CHUNK_BYTES)
  /** Next unread byte in {@link buf}. */
  pos = 0
  /** End of valid bytes in {@link buf}. */
  end = 0
  /** File offset of `buf[0]`. */
  private base = 0
  private eof = false
  private readonly fh: FileHandle
  /** Size of the file in bytes. */
  readonly size: number
  private readonly signal?: AbortSignal

  // fields spelled out, not parameter properties: analysis workers load this module with Node's own type stripping
  private constructor (fh: FileHandle, size: number, signal?: AbortSignal) {
    this.fh = fh
    this.size = size
    this.signal = signal
  }

  /** Opens `path` for reading; close it with {@link close}. */
  static async open (path: string, signal?: AbortSignal): Promise<BufferedFile> {
    signal?.throwIfAborted()
    const fh = await open(path, 'r')
    try {
      const { size } = await fh.stat()
      return new BufferedFile(fh, size, signal)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** File offset of the next unread byte. */
  get offset (): number {
    return this.base + this.pos
  }

  /** Makes at least `n` bytes available at {@link pos}; false when the file ends first. */
  async ensure (n: number): Promise<boolean> {
    if (this.end - this.pos >= n) return true
    this.signal?.throwIfAborted()
    // Move the unread tail to the front (growing the buffer for large requests).
    const tail = this.end - this.pos
    if (n > this.buf.length) {
      const bigger = Buffer.alloc(Math.max(n, this.buf.length * 2))
      this.buf.copy(bigger, 0, this.pos, this.end)
      this.buf = bigger
    } else {
      this.buf.copy(this.buf, 0, this.pos, this.end)
    }
    this.base += this.pos
    this.pos = 0
    this.end = tail
    while (this.end < n && !this.eof) {
      const { bytesRead } = await this.fh.read(this.buf, this.end, this.buf.length - this.end, this.base + this.end)
      if (bytesRead === 0) this.eof = true
      this.end += bytesRead
    }
    return this.end - this.pos >= n
  }

  /** Reads exactly `n` bytes (copied), or undefined when the file ends first. */
  async read (n: number): Promise<Buffer | undefined> {
    if (!(await this.ensure(n))) return undefined
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n))
    this.pos += n
    return out
  }

  /** Whether every byte has been consumed. */
  async atEnd (): Promise<boolean> {
    return !(await this.ensure(1))
  }

  /** Closes the file handle. */
  async close (): Promise<void> {
    await this.fh.close()
  }
}

/** Runs `fn` with an open {@link BufferedFile} and closes it afterwards, also on error. */
export async function withFile<T> (path: string, signal: AbortSignal | undefined, fn: (file: BufferedFile) => Promise<T>): Promise<T> {
  const file = await BufferedFile.open(path, signal)
  try {
    return await fn(file)
  } finally {
    await file.close()
  }
}
