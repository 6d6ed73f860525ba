/**
 * The terminal role: the peer embedded at one MFP. It fronts exactly one printing device
 * (`--printer`, the MFP's own IPP endpoint; a folder printer by default) and serves the
 * panel at `/panel`, where users log in with username and PIN, see the jobs they can
 * release here (held by their site's server, or by a partner site) and release or delete
 * them. Releases go through the one release engine (node/release.ts): the holder's grant,
 * the document over the blob protocol, this terminal's printer, charged once in this
 * terminal's own accounting document.
 *
 * Services, in start order (node/roles.ts `ROLES.terminal`): the peer core, then analyzer
 * → print-engine → jobs → roaming → release-server → http (panel, mesh, login).
 *
 * Not yet here (issue 12): card login, PIN-only login, offline credential cache encrypted
 * at rest, copy accounting through device counters; device spooling is issue 13.
 */
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { Spool } from '../devices/spool.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import type { JobService } from '../devices/jobs/service.ts'
import { preparePeer, peerConfig, peerOf, CORE_SERVICES, PEER_VIEW, type Peer, type PeerComponents } from './peer.ts'
import { createMeshApi } from './mesh.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { meshRoutes } from '../ui/routes/mesh.ts'
import { metricsRoutes } from '../ui/routes/metrics.ts'
import { pagesRoutes } from '../ui/routes/pages.ts'
import { panelRoutes } from '../ui/routes/panel.ts'
import { LoginGuard } from '../ui/rate-limit.ts'
import { resolveAdminToken } from './admin-token.ts'
import { serviceFactory, type Node } from './compose.ts'
import { startRoleNode, type ServiceRegistry } from './roles.ts'
import { certifiedSiteOf, releaseServices } from './release.ts'
import { libp2pRoamingLink } from './roaming.ts'
import { createPanelApi } from './panel.ts'
import { checkPin } from './users.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import { siteId, type SiteId } from '../crdt/names.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'
import type { LightPeerConfig } from './light-peer.ts'

/** The name of the terminal's one printer in its release engine and accounting. */
export const TERMINAL_PRINTER = 'device'
/** How often the panel asks the printer how it is (its state shows on the panel before login). */
const PRINTER_PROBE_MS = 10_000

export interface TerminalConfig extends LightPeerConfig {
  /** The MFP's IPP endpoint (`ipp://…`, `ipps://…`) or a `file://` folder; default `<data>/virtual-printer`. */
  printer?: string
  /** Idle time after which the panel logs its user out. */
  idleLogoutMs?: number
}

export interface RunningTerminal {
  peer: Peer
  node: Node
  httpPort: number
  roaming: RoamingService
  stop (): Promise<void>
}

function terminalServices (config: TerminalConfig, site: SiteId): ServiceRegistry {
  type C = PeerComponents & { transport: Libp2pTransport, sync: SyncEngine, adminToken: string, logins: LoginGuard, roaming: RoamingService, printers: ReturnType<typeof printersOf> }
  return {
    ...CORE_SERVICES,
    ...releaseServices({
      site,
      // no intake yet (device spooling, issue 13): the job service holds nothing, but it is the holder side every releasing peer runs
      queues: [{ name: 'hold', hold: true, defaultPrinter: TERMINAL_PRINTER, info: `printmesh terminal at ${site}`, location: site }]
    }),
    http: () => serviceFactory<C, HttpServer>([...PEER_VIEW, 'adminToken', 'logins', 'roaming', 'printers', 'clock', 'logger'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger)
      const panel = createPanelApi(
        { site, printer: TERMINAL_PRINTER, ...(config.idleLogoutMs !== undefined ? { idleLogoutMs: config.idleLogoutMs } : {}) },
        { roaming: c.roaming, printers: c.printers, transport: c.transport, membership: c.membership, logger: c.logger, now: c.clock.now })
      const server = createHttpServer({
        mesh,
        users: { authenticateUser: async (username, pin) => await checkPin(c.store, username, pin) ? { user: username, admin: false } : undefined },
        plugins: [meshRoutes(mesh), panelRoutes(panel), metricsRoutes(c.metrics), pagesRoutes(['panel', 'admin'])],
        adminToken: c.adminToken,
        logins: c.logins,
        logger: c.logger,
        host: config.host,
        port: config.httpPort,
        metrics: c.metrics
      })
      let probeTimer: NodeJS.Timeout | undefined
      return {
        get port () { return server.port },
        start: async () => {
          await server.start()
          const probe = (): void => { void panel.refreshPrinter() }
          probe()
          probeTimer = setInterval(probe, PRINTER_PROBE_MS)
          probeTimer.unref()
        },
        stop: async () => {
          clearInterval(probeTimer)
          await server.stop()
        }
      }
    })
  }
}

function printersOf (uri: string, logger: Logger): Map<string, ReturnType<typeof createOutputDevice>> {
  return new Map([[TERMINAL_PRINTER, createOutputDevice(uri, { logger })]])
}

/** Starts a terminal (it must join: a first start needs `mesh.join`). */
export async function startTerminal (config: TerminalConfig, logger: Logger, services?: readonly string[]): Promise<RunningTerminal> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'terminal' })
  const printers = printersOf(config.printer ?? `file://${join(data, 'virtual-printer')}`, log)
  const core = await preparePeer(peerConfig(data, 'terminal', config.mesh), log)
  const site = core.self.site ?? siteId('local')
  const { token } = await resolveAdminToken(data, config.adminToken)
  const components = {
    ...core,
    adminToken: token,
    logins: new LoginGuard({ report: { failed: core.metrics.loginFailed, refused: core.metrics.loginRefused } }),
    spool: await Spool.open(join(data, 'spool')),
    copies: await Spool.open(join(data, 'roaming')),
    printers,
    roamingLink: libp2pRoamingLink(core.host, certifiedSiteOf(core.membership))
  }
  const node = await startRoleNode<{ http: HttpServer, roaming: RoamingService, jobs: JobService }>('terminal', terminalServices(config, site), components, log, services)
  const { http, roaming } = node.services
  log.info({ peer: core.self.id, site, httpPort: http.port, panel: `http://${config.host}:${http.port}/panel`, printer: printers.get(TERMINAL_PRINTER)?.uri, listen: core.host.getMultiaddrs().map(String) }, 'terminal ready')
  return { peer: peerOf(node.components), node, httpPort: http.port, roaming, stop: async () => await node.stop() }
}
