/**
 * One IPP-over-HTTP exchange (RFC 8010 section 4): POST an `application/ipp` body,
 * optionally followed by a document streamed from disk, and decode the IPP response.
 *
 * Every exchange runs on its own connection (`agent: false`, unless the target brings a
 * keep-alive agent, as the load generator does), so a timeout or an abort
 * tears down exactly that socket and nothing is reused in an unknown state. Failures say
 * in which phase they happened ({@link ExchangePhase}) because the IPP device's retry
 * policy depends on it: a request that never reached the printer in full may be retried,
 * one whose body was fully delivered may already have created a printer job.
 */
import { createReadStream } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { pipeline } from 'node:stream/promises'
import { decodeMessage, encodeMessage, type IppMessage } from '../ipp/wire.ts'

/** Largest IPP response accepted: we ask for a handful of attributes, so this is generous. */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024

/**
 * Where an exchange failed.
 * - `connect`: no connection (refused, unreachable, DNS, TLS handshake, connect timeout).
 * - `send`: connected, but the request body (and document) was not delivered in full.
 * - `response`: the whole request was delivered; the response was lost, late or garbled.
 */
export type ExchangePhase = 'connect' | 'send' | 'response'

/** The exchange failed below IPP (network, timeout, malformed response, abort). */
export class IppTransportError extends Error {
  constructor (
    message: string,
    readonly phase: ExchangePhase,
    /** errno-style code (`ECONNREFUSED`, `ECONNRESET`), `TIMEOUT`, `ABORTED` or `BAD_RESPONSE`. */
    readonly code: string,
    options?: { cause?: unknown }
  ) {
    super(message, options)
    this.name = 'IppTransportError'
  }
}

/** The printer answered with an HTTP status other than 200. */
export class IppHttpStatusError extends Error {
  constructor (readonly status: number, readonly phase: ExchangePhase) {
    super(`printer answered HTTP ${status} ${http.STATUS_CODES[status] ?? ''}`.trim())
    this.name = 'IppHttpStatusError'
  }
}

/** The document to print could not be read from disk (not the printer's fault). */
export class DocumentReadError extends Error {
  constructor (path: string, options: { cause: unknown }) {
    super(`cannot read document ${path}: ${(options.cause as Error).message}`, options)
    this.name = 'DocumentReadError'
  }
}

/** Where to send and how to secure the connection. */
export interface ExchangeTarget {
  /** `http:` for ipp://, `https:` for ipps://. */
  protocol: 'http:' | 'https:'
  host: string
  port: number
  path: string
  /** TLS options for `https:` (certificate checks, extra CAs). */
  tls?: { rejectUnauthorized: boolean, ca?: string | Buffer | Array<string | Buffer> }
  /**
   * Connection reuse (a keep-alive agent, as load generators use). Default none: each
   * exchange on its own connection, so a timeout or abort tears down exactly that socket.
   */
  agent?: http.Agent
}

/** Port IANA assigned to IPP, also used by ipps (RFC 7472), where a URI names none. */
export const IPP_DEFAULT_PORT = 631

/**
 * Where to connect for an `ipp:`/`ipps:` URI (or `http:`/`https:`), taken as it is: path
 * and query kept, no defaults but the port. Output devices check and normalize printer
 * URIs first (`parseIppUri`).
 */
export function exchangeTarget (uri: string): ExchangeTarget {
  const u = new URL(uri)
  const secure = u.protocol === 'ipps:' || u.protocol === 'https:'
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const defaultPort = u.protocol === 'http:' ? 80 : u.protocol === 'https:' ? 443 : IPP_DEFAULT_PORT
  return { protocol: secure ? 'https:' : 'http:', host, port: u.port === '' ? defaultPort : Number(u.port), path: u.pathname + u.search }
}

/** Limits of one exchange; all in milliseconds. */
export interface ExchangeLimits {
  /** Until the TCP (and TLS) connection is up. */
  connectTimeoutMs: number
  /** Longest silence on the socket once connected (upload stalls, slow answers). */
  idleTimeoutMs: number
  /** Whole exchange, when bounded (small operations); omitted for document uploads. */
  totalTimeoutMs?: number
}

/** Parts of `err` worth keeping in a message: `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:631`. */
function describe (err: unknown): { code: string, text: string } {
  const e = err as NodeJS.ErrnoException
  return { code: typeof e?.code === 'string' ? e.code : 'EUNKNOWN', text: e?.message ?? String(err) }
}

/**
 * Sends `request` (and, when given, the document right after it: a file path is streamed
 * with chunked transfer encoding, without reading it into memory; bytes are sent with a
 * Content-Length) and returns the decoded IPP response. The one IPP client of printmesh:
 * output devices, the benchmarks' load generator and the process simulator use it.
 *
 * @throws {IppTransportError} network failure, timeout, abort or malformed response
 * @throws {IppHttpStatusError} HTTP status other than 200
 * @throws {DocumentReadError} the document could not be read
 */
