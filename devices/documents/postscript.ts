/**
 * PostScript (`application/postscript`): pages, colour, media, duplex and copies from the
 * document structuring conventions (DSC 3.0) plus a light scan of the PostScript tokens.
 * Nothing is interpreted; the file is read once, in chunks.
 *
 * Pages: the number of `%%Page:` sections (outside embedded `%%BeginDocument`s). When
 * `%%Pages:` (or its `(atend)` value from the trailer) declares more pages than there are
 * sections, the file is truncated and refused; without sections the declared count is
 * used, and without both, the number of `showpage` / `copypage` tokens.
 *
 * Colour heuristic (per page section; each rule errs towards colour):
 * - `setrgbcolor` / `sethsbcolor` with literal operands that are not gray,
 *   `setcmykcolor` with any C, M or Y ink, `setcolor` in a DeviceRGB / DeviceCMYK space
 *   with such operands, or in any other space (Indexed, Separation, CIE, patterns) at all;
 *   operands that are not literal numbers count as colour (`dup`, `exch`, `pop` and
 *   arithmetic on literals are followed).
 * - `colorimage` (unless its component count is a literal 1), a dictionary `image` while
 *   the colour space is not gray, `shfill` unless its shading is DeviceGray.
 * - Procedures defined with `def` are followed: `/rg { setrgbcolor } bind def` and
 *   `/rg /setrgbcolor load def` make `rg` a colour operator; a procedure that sets a
 *   literal colour is colour wherever it is called; one that sets a colour from its
 *   caller's operands is colour unless called with equal numbers (`0 0 0 RGB`).
 * - `%%PageProcessColors:` naming any colorant but Black.
 * - A colour left set by the prolog / setup (outside pages) makes every page colour.
 * Not seen: colour inside compressed or encoded content (`filter`ed data, ps2write
 * output), which is counted as whatever the visible operators say.
 */
import { createReadStream } from 'node:fs'
import { CorruptDocumentError, corruptDocument } from './errors.ts'
import { GRAY_TOLERANCE } from './color.ts'
import { mediaName, paperNameSize } from './media.ts'
import type { DocumentInfo } from './index.ts'

const FORMAT = 'application/postscript'
/** A line longer than this (binary data without newlines) is scanned in pieces of this size. */
const MAX_LINE_CHARS = 1 << 20
/** Values kept on the modelled operand stack; deeper ones are dropped (nothing we check needs them). */
const MAX_STACK = 1024
/** Procedure definitions remembered; generated prologs define a few hundred at most. */
const MAX_DEFS = 100_000
/** Colour component tolerance on a 0..1 scale. */
const TOL = GRAY_TOLERANCE / 255

type Mark = '[' | '<<' | '{'
interface ProcInfo {
  /** Colour operator the procedure applies to its caller's operands (it is an alias of it). */
  aliasOf?: string
  /** Sets a non-gray colour from literal operands. */
  colorLiteral: boolean
  /** Sets a colour from operands it does not own (decided at the call). */
  deferred: boolean
}
type Value =
  | { t: 'num', v: number }
  | { t: 'bool', v: boolean }
  | { t: 'name', v: string }
  | { t: 'op', v: string }
  | { t: 'proc', info: ProcInfo }
  | { t: 'array', nums: number[] | undefined }
  | { t: 'dict', entries: Map<string, Value> }
  | { t: 'str' }
  | { t: 'other' }
  | { t: 'mark', m: Mark }

type ColorResult = 'gray' | 'color' | 'unknown'
type Definition = { kind: 'alias', op: string } | { kind: 'proc', info: ProcInfo }
type Space = 'gray' | 'rgb' | 'cmyk' | 'other'

