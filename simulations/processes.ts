/**
 * The multi-process mode of the chaos simulator: real `printmesh` processes (one central,
 * `sites` sites) on loopback TCP, driven from outside exactly as operators and workstations
 * would drive them: IPP Print-Job for the workload, the admin JSON API for releases,
 * deletes, roaming settings and partitions (`PUT /api/mesh/blocked` on both sides), and
 * `kill -9` plus a restart on the same data folder for crashes.
 *
 * Ground truth comes from outside the processes: every job carries its own PDF (a distinct
 * sha256), every site releases to a `file://` printer (a folder), and what reached the
 * folders is counted by content. Invariants (DESIGN.md, "Jobs" 1–4), checked by
 * {@link Checker} with the same Violation record as the in-process mode:
 *   1. every job whose Print-Job got `successful-ok` exists on its holder after each restart
 *      of the holder and at the end (any state but `received` or failed as interrupted);
 *   2. no document reaches the printers twice (and none that no job sent);
 *   3. every printed job has exactly one usage record (by id, with its page count), and no
 *      job is charged that did not print — except one whose file printer was killed with its
 *      site in mid-write: recovery then counts it as printed, as it must for a real printer
 *      that keeps printing when the server dies (reported as "assumed printed");
 *   4. after the final heal, every node is connected to every other one, every document is
 *      `in-sync` with every peer (GET /api/mesh), no job is still releasing or printing, and
 *      every site lists the same jobs and the same usage records.
 *
 * The workload and fault choices come from a generator seeded with `seed`, but they also
 * depend on what the processes did in between (which jobs were held when a step looked),
 * and process timing is not under the harness's control: a seed does not replay a run
 * exactly. A violation names the seed, the step and the trace of events around it.
 */
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { PDFDocument, StandardFonts } from 'pdf-lib'
import { seededRandom } from '../transports/memory.ts'
import { findAttr, integerValue, statusName, Tag } from '../devices/ipp/wire.ts'
import { IppHttpStatusError } from '../devices/output/http-exchange.ts'
import { startCentral, startSite, type SiteProcess } from './node-process.ts'
import { until } from './wait.ts'
import { loopbackTarget, printJobRequest, sendPrintJob } from './bench/ipp-load.ts'
import { Checker, INVARIANTS, type InvariantId, type Violation } from './invariants.ts'

// ---- tunables (each with why) ------------------------------------------------------

/** A fault (a node down, a partition) lasts between 1 and this many steps: a fair share of a short run. */
const MAX_FAULT_STEPS = 8
/** Share of releases made at another site than the holder (roaming under the holder's grant). */
const RELEASE_ELSEWHERE_SHARE = 0.5
/** Users printing (u1 … uN), imported into central's directory. */
const USERS = 4
/** Pages per job document, at most: usage records must charge exactly these. */
const MAX_PAGES = 3
/** Highest IPP status that still means success (RFC 8011: 0x0000–0x00ff). */
const MAX_SUCCESS_STATUS = 0x00ff
/** An API call to a live loopback node answers well within this (a remote release waits for a grant: 10 s at most). */
const HTTP_TIMEOUT_MS = 20_000
/** A Print-Job of a few kB is acknowledged well within this, or counts as not acknowledged. */
const IPP_TIMEOUT_MS = 20_000
/** A release usually settles (printed, failed, back to held) within this; a slower one is left running. */
const SETTLE_TIMEOUT_MS = 15_000
/** Set-up (every site connected to the others and to central, roaming mutual) must finish within this. */
const SETUP_TIMEOUT_MS = 60_000
/** Default deadline for convergence after the final heal. */
const DEFAULT_HEAL_SECONDS = 60
/** Default real-time bound of a run. */
const DEFAULT_MAX_SECONDS = 600
/** Events kept in a violation's trace. */
const TRACE_EVENTS = 12
/** Job states in which a release is still under way. */
const IN_FLIGHT_STATES: ReadonlySet<string> = new Set(['releasing', 'printing'])

const ROOT = new URL('..', import.meta.url).pathname
const CLI = join(ROOT, 'node/cli.ts')
const run = promisify(execFile)

/** Fault kinds, in the order the summary lists them. */
export const PROCESS_FAULT_KINDS = ['kill', 'kill-after-ack', 'kill-mid-release', 'partition'] as const
export type ProcessFaultKind = typeof PROCESS_FAULT_KINDS[number]

/**
 * Deliberately broken runs. There is no switch in the product to plant a bug in a real
 * process, so the one injection is a fault outside the model instead: `lose-disk` wipes the
 * data folder of a site holding acknowledged jobs at the final heal, and the branch rejoins
 * with a fresh server under the same site id — its acknowledged jobs are really gone.
 */
export type ProcessInjection = 'lose-disk'
export const PROCESS_INJECTIONS: readonly ProcessInjection[] = ['lose-disk']

export interface ProcessSimOptions {
  seed: number
  /** Site processes besides the one central (at least 2). */
  sites: number
  steps: number
  faults: number
  /** Real-time bound of the whole run (default 600 s). */
  maxSeconds?: number
  /** Deadline for convergence after the final heal (default 60 s). */
  healSeconds?: number
  /** Parent of the run's temp folder (default the OS temp dir); the run's folder is removed at the end. */
  dataDir?: string
  inject?: ProcessInjection
  /** Called with each progress line (the CLI prints them to stderr). */
  progress?: (line: string) => void
  /** Ends the run early (checked between steps); processes and folders are still cleaned up. */
  signal?: AbortSignal
}

