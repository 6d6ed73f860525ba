/**
 * The central role: license authority (issues and revokes certificates, answers
 * enrollment), the mesh-wide directory, and the web admin for the whole mesh. It holds and
 * relays every document but is never a print server: it runs no IPP endpoint.
 */
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { buildPeer, peerConfig, type Peer } from './peer.ts'
import { EnrollmentAuthority, type EnrollRequest } from './enrollment.ts'
import { handleEnrollment } from '../transports/enroll.ts'
import { createMeshApi, loadBlocked } from './mesh.ts'
import { createHttpServer } from '../ui/server.ts'
import { resolveAdminToken } from './admin-token.ts'

export interface CentralConfig {
  data: string
  host: string
  httpPort: number
  listen: string[]
  bootstrap: string[]
  mdns: boolean
  networkKeyFile?: string
  adminToken?: string
  antiEntropyMs?: number
}

export interface RunningCentral {
  peer: Peer
  httpPort: number
  webUrl: string
  adminTokenFile?: string
  stop (): Promise<void>
}

export async function startCentral (config: CentralConfig, logger: Logger): Promise<RunningCentral> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'central' })
  const peer = await buildPeer(peerConfig(data, 'central', config), log)
  await loadBlocked(peer)
  const { token, file } = await resolveAdminToken(data, config.adminToken)
  const enrollment = new EnrollmentAuthority(peer.store, peer.signer)
  let unhandle: (() => Promise<void>) | undefined
  peer.services.add('enrollment', {
    start: async () => {
      unhandle = await handleEnrollment(peer.host, async (from, request) => await enrollment.handle(from, request as EnrollRequest), log)
    },
    stop: async () => { await unhandle?.() }
  })
  const http = peer.services.add('http', createHttpServer({
    mesh: createMeshApi(peer, log, enrollment),
    adminToken: token,
    logger: log,
    host: config.host,
    port: config.httpPort,
    metrics: peer.metrics
  }))
  await peer.services.start()
  const webUrl = `http://${config.host}:${http.port}/`
  log.info({ peer: peer.id, webUrl, httpPort: http.port, listen: peer.host.getMultiaddrs().map(String), adminTokenFile: file }, 'central ready')
  return { peer, httpPort: http.port, webUrl, ...(file !== undefined ? { adminTokenFile: file } : {}), stop: async () => await peer.services.stop() }
}
