/**
 * What every printmesh process is, whatever its role: a libp2p peer with a persisted key,
 * a signed document store, a membership (who is who, who may write what), a transport and
 * a sync engine. Roles (node/site.ts, node/central.ts, node/terminal.ts) build on it.
 *
 * Mesh state in the data folder:
 *   peer.key      this peer's Ed25519 key (its identity)
 *   network.key   the private-network key (pnet): only peers holding it complete a handshake
 *   mesh.json     { authority, certificate?, bootstrap[] } once set up
 *   db/           the document store; encrypted at rest on a terminal (or with --store-key-file),
 *                 its key OUTSIDE the folder (node/store-key.ts, default `<data>.store-key`)
 * A central, or a site started without --join, is its own authority (standalone). A peer
 * started with --join enrolls with central first; a standalone site that joins keeps its
 * jobs and accounting, and hands license and directory over to central.
 */
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { openNodePersistence, encryptsStore, defaultStoreKeyFile } from './store-key.ts'
import type { StoreKey } from '../crdt/encrypted-persistence.ts'
import { licenseDoc, directoryDoc, isRetained, siteId, type PeerId, type SiteId } from '../crdt/names.ts'
import { Membership } from '../crdt/membership.ts'
import { SyncEngine } from '../crdt/sync.ts'
import { decodeCertificate, encodeCertificate, type Certificate, type Role } from '../crdt/license.ts'
import type { Signer, Verifier } from '../crdt/envelope.ts'
import { createHost, loadOrCreatePeerKey, loadOrCreateNetworkKey, PEER_KEY_FILE, type Host } from '../transports/host.ts'
import { Libp2pTransport } from '../transports/libp2p.ts'
import type { SyncTransport } from '../transports/types.ts'
import type { MemoryNetwork, MemoryTransport } from '../transports/memory.ts'
import { requestEnrollment } from '../transports/enroll.ts'
import { cardKeyOf } from './users.ts'
import { PeerExchange } from '../transports/peer-exchange.ts'
import { signerFor, verifyPeerSignature } from '../transports/identity.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import { NodeMetrics } from '../ui/metrics.ts'
import { disconnectRevokedPeers, loadBlocked } from './mesh.ts'
import { decodeJoinString, EnrollmentAuthority, type EnrollResponse } from './enrollment.ts'
import { handOverUsers } from './directory-handover.ts'
import { handOverAdmins } from './admin-handover.ts'

export const NETWORK_KEY_FILE = 'network.key'
const MESH_FILE = 'mesh.json'
/** Jobs documents (own and replicas) are dropped whole this many months after their period. */
export const JOBS_REPLICA_MONTHS = 3
/** How often documents past retention are dropped. */
const DROP_EXPIRED_MS = 3600_000
/** How often a member checks whether its certificate is due for renewal. */
const RENEW_CHECK_MS = 3600_000
/** While an admin has not approved a join request, ask again this often. */
export const ENROLL_RETRY_MS = 2_000

export interface PeerConfig {
  data: string
  role: Role
  /** Site id (sites, terminals, clients); for a joined peer its certificate decides. */
  site?: string
  /** libp2p listen addresses. */
  listen: string[]
  /** Other peers to connect to (multiaddrs with /p2p/<id>). */
  bootstrap: string[]
  /** Discover peers on the LAN by mDNS. */
  mdns: boolean
  /** A join string from central's admin (first start only). */
  join?: string
  antiEntropyMs?: number
  /** Private-network key file (default `<data>/network.key`). */
  networkKeyFile?: string
  /**
   * The store key file (node/store-key.ts): the database is encrypted at rest under it. A
   * terminal always encrypts (default `<data>.store-key`, beside the data folder); another
   * role only when this is given.
   */
  storeKeyFile?: string
}

interface MeshFile { authority: string, certificate?: string, bootstrap: string[] }

