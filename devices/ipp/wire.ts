/**
 * The IPP wire codec: RFC 8010 binary encoding of IPP/1.1 and IPP/2.x messages.
 *
 * The project's chosen IPP library (npm `ipp`) cannot be used for decoding or encoding:
 * its parser loses value tags, group order, repeated groups and the offset where the
 * document data starts, misparses `dateTime`, and writes to the console on bad input.
 * So `decodeMessage` / `encodeMessage` are ours and keep everything on the wire: every
 * group in order (repeated groups too), every value with its tag, collections as nested
 * attribute lists, out-of-band values as `null`, unknown tags as raw bytes. From the
 * `ipp` package we reuse only its name tables (operation names, status-code names and
 * enum names such as `job-state`) for {@link opName}, {@link statusName} and
 * {@link enumName}.
 *
 * Untrusted input: decoding is bounded (name and value lengths, collection depth,
 * attribute count) and every malformed input throws {@link IppDecodeError} with a message
 * saying what and where; a buffer that simply ends early throws {@link IppTruncatedError}
 * so a streaming caller can read more and retry.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** Name tables of the `ipp` package (CommonJS, untyped): value → name via `.lookup`. */
interface XrefTable { lookup: Array<string | undefined> }
const ippEnums = require('ipp/lib/enums.js') as Record<string, XrefTable | undefined>
const ippStatusNames = require('ipp/lib/status-codes.js') as XrefTable

/** Delimiter and value tags (RFC 8010 section 3.5, IANA IPP registry). */
export const Tag = {
  operationAttributes: 0x01,
  jobAttributes: 0x02,
  endOfAttributes: 0x03,
  printerAttributes: 0x04,
  unsupportedAttributes: 0x05,
  unsupported: 0x10,
  unknown: 0x12,
  noValue: 0x13,
  integer: 0x21,
  boolean: 0x22,
  enum: 0x23,
  octetString: 0x30,
  dateTime: 0x31,
  resolution: 0x32,
  rangeOfInteger: 0x33,
  begCollection: 0x34,
  textWithLanguage: 0x35,
  nameWithLanguage: 0x36,
  endCollection: 0x37,
  textWithoutLanguage: 0x41,
  nameWithoutLanguage: 0x42,
  keyword: 0x44,
  uri: 0x45,
  uriScheme: 0x46,
  charset: 0x47,
  naturalLanguage: 0x48,
  mimeMediaType: 0x49,
  memberAttrName: 0x4a
} as const

/**
 * One attribute value with its value tag. Which `value` shape goes with which tag:
 * integer/enum → number; boolean → boolean; text, name, keyword, uri, charset, language,
 * mimeMediaType, memberAttrName → string; dateTime → Date; rangeOfInteger → {lower, upper};
 * resolution → {x, y, units} (3 = dpi, 4 = dpcm); *WithLanguage → {lang, text};
 * begCollection → member attributes; out-of-band tags (0x10–0x1f) → null; octetString and
 * tags this codec does not know → Buffer (raw value bytes).
 */
export type IppValue =
  | { tag: number, value: number } /* integer, enum */
  | { tag: number, value: boolean }
  | { tag: number, value: string }
  | { tag: number, value: Date }
  | { tag: number, value: { lower: number, upper: number } }
  | { tag: number, value: { x: number, y: number, units: number } }
  | { tag: number, value: { lang: string, text: string } }
  | { tag: number, value: IppAttribute[] } /* collection members */
  | { tag: number, value: null } /* out-of-band */
  | { tag: number, value: Buffer } /* octetString, unknown tags */

/** A named attribute with one or more values (a `1setOf` has several). */
export interface IppAttribute { name: string, values: IppValue[] }

/** An attribute group, tagged with its delimiter tag; groups may repeat (e.g. one job group per job). */
export interface IppGroup { tag: number, attributes: IppAttribute[] }

/** A request (code = operation id) or a response (code = status code). */
export interface IppMessage {
  version: { major: number, minor: number }
  /** Operation id in a request, status code in a response. */
  code: number
  requestId: number
  groups: IppGroup[]
}

/** Malformed IPP bytes: the message says what is wrong and at which offset. */
export class IppDecodeError extends Error {
  constructor (message: string) { super(message); this.name = 'IppDecodeError' }
}

