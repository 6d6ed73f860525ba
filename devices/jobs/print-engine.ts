/**
 * The print half of the release engine: one path, for every release, from "this peer may
 * print it" to "printed and charged once". A local release (the job service printing a job
 * it holds) and a roaming one (printing a partner's job under its grant, or offline) differ
 * only in the record that carries the print (the job itself, or this peer's release
 * record); that record is a {@link PrintTarget}, and everything else happens here:
 *
 *   0. reserve the owner's credit for it (credit-gate.ts; a job it does not cover goes back to
 *      the user, held, saying what is available), given back whenever the print is not charged;
 *   1. wait the printer's lane (one submission in flight per printer, devices/jobs/printer-lanes.ts);
 *   2. mark the record `printing`, durably, before a byte reaches the printer;
 *   3. a printer still busy after the output device's own retries: the record goes back to
 *      waiting and is offered again with back-off until its deadline (records that cannot
 *      wait are not printed, the printer never having taken them);
 *   4. record the printer's job id the moment the printer accepts;
 *   5. charge once, under the job's usage id (usage.ts `printCharge`: the printer's
 *      impressions count for a job whose pages are unknown), then mark it printed;
 *   6. a failure the printer never accepted leaves it the user's to release again; one it
 *      did is failed, not charged; stopping mid-way leaves the record for the next start;
 *   7. after a restart, a record left `printing` is settled by what the printer says of
 *      its job (usage.ts `verdictFor`), or counted printed and charged once when nobody
 *      can tell.
 * Grants, fetching and committing (who may print, at most once) are the holder's and the
 * roaming service's; this engine starts where they end.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { DocStore } from '../../crdt/store.ts'
import type { JobRecord } from '../../crdt/jobs.ts'
import type { PeerId, SiteId } from '../../crdt/names.ts'
import { PrinterError, isPrinterBusy, type OutputDevice, type PrintOutcome } from '../output/types.ts'
import { PrinterLanes, type LeaveLane } from './printer-lanes.ts'
import { askPrinter, chargePrint, isCharged, printRequestFor, verdictFor } from './usage.ts'
import { printPolicyOf, type PrintedAs } from './policy.ts'
import { CreditRefusedError, type CreditGate } from './credit-gate.ts'

/** First wait after a printer stayed busy through the device's own retries; doubles per round. */
export const DEFAULT_BUSY_BACKOFF_MS = 2_000
/** Longest wait between two rounds on a busy printer: a freed printer is used within this. */
const BUSY_BACKOFF_MAX_MS = 60_000

/** The record a print is carried by, as the engine sees it. */
export interface PrintTarget {
  /** Log fields naming the job (and where it comes from). */
  readonly tag: Record<string, unknown>
  /** The job printed and charged (owner, document, pages, copies). */
  readonly job: JobRecord
  readonly printer: string
  /** Where the document is. */
  readonly documentPath: string
  /** The record now: its state, the printer's job id once recorded, when it last changed; undefined once it is not this engine's to settle. */
  current (): { state: string, printerJobId?: number, updatedAt: number } | undefined
  /** Durably `printing`, before any byte is sent (a no-op when it is already). */
  markPrinting (): Promise<void>
  /**
   * The printer is busy: durably waiting again, nothing sent. Absent when the record
   * cannot wait (the print then ends as not printed, the printer never having taken it).
   */
  markWaiting?: (message: string) => Promise<void>
  recordPrinterJob (printerJobId: number): Promise<void>
  /** Durably printed (`patch`: the reason and message to show; none keeps the record's). */
  markPrinted (patch?: { reason: string, message: string }): Promise<void>
  /** Not printed: `accepted` says whether the printer may have taken it (failed) or not (the user's to release again). */
  markNotPrinted (accepted: boolean, reason: string, message: string): Promise<void>
}

export interface PrintEngineInit {
  /** This peer: the writer of the accounting documents charges go to. */
  peer: PeerId
  site: SiteId
}

export interface PrintEngineComponents {
  store: DocStore
  printers: ReadonlyMap<string, OutputDevice>
  logger: Logger
  /** One submission at a time per printer (default: lanes of this engine's own). */
  lanes?: PrinterLanes
  now?: () => number
  /** The site's print policy as a print sees it (devices/jobs/policy.ts); default: the policy of this engine's site in `store`. */
  printedAs?: (job: JobRecord) => PrintedAs
  /** Users' credit (credit-gate.ts): reserved before a print, settled to its charge after; none: prints need no credit. */
  credit?: CreditGate
}

