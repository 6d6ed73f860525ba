/**
 * Splits an IPP-over-HTTP request body into the IPP message (read incrementally, bounded
 * by {@link MAX_HEADER}) and the document data that follows it, as a stream that is never
 * buffered whole.
 */
import { PassThrough, type Readable } from 'node:stream'
import { IntakeLimitError } from '../jobs/intake-limits.ts'
import { decodeMessage, scanHeader, IppDecodeError, type IppMessage } from './wire.ts'

/** Largest IPP attribute section accepted before the document: real requests are a few KiB. */
export const MAX_HEADER = 256 * 1024
/** First growth step of the header buffer: most requests fit. */
const INITIAL_BUFFER = 16 * 1024

/** The fixed header fields, when at least 8 bytes arrived (so an error reply can echo them). */
export interface IppHead { major: number, minor: number, code: number, requestId: number }

/** Why a request could not be read. */
export type RequestReadFailure = 'too-large' | 'malformed' | 'truncated' | 'aborted'

export class RequestReadError extends Error {
  constructor (
    readonly failure: RequestReadFailure,
    message: string,
    /** The header fields, when they arrived. */
    readonly head: IppHead | undefined
  ) {
    super(message)
    this.name = 'RequestReadError'
  }
}

/** The request ended (socket closed) before its body was complete. */
export class RequestAbortedError extends Error {
  constructor () { super('the client closed the connection before the document was complete'); this.name = 'RequestAbortedError' }
}

/** An IPP request: its message and the document bytes after it. */
export interface IppRequest {
  message: IppMessage
  /** Document data following end-of-attributes (empty for operations without one). */
  body: Readable
  /** Bytes of the IPP message, for logs and metrics. */
  headerLength: number
}

function headOf (buf: Buffer, length: number): IppHead | undefined {
  if (length < 8) return undefined
  return { major: buf[0], minor: buf[1], code: buf.readUInt16BE(2), requestId: buf.readInt32BE(4) }
}

/**
 * Reads the IPP message from the start of `req` and hands back the rest as `body`.
 * Rejects with {@link RequestReadError}; the stream is left paused (the caller decides
 * whether to drain or close it).
 */
export function readIppRequest (req: Readable, maxHeader = MAX_HEADER): Promise<IppRequest> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.allocUnsafe(INITIAL_BUFFER)
    let length = 0
    let scanned = 0
    let settled = false

    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const fail = (failure: RequestReadFailure, message: string): void => {
      if (settled) return
      settled = true
      cleanup()
      req.pause()
      reject(new RequestReadError(failure, message, headOf(buf, length)))
    }
    const onData = (chunk: Buffer): void => {
      if (settled) return
      if (length + chunk.length > buf.length) {
        const next = Buffer.allocUnsafe(Math.max(buf.length * 2, length + chunk.length))
        buf.copy(next, 0, 0, length)
        buf = next
      }
      chunk.copy(buf, length)
      length += chunk.length
      const view = buf.subarray(0, Math.min(length, maxHeader))
      const scan = scanHeader(view, scanned)
      scanned = scan.offset
      if (!scan.complete) {
        if (length >= maxHeader) fail('too-large', `the IPP attributes exceed ${maxHeader} bytes`)
        return
      }
      let message: IppMessage
      try {
        message = decodeMessage(view.subarray(0, scan.offset)).message
      } catch (err) {
        fail('malformed', err instanceof IppDecodeError ? err.message : String(err))
        return
      }
      settled = true
      cleanup()
      req.pause()
      const body = new PassThrough()
      const rest = buf.subarray(scan.offset, length)
      if (rest.length > 0) body.write(Buffer.from(rest))
      // what is wrong with the bytes (a body that does not decompress, or past an intake limit)
      // reaches the document's reader as it is; anything else means the client went away
      req.once('error', (err) => { body.destroy(isContentError(err) ? err : new RequestAbortedError()) })
      req.once('close', () => { if (!req.readableEnded) body.destroy(new RequestAbortedError()) })
      req.pipe(body) // pipe carries backpressure: the domain pulls the document at its own pace
      resolve({ message, body, headerLength: scan.offset })
    }
    const onEnd = (): void => {
      const scan = scanHeader(buf.subarray(0, length), scanned)
      if (!scan.complete) {
        fail('truncated', length === 0 ? 'the request body is empty' : `the request body ends inside the IPP attributes (${length} bytes)`)
      }
    }
    const onError = (err: Error): void => fail('aborted', err.message)
    const onClose = (): void => fail('aborted', 'the client closed the connection')
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** An error about the request's bytes themselves (HTTP Content-Encoding that does not inflate, or inflates past a limit), not its transport. */
function isContentError (err: Error): boolean {
  return err instanceof IntakeLimitError || (err as NodeJS.ErrnoException).code?.startsWith('Z_') === true
}
