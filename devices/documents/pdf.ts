/**
 * PDF (`application/pdf`) through pdf.js: page count, first page's media, the document's
 * own duplex / copies print preferences, and colour per page from the operator list.
 *
 * Colour rule: a page is colour when it paints (fills, strokes, shows text, paints an
 * image mask or a shading) while the relevant colour is not neutral, or paints an image
 * with any non-neutral pixel. pdf.js hands every colour over already converted to sRGB,
 * whatever its colour space (DeviceGray, ICC, Lab, Separation, DeviceN…), so "neutral"
 * means gray within {@link GRAY_TOLERANCE}, or what pdf.js makes of black-only CMYK ink.
 * Setting a colour that is never painted does not make a page colour.
 *
 * pdf.js runs in this thread (its "fake worker"): callers that must stay responsive
 * should run {@link parsePdf} off their event loop.
 */
import { readFile } from 'node:fs/promises'
import type * as PdfJs from 'pdfjs-dist/legacy/build/pdf.mjs'
import type { PDFDocumentProxy, PDFPageProxy } from 'pdfjs-dist/types/src/display/api.js'
import { CorruptDocumentError, corruptDocument } from './errors.ts'
import { isNeutralRendered, parseHexColor } from './color.ts'
import { mediaName } from './media.ts'
import { inflateLimitHits, onNextInflateCut } from './inflate-limit.ts'
import type { DocumentInfo, ProgressListener } from './index.ts'

const FORMAT = 'application/pdf'
/**
 * Pages whose content is analysed for colour. Analysis renders nothing but still decodes
 * every image, so it is bounded; pages beyond this are charged as colour, because
 * charging colour for a page nobody checked is the safe side of accounting (an
 * under-charge cannot be recovered, an over-charge can be refunded on a complaint).
 */
export const MAX_COLOR_ANALYSED_PAGES = 500
/** How far into the file the `%PDF-` header may start (Acrobat's own tolerance). */
const HEADER_SEARCH_BYTES = 1024
/**
 * Longest wait for pdf.js to deliver a decoded image or shading after its page's
 * operator list is complete; pdf.js always answers (with null on decode failure), so
 * this only guards against a pdf.js fault turning into a hung job.
 */
const OBJECT_WAIT_MS = 60_000
/** Deepest nesting of tiling patterns inside tiling patterns that is followed. */
const MAX_PATTERN_DEPTH = 8

/**
 * pdf.js, loaded with the first PDF: it adds ~50 MB to a process, and a site's main process
 * never analyses one (its analysis workers do), so it does not pay for it.
 */
let pdfjs: typeof PdfJs | undefined
/** pdf.js's operator codes, set with {@link pdfjs}: only read while a PDF is analysed. */
let OPS: typeof PdfJs.OPS
/** pdf.js's AnnotationMode.ENABLE_STORAGE, set with {@link pdfjs}. */
let ANNOTATIONS_WITH_STORAGE: number
async function loadPdfJs (): Promise<typeof PdfJs> {
  if (pdfjs === undefined) {
    pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs')
    OPS = pdfjs.OPS
    ANNOTATIONS_WITH_STORAGE = pdfjs.AnnotationMode.ENABLE_STORAGE
  }
  return pdfjs
}
/** pdf.js ImageKind values (src/shared/util.js). */
const IMAGE_KIND = { GRAYSCALE_1BPP: 1, RGB_24BPP: 2, RGBA_32BPP: 3 } as const

function corrupt (message: string, cause?: unknown): CorruptDocumentError {
  return corruptDocument(FORMAT, message, cause)
}

/** Colour of the current fill and stroke: true when not neutral. */
interface PaintState { fill: boolean, stroke: boolean, textMode: number }

interface OperatorList { fnArray: number[], argsArray: unknown[] }

/** Fetches a decoded object (image or shading) pdf.js sends alongside an operator list. */
async function getObject (page: PDFPageProxy, id: unknown, signal?: AbortSignal): Promise<unknown> {
  if (typeof id !== 'string') return undefined
  const objs = id.startsWith('g_') ? page.commonObjs : page.objs
  if (objs.has(id)) return objs.get(id)
  return await new Promise<unknown>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      reject(corrupt(`pdf.js did not deliver object ${id} within ${OBJECT_WAIT_MS} ms`))
    }, OBJECT_WAIT_MS)
    signal?.addEventListener('abort', onAbort, { once: true })
    objs.get(id, (data: unknown) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve(data)
    })
  })
}

