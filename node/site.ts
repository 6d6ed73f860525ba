/**
 * The site role: a branch print server on the peer core (node/peer.ts). Its services are
 * listed in node/roles.ts (`ROLES.site`): the core, then analyzer → jobs (domain) → roaming
 * → release-server → usage-metrics → ipp (intake) → http (web + API + mesh) → dnssd (the
 * queues advertised through avahi, unless `dnssd: false`). Stopping runs in reverse, so no
 * request reaches a closed store, and the queues are withdrawn from DNS-SD before their
 * server closes.
 */
import { hostname as osHostname } from 'node:os'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { Spool } from '../devices/spool.ts'
import { DEFAULT_HOLD_MS, DEFAULT_RETENTION_MS, type JobService } from '../devices/jobs/service.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import type { RoamingLink } from '../devices/jobs/types.ts'
import { libp2pRoamingLink } from './roaming.ts'
import { certifiedSiteOf, releaseServices } from './release.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { IppServer } from '../devices/ipp/server.ts'
import { ippService, dnssdService } from './intake.ts'
import type { AnonymousJobList } from '../devices/ipp/auth.ts'
import type { IntakeLimits } from '../devices/jobs/intake-limits.ts'
import type { LoginGuard } from '../ui/rate-limit.ts'
import { persistentLoginGuard } from './login-state.ts'
import { countOwnUsage } from './usage-metrics.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { terminalsRoutes } from '../ui/routes/terminals.ts'
import { siteTerminals } from './terminal-status.ts'
import { jobsRoutes } from '../ui/routes/jobs.ts'
import { roamingRoutes } from '../ui/routes/roaming.ts'
import { accountingRoutes } from '../ui/routes/accounting.ts'
import { directoryRoutes } from '../ui/routes/directory.ts'
import { DirectoryAdmin } from './directory-admin.ts'
import { meshRoutes } from '../ui/routes/mesh.ts'
import { metricsRoutes } from '../ui/routes/metrics.ts'
import { pagesRoutes } from '../ui/routes/pages.ts'
import { reportsRoutes } from '../ui/routes/reports.ts'
import { createReports } from './reports.ts'
import { createSiteApi } from './site-api.ts'
import { preparePeer, peerConfig, peerOf, CORE_SERVICES, JOBS_REPLICA_MONTHS, PEER_VIEW, type Peer, type PeerComponents } from './peer.ts'
import { createMeshApi } from './mesh.ts'
import { serviceFactory, type Node, type Startable } from './compose.ts'
import { ROLES, startRoleNode, type ServiceRegistry } from './roles.ts'
import { siteId, type SiteId } from '../crdt/names.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'
import { ownTokenFileKeeper, resolveAdminToken } from './admin-token.ts'
import { AdminAccounts } from './admin-accounts.ts'
import { adminAccountsRoutes } from '../ui/routes/admin-accounts.ts'
import { tlsService, type TlsMode, type TlsProvider } from './tls.ts'
import type { Delegation } from '../devices/jobs/types.ts'
import { Enrolments } from './enrolment.ts'
import { checkPin } from './users.ts'
import { enrolRoutes } from '../ui/routes/enrol.ts'
import { auditRoutes } from '../ui/routes/audit.ts'
import { createAuditLog, retentionRule } from './audit.ts'
import { SitePrinters, createAdminConsole, storeChangeFeed, type SiteSettingsWriter } from './printer-admin.ts'
import { consoleRoutes } from '../ui/routes/console.ts'
import { eventsRoutes } from '../ui/routes/events.ts'
import { creditRoutes } from '../ui/routes/credit.ts'
import type { CreditService } from './credit.ts'

export interface PrinterConfig { name: string, uri: string }

export interface MeshOptions {
  /** libp2p listen addresses. */
  listen: string[]
  /** Peers to connect to (multiaddrs with /p2p/<id>). */
  bootstrap: string[]
  mdns: boolean
  /** Join string from central (first start). */
  join?: string
  antiEntropyMs?: number
  /** Private-network key file (default `<data>/network.key`). */
  networkKeyFile?: string
  /** Store key file: the database encrypted at rest (node/store-key.ts); a terminal's default `<data>.store-key`, other roles unencrypted without it. */
  storeKeyFile?: string
}

