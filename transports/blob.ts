/**
 * The blob transfer protocol `/printmesh/blob/1.0.0` (see PROTOCOL.md §3): moves one
 * content-addressed file (a spooled job document, named by its sha256) from the peer that
 * holds it to a peer that needs it, streamed from disk to disk.
 *
 * One stream carries one transfer: the fetcher sends `{ sha256, offset }` as JSON and
 * half-closes; the holder answers with one JSON header line and, when the answer is `ok`,
 * the raw bytes from `offset` to the end of the file, then half-closes.
 *
 * Invariants (one place enforces each):
 * 1. Memory stays bounded whatever the file size: the holder reads the file in
 *    {@link READ_CHUNK_BYTES} chunks and sends the next one only after the stream drained
 *    ({@link sendChunk}); the fetcher pauses the stream while its file writer is over its
 *    high-water mark, so yamux stops granting window ({@link receiveResponse}). No body is
 *    ever gathered in one buffer.
 * 2. Nothing unverified is ever at `destPath`: bytes land in `destPath + '.partial'`, which is
 *    renamed only after the sha256 over the whole file matched ({@link fetchBlob}).
 * 3. A broken transfer keeps its partial file, so the next fetch resumes from its size; a
 *    partial file that turns out wrong (hash mismatch, longer than the blob) is deleted.
 * 4. At most {@link MAX_TRANSFERS_PER_PEER} transfers per remote peer are served at once.
 *
 * What may be fetched is not decided here: the holder's owner passes `resolve` (which file
 * holds a sha256) and `canFetch` (who may fetch it).
 */
