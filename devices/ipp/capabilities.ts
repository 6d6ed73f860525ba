/**
 * What a printmesh queue supports, said once: the printer attributes it advertises
 * (Get-Printer-Attributes) and the checks of the job-template attributes a client sends
 * (Print-Job, Validate-Job, Create-Job). A printmesh queue holds documents for release and
 * passes them through untouched, so it only advertises options it records for the job
 * (copies, sides, media, hold) or whose single value is what pass-through means
 * (finishings none, normal quality, portrait, the document's own resolution).
 */
import { createHash } from 'node:crypto'
import type { QueueInfo } from '../jobs/types.ts'
import type { IntakeLimits } from '../jobs/intake-limits.ts'
import { Op, Tag, attr, collection, member, integerValue, stringValue, type IppAttribute, type IppValue } from './wire.ts'

/** A self-describing PWG media size: name and dimensions in hundredths of a millimetre. */
interface MediaSize { name: string, x: number, y: number }

/** Media a queue accepts; the first is the default (A4: most sites are outside North America). */
export const MEDIA: readonly MediaSize[] = [
  { name: 'iso_a4_210x297mm', x: 21000, y: 29700 },
  { name: 'na_letter_8.5x11in', x: 21590, y: 27940 },
  { name: 'iso_a3_297x420mm', x: 29700, y: 42000 },
  { name: 'iso_a5_148x210mm', x: 14800, y: 21000 },
  { name: 'na_legal_8.5x14in', x: 21590, y: 35560 }
]
/** media-col sizes match a named size within 1 mm (clients round inch sizes differently). */
const MEDIA_TOLERANCE = 100
/** The only media-type a pass-through queue can promise. */
const MEDIA_TYPES = ['stationery']
/** Largest copies value accepted; more is almost always a typo that would burn a ream. */
export const MAX_COPIES = 999
export const SIDES = ['one-sided', 'two-sided-long-edge', 'two-sided-short-edge']
export const PRINT_COLOR_MODES = ['auto', 'monochrome', 'color']
/** job-hold-until values: printmesh either prints on arrival or holds until released. */
export const HOLD_UNTIL = ['no-hold', 'indefinite']
export const COMPRESSIONS = ['none', 'deflate', 'gzip']
/** Formats with no detection step: the domain auto-detects `application/octet-stream`. */
export const AUTO_DETECT_FORMAT = 'application/octet-stream'
/** Charsets whose bytes are valid UTF-8 (all this server reads and writes). */
export const CHARSETS = ['utf-8', 'us-ascii']
/** The language of this server's status messages. */
export const NATURAL_LANGUAGE = 'en'
/** IPP versions accepted (major 1 and 2); advertised as ipp-versions-supported. */
export const IPP_VERSIONS = ['1.0', '1.1', '2.0']
/** Seconds a Create-Job waits for its Send-Document (advertised; the domain expires stale jobs). */
export const MULTIPLE_OPERATION_TIME_OUT = 300
/** Nominal speed: a held queue has none of its own; IPP 2.0 requires a value. */
const PAGES_PER_MINUTE = 20
/** The resolution the queue claims: documents keep their own; 600 dpi is what PDF consumers assume. */
const RESOLUTION = { x: 600, y: 600, units: 3 }
const PRINT_QUALITY_NORMAL = 4
const ORIENTATION_PORTRAIT = 3
const FINISHINGS_NONE = 3
const OUTPUT_BIN = 'auto'
/** printer-make-and-model, and the DNS-SD `ty` key: what a client shows as the printer's model. */
export const MAKE_AND_MODEL = 'printmesh secure release queue'

/** Operations this server implements (operations-supported). */
export const SUPPORTED_OPERATIONS: readonly number[] = [
  Op.PrintJob, Op.ValidateJob, Op.CreateJob, Op.SendDocument, Op.CancelJob, Op.GetJobAttributes,
  Op.GetJobs, Op.GetPrinterAttributes, Op.HoldJob, Op.ReleaseJob,
  Op.CupsGetDefault, Op.CupsGetPrinters, Op.CupsGetClasses
]

/** Printer attributes named by the `job-template` group of requested-attributes. */
const JOB_TEMPLATE_PREFIXES = [
  'copies-', 'sides-', 'media-', 'print-color-mode-', 'job-hold-until-', 'finishings-', 'print-quality-',
  'orientation-requested-', 'printer-resolution-', 'output-bin-', 'job-sheets-', 'number-up-'
]

/** True for printer attributes of the `job-template` group (xxx-default, xxx-supported, ...). */
export function isJobTemplatePrinterAttribute (name: string): boolean {
  return JOB_TEMPLATE_PREFIXES.some((p) => name.startsWith(p)) || name === 'media-col-database'
}