export interface SiteConfig {
  /** Data folder: level database, spool, identity. */
  data: string
  /** Months of audit log kept (node/audit.ts; default 13): older months are dropped whole. */
  auditRetentionMonths?: number
  mesh: MeshOptions
  /** Site id (defaults to the host name). */
  site?: string
  /** Address to bind IPP and HTTP to. */
  host: string
  ippPort: number
  httpPort: number
  printers: PrinterConfig[]
  /** Bearer token for admin API calls; generated and stored in the data folder when absent. */
  adminToken?: string
  /** Name of the print queue workstations print to. */
  queue: string
  /** Hold every job for release (secure print). */
  hold: boolean
  holdMs?: number
  retentionMs?: number
  /** Host name partner sites show next to this site's jobs (default: the OS host name). */
  hostname?: string
  /** Cap on the rate job documents are sent to partner sites. */
  roamingBytesPerSecond?: number
  /**
   * Advertise the IPP queues by DNS-SD (`_ipp._tcp` through avahi); default true. A site on
   * a loopback `host` is advertised on the loopback interface only (node/dnssd.ts).
   */
  dnssd?: boolean
  /**
   * What IPP clients must authenticate for (HTTP Basic: username and PIN, or `admin` and the
   * admin token): `job-control` (default) for Release-, Cancel- and Hold-Job, while intake
   * trusts requesting-user-name (`lp -U bob`); `intake` for printing too, and the job's
   * owner is then the authenticated user.
   */
  ippAuth?: 'intake' | 'job-control'
  /** What IPP Get-Jobs shows clients that did not authenticate (default `private`: every job, names and owners hidden). */
  ippJobList?: AnonymousJobList
  /**
   * What the IPP intake takes, over the defaults (devices/jobs/intake-limits.ts): document
   * size and decompression ratio, pages per job, unfinished jobs and bytes per user and per
   * address, documents sent at once per address.
   */
  intakeLimits?: Partial<IntakeLimits>
  /** HTTPS on the web port and ipps:// on the IPP port (node/tls.ts); default off. */
  tls?: TlsMode
  /** While TLS is on, serve the web console over plain HTTP too (default: redirect to https). */
  plainHttp?: boolean
}

export interface RunningSite {
  ippPort: number
  httpPort: number
  ippUri: string
  webUrl: string
  adminTokenFile?: string
  peer: Peer
  jobs: JobService
  roaming: RoamingService
  /** The node's components and services (for lifecycle tests). */
  node: Node
  stop (): Promise<void>
}

/** Name of the built-in virtual printer `npm start` gets when no printer is configured. */
export const VIRTUAL_PRINTER = 'virtual'

/** What the site's own services are given besides the peer core (node/release.ts reads most of them). */
interface SiteComponents extends PeerComponents {
  spool: Spool
  /** Partners' job documents fetched to print here. */
  copies: Spool
  printers: Map<string, OutputDevice>
  roamingLink: RoamingLink
  adminToken: string
  /** Login limits shared by the web login and IPP authentication: failures count at both. */
  logins: LoginGuard
}

