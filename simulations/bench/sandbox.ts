/**
 * A private network for benchmarks that start ippeveprinter, which needs DNS-SD (avahi over
 * the system D-Bus) and would otherwise advertise its printer on the machine's networks.
 *
 * {@link runInSandbox} re-executes a benchmark module inside a new network and mount
 * namespace (`unshare --net --mount`, as test/run.ts does for `npm test`): only a loopback
 * interface exists there, so nothing it starts (IPP, libp2p, multicast DNS-SD) can send a
 * packet off the machine. Inside, {@link startSandboxServices} brings `lo` up with
 * multicast and starts a private D-Bus system bus and an avahi-daemon on tmpfs-mounted
 * runtime folders (the mounts belong to the namespace and vanish with it). The module
 * writes its result as JSON on stdout; progress goes to stderr, passed through.
 *
 * The child runs in its own process group: when it ends (or its deadline passes) the group
 * is killed, so no printer, cupsd or site it started outlives it even if it crashed.
 * Needs root (unshare of a network namespace); otherwise fails saying so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { BenchmarkError } from './common.ts'

/** Marks a process re-executed inside the private namespace. */
export const SANDBOX_ENV = 'PRINTMESH_BENCH_SANDBOX'
/** How long the private D-Bus and avahi may take to come up. */
const DAEMON_START_TIMEOUT_MS = 15_000
/** Readiness polls of the daemons (a socket file, `avahi-daemon --check`: no event to wait on). */
const DAEMON_POLL_MS = 50
/** Grace period after SIGTERM before SIGKILL when stopping a daemon. */
const DAEMON_STOP_MS = 3_000
/** The programs the sandbox runs, with the Debian package of each. */
const SANDBOX_TOOLS: ReadonlyArray<{ path: string, pkg: string }> = [
  { path: '/usr/bin/unshare', pkg: 'util-linux' },
  { path: '/usr/bin/dbus-daemon', pkg: 'dbus' },
  { path: '/usr/sbin/avahi-daemon', pkg: 'avahi-daemon' },
  { path: '/usr/sbin/ip', pkg: 'iproute2' }
]

export class SandboxError extends BenchmarkError {
  constructor (message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'SandboxError' }
}

/** Whether this process runs inside the private namespace {@link runInSandbox} made. */
export function inSandbox (): boolean {
  return process.env[SANDBOX_ENV] === '1'
}

/** Fails (saying what to install) when a program the sandbox needs is missing or this is not root. */
export function checkSandboxPrerequisites (extra: ReadonlyArray<{ path: string, pkg: string }> = []): void {
  if (process.getuid?.() !== 0) throw new SandboxError('a private network namespace (unshare --net) needs root; run the benchmark as root')
  const missing = [...SANDBOX_TOOLS, ...extra].filter((t) => !existsSync(t.path))
  if (missing.length > 0) throw new SandboxError(`missing ${missing.map((t) => t.path).join(', ')}; as root run: apt-get install ${[...new Set(missing.map((t) => t.pkg))].join(' ')}`)
}

function run (cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error !== undefined || r.status !== 0) throw new SandboxError(`${cmd} ${args.join(' ')} failed (exit ${String(r.status)}): ${r.error?.message ?? r.stderr}`)
}

async function waitFor (what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + DAEMON_START_TIMEOUT_MS
  while (!check()) {
    if (Date.now() > deadline) throw new SandboxError(`${what} did not come up within ${DAEMON_START_TIMEOUT_MS} ms`)
    await delay(DAEMON_POLL_MS)
  }
}

async function stopDaemon (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const ac = new AbortController()
  const timedOut = await Promise.race([exited.then(() => false), delay(DAEMON_STOP_MS, true, { signal: ac.signal }).catch(() => false)])
  ac.abort()
  if (timedOut) {
    child.kill('SIGKILL')
    await exited
  }
}

/**
 * Inside the namespace only: loopback up with multicast, a private D-Bus system bus and
 * avahi on tmpfs runtime folders. Resolves with their stopper (by pid, in reverse order).
 */
export async function startSandboxServices (): Promise<() => Promise<void>> {
  if (!inSandbox()) throw new SandboxError('startSandboxServices outside the private namespace would mount over the machine\'s /run/dbus')
  run('ip', ['link', 'set', 'lo', 'up'])
  run('ip', ['link', 'set', 'lo', 'multicast', 'on'])
  for (const dir of ['/run/dbus', '/run/avahi-daemon']) {
    mkdirSync(dir, { recursive: true })
    run('mount', ['-t', 'tmpfs', 'tmpfs', dir])
  }
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) await stopDaemon(child)
  }
  try {
    children.push(spawn('dbus-daemon', ['--system', '--nofork', '--nopidfile'], { stdio: 'ignore' }))
    await waitFor('dbus-daemon', () => existsSync('/run/dbus/system_bus_socket'))
    children.push(spawn('avahi-daemon', ['--no-drop-root', '--no-chroot', '--no-rlimits'], { stdio: 'ignore' }))
    await waitFor('avahi-daemon', () => spawnSync('avahi-daemon', ['--check']).status === 0)
    return stop
  } catch (err) {
    await stop()
    throw err
  }
}

/**
 * Runs `module` (a benchmark file that, re-executed with {@link SANDBOX_ENV}=1, writes one
 * JSON value on stdout) inside a private network and mount namespace; resolves with that
 * value. The child's stderr (progress) is passed through. Fails when it exits non-zero,
 * writes no JSON, or is still running after `timeoutMs` (then its process group is killed).
 */
export async function runInSandbox<T> (module: string, args: string[], timeoutMs: number): Promise<T> {
  checkSandboxPrerequisites()
  const child = spawn('unshare', ['--net', '--mount', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', module, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, [SANDBOX_ENV]: '1' },
    detached: true // own process group: everything it started ends with it
  })
  let stdout = ''
  child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const killGroup = (): void => {
    if (child.pid === undefined) return
    try { process.kill(-child.pid, 'SIGKILL') } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err }
  }
  const onSignal = (): void => { killGroup() }
  process.once('exit', onSignal)
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; killGroup() }, timeoutMs)
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (c) => resolve(c))
    })
    if (timedOut) throw new SandboxError(`${module} did not finish within ${timeoutMs} ms; its processes were killed`)
    if (code !== 0) throw new SandboxError(`${module} in the private namespace exited with ${String(code)}`)
    try {
      return JSON.parse(stdout) as T
    } catch (err) {
      throw new SandboxError(`${module} wrote no JSON result: ${stdout.slice(0, 300)}`, { cause: err })
    }
  } finally {
    clearTimeout(timer)
    killGroup() // whatever it left behind (it stops its own processes; this is for a crash)
    process.removeListener('exit', onSignal)
  }
}
