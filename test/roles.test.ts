// The four roles built from their lists (node/roles.ts), in this process over libp2p/TCP on
// loopback: one lifecycle check for every service of every role (start twice, stop, stop
// again; ports, sockets, data files and timers released), and roles assembled wrong fail
// at boot with a named error, leaving their data folder usable.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import { createHook } from 'node:async_hooks'
import { readdir, readlink, rm } from 'node:fs/promises'
import { startSite, type RunningSite } from '../node/site.ts'
import { startCentral, type RunningCentral } from '../node/central.ts'
import { startTerminal } from '../node/terminal.ts'
import { STORE_KEY_SUFFIX } from '../node/store-key.ts'
import { startClient } from '../node/client.ts'
import { JoinError } from '../node/peer.ts'
import { ROLES } from '../node/roles.ts'
import { MissingServiceError, UnknownServiceError, type Node } from '../node/compose.ts'
import { portFree, tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const logger = pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })
/** Resources a stopped node lets go of by themselves (a closing socket, a last timer) settle within this. */
const SETTLE_MS = 10_000
const ADMIN_TOKEN = 'roles-test-admin-token-0123456789'
const dirs: string[] = []
const running: Array<{ stop: () => Promise<void> }> = []
let central: RunningCentral | undefined

const mesh = (join?: string) => ({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, ...(join !== undefined ? { join } : {}) })
async function dir (): Promise<string> {
  const d = await tempDir('printmesh-roles-')
  dirs.push(d)
  return d
}
const siteConfig = (data: string) => ({ data, mesh: mesh(), host: '127.0.0.1', ippPort: 0, httpPort: 0, printers: [], queue: 'print', hold: true, dnssd: false, adminToken: ADMIN_TOKEN })

/** Active handles by kind (`TCPServerWrap`, `TCPSocketWrap`, `Timeout`, …). */
function handles (): Record<string, number> {
  const out: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) out[kind] = (out[kind] ?? 0) + 1
  return out
}

/**
 * Timers (`setTimeout`, `setInterval`, also unref'd ones, which active handles do not
 * list) created from now until `pause()` and not yet cleared or fired, with where each
 * was created.
 */
function trackTimers (): { live: Map<number, string>, pause: () => void, end: () => void } {
  const live = new Map<number, string>()
  let recording = true
  const hook = createHook({
    init (id, type) { if (recording && type === 'Timeout') live.set(id, new Error('timer created').stack ?? '') },
    destroy (id) { live.delete(id) }
  }).enable()
  return { live, pause: () => { recording = false }, end: () => { hook.disable() } }
}

/** Files and sockets this process has open. */
async function openFiles (): Promise<string[]> {
  const out: string[] = []
  for (const fd of await readdir('/proc/self/fd')) {
    try { out.push(await readlink(`/proc/self/fd/${fd}`)) } catch { /* closed while listing */ }
  }
  return out
}

/** How many times each path is open. */
function tally (paths: string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of paths) out.set(p, (out.get(p) ?? 0) + 1)
  return out
}

/** Whether a TCP port on loopback can be bound again. */
const bindable = async (port: number): Promise<boolean> => await portFree(port, '127.0.0.1')

const tcpPorts = (addrs: string[]): number[] => addrs.map((a) => Number(/\/tcp\/(\d+)/.exec(a)?.[1])).filter((p) => p > 0)

/**
 * The lifecycle check every role's services pass: starting each service again opens
 * nothing more; stopping the node frees its ports and its data folder's files and leaves
 * no more handles than before it started (`timers`: also no more timers, when nothing else
 * runs in this process); stopping each service again is harmless.
 */
async function lifecycle (node: Node, dataDir: string, ports: number[], before: Record<string, number>, opts: { timers?: ReturnType<typeof trackTimers> }): Promise<void> {
  const started = handles()
  const filesStarted = tally(await openFiles())
  for (const name of node.order) await node.services[name].start()
  assert.equal(handles().TCPServerWrap, started.TCPServerWrap, 'a second start opens no server')
  // compared path by path, not in total: the store may close a file of its own meanwhile (compaction)
  const opened = [...tally(await openFiles())].filter(([path, n]) => n > (filesStarted.get(path) ?? 0)).map(([path]) => path)
  assert.equal(opened, [], 'a second start opens no file or socket')
  assert.ok(ports.length > 0)
  for (const p of ports) assert.not.ok(await bindable(p), `port ${p} is in use while started`)

  await node.stop()
  opts.timers?.pause()
  for (const p of ports) assert.ok(await bindable(p), `port ${p} is free after stop`)
  assert.equal((await openFiles()).filter((f) => f.startsWith(dataDir)), [], 'no file of the data folder stays open')
  const kinds = opts.timers !== undefined ? ['TCPServerWrap', 'TCPSocketWrap', 'Timeout', 'Immediate'] : ['TCPServerWrap']
  await until(async () => kinds.every((k) => (handles()[k] ?? 0) <= (before[k] ?? 0)), SETTLE_MS,
    `handles back to before the start: ${JSON.stringify(before)} now ${JSON.stringify(handles())}`)
  const timers = opts.timers
  if (timers !== undefined) {
    try {
      await until(() => timers.live.size === 0, SETTLE_MS, 'every timer the node created cleared or fired')
    } catch (err) {
      assert.unreachable(`${(err as Error).message}; left:\n${[...timers.live.values()].join('\n---\n')}`)
    } finally {
      timers.end()
    }
  }
  for (const name of [...node.order].reverse()) await node.services[name].stop()
  assert.ok(kinds.every((k) => (handles()[k] ?? 0) <= (before[k] ?? 0)), 'stopping again opens nothing')
}