export interface ProcessSimSummary {
  mode: 'processes'
  seed: number
  peers: { central: number, sites: number }
  steps: number
  jobs: {
    sent: number
    acknowledged: number
    /** Distinct jobs found in a printer folder. */
    printed: number
    /** Charged, not in any folder: their file printer died with its site in mid-write (see the header). */
    assumedPrinted: number
    deleted: number
    failed: number
    expired: number
    held: number
  }
  releases: { attempted: number, granted: number, refused: number, /** Of the attempts, those made at another site than the holder. */ roaming: number }
  faults: Record<ProcessFaultKind, number>
  /** Processes started in all (first starts and restarts), and their pids (all ended by the time the run returns). */
  processes: { started: number, pids: number[] }
  convergence: { converged: boolean, realMs: number }
  invariants: Record<InvariantId, 'PASS' | 'FAIL'>
  violations: Violation[]
  /** The run's temp folder (removed when the run returns). */
  dataDir: string
  realMs: number
}

export class ProcessSimulationTimeoutError extends Error {
  constructor (seconds: number) { super(`process simulation exceeded its real-time bound of ${seconds} s`); this.name = 'ProcessSimulationTimeoutError' }
}

/** A node process could not be (re)started: the run cannot go on. */
export class NodeStartError extends Error {
  constructor (node: string, cause: unknown) {
    super(`${node} did not start: ${cause instanceof Error ? cause.message : String(cause)}`)
    this.name = 'NodeStartError'
  }
}

/** An admin API call answered with an unexpected HTTP status. */
export class NodeApiError extends Error {
  constructor (readonly node: string, readonly status: number, what: string, body: string) {
    super(`${node}: ${what} answered ${status}: ${body.slice(0, 300)}`)
    this.name = 'NodeApiError'
  }
}

/** Set-up never reached a connected mesh with mutual roaming. */
export class SetupIncompleteError extends Error {
  constructor (what: string) { super(`set-up incomplete: ${what}`); this.name = 'SetupIncompleteError' }
}

/** Runs one multi-process simulation; every process and temp folder is gone when it returns or throws. */
export async function simulateProcesses (opts: ProcessSimOptions): Promise<ProcessSimSummary> {
  const sim = new ProcessSimulation(opts)
  try {
    return await sim.run()
  } finally {
    await sim.teardown()
  }
}

// ---- model ---------------------------------------------------------------------------

interface SimNode {
  name: string
  role: 'central' | 'site'
  dir: string
  /** The site's file printer folder. */
  printerDir?: string
  /** libp2p port, kept across restarts so peers (and join strings' bootstrap lists) still find it. */
  p2pPort?: number
  /** libp2p peer id (stable across restarts; a new one after `lose-disk`). */
  peer: string
  /** Set while the process runs. */
  proc?: SiteProcess
  /** Set while a (re)start is under way; never rejects (failures land in `startError`). */
  starting?: Promise<void>
  /** Step at which a killed node is started again. */
  restartAt?: number
  /** Peers this node must refuse (the current partition). */
  blocked: string[]
}

interface SimJob {
  label: string
  /** The job-name sent, unique in the run. */
  name: string
  site: string
  owner: string
  pages: number
  sha256: string
  acked: boolean
  ippId?: number
  /** Mesh-wide id, once seen in a listing. */
  id?: string
  /** Last state seen on the holder. */
  state?: string
  reason?: string
  /** Site where a release is under way (granted, not yet seen settled). */
  releasingAt?: string
  /** Its releasing site was killed before the release was seen settled. */
  interrupted: boolean
}

interface SimEvent { step: number, at: number, node: string, kind: string, job?: string, detail?: string }

/** A job as GET /api/jobs lists it (the fields the harness reads). */
interface ListedJob { id: string, name: string, site: string, state: string, reason?: string, printedBy?: { site: string }, source?: { peer: string } }
interface ListedUsage { id: string, jobId: string, site: string, pages: number }
interface MeshView {
  peers: Array<{ peer: string, connected: boolean }>
  documents: Array<{ doc: string, peers: Record<string, string> }>
}

interface ActivePartition { until: number }

