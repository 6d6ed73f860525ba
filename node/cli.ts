/**
 * The `printmesh` command: one subcommand per role, every option in `--help`.
 *
 *   printmesh site [options]            run a branch print server
 *   printmesh users list|add|edit|…     the user directory of a running node (node/users-cli.ts)
 *   printmesh users import FILE         import users, into a running node (--url) or a stopped one (--data)
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { readFileSync } from 'node:fs'
// each role's module is imported when that role starts (issue 19: a terminal or a client does not load a site's or central's code)
import type { PrinterConfig, MeshOptions } from './site.ts'
import { TERMINAL_RELEASE_MODES as RELEASE_MODES, type TerminalReleaseMode as ReleaseMode } from '../crdt/site-config.ts'
import { DEFAULT_CLIENT_QUEUE } from './client.ts'
import { createLogger } from './logger.ts'
import { usersCommands } from './users-cli.ts'
import { ldapCommands } from './ldap-cli.ts'
import { checkAuditRetention, MAX_AUDIT_RETENTION_MONTHS, MIN_AUDIT_RETENTION_MONTHS } from './audit.ts'
import { AUDIT_RETENTION_MONTHS } from '../crdt/names.ts'
import { readAdminTokenFile } from './admin-token.ts'
import { DEFAULT_INTAKE_LIMITS, type IntakeLimits } from '../devices/jobs/intake-limits.ts'
import { licenseCommands } from './license-cli.ts'
import { DEFAULT_TLS_RETRY_MS, defaultTlsNames, type TlsMode } from './tls.ts'

/** IPP's port 631 needs root; this is the unprivileged default, as CUPS test setups use. */
const DEFAULT_IPP_PORT = 8631
const DEFAULT_HTTP_PORT = 8632
/** Central's own defaults, apart from a site's, so central and a site run on one host as they are. */
const CENTRAL_HTTP_PORT = 8642
const CENTRAL_P2P_PORT = 8643
/** A workstation's client, apart from a site's, so a site's own machine can run one too. */
const CLIENT_HTTP_PORT = 8652
const CLIENT_P2P_PORT = 8653
const HOUR_MS = 3600_000

function port (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number 0-65535 (0 picks a free port)')
  return n
}

function hours (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of hours')
  return n * HOUR_MS
}

function printer (value: string, previous: PrinterConfig[] = []): PrinterConfig[] {
  const eq = value.indexOf('=')
  const name = value.slice(0, eq)
  const uri = value.slice(eq + 1)
  if (eq <= 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || !/^(ipps?|file):\/\/./.test(uri)) {
    throw new InvalidArgumentError(`expected NAME=URI with an ipp://, ipps:// or file:// URI, got ${JSON.stringify(value)}`)
  }
  return [...previous, { name, uri }]
}

/** libp2p 3 and the document worker need Node.js 22 APIs; npm scripts bring the project's own Node 22. */
const MIN_NODE_MAJOR = 22
if (Number(process.versions.node.split('.')[0]) < MIN_NODE_MAJOR) {
  process.stderr.write(`printmesh: needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${process.versions.node}); ` +
    'run it through npm (npm start, npx printmesh), which uses the Node.js the project installs\n')
  process.exit(1)
}

/** libp2p's default port for printmesh peers. */
const DEFAULT_P2P_PORT = 8633

/** Repeatable options start without a default, so `--help` shows each default once, in the option's own words. */
function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** `hold,pull`: release modes of a terminal, each known and named once. */
function releaseModes (value: string): ReleaseMode[] {
  const modes = value.split(',').map((m) => m.trim())
  const unknown = modes.filter((m) => !(RELEASE_MODES as readonly string[]).includes(m))
  if (unknown.length > 0 || modes.length === 0) throw new InvalidArgumentError(`unknown release mode ${unknown.join(', ') || '(none)'}: choose from ${RELEASE_MODES.join(', ')}`)
  if (new Set(modes).size !== modes.length) throw new InvalidArgumentError('a release mode is named twice')
  return modes as ReleaseMode[]
}