/** Whether decoded image data has a non-neutral pixel; unknown shapes count as colour. */
function imageIsColor (img: unknown): boolean {
  if (img === null || typeof img !== 'object') return true // decode failed: not checked
  const { kind, data } = img as { kind?: number, data?: unknown }
  if (kind === IMAGE_KIND.GRAYSCALE_1BPP) return false
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) return true // e.g. an ImageBitmap
  const step = kind === IMAGE_KIND.RGB_24BPP ? 3 : kind === IMAGE_KIND.RGBA_32BPP ? 4 : 0
  if (step === 0) return true
  for (let i = 0; i + 2 < data.length; i += step) {
    const r = data[i]
    const g = data[i + 1]
    const b = data[i + 2]
    if (r === g && g === b) continue // the common case, without a call
    if (!isNeutralRendered(r, g, b)) return true
  }
  return false
}

/** Whether a shading IR (RadialAxial stops or Mesh vertex colours) has a non-neutral colour. */
function shadingIsColor (ir: unknown): boolean {
  if (!Array.isArray(ir)) return true
  if (ir[0] === 'Dummy') return false
  if (ir[0] === 'RadialAxial' && Array.isArray(ir[3])) {
    return (ir[3] as unknown[]).some((stop) => {
      const rgb = Array.isArray(stop) ? parseHexColor(stop[1]) : undefined
      return rgb === undefined || !isNeutralRendered(...rgb)
    })
  }
  if (ir[0] === 'Mesh' && (ir[3] instanceof Uint8Array || ir[3] instanceof Uint8ClampedArray)) {
    const colors = ir[3]
    for (let i = 0; i + 2 < colors.length; i += 3) {
      if (!isNeutralRendered(colors[i], colors[i + 1], colors[i + 2])) return true
    }
    return false
  }
  return true
}

function hexIsColor (hex: unknown): boolean {
  const rgb = parseHexColor(hex)
  return rgb === undefined || !isNeutralRendered(...rgb)
}

/** Plain numeric colour operands (0..1) that pdf.js normally converts away; unknown counts as colour. */
function componentsAreColor (args: unknown): boolean {
  if (!Array.isArray(args) || !args.every((v) => typeof v === 'number')) return true
  const v = args as number[]
  if (v.length === 1) return false
  if (v.length === 3) return !isNeutralRendered(v[0] * 255, v[1] * 255, v[2] * 255)
  if (v.length === 4) return Math.max(v[0], v[1], v[2]) * 255 > 4
  return true
}

/** The paint operation at the head of a v5 `constructPath` (or a standalone paint op). */
function paintUse (op: number): { fill: boolean, stroke: boolean } {
  switch (op) {
    case OPS.fill: case OPS.eoFill: case OPS.rawFillPath:
      return { fill: true, stroke: false }
    case OPS.stroke: case OPS.closeStroke:
      return { fill: false, stroke: true }
    case OPS.fillStroke: case OPS.eoFillStroke: case OPS.closeFillStroke: case OPS.closeEOFillStroke:
      return { fill: true, stroke: true }
    default:
      return { fill: false, stroke: false }
  }
}

/**
 * Walks an operator list (a page's, or a coloured tiling pattern's cell) and reports
 * whether it paints anything in colour.
 */
