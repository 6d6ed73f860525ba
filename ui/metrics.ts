/**
 * A node's Prometheus metrics, kept with prom-client in a registry of the node's own (tests
 * run several nodes in one process): Node's default process, heap, GC and event-loop
 * metrics; histograms of IPP intake, release and sync latency; counters of HTTP answers and
 * of usage charged here, kept as things happen. A scrape reads counters and small tallies;
 * it walks no jobs and no usage records.
 *
 * The layers below report through plain callbacks ({@link NodeMetrics.ippAnswered},
 * {@link NodeMetrics.released}, {@link NodeMetrics.syncApplied}, {@link NodeMetrics.charged}),
 * so only this file knows prom-client.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { JobState } from '../devices/jobs/types.ts'
import type { MeshStatus } from './api.ts'

/** Every job state, so a state with no jobs reports 0 rather than vanishing. */
const JOB_STATES: readonly JobState[] = ['received', 'held', 'releasing', 'printing', 'printed', 'failed', 'deleted', 'expired']
/** IPP requests: most answer in milliseconds; a print job's upload and analysis takes seconds. */
const IPP_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Release to printed: a printer takes seconds to minutes (busy printers, long jobs). */
const RELEASE_BUCKETS_S = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900]
/** Applying one batch of peer envelopes: signature checks and a store write. */
const SYNC_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]

/** What was charged for one print or copy job. */
export interface ChargedUsage { pages: number, colorPages: number, sheets: number }

/** Where the gauges read their current values; each absent source leaves its families out. */
export interface MetricSources {
  /** Jobs by state, as a tally the job service keeps (not a walk of the jobs). */
  jobStates?: () => ReadonlyMap<JobState, number>
  mesh?: () => MeshStatus
  /** Central's product license (node/central-license.ts). */
  license?: () => LicenseMetrics
  /** Central's LDAP synchronisation (node/ldap-sync.ts). */
  ldap?: () => LdapSyncMetrics
}

/** Central's LDAP sync as its metrics read it: tallies the sync keeps. */
export interface LdapSyncMetrics {
  /** Syncs run since start (dry runs not counted), by result. */
  syncs: { ok: number, failed: number }
  /** When the last sync that succeeded ended (ms since the epoch). */
  lastSuccessAt?: number
  /** What the last sync that succeeded did: users added, changed, disabled, unchanged, left out (errors). */
  lastCounts?: Record<'added' | 'changed' | 'disabled' | 'unchanged' | 'errors', number>
}

/** Central's product license as its gauges read it. */
export interface LicenseMetrics {
  /** `unlicensed`, `valid`, `expiring`, `expired-in-grace`, `expired`. */
  state: string
  /** Seconds until expiry (negative once expired); absent without a license. */
  expirySeconds?: number
  /** The license's limits by kind (sites, terminals, clients, users); absent without a license. */
  limits?: Record<string, number>
  /** What is in use, by the same kinds. */
  usage: Record<string, number>
}

/** Every license state, so the state gauge always lists them all (1 for the current one). */
const LICENSE_STATES = ['unlicensed', 'valid', 'expiring', 'expired-in-grace', 'expired'] as const

export class NodeMetrics {
  readonly registry = new Registry()
  /** The content type of {@link render}'s text. */
  readonly contentType: string
  private readonly httpRequests: Counter<'status'>
  private readonly ippRequests: Histogram<'operation' | 'status'>
  private readonly intakeRefusals: Counter<'limit'>
  private readonly releases: Histogram<'outcome'>
  private readonly documentBytes: Counter
  private readonly syncBatches: Histogram
  private readonly usage: { jobs: Counter, pages: Counter, colorPages: Counter, sheets: Counter }
  private sources: MetricSources = {}
  private readonly loginFailures: Counter<'method'>
  private readonly loginRefusals: Counter<'limit'>
  private readonly loginSuccesses: Counter<'method'>
  /** The print service's families and the mesh's: registered once the node says it has them. */
  private readonly printFamilies: Metric[]
  private readonly meshFamilies: Metric[]
  private readonly licenseFamilies: Metric[]
  private readonly ldapFamilies: Metric[]
  /** A terminal's copy sessions (device counters): registered by {@link useCopies}. */
  private readonly copies: { started: Counter, ended: Counter<'outcome'>, pages: Counter<'color'> }
  private copiesUsed = false

