/**
 * What a terminal and a client have in common for now: a peer that must join a mesh, keeps
 * the documents its site's peers share with it in sync, and serves the mesh status and
 * `/api/info` over HTTP (node/roles.ts lists their services). The terminal's panel and
 * device spooling, and the client's spooling and fallback printing, add their services to
 * these lists.
 */
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { preparePeer, peerConfig, peerOf, CORE_SERVICES, PEER_VIEW, type Peer, type PeerComponents } from './peer.ts'
import { createMeshApi } from './mesh.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { meshRoutes } from '../ui/routes/mesh.ts'
import { metricsRoutes } from '../ui/routes/metrics.ts'
import { pagesRoutes } from '../ui/routes/pages.ts'
import { resolveAdminToken } from './admin-token.ts'
import { serviceFactory, type Node } from './compose.ts'
import { startRoleNode, type ServiceRegistry } from './roles.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'
import type { MeshOptions } from './site.ts'
import { tlsService, type TlsMode, type TlsProvider } from './tls.ts'

export interface LightPeerConfig {
  data: string
  host: string
  httpPort: number
  mesh: MeshOptions
  adminToken?: string
  /** HTTPS on the web port (node/tls.ts); default off. */
  tls?: TlsMode
  /** While TLS is on, serve the web page over plain HTTP too (default: redirect to https). */
  plainHttp?: boolean
}

export interface RunningLightPeer { peer: Peer, node: Node, httpPort: number, stop (): Promise<void> }

function lightPeerServices (config: LightPeerConfig): ServiceRegistry {
  type C = PeerComponents & { transport: Libp2pTransport, sync: SyncEngine, adminToken: string }
  return {
    ...CORE_SERVICES,
    tls: tlsService(config.tls ?? { kind: 'off' }),
    http: () => serviceFactory<C & { tls: TlsProvider }, HttpServer>([...PEER_VIEW, 'adminToken', 'logger', 'tls'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger)
      return createHttpServer({ mesh, plugins: [meshRoutes(mesh), metricsRoutes(c.metrics), pagesRoutes(['admin'])], adminToken: c.adminToken, logger: c.logger, host: config.host, port: config.httpPort, metrics: c.metrics, tls: c.tls, ...(config.plainHttp === true ? { plainHttp: true } : {}) })
    })
  }
}

/** Starts a terminal or a client (it must join: a first start needs `mesh.join`). */
export async function startLightPeer (role: 'terminal' | 'client', config: LightPeerConfig, logger: Logger, services?: readonly string[]): Promise<RunningLightPeer> {
  const data = resolve(config.data)
  const log = logger.child({ role })
  const core = await preparePeer(peerConfig(data, role, config.mesh), log)
  const { token } = await resolveAdminToken(data, config.adminToken)
  const components = { ...core, adminToken: token }
  const node = await startRoleNode<{ http: HttpServer }>(role, lightPeerServices(config), components, log, services)
  const http = node.services.http
  log.info({ peer: core.self.id, site: core.self.site, httpPort: http.port, listen: core.host.getMultiaddrs().map(String) }, `${role} ready`)
  return { peer: peerOf(node.components), node, httpPort: http.port, stop: async () => await node.stop() }
}