/** The buffer ends before end-of-attributes-tag: a streaming caller may read more and retry. */
export class IppTruncatedError extends IppDecodeError {
  constructor (message: string) { super(message); this.name = 'IppTruncatedError' }
}

/** A message that cannot be encoded (a value that does not fit its tag, an oversize string). */
export class IppEncodeError extends Error {
  constructor (message: string) { super(message); this.name = 'IppEncodeError' }
}

/** Operation ids (RFC 8011, PWG 5100.x and CUPS extensions). */
export const Op = {
  PrintJob: 0x0002,
  PrintUri: 0x0003,
  ValidateJob: 0x0004,
  CreateJob: 0x0005,
  SendDocument: 0x0006,
  SendUri: 0x0007,
  CancelJob: 0x0008,
  GetJobAttributes: 0x0009,
  GetJobs: 0x000a,
  GetPrinterAttributes: 0x000b,
  HoldJob: 0x000c,
  ReleaseJob: 0x000d,
  RestartJob: 0x000e,
  PausePrinter: 0x0010,
  ResumePrinter: 0x0011,
  PurgeJobs: 0x0012,
  SetPrinterAttributes: 0x0013,
  SetJobAttributes: 0x0014,
  GetPrinterSupportedValues: 0x0015,
  CreatePrinterSubscriptions: 0x0016,
  CreateJobSubscriptions: 0x0017,
  GetSubscriptionAttributes: 0x0018,
  GetSubscriptions: 0x0019,
  RenewSubscription: 0x001a,
  CancelSubscription: 0x001b,
  GetNotifications: 0x001c,
  EnablePrinter: 0x0022,
  DisablePrinter: 0x0023,
  PausePrinterAfterCurrentJob: 0x0024,
  HoldNewJobs: 0x0025,
  ReleaseHeldNewJobs: 0x0026,
  DeactivatePrinter: 0x0027,
  ActivatePrinter: 0x0028,
  RestartPrinter: 0x0029,
  ShutdownPrinter: 0x002a,
  StartupPrinter: 0x002b,
  ReprocessJob: 0x002c,
  CancelCurrentJob: 0x002d,
  SuspendCurrentJob: 0x002e,
  ResumeJob: 0x002f,
  PromoteJob: 0x0030,
  ScheduleJobAfter: 0x0031,
  CancelDocument: 0x0033,
  GetDocumentAttributes: 0x0034,
  GetDocuments: 0x0035,
  DeleteDocument: 0x0036,
  SetDocumentAttributes: 0x0037,
  CancelJobs: 0x0038,
  CancelMyJobs: 0x0039,
  ResubmitJob: 0x003a,
  CloseJob: 0x003b,
  IdentifyPrinter: 0x003c,
  ValidateDocument: 0x003d,
  CupsGetDefault: 0x4001,
  CupsGetPrinters: 0x4002,
  CupsAddModifyPrinter: 0x4003,
  CupsDeletePrinter: 0x4004,
  CupsGetClasses: 0x4005,
  CupsAcceptJobs: 0x4008,
  CupsRejectJobs: 0x4009,
  CupsSetDefault: 0x400a,
  CupsGetDevices: 0x400b,
  CupsGetPpds: 0x400c,
  CupsMoveJob: 0x400d,
  CupsAuthenticateJob: 0x400e,
  CupsGetPpd: 0x400f,
  CupsGetDocument: 0x4027
} as const