/** How one print ended: `stopped` when the caller's signal ended it and the next start settles it. */
export type PrintEnd = 'printed' | 'not-printed' | 'stopped'

export class PrintEngine {
  /** Jobs this process is printing, or asking their printer about, right now. */
  private readonly watched = new Set<string>()
  /** When this process first got no usable answer from the printer about a `printing` record. */
  private readonly unknownSince = new Map<string, number>()
  /**
   * Prints the printer completed whose charge or end could not be written: how they were
   * printed (the policy and credit read then, what the printer dropped, what it counted), so
   * that settling them later charges that, not the policy of the moment. This process only:
   * after a restart the job's own record and the policy are all there is.
   */
  private readonly printedUnrecorded = new Map<string, { as: PrintedAs, dropped: readonly string[], impressions?: number }>()
  private readonly lanes: PrinterLanes
  private readonly now: () => number
  /** The site's print policy applied to a job: what its printer is told and what is charged, one rule for both. */
  private readonly printedAs: (job: JobRecord) => PrintedAs
  private readonly log: Logger

  constructor (private readonly init: PrintEngineInit, private readonly c: PrintEngineComponents) {
    this.lanes = c.lanes ?? new PrinterLanes()
    this.now = c.now ?? Date.now
    this.printedAs = c.printedAs ?? printPolicyOf(c.store, init.site)
    this.log = c.logger.child({ service: 'print' })
  }

  /** How many prints this process has in hand right now (waiting for the printer's lane, printing, or asking the printer): a copy session waits for them to be charged before it reads the device's counters. */
  inHand (): number {
    return this.watched.size
  }

  /** Whether this process is printing `jobId`, or asking its printer about it, right now. */
  watching (jobId: string): boolean {
    return this.watched.has(jobId)
  }

  /**
   * Prints `target` and settles it (steps 0-6 above). Never rejects.
   * @param opts.deadline a busy printer is waited for until then (local clock)
   * @param opts.busyBackoffMs first wait before offering the job again to a busy printer
   */
  async print (target: PrintTarget, signal: AbortSignal, opts: { deadline?: number, busyBackoffMs?: number, prepare?: () => Promise<void> } = {}): Promise<PrintEnd> {
    const device = this.c.printers.get(target.printer)
    const { job } = target
    // the printer job id's write, started the moment the printer accepts; settling waits for it
    let recorded: Promise<void> = Promise.resolve()
    let leave: LeaveLane | undefined
    let printing = false
    this.watched.add(job.id)
    try {
      if (device === undefined || job.sha256 === undefined) throw new PrinterError(`printer ${target.printer} is not configured here, or the job has no document`, 'aborted-by-system', true)
      await opts.prepare?.()
      // the policy read once per print: what the printer is told is what is charged, whatever changes meanwhile
      let as = this.printedAs(job)
      // the owner's credit is reserved before the job waits for the printer: a job it does not cover never takes the lane
      if (this.c.credit !== undefined && (await this.c.credit.reserve(as.job, target.printer, signal)).monochrome) {
        as = { job: { ...as.job, colorPages: 0 }, monochrome: true }
      }
      leave = await this.lanes.enter(target.printer, signal)
      let outcome: PrintOutcome | undefined
      for (let round = 1; outcome === undefined; round++) {
        await target.markPrinting()
        printing = true
        try {
          outcome = await device.print(printRequestFor(as.job, target.documentPath, as.monochrome), {
            accepted: (printerJobId) => {
              this.log.debug({ ...target.tag, printerJobId }, 'printer accepted the job')
              leave?.()
              if (printerJobId !== undefined) recorded = this.recordPrinterJob(target, printerJobId)
            }
          }, signal)
        } catch (err) {
          const waitMs = Math.min(BUSY_BACKOFF_MAX_MS, (opts.busyBackoffMs ?? DEFAULT_BUSY_BACKOFF_MS) * 2 ** (round - 1))
          if (!isPrinterBusy(err) || target.markWaiting === undefined || signal.aborted || opts.deadline === undefined || this.now() + waitMs >= opts.deadline) throw err
          await target.markWaiting(`waiting for printer ${target.printer}: ${err.message}`)
          printing = false
          this.log.info({ ...target.tag, printer: target.printer, round, waitMs, reason: err.reason }, 'printer busy: the job waits and is offered again')
          await sleep(waitMs, undefined, { signal }).catch(() => {})
          if (signal.aborted) return 'stopped' // waiting: the next start takes it up again
        }
      }
      await recorded
      try {
        await this.charge(target, outcome.impressions, outcome.dropped, as)
        await target.markPrinted({ reason: 'job-completed-successfully', message: '' })
      } catch (err) {
        this.printedUnrecorded.set(job.id, { as, dropped: outcome.dropped ?? [], ...(outcome.impressions !== undefined ? { impressions: outcome.impressions } : {}) })
        // printed: a write failing now (a disk error) must not record the job failed nor give its credit
        // back; it stays `printing`, settled (charged once) from the printer's answer by the next pass or start
        this.log.error({ ...target.tag, printer: target.printer, printerJob: outcome.printerJobId, err }, 'job printed, but its charge or end could not be recorded: settled from the printer later')
        return 'printed'
      }
      this.log.info({ ...target.tag, printer: target.printer, printerJob: outcome.printerJobId }, 'job printed')
      return 'printed'
    } catch (err) {
      await recorded
      const accepted = err instanceof PrinterError ? !err.beforeAccept : printing
      if (signal.aborted && (!printing || accepted)) {
        // before the printer had it, or while it may print it: the next start settles it (holds it again, or asks the printer)
        this.log.info({ ...target.tag, printer: target.printer }, printing ? 'stopped while the printer had the job; settled at the next start' : 'stopped before the printer had the job; settled at the next start')
        return 'stopped'
      }
      const reason = err instanceof PrinterError || err instanceof CreditRefusedError ? err.reason : 'aborted-by-system'
      const message = (err as Error).message
      this.log.warn({ ...target.tag, printer: target.printer, reason, message }, 'release failed')
      await this.releaseCredit(target)
      await target.markNotPrinted(accepted, reason, message).catch((e: unknown) => this.log.error({ ...target.tag, err: e }, 'could not record the release failure'))
      return 'not-printed'
    } finally {
      leave?.()
      this.watched.delete(job.id)
    }
  }

