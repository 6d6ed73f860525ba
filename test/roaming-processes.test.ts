// Job roaming with real processes: three `printmesh site` processes over libp2p/TCP, each
// releasing to its own ippeveprinter, jobs sent with CUPS' `lp`. Central enrolls the sites
// and hands them the user directory, then is stopped for every roaming test: roaming
// depends only on the two sites involved.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'

const run = promisify(execFile)
/** Replication and roaming steps in this file finish within this (anti-entropy runs every second). */
const ROAMING_TIMEOUT_MS = 30_000
/** The holder restarted mid-transfer: reconnecting (auto-dial backoff) and resuming take longer. */
const RESUME_TIMEOUT_MS = 90_000
const NAMES = ['a', 'b', 'c'] as const
type Name = typeof NAMES[number]

let central: SiteProcess | undefined
let centralDir = ''
let docs = ''
const sites = {} as Record<Name, SiteProcess>
const printers = {} as Record<Name, IppEvePrinter>
/** Data folders of killed and restarted sites (the harness removes only folders of first starts). */
const restartedDirs: string[] = []
const hostnameOf = (n: Name): string => `site-${n}.branch.test`

interface Job { id: string, name: string, state: string, owner: string, printer?: string, source?: { site: string, hostname: string }, prefetched?: boolean, printedBy?: { site: string } }
interface Session { cookie: string, csrf: string }

async function call<T> (node: SiteProcess, path: string, init: { method?: string, body?: unknown, session?: Session } = {}): Promise<{ status: number, body: T }> {
  const headers: Record<string, string> = init.session !== undefined
    ? { cookie: init.session.cookie, 'x-csrf-token': init.session.csrf }
    : { authorization: `Bearer ${node.adminToken}` }
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(node.httpUrl + path, { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) })
  return { status: res.status, body: await res.json() as T }
}

async function ok<T> (node: SiteProcess, path: string, init: { method?: string, body?: unknown, session?: Session } = {}): Promise<T> {
  const { status, body } = await call<T>(node, path, init)
  if (status < 200 || status > 299) throw new Error(`${init.method ?? 'GET'} ${path}: ${status} ${JSON.stringify(body)}`)
  return body
}

async function login (node: SiteProcess, username: string, pin: string): Promise<Session | undefined> {
  const res = await fetch(`${node.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  if (res.status !== 200) return undefined
  const { csrfToken } = await res.json() as { csrfToken: string }
  return { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0], csrf: csrfToken }
}

const myJobs = async (node: SiteProcess, session: Session): Promise<{ jobs: Job[], remote: Job[] }> => await ok(node, '/api/jobs?scope=mine', { session })
const allJobs = async (node: SiteProcess): Promise<Job[]> => (await ok<{ jobs: Job[] }>(node, '/api/jobs?scope=all')).jobs

async function lp (site: SiteProcess, file: string, title: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${site.ippPort}`, '-d', 'print', '-U', 'alice', '-t', title, file], { timeout: 30_000 })
}

async function heldAt (site: SiteProcess, title: string): Promise<Job> {
  let found: Job | undefined
  await until(async () => {
    found = (await allJobs(site)).find((j) => j.name === title && j.state === 'held')
    return found !== undefined
  }, ROAMING_TIMEOUT_MS, `${title} held`)
  return found as Job
}

async function setRoaming (n: Name, mode: 'shared' | 'separate'): Promise<void> {
  await ok(sites[n], '/api/roaming', { method: 'PUT', body: { partners: NAMES.filter((m) => m !== n).map((m) => `site-${m}`), mode } })
}

const printed = async (n: Name): Promise<Buffer[]> => await Promise.all((await printers[n].jobFiles()).map(async (f) => await readFile(f)))