/** Status codes (RFC 8011 section 4.1.6 and appendix B, plus registered extensions). */
export const Status = {
  successfulOk: 0x0000,
  successfulOkIgnoredOrSubstitutedAttributes: 0x0001,
  successfulOkConflictingAttributes: 0x0002,
  successfulOkIgnoredSubscriptions: 0x0003,
  successfulOkTooManyEvents: 0x0005,
  successfulOkEventsComplete: 0x0007,
  clientErrorBadRequest: 0x0400,
  clientErrorForbidden: 0x0401,
  clientErrorNotAuthenticated: 0x0402,
  clientErrorNotAuthorized: 0x0403,
  clientErrorNotPossible: 0x0404,
  clientErrorTimeout: 0x0405,
  clientErrorNotFound: 0x0406,
  clientErrorGone: 0x0407,
  clientErrorRequestEntityTooLarge: 0x0408,
  clientErrorRequestValueTooLong: 0x0409,
  clientErrorDocumentFormatNotSupported: 0x040a,
  clientErrorAttributesOrValuesNotSupported: 0x040b,
  clientErrorUriSchemeNotSupported: 0x040c,
  clientErrorCharsetNotSupported: 0x040d,
  clientErrorConflictingAttributes: 0x040e,
  clientErrorCompressionNotSupported: 0x040f,
  clientErrorCompressionError: 0x0410,
  clientErrorDocumentFormatError: 0x0411,
  clientErrorDocumentAccessError: 0x0412,
  clientErrorAttributesNotSettable: 0x0413,
  clientErrorIgnoredAllSubscriptions: 0x0414,
  clientErrorTooManySubscriptions: 0x0415,
  clientErrorDocumentPasswordError: 0x0418,
  clientErrorDocumentPermissionError: 0x0419,
  clientErrorDocumentSecurityError: 0x041a,
  clientErrorDocumentUnprintableError: 0x041b,
  serverErrorInternalError: 0x0500,
  serverErrorOperationNotSupported: 0x0501,
  serverErrorServiceUnavailable: 0x0502,
  serverErrorVersionNotSupported: 0x0503,
  serverErrorDeviceError: 0x0504,
  serverErrorTemporaryError: 0x0505,
  serverErrorNotAcceptingJobs: 0x0506,
  serverErrorBusy: 0x0507,
  serverErrorJobCanceled: 0x0508,
  serverErrorMultipleDocumentJobsNotSupported: 0x0509,
  serverErrorPrinterIsDeactivated: 0x050a,
  serverErrorTooManyJobs: 0x050b,
  serverErrorTooManyDocuments: 0x050c
} as const

/** IPP attribute names are keywords of at most 255 octets (RFC 8011 5.1.4); allow slack for odd clients. */
export const MAX_NAME_LENGTH = 1024
/** Longest single value; RFC 8011's longest type (text, octetString) is 1023 octets, uris 8 KiB; keep well under the 16-bit field. */
export const MAX_VALUE_LENGTH = 32 * 1024
/** media-col nests two deep; anything much deeper is an attack on the decoder, not a print option. */
export const MAX_COLLECTION_DEPTH = 8
/** Attributes plus values in one message: Get-Printer-Attributes replies run to a few hundred. */
export const MAX_ATTRIBUTE_VALUES = 50_000

/** RFC 8010 fixed header: version (2), operation-id/status-code (2), request-id (4). */
const HEADER_LENGTH = 8
/** RFC 2579 DateAndTime encoding length. */
const DATE_TIME_LENGTH = 11
/** Resolution: cross-feed (4), feed (4), units (1). */
const RESOLUTION_LENGTH = 9
/** rangeOfInteger: lower (4), upper (4). */
const RANGE_LENGTH = 8
/** Tag 0x7f announces a 4-octet extended type code inside the value (RFC 8010 3.5.2). */
const EXTENSION_TAG = 0x7f

/** True for delimiter tags that start an attribute group (0x01–0x0f except end-of-attributes). */
export function isGroupTag (tag: number): boolean {
  return tag >= 0x01 && tag <= 0x0f && tag !== Tag.endOfAttributes
}

/** True for out-of-band value tags (unsupported, default, unknown, no-value, ...). */
export function isOutOfBandTag (tag: number): boolean {
  return tag >= 0x10 && tag <= 0x1f
}

/** Value tags whose values are character strings this codec decodes to `string`. */
const STRING_TAGS: ReadonlySet<number> = new Set([
  Tag.textWithoutLanguage, Tag.nameWithoutLanguage, Tag.keyword, Tag.uri, Tag.uriScheme,
  Tag.charset, Tag.naturalLanguage, Tag.mimeMediaType, Tag.memberAttrName
])

/** Reads from a buffer with bounds checks: running off the end is a truncation. */
class Reader {
  offset = 0
  constructor (readonly buf: Buffer) {}

  need (n: number, what: string): void {
    if (this.offset + n > this.buf.length) {
      throw new IppTruncatedError(`IPP message truncated at offset ${this.offset}: ${what} needs ${n} more byte(s), ${this.buf.length - this.offset} left`)
    }
  }

