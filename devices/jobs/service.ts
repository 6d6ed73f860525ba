/**
 * The job service: this peer's print jobs from intake to accounting. It owns the job
 * state machine's side effects (spooling, parsing, releasing to an output device,
 * charging, retention); the transitions themselves are checked in crdt/jobs.ts.
 *
 * Invariants enforced here:
 *   1. `addDocument` resolves only once the bytes are fsync'd in the spool and the job's
 *      `held` state is durable in level, so an IPP `successful-ok` is never premature.
 *   2. A job is released at most once: the `held → releasing` transition happens inside one
 *      synchronous Yjs transaction, so two concurrent releases cannot both pass it.
 *   3. A printed job is charged once: its usage id is `<jobId>/print`, recorded before the
 *      job becomes `printed`, and recording an existing id is a no-op.
 *   4. A job becomes `printing` (durably) before its document is handed to a printer, and
 *      the printer's job id is recorded on it the moment the printer accepts it (the write
 *      starts inside `accepted`; the final `printed`/`failed` waits for it). After a restart
 *      interrupted work is resolved without printing twice or charging wrongly: `received`
 *      jobs fail (their document never fully arrived); `releasing` jobs return to `held`
 *      (no printer ever saw them); a `printing` job with a printer job id is settled by
 *      what its printer says, asked at recovery and again by every sweep (and followed to
 *      its end while the printer still has it): completed → charged once and `printed`;
 *      canceled/aborted → `failed` with the printer's reason, not charged; still pending
 *      → stays `printing`; no answer (unreachable, job forgotten) → asked again, and only
 *      after OUTCOME_UNKNOWN_LIMIT_MS without an answer counted as printed and charged once
 *      (`printer-outcome-assumed`). A `printing` job without a printer job id (the crash
 *      came before it was recorded, or the printer gives none) and one whose printer cannot
 *      be asked are counted as printed and charged once at once, as before
 *      (`printer-outcome-assumed`). Stopping the service while a printer has a job leaves
 *      it `printing` for the next start to settle the same way.
 *   5. Roaming (holder side): another site prints a job only with a grant from here. The
 *      grant is the same `held → releasing` transition as a local release (so invariant 2
 *      covers it), `commitRelease` moves it to `printing` before that site's printer sees
 *      it, and from then on the job follows that site's release record (`followRelease`):
 *      never assumed printed here, never released again unless that site returns it. A
 *      grant not committed by its expiry returns the job to `held`.
 *   6. A document whose analysis was stopped by a limit (time or memory, see
 *      devices/documents/analyzer.ts) is kept: the job is held with its pages unknown
 *      (`job-pages-unknown`, the page count the document declares kept as `declaredPages`)
 *      and can be released; its print is charged once, by usage.ts `printCharge`: the
 *      printer's impression count, else the declared pages, else one page per copy.
 *   7. A job created with its intake's limits (`CreateJobRequest.intake`, intake-limits.ts)
 *      is refused before it exists when its owner or address already holds its quota of
 *      unfinished jobs or bytes; its document is refused as it arrives once it passes the
 *      document size or the byte quota, and after analysis when its pages × copies (or the
 *      pages a document whose analysis was stopped declares) pass the job's limit. A refused
 *      document leaves a `failed` job saying which limit, and nothing in the spool: it is
 *      never held, so never released or charged.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { DocStore, Origin } from '../../crdt/store.ts'
import { jobsDoc, periodOf, parseDocName, siteConfigDoc, type DocName, type PeerId, type SiteId } from '../../crdt/names.ts'
import { effectiveTimesMs } from '../../crdt/site-config.ts'
import * as jobs from '../../crdt/jobs.ts'
import type { RemoteRelease } from '../../crdt/jobs.ts'
import { PrintEngine, DEFAULT_BUSY_BACKOFF_MS, type PrintTarget } from './print-engine.ts'
import { DocumentTooLargeError, type Spool } from '../spool.ts'
import { parseDocument, SUPPORTED_FORMATS, type DocumentInfo, UnsupportedFormatError, CorruptDocumentError, AnalysisStoppedError } from '../documents/index.ts'
import { PrinterError, type OutputDevice } from '../output/types.ts'
import type { PrinterLanes } from './printer-lanes.ts'
import { Holdings, checkNewJob, checkBytes, checkImpressions, documentTooLarge, type JobIntake } from './intake-limits.ts'
import {
  type JobDomain, type JobRecord, type QueueInfo, type CreateJobRequest, type DocumentUpload, type JobFilter, type Actor, type Delegation,
  JobNotFoundError, QueueNotFoundError, PrinterNotFoundError, NotAuthorizedError, InvalidJobStateError, TERMINAL_STATES, PAGES_UNKNOWN_REASON, UNCLAIMED_OWNER, releaseRefusal, HANDOVER_PRINTER, HANDED_OVER_REASON
} from './types.ts'

/** How often retention runs. */
const RETENTION_SWEEP_MS = 60_000
/** A created job whose document has not started arriving by then is failed (IPP multiple-operation-time-out). */
export const INCOMING_TIMEOUT_MS = 300_000
/** Default: held jobs nobody released expire after two days (secure print hygiene). */
export const DEFAULT_HOLD_MS = 48 * 3600_000
/** Default: finished jobs and their bytes are kept a week for the job history. */
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600_000
export { DEFAULT_BUSY_BACKOFF_MS }

export interface JobServiceInit {
  /** This peer's id: the writer of its jobs and accounting documents. */
  peer: PeerId
  site: SiteId
  queues: QueueInfo[]
  /** Held jobs older than this expire, unless the site's document sets a hold time (crdt/site-config.ts `times`). */
  holdMs?: number
  /** Finished jobs older than this are purged with their bytes, unless the site's document sets a retention time. */
  retentionMs?: number
  /** Period of the background sweep (expiry, retention, printer follow-up); 0 runs none (the caller sweeps, as the simulator does on its virtual clock). */
  sweepMs?: number
  /** First wait before offering a job again to a printer that stayed busy (default {@link DEFAULT_BUSY_BACKOFF_MS}); doubles per round. */
  busyBackoffMs?: number
  /** The name this peer's jobs are listed under elsewhere when it is not its site's server (a terminal's host name). */
  deviceName?: string
}

