/**
 * The in-process chaos simulator. One central, sites and terminals over a
 * {@link MemoryNetwork}, each with real level persistence in its own folder, a real Ed25519
 * identity and certificate from the central, a DocStore, Membership and SyncEngine; every
 * site also runs a real {@link JobService} with a spool and a {@link LedgerDevice}; with
 * `clients`, workstations' clients hold the jobs printed at them (client spooling) and run
 * node/fallback.ts's fallback printing to a printer of their own.
 *
 * A run is a sequence of steps. Each step is either a workload action (print, release,
 * delete, retention sweep) or a fault (crash, partition, message loss / duplication /
 * reordering / delay, clock skew), chosen by a generator seeded with `seed`; then virtual
 * time moves on, with message deliveries, printer completions and anti-entropy rounds run
 * one at a time on the {@link VirtualClock}, each allowed to finish ({@link settle}) before
 * the next. After the last step every fault is lifted and the mesh must converge.
 *
 * Invariants (DESIGN.md, "Jobs" 1–4), checked by {@link Checker}:
 *   1. every job whose addDocument resolved exists on its holder after every restart, and in
 *      every replica after convergence (unless retention purged it);
 *   2. no printer accepts a job twice (checked at the instant of acceptance);
 *   3. usage records, de-duplicated by id, match exactly the jobs a printer completed;
 *   4. after the final heal every peer holds identical documents.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { RELEASE_MODE_QUEUES } from '../devices/jobs/release-modes.ts'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { PDFDocument, StandardFonts, rgb } from 'pdf-lib'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { recordCertificate, type Certificate, type Role } from '../crdt/license.ts'
import { putUser } from '../crdt/directory.ts'
import { directoryDoc, licenseDoc, jobsDoc, periodOf, parseDocName, siteId as toSiteId, type DocName, type PeerId, type SiteId } from '../crdt/names.ts'
import { getRelease, listJobs, purgeJob, TERMINAL_STATES, type JobRecord, type RemoteRelease } from '../crdt/jobs.ts'
import { listUsage, totalUsageBy, type UsageRecord } from '../crdt/accounting.ts'
import { MemoryNetwork, seededRandom, type LinkFaults } from '../transports/memory.ts'
import { signerFor, verifyPeerSignature } from '../transports/identity.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import { releaseServices, type AnalyzerService } from '../node/release.ts'
import { inProcessServices, IN_PROCESS_CORE, type ServiceRegistry } from '../node/roles.ts'
import { serviceFactory } from '../node/compose.ts'
import { FallbackPrinting } from '../node/fallback.ts'
import type { CreditService } from '../node/credit.ts'
import type { MemoryTransport } from '../transports/memory.ts'
import type { Membership } from '../crdt/membership.ts'
import type { DocStore } from '../crdt/store.ts'
import { MemoryRoamingHub } from './roaming-link.ts'
import { Spool } from '../devices/spool.ts'
import { parseDocument, type DocumentInfo } from '../devices/documents/index.ts'
import type { Signer, Verifier } from '../crdt/envelope.ts'
import { startMeshPeer, issuePeerCertificate, type MeshPeer } from './mesh.ts'
import { VirtualClock, AsyncTracker, settle, SimulationStalledError } from './scheduler.ts'
import { CrashablePersistence, trackSigner, trackSpool, trackVerifier, type FailingWrites, type SlowWrites } from './instrument.ts'
import { LedgerDevice, PrintLedger } from './device.ts'
import { Checker, type Violation, type InvariantId, INVARIANTS } from './invariants.ts'
import { CreditSim, type CreditStats } from './credit-sim.ts'
import { PanelSim, type PanelStats } from './panel-sim.ts'
import { storeDigest } from './digest.ts'

// ---- tunables (each with why) ------------------------------------------------------

/** Virtual start: 30 November 20:00 UTC, so runs cross a monthly partition boundary. */
const START_TIME = Date.UTC(2026, 10, 30, 20, 0, 0)
/** Virtual time a step lasts, uniform in [0, max]: about two minutes on average. */
const STEP_MAX_MS = 240_000
/** Anti-entropy and redial period (virtual): what a real node's timers would do. */
const ANTI_ENTROPY_MS = 300_000
/** One-way message latency range (virtual ms) on every link: all delivery goes through the clock. */
const BASE_LATENCY: [number, number] = [1, 20]
/** Latency range of a "delay" fault. */
const DELAY_FAULT_LATENCY: [number, number] = [500, 60_000]
/** Loss rate of a "loss" fault. */
const LOSS_FAULT_RATE = 0.5
/** Duplication rate of a "duplicate" fault. */
const DUPLICATE_FAULT_RATE = 0.5
/** An `io-error` fault: each write of its peer fails with this chance, ... */
const IO_ERROR_RATE = 0.25
/** ... at most this many writes in all (a few in its window, drawn from 1 to this). */
const MAX_IO_ERRORS = 4
/** How long (virtual ms) a write of a slow disk takes (uniform; after every write issued before it). */
const SLOW_WRITE_MS: [number, number] = [50, 30_000]
/** Share of crashes aimed at a peer with a slow disk while one has (in runs with `slow-disk`). */
const SLOW_DISK_CRASH_SHARE = 0.5
/** A fault lasts between 1 and this many steps before it is lifted. */
const MAX_FAULT_STEPS = 12
/** Largest clock skew given to a peer (either direction): 3 hours. */
const MAX_SKEW_MS = 3 * 3600_000
/** Held jobs expire after this in the simulation (short, so runs see expiry). */
const HOLD_MS = 2 * 3600_000
/** Finished jobs are purged after this in the simulation (short, so runs see purges). */
const RETENTION_MS = 3 * 3600_000
/** Printer failure chances (before / after it accepted a job). */
const FAIL_BEFORE_ACCEPT_RATE = 0.05
const FAIL_AFTER_ACCEPT_RATE = 0.03
/** Virtual time a printer takes to print a job. */
const PRINT_MS: [number, number] = [5_000, 180_000]
/** Anti-entropy rounds allowed after the final heal before convergence is declared failed. */
const MAX_FINAL_ROUNDS = 30
/** Every this many sites one gets an extra link to a random site (more paths, few extra messages). */
const CHORD_EVERY = 3
/** Release grants last this long (virtual): a few steps, so expiry happens in a run. */
const GRANT_TTL_MS = 30 * 60_000
/** Share of releases made at another site than the job's holder (roaming). */
const ROAMING_SHARE = 0.5
/** Most timers one drain may run: bounds a run whose messages never stop. */
const MAX_DRAIN_TIMERS = 10_000_000
/** Users printing (u1 … uN). */
const USERS = 12
/** Events kept in a violation's trace. */
const TRACE_EVENTS = 12
/** Share of workload steps that are a terminal panel's (with `panel`): a login and a copy, or an admin's change at central. */
const PANEL_STEP_SHARE = 0.25
/** Terminals by default: a few. */
export const DEFAULT_TERMINALS = 3
/** Share of prints made at a workstation's client (when the run has clients). */
const CLIENT_PRINT_SHARE = 0.4
/** Share of the releases of a workstation's held job that its user sends to the fallback printer from the client's page. */
const CLIENT_PRINT_NOW_SHARE = 0.2
/** The queue of a workstation's client (node/client.ts DEFAULT_CLIENT_QUEUE). */
const CLIENT_QUEUE = 'printmesh'
/** Share of prints sent straight to a terminal's queue of a release mode (device spooling, when on). */
const DEVICE_PRINT_SHARE = 0.35
/** Share of releases of a device-spooled Pull or Delegated job elsewhere during which its holding terminal crashes (its next 0–2 writes: the grant, the commit, …). */
const HOLDER_CRASH_SHARE = 0.15
/** Share of Delegated jobs' releases made by the owner's delegate rather than the owner. */
const DELEGATE_RELEASE_SHARE = 0.5
/** Share of releases of a device-spooled job where a user who may not also tries it (a Hold job elsewhere, a non-delegate, a delegate of a Pull job): must be refused. */
const PROBE_SHARE = 0.5
/** Share of releases at a holder that pick a device-spooled job (when there is one): they are a third of the prints, and each mode should be released often. */
const DEVICE_RELEASE_SHARE = 0.6

/** A terminal's release modes (issue 13). */
export const DEVICE_MODES = ['direct', 'hold', 'pull', 'delegated'] as const
export type DeviceMode = typeof DEVICE_MODES[number]
/** A terminal's queue per mode: the table node/terminal.ts builds its queues from. */
const DEVICE_QUEUES = RELEASE_MODE_QUEUES
/** The delegate user `owner` names in the directory (device spooling): the next user, u12's is u1. */
function delegateOf (owner: string): string { return `u${(Number(owner.slice(1)) % USERS) + 1}` }

/** A job id (randomUUID) inside an error message. */
const UUID_PATTERN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g

/** Fault kinds, in the order the summary lists them. */
export const FAULT_KINDS = ['crash', 'crash-mid-write', 'partition', 'loss', 'duplicate', 'reorder', 'delay', 'clock-skew', 'disk-full', 'io-error', 'slow-disk'] as const
export type FaultKind = typeof FAULT_KINDS[number]
/** The disk faults, drawn only with `diskFaults`. */
export const DISK_FAULT_KINDS = ['disk-full', 'io-error', 'slow-disk'] as const
export type DiskFaultKind = typeof DISK_FAULT_KINDS[number]

/** Deliberate bugs, to prove the checks can fail. */
export type Injection = 'double-print' | 'drop-acked-job' | 'drop-usage' | 'diverge' | 'miss-duplicates'

export interface SimOptions {
  seed: number
  /** Peers in all: 1 central, `terminals` terminals, the rest sites (at least 2). */
  peers: number
  /** Fault events spread over the run. */
  faults: number
  steps: number
  terminals: number
  /**
   * Workstation clients, beyond `peers` (default 0): each belongs to a site (round robin),
   * holds the jobs printed at it (client spooling) and prints on its own fallback printer
   * when it can reach no site or terminal of its site.
   */
  clients?: number
  /**
   * Device spooling (issue 13; default off: other runs replay to the same fingerprints):
   * terminals pair up per site (a1, a2, b1, …) and take jobs straight into their queues of
   * the four release modes (Direct, Hold, Pull, Delegated); the directory names each user's
   * delegate; jobs are released at the terminal, at other peers of its site through its
   * grant, by delegates, and tried where their mode forbids.
   */
  deviceSpooling?: boolean
  /** Parent folder of the run's temp folder (default /dev/shm when writable, else the OS temp dir). */
  dataDir?: string
  /** Real-time bound of the whole run. */
  maxSeconds?: number
  /**
   * Releases half the jobs at another site than their holder (roaming): under the holder's
   * grant, or offline from a prefetched copy at a shared-mode site that cannot reach the
   * holder. On unless false.
   */
  roaming?: boolean
  inject?: Injection
  /**
   * Hold and retention must last their length by the true clock even where the holder
   * restarted on a skewed clock (off: what the skew at its starts explains is tolerated; a
   * clock skewed while it runs never is).
   */
  strictClock?: boolean
  /**
   * Credit as escrow (issue 20; default off: other runs replay to the same fingerprints):
   * central writes a price list and an enforced credit policy, users get home sites and
   * top-ups, every peer's credit service asks the others for shares over the network's
   * links (partitions, loss, duplication, delay), prints reserve and settle credit, and
   * invariant 5 is checked (see simulations/credit-sim.ts).
   */
  credit?: boolean
  /**
   * Plants an escrow bug at run time (with `credit`): `overspend` — one peer's credit
   * service skips the check of its share and reserves whatever a job costs.
   */
  creditInject?: 'overspend'
  /**
   * The standard credit workload for the availability figure (with `credit`): users print at
   * their home site (`CREDIT_HOME_PRINT_SHARE` of the time), and one site with its terminals
   * is cut off from the rest of the mesh for two hours a third of the way in.
   */
  creditStandard?: boolean
  /**
   * With `credit`: now and then a step ends with two prints of one user reserved at one peer
   * in the same turn (two printers of a site), invariant 5 checked, and both given back (the
   * credit mutations' runs: default off, so other credit runs keep their fingerprints).
   */
  creditProbes?: boolean
  /**
   * Terminals' panels (issue 12; default off, so other runs keep their fingerprints): users log
   * in at terminals by PIN, card or PIN alone whatever the terminal reaches, and copy (copy
   * sessions on simulated device counters); central's admin changes PINs and disables users;
   * invariant 6 and the copies' part of invariant 3 are checked (simulations/panel-sim.ts).
   */
  panel?: boolean
  /**
   * Disk faults (issue 18 item 3; default off, so other runs keep their fingerprints), each on
   * one peer's database for some steps while it goes on running, reads still working:
   * `disk-full` (every write fails with ENOSPC; then space is freed), `io-error` (a few
   * writes picked at random fail with EIO) and `slow-disk` (writes complete only a while
   * later on the virtual clock, in order; a crash meanwhile loses those not completed).
   * `true` draws all three; a list only those (`['disk-full']` replays the runs made before
   * the other two existed).
   */
  diskFaults?: boolean | readonly DiskFaultKind[]
  /** Called with every simulated event as it happens (to compare two runs of one seed). */
  onEvent?: (e: SimEvent) => void
  /** Called with each progress line (the CLI prints them to stderr). */
  progress?: (line: string) => void
  logger?: Logger
}

export interface SimSummary {
  seed: number
  peers: { central: number, sites: number, terminals: number, clients: number }
  steps: number
  jobs: { created: number, acknowledged: number, printed: number, deleted: number, expired: number, failed: number, purged: number, held: number }
  releases: {
    attempted: number
    granted: number
    refused: number
    /** Of the attempts, those made at another site than the holder. */
    roaming: number
    /** Of the granted, those released at a terminal (its site's jobs, at the terminal's printer). */
    atTerminals: number
    /** Of the granted, those printed offline (holder unreachable, prefetched copy). */
    offline: number
    /** Jobs printed twice because of an offline release (each must be detected by its holder: invariant 2). */
    duplicates: number
  }
  sweeps: number
  /** Workstation clients (all zero without `clients`). */
  clients: {
    /** Jobs printed at clients (acknowledged: their addDocument resolved). */
    jobs: number
    acknowledged: number
    /** Releases of clients' jobs granted at a site or terminal of their site (through the client's grant, the document fetched from it). */
    releasedElsewhere: number
    /** Clients' jobs a site's or terminal's printer completed. */
    printedElsewhere: number
    /** Clients' jobs a fallback printer completed (the site unreachable, or the user asked on the client's page). */
    fallbackPrinted: number
    /** Of the acknowledged, those printed while the client could reach no site or terminal of its site (fallback expected at once). */
    isolated: number
    /** Of those, jobs still held on the client once the step settled: fallback printing did not take them. */
    fallbackMissed: number
    /** Held jobs the user sent to the fallback printer from the client's page. */
    printNow: number
  }
  /** Device spooling at terminals (all zero without `deviceSpooling`). */
  deviceSpooling: DeviceStats
  /** Credit as escrow (undefined without `credit`). */
  credit?: CreditStats
  /** Terminals' panels: logins and copies (undefined without `panel`). */
  panel?: PanelStats
  faults: Record<FaultKind, number>
  messages: { envelopesIn: number, envelopesOut: number }
  convergence: { converged: boolean, virtualMs: number, realMs: number, rounds: number }
  invariants: Record<InvariantId, 'PASS' | 'FAIL'>
  violations: Violation[]
  /** sha256 over the event log and the final job states: equal for runs that replayed alike. */
  fingerprint: string
  realMs: number
}