  u8 (what: string): number { this.need(1, what); return this.buf.readUInt8(this.offset++) }
  u16 (what: string): number { this.need(2, what); const v = this.buf.readUInt16BE(this.offset); this.offset += 2; return v }
  i32 (what: string): number { this.need(4, what); const v = this.buf.readInt32BE(this.offset); this.offset += 4; return v }
  bytes (n: number, what: string): Buffer { this.need(n, what); const b = this.buf.subarray(this.offset, this.offset + n); this.offset += n; return b }
}

function fail (at: number, message: string): never {
  throw new IppDecodeError(`bad IPP message at offset ${at}: ${message}`)
}

/** Decodes one value's bytes for its tag (the tag and lengths have been read already). */
function decodeValue (tag: number, raw: Buffer, at: number, name: string): IppValue {
  if (isOutOfBandTag(tag)) return { tag, value: null } // RFC 8010: out-of-band values carry no data; ignore any
  switch (tag) {
    case Tag.integer:
    case Tag.enum:
      if (raw.length !== 4) fail(at, `${name}: ${tag === Tag.enum ? 'enum' : 'integer'} value must be 4 bytes, got ${raw.length}`)
      return { tag, value: raw.readInt32BE(0) }
    case Tag.boolean:
      if (raw.length !== 1) fail(at, `${name}: boolean value must be 1 byte, got ${raw.length}`)
      if (raw[0] > 1) fail(at, `${name}: boolean value must be 0 or 1, got ${raw[0]}`)
      return { tag, value: raw[0] === 1 }
    case Tag.dateTime:
      return { tag, value: decodeDateTime(raw, at, name) }
    case Tag.resolution:
      if (raw.length !== RESOLUTION_LENGTH) fail(at, `${name}: resolution value must be ${RESOLUTION_LENGTH} bytes, got ${raw.length}`)
      return { tag, value: { x: raw.readInt32BE(0), y: raw.readInt32BE(4), units: raw.readInt8(8) } }
    case Tag.rangeOfInteger:
      if (raw.length !== RANGE_LENGTH) fail(at, `${name}: rangeOfInteger value must be ${RANGE_LENGTH} bytes, got ${raw.length}`)
      return { tag, value: { lower: raw.readInt32BE(0), upper: raw.readInt32BE(4) } }
    case Tag.textWithLanguage:
    case Tag.nameWithLanguage: {
      if (raw.length < 4) fail(at, `${name}: ${tag === Tag.textWithLanguage ? 'textWithLanguage' : 'nameWithLanguage'} value too short (${raw.length} bytes)`)
      const langLength = raw.readUInt16BE(0)
      if (2 + langLength + 2 > raw.length) fail(at, `${name}: language length ${langLength} overruns the value`)
      const lang = raw.toString('utf8', 2, 2 + langLength)
      const textLength = raw.readUInt16BE(2 + langLength)
      if (4 + langLength + textLength !== raw.length) fail(at, `${name}: text length ${textLength} does not match the value length ${raw.length}`)
      return { tag, value: { lang, text: raw.toString('utf8', 4 + langLength) } }
    }
    default:
      if (STRING_TAGS.has(tag)) return { tag, value: raw.toString('utf8') }
      return { tag, value: Buffer.from(raw) } // octetString and unknown tags: raw bytes, copied off the input
  }
}

/** RFC 2579 DateAndTime → Date (the instant it names, honouring the UTC offset). */
function decodeDateTime (raw: Buffer, at: number, name: string): Date {
  if (raw.length !== DATE_TIME_LENGTH) fail(at, `${name}: dateTime value must be ${DATE_TIME_LENGTH} bytes, got ${raw.length}`)
  const year = raw.readUInt16BE(0)
  const [month, day, hour, minute, second, deci, direction, offHours, offMinutes] = [raw[2], raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10]]
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || deci > 9) {
    fail(at, `${name}: dateTime field out of range (${year}-${month}-${day} ${hour}:${minute}:${second}.${deci})`)
  }
  if (direction !== 0x2b && direction !== 0x2d) fail(at, `${name}: dateTime UTC direction must be '+' or '-', got 0x${direction.toString(16)}`)
  if (offHours > 14 || offMinutes > 59) fail(at, `${name}: dateTime UTC offset out of range (${offHours}:${offMinutes})`)
  const sign = direction === 0x2b ? 1 : -1
  const local = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), deci * 100)
  return new Date(local - sign * (offHours * 60 + offMinutes) * 60_000)
}

