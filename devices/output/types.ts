/**
 * Output devices: where a released job's document goes. Registered by URI scheme
 * (`ipp:`, `ipps:`, `file:`), as PAPPL does. A device only moves the document and
 * reports the outcome; retry of a whole release and accounting live in the job domain.
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
}

export interface PrintOutcome {
  /** The printer's own job id, when it has one. */
  printerJobId?: number
  /** Impressions the printer reports as completed, when it reports them. */
  impressions?: number
}

/** Progress events so the domain can move the job `releasing → printing`. */
export interface PrintProgress {
  /** The printer has accepted the document (it now owns printing it). */
  accepted (printerJobId?: number): void
}

export interface OutputDevice {
  readonly uri: string
  /**
   * Sends the document and follows it to completion. Resolves when the printer reports
   * the job completed; rejects with {@link PrinterError} otherwise.
   */
  print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<PrintOutcome>
  /** Whether the printer answers right now (for status pages); never throws. */
  probe (signal: AbortSignal): Promise<{ ok: boolean, message: string }>
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

export class UnsupportedDeviceUriError extends Error {
  constructor (uri: string) {
    super(`unsupported printer URI ${uri}: use ipp://, ipps:// or file://`)
    this.name = 'UnsupportedDeviceUriError'
  }
}
