/**
 * The enrollment protocol `/printmesh/enroll/1.0.0` (see PROTOCOL.md): a peer that passed
 * the private-network handshake but has no certificate yet sends one JSON request; central
 * answers with one JSON response. Each side half-closes after writing its message, so the
 * message is everything read until the remote's 'remoteCloseWrite'. What the request means
 * is decided by the node (node/enrollment.ts); this module only moves the two messages.
 */
import type { Libp2p, Stream, Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'

export const ENROLL_PROTOCOL = '/printmesh/enroll/1.0.0'
/** Enrollment messages are small JSON documents (a certificate is < 1 KiB). */
const MAX_ENROLL_MESSAGE_BYTES = 16 * 1024
/** One enrollment exchange takes longer than this only if something is wrong. */
export const ENROLL_TIMEOUT_MS = 15_000

export class EnrollProtocolError extends Error {
  constructor (message: string, options?: ErrorOptions) { super(message, options); this.name = 'EnrollProtocolError' }
}

/** Reads everything the remote writes until it half-closes; bounded in size and time. */
async function readMessage (stream: Stream, signal: AbortSignal): Promise<unknown> {
  const chunks: Uint8Array[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onMessage = (evt: { data: Uint8Array | { subarray: () => Uint8Array } }): void => {
      const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      size += bytes.byteLength
      if (size > MAX_ENROLL_MESSAGE_BYTES) {
        cleanup()
        reject(new EnrollProtocolError(`enrollment message over ${MAX_ENROLL_MESSAGE_BYTES} bytes`))
        return
      }
      chunks.push(bytes)
    }
    const onEnd = (): void => { cleanup(); resolve() }
    const onClose = (evt: { error?: Error }): void => {
      cleanup()
      if (evt.error !== undefined) reject(new EnrollProtocolError(`stream closed: ${evt.error.message}`, { cause: evt.error }))
      else resolve()
    }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    stream.addEventListener('message', onMessage as never)
    stream.addEventListener('remoteCloseWrite', onEnd)
    stream.addEventListener('close', onClose as never)
    signal.addEventListener('abort', onAbort)
  })
  const text = Buffer.concat(chunks).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new EnrollProtocolError(`enrollment message is not JSON: ${(err as Error).message}`)
  }
}

async function writeMessage (stream: Stream, message: unknown, signal: AbortSignal): Promise<void> {
  stream.send(new TextEncoder().encode(JSON.stringify(message)))
  await stream.close({ signal })
}

/** Central's side: answers each enrollment request with `decide(peer, request)`. */
export async function handleEnrollment (
  host: Libp2p, decide: (peer: string, request: unknown) => Promise<unknown>, logger: Logger
): Promise<() => Promise<void>> {
  await host.handle(ENROLL_PROTOCOL, (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(ENROLL_TIMEOUT_MS)
    readMessage(stream, signal)
      .then(async (request) => await decide(peer, request))
      .then(async (response) => await writeMessage(stream, response, signal))
      .catch((err: unknown) => {
        logger.warn({ peer, err: (err as Error).message }, 'enrollment request failed')
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
  })
  return async () => { await host.unhandle(ENROLL_PROTOCOL) }
}

/** The joining side: dials central at `addrs` and exchanges one request for one response. */
export async function requestEnrollment (host: Libp2p, central: string, addrs: string[], request: unknown, signal = AbortSignal.timeout(ENROLL_TIMEOUT_MS)): Promise<unknown> {
  const peerId = peerIdFromString(central)
  const targets = addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${central}`))
  const stream = await host.dialProtocol(targets.length > 0 ? targets : peerId, ENROLL_PROTOCOL, { signal })
  try {
    const reply = readMessage(stream, signal)
    await writeMessage(stream, request, signal)
    return await reply
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
