/**
 * The release engine as services, for every role that holds job bytes (sites today;
 * terminals with device spooling and clients with client spooling build on the same):
 *
 *   credit → analyzer → print-engine → jobs → roaming (→ release-server, escrow-server, on libp2p)
 *
 * `jobs` is the domain of the jobs this peer holds (intake, hold, release, charge);
 * `roaming` lists partners' jobs, asks their holders for grants and documents, and as
 * holder answers other peers' grant and fetch requests; both print through the one
 * `print-engine` (one lane per printer, charge once). The factories read what they need
 * from the node's components, so the CLI's site (libp2p, worker pool, wall clock) and the
 * in-process simulator (memory roaming hub, cached analysis, virtual clock) build the
 * same services from one registry, {@link releaseServices}.
 *
 * Components these services need besides the peer core (node/peer.ts):
 *   spool     this peer's own job documents; copies: partners' documents fetched here
 *   printers  output devices by name
 *   roamingLink  how grant and fetch requests reach a holder (libp2p, or the simulator's hub)
 */
import type { Logger } from 'pino'
import { DocumentAnalyzer } from '../devices/documents/analyzer.ts'
import type { DocumentInfo } from '../devices/documents/index.ts'
import { createJobService, type JobService, type JobServiceInit } from '../devices/jobs/service.ts'
import { createRoamingService, type DirectPrinters } from '../devices/jobs/roaming.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import { PrintEngine } from '../devices/jobs/print-engine.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { QueueInfo, RoamingLink } from '../devices/jobs/types.ts'
import { intakeLimits, type IntakeLimits } from '../devices/jobs/intake-limits.ts'
import type { Spool } from '../devices/spool.ts'
import type { DocStore } from '../crdt/store.ts'
import type { Membership } from '../crdt/membership.ts'
import type { Signer } from '../crdt/envelope.ts'
import type { SiteId } from '../crdt/names.ts'
import { adminCapabilities } from '../crdt/capability.ts'
import type { Libp2p } from '@libp2p/interface'
import { verifyPeerSignature } from '../transports/identity.ts'
import type { BlobServerOptions } from '../transports/blob.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import { serveRoaming } from './roaming.ts'
import type { Clock, PeerSelf } from './peer.ts'
import type { ServiceRegistry } from './roles.ts'
import { delegationService, type DelegationService } from './delegation.ts'
import { creditService, escrowServerService, type CreditService } from './credit.ts'

/** Document analysis: a pool of worker threads on a real node (devices/documents/analyzer.ts). */
export interface AnalyzerService extends Startable {
  parse: (path: string, format: string, signal?: AbortSignal) => Promise<DocumentInfo>
}

/** How each release ended, for metrics (a node's NodeMetrics has it). */
export interface ReleaseMetrics {
  released: (outcome: 'printed' | 'failed' | 'held', seconds: number) => void
  /** Bytes of job documents this peer sent to other peers (release-server); a node on libp2p has it. */
  documentBytesSent?: (bytes: number) => void
}

/** Options of the release engine of one peer. */
export interface ReleaseServicesInit {
  /** The site this peer serves (its own for a site; the terminal's or client's site otherwise). */
  site: SiteId
  /** Host name partner sites show beside this site's jobs; only the site's own server publishes one (a terminal does not). */
  hostname?: string
  /** This peer's queues (the first is the default). */
  queues: QueueInfo[]
  /** Job service timings (see JobServiceInit); `sweepMs: 0` leaves sweeps to the caller. */
  jobs?: Pick<JobServiceInit, 'holdMs' | 'retentionMs' | 'sweepMs' | 'busyBackoffMs' | 'deviceName'>
  /** Grant lifetime and the roaming pass period (`tickMs: 0` leaves passes to the caller). */
  roaming?: { grantTtlMs?: number, tickMs?: number }
  /** Cap on the rate this peer sends job documents to partners (release-server). */
  blob?: Partial<BlobServerOptions>
  /** A holder that sends its jobs to other peers' printers itself (a workstation's client: client → printer). */
  directPrinters?: DirectPrinters
  /** A site's server takes the jobs its workstations' clients hand over (client spooling off), under its intake limits. */
  handOver?: { limits?: Partial<IntakeLimits> }
}

/** The components the release services read. */
export interface ReleaseComponents {
  self: Pick<PeerSelf, 'id'>
  signer: Signer
  store: DocStore
  membership: Membership
  clock: Clock
  logger: Logger
  spool: Spool
  copies: Spool
  printers: ReadonlyMap<string, OutputDevice>
  roamingLink: RoamingLink
  metrics: ReleaseMetrics
  host: Libp2p
  documents: Startable
  analyzer: AnalyzerService
  'print-engine': PrintEngine & Startable
  jobs: JobService
  roaming: RoamingService
  delegation: DelegationService
  credit: CreditService
}
type C = ReleaseComponents

