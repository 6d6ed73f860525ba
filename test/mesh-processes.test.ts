// The mesh with real processes over libp2p/TCP on loopback: central + 3 sites + 1 terminal
// join with one-time tokens, converge, survive kill -9, heal a partition, relay along a line,
// and refuse peers without a certificate, with the wrong network key, or revoked.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { startSite, startCentral, startTerminal, startClient, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'

/** Mesh operations in this file wait at most this long: anti-entropy runs every second. */
const MESH_TIMEOUT_MS = 30_000

let central: SiteProcess
const sites: Record<string, SiteProcess> = {}
let terminal: SiteProcess
const extra: SiteProcess[] = []
const dirs: string[] = []
let docs = ''

async function joinString (role: string, site: string): Promise<string> {
  return (await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role, site } })).joinString
}

interface Job { id: string, ippId: number, site: string, state: string, name: string }
const jobsAt = async (node: SiteProcess): Promise<Job[]> => (await admin<{ jobs: Job[] }>(node, '/api/jobs?scope=all')).jobs
const jobIds = async (node: SiteProcess): Promise<string[]> => (await jobsAt(node)).map((j) => `${j.id}:${j.state}`).sort()

interface MeshStatus { self: { peer: string }, peers: Array<{ peer: string, connected: boolean, revoked: boolean }>, documents: Array<{ doc: string, peers: Record<string, string> }> }
const mesh = async (node: SiteProcess): Promise<MeshStatus> => await admin<MeshStatus>(node, '/api/mesh')
const connectedTo = async (node: SiteProcess, peer: string): Promise<boolean> => (await mesh(node)).peers.some((p) => p.peer === peer && p.connected)

async function sameJobs (...nodes: SiteProcess[]): Promise<void> {
  await until(async () => {
    const lists = await Promise.all(nodes.map(jobIds))
    return lists.every((l) => JSON.stringify(l) === JSON.stringify(lists[0]))
  }, MESH_TIMEOUT_MS, 'identical job lists')
}

async function print (site: SiteProcess, name: string): Promise<number> {
  const pdf = await makePdf(docs, { pages: 1, colorPages: [] })
  return await printFile(site.ippUri, pdf, { user: 'alice', format: 'application/pdf', name })
}

test.before(async () => {
  docs = await tempDir('printmesh-docs-')
  central = await startCentral()
  for (const name of ['a', 'b', 'c']) sites[name] = await startSite({ args: ['--site', `site-${name}`, '--join', await joinString('site', `site-${name}`)] })
  terminal = await startTerminal({ args: ['--join', await joinString('terminal', 'site-a')] })
})

test.after(async () => {
  for (const p of [...extra, terminal, ...Object.values(sites), central]) await p?.stop()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  await rm(docs, { recursive: true, force: true })
})

test('central, three sites and a terminal join with one-time tokens and connect', async () => {
  for (const node of [...Object.values(sites), terminal]) {
    await until(async () => await connectedTo(central, node.peer), MESH_TIMEOUT_MS, `${node.peer} connected to central`)
  }
  // users of a mesh come from central's directory, not from a member site
  const res = await fetch(`${sites.a.httpUrl}/api/users/import`, { method: 'POST', headers: { authorization: `Bearer ${sites.a.adminToken}`, 'content-type': 'text/csv' }, body: 'alice,Alice,1234\n' })
  assert.is(res.status, 409)
  assert.match(await res.text(), /managed on central/)
  // a join string works once
  const used = await joinString('site', 'site-x')
  const first = await startSite({ args: ['--site', 'site-x', '--join', used] })
  extra.push(first)
  const dir = await tempDir()
  dirs.push(dir)
  const again = startSite({ dataDir: dir, args: ['--site', 'site-y', '--join', used] })
  try {
    await again
    assert.unreachable('a used token must be refused')
  } catch (err) {
    assert.match((err as Error).message, /enrollment token already used/)
  }
})

test('a workstation client joins with a client join string, connects to central and its site, and says what it is', async () => {
  const client = await startClient({ args: ['--join', await joinString('client', 'site-a')] })
  extra.push(client)
  await until(async () => await connectedTo(central, client.peer), MESH_TIMEOUT_MS, 'client connected to central')
  await until(async () => await connectedTo(sites.a, client.peer), MESH_TIMEOUT_MS, 'client connected to its site')
  const info = await (await fetch(`${client.httpUrl}/api/info`)).json() as { role: string, peer: string, site: string, services: { print: boolean, mesh: boolean } }
  assert.equal(info, { role: 'client', peer: client.peer, site: 'site-a', services: { print: false, mesh: true } })
  // its certificate says client: central lists it so
  const listed = (await mesh(central)).peers.find((p) => p.peer === client.peer) as { role?: string } | undefined
  assert.is(listed?.role, 'client')
})

