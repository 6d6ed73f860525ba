/**
 * One in-process mesh peer, shared by the simulator and the sync tests (mesh-harness.ts),
 * built like every node: the role's services through node/roles.ts and node/compose.ts,
 * over components this file prepares — a real level store in its own folder, a real Ed25519
 * identity and certificate, a {@link Membership}, the {@link MemoryNetwork} as transport and,
 * from the simulator, a virtual clock, a persistence wrapper that emulates kill -9, a
 * verifier wrapper, and the release engine's components (spool, printers, roaming link).
 */
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { Membership } from '../crdt/membership.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import { issueCertificate, CERT_LIFETIME_MS, type Certificate, type Role } from '../crdt/license.ts'
import type { PeerId, SiteId } from '../crdt/names.ts'
import type { Signer, Verifier } from '../crdt/envelope.ts'
import type { MemoryNetwork, MemoryTransport } from '../transports/memory.ts'
import { verifyPeerSignature } from '../transports/identity.ts'
import { createNode, type Node, type Startable } from '../node/compose.ts'
import { IN_PROCESS_CORE, servicesOf, type ServiceRegistry } from '../node/roles.ts'
import { documentsService, memoryTransportService, revocationsService, syncService, SYSTEM_CLOCK, type Clock, type PeerSelf } from '../node/peer.ts'

/**
 * Root maps of the document families (crdt/*.ts), plus `m`, the root the sync tests write.
 * A Y.Doc only knows a root type once it is named, so snapshots name each of these.
 */
export const SNAPSHOT_ROOTS: readonly string[] = ['m', 'jobs', 'releases', 'settings', 'usage', 'users', 'certificates', 'revoked', 'tokens', 'requests']

/** Default anti-entropy period of assembled peers: an hour, so the caller drives rounds itself. */
export const MANUAL_ANTI_ENTROPY_MS = 3_600_000

/** What it takes to start one mesh peer. */
export interface MeshPeerInit {
  network: MemoryNetwork
  /** Human name (`central`, `site-a`, `terminal-a1`), used in logs and traces. */
  name: string
  signer: Signer
  role: Role
  site?: SiteId
  /** The central's peer id. */
  authority: string
  /** This peer's certificate (none for central). */
  certificate?: Certificate
  /** Folder of this peer's data; the level database lives in `<dir>/db`. */
  dir: string
  antiEntropyMs?: number
  logger?: Logger
  /** Wraps the level persistence (the simulator's crash and I/O tracking hooks). */
  wrapPersistence?: (p: Persistence) => Persistence
  /** Signature verifier (default {@link verifyPeerSignature}). */
  verify?: Verifier
  /** Clock of the membership checks (default Date.now). */
  now?: () => number
  /** Monotonic clock (a simulator's true virtual time, unskewed; default `performance.now`). */
  monotonic?: () => number
  /** Timer for the sync engine's own delayed work (a simulator's virtual clock). */
  schedule?: (fn: () => void, ms: number) => void
  /** Waits before a retry (a simulator's virtual clock; default a timer). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  /** The services to run, in start order (default {@link IN_PROCESS_CORE}: the peer core). */
  services?: readonly string[]
  /** Factories beyond the in-process peer core (the release engine's, node/release.ts). */
  registry?: ServiceRegistry
  /** Components those services read besides the core's (spool, printers, roamingLink, …). */
  components?: Record<string, unknown>
}

/** One started mesh peer. */
export interface MeshPeer {
  name: string
  id: PeerId
  signer: Signer
  role: Role
  site?: SiteId
  store: DocStore
  membership: Membership
  sync: SyncEngine
  transport: MemoryTransport
  /** Every running service by name (jobs, roaming, … when the peer runs them). */
  services: Readonly<Record<string, Startable>>
  dir: string
  logger: Logger
  /** Stops every service in reverse start order and closes the store (data stays for a restart). Safe twice. */
  stop (): Promise<void>
  /** JSON of every open document, for convergence checks. */
  snapshot (): Record<string, unknown>
}