/** Operators whose colour we judge (alias targets). */
const COLOR_OPS = new Set(['setgray', 'setrgbcolor', 'sethsbcolor', 'setcmykcolor', 'setcolor', 'colorimage', 'image', 'shfill', 'setcolorspace', 'setpattern'])
/** Operators that run a procedure operand now. */
const EXEC_OPS = new Set(['if', 'ifelse', 'exec', 'repeat', 'for', 'forall', 'loop', 'stopped', 'cshow', 'kshow', 'pathforall', 'resourceforall'])
/** Operators that leave their procedure/value operand in place (no-ops here). */
const NOOP_OPS = new Set(['bind', 'readonly', 'executeonly', 'noaccess', 'cvx', 'cvlit'])

function corrupt (message: string): CorruptDocumentError {
  return corruptDocument(FORMAT, message)
}

function parseNumber (s: string): number | undefined {
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return Number(s)
  const radix = /^(\d{1,2})#([0-9a-zA-Z]+)$/.exec(s)
  if (radix) {
    const base = Number(radix[1])
    if (base >= 2 && base <= 36) {
      const n = Number.parseInt(radix[2], base)
      if (Number.isFinite(n)) return n
    }
  }
  return undefined
}

/** The whole-document state of one scan. */
class Scanner {
  // --- DSC structure
  private inHeader = true
  private documentDepth = 0 // nesting of %%BeginDocument
  private skipping: string | undefined // '%%EndBinary' / '%%EndData' while inside embedded data
  private inTrailer = false
  private lastComment = ''
  declaredPages: number | undefined
  private pagesAtEnd = false
  sections = 0
  colorSections = 0
  private pageColor = false
  // --- media / duplex / copies (the state in effect for the first page)
  private documentMedia: Array<{ name: string, w: number, h: number }> = []
  private pageMediaName: string | undefined
  private paperSize: string | undefined
  boundingBox: number[] | undefined
  private bboxAtEnd = false
  pageSize: number[] | undefined
  duplex: boolean | undefined
  copies: number | undefined
  // --- token model
  private strDepth = 0
  private hex: 0 | 1 | 2 = 0 // 1: <hex>, 2: <~ascii85~>
  private stack: Value[] = []
  private frames: ProcInfo[] = []
  private firstExecPending: boolean[] = []
  private defs = new Map<string, Definition>()
  private space: Space = 'gray'
  private setupColor = false
  showpages = 0
  private virtualColor = false
  virtualColorPages = 0
  anyColor = false

  /** Processes one line (without its end-of-line). */
  line (text: string): void {
    if (this.strDepth === 0 && this.hex === 0 && text.startsWith('%')) {
      if (this.skipping !== undefined) {
        if (text.startsWith(this.skipping)) this.skipping = undefined
        return
      }
      if (text.startsWith('%%') || text.startsWith('%!')) this.comment(text)
      return
    }
    if (this.skipping !== undefined) return
    if (this.inHeader && this.strDepth === 0 && this.hex === 0 && text.trim() !== '') this.inHeader = false
    this.tokenize(text)
  }