test('a peer without a token asks to join and gets in once an admin approves (with the CLI)', async () => {
  const cli = (...args: string[]): string => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'mesh', ...args, '--url', central.httpUrl], { encoding: 'utf8', env: { ...process.env, PRINTMESH_ADMIN_TOKEN: central.adminToken } })
    if (r.status !== 0) throw new Error(`printmesh mesh ${args.join(' ')}: ${r.stderr}`)
    return r.stdout.trim()
  }
  const joinString = cli('join-string')
  const pending = startSite({ args: ['--site', 'site-ask', '--join', joinString], startTimeoutMs: 90_000 })
  pending.catch(() => {}) // a failure is reported where it is awaited, not as an unhandled rejection that skips cleanup
  let asking: { peer: string } | undefined
  await until(async () => {
    asking = (await admin<{ requests: Array<{ peer: string, site: string }> }>(central, '/api/mesh/requests')).requests.find((r) => r.site === 'site-ask')
    return asking !== undefined
  }, MESH_TIMEOUT_MS, 'join request at central')
  assert.match(cli('requests'), /site-ask/)
  assert.not.ok(await connectedTo(central, (asking as { peer: string }).peer), 'admitted before approval')
  assert.match(cli('approve', (asking as { peer: string }).peer), /approved/)
  const asked = await pending
  extra.push(asked)
  await until(async () => await connectedTo(central, asked.peer), MESH_TIMEOUT_MS, 'approved site connected')
})

test('a job printed at site A appears, with its state, in site C\'s job list', async () => {
  const ippId = await print(sites.a, 'mesh report')
  await until(async () => (await jobsAt(sites.c)).some((j) => j.name === 'mesh report' && j.state === 'held'), MESH_TIMEOUT_MS, 'job at C')
  const job = (await jobsAt(sites.a)).find((j) => j.ippId === ippId) as Job
  await admin(sites.a, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} })
  await until(async () => (await jobsAt(sites.c)).some((j) => j.id === job.id && j.state === 'printed'), MESH_TIMEOUT_MS, 'printed state at C')
  await sameJobs(sites.a, sites.b, sites.c)
  // C applied A's updates: its sync latency histogram observed them
  const metrics = await (await fetch(`${sites.c.httpUrl}/metrics`)).text()
  const batches = Number(/^printmesh_sync_apply_duration_seconds_count (\d+)$/m.exec(metrics)?.[1] ?? 0)
  assert.ok(batches > 0, 'sync batches applied at C are observed')
})

test('a site killed with -9 keeps its jobs and catches up on what it missed', async () => {
  await print(sites.b, 'before crash')
  await until(async () => (await jobsAt(sites.a)).some((j) => j.name === 'before crash'), MESH_TIMEOUT_MS, 'job from B at A')
  const dir = sites.b.dataDir
  await sites.b.kill('SIGKILL')
  await print(sites.a, 'while b was down')
  sites.b = await startSite({ dataDir: dir, args: ['--site', 'site-b'] })
  dirs.push(dir) // the restarted process no longer owns the folder it was started with
  await until(async () => (await jobsAt(sites.b)).some((j) => j.name === 'while b was down'), MESH_TIMEOUT_MS, 'B caught up')
  assert.ok((await jobsAt(sites.b)).some((j) => j.name === 'before crash'), 'B lost its own job')
  await sameJobs(sites.a, sites.b, sites.c)
})

test('a partition between two groups heals to identical documents', async () => {
  const groupA = [sites.a]
  const groupB = [sites.b, sites.c, central, terminal, ...extra]
  try {
    for (const n of groupA) await admin(n, '/api/mesh/blocked', { method: 'PUT', body: { peers: groupB.map((x) => x.peer) } })
    for (const n of groupB) await admin(n, '/api/mesh/blocked', { method: 'PUT', body: { peers: groupA.map((x) => x.peer) } })
    await until(async () => !(await connectedTo(central, sites.a.peer)) && !(await connectedTo(sites.b, sites.a.peer)), MESH_TIMEOUT_MS, 'partitioned')
    await print(sites.a, 'left side')
    await print(sites.c, 'right side')
    await until(async () => (await jobsAt(sites.b)).some((j) => j.name === 'right side'), MESH_TIMEOUT_MS, 'C→B inside the group')
    assert.not.ok((await jobsAt(sites.b)).some((j) => j.name === 'left side'), 'a job crossed the partition')
  } finally {
    for (const n of [...groupA, ...groupB]) await admin(n, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })
  }
  await sameJobs(sites.a, sites.b, sites.c)
  await until(async () => {
    const status = await mesh(sites.a)
    return status.documents.length > 0 && status.documents.every((d) => Object.values(d.peers).every((s) => s === 'in-sync'))
  }, MESH_TIMEOUT_MS, 'every document in sync at A')
})

