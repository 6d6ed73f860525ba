/**
 * PWG raster (PWG 5102.4, `image/pwg-raster`): a 4-byte sync word `RaS2`, then per page
 * a 1796-byte big-endian header followed by the page's compressed lines.
 *
 * Each page is walked line by line: the compression has no length field, so the only
 * way to find the next header is to decode every line's repeat count and runs.
 */
import { CorruptDocumentError, corruptDocument } from './errors.ts'
import { GRAY_TOLERANCE } from './color.ts'
import { withFile, type BufferedFile } from './io.ts'
import { mediaName } from './media.ts'
import type { DocumentInfo } from './index.ts'

const FORMAT = 'image/pwg-raster'
/** PWG raster sync word (the only one PWG 5102.4 allows). */
const SYNC_WORD = 'RaS2'
/** Size of a PWG raster page header (PWG 5102.4 section 4.3). */
export const PWG_HEADER_BYTES = 1796

// Header field offsets (PWG 5102.4 table 1 / cups_page_header2_t).
const OFF_DUPLEX = 272
const OFF_NUM_COPIES = 340
const OFF_PAGE_SIZE = 352
const OFF_WIDTH = 372
const OFF_HEIGHT = 376
const OFF_BITS_PER_COLOR = 384
const OFF_BITS_PER_PIXEL = 388
const OFF_BYTES_PER_LINE = 392
const OFF_COLOR_ORDER = 396
const OFF_COLOR_SPACE = 400
const OFF_NUM_COLORS = 420

/** Widest line accepted: 64 MiB is a 2.2 m wide 16-bit CMYK line at 1200 dpi. */
const MAX_BYTES_PER_LINE = 64 << 20

/** cupsColorSpace values (cups/raster.h) whose pages are always mono. */
const MONO_SPACES = new Set([
  0, // CUPS_CSPACE_W (luminance)
  3, // CUPS_CSPACE_K
  12, // CUPS_CSPACE_WHITE
  18, // CUPS_CSPACE_SW (sGray)
  48 // CUPS_CSPACE_DEVICE1 (one colorant)
])
/** RGB-like spaces: the first three channels are R, G, B; a pixel is gray when they agree. */
const RGB_SPACES = new Set([
  1, // RGB
  2, // RGBA
  17, // RGBW
  19, // sRGB
  20 // AdobeRGB
])
/** CMYK-like spaces where the first three channels are C, M, Y in some order; gray when all are 0. */
const CMY_FIRST_SPACES = new Set([
  6, // CMYK
  7 // YMCK
])

/**
 * How a page's colour is decided. Raster drivers often send black text as sRGB, so a
 * colour space alone would over-charge: for chunky 8/16-bit RGB and CMYK pages every
 * decoded pixel is checked (gray within {@link GRAY_TOLERANCE}); pages in other colour
 * spaces or orders are colour when their space has more than one colorant.
 */
type ColorRule =
  | { kind: 'mono' }
  | { kind: 'color' }
  | { kind: 'rgb', channels: number, wide: boolean }
  | { kind: 'cmy', channels: number, wide: boolean }

interface PageHeader {
  duplex: boolean
  copies: number
  width: number
  height: number
  pageWidthPt: number
  pageHeightPt: number
  bytesPerLine: number
  bytesPerPixel: number
  rule: ColorRule
}

function corrupt (message: string): CorruptDocumentError {
  return corruptDocument(FORMAT, message)
}

function parseHeader (h: Buffer, page: number): PageHeader {
  const u = (off: number): number => h.readUInt32BE(off)
  const width = u(OFF_WIDTH)
  const height = u(OFF_HEIGHT)
  const bitsPerColor = u(OFF_BITS_PER_COLOR)
  const bitsPerPixel = u(OFF_BITS_PER_PIXEL)
  const bytesPerLine = u(OFF_BYTES_PER_LINE)
  const colorOrder = u(OFF_COLOR_ORDER)
  const colorSpace = u(OFF_COLOR_SPACE)
  const numColors = u(OFF_NUM_COLORS)
  if (width === 0 || height === 0) throw corrupt(`page ${page}: empty raster ${width}x${height}`)
  if (![1, 2, 4, 8, 16].includes(bitsPerColor)) throw corrupt(`page ${page}: unsupported bits per color ${bitsPerColor}`)
  if (bitsPerPixel === 0 || bitsPerPixel > 240 || (bitsPerPixel > 8 && bitsPerPixel % 8 !== 0)) {
    throw corrupt(`page ${page}: unsupported bits per pixel ${bitsPerPixel}`)
  }
  if (bytesPerLine === 0 || bytesPerLine > MAX_BYTES_PER_LINE || bytesPerLine !== Math.ceil(width * bitsPerPixel / 8)) {
    throw corrupt(`page ${page}: bytes per line ${bytesPerLine} does not match width ${width} at ${bitsPerPixel} bits per pixel`)
  }
  const bytesPerPixel = Math.ceil(bitsPerPixel / 8)
  if (bytesPerLine % bytesPerPixel !== 0) throw corrupt(`page ${page}: line of ${bytesPerLine} bytes is not whole pixels`)

  let rule: ColorRule
  const chunkyWhole = colorOrder === 0 && (bitsPerColor === 8 || bitsPerColor === 16)
  const channels = chunkyWhole ? bitsPerPixel / bitsPerColor : 0
  if (MONO_SPACES.has(colorSpace)) rule = { kind: 'mono' }
  else if (RGB_SPACES.has(colorSpace) && chunkyWhole && channels >= 3) rule = { kind: 'rgb', channels, wide: bitsPerColor === 16 }
  else if (CMY_FIRST_SPACES.has(colorSpace) && chunkyWhole && channels >= 3) rule = { kind: 'cmy', channels, wide: bitsPerColor === 16 }
  else if (colorSpace >= 48 && colorSpace <= 62 && numColors === 1) rule = { kind: 'mono' }
  else rule = { kind: 'color' }

  return {
    duplex: u(OFF_DUPLEX) !== 0,
    copies: u(OFF_NUM_COPIES),
    width,
    height,
    pageWidthPt: u(OFF_PAGE_SIZE),
    pageHeightPt: u(OFF_PAGE_SIZE + 4),
    bytesPerLine,
    bytesPerPixel,
    rule
  }
}