/** Everything printerAttributes needs to know about the queue and the moment. */
export interface PrinterContext {
  queue: QueueInfo
  /** Formats the domain parses (the server adds auto-detection). */
  formats: readonly string[]
  printerUri: string
  /** `printer-uri-supported` with security and authentication (default: `printerUri`, no TLS, Basic). */
  urisSupported?: ReadonlyArray<{ uri: string, security: 'tls' | 'none', authentication: 'basic' | 'requesting-user-name' }>
  /** An http(s) page about the queue (the server's own GET page). */
  moreInfoUri: string
  /** Jobs of the queue not yet completed. */
  queuedJobCount: number
  /** The intake's limits: its document size and pages per job are advertised. */
  limits: Pick<IntakeLimits, 'maxDocumentBytes' | 'maxJobImpressions'>
  now: number
}

function sizeCollection (m: MediaSize): IppValue {
  return collection(attr('x-dimension', Tag.integer, m.x), attr('y-dimension', Tag.integer, m.y))
}

function mediaCol (m: MediaSize): IppValue {
  return collection(
    { name: 'media-size', values: [sizeCollection(m)] },
    attr('media-type', Tag.keyword, MEDIA_TYPES[0])
  )
}

/** The document formats a queue accepts: the domain's plus auto-detection, without duplicates. */
export function supportedFormats (formats: readonly string[]): string[] {
  return [...new Set([AUTO_DETECT_FORMAT, ...formats.map((f) => f.toLowerCase())])]
}

