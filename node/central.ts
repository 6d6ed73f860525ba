/**
 * The central role: license authority (issues and revokes certificates, answers
 * enrollment), the mesh-wide directory, and the web admin for the whole mesh. It holds and
 * relays every document but is never a print server: it runs no IPP endpoint.
 */
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { preparePeer, peerConfig, peerOf, CORE_SERVICES, JOBS_REPLICA_MONTHS, PEER_VIEW, type Peer, type PeerComponents } from './peer.ts'
import { EnrollmentAuthority, type EnrollRequest } from './enrollment.ts'
import { handleEnrollment } from '../transports/enroll.ts'
import { createMeshApi } from './mesh.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { meshRoutes } from '../ui/routes/mesh.ts'
import { metricsRoutes } from '../ui/routes/metrics.ts'
import { pagesRoutes } from '../ui/routes/pages.ts'
import { reportsRoutes } from '../ui/routes/reports.ts'
import { createReports } from './reports.ts'
import { directoryRoutes } from '../ui/routes/directory.ts'
import { DirectoryAdmin } from './directory-admin.ts'
import { serviceFactory, type Node, type Startable } from './compose.ts'
import { startRoleNode, type ServiceRegistry } from './roles.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'
import { ownTokenFileKeeper, resolveAdminToken } from './admin-token.ts'
import { AdminAccounts } from './admin-accounts.ts'
import { adminAccountsRoutes } from '../ui/routes/admin-accounts.ts'
import { loadLdapConfig, type LdapConfig } from './ldap-config.ts'
import { LdapSync } from './ldap-sync.ts'
import { ldapRoutes } from '../ui/routes/ldap.ts'
import { loadCentralLicense, loadVendorPublicKey, type ProductLicense } from './license-file.ts'
import { CentralLicense } from './central-license.ts'
import { licenseRoutes } from '../ui/routes/license.ts'
import type { KeyObject } from 'node:crypto'
import { tlsService, type TlsMode, type TlsProvider } from './tls.ts'
import { EnrolmentMerger } from './enrolment.ts'
import { enrolRoutes } from '../ui/routes/enrol.ts'
import { auditRoutes } from '../ui/routes/audit.ts'
import { createAuditLog, retentionRule } from './audit.ts'
import { createAdminConsole, storeChangeFeed } from './printer-admin.ts'
import { consoleRoutes } from '../ui/routes/console.ts'
import { eventsRoutes } from '../ui/routes/events.ts'
import { creditRoutes } from '../ui/routes/credit.ts'
import { creditService, escrowServerService, type CreditService } from './credit.ts'

export interface CentralConfig {
  data: string
  /** Months of audit log kept (node/audit.ts; default 13): older months are dropped whole. */
  auditRetentionMonths?: number
  host: string
  httpPort: number
  listen: string[]
  bootstrap: string[]
  mdns: boolean
  networkKeyFile?: string
  adminToken?: string
  antiEntropyMs?: number
  /** The LDAP synchronisation's JSON file (node/ldap-config.ts); checked before anything starts. */
  ldapConfigFile?: string
  /** A signed product license file to install (copied into the data folder); without one, the installed one or an unlicensed evaluation. */
  licenseFile?: string
  /** The vendor public key licenses are checked with (default: the shipped one); for tests and self-hosted vendors. */
  vendorPublicKeyFile?: string
  /** HTTPS for central's console (node/tls.ts); central's mesh CA certifies members whatever this says. Default off. */
  tls?: TlsMode
  /** While TLS is on, serve the console over plain HTTP too (default: redirect to https). */
  plainHttp?: boolean
}

export interface RunningCentral {
  peer: Peer
  node: Node
  httpPort: number
  webUrl: string
  adminTokenFile?: string
  stop (): Promise<void>
}