/** Roles whose peers release jobs held elsewhere (at their printers) and so may ask holders for grants and documents. */
const RELEASING_ROLES: ReadonlySet<string> = new Set(['site', 'terminal'])

/** The site of a peer holding a valid, unrevoked site or terminal certificate; undefined for anyone else. */
export function certifiedSiteOf (membership: Membership): (peer: string) => SiteId | undefined {
  return (p: string): SiteId | undefined => {
    const who = membership.info(p)
    return who !== undefined && RELEASING_ROLES.has(who.role) ? who.site : undefined
  }
}

/** Document analysis in a pool of worker threads; its workers end on stop. */
export const analyzerService = (): ServiceFactory<AnalyzerService> => serviceFactory<C, AnalyzerService>(['logger'], ({ logger }) => {
  const analyzer = new DocumentAnalyzer(logger)
  return { parse: async (path, format, signal) => await analyzer.parse(path, format, signal), start: async () => {}, stop: async () => { await analyzer.close() } }
})

/**
 * The release engine's services by name (node/roles.ts lists which a role has). The
 * libp2p `release-server` is here too: a node on the memory transport registers its
 * roaming service with its hub instead.
 */
export function releaseServices (init: ReleaseServicesInit): ServiceRegistry {
  return {
    analyzer: analyzerService,
    delegation: delegationService,
    credit: () => creditService({ site: init.site }),
    'escrow-server': escrowServerService,
    'print-engine': () => serviceFactory<C, PrintEngine & Startable>(['self', 'store', 'printers', 'clock', 'logger', 'credit'], (c) =>
      Object.assign(new PrintEngine({ peer: c.self.id, site: init.site }, { store: c.store, printers: c.printers, logger: c.logger, now: c.clock.now, credit: c.credit }), { start: async () => {}, stop: async () => {} })),
    jobs: () => serviceFactory<C, JobService>(['self', 'store', 'documents', 'spool', 'printers', 'analyzer', 'print-engine', 'metrics', 'clock', 'logger', 'delegation'], (c) => createJobService(
      { peer: c.self.id, site: init.site, queues: init.queues, ...init.jobs },
      {
        store: c.store,
        spool: c.spool,
        printers: c.printers,
        logger: c.logger,
        engine: c['print-engine'],
        analyze: async (path, format, signal) => await c.analyzer.parse(path, format, signal),
        onReleaseSettled: c.metrics.released,
        delegation: c.delegation,
        now: c.clock.now,
        ...(c.clock.monotonic !== undefined ? { monotonic: c.clock.monotonic } : {})
      })),
    roaming: () => serviceFactory<C, RoamingService>(['self', 'signer', 'store', 'spool', 'copies', 'printers', 'jobs', 'print-engine', 'roamingLink', 'membership', 'clock', 'logger', 'delegation'], (c) => createRoamingService(
      {
        peer: c.self.id,
        site: init.site,
        ...(init.hostname !== undefined ? { hostname: init.hostname } : {}),
        ...(init.jobs?.deviceName !== undefined ? { deviceName: init.jobs.deviceName } : {}),
        ...(init.handOver !== undefined ? { handOver: { limits: intakeLimits(init.handOver.limits) } } : {}),
        ...init.roaming
      },
      {
        store: c.store,
        spool: c.spool,
        copies: c.copies,
        printers: c.printers,
        jobs: c.jobs,
        link: c.roamingLink,
        siteOf: certifiedSiteOf(c.membership),
        capabilities: adminCapabilities(c.signer, (p) => c.membership.info(p)?.role, verifyPeerSignature, c.clock.now),
        engine: c['print-engine'],
        logger: c.logger,
        delegation: c.delegation,
        roleOf: (p) => c.membership.info(p)?.role,
        memberOf: (p) => c.membership.info(p),
        ...(init.directPrinters !== undefined ? { directPrinters: init.directPrinters } : {}),
        now: c.clock.now,
        ...(c.clock.sleep !== undefined ? { sleep: c.clock.sleep } : {})
      })),
    'release-server': () => serviceFactory<C & { libp2p: Startable }, Startable>(['host', 'libp2p', 'roaming', 'metrics', 'logger'], (c) => {
      let stopServing: (() => Promise<void>) | undefined
      const counted = c.metrics.documentBytesSent !== undefined ? { onSent: c.metrics.documentBytesSent } : {}
      return {
        start: async () => { stopServing = await serveRoaming(c.host, c.roaming, c.logger, { ...counted, ...init.blob }) },
        stop: async () => { await stopServing?.() }
      }
    })
  }
}