/** The peer core as the mesh API sees it ({@link peerOf}). */
export interface Peer {
  id: string
  role: Role
  site?: string
  signer: Signer
  store: DocStore
  membership: Membership
  host: Host
  transport: Libp2pTransport
  sync: SyncEngine
  /** The node's metrics: the roles hand them to their HTTP and IPP servers. */
  metrics: NodeMetrics
  /** When each peer was last connected (ms), for /api/mesh. */
  lastSeen: Map<string, number>
  blocked: Set<string>
  dataDir: string
  networkKeyFile: string
}

export class JoinError extends Error {
  constructor (message: string) { super(message); this.name = 'JoinError' }
}

async function readMeshFile (path: string): Promise<MeshFile | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as MeshFile
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Replaces `path` whole (write beside, then rename), readable by the owner only. */
export async function writeAtomically (path: string, content: string | Uint8Array): Promise<void> {
  await writeFile(path + '.tmp', content, { mode: 0o600 })
  await rename(path + '.tmp', path)
}

/** A role's peer config from the shared mesh options. */
export function peerConfig (data: string, role: Role, mesh: { listen: string[], bootstrap: string[], mdns: boolean, join?: string, antiEntropyMs?: number, networkKeyFile?: string, storeKeyFile?: string }, site?: string): PeerConfig {
  return {
    data,
    role,
    listen: mesh.listen,
    bootstrap: mesh.bootstrap,
    mdns: mesh.mdns,
    ...(mesh.networkKeyFile !== undefined ? { networkKeyFile: mesh.networkKeyFile } : {}),
    ...(mesh.storeKeyFile !== undefined ? { storeKeyFile: mesh.storeKeyFile } : {}),
    ...(site !== undefined ? { site } : {}),
    ...(mesh.join !== undefined ? { join: mesh.join } : {}),
    ...(mesh.antiEntropyMs !== undefined ? { antiEntropyMs: mesh.antiEntropyMs } : {})
  }
}

/** Whether the node in `dataDir` (peer `self`) has joined a mesh whose authority is another peer. */
export async function isMeshMember (dataDir: string, self: string): Promise<boolean> {
  const mesh = await readMeshFile(join(dataDir, MESH_FILE))
  return mesh !== undefined && mesh.authority !== self
}

/** Who this peer is, as the core services need it. */
export interface PeerSelf {
  id: PeerId
  role: Role
  site?: SiteId
  dataDir: string
  networkKeyFile: string
  /** The mesh's authority (central, or this peer when standalone). */
  authority: string
  /** Addresses of the authority, to renew the certificate. */
  bootstrap: string[]
  antiEntropyMs?: number
  /** How often documents past retention are dropped (default hourly); 0: the caller drops them (the simulator, on its virtual clock). */
  dropExpiredMs?: number
}

/**
 * Time as the services see it: the wall clock on a real node, a virtual clock in the
 * in-process simulator (which also takes over the delayed work).
 */
