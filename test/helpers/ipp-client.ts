/**
 * IPP requests for the `ipp-*` tests and an in-process IPP server on the real job service,
 * with the site's IPP authentication (node/ipp-auth.ts: directory PINs, the admin token,
 * login limits). Well-formed requests go through printmesh's own IPP client
 * (devices/output/http-exchange.ts); the bad-input tests' malformed bytes, and requests
 * with HTTP authentication (which that client, talking to printers, does not send), go
 * through a plain HTTP probe.
 */
import { siteId } from '../../crdt/names.ts'
import { generateIdentity } from '../../transports/identity.ts'
import { randomBytes } from 'node:crypto'
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { Spool } from '../../devices/spool.ts'
import type { JobService } from '../../devices/jobs/service.ts'
import { MemoryNetwork } from '../../transports/memory.ts'
import { startMeshPeer, type MeshPeer } from '../../simulations/mesh.ts'
import { IN_PROCESS_CORE } from '../../node/roles.ts'
import { releaseServices } from '../../node/release.ts'
import { createOutputDevice } from '../../devices/output/registry.ts'
import { exchangeTarget, ippExchange, IppHttpStatusError } from '../../devices/output/http-exchange.ts'
import type { QueueInfo } from '../../devices/jobs/types.ts'
import { createIppServer, type IppClientLimits, type IppServer } from '../../devices/ipp/server.ts'
import type { AnonymousJobList } from '../../devices/ipp/auth.ts'
import type { IntakeLimitName, IntakeLimits } from '../../devices/jobs/intake-limits.ts'
import type { DocumentInfo } from '../../devices/documents/index.ts'
import { serviceFactory } from '../../node/compose.ts'
import type { AnalyzerService } from '../../node/release.ts'
import { ippAuthenticator } from '../../node/ipp-auth.ts'
import { checkPin, importUsersCsv } from '../../node/users.ts'
import { LoginGuard } from '../../ui/rate-limit.ts'
import { adminTokenAuthenticator } from '../../ui/sessions.ts'
import { Tag, attr, decodeMessage, encodeMessage, type IppAttribute, type IppMessage } from '../../devices/ipp/wire.ts'
import { tempDir } from '../../simulations/node-process.ts'

/** What came back: the HTTP status and, for IPP answers, the decoded message. */
export interface IppReply {
  httpStatus: number
  /** Present when the answer was application/ipp. */
  message?: IppMessage
  /** Raw body of an HTTP error page (raw probes only; empty otherwise). */
  raw: Buffer
  /** The answer's HTTP headers (raw probes only). */
  headers?: IncomingHttpHeaders
}

export interface PostOptions {
  agent?: Agent
  headers?: Record<string, string>
  /** Send without Content-Length (chunked transfer encoding). */
  chunked?: boolean
  /** Send `Expect: 100-continue` and the body only after the server says so. */
  expectContinue?: boolean
  /** HTTP authentication: Basic `[user, secret]`, or a Bearer token. */
  auth?: [user: string, secret: string] | { bearer: string }
}

/** The Authorization header of {@link PostOptions.auth}. */
export function authorization (auth: NonNullable<PostOptions['auth']>): string {
  if (Array.isArray(auth)) return `Basic ${Buffer.from(`${auth[0]}:${auth[1]}`).toString('base64')}`
  return `Bearer ${auth.bearer}`
}

/** Generous limits for a test's exchange: a slow CI machine answers well within them. */
const TEST_EXCHANGE_LIMITS = { connectTimeoutMs: 10_000, idleTimeoutMs: 60_000 }

/**
 * POSTs an IPP request and reads the answer. A well-formed message (with an optional
 * document in memory) goes through printmesh's one IPP client, `ippExchange`; raw bytes,
 * streamed bodies and hand-set HTTP framing (what the bad-input tests send on purpose) go
 * through {@link httpProbe}, which is an HTTP sender, not an IPP client.
 */
