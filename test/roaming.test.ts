/**
 * Job roaming between in-process sites over the in-memory transport and roaming link:
 * settings, listing in both modes, release at a partner site (grant, fetch, commit, print,
 * charge, state following the job), at-most-once under concurrency, grant expiry, crash
 * recovery, and offline release with duplicate detection. The same flows over libp2p with
 * real processes and printers are in roaming-processes.test.ts.
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
import { rejects } from './helpers/assert.ts'
import { Spool } from '../devices/spool.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import { PrinterError, type OutputDevice, type PrintRequest, type PrintProgress, type PrinterJobOutcome } from '../devices/output/types.ts'
import { NotPartnerError, NotAuthorizedError, InvalidJobStateError, HolderUnreachableError, JobNotFoundError, type JobRecord, type JobView } from '../devices/jobs/types.ts'
import { MemoryRoamingHub } from '../simulations/roaming-link.ts'
import { acctDoc, periodOf, jobsDoc } from '../crdt/names.ts'
import { listUsage, totalUsage, type UsageRecord } from '../crdt/accounting.ts'
import { getRelease } from '../crdt/jobs.ts'
import { InvalidSiteSettingsError } from '../crdt/site-config.ts'
import { adminCapabilities } from '../crdt/capability.ts'
import { revoke } from '../crdt/license.ts'
import { licenseDoc, siteId, type SiteId } from '../crdt/names.ts'
import { parseReleaseRequest } from '../node/roaming.ts'
import { verifyPeerSignature } from '../transports/identity.ts'

const DOCUMENT = Buffer.from('Quarterly report\f'.repeat(3))
const SHA = createHash('sha256').update(DOCUMENT).digest('hex')

/** A printer that records what it printed (sha256 of the bytes), and can be told to fail. */
class RecordingPrinter implements OutputDevice {
  readonly uri = 'test://printer'
  readonly printed: Array<{ job: string, sha256: string }> = []
  failNext?: PrinterError
  /** When set, printing waits for this promise (to observe intermediate states). */
  gate?: Promise<void>
  async print (req: PrintRequest, _progress: PrintProgress, signal: AbortSignal): Promise<{ printerJobId: number }> {
    if (this.failNext !== undefined) { const e = this.failNext; this.failNext = undefined; throw e }
    if (this.gate !== undefined) {
      await Promise.race([this.gate, new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))])
    }
    this.printed.push({ job: req.jobName, sha256: createHash('sha256').update(await readFile(req.documentPath)).digest('hex') })
    return { printerJobId: this.printed.length }
  }

  async probe (): Promise<{ ok: boolean, message: string }> { return { ok: true, message: '' } }
}

/** A recording printer that counts how many submissions it has at once. */
class CountingPrinter extends RecordingPrinter {
  inFlight = 0
  maxInFlight = 0
  override async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<{ printerJobId: number }> {
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight)
    try {
      return await super.print(req, progress, signal)
    } finally {
      this.inFlight--
    }
  }
}

/** A printer that says it accepted each job (with its own job id) and answers what became of it, as IPP printers do. */
class AnsweringPrinter extends RecordingPrinter {
  /** What the printer says of each of its job ids (unset: still printing). */
  readonly answers = new Map<number, PrinterJobOutcome>()
  private nextId = 41
  override async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<{ printerJobId: number }> {
    const id = this.nextId++
    progress.accepted(id)
    await super.print(req, progress, signal)
    return { printerJobId: id }
  }

  async outcome (printerJobId: number): Promise<PrinterJobOutcome> {
    return this.answers.get(printerJobId) ?? { state: 'pending' }
  }

  async follow (printerJobId: number): Promise<PrinterJobOutcome> { return await this.outcome(printerJobId) }
}

interface RoamingSite { name: string, site: SiteId, peer: MeshPeer, jobs: JobService, roaming: RoamingService, printer: RecordingPrinter, stop: () => Promise<void> }

