// The IPP wire codec (devices/ipp/wire.ts): round-trips of every value type, group order,
// truncation, malformed input and size limits.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  Tag, Op, Status, decodeMessage, encodeMessage, attr, collection, findAttr, groupsOf, member,
  stringValue, stringValues, integerValue, booleanValue, opName, statusName, enumName,
  IppDecodeError, IppTruncatedError, IppEncodeError, MAX_COLLECTION_DEPTH, MAX_VALUE_LENGTH,
  type IppMessage, type IppAttribute
} from '../devices/ipp/wire.ts'

function request (groups: IppMessage['groups'], code: number = Op.GetPrinterAttributes): IppMessage {
  return { version: { major: 2, minor: 0 }, code, requestId: 42, groups }
}

const opGroup = {
  tag: Tag.operationAttributes,
  attributes: [
    attr('attributes-charset', Tag.charset, 'utf-8'),
    attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
    attr('printer-uri', Tag.uri, 'ipp://localhost/ipp/print')
  ]
}

/** Hand-built bytes: header, then raw pieces. */
function bytes (...parts: Array<number[] | Buffer | string>): Buffer {
  return Buffer.concat(parts.map((p) => typeof p === 'string' ? Buffer.from(p) : Buffer.isBuffer(p) ? p : Buffer.from(p)))
}
const header = [0x02, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01]
function u16 (n: number): number[] { return [n >> 8, n & 0xff] }
/** One attribute value: tag, name, value. */
function value (tag: number, name: string, v: Buffer | string | number[]): Buffer {
  const vb = typeof v === 'string' ? Buffer.from(v) : Buffer.from(v)
  return bytes([tag], u16(Buffer.byteLength(name)), name, u16(vb.length), vb)
}

test('round-trips every value type with its tag', () => {
  const when = new Date(Date.UTC(2024, 1, 29, 13, 45, 7, 800))
  const msg = request([opGroup, {
    tag: Tag.jobAttributes,
    attributes: [
      attr('copies', Tag.integer, 3),
      attr('negative', Tag.integer, -2147483648),
      attr('job-state', Tag.enum, 9),
      attr('ipp-attribute-fidelity', Tag.boolean, true),
      attr('flag-off', Tag.boolean, false),
      attr('job-password', Tag.octetString, Buffer.from([0, 1, 2, 255])),
      attr('date-time-at-creation', Tag.dateTime, when),
      attr('printer-resolution', Tag.resolution, { x: 600, y: 1200, units: 3 }),
      attr('page-ranges', Tag.rangeOfInteger, { lower: 1, upper: 5 }, { lower: 7, upper: 7 }),
      attr('job-message', Tag.textWithLanguage, { lang: 'de', text: 'Grüße' }),
      attr('job-owner', Tag.nameWithLanguage, { lang: 'en', text: 'alice' }),
      attr('job-name', Tag.nameWithoutLanguage, 'Report ✓'),
      attr('printer-info', Tag.textWithoutLanguage, ''),
      attr('sides', Tag.keyword, 'one-sided', 'two-sided-long-edge'),
      attr('job-uri', Tag.uri, 'ipp://h/jobs/1'),
      attr('uri-scheme', Tag.uriScheme, 'ipp'),
      attr('charset', Tag.charset, 'utf-8'),
      attr('lang', Tag.naturalLanguage, 'en-us'),
      attr('document-format', Tag.mimeMediaType, 'application/pdf'),
      attr('job-hold-until', Tag.noValue, null),
      attr('printer-alert', Tag.unknown, null),
      attr('odd', 0x5f, Buffer.from('raw-bytes')),
      attr('extended', 0x7f, Buffer.from([0x00, 0x00, 0x10, 0x00, 0xaa])),
      { name: 'media-col', values: [collection(
        { name: 'media-size', values: [collection(attr('x-dimension', Tag.integer, 21000), attr('y-dimension', Tag.integer, 29700))] },
        attr('media-type', Tag.keyword, 'stationery', 'photographic'),
        attr('media-empty', Tag.begCollection, [])
      )] },
      { name: 'mixed', values: [{ tag: Tag.integer, value: 1 }, { tag: Tag.keyword, value: 'none' }] }
    ]
  }])
  const encoded = encodeMessage(msg)
  const { message, bodyOffset } = decodeMessage(encoded)
  assert.is(bodyOffset, encoded.length)
  assert.equal(message, msg)
  const dt = findAttr(message, Tag.jobAttributes, 'date-time-at-creation')?.values[0].value
  assert.ok(dt instanceof Date)
  assert.is((dt as Date).toISOString(), '2024-02-29T13:45:07.800Z')
})