export async function ippExchange (
  target: ExchangeTarget,
  request: IppMessage,
  limits: ExchangeLimits,
  signal: AbortSignal,
  document?: string | Uint8Array
): Promise<IppMessage> {
  const header = encodeMessage(request)
  const documentPath = typeof document === 'string' ? document : undefined
  const bytes = typeof document === 'string' ? undefined : document
  if (signal.aborted) throw new IppTransportError('aborted before connecting', 'connect', 'ABORTED', { cause: signal.reason })

  return await new Promise<IppMessage>((resolve, reject) => {
    let phase: ExchangePhase = 'connect'
    let settled = false
    let gotResponse = false
    let sourceError: unknown
    const timers: NodeJS.Timeout[] = []

    const options: https.RequestOptions = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: 'POST',
      agent: target.agent ?? false,
      headers: documentPath === undefined
        ? { 'content-type': 'application/ipp', 'content-length': header.length + (bytes?.length ?? 0) }
        : { 'content-type': 'application/ipp', 'transfer-encoding': 'chunked' },
      ...(target.protocol === 'https:' ? { rejectUnauthorized: target.tls?.rejectUnauthorized ?? true, ...(target.tls?.ca !== undefined ? { ca: target.tls.ca } : {}) } : {})
    }
    const req = target.protocol === 'https:' ? https.request(options) : http.request(options)

    const cleanup = (): void => {
      for (const t of timers) clearTimeout(t)
      signal.removeEventListener('abort', onAbort)
    }
    const finish = (result: { ok: IppMessage } | { err: Error }): void => {
      if (settled) return
      settled = true
      cleanup()
      if ('ok' in result) {
        resolve(result.ok)
      } else {
        req.destroy()
        reject(result.err)
      }
    }
    const fail = (err: unknown, code?: string): void => {
      if (sourceError !== undefined && documentPath !== undefined) {
        finish({ err: new DocumentReadError(documentPath, { cause: sourceError }) })
        return
      }
      const d = describe(err)
      finish({ err: new IppTransportError(`${phase}: ${d.text}`, phase, code ?? d.code, { cause: err }) })
    }
    const onAbort = (): void => { fail(signal.reason ?? new Error('aborted'), 'ABORTED') }
    signal.addEventListener('abort', onAbort, { once: true })

    timers.push(setTimeout(() => {
      if (phase === 'connect') fail(new Error(`no connection within ${limits.connectTimeoutMs} ms`), 'TIMEOUT')
    }, limits.connectTimeoutMs))
    if (limits.totalTimeoutMs !== undefined) {
      const total = limits.totalTimeoutMs
      timers.push(setTimeout(() => { fail(new Error(`no complete answer within ${total} ms`), 'TIMEOUT') }, total))
    }

    req.on('socket', (socket) => {
      const connectedEvent = target.protocol === 'https:' ? 'secureConnect' : 'connect'
      socket.once(connectedEvent, () => {
        if (phase === 'connect') phase = 'send'
        // Idle limit starts once connected: the connect phase has its own timer.
        req.setTimeout(limits.idleTimeoutMs, () => { fail(new Error(`socket idle for ${limits.idleTimeoutMs} ms`), 'TIMEOUT') })
      })
    })
    req.on('error', (err) => { fail(err) })
    // 'finish': every byte of the request has been handed to the operating system.
    req.on('finish', () => { if (phase !== 'connect') phase = 'response' })

    req.on('response', (res) => {
      gotResponse = true
      if (res.statusCode !== 200) {
        res.resume()
        finish({ err: new IppHttpStatusError(res.statusCode ?? 0, phase) })
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_RESPONSE_BYTES) {
          fail(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`), 'BAD_RESPONSE')
          return
        }
        chunks.push(chunk)
      })
      res.on('error', (err) => { fail(err) })
      res.on('end', () => {
        try {
          finish({ ok: decodeMessage(Buffer.concat(chunks)).message })
        } catch (err) {
          fail(err, 'BAD_RESPONSE')
        }
      })
    })

    if (documentPath === undefined) {
      if (bytes !== undefined) req.write(header)
      req.end(bytes ?? header)
      return
    }
    req.write(header)
    const source = createReadStream(documentPath)
    source.on('error', (err) => { sourceError = err })
    pipeline(source, req).catch((err: unknown) => {
      // A printer may answer (e.g. with an error status) before reading the whole
      // document and close; then the upload error is expected and the answer counts.
      if (!gotResponse) fail(err)
    })
  })
}