let mesh: TestMesh
let hub: MemoryRoamingHub
const down = new Set<string>()
let now = Date.now()
const clock = (): number => now

/** A site's release engine as the CLI builds it (node/release.ts), on the test's clock, printer and roaming hub. */
const siteServices = (site: SiteId, printer: RecordingPrinter): PeerServices => async ({ id, dir }) => ({
  services: inProcessServices('site'),
  registry: releaseServices({
    site,
    hostname: `${site}.branch.example`,
    queues: [{ name: 'print', hold: true, defaultPrinter: 'mfp', info: '', location: '' }, { name: 'here-only', hold: true, pinned: true, defaultPrinter: 'mfp', info: '', location: '' }],
    roaming: { grantTtlMs: 60_000 }
  }),
  components: {
    clock: { now: clock },
    spool: await Spool.open(join(dir, 'spool')),
    copies: await Spool.open(join(dir, 'roaming')),
    printers: new Map([['mfp', printer]]),
    roamingLink: hub.linkFor(id)
  }
})

/** Starts site `name` (or restarts `restart`, a stopped one, on its data) with the site's services. */
async function startSite (name: string, siteName: string, restart?: MeshPeer, printer = new RecordingPrinter()): Promise<RoamingSite> {
  const site = siteId(siteName)
  const p = restart !== undefined
    ? await mesh.restart(restart, 'site', site, siteServices(site, printer))
    : await mesh.addPeer(name, 'site', site, 'certified', siteServices(site, printer))
  const jobs = p.services.jobs as JobService
  const roaming = p.services.roaming as RoamingService
  hub.register(p.id, roaming)
  return {
    name, site, peer: p, jobs, roaming, printer,
    stop: async () => { hub.unregister(p.id); await p.stop() }
  }
}

async function printAt (s: RoamingSite, owner = 'alice', name = 'report'): Promise<JobRecord> {
  const job = await s.jobs.createJob({ queue: 'print', owner, name, copies: 1, sides: 'one-sided' })
  return await s.jobs.addDocument(job.ippId, { format: 'text/plain', data: Readable.from([DOCUMENT]) })
}

/** Usage records `s` holds in the accounting document of `writer` (default: its own). */
function usageAt (s: RoamingSite, writer = s): UsageRecord[] {
  const doc = s.peer.store.get(acctDoc(writer.peer.id, periodOf(now)))
  return doc === undefined ? [] : listUsage(doc)
}
const stateAt = (s: RoamingSite, id: string): string | undefined => s.jobs.getById(id)?.state
const listedAt = (s: RoamingSite, id: string, owner = 'alice'): JobView | undefined => s.roaming.listPartnerJobs(owner).find((j) => j.id === id)

async function threeSites (mode: 'shared' | 'separate' = 'separate'): Promise<[RoamingSite, RoamingSite, RoamingSite]> {
  const central = await mesh.addCentral()
  const sites = [await startSite('site-a', 'a'), await startSite('site-b', 'b'), await startSite('site-c', 'c')] as [RoamingSite, RoamingSite, RoamingSite]
  for (const s of sites) await mesh.connect(central, s.peer)
  for (const s of sites) for (const t of sites) if (s !== t && s.peer.id < t.peer.id) await mesh.connect(s.peer, t.peer)
  for (const s of sites) await s.roaming.setRoaming({ partners: sites.filter((t) => t !== s).map((t) => t.site), mode })
  await until(() => sites.every((s) => sites.every((t) => s === t || s.roaming.roamsWith(t.site))), 10_000, 'roaming settings replicated')
  return sites
}

