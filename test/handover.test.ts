// Handover (client spooling off): a workstation's client hands its held jobs to its site's
// server, which holds them as its own — at most once, nothing lost, refusals kept on the
// workstation. Two job services in one process; the link calls the site's desk directly.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { copyFile, rm } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { siteId, type PeerId } from '../crdt/names.ts'
import { Spool } from '../devices/spool.ts'
import { createJobService, type JobService } from '../devices/jobs/service.ts'
import { HandOverDesk, HandOverSender, MAX_TAKES_PER_CLIENT } from '../devices/jobs/handover.ts'
import { intakeLimits, type IntakeLimits } from '../devices/jobs/intake-limits.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import { HANDED_OVER_REASON, InvalidJobStateError, type HandOverReply, type HandOverRequest, type JobRecord, type RoamingLink } from '../devices/jobs/types.ts'
import { makePdf } from './fixtures/documents.ts'
import { tempDir } from '../simulations/node-process.ts'
import { generateIdentity } from '../transports/identity.ts'
import { until } from '../simulations/wait.ts'
import { rejects } from './helpers/assert.ts'

const logger = pino({ level: 'silent' })
const SITE = siteId('site-a')
/** Handovers here are in-process: a few seconds is ample. */
const WAIT_MS = 10_000
const clientId = await generateIdentity()
const siteIdentity = await generateIdentity()
const CLIENT = clientId.signer.id as PeerId
const SITE_PEER = siteIdentity.signer.id as PeerId

interface Node { dir: string, store: DocStore, spool: Spool, copies: Spool, jobs: JobService }

async function node (dir: string, identity: Awaited<ReturnType<typeof generateIdentity>>, queue: string): Promise<Node> {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), identity.signer)
  const spool = await Spool.open(join(dir, 'spool'))
  const copies = await Spool.open(join(dir, 'copies'))
  const jobs = createJobService(
    { peer: identity.signer.id as PeerId, site: SITE, queues: [{ name: queue, hold: true, defaultPrinter: 'p1', info: '', location: '' }] },
    { store, spool, printers: new Map([['p1', createOutputDevice(`file://${join(dir, 'out')}`, { logger })]]), logger })
  await jobs.start()
  return { dir, store, spool, copies, jobs }
}

interface Rig { client: Node, site: Node, desk: HandOverDesk, sender: HandOverSender, link: RoamingLink, settings: { handingOver: boolean, siteUp: boolean }, calls: HandOverRequest[], abort: AbortController }
let rig: Rig

/** A client and its site, with the site's limits and who the site takes the caller for. */
async function build (limits: Partial<IntakeLimits> = {}, memberRole = 'client', memberSite = SITE, beforeFetch?: () => Promise<void>): Promise<Rig> {
  const client = await node(await tempDir(), clientId, 'printmesh')
  const site = await node(await tempDir(), siteIdentity, 'print')
  const abort = new AbortController()
  const calls: HandOverRequest[] = []
  const settings = { handingOver: true, siteUp: true }
  let desk: HandOverDesk | undefined
  const link: RoamingLink = {
    requestGrant: async () => { throw new Error('not in this test') },
    commit: async () => { throw new Error('not in this test') },
    deleteJob: async () => { throw new Error('not in this test') },
    // the blob protocol's rule: only a job still to print is served
    fetch: async (_holder, sha256, dest) => {
      if (!client.jobs.listJobs({ which: 'not-completed' }).some((j) => j.sha256 === sha256 && j.state === 'releasing')) throw new Error('not served: no job being released has it')
      await beforeFetch?.()
      await copyFile(client.spool.path(sha256), dest)
    },
    handOver: async (_site, request): Promise<HandOverReply> => {
      calls.push(request)
      if (!settings.siteUp) throw new Error('site unreachable')
      return (desk as HandOverDesk).handOver(CLIENT, request)
    }
  }
  desk = new HandOverDesk({ site: SITE, limits: intakeLimits(limits) }, {
    jobs: site.jobs, link, copies: site.copies, memberOf: (p) => p === CLIENT ? { role: memberRole, site: memberSite } : undefined, signal: () => abort.signal, logger
  })
  const sender = new HandOverSender({ site: SITE }, { jobs: client.jobs, link, handingOver: () => settings.handingOver, siteServer: () => settings.siteUp ? SITE_PEER : undefined, logger })
  return { client, site, desk, sender, link, settings, calls, abort }
}

