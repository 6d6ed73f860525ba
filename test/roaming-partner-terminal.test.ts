/**
 * A terminal's Pull job released at a PARTNER site (issue 13 item 2, with roaming): the
 * terminal reads every site's config, so it sees the partnership and grants; it cannot read
 * the partner's jobs document, so the releasing site reports the outcome over the release
 * protocol (op `settle`) and the terminal settles its job through the same transition as a
 * followed release record; a report sent again changes nothing, a forged one is refused, a
 * grant b got but never recorded is given back at once. In process: central, sites a and b
 * (roaming partners), and terminal-a1 (site a) holding the job; b prints it.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { TestMesh, type MeshPeer, type PeerServices } from '../simulations/mesh-harness.ts'
import { releaseServices } from '../node/release.ts'
import { inProcessServices } from '../node/roles.ts'
import { until } from '../simulations/wait.ts'
import { Spool } from '../devices/spool.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import type { OutputDevice, PrintRequest, PrintProgress } from '../devices/output/types.ts'
import type { JobRecord, JobView } from '../devices/jobs/types.ts'
import { MemoryRoamingHub } from '../simulations/roaming-link.ts'
import { acctDoc, jobsDoc, periodOf, siteConfigDoc, siteId, type SiteId } from '../crdt/names.ts'
import { listUsage, type UsageRecord } from '../crdt/accounting.ts'
import { getRelease } from '../crdt/jobs.ts'
import { parseReleaseRequest } from '../node/roaming.ts'

const DOCUMENT = Buffer.from('Travel expenses\f'.repeat(2))
const SHA = createHash('sha256').update(DOCUMENT).digest('hex')

/** A printer that records what it printed; `gate` holds a print until opened. */
class RecordingPrinter implements OutputDevice {
  readonly uri = 'test://printer'
  readonly printed: Array<{ job: string, sha256: string }> = []
  gate?: Promise<void>
  async print (req: PrintRequest, _progress: PrintProgress, signal: AbortSignal): Promise<{ printerJobId: number }> {
    if (this.gate !== undefined) {
      await Promise.race([this.gate, new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))])
    }
    this.printed.push({ job: req.jobName, sha256: createHash('sha256').update(await readFile(req.documentPath)).digest('hex') })
    return { printerJobId: this.printed.length }
  }

  async probe (): Promise<{ ok: boolean, message: string }> { return { ok: true, message: '' } }
}

interface Node { name: string, site: SiteId, peer: MeshPeer, jobs: JobService, roaming: RoamingService, printer: RecordingPrinter }

let mesh: TestMesh
let hub: MemoryRoamingHub
const down = new Set<string>()
const now = (): number => Date.now()

/** A site's server, or a terminal (its Pull queue: held, not pinned, its jobs marked with its name), as node/release.ts builds them. */
const services = (site: SiteId, printer: RecordingPrinter, terminal?: string): PeerServices => async ({ id, dir }) => ({
  services: inProcessServices(terminal === undefined ? 'site' : 'terminal'),
  registry: releaseServices({
    site,
    ...(terminal === undefined ? { hostname: `${site}.branch.example` } : {}),
    queues: [{ name: terminal === undefined ? 'print' : 'pull', hold: true, defaultPrinter: 'mfp', info: '', location: '' }],
    ...(terminal !== undefined ? { jobs: { deviceName: terminal } } : {}),
    roaming: { grantTtlMs: 60_000 }
  }),
  components: {
    clock: { now },
    spool: await Spool.open(join(dir, 'spool')),
    copies: await Spool.open(join(dir, 'roaming')),
    printers: new Map([['mfp', printer]]),
    roamingLink: hub.linkFor(id)
  }
})

async function start (name: string, site: string, terminal = false): Promise<Node> {
  const printer = new RecordingPrinter()
  const peer = await mesh.addPeer(name, terminal ? 'terminal' : 'site', site, 'certified', services(siteId(site), printer, terminal ? name : undefined))
  const roaming = peer.services.roaming as RoamingService
  hub.register(peer.id, roaming)
  return { name, site: siteId(site), peer, jobs: peer.services.jobs as JobService, roaming, printer }
}

/** Central, sites a and b roaming with each other, terminal-a1 of site a (linked to its site's server only). */
async function partners (): Promise<{ a: Node, b: Node, t: Node }> {
  const central = await mesh.addCentral()
  const a = await start('site-a', 'a')
  const b = await start('site-b', 'b')
  const t = await start('terminal-a1', 'a', true)
  for (const s of [a, b]) await mesh.connect(central, s.peer)
  await mesh.connect(a.peer, b.peer)
  await mesh.connect(t.peer, a.peer)
  for (const [s, o] of [[a, b], [b, a]] as const) await s.roaming.setRoaming({ partners: [o.site], mode: 'separate' })
  await until(() => a.roaming.roamsWith(b.site) && b.roaming.roamsWith(a.site) && t.roaming.roamsWith(b.site), 10_000, 'partnership seen by both sites and the terminal')
  return { a, b, t }
}