/** Central, sites a and b (b printing on `printer`), connected and roaming with each other in separate mode. */
async function twoSites (printer: RecordingPrinter = new RecordingPrinter()): Promise<[RoamingSite, RoamingSite]> {
  const central = await mesh.addCentral()
  const a = await startSite('site-a', 'a')
  const b = await startSite('site-b', 'b', undefined, printer)
  for (const s of [a, b]) await mesh.connect(central, s.peer)
  await mesh.connect(a.peer, b.peer)
  for (const [s, t] of [[a, b], [b, a]] as const) await s.roaming.setRoaming({ partners: [t.site], mode: 'separate' })
  await until(() => a.roaming.roamsWith(b.site) && b.roaming.roamsWith(a.site), 10_000, 'roaming settings replicated')
  return [a, b]
}

/** Links `s` to every other peer again (a heal does not reconnect by itself). */
async function reconnect (s: RoamingSite): Promise<void> {
  for (const p of mesh.peers.values()) if (p !== s.peer && !mesh.network.linked(p.id, s.peer.id)) await mesh.connect(p, s.peer)
}

test.before.each(() => {
  mesh = new TestMesh()
  down.clear()
  hub = new MemoryRoamingHub((from, to) => !down.has(from) && !down.has(to) && !mesh.network.partitioned(from, to))
  now = Date.now()
})
test.after.each(async () => { await mesh.teardown() })

test('roaming settings are validated, and roaming needs both sites to name each other', async () => {
  const central = await mesh.addCentral()
  const a = await startSite('site-a', 'a')
  const b = await startSite('site-b', 'b')
  await mesh.connect(central, a.peer); await mesh.connect(central, b.peer); await mesh.connect(a.peer, b.peer)
  assert.match((await rejects(a.roaming.setRoaming({ partners: ['b/../x'], mode: 'shared' }), InvalidSiteSettingsError)).message, /not a site id/)
  assert.match((await rejects(a.roaming.setRoaming({ partners: ['b'], mode: 'everywhere' }), InvalidSiteSettingsError)).message, /mode must be/)
  await a.roaming.setRoaming({ partners: ['b', 'b', 'a'], mode: 'shared' })
  assert.equal(a.roaming.settings().roaming, { partners: ['b'], mode: 'shared' })
  const job = await printAt(a)
  await until(() => b.peer.store.get(jobsDoc(a.peer.id, periodOf(now))) !== undefined, 10_000, 'job replicated to b')
  assert.is(listedAt(b, job.id), undefined, 'b does not name a: a\'s jobs are not listed at b')
  await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), NotPartnerError)
  await b.roaming.setRoaming({ partners: ['a'], mode: 'separate' })
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b once both name each other')
  assert.is(listedAt(b, job.id)?.source?.hostname, 'a.branch.example')
})

test('a job printed at A is released at B: same bytes at B\'s printer, printed at A, charged once at B', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id)?.state === 'held', 10_000, 'held job listed at b')
  assert.is(listedAt(b, job.id)?.prefetched, false, 'separate mode fetches nothing ahead')
  assert.is(listedAt(b, job.id, 'bob'), undefined, 'bob does not see alice\'s job')
  assert.match((await rejects(b.roaming.releaseRemote({ user: 'bob', admin: false }, job.id), Error)).message, /another user/)
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'printed at the holder')
  assert.equal(b.printer.printed, [{ job: 'report', sha256: SHA }])
  assert.equal(a.printer.printed, [])
  assert.is(a.jobs.getById(job.id)?.printedBy?.site, 'b')
  const records = usageAt(b)
  assert.is(records.length, 1)
  assert.is(records[0].user, 'alice')
  assert.is(records[0].site, 'b')
  assert.is(usageAt(a).length, 0, 'the holder charges nothing')
  await until(() => listedAt(b, job.id)?.state === 'printed', 10_000, 'printed shown at b')
  await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), InvalidJobStateError)
})