import { createHash, type Hash } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { dirname, resolve as resolvePath } from 'node:path'
import type { Connection, Libp2p, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'

/** The blob protocol id; a change an older peer would misread gets a new major version. */
export const BLOB_PROTOCOL = '/printmesh/blob/1.0.0'
/** Suffix of the file a transfer writes into until the bytes are verified. */
export const PARTIAL_SUFFIX = '.partial'
/** Concurrent transfers served to one peer: a site prefetching a burst of jobs shares the holder's disk fairly with others. */
export const MAX_TRANSFERS_PER_PEER = 4

/** A request is `{"sha256":"<64 hex>","offset":<integer>}`: well under 200 bytes. */
const MAX_REQUEST_BYTES = 1024
/** A response header is one short JSON line; a longer one is a broken holder. */
const MAX_HEADER_BYTES = 4096
/** Bytes read from disk (and sent) per step: large enough for throughput, small enough to bound memory. */
const READ_CHUNK_BYTES = 256 * 1024
/** The fetcher's file writer buffers this much before it pauses the stream. */
const WRITE_HIGH_WATER_BYTES = 1024 * 1024
/**
 * Bytes the fetcher's stream may buffer while paused: yamux lets the holder send up to its
 * 16 MiB maximum window after we stop granting more, so twice that leaves slack.
 */
const PAUSED_READ_BUFFER_BYTES = 32 * 1024 * 1024
/** The fetcher must send its whole request (and half-close) within this. */
const REQUEST_TIMEOUT_MS = 10_000
/** A dial to the holder (TCP, pnet, noise, yamux, protocol negotiation) must finish within this. */
const DIAL_TIMEOUT_MS = 10_000
/** Either side gives up when the other makes no progress (no data, no drain) for this long. */
const STALL_TIMEOUT_MS = 30_000
/** Reasons from the remote are shown to people; a longer one is cut. */
const MAX_REASON_CHARS = 200
/** The only sha256 spelling on the wire: lowercase hex, as the spool names files. */
const SHA256_HEX = /^[0-9a-f]{64}$/
/** The header line ends at the first newline (JSON.stringify never emits a raw one). */
const NEWLINE = 0x0a

// ---------------------------------------------------------------------------------------
// Errors

/** The holder could not be dialled, or the connection broke before the transfer finished. The partial file is kept for a resume. */
export class BlobHolderUnreachableError extends Error {
  constructor (readonly peer: string, reason: string, options?: ErrorOptions) {
    super(`blob holder ${peer} is unreachable: ${reason}`, options)
    this.name = 'BlobHolderUnreachableError'
  }
}

/** The holder does not have the blob. */
export class BlobNotFoundError extends Error {
  constructor (readonly peer: string, readonly sha256: string) {
    super(`blob ${sha256} not found at holder ${peer}`)
    this.name = 'BlobNotFoundError'
  }
}

/** The holder refused to let us fetch the blob. */
export class BlobDeniedError extends Error {
  constructor (readonly peer: string, readonly sha256: string, readonly reason: string) {
    super(`holder ${peer} denied blob ${sha256}: ${reason}`)
    this.name = 'BlobDeniedError'
  }
}

/** The holder already serves its maximum of transfers to us; try again later. */
export class BlobHolderBusyError extends Error {
  constructor (readonly peer: string) {
    super(`holder ${peer} is serving its maximum of concurrent transfers to us; try again later`)
    this.name = 'BlobHolderBusyError'
  }
}

/** The holder failed on its side (e.g. a disk error) before sending the blob. The partial file is kept. */
export class BlobHolderFailedError extends Error {
  constructor (readonly peer: string, readonly reason: string) {
    super(`holder ${peer} failed to serve the blob: ${reason}`)
    this.name = 'BlobHolderFailedError'
  }
}

/** The received file does not hash to the requested sha256 (or the partial file was longer than the blob). The partial file was deleted. */
export class BlobIntegrityError extends Error {
  constructor (readonly sha256: string, reason: string) {
    super(`blob ${sha256} failed verification: ${reason}; the partial file was deleted`)
    this.name = 'BlobIntegrityError'
  }
}

/** One side broke the wire format of {@link BLOB_PROTOCOL} (or rejected ours as malformed). */
export class BlobProtocolError extends Error {
  constructor (reason: string, options?: ErrorOptions) {
    super(`${BLOB_PROTOCOL} violated: ${reason}`, options)
    this.name = 'BlobProtocolError'
  }
}

/** Another {@link fetchBlob} in this process is already writing the same partial file. */
export class BlobTransferInProgressError extends Error {
  constructor (readonly destPath: string) {
    super(`a transfer into ${destPath} is already running in this process`)
    this.name = 'BlobTransferInProgressError'
  }
}

/** The remote went quiet for longer than {@link STALL_TIMEOUT_MS}. */
class StallError extends Error {
  constructor (what: string) {
    super(`${what} for ${STALL_TIMEOUT_MS} ms`)
    this.name = 'StallError'
  }
}

/** The stream ended (or closed) while we were waiting to send more. */
class StreamEndedError extends Error {
  constructor (reason: string, options?: ErrorOptions) {
    super(reason, options)
    this.name = 'StreamEndedError'
  }
}

// ---------------------------------------------------------------------------------------
// Wire format

/** What the fetcher asks for. */
export interface BlobRequest {
  /** Lowercase hex sha256 of the whole blob. */
  sha256: string
  /** First byte to send: the size of the fetcher's partial file, 0 for a fresh transfer. */
  offset: number
}

/** The holder's answer, the first line it sends. */
export type BlobResponseHeader =
  | { status: 'ok', size: number }
  | { status: 'not-found' }
  | { status: 'denied', reason: string }
  | { status: 'busy' }
  | { status: 'invalid-offset', size: number }
  | { status: 'bad-request', reason: string }
  | { status: 'error', reason: string }

const utf8 = new TextEncoder()

/** Encodes a request: UTF-8 JSON, ended by the sender's half-close. */
export function encodeBlobRequest (request: BlobRequest): Uint8Array {
  return utf8.encode(JSON.stringify({ sha256: request.sha256, offset: request.offset }))
}

/** Decodes and validates a request; a string says what is wrong with it. */
export function decodeBlobRequest (bytes: Uint8Array): BlobRequest | string {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    return `request is not UTF-8 JSON: ${(err as Error).message}`
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'request is not a JSON object'
  const { sha256, offset } = value as Record<string, unknown>
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) return 'sha256 must be 64 lowercase hex digits'
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return 'offset must be a non-negative integer'
  return { sha256, offset }
}