async function opListIsColor (page: PDFPageProxy, list: OperatorList, depth: number, signal?: AbortSignal): Promise<boolean> {
  const stack: PaintState[] = []
  let st: PaintState = { fill: false, stroke: false, textMode: 0 }

  /** Colour of a `setFill/StrokeColorN` pattern operand. */
  const patternIsColor = async (args: unknown[]): Promise<boolean> => {
    if (args[0] === 'TilingPattern') {
      const paintType = args[7]
      if (paintType === 2) return args[1] == null ? false : hexIsColor(args[1]) // uncoloured: painted in `color`
      const cell = args[2] as Partial<OperatorList> | undefined
      if (depth >= MAX_PATTERN_DEPTH || !Array.isArray(cell?.fnArray) || !Array.isArray(cell?.argsArray)) return true
      return await opListIsColor(page, { fnArray: cell.fnArray, argsArray: cell.argsArray }, depth + 1, signal)
    }
    if (args[0] === 'Shading') return shadingIsColor(await getObject(page, args[1], signal))
    return true
  }

  const { fnArray, argsArray } = list
  for (let i = 0; i < fnArray.length; i++) {
    const fn = fnArray[i]
    const args = (Array.isArray(argsArray[i]) ? argsArray[i] : []) as unknown[]
    switch (fn) {
      case OPS.save: case OPS.paintFormXObjectBegin: case OPS.beginGroup: case OPS.beginAnnotation:
        stack.push({ ...st })
        break
      case OPS.restore: case OPS.paintFormXObjectEnd: case OPS.endGroup: case OPS.endAnnotation:
        st = stack.pop() ?? st
        break
      case OPS.setFillRGBColor: st.fill = hexIsColor(args[0]); break
      case OPS.setStrokeRGBColor: st.stroke = hexIsColor(args[0]); break
      case OPS.setFillTransparent: st.fill = false; break
      case OPS.setStrokeTransparent: st.stroke = false; break
      case OPS.setFillGray: st.fill = false; break
      case OPS.setStrokeGray: st.stroke = false; break
      case OPS.setFillCMYKColor: case OPS.setFillColor: st.fill = componentsAreColor(args); break
      case OPS.setStrokeCMYKColor: case OPS.setStrokeColor: st.stroke = componentsAreColor(args); break
      case OPS.setFillColorN: st.fill = await patternIsColor(args); break
      case OPS.setStrokeColorN: st.stroke = await patternIsColor(args); break
      case OPS.setTextRenderingMode: st.textMode = typeof args[0] === 'number' ? args[0] : 0; break
      case OPS.constructPath: {
        const use = paintUse(typeof args[0] === 'number' ? args[0] : -1)
        if ((use.fill && st.fill) || (use.stroke && st.stroke)) return true
        break
      }
      case OPS.fill: case OPS.eoFill: case OPS.rawFillPath: case OPS.stroke: case OPS.closeStroke:
      case OPS.fillStroke: case OPS.eoFillStroke: case OPS.closeFillStroke: case OPS.closeEOFillStroke: {
        const use = paintUse(fn)
        if ((use.fill && st.fill) || (use.stroke && st.stroke)) return true
        break
      }
      case OPS.showText: case OPS.showSpacedText: case OPS.nextLineShowText: case OPS.nextLineSetSpacingShowText: {
        const mode = st.textMode & 3 // 0 fill, 1 stroke, 2 fill+stroke, 3 invisible (+4: also clip)
        if ((mode !== 1 && mode !== 3 && st.fill) || ((mode === 1 || mode === 2) && st.stroke)) return true
        break
      }
      case OPS.paintImageMaskXObject: case OPS.paintImageMaskXObjectGroup:
      case OPS.paintImageMaskXObjectRepeat: case OPS.paintSolidColorImageMask:
        if (st.fill) return true
        break
      case OPS.shadingFill:
        if (shadingIsColor(await getObject(page, args[0], signal))) return true
        break
      case OPS.paintImageXObject: case OPS.paintImageXObjectRepeat:
        if (imageIsColor(await getObject(page, args[0], signal))) return true
        break
      case OPS.paintInlineImageXObject: case OPS.paintInlineImageXObjectGroup:
        if (imageIsColor(args[0])) return true
        break
      default:
        break
    }
  }
  return false
}

async function pageIsColor (page: PDFPageProxy, signal?: AbortSignal): Promise<boolean> {
  const list = await page.getOperatorList({ intent: 'print', annotationMode: ANNOTATIONS_WITH_STORAGE })
  return await opListIsColor(page, list, 0, signal)
}

/**
 * {@link pageIsColor}, except that a page one of whose streams is cut at the inflate limit
 * is colour at once: what remains of it is not worth analysing (pdf.js, left lexing the cut
 * stream, stops when the document is destroyed).
 */
async function pageIsColorOrCut (page: PDFPageProxy, signal?: AbortSignal): Promise<boolean> {
  let forget = (): void => {}
  const cut = new Promise<boolean>((resolve) => { forget = onNextInflateCut(() => resolve(true)) })
  try {
    return await Promise.race([pageIsColor(page, signal), cut])
  } finally {
    forget()
  }
}