  constructor () {
    this.contentType = this.registry.contentType
    collectDefaultMetrics({ register: this.registry })
    this.httpRequests = new Counter({ name: 'printmesh_http_requests_total', help: 'HTTP requests answered, by status code.', labelNames: ['status'], registers: [this.registry] })
    this.loginFailures = new Counter({ name: 'printmesh_login_failures_total', help: 'Failed logins, by method: pin (wrong username or PIN), card (unknown card), admin-token.', labelNames: ['method'], registers: [this.registry] })
    this.loginSuccesses = new Counter({ name: 'printmesh_logins_total', help: 'Users logged in (panel, web pages, IPP authentication), by method: pin, card (typed by a reader or posted by a reader daemon).', labelNames: ['method'], registers: [this.registry] })
    this.loginRefusals = new Counter({ name: 'printmesh_login_refused_total', help: 'Login attempts refused (429) by a rate limit, by limit: lockouts (pair, address, slow-mode, bearer).', labelNames: ['limit'], registers: [this.registry] })
    const registers: Registry[] = [] // registered by use()
    this.ippRequests = new Histogram({
      name: 'printmesh_ipp_request_duration_seconds',
      help: 'IPP requests, from the first byte read to the answer, by operation and status (intake latency).',
      labelNames: ['operation', 'status'],
      buckets: IPP_BUCKETS_S,
      registers
    })
    this.intakeRefusals = new Counter({
      name: 'printmesh_ipp_intake_refused_total',
      help: 'IPP requests refused by an intake limit, by limit (document-size, decompression-ratio, job-impressions, user-jobs, user-bytes, address-jobs, address-bytes, address-uploads).',
      labelNames: ['limit'],
      registers
    })
    this.releases = new Histogram({
      name: 'printmesh_release_duration_seconds',
      help: 'Releases, from the release to the printer\'s final word, by outcome (printed, failed, held again).',
      labelNames: ['outcome'],
      buckets: RELEASE_BUCKETS_S,
      registers
    })
    this.documentBytes = new Counter({
      name: 'printmesh_document_bytes_sent_total',
      help: 'Bytes of job documents this node sent to other peers (a release or prefetch elsewhere of a job it holds).',
      registers
    })
    this.syncBatches = new Histogram({
      name: 'printmesh_sync_apply_duration_seconds',
      help: 'Time to check and store one batch of updates received from a peer (sync latency on this node).',
      buckets: SYNC_BUCKETS_S,
      registers
    })
    this.usage = {
      jobs: new Counter({ name: 'printmesh_usage_jobs_total', help: 'Print and copy jobs charged by this node (its own accounting).', registers }),
      pages: new Counter({ name: 'printmesh_usage_pages_total', help: 'Pages charged by this node (its own accounting).', registers }),
      colorPages: new Counter({ name: 'printmesh_usage_color_pages_total', help: 'Colour pages charged by this node (its own accounting).', registers }),
      sheets: new Counter({ name: 'printmesh_usage_sheets_total', help: 'Sheets of paper charged by this node (its own accounting).', registers })
    }
    this.printFamilies = [this.ippRequests, this.intakeRefusals, this.releases, this.documentBytes, ...Object.values(this.usage), this.jobsGauge()]
    this.meshFamilies = [this.syncBatches, ...this.meshGauges()]
    this.licenseFamilies = this.licenseGauges()
    this.ldapFamilies = this.ldapMetrics()
    this.copies = {
      started: new Counter({ name: 'printmesh_copy_sessions_started_total', help: 'Copy sessions started at this terminal\'s panel (its device\'s counters read).', registers }),
      ended: new Counter({ name: 'printmesh_copy_sessions_ended_total', help: 'Copy sessions ended, by outcome: charged, nothing-copied, failed (counters unreadable at the end: nothing charged).', labelNames: ['outcome'], registers }),
      pages: new Counter({ name: 'printmesh_copy_pages_total', help: 'Pages copied and charged at this terminal, by colour (mono, color).', labelNames: ['color'], registers })
    }
  }

  /** This node runs copy sessions (a terminal with device counters): the copy families join the text. */
  useCopies (): void {
    if (this.copiesUsed) return
    this.copiesUsed = true
    for (const m of Object.values(this.copies) as Metric[]) this.registry.registerMetric(m)
  }

  /** A copy session started. */
  readonly copySessionStarted = (): void => { this.copies.started.inc() }
  /** A copy session ended (`charged`: with its pages). */
  readonly copySessionEnded = (outcome: string, charge?: { pages: number, colorPages: number }): void => {
    this.copies.ended.inc({ outcome })
    if (charge === undefined) return
    this.copies.pages.inc({ color: 'mono' }, charge.pages - charge.colorPages)
    this.copies.pages.inc({ color: 'color' }, charge.colorPages)
  }