/**
 * Decodes an IPP message from the start of `buf`. `bodyOffset` is where the document data
 * (if any) starts: the byte after end-of-attributes-tag.
 *
 * @throws {IppTruncatedError} when `buf` ends before end-of-attributes-tag
 * @throws {IppDecodeError} for malformed input (bad tags, lengths, values, nesting, limits)
 */
export function decodeMessage (buf: Buffer): { message: IppMessage, bodyOffset: number } {
  const r = new Reader(buf)
  r.need(HEADER_LENGTH, 'the message header')
  const major = r.u8('version')
  const minor = r.u8('version')
  const code = r.u16('operation-id/status-code')
  const requestId = r.i32('request-id')
  const groups: IppGroup[] = []
  let group: IppGroup | undefined
  let current: IppAttribute | undefined
  /** Open collections, innermost last: the collection value being filled and its current member. */
  const stack: Array<{ members: IppAttribute[], member?: IppAttribute, owner: IppAttribute }> = []
  let count = 0

  for (;;) {
    const at = r.offset
    const tag = r.u8('a tag')
    if (tag === Tag.endOfAttributes) {
      if (stack.length > 0) fail(at, `end-of-attributes-tag inside collection ${stack[stack.length - 1].owner.name}`)
      break
    }
    if (tag < 0x10) {
      if (tag === 0x00) fail(at, 'reserved delimiter tag 0x00')
      if (stack.length > 0) fail(at, `group tag 0x${hex(tag)} inside collection ${stack[stack.length - 1].owner.name}`)
      group = { tag, attributes: [] }
      groups.push(group)
      current = undefined
      continue
    }
    if (group === undefined) fail(at, `attribute (tag 0x${hex(tag)}) before any group tag`)
    if (++count > MAX_ATTRIBUTE_VALUES) fail(at, `more than ${MAX_ATTRIBUTE_VALUES} attribute values`)
    const valueTag = tag
    const nameLength = r.u16('a name length')
    if (nameLength > MAX_NAME_LENGTH) fail(at, `attribute name of ${nameLength} bytes exceeds the limit of ${MAX_NAME_LENGTH}`)
    const name = r.bytes(nameLength, 'an attribute name').toString('utf8')
    const valueLength = r.u16('a value length')
    if (valueLength > MAX_VALUE_LENGTH) fail(at, `${name || current?.name || 'value'}: value of ${valueLength} bytes exceeds the limit of ${MAX_VALUE_LENGTH}`)
    const raw = r.bytes(valueLength, 'an attribute value')
    if (valueTag === EXTENSION_TAG) {
      // The value keeps its 4-byte type code in front; it decodes as raw bytes under tag 0x7f.
      if (raw.length < 4) fail(at, 'extension tag 0x7f without its 4-byte type code')
      if (raw.readUInt32BE(0) > 0x7fffffff) fail(at, `extension type code 0x${raw.readUInt32BE(0).toString(16)} out of range`)
    }

    const top = stack[stack.length - 1]
    if (top !== undefined) {
      // Inside a collection: names are carried by memberAttrName values; value names must be empty.
      if (nameLength !== 0) fail(at, `attribute ${name} inside collection ${top.owner.name} (member values must have an empty name)`)
      if (valueTag === Tag.endCollection) {
        if (valueLength !== 0) fail(at, `endCollection with a ${valueLength}-byte value`)
        if (top.member !== undefined && top.member.values.length === 0) fail(at, `collection member ${top.member.name} has no value`)
        stack.pop()
        continue
      }
      if (valueTag === Tag.memberAttrName) {
        if (valueLength === 0) fail(at, `empty member name in collection ${top.owner.name}`)
        if (top.member !== undefined && top.member.values.length === 0) fail(at, `collection member ${top.member.name} has no value`)
        top.member = { name: raw.toString('utf8'), values: [] }
        top.members.push(top.member)
        continue
      }
      if (top.member === undefined) fail(at, `value without a memberAttrName in collection ${top.owner.name}`)
      pushValue(top.member, valueTag, raw, at)
      continue
    }

    if (valueTag === Tag.endCollection) fail(at, 'endCollection outside a collection')
    if (valueTag === Tag.memberAttrName) fail(at, 'memberAttrName outside a collection')
    if (nameLength === 0) {
      if (current === undefined) fail(at, 'additional value (empty name) without a preceding attribute')
    } else {
      current = { name, values: [] }
      group.attributes.push(current)
    }
    pushValue(current, valueTag, raw, at)
  }
  return { message: { version: { major, minor }, code, requestId, groups }, bodyOffset: r.offset }

  function pushValue (into: IppAttribute, valueTag: number, raw: Buffer, at: number): void {
    if (valueTag === Tag.begCollection) {
      if (raw.length !== 0) fail(at, `${into.name}: begCollection with a ${raw.length}-byte value`)
      if (stack.length >= MAX_COLLECTION_DEPTH) fail(at, `${into.name}: collections nested deeper than ${MAX_COLLECTION_DEPTH}`)
      const members: IppAttribute[] = []
      into.values.push({ tag: valueTag, value: members })
      stack.push({ members, owner: into })
      return
    }
    into.values.push(decodeValue(valueTag, raw, at, into.name))
  }
}

