/**
 * Mesh glue a node runs beside its sync engine: whenever the license document changes,
 * connected peers whose certificates were revoked are disconnected at once.
 */
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Membership } from '../crdt/membership.ts'
import type { SyncTransport } from '../transports/types.ts'

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
