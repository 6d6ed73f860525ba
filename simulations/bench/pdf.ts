/**
 * Valid PDFs of a chosen size for the ingestion benchmark: a one-page document (pdf-lib)
 * with an uncompressed stream object of pseudo-random bytes that brings it to the size.
 *
 * Every request should carry a different document (printmesh's spool is content-addressed,
 * CUPS's is not: identical bytes would favour printmesh), so {@link PaddedPdf.variant}
 * stamps a counter into the padding at a known offset: the file stays valid and the same size.
 */
import { PDFDocument, PDFName, StandardFonts } from 'pdf-lib'

/** Where the per-request counter goes inside the padding: after a marker we can find again. */
const MARKER = Buffer.from('printmesh-bench-padding:')
/** Digits of the stamped counter. */
const COUNTER_DIGITS = 12
/** Fixed seed: the same size gives the same bytes on every run. */
const PAD_SEED = 0x5eed

export class PdfSizeError extends Error {
  constructor (message: string) { super(message); this.name = 'PdfSizeError' }
}

export interface PaddedPdf {
  /** Size in bytes (every variant has the same size). */
  size: number
  /** The document with `n` stamped into its padding. */
  variant (n: number): Buffer
}

function padding (length: number): Uint8Array {
  const out = new Uint8Array(length)
  let s = PAD_SEED
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    out[i] = s >>> 24
  }
  out.set(MARKER, 0)
  return out
}

async function build (padBytes: number): Promise<Buffer> {
  const doc = await PDFDocument.create()
  const fixed = new Date(Date.UTC(2024, 0, 1))
  doc.setCreationDate(fixed)
  doc.setModificationDate(fixed)
  doc.setProducer('printmesh bench')
  const font = await doc.embedFont(StandardFonts.Helvetica)
  const page = doc.addPage([595.28, 841.89])
  page.drawText('printmesh ingestion benchmark', { x: 72, y: 760, size: 18, font })
  // an uncompressed stream hung off the catalog, so the bytes stay where we put them
  const stream = doc.context.stream(padding(Math.max(MARKER.length + COUNTER_DIGITS, padBytes)))
  doc.catalog.set(PDFName.of('PrintmeshBenchPadding'), doc.context.register(stream))
  return Buffer.from(await doc.save({ useObjectStreams: false }))
}

/** A PDF of `target` bytes (within a few bytes) whose variants differ only in a counter. */
export async function paddedPdf (target: number): Promise<PaddedPdf> {
  const base = await build(0)
  const overhead = base.length - (MARKER.length + COUNTER_DIGITS)
  if (target <= base.length) throw new PdfSizeError(`a padded PDF cannot be smaller than ${base.length} bytes (asked for ${target})`)
  let bytes = await build(target - overhead)
  // the length field's digits may shift the size by a few bytes: correct once
  if (bytes.length !== target) bytes = await build(target - overhead - (bytes.length - target))
  const at = bytes.indexOf(MARKER)
  if (at < 0) throw new PdfSizeError('padding marker not found in the saved PDF')
  const offset = at + MARKER.length
  return {
    size: bytes.length,
    variant (n: number): Buffer {
      const copy = Buffer.from(bytes)
      copy.write(String(n).padStart(COUNTER_DIGITS, '0').slice(-COUNTER_DIGITS), offset, 'latin1')
      return copy
    }
  }
}
