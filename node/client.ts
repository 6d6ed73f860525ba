/**
 * The client role: the light peer on a workstation (issue 14). It joins its site's mesh
 * with a join string and runs an IPP printer on the workstation (`ipp://127.0.0.1:PORT/ipp/print`,
 * also `/printers/<queue>`) that the operating system prints to with its ordinary driverless
 * client (`lp -h 127.0.0.1:PORT -d <queue>`). Its jobs belong to the workstation's user
 * (`--user`, default the OS user); another requesting-user-name is refused unless the site
 * allows it (`PUT /api/roaming/clients {"otherUsers": true}` at the site).
 *
 * Client spooling: the client analyses each document itself (the site's analysis code, in
 * its worker pool), keeps it in its own spool and publishes only the job record in its own
 * jobs document, marked with the workstation's name (`heldAt`). The site's page and the
 * terminals' panels list it as any job held by a peer of the site; a release there asks
 * this client for the grant (the client arbitrates, at most once) and fetches the document
 * from it directly: the site's server moves none of its bytes. A workstation that is off
 * is listed as unavailable there, and its jobs expire by the normal hold time.
 *
 * Client spooling off (the site's `clients.spooling` false): the client hands each job it
 * takes to its site's server, which holds it as its own (devices/jobs/handover.ts); while no
 * server of the site is reachable, the job stays here as with client spooling.
 *
 * Fallback printing (node/fallback.ts): when no peer of its site that could release a job
 * is reachable, a new job prints at once on a fallback printer (`--fallback-printer`),
 * charged in this client's own accounting document, which reaches the mesh when it is back.
 *
 * The local page at `/` (loopback only): this workstation's jobs and their state, whether
 * the site is reachable, the fallback printers and the user's choice among them.
 *
 * Services, in start order (node/roles.ts `ROLES.client`): the peer core, then analyzer →
 * print-engine → jobs → roaming → release-server → fallback → handover → ipp → http.
 */
import { join, resolve } from 'node:path'
import { hostname as osHostname, userInfo } from 'node:os'
import type { Logger } from 'pino'
import type { IppServer } from '../devices/ipp/server.ts'
import { ippService } from './intake.ts'
import type { IppAuthenticator } from '../devices/ipp/auth.ts'
import { Spool } from '../devices/spool.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import type { JobService } from '../devices/jobs/service.ts'
import { readSiteSettings } from '../crdt/site-config.ts'
import { siteConfigDoc, siteId, type PeerId, type SiteId } from '../crdt/names.ts'
import { preparePeer, peerConfig, peerOf, CORE_SERVICES, PEER_VIEW, type Peer, type PeerComponents } from './peer.ts'
import { createMeshApi } from './mesh.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { meshRoutes } from '../ui/routes/mesh.ts'
import { metricsRoutes } from '../ui/routes/metrics.ts'
import { pagesRoutes } from '../ui/routes/pages.ts'
import { consoleRoutes } from '../ui/routes/console.ts'
import { eventsRoutes } from '../ui/routes/events.ts'
import { createAdminConsole, storeChangeFeed } from './printer-admin.ts'
import { clientRoutes } from '../ui/routes/client.ts'
import type { ClientApi, ClientJobView } from '../ui/api.ts'
import { persistentLoginGuard } from './login-state.ts'
import { resolveAdminToken } from './admin-token.ts'
import { AdminAccounts } from './admin-accounts.ts'
import { serviceFactory, type Node, type Startable } from './compose.ts'
import { ROLES, startRoleNode, type ServiceRegistry } from './roles.ts'
import { certifiedSiteOf, releaseServices } from './release.ts'
import { creditService, type CreditService, type CreditStatus } from './credit.ts'
import { libp2pRoamingLink } from './roaming.ts'
import { FallbackPrinting } from './fallback.ts'
import { openDirectPrinters } from './direct-printers.ts'
import type { DirectPrinters } from '../devices/jobs/roaming.ts'
import { HandOverSender } from '../devices/jobs/handover.ts'
import { HANDOVER_PRINTER, HANDED_OVER_REASON, type RoamingLink } from '../devices/jobs/types.ts'
import type { LightPeerConfig } from './light-peer.ts'
import { tlsService, type TlsProvider } from './tls.ts'
import type { Membership } from '../crdt/membership.ts'
import type { DocStore } from '../crdt/store.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'

/** The workstation's queue when `--queue` does not name one. */
export const DEFAULT_CLIENT_QUEUE = 'printmesh'

export interface ClientConfig extends LightPeerConfig {
  /** IPP port of the workstation's printer (0 picks a free one). */
  ippPort: number
  /** The workstation's user, who owns its jobs (default: the OS user running the client). */
  user?: string
  /** The name its jobs are listed under at the site and the terminals (default: the host name). */
  name?: string
  /** The queue name (`lp -d NAME`), default {@link DEFAULT_CLIENT_QUEUE}. */
  queue?: string
  /** Backup printers, tried in order when the site is unreachable (`--fallback-printer NAME=URI`). */
  fallbackPrinters?: ReadonlyArray<{ name: string, uri: string }>
  /** How long a job waits here for release before it expires (default: the job service's). */
  holdMs?: number
}

