/**
 * The site's IPP endpoint (intake): IPP/1.1 and 2.x over HTTP on node:http, streaming
 * documents into the job domain.
 *
 * Paths: `/ipp/print` (the default queue: the first of `domain.queues()`),
 * `/ipp/print/<queue>`, `/printers/<queue>` (what CUPS clients use with `lp -h host:port
 * -d NAME`) and `/jobs/<id>` (job URIs). Anything else is HTTP 404; GET on a queue path
 * returns a small HTML page; only POST with `Content-Type: application/ipp` speaks IPP.
 *
 * Invariants:
 * 1. Every request gets an IPP answer with the right status, or an HTTP error when it is
 *    not IPP at all; nothing a client sends can crash the process.
 * 2. The IPP message is read incrementally and bounded ({@link MAX_HEADER}); document
 *    bytes are streamed, never buffered whole.
 * 3. A job is acknowledged (successful-ok) only after the domain made it durable.
 * 4. Request validation common to all operations happens here, once; each operation
 *    lives in `operations/`, and domain outcomes map to IPP statuses in `mapping.ts`.
 * 5. Credentials (HTTP Basic or Bearer, `auth.ts`) are checked here, once, by the node's
 *    authenticator, before anything else about the request; wrong ones are answered 401,
 *    too many failed ones client-error-forbidden. Operations say what needs a login
 *    (client-error-not-authenticated), which goes out as HTTP 401 with a Basic challenge.
 * 6. What the intake takes is bounded (`limits`, devices/jobs/intake-limits.ts): bodies the
 *    server decompresses by ratio (decompression.ts), documents one address sends at once
 *    (server-error-busy with Retry-After); job creation hands the rest to the domain with
 *    the client's address. Every refusal by a limit is told to `onRefused`.
 *
 * Startable the libp2p way: start twice and stop without start are safe; stop closes
 * idle keep-alive connections at once and the rest after a grace period.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import type { Readable } from 'node:stream'
import { createGunzip, createInflate } from 'node:zlib'
import type { Logger } from 'pino'
import { TlsPort, type TlsMaterial } from '../../transports/tls-port.ts'
import type { Actor, JobDomain, QueueInfo } from '../jobs/types.ts'
import { IntakeBusyError, IntakeLimitError, intakeLimits, type IntakeLimitName, type IntakeLimits } from '../jobs/intake-limits.ts'
import { boundedInflate } from './decompression.ts'
import { basicChallenge, credentialsOf, DEFAULT_REALM, type AnonymousJobList, type IppAuthenticator } from './auth.ts'
import { CHARSETS, NATURAL_LANGUAGE } from './capabilities.ts'
import { IppStatusError } from './errors.ts'
import { ippStatusOf } from './mapping.ts'
import { OPERATIONS, JOB_OPERATIONS, SERVER_OPERATIONS, SERVER_WIDE_OPERATIONS, type OperationContext, type OperationResult, type ServerUris } from './operations/index.ts'
import { ANONYMOUS } from './operations/common.ts'
import { readIppRequest, RequestReadError, RequestAbortedError, MAX_HEADER, type IppHead } from './request-stream.ts'
import {
  Tag, Status, Op, attr, encodeMessage, opName, statusName, stringValue,
  type IppAttribute, type IppGroup, type IppMessage
} from './wire.ts'

export { MAX_HEADER } from './request-stream.ts'

/** A large document over a slow link may take this long; longer requests are cut. */
const REQUEST_TIMEOUT_MS = 30 * 60_000
/** Idle keep-alive connections are closed after this (CUPS clients reconnect freely). */
const KEEP_ALIVE_TIMEOUT_MS = 10_000
/** A body's rate is sampled this many times per window (the window slides by one sample). */
const RATE_SAMPLES = 6

/** What the IPP port asks of a client's pace, so slow senders cannot hold connections. */
export interface IppClientLimits {
  /** The request line and headers must have arrived within this. */
  headersTimeoutMs: number
  /** A request body must arrive at least this fast on average over `rateWindowMs`, else the connection is closed. */
  minBytesPerSecond: number
  rateWindowMs: number
}