test('a job of a pinned queue (a terminal\'s Hold mode) is released only at its holder: partners neither list it, nor get a grant or its document', async () => {
  const [a, b] = await threeSites('separate')
  const job = await a.jobs.createJob({ queue: 'here-only', owner: 'alice', name: 'private', copies: 1, sides: 'one-sided' })
  await a.jobs.addDocument(job.ippId, { format: 'text/plain', data: Readable.from([DOCUMENT]) })
  const shared = await printAt(a) // a job of an ordinary queue, to know when replication reached b
  await until(() => listedAt(b, shared.id)?.state === 'held', 10_000, 'the ordinary job listed at b')
  assert.ok(b.peer.store.get(jobsDoc(a.peer.id, periodOf(now))) !== undefined && listedAt(b, job.id) === undefined, 'b has a\'s jobs but does not list the pinned one')
  await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), JobNotFoundError)
  // asked directly, the holder refuses the grant and the document
  const reply = await hub.linkFor(b.peer.id).requestGrant(a.peer.id, { jobId: job.id, user: 'alice', printer: 'mfp' }, AbortSignal.timeout(5_000))
  assert.equal([reply.ok, reply.ok ? '' : reply.error], [false, 'not-authorized'])
  assert.is(a.roaming.mayFetch(b.peer.id, SHA), true, 'the same document of the ordinary job is fetchable')
  await a.jobs.cancel(shared.id, { user: 'alice', admin: false })
  assert.is(a.roaming.mayFetch(b.peer.id, SHA), false, 'the pinned job\'s document is not')
  assert.is(stateAt(a, job.id), 'held')
  await a.jobs.release(job.id, { user: 'alice', admin: false })
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'released at its holder')
  assert.equal(a.printer.printed, [{ job: 'private', sha256: SHA }])
})

test('concurrent releases of one job at B and C print it exactly once', async () => {
  const [a, b, c] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined && listedAt(c, job.id) !== undefined, 10_000, 'listed at b and c')
  const results = await Promise.allSettled([
    b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id),
    c.roaming.releaseRemote({ user: 'alice', admin: false }, job.id),
    a.jobs.release(job.id, { user: 'alice', admin: false })
  ])
  assert.is(results.filter((r) => r.status === 'fulfilled').length, 1, 'one release wins')
  for (const r of results) if (r.status === 'rejected') assert.instance(r.reason, InvalidJobStateError)
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'printed')
  assert.is(a.printer.printed.length + b.printer.printed.length + c.printer.printed.length, 1)
  const charged = [...usageAt(a), ...usageAt(b), ...usageAt(c)]
  assert.is(charged.length, 1)
})

test('a printer refusing the job returns it to the holder, who can release it again', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  b.printer.failNext = new PrinterError('printer is offline', 'printer-stopped', true)
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => stateAt(a, job.id) === 'held' && a.jobs.getById(job.id)?.grant === undefined && getReleaseAt(b, job.id)?.state === 'returned', 10_000, 'returned to held')
  assert.match(a.jobs.getById(job.id)?.message ?? '', /offline/)
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'printed on the second try')
  assert.is(b.printer.printed.length, 1)
  assert.is(usageAt(b).length, 1)
})

function getReleaseAt (s: RoamingSite, jobId: string): ReturnType<typeof getRelease> {
  const doc = s.peer.store.get(jobsDoc(s.peer.id, periodOf(now)))
  return doc === undefined ? undefined : getRelease(doc, jobId)
}

test('a partner\'s job and a local job released together at one printer take turns in its lane: one submission at a time, both printed and charged once', async () => {
  const printer = new CountingPrinter()
  const [a, b] = await twoSites(printer)
  const partners = await printAt(a, 'alice', 'from a')
  const local = await printAt(b, 'bob', 'at b')
  await until(() => listedAt(b, partners.id) !== undefined, 10_000, 'listed at b')
  let open!: () => void
  printer.gate = new Promise<void>((resolve) => { open = resolve })
  await b.jobs.release(local.id, { user: 'bob', admin: false })
  await until(() => printer.inFlight === 1, 10_000, 'the local job at the printer')
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, partners.id)
  await until(() => getReleaseAt(b, partners.id)?.state === 'printing', 10_000, 'the partner\'s job fetched and committed')
  open()
  await until(() => stateAt(b, local.id) === 'printed' && getReleaseAt(b, partners.id)?.state === 'printed', 10_000, 'both printed')
  assert.is(printer.maxInFlight, 1, 'the printer never had two submissions at once')
  assert.equal(printer.printed.map((p) => p.job).sort(), ['at b', 'from a'])
  assert.equal(usageAt(b).map((u) => u.user).sort(), ['alice', 'bob'])
  await a.stop()
  await b.stop()
})