/** `--audit-retention-months`: a whole number of months in node/audit.ts's range. */
function auditMonths (value: string): number {
  try {
    return checkAuditRetention(/^\d+$/.test(value) ? Number(value) : value)
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

function seconds (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of seconds')
  return n * 1000
}

function megabytesPerSecond (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of megabytes per second')
  return n * 1024 * 1024
}

function positiveInteger (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number')
  return n
}

function megabytes (value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of megabytes (MiB)')
  return Math.round(n * 1024 * 1024)
}

/** The site's intake limit options: flag, IntakeLimits field, what it bounds, parser, default as shown. */
const INTAKE_OPTIONS: ReadonlyArray<{ flag: string, key: keyof IntakeLimits, help: string, parse: (v: string) => number, shown: string }> = [
  { flag: '--max-document-mb <MB>', key: 'maxDocumentBytes', help: 'largest document accepted over IPP, after decompression', parse: megabytes, shown: `${DEFAULT_INTAKE_LIMITS.maxDocumentBytes / 1024 ** 2}` },
  { flag: '--max-decompression-ratio <n>', key: 'maxDecompressionRatio', help: 'a compressed document may inflate to at most n times its size (past 16 MiB)', parse: positiveInteger, shown: `${DEFAULT_INTAKE_LIMITS.maxDecompressionRatio}` },
  { flag: '--max-job-pages <n>', key: 'maxJobImpressions', help: 'most pages × copies in one job', parse: positiveInteger, shown: `${DEFAULT_INTAKE_LIMITS.maxJobImpressions}` },
  { flag: '--max-user-jobs <n>', key: 'maxJobsPerUser', help: 'most unfinished (held, printing) jobs one user may have', parse: positiveInteger, shown: `${DEFAULT_INTAKE_LIMITS.maxJobsPerUser}` },
  { flag: '--max-user-mb <MB>', key: 'maxBytesPerUser', help: 'most megabytes one user\'s unfinished jobs may hold', parse: megabytes, shown: `${DEFAULT_INTAKE_LIMITS.maxBytesPerUser / 1024 ** 2}` },
  { flag: '--max-address-jobs <n>', key: 'maxJobsPerAddress', help: 'most unfinished jobs sent from one address (a NAT or print server sends for many users)', parse: positiveInteger, shown: `${DEFAULT_INTAKE_LIMITS.maxJobsPerAddress}` },
  { flag: '--max-address-mb <MB>', key: 'maxBytesPerAddress', help: 'most megabytes the unfinished jobs sent from one address may hold', parse: megabytes, shown: `${DEFAULT_INTAKE_LIMITS.maxBytesPerAddress / 1024 ** 2}` },
  { flag: '--max-address-uploads <n>', key: 'maxUploadsPerAddress', help: 'most documents one address may be sending at once (more are told server-error-busy)', parse: positiveInteger, shown: `${DEFAULT_INTAKE_LIMITS.maxUploadsPerAddress}` }
]

/** Adds the intake limit options to a command. */
function withIntakeOptions (command: Command): Command {
  for (const o of INTAKE_OPTIONS) command.option(o.flag, `${o.help} (default: ${o.shown})`, o.parse)
  return command
}

/** The intake limits given on the command line (commander's camel-cased option names). */
function intakeLimitOptions (opts: object): Partial<IntakeLimits> {
  const limits: Partial<IntakeLimits> = {}
  for (const o of INTAKE_OPTIONS) {
    const name = o.flag.split(' ')[0].slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
    const value = (opts as Record<string, unknown>)[name]
    if (typeof value === 'number') limits[o.key] = value
  }
  return limits
}

/** `--store-key-file` of a terminal, whose database (the offline credential cache) is always encrypted (node/store-key.ts). */
const TERMINAL_STORE_KEY_HELP = 'file holding the key the database (offline credential cache) is encrypted with at rest, created 0600 on first start (default: <data>.store-key, beside the data folder); put it on other media than the data folder so a copy of the folder reveals no credential'
/** `--store-key-file` of a site or client, unencrypted unless asked (node/store-key.ts says why). */
const OTHER_ROLES_STORE_KEY_HELP = 'encrypt the database at rest with the key in this file, created 0600 on first start (default: not encrypted); keep it outside the data folder, on other media'

interface MeshCliOptions { listen?: string[], bootstrap?: string[], mdns: boolean, join?: string, antiEntropySeconds?: number, networkKey?: string, storeKeyFile?: string }

/** What differs between roles in the shared options. */
interface RoleDefaults {
  data: string
  dataHelp: string
  httpPort: number
  p2pPort: number
  /** Whether the role joins a mesh (central is the mesh's authority: it never joins one). */
  joins: boolean
  /** `--store-key-file`'s help, for the roles that take it (node/store-key.ts says which encrypt by default and why). */
  storeKeyHelp?: string
}

/** The mesh options every role shares. */
function withMeshOptions (cmd: Command, role: RoleDefaults): Command {
  cmd
    .option('--listen <multiaddr>', `libp2p listen address (repeatable) (default: /ip4/0.0.0.0/tcp/${role.p2pPort})`, collect)
    .option('--bootstrap <multiaddr>', 'a peer to connect to, with /p2p/<peer id> (repeatable)', collect)
    .option('--no-mdns', 'do not discover peers on the local network by mDNS')
  if (role.joins) cmd.option('--join <join-string>', 'join a mesh with a join string from central (first start only)')
  cmd
    .option('--anti-entropy-seconds <s>', 'how often to compare documents with every peer', seconds)
    .option('--network-key <file>', 'private-network key file: only peers holding the same key can connect (default: <data>/network.key, created for a new mesh, written from the join string when joining)')
  if (role.storeKeyHelp !== undefined) cmd.option('--store-key-file <file>', role.storeKeyHelp)
  return cmd
}

interface NodeCliOptions extends MeshCliOptions { data: string, host: string, httpPort: number, adminToken?: string, adminTokenFile?: string, logLevel: string, tls: 'off' | 'mesh', tlsCert?: string, tlsKey?: string, tlsName?: string[], tlsRetrySeconds?: number /* ms, from seconds() */, plainHttp?: boolean }

/** The TLS a role runs with, from --tls, --tls-cert/--tls-key, --tls-name and --plain-http. */
function tlsOption (opts: NodeCliOptions): { tls: TlsMode, plainHttp: boolean } {
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new InvalidArgumentError('--tls-cert and --tls-key go together')
  if (opts.tlsRetrySeconds !== undefined && (opts.tls !== 'mesh' || opts.tlsCert !== undefined)) throw new InvalidArgumentError('--tls-retry-seconds goes with --tls mesh (only a mesh certificate is asked of central)')
  const plainHttp = opts.plainHttp === true
  if (opts.tlsCert !== undefined && opts.tlsKey !== undefined) return { tls: { kind: 'files', certFile: opts.tlsCert, keyFile: opts.tlsKey }, plainHttp }
  if (opts.tls === 'mesh') {
    return { tls: { kind: 'mesh', names: [...defaultTlsNames(opts.host), ...(opts.tlsName ?? [])], ...(opts.tlsRetrySeconds !== undefined ? { retryMs: opts.tlsRetrySeconds } : {}) }, plainHttp }
  }
  return { tls: { kind: 'off' }, plainHttp }
}

/** The environment variable that may carry the admin token. */
const ADMIN_TOKEN_ENV = 'PRINTMESH_ADMIN_TOKEN'
/** Where to put the admin token instead of the command line (which every local user can read in the process list). */
const TOKEN_NOT_ON_COMMAND_LINE = 'the admin token is not taken on the command line, where every user of the machine can read it: put it in a file (--admin-token-file FILE) or in PRINTMESH_ADMIN_TOKEN'

/** `--admin-token-file` and the environment variable; `--admin-token` itself only to say why not. */
function withAdminTokenOptions (cmd: Command, help: string): Command {
  return cmd
    .addOption(new Option('--admin-token-file <file>', help))
    .addOption(new Option('--admin-token <token>').hideHelp().argParser(() => { throw new InvalidArgumentError(TOKEN_NOT_ON_COMMAND_LINE) }))
}

/** `{ adminToken }` for a role's config when one is given. */
async function adminTokenOption (opts: { adminTokenFile?: string }): Promise<{ adminToken?: string }> {
  const token = await givenAdminToken(opts)
  return token !== undefined ? { adminToken: token } : {}
}

/** `{ ldapConfigFile }` for central's config when `--ldap-config` is given. */
function ldapConfigOption (opts: object): { ldapConfigFile?: string } {
  const file = (opts as { ldapConfig?: string }).ldapConfig
  return file !== undefined ? { ldapConfigFile: file } : {}
}

/** The token from --admin-token-file or PRINTMESH_ADMIN_TOKEN, if either is given. */
async function givenAdminToken (opts: { adminTokenFile?: string }): Promise<string | undefined> {
  if (opts.adminTokenFile !== undefined) return await readAdminTokenFile(opts.adminTokenFile)
  const env = process.env[ADMIN_TOKEN_ENV]
  return env !== undefined && env !== '' ? env : undefined
}

/** The options every role shares: data folder, HTTP address, admin token, logging, mesh. */
function withNodeOptions (cmd: Command, role: RoleDefaults): Command {
  withMeshOptions(cmd, role)
    .option('--data <dir>', role.dataHelp, role.data)
    .option('--host <address>', 'address to listen on (HTTP, and IPP on sites)', '0.0.0.0')
    .option('--http-port <n>', 'web admin and JSON API port', port, role.httpPort)
    .addOption(new Option('--tls <mode>', 'HTTPS on the web port (and ipps:// on the IPP port, beside ipp://): mesh, with a certificate from central\'s mesh CA for this node\'s names (GET /ca.pem on any node gives the CA to trust), or off')
      .choices(['off', 'mesh']).default('off'))
    .option('--tls-cert <file>', 'serve TLS with this PEM certificate (chain, leaf first) instead of the mesh CA\'s; with --tls-key')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--tls-name <name>', 'another host name or address the mesh certificate names (repeatable; always: the host name, --host, localhost, 127.0.0.1, ::1)', collect)
    .option('--tls-retry-seconds <s>', `with --tls mesh, ask central again this long after a failed certificate request (default: ${DEFAULT_TLS_RETRY_MS / 1000}; shorter gets the certificate sooner once central is back, at a request per interval while it is not)`, seconds)
    .option('--plain-http', 'while TLS is on, serve the web console over plain HTTP too (default: plain HTTP only redirects to https)')
  return withAdminTokenOptions(cmd, `file holding this node's own bearer token for admin API calls (or ${ADMIN_TOKEN_ENV}; default: generated into <data>/admin-token); it works only while the mesh has no mesh token: once central rotates one (POST /api/admin-token/rotate), only that is accepted`)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').env('PRINTMESH_LOG_LEVEL'))
}

function meshOptions (opts: MeshCliOptions, p2pPort = DEFAULT_P2P_PORT): MeshOptions {
  return {
    listen: opts.listen ?? [`/ip4/0.0.0.0/tcp/${p2pPort}`],
    bootstrap: opts.bootstrap ?? [],
    mdns: opts.mdns,
    ...(opts.join !== undefined ? { join: opts.join } : {}),
    ...(opts.antiEntropySeconds !== undefined ? { antiEntropyMs: opts.antiEntropySeconds } : {}),
    ...(opts.networkKey !== undefined ? { networkKeyFile: opts.networkKey } : {}),
    ...(opts.storeKeyFile !== undefined ? { storeKeyFile: opts.storeKeyFile } : {})
  }
}

/**
 * Stops a running role on SIGINT, SIGTERM or SIGHUP, once. SIGHUP stops too: there is no
 * configuration to reload (all of it is in the command line), and a node whose terminal
 * went away must not keep its ports.
 */
function stopOnSignals (stop: () => Promise<void>, logger: ReturnType<typeof createLogger>): void {
  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    stop().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGHUP', () => shutdown('SIGHUP'))
}

/** A port a role needed is taken: says which option chooses another. */
export class PortInUseError extends Error {
  constructor (readonly port: number, readonly option: string, options?: { cause?: unknown }) {
    super(`port ${port} (${option}) is in use: stop what holds it or choose another with ${option}`, options)
    this.name = 'PortInUseError'
  }
}

/** Which option asked for which port, for {@link PortInUseError}. */
type PortOptions = Array<{ port: number, option: string }>

function portsOf (opts: { httpPort: number, ippPort?: number }, mesh: MeshOptions): PortOptions {
  return [
    { port: opts.httpPort, option: '--http-port' },
    ...(opts.ippPort !== undefined ? [{ port: opts.ippPort, option: '--ipp-port' }] : []),
    ...mesh.listen.map((addr) => ({ port: Number(/\/tcp\/(\d+)/.exec(addr)?.[1] ?? 0), option: '--listen' }))
  ]
}

/** Starts a role; an address-in-use failure (Node's or libp2p's wording) becomes a {@link PortInUseError}. */
async function starting<T> (start: Promise<T>, ports: PortOptions): Promise<T> {
  try {
    return await start
  } catch (err) {
    const text = err instanceof Error ? `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}` : String(err)
    const taken = /EADDRINUSE[^\n]*?:(\d+)/.exec(text)
    const match = taken !== null ? ports.find((p) => p.port === Number(taken[1])) : undefined
    if (match !== undefined) throw new PortInUseError(match.port, match.option, { cause: err })
    throw err
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

const program = new Command('printmesh')
  .description('Peer-to-peer print management: secure print release, accounting and roaming across branches')
  .version(VERSION, '-V, --version', 'print the version and exit')
  .showHelpAfterError()

withIntakeOptions(withNodeOptions(program.command('site'), { data: './data', dataHelp: 'data folder (database, spool, identity)', httpPort: DEFAULT_HTTP_PORT, p2pPort: DEFAULT_P2P_PORT, joins: true, storeKeyHelp: OTHER_ROLES_STORE_KEY_HELP }))
  .description('run a branch print server: IPP queue, held jobs, release to printers, accounting, web admin')
  .option('--site <id>', 'site id (default: host name)')
  .option('--ipp-port <n>', 'IPP port (ipp://host:port/ipp/print)', port, DEFAULT_IPP_PORT)
  .option('--printer <name=uri>', 'a printer jobs are released to (repeatable; ipp://, ipps:// or file:// URI) (default: a virtual printer writing to <data>/virtual-printer)', printer)
  .option('--queue <name>', 'name of the print queue (also reachable as /printers/<name>)', 'print')
  .option('--no-hold', 'print jobs on arrival instead of holding them for release')
  .option('--hold-hours <h>', 'held jobs not released within this many hours expire', hours)
  .option('--retention-hours <h>', 'finished jobs and their documents are purged after this many hours', hours)
  .option('--audit-retention-months <n>', `months of the audit log this site keeps (whole months, ${MIN_AUDIT_RETENTION_MONTHS}-${MAX_AUDIT_RETENTION_MONTHS}); older months are dropped and not fetched from peers (default: ${AUDIT_RETENTION_MONTHS})`, auditMonths)
  .option('--hostname <name>', 'host name partner sites show next to this site\'s roaming jobs (default: the machine\'s host name)')
  .option('--roaming-rate <MB/s>', 'cap on the rate each job document is sent to a partner site, to spare slow branch links (default: no cap)', megabytesPerSecond)
  .option('--no-dnssd', 'do not advertise the print queue by DNS-SD (_ipp._tcp through avahi); a site on a loopback --host is advertised to this machine only')
  .addOption(new Option('--ipp-auth <what>', 'what IPP clients log in for (HTTP Basic: username and PIN): job-control (release, cancel, hold; printing trusts the name the client sends, as lp -U does) or intake (printing too: the job belongs to the logged-in user)')
    .choices(['job-control', 'intake']).default('job-control'))
  .addOption(new Option('--ipp-job-list <what>', 'what IPP job lists (lpstat -o, lpq) show a client that did not log in: private (every job, names and owners hidden) or none')
    .choices(['private', 'none']).default('private'))
  .action(async (opts: NodeCliOptions & {
    site?: string, ippPort: number, printer?: PrinterConfig[], queue: string, hold: boolean, holdHours?: number, retentionHours?: number, auditRetentionMonths?: number,
    hostname?: string, roamingRate?: number, dnssd: boolean, ippAuth: 'job-control' | 'intake', ippJobList: 'private' | 'none'
  }) => {
    const logger = createLogger(opts.logLevel)
    const mesh = meshOptions(opts)
    const { startSite } = await import('./site.ts')
    const site = await starting(startSite({
      data: opts.data,
      mesh,
      ...(opts.site !== undefined ? { site: opts.site } : {}),
      host: opts.host,
      ippPort: opts.ippPort,
      httpPort: opts.httpPort,
      printers: opts.printer ?? [],
      ...await adminTokenOption(opts),
      queue: opts.queue,
      hold: opts.hold,
      ...(opts.holdHours !== undefined ? { holdMs: opts.holdHours } : {}),
      ...(opts.retentionHours !== undefined ? { retentionMs: opts.retentionHours } : {}),
      ...(opts.auditRetentionMonths !== undefined ? { auditRetentionMonths: opts.auditRetentionMonths } : {}),
      ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
      ...(opts.roamingRate !== undefined ? { roamingBytesPerSecond: opts.roamingRate } : {}),
      dnssd: opts.dnssd,
      ippAuth: opts.ippAuth,
      ippJobList: opts.ippJobList,
      intakeLimits: intakeLimitOptions(opts),
      ...tlsOption(opts)
    }, logger), portsOf(opts, mesh))
    process.stderr.write(`printmesh site ready\n  print to:  ${site.ippUri}\n  web:       ${site.webUrl}\n` +
      (site.adminTokenFile !== undefined ? `  admin token in ${site.adminTokenFile}\n` : ''))
    stopOnSignals(site.stop, logger)
  })

withNodeOptions(program.command('central'), { data: './data-central', dataHelp: 'data folder (database, identity, network key)', httpPort: CENTRAL_HTTP_PORT, p2pPort: CENTRAL_P2P_PORT, joins: false })
  .description('run the mesh\'s central node: license authority, enrollment, directory, mesh-wide admin (never a print server)')
  .option('--ldap-config <file>', 'synchronise the directory from LDAP: a JSON file of url, bindDN, bindPasswordFile, baseDN, userFilter, attributes, groups, pageSize, intervalMinutes (node/ldap-config.ts)')
  .option('--license <file>', 'a signed license file from the vendor: checked, then copied into the data folder for later starts (default: the one installed there; none: an unlicensed evaluation without limits, with a warning)')
  .option('--vendor-public-key <file>', 'check licenses with this vendor public key instead of the shipped one (for tests and self-hosted vendors)')
  .option('--audit-retention-months <n>', `months of the audit log central keeps (whole months, ${MIN_AUDIT_RETENTION_MONTHS}-${MAX_AUDIT_RETENTION_MONTHS}); older months are dropped and not fetched from peers (default: ${AUDIT_RETENTION_MONTHS})`, auditMonths)
  .action(async (opts: NodeCliOptions & { license?: string, vendorPublicKey?: string, auditRetentionMonths?: number }) => {
    const logger = createLogger(opts.logLevel)
    const mesh = meshOptions(opts, CENTRAL_P2P_PORT)
    const { startCentral } = await import('./central.ts')
    const central = await starting(startCentral({
      data: opts.data, host: opts.host, httpPort: opts.httpPort, listen: mesh.listen, bootstrap: mesh.bootstrap, mdns: mesh.mdns,
      ...(mesh.networkKeyFile !== undefined ? { networkKeyFile: mesh.networkKeyFile } : {}),
      ...await adminTokenOption(opts),
      ...ldapConfigOption(opts),
      ...(mesh.antiEntropyMs !== undefined ? { antiEntropyMs: mesh.antiEntropyMs } : {}),
      ...(opts.license !== undefined ? { licenseFile: opts.license } : {}),
      ...(opts.vendorPublicKey !== undefined ? { vendorPublicKeyFile: opts.vendorPublicKey } : {}),
      ...(opts.auditRetentionMonths !== undefined ? { auditRetentionMonths: opts.auditRetentionMonths } : {}),
      ...tlsOption(opts)
    }, logger), portsOf(opts, mesh))
    process.stderr.write(`printmesh central ready\n  web:  ${central.webUrl}\n  peer: ${central.peer.id}\n` +
      (central.adminTokenFile !== undefined ? `  admin token in ${central.adminTokenFile}\n` : '') +
      '  create join strings on the web page or with POST /api/mesh/tokens\n')
    stopOnSignals(central.stop, logger)
  })

withIntakeOptions(withNodeOptions(program.command('terminal'), { data: './data-terminal', dataHelp: 'data folder (identity, database)', httpPort: DEFAULT_HTTP_PORT, p2pPort: DEFAULT_P2P_PORT, joins: true, storeKeyHelp: TERMINAL_STORE_KEY_HELP }))
  .description('run an MFP terminal peer: the panel at /panel releases its site\'s jobs to one printer (joins a mesh with --join on first start)')
  .option('--printer <uri>', 'the MFP\'s own IPP endpoint (ipp://, ipps://) or a file:// folder (default: <data>/virtual-printer)')
  .option('--idle-logout-seconds <s>', 'the panel logs its user out after this long without a touch (default 60)', seconds)
  .option('--ipp-port <n>', 'IPP port workstations print to directly (device spooling: /printers/direct, /printers/hold, /printers/pull)', port, DEFAULT_IPP_PORT)
  .option('--modes <list>', 'release modes offered, comma-separated, the first also at /ipp/print: direct, hold, pull, delegated (default: hold,pull,direct,delegated); used until the site\'s configuration names modes (its admin page, PUT /api/roaming/terminals at the site), which then wins, applied as it arrives', releaseModes)
  .option('--name <name>', 'the name other peers show beside jobs held at this terminal, and its queues\' DNS-SD name (default: the host name)')
  .option('--roaming-rate <MB/s>', 'cap on the rate each job document held here (Pull, Delegated) is sent to the terminal or site releasing it, to spare a slow link (default: no cap)', megabytesPerSecond)
  .option('--no-dnssd', 'do not advertise the queues by DNS-SD (_ipp._tcp through avahi)')
  .option('--counters <uri>', 'the MFP\'s page counters, for copy sessions on the panel: snmp://host[:port][?color=OID&mono=OID&sheets=OID] (total: Printer MIB prtMarkerLifeCount; color=none for a monochrome device); without it the panel offers no copying')
  .option('--counters-community-file <file>', 'file holding the SNMP v2c community on its first line (default community: public)')
  .option('--card-reader-token-file <file>', 'file holding the card reader daemon\'s token on its first line: POST /api/panel/card then needs it (Authorization: Bearer); without it only loopback may post cards')
  .option('--pin-only-login', 'users log in at the panel by typing only their PIN (keypad, no user name; cards still work); PINs then must be unique: wherever a PIN is set in the mesh, one another user holds is refused')
  .action(async (opts: NodeCliOptions & { printer?: string, idleLogoutSeconds?: number /* ms, from seconds() */, ippPort: number, modes?: ReleaseMode[], name?: string, roamingRate?: number, dnssd: boolean, counters?: string, countersCommunityFile?: string, cardReaderTokenFile?: string, pinOnlyLogin?: boolean }) => {
    const logger = createLogger(opts.logLevel)
    const mesh = meshOptions(opts)
    if (opts.countersCommunityFile !== undefined && opts.counters === undefined) throw new InvalidArgumentError('--counters-community-file needs --counters')
    const { startTerminal } = await import('./terminal.ts')
    const counters = opts.counters !== undefined ? await (await import('./device-counters.ts')).openDeviceCounters(opts.counters, opts.countersCommunityFile) : undefined
    const terminal = await starting(startTerminal({
      data: opts.data, host: opts.host, httpPort: opts.httpPort, ippPort: opts.ippPort, dnssd: opts.dnssd, mesh,
      ...(opts.modes !== undefined ? { modes: opts.modes } : {}),
      ...(opts.printer !== undefined ? { printer: opts.printer } : {}),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.roamingRate !== undefined ? { roamingBytesPerSecond: opts.roamingRate } : {}),
      ...(opts.idleLogoutSeconds !== undefined ? { idleLogoutMs: opts.idleLogoutSeconds } : {}),
      ...(counters !== undefined ? { counters } : {}),
      ...(opts.cardReaderTokenFile !== undefined ? { cardReaderToken: await (await import('./card-reader.ts')).readCardReaderToken(opts.cardReaderTokenFile) } : {}),
      ...(opts.pinOnlyLogin === true ? { pinOnlyLogin: true } : {}),
      intakeLimits: intakeLimitOptions(opts),
      ...tlsOption(opts),
      ...await adminTokenOption(opts)
    }, logger), portsOf(opts, mesh))
    stopOnSignals(terminal.stop, logger)
  })

const CLIENT_IPP_PORT = 8654
withNodeOptions(program.command('client'), { data: './data-client', dataHelp: 'data folder (identity, database)', httpPort: CLIENT_HTTP_PORT, p2pPort: CLIENT_P2P_PORT, joins: true, storeKeyHelp: OTHER_ROLES_STORE_KEY_HELP })
  .description('run a workstation client peer: an IPP printer on this machine that keeps jobs here until released at a printer of the site (client spooling), with fallback printers when the site is unreachable (joins its site\'s mesh with --join on first start)')
  .option('--ipp-port <n>', 'IPP port of this workstation\'s printer (lp -h 127.0.0.1:PORT -d QUEUE; also ipp://127.0.0.1:PORT/ipp/print)', port, CLIENT_IPP_PORT)
  .option('--user <name>', 'the workstation\'s user, who owns its jobs (default: the OS user running the client)')
  .option('--name <name>', 'the name this workstation\'s jobs are listed under at the site and the terminals (default: the host name)')
  .option('--queue <name>', `the queue name (default: ${DEFAULT_CLIENT_QUEUE})`)
  .option('--fallback-printer <name=uri>', 'a backup printer for when the site is unreachable (repeatable, tried in order; ipp://, ipps:// or file://)', printer)
  .action(async (opts: NodeCliOptions & { ippPort: number, user?: string, name?: string, queue?: string, fallbackPrinter?: PrinterConfig[] }, cmd: Command) => {
    const logger = createLogger(opts.logLevel)
    const mesh = meshOptions(opts, CLIENT_P2P_PORT)
    // a workstation's printer and page are for the workstation itself: loopback unless --host says otherwise
    const host = cmd.getOptionValueSource('host') === 'default' ? '127.0.0.1' : opts.host
    const { startClient } = await import('./client.ts')
    const client = await starting(startClient({
      data: opts.data, host, httpPort: opts.httpPort, ippPort: opts.ippPort, mesh,
      ...(opts.user !== undefined ? { user: opts.user } : {}),
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
      ...(opts.fallbackPrinter !== undefined ? { fallbackPrinters: opts.fallbackPrinter } : {}),
      ...tlsOption(opts),
      ...await adminTokenOption(opts)
    }, logger), portsOf(opts, mesh))
    process.stderr.write(`printmesh client ready\n  page: http://${host}:${client.httpPort}/\n  ipp:  ipp://${host}:${client.ippPort}/ipp/print\n  peer: ${client.peer.id}\n`)
    stopOnSignals(client.stop, logger)
  })

const mesh = program.command('mesh').description('administer a running mesh through a node\'s HTTP API (central for tokens, approvals, revocations)')
/** Calls a node's admin API; prints the JSON answer or fails with its error message. */
async function meshCall (opts: MeshCallOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  const adminToken = await givenAdminToken(opts)
  if (adminToken === undefined) throw new InvalidArgumentError(`an admin token is needed: --admin-token-file FILE or ${ADMIN_TOKEN_ENV}`)
  const res = await fetch(new URL(path, opts.url), {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  const answer = await res.json() as { error?: string }
  if (!res.ok) throw new Error(`${method} ${path}: ${answer.error ?? res.statusText}`)
  return answer
}
/** What every mesh administration command takes. */
interface MeshCallOptions { url: string, adminTokenFile?: string }
function meshCommand (name: string, description: string): Command {
  const cmd = mesh.command(name).description(description)
    .option('--url <url>', 'the node\'s web address (central\'s on this host by default)', `http://127.0.0.1:${CENTRAL_HTTP_PORT}`)
  return withAdminTokenOptions(cmd, `file holding the node's admin token (or ${ADMIN_TOKEN_ENV})`)
}
const print = (value: unknown): void => { process.stdout.write((typeof value === 'string' ? value : JSON.stringify(value, null, 2)) + '\n') }
meshCommand('status', 'peers and document sync state of a node').action(async (opts: MeshCallOptions) => {
  print(await meshCall(opts, 'GET', '/api/mesh'))
})
meshCommand('token', 'create a one-time join string for a new peer (central)')
  .requiredOption('--role <role>', 'site, terminal or client')
  .requiredOption('--site <id>', 'the site the peer belongs to')
  .option('--ttl-hours <h>', 'hours until the token expires', Number)
  .action(async (opts: MeshCallOptions & { role: string, site: string, ttlHours?: number }) => {
    const answer = await meshCall(opts, 'POST', '/api/mesh/tokens', { role: opts.role, site: opts.site, ...(opts.ttlHours !== undefined ? { ttlHours: opts.ttlHours } : {}) }) as { joinString: string }
    print(answer.joinString)
  })
meshCommand('join-string', 'a join string without a token: peers using it wait for approval (central)').action(async (opts: MeshCallOptions) => {
  print((await meshCall(opts, 'GET', '/api/mesh/join-string') as { joinString: string }).joinString)
})
meshCommand('requests', 'list join requests (central)').action(async (opts: MeshCallOptions) => {
  print(await meshCall(opts, 'GET', '/api/mesh/requests'))
})
meshCommand('approve', 'approve a join request (central)').argument('<peer>', 'peer id').action(async (peer: string, opts: MeshCallOptions) => {
  await meshCall(opts, 'POST', `/api/mesh/requests/${encodeURIComponent(peer)}/approve`)
  print(`approved ${peer}`)
})
meshCommand('revoke', 'revoke a peer\'s certificate; every node disconnects it (central)').argument('<peer>', 'peer id')
  .requiredOption('--reason <text>', 'why, for the record')
  .action(async (peer: string, opts: MeshCallOptions & { reason: string }) => {
    await meshCall(opts, 'POST', `/api/mesh/peers/${encodeURIComponent(peer)}/revoke`, { reason: opts.reason })
    print(`revoked ${peer}`)
  })
meshCommand('block', 'set the peers this node refuses (none to unblock all)').argument('[peers...]', 'peer ids')
  .action(async (peers: string[], opts: MeshCallOptions) => {
    print(await meshCall(opts, 'PUT', '/api/mesh/blocked', { peers }))
  })

usersCommands(program.command('users').description('manage the user directory: of a running central or standalone site through its admin API (--url), or import into a stopped one (--data)'), {
  withAdminTokenOptions, adminToken: givenAdminToken, adminTokenEnv: ADMIN_TOKEN_ENV, defaultUrl: `http://127.0.0.1:${CENTRAL_HTTP_PORT}`
})

ldapCommands(program.command('ldap').description('central\'s LDAP sync through its admin API (--url): status, sync now, dry run (node/ldap-cli.ts)'), {
  withAdminTokenOptions, adminToken: givenAdminToken, adminTokenEnv: ADMIN_TOKEN_ENV, defaultUrl: `http://127.0.0.1:${CENTRAL_HTTP_PORT}`
})

licenseCommands(program.command('license').description('product licenses: the vendor\'s key pair, issuing a signed license, checking one (node/license-cli.ts)'))

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`printmesh: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
