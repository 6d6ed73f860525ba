// Document parsing: exact pages, colour pages, media, duplex and copies per format, and
// refusal of bytes that do not parse.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  parseDocument, sniffFormat, SUPPORTED_FORMATS, CorruptDocumentError, UnsupportedFormatError,
  MAX_COLOR_ANALYSED_PAGES, TEXT_LINES_PER_PAGE, TEXT_COLUMNS_PER_LINE, mediaName, type DocumentInfo
} from '../devices/documents/index.ts'
import {
  makePdf, makePostScript, makePwgRaster, makeText, makeJpeg, textLines, runGhostscript, FIXTURE_MEDIA_NAMES
} from './fixtures/documents.ts'

let dir = ''
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }

test.before(async () => {
  process.on('unhandledRejection', onUnhandled)
  dir = await mkdtemp(join(tmpdir(), 'printmesh-documents-'))
})
test.after(async () => {
  process.off('unhandledRejection', onUnhandled)
  if (dir !== '') await rm(dir, { recursive: true, force: true })
})

/** Writes raw bytes into the test folder. */
async function bytes (name: string, data: Buffer | string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, data)
  return path
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function noise (n: number, seed = 0x2545f491): Buffer {
  const out = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

async function rejectsWith (p: Promise<unknown>, cls: new (...a: never[]) => Error, match?: RegExp): Promise<Error> {
  try {
    await p
  } catch (err) {
    assert.instance(err, cls, `expected ${cls.name}, got ${String(err)}`)
    if (match !== undefined) assert.match((err as Error).message, match)
    return err as Error
  }
  assert.unreachable(`expected ${cls.name}`)
  throw new Error('unreachable')
}

async function truncated (path: string, fraction: number): Promise<string> {
  const data = await readFile(path)
  return await bytes(`trunc-${Math.round(fraction * 100)}-${path.split('/').pop() ?? 'x'}`, data.subarray(0, Math.floor(data.length * fraction)))
}

// ------------------------------------------------------------------------------ PDF

test('PDF: pages, colour pages from vector fills, A4', async () => {
  const info = await parseDocument(await makePdf(dir, { pages: 4, colorPages: [0, 2] }), 'application/pdf')
  assert.equal(info, { format: 'application/pdf', pages: 4, colorPages: 2, media: 'iso_a4_210x297mm' })
})

test('PDF: colour that comes only from an RGB image counts; gray RGB images do not', async () => {
  const info = await parseDocument(await makePdf(dir, { pages: 3, colorPages: [1], colorFrom: 'image', grayImages: true, media: 'letter' }), 'application/pdf')
  assert.equal([info.pages, info.colorPages, info.media], [3, 1, 'na_letter_8.5x11in'])
})

test('PDF: all-mono and all-colour documents', async () => {
  const mono = await parseDocument(await makePdf(dir, { pages: 5, grayImages: true }), 'application/pdf')
  assert.equal([mono.pages, mono.colorPages], [5, 0])
  const color = await parseDocument(await makePdf(dir, { pages: 3, colorPages: [0, 1, 2], colorFrom: 'image' }), 'application/pdf')
  assert.equal([color.pages, color.colorPages], [3, 3])
})

test('PDF: CMYK black-only ink is mono; rotation keeps the media name; ViewerPreferences give duplex and copies', async () => {
  const info = await parseDocument(await makePdf(dir, { pages: 2, cmykBlack: true, rotate: true, duplex: true, copies: 3, media: 'a5' }), 'application/pdf')
  assert.equal(info, { format: 'application/pdf', pages: 2, colorPages: 0, media: 'iso_a5_148x210mm', duplex: true, copies: 3 })
  const simplex = await parseDocument(await makePdf(dir, { pages: 1, duplex: false }), 'application/pdf')
  assert.is(simplex.duplex, false)
  assert.is(simplex.copies, undefined)
})

test('PDF: a custom page size gets a custom_WxHmm name', async () => {
  const info = await parseDocument(await makePdf(dir, { pages: 1, media: [300, 500] }), 'application/pdf')
  assert.is(info.media, 'custom_105.8x176.4mm')
})

test('PDF: page count agrees with poppler\'s pdfinfo', async () => {
  const path = await makePdf(dir, { pages: 7, colorPages: [6] })
  const r = spawnSync('pdfinfo', [path], { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr)
  const pdfinfoPages = Number(/^Pages:\s+(\d+)/m.exec(r.stdout)?.[1])
  const info = await parseDocument(path, 'application/pdf')
  assert.equal([info.pages, info.colorPages], [pdfinfoPages, 1])
  assert.is(pdfinfoPages, 7)
})

test(`PDF: pages beyond MAX_COLOR_ANALYSED_PAGES (${MAX_COLOR_ANALYSED_PAGES}) are charged as colour`, async () => {
  const pages = MAX_COLOR_ANALYSED_PAGES + 3
  const info = await parseDocument(await makePdf(dir, { pages }), 'application/pdf')
  assert.equal([info.pages, info.colorPages], [pages, 3])
})

test('PDF: truncated, garbage after the header, header only, random bytes → CorruptDocumentError', async () => {
  const good = await makePdf(dir, { pages: 3, colorPages: [1] })
  for (const f of [0.1, 0.5, 0.9]) await rejectsWith(parseDocument(await truncated(good, f), 'application/pdf'), CorruptDocumentError, /application\/pdf/)
  const data = await readFile(good)
  await rejectsWith(parseDocument(await bytes('garbage.pdf', Buffer.concat([data.subarray(0, 15), noise(data.length)])), 'application/pdf'), CorruptDocumentError, /Invalid PDF structure/)
  await rejectsWith(parseDocument(await bytes('header-only.pdf', '%PDF-1.7\n%%EOF\n'), 'application/pdf'), CorruptDocumentError)
  await rejectsWith(parseDocument(await bytes('noise.pdf', noise(5000)), 'application/pdf'), CorruptDocumentError, /%PDF- header/)
})

test('PDF: a broken or cut xref table over intact objects is repaired (as poppler does), not refused', async () => {
  const path = await makePdf(dir, { pages: 4, colorPages: [3] })
  const data = (await readFile(path)).toString('latin1')
  const at = data.lastIndexOf('\nxref')
  assert.ok(at > 0)
  const noStartxref = Buffer.from(data.slice(0, data.lastIndexOf('startxref')), 'latin1') // objects, xref and trailer; no startxref / %%EOF
  const cut = await parseDocument(await bytes('no-startxref.pdf', noStartxref), 'application/pdf')
  assert.equal([cut.pages, cut.colorPages], [4, 1])
  // Cut inside the xref table, the trailer (and so the document catalog) is lost: corrupt.
  await rejectsWith(parseDocument(await bytes('cut-xref.pdf', Buffer.from(data.slice(0, at + 40), 'latin1')), 'application/pdf'), CorruptDocumentError)
  const broken = data.slice(0, at) + data.slice(at).replace(/\d{10} 00000 n/g, '0000000001 00000 n')
  assert.is.not(broken, data)
  const info = await parseDocument(await bytes('bad-xref.pdf', Buffer.from(broken, 'latin1')), 'application/pdf')
  assert.equal([info.pages, info.colorPages], [4, 1])
})

// ----------------------------------------------------------------------- PostScript

/** Ghostscript must accept every PostScript fixture, so they are real documents. */
function assertValidPostScript (path: string): void {
  runGhostscript(['-sDEVICE=nullpage', path])
}

test('PostScript: DSC pages, setrgbcolor colour pages, DocumentMedia, Requirements duplex, #copies', async () => {
  const path = await makePostScript(dir, { pages: 3, colorPages: [1], duplex: true, copies: 2 })
  assertValidPostScript(path)
  const info = await parseDocument(path, 'application/postscript')
  assert.equal(info, { format: 'application/postscript', pages: 3, colorPages: 1, media: 'iso_a4_210x297mm', duplex: true, copies: 2 })
})

test('PostScript: %%Pages: (atend) read from the trailer; colour through prolog abbreviations', async () => {
  const path = await makePostScript(dir, { pages: 4, colorPages: [0, 3], pagesAtEnd: true, abbreviations: true, media: 'letter' })
  assertValidPostScript(path)
  const info = await parseDocument(path, 'application/postscript')
  assert.equal(info, { format: 'application/postscript', pages: 4, colorPages: 2, media: 'na_letter_8.5x11in' })
})

test('PostScript: without DSC, pages are showpages and colour is split at them', async () => {
  const path = await makePostScript(dir, { pages: 3, colorPages: [2], noDsc: true, media: 'legal' })
  assertValidPostScript(path)
  const info = await parseDocument(path, 'application/postscript')
  assert.equal([info.pages, info.colorPages, info.media], [3, 1, FIXTURE_MEDIA_NAMES.legal])
})

test('PostScript: CMYK, HSB, colorimage, setcolor and setpagedevice rules', async () => {
  const page = (n: number, body: string): string => `%%Page: ${n} ${n}\nsave ${body} 10 10 50 50 rectfill restore showpage\n`
  const ps = [
    '%!PS-Adobe-3.0', '%%Pages: 8', '%%EndComments', '%%BeginSetup',
    '[{', '%%BeginFeature: *Duplex DuplexNoTumble', '<< /Duplex true /NumCopies 4 /PageSize [612 1008] >> setpagedevice', '%%EndFeature', '} stopped cleartomark',
    '%%EndSetup',
    page(1, '0 0 0 1 setcmykcolor'), // black ink only: mono
    page(2, '0 1 0 0 setcmykcolor'), // magenta: colour
    page(3, '0 0 0.7 sethsbcolor'), // no saturation: gray
    page(4, '0.3 1 1 sethsbcolor'), // colour
    page(5, '10 10 8 [1 0 0 1 0 0] {<ff0000ff0000>} false 3 colorimage'), // colour image
    page(6, '/DeviceRGB setcolorspace 0.2 0.2 0.2 setcolor'), // gray in RGB: mono
    page(7, '/DeviceRGB setcolorspace 0 0.5 0 setcolor'), // colour
    page(8, '0.25 dup dup setrgbcolor'), // gray through dup
    '%%Trailer', '%%EOF', ''
  ].join('\n')
  const path = await bytes('rules.ps', ps)
  assertValidPostScript(path)
  const info = await parseDocument(path, 'application/postscript')
  assert.equal(info, { format: 'application/postscript', pages: 8, colorPages: 4, media: 'na_legal_8.5x14in', duplex: true, copies: 4 })
})

test('PostScript: truncated (fewer %%Page sections than %%Pages, or inside a string), no pages, not PostScript → CorruptDocumentError', async () => {
  const good = await readFile(await makePostScript(dir, { pages: 4, colorPages: [1] }))
  const cut = good.toString('latin1').indexOf('%%Page: 3')
  await rejectsWith(parseDocument(await bytes('cut.ps', good.subarray(0, cut)), 'application/postscript'), CorruptDocumentError, /declares 4 pages but only 2/)
  const atend = await readFile(await makePostScript(dir, { pages: 2, pagesAtEnd: true }))
  const noTrailer = atend.subarray(0, atend.toString('latin1').indexOf('%%Trailer'))
  const info = await parseDocument(await bytes('no-trailer.ps', noTrailer), 'application/postscript')
  assert.is(info.pages, 2) // sections still count when the (atend) value is lost
  await rejectsWith(parseDocument(await bytes('in-string.ps', '%!PS\n(unterminated string\nshowpage\n'), 'application/postscript'), CorruptDocumentError, /inside a string/)
  await rejectsWith(parseDocument(await bytes('nopages.ps', '%!PS-Adobe-3.0\n/x 1 def\n'), 'application/postscript'), CorruptDocumentError, /no pages/)
  await rejectsWith(parseDocument(await bytes('noise.ps', noise(3000)), 'application/postscript'), CorruptDocumentError, /%!/)
})

// ----------------------------------------------------------------------- PWG raster

test('PWG raster (sRGB): pages, colour decided per pixel, media, Duplex, NumCopies', async () => {
  const info = await parseDocument(await makePwgRaster(dir, { pages: 3, colorPages: [1], duplex: true, copies: 2 }), 'image/pwg-raster')
  assert.equal(info, { format: 'image/pwg-raster', pages: 3, colorPages: 1, media: 'iso_a4_210x297mm', duplex: true, copies: 2 })
})

test('PWG raster: black text sent as sRGB is mono; sGray is always mono', async () => {
  const srgbMono = await parseDocument(await makePwgRaster(dir, { pages: 2 }), 'image/pwg-raster')
  assert.equal([srgbMono.pages, srgbMono.colorPages, srgbMono.duplex, srgbMono.copies], [2, 0, false, 1])
  const gray = await parseDocument(await makePwgRaster(dir, { pages: 2, colorPages: [0, 1], colorSpace: 'sgray', media: 'letter' }), 'image/pwg-raster')
  assert.equal([gray.pages, gray.colorPages, gray.media], [2, 0, 'na_letter_8.5x11in'])
})

test('PWG raster at 150 dpi walks every line of every page', async () => {
  const info = await parseDocument(await makePwgRaster(dir, { pages: 5, colorPages: [4], resolution: 150, media: 'a5' }), 'image/pwg-raster')
  assert.equal([info.pages, info.colorPages, info.media], [5, 1, 'iso_a5_148x210mm'])
})

test('PWG raster: truncated, sync word only, bad header, wrong sync → CorruptDocumentError', async () => {
  const good = await makePwgRaster(dir, { pages: 2, colorPages: [1] })
  for (const f of [0.001, 0.3, 0.6, 0.999]) await rejectsWith(parseDocument(await truncated(good, f), 'image/pwg-raster'), CorruptDocumentError, /truncated|sync/)
  await rejectsWith(parseDocument(await bytes('sync-only.pwg', 'RaS2'), 'image/pwg-raster'), CorruptDocumentError, /no pages/)
  const data = Buffer.from(await readFile(good))
  data.writeUInt32BE(12345, 4 + 392) // cupsBytesPerLine no longer matches the width
  await rejectsWith(parseDocument(await bytes('bad-header.pwg', data), 'image/pwg-raster'), CorruptDocumentError, /bytes per line/)
  await rejectsWith(parseDocument(await bytes('noise.pwg', noise(4000)), 'image/pwg-raster'), CorruptDocumentError, /sync word/)
  const extra = Buffer.concat([await readFile(good), Buffer.from([0x00])])
  await rejectsWith(parseDocument(await bytes('trailing.pwg', extra), 'image/pwg-raster'), CorruptDocumentError, /truncated page header/)
})

// ----------------------------------------------------------------------------- text

test(`text: ${TEXT_LINES_PER_PAGE} lines per page, form feeds end pages, long lines wrap at ${TEXT_COLUMNS_PER_LINE}`, async () => {
  const cases: Array<[string, string, number]> = [
    ['exactly one page', textLines(TEXT_LINES_PER_PAGE), 1],
    ['one line over', textLines(TEXT_LINES_PER_PAGE + 1), 2],
    ['130 lines', textLines(130), 3],
    ['no final newline', 'hello', 1],
    ['form feed between', 'a\n\fb\n', 2],
    ['trailing form feed adds no page', 'a\n\fb\n\f', 2],
    ['two form feeds eject a blank page', 'a\f\fb', 3],
    ['CRLF lines', 'x\r\n'.repeat(TEXT_LINES_PER_PAGE + 1), 2],
    ['wrapped lines', `${'x'.repeat(TEXT_COLUMNS_PER_LINE + 1)}\n`.repeat(TEXT_LINES_PER_PAGE / 2 + 1), 2],
    ['UTF-8 counts characters, not bytes', `${'é'.repeat(TEXT_COLUMNS_PER_LINE)}\n`.repeat(TEXT_LINES_PER_PAGE), 1]
  ]
  for (const [what, text, pages] of cases) {
    const info = await parseDocument(await makeText(dir, text), 'text/plain; charset=utf-8')
    assert.equal(info, { format: 'text/plain', pages, colorPages: 0 }, what)
  }
})

test('text: empty, NUL bytes, invalid or cut UTF-8 → CorruptDocumentError', async () => {
  await rejectsWith(parseDocument(await bytes('empty.txt', ''), 'text/plain'), CorruptDocumentError, /empty/)
  await rejectsWith(parseDocument(await bytes('nul.txt', 'abc\0def'), 'text/plain'), CorruptDocumentError, /NUL/)
  await rejectsWith(parseDocument(await bytes('latin1.txt', Buffer.from('caf\xe9\n', 'latin1')), 'text/plain'), CorruptDocumentError, /UTF-8/)
  await rejectsWith(parseDocument(await bytes('cut.txt', Buffer.from([0x61, 0xe2, 0x82])), 'text/plain'), CorruptDocumentError, /UTF-8/)
})

// ----------------------------------------------------------------------------- JPEG

test('JPEG: one page; 3 components colour, 1 component mono', async () => {
  assert.equal(await parseDocument(await makeJpeg(dir, { color: true }), 'image/jpeg'), { format: 'image/jpeg', pages: 1, colorPages: 1 })
  assert.equal(await parseDocument(await makeJpeg(dir, { color: false }), 'image/jpeg'), { format: 'image/jpeg', pages: 1, colorPages: 0 })
})

test('JPEG: truncated, SOI only, no SOI, random bytes → CorruptDocumentError', async () => {
  const good = await makeJpeg(dir, { color: true })
  for (const f of [0.05, 0.5, 0.95]) await rejectsWith(parseDocument(await truncated(good, f), 'image/jpeg'), CorruptDocumentError, /truncated/)
  await rejectsWith(parseDocument(await bytes('soi.jpg', Buffer.from([0xff, 0xd8])), 'image/jpeg'), CorruptDocumentError)
  await rejectsWith(parseDocument(await bytes('soi-eoi.jpg', Buffer.from([0xff, 0xd8, 0xff, 0xd9])), 'image/jpeg'), CorruptDocumentError, /no frame header/)
  await rejectsWith(parseDocument(await bytes('noise.jpg', noise(2000)), 'image/jpeg'), CorruptDocumentError, /SOI/)
})

// ---------------------------------------------------------------- sniffing, errors

test('sniffFormat recognises every supported format by its magic bytes', async () => {
  const head = async (p: Promise<string>): Promise<Buffer> => (await readFile(await p)).subarray(0, 4096)
  assert.is(sniffFormat(await head(makePdf(dir, { pages: 1 }))), 'application/pdf')
  assert.is(sniffFormat(await head(makePostScript(dir, { pages: 1 }))), 'application/postscript')
  assert.is(sniffFormat(await head(makePwgRaster(dir, { pages: 1 }))), 'image/pwg-raster')
  assert.is(sniffFormat(await head(makeJpeg(dir, { color: false }))), 'image/jpeg')
  assert.is(sniffFormat(Buffer.from('plain text\n')), 'text/plain')
  assert.is(sniffFormat(Buffer.from('héllo €', 'utf8').subarray(0, 9)), 'text/plain') // a character cut by the head
  assert.is(sniffFormat(Buffer.from('caf\xe9 au lait', 'latin1')), undefined)
  assert.is(sniffFormat(Buffer.from('a\0b')), undefined)
  assert.is(sniffFormat(noise(4096)), undefined)
  assert.is(sniffFormat(Buffer.alloc(0)), undefined)
  assert.equal([...SUPPORTED_FORMATS].sort(), ['application/pdf', 'application/postscript', 'image/jpeg', 'image/pwg-raster', 'text/plain'])
})

test('application/octet-stream is sniffed and reports the format found', async () => {
  const cases: Array<[Promise<string>, string]> = [
    [makePdf(dir, { pages: 2, colorPages: [1] }), 'application/pdf'],
    [makePostScript(dir, { pages: 2, colorPages: [1] }), 'application/postscript'],
    [makePwgRaster(dir, { pages: 2, colorPages: [1] }), 'image/pwg-raster'],
    [makeJpeg(dir, { color: true }), 'image/jpeg']
  ]
  for (const [p, format] of cases) {
    const info: DocumentInfo = await parseDocument(await p, 'application/octet-stream')
    assert.is(info.format, format)
    assert.ok(info.colorPages === 1, `${format}: one colour page`)
  }
  await rejectsWith(parseDocument(await bytes('noise.bin', noise(1000)), 'application/octet-stream'), UnsupportedFormatError)
  await rejectsWith(parseDocument(await bytes('empty.bin', ''), 'application/octet-stream'), CorruptDocumentError, /empty/)
})

test('an empty file is corrupt in every format', async () => {
  const empty = await bytes('empty', '')
  for (const format of SUPPORTED_FORMATS) await rejectsWith(parseDocument(empty, format), CorruptDocumentError)
})

test('random bytes are corrupt in every format', async () => {
  const junk = await bytes('junk', noise(20_000, 7))
  for (const format of SUPPORTED_FORMATS) await rejectsWith(parseDocument(junk, format), CorruptDocumentError)
})

test('formats outside SUPPORTED_FORMATS → UnsupportedFormatError', async () => {
  const path = await makeText(dir, 'hi\n')
  for (const format of ['application/x-unknown', 'image/png', 'constructor', '']) {
    await rejectsWith(parseDocument(path, format), UnsupportedFormatError)
  }
})

test('an aborted signal stops parsing with its reason', async () => {
  const path = await makePdf(dir, { pages: 2 })
  const ac = new AbortController()
  ac.abort()
  try {
    await parseDocument(path, 'application/pdf', ac.signal)
    assert.unreachable('should abort')
  } catch (err) {
    assert.is((err as Error).name, 'AbortError')
  }
})

test('mediaName maps standard sizes within tolerance, either orientation', () => {
  assert.is(mediaName(595, 842), 'iso_a4_210x297mm')
  assert.is(mediaName(842, 595), 'iso_a4_210x297mm')
  assert.is(mediaName(612, 792), 'na_letter_8.5x11in')
  assert.is(mediaName(614, 790), 'na_letter_8.5x11in')
  assert.is(mediaName(620, 792), 'custom_215.9x279.4mm'.replace('215.9', '218.7'))
  assert.is(mediaName(0, 792), undefined)
})

test('pdf.js left no unhandled promise rejections behind', () => {
  assert.equal(unhandled, [])
})

test.run()