/** A stable printer-uuid for a queue (RFC 4122 layout, derived from the queue URI). */
export function printerUuid (printerUri: string): string {
  const h = createHash('sha256').update(`printmesh:${printerUri}`).digest('hex')
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** Cuts text to the 127 octets ipptool and most clients expect of printer-info and friends. */
function text127 (s: string): string {
  let out = s
  while (Buffer.byteLength(out, 'utf8') > 127) out = out.slice(0, -1)
  return out
}

/**
 * All printer attributes of a queue (`media-col-database` included; the caller leaves it
 * out unless asked for by name, as RFC 8011 and PWG 5100.7 require).
 */
export function printerAttributes (ctx: PrinterContext): IppAttribute[] {
  const { queue } = ctx
  const formats = supportedFormats(ctx.formats)
  const uris = ctx.urisSupported ?? [{ uri: ctx.printerUri, security: 'none', authentication: 'basic' }]
  const out: IppAttribute[] = [
    // one value per URI, in the same order in the three (RFC 8011 §5.4.1-3)
    attr('printer-uri-supported', Tag.uri, ...uris.map((u) => u.uri)),
    attr('uri-security-supported', Tag.keyword, ...uris.map((u) => u.security)),
    // HTTP Basic (username and PIN, or admin and the admin token): for job control, and intake on queues that ask;
    // over plain ipp:// while TLS is on only requesting-user-name (no password goes out in the clear)
    attr('uri-authentication-supported', Tag.keyword, ...uris.map((u) => u.authentication)),
    attr('printer-name', Tag.nameWithoutLanguage, text127(queue.name)),
    attr('printer-info', Tag.textWithoutLanguage, text127(queue.info)),
    attr('printer-location', Tag.textWithoutLanguage, text127(queue.location)),
    attr('printer-make-and-model', Tag.textWithoutLanguage, MAKE_AND_MODEL),
    attr('printer-device-id', Tag.textWithoutLanguage, `MFG:printmesh;MDL:Secure Release Queue;CMD:${formats.filter((f) => f !== AUTO_DETECT_FORMAT).map((f) => f.split('/')[1].toUpperCase()).join(',')};`),
    attr('printer-more-info', Tag.uri, ctx.moreInfoUri),
    // the same queue over ipps:// is the same printer: one UUID, as DNS-SD advertises it
    attr('printer-uuid', Tag.uri, printerUuid(ctx.printerUri.replace(/^ipps:/, 'ipp:'))),
    attr('printer-state', Tag.enum, 3), // idle: the queue always accepts; release happens at printers
    attr('printer-state-reasons', Tag.keyword, 'none'),
    attr('printer-state-message', Tag.textWithoutLanguage, queue.hold ? 'Ready; jobs are held for release.' : 'Ready.'),
    attr('printer-is-accepting-jobs', Tag.boolean, true),
    attr('printer-up-time', Tag.integer, Math.max(1, Math.floor(ctx.now / 1000))),
    attr('printer-current-time', Tag.dateTime, new Date(ctx.now)),
    attr('queued-job-count', Tag.integer, ctx.queuedJobCount),
    attr('operations-supported', Tag.enum, ...SUPPORTED_OPERATIONS),
    attr('charset-configured', Tag.charset, CHARSETS[0]),
    attr('charset-supported', Tag.charset, ...CHARSETS),
    attr('natural-language-configured', Tag.naturalLanguage, NATURAL_LANGUAGE),
    attr('generated-natural-language-supported', Tag.naturalLanguage, NATURAL_LANGUAGE),
    attr('document-format-default', Tag.mimeMediaType, AUTO_DETECT_FORMAT),
    attr('document-format-supported', Tag.mimeMediaType, ...formats),
    attr('pdl-override-supported', Tag.keyword, 'attempted'),
    attr('ipp-versions-supported', Tag.keyword, ...IPP_VERSIONS),
    attr('compression-supported', Tag.keyword, ...COMPRESSIONS),
    attr('multiple-document-jobs-supported', Tag.boolean, false),
    attr('multiple-operation-time-out', Tag.integer, MULTIPLE_OPERATION_TIME_OUT),
    attr('color-supported', Tag.boolean, true),
    attr('pages-per-minute', Tag.integer, PAGES_PER_MINUTE),
    attr('pages-per-minute-color', Tag.integer, PAGES_PER_MINUTE),
    attr('job-k-octets-supported', Tag.rangeOfInteger, { lower: 0, upper: Math.floor(ctx.limits.maxDocumentBytes / 1024) }),
    attr('job-impressions-supported', Tag.rangeOfInteger, { lower: 0, upper: ctx.limits.maxJobImpressions }),
    attr('which-jobs-supported', Tag.keyword, 'completed', 'not-completed', 'all'),
    attr('printer-geo-location', Tag.unknown, null),
    attr('job-creation-attributes-supported', Tag.keyword,
      'copies', 'sides', 'media', 'media-col', 'print-color-mode', 'job-hold-until', 'finishings',
      'print-quality', 'orientation-requested', 'printer-resolution', 'output-bin', 'job-sheets', 'number-up'),
    // job-template group
    attr('copies-default', Tag.integer, 1),
    attr('copies-supported', Tag.rangeOfInteger, { lower: 1, upper: MAX_COPIES }),
    attr('sides-default', Tag.keyword, SIDES[0]),
    attr('sides-supported', Tag.keyword, ...SIDES),
    attr('media-default', Tag.keyword, MEDIA[0].name),
    attr('media-supported', Tag.keyword, ...MEDIA.map((m) => m.name)),
    attr('media-ready', Tag.keyword, ...MEDIA.map((m) => m.name)),
    attr('media-col-supported', Tag.keyword, 'media-size', 'media-type'),
    { name: 'media-col-default', values: [mediaCol(MEDIA[0])] },
    { name: 'media-col-ready', values: MEDIA.map(mediaCol) },
    { name: 'media-col-database', values: MEDIA.map(mediaCol) },
    { name: 'media-size-supported', values: MEDIA.map(sizeCollection) },
    attr('media-type-supported', Tag.keyword, ...MEDIA_TYPES),
    attr('print-color-mode-default', Tag.keyword, PRINT_COLOR_MODES[0]),
    attr('print-color-mode-supported', Tag.keyword, ...PRINT_COLOR_MODES),
    attr('job-hold-until-default', Tag.keyword, queue.hold ? 'indefinite' : 'no-hold'),
    attr('job-hold-until-supported', Tag.keyword, ...HOLD_UNTIL),
    attr('finishings-default', Tag.enum, FINISHINGS_NONE),
    attr('finishings-supported', Tag.enum, FINISHINGS_NONE),
    attr('print-quality-default', Tag.enum, PRINT_QUALITY_NORMAL),
    attr('print-quality-supported', Tag.enum, PRINT_QUALITY_NORMAL),
    attr('orientation-requested-default', Tag.enum, ORIENTATION_PORTRAIT),
    attr('orientation-requested-supported', Tag.enum, ORIENTATION_PORTRAIT),
    attr('printer-resolution-default', Tag.resolution, RESOLUTION),
    attr('printer-resolution-supported', Tag.resolution, RESOLUTION),
    attr('output-bin-default', Tag.keyword, OUTPUT_BIN),
    attr('output-bin-supported', Tag.keyword, OUTPUT_BIN),
    attr('job-sheets-default', Tag.keyword, 'none'),
    attr('job-sheets-supported', Tag.keyword, 'none'),
    attr('number-up-default', Tag.integer, 1),
    attr('number-up-supported', Tag.integer, 1)
  ]
  if (formats.includes('image/pwg-raster')) {
    out.push(
      attr('pwg-raster-document-resolution-supported', Tag.resolution, { x: 300, y: 300, units: 3 }, RESOLUTION),
      attr('pwg-raster-document-type-supported', Tag.keyword, 'black_1', 'sgray_8', 'srgb_8'),
      attr('pwg-raster-document-sheet-back', Tag.keyword, 'normal')
    )
  }
  return out
}

/** The job options a request asked for, after checking them against what the queue supports. */
export interface JobTemplate {
  copies: number
  sides: string
  media?: string
  holdUntil?: string
}

/** Outcome of checking job-template attributes: what to use, and what was not supported. */
export interface TemplateCheck {
  template: JobTemplate
  /** For the unsupported-attributes group: the attribute with the values not supported. */
  unsupported: IppAttribute[]
}

function mediaByName (name: string | undefined): MediaSize | undefined {
  return MEDIA.find((m) => m.name === name)
}

function mediaBySize (x: number | undefined, y: number | undefined): MediaSize | undefined {
  if (x === undefined || y === undefined) return undefined
  return MEDIA.find((m) => Math.abs(m.x - x) <= MEDIA_TOLERANCE && Math.abs(m.y - y) <= MEDIA_TOLERANCE)
}

const isKeywordOrName = (tag: number): boolean =>
  tag === Tag.keyword || tag === Tag.nameWithoutLanguage || tag === Tag.nameWithLanguage

/** Single-value job-template attributes whose only supported value is fixed, with the tag it must have. */
const FIXED_VALUES: Record<string, { tags: number[], ok: (v: IppValue) => boolean }> = {
  'print-color-mode': { tags: [Tag.keyword], ok: (v) => PRINT_COLOR_MODES.includes(v.value as string) },
  finishings: { tags: [Tag.enum], ok: (v) => v.value === FINISHINGS_NONE },
  'print-quality': { tags: [Tag.enum], ok: (v) => v.value === PRINT_QUALITY_NORMAL },
  'orientation-requested': { tags: [Tag.enum], ok: (v) => v.value === ORIENTATION_PORTRAIT },
  'printer-resolution': {
    tags: [Tag.resolution],
    ok: (v) => { const r = v.value as { x: number, y: number, units: number }; return r.x === RESOLUTION.x && r.y === RESOLUTION.y && r.units === RESOLUTION.units }
  },
  'output-bin': { tags: [Tag.keyword, Tag.nameWithoutLanguage], ok: (v) => v.value === OUTPUT_BIN },
  'job-sheets': { tags: [Tag.keyword, Tag.nameWithoutLanguage], ok: (v) => v.value === 'none' },
  'number-up': { tags: [Tag.integer], ok: (v) => v.value === 1 }
}

/**
 * Checks the job-template attributes of a request's job-attributes group. Unsupported
 * attributes or values are left out of the template and listed in `unsupported`; the
 * caller rejects the request when `ipp-attribute-fidelity` is true.
 */
export function checkJobTemplate (attributes: readonly IppAttribute[]): TemplateCheck {
  const template: JobTemplate = { copies: 1, sides: SIDES[0] }
  const unsupported: IppAttribute[] = []
  const reject = (a: IppAttribute): void => { unsupported.push(a) }
  for (const a of attributes) {
    const v = a.values[0]
    const single = a.values.length === 1
    switch (a.name) {
      case 'copies': {
        const n = integerValue(a)
        if (single && v.tag === Tag.integer && n !== undefined && n >= 1 && n <= MAX_COPIES) template.copies = n
        else reject(a)
        break
      }
      case 'sides':
        if (single && v.tag === Tag.keyword && SIDES.includes(v.value as string)) template.sides = v.value as string
        else reject(a)
        break
      case 'media': {
        const m = single && isKeywordOrName(v.tag) ? mediaByName(stringValue(a)) : undefined
        if (m !== undefined) template.media = m.name
        else reject(a)
        break
      }
      case 'media-col': {
        if (!single || v.tag !== Tag.begCollection) { reject(a); break }
        const size = member(v, 'media-size')?.values[0]
        const m = mediaBySize(integerValue(member(size, 'x-dimension')), integerValue(member(size, 'y-dimension')))
        const type = member(v, 'media-type')
        const members = (v.value as IppAttribute[]).map((x) => x.name)
        const knownMembers = members.every((n) => n === 'media-size' || n === 'media-type')
        const typeOk = type === undefined || MEDIA_TYPES.includes(stringValue(type) ?? '')
        if (size !== undefined && m === undefined) { reject(a); break }
        if (m !== undefined) template.media = m.name
        if (!knownMembers || !typeOk) reject(a)
        break
      }
      case 'job-hold-until': {
        const s = single && isKeywordOrName(v.tag) ? stringValue(a) : undefined
        if (s !== undefined && HOLD_UNTIL.includes(s)) template.holdUntil = s
        else reject(a)
        break
      }
      default: {
        const fixed = FIXED_VALUES[a.name]
        if (fixed === undefined) unsupported.push(attr(a.name, Tag.unsupported, null)) // not a job-template attribute we know
        else if (!single || !fixed.tags.includes(v.tag) || !fixed.ok(v)) reject(a)
      }
    }
  }
  return { template, unsupported }
}