  /**
   * Settles a record left `printing` (step 7): asks the printer of its printer job id,
   * waiting while the printer still has the job. Once per job at a time: returns undefined
   * when it is being printed or asked about already.
   */
  settleFromPrinter (target: PrintTarget, signal: AbortSignal): Promise<void> | undefined {
    const printerJobId = target.current()?.printerJobId
    if (printerJobId === undefined || this.watched.has(target.job.id)) return undefined
    this.watched.add(target.job.id)
    return this.askPrinter(target, printerJobId, signal)
      .catch((err: unknown) => this.log.error({ ...target.tag, err }, 'could not settle a job from its printer\'s answer'))
      .finally(() => this.watched.delete(target.job.id))
  }

  private async askPrinter (target: PrintTarget, printerJobId: number, signal: AbortSignal): Promise<void> {
    const id = target.job.id
    const answer = await askPrinter(this.c.printers.get(target.printer), printerJobId, signal, true)
    if (signal.aborted) return // stopping: the next start asks again
    const current = target.current()
    if (current?.state !== 'printing' || current.printerJobId !== printerJobId) return // settled meanwhile
    const now = this.now()
    // the bound counts time without any answer: a pending answer is one
    const firstUnknown = answer.state === 'unknown' && !this.unknownSince.has(id)
    if (answer.state !== 'unknown') this.unknownSince.delete(id)
    else if (firstUnknown) this.unknownSince.set(id, now)
    const verdict = verdictFor(answer, this.unknownSince.get(id) ?? now, now)
    switch (verdict.settle) {
      case 'printed':
        if (!await this.chargedAlready(target)) await this.charge(target, verdict.impressions)
        await target.markPrinted({ reason: 'job-completed-successfully', message: 'the printer completed the job while this peer was not following it' })
        this.printedUnrecorded.delete(id)
        this.log.info({ ...target.tag, printer: target.printer, printerJob: printerJobId }, 'job printed (the printer says)')
        break
      case 'failed':
        await this.releaseCredit(target)
        await target.markNotPrinted(true, verdict.reason, verdict.message)
        this.log.warn({ ...target.tag, printer: target.printer, printerJob: printerJobId, reason: verdict.reason }, 'job failed at the printer (the printer says); not charged')
        break
      case 'assume-printed':
        await this.assumePrinted(target, verdict.message)
        break
      case 'wait': {
        // said once when the printer stops answering, not at every pass
        const level = firstUnknown || answer.state === 'pending' ? 'info' : 'debug'
        this.log[level]({ ...target.tag, printer: target.printer, printerJob: printerJobId, answer: answer.state, reason: answer.reason, message: answer.message }, 'printer outcome not known yet; asking again at the next pass')
        break
      }
    }
  }