  /**
   * Says what this node runs, and where the gauges read from: a node with jobs gets the print
   * families, one with a mesh the mesh and sync families; the others stay out of the text.
   */
  use (sources: MetricSources): void {
    if (sources.jobStates !== undefined && this.sources.jobStates === undefined) for (const m of this.printFamilies) this.registry.registerMetric(m)
    if (sources.mesh !== undefined && this.sources.mesh === undefined) for (const m of this.meshFamilies) this.registry.registerMetric(m)
    if (sources.license !== undefined && this.sources.license === undefined) for (const m of this.licenseFamilies) this.registry.registerMetric(m)
    if (sources.ldap !== undefined && this.sources.ldap === undefined) for (const m of this.ldapFamilies) this.registry.registerMetric(m)
    this.sources = { ...this.sources, ...sources }
  }

  private jobsGauge (): Metric {
    const metrics = this // prom-client calls collect() with the metric as `this`
    return new Gauge({
      name: 'printmesh_jobs',
      help: 'This site\'s own jobs, by state (other sites report theirs).',
      labelNames: ['state'],
      registers: [],
      collect () {
        const tally = metrics.sources.jobStates?.()
        if (tally === undefined) return
        for (const state of JOB_STATES) this.set({ state }, tally.get(state) ?? 0)
      }
    })
  }

  private meshGauges (): Metric[] {
    const metrics = this // prom-client calls collect() with the metric as `this`
    const registers: Registry[] = []
    const out: Metric[] = []
    out.push(new Gauge({
      name: 'printmesh_mesh_peers',
      help: 'Peers this node knows of, and how many of them are connected now.',
      labelNames: ['state'],
      registers,
      collect () {
        const status = metrics.sources.mesh?.()
        if (status === undefined) return
        this.set({ state: 'connected' }, status.peers.filter((p) => p.connected).length)
        this.set({ state: 'known' }, status.peers.length)
      }
    }))
    out.push(new Gauge({
      name: 'printmesh_mesh_documents',
      help: 'Replicated documents this node holds.',
      registers,
      collect () {
        const status = metrics.sources.mesh?.()
        if (status !== undefined) this.set(status.documents.length)
      }
    }))
    out.push(new Gauge({
      name: 'printmesh_sync_lag_documents',
      help: 'Documents in which this node is behind at least one connected peer.',
      registers,
      collect () {
        const status = metrics.sources.mesh?.()
        if (status === undefined) return
        const connected = new Set(status.peers.filter((p) => p.connected).map((p) => p.peer))
        this.set(status.documents.filter((d) => Object.entries(d.peers).some(([peer, state]) => state === 'behind' && connected.has(peer))).length)
      }
    }))
    // the sync engine counts as it goes; these read its counters (monotonic, so typed counter)
    const syncCounter = (name: string, help: string, read: (s: MeshStatus['stats']) => Array<[Record<string, string>, number]>): void => {
      out.push(new Counter({
        name,
        help,
        labelNames: ['direction', 'reason'],
        registers,
        collect () {
          const status = metrics.sources.mesh?.()
          if (status === undefined) return
          this.reset()
          for (const [labels, n] of read(status.stats)) this.inc(labels, n)
        }
      }))
    }
    syncCounter('printmesh_sync_envelopes_total', 'Sync envelopes received from and sent to peers.',
      (s) => [[{ direction: 'in' }, s.envelopesIn], [{ direction: 'out' }, s.envelopesOut]])
    syncCounter('printmesh_sync_bytes_total', 'Bytes of sync messages received from and sent to peers.',
      (s) => [[{ direction: 'in' }, s.bytesIn], [{ direction: 'out' }, s.bytesOut]])
    syncCounter('printmesh_sync_rejected_total', 'Incoming updates refused, by reason.',
      (s) => Object.entries(s.rejected).map(([reason, n]) => [{ reason }, n]))
    return out
  }

  private ldapMetrics (): Metric[] {
    const metrics = this // prom-client calls collect() with the metric as `this`
    const read = (): LdapSyncMetrics | undefined => metrics.sources.ldap?.()
    return [
      new Counter({
        name: 'printmesh_ldap_sync_total',
        help: 'LDAP syncs run since start (dry runs not counted), by result (ok, failed: nothing was changed).',
        labelNames: ['result'],
        registers: [],
        collect () {
          const syncs = read()?.syncs
          if (syncs === undefined) return
          this.reset()
          for (const [result, n] of Object.entries(syncs)) this.inc({ result }, n)
        }
      }),
      new Gauge({
        name: 'printmesh_ldap_sync_last_success_timestamp_seconds',
        help: 'When the last LDAP sync that succeeded ended (absent before the first one).',
        registers: [],
        collect () {
          const at = read()?.lastSuccessAt
          this.reset()
          if (at !== undefined) this.set(at / 1000)
        }
      }),
      new Gauge({
        name: 'printmesh_ldap_sync_last_users',
        help: 'Users the last LDAP sync that succeeded added, changed, disabled, left unchanged, or left out (errors), by change.',
        labelNames: ['change'],
        registers: [],
        collect () {
          this.reset()
          for (const [change, n] of Object.entries(read()?.lastCounts ?? {})) this.set({ change }, n)
        }
      })
    ]
  }

