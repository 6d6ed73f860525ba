/**
 * The `ipp:` / `ipps:` output device: an IPP client that releases a document to a real
 * printer with Print-Job and follows the printer's job to its end.
 *
 * Release, step by step:
 * 1. Get-Printer-Attributes: which document formats, `sides`, `media` and `copies` the
 *    printer supports. An unsupported document format fails right here with
 *    `PrinterError(reason 'document-format-not-supported', beforeAccept=true)`; unsupported
 *    `sides` / `media` / `copies` values are dropped (and logged) rather than sent.
 * 2. Print-Job with the document streamed from disk (chunked transfer encoding, never
 *    buffered whole). `successful-ok*` is the printer accepting the job:
 *    `progress.accepted(printerJobId)` is called at once.
 * 3. Get-Job-Attributes every poll interval until `job-state` is completed (9) → resolve
 *    `{ printerJobId, impressions }`, or canceled (7) / aborted (8) → reject with the
 *    `job-state-reasons` keyword.
 *
 * Retry policy (the one rule: a document is never submitted twice):
 * - Before acceptance, steps 1–2 are retried as a unit with exponential backoff (and
 *   jitter) up to `retry.maxAttempts` attempts when the printer is unreachable (refused,
 *   reset, timed out, unreachable, TLS or DNS failure, or a reset mid-upload) or answers
 *   `server-error-busy`, `server-error-service-unavailable`, `server-error-temporary-error`,
 *   `server-error-not-accepting-jobs` or HTTP 503; then `PrinterError(beforeAccept=true)`.
 *   Any other refusal fails at once, also with `beforeAccept=true`. `server-error-busy`
 *   (the printer is printing another job) waits from `retry.busyInitialBackoffMs` instead,
 *   uses up no attempt for `retry.busyWindowMs`, and is followed by an upload only once the
 *   printer reports idle.
 * - A Print-Job whose request was delivered in full but whose answer was lost (reset,
 *   timeout, garbled reply) may have created a job: it is NOT retried; it fails with
 *   `PrinterError('printer-unreachable-after-accept', beforeAccept=false)`.
 * - After acceptance the job is never resubmitted. Polling tolerates transient failures
 *   (network errors, busy) until `follow.unreachableDeadlineMs` has passed since the last
 *   answer; a job that cannot be followed to its end (deadline passed, printer forgot the
 *   job) fails with `PrinterError('printer-unreachable-after-accept', beforeAccept=false)`,
 *   which the job domain records as failed with an unknown outcome instead of printing
 *   it again.
 *
 * Aborting `signal` stops whatever is in flight: before acceptance (including during a
 * backoff) with `PrinterError('release-aborted', beforeAccept=true)` — unless the request
 * had already been delivered in full, which is `beforeAccept=false` — and after
 * acceptance with `PrinterError('release-aborted', beforeAccept=false)`; the printer job
 * is left alone (not canceled), since the printer may already be printing it.
 *
 * TLS (`ipps:`): the printer's certificate is verified against the system CAs plus
 * `ca` when given. Printers commonly ship self-signed certificates; to talk to one,
 * either pin its certificate with `ca`, or set `allowSelfSignedCertificate: true`, which
 * turns verification off for this device entirely (encrypted, but the printer is not
 * authenticated). The default is to verify.
 *
 * After a restart (the site no longer waits on `print()`): `outcome(printerJobId)` asks
 * Get-Job-Attributes once and maps `job-state` completed (9) → `completed` (with
 * impressions), canceled (7) / aborted (8) → `failed` (the `job-state-reasons` keyword, as
 * `print()` would have rejected), pending / held / processing / stopped (3–6) → `pending`;
 * no answer, busy, `client-error-not-found` (the printer forgot the job) or any other
 * answer → `unknown`, with the reason. `follow(printerJobId)` polls like `print()` does
 * after acceptance (`follow.pollIntervalMs`, giving up after `follow.unreachableDeadlineMs`
 * without an answer) until the job ended. Neither ever resubmits anything. A printer that
 * restarted and reuses job ids could answer about another job: the id alone cannot tell.
 *
 * Impressions: `job-impressions-completed` is reported when the printer gives a non-zero
 * value; printers that do not count (ippeveprinter without a command) report 0 for a
 * completed job, which would be a wrong charge, so 0 is treated as "not reported".
 */
import { open } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import {
  Op,
  Status,
  Tag,
  attr,
  enumName,
  findAttr,
  integerValue,
  statusName,
  stringValue,
  stringValues,
  type IppAttribute,
  type IppMessage
} from '../ipp/wire.ts'
import {
  DocumentReadError,
  IppHttpStatusError,
  IppTransportError,
  exchangeTarget,
  ippExchange,
  type ExchangeTarget
} from './http-exchange.ts'
import {
  InvalidPrinterJobIdError,
  PrinterError,
  UNKNOWN_REASONS,
  isPrinterJobId,
  type OutputDevice,
  type PrintOutcome,
  type PrinterJobOutcome,
  type PrintProgress,
  type PrintRequest,
  type PrinterMarker,
  type PrinterProbe
} from './types.ts'

