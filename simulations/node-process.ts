/**
 * Real `printmesh site` / `central` / `terminal` processes for integration tests. Each runs on loopback with
 * ephemeral ports, read back from its "site ready" log line. Processes are ended by pid;
 * temp folders the harness made are removed on stop.
 */
import { createServer } from 'node:net'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { STORE_KEY_SUFFIX } from '../node/store-key.ts'
import { printmeshArgs } from './printmesh-command.ts'

const ROOT = new URL('..', import.meta.url).pathname
/** A node that has not said it is ready by then has failed to start. */
const START_TIMEOUT_MS = 30_000
/** Grace period for a SIGTERM'd site before SIGKILL. */
const STOP_TIMEOUT_MS = 10_000

export interface SiteOptions {
  /** Reuse a data folder (restart tests); the caller then removes it. */
  dataDir?: string
  /** `NAME=URI` printers. */
  printers?: string[]
  /** `username,full name,PIN` rows imported (with the CLI) before the site starts. */
  users?: string
  adminToken?: string
  /** More CLI options. */
  args?: string[]
  /** How long to wait for "site ready" (joins that wait for approval take longer). */
  startTimeoutMs?: number
  /** Environment variables set for the site process, over this process's own. */
  env?: Record<string, string>
}

export interface SiteProcess {
  pid: number
  /** libp2p peer id. */
  peer: string
  /** libp2p listen addresses (with /p2p/<peer>). */
  listen: string[]
  ippPort: number
  httpPort: number
  ippUri: string
  httpUrl: string
  dataDir: string
  adminToken: string
  /** Every line the process wrote so far (stdout and stderr). */
  logs (): string[]
  /** Waits for a log line whose JSON `msg` matches. */
  waitForLog (msg: string | RegExp, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Graceful stop (SIGTERM, then SIGKILL); removes the data folder if the harness made it. */
  stop (): Promise<void>
  /** Sends a signal (e.g. SIGKILL) and waits for the exit; keeps the data folder. */
  kill (signal: NodeJS.Signals): Promise<void>
}

export async function tempDir (prefix = 'printmesh-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

function runCli (args: string[]): void {
  const r = spawnSync(process.execPath, [...printmeshArgs(), ...args], { cwd: ROOT, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`printmesh ${args.join(' ')} failed: ${r.stderr}`)
}

async function exited (child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

export async function startSite (opts: SiteOptions = {}): Promise<SiteProcess> {
  const ownsDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? await tempDir()
  const adminToken = opts.adminToken ?? randomBytes(16).toString('hex')
  if (opts.users !== undefined) {
    const csv = join(dataDir, 'users-import.csv')
    await writeFile(csv, opts.users)
    runCli(['users', 'import', csv, '--data', dataDir])
    await rm(csv)
  }
  const args = ['site', '--data', dataDir, '--host', '127.0.0.1', '--ipp-port', '0', '--http-port', '0',
    ...MESH_TEST_ARGS, ...(opts.printers ?? []).flatMap((p) => ['--printer', p]), ...(opts.args ?? [])]
  return await spawnNode(args, 'site ready', dataDir, ownsDir, adminToken, opts.startTimeoutMs, opts.env)
}

/** Every test node listens on an ephemeral loopback port, without mDNS, and repairs fast. */
const MESH_TEST_ARGS = ['--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--anti-entropy-seconds', '1']

/** A `printmesh central` process. */
export async function startCentral (opts: { dataDir?: string, args?: string[] } = {}): Promise<SiteProcess> {
  const ownsDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? await tempDir('printmesh-central-')
  const adminToken = randomBytes(16).toString('hex')
  const args = ['central', '--data', dataDir, '--host', '127.0.0.1', '--http-port', '0', ...MESH_TEST_ARGS, ...(opts.args ?? [])]
  return await spawnNode(args, 'central ready', dataDir, ownsDir, adminToken)
}

/** A `printmesh terminal` or `printmesh client` process (both join with `--join` in `args`). */
async function startLightPeer (role: 'terminal' | 'client', opts: { dataDir?: string, args?: string[] }): Promise<SiteProcess> {
  const ownsDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? await tempDir(`printmesh-${role}-`)
  const adminToken = randomBytes(16).toString('hex')
  const args = [role, '--data', dataDir, '--host', '127.0.0.1', '--http-port', '0', ...MESH_TEST_ARGS, ...(opts.args ?? [])]
  return await spawnNode(args, `${role} ready`, dataDir, ownsDir, adminToken)
}

/** A `printmesh terminal` process. */
export async function startTerminal (opts: { dataDir?: string, args?: string[] } = {}): Promise<SiteProcess> {
  return await startLightPeer('terminal', { ...opts, args: ['--ipp-port', '0', ...(opts.args ?? [])] })
}

/** A `printmesh client` process. */
export async function startClient (opts: { dataDir?: string, args?: string[] } = {}): Promise<SiteProcess> {
  return await startLightPeer('client', { ...opts, args: ['--ipp-port', '0', ...(opts.args ?? [])] })
}

/**
 * Removes a data folder the harness made and the terminal's store key beside it (its default
 * `<data>.store-key`, node/store-key.ts: outside the folder, so removing the folder leaves it).
 * Called once the process has exited, so nothing writes the key afterwards.
 */
async function removeDataDir (dataDir: string): Promise<void> {
  await rm(dataDir, { recursive: true, force: true })
  await rm(`${dataDir}${STORE_KEY_SUFFIX}`, { force: true })
}

async function spawnNode (args: string[], readyMsg: string, dataDir: string, ownsDir: boolean, adminToken: string, startTimeoutMs = START_TIMEOUT_MS, env?: Record<string, string>): Promise<SiteProcess> {
  // the admin token goes in the environment: the command line is visible to every local user
  const child = spawn(process.execPath, [...printmeshArgs(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PRINTMESH_ADMIN_TOKEN: adminToken, ...env } })
  const lines: string[] = []
  const waiters = new Set<() => void>()
  let buffered = ''
  const onData = (chunk: Buffer): void => {
    buffered += chunk.toString()
    const parts = buffered.split('\n')
    buffered = parts.pop() ?? ''
    lines.push(...parts)
    for (const w of waiters) w()
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  child.on('exit', () => { for (const w of waiters) w() })

  const waitForLog = async (msg: string | RegExp, timeoutMs = START_TIMEOUT_MS): Promise<Record<string, unknown>> => {
    const match = (): Record<string, unknown> | undefined => {
      for (const line of lines) {
        if (!line.startsWith('{')) continue
        const entry = JSON.parse(line) as Record<string, unknown>
        const text = String(entry.msg)
        if (typeof msg === 'string' ? text === msg : msg.test(text)) return entry
      }
      return undefined
    }
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const found = match()
        if (found !== undefined) { done(); resolve(found); return }
        if (child.exitCode !== null || child.signalCode !== null) {
          done(); reject(new Error(`site exited (${child.exitCode ?? child.signalCode}) before logging ${String(msg)}:\n${lines.join('\n')}`))
        }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`no log ${String(msg)} within ${timeoutMs} ms:\n${lines.join('\n')}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); waiters.delete(check) }
      waiters.add(check)
      check()
    })
  }

  let ready: Record<string, unknown>
  try {
    ready = await waitForLog(readyMsg, startTimeoutMs)
  } catch (err) {
    child.kill('SIGKILL')
    await exited(child, STOP_TIMEOUT_MS)
    // a refused start (e.g. enrolment refused by the license) may already have written the store key
    if (ownsDir) await removeDataDir(dataDir)
    throw err
  }
  const ippPort = Number(ready.ippPort)
  const httpPort = Number(ready.httpPort)
  return {
    pid: child.pid as number,
    peer: String(ready.peer),
    listen: (ready.listen as string[] | undefined) ?? [],
    ippPort,
    httpPort,
    ippUri: `ipp://127.0.0.1:${ippPort}/ipp/print`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    dataDir,
    adminToken,
    logs: () => [...lines],
    waitForLog,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        if (!await exited(child, STOP_TIMEOUT_MS)) {
          child.kill('SIGKILL')
          await exited(child, STOP_TIMEOUT_MS)
        }
      }
      if (ownsDir) await removeDataDir(dataDir)
    },
    async kill (signal: NodeJS.Signals) {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill(signal)
      await exited(child, STOP_TIMEOUT_MS)
    }
  }
}

/** Whether TCP `port` can be bound again on `host` (a stopped node let go of it). */
export async function portFree (port: number, host = '0.0.0.0'): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, host, () => server.close(() => resolve(true)))
  })
}