export interface Clock {
  now: () => number
  /**
   * A clock that only moves forward at the pace of real time, whatever the wall clock does
   * (the CLI's: `performance.now`; absent: the wall clock alone): holds and retention are
   * measured on it too, so a wall clock set forward while the process runs does not shorten them.
   */
  monotonic?: () => number
  /** Runs `fn` after `ms` (default: the sync engine's own timers). */
  schedule?: (fn: () => void, ms: number) => void
  /** Waits `ms` before a retry (default: a timer). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

/** The wall clock: what every process of the CLI runs on. */
export const SYSTEM_CLOCK: Clock = { now: () => Date.now(), monotonic: () => performance.now() }

/** What every role is given before its services are built (see {@link preparePeer}). */
export interface PeerComponents {
  logger: Logger
  self: PeerSelf
  signer: Signer
  /** Checks peers' signatures (envelopes, certificates): {@link verifyPeerSignature}. */
  verify: Verifier
  clock: Clock
  store: DocStore
  membership: Membership
  /** The libp2p host (started already when the peer enrolled at this start). */
  host: Host
  metrics: NodeMetrics
  /** Peers an admin blocked (persisted in the data folder). */
  blocked: Set<string>
  /** When each peer was last connected (ms), for /api/mesh. */
  lastSeen: Map<string, number>
  /** Whether a document is within retention. */
  retained: (doc: string) => boolean
  /** Key of the directory's card index (node/users.ts `cardKeyOf`, from the network key). */
  cardKey: Uint8Array
  /** The key the database is encrypted with at rest, when it is (node/store-key.ts): other files of the data folder that may hold a credential are sealed with it too. */
  storeKey?: StoreKey
}

/**
 * Prepares the peer core's components: key, mesh file, network key, store, membership and
 * libp2p host; with a join string it enrolls with central first (waiting for an admin's
 * approval when the join string carries no token). Nothing is started for good until the
 * node starts (the core services: {@link CORE_SERVICES}).
 */
export async function preparePeer (config: PeerConfig, logger: Logger): Promise<PeerComponents> {
  const dataDir = config.data
  await mkdir(dataDir, { recursive: true })
  const key = await loadOrCreatePeerKey(join(dataDir, PEER_KEY_FILE))
  const signer = signerFor(key)
  const meshPath = join(dataDir, MESH_FILE)
  let mesh = await readMeshFile(meshPath)
  // a standalone site (its own authority) may join; a member ignores further join strings
  const member = await isMeshMember(dataDir, signer.id)
  const joining = !member && config.join !== undefined ? decodeJoinString(config.join) : undefined
  if (config.join !== undefined && member) logger.info('already a mesh member: --join ignored')
  const networkKeyFile = config.networkKeyFile ?? join(dataDir, NETWORK_KEY_FILE)
  if (joining !== undefined) {
    await writeAtomically(networkKeyFile, joining.networkKey)
  } else if (mesh === undefined) {
    if (config.role !== 'central' && config.role !== 'site') throw new JoinError(`a ${config.role} must join a mesh: start it with --join <join string from central>`)
    mesh = { authority: signer.id, bootstrap: [] } // standalone: its own authority
    await writeAtomically(meshPath, JSON.stringify(mesh, null, 2))
  }
  const networkKey = await loadOrCreateNetworkKey(networkKeyFile)

  // the store key is checked before the database is opened: a wrong or missing one changes nothing in the folder
  const storeKeyFile = config.storeKeyFile ?? defaultStoreKeyFile(dataDir)
  const { persistence, key: storeKey } = await openNodePersistence(dataDir, { encrypt: encryptsStore(config.role, config.storeKeyFile), keyFile: storeKeyFile }, logger)
  const store = new DocStore(persistence, signer)
  const host = await createHost({
    identity: { privateKey: key },
    listen: config.listen,
    networkKey,
    mdns: config.mdns,
    bootstrap: [...new Set([...config.bootstrap, ...(mesh?.bootstrap ?? []), ...(joining?.addrs.map((a) => withPeer(a, joining.central)) ?? [])])],
    logger
  })

  if (joining !== undefined) {
    try {
      mesh = await enroll(host, signer.id, joining, config, logger)
      // a standalone site's users go to central's directory before its own is dropped
      if (config.role === 'site') {
        await handOverUsers(host, joining.central, joining.addrs, store, logger)
        await handOverAdmins(host, joining.central, joining.addrs, store, signer.id, logger)
      }
    } catch (err) {
      await host.stop()
      await store.close()
      throw err
    }
    // the mesh's authority now owns license and directory (its users handed over): drop this peer's standalone ones
    await store.remove(licenseDoc())
    await store.remove(directoryDoc())
    await writeAtomically(meshPath, JSON.stringify(mesh, null, 2))
  }
  const meshFile = mesh as MeshFile
  const certificate: Certificate | undefined = meshFile.certificate !== undefined ? decodeCertificate(new TextEncoder().encode(meshFile.certificate)) : undefined
  const site = certificate?.site !== undefined ? siteId(certificate.site) : config.site !== undefined ? siteId(config.site) : undefined
  const membership = new Membership({
    self: signer.id,
    authority: meshFile.authority,
    role: config.role,
    ...(site !== undefined ? { site } : {}),
    ...(certificate !== undefined ? { certificate } : {})
  }, verifyPeerSignature)
  const self: PeerSelf = {
    id: signer.id,
    role: config.role,
    ...(site !== undefined ? { site } : {}),
    dataDir,
    networkKeyFile,
    authority: meshFile.authority,
    bootstrap: meshFile.bootstrap,
    ...(config.antiEntropyMs !== undefined ? { antiEntropyMs: config.antiEntropyMs } : {})
  }
  return {
    logger,
    self,
    signer,
    verify: verifyPeerSignature,
    clock: SYSTEM_CLOCK,
    store,
    membership,
    host,
    metrics: new NodeMetrics(),
    blocked: await loadBlocked(dataDir),
    lastSeen: new Map(),
    retained: (doc: string): boolean => isRetained(doc, Date.now(), JOBS_REPLICA_MONTHS),
    cardKey: cardKeyOf(networkKey),
    ...(storeKey !== undefined ? { storeKey } : {})
  }
}

/** The store's lifecycle: every stored document open (HELLO announces what is open), expired ones dropped hourly, closed on stop. */
export const documentsService = (): ServiceFactory => serviceFactory<Pick<PeerComponents, 'store' | 'membership' | 'logger' | 'retained' | 'self'>, Startable>(
  ['store', 'membership', 'logger', 'retained', 'self'], ({ store, membership, logger, retained, self }) => {
    const every = self.dropExpiredMs ?? DROP_EXPIRED_MS
    let dropTimer: NodeJS.Timeout | undefined
    const dropExpired = async (): Promise<void> => {
      for (const name of await store.storedNames()) {
        if (!retained(name)) await store.remove(name)
      }
    }
    return {
      start: async () => {
        await dropExpired()
        for (const name of await store.storedNames()) await store.open(name)
        if (every > 0) {
          dropTimer = setInterval(() => {
            dropExpired().catch((err: unknown) => logger.error({ err }, 'dropping expired documents failed'))
          }, every)
          dropTimer.unref()
        }
        membership.useLicense(await store.open(licenseDoc()))
      },
      stop: async () => {
        clearInterval(dropTimer)
        await store.close()
      }
    }
  })

/** The libp2p host's lifecycle (it may have started already, to enroll). */
export const libp2pService = (): ServiceFactory => serviceFactory<Pick<PeerComponents, 'host'>, Startable>(['host'], ({ host }) => ({
  start: async () => { if (host.status !== 'started') await host.start() },
  stop: async () => { await host.stop() }
}))

/** The sync transport over the host: peers are admitted by their certificates, blocked ones never. */
export const transportService = (): ServiceFactory<Libp2pTransport> => serviceFactory<Pick<PeerComponents, 'host' | 'membership' | 'blocked' | 'logger'> & { libp2p: Startable }, Libp2pTransport>(
  ['host', 'libp2p', 'membership', 'blocked', 'logger'], ({ host, membership, blocked, logger }) => new Libp2pTransport({
    host,
    admission: {
      credentials: () => membership.credentials(),
      admit: async (peer, creds) => {
        if (blocked.has(peer)) return false
        const verdict = await membership.admit(peer, creds)
        if (!verdict.ok) logger.warn({ peer, reason: verdict.reason }, 'peer refused at admission')
        return verdict.ok
      }
    },
    logger
  }))

/**
 * The sync transport of a node in the in-process simulator and tests: one peer of a
 * {@link MemoryNetwork} (component `network`), admitting peers by their certificates.
 */
export const memoryTransportService = (): ServiceFactory<MemoryTransport> => serviceFactory<Pick<PeerComponents, 'self' | 'membership'> & { network: MemoryNetwork }, MemoryTransport>(
  ['network', 'self', 'membership'], ({ network, self, membership }) => network.createTransport(self.id, {
    credentials: () => membership.credentials(),
    admit: async (p, c) => (await membership.admit(p, c)).ok
  }))

/** Document sync over the transport (crdt/sync.ts): libp2p on a real node, the memory transport in the simulator. */
export const syncService = (): ServiceFactory<SyncEngine> => serviceFactory<Pick<PeerComponents, 'store' | 'membership' | 'logger' | 'retained' | 'self' | 'verify' | 'clock'> & { metrics: Pick<NodeMetrics, 'syncApplied'>, transport: SyncTransport, documents: Startable }, SyncEngine>(
  ['store', 'documents', 'transport', 'membership', 'metrics', 'logger', 'retained', 'self', 'verify', 'clock'], ({ store, transport, membership, metrics, logger, retained, self, verify, clock }) =>
    new SyncEngine({
      retained,
      onBatchApplied: metrics.syncApplied,
      ...(self.antiEntropyMs !== undefined ? { antiEntropyMs: self.antiEntropyMs } : {}),
      ...(clock.schedule !== undefined ? { schedule: clock.schedule } : {})
    }, { store, link: transport, membership, verify, logger }))

/** Peers tell each other the addresses they know (transports/peer-exchange.ts). */
export const peerExchangeService = (): ServiceFactory<PeerExchange> => serviceFactory<Pick<PeerComponents, 'host' | 'membership' | 'blocked' | 'logger' | 'self'> & { transport: Libp2pTransport }, PeerExchange>(
  ['host', 'transport', 'membership', 'blocked', 'logger', 'self'], ({ host, transport, membership, blocked, logger, self }) => new PeerExchange({
    host,
    dial: async (addrs) => await transport.dial(addrs),
    skip: (p) => blocked.has(p) || membership.revoked(p),
    connected: (p) => transport.peers().includes(p),
    logger,
    ...(self.antiEntropyMs !== undefined ? { announceMs: self.antiEntropyMs } : {})
  }))

/** A member renews its certificate with central before it expires. */
export const renewalService = (): ServiceFactory => serviceFactory<Pick<PeerComponents, 'host' | 'membership' | 'logger' | 'self'> & { libp2p: Startable }, Startable>(
  ['host', 'libp2p', 'membership', 'logger', 'self'], ({ host, membership, logger, self }) => {
    let renewTimer: NodeJS.Timeout | undefined
    const meshPath = join(self.dataDir, MESH_FILE)
    const renewIfDue = async (): Promise<void> => {
      const current = membership.certificate()
      if (current === undefined || !EnrollmentAuthority.due(current, Date.now())) return
      const response = await requestEnrollment(host, self.authority, self.bootstrap, { role: current.role, ...(current.site !== undefined ? { site: current.site } : {}) }) as EnrollResponse
      if (response.status !== 'issued') throw new JoinError(`central did not renew this peer's certificate: ${response.status === 'refused' ? response.reason : 'pending'}`)
      const renewed = decodeCertificate(new TextEncoder().encode(response.certificate))
      if (renewed.peer !== self.id || renewed.issuer !== self.authority) throw new JoinError('central renewed a certificate that does not match this peer')
      membership.renew(renewed)
      const meshFile = await readMeshFile(meshPath) ?? { authority: self.authority, bootstrap: self.bootstrap }
      await writeAtomically(meshPath, JSON.stringify({ ...meshFile, certificate: response.certificate }, null, 2))
      logger.info({ expiresAt: new Date(renewed.expiresAt).toISOString() }, 'certificate renewed')
    }
    return {
      start: async () => {
        const check = (): void => { renewIfDue().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'certificate renewal failed; will retry')) }
        renewTimer = setInterval(check, RENEW_CHECK_MS)
        renewTimer.unref()
        check()
      },
      stop: async () => { clearInterval(renewTimer) }
    }
  })