/** Encodes a response header: one JSON line. */
export function encodeBlobHeader (header: BlobResponseHeader): Uint8Array {
  return utf8.encode(JSON.stringify(header) + '\n')
}

/** Decodes and validates a header line (without its newline). */
export function decodeBlobHeader (bytes: Uint8Array): BlobResponseHeader {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new BlobProtocolError(`response header is not UTF-8 JSON: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null) throw new BlobProtocolError('response header is not a JSON object')
  const h = value as Record<string, unknown>
  const reason = (): string => typeof h.reason === 'string' ? h.reason.slice(0, MAX_REASON_CHARS) : 'no reason given'
  const size = (): number => {
    if (typeof h.size !== 'number' || !Number.isSafeInteger(h.size) || h.size < 0) throw new BlobProtocolError(`header "${String(h.status)}" has no valid size`)
    return h.size
  }
  switch (h.status) {
    case 'ok': return { status: 'ok', size: size() }
    case 'invalid-offset': return { status: 'invalid-offset', size: size() }
    case 'not-found': return { status: 'not-found' }
    case 'busy': return { status: 'busy' }
    case 'denied': return { status: 'denied', reason: reason() }
    case 'bad-request': return { status: 'bad-request', reason: reason() }
    case 'error': return { status: 'error', reason: reason() }
    default: throw new BlobProtocolError(`unknown response status ${JSON.stringify(h.status)}`)
  }
}

// ---------------------------------------------------------------------------------------
// Stream helpers

/** The chunks of a 'message' event, without copying them into one buffer. */
function chunksOf (evt: StreamMessageEvent): Uint8Array[] {
  return evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
}

/** Resolves on the stream's next 'drain'; rejects when it closes first or `signal` aborts. */
async function waitForDrain (stream: Stream, signal: AbortSignal): Promise<void> {
  // Stream.onDrain() is not used: in @libp2p/utils 7.4 its promise is never reset after the
  // first drain, so later calls resolve at once while the stream is still full.
  if (!stream.writableNeedsDrain) return
  signal.throwIfAborted()
  // A stream reset or closed before we got here emits no further 'close' (nor 'drain').
  if (stream.writeStatus !== 'writable') throw new StreamEndedError(`stream is ${stream.status}, it will not drain`)
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (evt: StreamCloseEvent): void => { cleanup(); reject(evt.error ?? new StreamEndedError('stream closed while waiting for drain')) }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

/** Sends one chunk; when the stream is full afterwards, waits until it drained (or stalls). */
async function sendChunk (stream: Stream, chunk: Uint8Array): Promise<void> {
  await drainOrStall(stream)
  if (!stream.send(chunk)) await drainOrStall(stream)
}

/** Waits for 'drain' when the stream needs one, giving up after {@link STALL_TIMEOUT_MS}. */
async function drainOrStall (stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await withStallTimeout('the fetcher read nothing', async (signal) => { await waitForDrain(stream, signal) })
}

/** Half-closes our end once the queued bytes went out, giving up after {@link STALL_TIMEOUT_MS}. */
async function closeOrStall (stream: Stream): Promise<void> {
  await withStallTimeout('the fetcher read nothing', async (signal) => { await stream.close({ signal }) })
}

/** Runs `fn` with a signal that aborts with a {@link StallError} after {@link STALL_TIMEOUT_MS}. */
async function withStallTimeout (what: string, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(new StallError(what)) }, STALL_TIMEOUT_MS)
  try {
    await fn(controller.signal)
  } finally {
    clearTimeout(timer)
  }
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

/**
 * Reads the request: every byte until the remote's half-close, at most
 * {@link MAX_REQUEST_BYTES}, within {@link REQUEST_TIMEOUT_MS}. The request is tiny, so
 * gathering it in one buffer is fine.
 */
async function readRequest (stream: Stream): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      reject(new BlobProtocolError(`no complete request (half-closed) within ${REQUEST_TIMEOUT_MS} ms`))
    }, REQUEST_TIMEOUT_MS)
    const cleanup = (): void => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      stream.removeEventListener('close', onClose)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      for (const chunk of chunksOf(evt)) {
        size += chunk.byteLength
        if (size > MAX_REQUEST_BYTES) {
          cleanup()
          reject(new BlobProtocolError(`request over ${MAX_REQUEST_BYTES} bytes`))
          return
        }
        chunks.push(chunk)
      }
    }
    const onEnd = (): void => { cleanup(); resolve() }
    const onClose = (evt: StreamCloseEvent): void => {
      cleanup()
      reject(new StreamEndedError(`stream closed before the request was complete${evt.error === undefined ? '' : `: ${evt.error.message}`}`, { cause: evt.error }))
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('remoteCloseWrite', onEnd)
    stream.addEventListener('close', onClose)
  })
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.byteLength }
  return out
}

// ---------------------------------------------------------------------------------------
// Server

/** What the holder decides; the node wires these to its job service. */
export interface BlobServerOptions {
  /** The file holding the blob with this sha256, or undefined when this peer does not hold it. */
  resolve: (sha256: string) => Promise<string | undefined>
  /** Whether `peer` (its noise-authenticated id) may fetch this blob. Asked before `resolve`, so a refused peer cannot probe what we hold. */
  canFetch: (peer: string, sha256: string) => boolean | Promise<boolean>
  /** Transfers served to one peer at once; default {@link MAX_TRANSFERS_PER_PEER}. */
  maxTransfersPerPeer?: number
  /** Caps each transfer's rate (bytes per second), so prefetching does not fill a slow branch link; default unlimited. */
  maxBytesPerSecond?: number
  /** Told of every chunk of blob bytes sent (for the node's metrics). */
  onSent?: (bytes: number) => void
}

/**
 * Serves blobs on {@link BLOB_PROTOCOL}. Each request is validated, authorized with
 * `canFetch`, located with `resolve`, and the file is streamed from `offset` to its end,
 * honouring back-pressure. Returns a function that unregisters the protocol and aborts the
 * transfers in flight; calling it twice is safe. The host is not stopped.
 */
export async function serveBlobs (host: Libp2p, opts: BlobServerOptions, logger: Logger): Promise<() => Promise<void>> {
  const log = logger.child({ component: 'blob-server' })
  const limit = opts.maxTransfersPerPeer ?? MAX_TRANSFERS_PER_PEER
  const perPeer = new Map<string, number>()
  const active = new Set<Stream>()
  let stopped = false

  await host.handle(BLOB_PROTOCOL, (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString()
    if (stopped) {
      stream.abort(new StreamEndedError('blob server stopped'))
      return
    }
    const running = perPeer.get(peer) ?? 0
    if (running >= limit) {
      log.info({ peer, running }, 'blob request refused: peer at its transfer limit')
      replyAndClose(stream, { status: 'busy' }).catch((err: unknown) => {
        log.debug({ peer, err }, 'could not send busy answer')
        stream.abort(asError(err))
      })
      return
    }
    perPeer.set(peer, running + 1)
    active.add(stream)
    serveOne(stream, peer, opts, log)
      .catch((err: unknown) => {
        const error = asError(err)
        // The peer's fault, ours (a file system call failed), or the fetcher simply went away.
        if (error instanceof BlobProtocolError) log.warn({ peer, err: error.message }, 'blob request broke the protocol')
        else if ('syscall' in error) log.error({ peer, err: error }, 'blob transfer failed reading the file')
        else log.info({ peer, err: error.message }, 'blob transfer ended early')
        stream.abort(error)
      })
      .finally(() => {
        active.delete(stream)
        const left = (perPeer.get(peer) ?? 1) - 1
        if (left === 0) perPeer.delete(peer)
        else perPeer.set(peer, left)
      })
  })

  return async () => {
    if (stopped) return
    stopped = true
    try {
      await host.unhandle(BLOB_PROTOCOL)
    } catch (err) {
      log.error({ err }, 'could not unregister the blob protocol')
    }
    for (const stream of active) stream.abort(new StreamEndedError('blob server stopped'))
    active.clear()
  }
}

/** Sends a header that ends the exchange and half-closes. */
async function replyAndClose (stream: Stream, header: BlobResponseHeader): Promise<void> {
  stream.send(encodeBlobHeader(header))
  await closeOrStall(stream)
}

/** Serves one request on one stream. Throws only when the stream must be aborted. */
async function serveOne (stream: Stream, peer: string, opts: BlobServerOptions, log: Logger): Promise<void> {
  const request = decodeBlobRequest(await readRequest(stream))
  if (typeof request === 'string') {
    log.warn({ peer, reason: request }, 'malformed blob request')
    await replyAndClose(stream, { status: 'bad-request', reason: request })
    return
  }
  const { sha256, offset } = request

  const found = await lookUp(peer, sha256, opts, log)
  if (found.status !== 'ok') {
    await replyAndClose(stream, REFUSALS[found.status])
    return
  }
  const { handle, size } = found
  try {
    if (offset > size) {
      log.warn({ peer, sha256, offset, size }, 'blob request offset beyond the end')
      await replyAndClose(stream, { status: 'invalid-offset', size })
      return
    }
    log.debug({ peer, sha256, offset, size }, 'sending blob')
    await sendChunk(stream, encodeBlobHeader({ status: 'ok', size }))
    if (size > offset) {
      const file = handle.createReadStream({ start: offset, end: size - 1, highWaterMark: READ_CHUNK_BYTES, autoClose: false })
      const started = Date.now()
      let sent = 0
      for await (const chunk of file as AsyncIterable<Buffer>) {
        await sendChunk(stream, chunk)
        sent += chunk.byteLength
        opts.onSent?.(chunk.byteLength)
        if (opts.maxBytesPerSecond !== undefined) await paceTo(started, sent, opts.maxBytesPerSecond)
      }
    }
    await closeOrStall(stream)
    log.debug({ peer, sha256, sent: size - offset }, 'blob sent')
  } finally {
    await handle.close()
  }
}

/** Waits until `sent` bytes since `started` are within `bytesPerSecond`. */
async function paceTo (started: number, sent: number, bytesPerSecond: number): Promise<void> {
  const due = started + (sent / bytesPerSecond) * 1000
  const wait = due - Date.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
}

/** The header sent for each way a look-up can fail; reasons say nothing of our disk. */
const REFUSALS: Record<'denied' | 'not-found' | 'error', BlobResponseHeader> = {
  denied: { status: 'denied', reason: 'this peer may not fetch this blob' },
  'not-found': { status: 'not-found' },
  error: { status: 'error', reason: 'the holder could not read the blob' }
}

type LookUp = { status: 'ok', handle: FileHandle, size: number } | { status: 'denied' | 'not-found' | 'error' }

/** Authorizes, locates and opens the blob; our own failures are logged and become `error`. */
async function lookUp (peer: string, sha256: string, opts: BlobServerOptions, log: Logger): Promise<LookUp> {
  let handle: FileHandle | undefined
  try {
    if (!await opts.canFetch(peer, sha256)) {
      log.info({ peer, sha256 }, 'blob request denied')
      return { status: 'denied' }
    }
    const path = await opts.resolve(sha256)
    if (path !== undefined) handle = await openIfExists(path)
    if (handle === undefined) {
      log.info({ peer, sha256 }, 'blob request for a blob we do not hold')
      return { status: 'not-found' }
    }
    return { status: 'ok', handle, size: (await handle.stat()).size }
  } catch (err) {
    // Our failure, not the peer's: it is told so, without details of our disk.
    log.error({ peer, sha256, err }, 'could not look up a requested blob')
    try {
      await handle?.close()
    } catch (closeErr) {
      log.error({ peer, sha256, err: closeErr }, 'could not close the blob file')
    }
    return { status: 'error' }
  }
}

/** Opens a file for reading; undefined when it does not exist. */
async function openIfExists (path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

// ---------------------------------------------------------------------------------------
// Client

/** Where the blob is: the holder's peer id and, when known, its addresses. */
export interface BlobHolder {
  /** The holder's peer id. */
  peer: string
  /** Its multiaddrs (with or without `/p2p/<peer>`); without them libp2p uses an open connection or its peer store. */
  addrs?: string[]
}

/** Options of {@link fetchBlob}. */
export interface FetchBlobOptions {
  /** Cancels the transfer; the partial file is kept and the signal's reason is thrown. */
  signal?: AbortSignal
  /**
   * Called with the bytes present in the partial file (`received`, counting what an earlier
   * transfer left) and the blob's size: first once the holder answered (so `received` is the
   * resume offset), then after each chunk that arrived.
   */
  onProgress?: (received: number, size: number) => void
}

/** What {@link fetchBlob} did. */
export interface FetchBlobResult {
  /** The blob's size in bytes. */
  size: number
  /** Whether the transfer continued a partial file left by an earlier one. */
  resumed: boolean
}

/** Partial files being written by this process, so two transfers never append to one. */
const writing = new Set<string>()

/**
 * Fetches the blob `sha256` from `holder` into `destPath`.
 *
 * Bytes go into `destPath + '.partial'`; when that file exists (an earlier transfer broke),
 * the transfer resumes from its size after hashing what it holds. Once every byte arrived,
 * the file is fsync'd, its sha256 checked against `sha256`, and renamed to `destPath` (and
 * the folder fsync'd), so `destPath` only ever holds verified bytes.
 *
 * @throws {BlobHolderUnreachableError} dial failed (within 10 s) or the connection broke; the partial file is kept
 * @throws {BlobNotFoundError} the holder does not have the blob
 * @throws {BlobDeniedError} the holder refused us
 * @throws {BlobHolderBusyError} the holder serves its maximum of transfers to us already
 * @throws {BlobHolderFailedError} the holder failed on its side; the partial file is kept
 * @throws {BlobIntegrityError} the bytes do not hash to `sha256`; the partial file is deleted
 * @throws {BlobProtocolError} the holder broke the wire format (or rejected our request)
 * @throws {BlobTransferInProgressError} this process already fetches into `destPath`
 * @throws the signal's reason when `opts.signal` aborts; the partial file is kept
 */
export async function fetchBlob (
  host: Libp2p, holder: BlobHolder, sha256: string, destPath: string, opts: FetchBlobOptions = {}
): Promise<FetchBlobResult> {
  if (!SHA256_HEX.test(sha256)) throw new TypeError(`sha256 must be 64 lowercase hex digits, got ${JSON.stringify(sha256)}`)
  const partial = resolvePath(destPath + PARTIAL_SUFFIX)
  if (writing.has(partial)) throw new BlobTransferInProgressError(destPath)
  writing.add(partial)
  try {
    return await fetchInto(host, holder, sha256, destPath, partial, opts)
  } finally {
    writing.delete(partial)
  }
}

async function fetchInto (
  host: Libp2p, holder: BlobHolder, sha256: string, destPath: string, partial: string, opts: FetchBlobOptions
): Promise<FetchBlobResult> {
  const signal = opts.signal
  signal?.throwIfAborted()
  const offset = await fileSize(partial)
  const hash = createHash('sha256')
  if (offset > 0) {
    for await (const chunk of createReadStream(partial, { end: offset - 1, highWaterMark: READ_CHUNK_BYTES, signal })) hash.update(chunk as Buffer)
  }

  const stream = await dial(host, holder, signal)
  let size: number
  try {
    stream.maxReadBufferLength = PAUSED_READ_BUFFER_BYTES
    const response = receiveResponse(stream, { peer: holder.peer, sha256, partial, offset, hash, signal, onProgress: opts.onProgress })
    // Never an unhandled rejection while the request is still being written.
    response.catch(() => {})
    try {
      stream.send(encodeBlobRequest({ sha256, offset }))
      await stream.close({ signal: signal ?? AbortSignal.timeout(STALL_TIMEOUT_MS) })
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      throw new BlobHolderUnreachableError(holder.peer, `could not send the request: ${asError(err).message}`, { cause: err })
    }
    size = await response
  } catch (err) {
    stream.abort(asError(err))
    if (err instanceof BlobIntegrityError) await rm(partial, { force: true })
    throw err
  }

  await fsyncPath(partial, 'r+')
  const digest = hash.digest('hex')
  if (digest !== sha256) {
    await rm(partial, { force: true })
    throw new BlobIntegrityError(sha256, `received ${size} bytes hashing to ${digest}`)
  }
  await rename(partial, destPath)
  await fsyncPath(dirname(resolvePath(destPath)), 'r')
  return { size, resumed: offset > 0 }
}

/** Opens a stream to the holder, within {@link DIAL_TIMEOUT_MS}. */
async function dial (host: Libp2p, holder: BlobHolder, signal?: AbortSignal): Promise<Stream> {
  const peerId = peerIdFromString(holder.peer)
  const addrs = holder.addrs ?? []
  const targets = addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${holder.peer}`))
  const timeout = AbortSignal.timeout(DIAL_TIMEOUT_MS)
  try {
    return await host.dialProtocol(targets.length > 0 ? targets : peerId, BLOB_PROTOCOL, {
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    })
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason
    const reason = timeout.aborted ? `no connection within ${DIAL_TIMEOUT_MS} ms` : asError(err).message
    throw new BlobHolderUnreachableError(holder.peer, reason, { cause: err })
  }
}