/** The site's services by name, for node/roles.ts; `info` is filled in once the IPP port is known. */
function siteServices (config: SiteConfig, info: { site: SiteId, hostname: string, ippUri: string, version: string }, printerConfigs: PrinterConfig[]): ServiceRegistry {
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? osHostname() : config.host
  type C = SiteComponents & { documents: Startable, jobs: JobService, roaming: RoamingService, ipp: IppServer, http: HttpServer, tls: TlsProvider, delegation: Delegation }
  return {
    ...CORE_SERVICES,
    ...releaseServices({
      site: info.site,
      hostname: info.hostname,
      // its workstations' clients hand jobs over when the site turns client spooling off
      handOver: config.intakeLimits !== undefined ? { limits: config.intakeLimits } : {},
      queues: [{
        name: config.queue,
        hold: config.hold,
        defaultPrinter: printerConfigs[0].name,
        info: `printmesh ${info.site}`,
        location: info.site,
        delegable: true, // the owner's delegates release at the site too (issue 15)
        ...(config.ippAuth === 'intake' ? { authenticatedIntake: true } : {})
      }],
      jobs: {
        ...(config.holdMs !== undefined ? { holdMs: config.holdMs } : {}),
        ...(config.retentionMs !== undefined ? { retentionMs: config.retentionMs } : {})
      },
      ...(config.roamingBytesPerSecond !== undefined ? { blob: { maxBytesPerSecond: config.roamingBytesPerSecond } } : {})
    }),
    'usage-metrics': () => serviceFactory<C, Startable>(['self', 'store', 'documents', 'metrics'], (c) => {
      let stopCounting: (() => void) | undefined
      return {
        start: async () => { stopCounting = await countOwnUsage(c.store, c.self.id, c.metrics) },
        stop: async () => { stopCounting?.() }
      }
    }),
    // printers added, changed and removed at run time, here or by admin actions of other sites (issue 16 item 4)
    'printer-admin': () => serviceFactory<C & { transport: Libp2pTransport, sync: SyncEngine }, SitePrinters>([...PEER_VIEW, 'documents', 'printers', 'logger', 'roaming'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger)
      return new SitePrinters({
        store: c.store,
        self: c.self.id,
        site: info.site,
        printers: c.printers,
        startup: printerConfigs,
        defaultPrinter: printerConfigs[0].name,
        roleOf: (peer) => c.membership.info(peer)?.role,
        device: (uri) => createOutputDevice(uri, { logger: c.logger }),
        logger: c.logger,
        queues: { queues: [{ name: config.queue, hold: config.hold }], holdMs: config.holdMs ?? DEFAULT_HOLD_MS, retentionMs: config.retentionMs ?? DEFAULT_RETENTION_MS },
        terminals: () => mesh.status().peers.filter((p) => p.role === 'terminal' && p.site === info.site).map((p) => ({ peer: p.peer, up: p.connected })),
        settings: siteSettingsWriter(c.roaming)
      })
    }),
    tls: tlsService(config.tls ?? { kind: 'off' }),
    ipp: ippService({
      host: config.host,
      port: config.ippPort,
      uriHost: displayHost,
      realm: `printmesh ${info.site}`,
      ...(config.ippJobList !== undefined ? { anonymousJobs: config.ippJobList } : {}),
      ...(config.intakeLimits !== undefined ? { limits: config.intakeLimits } : {})
    }),
    http: () => serviceFactory<C & { transport: Libp2pTransport, sync: SyncEngine, 'printer-admin': SitePrinters, credit: CreditService }, HttpServer>([...PEER_VIEW, 'jobs', 'roaming', 'printers', 'adminToken', 'logins', 'logger', 'cardKey', 'tls', 'delegation', 'printer-admin', 'credit'], (c) => {
      const api = createSiteApi({ info, peer: c.self.id, adminToken: c.adminToken, store: c.store, jobs: c.jobs, roaming: c.roaming, printers: c.printers, directoryAuthority: () => c.membership.authority === c.self.id, cardKey: c.cardKey, delegation: c.delegation })
      const mesh = createMeshApi(peerOf(c), c.logger)
      // a standalone site is its own directory authority; once it joins, central manages its users
      const directory = new DirectoryAdmin({ store: c.store, cardKey: c.cardKey, authority: () => c.membership.authority === c.self.id, homeSite: info.site })
      // reports over the accounting this site holds; a standalone site writes its own mesh price list
      const reports = createReports({ store: c.store, self: { peer: c.self.id, role: 'site', site: info.site }, peers: () => mesh.status().peers, authority: () => c.membership.authority === c.self.id, now: Date.now })
      // a logged-in user sets a new PIN on the user page, in this site's own enrolment document (issue 15 item 4)
      const enrolments = new Enrolments({ store: c.store, self: c.self.id, cardKey: c.cardKey, checkPin: async (u, p) => await checkPin(c.store, u, p), logger: c.logger })
      // every admin action here, in this site's own audit document; the whole mesh's log read back (issue 16 item 6)
      const audit = createAuditLog({ store: c.store, self: { peer: c.self.id, role: 'site', site: info.site }, now: Date.now })
      // the admin console: every site's printers and settings, jobs mesh-wide, changes as signed admin actions (issue 16 item 4)
      const adminConsole = createAdminConsole({ store: c.store, self: c.self.id, site: info.site, local: c['printer-admin'], localSettings: siteSettingsWriter(c.roaming), peers: () => mesh.status().peers })
      // named admin accounts and the mesh token: written here while standalone, else received from central (issue 16 item 5)
      const accounts = new AdminAccounts({ store: c.store, cardKey: c.cardKey, authority: () => c.membership.authority === c.self.id, authorityId: () => c.membership.authority, onRotated: ownTokenFileKeeper(c.self.dataDir, c.adminToken, c.logger) })
      return createHttpServer({
        api,
        mesh,
        audit,
        accounts,
        // the route families of the site's services: jobs, roaming, accounting, users, mesh
        plugins: [jobsRoutes(api), roamingRoutes(api), accountingRoutes(api), directoryRoutes(directory), meshRoutes(mesh), metricsRoutes(c.metrics), reportsRoutes(reports), pagesRoutes(['release', 'admin', 'reports', 'console']), consoleRoutes(adminConsole), eventsRoutes(storeChangeFeed(c.store, c.transport)), enrolRoutes({ enrolPin: async (u, o, n, r) => { await enrolments.enrolPin(u, o, n, r) } }), terminalsRoutes(siteTerminals(info.site, { host: c.host, mesh, logger: c.logger, now: Date.now })), auditRoutes(audit), creditRoutes(c.credit), adminAccountsRoutes(accounts)],
        logger: c.logger,
        host: config.host,
        port: config.httpPort,
        metrics: c.metrics,
        logins: c.logins,
        tls: c.tls,
        ...(config.plainHttp === true ? { plainHttp: true } : {})
      })
    }),
    dnssd: dnssdService({ host: config.host, uriHost: displayHost, name: info.site })
  }
}