test.before(async () => { try { await setUp() } catch (err) { console.error("roaming test set-up failed:", err); throw err } })
async function setUp (): Promise<void> {
  docs = await tempDir('printmesh-roaming-docs-')
  centralDir = await tempDir('printmesh-roaming-central-')
  const csv = join(docs, 'users.csv')
  await writeFile(csv, 'alice,Alice Liddell,1234\nbob,Bob,5678\n')
  await run(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'users', 'import', csv, '--data', centralDir], { cwd: new URL('..', import.meta.url).pathname })
  central = await startCentral({ dataDir: centralDir })
  for (const n of NAMES) {
    printers[n] = await startIppEvePrinter({ name: `roaming ${n}` })
    const join = (await ok<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: `site-${n}` } })).joinString
    sites[n] = await startSite({ printers: [`mfp=${printers[n].uri}`], args: ['--site', `site-${n}`, '--hostname', hostnameOf(n), '--join', join, '--roaming-rate', '2'] })
  }
  // before central goes: the directory reached every site and the sites know each other directly
  for (const n of NAMES) {
    await until(async () => await login(sites[n], 'alice', '1234') !== undefined, ROAMING_TIMEOUT_MS, `directory at site-${n}`)
    await until(async () => {
      const status = await ok<{ peers: Array<{ peer: string, connected: boolean }> }>(sites[n], '/api/mesh')
      return NAMES.filter((m) => m !== n).every((m) => status.peers.some((p) => p.peer === sites[m].peer && p.connected))
    }, ROAMING_TIMEOUT_MS, `site-${n} connected to the other sites`)
  }
  await central.stop()
  central = undefined
}

test.after(async () => {
  await central?.stop()
  for (const n of NAMES) { await sites[n]?.stop(); await printers[n]?.stop() }
  await rm(docs, { recursive: true, force: true })
  await rm(centralDir, { recursive: true, force: true })
  for (const d of restartedDirs) await rm(d, { recursive: true, force: true })
})

test('with central stopped, roaming settings are exchanged and both sides must name each other', async () => {
  await setRoaming('a', 'separate')
  const half = await ok<{ partners: Array<{ site: string, mutual: boolean }> }>(sites.a, '/api/roaming')
  assert.equal(half.partners.map((p) => [p.site, p.mutual]), [['site-b', false], ['site-c', false]])
  const bad = await call<{ error: string }>(sites.a, '/api/roaming', { method: 'PUT', body: { partners: ['no/slash'], mode: 'separate' } })
  assert.is(bad.status, 400)
  assert.match(bad.body.error, /not a site id/)
  await setRoaming('b', 'separate')
  await setRoaming('c', 'shared')
  await until(async () => {
    const view = await ok<{ partners: Array<{ site: string, hostname?: string, mutual: boolean }> }>(sites.a, '/api/roaming')
    return view.partners.every((p) => p.mutual && p.hostname === hostnameOf(p.site.slice(5) as Name))
  }, ROAMING_TIMEOUT_MS, 'partners mutual, with host names, at site-a')
})

test('lp at A: listed at B (separate) and C (shared, prefetched) with A\'s host name; released at B byte for byte, charged once at B', async () => {
  const pdf = await makePdf(docs, { pages: 2, colorPages: [1] })
  await lp(sites.a, pdf, 'roaming report')
  const job = await heldAt(sites.a, 'roaming report')
  const aliceAtB = await login(sites.b, 'alice', '1234') as Session
  const aliceAtC = await login(sites.c, 'alice', '1234') as Session
  await until(async () => (await myJobs(sites.b, aliceAtB)).remote.some((j) => j.id === job.id), ROAMING_TIMEOUT_MS, 'listed apart at B')
  const atB = await myJobs(sites.b, aliceAtB)
  assert.not.ok(atB.jobs.some((j) => j.id === job.id), 'separate mode: not in the local list')
  assert.is(atB.remote.find((j) => j.id === job.id)?.source?.hostname, hostnameOf('a'))
  await until(async () => (await myJobs(sites.c, aliceAtC)).jobs.find((j) => j.id === job.id)?.prefetched === true, ROAMING_TIMEOUT_MS, 'prefetched into C\'s shared list')
  assert.is((await myJobs(sites.c, aliceAtC)).jobs.find((j) => j.id === job.id)?.source?.hostname, hostnameOf('a'))
  const bob = await login(sites.b, 'bob', '5678') as Session
  assert.not.ok((await myJobs(sites.b, bob)).remote.some((j) => j.id === job.id), 'bob does not see alice\'s job')
  assert.is((await call(sites.b, `/api/jobs/${job.id}/release`, { method: 'POST', body: {}, session: bob })).status, 403)

  await ok(sites.b, `/api/jobs/${job.id}/release`, { method: 'POST', body: {}, session: aliceAtB })
  await until(async () => (await printers.b.jobFiles()).length === 1, ROAMING_TIMEOUT_MS, 'printed at B\'s printer')
  assert.ok((await printed('b'))[0].equals(await readFile(pdf)), 'byte-identical output at B')
  await until(async () => (await allJobs(sites.a)).find((j) => j.id === job.id)?.state === 'printed', ROAMING_TIMEOUT_MS, 'printed shows at A')
  assert.is((await allJobs(sites.a)).find((j) => j.id === job.id)?.printedBy?.site, 'site-b')
  const records = (await ok<{ records: Array<{ jobId: string, site: string, user: string, pages: number }> }>(sites.b, '/api/usage/records')).records.filter((r) => r.jobId === job.id)
  assert.equal(records.map((r) => [r.site, r.user, r.pages]), [['site-b', 'alice', 2]])
  assert.equal(await printers.a.jobFiles(), [])
  assert.equal(await printers.c.jobFiles(), [])
  // C drops its prefetched copy once the job is printed
  await until(async () => (await myJobs(sites.c, aliceAtC)).jobs.find((j) => j.id === job.id)?.prefetched === false, ROAMING_TIMEOUT_MS, 'copy dropped at C')
})