/** IPP Everywhere's printer path, used when the URI names none. */
export const IPP_EVERYWHERE_PATH = '/ipp/print'

/** Retry of the submission (Get-Printer-Attributes + Print-Job) before the printer accepts. */
export interface IppRetryPolicy {
  /** Attempts in total, the first included. */
  maxAttempts: number
  /** Wait before the second attempt; doubles per attempt. */
  initialBackoffMs: number
  /** Cap of one wait. */
  maxBackoffMs: number
  /**
   * Wait before the next attempt after `server-error-busy` (the printer is printing another
   * job, often ours: it accepted the one ahead in the lane); doubles per busy answer, up to
   * {@link BUSY_MAX_WAIT_MS}. The other "not now" answers and network failures wait
   * `initialBackoffMs`.
   */
  busyInitialBackoffMs: number
  /**
   * For this long after the first busy answer the printer is asked again every
   * `busyInitialBackoffMs`, not doubling: the job ahead is most often a short one of ours,
   * and a printer freed between two questions idles until the next (8 jobs of 50 ms released
   * at once: doubling from the first answer left the printer idle ~40 % of the burst).
   */
  busyFlatMs: number
  /**
   * How long a printer may keep answering busy before the submission fails with `busy` (its
   * caller then waits longer, or gives the job back). Busy answers within it do not count
   * against `maxAttempts`; after the first one the document is sent again only once the
   * printer reports `printer-state` idle (asking costs a Get-Printer-Attributes, not an upload).
   */
  busyWindowMs: number
}

/** Named timeouts of every network call, in milliseconds. */
export interface IppTimeouts {
  /** TCP (and TLS) connection set-up. */
  connectMs: number
  /** Whole round trip of a small operation (Get-Printer-Attributes, Get-Job-Attributes). */
  requestMs: number
  /** Silence on the socket during a Print-Job upload and while awaiting its answer. */
  printIdleMs: number
  /** Whole round trip of a probe. */
  probeMs: number
}

/** Following the printer's job after acceptance. */
export interface IppFollowPolicy {
  /** Pause between two Get-Job-Attributes. */
  pollIntervalMs: number
  /** How long polls may fail in a row (since the last answer) before giving up on the job. */
  unreachableDeadlineMs: number
}

/** Defaults: a printer that wakes from sleep or reboots its network stack gets ~30 s. */
export const DEFAULT_RETRY: Readonly<IppRetryPolicy> = {
  maxAttempts: 5, // 1 + 4 retries: waits of ~1, 2, 4, 8 s
  initialBackoffMs: 1_000, // a printer waking or rebooting its network takes seconds, not milliseconds
  maxBackoffMs: 15_000, // keep the user at the panel waiting no longer than this per step
  // a printer busy with the job ahead frees when that job ends, which may be any moment: asked soon, then less often
  busyInitialBackoffMs: 25,
  // a page or two; a printer busy for longer is asked less often after it (at most 10 Get-Printer-Attributes)
  busyFlatMs: 250,
  // as long as the attempts above wait in all (1 + 2 + 4 + 8 s): a printer printing a long job ahead gets as long as before
  busyWindowMs: 15_000
}

/** Longest wait between two questions to a busy printer: a freed printer is used within it, and a busy one is asked (Get-Printer-Attributes) no more often. */
export const BUSY_MAX_WAIT_MS = 2_000

export const DEFAULT_TIMEOUTS: Readonly<IppTimeouts> = {
  connectMs: 10_000, // a LAN printer connects in milliseconds; 10 s covers a waking one
  requestMs: 30_000, // Get-*-Attributes answers are small; a printer busy rendering can be slow
  printIdleMs: 120_000, // printers stop reading while their buffer is full and they render
  probeMs: 3_000 // status pages must not hang on a dead printer
}

export const DEFAULT_FOLLOW: Readonly<IppFollowPolicy> = {
  pollIntervalMs: 2_000, // a page takes seconds; polling faster only loads the printer
  unreachableDeadlineMs: 10 * 60_000 // survives a printer reboot or a Wi-Fi hiccup
}

/** Options of {@link IppOutputDevice}. */
export interface IppOutputDeviceOptions {
  logger: Logger
  retry?: Partial<IppRetryPolicy>
  timeouts?: Partial<IppTimeouts>
  follow?: Partial<IppFollowPolicy>
  /**
   * `ipps:` only. Accept any server certificate (self-signed, wrong name, expired): turns
   * certificate verification off for this printer. Default false. Prefer {@link ca}.
   */
  allowSelfSignedCertificate?: boolean
  /** `ipps:` only. Extra trusted CA or pinned printer certificates (PEM). */
  ca?: string | Buffer | Array<string | Buffer>
}

/** IPP `job-state` values (RFC 8011 5.3.7). */
const JobState = { pending: 3, held: 4, processing: 5, processingStopped: 6, canceled: 7, aborted: 8, completed: 9 } as const
/** IPP `printer-state` value for a stopped printer (RFC 8011 5.4.11). */
const PRINTER_STATE_STOPPED = 5