export interface RunningClient {
  peer: Peer
  node: Node
  httpPort: number
  ippPort: number
  jobs: JobService
  fallback: FallbackPrinting
  stop (): Promise<void>
}

/**
 * IPP logins at a workstation's printer: the workstation's own user, from the workstation
 * itself (the OS logged them in; the client holds no PINs, which reach only the peers where
 * users log in), whatever password CUPS sends. Anyone else, or from elsewhere, is refused.
 */
function workstationLogin (user: string): IppAuthenticator {
  return async (credentials, address) => {
    const local = address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
    if (local && credentials.scheme === 'basic' && credentials.user === user) return { ok: true, actor: { user, admin: false } }
    return { ok: false, refusal: 'wrong' }
  }
}

/** The jobs the local page shows: what happened to each, and where a fallback job went. */
function clientJobs (jobs: JobService, fallback: FallbackPrinting): ClientJobView[] {
  return jobs.listJobs({ which: 'all' }).sort((a, b) => b.createdAt - a.createdAt).map((job) => ({ job, sentTo: fallback.fallbackOf(job) })).map(({ job, sentTo }) => ({
    id: job.id,
    name: job.name,
    owner: job.owner,
    state: job.state,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.pages !== undefined ? { pages: job.pages } : {}),
    ...(job.colorPages !== undefined ? { colorPages: job.colorPages } : {}),
    ...(job.message !== undefined && job.message !== '' ? { message: job.message } : {}),
    ...(job.printedBy !== undefined ? { printedBy: job.printedBy } : {}),
    ...(job.printer !== undefined ? { printer: job.printer } : {}),
    ...(sentTo !== undefined ? { fallback: sentTo } : {}),
    ...(job.grant?.printer === HANDOVER_PRINTER && (job.state === 'releasing' || job.reason === HANDED_OVER_REASON) ? { handOver: { site: job.grant.site, done: job.state === 'deleted' } } : {})
  }))
}

function clientServices (config: ClientConfig, site: SiteId, name: string, user: string, fallbackPrinters: ReadonlyMap<string, OutputDevice>, directPrinters: DirectPrinters, store: DocStore): ServiceRegistry {
  const queue = config.queue ?? DEFAULT_CLIENT_QUEUE
  type C = PeerComponents & { transport: Libp2pTransport, sync: SyncEngine, adminToken: string, jobs: JobService, fallback: FallbackPrinting & Startable, tls: TlsProvider, ipp: IppServer }
  return {
    ...CORE_SERVICES,
    ...releaseServices({
      site,
      queues: [{
        name: queue,
        hold: true,
        pinned: false,
        info: `${name}: kept on this workstation until you release it at a printer of site ${site}`,
        location: name,
        // the site's setting, read as each job arrives
        owner: { user, othersAllowed: () => readSiteSettings(store.get(siteConfigDoc(site)), site).clients.otherUsers }
      }],
      jobs: { deviceName: name, ...(config.holdMs !== undefined ? { holdMs: config.holdMs } : {}) },
      directPrinters
    }),
    // the workstation's user's share of their credit kept here, for fallback printing with the site away (issue 20)
    credit: () => creditService({ site, prefetchFor: user }),
    tls: tlsService(config.tls ?? { kind: 'off' }),
    fallback: () => serviceFactory<C & { membership: Membership, store: DocStore, printers: ReadonlyMap<string, OutputDevice> }, FallbackPrinting & Startable>(['jobs', 'store', 'membership', 'host', 'self', 'printers', 'logger'], (c) => {
      // the print engine's printers besides the fallback ones: the site's devices this client printed to itself
      const printedBefore = (): ReadonlyMap<string, OutputDevice> => new Map([...c.printers].filter(([name]) => !fallbackPrinters.has(name)))
      return new FallbackPrinting(
        { data: resolve(config.data), site, self: c.self.id, printers: fallbackPrinters, printedBefore },
        { jobs: c.jobs, store: c.store, membership: c.membership, connectedPeers: () => c.host.getConnections().filter((k) => k.status === 'open').map((k) => k.remotePeer.toString()), logger: c.logger })
    }),
    handover: () => serviceFactory<C & { store: DocStore, membership: Membership, roamingLink: RoamingLink }, Startable>(['jobs', 'store', 'membership', 'roamingLink', 'fallback', 'logger'], (c) => {
      const sender = new HandOverSender({ site }, {
        jobs: c.jobs,
        link: c.roamingLink,
        handingOver: () => !readSiteSettings(c.store.get(siteConfigDoc(site)), site).clients.spooling,
        // the site's own server, not a terminal: only it takes jobs in
        siteServer: () => c.fallback.reachablePeers().find((p) => c.membership.info(p)?.role === 'site') as PeerId | undefined,
        logger: c.logger
      })
      return { start: async () => { sender.start() }, stop: async () => { await sender.stop() } }
    }),
    ipp: ippService({ host: config.host, port: config.ippPort, realm: `printmesh ${name}`, authenticate: workstationLogin(user) }),
    http: () => serviceFactory<C & { credit: CreditService }, HttpServer>([...PEER_VIEW, 'adminToken', 'jobs', 'fallback', 'ipp', 'metrics', 'logger', 'tls', 'credit'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger)
      c.metrics.use({ jobStates: () => c.jobs.stateCounts() })
      const urlHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host
      const api: ClientApi = {
        status: () => {
          const reachable = c.fallback.reachablePeers()
          return {
            workstation: name,
            user,
            site,
            queue,
            ippUri: `ipp://${urlHost}:${c.ipp.port}/ipp/print`,
            siteReachable: reachable.length > 0,
            reachablePeers: reachable.map((p) => ({ peer: p, role: c.membership.info(p)?.role ?? 'unknown' })),
            clientSpooling: readSiteSettings(c.store.get(siteConfigDoc(site)), site).clients.spooling,
            jobs: clientJobs(c.jobs, c.fallback),
            fallbackPrinters: c.fallback.printers(),
            credit: clientCredit(c.credit.status(user))
          }
        },
        chooseFallback: async (printer) => { await c.fallback.choose(printer) },
        printOnFallback: async (jobId, printer) => { await c.fallback.printNow(jobId, printer) },
        cancel: async (jobId) => { const job = c.jobs.getById(jobId); if (job !== undefined) await c.jobs.cancel(jobId, { user: job.owner, admin: false }) }
      }
      // the mesh token, once central rotates one, from the license document (a client has no directory, so no accounts)
      const accounts = new AdminAccounts({ store: c.store, authority: () => false, authorityId: () => c.membership.authority, tokenOnly: true })
      return createHttpServer({ mesh, accounts, plugins: [meshRoutes(mesh), clientRoutes(api), metricsRoutes(c.metrics), pagesRoutes(['client', 'admin', 'console']),
        // the admin console, read-only: every site's printers and settings and this site's jobs, as this workstation holds them (issue 16 item 4)
        consoleRoutes(createAdminConsole({ store: c.store, self: c.self.id, site, peers: () => mesh.status().peers, readOnly: 'client' })), eventsRoutes(storeChangeFeed(c.store, c.transport))], adminToken: c.adminToken, logger: c.logger, host: config.host, port: config.httpPort, metrics: c.metrics, tls: c.tls, ...(config.plainHttp === true ? { plainHttp: true } : {}) })
    })
  }
}

