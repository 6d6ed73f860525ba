/**
 * Errors of document parsing. Callers (IPP intake, client spooling) map
 * {@link UnsupportedFormatError} to `client-error-document-format-not-supported` and
 * {@link CorruptDocumentError} to `client-error-document-format-error`.
 * Both take a plain message, like `Error`, so other layers can raise them too.
 */

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