/** IPP statuses that mean "not now" rather than "no". */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([
  Status.serverErrorServiceUnavailable,
  Status.serverErrorTemporaryError,
  Status.serverErrorNotAcceptingJobs,
  Status.serverErrorBusy
])
/** `ms` ± 20 %, so printers (and the sites asking them) are not hit in lockstep. */
function jittered (ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4))
}

/** The reason of `server-error-busy` (statusReason): the printer is printing another job. */
const BUSY_REASON = 'busy'
/** `printer-state` 4 as Capabilities name it: a printer that answered busy is not sent the document again while in it. */
const PRINTER_STATE_PROCESSING_NAME = 'processing'
/** HTTP statuses that mean "not now". */
const RETRYABLE_HTTP_STATUSES: ReadonlySet<number> = new Set([503])
/** Node's certificate verification failures: retrying cannot fix them, configuration can. */
const CERTIFICATE_ERRORS: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID'
])
/** `job-state-reasons` values that say nothing about why a job ended. */
const UNINFORMATIVE_REASONS: ReadonlySet<string> = new Set(['none', 'job-printing', 'processing-to-stop-point', 'job-incoming'])

/** Printer attributes the submission looks at. */
const CAPABILITY_ATTRIBUTES = [
  'document-format-supported', 'sides-supported', 'media-supported', 'copies-supported', 'print-color-mode-supported',
  'printer-state', 'printer-state-reasons', 'printer-is-accepting-jobs'
]
/** Job attributes each poll asks for. */
const JOB_ATTRIBUTES = ['job-state', 'job-state-reasons', 'job-state-message', 'job-impressions-completed']
/** Printer attributes a probe asks for. */
const PROBE_ATTRIBUTES = ['printer-state', 'printer-state-reasons', 'printer-state-message', 'printer-is-accepting-jobs', 'marker-names', 'marker-levels', 'marker-colors', 'marker-types']

/** The printer's supplies from a Get-Printer-Attributes answer: `marker-names` paired by index with levels, colours and types; none when it names none. */
function markersOf (res: IppMessage): PrinterMarker[] {
  const names = stringValues(findAttr(res, Tag.printerAttributes, 'marker-names'))
  const levels = (findAttr(res, Tag.printerAttributes, 'marker-levels')?.values ?? []).map((v) => v.value)
  const colors = stringValues(findAttr(res, Tag.printerAttributes, 'marker-colors'))
  const types = stringValues(findAttr(res, Tag.printerAttributes, 'marker-types'))
  return names.map((name, i) => ({
    name,
    level: typeof levels[i] === 'number' ? levels[i] : -1,
    ...(colors[i] !== undefined ? { color: colors[i] } : {}),
    ...(types[i] !== undefined ? { type: types[i] } : {})
  }))
}

/** RFC 8011 name and text values are limited to 255 octets here (nameWithoutLanguage(MAX)). */
const MAX_NAME_OCTETS = 255
/** Status codes below this are successes (RFC 8011 4.1.6). */
const FIRST_ERROR_STATUS = 0x0100
/** Largest IPP integer, hence largest `job-id` (RFC 8011 5.1.5: integer is signed 32-bit). */
const MAX_IPP_INTEGER = 0x7fffffff

/** The URI the device was built from could not be turned into a target (internal). */
export class IppUriError extends Error {
  constructor (uri: string, why: string) {
    super(`bad printer URI ${uri}: ${why}`)
    this.name = 'IppUriError'
  }
}

/** Parses an `ipp:` / `ipps:` URI into where to connect. */
export function parseIppUri (uri: string): { printerUri: string, target: Omit<ExchangeTarget, 'tls'> } {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new IppUriError(uri, 'not a URI')
  }
  if (url.protocol !== 'ipp:' && url.protocol !== 'ipps:') throw new IppUriError(uri, 'scheme is not ipp: or ipps:')
  if (url.hostname === '') throw new IppUriError(uri, 'no host')
  if (url.username !== '' || url.password !== '') throw new IppUriError(uri, 'credentials in the URI are not supported')
  const path = (url.pathname === '' || url.pathname === '/' ? IPP_EVERYWHERE_PATH : url.pathname) + url.search
  const printerUri = `${url.protocol}//${url.host}${path}`
  return { printerUri, target: exchangeTarget(printerUri) }
}

/** Truncates to at most `max` UTF-8 octets without splitting a character. */
function truncateOctets (s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s
  let out = ''
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > max) break
    out += ch
  }
  return out
}

/** `application/pdf; charset=x` → `application/pdf`. */
function baseMime (format: string): string {
  return (format.split(';')[0] ?? '').trim().toLowerCase()
}

/** `client-error-document-format-not-supported` → `document-format-not-supported`. */
function statusReason (code: number): string {
  return statusName(code).replace(/^(client|server)-error-/, '')
}

/** Whether a failure of a submission step is "try again later". */
function isTransient (err: unknown): boolean {
  if (err instanceof IppTransportError) return err.code !== 'ABORTED' && !CERTIFICATE_ERRORS.has(err.code)
  if (err instanceof IppHttpStatusError) return RETRYABLE_HTTP_STATUSES.has(err.status)
  return false
}

