/**
 * The terminal role: a light peer at one MFP. For now it joins the mesh, keeps the
 * documents its site's peers share with it in sync, and serves the mesh status; the panel,
 * offline login and device spooling build on this.
 */
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { buildPeer, peerConfig, type Peer } from './peer.ts'
import { createMeshApi, loadBlocked } from './mesh.ts'
import { createHttpServer } from '../ui/server.ts'
import { resolveAdminToken } from './admin-token.ts'
import type { MeshOptions } from './site.ts'

export interface TerminalConfig {
  data: string
  host: string
  httpPort: number
  mesh: MeshOptions
  adminToken?: string
}

export interface RunningTerminal { peer: Peer, httpPort: number, stop (): Promise<void> }

export async function startTerminal (config: TerminalConfig, logger: Logger): Promise<RunningTerminal> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'terminal' })
  const peer = await buildPeer(peerConfig(data, 'terminal', config.mesh), log)
  await loadBlocked(peer)
  const { token } = await resolveAdminToken(data, config.adminToken)
  const http = peer.services.add('http', createHttpServer({ mesh: createMeshApi(peer, log), adminToken: token, logger: log, host: config.host, port: config.httpPort, metrics: peer.metrics }))
  await peer.services.start()
  log.info({ peer: peer.id, site: peer.site, httpPort: http.port, listen: peer.host.getMultiaddrs().map(String) }, 'terminal ready')
  return { peer, httpPort: http.port, stop: async () => await peer.services.stop() }
}