test('concurrent release of one job at B and C prints it exactly once', async () => {
  const pdf = await makePdf(docs, { pages: 1, colorPages: [] })
  await lp(sites.a, pdf, 'contested')
  const job = await heldAt(sites.a, 'contested')
  await until(async () => (await allJobs(sites.b)).some((j) => j.id === job.id) && (await allJobs(sites.c)).some((j) => j.id === job.id), ROAMING_TIMEOUT_MS, 'replicated to B and C')
  const before = (await printers.b.jobFiles()).length + (await printers.c.jobFiles()).length
  const results = await Promise.all([
    call(sites.b, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} }),
    call(sites.c, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} })
  ])
  assert.equal(results.map((r) => r.status).sort(), [200, 409], 'one release granted, one refused')
  await until(async () => (await allJobs(sites.a)).find((j) => j.id === job.id)?.state === 'printed', ROAMING_TIMEOUT_MS, 'printed')
  const after = (await printers.b.jobFiles()).length + (await printers.c.jobFiles()).length
  assert.is(after - before, 1, 'exactly one print')
})

test('holder killed mid-transfer: the transfer resumes after its restart and prints the whole document once', async () => {
  // 6 MB at A's --roaming-rate of 2 MB/s: three seconds on the wire, time to kill A halfway
  const text = join(docs, 'big.txt')
  await writeFile(text, Array.from({ length: 120_000 }, (_, i) => `line ${i} of a long roaming document.......`).join('\n'))
  await lp(sites.a, text, 'big one')
  const job = await heldAt(sites.a, 'big one')
  await until(async () => (await allJobs(sites.b)).some((j) => j.id === job.id), ROAMING_TIMEOUT_MS, 'replicated to B')
  const before = (await printers.b.jobFiles()).length
  await ok(sites.b, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} })
  const partialAt = async (): Promise<number> => {
    const dir = join(sites.b.dataDir, 'roaming')
    for (const sub of await readdir(dir)) {
      for (const f of await readdir(join(dir, sub)).catch(() => [])) if (f.endsWith('.partial')) return (await stat(join(dir, sub, f))).size
    }
    return 0
  }
  await until(async () => await partialAt() > 0, ROAMING_TIMEOUT_MS, 'transfer under way')
  const port = sites.a.listen[0].split('/tcp/')[1].split('/')[0]
  await sites.a.kill('SIGKILL')
  restartedDirs.push(sites.a.dataDir)
  const partial = await partialAt()
  assert.ok(partial < (await stat(text)).size, 'killed before the transfer finished')
  assert.is((await printers.b.jobFiles()).length, before, 'nothing printed from a partial document')
  sites.a = await startSite({ dataDir: sites.a.dataDir, printers: [`mfp=${printers.a.uri}`], args: ['--site', 'site-a', '--hostname', hostnameOf('a'), '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--roaming-rate', '2'] })
  // ippeveprinter writes a job's file as the document arrives and names it by its job id: wait
  // for the whole document by content (a file still being written is shorter)
  const whole = await readFile(text)
  await until(async () => (await printed('b')).some((b) => b.equals(whole)), RESUME_TIMEOUT_MS, 'printed at B after the holder came back')
  assert.is((await printers.b.jobFiles()).length, before + 1, 'one print at B')
  assert.is((await printed('b')).filter((b) => b.equals(whole)).length, 1, 'the whole document, byte for byte, once')
  await until(async () => (await allJobs(sites.a)).find((j) => j.id === job.id)?.state === 'printed', ROAMING_TIMEOUT_MS, 'printed at A')
})

test.run()
