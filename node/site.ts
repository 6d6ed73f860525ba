/**
 * The site role: a branch print server. Its services, in start order:
 *   store (level) → spool → jobs (domain) → ipp (intake) → http (web + API)
 * Stopping runs in reverse, so no request reaches a closed store.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { hostname as osHostname } from 'node:os'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc, parseDocName } from '../crdt/names.ts'
import { Spool } from '../devices/spool.ts'
import { DocumentAnalyzer } from '../devices/documents/analyzer.ts'
import { createJobService, type JobService } from '../devices/jobs/service.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import { createIppServer } from '../devices/ipp/server.ts'
import { createHttpServer } from '../ui/server.ts'
import { createSiteApi } from './site-api.ts'
import { ServiceGroup, type Startable } from './lifecycle.ts'
import { signerFor } from '../transports/identity.ts'
import { loadOrCreatePeerKey, PEER_KEY_FILE } from '../transports/host.ts'

export interface PrinterConfig { name: string, uri: string }

export interface SiteConfig {
  /** Data folder: level database, spool, identity. */
  data: string
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
}

export interface RunningSite {
  ippPort: number
  httpPort: number
  ippUri: string
  webUrl: string
  adminTokenFile?: string
  jobs: JobService
  stop (): Promise<void>
}

/** Name of the built-in virtual printer `npm start` gets when no printer is configured. */
export const VIRTUAL_PRINTER = 'virtual'
/** Admin tokens are 32 random bytes: unguessable. */
const TOKEN_BYTES = 32

async function loadOrCreate (path: string, make: () => string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const value = make()
    await writeFile(path, value + '\n', { mode: 0o600, flag: 'wx' })
    return value
  }
}

export async function startSite (config: SiteConfig, logger: Logger): Promise<RunningSite> {
  const data = resolve(config.data)
  await mkdir(data, { recursive: true })
  const signer = signerFor(await loadOrCreatePeerKey(join(data, PEER_KEY_FILE)))
  const peer = signer.id
  const site = config.site ?? osHostname().replace(/[^A-Za-z0-9._:-]/g, '-')
  let adminTokenFile: string | undefined
  let adminToken = config.adminToken
  if (adminToken === undefined || adminToken === '') {
    adminTokenFile = join(data, 'admin-token')
    adminToken = await loadOrCreate(adminTokenFile, () => randomBytes(TOKEN_BYTES).toString('base64url'))
  }
  const log = logger.child({ site })

  const printerConfigs = config.printers.length > 0
    ? config.printers
    : [{ name: VIRTUAL_PRINTER, uri: `file://${join(data, 'virtual-printer')}` }]
  const printers = new Map<string, OutputDevice>()
  for (const p of printerConfigs) {
    if (printers.has(p.name)) throw new Error(`printer ${p.name} configured twice`)
    printers.set(p.name, createOutputDevice(p.uri, { logger: log }))
  }

  const services = new ServiceGroup(log)
  const persistence = await LevelPersistence.open(join(data, 'db'))
  const store = new DocStore(persistence, signer)
  services.add('store', {
    start: async () => {
      // everything this peer keeps is small enough to hold open: jobs within retention,
      // accounting, directory
      for (const name of await store.storedNames()) {
        const family = parseDocName(name)?.family
        if (family === 'acct' || family === 'directory') await store.open(name)
      }
      await store.open(directoryDoc())
    },
    stop: async () => { await store.close() }
  } satisfies Startable)
  const spool = await Spool.open(join(data, 'spool'))
  const analyzer = new DocumentAnalyzer(log)
  services.add('analyzer', { start: async () => {}, stop: async () => { await analyzer.close() } })
  const jobs = services.add('jobs', createJobService({
    peer,
    site,
    queues: [{ name: config.queue, hold: config.hold, defaultPrinter: printerConfigs[0].name, info: `printmesh ${site}`, location: site }],
    ...(config.holdMs !== undefined ? { holdMs: config.holdMs } : {}),
    ...(config.retentionMs !== undefined ? { retentionMs: config.retentionMs } : {})
  }, { store, spool, printers, logger: log, analyze: async (path, format, signal) => await analyzer.parse(path, format, signal) }))
  const displayHost = config.host === '0.0.0.0' || config.host === '::' ? osHostname() : config.host
  const ipp = services.add('ipp', createIppServer({ domain: jobs, logger: log, host: config.host, port: config.ippPort, uriHost: displayHost }))
  const info = { site, hostname: osHostname(), ippUri: '', version: '0.1.0' }
  const http = services.add('http', createHttpServer({
    api: createSiteApi({ info, peer, adminToken, store, jobs, printers }),
    logger: log,
    host: config.host,
    port: config.httpPort
  }))

  try {
    await services.start()
  } catch (err) {
    // services.start() already stopped what it had started; the store may not have been
    await store.close().catch((closeErr: unknown) => log.error({ err: closeErr }, 'closing the store after a failed start failed'))
    throw err
  }
  const ippUri = `ipp://${displayHost}:${ipp.port}/ipp/print`
  info.ippUri = ippUri
  const webUrl = `http://${displayHost}:${http.port}/`
  log.info({ ippUri, webUrl, ippPort: ipp.port, httpPort: http.port, printers: printerConfigs.map((p) => p.name), adminTokenFile }, 'site ready')
  return { ippPort: ipp.port, httpPort: http.port, ippUri, webUrl, jobs, ...(adminTokenFile !== undefined ? { adminTokenFile } : {}), stop: async () => await services.stop() }
}