/** Connected peers whose certificates are revoked are dropped at once; connection times are kept for /api/mesh. */
export const revocationsService = (): ServiceFactory => serviceFactory<Pick<PeerComponents, 'store' | 'membership' | 'logger' | 'lastSeen'> & { transport: SyncTransport, documents: Startable }, Startable>(
  ['store', 'documents', 'transport', 'membership', 'logger', 'lastSeen'], ({ store, transport, membership, logger, lastSeen }) => {
    let unwatch: (() => void) | undefined
    const seen = (p: string): void => { lastSeen.set(p, Date.now()) }
    return {
      start: async () => {
        transport.on('peer:connect', seen)
        transport.on('peer:disconnect', seen)
        unwatch = disconnectRevokedPeers(await store.open(licenseDoc()), membership, transport, logger)
      },
      stop: async () => {
        transport.off('peer:connect', seen)
        transport.off('peer:disconnect', seen)
        unwatch?.()
      }
    }
  })

/** The services every role starts with, in start order (node/roles.ts lists them per role). */
export const CORE_SERVICES = {
  documents: documentsService,
  libp2p: libp2pService,
  transport: transportService,
  sync: syncService,
  'peer-exchange': peerExchangeService,
  renewal: renewalService,
  revocations: revocationsService
} as const