/** Whether the pixel at `buf[at]` is colour under `rule` (only called for rgb/cmy rules). */
function pixelIsColor (buf: Buffer, at: number, rule: ColorRule): boolean {
  if (rule.kind !== 'rgb' && rule.kind !== 'cmy') return rule.kind === 'color'
  const step = rule.wide ? 2 : 1 // 16-bit channels: the high byte is enough at this tolerance
  const a = buf[at]
  const b = buf[at + step]
  const c = buf[at + 2 * step]
  if (rule.kind === 'rgb') return Math.max(a, b, c) - Math.min(a, b, c) > GRAY_TOLERANCE
  return a > GRAY_TOLERANCE || b > GRAY_TOLERANCE || c > GRAY_TOLERANCE
}

/**
 * Decodes one page's lines, returning whether any pixel is colour. Runs that overflow a
 * line or lines beyond the page height are corrupt (CUPS would clamp them and lose
 * sync with the next header).
 */
async function walkPage (file: BufferedFile, h: PageHeader, page: number, signal?: AbortSignal): Promise<boolean> {
  const check = h.rule.kind === 'rgb' || h.rule.kind === 'cmy'
  let color = h.rule.kind === 'color'
  const bpp = h.bytesPerPixel
  let y = 0
  while (y < h.height) {
    if ((y & 0x3ff) === 0) signal?.throwIfAborted()
    if (!(await file.ensure(1))) throw corrupt(`page ${page}: truncated at line ${y} of ${h.height}`)
    const lineRepeat = file.buf[file.pos++] + 1
    y += lineRepeat
    if (y > h.height) throw corrupt(`page ${page}: line repeat runs past the page height ${h.height}`)
    let x = 0
    while (x < h.bytesPerLine) {
      if (!(await file.ensure(1))) throw corrupt(`page ${page}: truncated inside line ${y - lineRepeat}`)
      const ctl = file.buf[file.pos++]
      if (ctl & 0x80) {
        const n = (257 - ctl) * bpp
        if (x + n > h.bytesPerLine) throw corrupt(`page ${page}: literal run overflows line ${y - lineRepeat}`)
        if (!(await file.ensure(n))) throw corrupt(`page ${page}: truncated inside a literal run`)
        if (check && !color) {
          for (let at = file.pos; at < file.pos + n; at += bpp) {
            if (pixelIsColor(file.buf, at, h.rule)) { color = true; break }
          }
        }
        file.pos += n
        x += n
      } else {
        const n = (ctl + 1) * bpp
        if (x + n > h.bytesPerLine) throw corrupt(`page ${page}: repeat run overflows line ${y - lineRepeat}`)
        if (!(await file.ensure(bpp))) throw corrupt(`page ${page}: truncated inside a repeat run`)
        if (check && !color && pixelIsColor(file.buf, file.pos, h.rule)) color = true
        file.pos += bpp
        x += n
      }
    }
  }
  return color
}

/** Parses a PWG raster file: pages, colour pages, first page's media, Duplex, NumCopies. */
export async function parsePwgRaster (path: string, signal?: AbortSignal): Promise<DocumentInfo> {
  return await withFile(path, signal, async (file) => {
    const sync = await file.read(4)
    if (sync === undefined || sync.toString('latin1') !== SYNC_WORD) throw corrupt(`missing '${SYNC_WORD}' sync word`)
    let pages = 0
    let colorPages = 0
    let first: PageHeader | undefined
    while (!(await file.atEnd())) {
      const raw = await file.read(PWG_HEADER_BYTES)
      if (raw === undefined) throw corrupt(`truncated page header after ${pages} page(s)`)
      const header = parseHeader(raw, pages + 1)
      first ??= header
      if (await walkPage(file, header, pages + 1, signal)) colorPages++
      pages++
    }
    if (first === undefined) throw corrupt('no pages')
    return {
      format: FORMAT,
      pages,
      colorPages,
      media: mediaName(first.pageWidthPt, first.pageHeightPt),
      duplex: first.duplex,
      ...(first.copies > 0 ? { copies: first.copies } : {})
    }
  })
}