export const DEFAULT_CLIENT_LIMITS: Readonly<IppClientLimits> = {
  headersTimeoutMs: 10_000, // headers are a few hundred bytes: a real client sends them at once
  minBytesPerSecond: 1024, // a branch link at its worst moves far more; a byte every 2 s does not
  rateWindowMs: 30_000 // long enough for a client's pause (a laptop's Wi-Fi roaming), short enough not to hold sockets
}
/** On stop, requests in flight get this long to finish before their connections are cut. */
const STOP_GRACE_MS = 5_000
/** Unread request bytes discarded after an early answer to keep the connection; beyond, it is closed. */
const MAX_DRAIN_BYTES = 16 * 1024 * 1024
/** requesting-user-name is name(255) in RFC 8011. */
const MAX_USER_OCTETS = 255
/** status-message is text(255) in RFC 8011. */
const MAX_STATUS_MESSAGE_CHARS = 255
/** The reply version for a request whose version is not supported. */
const FALLBACK_VERSION = { major: 1, minor: 1 }
/** Host header syntax accepted for URIs handed back (anything else falls back to the bind host). */
const HOST_HEADER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/
/** Operations that carry a document: each counts as an upload of its address while it runs. */
const DOCUMENT_OPERATIONS: ReadonlySet<number> = new Set([Op.PrintJob, Op.SendDocument])
/**
 * ipps:// offers TLS up to 1.2: Debian 12's CUPS clients (libcups 2.4 on GnuTLS: ipptool, lp,
 * the ipp backend) read no answer from Node's TLS 1.3 (tried: "0 bytes in response", retried
 * until their timeout, with and without session tickets); TLS 1.2 serves them. DNS-SD says so (`TLS=1.2`).
 */
const IPPS_MAX_TLS = 'TLSv1.2'
/** Retry-After of a server-error-busy answer: an ordinary document is received and analysed in seconds. */
const BUSY_RETRY_AFTER_S = 5

export interface IppServerInit {
  domain: JobDomain
  logger: Logger
  /** Address to bind. */
  host: string
  /** Port to bind; 0 picks a free one (read it back from `port`). */
  port: number
  /** Host name put into printer and job URIs; default: the Host the client used. */
  uriHost?: string
  /** Pace asked of clients (default {@link DEFAULT_CLIENT_LIMITS}). */
  clientLimits?: Partial<IppClientLimits>
  /** Told of every answered IPP request: operation and status names, seconds since its first byte (intake latency, for metrics). */
  onAnswered?: (operation: string, status: string, seconds: number) => void
  /**
   * Checks the credentials a request carries (the node's directory and login limits).
   * Without it nobody can authenticate: job control, and intake on queues with
   * `authenticatedIntake`, are refused.
   */
  authenticate?: IppAuthenticator
  /** The realm of the Basic challenge (default {@link DEFAULT_REALM}). */
  realm?: string
  /** What Get-Jobs shows clients that did not authenticate (default `private`). */
  anonymousJobs?: AnonymousJobList
  /** What the intake takes, over the defaults (devices/jobs/intake-limits.ts `DEFAULT_INTAKE_LIMITS`). */
  limits?: Partial<IntakeLimits>
  /** Told of every request refused by an intake limit, by the limit's name (for metrics). */
  onRefused?: (limit: IntakeLimitName) => void
  /**
   * The certificate for `ipps://` on the same port (plain `ipp://` stays open for clients
   * without TLS, but takes no credentials while TLS is on). Without it: `ipp://` only.
   */
  tls?: TlsMaterial
}

export interface IppServer {
  start (): Promise<void>
  stop (): Promise<void>
  /** The bound port once started (the configured one before). */
  readonly port: number
  /** Presents `material` to new `ipps://` connections from now on (a renewed certificate); turns TLS on when it was off. */
  setTls (material: TlsMaterial): void
}

/** Answer to credentials, or to an operation that needs them, sent over plain ipp:// while ipps:// is on. */
const USE_TLS_MESSAGE = 'log in over ipps:// (TLS): this server takes no username and PIN in the clear'

/**
 * Which queue (and job) a request path names, and the URI style the client used.
 * `byPrinterUri`: the path (`/`) names nothing, so printer-uri decides, as in CUPS, whose
 * clients POST everything to `/`.
 */
interface Route { queue: QueueInfo, pathJobId?: number, style: 'ipp' | 'printers', byPrinterUri?: boolean, serverWide?: boolean }

