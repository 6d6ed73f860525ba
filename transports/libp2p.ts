/**
 * {@link SyncTransport} over a libp2p host: one long-lived stream of protocol
 * {@link SYNC_PROTOCOL} per connected peer pair, carrying length-prefixed frames. The wire
 * format is written down in transports/PROTOCOL.md; the sync payloads are opaque here.
 *
 * Invariants (one place enforces each):
 * 1. At most one session (stream) per remote peer. The peer with the lower id opens it when
 *    a connection opens; either peer opens it when its transport starts and finds a
 *    connection without one. When two exist at once, the one opened by the lower id wins
 *    ({@link Libp2pTransport.onInboundStream}).
 * 2. No MESSAGE frame is sent or delivered before both sides admitted each other; a session
 *    is `open` (and `peer:connect` emitted) only after we admitted the remote's HELLO and
 *    received its ADMITTED ({@link Session.onFrame}).
 * 3. A refused peer, or one that breaks the protocol (unknown or out-of-order frame,
 *    oversized frame, handshake timeout), is hung up on: every connection to it is closed
 *    ({@link Session.end}).
 * 4. Frames to one peer are written in `send()` call order, one at a time, each waiting for
 *    the stream's back-pressure to clear ({@link Session.write}).
 * 5. `peer:disconnect` is emitted exactly once for every `peer:connect`.
 *
 * Ownership: the transport does not own the host. `start()` registers the protocol handler
 * and listeners, `stop()` closes its streams and removes them; the caller (the node) stops
 * the host.
 */
