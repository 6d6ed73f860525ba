/**
 * What printing a job sends and charges, in one place for both kinds of release: a local
 * one (the holder prints on its own printer) and a roaming one (another site prints a job
 * it fetched). Both charge under the usage id `<jobId>/print`, so however many peers record
 * a print of one job, reports count it once (DESIGN.md invariant 3). What is charged
 * follows one rule ({@link printCharge}), also for a job whose pages are unknown.
 *
 * Also in one place for both: how a print the site lost track of (it restarted while the
 * printer had the job) is settled from what the printer says ({@link askPrinter},
 * {@link verdictFor}).
 */
import type * as Y from 'yjs'
import type { DocStore } from '../../crdt/store.ts'
import { acctDoc, periodOf, type PeerId, type SiteId } from '../../crdt/names.ts'
import { recordUsage, hasUsage, sheetsFor, type UsageCost } from '../../crdt/accounting.ts'
import { pricesAt, withCost } from '../../crdt/prices.ts'
import type { JobRecord } from '../../crdt/jobs.ts'
import { InvalidPrinterJobIdError, UNKNOWN_REASONS, type OutputDevice, type PrinterJobOutcome, type PrintRequest } from '../output/types.ts'

/**
 * How long a printer may be unable to say what became of a job it accepted (unreachable,
 * or it forgot the job) before the job is counted as printed and charged, as it was before
 * printers were asked: covers a printer's reboot or a repair visit, and keeps accounting
 * closing the same day.
 */
export const OUTCOME_UNKNOWN_LIMIT_MS = 4 * 3600_000

/** The usage id of a job's print: the same at every peer that might print it. */
export function usageId (job: Pick<JobRecord, 'id'>): string {
  return `${job.id}/print`
}

/** Whether `peer` already charged this job's print in the period of `time`. */
export async function isCharged (store: DocStore, peer: PeerId, job: Pick<JobRecord, 'id'>, time: number): Promise<boolean> {
  return hasUsage(await store.open(acctDoc(peer, periodOf(time))), usageId(job))
}

/**
 * Pages per copy charged for a job whose pages are unknown, when its printer reported no
 * impressions and its document declared no page count: at least one page came out.
 */
export const UNKNOWN_PAGES_FALLBACK = 1

/** What a print is charged (all copies), and what the page count rests on. */
export interface PrintCharge {
  pages: number
  colorPages: number
  sheets: number
  /**
   * `analysed`: the document's pages as parsed; for a job whose pages are unknown (its
   * analysis was stopped), `printer-impressions`: what the printer reports it printed,
   * `declared-pages`: the pages the document declares, `fallback`: {@link UNKNOWN_PAGES_FALLBACK}.
   */
  basis: 'analysed' | 'printer-impressions' | 'declared-pages' | 'fallback'
}

/**
 * The one rule for what a print is charged. A job whose pages were counted is charged
 * pages × copies, as analysed. A job whose pages are unknown (held with reason
 * `job-pages-unknown`) is charged the impressions its printer reports (`impressions`,
 * non-zero), else the pages its document declares × copies, else
 * {@link UNKNOWN_PAGES_FALLBACK} × copies; its colour was not analysed either, so every
 * page counts as colour (the safe side: an over-charge can be refunded, an under-charge
 * not recovered).
 */
export function printCharge (job: Pick<JobRecord, 'pages' | 'colorPages' | 'declaredPages' | 'copies' | 'sides'>, impressions?: number, monochrome = false): PrintCharge {
  const duplex = job.sides !== 'one-sided'
  if (job.pages !== undefined) {
    return { pages: job.pages * job.copies, colorPages: (job.colorPages ?? 0) * job.copies, sheets: sheetsFor(job.pages, job.copies, duplex), basis: 'analysed' }
  }
  if (impressions !== undefined && impressions > 0) {
    return { pages: impressions, colorPages: monochrome ? 0 : impressions, sheets: sheetsFor(Math.ceil(impressions / job.copies), job.copies, duplex), basis: 'printer-impressions' }
  }
  const perCopy = job.declaredPages ?? UNKNOWN_PAGES_FALLBACK
  const pages = perCopy * job.copies
  return { pages, colorPages: monochrome ? 0 : pages, sheets: sheetsFor(perCopy, job.copies, duplex), basis: job.declaredPages !== undefined ? 'declared-pages' : 'fallback' }
}

/**
 * Charges a printed job in `peer`'s accounting document, by {@link printCharge} (`impressions`:
 * what the printer reported, when it did), and returns it with its price; a second call
 * records nothing (same usage id).
 */