  private comment (text: string): void {
    const colon = text.indexOf(':')
    let key = colon === -1 ? text.trim() : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1).trim()
    if (key === '%%+') {
      key = this.lastComment
      value = text.slice(3).trim()
    } else {
      this.lastComment = key
    }
    if (key === '%%BeginDocument') { this.documentDepth++; return }
    if (key === '%%EndDocument') { this.documentDepth = Math.max(0, this.documentDepth - 1); return }
    if (key === '%%BeginBinary') { this.skipping = '%%EndBinary'; return }
    if (key === '%%BeginData') { this.skipping = '%%EndData'; return }
    if (this.documentDepth > 0) return
    switch (key) {
      case '%%EndComments': this.inHeader = false; break
      case '%%Pages': {
        const first = value.split(/\s+/)[0]
        if (first === '(atend)') { if (!this.inTrailer) this.pagesAtEnd = true; break }
        const n = Number.parseInt(first, 10)
        if (!Number.isInteger(n) || n < 0) break
        if ((this.inHeader && this.declaredPages === undefined) || (this.inTrailer && this.pagesAtEnd)) this.declaredPages = n
        break
      }
      case '%%Page':
        this.endPage()
        this.sections++
        this.pageColor = this.setupColor
        this.inHeader = false
        break
      case '%%Trailer':
        this.endPage()
        this.inTrailer = true
        break
      case '%%Requirements':
        for (const req of value.split(/\s+/)) {
          if (/^duplex(\(.*\))?$/i.test(req) && this.beforeSecondPage()) this.duplex = true
          const copies = /^numcopies\((\d+)\)$/i.exec(req)
          if (copies && this.beforeSecondPage()) this.copies = Number(copies[1])
        }
        break
      case '%%DocumentMedia': {
        const f = value.split(/\s+/)
        const w = Number(f[1])
        const h = Number(f[2])
        if (f[0] !== undefined && f[0] !== '(atend)' && w > 0 && h > 0) this.documentMedia.push({ name: f[0], w, h })
        break
      }
      case '%%PageMedia':
        if (this.sections <= 1 && this.pageMediaName === undefined) this.pageMediaName = value.split(/\s+/)[0]
        break
      case '%%DocumentPaperSizes':
        this.paperSize ??= value.split(/\s+/)[0]
        break
      case '%%BoundingBox': {
        if (value === '(atend)') { this.bboxAtEnd = true; break }
        const box = value.split(/\s+/).map(Number)
        if (box.length === 4 && box.every(Number.isFinite) && (this.boundingBox === undefined || (this.inTrailer && this.bboxAtEnd))) this.boundingBox = box
        break
      }
      case '%%PageProcessColors':
        if (this.sections > 0 && value !== '(atend)' && value.split(/\s+/).some((c) => c !== '' && c.toLowerCase() !== 'black')) this.pageColor = true
        break
      case '%%BeginFeature':
      case '%%IncludeFeature': {
        const m = /^\*Duplex\s+(\S+)/.exec(value)
        if (m && this.beforeSecondPage()) this.duplex = m[1].toLowerCase() !== 'none' && m[1].toLowerCase() !== 'false'
        break
      }
      default:
        break
    }
  }

  private beforeSecondPage (): boolean {
    return this.sections < 2 && !this.inTrailer
  }

  private endPage (): void {
    if (this.sections > 0 && !this.inTrailer && this.pageColor) this.colorSections++
    this.pageColor = false
  }

  /** Call after the last line. */
  finish (): void {
    this.endPage()
    this.inTrailer = true
  }

  /** First-page media: setpagedevice PageSize, %%PageMedia → %%DocumentMedia, %%DocumentPaperSizes, a page-sized %%BoundingBox. */
  media (): string | undefined {
    if (this.pageSize !== undefined) return mediaName(this.pageSize[0], this.pageSize[1])
    const named = this.pageMediaName === undefined ? undefined : this.documentMedia.find((m) => m.name === this.pageMediaName)
    const doc = named ?? this.documentMedia[0]
    if (doc !== undefined) return mediaName(doc.w, doc.h)
    const paper = this.paperSize === undefined ? undefined : paperNameSize(this.paperSize)
    if (paper !== undefined) return mediaName(paper.width, paper.height)
    const bb = this.boundingBox
    // A bounding box is the drawing's extent, not the paper's: only one at the origin is taken as the page.
    if (bb !== undefined && bb[0] === 0 && bb[1] === 0) return mediaName(bb[2], bb[3])
    return undefined
  }

  // ---------------------------------------------------------------- tokens

  private tokenize (text: string): void {
    let i = 0
    let start = -1
    const n = text.length
    const flush = (end: number): void => {
      if (start !== -1) { this.token(text.slice(start, end)); start = -1 }
    }
    while (i < n) {
      if (this.strDepth > 0) {
        const c = text[i]
        if (c === '\\') i++
        else if (c === '(') this.strDepth++
        else if (c === ')' && --this.strDepth === 0) this.push({ t: 'str' })
        i++
        continue
      }
      if (this.hex !== 0) {
        const end = text.indexOf(this.hex === 1 ? '>' : '~>', i)
        if (end === -1) return
        i = end + (this.hex === 1 ? 1 : 2)
        this.hex = 0
        this.push({ t: 'str' })
        continue
      }
      const c = text[i]
      switch (c) {
        case ' ': case '\t': case '\f': case '\0': case '\r': case '\n':
          flush(i); i++; break
        case '%':
          flush(i); return
        case '(':
          flush(i); this.strDepth = 1; i++; break
        case '<':
          flush(i)
          if (text[i + 1] === '<') { this.token('<<'); i += 2 } else if (text[i + 1] === '~') { this.hex = 2; i += 2 } else { this.hex = 1; i++ }
          break
        case '>':
          flush(i)
          if (text[i + 1] === '>') { this.token('>>'); i += 2 } else i++
          break
        case '[': case ']': case '{': case '}':
          flush(i); this.token(c); i++; break
        case '/':
          flush(i); start = i; i++
          if (text[i] === '/') i++
          break
        case ')':
          flush(i); i++; break
        default:
          if (start === -1) start = i
          i++
      }
    }
    flush(n)
  }

  private push (v: Value): void {
    this.stack.push(v)
    if (this.stack.length > MAX_STACK) this.stack.splice(0, this.stack.length - MAX_STACK)
  }

  private pop (): Value | undefined {
    const top = this.stack[this.stack.length - 1]
    if (top === undefined || top.t === 'mark') return undefined
    return this.stack.pop()
  }

  /** Drops values down to (not including) the nearest mark: their meaning is lost. */
  private clearToMark (): void {
    while (this.stack.length > 0 && this.stack[this.stack.length - 1].t !== 'mark') this.stack.pop()
  }

  /** The top `k` values when they are all numbers (not popped). */
  private topNumbers (k: number): number[] | undefined {
    if (this.stack.length < k) return undefined
    const out: number[] = []
    for (let j = this.stack.length - k; j < this.stack.length; j++) {
      const v = this.stack[j]
      if (v.t !== 'num') return undefined
      out.push(v.v)
    }
    return out
  }

  private popN (k: number): void {
    for (let j = 0; j < k; j++) if (this.pop() === undefined) return
  }

  private token (tok: string): void {
    if (tok.startsWith('/')) {
      this.push(tok.startsWith('//') ? { t: 'other' } : { t: 'name', v: tok.slice(1) })
      return
    }
    switch (tok) {
      case '[': case '<<': case '{':
        this.stack.push({ t: 'mark', m: tok })
        if (tok === '{') { this.frames.push({ colorLiteral: false, deferred: false }); this.firstExecPending.push(true) }
        return
      case ']': return this.closeArray()
      case '>>': return this.closeDict()
      case '}': return this.closeProc()
      default: break
    }
    const num = parseNumber(tok)
    if (num !== undefined) { this.push({ t: 'num', v: num }); return }
    this.exec(tok)
  }

  private popToMark (m: Mark): Value[] | undefined {
    let j = this.stack.length - 1
    while (j >= 0 && this.stack[j].t !== 'mark') j--
    if (j < 0) { this.stack.length = 0; return undefined }
    const mark = this.stack[j] as { t: 'mark', m: Mark }
    const items = this.stack.splice(j)
    items.shift()
    return mark.m === m ? items : undefined
  }

  private closeArray (): void {
    const items = this.popToMark('[')
    const nums = items?.every((v) => v.t === 'num') === true ? items.map((v) => (v as { v: number }).v) : undefined
    this.push({ t: 'array', nums })
  }

  private closeDict (): void {
    const items = this.popToMark('<<') ?? []
    const entries = new Map<string, Value>()
    for (let j = 0; j + 1 < items.length; j += 2) {
      const key = items[j]
      if (key.t === 'name') entries.set(key.v, items[j + 1])
    }
    this.push({ t: 'dict', entries })
  }

  private closeProc (): void {
    const info = this.frames.pop()
    this.firstExecPending.pop()
    this.popToMark('{')
    if (info === undefined) return // unbalanced: ignore
    const parent = this.frames[this.frames.length - 1]
    if (parent !== undefined) {
      parent.colorLiteral ||= info.colorLiteral
      parent.deferred ||= info.deferred
    }
    this.push({ t: 'proc', info })
  }

  private get inProc (): boolean {
    return this.frames.length > 0
  }

  private get inPage (): boolean {
    return this.sections > 0 && !this.inTrailer
  }

  /** Records the outcome of one colour-setting operation at the current place. */
  private colorResult (result: ColorResult): void {
    const frame = this.frames[this.frames.length - 1]
    if (frame !== undefined) {
      if (result === 'color') {
        frame.colorLiteral = true
        this.markColor() // a literal colour written on this page counts even inside a procedure
      } else if (result === 'unknown') frame.deferred = true
      return
    }
    if (result === 'gray') {
      if (!this.inPage) this.setupColor = false
      return
    }
    this.markColor()
    if (!this.inPage) this.setupColor = true
  }

  private markColor (): void {
    this.anyColor = true
    this.virtualColor = true
    if (this.inPage) this.pageColor = true
  }

  /** Judges a colour operator against the modelled stack, popping its operands. */
  private colorOp (op: string): ColorResult {
    switch (op) {
      case 'setgray':
        this.popN(1); this.space = 'gray'; return 'gray'
      case 'setrgbcolor': case 'sethsbcolor': {
        const v = this.topNumbers(3)
        this.popN(3)
        this.space = 'rgb'
        if (v === undefined) return 'unknown'
        if (op === 'sethsbcolor') return v[1] > TOL && v[2] > TOL ? 'color' : 'gray'
        return Math.max(...v) - Math.min(...v) > TOL ? 'color' : 'gray'
      }
      case 'setcmykcolor': {
        const v = this.topNumbers(4)
        this.popN(4)
        this.space = 'cmyk'
        if (v === undefined) return 'unknown'
        return Math.max(v[0], v[1], v[2]) > TOL ? 'color' : 'gray'
      }
      case 'setcolorspace': {
        const top = this.pop()
        this.space = top?.t === 'name'
          ? (top.v === 'DeviceGray' ? 'gray' : top.v === 'DeviceRGB' ? 'rgb' : top.v === 'DeviceCMYK' ? 'cmyk' : 'other')
          : 'other'
        return 'gray' // the initial colour of every space is black / no ink
      }
      case 'setcolor': {
        if (this.space === 'gray') { this.popN(1); return 'gray' }
        if (this.space === 'rgb') return this.colorOp('setrgbcolor')
        if (this.space === 'cmyk') return this.colorOp('setcmykcolor')
        this.clearToMark()
        return 'color'
      }
      case 'setpattern':
        this.clearToMark()
        return 'color'
      case 'colorimage': {
        const ncomp = this.topNumbers(1)
        this.clearToMark()
        return ncomp?.[0] === 1 ? 'gray' : 'color'
      }
      case 'image': {
        const top = this.stack[this.stack.length - 1]
        this.clearToMark()
        // The 5-operand form (data source on top) is always DeviceGray; the dictionary form uses the current space.
        if (top?.t === 'proc' || top?.t === 'str') return 'gray'
        return this.space === 'gray' ? 'gray' : 'color'
      }
      case 'shfill': {
        const top = this.pop()
        const cs = top?.t === 'dict' ? top.entries.get('ColorSpace') : undefined
        this.clearToMark()
        return cs?.t === 'name' && cs.v === 'DeviceGray' ? 'gray' : 'color'
      }
      default:
        return 'unknown'
    }
  }

  /** Resolves aliases (`/rg /setrgbcolor load def`, `/rg { setrgbcolor } def`) to a colour operator. */
  private colorOpOf (name: string): string | undefined {
    if (COLOR_OPS.has(name)) return name
    const d = this.defs.get(name)
    return d?.kind === 'alias' ? d.op : undefined
  }

  private exec (name: string): void {
    const pending = this.firstExecPending.length > 0 && this.firstExecPending[this.firstExecPending.length - 1]
    if (pending) this.firstExecPending[this.firstExecPending.length - 1] = false

    const colorOp = this.colorOpOf(name)
    if (colorOp !== undefined) {
      const top = this.stack[this.stack.length - 1]
      const atProcStart = pending && top?.t === 'mark' && top.m === '{'
      const result = this.colorOp(colorOp)
      const frame = this.frames[this.frames.length - 1]
      if (atProcStart && frame !== undefined && result === 'unknown') frame.aliasOf = colorOp
      this.colorResult(result)
      return
    }
    const def = this.defs.get(name)
    if (def?.kind === 'proc') {
      this.colorResult(this.callResult(def.info))
      this.clearToMark()
      return
    }
    switch (name) {
      case 'true': case 'false': this.push({ t: 'bool', v: name === 'true' }); return
      case 'null': this.push({ t: 'other' }); return
      case 'mark': this.stack.push({ t: 'mark', m: '[' }); return
      case 'cleartomark': this.popToMark('['); return
      case 'dup': {
        const top = this.stack[this.stack.length - 1]
        this.push(top !== undefined && top.t !== 'mark' ? top : { t: 'other' })
        return
      }
      case 'pop': this.pop(); return
      case 'exch': {
        const a = this.pop()
        const b = this.pop()
        if (a !== undefined && b !== undefined) { this.push(a); this.push(b) }
        return
      }
      case 'add': case 'sub': case 'mul': case 'div': {
        const v = this.topNumbers(2)
        this.popN(2)
        const r = v === undefined ? undefined
          : name === 'add' ? v[0] + v[1] : name === 'sub' ? v[0] - v[1] : name === 'mul' ? v[0] * v[1] : v[1] !== 0 ? v[0] / v[1] : undefined
        this.push(r === undefined || !Number.isFinite(r) ? { t: 'other' } : { t: 'num', v: r })
        return
      }
      case 'load': {
        const top = this.pop()
        this.push(top?.t === 'name' ? { t: 'op', v: top.v } : { t: 'other' })
        return
      }
      case 'def': return this.define()
      case 'setpagedevice': {
        const top = this.pop()
        if (top?.t === 'dict') this.pageDevice(top.entries)
        return
      }
      case 'setduplexmode': {
        const top = this.pop()
        if (top?.t === 'bool' && this.beforeSecondPage()) this.duplex = top.v
        return
      }
      case 'showpage': case 'copypage':
        this.showpages++
        if (this.virtualColor) this.virtualColorPages++
        this.virtualColor = this.setupColor
        this.clearToMark()
        return
      default:
        break
    }
    if (NOOP_OPS.has(name)) return
    if (EXEC_OPS.has(name)) {
      // Running procedures now: colour they set from operands they do not own is unknown → colour.
      const procs = this.stack.filter((v): v is { t: 'proc', info: ProcInfo } => v.t === 'proc')
      const last = procs.slice(-2)
      this.clearToMark()
      if (last.some((p) => p.info.deferred || p.info.colorLiteral)) this.colorResult(this.inProc ? 'unknown' : 'color')
      return
    }
    this.clearToMark()
  }

  /** Colour of calling a defined procedure, from the numbers its caller leaves on the stack. */
  private callResult (info: ProcInfo): ColorResult {
    if (info.colorLiteral) return 'color'
    if (!info.deferred) return 'gray'
    const nums: number[] = []
    for (let j = this.stack.length - 1; j >= 0 && this.stack[j].t === 'num'; j--) nums.push((this.stack[j] as { v: number }).v)
    if (nums.length === 0) return 'unknown'
    return Math.max(...nums) - Math.min(...nums) > TOL ? 'color' : 'gray'
  }

  private define (): void {
    const value = this.pop()
    const key = this.pop()
    if (key?.t !== 'name' || value === undefined) return
    if (key.v === '#copies' && value.t === 'num' && Number.isInteger(value.v) && value.v > 0 && this.beforeSecondPage()) this.copies = value.v
    let def: Definition | undefined
    if (value.t === 'op') {
      const op = this.colorOpOf(value.v)
      if (op !== undefined) def = { kind: 'alias', op }
    } else if (value.t === 'proc') {
      if (value.info.aliasOf !== undefined) def = { kind: 'alias', op: value.info.aliasOf }
      else if (value.info.colorLiteral || value.info.deferred) def = { kind: 'proc', info: value.info }
    }
    if (def === undefined) this.defs.delete(key.v)
    else if (this.defs.size < MAX_DEFS || this.defs.has(key.v)) this.defs.set(key.v, def)
  }

  private pageDevice (entries: Map<string, Value>): void {
    if (!this.beforeSecondPage()) return
    const duplex = entries.get('Duplex')
    if (duplex?.t === 'bool') this.duplex = duplex.v
    const copies = entries.get('NumCopies')
    if (copies?.t === 'num' && Number.isInteger(copies.v) && copies.v > 0) this.copies = copies.v
    const size = entries.get('PageSize')
    if (size?.t === 'array' && size.nums !== undefined && size.nums.length >= 2) this.pageSize = size.nums.slice(0, 2)
  }

  /** Whether the file ended inside a string or embedded data. */
  get unterminated (): string | undefined {
    if (this.strDepth > 0) return 'ends inside a string'
    if (this.hex !== 0) return 'ends inside a hex string'
    if (this.skipping !== undefined) return `ends before ${this.skipping}`
    return undefined
  }
}