export class SimulationTimeoutError extends Error {
  constructor (seconds: number) { super(`simulation exceeded its real-time bound of ${seconds} s`); this.name = 'SimulationTimeoutError' }
}

/** One simulated event, for traces and the fingerprint. */
export interface SimEvent {
  step: number
  at: number
  peer: string
  kind: string
  job?: string
  detail?: string
}

/** What device spooling did in a run. */
export interface DeviceStats {
  /** Jobs acknowledged at terminals, per release mode. */
  jobs: Record<DeviceMode, number>
  /** Of those, jobs a printer completed (per mode; each once). */
  printed: Record<DeviceMode, number>
  /** Releases granted at the holding terminal itself (Hold, Pull, Delegated, a Direct job held again). */
  releasedAtTerminal: number
  /** Releases of Pull and Delegated jobs granted at another peer (a terminal or the site's server) through the holder's grant. */
  releasedElsewhere: number
  /** Of the granted releases, those made by the owner's delegate (Delegated jobs). */
  byDelegates: number
  /** Device-spooled jobs printed at a peer other than the holding terminal. */
  printedElsewhere: number
  /** Direct jobs held again at their terminal (its printer refused them before accepting) and then printed elsewhere through its grant. */
  directElsewhere: number
  /** Releases at partner sites, refused: the holding terminal cannot read the partner's site config (see README). */
  partnerRefused: number
  /** Attempts the mode forbids (a Hold job elsewhere, by listing or by a direct grant request; a non-delegate; a delegate of a Pull job), each refused (anything else is a violation). */
  forbiddenRefused: number
  /** Of the releases elsewhere, those granted at another terminal while the site's server was down. */
  whileSiteDown: number
  /** Releases elsewhere during which the holding terminal crashed (armed to die within its next writes). */
  holderCrashes: number
  /** Device-spooled jobs printed offline (no grant): expected none, nobody may copy a terminal's job ahead. */
  offline: number
}

function noDeviceStats (): DeviceStats {
  const perMode = (): Record<DeviceMode, number> => ({ direct: 0, hold: 0, pull: 0, delegated: 0 })
  return { jobs: perMode(), printed: perMode(), releasedAtTerminal: 0, releasedElsewhere: 0, whileSiteDown: 0, byDelegates: 0, printedElsewhere: 0, directElsewhere: 0, partnerRefused: 0, forbiddenRefused: 0, holderCrashes: 0, offline: 0 }
}

interface SimPeer {
  name: string
  role: Role
  site?: string
  signer: Signer
  certificate?: Certificate
  dir: string
  skewMs: number
  /** Set while the peer is up. */
  mesh?: MeshPeer
  jobs?: JobService
  roaming?: RoamingService
  persistence?: CrashablePersistence
  device?: LedgerDevice
  /** Its job spool (for the document check: where a job's bytes live). */
  spool?: Spool
  /** Its spool of copies of other peers' documents (a Hold job's bytes must never reach one). */
  copies?: Spool
  /** A workstation's client: its fallback printing (node/fallback.ts), while up. */
  fallback?: FallbackPrinting
  /** A workstation's client: the user who owns the jobs printed at it. */
  user?: string
  /** Its credit service (with `credit`), while up. */
  credit?: CreditService
  /** Step at which a down peer restarts. */
  restartAt?: number
  /** Its disk is full (a `disk-full` fault): also across a restart, until the fault is lifted. */
  diskFull?: boolean
  /** Its disk fails some writes (an `io-error` fault): also across a restart, until lifted. */
  failingWrites?: FailingWrites
  /** Its disk is slow (a `slow-disk` fault): also across a restart, until lifted. */
  slowWrites?: SlowWrites
  /** Crashed but not yet torn down (a mid-write crash strikes inside some operation). */
  crashed: boolean
}

interface SimJob {
  label: string
  /** Position in creation order. */
  index: number
  id: string
  ippId: number
  holder: string
  owner: string
  acked: boolean
  /** Its own document: sha256 of the bytes sent, and what one copy prints (pages, colour pages). */
  sha256: string
  pages: number
  colorPages: number
  copies: number
  sides: string
  /** True (virtual, unskewed) time it was created, and its addDocument resolved. */
  createdAt: number
  ackAt?: number
  /** Last true time the simulator saw it on its holder in a state that is not final: it ended after that. */
  liveAt?: number
  /** Lowest and highest clock skew its holder had while it lived (the holder's clock is all it knows). */
  skewMin: number
  skewMax: number
  /** Skews its holder had at each start while the job lived: a process starting on a wrong clock cannot tell. */
  loadSkews: number[]
  /** Its disappearance was reported already. */
  vanished?: boolean
  /** The last state the simulator saw on the holder. */
  last?: JobRecord
  /** Printed at a workstation's client that could reach no site or terminal of its site: fallback printing must take it at once. */
  isolated?: boolean
  /** Sent straight to a terminal's queue of this release mode (device spooling). */
  mode?: DeviceMode
}

interface ActiveFault { kind: FaultKind, until: number, undo: () => void }

/** Runs one simulation and returns its summary (violations included; never throws for them). */
/** Injected bug: a holder that never hears of offline releases, so it neither settles nor detects them. */
function ignoringOfflineReleases (jobs: JobService): JobService {
  return new Proxy(jobs, {
    get (target, prop, receiver) {
      if (prop !== 'followRelease') return Reflect.get(target, prop, receiver)
      return async (peer: PeerId, site: SiteId, rel: RemoteRelease): Promise<void> => {
        if (!rel.offline) await target.followRelease(peer, site, rel)
      }
    }
  })
}

export async function simulate (opts: SimOptions): Promise<SimSummary> {
  const sim = new Simulation(opts)
  try {
    return await sim.run()
  } finally {
    await sim.teardown()
  }
}

/** Documents users print: pages of one copy, and how many of them are in colour. */
const DOCUMENT_VARIANTS: ReadonlyArray<{ pages: number, colorPages: number }> = [
  { pages: 1, colorPages: 0 }, { pages: 1, colorPages: 1 }, { pages: 2, colorPages: 0 },
  { pages: 2, colorPages: 1 }, { pages: 3, colorPages: 0 }, { pages: 3, colorPages: 2 }
]
/** Sides a job asks for (one-sided and duplex, so sheets differ from pages). */
const SIDES = ['one-sided', 'two-sided-long-edge'] as const

const variantBytes = new Map<number, Promise<Uint8Array>>()
/** A small valid PDF of a variant (made once per process): black pages, then red ones. */
async function variantPdf (variant: number): Promise<Uint8Array> {
  let bytes = variantBytes.get(variant)
  if (bytes === undefined) {
    const { pages, colorPages } = DOCUMENT_VARIANTS[variant]
    bytes = (async () => {
      const doc = await PDFDocument.create()
      doc.setCreationDate(new Date(START_TIME))
      doc.setModificationDate(new Date(START_TIME))
      const font = await doc.embedFont(StandardFonts.Helvetica)
      for (let i = 0; i < pages; i++) {
        const color = i >= pages - colorPages ? rgb(0.9, 0.1, 0.1) : rgb(0, 0, 0)
        doc.addPage([595.28, 841.89]).drawText(`printmesh simulation, page ${i + 1}`, { x: 72, y: 720, size: 24, font, color })
      }
      return await doc.save({ useObjectStreams: false })
    })()
    variantBytes.set(variant, bytes)
  }
  return await bytes
}

/** A job's own document: its variant with the job's label appended as a comment after %%EOF, so every job's bytes (and sha256) differ. */
async function jobDocument (variant: number, label: string): Promise<Uint8Array> {
  return Buffer.concat([await variantPdf(variant), Buffer.from(`\n% printmesh simulation job ${label}\n`)])
}

class Simulation {
  private readonly rng: () => number
  private readonly clock = new VirtualClock(START_TIME)
  private readonly tracker = new AsyncTracker()
  private readonly network: MemoryNetwork
  private readonly ledger = new PrintLedger()
  private readonly peers: SimPeer[] = []
  private readonly edges: Array<[SimPeer, SimPeer]> = []
  private readonly jobs: SimJob[] = []
  private readonly byLabel = new Map<string, SimJob>()
  private readonly events: SimEvent[] = []
  private readonly active: ActiveFault[] = []
  private readonly checker: Checker
  private readonly logger: Logger
  private readonly analyzed = new Map<string, DocumentInfo>()
  /** Documents, workload and sides: their own generator, so the main sequence of choices is unchanged. */
  private readonly docRng: () => number
  /** sha256 of every job document sent → its job label and variant. */
  private readonly documents = new Map<string, { label: string, variant: number }>()
  private readonly faultCounts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  /** Job id → label, to write events without random ids. */
  private readonly labels = new Map<string, string>()
  private readonly releases = { attempted: 0, granted: 0, refused: 0, roaming: 0, atTerminals: 0, offline: 0 }
  private readonly clientStats: SimSummary['clients'] = { jobs: 0, acknowledged: 0, releasedElsewhere: 0, printedElsewhere: 0, fallbackPrinted: 0, isolated: 0, fallbackMissed: 0, printNow: 0 }
  private readonly deviceStats: DeviceStats = noDeviceStats()
  /** Direct jobs already reported held without ever being sent to a printer. */
  private readonly directHeldReported = new Set<string>()
  /** Hold jobs already reported listed at a peer (`label@peer`), so a listing is reported once. */
  private readonly listedReported = new Set<string>()
  /** Jobs printed at an isolated client this step: checked once the step settled (fallback printing took them). */
  private readonly awaitingFallback: SimJob[] = []
  /** Jobs sent to a fallback printer, that their owner, unsure, also releases at a printer of the site at the next step. */
  private readonly fallbackRetries: SimJob[] = []
  /** Per job label, every print that came out of a printer: the site (its peer's name), whether it was an offline release, and what the printer reports it was sent. */
  private readonly prints = new Map<string, Array<{ site: string, printer: string, offline: boolean, sha256?: string, copies?: number, sides?: string, monochrome?: boolean }>>()
  /** With credit, per job label and printer, whether the printer was last sent the job in monochrome (a 'mono-only' site's print the credit covered only so). */
  private readonly monochromeSent = new Map<string, boolean>()
  /** Per job label and printer, whether the printer's last acceptance of it was an offline release. */
  private readonly offlineAccept = new Map<string, boolean>()
  /** Jobs some printer accepted as an offline release. */
  private readonly offlineJobs = new Set<string>()
  /** Roaming requests reach a peer only while both are up and not partitioned from each other. */
  private readonly hub = new MemoryRoamingHub((from, to) => this.reachable(from, to), async (work) => await this.tracker.track(work))
  /** Jobs just printed offline, that their owner tries again at another site at the next step. */
  private readonly retries: Array<{ job: SimJob, at: string }> = []
  private sweeps = 0
  /** A second release of the same user is under way (credit: two at once, never more). */
  private pairing = false
  private root = ''
  private step = 0
  private nextAntiEntropy = START_TIME + ANTI_ENTROPY_MS
  private partitioned = false
  private deadline = Infinity
  private central!: SimPeer
  /** Credit as escrow (with `credit`): its workload, its wire and invariant 5. */
  private readonly credit: CreditSim | undefined
  /** Terminals' panels (with `panel`): logins, copies, invariant 6. */
  private readonly panel: PanelSim | undefined
  /**
   * One verifier for every peer, remembering signatures already found valid: the sync
   * engine verifies every copy of an envelope it receives, and in a dense mesh most copies
   * are duplicates. Keyed by author, signature and a hash of the signed bytes, so a reused
   * signature over other bytes is still checked.
   */
  private readonly verified = new Set<string>()
  private readonly verify: Verifier = trackVerifier(async (author, data, signature) => {
    const key = `${author}|${Buffer.from(signature).toString('base64')}|${createHash('sha256').update(data).digest('base64')}`
    if (this.verified.has(key)) return true
    const ok = await verifyPeerSignature(author, data, signature)
    if (ok) this.verified.add(key)
    return ok
  }, this.tracker)

  constructor (private readonly opts: SimOptions) {
    if (!Number.isInteger(opts.peers) || opts.peers < 3) throw new RangeError('a simulation needs at least 3 peers (central and two sites)')
    if (opts.terminals < 0 || opts.peers - 1 - opts.terminals < 2) throw new RangeError('terminals must leave at least two sites')
    if (opts.clients !== undefined && (!Number.isInteger(opts.clients) || opts.clients < 0)) throw new RangeError('clients must be a whole number')
    // with credit, prints reserve and pay credit, but the panels' copy sessions get no credit service (no copy allowance, no payment) yet
    if (opts.panel === true && opts.credit === true) throw new RangeError('panels (copies) and credit cannot be simulated together yet')
    this.rng = seededRandom(opts.seed)
    this.docRng = seededRandom(opts.seed ^ 0xd0c5)
    // a slow disk's writes wait for virtual time, parked (see drive)
    if (this.diskFaultKinds().includes('slow-disk')) this.tracker.enableParking()
    this.network = new MemoryNetwork({ random: seededRandom(opts.seed ^ 0x5eed), schedule: this.clock.schedule, faults: { latencyMs: BASE_LATENCY } })
    this.logger = opts.logger ?? pino({ level: process.env.PRINTMESH_SIM_LOG ?? 'silent' })
    this.checker = new Checker(opts.seed, (job, peer) => this.trace(job, peer))
    this.credit = opts.credit === true
      ? new CreditSim({
        seed: opts.seed,
        clock: this.clock,
        network: this.network,
        peers: this.peers,
        users: [...Array(USERS).keys()].map((i) => `u${i + 1}`),
        checker: this.checker,
        steps: opts.steps,
        step: () => this.step,
        event: (peer, kind, job, detail) => this.event(peer, kind, job, detail),
        jobOf: (id) => {
          const job = this.byLabel.get(this.labels.get(id) ?? '')
          if (job === undefined) return undefined
          const state = this.peer(job.holder).jobs?.getById(job.id)?.state ?? job.last?.state
          return { label: job.label, ...(state !== undefined ? { state } : {}) }
        },
        ended: (state) => state !== undefined && TERMINAL_STATES.has(state as JobRecord['state']),
        ...(opts.creditStandard === true ? { standard: true } : {}),
        ...(opts.creditProbes === true ? { probes: true } : {}),
        neighbours: (a, b) => this.edges.some(([x, y]) => (x.name === a && y.name === b) || (x.name === b && y.name === a)),
        ...(opts.creditInject !== undefined ? { inject: opts.creditInject } : {})
      })
      : undefined
    this.panel = opts.panel === true
      ? new PanelSim({
        seed: opts.seed,
        users: [...Array(USERS).keys()].map((i) => `u${i + 1}`),
        peers: this.peers,
        checker: this.checker,
        step: () => this.step,
        event: (peer, kind, job, detail) => this.event(peer, kind, job, detail),
        now: (p) => this.clock.now() + p.skewMs,
        track: async (work) => await this.tracker.track(work),
        logger: this.logger
      })
      : undefined
  }