function routeOf (pathname: string, domain: JobDomain): Route | undefined {
  const path = pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname
  const defaultQueue = domain.queues()[0]
  if (defaultQueue === undefined) return undefined
  if (path === '/ipp/print') return { queue: defaultQueue, style: 'ipp' }
  if (path === '/') return { queue: defaultQueue, style: 'ipp', byPrinterUri: true }
  const jobs = /^\/jobs(?:\/(\d{1,10}))?$/.exec(path)
  if (jobs !== null) return { queue: defaultQueue, style: 'ipp', ...(jobs[1] !== undefined ? { pathJobId: Number(jobs[1]) } : {}) }
  const named = /^\/(ipp\/print|printers)\/([^/]+)$/.exec(path)
  if (named === null) return undefined
  let name: string
  try { name = decodeURIComponent(named[2]) } catch { return undefined }
  const queue = domain.queue(name)
  if (queue === undefined) return undefined
  return { queue, style: named[1] === 'printers' ? 'printers' : 'ipp' }
}

function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function bracketed (host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/** The client's address as its quotas count it: IPv4 clients of a dual-stack socket as plain IPv4. */
function clientAddress (req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? 'unknown'
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice('::ffff:'.length) : a
}

/** The intake limit behind an error (itself, or the domain error an IPP status answers), if any. */
function intakeRefusal (err: unknown): IntakeLimitError | undefined {
  if (err instanceof IntakeLimitError) return err
  const cause = err instanceof Error ? err.cause : undefined
  return cause instanceof IntakeLimitError ? cause : undefined
}

function truncate (s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`
}

/** The parts of a request every operation needs, checked (RFC 8011 4.1). */
interface Validated {
  operation: IppAttribute[]
  jobTemplate: IppAttribute[]
  user: string
}

/**
 * Common checks, in the order RFC 8011 and ipptool's conformance tests expect: version,
 * request-id, the operation group and its first two attributes, charset, operation,
 * target, requesting-user-name.
 */
function validate (msg: IppMessage): Validated {
  if (msg.version.major !== 1 && msg.version.major !== 2) {
    throw new IppStatusError(Status.serverErrorVersionNotSupported, `IPP version ${msg.version.major}.${msg.version.minor} is not supported`)
  }
  if (msg.requestId <= 0) throw new IppStatusError(Status.clientErrorBadRequest, 'request-id must be greater than 0')
  const first = msg.groups[0]
  if (first === undefined || first.tag !== Tag.operationAttributes) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'the request must start with the operation attributes')
  }
  if (msg.groups.filter((g) => g.tag === Tag.operationAttributes).length > 1) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'more than one operation attributes group')
  }
  for (const group of msg.groups) {
    const seen = new Set<string>()
    for (const a of group.attributes) {
      if (seen.has(a.name)) throw new IppStatusError(Status.clientErrorBadRequest, `attribute ${a.name} appears twice in one group`)
      seen.add(a.name)
    }
  }
  const [charset, language] = first.attributes
  if (charset?.name !== 'attributes-charset' || charset.values.length !== 1 || charset.values[0].tag !== Tag.charset) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'the first operation attribute must be attributes-charset')
  }
  if (language?.name !== 'attributes-natural-language' || language.values.length !== 1 || language.values[0].tag !== Tag.naturalLanguage) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'the second operation attribute must be attributes-natural-language')
  }
  const cs = (stringValue(charset) ?? '').toLowerCase()
  if (!CHARSETS.includes(cs)) {
    throw new IppStatusError(Status.clientErrorCharsetNotSupported, `charset ${cs} is not supported`, [attr('attributes-charset', Tag.charset, cs)])
  }
  if (!OPERATIONS.has(msg.code)) {
    throw new IppStatusError(Status.serverErrorOperationNotSupported, `operation ${opName(msg.code)} is not supported`)
  }
  const find = (name: string): IppAttribute | undefined => first.attributes.find((a) => a.name === name)
  const printerUri = find('printer-uri')
  const jobUri = find('job-uri')
  if (printerUri !== undefined && (printerUri.values.length !== 1 || printerUri.values[0].tag !== Tag.uri)) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'printer-uri must be a single uri')
  }
  if (JOB_OPERATIONS.has(msg.code)) {
    if (jobUri === undefined && (printerUri === undefined || find('job-id') === undefined)) {
      throw new IppStatusError(Status.clientErrorBadRequest, 'missing job-uri, or printer-uri and job-id')
    }
  } else if (printerUri === undefined && !SERVER_OPERATIONS.has(msg.code)) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'missing printer-uri')
  }
  let user = ANONYMOUS
  const userAttr = find('requesting-user-name')
  if (userAttr !== undefined) {
    const tag = userAttr.values[0]?.tag
    if (userAttr.values.length !== 1 || (tag !== Tag.nameWithoutLanguage && tag !== Tag.nameWithLanguage)) {
      throw new IppStatusError(Status.clientErrorBadRequest, 'requesting-user-name must be a single name')
    }
    const name = (stringValue(userAttr) ?? '').trim()
    if (Buffer.byteLength(name, 'utf8') > MAX_USER_OCTETS) throw new IppStatusError(Status.clientErrorRequestValueTooLong, 'requesting-user-name is too long', [userAttr])
    if (name !== '') user = name
  }
  const jobTemplate = msg.groups.filter((g) => g.tag === Tag.jobAttributes).flatMap((g) => g.attributes)
  return { operation: first.attributes, jobTemplate, user }
}

/** An operation's result and the HTTP status and headers it goes out with. */
interface Answer {
  result: OperationResult
  httpStatus: number
  headers?: Record<string, string>
}

/** Who a request proved to be (no actor: it sent no credentials), or the answer refusing its credentials. */
type Requester = { actor?: Actor, refusal?: undefined } | { refusal: Answer }

/** Builds the response message: operation group, unsupported group, then the result groups. */
function response (version: { major: number, minor: number }, requestId: number, result: OperationResult): IppMessage {
  const operation: IppAttribute[] = [
    attr('attributes-charset', Tag.charset, 'utf-8'),
    attr('attributes-natural-language', Tag.naturalLanguage, NATURAL_LANGUAGE)
  ]
  if (result.message !== undefined && result.message !== '') {
    operation.push(attr('status-message', Tag.textWithoutLanguage, truncate(result.message, MAX_STATUS_MESSAGE_CHARS)))
  }
  const groups: IppGroup[] = [{ tag: Tag.operationAttributes, attributes: operation }]
  if (result.unsupported !== undefined && result.unsupported.length > 0) groups.push({ tag: Tag.unsupportedAttributes, attributes: result.unsupported })
  groups.push(...(result.groups ?? []))
  return { version, code: result.status, requestId, groups }
}

/** Creates the IPP server; nothing listens until `start()`. */
export function createIppServer (init: IppServerInit): IppServer {
  const { domain } = init
  const log = init.logger.child({ component: 'ipp' })
  const limits: IppClientLimits = { ...DEFAULT_CLIENT_LIMITS, ...init.clientLimits }
  const challenge = basicChallenge(init.realm ?? DEFAULT_REALM)
  const anonymousJobs: AnonymousJobList = init.anonymousJobs ?? 'private'
  const intake: IntakeLimits = intakeLimits(init.limits)
  /** Documents each address is sending now (Print-Job, Send-Document running). */
  const uploads = new Map<string, number>()

  /**
   * Closes the connection of a request whose body arrives slower than the minimum rate over
   * the last window. Not judged: the first window, and any moment the server itself is not
   * reading (its buffer of the body is full: the slowness is ours, not the client's).
   */
  function enforceRate (req: IncomingMessage): void {
    const socket = req.socket
    const samples = [socket.bytesRead]
    const minimum = limits.minBytesPerSecond * limits.rateWindowMs / 1000
    const timer = setInterval(() => {
      if (req.complete || req.destroyed) { clearInterval(timer); return }
      if (req.readableLength >= req.readableHighWaterMark) { samples.length = 0; samples.push(socket.bytesRead); return }
      samples.push(socket.bytesRead)
      if (samples.length <= RATE_SAMPLES) return
      const received = samples[samples.length - 1] - samples[0]
      samples.shift()
      if (received >= minimum) return
      clearInterval(timer)
      log.info({ remote: socket.remoteAddress, bytes: received, windowMs: limits.rateWindowMs }, 'client sent too slowly: connection closed')
      socket.destroy()
    }, limits.rateWindowMs / RATE_SAMPLES)
    timer.unref()
    req.once('close', () => clearInterval(timer))
  }
  let server: TlsPort | undefined
  /** The certificate ipps:// presents; undefined while TLS is off. */
  let tls: TlsMaterial | undefined = init.tls
  let starting: Promise<void> | undefined
  let boundPort = init.port

  /** host:port for URIs handed back to this client. */
  function authority (req: IncomingMessage): string {
    if (init.uriHost !== undefined) return `${bracketed(init.uriHost)}:${boundPort}`
    const h = req.headers.host
    const m = h === undefined ? null : HOST_HEADER.exec(h)
    if (m !== null && h !== undefined) return m[2] !== undefined ? h : `${h}:${boundPort}`
    return `${bracketed(init.host)}:${boundPort}`
  }

  /** Whether the request came over TLS. */
  function encrypted (req: IncomingMessage): boolean {
    return (req.socket as Partial<TLSSocket>).encrypted === true
  }

  /** Whether TLS is on and this request came without it: no credentials may be asked for or taken. */
  function inTheClear (req: IncomingMessage): boolean {
    return tls !== undefined && !encrypted(req)
  }

  function urisFor (req: IncomingMessage, route: Route): ServerUris {
    const auth = authority(req)
    const secure = encrypted(req)
    const defaultQueue = domain.queues()[0]?.name
    const pathFor = (queue: string): string => {
      if (route.style === 'printers') return `/printers/${encodeURIComponent(queue)}`
      return queue === defaultQueue ? '/ipp/print' : `/ipp/print/${encodeURIComponent(queue)}`
    }
    return {
      printerUri: (queue) => `${secure ? 'ipps' : 'ipp'}://${auth}${pathFor(queue)}`,
      jobUri: (id) => `${secure ? 'ipps' : 'ipp'}://${auth}/jobs/${id}`,
      moreInfoUri: (queue) => `${secure ? 'https' : 'http'}://${auth}${pathFor(queue)}`,
      // as cupsd does: the URI of the connection's own scheme only (libcups keeps a queue's printer-uri-supported
      // as one string and posts to it, so a list becomes one broken path); over plain ipp:// while TLS is on no
      // password is taken, so only requesting-user-name
      printerUrisSupported: (queue) => [secure
        ? { uri: `ipps://${auth}${pathFor(queue)}`, security: 'tls', authentication: 'basic' }
        : { uri: `ipp://${auth}${pathFor(queue)}`, security: 'none', authentication: tls === undefined ? 'basic' : 'requesting-user-name' }]
    }
  }

  function httpError (res: ServerResponse, code: number, text: string, headers: Record<string, string> = {}): void {
    res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', ...headers })
    res.end(`${text}\n`)
  }

  function sendIpp (res: ServerResponse, msg: IppMessage, httpStatus = 200, headers: Record<string, string> = {}): void {
    const bytes = encodeMessage(msg)
    res.writeHead(httpStatus, { 'Content-Type': 'application/ipp', 'Content-Length': String(bytes.length), ...headers })
    res.end(bytes)
  }

  /** A result as it goes out: a demand for a login is HTTP 401 with the Basic challenge (what makes CUPS clients ask and retry). */
  function answerOf (result: OperationResult): Answer {
    if (result.status === Status.clientErrorNotAuthenticated) return { result, httpStatus: 401, headers: { 'WWW-Authenticate': challenge } }
    return { result, httpStatus: 200 }
  }

  /**
   * Checks the request's credentials, if it carries any. Wrong or unreadable ones are
   * refused with 401, so the client may ask again; throttled ones with the IPP status
   * client-error-forbidden over HTTP 200 (and Retry-After), the one answer CUPS clients
   * show as it is ("too many failed logins…") instead of asking for the password again or
   * printing a bare HTTP status. Credentials are never silently ignored, so a client is not
   * left believing it acts as someone it is not.
   */
  async function requesterOf (req: IncomingMessage, opLog: Logger): Promise<Requester> {
    const credentials = credentialsOf(req.headers.authorization)
    if (credentials === undefined) return {}
    const wrong = (message: string): Requester => ({ refusal: answerOf({ status: Status.clientErrorNotAuthenticated, message }) })
    if (inTheClear(req)) {
      opLog.warn({ remote: req.socket.remoteAddress }, 'IPP credentials sent in the clear while TLS is on: refused unchecked')
      return { refusal: { result: { status: Status.clientErrorNotAuthenticated, message: USE_TLS_MESSAGE }, httpStatus: 200 } }
    }
    if (credentials === 'malformed') return wrong('the Authorization header must be Basic (username and PIN) or Bearer (the admin token)')
    if (init.authenticate === undefined) return wrong('this server checks no credentials')
    const address = req.socket.remoteAddress ?? ''
    const outcome = await init.authenticate(credentials, address)
    if (outcome.ok) return { actor: outcome.actor }
    const user = credentials.scheme === 'basic' ? credentials.user : undefined
    if (outcome.refusal === 'throttled') {
      opLog.warn({ user, remote: address, retryAfterSeconds: outcome.retryAfterSeconds }, 'IPP login refused: too many failed logins')
      return {
        refusal: {
          result: { status: Status.clientErrorForbidden, message: `too many failed logins; try again in ${outcome.retryAfterSeconds} seconds` },
          httpStatus: 200,
          headers: { 'Retry-After': String(outcome.retryAfterSeconds) }
        }
      }
    }
    opLog.warn({ user, remote: address }, credentials.scheme === 'basic' ? 'IPP login failed: wrong username or PIN' : 'IPP login failed: wrong admin token')
    return wrong(credentials.scheme === 'basic' ? 'wrong username or PIN' : 'wrong admin token')
  }

  /** After an answer that did not read the whole body: discard the rest (bounded) so keep-alive works. */
  function drainAfterResponse (req: IncomingMessage, res: ServerResponse): void {
    res.once('finish', () => {
      if (req.readableEnded || req.destroyed) return
      req.unpipe()
      let discarded = 0
      req.on('data', (chunk: Buffer) => {
        discarded += chunk.length
        if (discarded > MAX_DRAIN_BYTES) req.socket.destroy()
      })
      req.resume()
    })
  }

  function page (res: ServerResponse, route: Route, req: IncomingMessage): void {
    const q = route.queue
    const uri = urisFor(req, route).printerUri(q.name)
    const body = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(q.name)}</title></head><body>` +
      `<h1>${escapeHtml(q.name)}</h1><p>${escapeHtml(q.info)}</p><p>${escapeHtml(q.location)}</p>` +
      `<p>IPP: <code>${escapeHtml(uri)}</code>${q.hold ? ' — jobs are held for release at a printer' : ''}</p></body></html>\n`
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /** The request body with HTTP Content-Encoding undone (the IPP message may be compressed too), bounded by the decompression ratio. */
  function decodedBody (req: IncomingMessage): Readable | undefined {
    const coding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (coding === 'identity' || coding === '') return req
    const inflater = coding === 'gzip' || coding === 'x-gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : undefined
    if (inflater === undefined) return undefined
    return boundedInflate(req, inflater, intake.maxDecompressionRatio) // errors surface on the stream returned, where the reader sees them
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    let pathname: string
    try { pathname = new URL(req.url ?? '/', 'http://localhost').pathname } catch { httpError(res, 400, 'bad request path'); return }
    const route = routeOf(pathname, domain)
    if (route === undefined) { httpError(res, 404, 'not found'); return }
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (route.byPrinterUri === true) httpError(res, 404, 'not found')
      else page(res, route, req)
      return
    }
    if (req.method !== 'POST') { httpError(res, 405, 'method not allowed', { Allow: 'GET, HEAD, POST' }); return }
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    if (type !== 'application/ipp') { drainAfterResponse(req, res); httpError(res, 400, 'IPP requests need Content-Type: application/ipp'); return }
    const body = decodedBody(req)
    if (body === undefined) { drainAfterResponse(req, res); httpError(res, 415, `unsupported Content-Encoding ${String(req.headers['content-encoding'])}`); return }

    let message: IppMessage
    let documentData: Readable
    try {
      const read = await readIppRequest(body, MAX_HEADER)
      message = read.message
      documentData = read.body
    } catch (err) {
      if (!(err instanceof RequestReadError)) throw err
      answerUnreadable(req, res, err)
      return
    }
    drainAfterResponse(req, res)
    const requestId = message.requestId
    const version = message.version.major === 1 || message.version.major === 2 ? message.version : FALLBACK_VERSION
    const opLog = log.child({ op: opName(message.code), requestId })
    let answer: Answer
    try {
      answer = await operate(req, route, message, documentData, opLog)
    } catch (err) {
      if (err instanceof RequestAbortedError) {
        opLog.info('the client went away before the document was complete')
        return
      }
      const refusal = intakeRefusal(err)
      answer = answerOf(errorResult(err, refusal === undefined ? opLog : opLog.child({ limit: refusal.limit, remote: clientAddress(req) })))
      if (refusal !== undefined) {
        init.onRefused?.(refusal.limit)
        if (refusal instanceof IntakeBusyError) answer.headers = { ...answer.headers, 'Retry-After': String(refusal.retryAfterSeconds) }
      }
    }
    if (res.destroyed) return
    const { result } = answer
    opLog.debug({ status: statusName(result.status), http: answer.httpStatus }, 'answered')
    sendIpp(res, response(version, requestId, result), answer.httpStatus, answer.headers)
    // unknown operation ids name no series of their own: a client cannot grow the metrics without bound
    init.onAnswered?.(OPERATIONS.has(message.code) ? opName(message.code) : 'unsupported', statusName(result.status), (performance.now() - started) / 1000)
  }

  /** Checks who asks and what, then runs the operation. */
  async function operate (req: IncomingMessage, route: Route, message: IppMessage, body: Readable, opLog: Logger): Promise<Answer> {
    const requester = await requesterOf(req, opLog)
    if (requester.refusal !== undefined) return requester.refusal
    const answer = await run(req, route, message, body, opLog, requester)
    // over plain ipp:// while ipps:// is on, a login is never asked for (a 401 would make clients send the PIN in the clear)
    if (answer.httpStatus === 401 && inTheClear(req)) return { result: { ...answer.result, message: `${answer.result.message ?? 'authentication required'}; ${USE_TLS_MESSAGE}` }, httpStatus: 200 }
    return answer
  }

  /** Runs the operation for the requester already checked. */
  async function run (req: IncomingMessage, route: Route, message: IppMessage, body: Readable, opLog: Logger, requester: { actor?: Actor }): Promise<Answer> {
    const v = validate(message)
    const target = route.byPrinterUri === true ? routeOfPrinterUri(v.operation, message.code) ?? route : route
    const address = clientAddress(req)
    const ctx: OperationContext = {
      request: message,
      operation: v.operation,
      jobTemplate: v.jobTemplate,
      queue: target.queue,
      ...(target.serverWide === true ? { serverWide: true } : {}),
      ...(target.pathJobId !== undefined ? { pathJobId: target.pathJobId } : {}),
      user: requester.actor?.user ?? v.user, // the authenticated user wins over the name a client claims
      ...(requester.actor !== undefined ? { actor: requester.actor } : {}),
      anonymousJobs,
      body,
      address,
      limits: intake,
      domain,
      uris: urisFor(req, target),
      logger: opLog,
      now: Date.now
    }
    const handler = OPERATIONS.get(message.code)
    if (handler === undefined) throw new Error(`no handler for ${opName(message.code)}`) // validate() admits only handled operations
    if (!DOCUMENT_OPERATIONS.has(message.code)) return answerOf(await handler(ctx))
    const sending = uploads.get(address) ?? 0
    if (sending >= intake.maxUploadsPerAddress) {
      throw new IntakeBusyError(`busy: ${sending} documents are being received from ${address} now, the most one address may send at once; try again in ${BUSY_RETRY_AFTER_S} seconds`, BUSY_RETRY_AFTER_S)
    }
    uploads.set(address, sending + 1)
    try {
      return answerOf(await handler(ctx))
    } finally {
      const left = (uploads.get(address) ?? 1) - 1
      if (left > 0) uploads.set(address, left)
      else uploads.delete(address)
    }
  }

  /**
   * For requests POSTed to `/`: the queue printer-uri names, or the server itself (printer-uri
   * `ipp://host/`, or none for the CUPS server operations) for the operations that may name it;
   * client-error-not-found otherwise.
   */
  function routeOfPrinterUri (operation: IppAttribute[], code: number): Route | undefined {
    const uri = stringValue(operation.find((a) => a.name === 'printer-uri'))
    const serverWide = SERVER_WIDE_OPERATIONS.has(code)
    const server = (): Route | undefined => {
      const queue = domain.queues()[0]
      return queue === undefined ? undefined : { queue, style: 'printers', serverWide: true }
    }
    if (uri === undefined) return serverWide ? server() : undefined // a job operation by job-uri: the default route serves
    let path: string
    try { path = new URL(uri).pathname } catch { throw new IppStatusError(Status.clientErrorBadRequest, `printer-uri ${uri} is not a URI`) }
    const found = path === '/' || path === '' ? (serverWide ? server() : undefined) : routeOf(path, domain)
    if (found === undefined) throw new IppStatusError(Status.clientErrorNotFound, `no queue at ${uri}`)
    return found
  }

  function errorResult (err: unknown, opLog: Logger): OperationResult {
    if (err instanceof IppStatusError) {
      opLog.info({ status: statusName(err.status), reason: err.message }, 'request refused')
      return { status: err.status, message: err.message, unsupported: err.unsupported, groups: err.groups }
    }
    const status = ippStatusOf(err)
    if (status !== undefined) {
      opLog.info({ status: statusName(status), reason: (err as Error).message }, 'request refused')
      return { status, message: (err as Error).message }
    }
    opLog.error({ err }, 'IPP operation failed')
    return { status: Status.serverErrorInternalError, message: 'internal error' }
  }

  function answerUnreadable (req: IncomingMessage, res: ServerResponse, err: RequestReadError): void {
    const head: IppHead | undefined = err.head
    log.info({ failure: err.failure, reason: err.message, requestId: head?.requestId }, 'unreadable IPP request')
    if (err.failure === 'aborted') { req.destroy(); return }
    if (err.failure === 'too-large') res.setHeader('Connection', 'close')
    else drainAfterResponse(req, res)
    if (head === undefined) {
      httpError(res, err.failure === 'too-large' ? 413 : 400, err.message)
    } else {
      const status = err.failure === 'too-large' ? Status.clientErrorRequestEntityTooLarge : Status.clientErrorBadRequest
      const version = head.major === 1 || head.major === 2 ? { major: head.major, minor: head.minor } : FALLBACK_VERSION
      sendIpp(res, response(version, head.requestId, { status, message: err.message }))
    }
    if (err.failure === 'too-large') res.once('finish', () => req.socket.destroySoon())
  }

  function onRequest (req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'POST') enforceRate(req)
    handle(req, res).catch((err: unknown) => {
      log.error({ err }, 'IPP request failed')
      if (!res.headersSent) httpError(res, 500, 'internal error')
      else res.destroy()
    })
  }

  return {
    get port () { return boundPort },

    setTls (material) {
      server?.setTls(material) // throws for a key that does not fit the certificate, before anything changes
      tls = material
    },

    async start () {
      if (server !== undefined) return await starting
      const s = new TlsPort({
        http: {
          requestTimeout: REQUEST_TIMEOUT_MS,
          headersTimeout: limits.headersTimeoutMs,
          // Node checks the headers timeout on this period; a quarter of it keeps the cut close to the limit
          connectionsCheckingInterval: Math.max(1, Math.floor(limits.headersTimeoutMs / 4)),
          keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS
        },
        ...(tls !== undefined ? { tls } : {}),
        plain: 'serve', // ipp:// stays for clients without TLS; it takes no credentials while TLS is on
        maxVersion: IPPS_MAX_TLS
      }, onRequest)
      s.on('clientError', (err, socket) => {
        log.debug({ err: err.message }, 'malformed HTTP request')
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
        else socket.destroy()
      })
      server = s
      starting = new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => { server = undefined; reject(err) }
        s.once('error', onError)
        s.listen(init.port, init.host, () => {
          s.off('error', onError)
          s.on('error', (err) => log.error({ err }, 'IPP server error'))
          boundPort = (s.address() as AddressInfo).port
          log.info({ host: init.host, port: boundPort, tls: tls !== undefined }, 'IPP server listening')
          resolve()
        })
      })
      await starting
    },

    async stop () {
      const s = server
      if (s === undefined) return
      await starting?.catch(() => {})
      server = undefined
      starting = undefined
      const closed = new Promise<void>((resolve) => s.close(() => resolve()))
      s.closeIdleConnections()
      const grace = setTimeout(() => {
        log.warn('closing IPP connections still busy after the grace period')
        s.closeAllConnections()
      }, STOP_GRACE_MS)
      try {
        await closed
      } finally {
        clearTimeout(grace)
      }
      log.info('IPP server stopped')
    }
  }
}