  private licenseGauges (): Metric[] {
    const metrics = this // prom-client calls collect() with the metric as `this`
    const read = (): LicenseMetrics | undefined => metrics.sources.license?.()
    return [
      new Gauge({
        name: 'printmesh_license_expiry_seconds',
        help: 'Seconds until the product license expires (negative once expired; absent without a license). Warnings start 30 days before; new enrolments stop 30 days after.',
        registers: [],
        collect () {
          const seconds = read()?.expirySeconds
          this.reset()
          if (seconds !== undefined) this.set(seconds)
        }
      }),
      new Gauge({
        name: 'printmesh_license_state',
        help: 'The product license\'s state: 1 for the current one (unlicensed evaluation, valid, expiring, expired-in-grace, expired).',
        labelNames: ['state'],
        registers: [],
        collect () {
          const state = read()?.state
          for (const s of LICENSE_STATES) this.set({ state: s }, s === state ? 1 : 0)
        }
      }),
      new Gauge({
        name: 'printmesh_license_limit',
        help: 'The product license\'s limits, by kind (sites, terminals, clients, users); absent without a license.',
        labelNames: ['kind'],
        registers: [],
        collect () {
          this.reset()
          for (const [kind, n] of Object.entries(read()?.limits ?? {})) this.set({ kind }, n)
        }
      }),
      new Gauge({
        name: 'printmesh_license_usage',
        help: 'What is in use against the product license, by kind: enrolled sites, terminals and clients; active users.',
        labelNames: ['kind'],
        registers: [],
        collect () {
          for (const [kind, n] of Object.entries(read()?.usage ?? {})) this.set({ kind }, n)
        }
      })
    ]
  }

  /** An HTTP answer was sent. */
  readonly httpAnswered = (status: number): void => { this.httpRequests.inc({ status: String(status) }) }
  /** A login failed (`pin`, `admin-token`). */
  readonly loginFailed = (method: string): void => { this.loginFailures.inc({ method }) }
  /** A user logged in (`pin`, `card`). */
  readonly loginSucceeded = (method: string): void => { this.loginSuccesses.inc({ method }) }
  /** A login attempt was refused by the limit named. */
  readonly loginRefused = (limit: string): void => { this.loginRefusals.inc({ limit }) }
  /** An IPP request was answered (`status` as its keyword) after `seconds`. */
  readonly ippAnswered = (operation: string, status: string, seconds: number): void => { this.ippRequests.observe({ operation, status }, seconds) }
  /** An IPP request was refused by the intake limit named (devices/jobs/intake-limits.ts). */
  readonly intakeRefused = (limit: string): void => { this.intakeRefusals.inc({ limit }) }
  /** A release ended (`printed`, `failed`, `held`) `seconds` after it was asked for. */
  readonly released = (outcome: string, seconds: number): void => { this.releases.observe({ outcome }, seconds) }
  /** `bytes` more of a job document went to another peer. */
  readonly documentBytesSent = (bytes: number): void => { this.documentBytes.inc(bytes) }
  /** A batch of peer envelopes was checked and stored in `seconds`. */
  readonly syncApplied = (seconds: number): void => { this.syncBatches.observe(seconds) }
  /** A job was charged on this node. */
  readonly charged = (u: ChargedUsage): void => {
    this.usage.jobs.inc()
    this.usage.pages.inc(u.pages)
    this.usage.colorPages.inc(u.colorPages)
    this.usage.sheets.inc(u.sheets)
  }

  /** Starts the usage counters from what this node's accounting already holds (once, at start: counters survive restarts). */
  readonly seedUsage = (stored: ChargedUsage & { jobs: number }): void => {
    this.usage.jobs.inc(stored.jobs)
    this.usage.pages.inc(stored.pages)
    this.usage.colorPages.inc(stored.colorPages)
    this.usage.sheets.inc(stored.sheets)
  }

  /** The Prometheus text exposition of every metric. */
  async render (): Promise<string> {
    return await this.registry.metrics()
  }
}