export interface JobServiceComponents {
  store: DocStore
  spool: Spool
  printers: ReadonlyMap<string, OutputDevice>
  logger: Logger
  /** The print half of the release engine, shared with the roaming service (default: one of this service's own). */
  engine?: PrintEngine
  /** One submission at a time per printer, for this service's own engine (ignored with `engine`). */
  lanes?: PrinterLanes
  /**
   * Document analysis (default: in-process `parseDocument`; sites use a pool of workers).
   * Rejecting with `AnalysisStoppedError` holds the job with its pages unknown.
   */
  analyze?: (path: string, format: string, signal?: AbortSignal) => Promise<DocumentInfo>
  now?: () => number
  /** Monotonic ms (a node's: `performance.now`): holds and retention last their length on it too, whatever the wall clock does; absent, the wall clock alone counts. */
  monotonic?: () => number
  /** Told how each release here ended (printed, failed, held again) and how long it took from the release (for metrics). */
  onReleaseSettled?: (outcome: 'printed' | 'failed' | 'held', seconds: number) => void
  /** Who may release whose jobs besides their owners (the directory's delegates); without it only owners and admins. */
  delegation?: Delegation
}

/** Where a job lives. */
interface Located { doc: DocName, id: string }

const SYSTEM: Actor = { user: 'printmesh', admin: true }
/** Changes made on behalf of another site's release: local changes (sealed, persisted, relayed), not a peer's update. */
const ROAMING_ORIGIN: Origin = { kind: 'local', service: 'roaming' }

/**
 * Why a job another peer asks to release cannot be any more, in words for the user at that
 * peer's panel or page (the holder's ippId means nothing there): another release won the grant
 * (two terminals releasing one Pull job at once), or the job is finished.
 */
function noLongerHeld (job: JobRecord): string | undefined {
  if (job.state === 'releasing') return `${job.name} is already being released elsewhere (${job.grant !== undefined ? `at site ${job.grant.site}` : 'at the device holding it'})`
  if (job.state === 'printed') return `${job.name} was already printed`
  if (TERMINAL_STATES.has(job.state)) return `${job.name} is ${job.state}: it can no longer be released`
  return undefined
}

export class JobService implements JobDomain {
  private readonly byId = new Map<string, DocName>()
  private readonly byIppId = new Map<number, string>()
  /** Each job's state and the number of jobs per state ({@link stateCounts}). */
  private readonly states = new Map<string, jobs.JobState>()
  private readonly tally = new Map<jobs.JobState, number>()
  private readonly releaseOnArrival = new Set<string>()
  /** Jobs whose document is being received right now. */
  private readonly uploading = new Set<string>()
  /** Documents spooled whose jobs are not held yet (being analysed), by job id: their bytes are in use though no record names them. */
  private readonly analysing = new Map<string, string>()
  /** Unfinished jobs and their bytes by owner and address, for the intake quotas. */
  private readonly holdings = new Holdings()
  /** The intake limits of jobs still waiting for their document. */
  private readonly intakes = new Map<string, JobIntake>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly abort = new AbortController()
  private nextIppId = 1
  private sweepTimer?: NodeJS.Timeout
  private started = false
  private readonly now: () => number
  private readonly monotonic: (() => number) | undefined
  /** When this process first saw each job (created or loaded it), and saw it finished: wall clock and monotonic ms. */
  private readonly firstSeen = new Map<string, { wall: number, mono: number }>()
  private readonly endSeen = new Map<string, { wall: number, mono: number }>()
  private readonly startUpTimes: { holdMs: number, retentionMs: number }
  private readonly log: Logger
  private readonly engine: PrintEngine