async function pullJob (t: Node, owner = 'alice', name = 'expenses'): Promise<JobRecord> {
  const job = await t.jobs.createJob({ queue: 'pull', owner, name, copies: 1, sides: 'one-sided' })
  return await t.jobs.addDocument(job.ippId, { format: 'text/plain', data: Readable.from([DOCUMENT]) })
}

const listedAt = (s: Node, id: string): JobView | undefined => s.roaming.listPartnerJobs('alice').find((j) => j.id === id)
const usageAt = (s: Node): UsageRecord[] => { const d = s.peer.store.get(acctDoc(s.peer.id, periodOf(now()))); return d === undefined ? [] : listUsage(d) }
const releaseAt = (s: Node, jobId: string): ReturnType<typeof getRelease> => {
  const d = s.peer.store.get(jobsDoc(s.peer.id, periodOf(now())))
  return d === undefined ? undefined : getRelease(d, jobId)
}

test.before.each(() => {
  mesh = new TestMesh()
  down.clear()
  hub = new MemoryRoamingHub((from, to) => !down.has(from) && !down.has(to) && !mesh.network.partitioned(from, to))
})
test.after.each(async () => { await mesh.teardown() })

test('a terminal reads every site\'s config, not the partner\'s jobs; its Pull job released at partner site b is granted, printed at b once, printed at the terminal, charged once at b', async () => {
  const { b, t } = await partners()
  assert.ok(t.peer.store.get(siteConfigDoc(b.site)) !== undefined, 'the terminal has b\'s config')
  assert.ok(t.peer.membership.canRead(t.peer.id, siteConfigDoc(b.site)))
  assert.not.ok(t.peer.membership.canRead(t.peer.id, jobsDoc(b.peer.id, periodOf(now()))), 'but not b\'s jobs')
  const job = await pullJob(t)
  await until(() => listedAt(b, job.id)?.state === 'held', 10_000, 'the terminal\'s job listed at b')
  assert.is(listedAt(b, job.id)?.source?.hostname, 'terminal-a1', 'marked with the terminal\'s name')
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => t.jobs.getById(job.id)?.state === 'printed', 10_000, 'printed at the holder')
  assert.is(t.jobs.getById(job.id)?.printedBy?.site, 'b')
  assert.is(t.jobs.getById(job.id)?.printedBy?.peer, b.peer.id)
  assert.equal(b.printer.printed, [{ job: 'expenses', sha256: SHA }], 'printed once at b')
  assert.equal(t.printer.printed, [])
  assert.equal(usageAt(b).map((u) => [u.user, u.jobId, u.site, u.pages]), [['alice', job.id, 'b', 2]], 'charged once, at b')
  assert.equal(usageAt(t), [])
  assert.is(t.peer.store.get(jobsDoc(b.peer.id, periodOf(now()))), undefined, 'b\'s release record never reached the terminal: the report settled it')
})

test('the holder unreachable when b finishes: the outcome is reported when it is back; a report sent again changes nothing', async () => {
  const { b, t } = await partners()
  const job = await pullJob(t)
  await until(() => listedAt(b, job.id)?.state === 'held', 10_000, 'listed at b')
  let open!: () => void
  b.printer.gate = new Promise<void>((resolve) => { open = resolve })
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => t.jobs.getById(job.id)?.state === 'printing', 10_000, 'committed: printing at the holder')
  const grantId = t.jobs.getById(job.id)?.grant?.id ?? ''
  // the terminal goes off the release protocol while b's printer finishes
  down.add(t.peer.id)
  open()
  await until(() => releaseAt(b, job.id)?.state === 'printed', 10_000, 'printed at b')
  await b.roaming.tick()
  assert.is(t.jobs.getById(job.id)?.state, 'printing', 'the holder has not heard yet')
  down.delete(t.peer.id)
  await until(async () => { await b.roaming.tick(); return t.jobs.getById(job.id)?.state === 'printed' }, 10_000, 'settled once the holder is back')
  assert.is(t.jobs.getById(job.id)?.printedBy?.site, 'b')
  const settled = t.jobs.getById(job.id)
  // the same report again, and a contradicting one under the same grant: nothing changes
  const again = await t.roaming.settle(b.peer.id, { jobId: job.id, grantId, state: 'printed' })
  assert.equal(again, { ok: true, state: 'printed' })
  const late = await t.roaming.settle(b.peer.id, { jobId: job.id, grantId, state: 'returned', reason: 'release-returned', message: 'late' })
  assert.equal(late, { ok: true, state: 'printed' })
  assert.equal(t.jobs.getById(job.id), settled, 'the record is as the first report left it')
  assert.equal(b.printer.printed.length, 1)
  assert.equal(usageAt(b).map((u) => u.jobId), [job.id], 'charged once')
})