/** What {@link peerOf} reads: a service that builds the peer view declares these as its dependencies. */
export const PEER_VIEW = ['self', 'signer', 'store', 'membership', 'host', 'transport', 'sync', 'metrics', 'lastSeen', 'blocked'] as const

/** The peer as the mesh API sees it, from the components and core services ({@link PEER_VIEW}). */
export function peerOf (c: object): Peer {
  const p = c as unknown as PeerComponents & { transport: Libp2pTransport, sync: SyncEngine }
  return {
    id: p.self.id,
    role: p.self.role,
    ...(p.self.site !== undefined ? { site: p.self.site } : {}),
    signer: p.signer,
    store: p.store,
    membership: p.membership,
    host: p.host,
    transport: p.transport,
    sync: p.sync,
    metrics: p.metrics,
    lastSeen: p.lastSeen,
    blocked: p.blocked,
    dataDir: p.self.dataDir,
    networkKeyFile: p.self.networkKeyFile
  }
}

function withPeer (addr: string, peer: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peer}`
}

/** Enrolls with central; waits (retrying) while an admin has not approved the request. */
async function enroll (host: Host, self: string, j: ReturnType<typeof decodeJoinString>, config: PeerConfig, logger: Logger): Promise<MeshFile> {
  await host.start()
  const request = { ...(j.secret !== undefined ? { secret: j.secret } : {}), role: config.role, ...(config.site !== undefined ? { site: config.site } : {}) }
  let announced = false
  for (;;) {
    let response: EnrollResponse
    try {
      response = await requestEnrollment(host, j.central, j.addrs, request) as EnrollResponse
    } catch (err) {
      logger.warn({ err: (err as Error).message, central: j.central }, 'central unreachable for enrollment; retrying')
      await new Promise((resolve) => setTimeout(resolve, ENROLL_RETRY_MS))
      continue
    }
    if (response.status === 'issued') {
      const cert = decodeCertificate(new TextEncoder().encode(response.certificate))
      if (cert.peer !== self || cert.issuer !== j.central || response.authority !== j.central) throw new JoinError('central issued a certificate that does not match this peer')
      logger.info({ authority: j.central, role: cert.role, site: cert.site }, 'joined the mesh')
      return { authority: j.central, certificate: new TextDecoder().decode(encodeCertificate(cert)), bootstrap: j.addrs.map((a) => withPeer(a, j.central)) }
    }
    if (response.status === 'refused') throw new JoinError(`central refused to enroll this peer: ${response.reason}`)
    if (!announced) {
      logger.info({ peer: self }, 'join request sent; waiting for an admin to approve it on central')
      announced = true
    }
    await new Promise((resolve) => setTimeout(resolve, ENROLL_RETRY_MS))
  }
}