import { EventEmitter } from 'node:events'
import type { Connection, Libp2p, PeerId, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { LengthPrefixedDecoder, type LengthPrefixedDecoderInit } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import {
  MAX_MESSAGE_BYTES, MessageTooLargeError, PeerNotConnectedError,
  type Admission, type SyncTransport, type TransportEvents
} from './types.ts'

/** The sync protocol id; a breaking change to PROTOCOL.md gets a new major version. */
export const SYNC_PROTOCOL = '/printmesh/sync/1.0.0'
/** Largest HELLO body: a peer certificate is a few hundred bytes; this leaves room for a chain. */
export const MAX_CREDENTIALS_BYTES = 64 * 1024

/** Frame type: the sender's credentials; the first frame each way. */
const FRAME_HELLO = 0x01
/** Frame type: the sender admitted the receiver; the second frame each way. */
const FRAME_ADMITTED = 0x02
/** Frame type: one sync message (opaque payload); only after both ADMITTED frames. */
const FRAME_MESSAGE = 0x03
/** One byte of frame type precedes every body. */
const FRAME_TYPE_BYTES = 1
/** A length prefix is an unsigned LEB128 varint of at most this many bytes (2^56 > any frame). */
const MAX_VARINT_BYTES = 8
/** Data that may sit in the decoder beyond one whole frame: the rest of the chunk it arrived in (yamux delivers at most its 4 MiB read buffer at once). */
const READ_CHUNK_SLACK_BYTES = 8 * 1024 * 1024

/** From stream open until both sides admitted; covers a slow `admit()` (certificate checks). */
const HANDSHAKE_TIMEOUT_MS = 15_000
/** `dial()` gives up when the peer is not admitted both ways within this. */
const DIAL_TIMEOUT_MS = 30_000
/** A graceful stream close waits this long for unsent data, then the stream is aborted. */
const CLOSE_TIMEOUT_MS = 2_000
/** `dial()` redials this often when libp2p hands it a connection that closes before any stream. */
const DIAL_ATTEMPTS = 3
/** Sync streams per connection and direction: the live one plus one replacing it. */
const MAX_STREAMS_PER_CONNECTION = 2

/** We refused the remote peer's credentials. */
export class AdmissionRefusedError extends Error {
  constructor (readonly peer: string) {
    super(`admission refused to peer ${peer}`)
    this.name = 'AdmissionRefusedError'
  }
}

/** The admission handshake did not complete (remote refused or went away, timeout). */
export class HandshakeFailedError extends Error {
  constructor (readonly peer: string, reason: string, options?: ErrorOptions) {
    super(`sync handshake with ${peer} failed: ${reason}`, options)
    this.name = 'HandshakeFailedError'
  }
}

/** The remote peer broke the sync protocol; it is hung up on. */
export class ProtocolViolationError extends Error {
  constructor (readonly peer: string, reason: string, options?: ErrorOptions) {
    super(`peer ${peer} violated ${SYNC_PROTOCOL}: ${reason}`, options)
    this.name = 'ProtocolViolationError'
  }
}

/** A frame's length prefix announced more than the current limit allows. */
export class FrameTooLargeError extends Error {
  constructor (readonly size: number, readonly limit: number) {
    super(`frame of ${size} bytes exceeds the limit of ${limit}`)
    this.name = 'FrameTooLargeError'
  }
}

/** `dial()` was called on a transport that is not started. */
export class TransportNotStartedError extends Error {
  constructor () {
    super('the sync transport is not started')
    this.name = 'TransportNotStartedError'
  }
}

/** Why a session ended without fault of the remote. */
class SessionClosedError extends Error {
  constructor (reason: string) {
    super(reason)
    this.name = 'SessionClosedError'
  }
}

/** We could not open our sync stream on the connection. */
class StreamOpenError extends HandshakeFailedError {
  constructor (peer: string, cause: unknown) {
    super(peer, 'could not open the sync stream', { cause })
    this.name = 'StreamOpenError'
  }
}

/** A newer stream from the lower peer id took this session's place. */
class SupersededError extends SessionClosedError {
  constructor () {
    super('superseded by the stream the lower peer id opened')
    this.name = 'SupersededError'
  }
}

/** Options of {@link Libp2pTransport}. */
export interface Libp2pTransportInit {
  /** A started host (see transports/host.ts); not stopped by the transport. */
  host: Libp2p
  /** Decides who may sync with us; asked once per session. */
  admission: Admission
  logger: Logger
}

type Bytes = Parameters<NonNullable<LengthPrefixedDecoderInit['lengthDecoder']>>[0]

/** Unsigned LEB128 (multiformats unsigned-varint) encoding of a frame length. */
function encodeVarint (value: number): Uint8Array {
  const out = new Uint8Array(varintLength(value))
  let rest = value
  for (let i = 0; i < out.length; i++) {
    out[i] = (rest % 0x80) | (i < out.length - 1 ? 0x80 : 0)
    rest = Math.floor(rest / 0x80)
  }
  return out
}

function varintLength (value: number): number {
  let length = 1
  for (let rest = value; rest >= 0x80 && length < MAX_VARINT_BYTES; rest = Math.floor(rest / 0x80)) length++
  return length
}

/**
 * Decodes a length prefix. Throws RangeError while incomplete (the decoder then waits for
 * more bytes), {@link FrameTooLargeError} over `limit()`, and Error for a malformed prefix.
 */
function makeLengthDecoder (limit: () => number): (buf: Bytes) => number {
  return (buf) => {
    let value = 0
    let factor = 1
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (i >= buf.byteLength) throw new RangeError('incomplete length prefix')
      const byte = buf instanceof Uint8Array ? buf[i] : buf.get(i)
      value += (byte & 0x7f) * factor
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) throw new Error('length prefix is not minimally encoded')
        if (value > limit()) throw new FrameTooLargeError(value, limit())
        return value
      }
      factor *= 0x80
    }
    throw new Error(`length prefix longer than ${MAX_VARINT_BYTES} bytes`)
  }
}

/** One frame, as a single buffer: length prefix, type, a copy of `body`. */
function encodeFrame (type: number, body: Uint8Array): Uint8Array {
  const prefix = encodeVarint(FRAME_TYPE_BYTES + body.byteLength)
  const frame = new Uint8Array(prefix.byteLength + FRAME_TYPE_BYTES + body.byteLength)
  frame.set(prefix, 0)
  frame[prefix.byteLength] = type
  frame.set(body, prefix.byteLength + FRAME_TYPE_BYTES)
  return frame
}

