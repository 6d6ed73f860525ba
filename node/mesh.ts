/**
 * Mesh glue a node runs beside its sync engine: whenever the license document changes,
 * connected peers whose certificates were revoked are disconnected at once.
 */
import { NotCentralError, InvalidRequestError } from '../crdt/errors.ts'
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Membership } from '../crdt/membership.ts'
import type { SyncTransport } from '../transports/types.ts'
import { readFile, writeFile } from 'node:fs/promises'
import { join as joinPath } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { licenseDoc } from '../crdt/names.ts'
import { listCertificates, listJoinRequests, type Role } from '../crdt/license.ts'
import { type MeshApi, type MeshStatus, type MeshPeerView, type JoinRequestView } from '../ui/api.ts'
import type { Peer } from './peer.ts'
import { EnrollmentAuthority, encodeJoinString } from './enrollment.ts'

/** Starts watching; returns the function that stops it. */
export function disconnectRevokedPeers (license: Y.Doc, membership: Membership, transport: SyncTransport, logger: Logger): () => void {
  const check = (): void => {
    for (const peer of transport.peers()) {
      if (!membership.revoked(peer)) continue
      logger.warn({ peer }, 'certificate revoked: disconnecting peer')
      transport.disconnect(peer).catch((err: unknown) => logger.error({ err, peer }, 'could not disconnect revoked peer'))
    }
  }
  license.on('update', check)
  check()
  return () => license.off('update', check)
}

// ---- the mesh side of a node's HTTP API ---------------------------------------------

const BLOCKED_FILE = 'blocked.json'

/** The block list persisted in the data folder (empty when there is none). */
export async function loadBlocked (dataDir: string): Promise<Set<string>> {
  try {
    return new Set(JSON.parse(await readFile(joinPath(dataDir, BLOCKED_FILE), 'utf8')) as string[])
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    return new Set()
  }
}

export function createMeshApi (peer: Peer, logger: Logger, enrollment?: EnrollmentAuthority): MeshApi {
  const central = (): EnrollmentAuthority => {
    if (enrollment === undefined) throw new NotCentralError()
    return enrollment
  }
  const redial = async (p: string): Promise<void> => {
    const id = peerIdFromString(p)
    if (!await peer.host.peerStore.has(id)) return // never met: nothing to dial
    const addrs = (await peer.host.peerStore.get(id)).addresses.map((a) => a.multiaddr.encapsulate(`/p2p/${p}`))
    if (addrs.length === 0 || peer.transport.peers().includes(p)) return
    await peer.transport.dial(addrs).catch((err: unknown) => {
      logger.debug({ peer: p, err: (err as Error).message }, 'redial after unblocking failed; discovery will retry')
    })
  }
  const joinStringWith = async (secret: string | undefined): Promise<string> => {
    const networkKey = await readFile(peer.networkKeyFile, 'utf8')
    return encodeJoinString({ central: peer.id, addrs: peer.host.getMultiaddrs().map((a) => a.toString()), networkKey, ...(secret !== undefined ? { secret } : {}) })
  }
  const addresses = (p: string): string[] => peer.host.getConnections(peerIdFromString(p)).map((c) => c.remoteAddr.toString())
  return {
    status (): MeshStatus {
      const license = peer.store.get(licenseDoc())
      const connected = new Set(peer.transport.peers())
      const known = new Set<string>([...connected, ...peer.lastSeen.keys()])
      if (license !== undefined) for (const c of listCertificates(license)) known.add(c.peer)
      known.delete(peer.id)
      const peers: MeshPeerView[] = [...known].sort().map((p) => {
        const info = peer.membership.info(p)
        const cert = license === undefined ? undefined : listCertificates(license).find((c) => c.peer === p)
        const role = info?.role ?? cert?.role
        const site = info?.site ?? cert?.site
        const lastSeen = connected.has(p) ? Date.now() : peer.lastSeen.get(p)
        return {
          peer: p,
          ...(role !== undefined ? { role } : {}),
          ...(site !== undefined ? { site } : {}),
          addresses: addresses(p),
          connected: connected.has(p),
          ...(lastSeen !== undefined ? { lastSeen } : {}),
          revoked: peer.membership.revoked(p)
        }
      })
      const stats = peer.sync.getStats()
      return {
        self: { peer: peer.id, role: peer.role, ...(peer.site !== undefined ? { site: peer.site } : {}), authority: peer.membership.authority, addresses: peer.host.getMultiaddrs().map(String) },
        peers,
        documents: peer.sync.docStates(),
        stats: { ...stats, rejected: { ...stats.rejected } }
      }
    },

    blocked: () => [...peer.blocked].sort(),

    async setBlocked (peers: string[]): Promise<void> {
      const unblocked = [...peer.blocked].filter((p) => !peers.includes(p))
      peer.blocked.clear()
      for (const p of peers) peer.blocked.add(p)
      await writeFile(joinPath(peer.dataDir, BLOCKED_FILE), JSON.stringify([...peer.blocked]), { mode: 0o600 })
      for (const p of peer.transport.peers()) if (peer.blocked.has(p)) await peer.transport.disconnect(p)
      // reconnect to peers no longer blocked right away, instead of waiting for a redial
      for (const p of unblocked) void redial(p)
    },

    async createJoinToken (role: string, site: string, ttlHours?: number) {
      const authority = central()
      if (role !== 'site' && role !== 'terminal' && role !== 'client') throw new InvalidRequestError('role must be site, terminal or client')
      const { token, secret } = await authority.createToken(role as Role, site, ttlHours !== undefined ? ttlHours * 3600_000 : undefined)
      return { joinString: await joinStringWith(secret), tokenId: token.id, expiresAt: token.expiresAt }
    },

    async approvalJoinString (): Promise<string> {
      central()
      return await joinStringWith(undefined)
    },

    joinRequests (): JoinRequestView[] {
      central()
      const license = peer.store.get(licenseDoc())
      return license === undefined ? [] : listJoinRequests(license)
    },

    async approve (p: string): Promise<void> { await central().approve(p) },

    async revoke (p: string, reason: string): Promise<void> { await central().revoke(p, reason) }
  }
}