test('a grant never committed expires and the job is held again', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  const grant = await a.roaming.grant(b.peer.id, { jobId: job.id, user: 'alice', printer: 'mfp' })
  assert.ok(grant.ok)
  assert.is(stateAt(a, job.id), 'releasing')
  assert.match((await rejects(a.jobs.release(job.id, { user: 'alice', admin: false }), InvalidJobStateError)).message, /releasing/)
  now += 61_000
  await a.jobs.sweep()
  assert.is(stateAt(a, job.id), 'held')
  assert.is(a.jobs.getById(job.id)?.reason, 'release-grant-expired')
  const late = await a.roaming.commit(b.peer.id, job.id, grant.ok ? grant.grantId : '')
  assert.is(late.ok, false, 'a commit after expiry is refused')
})

test('holder unreachable: separate mode refuses clearly; nothing is printed', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  down.add(a.peer.id)
  assert.match((await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), HolderUnreachableError)).message, /unreachable/)
  assert.equal(b.printer.printed, [])
  assert.is(stateAt(a, job.id), 'held')
})

test('deleting a partner\'s job at B asks its holder: only the owner may, and the deletion reaches every partner', async () => {
  const [a, b, c] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined && listedAt(c, job.id) !== undefined, 10_000, 'listed at b and c')
  await rejects(b.roaming.deleteRemote({ user: 'mallory', admin: false }, job.id), NotAuthorizedError)
  assert.is(stateAt(a, job.id), 'held')
  down.add(a.peer.id)
  await rejects(b.roaming.deleteRemote({ user: 'alice', admin: false }, job.id), HolderUnreachableError)
  assert.is(stateAt(a, job.id), 'held')
  down.delete(a.peer.id)
  await b.roaming.deleteRemote({ user: 'alice', admin: false }, job.id)
  assert.is(stateAt(a, job.id), 'deleted')
  await until(() => listedAt(c, job.id)?.state === 'deleted' && listedAt(b, job.id)?.state === 'deleted', 10_000, 'the deletion replicated to b and c')
  await rejects(c.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), InvalidJobStateError)
  assert.equal([...b.printer.printed, ...c.printer.printed], [])
})

test('shared mode prefetches; offline release prints the copy; a second print found on reconnect is reported and charged once', async () => {
  const [a, b] = await threeSites('shared')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id)?.prefetched === true, 10_000, 'prefetched at b')
  // a is cut off from everyone; alice releases at b and (meanwhile) at a
  mesh.network.partition([a.peer.id], [...mesh.peers.values()].map((p) => p.id).filter((id) => id !== a.peer.id))
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => getReleaseAt(b, job.id)?.state === 'printed', 10_000, 'printed offline at b')
  assert.equal(b.printer.printed, [{ job: 'report', sha256: SHA }])
  await a.jobs.release(job.id, { user: 'alice', admin: false })
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'printed at a too')
  mesh.network.heal()
  await reconnect(a)
  await until(() => (a.jobs.getById(job.id)?.duplicates ?? []).length === 1, 10_000, 'duplicate detected at the holder')
  assert.is(a.jobs.getById(job.id)?.duplicates?.[0].site, 'b')
  await until(() => usageAt(a, b).length === 1, 10_000, 'b\'s accounting replicated to a')
  const all = [...usageAt(a), ...usageAt(a, b)]
  assert.is(all.length, 2, 'both peers recorded the print')
  assert.is(totalUsage(all, (r) => r.user)[0].jobs, 1, 'reports count it once')
})

