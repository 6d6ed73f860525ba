/**
 * Job roaming: a job held by one site is released at a printer of a partner site.
 *
 * Both sides live here. As the *releasing* site, this service lists partners' jobs (shared
 * mode: next to local ones, fetched ahead; separate mode: apart), asks the holder for a
 * release grant, fetches the document, commits the grant, prints, charges and records the
 * release in its own jobs document. As the *holder*, it answers those requests through the
 * job service and follows the release records other sites write about its jobs.
 *
 * Invariants (DESIGN.md 2 and 3), and where each is enforced:
 *   1. The holder arbitrates: a job is printed elsewhere only under a grant
 *      (`JobService.grantRelease`, the same `held → releasing` step as a local release) that
 *      was committed (`JobService.commitRelease`, `releasing → printing`) before the printer
 *      saw a byte ({@link RoamingService.carryOut}). A grant not committed in time expires.
 *   2. A release record is durable in this site's document before each step it describes:
 *      `fetching` before the grant is used, `printing` after the commit and before the
 *      printer, `printed` after the charge. After a crash, `fetching` is returned to the
 *      holder (no printer saw it) and `printing` is settled by what the printer says of the
 *      job id it gave on acceptance (as the job service does), or counts as printed,
 *      charged once, when that id was never recorded.
 *   3. Offline release (shared mode only, holder unreachable, prefetched copy verified)
 *      prints without a grant; the holder settles or reports the duplicate when it reads
 *      the record (`JobService.followRelease`). Every print is charged under the job's one
 *      usage id, so a duplicate is never charged twice.
 *   4. Partnership is mutual and read from the two sites' config documents only.
 *   5. Copies of partners' documents live in their own spool and are removed once no held
 *      job and no unfinished release needs them (deletion and retention propagate).
 *   6. The same path serves a terminal releasing its own site's jobs (the site server holds
 *      them): peers of the same site release each other's jobs as partners do
 *      ({@link RoamingService.releasesWith}). Who a caller is (site or terminal, which site)
 *      comes from its certificate (`siteOf`), never from what it says.
 *   7. A holder that cannot read this peer's jobs documents (a terminal or a workstation's
 *      client of another site) hears how a granted release ended from this peer itself: the
 *      release protocol's `settle` report ({@link RoamingService.settle} at the holder applies it
 *      as `JobService.followRelease` would the record, only under the sender's grant), sent
 *      when the record becomes final and again on each pass and each change of the holder's
 *      document until the holder answers. The durable mark is the holder's own record, which
 *      this peer replicates: after a restart a final release whose holder still shows the job
 *      `releasing`/`printing` under its grant is reported again (applying it twice changes
 *      nothing). Such a holder is never printed for offline nor prefetched from: it could not
 *      learn of an offline print.
 *   8. A grant this peer got but never recorded (it stopped in between) is given back as a
 *      `returned` release under that grant when this peer sees it again
 *      ({@link RoamingService.returnOrphanedGrants}), not left `releasing` until it expires.
 */
import { InvalidCapabilityError, type AdminCapabilities, type AdminCapability, type CapabilityOp } from '../../crdt/capability.ts'
import type { Logger } from 'pino'
import type { DocStore, Origin } from '../../crdt/store.ts'
import type * as Y from 'yjs'
import { jobsDoc, siteConfigDoc, periodOf, parseDocName, type DocName, type PeerId, type SiteId } from '../../crdt/names.ts'
import * as jobsFamily from '../../crdt/jobs.ts'
import type { RemoteRelease, RemoteReleaseState } from '../../crdt/jobs.ts'
import { readSiteSettings, roamsWith, setClientSettings, setHostname, setPrintPolicy, setRoaming, setSiteTimes, setTerminalSettings, validateClientSettings, validatePrintPolicy, validateRoaming, validateSiteTimes, validateTerminalSettings, type SiteSettings } from '../../crdt/site-config.ts'
import type { Spool } from '../spool.ts'
import type { OutputDevice } from '../output/types.ts'
import type { JobService } from './service.ts'
import { PrintEngine, type PrintTarget } from './print-engine.ts'
import { HandOverDesk } from './handover.ts'
import type { IntakeLimits } from './intake-limits.ts'
import {
  type Actor, type Delegation, type DirectPrintRequest, type HandOverReply, type HandOverRequest, type JobRecord, type JobView, type GrantReply, type GrantRequest, type RoamingHolder, type RoamingLink, type RoamingRefusal, type SettleReport, type SettleReply,
  HANDOVER_PRINTER, JobNotFoundError, NotAuthorizedError, InvalidJobStateError, PrinterNotFoundError, NotPartnerError, HolderUnreachableError, DirectPrinterUnreachableError, JobError, TERMINAL_STATES, releaseRefusal
} from './types.ts'

/** How long a grant lets the releasing site fetch the document before it must commit: generous for a 1 GB job over a slow branch link. */
export const DEFAULT_GRANT_TTL_MS = 10 * 60_000
/** The releasing site stops this long before the grant's end, so its commit never races the holder's expiry. */
const GRANT_SAFETY_MS = 30_000
/** A grant request or commit that gets no answer within this fails (holder unreachable). */
const REQUEST_TIMEOUT_MS = 10_000
/** While a granted transfer cannot reach the holder, it retries this often (until the grant runs out). */
const FETCH_RETRY_MS = 2_000
/** Prefetches running at once: enough to keep a link busy, few enough to leave it to releases. */
const PREFETCH_CONCURRENCY = 2
/** Periodic pass: prefetch retries, following releases missed by events, removing unneeded copies. */
const TICK_MS = 15_000
/** A release's outcome its holder could not be told is told again this often (besides each pass and each change of the holder's document). */
const SETTLE_RETRY_MS = 5_000
/** Finished release records are kept this long for the history, as finished jobs are. */
const RELEASE_RETENTION_MS = 7 * 24 * 3600_000
/** A job is roamable in these states of its holder's record. */
const FETCHABLE: ReadonlySet<string> = new Set(['held', 'releasing', 'printing'])

export interface RoamingInit {
  /** This peer's id: writer of its jobs documents (where its release records go). */
  peer: PeerId
  site: SiteId
  /**
   * This site's host name, published in its site config for partners to show beside its
   * jobs. Only the site's own server gives one: any other peer of the site (a terminal)
   * may not write the site's config, and leaves it alone.
   */
  hostname?: string
  grantTtlMs?: number
  /** The name this peer's printer is known by elsewhere (a terminal's name); a holder printing to it names it so. */
  deviceName?: string
  /** Period of the background pass; 0 runs none (the caller calls {@link RoamingService.tick}, as the simulator does). */
  tickMs?: number
  /** A site's server takes the jobs its workstations' clients hand over (client spooling off), under these limits (devices/jobs/handover.ts). */
  handOver?: { limits: IntakeLimits }
}