/** The site's settings as its admin API writes them (the roaming service), for the console and admin actions from elsewhere. */
function siteSettingsWriter (roaming: RoamingService): SiteSettingsWriter {
  return {
    roaming: async (input) => await roaming.setRoaming(input),
    clients: async (input) => await roaming.setClientSettings(input),
    terminals: async (input) => await roaming.setTerminalSettings(input),
    policy: async (input) => await roaming.setPrintPolicy(input),
    times: async (input) => await roaming.setTimes(input)
  }
}

/**
 * Starts a site: prepares the peer core (joining when asked), then builds and starts the
 * services of `ROLES.site` (`services` overrides the list: tests assemble wrong roles with it).
 */
export async function startSite (config: SiteConfig, logger: Logger, services?: readonly string[]): Promise<RunningSite> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'site' })
  const printerConfigs = config.printers.length > 0
    ? config.printers
    : [{ name: VIRTUAL_PRINTER, uri: `file://${join(data, 'virtual-printer')}` }]
  const printers = new Map<string, OutputDevice>()
  for (const p of printerConfigs) {
    if (printers.has(p.name)) throw new Error(`printer ${p.name} configured twice`)
    printers.set(p.name, createOutputDevice(p.uri, { logger: log }))
  }
  const core = await preparePeer(peerConfig(data, 'site', config.mesh, config.site ?? osHostname().replace(/[^A-Za-z0-9._:-]/g, '-')), log)
  const { token: adminToken, file: adminTokenFile } = await resolveAdminToken(data, config.adminToken)
  const info = { site: core.self.site ?? siteId('local'), hostname: config.hostname ?? osHostname(), ippUri: '', version: '0.1.0' }
  const components: SiteComponents = {
    ...core,
    // the audit log's retention, as the admin set it (issue 16 item 6)
    retained: retentionRule(JOBS_REPLICA_MONTHS, config.auditRetentionMonths),
    spool: await Spool.open(join(data, 'spool')),
    copies: await Spool.open(join(data, 'roaming')),
    printers,
    roamingLink: libp2pRoamingLink(core.host, certifiedSiteOf(core.membership)),
    adminToken,
    logins: await persistentLoginGuard(data, { report: { failed: core.metrics.loginFailed, refused: core.metrics.loginRefused, succeeded: core.metrics.loginSucceeded } }, log, core.storeKey)
  }
  const names = services ?? ROLES.site.filter((n) => n !== 'dnssd' || config.dnssd !== false)
  const node = await startRoleNode<{ jobs: JobService, roaming: RoamingService, ipp: IppServer, http: HttpServer, tls?: TlsProvider }>('site', siteServices(config, info, printerConfigs), components, log, names)
  const { ipp, http, jobs, roaming } = node.services
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? osHostname() : config.host
  const tls = node.services.tls?.material() !== undefined
  const ippUri = `${tls ? 'ipps' : 'ipp'}://${displayHost}:${ipp.port}/ipp/print`
  info.ippUri = ippUri
  const webUrl = `${tls ? 'https' : 'http'}://${displayHost}:${http.port}/`
  log.info({ peer: core.self.id, ippUri, webUrl, ippPort: ipp.port, httpPort: http.port, listen: core.host.getMultiaddrs().map(String), printers: printerConfigs.map((p) => p.name), adminTokenFile }, 'site ready')
  return { ippPort: ipp.port, httpPort: http.port, ippUri, webUrl, jobs, roaming, peer: peerOf(node.components), node, ...(adminTokenFile !== undefined ? { adminTokenFile } : {}), stop: async () => await node.stop() }
}