export async function ippPost (url: string, msg: IppMessage | Buffer, document?: Buffer | Readable, opts: PostOptions = {}): Promise<IppReply> {
  const wellFormed = !Buffer.isBuffer(msg) && (document === undefined || Buffer.isBuffer(document)) &&
    opts.chunked !== true && opts.expectContinue !== true && opts.headers === undefined && opts.auth === undefined
  if (!wellFormed) return await httpProbe(url, msg, document, opts)
  const target = { ...exchangeTarget(url), ...(opts.agent !== undefined ? { agent: opts.agent } : {}) }
  try {
    const message = await ippExchange(target, msg, TEST_EXCHANGE_LIMITS, new AbortController().signal, document)
    return { httpStatus: 200, message, raw: Buffer.alloc(0) }
  } catch (err) {
    if (err instanceof IppHttpStatusError) return { httpStatus: err.status, raw: Buffer.alloc(0) }
    throw err
  }
}

/** Sends whatever HTTP body a test wants (valid IPP or not, framed as asked) and reads the answer. */
export async function httpProbe (url: string, msg: IppMessage | Buffer, document?: Buffer | Readable, opts: PostOptions = {}): Promise<IppReply> {
  const head = Buffer.isBuffer(msg) ? msg : encodeMessage(msg)
  const u = new URL(url.replace(/^ipp:/, 'http:'))
  const fixed = document === undefined || Buffer.isBuffer(document)
  const length = head.length + (Buffer.isBuffer(document) ? document.length : 0)
  const headers: Record<string, string> = {
    'Content-Type': 'application/ipp',
    ...(fixed && opts.chunked !== true ? { 'Content-Length': String(length) } : {}),
    ...(opts.expectContinue === true ? { Expect: '100-continue' } : {}),
    ...(opts.auth !== undefined ? { Authorization: authorization(opts.auth) } : {}),
    ...opts.headers
  }
  return await new Promise<IppReply>((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers, ...(opts.agent !== undefined ? { agent: opts.agent } : {}) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const raw = Buffer.concat(chunks)
        const reply: IppReply = { httpStatus: res.statusCode ?? 0, raw, headers: res.headers }
        if (res.headers['content-type'] === 'application/ipp') reply.message = decodeMessage(raw).message
        resolve(reply)
      })
    })
    req.on('error', reject)
    const send = (): void => {
      req.write(head)
      if (document === undefined) req.end()
      else if (Buffer.isBuffer(document)) req.end(document)
      else document.pipe(req)
    }
    if (opts.expectContinue === true) req.once('continue', send)
    else send()
  })
}

/** Writes raw bytes on a fresh connection and returns everything the server sent until it closed or `idleMs` passed. */
export async function rawExchange (port: number, bytes: Buffer, idleMs = 2000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let timer = setTimeout(() => socket.destroy(), idleMs)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      clearTimeout(timer)
      timer = setTimeout(() => socket.destroy(), idleMs)
    })
    socket.on('error', (err) => { clearTimeout(timer); if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1')); else reject(err) })
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')) })
    socket.write(bytes)
  })
}

let nextRequestId = 1

export interface RequestOptions {
  user?: string
  /** Operation attributes after charset, language, printer-uri and requesting-user-name. */
  operation?: IppAttribute[]
  /** A job-attributes group. */
  job?: IppAttribute[]
  /** Leave printer-uri out (e.g. job operations by job-uri). */
  noPrinterUri?: boolean
  requestId?: number
  version?: { major: number, minor: number }
}

/** A well-formed request for `code` addressed to `printerUri`. */
export function ippRequest (code: number, printerUri: string, opts: RequestOptions = {}): IppMessage {
  const operation: IppAttribute[] = [
    attr('attributes-charset', Tag.charset, 'utf-8'),
    attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
    ...(opts.noPrinterUri === true ? [] : [attr('printer-uri', Tag.uri, printerUri)]),
    ...(opts.user !== undefined ? [attr('requesting-user-name', Tag.nameWithoutLanguage, opts.user)] : []),
    ...(opts.operation ?? [])
  ]
  return {
    version: opts.version ?? { major: 2, minor: 0 },
    code,
    requestId: opts.requestId ?? nextRequestId++,
    groups: [
      { tag: Tag.operationAttributes, attributes: operation },
      ...(opts.job !== undefined ? [{ tag: Tag.jobAttributes, attributes: opts.job }] : [])
    ]
  }
}

/** An IPP server on a standalone site's node in this process (level store, the release engine, a file printer), built as the CLI builds one. */
export interface IppRig {
  dir: string
  /** Where the file printer writes released documents. */
  out: string
  port: number
  /** `ipp://127.0.0.1:PORT/ipp/print` */
  uri: string
  /** `http://127.0.0.1:PORT` */
  base: string
  jobs: JobService
  server: IppServer
  logger: Logger
  /** The admin token (`admin:<token>` over Basic, or Bearer). */
  adminToken: string
  stop (): Promise<void>
}