  constructor (private readonly init: JobServiceInit, private readonly c: JobServiceComponents) {
    this.now = c.now ?? Date.now
    this.monotonic = c.monotonic
    this.engine = c.engine ?? new PrintEngine({ peer: init.peer, site: init.site }, { store: c.store, printers: c.printers, logger: c.logger, ...(c.lanes !== undefined ? { lanes: c.lanes } : {}), ...(c.now !== undefined ? { now: c.now } : {}) })
    this.startUpTimes = { holdMs: init.holdMs ?? DEFAULT_HOLD_MS, retentionMs: init.retentionMs ?? DEFAULT_RETENTION_MS }
    this.log = c.logger.child({ service: 'jobs' })
    if (init.queues.length === 0) throw new Error('a site needs at least one queue')
    for (const q of init.queues) {
      if (q.defaultPrinter !== undefined && !c.printers.has(q.defaultPrinter)) throw new PrinterNotFoundError(q.defaultPrinter)
    }
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const prefix = `v1/jobs/${this.init.peer}/`
    for (const name of await this.c.store.storedNames()) {
      if (!name.startsWith(prefix)) continue
      const doc = await this.c.store.open(name)
      for (const job of jobs.listJobs(doc)) this.index(name, job)
    }
    await this.recover()
    await this.sweep()
    const every = this.init.sweepMs ?? RETENTION_SWEEP_MS
    if (every > 0) {
      this.sweepTimer = setInterval(() => {
        this.sweep().catch((err: unknown) => this.log.error({ err }, 'retention sweep failed'))
      }, every)
      this.sweepTimer.unref()
    }
    this.log.info({ jobs: this.byId.size }, 'jobs loaded')
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.sweepTimer)
    this.abort.abort()
    await Promise.allSettled([...this.inFlight])
  }

  /**
   * The hold and retention this peer applies now: the times an admin set in its site's
   * document (changed at run time, from any console), else its start-up values. Read at each
   * use, so a change applies to jobs already held and finished at the next sweep.
   */
  times (): { holdMs: number, retentionMs: number, startUp: { holdMs: number, retentionMs: number } } {
    return { ...effectiveTimesMs(this.c.store.get(siteConfigDoc(this.init.site)), this.startUpTimes), startUp: { ...this.startUpTimes } }
  }

  private get holdMs (): number { return this.times().holdMs }
  private get retentionMs (): number { return this.times().retentionMs }

  /** Resolves once every release under way has settled (printed, failed or back to held), including any started meanwhile. */
  async idle (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight])
  }

  /** How many of this site's jobs are in each state: kept as jobs change, so /metrics walks no jobs. */
  stateCounts (): ReadonlyMap<jobs.JobState, number> {
    return this.tally
  }

  /** Notes `id`'s state in {@link stateCounts} (undefined: purged); a finished job leaves the holdings. */
  private count (id: string, state: jobs.JobState | undefined): void {
    if (state === undefined || TERMINAL_STATES.has(state)) {
      this.holdings.remove(id)
      this.intakes.delete(id)
    }
    const was = this.states.get(id)
    if (was === state) return
    if (was !== undefined) this.tally.set(was, (this.tally.get(was) ?? 1) - 1)
    if (state === undefined) {
      this.states.delete(id)
      this.firstSeen.delete(id)
      this.endSeen.delete(id)
      return
    }
    this.states.set(id, state)
    this.tally.set(state, (this.tally.get(state) ?? 0) + 1)
    if (this.monotonic !== undefined) {
      const seen = { wall: this.now(), mono: this.monotonic() }
      if (!this.firstSeen.has(id)) this.firstSeen.set(id, seen)
      if (TERMINAL_STATES.has(state) && !this.endSeen.has(id)) this.endSeen.set(id, seen)
    }
  }

  /**
   * Time passed since `since` (a wall-clock stamp of job `id`), but no more than this process
   * measured on its monotonic clock since it first saw the job (created or loaded it; `ended`:
   * since it saw it finished), plus the wall-clock time before that: a wall clock set forward
   * while the process runs (skewed, or corrected) shortens no hold and no retention (issue 18).
   */
  private elapsedSince (id: string, since: number, now: number, ended = false): number {
    const wall = now - since
    const seen = ended ? this.endSeen.get(id) ?? this.firstSeen.get(id) : this.firstSeen.get(id)
    return seen === undefined || this.monotonic === undefined ? wall : Math.min(wall, Math.max(0, seen.wall - since) + this.monotonic() - seen.mono)
  }

  private index (doc: DocName, job: JobRecord, address?: string): void {
    this.count(job.id, job.state)
    // a job loaded at start counts for the address that sent it, as it did before the restart
    if (!TERMINAL_STATES.has(job.state)) this.holdings.add(job.id, job.owner, address ?? job.originatingHost, job.size ?? 0)
    this.byId.set(job.id, doc)
    this.byIppId.set(job.ippId, job.id)
    this.nextIppId = Math.max(this.nextIppId, job.ippId + 1)
  }

  private async recover (): Promise<void> {
    for (const { doc, job } of this.all()) {
      if (job.state === 'received') {
        await this.move(doc, job.id, 'failed', { kind: 'local', service: 'jobs' }, { reason: 'job-incoming-interrupted', message: 'the site restarted before the document was complete' })
      } else if (job.state === 'held' && this.queue(job.queue)?.hold === false && job.printer === undefined && job.owner !== UNCLAIMED_OWNER) {
        // a print-on-arrival queue's job (a terminal's Direct) whose document was in, but a kill -9 came before its release
        // was written: never sent to a printer, it prints now (the chaos simulator found it held until it expired)
        this.releaseInBackground(job, SYSTEM)
      } else if (job.grant !== undefined) {
        // granted to another site: that site's release record settles it (followRelease), or the grant expires (sweep)
      } else if (job.state === 'releasing' && this.queue(job.queue)?.hold === false) {
        // a print-on-arrival queue (perhaps waiting for a busy printer): it goes on printing by itself
        const held = await this.move(doc, job.id, 'held', { kind: 'local', service: 'jobs' }, { reason: 'release-interrupted', message: 'the site restarted before the printer accepted the job; released again' })
        this.releaseInBackground(held, SYSTEM)
      } else if (job.state === 'releasing') {
        await this.move(doc, job.id, 'held', { kind: 'local', service: 'jobs' }, { reason: 'release-interrupted', message: 'the site restarted before the printer accepted the job; release it again' })
      } else if (job.state === 'printing' && job.printerJobId !== undefined && this.c.printers.get(job.printer ?? '')?.outcome !== undefined) {
        // the printer says how it ended (in the background: a printer may be slow to answer)
        this.askPrinterAbout(doc, job)
      } else if (job.state === 'printing') {
        // the printer had the document, but we never learnt its id or cannot ask it: counted as printed, charged once
        await this.engine.assumePrinted(this.target(doc, job), 'the site restarted while the printer had the job; counted as printed')
      }
    }
  }

  /** Asks the printer of a `printing` job (with a printer job id) how it ended, in the background; once per job at a time. */
  private askPrinterAbout (doc: DocName, job: JobRecord): void {
    if (!this.started) return
    const run = this.engine.settleFromPrinter(this.target(doc, job), this.abort.signal)?.finally(() => this.inFlight.delete(run as Promise<void>))
    if (run !== undefined) this.inFlight.add(run)
  }

  /**
   * A local job as the print engine sees it: the job itself carries the print. Once another
   * site holds a grant on it, it is that site's release record's to settle, not this engine's.
   */
  private target (doc: DocName, job: JobRecord): PrintTarget {
    const origin: Origin = { kind: 'local', service: 'release' }
    return {
      tag: { job: job.ippId },
      job,
      printer: job.printer ?? '',
      documentPath: this.c.spool.path(job.sha256 ?? ''),
      current: () => {
        const now = this.getById(job.id)
        return now === undefined || now.grant !== undefined ? undefined : { state: now.state, ...(now.printerJobId !== undefined ? { printerJobId: now.printerJobId } : {}), updatedAt: now.updatedAt }
      },
      markPrinting: async () => { await this.move(doc, job.id, 'printing', origin) },
      markWaiting: async (message) => { await this.move(doc, job.id, 'releasing', origin, { reason: 'printer-busy', message }) },
      recordPrinterJob: async (printerJobId) => { await this.c.store.transact(doc, origin, (d) => jobs.recordPrinterJob(d, job.id, printerJobId, this.now())) },
      markPrinted: async (patch) => { await this.move(doc, job.id, 'printed', origin, patch ?? {}) },
      markNotPrinted: async (accepted, reason, message) => {
        const current = this.getById(job.id)
        if ((current?.state === 'releasing' || current?.state === 'printing') && !accepted) {
          // the printer never took it: the job is still the user's to release again
          await this.move(doc, job.id, 'held', origin, { reason, message })
        } else if (current !== undefined && !TERMINAL_STATES.has(current.state)) {
          await this.move(doc, job.id, 'failed', origin, { reason, message })
        }
      }
    }
  }

  // ---- reading ---------------------------------------------------------------

  private *all (): Generator<{ doc: DocName, job: JobRecord }> {
    for (const [id, name] of this.byId) {
      const doc = this.c.store.get(name)
      const job = doc === undefined ? undefined : jobs.getJob(doc, id)
      if (job !== undefined) yield { doc: name, job }
    }
  }

  queues (): QueueInfo[] { return this.init.queues }
  queue (name: string): QueueInfo | undefined { return this.init.queues.find((q) => q.name === name) }
  supportedFormats (): readonly string[] { return SUPPORTED_FORMATS }
  printerNames (): string[] { return [...this.c.printers.keys()] }

  getJob (ippId: number): JobRecord | undefined {
    const id = this.byIppId.get(ippId)
    return id === undefined ? undefined : this.getById(id)
  }

  getById (id: string): JobRecord | undefined {
    const name = this.byId.get(id)
    const doc = name === undefined ? undefined : this.c.store.get(name)
    return doc === undefined ? undefined : jobs.getJob(doc, id)
  }

  listJobs (filter: JobFilter): JobRecord[] {
    const out: JobRecord[] = []
    for (const { job } of this.all()) {
      if (filter.queue !== undefined && job.queue !== filter.queue) continue
      if (filter.owner !== undefined && job.owner !== filter.owner) continue
      const done = TERMINAL_STATES.has(job.state)
      if (filter.which === 'completed' && !done) continue
      if (filter.which === 'not-completed' && done) continue
      out.push(job)
    }
    out.sort((a, b) => a.ippId - b.ippId)
    return filter.limit !== undefined && filter.limit > 0 ? out.slice(0, filter.limit) : out
  }

  private locate (ippIdOrId: number | string): Located & { job: JobRecord } {
    const id = typeof ippIdOrId === 'number' ? this.byIppId.get(ippIdOrId) : ippIdOrId
    const doc = id === undefined ? undefined : this.byId.get(id)
    const job = id === undefined ? undefined : this.getById(id)
    if (id === undefined || doc === undefined || job === undefined) throw new JobNotFoundError(ippIdOrId)
    return { doc, id, job }
  }

  private authorize (job: JobRecord, by: Actor): void {
    if (!by.admin && by.user !== job.owner) throw new NotAuthorizedError(`job ${job.ippId} belongs to another user`)
  }

  /** Releasing is also for the owner's delegates, on jobs of queues that allow them. */
  private authorizeRelease (job: JobRecord, by: Actor): void {
    const refusal = releaseRefusal(job, by, this.c.delegation)
    if (refusal !== undefined) throw new NotAuthorizedError(refusal)
  }

  // ---- changing ----------------------------------------------------------------

  private async move (
    doc: DocName, id: string, to: jobs.JobState, origin: Origin,
    patch: Partial<Omit<JobRecord, 'id' | 'state'>> = {}
  ): Promise<JobRecord> {
    try {
      const moved = await this.c.store.transact(doc, origin, (d) => jobs.transition(d, id, to, this.now(), patch))
      this.count(id, moved.state)
      return moved
    } catch (err) {
      if (err instanceof jobs.InvalidTransitionError) throw new InvalidJobStateError(err.message)
      throw err
    }
  }

  async createJob (req: CreateJobRequest): Promise<JobRecord> {
    const queue = this.queue(req.queue)
    if (queue === undefined) throw new QueueNotFoundError(req.queue)
    if (req.intake !== undefined) checkNewJob(this.holdings, req.owner, req.intake)
    const now = this.now()
    const job: JobRecord = {
      id: randomUUID(),
      ippId: this.nextIppId++,
      site: this.init.site,
      queue: queue.name,
      owner: req.owner,
      name: req.name,
      state: 'received',
      copies: req.copies,
      sides: req.sides,
      ...(req.media !== undefined ? { media: req.media } : {}),
      ...(queue.pinned === true ? { pinned: true } : {}),
      ...(this.init.deviceName !== undefined ? { heldAt: this.init.deviceName } : {}),
      ...(req.intake?.address !== undefined ? { originatingHost: req.intake.address } : {}),
      ...(queue.delegable === true ? { delegable: true } : {}),
      ...(req.handedOverFrom !== undefined ? { handedOverFrom: { ...req.handedOverFrom } } : {}),
      createdAt: now,
      updatedAt: now
    }
    const doc = jobsDoc(this.init.peer, periodOf(now))
    // counted at once, with the check: concurrent requests cannot all pass it before any is counted
    this.holdings.add(job.id, job.owner, req.intake?.address)
    try {
      await this.c.store.transact(doc, { kind: 'ipp', user: req.owner }, (d) => jobs.putNewJob(d, job))
    } catch (err) {
      this.holdings.remove(job.id)
      throw err
    }
    this.index(doc, job, req.intake?.address)
    if (req.intake !== undefined) this.intakes.set(job.id, req.intake)
    // a job nobody has claimed yet waits for its owner, even on a print-on-arrival queue
    if ((!queue.hold || req.holdUntil === 'no-hold') && job.owner !== UNCLAIMED_OWNER) this.releaseOnArrival.add(job.id)
    return job
  }

  /** Held jobs here that nobody has claimed yet (their queue does not trust the name sent), oldest first. */
  unclaimed (): JobRecord[] {
    return this.listJobs({ which: 'not-completed', owner: UNCLAIMED_OWNER }).filter((j) => j.state === 'held')
  }

  /**
   * `by` claims a held job nobody owns yet ({@link UNCLAIMED_OWNER}): it becomes theirs, as if
   * they had sent it, and a job of a print-on-arrival queue (a terminal's Direct) prints now.
   * Of two users claiming one job, the first wins; the other is told it was claimed.
   */
  async claim (jobId: string, by: Actor): Promise<JobRecord> {
    const { doc, job } = this.locate(jobId)
    if (job.owner !== UNCLAIMED_OWNER) throw new InvalidJobStateError('this job was already claimed')
    if (job.state !== 'held') throw new InvalidJobStateError(`${job.name} is ${job.state}: only a held job can be claimed`)
    const claimed = await this.c.store.transact(doc, { kind: 'local', service: 'jobs' }, (d) => {
      // checked again inside the change: two claims in one tick cannot both pass
      if (jobs.getJob(d, job.id)?.owner !== UNCLAIMED_OWNER) throw new InvalidJobStateError('this job was already claimed')
      return jobs.updateJob(d, job.id, { owner: by.user }, this.now())
    })
    this.log.info({ job: job.ippId, by: by.user }, 'job claimed')
    if (this.queue(job.queue)?.hold === false) return await this.startRelease(claimed, by)
    return claimed
  }

  async addDocument (ippId: number, upload: DocumentUpload): Promise<JobRecord> {
    const { doc, id, job } = this.locate(ippId)
    const origin: Origin = { kind: 'ipp', user: job.owner }
    if (job.state !== 'received') {
      upload.data.resume()
      throw new InvalidJobStateError(`job ${ippId} already has its document`)
    }
    const declared = upload.format
    if (declared !== 'application/octet-stream' && !SUPPORTED_FORMATS.includes(declared)) {
      upload.data.resume()
      await this.move(doc, id, 'failed', origin, { reason: 'unsupported-document-format', message: `unsupported document format ${declared}` })
      throw new UnsupportedFormatError(`unsupported document format ${declared}`)
    }
    let spooled
    const intake = this.intakes.get(id)
    this.uploading.add(id)
    try {
      spooled = await this.c.spool.write(upload.data, intake === undefined
        ? {}
        : {
            maxBytes: intake.limits.maxDocumentBytes,
            meter: (bytes) => {
              this.holdings.grow(id, bytes)
              checkBytes(this.holdings, job.owner, intake, 'over')
            }
          })
      this.holdings.settle(id, spooled.size)
    } catch (err) {
      const refused = err instanceof DocumentTooLargeError ? documentTooLarge(err.limit) : err
      this.releaseOnArrival.delete(id)
      try {
        await this.move(doc, id, 'failed', origin, { reason: 'aborted-by-system', message: `document not received: ${(refused as Error).message}` })
      } finally {
        this.uploading.delete(id)
      }
      throw refused
    }
    this.analysing.set(id, spooled.sha256)
    try {
      let analysed: Partial<JobRecord>
      try {
        // parseDocument sniffs `application/octet-stream` and reports the format it found
        const info = await (this.c.analyze ?? parseDocument)(spooled.path, declared, this.abort.signal)
        analysed = {
          format: info.format,
          pages: info.pages,
          colorPages: info.colorPages,
          copies: job.copies > 1 ? job.copies : (info.copies ?? 1),
          sides: job.sides !== 'one-sided' || info.duplex !== true ? job.sides : 'two-sided-long-edge',
          ...(job.media === undefined && info.media !== undefined ? { media: info.media } : {}),
          reason: 'job-hold-until-specified'
        }
      } catch (err) {
        if (!(err instanceof AnalysisStoppedError)) throw err
        analysed = pagesUnknown(err, declared)
      }
      if (intake !== undefined) {
        // pages unknown: the pages the document declares, if any, may not pass the limit either
        if (analysed.pages !== undefined) checkImpressions(analysed.pages, analysed.copies ?? job.copies, false, intake.limits)
        else if (analysed.declaredPages !== undefined) checkImpressions(analysed.declaredPages, job.copies, true, intake.limits)
      }
      const held = await this.move(doc, id, 'held', origin, { sha256: spooled.sha256, size: spooled.size, ...analysed })
      if (held.pages === undefined) {
        this.log.warn({ job: held.ippId, owner: held.owner, format: held.format, declaredPages: held.declaredPages, why: held.message }, 'job held with its pages unknown')
      } else {
        this.log.info({ job: held.ippId, owner: held.owner, pages: held.pages, colorPages: held.colorPages, format: held.format }, 'job held')
      }
      if (this.releaseOnArrival.delete(id)) this.releaseInBackground(held, SYSTEM)
      return held
    } catch (err) {
      const corrupt = err instanceof CorruptDocumentError
      const unsupported = err instanceof UnsupportedFormatError
      this.releaseOnArrival.delete(id)
      // the bytes are useless for printing (or refused); only the reason is kept
      await this.move(doc, id, 'failed', origin, {
        size: spooled.size,
        reason: corrupt ? 'document-format-error' : unsupported ? 'unsupported-document-format' : 'aborted-by-system',
        message: (err as Error).message
      })
      await this.removeBytesIfUnused(spooled.sha256, id)
      throw err
    } finally {
      this.uploading.delete(id)
      this.analysing.delete(id)
      this.intakes.delete(id) // the document is in (or refused): its limits are done with
    }
  }

  async cancel (ippId: number | string, by: Actor): Promise<JobRecord> {
    const { doc, id, job } = this.locate(ippId)
    this.authorize(job, by)
    if (job.state === 'releasing' || job.state === 'printing') throw new InvalidJobStateError(`job ${job.ippId} is already printing`)
    if (TERMINAL_STATES.has(job.state)) throw new InvalidJobStateError(`job ${job.ippId} is already ${job.state}`)
    this.releaseOnArrival.delete(id)
    const deleted = await this.move(doc, id, 'deleted', originOf(by), { reason: by.user === job.owner ? 'job-canceled-by-user' : 'job-canceled-by-operator' })
    this.log.info({ job: deleted.ippId, by: by.user }, 'job deleted')
    return deleted
  }

  async hold (ippId: number | string, by: Actor): Promise<JobRecord> {
    const { id, job } = this.locate(ippId)
    this.authorize(job, by)
    if (job.state === 'received') { this.releaseOnArrival.delete(id); return job }
    if (job.state === 'held') return job
    throw new InvalidJobStateError(`job ${job.ippId} is ${job.state} and cannot be held`)
  }

  /** Releases a held job; resolves once it is `releasing` (printing continues in the background). */
  async release (ippId: number | string, by: Actor, printer?: string): Promise<JobRecord> {
    const { job } = this.locate(ippId)
    this.authorizeRelease(job, by)
    if (job.state === 'received') {
      this.releaseOnArrival.add(job.id)
      return job
    }
    return await this.startRelease(job, by, printer)
  }

  private async startRelease (job: JobRecord, by: Actor, printer?: string): Promise<JobRecord> {
    const name = printer ?? this.queue(job.queue)?.defaultPrinter ?? this.printerNames()[0]
    if (name === undefined || !this.c.printers.has(name)) throw new PrinterNotFoundError(name ?? '(none configured)')
    const doc = this.byId.get(job.id)
    if (doc === undefined) throw new JobNotFoundError(job.id)
    if (job.state !== 'held') throw new InvalidJobStateError(`job ${job.ippId} is ${job.state}, not held`)
    const releasing = await this.move(doc, job.id, 'releasing', originOf(by), { printer: name, reason: 'job-printing', message: '', ...(by !== SYSTEM && by.user !== job.owner ? { releasedBy: by.user } : {}) })
    this.log.info({ job: job.ippId, printer: name, by: by.user }, 'job released')
    const run = this.print(doc, releasing).finally(() => this.inFlight.delete(run))
    this.inFlight.add(run)
    return releasing
  }

  private releaseInBackground (job: JobRecord, by: Actor): void {
    this.startRelease(job, by).catch((err: unknown) => this.log.error({ err, job: job.ippId }, 'automatic release failed'))
  }

  /**
   * Sends a `releasing` job to its printer through the print engine (print-engine.ts) and
   * settles its final state. Never rejects. The job first waits its turn in the printer's
   * lane (still `releasing`, nothing sent). A printer that stays busy through the device's
   * own retries is normal: the job goes back to `releasing` and is offered again with
   * back-off, keeping its place in the lane, until its hold time runs out; only then is it
   * held again.
   */
  private async print (doc: DocName, job: JobRecord): Promise<void> {
    const started = performance.now()
    await this.engine.print(this.target(doc, job), this.abort.signal, {
      deadline: job.createdAt + this.holdMs,
      busyBackoffMs: this.init.busyBackoffMs ?? DEFAULT_BUSY_BACKOFF_MS,
      prepare: async () => {
        if (job.sha256 === undefined || job.format === undefined) throw new PrinterError('job has no document', 'aborted-by-system', true)
        await this.c.spool.verify(job.sha256)
      }
    })
    const settled = this.getById(job.id)?.state
    if (settled === 'printed' || settled === 'failed' || settled === 'held') this.c.onReleaseSettled?.(settled, (performance.now() - started) / 1000)
  }

  // ---- roaming, holder side --------------------------------------------------------

  /**
   * Grants `to` (a partner site, already checked by the caller) the release of a held job:
   * `held → releasing` with the grant recorded, durable before the answer leaves. The same
   * transition as a local release, so only one of any number of concurrent releases wins.
   */
  async grantRelease (jobId: string, to: { peer: PeerId, site: SiteId, printer: string }, by: Actor, ttlMs: number): Promise<JobRecord> {
    const { doc, job } = this.locate(jobId)
    if (job.pinned === true) throw new NotAuthorizedError(`job ${job.ippId} is held for release at its own device only`)
    this.authorizeRelease(job, by)
    const gone = noLongerHeld(job)
    if (gone !== undefined) throw new InvalidJobStateError(gone)
    if (job.state !== 'held') throw new InvalidJobStateError(`job ${job.ippId} is ${job.state}, not held`)
    if (job.sha256 === undefined) throw new InvalidJobStateError(`job ${job.ippId} has no document`)
    const grant = { id: randomUUID(), peer: to.peer, site: to.site, printer: to.printer, user: by.user, expiresAt: this.now() + ttlMs }
    const granted = await this.move(doc, job.id, 'releasing', originOf(by), { grant, printer: to.printer, reason: 'job-printing', message: `released at site ${to.site}` })
    this.log.info({ job: job.ippId, site: to.site, printer: to.printer, by: by.user }, 'release granted to another site')
    return granted
  }

  /** The granted site is about to hand the job to its printer: `releasing → printing`, durable before it may. */
  async commitRelease (jobId: string, peer: PeerId, grantId: string): Promise<JobRecord> {
    const { doc, job } = this.locate(jobId)
    if (job.grant?.peer !== peer || job.grant.id !== grantId) throw new NotAuthorizedError(`job ${job.ippId} is not granted to this peer`)
    if (job.state === 'printing') return job // a retried commit
    if (job.state !== 'releasing') throw new InvalidJobStateError(`job ${job.ippId} is ${job.state}, not releasing`)
    if (job.grant.expiresAt <= this.now()) throw new InvalidJobStateError(`the release grant of job ${job.ippId} expired`)
    return await this.move(doc, job.id, 'printing', ROAMING_ORIGIN)
  }

  // ---- handover (a workstation's client with client spooling off) ----------------

  /**
   * This site's job taken from a client's job (`peer`'s `jobId`), once its document arrived here
   * (it has a sha256: held then, whatever became of it since); undefined if none. A take that
   * broke off before the document was in left a job without one: it does not count.
   */
  handedOver (peer: PeerId, jobId: string): JobRecord | undefined {
    for (const { job } of this.all()) {
      if (job.handedOverFrom?.peer === peer && job.handedOverFrom.jobId === jobId && job.sha256 !== undefined) return job
    }
    return undefined
  }

  /**
   * As a client: grants this peer's held job to its site's server `to`, which takes it as its
   * own. The same `held → releasing` step as any release, so the job is either handed over or
   * released at a printer, never both.
   */
  async grantHandOver (jobId: string, to: { peer: PeerId, site: SiteId }, ttlMs: number): Promise<JobRecord> {
    const job = this.getById(jobId)
    if (job === undefined) throw new JobNotFoundError(jobId)
    return await this.grantRelease(jobId, { ...to, printer: HANDOVER_PRINTER }, { user: job.owner, admin: false }, ttlMs)
  }

  /** The site took the job (its job `ippId` there): `releasing → deleted`, and its bytes leave this workstation. */
  async completeHandOver (jobId: string, grantId: string, ippId: number): Promise<JobRecord> {
    const { doc, job } = this.locate(jobId)
    if (job.state === 'deleted') return job // completed before a restart
    if (job.state !== 'releasing' || job.grant?.id !== grantId || job.grant.printer !== HANDOVER_PRINTER) throw new InvalidJobStateError(`job ${job.ippId} is not being handed over under this grant`)
    const site = job.grant.site
    const done = await this.move(doc, job.id, 'deleted', ROAMING_ORIGIN, { reason: HANDED_OVER_REASON, message: `handed over to site ${site} (job ${ippId} there): release it there` })
    if (job.sha256 !== undefined && !this.bytesNeeded(job.sha256, job.id)) await this.c.spool.remove(job.sha256)
    this.log.info({ job: job.ippId, site, siteJob: ippId }, 'job handed over to the site')
    return done
  }

  /** Whether a job other than `except` still needs the document `sha256`: one not finished, or one still being analysed. */
  private bytesNeeded (sha256: string, except: string): boolean {
    for (const { job } of this.all()) if (job.id !== except && job.sha256 === sha256 && !TERMINAL_STATES.has(job.state)) return true
    return this.beingAnalysed(sha256, except)
  }

  /** The site refused the job: it stays held here (client spooling), with the site's reason. */
  async refuseHandOver (jobId: string, grantId: string, message: string): Promise<JobRecord> {
    const { doc, job } = this.locate(jobId)
    if (job.state !== 'releasing' || job.grant?.id !== grantId) return job
    return await this.move(doc, job.id, 'held', ROAMING_ORIGIN, { grant: undefined, reason: 'job-hold-until-specified', message: `kept on this workstation: ${message}` })
  }

  /**
   * Follows a release of one of this peer's jobs recorded by `peer` (of `site`): the job's
   * state follows a granted release; a print without a grant (an offline release of a
   * prefetched copy) settles a held job or, when the job was printed elsewhere too, is
   * recorded as a duplicate. Idempotent: called again with the same record, it changes nothing.
   */
  async followRelease (peer: PeerId, site: SiteId, rel: RemoteRelease): Promise<void> {
    const doc = this.byId.get(rel.jobId)
    const job = this.getById(rel.jobId)
    if (doc === undefined || job === undefined) return // purged meanwhile
    const origin = ROAMING_ORIGIN
    const by = { peer, site, printer: rel.printer }
    const granted = job.grant !== undefined && job.grant.peer === peer && rel.grantId === job.grant.id
    if (granted && (job.state === 'releasing' || job.state === 'printing')) {
      const patch = { reason: rel.reason ?? '', message: rel.message ?? '' }
      if (rel.state === 'printing' && job.state === 'releasing') {
        await this.move(doc, job.id, 'printing', origin)
      } else if (rel.state === 'printed') {
        await this.c.store.transact(doc, origin, (d) => {
          if (job.state === 'releasing') jobs.transition(d, job.id, 'printing', this.now())
          jobs.transition(d, job.id, 'printed', this.now(), { printedBy: by, reason: 'job-completed-successfully', message: `printed at site ${site}` })
        })
        this.count(job.id, 'printed')
        this.log.info({ job: job.ippId, site, printer: rel.printer }, 'job printed at another site')
      } else if (rel.state === 'returned') {
        await this.move(doc, job.id, 'held', origin, { ...patch, grant: undefined })
      } else if (rel.state === 'failed') {
        await this.move(doc, job.id, 'failed', origin, { ...patch, printedBy: by })
      }
      return
    }
    if (rel.state !== 'printed' && rel.state !== 'printing') return
    const printedHere = job.printedBy === undefined ? this.init.peer : job.printedBy.peer
    if (job.state === 'held') {
      await this.c.store.transact(doc, origin, (d) => {
        jobs.transition(d, job.id, 'releasing', this.now())
        jobs.transition(d, job.id, 'printing', this.now())
        jobs.transition(d, job.id, 'printed', this.now(), { printedBy: by, reason: 'printed-offline', message: `printed at site ${site} while this site was unreachable` })
      })
      this.count(job.id, 'printed')
      this.log.info({ job: job.ippId, site }, 'job printed offline at another site')
    } else if (job.state === 'printed' && printedHere !== peer && !(job.duplicates ?? []).some((d) => d.peer === peer)) {
      const duplicates = [...(job.duplicates ?? []), { peer, site, at: rel.updatedAt }]
      await this.c.store.transact(doc, origin, (d) => jobs.updateJob(d, job.id, { duplicates }, this.now()))
      this.log.warn({ job: job.ippId, owner: job.owner, site, printedBy: job.printedBy?.site ?? this.init.site }, 'duplicate print detected: the job was printed offline at another site too; it is charged once')
    } else if ((job.state === 'deleted' || job.state === 'expired' || job.state === 'failed') && job.printedBy === undefined) {
      await this.c.store.transact(doc, origin, (d) => jobs.updateJob(d, job.id, { printedBy: by, message: `printed offline at site ${site} after it was ${job.state} here` }, this.now()))
      this.log.warn({ job: job.ippId, site, state: job.state }, 'a job no longer held here was printed offline at another site')
    }
    // releasing/printing under another site's grant: decided once that grant settles
  }

  // ---- retention ----------------------------------------------------------------

  /** Expires old held jobs, purges old finished ones with their bytes, drops empty documents. */
  async sweep (): Promise<void> {
    const now = this.now()
    const origin: Origin = { kind: 'local', service: 'retention' }
    const purgedBytes = new Set<string>()
    const purge = new Map<DocName, JobRecord[]>()
    for (const { doc, job } of [...this.all()]) {
      if (job.state === 'received' && !this.uploading.has(job.id) && job.createdAt + INCOMING_TIMEOUT_MS <= now) {
        this.releaseOnArrival.delete(job.id)
        await this.move(doc, job.id, 'failed', origin, { reason: 'job-incoming-timeout', message: 'the document never arrived' })
      } else if (job.state === 'releasing' && job.grant !== undefined && job.grant.printer !== HANDOVER_PRINTER && job.grant.expiresAt <= now) { // a handover's never: the site may have taken the job, only its answer ends it (handover.ts)
        await this.move(doc, job.id, 'held', origin, { grant: undefined, reason: 'release-grant-expired', message: `site ${job.grant.site} did not start printing in time; release it again` })
      } else if (job.state === 'printing' && job.grant === undefined && job.printerJobId !== undefined && !this.engine.watching(job.id)) {
        this.askPrinterAbout(doc, job) // recovered, its printer had no final answer yet: ask again
      } else if (job.state === 'held' && this.elapsedSince(job.id, job.createdAt, now) >= this.holdMs) {
        await this.move(doc, job.id, 'expired', origin, { reason: 'job-expired', message: 'not released in time' })
      } else if (TERMINAL_STATES.has(job.state) && this.elapsedSince(job.id, job.completedAt ?? job.updatedAt, now, true) >= this.retentionMs) {
        const due = purge.get(doc)
        if (due === undefined) purge.set(doc, [job])
        else due.push(job)
      }
    }
    // one transaction (one envelope) per document for all its jobs past retention, not one per job
    for (const [doc, due] of purge) {
      await this.c.store.transact(doc, origin, (d) => { for (const job of due) jobs.purgeJob(d, job.id) })
      for (const job of due) {
        this.byId.delete(job.id)
        this.byIppId.delete(job.ippId)
        this.count(job.id, undefined)
        if (job.sha256 !== undefined) purgedBytes.add(job.sha256)
      }
    }
    // one pass over the remaining jobs, not one per purged job
    if (purgedBytes.size > 0) {
      for (const { job } of this.all()) if (job.sha256 !== undefined) purgedBytes.delete(job.sha256)
      // the same bytes sent again may be under analysis for a new job, whose record names no hash yet
      for (const sha256 of purgedBytes) if (!this.beingAnalysed(sha256)) await this.c.spool.remove(sha256)
    }
    // Emptied documents of past periods stay: peers hold them too, and dropping one only here
    // would have them sent back, and a write into it before all came back would reuse sequence
    // numbers peers already hold (a fork the simulator found). Every peer drops whole
    // documents together, by age (node/peer.ts, JOBS_REPLICA_MONTHS).
  }

  /** Removes the document `sha256` unless a job (other than `except`) names it or is being analysed with it (the same bytes sent twice). */
  private async removeBytesIfUnused (sha256: string, except: string): Promise<void> {
    for (const { job } of this.all()) if (job.sha256 === sha256) return
    if (this.beingAnalysed(sha256, except)) return
    await this.c.spool.remove(sha256)
  }

  /** Whether a job other than `except` is analysing the document `sha256` now: its record does not name it yet. */
  private beingAnalysed (sha256: string, except?: string): boolean {
    for (const [id, spooled] of this.analysing) if (id !== except && spooled === sha256) return true
    return false
  }
}

/**
 * What a job whose analysis was stopped is held with: no pages (unknown), the format as far
 * as the analysis got, the page count the document declares, and why.
 */
function pagesUnknown (err: AnalysisStoppedError, declaredFormat: string): Partial<JobRecord> {
  const declaredPages = err.progress.declaredPages
  const fallback = declaredPages !== undefined ? `the ${declaredPages} pages the document declares` : 'one page per copy'
  return {
    format: err.progress.format ?? declaredFormat,
    ...(declaredPages !== undefined ? { declaredPages } : {}),
    reason: PAGES_UNKNOWN_REASON,
    message: `${err.message}. The job can be released; it is charged what the printer reports printing, else ${fallback}`
  }
}

function originOf (actor: Actor): Origin {
  return actor.admin ? { kind: 'admin', user: actor.user } : { kind: 'user', user: actor.user }
}

export function createJobService (init: JobServiceInit, components: JobServiceComponents): JobService {
  return new JobService(init, components)
}
