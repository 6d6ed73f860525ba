/**
 * Assembly of one in-process mesh peer, shared by the simulator and the sync tests
 * (mesh-harness.ts): a real level store in its own folder, a real Ed25519 identity and
 * certificate, a {@link Membership} and a {@link SyncEngine} over a {@link MemoryNetwork}
 * transport. The simulator adds its own hooks (a persistence wrapper to emulate kill -9 and
 * to see pending I/O, a verifier wrapper, a virtual clock) through {@link MeshPeerInit}.
 */
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { Membership } from '../crdt/membership.ts'
import { SyncEngine } from '../crdt/sync.ts'
import { issueCertificate, CERT_LIFETIME_MS, type Certificate, type Role } from '../crdt/license.ts'
import { licenseDoc, type PeerId, type SiteId } from '../crdt/names.ts'
import type { Signer, Verifier } from '../crdt/envelope.ts'
import type { MemoryNetwork, MemoryTransport } from '../transports/memory.ts'
import { verifyPeerSignature } from '../transports/identity.ts'
import { disconnectRevokedPeers } from '../node/mesh.ts'

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
  /** Timer for the sync engine's own delayed work (a simulator's virtual clock). */
  schedule?: (fn: () => void, ms: number) => void
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
  dir: string
  logger: Logger
  /** Stops sync and the transport and closes the store (data stays for a restart). Safe twice. */
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

/**
 * Opens the peer's store (every stored document), its membership, transport and sync engine,
 * and starts them. The transport is started but not dialled: the caller connects peers.
 */
export async function startMeshPeer (init: MeshPeerInit): Promise<MeshPeer> {
  const { name, signer, role, site, authority, certificate, dir } = init
  const verify = init.verify ?? verifyPeerSignature
  const level = await LevelPersistence.open(join(dir, 'db'))
  const store = new DocStore(init.wrapPersistence?.(level) ?? level, signer)
  for (const n of await store.storedNames()) await store.open(n)
  const membership = new Membership({
    self: signer.id,
    authority,
    role,
    ...(site !== undefined ? { site } : {}),
    ...(certificate !== undefined ? { certificate } : {}),
    ...(init.now !== undefined ? { now: init.now } : {})
  }, verify)
  const license = await store.open(licenseDoc())
  membership.useLicense(license)
  const transport = init.network.createTransport(signer.id, {
    credentials: () => membership.credentials(),
    admit: async (p, c) => (await membership.admit(p, c)).ok
  })
  await transport.start()
  const logger = (init.logger ?? pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })).child({ peer: name })
  const sync = new SyncEngine({ antiEntropyMs: init.antiEntropyMs ?? MANUAL_ANTI_ENTROPY_MS, ...(init.schedule !== undefined ? { schedule: init.schedule } : {}) }, { store, link: transport, membership, verify, logger })
  await sync.start()
  const unwatch = disconnectRevokedPeers(license, membership, transport, logger)
  let stopped = false
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
    dir,
    logger,
    async stop () {
      if (stopped) return
      stopped = true
      unwatch()
      await sync.stop()
      await transport.stop()
      await store.close()
    },
    snapshot: () => snapshotStore(store)
  }
}