test('a site that holds another site\'s release record of a job does not print it offline too (issue 18)', async () => {
  const [a, b, c] = await threeSites('shared')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id)?.prefetched === true && listedAt(c, job.id)?.prefetched === true, 10_000, 'prefetched at b and c')
  // a is cut off; c prints it offline, and b learns of c's release record
  down.add(a.peer.id)
  mesh.network.partition([a.peer.id], [b.peer.id, c.peer.id, ...[...mesh.peers.values()].map((p) => p.id).filter((id) => id !== a.peer.id && id !== b.peer.id && id !== c.peer.id)])
  await c.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => getReleaseAt(c, job.id)?.state === 'printed', 10_000, 'printed offline at c')
  await until(() => { const doc = b.peer.store.get(jobsDoc(c.peer.id, periodOf(now))); return doc !== undefined && getRelease(doc, job.id)?.state === 'printed' }, 10_000, 'b holds c\'s release record')
  const refused = await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), InvalidJobStateError)
  assert.match(refused.message, /printed at site c/)
  assert.equal(b.printer.printed, [], 'printed once, at c only')
})

test('a site that printed a job offline does not print it offline again while its holder is still cut off (issue 18)', async () => {
  const [a, b] = await threeSites('shared')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id)?.prefetched === true, 10_000, 'prefetched at b')
  down.add(a.peer.id)
  mesh.network.partition([a.peer.id], [...mesh.peers.values()].map((p) => p.id).filter((id) => id !== a.peer.id))
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => getReleaseAt(b, job.id)?.state === 'printed', 10_000, 'printed offline at b')
  const refused = await rejects(b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id), InvalidJobStateError)
  assert.match(refused.message, /already printed here/)
  assert.equal(b.printer.printed, [{ job: 'report', sha256: SHA }], 'printed once')
})

test('an offline release of a still-held job settles it as printed at the holder on reconnect', async () => {
  const [a, b] = await threeSites('shared')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id)?.prefetched === true, 10_000, 'prefetched at b')
  down.add(a.peer.id)
  mesh.network.partition([a.peer.id], [b.peer.id])
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => getReleaseAt(b, job.id)?.state === 'printed', 10_000, 'printed offline')
  down.delete(a.peer.id)
  mesh.network.heal()
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'holder follows')
  assert.is(a.jobs.getById(job.id)?.reason, 'printed-offline')
  assert.is(a.jobs.getById(job.id)?.duplicates, undefined)
  // the copy is no longer needed once the job is printed
  await until(async () => { await b.roaming.tick(); return !(await b.roaming.hasCopy(SHA)) }, 10_000, 'copy removed')
})

test('a site that crashes while it fetches a partner\'s document hands the job back on restart: returned, held again at the holder, then released and charged once', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  hub.fetchGate = new Promise<void>(() => {}) // the document never arrives before the crash
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  assert.is(getReleaseAt(b, job.id)?.state, 'fetching')
  assert.is(stateAt(a, job.id), 'releasing', 'a granted the release')
  // b crashes: its store goes first, so nothing it does afterwards is persisted
  hub.unregister(b.peer.id)
  await b.peer.store.close()
  await b.peer.stop()
  hub.fetchGate = undefined
  const b2 = await startSite('site-b', 'b', b.peer, b.printer)
  await mesh.connect(b2.peer, a.peer)
  assert.is(getReleaseAt(b2, job.id)?.state, 'returned', 'the restart hands the release back')
  assert.is(getReleaseAt(b2, job.id)?.reason, 'release-interrupted')
  await until(() => stateAt(a, job.id) === 'held', 10_000, 'the holder holds the job again')
  assert.equal(b.printer.printed, [], 'nothing printed by the interrupted release')
  assert.equal(usageAt(b2), [], 'nothing charged by the interrupted release')
  await b2.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'released again and printed')
  assert.equal(b.printer.printed, [{ job: job.name, sha256: SHA }])
  assert.equal(usageAt(b2).map((u) => [u.jobId, u.pages]), [[job.id, 3]], 'charged once')
  await b2.stop()
})