function hex (n: number): string { return n.toString(16).padStart(2, '0') }

/**
 * Walks the tag/length structure of a (possibly partial) message without decoding values,
 * so a streaming reader can find end-of-attributes-tag in linear time as bytes arrive.
 * Pass the previous `offset` back as `from` to resume. `complete` means `offset` is the
 * body offset; otherwise `offset` is where the next incomplete item starts. Structural
 * problems are left to {@link decodeMessage}, which the caller runs once complete.
 */
export function scanHeader (buf: Buffer, from = 0): { complete: boolean, offset: number } {
  let pos = Math.max(from, HEADER_LENGTH)
  if (buf.length < HEADER_LENGTH) return { complete: false, offset: 0 }
  for (;;) {
    if (pos >= buf.length) return { complete: false, offset: pos }
    const tag = buf[pos]
    if (tag === Tag.endOfAttributes) return { complete: true, offset: pos + 1 }
    if (tag < 0x10) { pos += 1; continue }
    if (pos + 3 > buf.length) return { complete: false, offset: pos }
    const nameEnd = pos + 3 + buf.readUInt16BE(pos + 1)
    if (nameEnd + 2 > buf.length) return { complete: false, offset: pos }
    const valueEnd = nameEnd + 2 + buf.readUInt16BE(nameEnd)
    if (valueEnd > buf.length) return { complete: false, offset: pos }
    pos = valueEnd
  }
}

/** Grows as values are written; avoids a Buffer per value. */
class Writer {
  private buf = Buffer.allocUnsafe(1024)
  length = 0

  private ensure (n: number): void {
    if (this.length + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n))
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }

  u8 (v: number): void { this.ensure(1); this.buf.writeUInt8(v, this.length); this.length += 1 }
  u16 (v: number): void { this.ensure(2); this.buf.writeUInt16BE(v, this.length); this.length += 2 }
  i32 (v: number): void { this.ensure(4); this.buf.writeInt32BE(v, this.length); this.length += 4 }
  bytes (b: Buffer): void { this.ensure(b.length); b.copy(this.buf, this.length); this.length += b.length }
  done (): Buffer { return Buffer.from(this.buf.subarray(0, this.length)) }
}

/** Encodes an IPP message (without document data: append it after the returned bytes). */
export function encodeMessage (msg: IppMessage): Buffer {
  const w = new Writer()
  checkRange('version major', msg.version.major, 0, 0xff)
  checkRange('version minor', msg.version.minor, 0, 0xff)
  checkRange('operation-id/status-code', msg.code, 0, 0xffff)
  checkRange('request-id', msg.requestId, -0x80000000, 0x7fffffff)
  w.u8(msg.version.major)
  w.u8(msg.version.minor)
  w.u16(msg.code)
  w.i32(msg.requestId)
  for (const group of msg.groups) {
    if (!isGroupTag(group.tag)) throw new IppEncodeError(`0x${hex(group.tag)} is not a group tag`)
    w.u8(group.tag)
    for (const attribute of group.attributes) writeAttribute(w, attribute, 0)
  }
  w.u8(Tag.endOfAttributes)
  return w.done()
}

