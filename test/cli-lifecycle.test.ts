// The running command as an operator meets it: `npm start` stops cleanly on every signal and
// frees its ports, a port in use names the option that chooses another, `--version`, help
// that shows each default once and no option a role refuses, central and a site on one host.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { portFree, tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const ROOT = new URL('..', import.meta.url).pathname
const BIN = join(ROOT, 'node/bin/printmesh.js')
/** A node that is told to stop must be gone, its ports free, within this. */
const STOP_MS = 10_000
/** Starting a site or central (key generation, database, libp2p). */
const START_MS = 60_000

function printmesh (...args: string[]): { status: number | null, out: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

interface Running { proc: ChildProcess, output: () => string, nodePid: number, ports: number[] }

const children: ChildProcess[] = []
const pids: number[] = []
let dir = ''

test.before(async () => { dir = await tempDir('printmesh-lifecycle-') })
test.after(async () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await rm(dir, { recursive: true, force: true })
})

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** npm's own command line: the one `npm test` runs under, else `npm` from PATH. */
function npmCommand (): [string, string[]] {
  const execPath = process.env.npm_execpath
  return execPath !== undefined && execPath.endsWith('.js') ? [process.execPath, [execPath]] : ['npm', []]
}

/** `npm start` with its own data folder and free ports; resolves once the site is ready. */
async function npmStart (name: string): Promise<Running> {
  const [cmd, pre] = npmCommand()
  const args = [...pre, 'start', '--silent', '--', '--data', join(dir, name), '--host', '127.0.0.1', '--ipp-port', '0', '--http-port', '0',
    '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(proc)
  let out = ''
  proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
  proc.stderr?.on('data', (b: Buffer) => { out += b.toString() })
  await until(() => out.includes('"msg":"site ready"') || proc.exitCode !== null, START_MS, `${name} ready`)
  const ready = out.split('\n').find((l) => l.includes('"msg":"site ready"'))
  if (ready === undefined) throw new Error(`npm start exited: ${out}`)
  const line = JSON.parse(ready) as { pid: number, ippPort: number, httpPort: number, listen: string[] }
  pids.push(line.pid)
  const p2p = line.listen.map((a) => Number(/\/tcp\/(\d+)/.exec(a)?.[1]))
  return { proc, output: () => out, nodePid: line.pid, ports: [line.ippPort, line.httpPort, ...p2p] }
}

async function assertStopped (run: Running, how: string): Promise<void> {
  await until(() => !alive(run.nodePid), STOP_MS, `the site stopped after ${how}`)
  for (const port of run.ports) assert.ok(await portFree(port), `port ${port} still held after ${how}`)
}

test('SIGTERM to the npm process started by `npm start` stops the site and frees its ports', async () => {
  const run = await npmStart('npm-term')
  assert.ok(run.proc.pid !== run.nodePid, 'npm and the site are two processes here')
  run.proc.kill('SIGTERM')
  await assertStopped(run, 'SIGTERM to npm')
})

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} to the site's own process stops it cleanly and frees its ports`, async () => {
    const run = await npmStart(`site-${signal}`)
    process.kill(run.nodePid, signal)
    await assertStopped(run, signal)
    assert.match(run.output(), `"signal":"${signal}","msg":"shutting down"`)
  })
}

test('--version prints the package version', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const r = printmesh('--version')
  assert.equal([r.status, r.out.trim()], [0, pkg.version])
})

test('help shows each default once and offers central no --join', () => {
  for (const role of ['site', 'central', 'terminal']) {
    const help = printmesh(role, '--help').out
    // an option's entry: from its flag to the next flag
    const entries = help.split(/\n(?=\s{2}-)/)
    for (const entry of entries) {
      assert.ok((entry.match(/default/g) ?? []).length <= 1, `${role} --help shows two defaults: ${entry}`)
    }
    assert.not.match(help, '(default: [])')
  }
  assert.not.match(printmesh('central', '--help').out, '--join')
  assert.match(printmesh('site', '--help').out, '--join')
  const refused = printmesh('central', '--join', 'x')
  assert.equal([refused.status, /unknown option '--join'/.test(refused.out)], [1, true])
})

async function holdPort (): Promise<{ port: number, server: Server }> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { port: address.port, server }
}

test('a port in use is reported as "port N (--option) is in use" for each port option', async () => {
  for (const option of ['--http-port', '--ipp-port', '--listen']) {
    const { port, server } = await holdPort()
    try {
      const ports: Record<string, string> = { '--http-port': '0', '--ipp-port': '0', '--listen': '/ip4/0.0.0.0/tcp/0' }
      ports[option] = option === '--listen' ? `/ip4/0.0.0.0/tcp/${port}` : String(port)
      const r = printmesh('site', '--data', join(dir, `in-use${option}`), '--no-mdns', ...Object.entries(ports).flat())
      assert.is(r.status, 1, r.out)
      assert.match(r.out, `printmesh: port ${port} (${option}) is in use`)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }
})

test('central and a site run side by side on one host with their default ports', async () => {
  const start = (role: string, ready: string): { proc: ChildProcess, ready: Promise<void> } => {
    const proc = spawn(process.execPath, [BIN, role, '--data', join(dir, `side-${role}`), '--no-mdns'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(proc)
    let out = ''
    proc.stdout?.on('data', (b: Buffer) => { out += b.toString() })
    proc.stderr?.on('data', (b: Buffer) => { out += b.toString() })
    return { proc, ready: until(() => out.includes(ready) || proc.exitCode !== null, START_MS, `${role} ready`).then(() => { if (!out.includes(ready)) throw new Error(`${role} exited: ${out}`) }) }
  }
  const central = start('central', 'printmesh central ready')
  await central.ready
  const site = start('site', 'printmesh site ready')
  await site.ready
  for (const [url, what] of [['http://127.0.0.1:8642/', 'central'], ['http://127.0.0.1:8632/', 'site']]) {
    const res = await fetch(url)
    assert.is(res.status < 500, true, `${what} answers on its default port`)
  }
  for (const { proc } of [site, central]) {
    proc.kill('SIGTERM')
    await until(() => proc.exitCode !== null, STOP_MS, 'stopped')
  }
})

test.run()
