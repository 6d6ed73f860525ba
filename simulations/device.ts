/**
 * The simulated printers: an {@link OutputDevice} per site that "prints" by writing to a
 * shared {@link PrintLedger}, the ground truth the invariant checks compare the replicated
 * state against. Like a real printer, once it has accepted a job it finishes it (after a
 * virtual delay) whatever happens to the site that sent it: a site crash only aborts the
 * site's wait, not the paper.
 *
 * Each accepted job gets a printer job id (1, 2, … per printer), and the printer remembers
 * how every job it accepted ended, so a restarted site can ask (`outcome`) or wait for the
 * end (`follow`, resolved by the printer's own completion on the virtual clock). While
 * `online` is false the site driving it is dead and gets no answer: `unknown`.
 */
import {
  InvalidPrinterJobIdError,
  PrinterError,
  UNKNOWN_REASONS,
  isPrinterJobId,
  type OutputDevice,
  type PrintOutcome,
  type PrinterJobOutcome,
  type PrintProgress,
  type PrintRequest
} from '../devices/output/types.ts'
import { createHash } from 'node:crypto'
import type { VirtualClock } from './scheduler.ts'

/** What a printer did with one job, keyed by the job's name (the simulator's unique job label). */
export interface LedgerEvent {
  job: string
  printer: string
  kind: 'accepted' | 'completed' | 'failed-after-accept'
  at: number
  /** What the printer was sent, as it reports it: the document's sha256 (read at acceptance), copies and sides. */
  sha256?: string
  copies?: number
  sides?: string
}

/** Everything every simulated printer did, in order. */
export class PrintLedger {
  readonly events: LedgerEvent[] = []
  private readonly accepts = new Map<string, number>()
  private readonly completions = new Map<string, number>()
  /** Called on every acceptance (the simulator checks invariant 2 right there). */
  onAccept?: (e: LedgerEvent, count: number) => void

  /** Called on every event. */
  onEvent?: (e: LedgerEvent) => void

  record (e: LedgerEvent): void {
    this.events.push(e)
    this.onEvent?.(e)
    if (e.kind === 'accepted') {
      const n = (this.accepts.get(e.job) ?? 0) + 1
      this.accepts.set(e.job, n)
      this.onAccept?.(e, n)
    } else if (e.kind === 'completed') {
      this.completions.set(e.job, (this.completions.get(e.job) ?? 0) + 1)
    }
  }

  /** How many times a printer accepted the job. */
  acceptedCount (job: string): number { return this.accepts.get(job) ?? 0 }
  /** Jobs some printer completed (paper came out), with how many times. */
  completed (): ReadonlyMap<string, number> { return this.completions }
}

/** Options of a {@link LedgerDevice}. */
export interface LedgerDeviceInit {
  /** Printer name, e.g. `site-a/mfp`. */
  name: string
  ledger: PrintLedger
  clock: VirtualClock
  /** Seeded generator of this printer's failures, consulted in the order of its jobs. */
  random: () => number
  /** Chance that the printer refuses a job before accepting it (busy, offline). */
  failBeforeAcceptRate: number
  /** Chance that an accepted job fails at the device (jam, cancelled at the panel). */
  failAfterAcceptRate: number
  /** Virtual time from acceptance to completion, uniform in [min, max] ms. */
  printMs: [number, number]
  /** Injected bug for the checker's own tests: every accepted job is accepted twice. */
  doublePrint?: boolean
  /** Reads the document the printer is sent (tracked I/O), so the ledger records its sha256. */
  readDocument?: (path: string) => Promise<Uint8Array>
}

/** One job a {@link LedgerDevice} accepted, as the printer remembers it. */
interface PrinterJob {
  state: 'pending' | 'completed' | 'failed'
  /** `follow` calls waiting for the end. */
  waiters: Set<() => void>
}

/** A printer that writes what it does to the {@link PrintLedger}. */
export class LedgerDevice implements OutputDevice {
  readonly uri: string
  /** False while the site process driving it is dead: a dead process sends nothing. */
  online = true
  /** Every job this printer accepted, by its printer job id (kept for the whole run). */
  private readonly printerJobs = new Map<number, PrinterJob>()
  private nextPrinterJobId = 1

