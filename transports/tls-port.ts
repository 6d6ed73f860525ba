/**
 * One TCP port for HTTP and HTTPS (so `ipp://` and `ipps://`, `http://` and `https://`),
 * as CUPS serves both on 631: the first byte of a connection tells a TLS handshake (0x16)
 * from plain HTTP. Plain connections go straight to an inner `http.Server`; TLS ones through
 * a `tls.Server` first, then to the same `http.Server`, so one request handler, one set of
 * timeouts (headers, request, keep-alive) and one connection list serve both.
 *
 * The certificate can be replaced while running ({@link TlsPort.setTls}): a node that gets its
 * mesh-CA certificate after it started, or renews it, keeps its port and its connections.
 *
 * @httptoolkit/httpolyglot does the same sniffing and was tried: its inner `http.Server`
 * never sees 'listening', so Node never starts the headers/request timeout checks that keep
 * slow clients off the IPP port, and it offers no way to close idle connections on stop.
 *
 * Node built-ins only.
 */
import { Server as HttpServer, type IncomingMessage, type RequestListener, type ServerOptions, type ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import { Server as TlsServer, TLSSocket, createSecureContext, type SecureContext, type SecureVersion } from 'node:tls'

/** First byte of a TLS record carrying a handshake (ClientHello): RFC 8446 §5.1, content type 22. */
const TLS_HANDSHAKE = 0x16

/** PEM key and certificate chain (leaf first) a port presents. */
export interface TlsMaterial {
  key: string
  cert: string
}

/** What a plain (unencrypted) connection gets while TLS is on. */
export type PlainPolicy =
  /** Served as usual: IPP clients that cannot do TLS keep printing. */
  | 'serve'
  /** A GET or HEAD is redirected to the same URL over https; anything else is answered 403. */
  | 'redirect'

export interface TlsPortOptions {
  /** Options of the inner `http.Server` (timeouts, keep-alive). */
  http?: ServerOptions
  /** The certificate to present; without it the port speaks plain HTTP only and TLS handshakes are closed. */
  tls?: TlsMaterial
  /** Plain connections while TLS is on (default `serve`). */
  plain?: PlainPolicy
  /** The newest TLS version offered (default: Node's, TLS 1.3). */
  maxVersion?: SecureVersion
}

/** Events of the inner servers a user of the port listens to as if it were an `http.Server`. */
const FORWARDED_EVENTS: ReadonlySet<string> = new Set(['request', 'clientError', 'checkContinue', 'checkExpectation', 'connect', 'tlsClientError'])
/** An RFC 2817 upgrade to TLS, as CUPS clients ask for it with `-E` on a port that is not 443 (`Upgrade: TLS/1.2,TLS/1.1,TLS/1.0`). */
const TLS_UPGRADE = /(^|,)\s*TLS\/1\.[0-3]\s*(,|$)/i

/**
 * A listening port that answers HTTP and HTTPS with one request handler. It is a
 * `net.Server` (listen, address, close) with the parts of `http.Server` that fastify and the
 * IPP server use: `closeIdleConnections`, `closeAllConnections`, the timeout properties, and
 * the request/clientError events.
 */
export class TlsPort extends NetServer {
  readonly http: HttpServer
  private readonly tlsServer: TlsServer
  private material: TlsMaterial | undefined
  /** The context of {@link material}, for connections upgraded to TLS (RFC 2817). */
  private context: SecureContext | undefined
  private readonly plain: PlainPolicy
  private readonly versions: { maxVersion?: SecureVersion }

  constructor (options: TlsPortOptions, handler: RequestListener) {
    super({ pauseOnConnect: true }, (socket) => { this.sniff(socket) })
    this.material = options.tls
    this.versions = options.maxVersion !== undefined ? { maxVersion: options.maxVersion } : {}
    if (options.tls !== undefined) this.context = createSecureContext({ key: options.tls.key, cert: options.tls.cert, ...this.versions })
    this.plain = options.plain ?? 'serve'
    this.http = new HttpServer(options.http ?? {}, (req, res) => {
      if (this.plain === 'redirect' && this.material !== undefined && !isEncrypted(req)) { redirectToHttps(req, res); return }
      handler(req, res)
    })
    this.tlsServer = new TlsServer({ ...(this.material !== undefined ? { key: this.material.key, cert: this.material.cert } : {}), ...this.versions }, (tlsSocket: TLSSocket) => {
      this.http.emit('connection', tlsSocket)
    })
    this.tlsServer.on('tlsClientError', (err, socket) => { socket.destroy(); this.http.emit('clientError', err, socket) })
    // listeners of request-level events belong on the inner http.Server, which emits them
    this.on('newListener', (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (typeof event === 'string' && FORWARDED_EVENTS.has(event)) this.http.on(event, listener)
    })
    this.on('removeListener', (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (typeof event === 'string' && FORWARDED_EVENTS.has(event)) this.http.off(event, listener)
    })
    // CUPS clients with -E (encryption required) ask to switch a plain connection to TLS (RFC 2817)
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => { this.upgrade(req, socket, head) })
    // Node starts the headers/request timeout checks of an http.Server when it emits 'listening'
    this.on('listening', () => this.http.emit('listening'))
    this.on('close', () => { this.http.close(() => {}) })
  }

  /** Whether TLS connections are accepted now. */
  get tls (): boolean { return this.material !== undefined }

  /** Presents `material` to new TLS connections from now on (open ones keep theirs). */
  setTls (material: TlsMaterial): void {
    // a key that does not match the certificate throws here, and the old certificate stays
    const context = createSecureContext({ key: material.key, cert: material.cert, ...this.versions })
    this.tlsServer.setSecureContext({ key: material.key, cert: material.cert, ...this.versions })
    this.context = context
    this.material = material
  }

  closeIdleConnections (): void { this.http.closeIdleConnections() }
  closeAllConnections (): void { this.http.closeAllConnections() }

  get keepAliveTimeout (): number { return this.http.keepAliveTimeout }
  set keepAliveTimeout (ms: number) { this.http.keepAliveTimeout = ms }
  get requestTimeout (): number { return this.http.requestTimeout }
  set requestTimeout (ms: number) { this.http.requestTimeout = ms }
  get headersTimeout (): number { return this.http.headersTimeout }
  set headersTimeout (ms: number) { this.http.headersTimeout = ms }
  get maxRequestsPerSocket (): number | null { return this.http.maxRequestsPerSocket }
  set maxRequestsPerSocket (n: number | null) { this.http.maxRequestsPerSocket = n }
  setTimeout (ms: number, callback?: () => void): this { this.http.setTimeout(ms, callback); return this }

  /** Switches a plain connection to TLS when asked (RFC 2817 §3.2: 101, then the handshake on the same socket); any other upgrade is refused. */
  private upgrade (req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (this.material === undefined || !TLS_UPGRADE.test(req.headers.upgrade ?? '') || isEncrypted(req)) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nContent-Length: 0\r\n\r\n')
    if (head.length > 0) socket.unshift(head)
    socket.allowHalfOpen = false
    const secure = new TLSSocket(socket, { isServer: true, ...(this.context !== undefined ? { secureContext: this.context } : {}) })
    secure.on('error', () => { secure.destroy() })
    secure.once('secure', () => {
      // RFC 2817 §3.3: after the handshake the server answers the request that asked for it (CUPS waits for it)
      const answer = req.method === 'OPTIONS' ? 'HTTP/1.1 200 OK\r\nAllow: GET, HEAD, OPTIONS, POST\r\nContent-Length: 0\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'
      secure.write(answer)
      this.http.emit('connection', secure)
    })
  }

  /** Reads the first bytes (without losing them) and hands the socket to the TLS or the plain server. */
  private sniff (socket: Socket): void {
    const onError = (): void => { socket.destroy() }
    socket.on('error', onError)
    const route = (): void => {
      const head = socket.read() as Buffer | null
      if (head === null) { socket.once('readable', route); return }
      socket.off('error', onError)
      socket.unshift(head)
      if (head[0] === TLS_HANDSHAKE) {
        if (this.material === undefined) { socket.destroy(); return }
        socket.allowHalfOpen = false // TLS sockets do not half-close
        this.tlsServer.emit('connection', socket)
      } else {
        this.http.emit('connection', socket)
      }
    }
    route()
  }
}

function isEncrypted (req: IncomingMessage): boolean {
  return (req.socket as Partial<TLSSocket>).encrypted === true
}

/** Plain HTTP while TLS is on: pages move to https; nothing else is served in the clear. */
function redirectToHttps (req: IncomingMessage, res: ServerResponse): void {
  const host = req.headers.host
  if ((req.method === 'GET' || req.method === 'HEAD') && host !== undefined && /^[A-Za-z0-9.[\]:-]{1,300}$/.test(host)) {
    res.writeHead(308, { Location: `https://${host}${req.url ?? '/'}`, 'Content-Length': '0' }).end()
    return
  }
  const body = JSON.stringify({ error: 'tls-required', message: 'this node answers over https only' })
  res.writeHead(403, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body)
}
