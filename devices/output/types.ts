/**
 * Output devices: where a released job's document goes. Registered by URI scheme
 * (`ipp:`, `ipps:`, `file:`), as PAPPL does. A device only moves the document and
 * reports the outcome; retry of a whole release and accounting live in the job domain.
 *
 * After a restart the job domain no longer waits on `print()`; it asks the printer what
 * became of a job it had accepted ({@link OutputDevice.outcome}, {@link OutputDevice.follow})
 * by the printer job id it was given in {@link PrintProgress.accepted}.
 */

export interface PrintRequest {
  /** Path of the spooled document (read-only). */
  documentPath: string
  /** MIME type of the document. */
  format: string
  jobName: string
  userName: string
  copies: number
  /** `one-sided`, `two-sided-long-edge`, `two-sided-short-edge`. */
  sides: string
  /** PWG media name, when the job asked for one. */
  media?: string
  /** `monochrome`: the site's print policy allows this user no colour (IPP `print-color-mode`). */
  colorMode?: 'monochrome'
}

export interface PrintOutcome {
  /** The printer's own job id, when it has one. */
  printerJobId?: number
  /** Impressions the printer reports as completed, when it reports them. */
  impressions?: number
  /** Job template attributes asked for that the printer does not support, so it printed without them (`sides`, `print-color-mode`…). */
  dropped?: string[]
}

/** Progress events so the domain can move the job `releasing → printing`. */
export interface PrintProgress {
  /**
   * The printer has accepted the document (it now owns printing it). `printerJobId`, when
   * the device has one, is what {@link OutputDevice.outcome} takes: the domain records it
   * durably at once, so that after a crash it can ask the printer instead of guessing.
   */
  accepted (printerJobId?: number): void
}

/**
 * What became of a job a printer accepted, as the printer tells it afterwards:
 * - `completed`: it finished the job (the paper came out);
 * - `failed`: the job was canceled or aborted at the printer (jam, canceled at the panel);
 * - `pending`: the printer still has it (queued, held, printing, stopped);
 * - `unknown`: no answer: the printer is unreachable or busy, does not know the job (any
 *   more), or cannot be asked at all. `reason` says which ({@link UNKNOWN_REASONS}).
 */
export type PrinterJobState = 'completed' | 'failed' | 'pending' | 'unknown'

export interface PrinterJobOutcome {
  state: PrinterJobState
  /**
   * IPP keyword-like reason: for `failed` the printer's (`job-canceled-at-device`,
   * `aborted-by-system`, …), for `unknown` one of {@link UNKNOWN_REASONS}.
   */
  reason?: string
  /** Human-readable detail (the printer's message, the network error). */
  message?: string
  /** Impressions the printer reports as completed (`completed` only, when it counts them). */
  impressions?: number
}

/** Why an outcome is `unknown`; the first two are worth asking again soon. */
export const UNKNOWN_REASONS = {
  /** No answer (refused, reset, timed out) */
  unreachable: 'printer-unreachable',
  /** The printer answered "busy, later" */
  busy: 'printer-busy',
  /** The printer does not know this job (it forgot it, restarted, or never had it) */
  notFound: 'printer-job-not-found',
  /** The printer answered, but not with anything that says how the job ended */
  badAnswer: 'printer-answer-unusable',
  /** The question was aborted (the caller is stopping) */
  aborted: 'outcome-query-aborted',
  /** The device cannot be asked at all (no such printer any more, or no {@link OutputDevice.outcome}) */
  cannotTell: 'printer-cannot-tell'
} as const

/** Whether `id` can be a printer job id: a positive safe integer. */
export function isPrinterJobId (id: unknown): id is number {
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0
}

/** One supply of a printer (IPP `marker-*`, RFC 3805 / PWG 5100.x): toner, ink, waste, drum. */
export interface PrinterMarker {
  name: string
  /** 0–100 percent; -1 unknown, -2 unknown but not empty, -3 some left (IPP's special values). */
  level: number
  /** `#RRGGBB` (or several joined by `#`), `none` for waste; absent when the printer gives none. */
  color?: string
  /** `toner`, `ink`, `waste-toner`, … */
  type?: string
}

