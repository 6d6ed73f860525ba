/**
 * In-process mesh peers for sync tests and simulations: each has a real level store in its
 * own temp folder, a real Ed25519 identity and certificate from a central, a Membership and
 * a SyncEngine over the in-memory transport.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocStore } from '../../crdt/store.ts'
import { LevelPersistence } from '../../crdt/persistence.ts'
import { Membership } from '../../crdt/membership.ts'
import { SyncEngine } from '../../crdt/sync.ts'
import { issueCertificate, decodeCertificate, recordCertificate, CERT_LIFETIME_MS, type Certificate, type Role } from '../../crdt/license.ts'
import { licenseDoc } from '../../crdt/names.ts'
import type { Signer } from '../../crdt/envelope.ts'
import { MemoryNetwork, type MemoryTransport } from '../../transports/memory.ts'
import { generateIdentity, verifyPeerSignature } from '../../transports/identity.ts'
import { tempDir } from './site.ts'
import { disconnectRevokedPeers } from '../../node/mesh.ts'

/** Root maps of the document families (crdt/*.ts) and of the tests ('m'). */
const ROOTS = ['m', 'jobs', 'usage', 'users', 'certificates', 'revoked']

export interface MeshPeer {
  name: string
  id: string
  signer: Signer
  store: DocStore
  membership: Membership
  sync: SyncEngine
  transport: MemoryTransport
  dir: string
  /** Stops sync and the transport and closes the store (data stays for a restart). */
  stop (): Promise<void>
  /** JSON of every open document, for convergence checks. */
  snapshot (): Record<string, unknown>
}

export interface MeshOptions {
  /** Anti-entropy period; by default an hour, so tests trigger rounds themselves with antiEntropy(). */
  antiEntropyMs?: number
}

/** A mesh with one central (the authority) and helpers to add certified peers. */
export class TestMesh {
  readonly network: MemoryNetwork
  readonly peers = new Map<string, MeshPeer>()
  private central?: { signer: Signer, name: string }
  private readonly dirs: string[] = []

  constructor (network = new MemoryNetwork(), private readonly opts: MeshOptions = {}) {
    this.network = network
  }

  /** The central peer; create it first. */
  async addCentral (name = 'central'): Promise<MeshPeer> {
    const { signer } = await generateIdentity()
    this.central = { signer, name }
    return await this.start(name, signer, 'central', undefined, signer.id)
  }

  /** A peer certified by central (or uncertified, or certified by a stranger). */
  async addPeer (name: string, role: Role, site?: string, how: 'certified' | 'uncertified' | 'foreign' = 'certified'): Promise<MeshPeer> {
    if (this.central === undefined) throw new Error('add the central first')
    const { signer } = await generateIdentity()
    const issuer = how === 'foreign' ? (await generateIdentity()).signer : this.central.signer
    const certificate = how === 'uncertified'
      ? undefined
      : await issueCertificate(issuer, { peer: signer.id, role, ...(site !== undefined ? { site } : {}), issuedAt: Date.now(), expiresAt: Date.now() + CERT_LIFETIME_MS })
    const centralPeer = this.peers.get(this.central.name)
    if (certificate !== undefined && how === 'certified' && centralPeer !== undefined) {
      // as central does on enrollment: every issued certificate goes into the license document
      await centralPeer.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) => recordCertificate(d, certificate))
    }
    return await this.start(name, signer, role, site, this.central.signer.id, certificate)
  }

  /** Restarts a stopped peer on its persisted data. */
  async restart (peer: MeshPeer, role: Role, site?: string): Promise<MeshPeer> {
    if (this.central === undefined) throw new Error('no central')
    const cert = peer.membership.credentials()
    return await this.start(peer.name, peer.signer, role, site, this.central.signer.id, cert.length > 0 ? decodeCertificate(cert) : undefined, peer.dir)
  }

  private async start (
    name: string, signer: Signer, role: Role, site: string | undefined, authority: string,
    certificate?: Certificate, reuseDir?: string
  ): Promise<MeshPeer> {
    const dir = reuseDir ?? await tempDir(`mesh-${name}-`)
    if (reuseDir === undefined) this.dirs.push(dir)
    const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), signer)
    for (const n of await store.storedNames()) await store.open(n)
    const membership = new Membership({ self: signer.id, authority, role, ...(site !== undefined ? { site } : {}), ...(certificate !== undefined ? { certificate } : {}) }, verifyPeerSignature)
    membership.useLicense(await store.open(licenseDoc()))
    const transport = this.network.createTransport(signer.id, {
      credentials: () => membership.credentials(),
      admit: async (p, c) => (await membership.admit(p, c)).ok
    })
    await transport.start()
    const logger = pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' }).child({ peer: name })
    const sync = new SyncEngine({ antiEntropyMs: this.opts.antiEntropyMs ?? 3_600_000 }, { store, link: transport, membership, verify: verifyPeerSignature, logger })
    await sync.start()
    const unwatch = disconnectRevokedPeers(await store.open(licenseDoc()), membership, transport, logger)
    const peer: MeshPeer = {
      name,
      id: signer.id,
      signer,
      store,
      membership,
      sync,
      transport,
      dir,
      async stop () {
        unwatch()
        await sync.stop()
        await transport.stop()
        await store.close()
      },
      snapshot () {
        const out: Record<string, unknown> = {}
        for (const n of store.openNames().sort()) {
          const doc = store.get(n)
          if (doc === undefined) continue
          // root types exist in a Y.Doc only once named; name every root the families and tests use
          const json = Object.fromEntries(ROOTS.map((r) => [r, doc.getMap(r).toJSON()]).filter(([, v]) => Object.keys(v).length > 0))
          if (Object.keys(json).length > 0) out[n] = json
        }
        return out
      }
    }
    this.peers.set(name, peer)
    return peer
  }

  async connect (a: MeshPeer, b: MeshPeer): Promise<void> {
    await this.network.connect(a.id, b.id)
  }

  async teardown (): Promise<void> {
    // stop() is safe to repeat for peers a test stopped already
    for (const p of this.peers.values()) await p.stop()
    for (const d of this.dirs) await rm(d, { recursive: true, force: true })
  }
}