  // ---- seeded choices ---------------------------------------------------------------

  private int (min: number, max: number): number { return min + Math.floor(this.rng() * (max - min + 1)) }
  private pick<T> (list: readonly T[]): T | undefined { return list.length === 0 ? undefined : list[Math.floor(this.rng() * list.length)] }

  // ---- events and traces --------------------------------------------------------------

  private event (peer: string, kind: string, job?: string, detail?: string): void {
    // job ids are random UUIDs: events name jobs by their label, so a replay logs the same text
    const text = detail?.replace(UUID_PATTERN, (id) => this.labels.get(id) ?? id)
    const e: SimEvent = { step: this.step, at: this.clock.now() - START_TIME, peer, kind, ...(job !== undefined ? { job } : {}), ...(text !== undefined ? { detail: text } : {}) }
    this.events.push(e)
    this.opts.onEvent?.(e)
  }

  /**
   * The last events touching a job: its own, and what happened to its holder (crashes,
   * restarts) during its life. Without a job, the events of a peer.
   */
  private trace (job?: string, peer?: string): string[] {
    const holder = job === undefined ? undefined : this.byLabel.get(job)?.holder
    const born = job === undefined ? undefined : this.events.findIndex((e) => e.job === job)
    let last = -1
    this.events.forEach((e, i) => { if (job !== undefined && e.job === job) last = i })
    // the holder's own events while the job lived, and the first one after its last event
    const after = this.events.findIndex((e, i) => i > last && e.job === undefined && e.peer === holder)
    const hits = this.events.filter((e, i) => job !== undefined
      ? e.job === job || (e.job === undefined && holder !== undefined && e.peer === holder && i >= (born ?? 0) && (i <= last || i === after))
      : peer !== undefined && e.peer === peer)
    return hits.slice(-TRACE_EVENTS).map((e) => `step ${e.step} t+${Math.round(e.at / 1000)}s ${e.peer} ${e.kind}${e.job !== undefined ? ` ${e.job}` : ''}${e.detail !== undefined ? ` (${e.detail})` : ''}`)
  }

  // ---- setup -------------------------------------------------------------------------

  private now (p: SimPeer): number { return this.clock.now() + p.skewMs }

  private async identity (name: string): Promise<Signer> {
    const seed = createHash('sha256').update(`printmesh-sim/${this.opts.seed}/${name}`).digest()
    return trackSigner(signerFor(await generateKeyPairFromSeed('Ed25519', seed)), this.tracker)
  }

