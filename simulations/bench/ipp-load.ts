/**
 * The IPP load generator: Print-Job requests over HTTP/1.1 keep-alive, built and decoded
 * with the project's codec (devices/ipp/wire.ts), from `concurrency` workers sharing one
 * request budget. The same bytes go to printmesh and to CUPS, so only the server differs.
 * Loopback only: the target URL must be on 127.0.0.1.
 */
import { Agent, request as httpRequest } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Op, Tag, attr, decodeMessage, encodeMessage, statusName } from '../../devices/ipp/wire.ts'
import { BenchmarkError } from './common.ts'

/** A request that has not been answered by then counts as failed (a 5 MB upload takes well under this). */
const REQUEST_TIMEOUT_MS = 60_000
/** The highest IPP status code that still means success (RFC 8011: 0x0000–0x00ff). */
const MAX_SUCCESS_STATUS = 0x00ff
/** How many distinct failure messages a result keeps (enough to diagnose, not to flood). */
const MAX_ERROR_SAMPLES = 5

export class LoadTargetError extends BenchmarkError {
  constructor (message: string) { super(message); this.name = 'LoadTargetError' }
}

export interface LoadOptions {
  /** `ipp://127.0.0.1:PORT/path` of the queue; also the printer-uri sent. */
  printerUri: string
  concurrency: number
  /** Stop after this many requests... */
  maxRequests: number
  /** ...or once this much time has passed (requests under way finish). */
  maxMs: number
  /** The document of request `n` (0-based). */
  document (n: number): Buffer
  /** requesting-user-name. */
  user: string
}

export interface LoadResult {
  ok: number
  failed: number
  elapsedMs: number
  /** Latency of each successful request, ms, in completion order. */
  latenciesMs: number[]
  /** A few failure messages. */
  errors: string[]
}

/** The Print-Job operation and job attributes (everything before the document bytes). */
export function printJobHead (printerUri: string, user: string, jobName: string, requestId: number): Buffer {
  return encodeMessage({
    version: { major: 2, minor: 0 },
    code: Op.PrintJob,
    requestId,
    groups: [
      {
        tag: Tag.operationAttributes,
        attributes: [
          attr('attributes-charset', Tag.charset, 'utf-8'),
          attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
          attr('printer-uri', Tag.uri, printerUri),
          attr('requesting-user-name', Tag.nameWithoutLanguage, user),
          attr('job-name', Tag.nameWithoutLanguage, jobName),
          attr('document-format', Tag.mimeMediaType, 'application/pdf')
        ]
      },
      { tag: Tag.jobAttributes, attributes: [attr('job-hold-until', Tag.keyword, 'indefinite')] }
    ]
  })
}

function loopbackTarget (printerUri: string): URL {
  const u = new URL(printerUri.replace(/^ipp:/, 'http:'))
  if (u.hostname !== '127.0.0.1') throw new LoadTargetError(`benchmarks only send to 127.0.0.1, not ${u.hostname}`)
  return u
}

/** Sends one Print-Job; resolves with the IPP status code, rejects on HTTP or transport errors. */
async function postPrintJob (agent: Agent, target: URL, head: Buffer, body: Buffer): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'POST',
      agent,
      headers: { 'Content-Type': 'application/ipp', 'Content-Length': String(head.length + body.length) },
      timeout: REQUEST_TIMEOUT_MS
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const raw = Buffer.concat(chunks)
        if (res.statusCode !== 200) { reject(new LoadTargetError(`HTTP ${res.statusCode ?? '?'}: ${raw.toString('utf8').slice(0, 200)}`)); return }
        try {
          resolve(decodeMessage(raw).message.code)
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('timeout', () => req.destroy(new LoadTargetError(`no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.write(head)
    req.end(body)
  })
}

/**
 * Runs `concurrency` workers until the request budget or the time budget is spent and
 * reports throughput inputs and latencies. Failures are counted, not thrown; the caller
 * decides whether a run with failures means anything.
 */
export async function runPrintJobLoad (opts: LoadOptions): Promise<LoadResult> {
  const target = loopbackTarget(opts.printerUri)
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency })
  const latenciesMs: number[] = []
  const errors: string[] = []
  let issued = 0
  let failed = 0
  const start = performance.now()
  const deadline = start + opts.maxMs
  const worker = async (): Promise<void> => {
    while (issued < opts.maxRequests && performance.now() < deadline) {
      const n = issued++
      const head = printJobHead(opts.printerUri, opts.user, `bench ${n}`, n + 1)
      const body = opts.document(n)
      const t0 = performance.now()
      try {
        const status = await postPrintJob(agent, target, head, body)
        if (status > MAX_SUCCESS_STATUS) throw new LoadTargetError(`IPP status ${statusName(status)} (0x${status.toString(16).padStart(4, '0')})`)
        latenciesMs.push(performance.now() - t0)
      } catch (err) {
        failed++
        const message = err instanceof Error ? err.message : String(err)
        if (errors.length < MAX_ERROR_SAMPLES && !errors.includes(message)) errors.push(message)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker))
  } finally {
    agent.destroy()
  }
  return { ok: latenciesMs.length, failed, elapsedMs: performance.now() - start, latenciesMs, errors }
}