test('in a line A–B–C with no A–C link, A\'s job reaches C through B', async () => {
  // A and C refuse each other and every other peer but B; B stays linked to all
  const others = [central.peer, terminal.peer, ...extra.map((e) => e.peer)]
  try {
    await admin(sites.a, '/api/mesh/blocked', { method: 'PUT', body: { peers: [sites.c.peer, ...others] } })
    await admin(sites.c, '/api/mesh/blocked', { method: 'PUT', body: { peers: [sites.a.peer, ...others] } })
    await until(async () => await connectedTo(sites.a, sites.b.peer) && await connectedTo(sites.c, sites.b.peer), MESH_TIMEOUT_MS, 'A–B and B–C links (peer exchange)')
    assert.not.ok(await connectedTo(sites.a, sites.c.peer))
    await print(sites.a, 'along the line')
    await until(async () => (await jobsAt(sites.c)).some((j) => j.name === 'along the line'), MESH_TIMEOUT_MS, 'job relayed to C')
    assert.not.ok(await connectedTo(sites.c, sites.a.peer))
  } finally {
    await admin(sites.a, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })
    await admin(sites.c, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })
  }
})

test('a standalone site that joins later keeps its jobs and accounting, and they reach the mesh', async () => {
  const dir = await tempDir()
  dirs.push(dir)
  let lone = await startSite({ dataDir: dir, args: ['--site', 'site-lone'] })
  const ippId = await print(lone, 'printed while alone')
  const job = (await jobsAt(lone)).find((j) => j.ippId === ippId) as Job
  await admin(lone, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} })
  await until(async () => (await jobsAt(lone)).some((j) => j.id === job.id && j.state === 'printed'), MESH_TIMEOUT_MS, 'printed alone')
  await lone.stop()
  lone = await startSite({ dataDir: dir, args: ['--site', 'site-lone', '--join', await joinString('site', 'site-lone')] })
  extra.push(lone)
  assert.ok((await jobsAt(lone)).some((j) => j.id === job.id && j.state === 'printed'), 'the site lost its job when joining')
  await until(async () => (await jobsAt(sites.a)).some((j) => j.id === job.id && j.state === 'printed'), MESH_TIMEOUT_MS, 'its job at site A')
  await until(async () => (await admin<{ records: Array<{ jobId: string }> }>(sites.a, '/api/usage/records')).records.some((r) => r.jobId === job.id), MESH_TIMEOUT_MS, 'its accounting at site A')
})

test('a peer with the network key but no certificate is refused', async () => {
  const dir = await tempDir()
  dirs.push(dir)
  // it holds the mesh's network key (--network-key) and knows central, but central never certified it
  await writeFile(join(dir, 'mesh.json'), JSON.stringify({ authority: central.peer, bootstrap: central.listen }))
  const intruder = await startSite({ dataDir: dir, args: ['--site', 'intruder', '--network-key', join(central.dataDir, 'network.key')] })
  extra.push(intruder)
  await until(() => central.logs().some((l) => l.includes(intruder.peer) && l.includes('refused at admission')), MESH_TIMEOUT_MS, 'refusal logged')
  assert.not.ok(await connectedTo(central, intruder.peer))
  await print(intruder, 'intruder job')
  await print(sites.a, 'after intruder')
  await until(async () => (await jobsAt(sites.b)).some((j) => j.name === 'after intruder'), MESH_TIMEOUT_MS, 'mesh still working')
  assert.not.ok((await jobsAt(sites.b)).some((j) => j.name === 'intruder job'))
})

test('a peer with the wrong network key cannot complete a handshake', async () => {
  const stranger = await startSite({ args: ['--site', 'stranger', '--bootstrap', central.listen[0], '--log-level', 'debug'] })
  extra.push(stranger)
  await until(() => stranger.logs().some((l) => l.includes('dial to discovered peer failed')), MESH_TIMEOUT_MS, 'failed dial logged')
  assert.not.ok((await mesh(central)).peers.some((p) => p.peer === stranger.peer))
})

test('a revoked site is cut off everywhere and its later jobs do not spread', async () => {
  await admin(central, `/api/mesh/peers/${sites.c.peer}/revoke`, { method: 'POST', body: { reason: 'stolen server' } })
  for (const n of [central, sites.a, sites.b]) {
    await until(async () => !(await connectedTo(n, sites.c.peer)), MESH_TIMEOUT_MS, `C cut off from ${n.peer}`)
  }
  await print(sites.c, 'from a revoked site')
  await print(sites.a, 'marker after revocation')
  await until(async () => (await jobsAt(sites.b)).some((j) => j.name === 'marker after revocation'), MESH_TIMEOUT_MS, 'marker at B')
  assert.not.ok((await jobsAt(sites.b)).some((j) => j.name === 'from a revoked site'))
  assert.ok((await mesh(sites.a)).peers.find((p) => p.peer === sites.c.peer)?.revoked)
})


test.run()