/** Why a submission attempt failed, and whether trying again is allowed. */
class SubmitFailure extends Error {
  constructor (message: string, readonly reason: string, readonly retryable: boolean, readonly beforeAccept: boolean, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SubmitFailure'
  }
}

/** A PrinterError with a cause attached (the contract's constructor takes none). */
function printerError (message: string, reason: string, beforeAccept: boolean, cause?: unknown): PrinterError {
  const err = new PrinterError(message, reason, beforeAccept)
  if (cause !== undefined) err.cause = cause
  return err
}

/** A job id a Get-Job-Attributes may carry; anything else is a caller's mistake. */
function checkJobId (id: number): void {
  if (!isPrinterJobId(id) || id > MAX_IPP_INTEGER) throw new InvalidPrinterJobIdError(id, `an IPP job-id is an integer from 1 to ${MAX_IPP_INTEGER}`)
}

/** What a successful Get-Job-Attributes answer says about how printer job `jobId` stands. */
function outcomeOfJob (res: IppMessage, jobId: number): PrinterJobOutcome {
  const jobAttr = (name: string): IppAttribute | undefined => findAttr(res, Tag.jobAttributes, name)
  const state = integerValue(jobAttr('job-state'))
  if (state === JobState.completed) {
    const impressions = integerValue(jobAttr('job-impressions-completed'))
    return { state: 'completed', ...(impressions !== undefined && impressions > 0 ? { impressions } : {}) }
  }
  if (state === JobState.canceled || state === JobState.aborted) {
    const fallback = state === JobState.canceled ? 'job-canceled-at-device' : 'aborted-by-system'
    const reason = stringValues(jobAttr('job-state-reasons')).find((r) => !UNINFORMATIVE_REASONS.has(r)) ?? fallback
    const text = stringValue(jobAttr('job-state-message'))
    return {
      state: 'failed',
      reason,
      message: `printer job ${jobId} ${state === JobState.canceled ? 'canceled' : 'aborted'}: ${reason}${text !== undefined && text !== '' ? ` (${text})` : ''}`
    }
  }
  if (state !== undefined && state >= JobState.pending && state <= JobState.processingStopped) return { state: 'pending' }
  return { state: 'unknown', reason: UNKNOWN_REASONS.badAnswer, message: `printer reported job ${jobId} in job-state ${state ?? '(none)'}` }
}

/** What Get-Printer-Attributes told us. */
interface Capabilities {
  formats?: string[]
  sides?: string[]
  media?: string[]
  colorModes?: string[]
  copiesMax?: number
  state?: string
  reasons: string[]
}

/** Releases documents to one IPP printer. Build it with `createOutputDevice('ipp://…')`. */
export class IppOutputDevice implements OutputDevice {
  readonly uri: string
  readonly #printerUri: string
  readonly #target: ExchangeTarget
  readonly #log: Logger
  readonly #retry: IppRetryPolicy
  readonly #timeouts: IppTimeouts
  readonly #follow: IppFollowPolicy
  #requestId = 0