export interface RoamingComponents {
  store: DocStore
  /** This site's own spool (documents of the jobs it holds; served to partners). */
  spool: Spool
  /** Copies of partners' documents (prefetched or fetched on release). */
  copies: Spool
  printers: ReadonlyMap<string, OutputDevice>
  jobs: JobService
  link: RoamingLink
  /** The site of a peer holding a valid site certificate; undefined for anyone else. */
  siteOf: (peer: PeerId) => SiteId | undefined
  /** Proves an admin's release or deletion to the holder, and checks such proofs as the holder. */
  capabilities: AdminCapabilities
  /** The print half of the release engine, shared with the job service (default: one of this service's own). */
  engine?: PrintEngine
  logger: Logger
  now?: () => number
  /** Waits before a retry (default: a timer; the simulator passes its virtual clock). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  /** Who may release whose jobs besides their owners (the directory's delegates); the holder decides again with its own copy. */
  delegation?: Delegation
  /** A peer's role by its certificate: a workstation's client holding a job sends it to the printer itself. */
  roleOf?: (peer: PeerId) => string | undefined
  /** A holder that prints to other peers' printers itself (a workstation's client) registers them here. */
  directPrinters?: DirectPrinters
  /** The role and site of any certified peer (clients too): who may hand jobs over to this site. */
  memberOf?: (peer: PeerId) => { role: string, site?: SiteId } | undefined
}

/** Printers of other peers a holder sends jobs to itself (client → printer), kept across restarts. */
export interface DirectPrinters {
  /** Registers the printer at `uri` under `label` (once, durably); resolves with its name in this peer's printers. */
  add (label: string, uri: string): Promise<string>
}

/** Printers a holder may be asked to send a job to itself: over the network, never a file on the holder. */
const DIRECT_URI = /^ipps?:\/\/[^/]/

/** A partner's job as found in its replicated jobs document. */
interface RemoteJob { holder: PeerId, job: JobRecord }

const ROAMING: Origin = { kind: 'local', service: 'roaming' }
/** The site shown for a peer whose certificate this site does not know (yet). */
const UNKNOWN_SITE = 'unknown' as SiteId

export class RoamingService implements RoamingHolder {
  private readonly releaseDocs = new Map<string, DocName>()
  private readonly prefetched = new Set<string>()
  /** Prefetches under way, so a release of the same document waits for it instead of fetching it twice. */
  private readonly prefetching = new Map<string, Promise<void>>()
  private readonly prefetchQueue = new Map<string, PeerId>()
  private readonly releasing = new Set<string>()
  private readonly dirty = new Set<DocName>()
  /** Final granted releases whose holder follows no record of this peer and has not answered their report yet, by `<jobId> <grantId>`. */
  private readonly unsettled = new Map<string, RemoteRelease>()
  /** Reports under way (one per release at a time). */
  private readonly settling = new Set<string>()
  /** A retry of unanswered reports is scheduled. */
  private settleRetry = false
  private readonly inFlight = new Set<Promise<unknown>>()
  private abort = new AbortController()
  private draining?: Promise<void>
  private timer?: NodeJS.Timeout
  private started = false
  private readonly now: () => number
  private readonly log: Logger
  private readonly ttlMs: number
  private readonly engine: PrintEngine
  /** A site's server: where its workstations' clients hand jobs over (client spooling off). */
  private readonly desk: HandOverDesk | undefined
  private readonly onEntry = (name: DocName, _bytes: Uint8Array, _e: unknown, origin: Origin): void => {
    const parsed = parseDocName(name)
    if ((parsed?.family === 'jobs' && parsed.peer !== this.init.peer && origin.kind === 'peer') || parsed?.family === 'site') {
      this.dirty.add(name)
      this.drain()
    }
  }

  constructor (private readonly init: RoamingInit, private readonly c: RoamingComponents) {
    this.now = c.now ?? Date.now
    this.log = c.logger.child({ service: 'roaming' })
    this.ttlMs = init.grantTtlMs ?? DEFAULT_GRANT_TTL_MS
    this.engine = c.engine ?? new PrintEngine({ peer: init.peer, site: init.site }, { store: c.store, printers: c.printers, logger: c.logger, ...(c.now !== undefined ? { now: c.now } : {}) })
    this.desk = init.handOver === undefined || c.memberOf === undefined
      ? undefined
      : new HandOverDesk({ site: init.site, limits: init.handOver.limits }, { jobs: c.jobs, link: c.link, copies: c.copies, memberOf: c.memberOf, signal: () => this.abort.signal, logger: c.logger })
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.abort = new AbortController()
    const hostname = this.init.hostname
    if (hostname !== undefined) await this.c.store.transact(siteConfigDoc(this.init.site), ROAMING, (d) => setHostname(d, hostname, this.now()))
    for (const sha of await this.c.copies.list()) this.prefetched.add(sha)
    await this.recover()
    this.c.store.on('entry', this.onEntry)
    await this.tick()
    const every = this.init.tickMs ?? TICK_MS
    if (every > 0) {
      this.timer = setInterval(() => { this.tick().catch((err: unknown) => this.log.error({ err }, 'roaming pass failed')) }, every)
      this.timer.unref()
    }
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    this.c.store.off('entry', this.onEntry)
    this.abort.abort()
    await Promise.allSettled([...this.inFlight, this.draining])
  }

  // ---- settings ------------------------------------------------------------------------

  settingsOf (site: SiteId): SiteSettings {
    return readSiteSettings(this.c.store.get(siteConfigDoc(site)), site)
  }

  settings (): SiteSettings { return this.settingsOf(this.init.site) }

  /** Changes this site's roaming partners and mode (validated; throws InvalidSiteSettingsError). */
  async setRoaming (input: unknown): Promise<SiteSettings> {
    const roaming = validateRoaming(this.init.site, input)
    await this.writeSettings((d) => { setRoaming(d, roaming, this.now()) }, { partners: roaming.partners, mode: roaming.mode }, 'roaming settings changed')
    this.dirty.add(siteConfigDoc(this.init.site))
    this.drain()
    return this.settings()
  }

  /** An admin's change of this site's settings document (validated already), logged. */
  private async writeSettings (write: (d: Y.Doc) => void, logged: Record<string, unknown>, message: string): Promise<void> {
    await this.c.store.transact(siteConfigDoc(this.init.site), { kind: 'admin', user: 'admin' }, write)
    this.log.info(logged, message)
  }