/** The JSON of every open document of a store that has content (see {@link SNAPSHOT_ROOTS}). */
export function snapshotStore (store: DocStore): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const n of store.openNames().sort()) {
    const doc = store.get(n)
    if (doc === undefined) continue
    const json = Object.fromEntries(SNAPSHOT_ROOTS.map((r) => [r, doc.getMap(r).toJSON()]).filter(([, v]) => Object.keys(v).length > 0))
    if (Object.keys(json).length > 0) out[n] = json
  }
  return out
}

/** A certificate issued by `central` binding `peer` to a role (and site), valid from `now`. */
export async function issuePeerCertificate (central: Signer, peer: string, role: Role, site: string | undefined, now: number): Promise<Certificate> {
  return await issueCertificate(central, { peer, role, ...(site !== undefined ? { site } : {}), issuedAt: now, expiresAt: now + CERT_LIFETIME_MS })
}

/** Metrics of an in-process node: none are exported, so every observation is dropped. */
const NO_METRICS = { syncApplied: () => {}, released: () => {} }

/** The in-process peer core's factories: a {@link MemoryNetwork} transport instead of libp2p. */
const IN_PROCESS_REGISTRY: ServiceRegistry = {
  documents: documentsService,
  transport: memoryTransportService,
  sync: syncService,
  revocations: revocationsService
}

/**
 * Opens the peer's level store and membership, then builds and starts its services
 * (`init.services`, default the peer core) through {@link createNode}. The transport is
 * started but not dialled: the caller connects peers.
 */
export async function startMeshPeer (init: MeshPeerInit): Promise<MeshPeer> {
  const { name, signer, role, site, authority, certificate, dir } = init
  const verify = init.verify ?? verifyPeerSignature
  const level = await LevelPersistence.open(join(dir, 'db'))
  const store = new DocStore(init.wrapPersistence?.(level) ?? level, signer)
  const clock: Clock = {
    now: init.now ?? SYSTEM_CLOCK.now,
    ...(init.monotonic !== undefined ? { monotonic: init.monotonic } : {}),
    ...(init.schedule !== undefined ? { schedule: init.schedule } : {}),
    ...(init.sleep !== undefined ? { sleep: init.sleep } : {})
  }
  const membership = new Membership({
    self: signer.id,
    authority,
    role,
    ...(site !== undefined ? { site } : {}),
    ...(certificate !== undefined ? { certificate } : {}),
    now: clock.now
  }, verify)
  const logger = (init.logger ?? pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })).child({ peer: name })
  const self: PeerSelf = {
    id: signer.id,
    role,
    ...(site !== undefined ? { site } : {}),
    dataDir: dir,
    networkKeyFile: '',
    authority,
    bootstrap: [],
    antiEntropyMs: init.antiEntropyMs ?? MANUAL_ANTI_ENTROPY_MS,
    dropExpiredMs: 0 // nothing is dropped by age in process: runs are short, and no real-time timer may fire in a simulation
  }
  const components = {
    logger,
    self,
    signer,
    verify,
    clock,
    store,
    membership,
    network: init.network,
    metrics: NO_METRICS,
    lastSeen: new Map<string, number>(),
    retained: () => true,
    ...init.components
  }
  const services = init.services ?? IN_PROCESS_CORE
  let node: Node<{ sync: SyncEngine, transport: MemoryTransport }>
  try {
    node = createNode({ components, services: servicesOf(role, services, { ...IN_PROCESS_REGISTRY, ...init.registry }), logger })
    await node.start()
  } catch (err) {
    await store.close()
    throw err
  }
  const { sync, transport } = node.services
  return {
    name,
    id: signer.id,
    signer,
    role,
    ...(site !== undefined ? { site } : {}),
    store,
    membership,
    sync,
    transport,
    services: node.services,
    dir,
    logger,
    stop: async () => { await node.stop() },
    snapshot: () => snapshotStore(store)
  }
}