test('keeps group order, repeated groups and empty groups', () => {
  const msg: IppMessage = {
    version: { major: 1, minor: 1 },
    code: Status.successfulOk,
    requestId: 7,
    groups: [
      opGroup,
      { tag: Tag.jobAttributes, attributes: [attr('job-id', Tag.integer, 1)] },
      { tag: Tag.jobAttributes, attributes: [] },
      { tag: Tag.jobAttributes, attributes: [attr('job-id', Tag.integer, 3)] },
      { tag: Tag.unsupportedAttributes, attributes: [attr('finishings', Tag.unsupported, null)] },
      { tag: 0x09, attributes: [attr('document-number', Tag.integer, 1)] }
    ]
  }
  const { message } = decodeMessage(encodeMessage(msg))
  assert.equal(message.groups.map((g) => g.tag), [1, 2, 2, 2, 5, 9])
  assert.equal(groupsOf(message, Tag.jobAttributes).map((g) => integerValue(g.attributes[0])), [1, undefined, 3])
  assert.equal(message, msg)
})

test('reports where the document data starts', () => {
  const head = encodeMessage(request([opGroup], Op.PrintJob))
  const doc = Buffer.from('%PDF-1.7\n...')
  const { bodyOffset } = decodeMessage(Buffer.concat([head, doc]))
  assert.is(bodyOffset, head.length)
})

test('decodes dateTime with a UTC offset to the instant it names', () => {
  // 2020-06-01 12:30:15.5 at UTC-05:30 is 18:00:15.5 UTC
  const dt = [0x07, 0xe4, 6, 1, 12, 30, 15, 5, 0x2d, 5, 30]
  const buf = bytes(header, [Tag.operationAttributes], value(Tag.dateTime, 'when', dt), [Tag.endOfAttributes])
  const v = findAttr(decodeMessage(buf).message, Tag.operationAttributes, 'when')?.values[0].value
  assert.is((v as Date).toISOString(), '2020-06-01T18:00:15.500Z')
})

test('decodes what ipptool/CUPS sends: additional values and a media-col collection', () => {
  const buf = bytes(header, [Tag.operationAttributes],
    value(Tag.charset, 'attributes-charset', 'utf-8'),
    value(Tag.keyword, 'requested-attributes', 'printer-name'),
    value(Tag.keyword, '', 'printer-state'),
    [Tag.jobAttributes],
    value(Tag.begCollection, 'media-col', []),
    value(Tag.memberAttrName, '', 'media-size'),
    value(Tag.begCollection, '', []),
    value(Tag.memberAttrName, '', 'x-dimension'), value(Tag.integer, '', [0, 0, 0x52, 0x08]),
    value(Tag.memberAttrName, '', 'y-dimension'), value(Tag.integer, '', [0, 0, 0x74, 0x04]),
    value(Tag.endCollection, '', []),
    value(Tag.endCollection, '', []),
    [Tag.endOfAttributes])
  const { message } = decodeMessage(buf)
  assert.equal(stringValues(findAttr(message, Tag.operationAttributes, 'requested-attributes')), ['printer-name', 'printer-state'])
  const size = member(findAttr(message, Tag.jobAttributes, 'media-col')?.values[0], 'media-size')
  assert.is(integerValue(member(size?.values[0], 'x-dimension')), 21000)
  assert.is(integerValue(member(size?.values[0], 'y-dimension')), 29700)
})