async function close (n: Node): Promise<void> {
  await n.jobs.stop()
  await n.store.close()
  await rm(n.dir, { recursive: true, force: true })
}

async function teardownRig (): Promise<void> {
  rig.abort.abort()
  await rig.sender.stop()
  await close(rig.client)
  await close(rig.site)
}

test.before.each(async () => { rig = await build() })
test.after.each(teardownRig)

async function submit (n: Node, name: string, pages = 3, colorPages = [1]): Promise<JobRecord> {
  const pdf = await makePdf(n.dir, { pages, colorPages, title: name })
  const job = await n.jobs.createJob({ queue: n.jobs.queues()[0].name, owner: 'alice', name, copies: 2, sides: 'two-sided-long-edge' })
  return await n.jobs.addDocument(job.ippId, { format: 'application/pdf', data: createReadStream(pdf) })
}

/** Passes of the client until `done`, as its timer would run them. */
async function passUntil (r: Rig, done: () => boolean, what: string): Promise<void> {
  await until(async () => { await r.sender.pass(); return done() }, WAIT_MS, what)
}

const siteJobs = (r: Rig): JobRecord[] => r.site.jobs.listJobs({ which: 'all' })

test('a held job is handed to the site: held there as alice\'s with its name, copies, sides and pages analysed again; deleted on the workstation with the reason, its bytes gone from there', async () => {
  const job = await submit(rig.client, 'report.pdf')
  await passUntil(rig, () => rig.client.jobs.getById(job.id)?.state === 'deleted', 'handed over')
  const taken = siteJobs(rig)
  assert.equal(taken.map((j) => [j.owner, j.name, j.state, j.copies, j.sides, j.pages, j.colorPages, j.sha256, j.handedOverFrom]),
    [['alice', 'report.pdf', 'held', 2, 'two-sided-long-edge', 3, 1, job.sha256, { peer: CLIENT, jobId: job.id }]])
  const left = rig.client.jobs.getById(job.id)
  assert.equal([left?.state, left?.reason], ['deleted', HANDED_OVER_REASON])
  assert.match(left?.message ?? '', `handed over to site site-a (job ${taken[0].ippId} there)`)
  assert.not.ok(await rig.client.spool.has(job.sha256 ?? ''), 'no copy on the workstation')
  assert.ok(await rig.site.spool.has(job.sha256 ?? ''), 'the site\'s spool has it')
})

test('a client that lost the site\'s answer (restarted while releasing) asks again and the site answers with the job it took: one job at the site', async () => {
  const job = await submit(rig.client, 'once.pdf')
  const granted = await rig.client.jobs.grantHandOver(job.id, { peer: SITE_PEER, site: SITE }, 60_000)
  const request: HandOverRequest = { jobId: job.id, grantId: granted.grant?.id ?? '', owner: 'alice', name: 'once.pdf', copies: 2, sides: 'two-sided-long-edge', format: 'application/pdf', sha256: job.sha256 ?? '', size: job.size ?? 0 }
  // the site takes it; the client never records the answer
  await until(async () => { const r = await rig.link.handOver?.(SITE_PEER, request, rig.abort.signal); return r?.ok === true && r.state === 'adopted' }, WAIT_MS, 'taken by the site')
  assert.is(rig.client.jobs.getById(job.id)?.state, 'releasing')
  // restarted: a fresh sender finds the job still releasing to the site and asks again
  await passUntil(rig, () => rig.client.jobs.getById(job.id)?.state === 'deleted', 'completed on the next pass')
  assert.is(siteJobs(rig).filter((j) => j.handedOverFrom?.jobId === job.id).length, 1, 'taken once')
})

test('a job being handed over cannot be released at a printer meanwhile (one grant at a time)', async () => {
  const job = await submit(rig.client, 'race.pdf')
  await rig.client.jobs.grantHandOver(job.id, { peer: SITE_PEER, site: SITE }, 60_000)
  await rejects(rig.client.jobs.release(job.id, { user: 'alice', admin: false }), InvalidJobStateError)
})

