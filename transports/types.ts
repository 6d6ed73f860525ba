/**
 * The one small contract for moving document-sync messages between peers, after
 * automerge-repo's NetworkAdapter: connect, send, disconnect, typed events. A transport
 * moves opaque bytes only; what they mean (sync steps, signatures, authorization of
 * updates) is decided in crdt/sync.ts. Implementations: libp2p (transports/libp2p.ts) and
 * in-memory (transports/memory.ts); both pass test/helpers/transport-suite.ts.
 */
import type { EventEmitter } from 'node:events'

/** Largest single sync message: a whole compacted document must fit. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024

export interface TransportEvents {
  /** A peer passed admission on both sides and may now exchange messages. */
  'peer:connect': [peer: string]
  /** The connection to a peer is gone (closed, refused, revoked, stopped). */
  'peer:disconnect': [peer: string]
  /** One message from a connected peer, exactly as it was sent. */
  message: [peer: string, data: Uint8Array]
}

/**
 * Who may connect, decided by the node (membership), applied by every transport the same
 * way: when a connection opens each side presents its credentials (its certificate) and
 * the other side admits it or drops the connection. No message passes before admission.
 */
export interface Admission {
  /** Bytes this peer presents when a connection opens. */
  credentials (): Uint8Array
  /** Whether `peer`, presenting `credentials`, may sync with us. Must not throw. */
  admit (peer: string, credentials: Uint8Array): Promise<boolean>
}

export interface SyncTransport extends EventEmitter<TransportEvents> {
  /** This peer's id (a libp2p peer id string). */
  readonly self: string
  /** Safe to call twice. */
  start (): Promise<void>
  /** Closes every connection (emitting peer:disconnect); safe to call twice or before start. */
  stop (): Promise<void>
  /** Admitted peers with an open connection. */
  peers (): string[]
  /**
   * Sends one message to a connected peer. Resolves once the transport has taken it (after
   * waiting for back-pressure to clear). While the connection lasts, messages to one peer
   * arrive in order and at most once. Rejects with {@link PeerNotConnectedError} when the
   * peer is not connected, {@link MessageTooLargeError} over {@link MAX_MESSAGE_BYTES}.
   */
  send (peer: string, data: Uint8Array, signal?: AbortSignal): Promise<void>
  /** Closes the connection to `peer` (e.g. its certificate was revoked). */
  disconnect (peer: string): Promise<void>
}

export class PeerNotConnectedError extends Error {
  constructor (peer: string) { super(`peer ${peer} is not connected`); this.name = 'PeerNotConnectedError' }
}

export class MessageTooLargeError extends Error {
  constructor (size: number) { super(`message of ${size} bytes exceeds ${MAX_MESSAGE_BYTES}`); this.name = 'MessageTooLargeError' }
}
