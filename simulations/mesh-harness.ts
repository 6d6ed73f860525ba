/**
 * In-process mesh peers for the sync tests, assembled by simulations/mesh.ts: each has a real level store in its
 * own temp folder, a real Ed25519 identity and certificate from a central, a Membership and
 * a SyncEngine over the in-memory transport.
 */
import { rm } from 'node:fs/promises'
import { recordCertificate, decodeCertificate, type Certificate, type Role } from '../crdt/license.ts'
import { licenseDoc, siteId, type PeerId } from '../crdt/names.ts'
import type { Signer } from '../crdt/envelope.ts'
import { MemoryNetwork } from '../transports/memory.ts'
import { generateIdentity } from '../transports/identity.ts'
import { startMeshPeer, issuePeerCertificate, type MeshPeer, type MeshPeerInit } from './mesh.ts'
import { tempDir } from './node-process.ts'

export type { MeshPeer } from './mesh.ts'

/**
 * Services a test peer runs beyond the peer core, given the peer's id and folder once they
 * exist: e.g. a site's release engine (`inProcessServices('site')`, node/release.ts's
 * registry, and its spool, printers and roaming link as components).
 */
export type PeerServices = (peer: { id: PeerId, dir: string }) => Promise<Pick<MeshPeerInit, 'services' | 'registry' | 'components'>>

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
  async addPeer (name: string, role: Role, site?: string, how: 'certified' | 'uncertified' | 'foreign' = 'certified', extra?: PeerServices): Promise<MeshPeer> {
    if (this.central === undefined) throw new Error('add the central first')
    const { signer } = await generateIdentity()
    const issuer = how === 'foreign' ? (await generateIdentity()).signer : this.central.signer
    const certificate = how === 'uncertified'
      ? undefined
      : await issuePeerCertificate(issuer, signer.id, role, site, Date.now())
    const centralPeer = this.peers.get(this.central.name)
    if (certificate !== undefined && how === 'certified' && centralPeer !== undefined) {
      // as central does on enrollment: every issued certificate goes into the license document
      await centralPeer.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) => recordCertificate(d, certificate))
    }
    return await this.start(name, signer, role, site, this.central.signer.id, certificate, undefined, extra)
  }

  /** Restarts a stopped peer on its persisted data. */
  async restart (peer: MeshPeer, role: Role, site?: string, extra?: PeerServices): Promise<MeshPeer> {
    if (this.central === undefined) throw new Error('no central')
    const cert = peer.membership.credentials()
    return await this.start(peer.name, peer.signer, role, site, this.central.signer.id, cert.length > 0 ? decodeCertificate(cert) : undefined, peer.dir, extra)
  }

  private async start (
    name: string, signer: Signer, role: Role, site: string | undefined, authority: string,
    certificate?: Certificate, reuseDir?: string, extra?: PeerServices
  ): Promise<MeshPeer> {
    const dir = reuseDir ?? await tempDir(`mesh-${name}-`)
    if (reuseDir === undefined) this.dirs.push(dir)
    const peer = await startMeshPeer({
      ...await extra?.({ id: signer.id, dir }),
      network: this.network,
      name,
      signer,
      role,
      ...(site !== undefined ? { site: siteId(site) } : {}),
      authority,
      ...(certificate !== undefined ? { certificate } : {}),
      dir,
      ...(this.opts.antiEntropyMs !== undefined ? { antiEntropyMs: this.opts.antiEntropyMs } : {})
    })
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
