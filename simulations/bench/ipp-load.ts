/**
 * The IPP load generator: Print-Job requests over HTTP/1.1 keep-alive, sent with the
 * project's one IPP client (devices/output/http-exchange.ts), from `concurrency` workers sharing one
 * request budget. The same bytes go to printmesh and to CUPS, so only the server differs.
 * Loopback only: the target URL must be on 127.0.0.1.
 */
import { Agent } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Op, Tag, attr, statusName, type IppAttribute, type IppMessage } from '../../devices/ipp/wire.ts'
import { exchangeTarget, ippExchange, type ExchangeTarget } from '../../devices/output/http-exchange.ts'
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

/** An IPP request to `printerUri` as `user`: the RFC 8011 operation attributes, then `extra` ones, then `groups`. */
export function ippOperation (code: number, printerUri: string, user: string, extra: IppAttribute[] = [], requestId = 1, groups: IppMessage['groups'] = []): IppMessage {
  return {
    version: { major: 2, minor: 0 },
    code,
    requestId,
    groups: [
      {
        tag: Tag.operationAttributes,
        attributes: [
          attr('attributes-charset', Tag.charset, 'utf-8'),
          attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
          attr('printer-uri', Tag.uri, printerUri),
          attr('requesting-user-name', Tag.nameWithoutLanguage, user),
          ...extra
        ]
      },
      ...groups
    ]
  }
}

/** The Print-Job operation and job attributes (everything before the document bytes). */
export function printJobRequest (printerUri: string, user: string, jobName: string, requestId: number): IppMessage {
  return ippOperation(Op.PrintJob, printerUri, user, [
    attr('job-name', Tag.nameWithoutLanguage, jobName),
    attr('document-format', Tag.mimeMediaType, 'application/pdf')
  ], requestId, [{ tag: Tag.jobAttributes, attributes: [attr('job-hold-until', Tag.keyword, 'indefinite')] }])
}

/** The exchange target of a queue on 127.0.0.1 (benchmarks send nowhere else). */
export function loopbackTarget (printerUri: string, agent?: Agent): ExchangeTarget {
  const target = exchangeTarget(printerUri)
  if (target.host !== '127.0.0.1') throw new LoadTargetError(`benchmarks only send to 127.0.0.1, not ${target.host}`)
  return agent !== undefined ? { ...target, agent } : target
}

/** One Print-Job through the project's IPP client; resolves with the decoded answer. */
export async function sendPrintJob (target: ExchangeTarget, request: IppMessage, document: Uint8Array, timeoutMs: number): Promise<IppMessage> {
  const limits = { connectTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs, totalTimeoutMs: timeoutMs }
  return await ippExchange(target, request, limits, new AbortController().signal, document)
}

/**
 * Runs `concurrency` workers until the request budget or the time budget is spent and
 * reports throughput inputs and latencies. Failures are counted, not thrown; the caller
 * decides whether a run with failures means anything.
 */
export async function runPrintJobLoad (opts: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency })
  const target = loopbackTarget(opts.printerUri, agent)
  const latenciesMs: number[] = []
  const errors: string[] = []
  let issued = 0
  let failed = 0
  const start = performance.now()
  const deadline = start + opts.maxMs
  const worker = async (): Promise<void> => {
    while (issued < opts.maxRequests && performance.now() < deadline) {
      const n = issued++
      const request = printJobRequest(opts.printerUri, opts.user, `bench ${n}`, n + 1)
      const body = opts.document(n)
      const t0 = performance.now()
      try {
        const status = (await sendPrintJob(target, request, body, REQUEST_TIMEOUT_MS)).code
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