  /** Charges (unless already charged) and settles as printed a `printing` record whose end nobody can tell. */
  async assumePrinted (target: PrintTarget, message: string): Promise<void> {
    const charged = await this.chargedAlready(target)
    if (!charged) await this.charge(target)
    this.unknownSince.delete(target.job.id)
    this.printedUnrecorded.delete(target.job.id)
    await target.markPrinted(charged ? undefined : { reason: 'printer-outcome-assumed', message })
    if (charged) this.log.info({ ...target.tag, printer: target.printer }, 'job was already charged: settled as printed')
    else this.log.warn({ ...target.tag, printer: target.printer, printerJob: target.current()?.printerJobId, why: message }, 'printer outcome unknown: counted as printed and charged')
  }

  /** Records the printer's job id, as durably as the store gets before a crash. Never rejects. */
  private async recordPrinterJob (target: PrintTarget, printerJobId: number): Promise<void> {
    try {
      await target.recordPrinterJob(printerJobId)
    } catch (err) {
      // without it a crash falls back to assuming the job printed; the print itself goes on
      this.log.error({ ...target.tag, err, printerJobId }, 'could not record the printer job id')
    }
  }

  /**
   * Charges the print under the job's usage id (`impressions`: the printer's count, when it gave
   * one), as the site's policy had it printed (`as`: what the printer was told; read again only
   * when settling after a restart), less what the printer did not do (`dropped`: a printer without
   * duplex printed it one-sided; without monochrome, in colour); a second charge is a no-op.
   */
  /** Charges `target`: as it was printed, when this process printed it and could not record that ({@link printedUnrecorded}), else as the policy reads now. */
  private async charge (target: PrintTarget, impressions?: number, dropped?: readonly string[], as?: PrintedAs): Promise<void> {
    const kept = this.printedUnrecorded.get(target.job.id)
    impressions ??= kept?.impressions
    dropped ??= kept?.dropped ?? []
    as ??= kept?.as ?? this.printedAs(target.job)
    // a printer that took no `sides` prints its default: one-sided; no `copies`: one; no `media`: its own paper
    const job: JobRecord = { ...as.job, ...(dropped.includes('sides') ? { sides: 'one-sided' } : {}), ...(dropped.includes('copies') ? { copies: 1 } : {}) }
    if (dropped.includes('media')) delete job.media
    const monochrome = as.monochrome && !dropped.includes('print-color-mode')
    const printed = monochrome || as.job.colorPages === target.job.colorPages ? job : { ...job, ...(target.job.colorPages !== undefined ? { colorPages: target.job.colorPages } : {}) }
    const charged = await chargePrint(this.c.store, { peer: this.init.peer, site: this.init.site, printer: target.printer }, printed, this.now(), impressions, monochrome)
    // the reservation becomes what was charged (a printer that reported more pages than analysed spends more)
    await this.c.credit?.settle(target.job, charged)
    if (charged.basis !== 'analysed') {
      this.log.info({ ...target.tag, printer: target.printer, pages: charged.pages, basis: charged.basis }, 'job with unknown pages charged')
    }
  }

  /** Gives back the credit reserved for a print that was not charged. Never rejects: the reservation then waits for the credit sweep. */
  private async releaseCredit (target: PrintTarget): Promise<void> {
    try {
      await this.c.credit?.release(target.job)
    } catch (err) {
      this.log.error({ ...target.tag, err }, 'could not give back the credit reserved for a print that was not charged')
    }
  }

  /**
   * Whether the print is charged here already: in the period the record started printing
   * and the current one (a charge lands in the period of its moment, which lies between).
   */
  private async chargedAlready (target: PrintTarget): Promise<boolean> {
    const since = target.current()?.updatedAt ?? this.now()
    return await isCharged(this.c.store, this.init.peer, target.job, since) || await isCharged(this.c.store, this.init.peer, target.job, this.now())
  }
}
