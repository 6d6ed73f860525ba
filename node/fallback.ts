/**
 * Fallback printing (issue 14 item 3): a workstation's client that can reach no peer able
 * to release its jobs (its site's server, a terminal of its site) prints a new job at once
 * on a backup printer: one configured for the client (`--fallback-printer NAME=URI`, tried
 * in order, the first that answers), or the one the user picked on the client's local page,
 * among those and the printers this client sent jobs to before (the site's devices it
 * printed to itself, client → printer: node/direct-printers.ts), tried first.
 *
 * The job goes through the client's own release engine (node/release.ts): released by its
 * owner to the fallback printer, charged in the client's own accounting document under the
 * job's one usage id (`<jobId>/print`), so it reaches the mesh and its reports when the
 * connection returns, charged once across restarts and kill -9 (the print engine asks the
 * printer what became of a job it accepted, as on a site). A job that arrives while the
 * site is reachable stays held here for release at a device (client spooling); the user
 * may still send it to a fallback printer from the local page.
 */
import { readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { DocStore, Origin } from '../crdt/store.ts'
import { parseDocName, type PeerId, type SiteId } from '../crdt/names.ts'
import type { Membership } from '../crdt/membership.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { JobRecord } from '../devices/jobs/types.ts'
import { JobError } from '../devices/jobs/types.ts'

/** A printer answers a probe within this or counts as unreachable (the next one is tried). */
const PROBE_TIMEOUT_MS = 5_000
/** Where the user's choice of fallback printer is kept in the data folder. */
const CHOICE_FILE = 'fallback-printer.json'
/**
 * Times a job is sent to the fallback printers while they refuse it before accepting it
 * (busy, an error after the probe answered), the next printer in order first: then it
 * stays held here, for a release at a device or the user's choice on the local page.
 */
export const MAX_FALLBACK_SENDS = 3

/** No fallback printer is configured, or none answers. */
export class NoFallbackPrinterError extends JobError {
  readonly kind = 'unavailable'
  constructor (message: string) { super(message); this.name = 'NoFallbackPrinterError' }
}

/** A fallback printer as the local page shows it: configured for the client, or one it printed to before. */
export interface FallbackPrinterView { name: string, uri: string, chosen: boolean, kind: 'configured' | 'printed-before' }

/** Jobs sent to a fallback printer remembered (for the page to say so): more than a workstation keeps. */
const MAX_REMEMBERED_JOBS = 1_000

export interface FallbackInit {
  /** The client's data folder (the user's choice is kept there). */
  data: string
  /** The client's site. */
  site: SiteId
  /** The client's own peer id (writer of its jobs documents). */
  self: PeerId
  /** Fallback printers by name, in the order they are tried. */
  printers: ReadonlyMap<string, OutputDevice>
  /** Printers this client sent jobs to before (by their label), which the user may pick too. */
  printedBefore?: () => ReadonlyMap<string, OutputDevice>
}

export interface FallbackComponents {
  jobs: JobService
  store: DocStore
  membership: Membership
  /** Peers this client has an open connection to now. */
  connectedPeers: () => readonly string[]
  logger: Logger
}

export class FallbackPrinting {
  private readonly log: Logger
  private chosen: string | undefined
  /** Jobs being sent (probe, release) now, so each is sent once at a time. */
  private readonly sending = new Set<string>()
  /** Jobs this process released to a fallback printer: one found held again was refused there before the printer accepted it. */
  private readonly sent = new Set<string>()
  /** How many times each job was sent to a fallback printer since it arrived (see {@link MAX_FALLBACK_SENDS}). */
  private readonly sends = new Map<string, number>()
  /** Jobs seen held while a peer of the site was reachable (or at start): they wait for a release; only jobs arriving offline fall back. */
  private readonly kept = new Set<string>()
  /** Jobs sent to a fallback printer (kept with the choice), so the page says so whatever printer it was. */
  private readonly fallbackJobs = new Map<string, string>()
  private saving: Promise<void> = Promise.resolve()
  private readonly inFlight = new Set<Promise<unknown>>()
  private started = false

  constructor (private readonly init: FallbackInit, private readonly c: FallbackComponents) {
    this.log = c.logger.child({ service: 'fallback' })
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      const saved = JSON.parse(await readFile(join(this.init.data, CHOICE_FILE), 'utf8')) as { printer?: unknown, jobs?: unknown }
      if (typeof saved.printer === 'string' && this.device(saved.printer) !== undefined) this.chosen = saved.printer
      if (typeof saved.jobs === 'object' && saved.jobs !== null) {
        for (const [id, printer] of Object.entries(saved.jobs)) if (typeof printer === 'string') this.fallbackJobs.set(id, printer)
      }
    } catch {} // no choice yet (or an unreadable one): the configured order applies
    for (const job of this.c.jobs.listJobs({ which: 'not-completed' })) if (job.state === 'held') this.kept.add(job.id)
    this.c.store.on('entry', this.onEntry)
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.c.store.off('entry', this.onEntry)
    await Promise.allSettled([...this.inFlight])
  }

  /**
   * The peers of this client's site that could release its jobs (its site's server, its
   * terminals) and are connected now. None: the site is unreachable, new jobs fall back.
   */
  reachablePeers (): string[] {
    return this.c.connectedPeers().filter((p) => {
      const info = this.c.membership.info(p)
      return info !== undefined && (info.role === 'site' || info.role === 'terminal') && info.site === this.init.site
    })
  }

  /** The printers the user may pick: the configured ones, then those this client printed to before. */
  printers (): FallbackPrinterView[] {
    const chosen = this.chosen
    const configured = [...this.init.printers].map(([name, device]) => ({ name, uri: device.uri, chosen: name === chosen, kind: 'configured' as const }))
    const before = [...this.init.printedBefore?.() ?? []].filter(([name]) => !this.init.printers.has(name))
      .map(([name, device]) => ({ name, uri: device.uri, chosen: name === chosen, kind: 'printed-before' as const }))
    return [...configured, ...before]
  }

  private device (name: string): OutputDevice | undefined {
    return this.init.printers.get(name) ?? this.init.printedBefore?.().get(name)
  }

  /** The user picks the fallback printer tried first (kept across restarts): a configured one, or one this client printed to before. */
  async choose (name: string): Promise<void> {
    if (this.device(name) === undefined) throw new NoFallbackPrinterError(`no fallback printer named ${name}; this client has ${this.printers().map((p) => p.name).join(', ') || 'none'}`)
    this.chosen = name
    await this.save()
    this.log.info({ printer: name }, 'fallback printer chosen')
  }

  /** Keeps the user's choice and the jobs sent to fallback printers (the newest {@link MAX_REMEMBERED_JOBS}). */
  private async save (): Promise<void> {
    const ids = [...this.fallbackJobs.keys()]
    for (const old of ids.slice(0, Math.max(0, ids.length - MAX_REMEMBERED_JOBS))) this.fallbackJobs.delete(old)
    const file = join(this.init.data, CHOICE_FILE)
    const snapshot = JSON.stringify({ ...(this.chosen !== undefined ? { printer: this.chosen } : {}), jobs: Object.fromEntries(this.fallbackJobs) })
    // one write at a time (they share the temporary file), the newest last
    const write = this.saving.then(async () => {
      await writeFile(`${file}.tmp`, snapshot)
      await rename(`${file}.tmp`, file)
    })
    this.saving = write.catch(() => {})
    await write
  }

  /** The fallback printer a job went to, with its URI; undefined when it did not go to one. */
  fallbackOf (job: JobRecord): { name: string, uri: string } | undefined {
    const name = this.fallbackJobs.get(job.id) ?? (job.printer !== undefined && this.init.printers.has(job.printer) ? job.printer : undefined)
    if (name === undefined || name !== job.printer) return undefined
    return { name, uri: this.device(name)?.uri ?? '' }
  }

  /** Sends a held job of this workstation to a fallback printer now (the user asked, on the local page). */
  async printNow (jobId: string, printer?: string): Promise<JobRecord> {
    const job = this.c.jobs.getById(jobId)
    if (job === undefined) throw new NoFallbackPrinterError(`no job ${jobId} on this workstation`)
    return await this.send(job, printer)
  }

  private readonly onEntry = (name: string, _bytes: Uint8Array, _envelope: unknown, origin: Origin): void => {
    const parsed = parseDocName(name)
    if (parsed?.family !== 'jobs' || parsed.peer !== this.init.self || origin.kind === 'peer') return
    const held = this.c.jobs.listJobs({ which: 'not-completed' }).filter((j) => j.state === 'held')
    if (this.init.printers.size === 0 || this.reachablePeers().length > 0) {
      this.kept.clear()
      for (const job of held) this.kept.add(job.id)
      return
    }
    const open = new Set(this.c.jobs.listJobs({ which: 'not-completed' }).map((j) => j.id))
    for (const id of this.sends.keys()) if (!open.has(id)) this.sends.delete(id)
    for (const job of held) {
      if (this.kept.has(job.id) || this.sending.has(job.id)) continue
      let refusedBy: string | undefined
      if (this.sent.has(job.id)) {
        // released to a fallback printer and held again: that printer refused it before accepting it
        this.sent.delete(job.id)
        const sends = this.sends.get(job.id) ?? 1
        if (sends >= MAX_FALLBACK_SENDS) {
          this.kept.add(job.id)
          this.log.error({ job: job.id, sends, printer: job.printer, reason: job.reason }, 'the fallback printers refused the job: it stays held here')
          continue
        }
        refusedBy = job.printer
        this.log.warn({ job: job.id, printer: job.printer, reason: job.reason }, 'the fallback printer refused the job before accepting it: sending it again, to the next fallback printer first')
      }
      this.sends.set(job.id, (this.sends.get(job.id) ?? 0) + 1)
      this.track(this.send(job, undefined, refusedBy).then(
        (printed) => { this.log.warn({ job: job.id, printer: printed.printer }, 'site unreachable: job sent to the fallback printer') },
        (err: unknown) => { this.log.error({ err, job: job.id }, 'site unreachable and no fallback printer took the job: it stays held here') }))
    }
  }

  private track (work: Promise<unknown>): void {
    this.inFlight.add(work)
    void work.finally(() => this.inFlight.delete(work))
  }

  /** The fallback printers in the order tried: the user's choice first, then as configured; `last` (one that just refused the job) at the end. */
  private order (last?: string): string[] {
    const names = [...this.init.printers.keys()]
    const ordered = this.chosen === undefined ? names : [this.chosen, ...names.filter((n) => n !== this.chosen)]
    return last === undefined || !ordered.includes(last) ? ordered : [...ordered.filter((n) => n !== last), last]
  }

  private async send (job: JobRecord, printer?: string, refusedBy?: string): Promise<JobRecord> {
    if (this.sending.has(job.id)) throw new NoFallbackPrinterError(`job ${job.name} is already on its way to a fallback printer`)
    this.sending.add(job.id)
    try {
      const candidates = printer !== undefined ? [printer] : this.order(refusedBy)
      if (candidates.length === 0) throw new NoFallbackPrinterError('this client has no fallback printer (--fallback-printer NAME=ipp://…)')
      const tried: string[] = []
      for (const name of candidates) {
        const device = this.device(name)
        if (device === undefined) throw new NoFallbackPrinterError(`no fallback printer named ${name}`)
        const probe = await device.probe(AbortSignal.timeout(PROBE_TIMEOUT_MS))
        if (!probe.ok) { tried.push(`${name} (${probe.message})`); continue }
        this.sent.add(job.id)
        this.fallbackJobs.set(job.id, name)
        // remembered for the page only, beside the print: it never delays or stops it
        this.track(this.save().catch((err: unknown) => { this.log.warn({ err, job: job.id }, 'could not remember that the job went to a fallback printer') }))
        try {
          return await this.c.jobs.release(job.id, { user: job.owner, admin: false }, name)
        } catch (err) {
          this.sent.delete(job.id)
          throw err
        }
      }
      throw new NoFallbackPrinterError(`no fallback printer answers: ${tried.join(', ')}`)
    } finally {
      this.sending.delete(job.id)
    }
  }
}
