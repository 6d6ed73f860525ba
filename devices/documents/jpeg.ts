/**
 * JPEG (`image/jpeg`, JFIF/EXIF): one page; colour from the frame header's component
 * count. The whole marker structure is walked to EOI so a truncated file is refused.
 */
import { CorruptDocumentError, corruptDocument } from './errors.ts'
import { withFile, type BufferedFile } from './io.ts'
import type { DocumentInfo } from './index.ts'

const FORMAT = 'image/jpeg'

/** Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic). */
const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])
const SOI = 0xd8
const EOI = 0xd9
const SOS = 0xda
/** Markers without a length field: TEM and RST0..7 (SOI/EOI are handled on their own). */
function standalone (marker: number): boolean {
  return marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)
}

function corrupt (message: string): CorruptDocumentError {
  return corruptDocument(FORMAT, message)
}

/** Reads the next marker code (after any 0xFF fill bytes). */
async function nextMarker (file: BufferedFile): Promise<number> {
  if (!(await file.ensure(2))) throw corrupt('truncated: ends before EOI')
  if (file.buf[file.pos] !== 0xff) throw corrupt(`expected a marker at byte ${file.offset}`)
  file.pos++
  for (;;) {
    if (!(await file.ensure(1))) throw corrupt('truncated: ends before EOI')
    const code = file.buf[file.pos++]
    if (code !== 0xff) return code
  }
}

/**
 * Skips entropy-coded data after SOS up to the next real marker (0xFF followed by
 * neither 0x00 stuffing nor RSTn), leaving that marker unread.
 */
async function skipScan (file: BufferedFile, signal?: AbortSignal): Promise<void> {
  for (;;) {
    signal?.throwIfAborted()
    if (!(await file.ensure(2))) throw corrupt('truncated inside scan data')
    const window = file.buf.subarray(file.pos, file.end)
    const i = window.indexOf(0xff)
    if (i === -1) { file.pos = file.end; continue }
    if (i === window.length - 1) { file.pos += i; continue } // refill keeps the 0xFF
    const next = window[i + 1]
    if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) { file.pos += i + 2; continue }
    if (next === 0xff) { file.pos += i + 1; continue } // fill byte before a marker
    file.pos += i
    return
  }
}

/** Parses a JPEG: 1 page, colour when the frame has 3 or 4 components. */
export async function parseJpeg (path: string, signal?: AbortSignal): Promise<DocumentInfo> {
  return await withFile(path, signal, async (file) => {
    const soi = await file.read(2)
    if (soi === undefined || soi[0] !== 0xff || soi[1] !== SOI) throw corrupt('missing SOI marker')
    let components: number | undefined
    for (;;) {
      const marker = await nextMarker(file)
      if (marker === EOI) break
      if (marker === SOI) throw corrupt('second SOI marker')
      if (standalone(marker)) continue
      const lenBytes = await file.read(2)
      if (lenBytes === undefined) throw corrupt('truncated segment length')
      const len = lenBytes.readUInt16BE(0)
      if (len < 2) throw corrupt(`segment 0xff${marker.toString(16)} has length ${len}`)
      const body = await file.read(len - 2)
      if (body === undefined) throw corrupt(`truncated segment 0xff${marker.toString(16)}`)
      if (SOF_MARKERS.has(marker)) {
        if (components !== undefined) throw corrupt('more than one frame header')
        if (body.length < 6) throw corrupt('frame header too short')
        const width = body.readUInt16BE(3)
        const n = body[5]
        if (width === 0) throw corrupt('frame width is 0')
        if (n !== 1 && n !== 3 && n !== 4) throw corrupt(`frame has ${n} components`)
        if (body.length < 6 + 3 * n) throw corrupt('frame header too short for its components')
        components = n
      } else if (marker === SOS) {
        if (components === undefined) throw corrupt('scan before frame header')
        await skipScan(file, signal)
      }
    }
    if (components === undefined) throw corrupt('no frame header (SOF)')
    return { format: FORMAT, pages: 1, colorPages: components === 1 ? 0 : 1 }
  })
}