test('an admin at a partner site releases another user\'s job with a signed capability; forged, misdirected, replayed or tampered admin claims are refused', async () => {
  const [a, b, c] = await threeSites('separate')
  const terminal = await mesh.addPeer('terminal-b1', 'terminal', 'b')
  await mesh.connect(terminal, a.peer)
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined && a.peer.membership.info(terminal.id) !== undefined, 10_000, 'listed at b; a knows the terminal')
  const capsOf = (p: MeshPeer) => adminCapabilities(p.signer, (id) => p.membership.info(id)?.role, verifyPeerSignature, clock)
  const grantWith = async (adminCapability: unknown) => await a.roaming.grant(b.peer.id, { jobId: job.id, user: 'mallory', printer: 'mfp', adminCapability } as never)
  const refused = async (adminCapability: unknown, why: RegExp): Promise<void> => {
    const reply = await grantWith(adminCapability)
    assert.is(reply.ok, false)
    if (!reply.ok) {
      assert.is(reply.error, 'not-authorized')
      assert.match(reply.message, why)
    }
    assert.is(stateAt(a, job.id), 'held', 'a refused admin claim grants nothing')
  }
  // a plain user other than the owner is refused, as before
  const asUser = await a.roaming.grant(b.peer.id, { jobId: job.id, user: 'mallory', printer: 'mfp' })
  assert.is(asUser.ok, false)
  // a terminal signs for b: terminals do not authenticate admins
  await refused(await capsOf(terminal).issue({ holder: b.peer.id, admin: 'mallory', op: 'grant', jobId: job.id }), /a terminal does not authenticate admins/)
  // c's own capability presented by b
  await refused(await capsOf(c.peer).issue({ holder: c.peer.id, admin: 'admin', op: 'grant', jobId: job.id }), /issued to another peer/)
  // b's capability for another job, or for deleting
  await refused(await capsOf(b.peer).issue({ holder: b.peer.id, admin: 'admin', op: 'grant', jobId: 'another-job' }), /not grant of job/)
  await refused(await capsOf(b.peer).issue({ holder: b.peer.id, admin: 'admin', op: 'delete', jobId: job.id }), /not grant of job/)
  // b's capability with the admin's name changed after signing
  const genuine = await capsOf(b.peer).issue({ holder: b.peer.id, admin: 'admin', op: 'grant', jobId: job.id })
  await refused({ ...genuine, admin: 'root' }, /signature does not verify/)
  // an expired one
  now += 61_000
  await refused(genuine, /expired/)
  // the genuine path: b's admin releases alice's job; it prints at b and is charged to alice once
  await b.roaming.releaseRemote({ user: 'admin', admin: true }, job.id)
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'released by b\'s admin and printed')
  assert.equal(usageAt(b).map((u) => [u.user, u.pages]), [['alice', 3]])
})

test('the release protocol refuses a bare admin: true, and a capability that is malformed', async () => {
  assert.match(String(parseReleaseRequest({ op: 'grant', request: { jobId: 'j', user: 'u', printer: 'p', admin: true } })), /must carry a signed adminCapability/)
  assert.match(String(parseReleaseRequest({ op: 'delete', jobId: 'j', user: 'u', admin: true })), /must carry a signed adminCapability/)
  assert.match(String(parseReleaseRequest({ op: 'grant', request: { jobId: 'j', user: 'u', printer: 'p', adminCapability: { issuer: 'x' } } })), /capability needs/)
  assert.equal(parseReleaseRequest({ op: 'grant', request: { jobId: 'j', user: 'u', printer: 'p', admin: false } }), { op: 'grant', request: { jobId: 'j', user: 'u', printer: 'p' } })
})