test('with the site\'s server unreachable the job stays held on the workstation (client spooling), and is handed over once it is back', async () => {
  rig.settings.siteUp = false
  const job = await submit(rig.client, 'later.pdf')
  await rig.sender.pass()
  assert.is(rig.client.jobs.getById(job.id)?.state, 'held', 'kept on the workstation')
  assert.is(siteJobs(rig).length, 0)
  rig.settings.siteUp = true
  await passUntil(rig, () => rig.client.jobs.getById(job.id)?.state === 'deleted', 'handed over once the site is back')
  assert.is(siteJobs(rig).length, 1)
})

test('with client spooling on (the site\'s setting), nothing is handed over', async () => {
  rig.settings.handingOver = false
  const job = await submit(rig.client, 'mine.pdf')
  await rig.sender.pass()
  await rig.sender.pass()
  assert.equal([rig.client.jobs.getById(job.id)?.state, siteJobs(rig).length, rig.calls.length], ['held', 0, 0])
})

test('a job the site refuses (over alice\'s limit there) stays held on the workstation with the site\'s reason, and is not offered again', async () => {
  rig.abort.abort()
  await rig.sender.stop()
  await close(rig.client)
  await close(rig.site)
  rig = await build({ maxJobsPerUser: 1 })
  await submit(rig.site, 'already-there.pdf') // alice's one job at the site (made without limits, counted by them)
  const job = await submit(rig.client, 'too-many.pdf')
  await passUntil(rig, () => rig.client.jobs.getById(job.id)?.state === 'held' && rig.client.jobs.getById(job.id)?.message !== undefined && rig.calls.length > 0, 'refused')
  const kept = rig.client.jobs.getById(job.id)
  assert.match(kept?.message ?? '', /^kept on this workstation: site site-a refused it: .*alice/)
  assert.ok(await rig.client.spool.has(job.sha256 ?? ''), 'its document stays on the workstation')
  const asked = rig.calls.length
  await rig.sender.pass()
  assert.is(rig.calls.length, asked, 'not offered again')
  assert.equal(siteJobs(rig).map((j) => j.name), ['already-there.pdf'], 'nothing taken at the site')
})

test(`the site fetches at most ${MAX_TAKES_PER_CLIENT} jobs from one workstation at once; the others are handed over as those finish`, async () => {
  let running = 0
  let most = 0
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  await teardownRig()
  rig = await build({}, 'client', SITE, async () => {
    running++
    most = Math.max(most, running)
    try { await gate } finally { running-- }
  })
  const jobs: JobRecord[] = []
  for (let i = 0; i < MAX_TAKES_PER_CLIENT + 3; i++) jobs.push(await submit(rig.client, `batch-${i}.pdf`, 1, []))
  await until(async () => { await rig.sender.pass(); return running === MAX_TAKES_PER_CLIENT }, WAIT_MS, `${MAX_TAKES_PER_CLIENT} fetches under way`)
  await rig.sender.pass()
  assert.is(most, MAX_TAKES_PER_CLIENT, 'no more at once')
  open()
  await passUntil(rig, () => jobs.every((j) => rig.client.jobs.getById(j.id)?.state === 'deleted'), 'every job handed over')
  assert.is(siteJobs(rig).length, jobs.length, 'each taken once')
})

test('the site takes jobs only from a workstation\'s client of its own site', async () => {
  for (const [role, site] of [['terminal', SITE], ['client', siteId('site-b')]] as const) {
    rig.abort.abort()
    await rig.sender.stop()
    await close(rig.client)
    await close(rig.site)
    rig = await build({}, role, site)
    const job = await submit(rig.client, 'sneaky.pdf')
    const granted = await rig.client.jobs.grantHandOver(job.id, { peer: SITE_PEER, site: SITE }, 60_000)
    const reply = rig.desk.handOver(CLIENT, { jobId: job.id, grantId: granted.grant?.id ?? '', owner: 'alice', name: 'sneaky.pdf', copies: 1, sides: 'one-sided', format: 'application/pdf', sha256: job.sha256 ?? '', size: job.size ?? 0 })
    assert.equal([reply.ok, reply.ok ? '' : reply.error], [false, 'not-authorized'], `${role} of ${site}`)
    assert.is(siteJobs(rig).length, 0)
  }
})

test.run()