/** A {@link PeerNotConnectedError} carrying what actually went wrong as its cause. */
function notConnected (peer: string, cause: unknown): PeerNotConnectedError {
  const err = new PeerNotConnectedError(peer)
  err.cause = cause
  return err
}

/** Resolves on the stream's next 'drain'; rejects when it closes first or `signal` aborts. */
async function waitForDrain (stream: Stream, signal?: AbortSignal): Promise<void> {
  // Stream.onDrain() is not used: in @libp2p/utils 7.4 its promise is never reset after the
  // first drain, so later calls resolve at once while the stream is still full.
  if (!stream.writableNeedsDrain) return
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (evt: StreamCloseEvent): void => { cleanup(); reject(evt.error ?? new SessionClosedError('stream closed')) }
    const onAbort = (): void => { cleanup(); reject(signal?.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

/** Resolves with `promise`, or rejects with the signal's reason when it aborts first. */
async function abortable<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return await promise
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}

type SessionState = 'opening' | 'handshake' | 'open' | 'closed'

/** What a {@link Session} reports to its transport. */
interface SessionOwner {
  readonly self: string
  readonly host: Libp2p
  readonly admission: Admission
  readonly log: Logger
  sessionOpened (session: Session): void
  sessionEnded (session: Session, reason: Error, wasOpen: boolean): void
  deliver (peer: string, data: Uint8Array): void
}

/** One sync stream with one peer: handshake, then framed messages both ways. */
class Session {
  state: SessionState = 'opening'
  stream?: Stream
  /** Settles once the stream is closed (or aborted) after the session ended. */
  closed: Promise<void> = Promise.resolve()
  readonly peer: string
  private localAdmitted = false
  private remoteAdmitted = false
  private gotHello = false
  private timer?: ReturnType<typeof setTimeout>
  private writeTail: Promise<void> = Promise.resolve()
  private readonly decoder: LengthPrefixedDecoder

  constructor (
    private readonly owner: SessionOwner,
    readonly connection: Connection,
    /** Whether we opened the stream. */
    readonly outbound: boolean
  ) {
    this.peer = connection.remotePeer.toString()
    const limit = (): number => FRAME_TYPE_BYTES + (this.state === 'open' ? MAX_MESSAGE_BYTES : MAX_CREDENTIALS_BYTES)
    this.decoder = new LengthPrefixedDecoder({
      maxDataLength: FRAME_TYPE_BYTES + MAX_MESSAGE_BYTES,
      maxBufferSize: MAX_VARINT_BYTES + FRAME_TYPE_BYTES + MAX_MESSAGE_BYTES + READ_CHUNK_SLACK_BYTES,
      lengthDecoder: makeLengthDecoder(limit),
      encodingLength: varintLength
    })
  }

  /** Whether the session ended (a method, so TypeScript does not narrow the state across awaits). */
  isClosed (): boolean {
    return this.state === 'closed'
  }

  /** Which peer opened the stream. */
  get opener (): string {
    return this.outbound ? this.owner.self : this.peer
  }

  /** Opens our stream on the connection, then runs the handshake. */
  async openStream (): Promise<void> {
    let stream: Stream
    try {
      stream = await this.connection.newStream(SYNC_PROTOCOL, {
        signal: AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS),
        maxOutboundStreams: MAX_STREAMS_PER_CONNECTION
      })
    } catch (err) {
      // Typically the remote transport is not started yet; it opens the stream when it starts.
      this.end(new StreamOpenError(this.peer, err), false)
      return
    }
    if (this.isClosed()) {
      stream.abort(new SessionClosedError('session ended while the stream was opening'))
      return
    }
    this.run(stream)
  }

  /** Starts the handshake on `stream` (ours or the remote's). */
  run (stream: Stream): void {
    this.stream = stream
    this.state = 'handshake'
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('close', this.onClose)
    stream.addEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    this.timer = setTimeout(() => {
      this.end(new HandshakeFailedError(this.peer, `not admitted both ways within ${HANDSHAKE_TIMEOUT_MS} ms`), true)
    }, HANDSHAKE_TIMEOUT_MS)
    let credentials: Uint8Array
    try {
      credentials = this.owner.admission.credentials()
    } catch (err) {
      this.end(new HandshakeFailedError(this.peer, 'could not produce our credentials', { cause: err }), false)
      return
    }
    if (credentials.byteLength > MAX_CREDENTIALS_BYTES) {
      this.end(new HandshakeFailedError(this.peer, `our credentials exceed ${MAX_CREDENTIALS_BYTES} bytes`), false)
      return
    }
    this.write(FRAME_HELLO, credentials).catch((err: unknown) => {
      this.end(new HandshakeFailedError(this.peer, 'could not send HELLO', { cause: err }), false)
    })
  }

  /** Sends one sync message; see {@link SyncTransport.send}. */
  async send (data: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (this.state !== 'open') throw new PeerNotConnectedError(this.peer)
    await this.write(FRAME_MESSAGE, data, signal)
  }

  /**
   * Writes one frame after every frame written before it, waiting for back-pressure: if the
   * stream is full we wait for 'drain' before writing, and if this frame filled it we wait
   * for 'drain' before resolving. The body is copied, so the caller may reuse its buffer.
   */
  private async write (type: number, body: Uint8Array, signal?: AbortSignal): Promise<void> {
    const frame = encodeFrame(type, body)
    const previous = this.writeTail
    let finished!: () => void
    const done = new Promise<void>((resolve) => { finished = resolve })
    // The next writer waits for this one and, through it, for every earlier one.
    this.writeTail = previous.then(async () => await done)
    try {
      await abortable(previous, signal)
      signal?.throwIfAborted()
      const stream = this.stream
      if (this.isClosed() || stream === undefined) throw new PeerNotConnectedError(this.peer)
      try {
        await waitForDrain(stream, signal)
        if (this.isClosed()) throw new PeerNotConnectedError(this.peer)
        if (!stream.send(frame)) await waitForDrain(stream, signal)
      } catch (err) {
        if (signal?.aborted === true && err === signal.reason) throw err
        if (err instanceof PeerNotConnectedError) throw err
        throw notConnected(this.peer, err)
      }
    } finally {
      finished()
    }
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    if (this.isClosed()) return
    try {
      for (const frame of this.decoder.decode(evt.data)) {
        this.onFrame(frame)
        if (this.isClosed()) return
      }
    } catch (err) {
      this.end(new ProtocolViolationError(this.peer, err instanceof Error ? err.message : String(err), { cause: err }), true)
    }
  }

  /** Applies one frame to the handshake state machine (invariant 2). */
  private onFrame (frame: { byteLength: number, get: (i: number) => number, slice: (begin?: number) => Uint8Array }): void {
    const type = frame.get(0)
    if (this.state === 'open') {
      if (type !== FRAME_MESSAGE) throw new Error(`unexpected frame type ${type} after the handshake`)
      this.owner.deliver(this.peer, frame.slice(FRAME_TYPE_BYTES))
      return
    }
    if (!this.gotHello) {
      if (type !== FRAME_HELLO) throw new Error(`expected HELLO, got frame type ${type}`)
      this.gotHello = true
      void this.admit(frame.slice(FRAME_TYPE_BYTES))
      return
    }
    if (type === FRAME_ADMITTED && !this.remoteAdmitted && frame.byteLength === FRAME_TYPE_BYTES) {
      this.remoteAdmitted = true
      this.maybeOpen()
      return
    }
    throw new Error(`unexpected frame type ${type} during the handshake`)
  }

  private async admit (credentials: Uint8Array): Promise<void> {
    let admitted: boolean
    try {
      admitted = await this.owner.admission.admit(this.peer, credentials)
    } catch (err) {
      // The contract says admit() must not throw; if it does, the peer is not admitted.
      this.owner.log.error({ remote: this.peer, err }, 'admission threw; refusing the peer')
      admitted = false
    }
    if (this.isClosed()) return
    if (!admitted) {
      this.end(new AdmissionRefusedError(this.peer), true)
      return
    }
    this.localAdmitted = true
    try {
      await this.write(FRAME_ADMITTED, new Uint8Array(0))
    } catch (err) {
      this.end(new HandshakeFailedError(this.peer, 'could not send ADMITTED', { cause: err }), false)
      return
    }
    this.maybeOpen()
  }

  private maybeOpen (): void {
    if (this.state !== 'handshake' || !this.localAdmitted || !this.remoteAdmitted) return
    this.state = 'open'
    clearTimeout(this.timer)
    this.owner.sessionOpened(this)
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    this.end(evt.error ?? new SessionClosedError('stream closed'), false)
  }

  private readonly onRemoteCloseWrite = (): void => {
    this.end(new SessionClosedError('the remote closed the stream'), false)
  }

  /**
   * Ends the session once: closes the stream (gracefully, then by abort), or with `hangUp`
   * closes every connection to the peer (invariant 3). Reports to the owner.
   */
  end (reason: Error, hangUp: boolean): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    clearTimeout(this.timer)
    const stream = this.stream
    if (stream !== undefined) {
      stream.removeEventListener('message', this.onMessage)
      stream.removeEventListener('close', this.onClose)
      stream.removeEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    }
    if (hangUp) {
      this.closed = this.owner.host.hangUp(this.connection.remotePeer, { signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
        .catch((err: unknown) => {
          this.owner.log.warn({ remote: this.peer, err }, 'hang-up did not finish cleanly; aborting the connection')
          this.connection.abort(err instanceof Error ? err : new Error(String(err)))
        })
    } else if (stream !== undefined && stream.status === 'open') {
      this.closed = stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) }).catch((err: unknown) => {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
    }
    this.owner.sessionEnded(this, reason, wasOpen)
  }
}

/** A `dial()` waiting for the session with a peer to open or fail. */
/** How a dial's wait ends: admitted both ways, dial again (the connection died unused), or failed. */
type DialOutcome = 'open' | 'redial' | Error
type Waiter = (outcome: DialOutcome) => void

/**
 * The libp2p {@link SyncTransport}. See the module comment for its invariants and
 * transports/PROTOCOL.md for the wire format.
 */
export class Libp2pTransport extends EventEmitter<TransportEvents> implements SyncTransport, SessionOwner {
  readonly self: string
  readonly host: Libp2p
  readonly admission: Admission
  readonly log: Logger
  private readonly sessions = new Map<string, Session>()
  private readonly waiters = new Map<string, Set<Waiter>>()
  private started = false
  private starting?: Promise<void>

  constructor (init: Libp2pTransportInit) {
    super()
    this.host = init.host
    this.admission = init.admission
    this.self = init.host.peerId.toString()
    this.log = init.logger.child({ component: 'sync-transport' })
  }

  async start (): Promise<void> {
    if (this.started) return
    this.starting ??= this.doStart().finally(() => { this.starting = undefined })
    await this.starting
  }

  private async doStart (): Promise<void> {
    await this.host.handle(SYNC_PROTOCOL, this.onInboundStream, {
      maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
      maxOutboundStreams: MAX_STREAMS_PER_CONNECTION
    })
    this.started = true
    this.host.addEventListener('connection:open', this.onConnectionOpen)
    // Connections made before we started (discovery dials at once): open their sessions now,
    // whichever side we are, since the remote may have tried before our handler existed.
    for (const connection of this.host.getConnections()) this.openSession(connection, true)
  }

  async stop (): Promise<void> {
    // A failing start() already rejected to its own caller; stop only needs it to have settled.
    if (this.starting !== undefined) await this.starting.catch(() => {})
    if (!this.started) return
    this.started = false
    this.host.removeEventListener('connection:open', this.onConnectionOpen)
    try {
      await this.host.unhandle(SYNC_PROTOCOL)
    } catch (err) {
      this.log.warn({ err }, 'could not unregister the sync protocol handler')
    }
    const sessions = [...this.sessions.values()]
    for (const session of sessions) session.end(new SessionClosedError('transport stopped'), false)
    await Promise.all(sessions.map(async (s) => await s.closed))
    for (const peer of [...this.waiters.keys()]) this.settleWaiters(peer, new TransportNotStartedError())
  }

  peers (): string[] {
    return [...this.sessions.values()].filter((s) => s.state === 'open').map((s) => s.peer)
  }

  async send (peer: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (data.byteLength > MAX_MESSAGE_BYTES) throw new MessageTooLargeError(data.byteLength)
    const session = this.sessions.get(peer)
    if (session === undefined || session.state !== 'open') throw new PeerNotConnectedError(peer)
    await session.send(data, signal)
  }

  /** Hangs up on `peer` (every connection); `peer:disconnect` is emitted before this resolves. */
  async disconnect (peer: string): Promise<void> {
    const session = this.sessions.get(peer)
    if (session !== undefined) {
      session.end(new SessionClosedError('disconnected locally'), true)
      await session.closed
      return
    }
    const connection = this.host.getConnections().find((c) => c.remotePeer.toString() === peer)
    if (connection !== undefined) await this.host.hangUp(connection.remotePeer, { signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
  }

  /**
   * Connects to a peer at `address` (which must end in `/p2p/<peer id>` unless the host
   * already knows the address) and resolves with its peer id once both sides admitted each
   * other. Resolves at once when already connected.
   *
   * @throws {AdmissionRefusedError} we refused the peer
   * @throws {HandshakeFailedError} the peer refused us, went away, or did not finish in time
   * @throws {TransportNotStartedError}
   */
  async dial (address: string | Multiaddr | Multiaddr[], signal?: AbortSignal): Promise<string> {
    if (!this.started) throw new TransportNotStartedError()
    const limit = AbortSignal.any([AbortSignal.timeout(DIAL_TIMEOUT_MS), ...(signal === undefined ? [] : [signal])])
    const target = typeof address === 'string' ? multiaddr(address) : address
    for (let attempt = 1; ; attempt++) {
      const connection = await this.host.dial(target, { signal: limit })
      const peer = connection.remotePeer.toString()
      if (this.sessions.get(peer)?.state === 'open') return peer
      // An existing connection without a session (its stream failed earlier): the lower id reopens.
      this.openSession(connection, false)
      if (await this.awaitSession(peer, connection, limit)) return peer
      // libp2p handed us a connection that was already closing (the remote had just hung up
      // and the close had not reached us): dial again, which opens a fresh one.
      if (attempt >= DIAL_ATTEMPTS) throw new HandshakeFailedError(peer, `every connection closed before a sync stream opened (${attempt} dials)`)
    }
  }

  /**
   * Waits for the session with `peer` to open (true). False when `connection` closed with no
   * session running on it (it was dying when libp2p handed it out); rejects when a session failed.
   */
  private async awaitSession (peer: string, connection: Connection, signal: AbortSignal): Promise<boolean> {
    let waiter: Waiter | undefined
    let onClose: (() => void) | undefined
    try {
      return await abortable(new Promise<boolean>((resolve, reject) => {
        waiter = (outcome) => {
          if (outcome instanceof Error) reject(outcome)
          else resolve(outcome === 'open')
        }
        let set = this.waiters.get(peer)
        if (set === undefined) this.waiters.set(peer, set = new Set())
        set.add(waiter)
        // A session running on the connection settles the waiter itself when it ends.
        onClose = () => { if (this.sessions.get(peer)?.connection !== connection) resolve(false) }
        if (connection.status !== 'open') onClose()
        else connection.addEventListener('close', onClose)
      }), signal)
    } finally {
      if (waiter !== undefined) this.waiters.get(peer)?.delete(waiter)
      if (onClose !== undefined) connection.removeEventListener('close', onClose)
    }
  }

  /** SessionOwner: the session passed the handshake (invariant 2). */
  sessionOpened (session: Session): void {
    this.log.debug({ remote: session.peer, opener: session.opener }, 'peer admitted both ways')
    this.emit('peer:connect', session.peer)
    this.settleWaiters(session.peer, 'open')
  }

  /** SessionOwner: the session ended (invariant 5), maybe to be reopened on another connection. */
  sessionEnded (session: Session, reason: Error, wasOpen: boolean): void {
    const current = this.sessions.get(session.peer) === session
    if (current) this.sessions.delete(session.peer)
    const level = reason instanceof ProtocolViolationError || reason instanceof AdmissionRefusedError ? 'warn' : 'debug'
    this.log[level]({ remote: session.peer, reason: reason.message }, 'sync session ended')
    if (wasOpen) this.emit('peer:disconnect', session.peer)
    if (reason instanceof StreamOpenError) {
      // Our stream could not be opened: on a dying connection a dial should redial; on a live
      // one the remote transport is not started yet and opens the stream when it starts.
      if (session.connection.status !== 'open') this.settleWaiters(session.peer, 'redial')
    } else if (!(reason instanceof SupersededError)) {
      // A superseded session is replaced by a newer one: a dial waiting on the peer waits for that one.
      this.settleWaiters(session.peer, reason)
    }
    // Its connection went away but another one to the peer remains (libp2p closed a duplicate).
    if (current && this.started && session.connection.status !== 'open') {
      const other = this.host.getConnections(session.connection.remotePeer).find((c) => c.status === 'open')
      if (other !== undefined) this.openSession(other, false)
    }
  }

  /** SessionOwner: hands one received message to the listeners. */
  deliver (peer: string, data: Uint8Array): void {
    try {
      this.emit('message', peer, data)
    } catch (err) {
      // A listener's bug must not be mistaken for the peer's protocol violation.
      this.log.error({ remote: peer, err }, 'a message listener threw')
    }
  }

  private settleWaiters (peer: string, outcome: DialOutcome): void {
    const set = this.waiters.get(peer)
    if (set === undefined) return
    this.waiters.delete(peer)
    const result = outcome instanceof Error && !(outcome instanceof AdmissionRefusedError || outcome instanceof HandshakeFailedError)
      ? new HandshakeFailedError(peer, outcome.message, { cause: outcome })
      : outcome
    for (const waiter of set) waiter(result)
  }

  /**
   * Opens our stream on `connection` unless the peer already has a session. On a new
   * connection only the lower peer id opens it (invariant 1); at start we open it either way.
   */
  private openSession (connection: Connection, atStart: boolean): void {
    if (!this.started || connection.status !== 'open') return
    const peer = connection.remotePeer.toString()
    if (this.sessions.has(peer)) return
    if (!atStart && !(this.self < peer)) return
    const session = new Session(this, connection, true)
    this.sessions.set(peer, session)
    void session.openStream()
  }

  private readonly onConnectionOpen = (evt: CustomEvent<Connection>): void => {
    this.openSession(evt.detail, false)
  }

  /** A stream the remote opened (invariant 1 decides whether it is kept). */
  private readonly onInboundStream = (stream: Stream, connection: Connection): void => {
    const peer = connection.remotePeer.toString()
    if (!this.started) {
      stream.abort(new SessionClosedError('transport stopped'))
      return
    }
    const existing = this.sessions.get(peer)
    if (existing !== undefined) {
      if (!(peer < this.self)) {
        // We are the lower id: our stream (or the one already kept) wins.
        stream.abort(new SessionClosedError('a sync stream with this peer already exists'))
        return
      }
      existing.end(new SupersededError(), false)
    }
    const session = new Session(this, connection, false)
    this.sessions.set(peer, session)
    session.run(stream)
  }
}