  constructor (uri: string, opts: IppOutputDeviceOptions) {
    const { printerUri, target } = parseIppUri(uri)
    this.uri = uri
    this.#printerUri = printerUri
    this.#target = target.protocol === 'https:'
      ? { ...target, tls: { rejectUnauthorized: opts.allowSelfSignedCertificate !== true, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) } }
      : target
    this.#log = opts.logger.child({ device: printerUri })
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry }
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts }
    this.#follow = { ...DEFAULT_FOLLOW, ...opts.follow }
    if (opts.allowSelfSignedCertificate === true && target.protocol === 'https:') {
      this.#log.warn('certificate verification is off for this printer (allowSelfSignedCertificate)')
    }
  }

  async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<PrintOutcome> {
    await this.#checkReadable(req.documentPath)
    // the job template attributes the printer did not take, so the charge is for what it printed
    const sent: { dropped: string[] } = { dropped: [] }
    const printerJobId = await this.#submit(req, signal, sent)
    try {
      progress.accepted(printerJobId)
    } catch (err) {
      // The domain's bookkeeping failed; the printer has the job regardless, so keep following.
      this.#log.error({ err, printerJobId }, 'progress.accepted threw')
    }
    try {
      const outcome = await this.#followJob(printerJobId, signal)
      return sent.dropped.length > 0 ? { ...outcome, dropped: sent.dropped } : outcome
    } catch (err) {
      if (err instanceof PrinterError) throw err
      // Whatever went wrong, the printer has the job: never let it look like "not accepted".
      throw printerError(`lost track of printer job ${printerJobId}: ${(err as Error).message}`, 'printer-unreachable-after-accept', false, err)
    }
  }

  async probe (signal: AbortSignal): Promise<PrinterProbe> {
    try {
      const res = await ippExchange(this.#target, this.#request(Op.GetPrinterAttributes, [
        attr('requested-attributes', Tag.keyword, ...PROBE_ATTRIBUTES)
      ]), {
        connectTimeoutMs: this.#timeouts.probeMs,
        idleTimeoutMs: this.#timeouts.probeMs,
        totalTimeoutMs: this.#timeouts.probeMs
      }, signal)
      if (res.code >= FIRST_ERROR_STATUS) return { ok: false, message: `printer answered ${statusName(res.code)}` }
      const stateNum = integerValue(findAttr(res, Tag.printerAttributes, 'printer-state'))
      const state = stateNum === undefined ? 'unknown' : (enumName('printer-state', stateNum) ?? String(stateNum))
      const reasons = stringValues(findAttr(res, Tag.printerAttributes, 'printer-state-reasons'))
      const text = stringValue(findAttr(res, Tag.printerAttributes, 'printer-state-message'))
      const message = `${state}; ${reasons.length > 0 ? reasons.join(', ') : 'none'}${text !== undefined && text !== '' ? ` (${text})` : ''}`
      return { ok: stateNum !== PRINTER_STATE_STOPPED, message, state, reasons: reasons.filter((r) => r !== 'none'), markers: markersOf(res) }
    } catch (err) {
      return { ok: false, message: `printer does not answer: ${(err as Error).message}` }
    }
  }

  async outcome (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    checkJobId(printerJobId)
    const aborted: PrinterJobOutcome = { state: 'unknown', reason: UNKNOWN_REASONS.aborted, message: `stopped asking about printer job ${printerJobId}` }
    if (signal.aborted) return aborted
    let res: IppMessage
    try {
      res = await ippExchange(this.#target, this.#request(Op.GetJobAttributes, [
        attr('job-id', Tag.integer, printerJobId),
        attr('requested-attributes', Tag.keyword, ...JOB_ATTRIBUTES)
      ]), this.#smallLimits(), signal)
    } catch (err) {
      if (signal.aborted) return aborted
      return { state: 'unknown', reason: UNKNOWN_REASONS.unreachable, message: `no answer about printer job ${printerJobId}: ${(err as Error).message}` }
    }
    if (RETRYABLE_STATUSES.has(res.code)) {
      return { state: 'unknown', reason: UNKNOWN_REASONS.busy, message: `printer answered ${statusName(res.code)} about job ${printerJobId}` }
    }
    if (res.code === Status.clientErrorNotFound) {
      return { state: 'unknown', reason: UNKNOWN_REASONS.notFound, message: `printer does not know job ${printerJobId} (any more)` }
    }
    if (res.code >= FIRST_ERROR_STATUS) {
      return { state: 'unknown', reason: UNKNOWN_REASONS.badAnswer, message: `printer answered ${statusName(res.code)} about job ${printerJobId}` }
    }
    const answer = outcomeOfJob(res, printerJobId)
    this.#log.debug({ printerJobId, outcome: answer.state, reason: answer.reason }, 'asked the printer about a job')
    return answer
  }

  async follow (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    checkJobId(printerJobId)
    let lastAnswer = Date.now()
    for (;;) {
      const answer = await this.outcome(printerJobId, signal)
      if (answer.state === 'completed' || answer.state === 'failed') return answer
      if (answer.state === 'pending') {
        lastAnswer = Date.now()
      } else if (answer.reason !== UNKNOWN_REASONS.unreachable && answer.reason !== UNKNOWN_REASONS.busy) {
        return answer // the printer answered and cannot tell (or we are stopping): asking again will not help
      }
      if (Date.now() - lastAnswer > this.#follow.unreachableDeadlineMs) {
        return { ...answer, message: `gave up following printer job ${printerJobId} after ${this.#follow.unreachableDeadlineMs} ms without an answer: ${answer.message ?? ''}` }
      }
      try {
        await sleep(this.#follow.pollIntervalMs, undefined, { signal })
      } catch {
        return { state: 'unknown', reason: UNKNOWN_REASONS.aborted, message: `stopped following printer job ${printerJobId}` }
      }
    }
  }

  // ---- submission (before acceptance) -----------------------------------------------

  async #checkReadable (path: string): Promise<void> {
    try {
      const handle = await open(path, 'r')
      await handle.close()
    } catch (err) {
      throw printerError(`cannot read document ${path}: ${(err as Error).message}`, 'document-access-error', true, err)
    }
  }

  /** Steps 1–2 with the retry policy; resolves with the printer's job id once accepted. */
  async #submit (req: PrintRequest, signal: AbortSignal, sent: { dropped: string[] }): Promise<number> {
    let last: SubmitFailure | undefined
    // busy answers in a row, and when the first of them came (monotonic: a clock stepped back must not stretch the flat period): within busyWindowMs they use up no attempt
    let busyAnswers = 0
    let busySince: number | undefined
    // of them, those within busyFlatMs of the first (asked again after the short wait, not doubling)
    let busyFlatAnswers = 0
    for (let attempt = 1; attempt <= this.#retry.maxAttempts; attempt++) {
      if (signal.aborted) throw printerError('release aborted before the printer accepted it', 'release-aborted', true, signal.reason)
      try {
        return await this.#submitOnce(req, signal, sent, busyAnswers > 0)
      } catch (err) {
        const failure = err instanceof SubmitFailure ? err : new SubmitFailure((err as Error).message, 'aborted-by-system', false, true, { cause: err })
        if (signal.aborted) {
          throw printerError(`release aborted: ${failure.message}`, 'release-aborted', failure.beforeAccept, signal.reason)
        }
        if (!failure.retryable) throw printerError(failure.message, failure.reason, failure.beforeAccept, failure.cause)
        last = failure
        let wait: number
        if (failure.reason === BUSY_REASON) {
          busySince ??= performance.now()
          busyAnswers++
          if (performance.now() - busySince < this.#retry.busyFlatMs) busyFlatAnswers = busyAnswers
          wait = this.#busyBackoff(busyAnswers - busyFlatAnswers)
          if (performance.now() - busySince + wait > this.#retry.busyWindowMs) {
            throw printerError(`printer still busy after ${Math.round(performance.now() - busySince)} ms: ${failure.message}`, failure.reason, true, failure)
          }
          attempt-- // a printer busy with another job is not failing
        } else {
          busyAnswers = 0
          busyFlatAnswers = 0
          busySince = undefined
          if (attempt === this.#retry.maxAttempts) break
          wait = this.#backoff(attempt)
        }
        this.#log.warn({ attempt, waitMs: wait, reason: failure.reason, err: failure.message }, 'printer not ready, retrying')
        try {
          await sleep(wait, undefined, { signal })
        } catch {
          throw printerError('release aborted while waiting to retry', 'release-aborted', true, signal.reason)
        }
      }
    }
    throw printerError(
      `printer not reachable after ${this.#retry.maxAttempts} attempts: ${last?.message ?? 'no attempt made'}`,
      last?.reason ?? 'printer-unreachable', true, last
    )
  }

  /** Wait after `server-error-busy`, `n` answers after the flat period (0: within it): `busyInitialBackoffMs`, then doubling, capped at {@link BUSY_MAX_WAIT_MS}. */
  #busyBackoff (n: number): number {
    return jittered(Math.min(BUSY_MAX_WAIT_MS, this.#retry.maxBackoffMs, this.#retry.busyInitialBackoffMs * 2 ** Math.max(0, n - 1)))
  }

  /** Backoff before attempt `attempt + 1`: doubling, capped. */
  #backoff (attempt: number): number {
    return jittered(Math.min(this.#retry.maxBackoffMs, this.#retry.initialBackoffMs * 2 ** (attempt - 1)))
  }

  /** One attempt; `afterBusy`: the printer answered busy last time, so the document is sent only once it reports idle. */
  async #submitOnce (req: PrintRequest, signal: AbortSignal, sent: { dropped: string[] }, afterBusy = false): Promise<number> {
    // 1. What does the printer support? (Nothing is sent yet: any failure is before acceptance.)
    let caps: Capabilities
    try {
      caps = await this.#capabilities(signal)
    } catch (err) {
      throw this.#beforeAcceptFailure('Get-Printer-Attributes', err)
    }
    const format = baseMime(req.format)
    if (caps.formats !== undefined && !caps.formats.some((f) => baseMime(f) === format)) {
      throw new SubmitFailure(
        `printer does not support document format ${req.format} (it supports ${caps.formats.join(', ')})`,
        'document-format-not-supported', false, true)
    }
    if (afterBusy && caps.state === PRINTER_STATE_PROCESSING_NAME) {
      throw new SubmitFailure('printer still processing another job (printer-state processing); the document is sent once it is idle', BUSY_REASON, true, true)
    }
    const { attributes: jobAttrs, dropped } = this.#jobTemplate(req, caps)
    sent.dropped = dropped
    this.#log.debug({ state: caps.state, reasons: caps.reasons }, 'printer state before Print-Job')

    // 2. Print-Job, the document streamed after the operation attributes.
    const request = this.#request(Op.PrintJob, [
      attr('job-name', Tag.nameWithoutLanguage, truncateOctets(req.jobName === '' ? 'untitled' : req.jobName, MAX_NAME_OCTETS)),
      attr('document-format', Tag.mimeMediaType, format)
    ], req.userName, jobAttrs)
    let res: IppMessage
    try {
      res = await ippExchange(this.#target, request, {
        connectTimeoutMs: this.#timeouts.connectMs,
        idleTimeoutMs: this.#timeouts.printIdleMs
      }, signal, req.documentPath)
    } catch (err) {
      if (err instanceof DocumentReadError) throw new SubmitFailure(err.message, 'document-access-error', false, true, { cause: err })
      const phase = err instanceof IppTransportError || err instanceof IppHttpStatusError ? err.phase : 'response'
      if (phase === 'response' && !(err instanceof IppHttpStatusError)) {
        // Delivered in full, answer lost: the printer may have created the job. Never resubmit.
        throw new SubmitFailure(
          `Print-Job delivered but its answer was lost (${(err as Error).message}); the printer may print it`,
          'printer-unreachable-after-accept', false, false, { cause: err })
      }
      throw this.#beforeAcceptFailure('Print-Job', err)
    }
    if (res.code >= FIRST_ERROR_STATUS) {
      const reason = statusReason(res.code)
      const message = stringValue(findAttr(res, Tag.operationAttributes, 'status-message'))
      throw new SubmitFailure(
        `printer refused Print-Job: ${statusName(res.code)}${message !== undefined ? ` (${message})` : ''}`,
        reason, RETRYABLE_STATUSES.has(res.code), true)
    }
    const jobId = integerValue(findAttr(res, Tag.jobAttributes, 'job-id'))
    if (jobId === undefined) {
      throw new SubmitFailure('printer accepted the job but returned no job-id to follow it by', 'printer-unreachable-after-accept', false, false)
    }
    if (res.code !== Status.successfulOk) {
      // what it says it ignored or substituted is not printed as asked: charged as printed
      const ignored = (res.groups.find((g) => g.tag === Tag.unsupportedAttributes)?.attributes ?? []).map((a) => a.name)
      for (const name of ignored) if (!sent.dropped.includes(name) && jobAttrs.some((a) => a.name === name)) sent.dropped.push(name)
      this.#log.info({ status: statusName(res.code), printerJobId: jobId, ignored }, 'printer accepted with substitutions')
    }
    this.#log.info({ printerJobId: jobId }, 'printer accepted the job')
    return jobId
  }

  /** Classifies a failed pre-acceptance exchange into retryable or not. */
  #beforeAcceptFailure (op: string, err: unknown): SubmitFailure {
    if (err instanceof IppHttpStatusError) {
      const hint = err.status === 426 ? ' (the printer requires TLS: use ipps://)' : ''
      return new SubmitFailure(`${op}: ${err.message}${hint}`, err.status === 503 ? 'service-unavailable' : 'printer-http-error', isTransient(err), true, { cause: err })
    }
    if (err instanceof IppTransportError && CERTIFICATE_ERRORS.has(err.code)) {
      return new SubmitFailure(
        `${op}: printer certificate not trusted (${err.code}); pin it with the ca option or set allowSelfSignedCertificate`,
        'printer-certificate-untrusted', false, true, { cause: err })
    }
    if (err instanceof IppTransportError) {
      return new SubmitFailure(`${op}: ${err.message}`, 'printer-unreachable', isTransient(err), true, { cause: err })
    }
    if (err instanceof SubmitFailure) return err
    return new SubmitFailure(`${op}: ${(err as Error).message}`, 'aborted-by-system', false, true, { cause: err })
  }

  async #capabilities (signal: AbortSignal): Promise<Capabilities> {
    const res = await ippExchange(this.#target, this.#request(Op.GetPrinterAttributes, [
      attr('requested-attributes', Tag.keyword, ...CAPABILITY_ATTRIBUTES)
    ]), this.#smallLimits(), signal)
    if (res.code >= FIRST_ERROR_STATUS) {
      throw new SubmitFailure(`Get-Printer-Attributes: printer answered ${statusName(res.code)}`, statusReason(res.code), RETRYABLE_STATUSES.has(res.code), true)
    }
    const printerAttr = (name: string): IppAttribute | undefined => findAttr(res, Tag.printerAttributes, name)
    const copies = printerAttr('copies-supported')?.values[0]?.value
    const stateNum = integerValue(printerAttr('printer-state'))
    return {
      ...(printerAttr('document-format-supported') !== undefined ? { formats: stringValues(printerAttr('document-format-supported')) } : {}),
      ...(printerAttr('sides-supported') !== undefined ? { sides: stringValues(printerAttr('sides-supported')) } : {}),
      ...(printerAttr('media-supported') !== undefined ? { media: stringValues(printerAttr('media-supported')) } : {}),
      ...(printerAttr('print-color-mode-supported') !== undefined ? { colorModes: stringValues(printerAttr('print-color-mode-supported')) } : {}),
      ...(copies !== null && typeof copies === 'object' && 'upper' in copies ? { copiesMax: copies.upper } : {}),
      ...(stateNum !== undefined ? { state: enumName('printer-state', stateNum) ?? String(stateNum) } : {}),
      reasons: stringValues(printerAttr('printer-state-reasons'))
    }
  }

  /** Job template attributes the printer supports; the rest are dropped and logged. */
  /**
   * Job template attributes the printer supports, and the names of those asked for that it does
   * not (printed without them, so charged without them). A one-sided job the printer cannot be
   * told about prints its default, one-sided: not counted as dropped.
   */
  #jobTemplate (req: PrintRequest, caps: Capabilities): { attributes: IppAttribute[], dropped: string[] } {
    const out: IppAttribute[] = []
    const unsupported: string[] = []
    const dropped: string[] = []
    const drop = (name: string, value: string | number, counts = true): void => {
      unsupported.push(`${name}=${value}`)
      if (counts) dropped.push(name)
    }
    if (req.copies > 1) {
      if (caps.copiesMax !== undefined && req.copies <= caps.copiesMax) out.push(attr('copies', Tag.integer, req.copies))
      else drop('copies', req.copies)
    }
    if (req.sides !== '') {
      // two-sided on the other edge rather than one-sided: the paper is saved, the binding differs
      const otherEdge = req.sides.startsWith('two-sided-') ? caps.sides?.find((s) => s.startsWith('two-sided-')) : undefined
      if (caps.sides?.includes(req.sides) === true) out.push(attr('sides', Tag.keyword, req.sides))
      else if (otherEdge !== undefined) out.push(attr('sides', Tag.keyword, otherEdge))
      else drop('sides', req.sides, req.sides !== 'one-sided')
    }
    if (req.media !== undefined && req.media !== '') {
      if (caps.media?.includes(req.media) === true) out.push(attr('media', Tag.keyword, req.media))
      else drop('media', req.media)
    }
    if (req.colorMode !== undefined) {
      if (caps.colorModes?.includes(req.colorMode) === true) out.push(attr('print-color-mode', Tag.keyword, req.colorMode))
      else drop('print-color-mode', req.colorMode)
    }
    if (unsupported.length > 0) this.#log.warn({ dropped: unsupported }, 'printer does not support these job attributes; printing without them')
    return { attributes: out, dropped }
  }

  // ---- following (after acceptance) -------------------------------------------------

  async #followJob (jobId: number, signal: AbortSignal): Promise<PrintOutcome> {
    let lastAnswer = Date.now()
    let lastState: number | undefined
    for (;;) {
      if (signal.aborted) throw this.#abortedAfterAccept(jobId, signal)
      let res: IppMessage | undefined
      try {
        res = await ippExchange(this.#target, this.#request(Op.GetJobAttributes, [
          attr('job-id', Tag.integer, jobId),
          attr('requested-attributes', Tag.keyword, ...JOB_ATTRIBUTES)
        ]), this.#smallLimits(), signal)
      } catch (err) {
        if (signal.aborted) throw this.#abortedAfterAccept(jobId, signal)
        if (!isTransient(err)) {
          throw printerError(`lost track of printer job ${jobId}: ${(err as Error).message}`, 'printer-unreachable-after-accept', false, err)
        }
        this.#log.warn({ printerJobId: jobId, err: (err as Error).message }, 'printer not answering while following job')
      }

      if (res !== undefined && RETRYABLE_STATUSES.has(res.code)) {
        this.#log.warn({ printerJobId: jobId, status: statusName(res.code) }, 'printer busy while following job')
      } else if (res !== undefined && res.code >= FIRST_ERROR_STATUS) {
        throw printerError(`printer answered ${statusName(res.code)} about job ${jobId}; its outcome is unknown`, 'printer-unreachable-after-accept', false)
      } else if (res !== undefined) {
        lastAnswer = Date.now()
        const jobAttr = (name: string): IppAttribute | undefined => findAttr(res, Tag.jobAttributes, name)
        const state = integerValue(jobAttr('job-state'))
        if (state !== lastState) {
          this.#log.debug({ printerJobId: jobId, state: state === undefined ? undefined : enumName('job-state', state) }, 'printer job state')
          lastState = state
        }
        const answer = outcomeOfJob(res, jobId)
        if (answer.state === 'completed') {
          this.#log.info({ printerJobId: jobId, impressions: integerValue(jobAttr('job-impressions-completed')) }, 'printer job completed')
          return { printerJobId: jobId, ...(answer.impressions !== undefined ? { impressions: answer.impressions } : {}) }
        }
        if (answer.state === 'failed') throw printerError(answer.message ?? `printer job ${jobId} failed`, answer.reason ?? 'aborted-by-system', false)
      }

      if (Date.now() - lastAnswer > this.#follow.unreachableDeadlineMs) {
        throw printerError(
          `printer job ${jobId} could not be followed: no answer for ${this.#follow.unreachableDeadlineMs} ms; it may or may not have printed`,
          'printer-unreachable-after-accept', false)
      }
      try {
        await sleep(this.#follow.pollIntervalMs, undefined, { signal })
      } catch {
        throw this.#abortedAfterAccept(jobId, signal)
      }
    }
  }

  #abortedAfterAccept (jobId: number, signal: AbortSignal): PrinterError {
    return printerError(`stopped following printer job ${jobId}; the printer may still print it`, 'release-aborted', false, signal.reason)
  }

  // ---- helpers ------------------------------------------------------------------------

  #smallLimits (): { connectTimeoutMs: number, idleTimeoutMs: number, totalTimeoutMs: number } {
    return { connectTimeoutMs: this.#timeouts.connectMs, idleTimeoutMs: this.#timeouts.requestMs, totalTimeoutMs: this.#timeouts.requestMs }
  }

  /** An IPP/2.0 request: the RFC 8011 operation attributes first, then `extra`, then job attributes. */
  #request (op: number, extra: IppAttribute[], userName = 'printmesh', jobAttributes: IppAttribute[] = []): IppMessage {
    this.#requestId = this.#requestId >= 0x7fffffff ? 1 : this.#requestId + 1
    const operation: IppAttribute[] = [
      attr('attributes-charset', Tag.charset, 'utf-8'),
      attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
      attr('printer-uri', Tag.uri, this.#printerUri),
      attr('requesting-user-name', Tag.nameWithoutLanguage, truncateOctets(userName === '' ? 'anonymous' : userName, MAX_NAME_OCTETS)),
      ...extra
    ]
    return {
      version: { major: 2, minor: 0 },
      code: op,
      requestId: this.#requestId,
      groups: [
        { tag: Tag.operationAttributes, attributes: operation },
        ...(jobAttributes.length > 0 ? [{ tag: Tag.jobAttributes, attributes: jobAttributes }] : [])
      ]
    }
  }
}