/** What a printer says of itself when probed: `state`, `reasons` and `markers` only from printers that tell (IPP). */
export interface PrinterProbe {
  ok: boolean
  message: string
  /** `idle`, `processing`, `stopped` (IPP `printer-state`). */
  state?: string
  /** IPP `printer-state-reasons` without `none` (e.g. `media-empty-error`, `toner-low-warning`). */
  reasons?: string[]
  /** Supplies, in the printer's order; empty for a printer that reports none. */
  markers?: PrinterMarker[]
}

export interface OutputDevice {
  readonly uri: string
  /**
   * Sends the document and follows it to completion. Resolves when the printer reports
   * the job completed; rejects with {@link PrinterError} otherwise.
   */
  print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<PrintOutcome>
  /** Whether the printer answers right now (for status pages); never throws. */
  probe (signal: AbortSignal): Promise<PrinterProbe>
  /**
   * Asks the printer once what became of a job it accepted (`printerJobId` as passed to
   * {@link PrintProgress.accepted}). Never rejects for printer trouble or an abort: those
   * answer `unknown`. Optional: a device that cannot tell after the fact omits it, and the
   * job domain then assumes, as before, that an accepted job printed.
   *
   * @throws {InvalidPrinterJobIdError} `printerJobId` is not an id this device hands out
   */
  outcome? (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome>
  /**
   * Waits until the printer's job has ended: resolves `completed` or `failed`, or `unknown`
   * when the device gives up (printer unreachable past the device's own deadline, job not
   * known, signal aborted); never `pending`, never rejects for printer trouble. For a job
   * {@link outcome} answered `pending`: it resolves as soon as the printer knows, where
   * asking again on a timer would be late. Optional, like {@link outcome}.
   *
   * @throws {InvalidPrinterJobIdError} as {@link outcome}
   */
  follow? (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome>
}

/**
 * A printer-side failure. `beforeAccept` is true when the printer never accepted the
 * document (connection refused, busy): only then may a release be retried without any
 * risk of printing twice.
 */
export class PrinterError extends Error {
  constructor (
    message: string,
    /** IPP keyword-like reason for the job, e.g. `printer-stopped`, `job-canceled-at-device`. */
    readonly reason: string,
    readonly beforeAccept: boolean
  ) {
    super(message)
    this.name = 'PrinterError'
  }
}

/**
 * Reasons of a {@link PrinterError} that mean "not now" from a printer that answered:
 * busy with another job, not accepting jobs for a while, temporarily unavailable (the IPP
 * statuses `server-error-busy`, `-not-accepting-jobs`, `-service-unavailable`,
 * `-temporary-error` and HTTP 503). Normal for a printer that takes one job at a time.
 */
export const PRINTER_BUSY_REASONS: ReadonlySet<string> = new Set(['busy', 'not-accepting-jobs', 'service-unavailable', 'temporary-error'])

/** Whether `err` is a printer saying "not now" before it accepted the document: the release may wait and try again. */
export function isPrinterBusy (err: unknown): err is PrinterError {
  return err instanceof PrinterError && err.beforeAccept && PRINTER_BUSY_REASONS.has(err.reason)
}

/** A printer job id that this device never hands out (not a positive integer, out of range). */
export class InvalidPrinterJobIdError extends Error {
  constructor (id: unknown, why = 'must be a positive integer') {
    super(`invalid printer job id ${String(id)}: ${why}`)
    this.name = 'InvalidPrinterJobIdError'
  }
}

export class UnsupportedDeviceUriError extends Error {
  constructor (uri: string) {
    super(`unsupported printer URI ${uri}: use ipp://, ipps:// or file://`)
    this.name = 'UnsupportedDeviceUriError'
  }
}
