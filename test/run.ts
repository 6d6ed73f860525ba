/**
 * The test command (`npm test`).
 *
 * 1. Installs the Debian packages the tests need when they are missing.
 * 2. Re-executes itself inside a private network + mount namespace (`unshare -n -m`):
 *    only a loopback interface exists there, so nothing a test does (IPP, libp2p, mDNS,
 *    DNS-SD through avahi) can send a packet off the machine.
 * 3. Inside, brings `lo` up with multicast, starts a private D-Bus system bus and an
 *    avahi-daemon on tmpfs-mounted runtime folders (ippeveprinter needs DNS-SD), runs every
 *    `test/**\/*.test.ts` file in its own process, and stops the daemons by pid.
 *    Files run {@link PARALLEL_FILES} at a time (their output printed whole when each ends),
 *    except the {@link EXCLUSIVE_FILES}, which run alone first; the {@link LONG_FILES} start first.
 * 4. Ends with the plain line `N passed, N failed`.
 *
 * Usage: `npm test [-- name-filter ...]` runs only files whose path contains a filter.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

/** Debian packages the test suite drives for real. */
const DEBIAN_PACKAGES = [
  'cups-ipp-utils', // ipptool, ippeveprinter
  'cups-client', // lp, lpstat, cancel, lpadmin
  'cups-bsd', // lpq, as desktop users list a queue
  'cups-filters', // pdftopdf: a private cupsd prints PDF through an IPP Everywhere queue on the site
  'cups-daemon', // cupsd, the baseline the ingestion benchmark (smoke-tested) compares against
  'avahi-daemon', // DNS-SD for ippeveprinter, inside the test namespace only
  'avahi-utils', // avahi-browse, avahi-resolve-host-name: the dnssd tests see what a site advertises
  'dbus', // the bus avahi and ippeveprinter talk over
  'ghostscript', // renders PostScript / raster test documents
  'poppler-utils', // pdfinfo, the reference page count the PDF analyser is checked against
  'chromium', // browser tests
  'slapd', // a real OpenLDAP directory for central's LDAP sync
  'ldap-utils', // ldapadd, ldapmodify: the LDAP tests change the directory as an admin would
  'snmpd', // a real SNMP agent serving Printer MIB page counters for copy accounting
  'snmp', // snmpget: the tests read what the agent serves
  'iproute2', // `ip link` inside the namespace
  'util-linux' // unshare
]
/** A test file that runs longer than this is killed and counted as failed. */
const FILE_TIMEOUT_MS = 6 * 60_000
/** How long the private D-Bus / avahi may take to come up. */
const DAEMON_START_TIMEOUT_MS = 15_000
/**
 * Test files run at once. Most files wait on child processes, printers and browsers, so two
 * at a time keep the suite inside its CI budget on a 2-core machine; `PRINTMESH_TEST_JOBS=1`
 * runs them one by one.
 */
const PARALLEL_FILES = Math.max(1, Number(process.env.PRINTMESH_TEST_JOBS ?? 2) || 1)
/**
 * Files that run alone, before the others: they measure time or throughput (a loaded core
 * would make their figures or deadlines meaningless), load both cores themselves, browse
 * DNS-SD / mDNS, where another file's printers would show up, make node/dist stale on
 * purpose, which the files running the package bin meanwhile would rebuild (build), or kill
 * and restart a mesh of processes and wait for them to reconnect within bounds a second
 * loaded file stretched past (client-processes once: its client did not reconnect to the
 * restarted site and terminal within 45 s).
 */
const EXCLUSIVE_FILES = ['bench-smoke', 'site-busy-printer', 'simulation-mutations', 'dnssd', 'transport-mdns', 'ipp-slow-clients', 'test/build.test', 'client-processes']
/** Files that take near a minute or more (a clean-clone run at b4628d2: 39-85 s): started first, so the two at a time end together instead of one finishing a long file alone at the end. */
const LONG_FILES = ['mesh-processes', 'simulation-processes', 'roaming-processes', 'terminal-copy', 'terminal-spooling', 'terminal-panel', 'site-hostile-documents', 'simulation-device-spooling', 'reports-processes']
/** Marks the re-executed run inside the namespace. */
const SANDBOX_ENV = 'PRINTMESH_TEST_SANDBOX'

const root = new URL('..', import.meta.url).pathname
const filters = process.argv.slice(2)

function log (line: string): void {
  process.stdout.write(`[test] ${line}\n`)
}

function ensureDebianPackages (): void {
  const missing = DEBIAN_PACKAGES.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' })
    return r.status !== 0 || !r.stdout.includes('install ok installed')
  })
  if (missing.length === 0) return
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages ${missing.join(', ')}; install them as root: apt-get install ${missing.join(' ')}`)
  }
  log(`installing Debian packages: ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  if (update.status !== 0) throw new Error('apt-get update failed')
  const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env })
  if (install.status !== 0) throw new Error(`apt-get install ${missing.join(' ')} failed`)
}

function findTestFiles (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name)
    if (name === 'node_modules' || name === 'fixtures') continue
    if (statSync(full).isDirectory()) out.push(...findTestFiles(full))
    else if (name.endsWith('.test.ts')) out.push(full)
  }
  return out
}