  constructor (private readonly init: LedgerDeviceInit) {
    this.uri = `sim://${init.name}`
  }

  async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<PrintOutcome> {
    signal.throwIfAborted()
    const { ledger, clock, random, name } = this.init
    if (!this.online) throw new PrinterError('the site process is gone', 'aborted-by-system', true)
    if (random() < this.init.failBeforeAcceptRate) throw new PrinterError(`${name} is busy`, 'printer-busy', true)
    const failAfter = random() < this.init.failAfterAcceptRate
    const [min, max] = this.init.printMs
    const delay = min + Math.floor(random() * (max - min + 1))
    // what the paper shows: the bytes sent, the copies and the sides
    let sha256 = 'unreadable'
    if (this.init.readDocument !== undefined) {
      try {
        sha256 = createHash('sha256').update(await this.init.readDocument(req.documentPath)).digest('hex')
      } catch (err) {
        sha256 = `unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
      }
      signal.throwIfAborted()
      if (!this.online) throw new PrinterError('the site process is gone', 'aborted-by-system', true)
    }
    const sent = { sha256, copies: req.copies, sides: req.sides }
    ledger.record({ job: req.jobName, printer: name, kind: 'accepted', at: clock.now(), ...sent })
    if (this.init.doublePrint === true) ledger.record({ job: req.jobName, printer: name, kind: 'accepted', at: clock.now(), ...sent })
    const printerJobId = this.nextPrinterJobId++
    const job: PrinterJob = { state: 'pending', waiters: new Set() }
    this.printerJobs.set(printerJobId, job)
    progress.accepted(printerJobId)
    return await new Promise<PrintOutcome>((resolve, reject) => {
      const onAbort = (): void => reject(new PrinterError('the site stopped while the printer was printing', 'aborted-by-system', false))
      signal.addEventListener('abort', onAbort, { once: true })
      clock.schedule(() => {
        // the paper comes out (or jams) whether or not the site still waits for it
        ledger.record({ job: req.jobName, printer: name, kind: failAfter ? 'failed-after-accept' : 'completed', at: clock.now(), ...sent })
        job.state = failAfter ? 'failed' : 'completed'
        for (const wake of [...job.waiters]) wake()
        signal.removeEventListener('abort', onAbort)
        if (signal.aborted) return
        if (failAfter) reject(new PrinterError(`${name}: paper jam, job cancelled at the device`, 'job-canceled-at-device', false))
        else resolve({ printerJobId, impressions: 1 })
      }, delay)
    })
  }

  async probe (): Promise<{ ok: boolean, message: string }> {
    return { ok: this.online, message: this.online ? 'idle' : 'offline' }
  }

  async outcome (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    if (!isPrinterJobId(printerJobId)) throw new InvalidPrinterJobIdError(printerJobId)
    return this.answer(printerJobId, signal)
  }

  async follow (printerJobId: number, signal: AbortSignal): Promise<PrinterJobOutcome> {
    if (!isPrinterJobId(printerJobId)) throw new InvalidPrinterJobIdError(printerJobId)
    const job = this.printerJobs.get(printerJobId)
    if (job?.state !== 'pending' || !this.online || signal.aborted) return this.answer(printerJobId, signal)
    // resolved by the printer's completion timer (virtual clock) or by the site stopping
    await new Promise<void>((resolve) => {
      const done = (): void => {
        job.waiters.delete(done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      job.waiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
    return this.answer(printerJobId, signal)
  }

  /** What the printer says about one of its jobs right now. */
  private answer (printerJobId: number, signal: AbortSignal): PrinterJobOutcome {
    if (signal.aborted) return { state: 'unknown', reason: UNKNOWN_REASONS.aborted }
    if (!this.online) return { state: 'unknown', reason: UNKNOWN_REASONS.unreachable, message: 'the site process is gone' }
    const job = this.printerJobs.get(printerJobId)
    if (job === undefined) return { state: 'unknown', reason: UNKNOWN_REASONS.notFound, message: `${this.init.name} has no job ${printerJobId}` }
    if (job.state === 'failed') return { state: 'failed', reason: 'job-canceled-at-device', message: `${this.init.name}: paper jam, job cancelled at the device` }
    if (job.state === 'completed') return { state: 'completed', impressions: 1 }
    return { state: 'pending' }
  }
}
