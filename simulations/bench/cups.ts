/**
 * A private CUPS for the benchmarks: Debian's cupsd started by the benchmark with
 * its own configuration in a temp folder (`-c cupsd.conf -s cups-files.conf`), listening on
 * 127.0.0.1:<free port> only, its own spool, state, cache and logs, no browsing and no
 * DNS-SD, no authentication for local requests, no job limits; and by default one raw queue
 * `held` whose jobs are all held (`job-hold-until-default=indefinite`), made with `lpadmin`
 * (ingestion). A caller may make other queues instead, e.g. {@link deviceQueue}: a raw queue
 * printing to a given device URI (release-burst: an ippeveprinter through CUPS's ipp backend).
 * It never touches the system CUPS (if any): other port, other folders, no shared sockets.
 * Stopped by pid (SIGTERM, then SIGKILL) and its folder removed, also when setup fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { BenchmarkError } from './common.ts'

/** Where Debian installs the daemon and the admin tool. */
const CUPSD = '/usr/sbin/cupsd'
const LPADMIN = '/usr/sbin/lpadmin'
/** Debian packages with cupsd and lpadmin (the `cups` metapackage adds filters and drivers a held raw queue never runs). */
const CUPS_PACKAGES = ['cups-daemon', 'cups-client']
/** cupsd that has not opened its port by then has failed to start. */
const START_TIMEOUT_MS = 20_000
/** Grace period after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000
/** Polling interval while waiting for the port. */
const POLL_MS = 50
/** Name of the held queue. */
export const CUPS_QUEUE = 'held'

export class CupsUnavailableError extends BenchmarkError {
  constructor (message: string) { super(message); this.name = 'CupsUnavailableError' }
}

export interface PrivateCups {
  pid: number
  port: number
  /** `ipp://127.0.0.1:PORT/printers/held` */
  queueUri: string
  /** `ipp://127.0.0.1:PORT/printers/NAME`: the URI of any queue the caller made. */
  queueUriOf (name: string): string
  dir: string
  /** Stops cupsd by pid and removes its folder; safe to call twice. */
  stop (): Promise<void>
}

