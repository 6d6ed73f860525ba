/**
 * The site role: a branch print server on the peer core (node/peer.ts). Its services, in
 * start order: store → libp2p host → transport → sync → revocations (the core), then
 * analyzer → jobs (domain) → ipp (intake) → http (web + API + mesh) → dnssd (the queues
 * advertised through avahi, unless `dnssd: false`).
 * Stopping runs in reverse, so no request reaches a closed store, and the queues are
 * withdrawn from DNS-SD before their server closes.
 */
import { hostname as osHostname } from 'node:os'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { Spool } from '../devices/spool.ts'
import { DocumentAnalyzer } from '../devices/documents/analyzer.ts'
import { createJobService, type JobService } from '../devices/jobs/service.ts'
import { createRoamingService, type RoamingService } from '../devices/jobs/roaming.ts'
import { libp2pRoamingLink, serveRoaming } from './roaming.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import { createIppServer } from '../devices/ipp/server.ts'
import { ippDnsSdGroups } from '../devices/ipp/dnssd.ts'
import { createDnsSdAdvertiser } from './dnssd.ts'
import { countOwnUsage } from './usage-metrics.ts'
import { createHttpServer } from '../ui/server.ts'
import { createSiteApi } from './site-api.ts'
import { buildPeer, peerConfig, type Peer } from './peer.ts'
import { createMeshApi, loadBlocked } from './mesh.ts'
import { resolveAdminToken } from './admin-token.ts'

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
}

export interface SiteConfig {
  /** Data folder: level database, spool, identity. */
  data: string
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
  stop (): Promise<void>
}

/** Name of the built-in virtual printer `npm start` gets when no printer is configured. */
export const VIRTUAL_PRINTER = 'virtual'
export async function startSite (config: SiteConfig, logger: Logger): Promise<RunningSite> {
  const data = resolve(config.data)
  const log = logger.child({ role: 'site' })
  const core = await buildPeer(peerConfig(data, 'site', config.mesh, config.site ?? osHostname().replace(/[^A-Za-z0-9._:-]/g, '-')), log)
  await loadBlocked(core)
  const { store, services } = core
  const peer = core.id
  const site = core.site ?? 'local'
  const { token: adminToken, file: adminTokenFile } = await resolveAdminToken(data, config.adminToken)

  const printerConfigs = config.printers.length > 0
    ? config.printers
    : [{ name: VIRTUAL_PRINTER, uri: `file://${join(data, 'virtual-printer')}` }]
  const printers = new Map<string, OutputDevice>()
  for (const p of printerConfigs) {
    if (printers.has(p.name)) throw new Error(`printer ${p.name} configured twice`)
    printers.set(p.name, createOutputDevice(p.uri, { logger: log }))
  }

  const spool = await Spool.open(join(data, 'spool'))
  const analyzer = new DocumentAnalyzer(log)
  services.add('analyzer', { start: async () => {}, stop: async () => { await analyzer.close() } })
  const jobs = services.add('jobs', createJobService({
    peer,
    site,
    queues: [{ name: config.queue, hold: config.hold, defaultPrinter: printerConfigs[0].name, info: `printmesh ${site}`, location: site }],
    ...(config.holdMs !== undefined ? { holdMs: config.holdMs } : {}),
    ...(config.retentionMs !== undefined ? { retentionMs: config.retentionMs } : {})
  }, { store, spool, printers, logger: log, analyze: async (path, format, signal) => await analyzer.parse(path, format, signal), onReleaseSettled: core.metrics.released }))
  const hostname = config.hostname ?? osHostname()
  const siteOf = (p: string): string | undefined => {
    const who = core.membership.info(p)
    return who?.role === 'site' ? who.site : undefined
  }
  const copies = await Spool.open(join(data, 'roaming'))
  const roaming = services.add('roaming', createRoamingService({ peer, site, hostname }, {
    store, spool, copies, printers, jobs, link: libp2pRoamingLink(core.host, siteOf), siteOf, logger: log
  }))
  let stopServing: (() => Promise<void>) | undefined
  services.add('roaming-server', {
    start: async () => {
      stopServing = await serveRoaming(core.host, roaming, log, config.roamingBytesPerSecond !== undefined ? { maxBytesPerSecond: config.roamingBytesPerSecond } : {})
    },
    stop: async () => { await stopServing?.() }
  })
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? osHostname() : config.host
  let stopCounting: (() => void) | undefined
  services.add('usage-metrics', {
    start: async () => { stopCounting = await countOwnUsage(store, peer, core.metrics) },
    stop: async () => { stopCounting?.() }
  })
  const ipp = services.add('ipp', createIppServer({ domain: jobs, logger: log, host: config.host, port: config.ippPort, uriHost: displayHost, onAnswered: core.metrics.ippAnswered }))
  const info = { site, hostname, ippUri: '', version: '0.1.0' }
  const http = services.add('http', createHttpServer({
    api: createSiteApi({ info, peer, adminToken, store, jobs, roaming, printers, directoryAuthority: () => core.membership.authority === core.id }),
    mesh: createMeshApi(core, log),
    logger: log,
    host: config.host,
    port: config.httpPort,
    metrics: core.metrics
  }))
  if (config.dnssd !== false) {
    const urlHost = displayHost.includes(':') ? `[${displayHost}]` : displayHost
    services.add('dnssd', createDnsSdAdvertiser({
      host: config.host,
      logger: log,
      groups: () => ippDnsSdGroups({
        queues: jobs.queues(), formats: jobs.supportedFormats(), port: ipp.port, uriHost: displayHost, adminUrl: `http://${urlHost}:${http.port}/`, siteName: site
      })
    }))
  }

  await services.start()
  const ippUri = `ipp://${displayHost}:${ipp.port}/ipp/print`
  info.ippUri = ippUri
  const webUrl = `http://${displayHost}:${http.port}/`
  log.info({ peer, ippUri, webUrl, ippPort: ipp.port, httpPort: http.port, listen: core.host.getMultiaddrs().map(String), printers: printerConfigs.map((p) => p.name), adminTokenFile }, 'site ready')
  return { ippPort: ipp.port, httpPort: http.port, ippUri, webUrl, jobs, roaming, peer: core, ...(adminTokenFile !== undefined ? { adminTokenFile } : {}), stop: async () => await services.stop() }
}