export async function chargePrint (
  store: DocStore, at: { peer: PeerId, site: SiteId, printer: string }, job: JobRecord, now: number, impressions?: number, monochrome = false
): Promise<PrintCharge & { cost?: UsageCost }> {
  const charge = printCharge(job, impressions, monochrome)
  // priced at the prices in force now: a later change of the price list prices new records only
  const prices = await pricesAt(store, at.site)
  const record = withCost(prices, {
    id: usageId(job),
    kind: 'print',
    user: job.owner,
    jobId: job.id,
    jobName: job.name,
    ...(job.media !== undefined ? { media: job.media } : {}),
    printer: at.printer,
    site: at.site,
    pages: charge.pages,
    colorPages: charge.colorPages,
    sheets: charge.sheets,
    duplex: job.sides !== 'one-sided',
    copies: job.copies,
    time: now,
    ...(job.releasedBy !== undefined ? { releasedBy: job.releasedBy } : {})
  })
  await store.transact(acctDoc(at.peer, periodOf(now)), { kind: 'local', service: 'accounting' }, (d: Y.Doc) => recordUsage(d, record))
  return { ...charge, ...(record.cost !== undefined ? { cost: record.cost } : {}) }
}

/** What a printer is sent for a job whose document is at `documentPath`. */
export function printRequestFor (job: JobRecord, documentPath: string, monochrome = false): PrintRequest {
  return {
    ...(monochrome ? { colorMode: 'monochrome' as const } : {}),
    documentPath,
    format: job.format ?? 'application/octet-stream',
    jobName: job.name,
    userName: job.owner,
    copies: job.copies,
    sides: job.sides,
    ...(job.media !== undefined ? { media: job.media } : {})
  }
}

/**
 * Asks `device` what became of its job `printerJobId`; with `wait`, waits for the job's end
 * where the device can (`follow`), else asks once. Never rejects: a missing device, one
 * that cannot be asked and an id it never hands out answer `unknown` with reason
 * `printer-cannot-tell` (asking again will not help); a device that throws otherwise
 * answers `unknown` with `printer-unreachable`.
 */
export async function askPrinter (
  device: OutputDevice | undefined, printerJobId: number, signal: AbortSignal, wait = false
): Promise<PrinterJobOutcome> {
  if (device === undefined) return { state: 'unknown', reason: UNKNOWN_REASONS.cannotTell, message: 'the printer is no longer configured' }
  const ask = wait && device.follow !== undefined ? device.follow.bind(device) : device.outcome?.bind(device)
  if (ask === undefined) return { state: 'unknown', reason: UNKNOWN_REASONS.cannotTell, message: `${device.uri} cannot say what became of a job` }
  try {
    return await ask(printerJobId, signal)
  } catch (err) {
    // a device breaking its never-rejects promise is treated as not answering, except for an id it never hands out
    const reason = err instanceof InvalidPrinterJobIdError ? UNKNOWN_REASONS.cannotTell : UNKNOWN_REASONS.unreachable
    return { state: 'unknown', reason, message: `asking ${device.uri} about job ${printerJobId} failed: ${(err as Error).message}` }
  }
}

/** What to do with a `printing` job after asking its printer ({@link verdictFor}). */
export type PrinterVerdict =
  /** the printer completed it: charge it (once) and settle it printed */
  | { settle: 'printed', impressions?: number }
  /** canceled or aborted at the printer: settle it failed, not charged */
  | { settle: 'failed', reason: string, message: string }
  /** still at the printer, or no answer yet: leave it `printing` and ask again later */
  | { settle: 'wait' }
  /** no answer for too long, or the printer cannot be asked: count it printed, as before printers were asked */
  | { settle: 'assume-printed', message: string }

/**
 * The one rule for settling a print the site lost track of. `unknownSince` is when this
 * process first got no usable answer about the job (the caller keeps it; pass `now` the
 * first time).
 */
export function verdictFor (answer: PrinterJobOutcome, unknownSince: number, now: number): PrinterVerdict {
  switch (answer.state) {
    case 'completed':
      return { settle: 'printed', ...(answer.impressions !== undefined ? { impressions: answer.impressions } : {}) }
    case 'failed':
      return { settle: 'failed', reason: answer.reason ?? 'aborted-by-system', message: answer.message ?? 'the printer did not finish the job' }
    case 'pending':
      return { settle: 'wait' }
    case 'unknown':
      if (answer.reason === UNKNOWN_REASONS.aborted) return { settle: 'wait' }
      if (answer.reason === UNKNOWN_REASONS.cannotTell) {
        return { settle: 'assume-printed', message: `the printer cannot be asked what became of the job (${answer.message ?? answer.reason}); counted as printed` }
      }
      if (now - unknownSince >= OUTCOME_UNKNOWN_LIMIT_MS) {
        return { settle: 'assume-printed', message: `the printer has not said what became of the job for ${Math.round((now - unknownSince) / 60_000)} min (${answer.message ?? answer.reason ?? 'no answer'}); counted as printed` }
      }
      return { settle: 'wait' }
  }
}