  /** Changes what this site's workstation clients may do (validated; throws InvalidSiteSettingsError). */
  async setClientSettings (input: unknown): Promise<SiteSettings> {
    const clients = validateClientSettings(input)
    await this.writeSettings((d) => { setClientSettings(d, clients, this.now()) }, { clients }, 'client settings changed')
    return this.settings()
  }

  /** Changes the site's print policy (validated; throws InvalidSiteSettingsError). */
  async setPrintPolicy (input: unknown): Promise<SiteSettings> {
    const policy = validatePrintPolicy(input)
    await this.writeSettings((d) => { setPrintPolicy(d, policy, this.now()) }, { policy }, 'print policy changed')
    return this.settings()
  }

  /** Changes the release modes this site's terminals offer, their default, whether they trust the name sent (validated; throws InvalidSiteSettingsError). */
  async setTerminalSettings (input: unknown): Promise<SiteSettings> {
    const terminals = validateTerminalSettings(input)
    await this.writeSettings((d) => { setTerminalSettings(d, terminals, this.now()) }, { terminals }, 'terminal settings changed')
    return this.settings()
  }

  /**
   * Changes how long the site's peers hold and keep jobs (`{holdHours?, retentionHours?}`, null:
   * back to the start-up flag; validated, throws InvalidSiteSettingsError). Each peer's job
   * service reads them at each use: no restart, jobs already held included.
   */
  async setTimes (input: unknown): Promise<SiteSettings> {
    const times = validateSiteTimes(input)
    await this.writeSettings((d) => { setSiteTimes(d, times, this.now()) }, { times }, 'hold and retention times changed')
    return this.settings()
  }

  /** Whether this site and `site` roam with each other. */
  roamsWith (site: SiteId): boolean {
    return roamsWith(this.settings(), this.settingsOf(site))
  }

  /**
   * Whether jobs held at `site` may be released here, and peers of `site` may release this
   * peer's jobs: the same site (a terminal and its site server, either way), or a partner.
   */
  releasesWith (site: SiteId): boolean {
    return site === this.init.site || this.roamsWith(site)
  }

  // ---- listing -------------------------------------------------------------------------