/** Installs cupsd (as root, through apt-get) when it is missing, or explains how. */
export function ensureCupsInstalled (log: (line: string) => void): void {
  if (existsSync(CUPSD) && existsSync(LPADMIN)) return
  if (process.getuid?.() !== 0) {
    throw new CupsUnavailableError(`cupsd is not installed; as root run: apt-get install ${CUPS_PACKAGES.join(' ')}`)
  }
  log(`installing Debian packages ${CUPS_PACKAGES.join(' ')} (cupsd for the ingestion comparison)`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env })
  if (update.status !== 0) throw new CupsUnavailableError(`apt-get update failed (exit ${String(update.status)}); install ${CUPS_PACKAGES.join(' ')} by hand`)
  const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...CUPS_PACKAGES], { stdio: ['ignore', 'inherit', 'inherit'], env })
  if (install.status !== 0 || !existsSync(CUPSD)) throw new CupsUnavailableError(`apt-get install ${CUPS_PACKAGES.join(' ')} failed (exit ${String(install.status)})`)
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function portOpen (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

function cupsdConf (port: number): string {
  return `# private cupsd of the printmesh benchmark: loopback only, no browsing, no auth, no limits
LogLevel warn
Listen 127.0.0.1:${port}
Browsing No
BrowseLocalProtocols none
DefaultShared No
WebInterface No
DefaultAuthType None
MaxJobs 0
MaxJobsPerPrinter 0
MaxJobsPerUser 0
MaxClients 1000
PreserveJobHistory Yes
<Location />
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Location /admin>
  Order allow,deny
  Allow from 127.0.0.1
</Location>
<Policy default>
  JobPrivateAccess default
  JobPrivateValues default
  SubscriptionPrivateAccess default
  SubscriptionPrivateValues default
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
DefaultPolicy default
`
}

function cupsFilesConf (dir: string): string {
  return `# folders of the private cupsd; data and helper programs are Debian's
ServerRoot ${join(dir, 'etc')}
RequestRoot ${join(dir, 'spool')}
TempDir ${join(dir, 'spool', 'tmp')}
CacheDir ${join(dir, 'cache')}
StateDir ${join(dir, 'state')}
ErrorLog ${join(dir, 'log', 'error_log')}
AccessLog ${join(dir, 'log', 'access_log')}
PageLog ${join(dir, 'log', 'page_log')}
DataDir /usr/share/cups
ServerBin /usr/lib/cups
FileDevice Yes
`
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = delay(STOP_TIMEOUT_MS).then(() => 'timeout' as const)
  if (await Promise.race([exited.then(() => 'exited' as const), timer]) === 'timeout') {
    child.kill('SIGKILL')
    await exited
  }
}

function lpadmin (port: number, args: string[]): void {
  const r = spawnSync(LPADMIN, ['-h', `127.0.0.1:${port}`, ...args], { encoding: 'utf8' })
  if (r.error !== undefined) throw new CupsUnavailableError(`lpadmin could not run: ${r.error.message}`)
  if (r.status !== 0) throw new CupsUnavailableError(`lpadmin ${args.join(' ')} exited with ${String(r.status)}: ${r.stderr}${r.stdout}`)
}

/** The benchmark's queue: raw, every job held. */
const HELD_QUEUE: readonly string[][] = [
  ['-p', CUPS_QUEUE, '-E', '-v', 'file:///dev/null'],
  ['-p', CUPS_QUEUE, '-o', 'job-hold-until-default=indefinite']
]
/**
 * lpadmin argument lists for a raw queue `name` (no PPD, no filters: the document reaches the
 * device as sent) printing to `deviceUri`, enabled and accepting; pass them to
 * {@link startPrivateCups}. Jobs are held only when the request says so.
 */
export function deviceQueue (name: string, deviceUri: string): string[][] {
  return [['-p', name, '-E', '-v', deviceUri]]
}

/** Backends and filters run as CUPS's unprivileged user: they must reach the spool under the folder. */
const TRAVERSABLE = 0o711

/**
 * Starts a private cupsd with the queues `queues` makes (lpadmin argument lists, run in
 * order; default the benchmark's held queue); the caller must {@link PrivateCups.stop} it.
 */
export async function startPrivateCups (log: (line: string) => void, queues: readonly string[][] = HELD_QUEUE): Promise<PrivateCups> {
  ensureCupsInstalled(log)
  const dir = await mkdtemp(join(tmpdir(), 'printmesh-bench-cups-'))
  await chmod(dir, TRAVERSABLE)
  let child: ChildProcess | undefined
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    try {
      if (child !== undefined) await stopChild(child)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  try {
    for (const sub of ['etc/ppd', 'etc/ssl', 'spool/tmp', 'cache', 'state/certs', 'log']) await mkdir(join(dir, sub), { recursive: true })
    const port = await freePort()
    await writeFile(join(dir, 'etc', 'cupsd.conf'), cupsdConf(port))
    await writeFile(join(dir, 'etc', 'cups-files.conf'), cupsFilesConf(dir))
    const output: string[] = []
    child = spawn(CUPSD, ['-f', '-c', join(dir, 'etc', 'cupsd.conf'), '-s', join(dir, 'etc', 'cups-files.conf')], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (c: Buffer) => output.push(c.toString()))
    child.stderr?.on('data', (c: Buffer) => output.push(c.toString()))
    const running = child
    const deadline = Date.now() + START_TIMEOUT_MS
    while (!await portOpen(port)) {
      if (running.exitCode !== null || running.signalCode !== null || Date.now() > deadline) {
        const errorLog = await readFile(join(dir, 'log', 'error_log'), 'utf8').catch((err: NodeJS.ErrnoException) => `(no error_log: ${err.code ?? err.message})`)
        throw new CupsUnavailableError(`cupsd did not open 127.0.0.1:${port} (${running.exitCode !== null ? `exited ${running.exitCode}` : 'timed out'}):\n${output.join('')}\n${errorLog}`)
      }
      await delay(POLL_MS)
    }
    for (const args of queues) lpadmin(port, args)
    const queueUriOf = (name: string): string => `ipp://127.0.0.1:${port}/printers/${encodeURIComponent(name)}`
    return { pid: running.pid as number, port, queueUri: queueUriOf(CUPS_QUEUE), queueUriOf, dir, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
