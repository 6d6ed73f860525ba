/**
 * The CUPS extension operations that CUPS's own tools and desktop print dialogs send to a
 * server as a whole (CUPS Implementation of IPP, "CUPS-Get-Default", "CUPS-Get-Printers",
 * "CUPS-Get-Classes"): `lpstat -p/-a/-v/-d/-t`, `lpq`, and cups-browsed ask these before
 * anything else. Each queue of the site is one "printer"; a site has no classes.
 */
import type { QueueInfo } from '../../jobs/types.ts'
import { printerAttributes } from '../capabilities.ts'
import { IppStatusError } from '../errors.ts'
import { Tag, Status, attr, type IppAttribute, type IppGroup } from '../wire.ts'
import { requested, opInteger, opName, unknownOperationAttributes, okStatus, type OperationContext, type OperationHandler } from './common.ts'
import { PRINTER_EXPLICIT_ONLY, PRINTER_GROUPS } from './queries.ts'

/**
 * CUPS's printer-type bits (cups/cups.h, cups_ptype_e) a queue has: it is a remote
 * ("shared") queue that accepts documents of any kind, with colour, duplex, copies and
 * collation; never a class, implicit class or fax.
 */
const CUPS_PRINTER_TYPE = {
  remote: 0x0002,
  color: 0x0004,
  duplex: 0x0010,
  copies: 0x0100,
  collate: 0x0200
} as const
const QUEUE_PRINTER_TYPE = Object.values(CUPS_PRINTER_TYPE).reduce((a, b) => a | b, 0)
/** A queue is idle and accepting from the moment the site starts: CUPS tools show this as "enabled since". */
const QUEUES_UP_SINCE_S = Math.floor(Date.now() / 1000)

/** CUPS-specific attributes a queue adds to its printer attributes for CUPS clients. */
function cupsAttributes (ctx: OperationContext, queue: QueueInfo): IppAttribute[] {
  return [
    attr('printer-type', Tag.enum, QUEUE_PRINTER_TYPE),
    // `lpstat -v` shows it as "device for <queue>": where the queue's jobs go is this site
    attr('device-uri', Tag.uri, ctx.uris.printerUri(queue.name)),
    attr('printer-state-change-time', Tag.integer, QUEUES_UP_SINCE_S)
  ]
}

/** The printer attributes of one queue, as Get-Printer-Attributes gives them, plus CUPS's own. */
function queueGroup (ctx: OperationContext, queue: QueueInfo): IppGroup {
  const want = requested(ctx, 'all', PRINTER_GROUPS, PRINTER_EXPLICIT_ONLY)
  const attributes = [
    ...printerAttributes({
      queue,
      formats: ctx.domain.supportedFormats(),
      printerUri: ctx.uris.printerUri(queue.name),
      urisSupported: ctx.uris.printerUrisSupported(queue.name),
      moreInfoUri: ctx.uris.moreInfoUri(queue.name),
      queuedJobCount: ctx.domain.listJobs({ queue: queue.name, which: 'not-completed' }).length,
      limits: ctx.limits,
      now: ctx.now()
    }),
    ...cupsAttributes(ctx, queue)
  ].filter((a) => want.has(a.name))
  return { tag: Tag.printerAttributes, attributes }
}

/** Filters CUPS clients send with CUPS-Get-Printers; the site's queues match or not as a whole. */
const GET_PRINTERS_ATTRIBUTES = ['requested-attributes', 'limit', 'first-printer-name', 'printer-type', 'printer-type-mask', 'printer-location', 'requested-user-name', 'printer-id']

export const cupsGetPrinters: OperationHandler = async (ctx) => {
  const limit = opInteger(ctx, 'limit')
  if (limit !== undefined && limit < 1) {
    throw new IppStatusError(Status.clientErrorAttributesOrValuesNotSupported, 'limit must be at least 1', [attr('limit', Tag.integer, limit)])
  }
  const first = opName(ctx, 'first-printer-name')
  const type = opInteger(ctx, 'printer-type') ?? 0
  const mask = opInteger(ctx, 'printer-type-mask') ?? 0
  const unsupported = unknownOperationAttributes(ctx, GET_PRINTERS_ATTRIBUTES)
  const queues = ctx.domain.queues()
  const from = first === undefined ? 0 : Math.max(0, queues.findIndex((q) => q.name.toLowerCase() === first.toLowerCase()))
  const matching = (QUEUE_PRINTER_TYPE & mask) === (type & mask) ? queues.slice(from) : []
  return { status: okStatus(unsupported), unsupported, groups: matching.slice(0, limit ?? matching.length).map((q) => queueGroup(ctx, q)) }
}

export const cupsGetDefault: OperationHandler = async (ctx) => {
  const unsupported = unknownOperationAttributes(ctx, ['requested-attributes'])
  const queue = ctx.domain.queues()[0]
  if (queue === undefined) throw new IppStatusError(Status.clientErrorNotFound, 'this site has no queue')
  return { status: okStatus(unsupported), unsupported, groups: [queueGroup(ctx, queue)] }
}

/** A site has queues, never classes: the answer is an empty list. */
export const cupsGetClasses: OperationHandler = async (ctx) => {
  const unsupported = unknownOperationAttributes(ctx, GET_PRINTERS_ATTRIBUTES)
  return { status: okStatus(unsupported), unsupported, groups: [] }
}