test('a revoked site\'s grant and fetch requests are refused by the holder', async () => {
  const [a, b] = await twoSites()
  const central = mesh.peers.get('central') as MeshPeer
  const job = await printAt(a)
  assert.ok(a.roaming.mayFetch(b.peer.id, SHA), 'a partner may fetch before it is revoked')
  await central.store.transact(licenseDoc(), { kind: 'local', service: 'test' }, (d) => revoke(d, { peer: b.peer.id, at: now, reason: 'stolen server' }))
  await until(() => a.peer.membership.revoked(b.peer.id), 10_000, 'revocation replicated to a')
  const reply = await a.roaming.grant(b.peer.id, { jobId: job.id, user: 'alice', printer: 'mfp' })
  assert.equal(reply.ok ? 'granted' : reply.error, 'not-authorized')
  assert.not.ok(a.roaming.mayFetch(b.peer.id, SHA), 'a revoked peer may not fetch')
  assert.is(stateAt(a, job.id), 'held')
  await a.stop()
  await b.stop()
})

test('a site restarting while printing a partner\'s job counts it printed, charged once', async () => {
  const [a, b] = await threeSites('separate')
  const job = await printAt(a)
  await until(() => listedAt(b, job.id) !== undefined, 10_000, 'listed at b')
  let open!: () => void
  b.printer.gate = new Promise<void>((resolve) => { open = resolve })
  await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
  await until(() => getReleaseAt(b, job.id)?.state === 'printing' && stateAt(a, job.id) === 'printing', 10_000, 'printing')
  // b stops while the printer has the job: the restart counts it as printed, and the holder follows
  await b.stop()
  open()
  b.printer.gate = undefined
  const b2 = await startSite('site-b', 'b', b.peer, b.printer)
  await mesh.connect(b2.peer, a.peer)
  assert.is(getReleaseAt(b2, job.id)?.state, 'printed')
  assert.is(getReleaseAt(b2, job.id)?.reason, 'printer-outcome-assumed')
  await until(() => stateAt(a, job.id) === 'printed', 10_000, 'holder follows the restarted site')
  assert.is(usageAt(b2).length, 1)
  await b2.stop()
})

test('a site restarting while its printer has a roaming job asks the printer: a jam is failed and not charged, a finished job is charged once', async () => {
  const printer = new AnsweringPrinter()
  const [a, first] = await twoSites(printer)
  let b = first
  const jammed = await printAt(a, 'alice', 'jammed')
  const finished = await printAt(a, 'alice', 'finished')
  for (const [job, answer] of [[jammed, { state: 'failed', reason: 'media-jam', message: 'paper jam' }], [finished, { state: 'completed', impressions: 3 }]] as const) {
    await until(() => listedAt(b, job.id) !== undefined, 10_000, `${job.name} listed at b`)
    let open!: () => void
    printer.gate = new Promise<void>((resolve) => { open = resolve })
    await b.roaming.releaseRemote({ user: 'alice', admin: false }, job.id)
    await until(() => getReleaseAt(b, job.id)?.printerJobId !== undefined && stateAt(a, job.id) === 'printing', 10_000, `${job.name} accepted by the printer`)
    const printerJobId = getReleaseAt(b, job.id)?.printerJobId ?? 0
    // b stops while the printer has the job; the printer ends it while b is down
    await b.stop()
    open()
    printer.gate = undefined
    printer.answers.set(printerJobId, answer)
    b = await startSite('site-b', 'b', b.peer, printer)
    await mesh.connect(b.peer, a.peer)
    await until(() => getReleaseAt(b, job.id)?.state === (answer.state === 'failed' ? 'failed' : 'printed'), 10_000, `${job.name} settled from the printer's answer`)
  }
  assert.is(getReleaseAt(b, jammed.id)?.reason, 'media-jam')
  await until(() => stateAt(a, jammed.id) === 'failed' && stateAt(a, finished.id) === 'printed', 10_000, 'the holder follows both')
  assert.equal(usageAt(b).map((u) => u.jobId), [finished.id], 'only the finished job is charged, once')
  await b.stop()
})

test.run()
