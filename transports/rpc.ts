/**
 * One JSON request, one JSON response, over a libp2p stream of a given protocol id: the
 * exchange the enrollment and release-grant protocols share (see PROTOCOL.md). Each side
 * half-closes after writing its message, so a message is everything read until the
 * remote's 'remoteCloseWrite'. What a request means is the caller's business; this module
 * only moves the two messages, bounded in size and time.
 */
import type { Libp2p, Stream, Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'

/** Requests and responses are small JSON documents (a certificate or a job record is < 4 KiB). */
export const MAX_RPC_MESSAGE_BYTES = 64 * 1024

/** The remote broke the exchange: too large, not JSON, closed early. */
export class RpcProtocolError extends Error {
  constructor (message: string, options?: ErrorOptions) { super(message, options); this.name = 'RpcProtocolError' }
}

/** The remote could not be dialled or the protocol not negotiated. */
export class RpcUnreachableError extends Error {
  constructor (readonly peer: string, reason: string, options?: ErrorOptions) {
    super(`peer ${peer} is unreachable: ${reason}`, options)
    this.name = 'RpcUnreachableError'
  }
}

/** Reads everything the remote writes until it half-closes. */
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
      if (size > MAX_RPC_MESSAGE_BYTES) {
        cleanup()
        reject(new RpcProtocolError(`message over ${MAX_RPC_MESSAGE_BYTES} bytes`))
        return
      }
      chunks.push(bytes)
    }
    const onEnd = (): void => { cleanup(); resolve() }
    const onClose = (evt: { error?: Error }): void => {
      cleanup()
      if (evt.error !== undefined) reject(new RpcProtocolError(`stream closed: ${evt.error.message}`, { cause: evt.error }))
      else resolve()
    }
    const onAbort = (): void => { cleanup(); reject(signal.reason) }
    if (signal.aborted) { onAbort(); return }
    stream.addEventListener('message', onMessage as never)
    stream.addEventListener('remoteCloseWrite', onEnd)
    stream.addEventListener('close', onClose as never)
    signal.addEventListener('abort', onAbort)
  })
  const text = Buffer.concat(chunks).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new RpcProtocolError(`message is not JSON: ${(err as Error).message}`)
  }
}

async function writeMessage (stream: Stream, message: unknown, signal: AbortSignal): Promise<void> {
  stream.send(new TextEncoder().encode(JSON.stringify(message)))
  await stream.close({ signal })
}

/**
 * Answers each request on `protocol` with `answer(peer, request)` (peer: the remote's
 * noise-authenticated id). A request that is not JSON, or an `answer` that throws, aborts
 * the stream and is logged; the process carries on. Returns the unregister function.
 */
export async function handleRpc (
  host: Libp2p, protocol: string, answer: (peer: string, request: unknown) => Promise<unknown>, logger: Logger, timeoutMs: number
): Promise<() => Promise<void>> {
  await host.handle(protocol, (stream: Stream, connection: Connection) => {
    const peer = connection.remotePeer.toString()
    const signal = AbortSignal.timeout(timeoutMs)
    readMessage(stream, signal)
      .then(async (request) => await answer(peer, request))
      .then(async (response) => await writeMessage(stream, response, signal))
      .catch((err: unknown) => {
        logger.warn({ peer, protocol, err: (err as Error).message }, 'request failed')
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      })
  })
  return async () => { await host.unhandle(protocol) }
}

/** Sends one request to `peer` (at `addrs`, or wherever libp2p knows it) and returns its response. */
export async function callRpc (host: Libp2p, protocol: string, peer: string, addrs: string[], request: unknown, signal: AbortSignal): Promise<unknown> {
  const peerId = peerIdFromString(peer)
  const targets = addrs.map((a) => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer}`))
  let stream: Stream
  try {
    stream = await host.dialProtocol(targets.length > 0 ? targets : peerId, protocol, { signal })
  } catch (err) {
    throw new RpcUnreachableError(peer, (err as Error).message, { cause: err })
  }
  try {
    const reply = readMessage(stream, signal)
    reply.catch(() => {})
    await writeMessage(stream, request, signal)
    return await reply
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}