/** The document's ViewerPreferences Duplex / NumCopies (its own print dialog defaults). */
async function printPreferences (doc: PDFDocumentProxy): Promise<Pick<DocumentInfo, 'duplex' | 'copies'>> {
  const prefs = (await doc.getViewerPreferences()) as { Duplex?: unknown, NumCopies?: unknown } | null
  const out: Pick<DocumentInfo, 'duplex' | 'copies'> = {}
  if (prefs?.Duplex === 'Simplex') out.duplex = false
  else if (prefs?.Duplex === 'DuplexFlipShortEdge' || prefs?.Duplex === 'DuplexFlipLongEdge') out.duplex = true
  if (typeof prefs?.NumCopies === 'number' && Number.isInteger(prefs.NumCopies) && prefs.NumCopies > 0) out.copies = prefs.NumCopies
  return out
}

/**
 * Parses a PDF. Every page is loaded (a page that cannot be is corrupt); the first
 * {@link MAX_COLOR_ANALYSED_PAGES} are analysed for colour, the rest are counted colour.
 * A page one of whose streams was cut at the inflate limit (inflate-limit.ts, in analysis
 * workers) was not analysed whole: it is counted colour too, and a pdf.js error on it is
 * not taken for corruption.
 * The file is read once into memory and handed to pdf.js without a copy: pdf.js keeps a
 * whole-file buffer even when fed ranges, so one buffer is the least it can use.
 * `onProgress` hears the page count the document declares as soon as pdf.js has it.
 */
export async function parsePdf (path: string, signal?: AbortSignal, onProgress?: ProgressListener): Promise<DocumentInfo> {
  const file = await readFile(path, { signal })
  const head = file.subarray(0, HEADER_SEARCH_BYTES).toString('latin1')
  if (file.length === 0) throw corrupt('empty document')
  if (!head.includes('%PDF-')) throw corrupt(`no %PDF- header in the first ${HEADER_SEARCH_BYTES} bytes`)

  const pdfjs = await loadPdfJs()
  const task = pdfjs.getDocument({
    data: new Uint8Array(file.buffer, file.byteOffset, file.length),
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    isOffscreenCanvasSupported: false,
    isImageDecoderSupported: false,
    verbosity: pdfjs.VerbosityLevel.ERRORS
  })
  const onAbort = (): void => { void task.destroy() }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    let doc: PDFDocumentProxy
    try {
      doc = await task.promise
    } catch (err) {
      signal?.throwIfAborted()
      const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
      throw corrupt(err instanceof Error && err.name === 'PasswordException' ? `encrypted, needs a password (${reason})` : reason, err)
    }
    const pages = doc.numPages
    if (!(pages > 0)) throw corrupt('no pages')
    onProgress?.({ declaredPages: pages })
    let colorPages = 0
    let media: string | undefined
    for (let n = 1; n <= pages; n++) {
      signal?.throwIfAborted()
      let page: PDFPageProxy
      try {
        page = await doc.getPage(n)
      } catch (err) {
        signal?.throwIfAborted()
        throw corrupt(`page ${n} of ${pages} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`, err)
      }
      if (n === 1) {
        const [x0, y0, x1, y1] = page.view
        media = mediaName(Math.abs(x1 - x0), Math.abs(y1 - y0))
      }
      if (n > MAX_COLOR_ANALYSED_PAGES) {
        colorPages++
      } else {
        let color: boolean
        const cutBefore = inflateLimitHits()
        try {
          color = await pageIsColorOrCut(page, signal)
        } catch (err) {
          signal?.throwIfAborted()
          if (inflateLimitHits() === cutBefore) {
            if (err instanceof CorruptDocumentError) throw err
            throw corrupt(`page ${n}: ${err instanceof Error ? err.message : String(err)}`, err)
          }
          color = true
        }
        if (color || inflateLimitHits() !== cutBefore) colorPages++
      }
      page.cleanup()
    }
    return { format: FORMAT, pages, colorPages, ...(media !== undefined ? { media } : {}), ...(await printPreferences(doc)) }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    await task.destroy()
  }
}