test('a forged report is refused: no grant, a grant to another peer, an unknown job; the job stays as it was', async () => {
  const { a, b, t } = await partners()
  const held = await pullJob(t, 'alice', 'held')
  const granted = await pullJob(t, 'alice', 'granted')
  await until(() => listedAt(b, held.id) !== undefined && listedAt(b, granted.id) !== undefined, 10_000, 'both listed at b')
  // no grant at all: b says it printed a held job
  const noGrant = await t.roaming.settle(b.peer.id, { jobId: held.id, grantId: 'made-up', state: 'printed' })
  assert.is(noGrant.ok, false)
  if (!noGrant.ok) assert.is(noGrant.error, 'not-authorized')
  assert.is(t.jobs.getById(held.id)?.state, 'held')
  // granted to b: site a's server (which reads the grant id in the terminal's document) reports for it
  b.printer.gate = new Promise<void>(() => {})
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, granted.id)
  await until(() => t.jobs.getById(granted.id)?.state === 'printing', 10_000, 'printing under b\'s grant')
  const grantId = t.jobs.getById(granted.id)?.grant?.id ?? ''
  const otherPeer = await t.roaming.settle(a.peer.id, { jobId: granted.id, grantId, state: 'returned' })
  assert.is(otherPeer.ok, false)
  if (!otherPeer.ok) assert.is(otherPeer.error, 'not-authorized')
  const wrongGrant = await t.roaming.settle(b.peer.id, { jobId: granted.id, grantId: `${grantId}x`, state: 'printed' })
  assert.is(wrongGrant.ok, false)
  assert.is(t.jobs.getById(granted.id)?.state, 'printing', 'still b\'s to settle')
  const unknown = await t.roaming.settle(b.peer.id, { jobId: 'no-such-job', grantId, state: 'printed' })
  assert.equal(unknown.ok ? undefined : unknown.error, 'not-found')
})

test('a grant b got but never recorded (b stopped in between) is given back at once, not left releasing until it expires', async () => {
  const { b, t } = await partners()
  const job = await pullJob(t)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  // what a b that crashed right after the grant leaves behind: the terminal's grant, no release record at b
  const reply = await hub.linkFor(b.peer.id).requestGrant(t.peer.id, { jobId: job.id, user: 'alice', printer: 'mfp' }, AbortSignal.timeout(10_000))
  assert.ok(reply.ok)
  assert.is(t.jobs.getById(job.id)?.state, 'releasing')
  await until(async () => { await b.roaming.tick(); return t.jobs.getById(job.id)?.state === 'held' }, 10_000, 'given back to the terminal')
  assert.is(t.jobs.getById(job.id)?.grant, undefined)
  assert.is(releaseAt(b, job.id)?.state, 'returned')
  assert.equal(b.printer.printed, [])
  // and it can be released again, once
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => t.jobs.getById(job.id)?.state === 'printed', 10_000, 'released again and printed')
  assert.equal(b.printer.printed.length, 1)
  assert.equal(usageAt(b).map((u) => u.jobId), [job.id])
})

test('the release protocol carries settle: jobId, grantId and a final state, nothing else', () => {
  assert.equal(parseReleaseRequest({ op: 'settle', jobId: 'j', grantId: 'g', state: 'printed', extra: 1 }), { op: 'settle', jobId: 'j', grantId: 'g', state: 'printed' })
  assert.equal(parseReleaseRequest({ op: 'settle', jobId: 'j', grantId: 'g', state: 'failed', reason: 'media-jam', message: 'paper jam' }), { op: 'settle', jobId: 'j', grantId: 'g', state: 'failed', reason: 'media-jam', message: 'paper jam' })
  assert.type(parseReleaseRequest({ op: 'settle', jobId: 'j', grantId: 'g', state: 'printing' }), 'string')
  assert.type(parseReleaseRequest({ op: 'settle', jobId: 'j', state: 'printed' }), 'string')
  assert.type(parseReleaseRequest({ op: 'settle', jobId: 'j', grantId: 'g', state: 'printed', message: 'x'.repeat(3000) }), 'string')
})

test.run()