function checkRange (what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new IppEncodeError(`${what} ${v} is not an integer in ${min}..${max}`)
}

function writeAttribute (w: Writer, attribute: IppAttribute, depth: number): void {
  if (attribute.values.length === 0) throw new IppEncodeError(`attribute ${attribute.name} has no values`)
  const name = Buffer.from(attribute.name, 'utf8')
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) throw new IppEncodeError(`attribute name "${attribute.name}" must be 1..${MAX_NAME_LENGTH} bytes`)
  attribute.values.forEach((v, i) => {
    writeValue(w, i === 0 ? name : Buffer.alloc(0), v, attribute.name, depth)
  })
}

/** Writes tag, name, and value (a collection writes its members and endCollection after). */
function writeValue (w: Writer, name: Buffer, v: IppValue, attrName: string, depth: number): void {
  const { tag, value } = v
  if (tag < 0x10 || tag > 0xff) throw new IppEncodeError(`${attrName}: 0x${hex(tag)} is not a value tag`)
  const header = (valueLength: number): void => {
    if (valueLength > MAX_VALUE_LENGTH) throw new IppEncodeError(`${attrName}: value of ${valueLength} bytes exceeds the limit of ${MAX_VALUE_LENGTH}`)
    w.u8(tag); w.u16(name.length); w.bytes(name); w.u16(valueLength)
  }
  const mismatch = (): never => { throw new IppEncodeError(`${attrName}: value ${describe(value)} does not fit tag 0x${hex(tag)}`) }

  if (value === null) {
    if (!isOutOfBandTag(tag)) mismatch()
    header(0)
    return
  }
  if (Buffer.isBuffer(value)) { header(value.length); w.bytes(value); return }
  switch (tag) {
    case Tag.integer:
    case Tag.enum:
      if (typeof value !== 'number') return mismatch()
      checkRange(attrName, value, -0x80000000, 0x7fffffff)
      header(4); w.i32(value); return
    case Tag.boolean:
      if (typeof value !== 'boolean') return mismatch()
      header(1); w.u8(value ? 1 : 0); return
    case Tag.dateTime:
      if (!(value instanceof Date) || Number.isNaN(value.getTime())) return mismatch()
      header(DATE_TIME_LENGTH); w.bytes(encodeDateTime(value)); return
    case Tag.resolution:
      if (typeof value !== 'object' || !('units' in value)) return mismatch()
      header(RESOLUTION_LENGTH); w.i32(value.x); w.i32(value.y); w.u8(value.units & 0xff); return
    case Tag.rangeOfInteger:
      if (typeof value !== 'object' || !('lower' in value)) return mismatch()
      header(RANGE_LENGTH); w.i32(value.lower); w.i32(value.upper); return
    case Tag.textWithLanguage:
    case Tag.nameWithLanguage: {
      if (typeof value !== 'object' || !('lang' in value)) return mismatch()
      const lang = Buffer.from(value.lang, 'utf8')
      const text = Buffer.from(value.text, 'utf8')
      header(4 + lang.length + text.length); w.u16(lang.length); w.bytes(lang); w.u16(text.length); w.bytes(text); return
    }
    case Tag.begCollection: {
      if (!Array.isArray(value)) return mismatch()
      if (depth >= MAX_COLLECTION_DEPTH) throw new IppEncodeError(`${attrName}: collections nested deeper than ${MAX_COLLECTION_DEPTH}`)
      header(0)
      for (const member of value) {
        if (member.values.length === 0) throw new IppEncodeError(`${attrName}: collection member ${member.name} has no values`)
        const memberName = Buffer.from(member.name, 'utf8')
        w.u8(Tag.memberAttrName); w.u16(0); w.u16(memberName.length); w.bytes(memberName)
        for (const mv of member.values) writeValue(w, Buffer.alloc(0), mv, `${attrName}.${member.name}`, depth + 1)
      }
      w.u8(Tag.endCollection); w.u16(0); w.u16(0)
      return
    }
    default: {
      if (typeof value !== 'string') return mismatch()
      const bytes = Buffer.from(value, 'utf8')
      header(bytes.length); w.bytes(bytes)
    }
  }
}