function siteName (i: number): string {
  // site-a, site-b, …, site-z, site-aa, …
  let s = ''
  let n = i
  do { s = String.fromCharCode(97 + (n % 26)) + s; n = Math.floor(n / 26) - 1 } while (n >= 0)
  return `site-${s}`
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

class ProcessSimulation {
  private readonly rng: () => number
  private readonly checker: Checker
  private readonly nodes: SimNode[] = []
  private readonly jobs: SimJob[] = []
  private readonly events: SimEvent[] = []
  private readonly faultCounts = Object.fromEntries(PROCESS_FAULT_KINDS.map((k) => [k, 0])) as Record<ProcessFaultKind, number>
  private readonly releases = { attempted: 0, granted: 0, refused: 0, roaming: 0 }
  private readonly pids: number[] = []
  /** Names of peers that no longer exist (a site's server replaced after `lose-disk`). */
  private readonly formerPeers = new Map<string, string>()
  private faultBag: ProcessFaultKind[] = []
  private partition?: ActivePartition
  private startError?: NodeStartError
  private root = ''
  private step = 0
  private started = 0
  private deadline = Infinity
  private requestId = 0
  private readonly t0 = Date.now()
  /** Set by the final checks. */
  private assumed = 0
  private printedJobs = 0

  constructor (private readonly opts: ProcessSimOptions) {
    if (!Number.isInteger(opts.sites) || opts.sites < 2) throw new RangeError('a process simulation needs at least 2 sites')
    if (!Number.isInteger(opts.steps) || opts.steps < 1) throw new RangeError('steps must be a positive integer')
    if (!Number.isInteger(opts.faults) || opts.faults < 0) throw new RangeError('faults must be a non-negative integer')
    this.rng = seededRandom(opts.seed)
    this.checker = new Checker(opts.seed, (job, peer) => this.trace(job, peer))
  }

  // ---- seeded choices ---------------------------------------------------------------

  private int (min: number, max: number): number { return min + Math.floor(this.rng() * (max - min + 1)) }
  private pick<T> (list: readonly T[]): T | undefined { return list.length === 0 ? undefined : list[Math.floor(this.rng() * list.length)] }

  /** Fault kinds come from a shuffled bag holding each kind once: every kind occurs once per round of faults. */
  private nextFaultKind (): ProcessFaultKind {
    if (this.faultBag.length === 0) {
      this.faultBag = [...PROCESS_FAULT_KINDS]
      for (let i = this.faultBag.length - 1; i > 0; i--) { const j = this.int(0, i); [this.faultBag[i], this.faultBag[j]] = [this.faultBag[j], this.faultBag[i]] }
    }
    return this.faultBag.pop() ?? 'kill'
  }

  // ---- events and traces --------------------------------------------------------------

  private event (node: string, kind: string, job?: string, detail?: string): void {
    this.events.push({ step: this.step, at: Date.now() - this.t0, node, kind, ...(job !== undefined ? { job } : {}), ...(detail !== undefined ? { detail } : {}) })
  }

  /** The last events touching a job, with kills and restarts of the sites it met while it lived; without a job, a node's events. */
  private trace (job?: string, node?: string): string[] {
    const format = (e: SimEvent): string => `step ${e.step} t+${(e.at / 1000).toFixed(1)}s ${e.node} ${e.kind}${e.job !== undefined ? ` ${e.job}` : ''}${e.detail !== undefined ? ` (${e.detail})` : ''}`
    if (job === undefined) return this.events.filter((e) => node !== undefined && e.node === node).slice(-TRACE_EVENTS).map(format)
    const born = this.events.findIndex((e) => e.job === job)
    const involved = new Set(this.events.filter((e) => e.job === job).map((e) => e.node))
    const hits = this.events.filter((e, i) => e.job === job || (e.job === undefined && i >= born && born >= 0 && (involved.has(e.node) || e.node === 'network')))
    return hits.slice(-TRACE_EVENTS).map(format)
  }

  // ---- processes ----------------------------------------------------------------------

  private node (name: string): SimNode {
    const n = this.nodes.find((x) => x.name === name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  private get central (): SimNode { return this.node('central') }
  private siteNodes (): SimNode[] { return this.nodes.filter((n) => n.role === 'site') }
  private upSites (): SimNode[] { return this.siteNodes().filter((n) => n.proc !== undefined) }
  private nameOf (peer: string): string { return this.nodes.find((n) => n.peer === peer)?.name ?? this.formerPeers.get(peer) ?? peer }

  private listenArgs (n: SimNode): string[] {
    return n.p2pPort === undefined ? [] : ['--listen', `/ip4/127.0.0.1/tcp/${n.p2pPort}`]
  }

  /**
   * Starts a node's process (first start with `join`, else a restart on its folder) and sets
   * its block list (which persists in the data folder) to what the current partition says.
   * The node counts as running only then, so no fault can strike it half started.
   */
  private async launch (n: SimNode, join?: string): Promise<void> {
    const args = this.listenArgs(n)
    const proc = n.role === 'central'
      ? await startCentral({ dataDir: n.dir, args })
      : await startSite({
        dataDir: n.dir,
        printers: [`mfp=file://${n.printerDir ?? ''}`],
        args: ['--site', n.name, '--hostname', `${n.name}.sim.test`, ...(join !== undefined ? ['--join', join] : []), ...args]
      })
    this.started++
    this.pids.push(proc.pid)
    try {
      // a partition may change while the list is on its way: send until the node has the current one
      for (let sent: string[] | undefined; sent !== n.blocked;) {
        sent = n.blocked
        await this.expectOk(proc, n.name, 'PUT', '/api/mesh/blocked', { peers: sent })
      }
    } catch (err) {
      await proc.stop()
      throw err
    }
    n.proc = proc
    n.peer = proc.peer
    if (n.p2pPort === undefined) {
      const port = Number(proc.listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))?.split('/')[4])
      if (Number.isInteger(port) && port > 0) n.p2pPort = port
    }
  }

  /** Starts a killed node in the background; the run goes on meanwhile. */
  private restartInBackground (n: SimNode): void {
    n.restartAt = undefined
    this.event(n.name, 'restarting')
    n.starting = (async () => {
      try {
        await this.launch(n)
        this.event(n.name, 'restarted')
        if (n.role === 'site') await this.checkHolder(n, 'after its restart')
      } catch (err) {
        this.startError ??= new NodeStartError(n.name, err)
      } finally {
        n.starting = undefined
      }
    })()
  }

  private async kill (n: SimNode, why: string): Promise<void> {
    const proc = n.proc
    if (proc === undefined) return
    n.proc = undefined
    await proc.kill('SIGKILL')
    n.restartAt = this.step + this.int(1, MAX_FAULT_STEPS)
    this.event(n.name, 'killed', undefined, why)
    for (const job of this.jobs) {
      if (job.releasingAt !== n.name) continue
      job.interrupted = true
      this.event(n.name, 'release-interrupted', job.label)
    }
  }

  /** Waits for background starts to finish (when nothing is up to work with). */
  private async awaitStarts (): Promise<void> {
    const pending = this.nodes.map((n) => n.starting).filter((p) => p !== undefined)
    if (pending.length > 0) await Promise.race(pending)
    this.throwIfStartFailed()
  }

  private throwIfStartFailed (): void {
    if (this.startError !== undefined) throw this.startError
  }

  // ---- HTTP and IPP -------------------------------------------------------------------

  /** An admin call; resolves with status and parsed body (never throws for HTTP statuses; throws when the node is unreachable). */
  private async call<T> (n: SimNode, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
    const proc = n.proc
    if (proc === undefined) throw new NodeApiError(n.name, 0, `${method} ${path}`, 'the node is down')
    return await this.callProc<T>(proc, method, path, body)
  }

  private async callProc<T> (proc: SiteProcess, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
    const res = await fetch(proc.httpUrl + path, {
      method,
      headers: { authorization: `Bearer ${proc.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS)
    })
    const text = await res.text()
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch { /* kept as text: an error page, reported by the caller */ }
    return { status: res.status, body: parsed as T }
  }

  /** An admin call that must succeed. */
  private async api<T> (n: SimNode, method: string, path: string, body?: unknown): Promise<T> {
    const proc = n.proc
    if (proc === undefined) throw new NodeApiError(n.name, 0, `${method} ${path}`, 'the node is down')
    return await this.expectOk<T>(proc, n.name, method, path, body)
  }

  private async expectOk<T> (proc: SiteProcess, name: string, method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.callProc<T>(proc, method, path, body)
    if (r.status < 200 || r.status > 299) throw new NodeApiError(name, r.status, `${method} ${path}`, JSON.stringify(r.body))
    return r.body
  }

  /** An admin GET that may fail (node down or killed meanwhile): undefined then. */
  private async tryGet<T> (n: SimNode, path: string): Promise<T | undefined> {
    try {
      const r = await this.call<T>(n, 'GET', path)
      return r.status === 200 ? r.body : undefined
    } catch {
      return undefined // no answer (killed meanwhile, or too slow): the caller treats it as not known
    }
  }

  /** Sends one Print-Job (held: job-hold-until indefinite); resolves with the IPP status and job-id. */
  private async printJob (proc: SiteProcess, job: SimJob, document: Buffer): Promise<{ status: number, ippId?: number }> {
    const request = printJobRequest(proc.ippUri, job.owner, job.name, ++this.requestId)
    try {
      const message = await sendPrintJob(loopbackTarget(proc.ippUri), request, document, IPP_TIMEOUT_MS)
      const ippId = integerValue(findAttr(message, Tag.jobAttributes, 'job-id'))
      return { status: message.code, ...(ippId !== undefined ? { ippId } : {}) }
    } catch (err) {
      if (err instanceof IppHttpStatusError) throw new NodeApiError(job.site, err.status, 'Print-Job', err.message)
      throw err
    }
  }

  /** A one-of-a-kind PDF for a job: its label and the seed are drawn on every page. */
  private async documentFor (label: string, pages: number): Promise<Buffer> {
    const doc = await PDFDocument.create()
    const fixed = new Date(Date.UTC(2026, 0, 1))
    doc.setCreationDate(fixed)
    doc.setModificationDate(fixed)
    const font = await doc.embedFont(StandardFonts.Helvetica)
    for (let i = 1; i <= pages; i++) {
      doc.addPage([595.28, 841.89]).drawText(`printmesh process simulation, seed ${this.opts.seed}, job ${label}, page ${i}`, { x: 72, y: 720, size: 14, font })
    }
    return Buffer.from(await doc.save({ useObjectStreams: false }))
  }

  // ---- observing ----------------------------------------------------------------------

  /** The jobs a site holds itself (not partners' replicated ones), or undefined when it cannot answer. */
  private async localJobs (n: SimNode): Promise<ListedJob[] | undefined> {
    const body = await this.tryGet<{ jobs: ListedJob[] }>(n, '/api/jobs?scope=all')
    return body?.jobs.filter((j) => j.source === undefined && j.site === n.name)
  }

  /** Refreshes what the harness knows of the jobs a site holds. */
  private async observe (n: SimNode): Promise<ListedJob[] | undefined> {
    const listed = await this.localJobs(n)
    if (listed === undefined) return undefined
    const byName = new Map(listed.map((j) => [j.name, j]))
    for (const job of this.jobs) {
      if (job.site !== n.name) continue
      const rec = byName.get(job.name)
      if (rec === undefined) continue
      job.id = rec.id
      job.state = rec.state
      job.reason = rec.reason
      if (!IN_FLIGHT_STATES.has(rec.state)) job.releasingAt = undefined
    }
    return listed
  }

  /** Invariant 1 on a holder: every acknowledged job it took is still there (and not failed as never received). */
  private async checkHolder (n: SimNode, when: string): Promise<void> {
    const listed = await this.localJobs(n)
    if (listed === undefined) return // killed again meanwhile: checked after its next restart or at the end
    const byName = new Map(listed.map((j) => [j.name, j]))
    for (const job of this.jobs) {
      if (!job.acked || job.site !== n.name) continue
      const rec = byName.get(job.name)
      if (rec === undefined) {
        this.checker.violation(1, this.step, `acknowledged job ${job.label} is missing on its holder ${n.name} ${when} (last seen ${job.state ?? 'never'})`, job.label, n.name)
      } else if (rec.state === 'received' || (rec.state === 'failed' && rec.reason === 'job-incoming-interrupted')) {
        this.checker.violation(1, this.step, `acknowledged job ${job.label} is ${rec.state}${rec.reason !== undefined ? ` (${rec.reason})` : ''} on ${n.name} ${when}`, job.label, n.name)
      } else {
        job.id = rec.id
        job.state = rec.state
        job.reason = rec.reason
      }
    }
  }

  // ---- set-up -------------------------------------------------------------------------

  private async setup (): Promise<void> {
    const parent = this.opts.dataDir ?? tmpdir()
    this.root = await mkdtemp(join(parent, `printmesh-simproc-${this.opts.seed}-`))
    const centralDir = join(this.root, 'central')
    await mkdir(centralDir)
    this.nodes.push({ name: 'central', role: 'central', dir: centralDir, peer: '', blocked: [] })
    for (let i = 0; i < this.opts.sites; i++) {
      const name = siteName(i)
      const dir = join(this.root, name)
      const printerDir = join(this.root, 'printers', name)
      await mkdir(dir)
      await mkdir(printerDir, { recursive: true })
      this.nodes.push({ name, role: 'site', dir, printerDir, peer: '', blocked: [] })
    }
    // users come from central's directory, imported before its first start
    const csv = join(this.root, 'users.csv')
    await writeFile(csv, Array.from({ length: USERS }, (_, i) => `u${i + 1},User ${i + 1},${1000 + i + 1}`).join('\n') + '\n')
    await run(process.execPath, ['--import', 'tsx', CLI, 'users', 'import', csv, '--data', centralDir], { cwd: ROOT })
    await rm(csv)
    const central = this.central
    await this.launch(central)
    this.event('central', 'started')
    const joins = await Promise.all(this.siteNodes().map(async (n) =>
      (await this.api<{ joinString: string }>(central, 'POST', '/api/mesh/tokens', { role: 'site', site: n.name })).joinString))
    const results = await Promise.allSettled(this.siteNodes().map(async (n, i) => { await this.launch(n, joins[i]); this.event(n.name, 'started') }))
    const failed = results.findIndex((r) => r.status === 'rejected')
    if (failed >= 0) throw new NodeStartError(this.siteNodes()[failed].name, (results[failed] as PromiseRejectedResult).reason)
    for (const n of this.siteNodes()) await this.setRoaming(n)
    await this.waitFor(async () => await this.connectivityGap() === undefined && await this.roamingGap() === undefined, SETUP_TIMEOUT_MS,
      async () => new SetupIncompleteError(await this.connectivityGap() ?? await this.roamingGap() ?? 'unknown'))
    this.opts.progress?.(`set-up done: central and ${this.opts.sites} sites connected, roaming mutual (${Date.now() - this.t0} ms)`)
  }

  /** Every site roams with every other, each listing partners' jobs apart (separate mode). */
  private async setRoaming (n: SimNode): Promise<void> {
    await this.api(n, 'PUT', '/api/roaming', { partners: this.siteNodes().filter((m) => m !== n).map((m) => m.name), mode: 'separate' })
  }

  /** Polls `check` until it holds; on the deadline throws what `failure` makes. */
  private async waitFor (check: () => Promise<boolean>, timeoutMs: number, failure: () => Promise<Error>): Promise<void> {
    try {
      await until(check, timeoutMs)
    } catch {
      throw await failure() // `until` only throws for its deadline: checks here never throw
    }
  }

  /** What keeps the running nodes from being fully connected, or undefined. */
  private async connectivityGap (): Promise<string | undefined> {
    const up = this.nodes.filter((n) => n.proc !== undefined)
    for (const n of up) {
      const view = await this.tryGet<MeshView>(n, '/api/mesh')
      if (view === undefined) return `${n.name} does not answer /api/mesh`
      for (const m of up) {
        if (m !== n && !view.peers.some((p) => p.peer === m.peer && p.connected)) return `${n.name} is not connected to ${m.name}`
      }
    }
    return undefined
  }

  private async roamingGap (): Promise<string | undefined> {
    for (const n of this.upSites()) {
      const view = await this.tryGet<{ partners: Array<{ site: string, mutual: boolean }> }>(n, '/api/roaming')
      const lacking = view === undefined ? 'all' : view.partners.filter((p) => !p.mutual).map((p) => p.site).join(', ')
      if (lacking !== '') return `${n.name} does not roam mutually with ${lacking}`
    }
    return undefined
  }

  // ---- the run ------------------------------------------------------------------------

  async run (): Promise<ProcessSimSummary> {
    const started = Date.now()
    const maxSeconds = this.opts.maxSeconds ?? DEFAULT_MAX_SECONDS
    this.deadline = started + maxSeconds * 1000
    this.opts.signal?.throwIfAborted()
    await this.setup()
    let faultsLeft = this.opts.faults
    for (this.step = 1; this.step <= this.opts.steps; this.step++) {
      if (Date.now() > this.deadline) throw new ProcessSimulationTimeoutError(maxSeconds)
      this.opts.signal?.throwIfAborted()
      this.throwIfStartFailed()
      await this.liftExpired()
      if (this.upSites().length === 0) await this.awaitStarts()
      const stepsLeft = this.opts.steps - this.step + 1
      if (faultsLeft > 0 && this.rng() < faultsLeft / stepsLeft) {
        faultsLeft--
        await this.fault()
      } else {
        await this.workload()
      }
      if (this.step % 10 === 0) this.opts.progress?.(`step ${this.step}/${this.opts.steps}: ${this.jobs.length} jobs, ${this.checker.violations.length} violations`)
    }
    this.step = this.opts.steps + 1
    this.opts.signal?.throwIfAborted()
    const convergence = await this.finalHeal()
    await this.finalChecks(convergence.converged, convergence.gap)
    return this.summary({ converged: convergence.converged, realMs: convergence.realMs }, Date.now() - started)
  }

  private async liftExpired (): Promise<void> {
    for (const n of this.nodes) {
      if (n.proc === undefined && n.starting === undefined && n.restartAt !== undefined && n.restartAt <= this.step) this.restartInBackground(n)
    }
    if (this.partition !== undefined && this.partition.until <= this.step) await this.heal()
  }

  // ---- workload -----------------------------------------------------------------------

  private async workload (): Promise<void> {
    const roll = this.rng()
    if (roll < 0.45) await this.print()
    else if (roll < 0.8) await this.release()
    else if (roll < 0.9) await this.remove()
    else {
      const site = this.pick(this.upSites())
      if (site !== undefined) await this.observe(site)
    }
  }

  /** A user prints a held job at a running site; with `killOnAck`, the site is killed the moment it acknowledges. */
  private async print (killOnAck = false): Promise<SimJob | undefined> {
    const site = this.pick(this.upSites())
    const proc = site?.proc
    if (site === undefined || proc === undefined) return undefined
    const label = `j${this.jobs.length + 1}`
    const pages = this.int(1, MAX_PAGES)
    const owner = `u${this.int(1, USERS)}`
    const document = await this.documentFor(label, pages)
    const job: SimJob = { label, name: `sim${this.opts.seed}-${label}`, site: site.name, owner, pages, sha256: sha256(document), acked: false, interrupted: false }
    this.jobs.push(job)
    this.event(site.name, 'print-sent', label, `${owner}, ${pages} pages`)
    try {
      const { status, ippId } = await this.printJob(proc, job, document)
      if (killOnAck) await this.kill(site, `right after answering Print-Job of ${label}`)
      if (status > MAX_SUCCESS_STATUS) { this.event(site.name, 'print-refused', label, statusName(status)); return job }
      job.acked = true
      if (ippId !== undefined) job.ippId = ippId
      job.state = 'held'
      this.event(site.name, 'acknowledged', label, `job-id ${ippId ?? '?'}`)
    } catch (err) {
      this.event(site.name, 'print-failed', label, (err as Error).message)
      if (killOnAck) await this.kill(site, `after Print-Job of ${label} failed`)
    }
    return job
  }

  /** Acknowledged jobs last seen held whose holder runs. */
  private heldJobs (): SimJob[] {
    return this.jobs.filter((j) => j.acked && j.state === 'held' && this.node(j.site).proc !== undefined)
  }

  /** Picks a held job and confirms on its holder that it still is (and learns its id). */
  private async pickHeld (): Promise<SimJob | undefined> {
    const job = this.pick(this.heldJobs())
    if (job === undefined) return undefined
    await this.observe(this.node(job.site))
    return job.state === 'held' && job.id !== undefined ? job : undefined
  }

  /** Releases a held job at its holder or, half the time, at another running site; with `killAfter`, that site is killed once it answers. */
  private async release (killAfter = false): Promise<boolean> {
    const job = await this.pickHeld()
    if (job === undefined) return false
    const holder = this.node(job.site)
    const elsewhere = this.rng() < RELEASE_ELSEWHERE_SHARE ? this.pick(this.upSites().filter((s) => s !== holder)) : undefined
    const at = elsewhere ?? holder
    this.releases.attempted++
    if (at !== holder) this.releases.roaming++
    let granted = false
    try {
      const r = await this.call<{ error?: string }>(at, 'POST', `/api/jobs/${job.id ?? ''}/release`, {})
      granted = r.status === 200
      if (granted) {
        this.releases.granted++
        job.releasingAt = at.name
        this.event(at.name, 'released', job.label, at === holder ? 'at its holder' : `held by ${holder.name}`)
      } else {
        this.releases.refused++
        this.event(at.name, 'release-refused', job.label, `${r.status} ${typeof r.body === 'object' ? r.body.error ?? '' : String(r.body)}`)
      }
    } catch (err) {
      this.releases.refused++
      this.event(at.name, 'release-failed', job.label, (err as Error).message)
    }
    if (killAfter) { await this.kill(at, `right after releasing ${job.label}`); return true }
    if (granted) await this.settle(job)
    return true
  }

  /** Waits (with a deadline) until the holder shows the release settled: printed, failed or held again. */
  private async settle (job: SimJob): Promise<void> {
    const holder = this.node(job.site)
    try {
      await until(async () => {
        await this.observe(holder)
        return job.state !== undefined && !IN_FLIGHT_STATES.has(job.state)
      }, SETTLE_TIMEOUT_MS)
      job.releasingAt = undefined
      this.event(holder.name, 'settled', job.label, job.state)
    } catch {
      this.event(holder.name, 'release-unsettled', job.label, `still ${job.state ?? '?'} after ${SETTLE_TIMEOUT_MS} ms`) // `until` throws only for its deadline
    }
  }

  private async remove (): Promise<void> {
    const job = await this.pickHeld()
    if (job === undefined) return
    const holder = this.node(job.site)
    try {
      const r = await this.call<{ error?: string }>(holder, 'DELETE', `/api/jobs/${job.id ?? ''}`)
      if (r.status === 200) { job.state = 'deleted'; this.event(holder.name, 'deleted', job.label) } else this.event(holder.name, 'delete-refused', job.label, String(r.status))
    } catch (err) {
      this.event(holder.name, 'delete-failed', job.label, (err as Error).message)
    }
  }

  // ---- faults -------------------------------------------------------------------------

  private async fault (): Promise<void> {
    let kind = this.nextFaultKind()
    if (kind === 'kill-mid-release' && this.heldJobs().length === 0) kind = 'kill-after-ack'
    if ((kind === 'kill-after-ack' || kind === 'kill-mid-release') && this.upSites().length === 0) kind = 'kill'
    switch (kind) {
      case 'kill': {
        const victim = this.pick(this.nodes.filter((n) => n.proc !== undefined))
        if (victim === undefined) return
        this.faultCounts.kill++
        await this.kill(victim, 'kill -9')
        return
      }
      case 'kill-after-ack':
        this.faultCounts[kind]++
        await this.print(true)
        return
      case 'kill-mid-release':
        if (await this.release(true)) { this.faultCounts[kind]++; return }
        // no job was still held: strike while a print comes in instead
        this.faultCounts['kill-after-ack']++
        await this.print(true)
        return
      case 'partition': {
        this.faultCounts.partition++
        if (this.partition !== undefined) await this.heal()
        const all = [...this.nodes]
        for (let i = all.length - 1; i > 0; i--) { const j = this.int(0, i); [all[i], all[j]] = [all[j], all[i]] }
        const cut = this.int(1, Math.max(1, Math.floor(all.length / 2)))
        const a = all.slice(0, cut)
        const b = all.slice(cut)
        for (const n of a) n.blocked = b.map((m) => m.peer)
        for (const n of b) n.blocked = a.map((m) => m.peer)
        this.partition = { until: this.step + this.int(1, MAX_FAULT_STEPS) }
        this.event('network', 'partition', undefined, `${a.map((n) => n.name).join(',')} | ${b.map((n) => n.name).join(',')}`)
        await this.applyBlocked()
      }
    }
  }

  /** Lifts the partition on every running node (the others clear theirs when they start). */
  private async heal (): Promise<void> {
    for (const n of this.nodes) n.blocked = []
    this.partition = undefined
    this.event('network', 'heal')
    await this.applyBlocked()
  }

  /** Sends every running node its block list; a node killed meanwhile gets it when it starts. */
  private async applyBlocked (): Promise<void> {
    await Promise.all(this.nodes.filter((n) => n.proc !== undefined).map(async (n) => {
      try {
        await this.api(n, 'PUT', '/api/mesh/blocked', { peers: n.blocked })
      } catch (err) {
        if (n.proc !== undefined) throw err
      }
    }))
  }

  // ---- final heal and checks ---------------------------------------------------------

  /** Lifts the partition, starts every node that is down, and waits for convergence. */
  private async finalHeal (): Promise<{ converged: boolean, realMs: number, gap?: string }> {
    for (const n of this.nodes) n.blocked = []
    this.partition = undefined
    await Promise.all(this.nodes.map(async (n) => await n.starting))
    this.throwIfStartFailed()
    await Promise.all(this.nodes.filter((n) => n.proc === undefined).map(async (n) => {
      n.restartAt = undefined
      try {
        await this.launch(n)
      } catch (err) {
        throw new NodeStartError(n.name, err)
      }
      this.event(n.name, 'restarted')
    }))
    await this.applyBlocked()
    this.event('network', 'final-heal')
    if (this.opts.inject === 'lose-disk') await this.loseDisk()
    const healed = Date.now()
    let gap: string | undefined = 'not checked yet'
    try {
      await until(async () => { gap = await this.convergenceGap(); return gap === undefined }, (this.opts.healSeconds ?? DEFAULT_HEAL_SECONDS) * 1000)
    } catch {
      // the deadline passed: reported as a violation of invariant 4 with the last gap seen
    }
    const realMs = Date.now() - healed
    this.event('network', gap === undefined ? 'converged' : 'not-converged', undefined, gap ?? `${realMs} ms`)
    this.opts.progress?.(gap === undefined ? `converged ${realMs} ms after the final heal` : `NOT converged after ${realMs} ms: ${gap}`)
    return { converged: gap === undefined, realMs, ...(gap !== undefined ? { gap } : {}) }
  }

  /**
   * Injected fault (`lose-disk`): a site holding acknowledged jobs loses its disk; a fresh
   * server rejoins as the same site (new token from central, new peer id, same printer).
   */
  private async loseDisk (): Promise<void> {
    // a site holding a job still waiting for release if there is one: its loss is beyond doubt
    const holding = (held: boolean): SimNode[] => this.siteNodes().filter((n) => this.jobs.some((j) => j.acked && j.site === n.name && (!held || j.state === 'held')))
    const victim = this.pick(holding(true)) ?? this.pick(holding(false))
    if (victim === undefined) return
    const join = (await this.api<{ joinString: string }>(this.central, 'POST', '/api/mesh/tokens', { role: 'site', site: victim.name })).joinString
    const proc = victim.proc
    victim.proc = undefined
    await proc?.kill('SIGKILL')
    this.formerPeers.set(victim.peer, `${victim.name} (before losing its disk)`)
    await rm(victim.dir, { recursive: true, force: true })
    await mkdir(victim.dir)
    victim.p2pPort = undefined
    this.event(victim.name, 'injected-disk-loss', undefined, `holds ${this.jobs.filter((j) => j.acked && j.site === victim.name).map((j) => j.label).join(', ')}`)
    await this.launch(victim, join)
    await this.setRoaming(victim)
    for (const n of this.upSites()) if (n !== victim) await this.setRoaming(n)
    this.event(victim.name, 'rejoined', undefined, 'a fresh server with the same site id')
  }

  /** What still differs between the running nodes, or undefined when they agree (invariant 4). */
  private async convergenceGap (): Promise<string | undefined> {
    const connectivity = await this.connectivityGap()
    if (connectivity !== undefined) return connectivity
    for (const n of this.nodes) {
      const view = await this.tryGet<MeshView>(n, '/api/mesh')
      if (view === undefined) return `${n.name} does not answer /api/mesh`
      for (const d of view.documents) {
        for (const [peer, state] of Object.entries(d.peers)) {
          if (state !== 'in-sync') return `${n.name} is ${state} of ${this.nameOf(peer)} on ${this.pretty(d.doc)}`
        }
      }
    }
    let reference: { site: string, jobs: string, usage: string } | undefined
    for (const n of this.siteNodes()) {
      const jobs = await this.tryGet<{ jobs: ListedJob[] }>(n, '/api/jobs?scope=all')
      const usage = await this.tryGet<{ records: ListedUsage[] }>(n, '/api/usage/records')
      if (jobs === undefined || usage === undefined) return `${n.name} does not answer /api/jobs or /api/usage/records`
      const moving = jobs.jobs.find((j) => j.source === undefined && IN_FLIGHT_STATES.has(j.state))
      if (moving !== undefined) return `${this.labelOf(moving.name)} is still ${moving.state} at ${n.name}`
      const mine = {
        site: n.name,
        jobs: jobs.jobs.map((j) => `${j.id}|${j.site}|${j.state}|${j.printedBy?.site ?? ''}`).sort().join('\n'),
        usage: usage.records.map((r) => `${r.id}|${r.site}|${r.pages}`).sort().join('\n')
      }
      reference ??= mine
      if (mine.jobs !== reference.jobs) return `${n.name} and ${reference.site} list different jobs`
      if (mine.usage !== reference.usage) return `${n.name} and ${reference.site} list different usage records`
    }
    return undefined
  }

  private labelOf (jobName: string): string {
    return this.jobs.find((j) => j.name === jobName)?.label ?? jobName
  }

  /** A document name with peer ids replaced by node names. */
  private pretty (doc: string): string {
    let out = doc
    for (const n of this.nodes) if (n.peer !== '') out = out.replaceAll(n.peer, n.name)
    for (const [peer, name] of this.formerPeers) out = out.replaceAll(peer, name)
    return out
  }

  /** Every document in every printer folder, by sha256, with where it was found. */
  private async printed (): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    for (const n of this.siteNodes()) {
      const dir = n.printerDir ?? ''
      for (const f of await readdir(dir)) {
        // hidden `.partial` files are writes a kill interrupted; `.json` files are sidecars
        if (f.startsWith('.') || f.endsWith('.json')) continue
        const sha = sha256(await readFile(join(dir, f)))
        out.set(sha, [...(out.get(sha) ?? []), `${n.name}/${f}`])
      }
    }
    return out
  }

  private async finalChecks (converged: boolean, gap?: string): Promise<void> {
    // 4: identical documents
    if (!converged) this.checker.violation(4, this.step, `no convergence within ${this.opts.healSeconds ?? DEFAULT_HEAL_SECONDS} s of the final heal: ${gap ?? '?'}`, undefined, 'network')
    // 1: every acknowledged job on its holder
    for (const n of this.upSites()) await this.checkHolder(n, 'at the end')
    // every job's id and final state, from any site's listing (holders' own first)
    const listed = new Map<string, ListedJob>()
    for (const n of this.siteNodes()) {
      for (const j of (await this.tryGet<{ jobs: ListedJob[] }>(n, '/api/jobs?scope=all'))?.jobs ?? []) {
        if (!listed.has(j.name) || j.source === undefined) listed.set(j.name, j)
      }
    }
    for (const job of this.jobs) {
      const rec = listed.get(job.name)
      if (rec !== undefined) { job.id ??= rec.id; if (rec.site === job.site) { job.state = rec.state; job.reason = rec.reason } }
    }
    // 2: at most one print per job, from what reached the printer folders
    const prints = await this.printed()
    const bySha = new Map(this.jobs.map((j) => [j.sha256, j]))
    for (const [sha, where] of prints) {
      const job = bySha.get(sha)
      if (job === undefined) this.checker.violation(2, this.step, `a document no job of this run sent came out of ${where.join(', ')}`)
      else if (where.length > 1) this.checker.violation(2, this.step, `job ${job.label} came out of a printer ${where.length} times: ${where.join(', ')}`, job.label)
    }
    // 3: one usage record per printed job (by id, with its pages), none for a job that did not print
    const usage = new Map<string, ListedUsage[]>()
    for (const n of this.siteNodes()) {
      const counts = new Map<string, ListedUsage[]>()
      for (const r of (await this.tryGet<{ records: ListedUsage[] }>(n, '/api/usage/records'))?.records ?? []) counts.set(r.id, [...(counts.get(r.id) ?? []), r])
      for (const [id, rs] of counts) if (rs.length > (usage.get(id)?.length ?? 0)) usage.set(id, rs)
    }
    const byId = new Map(this.jobs.filter((j) => j.id !== undefined).map((j) => [j.id ?? '', j]))
    for (const job of this.jobs) {
      const times = prints.get(job.sha256)?.length ?? 0
      const charged = job.id === undefined ? [] : usage.get(`${job.id}/print`) ?? []
      if (times > 0 && charged.length !== 1) {
        this.checker.violation(3, this.step, `job ${job.label} was printed but charged ${charged.length} times`, job.label)
      } else if (times === 0 && charged.length > 0 && !(charged.length === 1 && job.interrupted)) {
        this.checker.violation(3, this.step, `job ${job.label} was charged ${charged.length} times (${charged.map((r) => r.site).join(', ')}) but never reached a printer`, job.label)
      }
      for (const r of charged) {
        if (r.pages !== job.pages) this.checker.violation(3, this.step, `job ${job.label} has ${job.pages} pages but was charged ${r.pages} at ${r.site}`, job.label)
      }
    }
    for (const [id, rs] of usage) {
      if (!byId.has(rs[0].jobId)) this.checker.violation(3, this.step, `usage record ${id} (at ${rs[0].site}) charges no job of this run`)
    }
    this.assumed = this.jobs.filter((j) => j.interrupted && (prints.get(j.sha256)?.length ?? 0) === 0 && j.id !== undefined && (usage.get(`${j.id}/print`)?.length ?? 0) === 1).length
    this.printedJobs = this.jobs.filter((j) => prints.has(j.sha256)).length
  }

  private summary (convergence: ProcessSimSummary['convergence'], realMs: number): ProcessSimSummary {
    const count = (state: string): number => this.jobs.filter((j) => j.acked && j.state === state).length
    return {
      mode: 'processes',
      seed: this.opts.seed,
      peers: { central: 1, sites: this.opts.sites },
      steps: this.opts.steps,
      jobs: {
        sent: this.jobs.length,
        acknowledged: this.jobs.filter((j) => j.acked).length,
        printed: this.printedJobs,
        assumedPrinted: this.assumed,
        deleted: count('deleted'),
        failed: count('failed'),
        expired: count('expired'),
        held: count('held')
      },
      releases: { ...this.releases },
      faults: { ...this.faultCounts },
      processes: { started: this.started, pids: [...this.pids] },
      convergence,
      invariants: Object.fromEntries(INVARIANTS.filter((i) => i.id <= 4).map((i) => [i.id, this.checker.violations.some((v) => v.invariant === i.id) ? 'FAIL' : 'PASS'])) as Record<InvariantId, 'PASS' | 'FAIL'>,
      violations: this.checker.violations,
      dataDir: this.root,
      realMs
    }
  }

  /** Ends every process the run started (by pid, through its handle) and removes the run's folder. */
  async teardown (): Promise<void> {
    await Promise.allSettled(this.nodes.map(async (n) => await n.starting))
    await Promise.allSettled(this.nodes.map(async (n) => {
      const proc = n.proc
      n.proc = undefined
      await proc?.stop()
    }))
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}
