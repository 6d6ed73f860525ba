/**
 * Document parsing: what a spooled print document asks for (pages, colour pages, media,
 * duplex, copies), for accounting and release decisions.
 *
 * One module per format; this one picks the parser by MIME type. Every parser reads the
 * file from disk in bounded chunks (PDF excepted, see `pdf.ts`), rejects bytes that do
 * not parse with {@link CorruptDocumentError}, and honours an `AbortSignal`.
 */
import { corruptDocument, unsupportedFormat, UnsupportedFormatError } from './errors.ts'
import { parseJpeg } from './jpeg.ts'
import { parsePdf } from './pdf.ts'
import { parsePostScript } from './postscript.ts'
import { parsePwgRaster } from './pwg.ts'
import { parseText } from './text.ts'
import { withFile } from './io.ts'

export { AnalysisStoppedError, CorruptDocumentError, UnsupportedFormatError, type AnalysisStop } from './errors.ts'
export { mediaName, MEDIA_TOLERANCE_PT } from './media.ts'
export { MAX_COLOR_ANALYSED_PAGES } from './pdf.ts'
export { TEXT_LINES_PER_PAGE, TEXT_COLUMNS_PER_LINE } from './text.ts'
export { GRAY_TOLERANCE } from './color.ts'

/** What a print document asks for, as far as the document itself says. */
export interface DocumentInfo {
  /** MIME type actually parsed (the sniffed one when declared `application/octet-stream`). */
  format: string
  /** Pages: impressions for one copy printed one-sided. */
  pages: number
  /** Pages that contain any non-gray colour (0..pages). */
  colorPages: number
  /** PWG self-describing media name of the first page, e.g. `iso_a4_210x297mm`, or `custom_<w>x<h>mm`. */
  media?: string
  /** Whether the document itself asks for two-sided printing (absent when it does not say). */
  duplex?: boolean
  /** Copies the document itself asks for (absent when it does not say). */
  copies?: number
}

/**
 * What an analysis has learnt before it ends, reported as it goes: when the analysis is
 * stopped (time or memory limit), the document can still be held, printed and charged.
 */
export interface AnalysisProgress {
  /** The MIME type being parsed (the sniffed one for `application/octet-stream`). */
  format?: string
  /**
   * Pages the document says it has before they are counted one by one (a PDF's page
   * tree `/Count`, as pdf.js reads it). A claim, not a count: used only when the count
   * never comes.
   */
  declaredPages?: number
}

/** Receives {@link AnalysisProgress} while a document is parsed. */
export type ProgressListener = (progress: AnalysisProgress) => void

/** MIME types {@link parseDocument} understands. */
export const SUPPORTED_FORMATS: readonly string[] = Object.freeze([
  'application/pdf',
  'application/postscript',
  'image/pwg-raster',
  'text/plain',
  'image/jpeg'
])

/** Declared format meaning "look at the bytes" (IPP's auto-sense). */
const OCTET_STREAM = 'application/octet-stream'
/** Bytes {@link parseDocument} reads to sniff an `application/octet-stream` document. */
export const SNIFF_BYTES = 4096
/** How far into the head `%PDF-` may start (same tolerance as the PDF parser). */
const PDF_HEADER_SEARCH_BYTES = 1024

const PARSERS: Record<string, (path: string, signal?: AbortSignal, onProgress?: ProgressListener) => Promise<DocumentInfo>> = {
  'application/pdf': parsePdf,
  'application/postscript': parsePostScript,
  'image/pwg-raster': parsePwgRaster,
  'text/plain': parseText,
  'image/jpeg': parseJpeg
}

/** Whether `head` is UTF-8 (or ASCII) without NUL bytes; a sequence cut at the end is fine. */
function looksLikeText (head: Buffer): boolean {
  if (head.length === 0 || head.includes(0)) return false
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true })
    return true
  } catch (err) {
    if (err instanceof TypeError) return false // the decoder's "invalid data" error
    throw err
  }
}

/**
 * The format of a document from its first bytes (magic numbers), for documents sent as
 * `application/octet-stream`: `%PDF-` (within the first 1 KiB), `%!` or a DOS EPS
 * header, `RaS2`, JPEG's SOI + marker; otherwise `text/plain` when the head is UTF-8
 * without NULs. Undefined when none fits.
 */
export function sniffFormat (head: Buffer): string | undefined {
  if (head.subarray(0, PDF_HEADER_SEARCH_BYTES).includes('%PDF-', 0, 'latin1')) return 'application/pdf'
  if (head.subarray(0, 2).toString('latin1') === '%!') return 'application/postscript'
  if (head.length >= 4 && head.readUInt32BE(0) === 0xc5d0d3c6) return 'application/postscript'
  if (head.subarray(0, 4).toString('latin1') === 'RaS2') return 'image/pwg-raster'
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg'
  if (looksLikeText(head)) return 'text/plain'
  return undefined
}

/** `Text/Plain; charset=utf-8` → `text/plain`. */
function baseType (format: string): string {
  return format.split(';')[0].trim().toLowerCase()
}

/**
 * Parses the document at `path` as `format` (MIME parameters are ignored;
 * `application/octet-stream` is sniffed with {@link sniffFormat}). `onProgress` hears the
 * format once it is known and, for PDF, the page count the document declares.
 *
 * @throws UnsupportedFormatError when the format is not in {@link SUPPORTED_FORMATS} (or cannot be sniffed)
 * @throws CorruptDocumentError when the bytes do not parse as that format
 * @throws the signal's reason when `signal` aborts
 */
export async function parseDocument (path: string, format: string, signal?: AbortSignal, onProgress?: ProgressListener): Promise<DocumentInfo> {
  signal?.throwIfAborted()
  let type = baseType(format)
  if (type === OCTET_STREAM) {
    const head = await withFile(path, signal, async (file) => {
      await file.ensure(Math.min(SNIFF_BYTES, file.size))
      return Buffer.from(file.buf.subarray(file.pos, Math.min(file.end, file.pos + SNIFF_BYTES)))
    })
    if (head.length === 0) throw corruptDocument(OCTET_STREAM, 'empty document')
    const sniffed = sniffFormat(head)
    if (sniffed === undefined) throw new UnsupportedFormatError(`unsupported document format: the bytes match none of ${SUPPORTED_FORMATS.join(', ')}`)
    type = sniffed
  }
  const parse = PARSERS[type]
  if (parse === undefined || !SUPPORTED_FORMATS.includes(type)) throw unsupportedFormat(type)
  onProgress?.({ format: type })
  return await parse(path, signal, onProgress)
}