  private async setup (): Promise<void> {
    const parent = this.opts.dataDir ?? await defaultDataDir()
    this.root = await mkdtemp(join(parent, `printmesh-sim-${this.opts.seed}-`))
    const sites = this.opts.peers - 1 - this.opts.terminals
    const centralSigner = await this.identity('central')
    const make = async (name: string, role: Role, site?: string): Promise<SimPeer> => {
      const signer = name === 'central' ? centralSigner : await this.identity(name)
      const dir = join(this.root, name)
      await mkdir(dir, { recursive: true })
      const p: SimPeer = { name, role, ...(site !== undefined ? { site } : {}), signer, dir, skewMs: 0, crashed: false }
      if (role !== 'central') p.certificate = await issuePeerCertificate(centralSigner, signer.id, role, site, START_TIME)
      this.peers.push(p)
      return p
    }
    this.central = await make('central', 'central')
    const siteIds: string[] = []
    for (let i = 0; i < sites; i++) { siteIds.push(siteId(i)); await make(`site-${siteId(i)}`, 'site', siteId(i)) }
    for (let i = 0; i < this.opts.terminals; i++) {
      if (this.deviceSpooling()) {
        // device spooling: terminals pair up per site (a1, a2, b1, …), so Pull and Delegated jobs move terminal to terminal
        const s = siteIds[Math.floor(i / 2) % siteIds.length]
        await make(`terminal-${s}${this.peers.filter((p) => p.role === 'terminal' && p.site === s).length + 1}`, 'terminal', s)
        continue
      }
      const s = siteIds[i % siteIds.length]
      await make(`terminal-${s}${Math.floor(i / siteIds.length) + 1}`, 'terminal', s)
    }
    // workstations' clients, round robin over the sites; each one user's
    for (let i = 0; i < (this.opts.clients ?? 0); i++) {
      const s = siteIds[i % siteIds.length]
      const client = await make(`client-${s}${Math.floor(i / siteIds.length) + 1}`, 'client', s)
      client.user = `u${1 + ((i * 5) % USERS)}`
    }
    const sitePeers = this.peers.filter((p) => p.role === 'site')
    // topology: every site to central and to the next site (a ring), every third one a seeded chord;
    // every terminal to its site and to central
    for (let i = 0; i < sitePeers.length; i++) {
      this.edge(sitePeers[i], this.central)
      if (sitePeers.length > 2 || i === 0) this.edge(sitePeers[i], sitePeers[(i + 1) % sitePeers.length])
      const chord = i % CHORD_EVERY === 0 ? this.pick(sitePeers) : undefined
      if (chord !== undefined && chord !== sitePeers[i]) this.edge(sitePeers[i], chord)
    }
    for (const t of this.peers.filter((p) => p.role === 'terminal')) {
      this.edge(t, sitePeers.find((s) => s.site === t.site) ?? this.central)
      this.edge(t, this.central)
      // device spooling: the terminals of a site reach each other (Pull works between them while the site's server is down)
      if (this.deviceSpooling()) for (const u of this.peers.filter((q) => q.role === 'terminal' && q.site === t.site)) this.edge(t, u)
    }
    // every client to its site, the terminals of its site and central (a joined client knows them)
    for (const c of this.peers.filter((p) => p.role === 'client')) {
      for (const q of this.peers.filter((p) => (p.role === 'site' || p.role === 'terminal') && p.site === c.site)) this.edge(c, q)
      this.edge(c, this.central)
    }
    for (const p of this.peers) await this.startPeer(p)
    // central records every certificate in the license document, as on enrollment
    const central = this.central.mesh
    if (central === undefined) throw new Error('central did not start')
    const certs = this.peers.map((p) => p.certificate).filter((c) => c !== undefined)
    await central.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) => { for (const c of certs) recordCertificate(d, c) })
    // device spooling: the directory names each user's delegate (who may release their Delegated jobs)
    // with credit: each user's home site (central hands their credit on to it)
    // with panels: each user's PIN and card
    await this.panel?.setup()
    if (this.deviceSpooling() || this.credit !== undefined || this.panel !== undefined) {
      await central.store.transact(directoryDoc(), { kind: 'admin', user: 'admin' }, (d) => {
        for (let i = 1; i <= USERS; i++) {
          putUser(d, {
            username: `u${i}`, fullName: `User ${i}`, pinHash: 'unused-in-the-simulation',
            ...this.panel?.credentials(`u${i}`),
            ...(this.deviceSpooling() ? { delegates: [delegateOf(`u${i}`)] } : {}),
            ...(this.credit !== undefined ? { homeSite: this.credit.homeSite(`u${i}`) } : {}),
            updatedAt: START_TIME
          })
        }
      })
    }
    // every site roams with every other; every other site in shared mode (prefetching, so it may print offline)
    for (const [i, p] of sitePeers.entries()) {
      await p.roaming?.setRoaming({ partners: sitePeers.filter((q) => q !== p).map((q) => q.site ?? q.name), mode: i % 2 === 0 ? 'shared' : 'separate' })
    }
    this.ledger.onEvent = (e) => {
      if (e.kind === 'accepted') return
      this.event(this.siteOfPrinter(e.printer), `printer-${e.kind}`, e.job)
      if (e.kind === 'completed') {
        const held = this.byLabel.get(e.job)
        if (held !== undefined && this.peer(held.holder).role === 'client') {
          if (this.isFallbackPrinter(e.printer)) this.clientStats.fallbackPrinted++
          else this.clientStats.printedElsewhere++
        }
        if (held?.mode !== undefined) {
          if (!this.prints.has(e.job)) this.deviceStats.printed[held.mode]++
          if (this.siteOfPrinter(e.printer) !== held.holder) this.deviceStats.printedElsewhere++
        }
        const site = this.siteOfPrinter(e.printer)
        // the printer's name at its peer: `<peer>/<printer>` (simulations/device.ts)
        const print = { site, printer: e.printer.slice(e.printer.lastIndexOf('/') + 1), offline: this.offlineAccept.get(`${e.job}@${e.printer}`) === true, sha256: e.sha256, copies: e.copies, sides: e.sides, ...(this.monochromeSent.get(`${e.job}@${e.printer}`) === true ? { monochrome: true } : {}) }
        this.prints.set(e.job, [...(this.prints.get(e.job) ?? []), print])
        // the device's life counters count the print (a copy session subtracts it)
        if (held !== undefined && this.panel !== undefined) {
          const t = this.truth(held, print)
          this.panel.printed(e.printer, e.job, t.pages, t.colorPages)
        }
      }
    }
    this.ledger.onAccept = (e, count) => {
      const job = this.byLabel.get(e.job)
      const site = this.peers.find((p) => p.name === this.siteOfPrinter(e.printer))
      const offline = job !== undefined && site?.roaming?.releaseOf(job.id)?.offline === true
      this.offlineAccept.set(`${e.job}@${e.printer}`, offline)
      this.event(this.siteOfPrinter(e.printer), offline ? 'printer-accepted-offline' : 'printer-accepted', e.job)
      if (offline) this.offlineJobs.add(e.job)
      // a second print is allowed only with an offline release among them (then its holder must detect it: finalChecks)
      if (count > 1 && !this.offlineJobs.has(e.job)) this.checker.violation(2, this.step, `job ${e.job} was accepted by a printer ${count} times (last by ${e.printer})`, e.job, job?.holder)
      // a workstation's job is never released offline (no peer may copy it ahead): its held → releasing step decides between the fallback printer and every release elsewhere
      else if (count > 1 && job !== undefined && this.peer(job.holder).role === 'client') this.checker.violation(2, this.step, `job ${e.job} held by the workstation ${job.holder} was accepted by a printer ${count} times (last by ${e.printer}${this.isFallbackPrinter(e.printer) ? ', its fallback printer' : ''})`, e.job, job.holder)
      if (job?.mode !== undefined) this.checkDevicePrint(job, e.printer, count, offline)
      // the printer must get the job's own bytes as acknowledged, with its copies and sides
      if (job !== undefined && e.sha256 !== job.sha256) {
        const other = e.sha256 === undefined ? undefined : this.documents.get(e.sha256)?.label
        this.checker.violation(1, this.step, `${e.printer} was sent other bytes than job ${e.job} acknowledged (${other !== undefined ? `job ${other}'s document` : e.sha256 ?? 'nothing'})`, e.job, job.holder)
      } else if (job !== undefined && (e.copies !== job.copies || e.sides !== job.sides)) {
        this.checker.violation(3, this.step, `${e.printer} was sent job ${e.job} with ${e.copies ?? '?'} copies ${e.sides ?? '?'}, the job asked ${job.copies} ${job.sides}`, e.job, job.holder)
      }
    }
    await this.redial()
    await this.runUntil(this.clock.now() + ANTI_ENTROPY_MS)
    await settle(this.tracker, 'setup')
    await this.runUntil(this.clock.now() + 1000)
    for (const p of this.peers) await this.panel?.attach(p)
    if (this.credit !== undefined) {
      // prices, the policy and every user's first credit, known everywhere before the first print
      await this.credit.setup()
      await settle(this.tracker, 'credit setup')
      await this.runUntil(this.clock.now() + ANTI_ENTROPY_MS)
      await settle(this.tracker, 'credit setup')
    }
  }

  private edge (a: SimPeer, b: SimPeer): void {
    if (a === b || this.edges.some(([x, y]) => (x === a && y === b) || (x === b && y === a))) return
    this.edges.push([a, b])
  }

  private async startPeer (p: SimPeer): Promise<void> {
    const persistenceHolder: { p?: CrashablePersistence } = {}
    // sites, terminals and clients run the release engine; central only the peer core
    const site = p.role !== 'central' ? await this.releaseComponents(p) : undefined
    const mesh = await startMeshPeer({
      network: this.network,
      name: p.name,
      signer: p.signer,
      role: p.role,
      ...(p.site !== undefined ? { site: toSiteId(p.site) } : {}),
      authority: this.central.signer.id,
      ...(p.certificate !== undefined ? { certificate: p.certificate } : {}),
      dir: p.dir,
      logger: this.logger,
      verify: this.verify,
      now: () => this.now(p),
      monotonic: () => this.clock.now(),
      schedule: this.clock.schedule,
      // on the virtual clock; at once when the signal aborts (a peer stopping must not wait for virtual time, which stands still during its teardown)
      sleep: async (ms, signal) => {
        await new Promise<void>((resolve) => {
          if (signal.aborted) { resolve(); return }
          signal.addEventListener('abort', () => resolve(), { once: true })
          this.clock.schedule(resolve, ms)
        })
      },
      wrapPersistence: (inner) => (persistenceHolder.p = new CrashablePersistence(inner, this.tracker, p.name, () => this.onCrash(p), this.clock)),
      // its role's own list (node/roles.ts), less what needs libp2p or a socket; with credit, central's credit service too
      services: site !== undefined ? inProcessServices(p.role) : this.credit !== undefined ? [...IN_PROCESS_CORE, 'credit'] : IN_PROCESS_CORE,
      ...(site !== undefined
        ? { registry: this.withCredit(p, p.role === 'client' ? this.clientRegistry(p) : this.releaseRegistry(p)), components: site }
        : this.credit !== undefined ? { registry: this.withCredit(p, {}) } : {})
    })
    p.mesh = mesh
    p.persistence = persistenceHolder.p
    if (p.persistence !== undefined) {
      p.persistence.diskFull = p.diskFull === true
      p.persistence.failingWrites = p.failingWrites
      p.persistence.slowWrites = p.slowWrites
    }
    p.crashed = false
    if (site !== undefined) {
      p.jobs = mesh.services.jobs as JobService
      p.roaming = mesh.services.roaming as RoamingService
      this.hub.register(p.signer.id, p.roaming)
    }
    if (p.role === 'client') p.fallback = mesh.services.fallback as FallbackPrinting
  }

  /**
   * With credit, the printer as the print engine sees it, remembering whether each job was
   * sent in monochrome (the ledger records bytes, copies and sides, not the colour mode).
   */
  private colourModeRecorded (device: LedgerDevice, name: string): LedgerDevice {
    return new Proxy(device, {
      get: (target, prop) => {
        if (prop === 'print') {
          return async (...args: Parameters<LedgerDevice['print']>) => {
            const [req] = args
            this.monochromeSent.set(`${req.jobName ?? ''}@${name}`, req.colorMode === 'monochrome')
            return await target.print(...args)
          }
        }
        const v = Reflect.get(target, prop, target) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      }
    })
  }

  /** With credit, the peer's `credit` service is the simulator's (attached to the escrow hub, its real-time pass off). */
  private withCredit (p: SimPeer, registry: ServiceRegistry): ServiceRegistry {
    if (this.credit !== undefined) registry.credit = this.credit.factory(p)
    return registry
  }

  /** What a site's release engine reads besides the peer core: spools, its ledger printer (a client's: its fallback printer), the roaming hub. */
  private async releaseComponents (p: SimPeer): Promise<Record<string, unknown>> {
    const printer = p.role === 'client' ? 'fallback' : 'mfp'
    p.device ??= new LedgerDevice({
      name: `${p.name}/${printer}`,
      ledger: this.ledger,
      clock: this.clock,
      random: seededRandom(this.opts.seed * 7919 + this.peers.indexOf(p)),
      failBeforeAcceptRate: FAIL_BEFORE_ACCEPT_RATE,
      failAfterAcceptRate: FAIL_AFTER_ACCEPT_RATE,
      printMs: PRINT_MS,
      doublePrint: this.opts.inject === 'double-print',
      readDocument: async (path) => await this.tracker.track(async () => await readFile(path))
    })
    p.device.online = true
    p.spool = await this.tracker.track(async () => await Spool.open(join(p.dir, 'spool')))
    p.copies = await this.tracker.track(async () => await Spool.open(join(p.dir, 'roaming')))
    return {
      spool: trackSpool(p.spool, this.tracker),
      copies: trackSpool(p.copies, this.tracker),
      printers: new Map([[printer, this.credit !== undefined ? this.colourModeRecorded(p.device, `${p.name}/${printer}`) : p.device]]),
      roamingLink: this.hub.linkFor(p.signer.id)
    }
  }

  /**
   * A site's or terminal's release engine: the CLI's factories (node/release.ts) with the
   * simulator's timings (passes off: they are workload steps on the virtual clock), analysis
   * cached per document, and `miss-duplicates` planted between roaming and the job service.
   * A terminal releases its site's jobs at its own printer; it publishes no host name (only
   * a site's server writes the site's config) and holds no jobs of its own here.
   */
  private releaseRegistry (p: SimPeer): ServiceRegistry {
    const terminal = p.role === 'terminal'
    // with device spooling a terminal has a queue per release mode, as node/terminal.ts builds them
    const queues = terminal && this.deviceSpooling()
      ? DEVICE_MODES.map((mode) => ({ name: mode, ...DEVICE_QUEUES[mode], info: `${p.name}: ${DEVICE_QUEUES[mode].info}`, defaultPrinter: 'mfp', location: p.site ?? p.name }))
      : [{ name: 'secure', hold: true, defaultPrinter: 'mfp', info: 'secure print', location: p.name, ...(terminal ? { pinned: true } : {}) }]
    const registry = releaseServices({
      site: toSiteId(p.site ?? p.name),
      ...(terminal ? {} : { hostname: `${p.name}.sim` }),
      queues,
      jobs: { holdMs: HOLD_MS, retentionMs: RETENTION_MS, sweepMs: 0, ...(terminal ? { deviceName: p.name } : {}) },
      roaming: { grantTtlMs: GRANT_TTL_MS, tickMs: 0 }
    })
    const analyzer: AnalyzerService = { parse: async (path, format, signal) => await this.analyze(path, format, signal), start: async () => {}, stop: async () => {} }
    registry.analyzer = () => serviceFactory<object, AnalyzerService>([], () => ({ ...analyzer }))
    if (this.opts.inject === 'miss-duplicates') {
      const roaming = registry.roaming()
      registry.roaming = () => Object.assign((c: Record<string, unknown>) => roaming({ ...c, jobs: ignoringOfflineReleases(c.jobs as JobService) }), { dependencies: roaming.dependencies })
    }
    return registry
  }

  /**
   * A workstation's client, as node/client.ts builds it: the release engine with one queue
   * (held, not pinned, owned by the workstation's user, `deviceName` its name, so its jobs
   * carry `heldAt`) and its fallback printing, node/fallback.ts's {@link FallbackPrinting}
   * itself, in process: its one fallback printer is a {@link LedgerDevice}, and the peers it
   * has an open connection to are the memory network's links of this peer now (the
   * client's libp2p connections in a real process). The release server is out of process:
   * the memory roaming hub answers for it, and has no `requestPrint`, so sites and terminals
   * release a client's job through its grant and fetch the document from it.
   */
  private clientRegistry (p: SimPeer): ServiceRegistry {
    const site = toSiteId(p.site ?? p.name)
    const user = p.user ?? 'u1'
    const registry = releaseServices({
      site,
      queues: [{ name: CLIENT_QUEUE, hold: true, pinned: false, info: `${p.name}: kept on this workstation until you release it at a printer of site ${site}`, location: p.name, owner: { user, othersAllowed: () => false } }],
      jobs: { holdMs: HOLD_MS, retentionMs: RETENTION_MS, sweepMs: 0, deviceName: p.name },
      roaming: { grantTtlMs: GRANT_TTL_MS, tickMs: 0 }
    })
    const analyzer: AnalyzerService = { parse: async (path, format, signal) => await this.analyze(path, format, signal), start: async () => {}, stop: async () => {} }
    registry.analyzer = () => serviceFactory<object, AnalyzerService>([], () => ({ ...analyzer }))
    const device = p.device
    if (device === undefined) throw new Error(`${p.name} has no fallback printer`)
    registry.fallback = () => serviceFactory<{ jobs: JobService, store: DocStore, membership: Membership, transport: MemoryTransport, logger: Logger, self: { id: string } }, FallbackPrinting>(
      ['jobs', 'store', 'membership', 'transport', 'self', 'logger'], (c) => new FallbackPrinting(
        { data: p.dir, site, self: c.self.id as PeerId, printers: new Map([['fallback', device]]) },
        { jobs: c.jobs, store: c.store, membership: c.membership, connectedPeers: () => c.transport.peers(), logger: c.logger }))
    return registry
  }

  /** Whether `printer` is a client's fallback printer (`<client>/fallback`). */
  private isFallbackPrinter (printer: string): boolean { return printer.endsWith('/fallback') }

  /** Whether a peer can reach a site's server or central now (a terminal that cannot works offline). */
  private reachesServer (p: SimPeer): boolean {
    return this.peers.some((q) => (q.role === 'site' || q.role === 'central') && q.mesh !== undefined && !q.crashed &&
      this.network.linked(p.signer.id, q.signer.id) && !this.network.partitioned(p.signer.id, q.signer.id))
  }

  private reachable (from: string, to: string): boolean {
    const up = (id: string): boolean => this.peers.some((p) => p.signer.id === id && p.roaming !== undefined && !p.crashed)
    return up(from) && up(to) && !this.network.partitioned(from, to)
  }

  /**
   * The real parser, once per document variant: a job's document is its variant's bytes
   * and a comment naming the job, which the parser skips; the spool names a file by its
   * sha256, so an unknown one (not a job's document as sent) is parsed for real.
   */
  private async analyze (path: string, format: string, signal?: AbortSignal): Promise<DocumentInfo> {
    const sent = this.documents.get(path.slice(-64))
    const key = sent !== undefined ? `${format}:variant-${sent.variant}` : `${format}:${path.slice(-64)}`
    const known = this.analyzed.get(key)
    if (known !== undefined) return known
    const info = await parseDocument(path, format, signal)
    this.analyzed.set(key, info)
    return info
  }

  /** At the crash instant: the process is gone, so it sends and prints nothing more. */
  private onCrash (p: SimPeer): void {
    p.crashed = true
    if (p.device !== undefined) p.device.online = false
    // the synchronous part of stop() cuts every link at once
    p.mesh?.transport.halt()
    this.event(p.name, 'crashed')
  }

  /** Tears a crashed peer down (its in-memory state is lost) and keeps it down until `restartAt`. */
  private async teardownCrashed (p: SimPeer): Promise<void> {
    const { mesh } = p
    p.jobs = undefined
    p.roaming = undefined
    p.fallback = undefined
    p.mesh = undefined
    p.persistence = undefined
    this.credit?.detach(p)
    this.panel?.detach(p)
    this.hub.unregister(p.signer.id)
    await mesh?.stop() // every service in reverse start order: roaming, jobs, …, sync, transport, store
    await settle(this.tracker, `teardown of ${p.name}`)
  }

  private async restart (p: SimPeer): Promise<void> {
    p.restartAt = undefined
    for (const job of this.jobs) if (job.holder === p.name && job.vanished !== true) job.loadSkews.push(p.skewMs)
    await this.startPeer(p)
    this.event(p.name, 'restarted')
    await settle(this.tracker, `restart of ${p.name}`)
    // a copy session its crash left open is closed now, its prints followed up first
    await this.panel?.attach(p)
    await settle(this.tracker, `restart of ${p.name}`)
    if (this.opts.inject === 'drop-acked-job' && p.jobs !== undefined) await this.injectDrop(p)
    this.checkHolder(p, 'after restart')
    await this.checkSpool(p, 'after restart')
  }

  /** The disk faults this run draws (see `diskFaults`). */
  private diskFaultKinds (): readonly DiskFaultKind[] {
    const d = this.opts.diskFaults
    return d === true ? DISK_FAULT_KINDS : d === undefined || d === false ? [] : d
  }

  /**
   * Awaits work of the run loop. A slow disk's write completes only when the virtual clock
   * reaches its time, so while `work` waits for one (nothing else left to do), the clock runs
   * on: timers one at a time, each settled, anti-entropy rounds in their turn, as other
   * work goes on while a real process waits for its disk. The work is tracked, so the clock
   * moves only while it is done or waits for virtual time (parked), never while it runs.
   * Without slow disks: just awaited.
   */
  private async drive<T> (work: () => Promise<T>): Promise<T> {
    if (!this.diskFaultKinds().includes('slow-disk')) return await work()
    let done = false
    const running = this.tracker.track(work)
    running.then(() => { done = true }, () => { done = true })
    for (;;) {
      await settle(this.tracker, `step ${this.step}`)
      if (done || !await this.tick(Infinity)) return await running
    }
  }

  // ---- the run ------------------------------------------------------------------------

  async run (): Promise<SimSummary> {
    const started = Date.now()
    if (this.opts.maxSeconds !== undefined) this.deadline = started + this.opts.maxSeconds * 1000
    await this.setup()
    let faultsLeft = this.opts.faults
    for (this.step = 1; this.step <= this.opts.steps; this.step++) {
      if (Date.now() > this.deadline) throw new SimulationTimeoutError(this.opts.maxSeconds ?? 0)
      await this.drive(async () => await this.liftExpired())
      await this.drive(async () => await this.credit?.beforeStep(this.step))
      await this.drive(async () => await this.retryOffline())
      await this.drive(async () => await this.retryAfterFallback())
      const stepsLeft = this.opts.steps - this.step + 1
      if (faultsLeft > 0 && this.rng() < faultsLeft / stepsLeft) {
        faultsLeft--
        await this.drive(async () => await this.fault())
      } else {
        await this.drive(async () => await this.workload())
      }
      await settle(this.tracker, `step ${this.step}`)
      this.checkFallback()
      await this.teardownAnyCrashed()
      this.observe()
      await this.drive(async () => await this.credit?.probe())
      this.credit?.check()
      if (this.deviceSpooling()) this.checkDeviceListings()
      await this.runUntil(this.clock.now() + this.int(0, STEP_MAX_MS))
      await this.teardownAnyCrashed()
      this.observe()
      this.credit?.check()
      if (this.deviceSpooling()) this.checkDeviceListings()
      if (this.step % 100 === 0) this.opts.progress?.(`step ${this.step}/${this.opts.steps}: ${this.jobs.length} jobs, ${this.checker.violations.length} violations`)
    }
    this.step = this.opts.steps + 1
    const convergence = await this.finalHeal()
    await this.finalChecks(convergence.converged)
    return this.summary(convergence, Date.now() - started)
  }

  /** Runs timers one at a time (each settled) and anti-entropy rounds, up to virtual time `until`. */
  private async runUntil (until: number): Promise<void> {
    while (await this.tick(until));
    this.clock.advanceTo(until)
  }

  /** Runs the next timer or anti-entropy round due by `until` (settled); false when none is. */
  private async tick (until: number): Promise<boolean> {
    const next = this.clock.nextAt()
    if (this.nextAntiEntropy <= until && (next === undefined || this.nextAntiEntropy < next)) {
      this.clock.advanceTo(this.nextAntiEntropy)
      this.nextAntiEntropy += ANTI_ENTROPY_MS
      await this.antiEntropy()
      return true
    }
    if (!this.clock.runNext(until)) return false
    await settle(this.tracker, `timer at step ${this.step}`)
    return true
  }

  /** Runs every pending timer (and what they schedule) to the end. */
  private async drain (): Promise<void> {
    for (let n = 0; n < MAX_DRAIN_TIMERS; n++) {
      if (!this.clock.runNext(Infinity)) return
      await settle(this.tracker, 'final drain')
    }
    throw new SimulationStalledError(`timers still pending after ${MAX_DRAIN_TIMERS} ran`)
  }

  /** What a real node's timers do: redial lost links, then send HELLO to everyone. */
  private async antiEntropy (): Promise<void> {
    await this.redial()
    for (const p of this.peers) if (p.mesh !== undefined && !p.crashed) p.mesh.sync.antiEntropy()
    await settle(this.tracker, 'anti-entropy')
  }

  private async redial (): Promise<void> {
    for (const [a, b] of this.edges) {
      if (a.mesh === undefined || b.mesh === undefined || a.crashed || b.crashed) continue
      if (this.network.linked(a.signer.id, b.signer.id) || this.network.partitioned(a.signer.id, b.signer.id)) continue
      try {
        await this.network.connect(a.signer.id, b.signer.id)
      } catch (err) {
        this.event(a.name, 'dial-failed', undefined, `${b.name}: ${(err as Error).message}`)
      }
      await settle(this.tracker, 'redial')
    }
  }

  private async teardownAnyCrashed (): Promise<void> {
    for (const p of this.peers) {
      if (!p.crashed || p.mesh === undefined) continue
      await this.teardownCrashed(p)
      p.restartAt ??= this.step + this.int(1, MAX_FAULT_STEPS)
    }
  }

  private async liftExpired (): Promise<void> {
    for (const p of this.peers) if (p.mesh === undefined && p.restartAt !== undefined && p.restartAt <= this.step) await this.restart(p)
    for (const f of [...this.active]) {
      if (f.until > this.step) continue
      this.active.splice(this.active.indexOf(f), 1)
      f.undo()
    }
  }

  // ---- workload -----------------------------------------------------------------------

  private upSites (): SimPeer[] {
    return this.peers.filter((p) => p.role === 'site' && p.jobs !== undefined && !p.crashed)
  }

  /** Peers up that release jobs at their printers: sites and terminals. */
  private upReleasers (): SimPeer[] {
    return this.peers.filter((p) => (p.role === 'site' || p.role === 'terminal') && p.roaming !== undefined && !p.crashed)
  }

  /** Workstations' clients that are up. */
  private upClients (): SimPeer[] {
    return this.peers.filter((p) => p.role === 'client' && p.jobs !== undefined && !p.crashed)
  }

  private hasClients (): boolean { return (this.opts.clients ?? 0) > 0 }

  private deviceSpooling (): boolean { return this.opts.deviceSpooling === true }

  /** Terminals that are up (device spooling prints at them). */
  private upTerminals (): SimPeer[] {
    return this.peers.filter((p) => p.role === 'terminal' && p.jobs !== undefined && !p.crashed)
  }

  /**
   * Whether a client can reach no site or terminal of its site right now, as the simulator
   * sees the network (its own links to those peers, up): then fallback printing must take a
   * new job at once.
   */
  private isolated (client: SimPeer): boolean {
    return !this.peers.some((q) => (q.role === 'site' || q.role === 'terminal') && q.site === client.site && q.mesh !== undefined && !q.crashed && this.network.linked(client.signer.id, q.signer.id))
  }

  private async workload (): Promise<void> {
    if (this.panel !== undefined && this.rng() < PANEL_STEP_SHARE) {
      await this.panel.step((t) => this.reachesServer(t as SimPeer))
      return
    }
    const roll = this.rng()
    if (roll < 0.45) await this.print()
    else if (roll < 0.75) await this.release()
    else if (roll < 0.85) await this.remove()
    else if (roll < 0.93) await this.sweep()
    // else: nobody does anything this step
  }

  /**
   * A user prints: at a random site, or (in runs with clients, `CLIENT_PRINT_SHARE` of the
   * time, or at `at`) at a workstation's client, where the job is held (client spooling),
   * or goes to its fallback printer at once when the client reaches no peer of its site.
   */
  private async print (at?: SimPeer): Promise<void> {
    // device spooling: a workstation prints straight to a terminal's queue of a release mode
    const device = at === undefined ? this.deviceSpooling() && this.rng() < DEVICE_PRINT_SHARE : at.role === 'terminal'
    let site = at ?? (device ? this.pick(this.upTerminals()) : this.hasClients() && this.rng() < CLIENT_PRINT_SHARE ? this.pick(this.upClients()) : this.pick(this.upSites()))
    const mode = device ? DEVICE_MODES[this.int(0, DEVICE_MODES.length - 1)] : undefined
    const drawn = `u${this.int(1, USERS)}`
    // the standard credit workload: most users print at their home site
    if (at === undefined && !device && site?.role === 'site' && this.credit?.printsAtHome() === true) {
      const home = this.upSites().find((p) => p.site === this.credit?.homeSite(drawn))
      if (home !== undefined) site = home
    }
    const copies = this.int(1, 2)
    if (site?.jobs === undefined) return
    const client = site.role === 'client'
    // a workstation's jobs belong to its user
    const owner = client ? site.user ?? drawn : drawn
    const label = `j${this.jobs.length + 1}`
    const variant = Math.floor(this.docRng() * DOCUMENT_VARIANTS.length)
    const sides = SIDES[Math.floor(this.docRng() * SIDES.length)]
    const bytes = await jobDocument(variant, label)
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    this.documents.set(sha256, { label, variant })
    const service = site.jobs
    let created: JobRecord
    try {
      created = await service.createJob({ queue: mode ?? (client ? CLIENT_QUEUE : 'secure'), owner, name: label, copies, sides })
    } catch (err) {
      this.event(site.name, 'create-failed', label, (err as Error).message)
      return
    }
    const job: SimJob = { label, index: this.jobs.length, id: created.id, ippId: created.ippId, holder: site.name, owner, acked: false, createdAt: this.clock.now(), skewMin: site.skewMs, skewMax: site.skewMs, loadSkews: [], sha256, ...DOCUMENT_VARIANTS[variant], copies, sides, ...(mode !== undefined ? { mode } : {}) }
    this.jobs.push(job)
    this.labels.set(job.id, job.label)
    this.byLabel.set(label, job)
    this.event(site.name, 'created', label, mode !== undefined ? `${owner}, ${mode}` : owner)
    if (client) this.clientStats.jobs++
    // as the client sees its site when the document arrives (fallback printing decides then)
    const isolated = client && this.isolated(site)
    try {
      await service.addDocument(created.ippId, { format: 'application/pdf', data: Readable.from([bytes]) })
      job.acked = true
      job.ackAt = this.clock.now()
      job.liveAt = this.clock.now()
      this.event(site.name, 'acknowledged', label)
      if (client) this.clientStats.acknowledged++
      if (mode !== undefined) this.deviceStats.jobs[mode]++
      if (isolated && this.isolated(site)) {
        job.isolated = true
        this.clientStats.isolated++
        this.awaitingFallback.push(job)
      }
    } catch (err) {
      this.event(site.name, 'add-document-failed', label, (err as Error).message)
    }
  }

  /** Held jobs whose holder is up, in creation order. */
  private heldJobs (): SimJob[] {
    return this.jobs.filter((j) => {
      const holder = this.peer(j.holder)
      return holder.jobs !== undefined && !holder.crashed && holder.jobs.getById(j.id)?.state === 'held'
    })
  }

  private async release (): Promise<void> {
    if (this.opts.roaming !== false && this.rng() < ROAMING_SHARE) {
      await this.releaseElsewhere()
      return
    }
    const held = this.heldJobs()
    const device = this.deviceSpooling() && this.rng() < DEVICE_RELEASE_SHARE ? held.filter((j) => j.mode !== undefined) : []
    const job = this.pick(device.length > 0 ? device : held)
    if (job === undefined) return
    const holder = this.peer(job.holder)
    if (holder.role === 'client') await this.releaseClientJob(job, holder)
    else if (job.mode !== undefined) await this.releaseDeviceJob(job, holder)
    else await this.releaseAt(job, holder)
  }

  /**
   * A device-spooled job held at a terminal, released as its mode allows: a Hold job (or a
   * Direct one its printer gave back) at the terminal; a Pull or Delegated job at the
   * terminal or, mostly, at another peer of its site (another terminal, the site's server)
   * through the terminal's grant, a Delegated one half the time by the owner's delegate.
   * Before, `PROBE_SHARE` of the time, someone the mode does not allow tries it (`probeForbidden`).
   */
  private async releaseDeviceJob (job: SimJob, holder: SimPeer): Promise<void> {
    if (this.rng() < PROBE_SHARE) await this.probeForbidden(job, holder)
    if (job.mode === 'hold' || job.mode === 'direct' || this.rng() < 0.3) {
      await this.releaseAt(job, holder)
      return
    }
    const at = this.pick(this.upReleasers().filter((p) => p !== holder && p.site === holder.site))
    if (at === undefined) return
    await this.releaseAt(job, at, job.mode === 'delegated' && this.rng() < DELEGATE_RELEASE_SHARE ? delegateOf(job.owner) : job.owner)
  }

  /**
   * Someone the job's mode does not allow tries to release it; each must be refused, else a
   * violation of invariant 2 (the job may print where, or for whom, its mode forbids): a Hold
   * job at another peer of its site, both as users there see it (`releaseRemote`: it must not
   * even be listed) and as a peer that asks the terminal for a grant anyway (the holder must
   * refuse); a Pull or Delegated job by a user who is neither its owner nor the owner's
   * delegate; a Pull job by the owner's delegate.
   */
  private async probeForbidden (job: SimJob, holder: SimPeer): Promise<void> {
    const at = this.pick(this.upReleasers().filter((p) => p !== holder && p.site === holder.site))
    if (at?.roaming === undefined || job.mode === 'direct') return
    const forbidden = async (what: string, attempt: () => Promise<boolean>): Promise<void> => {
      let granted: boolean
      try {
        granted = await attempt()
      } catch (err) {
        this.deviceStats.forbiddenRefused++
        this.event(at.name, 'forbidden-refused', job.label, `${what}: ${(err as Error).message}`)
        return
      }
      if (!granted) { this.deviceStats.forbiddenRefused++; this.event(at.name, 'forbidden-refused', job.label, what); return }
      this.event(at.name, 'forbidden-granted', job.label, what)
      this.checker.violation(2, this.step, `${job.mode} job ${job.label} held by ${holder.name}: ${what}, which its mode forbids, succeeded`, job.label, at.name)
    }
    if (job.mode === 'hold') {
      await forbidden(`a release by its owner at ${at.name} (a Hold job is released only at its terminal)`, async () => { await at.roaming?.releaseRemote({ user: job.owner, admin: false }, job.id); return true })
      await forbidden(`a grant to ${at.name} asking its terminal directly`, async () => {
        const reply = await this.hub.linkFor(at.signer.id).requestGrant(holder.signer.id, { jobId: job.id, user: job.owner, printer: 'mfp' }, AbortSignal.timeout(10_000))
        return reply.ok
      })
      await forbidden(`a fetch of its document by ${at.name} from its terminal`, async () => {
        const dest = join(at.dir, `probe-${job.label}`)
        try {
          await this.hub.linkFor(at.signer.id).fetch(holder.signer.id, job.sha256, dest, AbortSignal.timeout(10_000))
          return true
        } finally {
          await this.tracker.track(async () => await rm(dest, { force: true }))
        }
      })
      return
    }
    const stranger = [...Array(USERS).keys()].map((i) => `u${i + 1}`).find((u) => u !== job.owner && u !== delegateOf(job.owner)) ?? 'u1'
    const user = job.mode === 'pull' && this.rng() < 0.5 ? delegateOf(job.owner) : stranger
    const who = user === stranger ? `${user}, neither its owner nor a delegate,` : `the owner's delegate ${user} (a Pull job is its owner's alone)`
    await forbidden(`a release by ${who} at ${at.name}`, async () => { await at.roaming?.releaseRemote({ user, admin: false }, job.id); return true })
  }

  /**
   * A workstation's held job: its user walks to a printer of the site (the site's own, or a
   * terminal's, whichever is up) and releases it there, through the client's grant; or,
   * `CLIENT_PRINT_NOW_SHARE` of the time, sends it to the fallback printer from the
   * client's page (FallbackPrinting.printNow).
   */
  private async releaseClientJob (job: SimJob, holder: SimPeer): Promise<void> {
    if (this.rng() < CLIENT_PRINT_NOW_SHARE) {
      this.clientStats.printNow++
      try {
        const sent = await (holder.fallback ?? fail()).printNow(job.id)
        this.event(holder.name, 'sent-to-fallback', job.label, sent.state)
        this.fallbackRetries.push(job)
      } catch (err) {
        this.event(holder.name, 'fallback-refused', job.label, (err as Error).message)
      }
      return
    }
    const at = this.pick(this.upReleasers().filter((p) => p.site === holder.site))
    if (at !== undefined) await this.releaseAt(job, at)
  }

  /**
   * A user at some site releases one of their jobs held at a partner site, as that site lists
   * it; or at a terminal, one held by the terminal's site.
   */
  private async releaseElsewhere (): Promise<void> {
    const site = this.pick(this.upReleasers())
    const listed = (site?.roaming?.listPartnerJobs() ?? []).filter((v) => v.state === 'held')
    let candidates = listed.map((v) => this.byLabel.get(this.labels.get(v.id) ?? '')).filter((j) => j !== undefined)
    // the standard credit workload: most users release where they live (their home site's server or terminals)
    if (site !== undefined && this.credit?.printsAtHome() === true) candidates = candidates.filter((j) => this.credit?.homeSite(j.owner) === site.site)
    // in creation order, not replica order, so the seeded pick does not depend on how updates arrived
    candidates.sort((a, b) => a.index - b.index)
    const job = this.pick(candidates)
    // a Delegated job, listed here, is released half the time by the owner's delegate
    if (job !== undefined && site !== undefined) await this.releaseAt(job, site, job.mode === 'delegated' && this.rng() < DELEGATE_RELEASE_SHARE ? delegateOf(job.owner) : job.owner)
  }

  /**
   * Releases `job` at `site`: at its holder directly, elsewhere through the holder's grant
   * (roaming); by its owner, or by `user` (a delegate). A device-spooled job released
   * elsewhere has its holding terminal crash in the middle `HOLDER_CRASH_SHARE` of the time.
   */
  private async releaseAt (job: SimJob, site: SimPeer, user = job.owner): Promise<void> {
    const holder = this.peer(job.holder)
    this.releases.attempted++
    if (site !== holder) this.releases.roaming++
    if (job.mode !== undefined && site !== holder && holder.persistence !== undefined && !holder.crashed && this.rng() < HOLDER_CRASH_SHARE) {
      const n = this.int(0, 2)
      holder.persistence.crashAfterAppends(n)
      this.deviceStats.holderCrashes++
      this.event(holder.name, 'crash-armed', job.label, `holding terminal, after ${n} more writes, while ${site.name} releases it`)
    }
    // with credit, a user at a terminal logs in at its panel first: it takes part of the site's share of their credit
    this.credit?.beforeRelease(site, user)
    // who this peer knows is releasing (or printed) the job right now: an offline release must not ignore them
    const known = site === holder ? [] : this.releaseRecordsAt(site, job)
    const seen = site === holder ? undefined : site.roaming?.listPartnerJobs().find((v) => v.id === job.id)?.state
    if (seen !== undefined && seen !== 'held') known.push(`the holder's record of it as ${seen}`)
    try {
      if (site === holder && holder.jobs !== undefined) await holder.jobs.release(job.id, { user, admin: false })
      else if (site.roaming !== undefined) await site.roaming.releaseRemote({ user, admin: false }, job.id)
      else throw new Error(`${site.name} is down`)
      this.releases.granted++
      if (site.role === 'terminal') this.releases.atTerminals++
      if (holder.role === 'client' && site !== holder) this.clientStats.releasedElsewhere++
      if (job.mode !== undefined) {
        if (site === holder) this.deviceStats.releasedAtTerminal++
        else this.deviceStats.releasedElsewhere++
        if (site !== holder && site.role === 'terminal' && this.peers.some((p) => p.role === 'site' && p.site === holder.site && (p.mesh === undefined || p.crashed))) this.deviceStats.whileSiteDown++
        if (user !== job.owner) this.deviceStats.byDelegates++
      }
      const offline = site.roaming?.releaseOf(job.id)?.offline === true && site !== holder
      if (offline) this.releases.offline++
      this.event(site.name, offline ? 'released-offline' : 'released', job.label, user !== job.owner ? `by ${user}` : undefined)
      // half the time the owner, unsure it printed, tries again at another site the next step (its own generator: the main sequence stays)
      if (offline && this.docRng() < 0.5) this.retries.push({ job, at: site.name })
      if (offline && known.length > 0) this.checker.violation(2, this.step, `${site.name} released job ${job.label} offline while it held ${known.join(', ')}`, job.label, site.name)
      // with credit, now and then the user releases a second of their jobs held by the same holder there at once: two reservations of one user at one peer
      if (!this.pairing && this.credit?.alsoRelease() === true) {
        const other = this.heldJobs().find((j) => j !== job && j.holder === holder.name && j.owner === job.owner)
        if (other !== undefined) {
          this.pairing = true
          try { await this.releaseAt(other, site, user) } finally { this.pairing = false }
        }
      }
    } catch (err) {
      this.releases.refused++
      if (job.mode !== undefined && site.site !== holder.site && /does not roam with/.test((err as Error).message)) this.deviceStats.partnerRefused++
      this.event(site.name, 'release-refused', job.label, (err as Error).message)
    }
  }

  /**
   * A job printed offline at one site, released again at another shared-mode site that cannot
   * reach its holder either: by now it may hold the first site's release record (then it must
   * refuse), or not yet (then the duplicate is one nobody could know of).
   */
  private async retryOffline (): Promise<void> {
    for (const { job, at } of this.retries.splice(0)) {
      const holder = this.peer(job.holder)
      const others = this.upReleasers().filter((p) => p.role === 'site' && p.name !== at && p !== holder && this.network.partitioned(p.signer.id, holder.signer.id))
      const site = others[Math.floor(this.docRng() * others.length)]
      if (site !== undefined) await this.releaseAt(job, site)
    }
  }

  /**
   * A job that went to a fallback printer (the client isolated, or its user asked on the
   * page), released again by its owner at the next step at a site or terminal of its site,
   * as if its panel still listed it held: the client's held → releasing step must refuse
   * it (a fallback print and a release elsewhere of one job never both happen).
   */
  private async retryAfterFallback (): Promise<void> {
    for (const job of this.fallbackRetries.splice(0)) {
      const holder = this.peer(job.holder)
      const site = this.pick(this.upReleasers().filter((p) => p.site === holder.site))
      if (site?.roaming === undefined) continue
      this.releases.attempted++
      this.releases.roaming++
      try {
        await site.roaming.releaseRemote({ user: job.owner, admin: false }, job.id)
        this.releases.granted++
        this.clientStats.releasedElsewhere++
        this.event(site.name, 'released-after-fallback', job.label)
      } catch (err) {
        this.releases.refused++
        this.event(site.name, 'release-refused', job.label, (err as Error).message)
      }
    }
  }

  /** Other peers' release records of `job` that `p` holds and that are not returned or failed ("site-c's printing release record"). */
  private releaseRecordsAt (p: SimPeer, job: SimJob): string[] {
    const store = p.mesh?.store
    if (store === undefined) return []
    const out: string[] = []
    for (const name of store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === undefined || parsed.peer === p.signer.id) continue
      const rel = getRelease(store.get(name) ?? fail(), job.id)
      if (rel !== undefined && rel.state !== 'returned' && rel.state !== 'failed') out.push(`${this.peers.find((q) => q.signer.id === parsed.peer)?.name ?? parsed.peer}'s ${rel.state} release record`)
    }
    return out
  }

  private async remove (): Promise<void> {
    const job = this.pick(this.heldJobs())
    const holder = job === undefined ? undefined : this.peer(job.holder)
    if (job === undefined || holder?.jobs === undefined) return
    try {
      await holder.jobs.cancel(job.id, { user: job.owner, admin: false })
      this.event(holder.name, 'deleted', job.label)
    } catch (err) {
      this.event(holder.name, 'delete-refused', job.label, (err as Error).message)
    }
  }

  private async sweep (): Promise<void> {
    // clients sweep too (expiry, grants that ran out): only in runs with clients, so other runs replay as before
    const site = this.pick(this.hasClients() ? this.peers.filter((p) => (p.role === 'site' || p.role === 'terminal' || p.role === 'client') && p.roaming !== undefined && !p.crashed) : this.upReleasers())
    if (site?.jobs === undefined) return
    this.sweeps++
    try {
      await site.jobs.sweep()
      await site.roaming?.tick()
      this.credit?.atSweep(site)
      this.event(site.name, 'sweep')
      await this.checkSpool(site, 'after a sweep')
    } catch (err) {
      this.event(site.name, 'sweep-failed', undefined, (err as Error).message)
    }
  }

  // ---- faults -------------------------------------------------------------------------

  private async fault (): Promise<void> {
    const disk: readonly FaultKind[] = this.diskFaultKinds()
    const kinds = FAULT_KINDS.filter((k) => (k !== 'partition' || !this.partitioned) && (!(DISK_FAULT_KINDS as readonly FaultKind[]).includes(k) || disk.includes(k)))
    const kind = this.pick(kinds) ?? 'loss'
    const until = this.step + this.int(1, MAX_FAULT_STEPS)
    this.faultCounts[kind]++
    switch (kind) {
      case 'crash':
      case 'crash-mid-write': {
        const up = this.peers.filter((p) => p.mesh !== undefined && !p.crashed)
        // with slow disks, half the crashes strike a peer whose disk is slow (if any): what its writes not yet completed lose
        const slow = this.diskFaultKinds().includes('slow-disk') ? up.filter((p) => p.slowWrites !== undefined) : []
        const victim = this.pick(slow.length > 0 && this.rng() < SLOW_DISK_CRASH_SHARE ? slow : up)
        if (victim?.persistence === undefined) return
        victim.restartAt = until
        if (kind === 'crash') {
          victim.persistence.crash()
        } else if (victim.slowWrites !== undefined) {
          // a slow disk: the crash strikes at a moment of the peer's next work (virtual time), while some of its writes may still be under way
          const ms = this.int(0, SLOW_WRITE_MS[1])
          const persistence = victim.persistence
          this.clock.schedule(() => { if (victim.persistence === persistence) persistence.crash() }, ms)
          this.event(victim.name, 'crash-armed', undefined, `in ${ms} ms`)
          if (victim.jobs !== undefined) await this.print(victim.role === 'site' || victim.role === 'client' || (victim.role === 'terminal' && this.deviceSpooling()) ? victim : undefined)
        } else {
          const n = this.int(0, 3)
          victim.persistence.crashAfterAppends(n)
          this.event(victim.name, 'crash-armed', undefined, `after ${n} more writes`)
          // the crash strikes inside whatever the peer does next; give it something to do
          if (victim.jobs !== undefined) await this.print(victim.role === 'client' || (victim.role === 'terminal' && this.deviceSpooling()) ? victim : undefined)
        }
        return
      }
      case 'partition': {
        const ids = this.peers.map((p) => p)
        const cut = this.int(1, Math.max(1, Math.floor(ids.length / 2)))
        const shuffled = [...ids]
        for (let i = shuffled.length - 1; i > 0; i--) { const j = this.int(0, i); [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]] }
        const a = shuffled.slice(0, cut)
        const b = shuffled.slice(cut)
        this.network.partition(a.map((p) => p.signer.id), b.map((p) => p.signer.id))
        this.partitioned = true
        this.event('network', 'partition', undefined, a.map((p) => p.name).join(','))
        this.active.push({ kind, until, undo: () => { this.network.heal(); this.partitioned = false; this.event('network', 'heal') } })
        return
      }
      case 'disk-full': {
        const victim = this.pick(this.peers.filter((p) => p.mesh !== undefined && !p.crashed && p.diskFull !== true))
        if (victim === undefined) return
        const setFull = (full: boolean): void => {
          victim.diskFull = full
          if (victim.persistence !== undefined) victim.persistence.diskFull = full
        }
        setFull(true)
        this.event(victim.name, 'disk-full')
        this.active.push({ kind, until, undo: () => { setFull(false); this.event(victim.name, 'disk-space-freed') } })
        return
      }
      case 'io-error': {
        const victim = this.pick(this.peers.filter((p) => p.mesh !== undefined && !p.crashed && p.failingWrites === undefined))
        if (victim === undefined) return
        const random = seededRandom(this.int(0, 2 ** 31 - 1))
        let left = this.int(1, MAX_IO_ERRORS)
        const failing: FailingWrites = {
          fails: () => {
            if (left === 0 || random() >= IO_ERROR_RATE) return false
            left--
            this.event(victim.name, 'io-error', undefined, `${left} left`)
            return true
          }
        }
        const set = (f: FailingWrites | undefined): void => {
          victim.failingWrites = f
          if (victim.persistence !== undefined) victim.persistence.failingWrites = f
        }
        set(failing)
        this.event(victim.name, 'disk-failing', undefined, `${left} writes at most`)
        this.active.push({ kind, until, undo: () => { set(undefined); this.event(victim.name, 'disk-healthy') } })
        return
      }
      case 'slow-disk': {
        const victim = this.pick(this.peers.filter((p) => p.mesh !== undefined && !p.crashed && p.slowWrites === undefined))
        if (victim === undefined) return
        const random = seededRandom(this.int(0, 2 ** 31 - 1))
        const slow: SlowWrites = { delayMs: () => SLOW_WRITE_MS[0] + Math.floor(random() * (SLOW_WRITE_MS[1] - SLOW_WRITE_MS[0] + 1)) }
        const set = (w: SlowWrites | undefined): void => {
          victim.slowWrites = w
          if (victim.persistence !== undefined) victim.persistence.slowWrites = w
        }
        set(slow)
        this.event(victim.name, 'disk-slow')
        // writes issued meanwhile still complete in their time, after the fault is lifted
        this.active.push({ kind, until, undo: () => { set(undefined); this.event(victim.name, 'disk-fast') } })
        return
      }
      case 'clock-skew': {
        const victim = this.pick(this.peers)
        if (victim === undefined) return
        const before = victim.skewMs
        victim.skewMs = this.int(-MAX_SKEW_MS, MAX_SKEW_MS)
        this.event(victim.name, 'clock-skew', undefined, `${Math.round(victim.skewMs / 60_000)} min`)
        this.active.push({ kind, until, undo: () => { victim.skewMs = before } })
        return
      }
      default: {
        const faults: LinkFaults = { latencyMs: kind === 'delay' ? DELAY_FAULT_LATENCY : BASE_LATENCY }
        if (kind === 'loss') faults.lossRate = LOSS_FAULT_RATE
        if (kind === 'duplicate') faults.duplicateRate = DUPLICATE_FAULT_RATE
        if (kind === 'reorder') faults.reorder = true
        // a third of link faults hit the whole network, the rest one link
        const edge = this.rng() < 1 / 3 ? undefined : this.pick(this.edges)
        const between: [string, string] | undefined = edge === undefined ? undefined : [edge[0].signer.id, edge[1].signer.id]
        this.network.setFaults(faults, between)
        this.credit?.setFaults(faults, between)
        this.event(edge === undefined ? 'network' : `${edge[0].name}–${edge[1].name}`, kind)
        this.active.push({ kind, until, undo: () => { this.network.setFaults({ latencyMs: BASE_LATENCY }, between); this.credit?.setFaults({ latencyMs: BASE_LATENCY }, between) } })
      }
    }
  }

  // ---- checks -------------------------------------------------------------------------

  private peer (name: string): SimPeer {
    const p = this.peers.find((x) => x.name === name)
    if (p === undefined) throw new Error(`no peer ${name}`)
    return p
  }

  /**
   * Remembers the state of every job on its (live) holder, with the last true time it was
   * not final; checks (invariant 1, by the true clock) that no held job expired before its
   * hold and no acknowledged job vanished before its retention.
   */
  private observe (): void {
    const now = this.clock.now()
    for (const job of this.jobs) {
      const holder = this.peer(job.holder)
      if (holder.jobs === undefined || holder.crashed) continue
      const rec = holder.jobs.getById(job.id)
      if (rec === undefined) {
        this.vanished(job, holder, 'on its holder')
        continue
      }
      job.skewMin = Math.min(job.skewMin, holder.skewMs)
      job.skewMax = Math.max(job.skewMax, holder.skewMs)
      if (rec.state === 'expired' && rec.reason === 'job-expired' && job.last?.state !== 'expired' && now + this.tolerance(job) < job.createdAt + HOLD_MS) {
        this.checker.violation(1, this.step, `held job ${job.label} expired on ${holder.name} ${Math.round((now - job.createdAt) / 60_000)} min after it was created (hold ${HOLD_MS / 60_000} min by the true clock${this.skewNote(job)})`, job.label, holder.name)
      }
      // a Direct job prints on arrival: held (or expired) on its (live) terminal without ever being sent to a printer, it is lost to its user
      if (job.mode === 'direct' && (rec.state === 'held' || rec.state === 'expired') && rec.printer === undefined && !this.directHeldReported.has(job.label)) {
        this.directHeldReported.add(job.label)
        this.checker.violation(1, this.step, `Direct job ${job.label} is ${rec.state} on ${holder.name} and was never sent to its printer (it prints on arrival)`, job.label, holder.name)
      }
      if (!TERMINAL_STATES.has(rec.state)) job.liveAt = now
      if (rec.state !== job.last?.state) this.event(holder.name, `seen-${rec.state}`, job.label, rec.reason)
      job.last = rec
    }
  }

  /**
   * How far the holder's clock could have moved a job's hold or retention: a clock skewed
   * while the process runs must not (the job service measures on a monotonic clock too), but
   * a process that starts on a wrong clock cannot tell; so the skews it had at starts during
   * the job's life, beyond the lowest it had meanwhile, are tolerated (none with `strictClock`).
   */
  private tolerance (job: SimJob): number {
    if (this.opts.strictClock === true || job.loadSkews.length === 0) return 0
    return Math.max(0, Math.max(...job.loadSkews) - job.skewMin)
  }

  private skewNote (job: SimJob): string {
    return job.skewMax === job.skewMin ? '' : `; its holder's clock was off by ${Math.round(job.skewMin / 60_000)} to ${Math.round(job.skewMax / 60_000)} min meanwhile${this.tolerance(job) > 0 ? `, ${Math.round(this.tolerance(job) / 60_000)} min of it at a start, tolerated` : ''}`
  }

  /** A job may be gone only once it ended and its retention passed since, by the true clock. */
  private mayBePurged (job: SimJob): boolean {
    const last = job.last
    if (last === undefined || !TERMINAL_STATES.has(last.state)) return false
    return (job.liveAt ?? job.createdAt) + RETENTION_MS <= this.clock.now() + this.tolerance(job)
  }

  /** Invariant 1: an acknowledged job missing from `holder` must have ended and passed its retention (reported once). */
  private vanished (job: SimJob, holder: SimPeer, when: string): void {
    if (!job.acked || job.vanished === true || this.mayBePurged(job)) return
    job.vanished = true
    const last = job.last
    const ago = last === undefined ? 'never seen there' : `last seen ${last.state} ${Math.round((this.clock.now() - (job.liveAt ?? job.createdAt)) / 60_000)} min after it was last unfinished`
    this.checker.violation(1, this.step, `acknowledged job ${job.label} is missing ${when} ${holder.name}, ${ago} (retention ${RETENTION_MS / 60_000} min by the true clock${this.skewNote(job)})`, job.label, holder.name)
  }

  /**
   * Invariant 1, the bytes: every acknowledged job not yet ended still has its own document,
   * byte for byte, in its holder's spool.
   */
  private async checkSpool (p: SimPeer, when: string): Promise<void> {
    if (p.jobs === undefined || p.spool === undefined || p.crashed) return
    for (const job of this.jobs) {
      if (!job.acked || job.holder !== p.name) continue
      const rec = p.jobs.getById(job.id)
      if (rec === undefined || TERMINAL_STATES.has(rec.state) || rec.state === 'received') continue
      const path = p.spool.path(job.sha256)
      let problem: string | undefined
      try {
        const bytes = await this.tracker.track(async () => await readFile(path))
        if (createHash('sha256').update(bytes).digest('hex') !== job.sha256) problem = 'was changed'
      } catch (err) {
        problem = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is gone' : `cannot be read (${(err as Error).message})`
      }
      if (rec.sha256 !== job.sha256) problem = `is not the one its record names (${rec.sha256 ?? 'none'})`
      if (problem !== undefined) this.checker.violation(1, this.step, `the document of ${rec.state} job ${job.label} ${problem} in ${p.name}'s spool ${when}`, job.label, p.name)
    }
  }

  /**
   * Fallback printing, once the step that printed at an isolated client settled: the job
   * went to the fallback printer at once (not held any more), unless the client died
   * meanwhile. Counted, not an invariant of DESIGN.md (nothing is lost or printed twice
   * when it stays held); the summary and the clients test show it.
   */
  private checkFallback (): void {
    for (const job of this.awaitingFallback.splice(0)) {
      const holder = this.peer(job.holder)
      if (holder.jobs === undefined || holder.crashed) continue
      const state = holder.jobs.getById(job.id)?.state
      if (state !== 'held') {
        this.fallbackRetries.push(job)
        continue
      }
      this.clientStats.fallbackMissed++
      this.event(holder.name, 'fallback-missed', job.label, 'printed while no peer of its site was reachable, still held')
    }
  }

  /**
   * Invariant 2 for a device-spooled job, at the instant a printer accepts it: a Hold job
   * only on its own terminal's printer, once; a Pull, Delegated (or Direct, held again) job elsewhere only
   * through the terminal's grant: the releasing peer recorded a granted release, and the
   * terminal (when up) has the job `printing` under a grant to that peer, committed before the
   * printer saw a byte. (Printed twice: the acceptance check above; offline, counted.)
   */
  private checkDevicePrint (job: SimJob, printer: string, count: number, offline: boolean): void {
    const where = this.siteOfPrinter(printer)
    const holder = this.peer(job.holder)
    if (offline) this.deviceStats.offline++
    if (job.mode === 'hold') {
      if (where !== holder.name) this.checker.violation(2, this.step, `Hold job ${job.label} held by ${holder.name} was accepted by ${printer}: it prints only at its terminal`, job.label, where)
      else if (count > 1 && this.offlineJobs.has(job.label)) this.checker.violation(2, this.step, `Hold job ${job.label} was accepted by a printer ${count} times`, job.label, where)
      return
    }
    // a Direct job its printer gave back is held at the terminal, not pinned: listed and released elsewhere as a Pull job (README)
    if (job.mode === 'direct' && where !== holder.name) this.deviceStats.directElsewhere++
    if (where === holder.name || offline) return
    const rel = this.peers.find((p) => p.name === where)?.roaming?.releaseOf(job.id)
    if (rel?.grantId === undefined) {
      this.checker.violation(2, this.step, `${job.mode} job ${job.label} held by ${holder.name} was accepted by ${printer} with no grant of its terminal recorded there`, job.label, where)
      return
    }
    if (holder.jobs === undefined || holder.crashed) return
    const rec = holder.jobs.getById(job.id)
    const to = rec?.grant === undefined ? undefined : this.peers.find((p) => p.signer.id === rec.grant?.peer)?.name
    if (rec?.state !== 'printing' || to !== where || rec.grant?.id !== rel.grantId) {
      this.checker.violation(2, this.step, `${job.mode} job ${job.label} was accepted by ${printer} while its terminal ${holder.name} has it ${rec?.state ?? 'nowhere'}${to !== undefined ? ` under a grant to ${to}` : ''}: not committed to ${where}`, job.label, where)
    }
  }

  /** Invariant 2, device spooling: no peer but its terminal lists a Hold job (its users would try it there); each listing reported once. */
  private checkDeviceListings (): void {
    for (const p of this.upReleasers()) {
      for (const v of p.roaming?.listPartnerJobs() ?? []) {
        const job = this.byLabel.get(this.labels.get(v.id) ?? '')
        if (job?.mode !== 'hold' || job.holder === p.name || this.listedReported.has(`${job.label}@${p.name}`)) continue
        this.listedReported.add(`${job.label}@${p.name}`)
        this.checker.violation(2, this.step, `Hold job ${job.label} held by ${job.holder} is listed at ${p.name} (${v.state}): a Hold job is listed only at its terminal`, job.label, p.name)
      }
    }
  }

  /**
   * Device spooling at the end, after the heal: no Hold job's document reached another peer's
   * copies (2: it never leaves its terminal), and every acknowledged device-spooled job its
   * terminal still has is settled: printed, deleted, expired, failed, or held (1: nothing is
   * left half-released once every printer finished and every message arrived).
   */
  private async checkDeviceJobsAtEnd (): Promise<void> {
    for (const job of this.jobs) {
      if (job.mode === undefined || !job.acked) continue
      if (job.mode === 'hold') {
        for (const p of this.peers) {
          if (p.name === job.holder || p.copies === undefined) continue
          if (await this.tracker.track(async () => await (p.copies ?? fail()).has(job.sha256))) this.checker.violation(2, this.step, `Hold job ${job.label}'s document is in ${p.name}'s copies: it never leaves its terminal ${job.holder}`, job.label, p.name)
        }
      }
      const rec = this.peer(job.holder).jobs?.getById(job.id)
      if (rec !== undefined && (rec.state === 'received' || rec.state === 'releasing' || rec.state === 'printing')) {
        this.checker.violation(1, this.step, `${job.mode} job ${job.label} is still ${rec.state} on ${job.holder} after the heal${rec.grant !== undefined ? ` (grant to site ${rec.grant.site}, expires t+${Math.round((rec.grant.expiresAt - START_TIME) / 1000)}s)` : ''}`, job.label, job.holder)
      }
    }
  }

  /** Invariant 1 on a holder: every acknowledged job is still there (and not failed as never received). */
  private checkHolder (p: SimPeer, when: string): void {
    if (p.jobs === undefined) return
    for (const job of this.jobs) {
      if (!job.acked || job.holder !== p.name) continue
      const rec = p.jobs.getById(job.id)
      if (rec === undefined) {
        this.vanished(job, p, `${when} on its holder`)
      } else if (rec.state === 'received' || (rec.state === 'failed' && rec.reason === 'job-incoming-interrupted')) {
        this.checker.violation(1, this.step, `acknowledged job ${job.label} is ${rec.state} on ${p.name} ${when}`, job.label, p.name)
      }
    }
  }

  private async injectDrop (p: SimPeer): Promise<void> {
    const victim = this.jobs.find((j) => j.acked && j.holder === p.name && p.jobs?.getById(j.id)?.state === 'held')
    if (victim === undefined || p.mesh === undefined) return
    const name = this.jobDocOf(p, victim.id)
    if (name === undefined) return
    await p.mesh.store.transact(name, { kind: 'local', service: 'injected-bug' }, (d) => purgeJob(d, victim.id))
    this.event(p.name, 'injected-drop', victim.label)
  }

  private jobDocOf (p: SimPeer, id: string): DocName | undefined {
    for (const name of p.mesh?.store.openNames() ?? []) {
      const parsed = parseDocName(name)
      if (parsed?.family === 'jobs' && parsed.peer === p.signer.id && listJobs(p.mesh?.store.get(name) ?? fail()).some((j) => j.id === id)) return name
    }
    return undefined
  }

  /** Lifts every fault, restarts every peer, and runs anti-entropy until all documents agree. */
  private async finalHeal (): Promise<SimSummary['convergence']> {
    for (const f of this.active.splice(0)) f.undo()
    this.network.heal()
    this.partitioned = false
    this.network.setFaults({ latencyMs: BASE_LATENCY })
    for (const [a, b] of this.edges) this.network.setFaults({ latencyMs: BASE_LATENCY }, [a.signer.id, b.signer.id])
    this.credit?.setFaults({ latencyMs: BASE_LATENCY })
    for (const [a, b] of this.edges) this.credit?.setFaults({ latencyMs: BASE_LATENCY }, [a.signer.id, b.signer.id])
    await this.drive(async () => await this.restartCrashed())
    // users still at a panel log out (before the clocks are put right: a session ends on the clock it ran on)
    await this.drive(async () => await this.panel?.logoutAll())
    await settle(this.tracker, 'logouts')
    await this.drive(async () => await this.restartCrashed())
    for (const p of this.peers) p.skewMs = 0
    this.event('network', 'final-heal')
    if (this.opts.inject === 'diverge') this.injectDivergence()
    const startVirtual = this.clock.now()
    const startReal = Date.now()
    // printers finish what they accepted; messages in flight arrive
    let rounds = 0
    let converged = false
    this.nextAntiEntropy = Infinity
    while (rounds < MAX_FINAL_ROUNDS) {
      rounds++
      // what every peer's credit timer does: central hands credit on, reservations a crash left are settled
      this.credit?.passAll()
      await this.antiEntropy()
      await this.drain()
      await this.restartCrashed() // a crash-mid-write armed before the heal strikes in it: that process is gone
      if (this.mismatch() === undefined) { converged = true; break }
      this.clock.advanceTo(this.clock.now() + ANTI_ENTROPY_MS)
    }
    return { converged, virtualMs: Math.round(this.clock.now() - startVirtual), realMs: Date.now() - startReal, rounds }
  }

  /**
   * Tears down every crashed peer and restarts every peer that is down, now. At the heal a
   * `crash-mid-write` armed in the last steps may still strike (at the peer's next appends,
   * inside the heal's own sync); its process is gone like any other, so its in-memory state
   * (a vector its failed appends moved back) must not be compared: it restarts from its
   * folder and catches up (seeds 17 and 43 compared such a dead store, issue 18).
   */
  private async restartCrashed (): Promise<void> {
    await this.teardownAnyCrashed()
    for (const p of this.peers) if (p.mesh === undefined) await this.restart(p)
  }

  /**
   * A change applied to one replica as if a peer had sent it, but with no envelope behind it:
   * the store neither persists nor relays it, so it can never reach anyone else.
   */
  private injectDivergence (): void {
    const site = this.peers.find((p) => p.role === 'site' && p.mesh !== undefined)
    const store = site?.mesh?.store
    const name = store?.openNames().find((n) => parseDocName(n)?.family === 'jobs')
    const doc = name === undefined ? undefined : store?.get(name)
    if (site === undefined || doc === undefined) return
    doc.transact(() => doc.getMap('jobs').set('injected', { id: 'injected' }), INJECTED)
    this.event(site.name, 'injected-divergence', undefined, this.pretty(name ?? ''))
  }

  /** A document name with peer ids replaced by peer names. */
  private pretty (doc: string): string {
    let out = doc
    for (const p of this.peers) out = out.replaceAll(p.signer.id, p.name)
    return out
  }

  /** The first peer whose documents differ from central's (restricted to what it may read). */
  private mismatch (): { peer: SimPeer, doc: string, what: string } | undefined {
    const central = this.central.mesh
    if (central === undefined) return { peer: this.central, doc: '(central down)', what: '' }
    const reference = storeDigest(central.store)
    for (const p of this.peers) {
      if (p === this.central || p.mesh === undefined) continue
      const mine = storeDigest(p.mesh.store)
      const names = new Set([...Object.keys(mine), ...Object.keys(reference).filter((n) => this.mayRead(p, n))])
      for (const n of [...names].sort()) {
        if (!this.mayRead(p, n)) return { peer: p, doc: n, what: 'a document it may not read' }
        if (JSON.stringify(mine[n]) === JSON.stringify(reference[n])) continue
        const roots = [...new Set([...Object.keys(mine[n]?.roots ?? {}), ...Object.keys(reference[n]?.roots ?? {})])]
          .filter((r) => JSON.stringify(mine[n]?.roots[r]) !== JSON.stringify(reference[n]?.roots[r]))
        return { peer: p, doc: n, what: roots.length > 0 ? `root${roots.length > 1 ? 's' : ''} ${roots.join(', ')} differ` : 'same content, other signed log' }
      }
    }
    return undefined
  }

  /**
   * Who may hold which document (DESIGN.md), written out here rather than asked of the
   * product's Membership, which the check must not trust: central and sites read everything;
   * a terminal the license, the directory, every site's settings (whom its site roams with)
   * and the jobs and accounting of its site's peers (itself included); a workstation's client the same but the
   * directory (users' PIN and card hashes go only where users log in).
   */
  private mayRead (p: SimPeer, doc: string): boolean {
    if (p.role === 'central' || p.role === 'site') return true
    const name = parseDocName(doc)
    if (name === undefined) return false
    if (name.family === 'license') return true
    // every peer's shares of users' credit: a share given to a terminal or a client is in the giver's document
    if (name.family === 'escrow') return true
    if (name.family === 'directory') return p.role !== 'client'
    if (p.role === 'client' && name.family !== 'site' && name.family !== 'jobs' && name.family !== 'acct') return false
    if (name.family === 'site') return true
    const writer = this.peers.find((q) => q.signer.id === name.peer)
    return writer !== undefined && (writer === p || writer.site === p.site)
  }

  /** A peer's log vector of a document, writers by name. */
  private logOf (p: SimPeer, doc: string): string {
    const vector = p.mesh?.store.vector(doc as DocName) ?? new Map()
    return `{${[...vector].map(([writer, seq]) => `${this.peers.find((q) => q.signer.id === writer)?.name ?? writer}: ${seq}`).join(', ')}}`
  }

  private async finalChecks (converged: boolean): Promise<void> {
    // 4: identical documents
    if (!converged) {
      const m = this.mismatch()
      const logs = m === undefined ? '' : `; signed logs (writer: last sequence number) ${this.peers.filter((q) => q.mesh?.store.get(m.doc as DocName) !== undefined).map((q) => `${q.name} ${this.logOf(q, m.doc)}`).join(', ')}`
      this.checker.violation(4, this.step, `no convergence after ${MAX_FINAL_ROUNDS} anti-entropy rounds: ${m?.peer.name ?? '?'} differs from central on ${this.pretty(m?.doc ?? '?')} (${m?.what ?? '?'})${logs}`, undefined, m?.peer.name)
    }
    // 1: every acknowledged job on its holder and in every replica
    this.observe()
    // holders: sites, workstations' clients (client spooling) and terminals (device spooling; none without it)
    for (const p of this.peers) if (p.role !== 'central') this.checkHolder(p, 'at the end')
    for (const p of this.peers) if (p.role !== 'central') await this.checkSpool(p, 'at the end')
    if (this.deviceSpooling()) {
      this.checkDeviceListings()
      await this.checkDeviceJobsAtEnd()
    }
    const central = this.central.mesh
    if (central === undefined) return
    for (const job of this.jobs) {
      if (!job.acked) continue
      const holder = this.peer(job.holder)
      const present = holder.jobs?.getById(job.id) !== undefined
      if (!present) continue // purged by retention (checked on the holder above)
      for (const p of this.peers) {
        const store = p.mesh?.store
        if (store === undefined || !this.mayRead(p, `v1/jobs/${holder.signer.id}/2026-11`)) continue
        const found = store.openNames().some((n) => n.startsWith(`v1/jobs/${holder.signer.id}/`) && listJobs(store.get(n) ?? fail()).some((r) => r.id === job.id))
        if (!found) this.checker.violation(1, this.step, `acknowledged job ${job.label} is missing from ${p.name}'s replica after convergence`, job.label, p.name)
      }
    }
    // 3: charged exactly once per completed print, exactly what the printer printed, at every peer
    if (this.opts.inject === 'drop-usage') this.injectDropUsage()
    this.observe()
    for (const [label, times] of this.ledger.completed()) {
      const job = this.byLabel.get(label)
      if (job !== undefined && times > 1) this.checkDuplicate(job, times)
    }
    for (const p of this.peers) this.checkCharges(p)
    // 2: a holder knows its job came out of a printer (printed, or printed elsewhere after it ended here)
    for (const [label, prints] of this.prints) {
      const job = this.byLabel.get(label)
      const rec = job === undefined ? undefined : this.peer(job.holder).jobs?.getById(job.id)
      if (job === undefined || rec === undefined || prints.length === 0) continue
      if (rec.state !== 'printed' && rec.printedBy === undefined) this.checker.violation(2, this.step, `job ${label} came out of ${prints.map((x) => x.site).join(' and ')}'s printer, but its holder ${job.holder} has it ${rec.state}`, label, job.holder)
    }
    // 5: credit
    this.credit?.finalChecks()
  }

  /** What a print of `job` costs as its printer reports it: the job's pages and colour pages × the copies sent, sheets for the sides sent. */
  private truth (job: SimJob, print: { copies?: number, sides?: string, monochrome?: boolean }): Pick<UsageRecord, 'kind' | 'user' | 'pages' | 'colorPages' | 'sheets' | 'copies'> {
    const copies = print.copies ?? job.copies
    // sheets counted here, not with the product's sheetsFor: a check must not share the code it checks
    const perCopy = (print.sides ?? job.sides) === 'one-sided' ? job.pages : Math.ceil(job.pages / 2)
    // a printer sent the job in monochrome prints no colour page
    return { kind: 'print', user: job.owner, pages: job.pages * copies, colorPages: print.monochrome === true ? 0 : job.colorPages * copies, sheets: perCopy * copies, copies }
  }

  /**
   * Invariant 3 at one peer, over every usage record in every accounting document it holds
   * (not de-duplicated): each record is a print some printer of its writer completed, with
   * that print's pages, colour pages, sheets, copies, kind and user; a writer charges a job
   * at most once (across its periods); where the peer may read every writer's documents,
   * every completed print is charged by the peer whose printer printed it; and the totals
   * per user (the product's report, `totalUsageBy`) equal the printers' totals per user,
   * each job once.
   */
  private checkCharges (p: SimPeer): void {
    const store = p.mesh?.store
    const central = this.central.mesh
    if (store === undefined || central === undefined) return
    const byId = new Map(this.jobs.map((j) => [j.id, j]))
    const peerOf = new Map(this.peers.map((q) => [q.signer.id, q]))
    const all: UsageRecord[] = []
    // with panels, every record with its writer, for the copy sessions' check (simulations/panel-sim.ts)
    const withWriter: Array<UsageRecord & { writer: string }> = []
    const byJobWriter = new Map<string, string[]>()
    for (const n of store.openNames()) {
      const parsed = parseDocName(n)
      if (parsed?.family !== 'acct' || parsed.peer === undefined) continue
      const writer = peerOf.get(parsed.peer)?.name ?? parsed.peer
      for (const r of listUsage(store.get(n) ?? fail())) {
        if (this.panel !== undefined) withWriter.push({ ...r, writer })
        // with panels, copies are checked against the copy sessions
        if (this.panel !== undefined && r.kind === 'copy') continue
        all.push(r)
        const job = byId.get(r.jobId)
        const label = job?.label ?? r.id
        const where = `${p.name}'s copy of ${this.pretty(n)}`
        if (job === undefined || r.id !== `${job.id}/print`) {
          this.checker.violation(3, this.step, `${where} charges ${r.id} (job ${label}), not a print of a job under its usage id`, job?.label, writer)
          continue
        }
        const key = `${label}@${writer}`
        byJobWriter.set(key, [...(byJobWriter.get(key) ?? []), this.pretty(n)])
        const print = (this.prints.get(label) ?? []).find((x) => x.site === writer)
        if (print === undefined) {
          this.checker.violation(3, this.step, `${where} charges job ${label}, which ${writer}'s printer never completed (printers completed it: ${(this.prints.get(label) ?? []).map((x) => x.site).join(', ') || 'nowhere'})`, label, writer)
          continue
        }
        const want = { printer: print.printer, ...this.truth(job, print) }
        const got = { printer: r.printer, kind: r.kind, user: r.user, pages: r.pages, colorPages: r.colorPages, sheets: r.sheets, copies: r.copies }
        if (JSON.stringify(got) !== JSON.stringify(want)) this.checker.violation(3, this.step, `${where} charges job ${label} ${JSON.stringify(got)}, the printer printed ${JSON.stringify(want)}`, label, writer)
      }
    }
    for (const [key, docs] of byJobWriter) {
      if (docs.length > 1) this.checker.violation(3, this.step, `${p.name} holds ${docs.length} usage records of job ${key.split('@')[0]} written by ${key.split('@')[1]} (${docs.join(', ')})`, key.split('@')[0], key.split('@')[1])
    }
    // completeness and reports: only where the peer may read every writer's accounting
    const readsAll = this.peers.every((q) => q.role === 'central' || p === this.central || this.mayRead(p, `v1/acct/${q.signer.id}/2026-11`))
    this.panel?.checkCopies(p.name, withWriter, readsAll)
    if (p === this.central) this.panel?.finish(withWriter)
    if (!readsAll) return
    const want = new Map<string, { jobs: number, pages: number, colorPages: number, sheets: number }>()
    for (const [label, prints] of this.prints) {
      const job = this.byLabel.get(label)
      if (job === undefined || prints.length === 0) continue
      for (const print of prints) {
        if (!byJobWriter.has(`${label}@${print.site}`)) this.checker.violation(3, this.step, `job ${label} came out of ${print.site}'s printer but ${p.name} holds no charge of it by ${print.site}`, label, print.site)
      }
      const t = this.truth(job, prints[0])
      const u = want.get(job.owner) ?? { jobs: 0, pages: 0, colorPages: 0, sheets: 0 }
      want.set(job.owner, { jobs: u.jobs + 1, pages: u.pages + t.pages, colorPages: u.colorPages + t.colorPages, sheets: u.sheets + t.sheets })
    }
    const report = new Map(totalUsageBy(all, 'user').map((t) => [t.key, { jobs: t.jobs, pages: t.pages, colorPages: t.colorPages, sheets: t.sheets }]))
    for (const user of new Set([...want.keys(), ...report.keys()])) {
      const w = JSON.stringify(want.get(user) ?? { jobs: 0, pages: 0, colorPages: 0, sheets: 0 })
      const r = JSON.stringify(report.get(user) ?? { jobs: 0, pages: 0, colorPages: 0, sheets: 0 })
      if (w !== r) this.checker.violation(3, this.step, `${p.name}'s usage report for ${user} says ${r}, the printers printed ${w}`, undefined, p.name)
    }
  }

  /**
   * Invariant 2 for a job that came out of printers more than once: allowed only when an
   * offline release was among the prints, and then its holder must name every site that
   * printed it (as `printedBy`, as itself, or in `duplicates`).
   */
  private checkDuplicate (job: SimJob, times: number): void {
    const prints = this.prints.get(job.label) ?? []
    const holder = this.peer(job.holder)
    // a workstation's job is printed once, wherever: its fallback printer or a release elsewhere, never both
    if (!prints.some((p) => p.offline) || holder.role === 'client') {
      this.checker.violation(2, this.step, `job ${job.label}${holder.role === 'client' ? ` held by the workstation ${holder.name}` : ''} came out of a printer ${times} times${holder.role === 'client' ? ` (${prints.map((p) => p.site).join(', ')})` : ''}`, job.label, job.holder)
      return
    }
    const rec = holder.jobs?.getById(job.id) ?? job.last
    const nameOf = (peer: string): string => this.peers.find((p) => p.signer.id === peer)?.name ?? peer
    const named = new Set([...(rec?.duplicates ?? []).map((d) => nameOf(d.peer))])
    if (rec?.state === 'printed') named.add(rec.printedBy === undefined ? holder.name : nameOf(rec.printedBy.peer))
    for (const { site } of prints) {
      if (named.has(site)) continue
      this.checker.violation(2, this.step, `job ${job.label} printed offline at ${prints.map((p) => p.site).join(' and ')}: the print at ${site} was not detected by its holder ${holder.name}`, job.label, job.holder)
    }
    this.event(holder.name, 'offline-duplicate', job.label, prints.map((p) => p.site).join(','))
  }

  /** The peer whose printer is `printer` (`<site>/mfp`, `<terminal>/mfp`, `<client>/fallback`). */
  private siteOfPrinter (printer: string): string { return printer.split('/')[0] }

  private injectDropUsage (): void {
    const central = this.central.mesh
    if (central === undefined) return
    for (const n of central.store.openNames()) {
      if (parseDocName(n)?.family !== 'acct') continue
      const doc = central.store.get(n)
      const first = doc === undefined ? undefined : listUsage(doc)[0]
      if (doc === undefined || first === undefined) continue
      doc.transact(() => doc.getMap('usage').delete(first.id), INJECTED)
      this.event('central', 'injected-drop-usage', this.jobs.find((j) => `${j.id}/print` === first.id)?.label)
      return
    }
  }

  private summary (convergence: SimSummary['convergence'], realMs: number): SimSummary {
    const states = new Map<string, number>()
    let purged = 0
    const finalState = new Map<string, string>()
    for (const job of this.jobs) {
      const holder = this.peer(job.holder)
      const rec = holder.jobs?.getById(job.id)
      const state = rec?.state ?? (job.last !== undefined ? `purged-${job.last.state}` : 'never-held')
      finalState.set(job.label, state)
      if (rec === undefined) purged++
      const s = rec?.state ?? job.last?.state ?? 'failed'
      states.set(s, (states.get(s) ?? 0) + 1)
    }
    const stats = this.peers.map((p) => p.mesh?.sync.getStats()).filter((s) => s !== undefined)
    const hash = createHash('sha256')
    for (const e of this.events) hash.update(`${e.step}|${e.at}|${e.peer}|${e.kind}|${e.job ?? ''}|${e.detail ?? ''}\n`)
    for (const [label, state] of finalState) hash.update(`${label}=${state}\n`)
    return {
      seed: this.opts.seed,
      peers: { central: 1, sites: this.peers.filter((p) => p.role === 'site').length, terminals: this.opts.terminals, clients: this.opts.clients ?? 0 },
      steps: this.opts.steps,
      jobs: {
        created: this.jobs.length,
        acknowledged: this.jobs.filter((j) => j.acked).length,
        printed: this.ledger.completed().size,
        deleted: states.get('deleted') ?? 0,
        expired: states.get('expired') ?? 0,
        failed: states.get('failed') ?? 0,
        purged,
        held: states.get('held') ?? 0
      },
      releases: { ...this.releases, duplicates: [...this.prints.values()].filter((ps) => ps.length > 1 && ps.some((p) => p.offline)).length },
      sweeps: this.sweeps,
      clients: { ...this.clientStats },
      deviceSpooling: { ...this.deviceStats, jobs: { ...this.deviceStats.jobs }, printed: { ...this.deviceStats.printed } },
      ...(this.credit !== undefined ? { credit: { ...this.credit.stats } } : {}),
      ...(this.panel !== undefined ? { panel: { ...this.panel.stats } } : {}),
      faults: { ...this.faultCounts },
      messages: {
        envelopesIn: stats.reduce((n, s) => n + s.envelopesIn, 0),
        envelopesOut: stats.reduce((n, s) => n + s.envelopesOut, 0)
      },
      convergence,
      // invariant 5 (credit) is checked, and so reported, only in runs with credit
      invariants: Object.fromEntries(INVARIANTS.filter((i) => (i.id !== 5 || this.credit !== undefined) && (i.id !== 6 || this.panel !== undefined)).map((i) => [i.id, this.checker.violations.some((v) => v.invariant === i.id) ? 'FAIL' : 'PASS'])) as Record<InvariantId, 'PASS' | 'FAIL'>,
      violations: this.checker.violations,
      fingerprint: hash.digest('hex'),
      realMs
    }
  }

  async teardown (): Promise<void> {
    this.credit?.close()
    for (const p of this.peers) {
      const { jobs, mesh } = p
      p.jobs = undefined
      p.mesh = undefined
      try {
        await jobs?.stop()
        await mesh?.stop()
      } catch (err) {
        this.logger.error({ err, peer: p.name }, 'stopping a simulated peer failed')
      }
    }
    if (this.root !== '') await rm(this.root, { recursive: true, force: true })
  }
}

/** Origin of injected bugs: looks like a peer's change, so the store neither persists nor relays it. */
const INJECTED = { kind: 'peer', peer: 'injected-bug' } as const

function siteId (i: number): string {
  // a, b, …, z, aa, ab, …
  let s = ''
  let n = i
  do { s = String.fromCharCode(97 + (n % 26)) + s; n = Math.floor(n / 26) - 1 } while (n >= 0)
  return s
}

function fail (): never {
  throw new Error('document vanished while it was being read')
}

/** /dev/shm when it is a writable folder (level's fsyncs cost nothing there), else the OS temp dir. */
async function defaultDataDir (): Promise<string> {
  try {
    if ((await stat('/dev/shm')).isDirectory()) {
      const probe = await mkdtemp(join('/dev/shm', 'printmesh-probe-'))
      await rm(probe, { recursive: true, force: true })
      return '/dev/shm'
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'EACCES') throw err
  }
  return tmpdir()
}