async function joinString (role: string, site: string): Promise<string> {
  const res = await fetch(`${(central as RunningCentral).webUrl}api/mesh/tokens`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ role, site })
  })
  assert.is(res.status, 201)
  return (await res.json() as { joinString: string }).joinString
}

test.after(async () => {
  for (const r of running.reverse()) await r.stop().catch(() => {})
  // a terminal's store key is beside its data folder by default (node/store-key.ts)
  for (const d of dirs) for (const f of [d, d + STORE_KEY_SUFFIX]) await rm(f, { recursive: true, force: true })
})

test('every site service starts once when started again; the stopped site frees its ports, files, sockets and timers', async () => {
  const data = await dir()
  const before = handles()
  const timers = trackTimers()
  const site: RunningSite = await startSite(siteConfig(data), logger)
  running.push(site)
  assert.equal(site.node.order, ROLES.site.filter((n) => n !== 'dnssd'))
  const ports = [site.ippPort, site.httpPort, ...tcpPorts(site.peer.host.getMultiaddrs().map(String))]
  await lifecycle(site.node, data, ports, before, { timers })
})

test('every central service starts once when started again; the stopped central frees its ports, files, sockets and timers', async () => {
  const data = await dir()
  const before = handles()
  const timers = trackTimers()
  const c = await startCentral({ data, host: '127.0.0.1', httpPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, adminToken: ADMIN_TOKEN }, logger)
  assert.equal(c.node.order, ROLES.central)
  await lifecycle(c.node, data, [c.httpPort, ...tcpPorts(c.peer.host.getMultiaddrs().map(String))], before, { timers })
})

test('a terminal and a client join central with join strings; each one\'s services pass the same lifecycle check', async () => {
  central = await startCentral({ data: await dir(), host: '127.0.0.1', httpPort: 0, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, adminToken: ADMIN_TOKEN }, logger)
  running.push(central)
  for (const [role, start] of [['terminal', startTerminal], ['client', startClient]] as const) {
    const data = await dir()
    const before = handles()
    const node = await start({ data, host: '127.0.0.1', httpPort: 0, ippPort: 0, mesh: mesh(await joinString(role, 'site-a')), adminToken: ADMIN_TOKEN }, logger)
    running.push(node)
    assert.equal(node.node.order, ROLES[role])
    assert.is(node.peer.membership.certificate()?.role, role, `${role}: its certificate says what it is`)
    await until(async () => central?.peer.transport.peers().includes(node.peer.id) === true, SETTLE_MS, `${role} connected to central`)
    const info = await (await fetch(`http://127.0.0.1:${node.httpPort}/api/info`)).json() as { role: string, site: string }
    assert.equal({ role: info.role, site: info.site }, { role, site: 'site-a' })
    await lifecycle(node.node, data, [node.httpPort, ...tcpPorts(node.peer.host.getMultiaddrs().map(String))], before, {})
  }
})

test('a client started without a join string is refused: it must join a mesh', async () => {
  try {
    await startClient({ data: await dir(), host: '127.0.0.1', httpPort: 0, ippPort: 0, mesh: mesh(), adminToken: ADMIN_TOKEN }, logger)
    assert.unreachable('a client cannot run standalone')
  } catch (err) {
    assert.instance(err, JoinError)
    assert.match((err as Error).message, 'a client must join a mesh')
  }
})

test('a site without its jobs service fails at boot naming what is missing, and its data folder then starts a whole site', async () => {
  const data = await dir()
  try {
    await startSite(siteConfig(data), logger, ROLES.site.filter((n) => n !== 'jobs' && n !== 'dnssd'))
    assert.unreachable('a site without jobs must not start')
  } catch (err) {
    assert.instance(err, MissingServiceError)
    assert.equal((err as MissingServiceError).missing.get('jobs'), ['roaming', 'ipp', 'http'])
  }
  // the failed boot closed what it prepared (the database lock, the libp2p port)
  const site = await startSite(siteConfig(data), logger)
  await site.stop()
})

test('a site listing an unknown service fails at boot naming it, and its data folder then starts a whole site', async () => {
  const data = await dir()
  try {
    await startSite(siteConfig(data), logger, [...ROLES.site.filter((n) => n !== 'dnssd'), 'fax'])
    assert.unreachable('an unknown service must be refused')
  } catch (err) {
    assert.instance(err, UnknownServiceError)
    assert.equal((err as UnknownServiceError).unknown, ['fax'])
  }
  const site = await startSite(siteConfig(data), logger)
  await site.stop()
})

test.run()