interface ReceiveContext {
  peer: string
  sha256: string
  partial: string
  offset: number
  hash: Hash
  signal?: AbortSignal
  onProgress?: (received: number, size: number) => void
}

/**
 * Reads the header line, then appends the body to the partial file, hashing it on the way;
 * resolves with the blob's size once every byte is on disk (written, not yet fsync'd) and
 * the holder half-closed. On any failure the bytes received so far are still flushed to the
 * partial file before the promise rejects, so a resume loses nothing.
 *
 * Back-pressure: while the file writer is over its high-water mark the stream is paused;
 * yamux then stops granting window, so the holder stops sending.
 */
async function receiveResponse (stream: Stream, ctx: ReceiveContext): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const headerChunks: Uint8Array[] = []
    let headerBytes = 0
    let size = -1
    let received = 0
    let out: WriteStream | undefined
    let settled = false
    let stallTimer: ReturnType<typeof setTimeout> | undefined

    const armStall = (): void => {
      clearTimeout(stallTimer)
      stallTimer = setTimeout(() => {
        fail(new BlobHolderUnreachableError(ctx.peer, `no data for ${STALL_TIMEOUT_MS} ms after ${ctx.offset + received} bytes`))
      }, STALL_TIMEOUT_MS)
    }

    const cleanup = (): void => {
      clearTimeout(stallTimer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      ctx.signal?.removeEventListener('abort', onAbort)
      out?.removeListener('drain', onWriterDrain)
    }

    /** Settles after the writer flushed what it holds, so the partial file is complete up to here. */
    const settle = (err: Error | undefined): void => {
      if (settled) return
      settled = true
      cleanup()
      if (err !== undefined) stream.abort(err)
      const finish = (writeErr?: Error | null): void => {
        if (err !== undefined) reject(err)
        else if (writeErr != null) reject(writeErr)
        else resolve(size)
      }
      if (out === undefined) { finish(); return }
      if (out.closed) { finish(out.errored); return }
      out.once('close', () => { finish(out?.errored) })
      out.end()
    }
    const fail = (err: Error): void => { settle(err) }

    const onWriterError = (err: Error): void => { fail(err) }
    const onWriterDrain = (): void => {
      if (settled || stream.readStatus !== 'paused') return
      armStall()
      try {
        stream.resume()
      } catch (err) {
        fail(asError(err))
      }
    }

    const onHeader = (header: BlobResponseHeader): void => {
      switch (header.status) {
        case 'ok': break
        case 'not-found': fail(new BlobNotFoundError(ctx.peer, ctx.sha256)); return
        case 'denied': fail(new BlobDeniedError(ctx.peer, ctx.sha256, header.reason)); return
        case 'busy': fail(new BlobHolderBusyError(ctx.peer)); return
        case 'error': fail(new BlobHolderFailedError(ctx.peer, header.reason)); return
        case 'bad-request': fail(new BlobProtocolError(`the holder rejected our request: ${header.reason}`)); return
        case 'invalid-offset':
          fail(new BlobIntegrityError(ctx.sha256, `the partial file (${ctx.offset} bytes) is longer than the blob (${header.size} bytes)`))
          return
      }
      if (header.size < ctx.offset) {
        fail(new BlobProtocolError(`holder answered ok with size ${header.size} below our offset ${ctx.offset}`))
        return
      }
      size = header.size
      out = createWriteStream(ctx.partial, { flags: 'a', highWaterMark: WRITE_HIGH_WATER_BYTES })
      out.on('error', onWriterError)
      out.on('drain', onWriterDrain)
      ctx.onProgress?.(ctx.offset, size)
    }

    const onBody = (chunk: Uint8Array): void => {
      if (out === undefined || chunk.byteLength === 0) return
      if (received + chunk.byteLength > size - ctx.offset) {
        fail(new BlobProtocolError(`holder sent more than the ${size - ctx.offset} bytes it announced`))
        return
      }
      received += chunk.byteLength
      ctx.hash.update(chunk)
      if (!out.write(chunk) && stream.readStatus === 'readable') {
        // Stop granting yamux window until the disk caught up.
        clearTimeout(stallTimer)
        stream.pause()
      }
      ctx.onProgress?.(ctx.offset + received, size)
    }

    const onMessage = (evt: StreamMessageEvent): void => {
      if (settled) return
      armStall()
      try {
        for (const chunk of chunksOf(evt)) {
          if (settled) return
          if (size >= 0) { onBody(chunk); continue }
          const nl = chunk.indexOf(NEWLINE)
          const head = nl === -1 ? chunk : chunk.subarray(0, nl)
          headerBytes += head.byteLength
          if (headerBytes > MAX_HEADER_BYTES) throw new BlobProtocolError(`response header longer than ${MAX_HEADER_BYTES} bytes`)
          headerChunks.push(head)
          if (nl === -1) continue
          onHeader(decodeBlobHeader(concat(headerChunks, headerBytes)))
          if (!settled) onBody(chunk.subarray(nl + 1))
        }
      } catch (err) {
        fail(asError(err))
      }
    }

    const onEnd = (): void => {
      if (settled) return
      if (size < 0) {
        fail(new BlobHolderUnreachableError(ctx.peer, 'the stream ended before the holder answered'))
      } else if (received < size - ctx.offset) {
        fail(new BlobHolderUnreachableError(ctx.peer, `the stream ended after ${ctx.offset + received} of ${size} bytes`))
      } else {
        settle(undefined)
      }
    }

    const onClose = (evt: StreamCloseEvent): void => {
      if (settled) return
      if (evt.error !== undefined) {
        const at = size < 0 ? 'before the holder answered' : `after ${ctx.offset + received} of ${size} bytes`
        fail(new BlobHolderUnreachableError(ctx.peer, `connection lost ${at}: ${evt.error.message}`, { cause: evt.error }))
        return
      }
      // A clean close with bytes still buffered (we are paused): 'end' follows once they are read.
      if (stream.readBufferLength === 0) onEnd()
    }

    const onAbort = (): void => { fail(asError(ctx.signal?.reason)) }

    if (ctx.signal?.aborted === true) { onAbort(); return }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    ctx.signal?.addEventListener('abort', onAbort)
    armStall()
  })
}

function concat (chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length)
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.byteLength }
  return out
}

/** Size of a file; 0 when it does not exist. */
async function fileSize (path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
}

/** fsyncs a file (opened `r+`) or a folder (opened `r`). */
async function fsyncPath (path: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await open(path, flags)
  try { await handle.sync() } finally { await handle.close() }
}
