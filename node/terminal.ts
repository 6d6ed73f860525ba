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
 * Device spooling: workstations may print straight to the terminal over IPP, to a queue per
 * release mode ({@link RELEASE_MODES}): Direct prints on arrival, Hold keeps the job for
 * this device only, Pull keeps it here but lists it at every peer of the site, which
 * releases it through this terminal's grant, as any holder's.
 *
 * Delegated keeps it as Pull does, and the owner's delegates (directory) may release it too.
 * Which modes are offered, and which one `/ipp/print` takes, is the site's configuration once
 * its admin sets it (else `--modes`), applied as it arrives (node/terminal-modes.ts).
 * A Pull job released elsewhere prints only once its whole document reached the releasing peer
 * (sha256-checked): killed mid-transfer, this terminal prints nothing of it until it is back, and
 * the transfer then resumes under the same grant (`--roaming-rate` caps it, as a site's).
 *
 * Copying: with `--counters` (the device's page counters, devices/counters) the panel offers
 * copy sessions, charged from the counters in this terminal's own accounting (node/copy-sessions.ts).
 *
 * Status: `/api/info`'s `terminal` section (online, users cached, last sync, the printer's state,
 * reasons and supplies), told to its site's admin page over `/printmesh/terminal-status/1.0.0`
 * (node/terminal-status.ts). A card reader daemon posts cards at `POST /api/panel/card`
 * (node/card-reader.ts, `--card-reader-token-file`).
 *
 * PIN-only login (`--pin-only-login`): the panel takes a PIN alone, found by its keyed index
 * (node/users.ts `checkPinOnly`) at `/api/login` as the pseudo-user `#pin`, under the node's
 * login guard; the terminal says so in its enrolment document, so PINs set anywhere in the
 * mesh are kept unique (node/enrolment.ts).
 *
 * Offline credential cache encrypted at rest (issue 12 item 4): the database (directory, enrolments)
 * and the login state are sealed under the terminal's store key, kept OUTSIDE the data folder
 * (`--store-key-file`, default `<data>.store-key`; node/store-key.ts): a copy of the folder alone
 * reveals no PIN, card number or credential hash. A wrong or missing key stops the start, folder untouched.
 *
 * Owners: a job sent here belongs to its `requesting-user-name` unless the site's configuration
 * says its terminals do not trust that name (`trustUserName` false): it is then nobody's, held
 * whatever its mode, until a user logged in at the panel claims it (`/api/claims`, ui/routes/claims.ts).
 */
import { join, resolve } from 'node:path'
import { RELEASE_MODE_QUEUES } from '../devices/jobs/release-modes.ts'
import { hostname as osHostname } from 'node:os'
import type { IppServer } from '../devices/ipp/server.ts'
import { ippService, dnssdService } from './intake.ts'
import type { IntakeLimits } from '../devices/jobs/intake-limits.ts'
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
import { consoleRoutes } from '../ui/routes/console.ts'
import { eventsRoutes } from '../ui/routes/events.ts'
import { createAdminConsole, storeChangeFeed } from './printer-admin.ts'
import { reportsRoutes } from '../ui/routes/reports.ts'
import { createReports } from './reports.ts'
import { panelRoutes } from '../ui/routes/panel.ts'
import type { LoginGuard } from '../ui/rate-limit.ts'
import { persistentLoginGuard } from './login-state.ts'
import { resolveAdminToken } from './admin-token.ts'
import { AdminAccounts } from './admin-accounts.ts'
import { serviceFactory, type Node, startableOnce, type ServiceFactory, type Startable } from './compose.ts'
import { ROLES, startRoleNode, type ServiceRegistry } from './roles.ts'
import { certifiedSiteOf, releaseServices } from './release.ts'
import { libp2pRoamingLink } from './roaming.ts'
import { createPanelApi } from './panel.ts'
import { checkPin, panelLogins } from './users.ts'
import { Enrolments, announcePinOnly } from './enrolment.ts'
import { enrolRoutes } from '../ui/routes/enrol.ts'
import type { SyncEngine } from '../crdt/sync.ts'
import { siteId, type SiteId } from '../crdt/names.ts'
import type { Libp2pTransport } from '../transports/libp2p.ts'
import type { LightPeerConfig } from './light-peer.ts'
import { tlsService, type TlsProvider } from './tls.ts'
import { CopySessions } from './copy-sessions.ts'
import { TerminalSelf } from './terminal-status.ts'
import { CardReaderInbox } from './card-reader.ts'
import { cardReaderRoutes } from '../ui/routes/card-reader.ts'
import type { PrintEngine } from '../devices/jobs/print-engine.ts'
import type { DeviceCounters } from '../devices/counters/types.ts'
import { NotAuthorizedError, type Delegation, type JobRecord } from '../devices/jobs/types.ts'
import { claimRoutes } from '../ui/routes/claims.ts'
import type { ClaimApi, ClaimableJob } from '../ui/api.ts'
import { TERMINAL_RELEASE_MODES, type TerminalReleaseMode } from '../crdt/site-config.ts'
import { TerminalModes, type TerminalModesComponents } from './terminal-modes.ts'
import { creditRoutes } from '../ui/routes/credit.ts'
import { prefetchingOnLogin, type CreditService } from './credit.ts'

/** The name of the terminal's one printer in its release engine and accounting. */
export const TERMINAL_PRINTER = 'device'
/** How often the panel asks the printer how it is (its state shows on the panel before login). */
const PRINTER_PROBE_MS = 10_000

/**
 * Device spooling: how a job sent straight to this terminal is released.
 * - `direct`: printed on arrival on this terminal's printer.
 * - `hold`: held here, released only here after login, never listed elsewhere.
 * - `pull`: held here, listed at every peer of the site (and roaming partners), released
 *   anywhere through this terminal's grant.
 * - `delegated`: as `pull`, and the owner's delegates may release it too.
 */
export const RELEASE_MODES = TERMINAL_RELEASE_MODES
export type ReleaseMode = TerminalReleaseMode
/** Without `--modes` and before the site's configuration names any: all, Hold the default (nothing prints unasked). */
const DEFAULT_MODES: readonly ReleaseMode[] = ['hold', 'pull', 'direct', 'delegated']

/** The queue of each release mode (at `/printers/<mode>`; the default mode's also at `/ipp/print`). */
const MODE_QUEUES = RELEASE_MODE_QUEUES

export interface TerminalConfig extends LightPeerConfig {
  /** The MFP's IPP endpoint (`ipp://…`, `ipps://…`) or a `file://` folder; default `<data>/virtual-printer`. */
  printer?: string
  /** Idle time after which the panel logs its user out. */
  idleLogoutMs?: number
  /** IPP port of device spooling (0 picks a free one). */
  ippPort: number
  /** Release modes offered until the site's configuration names some, the default first (its queue also answers `/ipp/print`); default all, `hold` first (hold, pull, direct, delegated). */
  modes?: readonly ReleaseMode[]
  /** The name this terminal's jobs are listed under elsewhere, and its queues' DNS-SD name (default: the host name). */
  name?: string
  /** Cap on the rate each job document held here is sent to the peer releasing it (`--roaming-rate`), as a site's; default none. */
  roamingBytesPerSecond?: number
  /** Advertise the queues by DNS-SD (default true). */
  dnssd?: boolean
  /** What device spooling's IPP intake takes, over the defaults (devices/jobs/intake-limits.ts). */
  intakeLimits?: Partial<IntakeLimits>
  /** The device's page counters (`--counters`): copy sessions on the panel, charged by them (node/copy-sessions.ts); none, no copying. */
  counters?: DeviceCounters
  /** The card reader daemon's token (`--card-reader-token-file`): required on `POST /api/panel/card`; without it only loopback may post. */
  cardReaderToken?: string
  /** Users log in at the panel by PIN alone (`--pin-only-login`); default false: username and PIN, or card. */
  pinOnlyLogin?: boolean
}

export interface RunningTerminal {
  peer: Peer
  node: Node
  httpPort: number
  ippPort: number
  jobs: JobService
  roaming: RoamingService
  stop (): Promise<void>
}

function terminalServices (config: TerminalConfig, site: SiteId, name: string, offered: (c: TerminalModesComponents) => TerminalModes): ServiceRegistry {
  const fallback = config.modes ?? DEFAULT_MODES
  // every mode's queue is in the job service, so a job held in a mode the site turns off later stays
  // releasable; the intake takes jobs only in the modes offered (node/terminal-modes.ts)
  const modes = [...fallback, ...RELEASE_MODES.filter((m) => !fallback.includes(m))]
  type C = PeerComponents & { transport: Libp2pTransport, sync: SyncEngine, adminToken: string, logins: LoginGuard, jobs: JobService, roaming: RoamingService, printers: ReturnType<typeof printersOf>, tls: TlsProvider, delegation: Delegation, 'print-engine': PrintEngine, credit: CreditService }
  return {
    ...CORE_SERVICES,
    ...releaseServices({
      site,
      queues: modes.map((mode) => ({ name: mode, ...MODE_QUEUES[mode], info: `${name}: ${MODE_QUEUES[mode].info}`, defaultPrinter: TERMINAL_PRINTER, location: site })),
      jobs: { deviceName: name },
      ...(config.roamingBytesPerSecond !== undefined ? { blob: { maxBytesPerSecond: config.roamingBytesPerSecond } } : {})
    }),
    tls: tlsService(config.tls ?? { kind: 'off' }),
    ipp: () => offeredIntake(ippService({ host: config.host, port: config.ippPort, realm: `printmesh ${name}`, ...(config.intakeLimits !== undefined ? { limits: config.intakeLimits } : {}) })(), offered),
    dnssd: () => readvertised(dnssdService({ host: config.host, uriHost: config.host === '0.0.0.0' || config.host === '::' ? osHostname() : config.host, name })(), offered),
    http: () => serviceFactory<C, HttpServer>([...PEER_VIEW, 'adminToken', 'logins', 'jobs', 'roaming', 'printers', 'clock', 'logger', 'cardKey', 'tls', 'delegation', 'print-engine', 'credit'], (c) => {
      const mesh = createMeshApi(peerOf(c), c.logger)
      const panel = createPanelApi(
        { site, printer: TERMINAL_PRINTER, ...(config.idleLogoutMs !== undefined ? { idleLogoutMs: config.idleLogoutMs } : {}) },
        { jobs: c.jobs, roaming: c.roaming, printers: c.printers, transport: c.transport, membership: c.membership, logger: c.logger, now: c.clock.now, delegation: c.delegation })
      const copies = config.counters === undefined
        ? undefined
        : new CopySessions({ peer: c.self.id, site, printer: TERMINAL_PRINTER, data: resolve(config.data) }, { store: c.store, counters: config.counters, prints: c['print-engine'], credit: c.credit, logger: c.logger, now: c.clock.now, metrics: c.metrics })
      if (copies !== undefined) c.metrics.useCopies()
      // releases and usage charged here (the print families) are in /metrics, as on a site
      c.metrics.use({ jobStates: () => c.jobs.stateCounts() })
      const self = new TerminalSelf({ name, site }, { store: c.store, host: c.host, membership: c.membership, panel, logger: c.logger, now: c.clock.now })
      const reader = new CardReaderInbox({ ...(config.cardReaderToken !== undefined ? { token: config.cardReaderToken } : {}), now: c.clock.now })
      // reports over the accounting a terminal holds: its own and its site's; it writes no price list
      const reports = createReports({ store: c.store, self: { peer: c.self.id, role: 'terminal', site }, peers: () => mesh.status().peers, authority: () => false, now: c.clock.now })
      // a logged-in user registers a card (or sets a PIN) here, in this terminal's own enrolment document (issue 15 item 4)
      const enrolments = new Enrolments({ store: c.store, self: c.self.id, cardKey: c.cardKey, checkPin: async (u, p) => await checkPin(c.store, u, p), logger: c.logger, now: c.clock.now })
      const pinOnly = config.pinOnlyLogin === true
      const claims = claimsOf(c.jobs)
      const server = createHttpServer({
        mesh,
        // admins log in with their named accounts and the mesh token, both received from central (issue 16 item 5)
        accounts: new AdminAccounts({ store: c.store, cardKey: c.cardKey, authority: () => false, authorityId: () => c.membership.authority }),
        // username and PIN, card, and with --pin-only-login the PIN alone (the pseudo-user `#pin`)
        // a user logging in takes a share of their credit from the site, to print here if it is cut off (issue 20)
        users: prefetchingOnLogin(panelLogins(c.store, c.cardKey, { pinOnlyLogin: pinOnly }), c.credit),
        plugins: [meshRoutes(mesh), panelRoutes(panel, copies, { pinOnlyLogin: pinOnly }), claimRoutes(claims), cardReaderRoutes(reader), enrolRoutes({ enrolCard: async (u, card) => await enrolments.enrolCard(u, card), enrolPin: async (u, o, n, r) => { await enrolments.enrolPin(u, o, n, r) } }), metricsRoutes(c.metrics), reportsRoutes(reports), creditRoutes(c.credit), pagesRoutes(['panel', 'admin', 'reports', 'console']),
          // the admin console, read-only: every site's printers and settings and this site's jobs, as this terminal holds them (issue 16 item 4)
          consoleRoutes(createAdminConsole({ store: c.store, self: c.self.id, site, peers: () => mesh.status().peers, readOnly: 'terminal' })), eventsRoutes(storeChangeFeed(c.store, c.transport))],
        adminToken: c.adminToken,
        terminal: () => self.status(),
        logins: c.logins,
        logger: c.logger,
        host: config.host,
        port: config.httpPort,
        metrics: c.metrics,
        tls: c.tls,
        ...(config.plainHttp === true ? { plainHttp: true } : {})
      })
      let probeTimer: NodeJS.Timeout | undefined
      return {
        get port () { return server.port },
        start: async () => {
          await announcePinOnly(c.store, c.self.id, pinOnly, c.clock.now())
          await copies?.start()
          await self.start()
          await server.start()
          const probe = (): void => { void panel.refreshPrinter() }
          probe()
          probeTimer = setInterval(probe, PRINTER_PROBE_MS)
          probeTimer.unref()
        },
        stop: async () => {
          clearInterval(probeTimer)
          await server.stop()
          await self.stop()
          await copies?.stop()
        }
      }
    })
  }
}

type ModesDeps = TerminalModesComponents & { jobs: JobService }

/** The panel's claims (issue 13 item 3): jobs taken while the site does not trust the name sent, nobody's until claimed. */
function claimsOf (jobs: JobService): ClaimApi {
  const view = (j: JobRecord): ClaimableJob => ({
    id: j.id, name: j.name, state: j.state, createdAt: j.createdAt, queue: j.queue,
    ...(j.pages !== undefined ? { pages: j.pages } : {}),
    ...(j.originatingHost !== undefined ? { from: j.originatingHost } : {})
  })
  return {
    claimable: () => jobs.unclaimed().map(view),
    claim: async (actor, id) => {
      if (actor.admin) throw new NotAuthorizedError('an admin owns no jobs: log in as the user whose job it is to claim it')
      return view(await jobs.claim(id, actor))
    }
  }
}

/**
 * The IPP intake on the job service as the offered modes show it; the modes follow the site's
 * configuration from just before the server listens until it stops.
 */
function offeredIntake (inner: ServiceFactory<IppServer>, offered: (c: TerminalModesComponents) => TerminalModes): ServiceFactory<IppServer> {
  const factory = (components: Record<string, unknown>): IppServer => {
    const c = components as unknown as ModesDeps
    const modes = offered(c)
    const server = inner({ ...components, jobs: modes.intake(c.jobs) })
    const [start, stop] = [server.start.bind(server), server.stop.bind(server)]
    server.start = async () => { await modes.start(); await start() }
    server.stop = async () => { await stop(); modes.stop() }
    return server
  }
  return Object.assign(factory, { dependencies: Object.freeze([...new Set([...inner.dependencies, 'store', 'logger'])]) })
}

/**
 * DNS-SD of the offered modes: when they change, every queue is withdrawn and the offered ones
 * advertised again (the advertiser reads its groups once per start; a change is rare).
 */
function readvertised (inner: ServiceFactory, offered: (c: TerminalModesComponents) => TerminalModes): ServiceFactory {
  const factory = (components: Record<string, unknown>): Startable => {
    const c = components as unknown as ModesDeps
    const modes = offered(c)
    const advertiser = inner({ ...components, jobs: modes.intake(c.jobs) })
    let running = false
    let chain: Promise<void> = Promise.resolve()
    let unsubscribe = (): void => {}
    return startableOnce({
      start: async () => {
        running = true
        unsubscribe = modes.onChange(() => {
          chain = chain.then(async () => {
            if (!running) return
            await advertiser.stop()
            await advertiser.start()
          }).catch((err: unknown) => { c.logger.warn({ err }, 'DNS-SD: could not advertise the new release modes') })
        })
        await advertiser.start()
      },
      stop: async () => {
        running = false
        unsubscribe()
        await chain
        await advertiser.stop()
      }
    })
  }
  return Object.assign(factory, { dependencies: Object.freeze([...new Set([...inner.dependencies, 'store', 'logger'])]) })
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
    logins: await persistentLoginGuard(data, { report: { failed: core.metrics.loginFailed, refused: core.metrics.loginRefused, succeeded: core.metrics.loginSucceeded } }, log, core.storeKey),
    spool: await Spool.open(join(data, 'spool')),
    copies: await Spool.open(join(data, 'roaming')),
    printers,
    roamingLink: libp2pRoamingLink(core.host, certifiedSiteOf(core.membership))
  }
  const name = config.name ?? osHostname()
  const names = services ?? ROLES.terminal.filter((n) => n !== 'dnssd' || config.dnssd !== false)
  let modes: TerminalModes | undefined
  const offered = (c: TerminalModesComponents): TerminalModes => { modes ??= new TerminalModes({ site, name, fallback: config.modes ?? DEFAULT_MODES }, c); return modes }
  const node = await startRoleNode<{ http: HttpServer, roaming: RoamingService, jobs: JobService, ipp: IppServer }>('terminal', terminalServices(config, site, name, offered), components, log, names)
  const { http, roaming, ipp, jobs } = node.services
  log.info({
    peer: core.self.id, site, name, httpPort: http.port, ippPort: ipp.port, modes: modes?.offered().modes,
    panel: `http://${config.host}:${http.port}/panel`, printer: printers.get(TERMINAL_PRINTER)?.uri, listen: core.host.getMultiaddrs().map(String)
  }, 'terminal ready')
  return { peer: peerOf(node.components), node, httpPort: http.port, ippPort: ipp.port, jobs, roaming, stop: async () => await node.stop() }
}