/** Starts a workstation's client (it must join: a first start needs `mesh.join`). */
export async function startClient (config: ClientConfig, logger: Logger, services?: readonly string[]): Promise<RunningClient> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'client' })
  const fallbackPrinters = new Map((config.fallbackPrinters ?? []).map((p) => [p.name, createOutputDevice(p.uri, { logger: log })]))
  // the print engine's printers: the fallback ones, and those of the peers that released its jobs here (client → printer)
  const printers = new Map<string, OutputDevice>(fallbackPrinters)
  const directPrinters = await openDirectPrinters(data, printers, log)
  const core = await preparePeer(peerConfig(data, 'client', config.mesh), log)
  const site = core.self.site ?? siteId('local')
  const { token } = await resolveAdminToken(data, config.adminToken)
  const components = {
    ...core,
    adminToken: token,
    logins: await persistentLoginGuard(data, { report: { failed: core.metrics.loginFailed, refused: core.metrics.loginRefused, succeeded: core.metrics.loginSucceeded } }, log, core.storeKey),
    spool: await Spool.open(join(data, 'spool')),
    copies: await Spool.open(join(data, 'roaming')),
    printers,
    roamingLink: libp2pRoamingLink(core.host, certifiedSiteOf(core.membership))
  }
  const name = config.name ?? osHostname()
  const user = config.user ?? userInfo().username
  const node = await startRoleNode<{ http: HttpServer, roaming: RoamingService, jobs: JobService, ipp: IppServer, fallback: FallbackPrinting }>('client', clientServices(config, site, name, user, fallbackPrinters, directPrinters, core.store), components, log, services)
  const { http, ipp, jobs, fallback } = node.services
  log.info({ peer: core.self.id, site, name, user, httpPort: http.port, ippPort: ipp.port, fallbackPrinters: [...fallbackPrinters.keys()], listen: core.host.getMultiaddrs().map(String) }, 'client ready')
  return { peer: peerOf(node.components), node, httpPort: http.port, ippPort: ipp.port, jobs, fallback, stop: async () => await node.stop() }
}

/** The workstation's view of its user's credit: what the page shows beside the jobs. */
function clientCredit (s: CreditStatus): ReturnType<ClientApi['status']>['credit'] {
  return { enforced: s.enforced, ...(s.currency !== undefined ? { currency: s.currency } : {}), balance: s.balance, here: s.here, quotas: s.quotas.map((q) => ({ measure: q.measure, left: q.left, here: q.here })) }
}