/** Splits a latin1 stream into lines on CR, LF or CRLF, with a cap on line length. */
async function * lines (path: string, signal?: AbortSignal): AsyncGenerator<string> {
  let rest = ''
  let lastCR = false
  for await (const chunk of createReadStream(path, { signal, encoding: 'latin1', highWaterMark: 1 << 20 }) as AsyncIterable<string>) {
    let text = rest + chunk
    let from = 0
    if (lastCR && text.startsWith('\n')) from = 1
    lastCR = false
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c === 10 || c === 13) {
        yield text.slice(from, i)
        if (c === 13) {
          if (i + 1 === text.length) lastCR = true
          else if (text.charCodeAt(i + 1) === 10) i++
        }
        from = i + 1
      }
    }
    rest = text.slice(from)
    while (rest.length > MAX_LINE_CHARS) {
      yield rest.slice(0, MAX_LINE_CHARS)
      rest = rest.slice(MAX_LINE_CHARS)
    }
    text = ''
  }
  if (rest.length > 0) yield rest
}

/** Parses a PostScript document (see the module comment for the rules). */
export async function parsePostScript (path: string, signal?: AbortSignal): Promise<DocumentInfo> {
  const s = new Scanner()
  let first = true
  let count = 0
  for await (const line of lines(path, signal)) {
    if (first) {
      first = false
      if (!line.startsWith('%!')) throw corrupt('does not start with %!')
    }
    if ((++count & 0xfff) === 0) signal?.throwIfAborted()
    s.line(line)
  }
  if (first) throw corrupt('empty document')
  s.finish()
  const unterminated = s.unterminated
  if (unterminated !== undefined) throw corrupt(`truncated: ${unterminated}`)

  let pages: number
  let colorPages: number
  if (s.sections > 0) {
    if (s.declaredPages !== undefined && s.declaredPages > s.sections) {
      throw corrupt(`truncated: %%Pages declares ${s.declaredPages} pages but only ${s.sections} %%Page sections follow`)
    }
    pages = s.sections
    colorPages = s.colorSections
  } else if (s.declaredPages !== undefined && s.declaredPages > 0) {
    pages = s.declaredPages
    colorPages = s.showpages > 0 ? Math.min(pages, s.virtualColorPages) : (s.anyColor ? pages : 0)
  } else if (s.showpages > 0) {
    pages = s.showpages
    colorPages = s.virtualColorPages
  } else {
    throw corrupt('no pages: no %%Page sections, %%Pages count or showpage')
  }
  const media = s.media()
  return {
    format: FORMAT,
    pages,
    colorPages: Math.min(pages, colorPages),
    ...(media !== undefined ? { media } : {}),
    ...(s.duplex !== undefined ? { duplex: s.duplex } : {}),
    ...(s.copies !== undefined ? { copies: s.copies } : {})
  }
}