  /** Jobs other peers hold that may be released elsewhere (a pinned job is released only at its holder). */
  private *remoteJobs (): Generator<RemoteJob> {
    for (const name of this.c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === this.init.peer || parsed.peer === undefined) continue
      const doc = this.c.store.get(name)
      if (doc === undefined) continue
      for (const job of jobsFamily.listJobs(doc)) if (job.pinned !== true) yield { holder: parsed.peer, job }
    }
  }

  private findRemote (jobId: string): RemoteJob | undefined {
    for (const r of this.remoteJobs()) if (r.job.id === jobId) return r
    return undefined
  }

  /** This site's release record of a partner's job, if it made one (and it is not purged yet). */
  releaseOf (jobId: string): RemoteRelease | undefined {
    const name = this.releaseDocs.get(jobId)
    const doc = name === undefined ? undefined : this.c.store.get(name)
    return doc === undefined ? undefined : jobsFamily.getRelease(doc, jobId)
  }

  /** Jobs of partner sites (optionally of one owner), as users here see them. */
  listPartnerJobs (owner?: string): JobView[] {
    const out: JobView[] = []
    const partners = new Map<string, boolean>()
    for (const { holder, job } of this.remoteJobs()) {
      if (owner !== undefined && job.owner !== owner) continue
      let ok = partners.get(job.site)
      if (ok === undefined) partners.set(job.site, ok = this.releasesWith(job.site))
      if (!ok) continue
      out.push(this.view(holder, job))
    }
    return out
  }

  /** A remote job with its source, and with this site's own release of it when that is ahead of the holder's record. */
  view (holder: PeerId, job: JobRecord): JobView {
    const rel = this.releaseOf(job.id)
    const source = { site: job.site, hostname: job.heldAt ?? this.settingsOf(job.site).hostname, peer: holder }
    const prefetched = job.sha256 !== undefined && this.prefetched.has(job.sha256)
    const unavailable = job.heldAt !== undefined && !TERMINAL_STATES.has(job.state) && this.c.link.connected?.(holder) === false
    const base: JobView = { ...job, source, prefetched, ...(unavailable ? { unavailable } : {}) }
    if (rel === undefined || TERMINAL_STATES.has(job.state)) return base
    const shown: Partial<Record<RemoteReleaseState, JobRecord['state']>> = { fetching: 'releasing', printing: 'printing', printed: 'printed', failed: 'failed' }
    const state = shown[rel.state]
    if (state === undefined) return { ...base, ...(rel.message !== undefined ? { message: rel.message } : {}) }
    return { ...base, state, printer: rel.printer, ...(rel.message !== undefined ? { message: rel.message } : {}) }
  }

  // ---- releasing a partner's job here ----------------------------------------------------

  /**
   * Releases a partner's job at `printer` of this site. Resolves once the holder granted it
   * (or, offline, once the release is recorded); fetching and printing continue in the
   * background and show in the job's state.
   */
  async releaseRemote (actor: Actor, jobId: string, printer?: string): Promise<JobView> {
    const found = this.findRemote(jobId)
    if (found === undefined) throw new JobNotFoundError(jobId)
    const { holder, job } = found
    const refusal = releaseRefusal(job, actor, this.c.delegation)
    if (refusal !== undefined) throw new NotAuthorizedError(refusal)
    if (!this.releasesWith(job.site)) throw new NotPartnerError(`site ${this.init.site} does not roam with site ${job.site}`)
    const printerName = printer ?? [...this.c.printers.keys()][0]
    if (printerName === undefined || !this.c.printers.has(printerName)) throw new PrinterNotFoundError(printerName ?? '(none configured)')
    if (TERMINAL_STATES.has(job.state)) throw new InvalidJobStateError(`job ${job.name} is already ${job.state}`)
    const current = this.releaseOf(jobId)
    if (this.releasing.has(jobId) || (current !== undefined && !jobsFamily.isFinalRelease(current.state))) {
      throw new InvalidJobStateError(`job ${job.name} is already being released here`)
    }
    this.releasing.add(jobId)
    try {
      const direct = await this.releaseDirect(actor, holder, job, printerName)
      if (direct !== undefined) return direct
      const started = this.now()
      let reply: GrantReply
      try {
        const adminCapability = actor.admin ? await this.c.capabilities.issue({ holder: this.init.peer, admin: actor.user, op: 'grant', jobId }) : undefined
        reply = await this.c.link.requestGrant(holder, { jobId, user: actor.user, printer: printerName, ...(adminCapability !== undefined ? { adminCapability } : {}) }, this.signal(REQUEST_TIMEOUT_MS))
      } catch (err) {
        if (!(err instanceof HolderUnreachableError)) throw err
        // a terminal's or workstation's job: the message names the device, not the site
        const cause = job.heldAt === undefined ? err : new HolderUnreachableError(err.site, err.reason, job.heldAt)
        return await this.releaseOffline(actor, holder, job, printerName, cause)
      }
      if (!reply.ok) throw refusalError(reply.error, reply.message, jobId)
      const rel = await this.record({
        jobId, holder, holderSite: job.site, printer: printerName, grantId: reply.grantId, offline: false, user: actor.user,
        state: 'fetching', job: reply.job, message: `fetching the document from ${this.settingsOf(job.site).hostname}`, createdAt: this.now(), updatedAt: this.now()
      })
      this.log.info({ job: job.id, holderSite: job.site, printer: printerName, by: actor.user }, 'release granted by the holding site')
      this.background(this.carryOut(rel, started + reply.ttlMs - GRANT_SAFETY_MS))
      return this.view(holder, job)
    } finally {
      this.releasing.delete(jobId)
    }
  }

  /**
   * A workstation's client holds the job: it sends the document to this peer's printer
   * itself (client → printer), so no byte of it passes through here; this peer only asks.
   * Undefined when that cannot be (a printer the client cannot reach, a file printer): the
   * caller then takes the grant and fetches the document as from any holder.
   */
  private async releaseDirect (actor: Actor, holder: PeerId, job: JobRecord, printer: string): Promise<JobView | undefined> {
    const uri = this.c.printers.get(printer)?.uri
    const requestPrint = this.c.link.requestPrint
    if (this.c.roleOf?.(holder) !== 'client' || uri === undefined || !DIRECT_URI.test(uri) || requestPrint === undefined) return undefined
    const adminCapability = actor.admin ? await this.c.capabilities.issue({ holder: this.init.peer, admin: actor.user, op: 'grant', jobId: job.id }) : undefined
    const request = { jobId: job.id, user: actor.user, printer, printerUri: uri, printerLabel: `${this.init.site}:${this.init.deviceName ?? printer}`, ...(adminCapability !== undefined ? { adminCapability } : {}) }
    let reply: Awaited<ReturnType<NonNullable<RoamingLink['requestPrint']>>>
    try {
      reply = await requestPrint.call(this.c.link, holder, request, this.signal(REQUEST_TIMEOUT_MS))
    } catch (err) {
      if (err instanceof HolderUnreachableError && job.heldAt !== undefined) throw new HolderUnreachableError(err.site, err.reason, job.heldAt)
      throw err
    }
    if (!reply.ok && reply.error === 'printer-unreachable') {
      this.log.info({ job: job.id, holder, printer, reason: reply.message }, 'the workstation cannot reach this printer: fetching the document instead')
      return undefined
    }
    if (!reply.ok) throw refusalError(reply.error, reply.message, job.id)
    this.log.info({ job: job.id, holder, printer, by: actor.user }, 'released: the workstation sends it to the printer itself')
    return this.view(holder, reply.job)
  }

  /** The holder is unreachable: in shared mode a verified prefetched copy may be printed without a grant. */
  private async releaseOffline (actor: Actor, holder: PeerId, job: JobRecord, printer: string, cause: HolderUnreachableError): Promise<JobView> {
    const sha = job.sha256
    if (this.settings().roaming.mode !== 'shared' || sha === undefined || !this.prefetched.has(sha) || job.state !== 'held') throw cause
    // a holder that cannot read this peer's release records would never learn of the print
    if (!this.holderFollows(holder, job)) throw cause
    // another site's release record of this job, held here, says it is being (or was) printed there: printing it too would be a duplicate this site could know of
    if (this.releaseOf(job.id)?.state === 'printed') throw new InvalidJobStateError(`job ${job.name} is already printed here`)
    const elsewhere = this.releasedElsewhere(job.id)
    if (elsewhere !== undefined) throw new InvalidJobStateError(`job ${job.name} is already ${elsewhere.state === 'printed' ? 'printed' : 'being released'} at site ${elsewhere.site}`)
    try {
      await this.c.copies.verify(sha)
    } catch {
      this.forgetCopy(sha)
      throw cause
    }
    const rel = await this.record({
      jobId: job.id, holder, holderSite: job.site, printer, offline: true, user: actor.user, state: 'printing', job,
      message: `printing offline: site ${job.site} is unreachable`, createdAt: this.now(), updatedAt: this.now()
    })
    this.log.warn({ job: job.id, holderSite: job.site, printer, by: actor.user }, 'holding site unreachable: releasing the prefetched copy offline')
    this.background(this.printCopy(rel))
    return this.view(holder, job)
  }

  /** A release of `jobId` recorded by another peer, held here, that is not returned or failed. */
  private releasedElsewhere (jobId: string): { site: string, state: RemoteReleaseState } | undefined {
    for (const name of this.c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === undefined || parsed.peer === this.init.peer) continue
      const doc = this.c.store.get(name)
      const rel = doc === undefined ? undefined : jobsFamily.getRelease(doc, jobId)
      if (rel !== undefined && rel.state !== 'returned' && rel.state !== 'failed') return { site: this.c.siteOf(parsed.peer) ?? parsed.peer, state: rel.state }
    }
    return undefined
  }

  private async record (rel: RemoteRelease): Promise<RemoteRelease> {
    const name = jobsDoc(this.init.peer, periodOf(this.now()))
    try {
      await this.c.store.transact(name, ROAMING, (d) => jobsFamily.putRelease(d, rel))
    } catch (err) {
      // A write that failed (a full disk) stays in the document held in memory, and is stored
      // with the whole document once writes work again (crdt/store.ts): a release recorded
      // 'printing' that nobody carries on would be counted as printed at the next start (the
      // simulator's disk-full fault found it). What this peer does instead is recorded too.
      await this.c.store.transact(name, ROAMING, (d) => {
        const held = jobsFamily.getRelease(d, rel.jobId)
        if (held?.state === rel.state && held.createdAt === rel.createdAt && !jobsFamily.isFinalRelease(held.state)) jobsFamily.moveRelease(d, rel.jobId, 'returned', this.now(), { reason: 'release-not-recorded', message: `the release could not be recorded here: ${(err as Error).message}` })
      }).catch(() => {}) // fails as the first did; in memory it holds
      throw err
    }
    this.releaseDocs.set(rel.jobId, name)
    return rel
  }

  private async moveRelease (jobId: string, to: RemoteReleaseState, patch: { reason?: string, message?: string } = {}): Promise<RemoteRelease> {
    const name = this.releaseDocs.get(jobId)
    if (name === undefined) throw new Error(`no release of ${jobId} here`)
    const moved = await this.c.store.transact(name, ROAMING, (d) => jobsFamily.moveRelease(d, jobId, to, this.now(), patch))
    if (jobsFamily.isFinalRelease(moved.state)) this.noteFinal(moved)
    return moved
  }

  /**
   * Whether the holder of `job` reads this peer's jobs documents, and so follows its release
   * records itself: a peer of this site, or a site's server (they read every document). A
   * terminal or a workstation's client of another site does not (crdt/membership.ts).
   */
  private holderFollows (holder: PeerId, job: Pick<JobRecord, 'site' | 'heldAt'>): boolean {
    if (job.site === this.init.site) return true
    const role = this.c.roleOf?.(holder) ?? (job.heldAt === undefined ? 'site' : undefined)
    return role === 'site' || role === 'central'
  }

  /** A granted release of this peer ended: its holder hears it from here when it cannot read the record. */
  private noteFinal (rel: RemoteRelease): void {
    if (rel.offline || rel.grantId === undefined || this.holderFollows(rel.holder, rel.job)) return
    const key = `${rel.jobId} ${rel.grantId}`
    this.unsettled.set(key, rel)
    this.reportOutcome(key)
  }

  /**
   * Whether the holder's record of `rel`'s job, as replicated here, may still wait for this
   * release. Only a record that shows this release's grant already settled (no longer
   * `releasing` or `printing`), or the job ended for good, says it does not. A record without
   * this grant may simply not have arrived here yet (the holder granted just before this
   * release ended; seen with a partner refusing a job for credit right after the commit), so it
   * counts as waiting, as does a record not here: the holder's answer ends the report.
   */
  private holderWaits (rel: RemoteRelease): boolean {
    const prefix = `v1/jobs/${rel.holder}/`
    for (const name of this.c.store.openNames()) {
      if (!name.startsWith(prefix)) continue
      const doc = this.c.store.get(name)
      const job = doc === undefined ? undefined : jobsFamily.getJob(doc, rel.jobId)
      if (job === undefined) continue
      if (TERMINAL_STATES.has(job.state)) return false
      const ours = job.grant?.peer === this.init.peer && job.grant.id === rel.grantId
      return !ours || job.state === 'releasing' || job.state === 'printing'
    }
    return true
  }

  /** Sends the holder the outcome of the final release `key` (in the background; retried by the caller while unreachable). */
  private reportOutcome (key: string): void {
    const rel = this.unsettled.get(key)
    const settle = this.c.link.settle
    if (rel === undefined || rel.grantId === undefined || this.settling.has(key) || !this.started) return
    if (settle === undefined || !this.holderWaits(rel)) { this.unsettled.delete(key); return }
    if (rel.state !== 'printed' && rel.state !== 'failed' && rel.state !== 'returned') return
    const report: SettleReport = { jobId: rel.jobId, grantId: rel.grantId, state: rel.state, ...(rel.reason !== undefined ? { reason: rel.reason } : {}), ...(rel.message !== undefined ? { message: rel.message } : {}) }
    this.settling.add(key)
    this.background((async () => {
      try {
        const reply = await settle.call(this.c.link, rel.holder, report, this.signal(REQUEST_TIMEOUT_MS))
        this.unsettled.delete(key) // answered: applied, or refused for good (asking again changes nothing)
        if (reply.ok) this.log.info({ job: rel.jobId, holder: rel.holder, state: rel.state, holderState: reply.state }, 'holder settled the release')
        else this.log.warn({ job: rel.jobId, holder: rel.holder, state: rel.state, error: reply.error, reason: reply.message }, 'holder refused the release\'s outcome')
      } catch (err) {
        // unreachable (or stopping): reported again shortly, on the next pass, or when the holder's document changes
        this.log.debug({ job: rel.jobId, holder: rel.holder, err: (err as Error).message }, 'could not report a release\'s outcome to its holder')
        this.scheduleSettleRetry()
      } finally {
        this.settling.delete(key)
      }
    })())
  }

  /**
   * Reports the unanswered outcomes again after {@link SETTLE_RETRY_MS}, once for all of them.
   * Not awaited by {@link stop}: the wait ends when this service stops, and does nothing then.
   */
  private scheduleSettleRetry (): void {
    if (this.settleRetry || !this.started) return
    this.settleRetry = true
    const signal = this.abort.signal
    ;(async () => {
      try {
        await (this.c.sleep ?? sleep)(SETTLE_RETRY_MS, signal)
      } finally {
        this.settleRetry = false
      }
      if (!signal.aborted && this.started) this.reportUnsettled()
    })().catch((err: unknown) => this.log.error({ err }, 'could not report release outcomes again'))
  }

  /**
   * Grants a holder gave this peer that no release here acts on: this peer stopped (a crash)
   * between the holder's grant and its `fetching` record, so nothing was fetched, committed or
   * printed under them, and nothing ever will be (the grant lived only in that process). They
   * are given back at once, as a `returned` release under the grant's id, which the holder
   * follows (or is told of), instead of leaving the job `releasing` until the grant expires. A
   * grant still being recorded ({@link releaseRemote} under way) and a client's handover grant
   * (not a release) are left alone.
   */
  private async returnOrphanedGrants (jobs: Iterable<RemoteJob>): Promise<void> {
    for (const { holder, job } of jobs) {
      const grant = job.grant
      if (job.state !== 'releasing' || grant === undefined || grant.peer !== this.init.peer || grant.printer === HANDOVER_PRINTER || this.releasing.has(job.id)) continue
      const rel = this.releaseOf(job.id)
      if (rel !== undefined && (rel.grantId === grant.id || !jobsFamily.isFinalRelease(rel.state))) continue
      const at = this.now()
      this.log.warn({ job: job.id, holder, grant: grant.id }, 'a grant this peer got before it stopped, never recorded: given back to the holder')
      const returned = await this.record({
        jobId: job.id, holder, holderSite: job.site, printer: grant.printer, grantId: grant.id, offline: false, user: grant.user, state: 'returned', job,
        reason: 'release-interrupted', message: 'this site stopped after the grant, before it recorded the release; release it again', createdAt: at, updatedAt: at
      })
      this.noteFinal(returned)
    }
  }

  /** Reports the outcomes still unanswered (of `holder`'s jobs only, when given). */
  private reportUnsettled (holder?: PeerId): void {
    for (const [key, rel] of this.unsettled) if (holder === undefined || rel.holder === holder) this.reportOutcome(key)
  }

  /** Fetch, commit, print, charge; every failure before the printer accepted returns the job to its holder. Never rejects. */
  private async carryOut (rel: RemoteRelease, deadline: number): Promise<void> {
    const sha = rel.job.sha256 ?? ''
    try {
      await this.fetchUntil(rel.holder, rel.holderSite, sha, deadline)
      if (this.now() >= deadline) throw new ReleaseAbandonedError('the release grant ran out before the document arrived')
      const grantId = rel.grantId ?? ''
      const committed = await this.untilDeadline(deadline, async () => await this.c.link.commit(rel.holder, rel.jobId, grantId, this.signal(REQUEST_TIMEOUT_MS)))
      if (!committed.ok) throw new ReleaseAbandonedError(`site ${rel.holderSite} withdrew the release: ${committed.message}`)
      await this.printCopy(await this.moveRelease(rel.jobId, 'printing', { message: '' }))
    } catch (err) {
      const message = (err as Error).message
      this.log.warn({ job: rel.jobId, holderSite: rel.holderSite, err: message }, 'roaming release returned to its holder')
      await this.moveRelease(rel.jobId, 'returned', { reason: 'release-returned', message })
        .catch((e: unknown) => this.log.error({ err: e, job: rel.jobId }, 'could not record the returned release'))
    }
  }

  /** Prints a `printing` release from the copies spool through the print engine and settles it. Never rejects. */
  private async printCopy (rel: RemoteRelease): Promise<void> {
    await this.engine.print(this.target(rel), this.abort.signal)
  }

  /** Asks the printer of a `printing` release how the job ended, in the background; once per release at a time. */
  private askPrinterAbout (rel: RemoteRelease): void {
    if (!this.started) return
    const run = this.engine.settleFromPrinter(this.target(rel), this.abort.signal)
    if (run !== undefined) this.background(run)
  }

  /**
   * A release recorded here as the print engine sees it: this peer's release record carries
   * the print (the holder follows it). It cannot wait for a busy printer (its grant is
   * committed): a printer that never took it returns it to the holder.
   */
  private target (rel: RemoteRelease): PrintTarget {
    return {
      tag: { job: rel.jobId, holderSite: rel.holderSite, offline: rel.offline },
      // charged to the owner, recording who released it when that was someone else (a delegate, an admin)
      job: rel.user !== rel.job.owner ? { ...rel.job, releasedBy: rel.user } : rel.job,
      printer: rel.printer,
      documentPath: this.c.copies.path(rel.job.sha256 ?? ''),
      current: () => {
        const now = this.releaseOf(rel.jobId)
        return now === undefined ? undefined : { state: now.state, ...(now.printerJobId !== undefined ? { printerJobId: now.printerJobId } : {}), updatedAt: now.updatedAt }
      },
      markPrinting: async () => { if (this.releaseOf(rel.jobId)?.state !== 'printing') await this.moveRelease(rel.jobId, 'printing', { message: '' }) },
      recordPrinterJob: async (printerJobId) => {
        const name = this.releaseDocs.get(rel.jobId)
        if (name === undefined) throw new Error(`no release of ${rel.jobId} here`)
        await this.c.store.transact(name, ROAMING, (d) => { jobsFamily.recordReleasePrinterJob(d, rel.jobId, printerJobId, this.now()) })
      },
      markPrinted: async (patch) => { await this.moveRelease(rel.jobId, 'printed', patch ?? {}) },
      markNotPrinted: async (accepted, reason, message) => { await this.moveRelease(rel.jobId, accepted ? 'failed' : 'returned', { reason, message }) }
    }
  }

  /** Fetches a document into the copies spool (unless already there), retrying an unreachable holder until `deadline`. */
  private async fetchUntil (holder: PeerId, holderSite: SiteId, sha: string, deadline: number): Promise<void> {
    await this.prefetching.get(sha)
    if (this.prefetched.has(sha)) {
      try { await this.c.copies.verify(sha); return } catch { this.forgetCopy(sha) }
    }
    const dest = await this.c.copies.prepare(sha)
    await this.untilDeadline(deadline, async () => { await this.c.link.fetch(holder, sha, dest, this.abort.signal) })
    this.prefetched.add(sha)
    this.log.debug({ holderSite, sha }, 'document fetched')
  }

  /** Runs `fn`, retrying while the holder is unreachable, until `deadline` (local clock). */
  private async untilDeadline<T> (deadline: number, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await fn()
      } catch (err) {
        if (!(err instanceof HolderUnreachableError) || this.now() + FETCH_RETRY_MS >= deadline || this.abort.signal.aborted) throw err
        await (this.c.sleep ?? sleep)(FETCH_RETRY_MS, this.abort.signal)
      }
    }
  }

  /** Deletes a partner's held job at its holder (for its owner). */
  async deleteRemote (actor: Actor, jobId: string): Promise<void> {
    const found = this.findRemote(jobId)
    if (found === undefined) throw new JobNotFoundError(jobId)
    if (!actor.admin && actor.user !== found.job.owner) throw new NotAuthorizedError('this job belongs to another user')
    if (!this.releasesWith(found.job.site)) throw new NotPartnerError(`site ${this.init.site} does not roam with site ${found.job.site}`)
    const adminCapability = actor.admin ? await this.c.capabilities.issue({ holder: this.init.peer, admin: actor.user, op: 'delete', jobId }) : undefined
    const reply = await this.c.link.deleteJob(found.holder, jobId, actor.user, this.signal(REQUEST_TIMEOUT_MS), adminCapability)
    if (!reply.ok) throw refusalError(reply.error, reply.message, jobId)
  }

  // ---- holder side -------------------------------------------------------------------------

  async grant (peer: PeerId, request: GrantRequest): Promise<GrantReply> {
    return await this.answer(peer, async (site) => {
      const actor = await this.actorOf(peer, request.user, request.adminCapability, 'grant', request.jobId)
      const job = await this.c.jobs.grantRelease(request.jobId, { peer, site, printer: request.printer }, actor, this.ttlMs)
      return { ok: true as const, grantId: job.grant?.id ?? '', ttlMs: this.ttlMs, job }
    })
  }

  async commit (peer: PeerId, jobId: string, grantId: string): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }> {
    return await this.answer(peer, async () => {
      await this.c.jobs.commitRelease(jobId, peer, grantId)
      return { ok: true as const }
    })
  }

  /**
   * A releasing peer reports how its granted release of a job held here ended (this peer
   * cannot read its jobs document). Applied as `followRelease` applies the record, and only
   * while the job is granted to that peer under that grant; once applied, the same report
   * again is answered with the job's state and changes nothing. No grant (an offline print,
   * a forged or stale report, another peer's grant): refused.
   */
  async settle (peer: PeerId, report: SettleReport): Promise<SettleReply> {
    // the grant this peer gave is what counts, not whether the sites still roam with each other
    return await this.answer(peer, { partners: false }, async (site) => {
      const job = this.c.jobs.getById(report.jobId)
      if (job === undefined) throw new JobNotFoundError(report.jobId)
      const grant = job.grant
      if (grant === undefined || grant.peer !== peer || grant.id !== report.grantId || grant.printer === HANDOVER_PRINTER) {
        this.log.warn({ job: job.ippId, from: peer, grant: report.grantId }, 'release outcome refused: the job is not granted to that peer under that grant')
        throw new NotAuthorizedError(`job ${job.ippId} is not granted to this peer under grant ${report.grantId}`)
      }
      if (job.state === 'releasing' || job.state === 'printing') {
        const at = this.now()
        // nothing awaited between the check above and this call: it sees the same record
        await this.c.jobs.followRelease(peer, site, {
          jobId: job.id, holder: this.init.peer, holderSite: this.init.site, printer: grant.printer, grantId: grant.id, offline: false, user: grant.user,
          state: report.state, job, ...(report.reason !== undefined ? { reason: report.reason } : {}), ...(report.message !== undefined ? { message: report.message } : {}), createdAt: at, updatedAt: at
        })
        this.log.info({ job: job.ippId, from: peer, site, state: report.state }, 'release outcome reported by the releasing peer')
      }
      return { ok: true as const, state: this.c.jobs.getById(job.id)?.state ?? job.state }
    })
  }

  async deleteJob (peer: PeerId, jobId: string, user: string, adminCapability?: AdminCapability): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }> {
    return await this.answer(peer, async () => {
      await this.c.jobs.cancel(jobId, await this.actorOf(peer, user, adminCapability, 'delete', jobId))
      return { ok: true as const }
    })
  }

  async printDirect (peer: PeerId, request: DirectPrintRequest): Promise<{ ok: true, job: JobRecord } | { ok: false, error: RoamingRefusal, message: string }> {
    const printers = this.c.directPrinters
    if (printers === undefined) return { ok: false, error: 'bad-request', message: 'this peer does not send jobs to other peers\' printers; ask for a grant' }
    if (!DIRECT_URI.test(request.printerUri)) return { ok: false, error: 'bad-request', message: 'a printer to send a job to must be ipp:// or ipps://' }
    return await this.answer(peer, async () => {
      const actor = await this.actorOf(peer, request.user, request.adminCapability, 'grant', request.jobId)
      const job = this.c.jobs.getById(request.jobId)
      if (job === undefined) throw new JobNotFoundError(request.jobId)
      const refusal = releaseRefusal(job, actor, this.c.delegation)
      if (refusal !== undefined) throw new NotAuthorizedError(refusal)
      if (job.state !== 'held') throw new InvalidJobStateError(`job ${job.name} is ${job.state}, not held`)
      const name = await printers.add(request.printerLabel, request.printerUri)
      const probe = await this.c.printers.get(name)?.probe(this.signal(REQUEST_TIMEOUT_MS))
      if (probe?.ok !== true) throw new DirectPrinterUnreachableError(`this workstation cannot reach ${request.printerUri}: ${probe?.message ?? 'no such printer'}`)
      const releasing = await this.c.jobs.release(job.id, actor, name)
      this.log.info({ job: job.id, printer: name, uri: request.printerUri, for: peer, by: actor.user }, 'sending a held job to another peer\'s printer')
      return { ok: true as const, job: releasing }
    })
  }

  async handOver (peer: PeerId, request: HandOverRequest): Promise<HandOverReply> {
    if (this.desk === undefined) return { ok: false, error: 'not-authorized', message: 'only a site\'s server takes jobs handed over by workstations' }
    return this.desk.handOver(peer, request)
  }

  mayFetch (peer: PeerId, sha256: string): boolean {
    const site = this.c.siteOf(peer)
    return site !== undefined && this.releasesWith(site) && this.blobPath(sha256) !== undefined
  }

  blobPath (sha256: string): string | undefined {
    for (const job of this.c.jobs.listJobs({ which: 'not-completed' })) {
      if (job.sha256 === sha256 && FETCHABLE.has(job.state) && job.pinned !== true) return this.c.spool.path(sha256)
    }
    return undefined
  }

  /**
   * Who is acting in a partner's request: the user it names (the partner authenticated
   * them), or an admin when it carries a capability that checks out (crdt/capability.ts).
   * A claim to be admin that does not check out is refused, not downgraded.
   */
  private async actorOf (peer: PeerId, user: string, capability: AdminCapability | undefined, op: CapabilityOp, jobId: string): Promise<Actor> {
    if (capability === undefined) return { user, admin: false }
    try {
      return { user: await this.c.capabilities.check(capability, peer, op, jobId), admin: true }
    } catch (err) {
      if (!(err instanceof InvalidCapabilityError)) throw err
      this.log.warn({ peer, job: jobId, op, reason: err.message }, 'admin claim refused')
      throw new NotAuthorizedError(`admin claim refused: ${err.message}`)
    }
  }

  /** Runs a holder-side request from a partner site, turning domain errors into refusals. */
  private async answer<T extends { ok: true }> (peer: PeerId, ...args: [fn: (site: SiteId) => Promise<T>] | [opts: { partners: false }, fn: (site: SiteId) => Promise<T>]): Promise<T | { ok: false, error: RoamingRefusal, message: string }> {
    const fn = args.length === 1 ? args[0] : args[1]
    const site = this.c.siteOf(peer)
    if (site === undefined) return { ok: false, error: 'not-authorized', message: 'only certified site and terminal peers may release jobs held elsewhere' }
    if (args.length === 1 && !this.releasesWith(site)) return { ok: false, error: 'not-partner', message: `site ${this.init.site} does not roam with site ${site}` }
    try {
      return await fn(site)
    } catch (err) {
      if (!(err instanceof JobError)) throw err
      const error: RoamingRefusal = err instanceof JobNotFoundError ? 'not-found' : err instanceof NotAuthorizedError ? 'not-authorized' : err instanceof DirectPrinterUnreachableError ? 'printer-unreachable' : 'invalid-state'
      return { ok: false, error, message: err.message }
    }
  }

  // ---- following, prefetching, recovery -----------------------------------------------------

  /**
   * Releases recorded here before a restart: `fetching` goes back to the holder; `printing`
   * is settled by what the printer says of the job it accepted (as the job service does for
   * local jobs), or counted as printed when its printer job id was never recorded.
   */
  private async recover (): Promise<void> {
    const prefix = `v1/jobs/${this.init.peer}/`
    for (const name of await this.c.store.storedNames()) {
      if (!name.startsWith(prefix)) continue
      const doc = await this.c.store.open(name)
      for (const rel of jobsFamily.listReleases(doc)) {
        this.releaseDocs.set(rel.jobId, name)
        if (jobsFamily.isFinalRelease(rel.state)) {
          this.noteFinal(rel) // reported again unless the holder's record shows it settled
        } else if (rel.state === 'fetching') {
          await this.moveRelease(rel.jobId, 'returned', { reason: 'release-interrupted', message: 'this site restarted before the printer accepted the job; release it again' })
        } else if (rel.state === 'printing' && rel.printerJobId !== undefined) {
          this.askPrinterAbout(rel) // the printer accepted it: it says how the job ended
        } else if (rel.state === 'printing') {
          await this.engine.assumePrinted(this.target(rel), 'this site restarted while the printer had the job; counted as printed')
        }
      }
    }
  }

  /** Handles changed documents one at a time, in the background. */
  private drain (): void {
    if (this.draining !== undefined || !this.started) return
    this.draining = (async () => {
      while (this.dirty.size > 0 && this.started) {
        const [name] = this.dirty
        this.dirty.delete(name)
        await this.visit(name).catch((err: unknown) => this.log.error({ err, doc: name }, 'could not follow a changed document'))
      }
    })().finally(() => {
      this.draining = undefined
      // a document that changed after the loop's last check would otherwise wait for the next pass
      if (this.dirty.size > 0) this.drain()
    })
  }

  /** Follows releases of this peer's jobs recorded in another peer's document, and queues prefetches. */
  private async visit (name: DocName): Promise<void> {
    const parsed = parseDocName(name)
    if (parsed?.family === 'site') { this.queuePrefetches(); return }
    if (parsed?.family !== 'jobs' || parsed.peer === undefined || parsed.peer === this.init.peer) return
    const doc = this.c.store.get(name)
    if (doc === undefined) return
    const site = this.c.siteOf(parsed.peer) ?? UNKNOWN_SITE
    for (const rel of jobsFamily.listReleases(doc)) {
      if (rel.holder === this.init.peer) await this.c.jobs.followRelease(parsed.peer, site, rel)
    }
    this.reportUnsettled(parsed.peer) // the holder is back, or settled it meanwhile
    await this.returnOrphanedGrants(jobsFamily.listJobs(doc).filter((job) => job.pinned !== true).map((job) => ({ holder: parsed.peer as PeerId, job })))
    this.queuePrefetches(parsed.peer)
  }

  /** Shared mode: queue partners' held jobs whose documents are not here yet. */
  private queuePrefetches (onlyHolder?: string): void {
    if (this.settings().roaming.mode !== 'shared') return
    const partners = new Map<string, boolean>()
    for (const { holder, job } of this.remoteJobs()) {
      if (onlyHolder !== undefined && holder !== onlyHolder) continue
      if (job.state !== 'held' || job.sha256 === undefined || this.prefetched.has(job.sha256) || this.prefetching.has(job.sha256)) continue
      if (!this.holderFollows(holder, job)) continue // never printed offline here: no copy needed ahead
      let ok = partners.get(job.site)
      if (ok === undefined) partners.set(job.site, ok = this.roamsWith(job.site))
      if (ok) this.prefetchQueue.set(job.sha256, holder)
    }
    this.pumpPrefetch()
  }

  private pumpPrefetch (): void {
    while (this.started && this.prefetching.size < PREFETCH_CONCURRENCY && this.prefetchQueue.size > 0) {
      const [[sha, holder]] = this.prefetchQueue
      this.prefetchQueue.delete(sha)
      const work = (async () => {
        try {
          await this.c.link.fetch(holder, sha, await this.c.copies.prepare(sha), this.abort.signal)
          this.prefetched.add(sha)
          this.log.debug({ sha, holder }, 'prefetched a partner job')
        } catch (err) {
          // retried on the next pass; an unreachable holder is the normal case for this
          this.log.debug({ sha, holder, err: (err as Error).message }, 'prefetch failed')
        }
      })()
      this.prefetching.set(sha, work)
      this.background(work.finally(() => {
        this.prefetching.delete(sha)
        this.pumpPrefetch()
      }))
    }
  }

  /** Whether a copy of the document `sha256` is here. */
  async hasCopy (sha256: string): Promise<boolean> { return await this.c.copies.has(sha256) }

  private forgetCopy (sha: string): void {
    this.prefetched.delete(sha)
    this.c.copies.remove(sha).catch((err: unknown) => this.log.error({ err, sha }, 'could not remove a copy'))
  }

  /** The periodic pass: follow every document, queue prefetches, drop copies and old records nobody needs. */
  async tick (): Promise<void> {
    for (const name of this.c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family === 'jobs' && parsed.peer !== this.init.peer) this.dirty.add(name)
    }
    this.drain()
    await this.draining
    this.reportUnsettled()
    await this.returnOrphanedGrants([...this.remoteJobs()])
    this.queuePrefetches()
    const needed = new Set<string>()
    for (const { job } of this.remoteJobs()) if (job.sha256 !== undefined && FETCHABLE.has(job.state)) needed.add(job.sha256)
    const now = this.now()
    for (const [jobId, name] of this.releaseDocs) {
      const rel = this.releaseOf(jobId)
      if (rel === undefined) { this.releaseDocs.delete(jobId); continue }
      if (rel.state === 'printing' && rel.printerJobId !== undefined) this.askPrinterAbout(rel) // no final answer yet: ask again
      if (!jobsFamily.isFinalRelease(rel.state) && rel.job.sha256 !== undefined) needed.add(rel.job.sha256)
      if (jobsFamily.isFinalRelease(rel.state) && rel.updatedAt + RELEASE_RETENTION_MS <= now) {
        await this.c.store.transact(name, { kind: 'local', service: 'retention' }, (d) => jobsFamily.purgeRelease(d, jobId))
        this.releaseDocs.delete(jobId)
      }
    }
    for (const sha of this.prefetched) {
      if (!needed.has(sha) && !this.prefetching.has(sha)) this.forgetCopy(sha)
    }
  }

  private signal (ms: number): AbortSignal {
    return AbortSignal.any([this.abort.signal, AbortSignal.timeout(ms)])
  }

  private background (work: Promise<void>): void {
    const p = work.finally(() => this.inFlight.delete(p))
    this.inFlight.add(p)
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
  })
}

/** A granted release given up before any printer saw it. */
export class ReleaseAbandonedError extends Error {
  constructor (message: string) { super(message); this.name = 'ReleaseAbandonedError' }
}

function refusalError (error: RoamingRefusal, message: string, jobId: string): Error {
  switch (error) {
    case 'not-found': return new JobNotFoundError(jobId)
    case 'not-authorized': return new NotAuthorizedError(message)
    case 'not-partner': return new NotPartnerError(message)
    default: return new InvalidJobStateError(message)
  }
}

export function createRoamingService (init: RoamingInit, components: RoamingComponents): RoamingService {
  return new RoamingService(init, components)
}
