/**
 * Errors of document parsing. Callers (IPP intake, client spooling) map
 * {@link UnsupportedFormatError} to `client-error-document-format-not-supported` and
 * {@link CorruptDocumentError} to `client-error-document-format-error`.
 * Both take a plain message, like `Error`, so other layers can raise them too.
 * {@link AnalysisStoppedError} is no verdict on the document: the job domain keeps it and
 * holds it with its pages unknown.
 */
import type { AnalysisProgress } from './index.ts'

/** The declared (or sniffed) MIME type is not one printmesh can parse. */
export class UnsupportedFormatError extends Error {
  override readonly name = 'UnsupportedFormatError'
}

/** The bytes do not parse as the declared format; the message says what is wrong. */
export class CorruptDocumentError extends Error {
  override readonly name = 'CorruptDocumentError'
}

/** A {@link CorruptDocumentError} whose message starts with the format, e.g. `image/jpeg: truncated inside scan data`. */
export function corruptDocument (format: string, message: string, cause?: unknown): CorruptDocumentError {
  return new CorruptDocumentError(`${format}: ${message}`, cause === undefined ? undefined : { cause })
}

/** An {@link UnsupportedFormatError} for `format`. */
export function unsupportedFormat (format: string): UnsupportedFormatError {
  return new UnsupportedFormatError(`unsupported document format '${format}'`)
}

/** What stopped an analysis: its time limit, its worker's memory limit, or its worker failing. */
export type AnalysisStop = 'time-limit' | 'memory-limit' | 'worker-failed'

/**
 * The analysis of a document was stopped before it ended (by the analyzer's time or
 * memory limit, or because its worker died), so its pages are unknown. The document may
 * well be valid and print (50,000 pages, a stream that inflates to gigabytes of blank
 * content): callers keep it. `progress` is what the analysis had learnt by then (the
 * format, the page count the document declares).
 */
export class AnalysisStoppedError extends Error {
  override readonly name = 'AnalysisStoppedError'
  readonly stop: AnalysisStop
  readonly progress: AnalysisProgress

  // fields spelled out, not parameter properties: analysis workers load this module with Node's own type stripping
  constructor (message: string, stop: AnalysisStop, progress: AnalysisProgress = {}) {
    super(message)
    this.stop = stop
    this.progress = progress
  }
}