/** Central's own services by name, besides the core (node/roles.ts lists them). */
function centralServices (config: CentralConfig, product: { vendorKey: KeyObject, license: ProductLicense | undefined }): ServiceRegistry {
  type C = PeerComponents & { documents: Startable, enrollment: EnrollmentService, libp2p: Startable, transport: Libp2pTransport, sync: SyncEngine, adminToken: string, ldap: LdapService, ldapConfig: LdapConfig | undefined }
  return {
    ...CORE_SERVICES,
    enrollment: () => serviceFactory<C, EnrollmentService>(['store', 'documents', 'signer', 'host', 'libp2p', 'logger', 'clock', 'metrics', 'self'], (c) => {
      const license = new CentralLicense({ store: c.store, dataDir: c.self.dataDir, vendorKey: product.vendorKey, license: product.license, clock: c.clock, logger: c.logger })
      const authority = new EnrollmentAuthority(c.store, c.signer, () => c.clock.now(), license.policy)
      // cards and PINs users registered anywhere, merged into the directory as they arrive (issue 15 item 4)
      const merger = new EnrolmentMerger({ store: c.store, logger: c.logger, now: c.clock.now })
      let unhandle: (() => Promise<void>) | undefined
      return {
        authority,
        license,
        merger,
        start: async () => {
          await merger.start()
          await license.start()
          c.metrics.use({ license: () => license.metrics() })
          unhandle = await handleEnrollment(c.host, async (from, request) => await authority.handle(from, request as EnrollRequest), c.logger)
        },
        stop: async () => { license.stop(); await unhandle?.(); await merger.stop() }
      }
    }),
    ldap: () => serviceFactory<C, LdapService>(['store', 'documents', 'self', 'cardKey', 'logger', 'metrics', 'clock', 'ldapConfig'], (c) => {
      if (c.ldapConfig === undefined) return { start: async () => {}, stop: async () => {} } // no --ldap-config: the routes say so
      const sync = new LdapSync({ config: c.ldapConfig, store: c.store, dataDir: c.self.dataDir, cardKey: c.cardKey, logger: c.logger, now: c.clock.now })
      c.metrics.use({ ldap: () => sync.metrics() })
      return sync
    }),
    credit: () => creditService({}),
    'escrow-server': escrowServerService,
    tls: tlsService(config.tls ?? { kind: 'off' }),
    http: () => serviceFactory<C & { tls: TlsProvider, credit: CreditService }, HttpServer>([...PEER_VIEW, 'enrollment', 'adminToken', 'logger', 'cardKey', 'ldap', 'tls', 'credit'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger, c.enrollment.authority)
      // central is the directory's authority: its users are managed here (API, CLI, admin page)
      const directory = new DirectoryAdmin({ store: c.store, cardKey: c.cardKey, authority: () => true })
      // reports over every peer's accounting (central holds all); central writes the mesh price list
      const reports = createReports({ store: c.store, self: { peer: c.self.id, role: 'central' }, peers: () => mesh.status().peers, authority: () => true, now: Date.now })
      // every admin action here, in central's own audit document; the whole mesh's log read back (issue 16 item 6)
      const audit = createAuditLog({ store: c.store, self: { peer: c.self.id, role: 'central' }, now: Date.now })
      // named admin accounts and the mesh token, written here for the whole mesh (issue 16 item 5)
      const accounts = new AdminAccounts({ store: c.store, cardKey: c.cardKey, authority: () => true, authorityId: () => c.self.id, onRotated: ownTokenFileKeeper(c.self.dataDir, c.adminToken, c.logger) })
      return createHttpServer({ mesh, audit, accounts, plugins: [adminAccountsRoutes(accounts), auditRoutes(audit), creditRoutes(c.credit), meshRoutes(mesh), directoryRoutes(directory), metricsRoutes(c.metrics), licenseRoutes(c.enrollment.license), ldapRoutes(c.ldap instanceof LdapSync ? c.ldap : undefined), reportsRoutes(reports), enrolRoutes({ conflicts: async () => await c.enrollment.merger.conflicts(), assign: async (id, user, by) => await c.enrollment.merger.assign(id, user, by) }), pagesRoutes(['admin', 'reports', 'console']), consoleRoutes(createAdminConsole({ store: c.store, self: c.self.id, peers: () => mesh.status().peers })), eventsRoutes(storeChangeFeed(c.store, c.transport))], adminToken: c.adminToken, logger: c.logger, host: config.host, port: config.httpPort, metrics: c.metrics, tls: c.tls, ...(config.plainHttp === true ? { plainHttp: true } : {}) })
    })
  }
}

/** Central's enrollment: answers join requests over libp2p, within the product license. */
interface EnrollmentService extends Startable { authority: EnrollmentAuthority, license: CentralLicense, merger: EnrolmentMerger }

/** Central's LDAP synchronisation (node/ldap-sync.ts), or nothing without --ldap-config. */
type LdapService = LdapSync | Startable

export async function startCentral (config: CentralConfig, logger: Logger, services?: readonly string[]): Promise<RunningCentral> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'central' })
  // a license central cannot trust stops it here, before anything starts
  const vendorKey = await loadVendorPublicKey(config.vendorPublicKeyFile)
  const license = await loadCentralLicense(data, vendorKey, config.licenseFile)
  // a bad LDAP configuration stops central here too, naming the field
  const ldapConfig = config.ldapConfigFile !== undefined ? await loadLdapConfig(config.ldapConfigFile) : undefined
  const core = await preparePeer(peerConfig(data, 'central', config), log)
  const { token, file } = await resolveAdminToken(data, config.adminToken)
  // the audit log's retention, as the admin set it (issue 16 item 6)
  const components = { ...core, retained: retentionRule(JOBS_REPLICA_MONTHS, config.auditRetentionMonths), adminToken: token, ldapConfig }
  const node = await startRoleNode<{ http: HttpServer }>('central', centralServices(config, { vendorKey, license }), components, log, services)
  const http = node.services.http
  const webUrl = `${(node.services as { tls?: TlsProvider }).tls?.material() !== undefined ? 'https' : 'http'}://${config.host}:${http.port}/`
  log.info({ peer: core.self.id, webUrl, httpPort: http.port, listen: core.host.getMultiaddrs().map(String), adminTokenFile: file }, 'central ready')
  return { peer: peerOf(node.components), node, httpPort: http.port, webUrl, ...(file !== undefined ? { adminTokenFile: file } : {}), stop: async () => await node.stop() }
}