test('value readers', () => {
  const msg = decodeMessage(encodeMessage(request([opGroup, { tag: Tag.jobAttributes, attributes: [
    attr('job-name', Tag.nameWithLanguage, { lang: 'en', text: 'x' }),
    attr('copies', Tag.integer, 2),
    attr('fidelity', Tag.boolean, true)
  ] }]))).message
  assert.is(stringValue(findAttr(msg, Tag.operationAttributes, 'printer-uri')), 'ipp://localhost/ipp/print')
  assert.is(stringValue(findAttr(msg, Tag.jobAttributes, 'job-name')), 'x')
  assert.is(integerValue(findAttr(msg, Tag.jobAttributes, 'copies')), 2)
  assert.is(booleanValue(findAttr(msg, Tag.jobAttributes, 'fidelity')), true)
  assert.is(integerValue(findAttr(msg, Tag.jobAttributes, 'job-name')), undefined)
  assert.is(findAttr(msg, Tag.printerAttributes, 'copies'), undefined)
  assert.is(opName(Op.GetPrinterAttributes), 'Get-Printer-Attributes')
  assert.is(opName(0x4001), '0x4001')
  assert.is(statusName(Status.clientErrorNotFound), 'client-error-not-found')
  assert.is(enumName('job-state', 9), 'completed')
})

test('every prefix of a valid message is reported as truncated', () => {
  const full = encodeMessage(request([opGroup, { tag: Tag.jobAttributes, attributes: [
    attr('media-col', Tag.begCollection, [attr('media-type', Tag.keyword, 'stationery')]),
    attr('job-name', Tag.textWithLanguage, { lang: 'en', text: 'x' })
  ] }]))
  for (let n = 0; n < full.length; n++) {
    assert.throws(() => decodeMessage(full.subarray(0, n)), (err: unknown) => err instanceof IppTruncatedError, `prefix of ${n} bytes`)
  }
  assert.not.throws(() => decodeMessage(full))
})

/** Asserts a malformed (not merely truncated) input with a message matching `pattern`. */
function rejects (buf: Buffer, pattern: RegExp): void {
  let caught: unknown
  try { decodeMessage(buf) } catch (err) { caught = err }
  assert.ok(caught instanceof IppDecodeError, `expected IppDecodeError, got ${String(caught)}`)
  assert.not.ok(caught instanceof IppTruncatedError, `expected a decode error, got truncation: ${(caught as Error).message}`)
  assert.match((caught as Error).message, pattern)
}

test('rejects malformed tags and structure', () => {
  const ok = value(Tag.charset, 'attributes-charset', 'utf-8')
  rejects(bytes(header, [0x00]), /reserved delimiter tag 0x00/)
  rejects(bytes(header, ok, [Tag.endOfAttributes]), /before any group tag/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.keyword, '', 'x'), [Tag.endOfAttributes]), /without a preceding attribute/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.endCollection, '', ''), [Tag.endOfAttributes]), /endCollection outside/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.memberAttrName, '', 'x'), [Tag.endOfAttributes]), /memberAttrName outside/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.begCollection, 'c', []), [Tag.endOfAttributes]), /inside collection c/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.begCollection, 'c', []), value(Tag.integer, '', [0, 0, 0, 1])), /without a memberAttrName/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.begCollection, 'c', []), value(Tag.integer, 'named', [0, 0, 0, 1])), /member values must have an empty name/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.begCollection, 'c', []), value(Tag.memberAttrName, '', 'm'), value(Tag.endCollection, '', [])), /member m has no value/)
  rejects(bytes(header, [Tag.operationAttributes], value(Tag.begCollection, 'c', [1])), /begCollection with a 1-byte value/)
  rejects(bytes(header, [Tag.operationAttributes], value(0x7f, 'x', [0, 1])), /extension tag/)
})