function describe (value: unknown): string {
  if (value instanceof Date) return 'Date'
  if (Array.isArray(value)) return 'collection'
  return typeof value === 'object' ? JSON.stringify(value) : `${typeof value} ${String(value)}`
}

/** Date → RFC 2579 DateAndTime in UTC. */
function encodeDateTime (d: Date): Buffer {
  const b = Buffer.alloc(DATE_TIME_LENGTH)
  b.writeUInt16BE(d.getUTCFullYear(), 0)
  b[2] = d.getUTCMonth() + 1
  b[3] = d.getUTCDate()
  b[4] = d.getUTCHours()
  b[5] = d.getUTCMinutes()
  b[6] = d.getUTCSeconds()
  b[7] = Math.floor(d.getUTCMilliseconds() / 100)
  b[8] = 0x2b // '+'
  b[9] = 0
  b[10] = 0
  return b
}

// ---------------------------------------------------------------------------------------
// Helpers

/** JS values accepted by {@link attr}, each paired with the attribute's tag. */
export type IppPlainValue = IppValue['value']

/** Builds an attribute whose values all share one tag: `attr('copies', Tag.integer, 1)`. */
export function attr (name: string, tag: number, ...values: IppPlainValue[]): IppAttribute {
  return { name, values: values.map((value) => ({ tag, value }) as IppValue) }
}

/** Builds a collection value from member attributes (for use inside {@link attr} or values). */
export function collection (...members: IppAttribute[]): IppValue {
  return { tag: Tag.begCollection, value: members }
}

/** First group with `groupTag` that has `name`, searched in order. */
export function findAttr (message: IppMessage, groupTag: number, name: string): IppAttribute | undefined {
  for (const group of message.groups) {
    if (group.tag !== groupTag) continue
    const found = group.attributes.find((a) => a.name === name)
    if (found !== undefined) return found
  }
  return undefined
}

/** All groups of a tag, in order (e.g. one job-attributes group per job in Get-Jobs). */
export function groupsOf (message: IppMessage, groupTag: number): IppGroup[] {
  return message.groups.filter((g) => g.tag === groupTag)
}

/** A member of a collection value by name. */
export function member (value: IppValue | undefined, name: string): IppAttribute | undefined {
  if (value === undefined || !Array.isArray(value.value)) return undefined
  return value.value.find((m) => m.name === name)
}

/** The attribute's first value as a string (text/name/keyword/uri… or the text of *WithLanguage). */
export function stringValue (a: IppAttribute | undefined): string | undefined {
  const v = a?.values[0]?.value
  if (typeof v === 'string') return v
  if (v !== null && typeof v === 'object' && 'lang' in v) return v.text
  return undefined
}

/** All values that are strings, in order. */
export function stringValues (a: IppAttribute | undefined): string[] {
  const out: string[] = []
  for (const { value: v } of a?.values ?? []) {
    if (typeof v === 'string') out.push(v)
    else if (v !== null && typeof v === 'object' && 'lang' in v) out.push(v.text)
  }
  return out
}

/** The attribute's first value as a number (integer or enum). */
export function integerValue (a: IppAttribute | undefined): number | undefined {
  const v = a?.values[0]?.value
  return typeof v === 'number' ? v : undefined
}

/** The attribute's first value as a boolean. */
export function booleanValue (a: IppAttribute | undefined): boolean | undefined {
  const v = a?.values[0]?.value
  return typeof v === 'boolean' ? v : undefined
}

/** Operation name for logs, e.g. `Get-Printer-Attributes` (or `0x4001`). */
export function opName (code: number): string {
  return ippEnums['operations-supported']?.lookup[code] ?? `0x${code.toString(16).padStart(4, '0')}`
}

/** Status-code keyword, e.g. `client-error-not-found` (or `0x0420`). */
export function statusName (code: number): string {
  return ippStatusNames.lookup[code] ?? `0x${code.toString(16).padStart(4, '0')}`
}

/** Keyword of an enum value, e.g. `enumName('job-state', 9) === 'completed'`. */
export function enumName (attribute: string, value: number): string | undefined {
  return ippEnums[attribute]?.lookup[value]
}