export interface RigOptions {
  /** Queues (the first is the default); default: one held queue `print`. */
  queues?: Array<Omit<QueueInfo, 'defaultPrinter'>>
  logger?: Logger
  /** The pace asked of clients (default: the server's). */
  clientLimits?: Partial<IppClientLimits>
  /** Users of the directory: username → PIN (default none). */
  users?: Record<string, string>
  /** What Get-Jobs shows clients that did not authenticate (default: the server's). */
  anonymousJobs?: AnonymousJobList
  /** What the intake takes (default: the server's). */
  limits?: Partial<IntakeLimits>
  /** Told of each refusal by an intake limit. */
  onRefused?: (limit: IntakeLimitName) => void
  /** Document analysis in place of the worker pool (to stop an analysis at will). */
  analyze?: (path: string, format: string, signal?: AbortSignal) => Promise<DocumentInfo>
}

export async function startIppRig (opts: RigOptions = {}): Promise<IppRig> {
  const dir = await tempDir('printmesh-ipp-')
  const logger = opts.logger ?? pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })
  const out = join(dir, 'out')
  const adminToken = randomBytes(16).toString('hex')
  let peer: MeshPeer | undefined
  let server: IppServer | undefined
  const stop = async (): Promise<void> => {
    await server?.stop()
    await peer?.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const { signer } = await generateIdentity()
    const site = siteId('site-a')
    const queues = (opts.queues ?? [{ name: 'print', hold: true, info: 'Secure print', location: 'Floor 2' }])
      .map((q) => ({ ...q, defaultPrinter: 'p1' }))
    // a standalone site's node, built as the CLI builds one (its own authority), less libp2p and the front ends
    peer = await startMeshPeer({
      network: new MemoryNetwork(),
      name: 'site-a',
      signer,
      role: 'site',
      site,
      authority: signer.id,
      dir,
      logger,
      services: [...IN_PROCESS_CORE, 'credit', 'analyzer', 'print-engine', 'delegation', 'jobs'],
      registry: {
        ...releaseServices({ site, queues }),
        ...(opts.analyze !== undefined ? { analyzer: analyzerOf(opts.analyze) } : {})
      },
      components: {
        spool: await Spool.open(join(dir, 'spool')),
        copies: await Spool.open(join(dir, 'roaming')),
        printers: new Map([['p1', createOutputDevice(`file://${out}`, { logger })]])
      }
    })
    const jobs = peer.services.jobs as JobService
    const store = peer.store
    const users = Object.entries(opts.users ?? {})
    if (users.length > 0) await importUsersCsv(store, users.map(([name, pin]) => `${name},${name},${pin}`).join('\n'), 'site-a', 'test')
    const authenticate = ippAuthenticator({
      logins: new LoginGuard(),
      checkPin: async (username, pin) => await checkPin(store, username, pin),
      checkAdminToken: adminTokenAuthenticator(adminToken)
    })
    server = createIppServer({
      domain: jobs,
      logger,
      host: '127.0.0.1',
      port: 0,
      authenticate,
      ...(opts.clientLimits !== undefined ? { clientLimits: opts.clientLimits } : {}),
      ...(opts.anonymousJobs !== undefined ? { anonymousJobs: opts.anonymousJobs } : {}),
      ...(opts.limits !== undefined ? { limits: opts.limits } : {}),
      ...(opts.onRefused !== undefined ? { onRefused: opts.onRefused } : {})
    })
    await server.start()
  } catch (err) {
    await stop()
    throw err
  }
  const port = server.port
  return { dir, out, port, uri: `ipp://127.0.0.1:${port}/ipp/print`, base: `http://127.0.0.1:${port}`, jobs: peer.services.jobs as JobService, server, logger, adminToken, stop }
}

/** An `analyzer` service that analyses with `analyze`. */
function analyzerOf (analyze: NonNullable<RigOptions['analyze']>): () => ReturnType<typeof serviceFactory<object, AnalyzerService>> {
  return () => serviceFactory<object, AnalyzerService>([], () => ({ parse: analyze, start: async () => {}, stop: async () => {} }))
}