test('rejects values that do not fit their tag', () => {
  const one = (tag: number, v: number[]): Buffer => bytes(header, [Tag.operationAttributes], value(tag, 'a', v), [Tag.endOfAttributes])
  rejects(one(Tag.integer, [0, 0, 1]), /integer value must be 4 bytes/)
  rejects(one(Tag.enum, [0, 0, 0, 0, 1]), /enum value must be 4 bytes/)
  rejects(one(Tag.boolean, [2]), /boolean value must be 0 or 1/)
  rejects(one(Tag.boolean, []), /boolean value must be 1 byte/)
  rejects(one(Tag.dateTime, [0x07, 0xe4, 13, 1, 0, 0, 0, 0, 0x2b, 0, 0]), /dateTime field out of range/)
  rejects(one(Tag.dateTime, [0x07, 0xe4, 1, 1, 0, 0, 0, 0, 0x41, 0, 0]), /UTC direction/)
  rejects(one(Tag.dateTime, [0x07, 0xe4, 1, 1]), /dateTime value must be 11 bytes/)
  rejects(one(Tag.resolution, [0, 0, 0, 1]), /resolution value must be 9 bytes/)
  rejects(one(Tag.rangeOfInteger, [0, 0, 0, 1]), /rangeOfInteger value must be 8 bytes/)
  rejects(one(Tag.textWithLanguage, [0, 9, 0x65, 0x6e, 0, 0]), /language length 9 overruns/)
  rejects(one(Tag.nameWithLanguage, [0, 2, 0x65, 0x6e, 0, 5, 0x61]), /text length 5 does not match/)
})

test('rejects oversize names and values and too-deep collections', () => {
  rejects(bytes(header, [Tag.operationAttributes], [Tag.keyword], u16(5000), Buffer.alloc(5000, 0x61), u16(0), [Tag.endOfAttributes]), /name of 5000 bytes exceeds/)
  const big = MAX_VALUE_LENGTH + 1
  rejects(bytes(header, [Tag.operationAttributes], [Tag.textWithoutLanguage], u16(1), 'a', u16(big), Buffer.alloc(big, 0x61), [Tag.endOfAttributes]), /value of 32769 bytes exceeds/)
  const parts: Buffer[] = [value(Tag.begCollection, 'deep', [])]
  for (let i = 0; i < MAX_COLLECTION_DEPTH + 1; i++) parts.push(value(Tag.memberAttrName, '', 'm'), value(Tag.begCollection, '', []))
  rejects(bytes(header, [Tag.operationAttributes], ...parts), /nested deeper than 8/)
})

test('fuzzed input only ever throws IppDecodeError', () => {
  const base = encodeMessage(request([opGroup, { tag: Tag.jobAttributes, attributes: [
    attr('media-col', Tag.begCollection, [attr('media-size', Tag.begCollection, [attr('x-dimension', Tag.integer, 1)])]),
    attr('when', Tag.dateTime, new Date(0)),
    attr('job-name', Tag.nameWithLanguage, { lang: 'en', text: 'x' })
  ] }]))
  let seed = 12345
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  let decoded = 0
  for (let i = 0; i < 5000; i++) {
    const buf = Buffer.from(base)
    for (let k = 0, flips = 1 + rand(4); k < flips; k++) buf[rand(buf.length)] = rand(256)
    try { decodeMessage(buf); decoded++ } catch (err) {
      if (!(err instanceof IppDecodeError)) throw err
    }
  }
  assert.ok(decoded > 0, 'some mutations still decode')
})

test('encode refuses values that do not fit their tag', () => {
  const bad: IppAttribute[] = [
    attr('copies', Tag.integer, 'three'),
    attr('copies', Tag.integer, 2 ** 31),
    attr('when', Tag.dateTime, new Date(NaN)),
    attr('oob', Tag.keyword, null),
    { name: 'empty', values: [] },
    attr('', Tag.keyword, 'x'),
    attr('long', Tag.textWithoutLanguage, 'x'.repeat(MAX_VALUE_LENGTH + 1))
  ]
  for (const a of bad) {
    assert.throws(() => encodeMessage(request([{ tag: Tag.operationAttributes, attributes: [a] }])), (err: unknown) => err instanceof IppEncodeError, a.name)
  }
  assert.throws(() => encodeMessage(request([{ tag: 0x20, attributes: [] }])), (err: unknown) => err instanceof IppEncodeError)
})

test.run()