async function waitFor (what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + DAEMON_START_TIMEOUT_MS
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${DAEMON_START_TIMEOUT_MS} ms`)
    await delay(50)
  }
}

function run (cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`)
}

/** Private loopback, D-Bus and avahi inside the namespace; returns their stopper. */
async function startSandboxServices (): Promise<() => Promise<void>> {
  run('ip', ['link', 'set', 'lo', 'up'])
  run('ip', ['link', 'set', 'lo', 'multicast', 'on'])
  for (const dir of ['/run/dbus', '/run/avahi-daemon']) {
    mkdirSync(dir, { recursive: true })
    run('mount', ['-t', 'tmpfs', 'tmpfs', dir])
  }
  const children: ChildProcess[] = []
  const dbus = spawn('dbus-daemon', ['--system', '--nofork', '--nopidfile'], { stdio: 'ignore' })
  children.push(dbus)
  await waitFor('dbus-daemon', () => existsSync('/run/dbus/system_bus_socket'))
  const avahi = spawn('avahi-daemon', ['--no-drop-root', '--no-chroot', '--no-rlimits'], { stdio: 'ignore' })
  children.push(avahi)
  await waitFor('avahi-daemon', () => spawnSync('avahi-daemon', ['--check']).status === 0)
  return async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.pid === undefined) continue
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await Promise.race([exited, delay(3000)])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }
}

interface FileResult { file: string, passed: number, failed: number, skipped: number }

/** Reads uvu's summary ("Total: N / Passed: N / Skipped: N") from a file's output. */
function summarize (file: string, output: string, exitCode: number | null): FileResult {
  const num = (label: string): number | undefined => {
    const m = output.match(new RegExp(`${label}:\\s+(\\d+)`))
    return m ? Number(m[1]) : undefined
  }
  const total = num('Total')
  const passed = num('Passed')
  const skipped = num('Skipped') ?? 0
  if (total === undefined || passed === undefined) {
    return { file, passed: 0, failed: 1, skipped: 0 }
  }
  let failed = total - passed - skipped
  if (failed === 0 && exitCode !== 0) failed = 1 // crashed after its summary
  return { file, passed, failed, skipped }
}

async function runFile (file: string): Promise<FileResult> {
  const rel = relative(root, file)
  log(`▶ ${rel}`)
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true // own process group, so a timeout can end everything it started
  })
  let output = ''
  const onData = (chunk: Buffer): void => {
    output += chunk.toString()
    if (PARALLEL_FILES === 1) process.stdout.write(chunk)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const timer = setTimeout(() => {
    log(`✖ ${rel} exceeded ${FILE_TIMEOUT_MS} ms, killing it`)
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
  }, FILE_TIMEOUT_MS)
  const code: number | null = await new Promise((resolve) => child.on('close', (c) => resolve(c)))
  clearTimeout(timer)
  // a file that ended early (an unhandled rejection skips its after hooks) may leave processes
  // it started: they are in its process group, and go with it
  if (child.pid !== undefined) {
    try { process.kill(-child.pid, 'SIGKILL') } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err }
  }
  if (PARALLEL_FILES > 1) process.stdout.write(`[test] ── output of ${rel} ──\n${output}`)
  const result = summarize(rel, output, code)
  if (result.failed > 0) log(`✖ ${rel}: ${result.failed} failed`)
  return result
}

async function main (): Promise<number> {
  if (process.env[SANDBOX_ENV] !== '1') {
    ensureDebianPackages()
    log('entering a private network namespace (loopback only)')
    const child = spawn('unshare', ['--net', '--mount', '--propagation', 'private', '--',
      process.execPath, '--import', 'tsx', new URL(import.meta.url).pathname, ...filters], {
      stdio: 'inherit',
      env: { ...process.env, [SANDBOX_ENV]: '1' }
    })
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig))
    return await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)))
  }

  const stop = await startSandboxServices()
  const results: FileResult[] = []
  try {
    const files = findTestFiles(join(root, 'test'))
      .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    const exclusive = files.filter((f) => EXCLUSIVE_FILES.some((x) => relative(root, f).includes(x)))
    for (const file of exclusive) results.push(await runFile(file))
    const rest = files.filter((f) => !exclusive.includes(f))
    const long = (f: string): boolean => LONG_FILES.some((x) => relative(root, f).includes(x))
    const queue = [...rest.filter(long), ...rest.filter((f) => !long(f))]
    const worker = async (): Promise<void> => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) results.push(await runFile(file))
    }
    await Promise.all(Array.from({ length: PARALLEL_FILES }, worker))
  } finally {
    await stop()
  }
  const passed = results.reduce((n, r) => n + r.passed, 0)
  const failed = results.reduce((n, r) => n + r.failed, 0)
  const skipped = results.reduce((n, r) => n + r.skipped, 0)
  for (const r of results.filter((r) => r.failed > 0)) log(`failed: ${r.file}`)
  process.stdout.write(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`)
  return failed > 0 || results.length === 0 ? 1 : 0
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`[test] ${err instanceof Error ? err.message : String(err)}\n`)
  process.stdout.write('0 passed, 1 failed\n')
  process.exit(1)
})
