// The job domain: hold, release at most once, charge once, failures, retention, recovery.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createReadStream } from 'node:fs'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { acctDoc, jobsDoc, periodOf, siteConfigDoc, siteId } from '../crdt/names.ts'
import { setSiteTimes, validateSiteTimes } from '../crdt/site-config.ts'
import { listUsage, recordUsage } from '../crdt/accounting.ts'
import * as jobsFamily from '../crdt/jobs.ts'
import { Spool } from '../devices/spool.ts'
import { createJobService, INCOMING_TIMEOUT_MS, type JobService } from '../devices/jobs/service.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import { PrinterError, type OutputDevice, type PrinterJobOutcome } from '../devices/output/types.ts'
import { OUTCOME_UNKNOWN_LIMIT_MS, UNKNOWN_PAGES_FALLBACK, printCharge } from '../devices/jobs/usage.ts'
import { startIppEvePrinter, type JobOutcome } from './helpers/ippeveprinter.ts'
import { InvalidJobStateError, NotAuthorizedError, PAGES_UNKNOWN_REASON, type JobRecord } from '../devices/jobs/types.ts'
import { AnalysisStoppedError, CorruptDocumentError, UnsupportedFormatError, type AnalysisProgress, type DocumentInfo } from '../devices/documents/index.ts'
import { makePdf } from './fixtures/documents.ts'
import { tempDir } from '../simulations/node-process.ts'
import { generateIdentity } from '../transports/identity.ts'
import { until } from '../simulations/wait.ts'
import { rejects } from './helpers/assert.ts'

const identity = await generateIdentity()
const PEER = identity.signer.id
const logger = pino({ level: 'silent' })
const alice = { user: 'alice', admin: false }
/** The rig's hold time. */
const HOLD_MS = 3600_000
/** The rig's first wait on a busy printer: short, so waiting rounds take milliseconds here. */
const BUSY_BACKOFF_MS = 5
const bob = { user: 'bob', admin: false }

interface Rig { dir: string, out: string, store: DocStore, spool: Spool, jobs: JobService, clock: { now: number } }
let rig: Rig

async function build (
  dir: string, printers?: Map<string, OutputDevice>, clock = { now: Date.UTC(2026, 10, 22, 12) },
  analyze?: (path: string, format: string) => Promise<DocumentInfo>,
  persistence: (p: Persistence) => Persistence = (p) => p
): Promise<Rig> {
  const out = join(dir, 'out')
  const store = new DocStore(persistence(await LevelPersistence.open(join(dir, 'db'))), identity.signer)
  const spool = await Spool.open(join(dir, 'spool'))
  const devices = printers ?? new Map([['p1', createOutputDevice(`file://${out}`, { logger })]])
  const jobs = createJobService(
    { peer: PEER, site: siteId('site-a'), queues: [{ name: 'print', hold: true, defaultPrinter: [...devices.keys()][0], info: '', location: '' }], holdMs: HOLD_MS, retentionMs: 7200_000, busyBackoffMs: BUSY_BACKOFF_MS },
    { store, spool, printers: devices, logger, now: () => clock.now, ...(analyze !== undefined ? { analyze } : {}) })
  await jobs.start()
  return { dir, out, store, spool, jobs, clock }
}

async function teardown (r: Rig): Promise<void> {
  await r.jobs.stop()
  await r.store.close()
}

test.before.each(async () => { rig = await build(await tempDir()) })
test.after.each(async () => {
  await teardown(rig)
  await rm(rig.dir, { recursive: true, force: true })
})

async function submit (r: Rig, path: string, owner = 'alice', copies = 1, format = 'application/pdf'): Promise<JobRecord> {
  const job = await r.jobs.createJob({ queue: 'print', owner, name: 'report', copies, sides: 'one-sided' })
  return await r.jobs.addDocument(job.ippId, { format, data: createReadStream(path) })
}

const usageOf = (r: Rig) => listUsage(r.store.get(acctDoc(PEER, periodOf(r.clock.now)))!)

test('a spooled job is held with the document\'s pages and colour pages', async () => {
  const pdf = await makePdf(rig.dir, { pages: 4, colorPages: [0, 2] })
  const job = await submit(rig, pdf)
  assert.equal([job.state, job.pages, job.colorPages, job.format], ['held', 4, 2, 'application/pdf'])
  assert.ok(await rig.spool.has(job.sha256!))
})

test('a released job prints the exact bytes and is charged once, pages × copies', async () => {
  const pdf = await makePdf(rig.dir, { pages: 3, colorPages: [1] })
  const job = await submit(rig, pdf, 'alice', 2)
  const releasing = await rig.jobs.release(job.ippId, alice)
  assert.is(releasing.state, 'releasing')
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed')
  const files = (await readdir(rig.out)).filter((f) => !f.endsWith('.json') && !f.startsWith('.'))
  assert.is(files.length, 1)
  assert.ok((await readFile(join(rig.out, files[0]))).equals(await readFile(pdf)))
  const usage = usageOf(rig)
  assert.equal(usage.map((u) => [u.user, u.printer, u.pages, u.colorPages, u.sheets, u.copies]), [['alice', 'p1', 6, 2, 6, 2]])
})

test('two concurrent releases of one job print it once', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  const results = await Promise.allSettled([rig.jobs.release(job.ippId, alice), rig.jobs.release(job.ippId, alice)])
  assert.equal(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'])
  const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
  assert.instance(rejected.reason, InvalidJobStateError)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed')
  await rejects(rig.jobs.release(job.ippId, alice), InvalidJobStateError)
  assert.is((await readdir(rig.out)).filter((f) => !f.endsWith('.json') && !f.startsWith('.')).length, 1)
  assert.is(usageOf(rig).length, 1)
})

test('users act only on their own jobs; admins on all', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  await rejects(rig.jobs.release(job.ippId, bob), NotAuthorizedError)
  await rejects(rig.jobs.cancel(job.ippId, bob), NotAuthorizedError)
  const deleted = await rig.jobs.cancel(job.ippId, { user: 'admin', admin: true })
  assert.equal([deleted.state, deleted.reason], ['deleted', 'job-canceled-by-operator'])
})

test('a corrupt document fails its job with document-format-error', async () => {
  const bad = join(rig.dir, 'bad.pdf')
  await writeFile(bad, '%PDF-1.7\nthis is not a pdf at all\n')
  try { await submit(rig, bad); assert.unreachable('should reject') } catch (err) { assert.instance(err, CorruptDocumentError) }
  const [job] = rig.jobs.listJobs({ which: 'all' })
  assert.equal([job.state, job.reason], ['failed', 'document-format-error'])
})

test('an unsupported format fails the job without spooling it', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  try { await submit(rig, pdf, 'alice', 1, 'application/x-unknown'); assert.unreachable('should reject') } catch (err) { assert.instance(err, UnsupportedFormatError) }
  assert.equal(rig.jobs.listJobs({ which: 'all' }).map((j) => [j.state, j.reason]), [['failed', 'unsupported-document-format']])
  assert.equal(await rig.spool.list(), [])
})

test('a printer that never accepts the job leaves it held and uncharged', async () => {
  await teardown(rig)
  const refusing: OutputDevice = {
    uri: 'ipp://refusing.invalid/ipp/print',
    print: async () => { throw new PrinterError('connection refused', 'printer-unreachable', true) },
    probe: async () => ({ ok: false, message: 'refused' })
  }
  rig = await build(rig.dir, new Map([['p1', refusing]]))
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  await rig.jobs.release(job.ippId, alice)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'held')
  assert.is(rig.jobs.getJob(job.ippId)?.reason, 'printer-unreachable')
  assert.is(rig.store.get(acctDoc(PEER, periodOf(rig.clock.now))), undefined)
})

/** A printer that answers "busy" (as the IPP device does after its own retries) `busyRounds` times, then prints. */
function busyPrinter (busyRounds: number, onCall: (call: number) => void = () => {}): OutputDevice & { calls: number } {
  const device = {
    uri: 'ipp://busy.invalid/ipp/print',
    calls: 0,
    print: async (_req: unknown, progress: { accepted: (id?: number) => void }) => {
      device.calls++
      onCall(device.calls)
      if (device.calls <= busyRounds) throw new PrinterError('printer not reachable after 5 attempts: server-error-busy', 'busy', true)
      progress.accepted(device.calls)
      return { printerJobId: device.calls }
    },
    probe: async () => ({ ok: true, message: '' })
  }
  return device
}

test('a printer still busy after the device\'s retries: the job waits as releasing, then prints once and is charged once', async () => {
  await teardown(rig)
  const seen: string[] = []
  const busy = busyPrinter(3, () => { seen.push(`${rig.jobs.getJob(job.ippId)?.state ?? ''}`) })
  rig = await build(rig.dir, new Map([['p1', busy]]))
  const pdf = await makePdf(rig.dir, { pages: 2, colorPages: [] })
  const job = await submit(rig, pdf)
  // every change of the job, as the store commits it
  const changes: string[] = []
  const onEntry = (): void => {
    const now = rig.jobs.getJob(job.ippId)
    const last = `${now?.state ?? ''}${now?.state === 'releasing' ? `:${now.reason ?? ''}` : ''}`
    if (changes.at(-1) !== last) changes.push(last)
  }
  rig.store.on('entry', onEntry)
  await rig.jobs.release(job.ippId, alice)
  // the store emits an entry once the write is durable, which may be a moment after the job reads printed
  await until(() => changes.at(-1) === 'printed')
  rig.store.off('entry', onEntry)
  assert.is(busy.calls, 4, 'offered again after each busy round, and only until it was accepted')
  assert.equal(seen, ['printing', 'printing', 'printing', 'printing'], 'each offer is recorded as printing before a byte is sent')
  assert.equal(changes.filter((c) => c === 'releasing:printer-busy').length, 3, 'between offers the job waits as releasing, saying why')
  assert.equal(changes.slice(-2), ['printing', 'printed'], 'printed once, after the last offer was accepted')
  assert.equal(usageOf(rig).map((u) => [u.user, u.pages, u.sheets]), [['alice', 2, 2]])
})

test('a printer busy until the job\'s hold time runs out: the job is held again with the reason, uncharged', async () => {
  await teardown(rig)
  const busy = busyPrinter(Infinity, (call) => { if (call === 2) rig.clock.now += HOLD_MS })
  rig = await build(rig.dir, new Map([['p1', busy]]))
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  await rig.jobs.release(job.ippId, alice)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'held')
  assert.equal([busy.calls, rig.jobs.getJob(job.ippId)?.reason], [2, 'busy'])
  assert.is(rig.store.get(acctDoc(PEER, periodOf(rig.clock.now))), undefined)
})

test('jobs released at once are handed to their printer one at a time, each once', async () => {
  await teardown(rig)
  /** How long this printer takes to accept a job: long enough for the other releases to arrive meanwhile. */
  const PRINTER_TAKES_MS = 20
  let inFlight = 0
  let most = 0
  const order: string[] = []
  const slow: OutputDevice = {
    uri: 'ipp://one-at-a-time.invalid/ipp/print',
    print: async (req, progress) => {
      inFlight++
      most = Math.max(most, inFlight)
      order.push(req.jobName)
      await new Promise((resolve) => setTimeout(resolve, PRINTER_TAKES_MS))
      inFlight--
      progress.accepted(order.length)
      return { printerJobId: order.length }
    },
    probe: async () => ({ ok: true, message: '' })
  }
  rig = await build(rig.dir, new Map([['p1', slow]]))
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const names = ['a', 'b', 'c', 'd', 'e']
  const jobs: JobRecord[] = []
  for (const name of names) {
    const created = await rig.jobs.createJob({ queue: 'print', owner: 'alice', name, copies: 1, sides: 'one-sided' })
    jobs.push(await rig.jobs.addDocument(created.ippId, { format: 'application/pdf', data: createReadStream(pdf) }))
  }
  await Promise.all(jobs.map(async (job) => await rig.jobs.release(job.ippId, alice)))
  await until(() => jobs.every((j) => rig.jobs.getJob(j.ippId)?.state === 'printed'))
  assert.equal([most, order.sort()], [1, names])
})

test('a printer failing after accepting the job fails it, never resubmits', async () => {
  await teardown(rig)
  let calls = 0
  const jamming: OutputDevice = {
    uri: 'ipp://jam.invalid/ipp/print',
    print: async (_req, progress) => { calls++; progress.accepted(7); throw new PrinterError('paper jam', 'media-jam', false) },
    probe: async () => ({ ok: true, message: '' })
  }
  rig = await build(rig.dir, new Map([['p1', jamming]]))
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  await rig.jobs.release(job.ippId, alice)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'failed')
  assert.equal([rig.jobs.getJob(job.ippId)?.reason, calls], ['media-jam', 1])
})

test('retention expires unreleased jobs, then purges finished ones and their bytes', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  rig.clock.now += 3600_000 // hold period over
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId)?.state, 'expired')
  assert.ok(await rig.spool.has(job.sha256!))
  rig.clock.now += 7200_000 // retention over
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId), undefined)
  assert.not.ok(await rig.spool.has(job.sha256!))
})

test('hold and retention times changed in the site\'s document apply at the next sweep, to a job already held; null returns to the start-up time', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  const setTimes = async (input: unknown): Promise<void> => {
    const change = validateSiteTimes(input)
    await rig.store.transact(siteConfigDoc(siteId('site-a')), { kind: 'admin', user: 'admin' }, (d) => { setSiteTimes(d, change, rig.clock.now) })
  }
  rig.clock.now += HOLD_MS / 2
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId)?.state, 'held', 'within the start-up hold')
  // a quarter of the start-up hold: half of it has passed, so the held job is due
  await setTimes({ holdHours: HOLD_MS / 4 / 3600_000, retentionHours: 1 })
  assert.equal([rig.jobs.times().holdMs, rig.jobs.times().retentionMs, rig.jobs.times().startUp.holdMs], [HOLD_MS / 4, 3600_000, HOLD_MS])
  await rig.jobs.sweep()
  assert.equal([rig.jobs.getJob(job.ippId)?.state, rig.jobs.getJob(job.ippId)?.reason], ['expired', 'job-expired'])
  // retention back at the start-up flag (two hours): an hour after it ended the job is kept
  await setTimes({ retentionHours: null })
  rig.clock.now += 3600_000
  await rig.jobs.sweep()
  assert.ok(rig.jobs.getJob(job.ippId) !== undefined, 'kept: the start-up retention applies again')
  // an hour's retention set again: purged with its bytes
  await setTimes({ retentionHours: 1 })
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId), undefined)
  assert.not.ok(await rig.spool.has(job.sha256!))
})

test('a wall clock set forward while the site runs shortens neither the hold nor the retention (issue 18)', async () => {
  const dir = await tempDir()
  const wall = { now: Date.UTC(2026, 10, 22, 12) }
  let mono = 0
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), identity.signer)
  const spool = await Spool.open(join(dir, 'spool'))
  const jobs = createJobService(
    { peer: PEER, site: siteId('site-a'), queues: [{ name: 'print', hold: true, info: '', location: '' }], holdMs: HOLD_MS, retentionMs: 7200_000 },
    { store, spool, printers: new Map(), logger, now: () => wall.now, monotonic: () => mono })
  await jobs.start()
  try {
    const pdf = await makePdf(dir, { pages: 1, colorPages: [] })
    const job = await jobs.addDocument((await jobs.createJob({ queue: 'print', owner: 'alice', name: 'report', copies: 1, sides: 'one-sided' })).ippId, { format: 'application/pdf', data: createReadStream(pdf) })
    // ten minutes later the wall clock jumps two hours ahead: the hold (one hour) is not over
    mono += 600_000
    wall.now += 600_000 + 2 * 3600_000
    await jobs.sweep()
    assert.is(jobs.getJob(job.ippId)?.state, 'held', 'held after 10 minutes of a 1-hour hold')
    mono += HOLD_MS - 600_000
    wall.now += HOLD_MS - 600_000
    await jobs.sweep()
    assert.is(jobs.getJob(job.ippId)?.state, 'expired', 'expired once the hour passed')
    // the same for retention: the clock jumps a day ahead a minute after the job expired
    mono += 60_000
    wall.now += 60_000 + 24 * 3600_000
    await jobs.sweep()
    assert.is(jobs.getJob(job.ippId)?.state, 'expired', 'kept a minute into a 2-hour retention')
    mono += 7200_000
    wall.now += 7200_000
    await jobs.sweep()
    assert.is(jobs.getJob(job.ippId), undefined, 'purged once the retention passed')
  } finally {
    await jobs.stop()
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test('a created job whose document never arrives fails after the incoming timeout', async () => {
  const job = await rig.jobs.createJob({ queue: 'print', owner: 'alice', name: 'never sent', copies: 1, sides: 'one-sided' })
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId)?.state, 'received')
  rig.clock.now += INCOMING_TIMEOUT_MS
  await rig.jobs.sweep()
  assert.equal([rig.jobs.getJob(job.ippId)?.state, rig.jobs.getJob(job.ippId)?.reason], ['failed', 'job-incoming-timeout'])
})

test('an emptied document of a past period is kept, so its signed log goes on where it was', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  const oldDoc = jobsDoc(PEER, periodOf(rig.clock.now))
  await rig.jobs.cancel(job.ippId, alice)
  rig.clock.now += 40 * 24 * 3600_000 // next month, far past retention
  await rig.jobs.sweep()
  assert.is(rig.jobs.getJob(job.ippId), undefined, 'the job itself is purged')
  assert.ok((await rig.store.storedNames()).includes(oldDoc), 'the document stays (peers hold it; only age drops it, everywhere at once)')
  assert.ok((rig.store.vector(oldDoc).get(PEER) ?? 0) >= 3, 'its log keeps the purge after the creation and the deletion')
})

test('after a restart, interrupted releases are resolved without printing or charging twice', async () => {
  const pdf = await makePdf(rig.dir, { pages: 2, colorPages: [] })
  const a = await submit(rig, pdf)
  const b = await submit(rig, pdf)
  const c = await submit(rig, pdf)
  const doc = jobsDoc(PEER, periodOf(rig.clock.now))
  const origin = { kind: 'local', service: 'test' } as const
  // a crash left a releasing, b printing (uncharged), c printing (already charged)
  await rig.store.transact(doc, origin, (d) => {
    jobsFamily.transition(d, a.id, 'releasing', rig.clock.now)
    jobsFamily.transition(d, b.id, 'releasing', rig.clock.now)
    jobsFamily.transition(d, b.id, 'printing', rig.clock.now)
    jobsFamily.transition(d, c.id, 'releasing', rig.clock.now)
    jobsFamily.transition(d, c.id, 'printing', rig.clock.now)
  })
  await rig.store.transact(acctDoc(PEER, periodOf(rig.clock.now)), origin, (d) => recordUsage(d, {
    id: `${c.id}/print`, kind: 'print', user: 'alice', jobId: c.id, jobName: 'report', printer: 'p1', site: 'site-a',
    pages: 2, colorPages: 0, sheets: 2, duplex: false, copies: 1, time: rig.clock.now
  }))
  await teardown(rig)
  rig = await build(rig.dir, undefined, rig.clock)
  // a never reached a printer; b and c had: counted as printed, each charged exactly once
  assert.equal([a, b, c].map((j) => rig.jobs.getJob(j.ippId)?.state), ['held', 'printed', 'printed'])
  assert.is(rig.jobs.getJob(b.ippId)?.reason, 'printer-outcome-assumed')
  assert.equal(usageOf(rig).map((u) => u.jobId).sort(), [b.id, c.id].sort())
})

/** Puts jobs into `printing` as a crash would leave them, each with the printer job id its printer gave. */
async function leftPrinting (r: Rig, printing: Array<{ job: JobRecord, printer: string, printerJobId?: number }>): Promise<void> {
  await r.store.transact(jobsDoc(PEER, periodOf(r.clock.now)), { kind: 'local', service: 'test' }, (d) => {
    for (const { job, printer, printerJobId } of printing) {
      jobsFamily.transition(d, job.id, 'releasing', r.clock.now, { printer })
      jobsFamily.transition(d, job.id, 'printing', r.clock.now)
      if (printerJobId !== undefined) jobsFamily.recordPrinterJob(d, job.id, printerJobId, r.clock.now)
    }
  })
}

test('after a restart, a printing job is settled by what its printer says', async () => {
  const pdf = await makePdf(rig.dir, { pages: 2, colorPages: [] })
  const submitted: JobRecord[] = []
  for (let i = 0; i < 6; i++) submitted.push(await submit(rig, pdf))
  const [done, jammed, queued, silent, noId, cannotAsk] = submitted
  const answers = new Map<number, PrinterJobOutcome>([
    [1, { state: 'completed', impressions: 2 }],
    [2, { state: 'failed', reason: 'job-canceled-at-device', message: 'canceled at the panel' }],
    [3, { state: 'pending' }],
    [4, { state: 'unknown', reason: 'printer-unreachable', message: 'connection refused' }]
  ])
  const asked: number[] = []
  const asking: OutputDevice = {
    uri: 'ipp://asking.invalid/ipp/print',
    print: async () => { throw new PrinterError('not used', 'printer-unreachable', true) },
    probe: async () => ({ ok: true, message: '' }),
    outcome: async (id) => { asked.push(id); return answers.get(id) ?? { state: 'unknown', reason: 'printer-job-not-found' } }
  }
  const mute: OutputDevice = { ...asking, outcome: undefined } // a device that cannot tell after the fact
  await leftPrinting(rig, [
    { job: done, printer: 'asking', printerJobId: 1 },
    { job: jammed, printer: 'asking', printerJobId: 2 },
    { job: queued, printer: 'asking', printerJobId: 3 },
    { job: silent, printer: 'asking', printerJobId: 4 },
    { job: noId, printer: 'asking' }, // the crash came before the printer's id was recorded
    { job: cannotAsk, printer: 'mute', printerJobId: 5 }
  ])
  await teardown(rig)
  rig = await build(rig.dir, new Map([['asking', asking], ['mute', mute]]), rig.clock)
  const r = rig
  const state = (j: JobRecord): [string | undefined, string | undefined] => [r.jobs.getById(j.id)?.state, r.jobs.getById(j.id)?.reason]
  await until(() => state(done)[0] === 'printed' && state(jammed)[0] === 'failed', 5000, 'the printer\'s answers settled the jobs')
  assert.equal(state(done), ['printed', 'job-completed-successfully'])
  assert.equal(state(jammed), ['failed', 'job-canceled-at-device'])
  assert.is(r.jobs.getById(jammed.id)?.message, 'canceled at the panel')
  assert.equal(state(noId), ['printed', 'printer-outcome-assumed'], 'no printer job id: assumed printed, as before')
  assert.equal(state(cannotAsk), ['printed', 'printer-outcome-assumed'], 'a printer that cannot be asked: assumed printed, as before')
  assert.equal([state(queued)[0], state(silent)[0]], ['printing', 'printing'], 'pending and unknown stay printing')
  assert.equal(usageOf(r).map((u) => u.jobId).sort(), [done.id, noId.id, cannotAsk.id].sort(), 'the failed job is not charged')

  // later sweeps ask again: the queued job completes; the silent printer stays silent
  answers.set(3, { state: 'completed' })
  r.clock.now += OUTCOME_UNKNOWN_LIMIT_MS - 60_000
  await until(async () => { await r.jobs.sweep(); return state(queued)[0] === 'printed' }, 5000, 'a sweep settled the queued job')
  assert.is(state(silent)[0], 'printing', 'not yet assumed before the bound')
  // past the bound without any answer: assumed printed, charged once
  r.clock.now += 60_000
  await until(async () => { await r.jobs.sweep(); return state(silent)[0] === 'printed' }, 5000, 'a sweep past the bound settled the silent job')
  assert.is(state(silent)[1], 'printer-outcome-assumed')
  assert.match(r.jobs.getById(silent.id)?.message ?? '', /connection refused/)
  assert.equal(usageOf(r).map((u) => u.jobId).sort(), [done.id, queued.id, silent.id, noId.id, cannotAsk.id].sort())
  assert.ok(asked.filter((id) => id === 4).length >= 3, `the silent printer was asked again and again (${asked.join(',')})`)
  assert.not.ok(asked.includes(5), 'the mute printer was never asked')
})

test('a printer job id is recorded on acceptance; the file printer\'s is its document, found while it exists', async () => {
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const job = await submit(rig, pdf)
  await rig.jobs.release(job.ippId, alice)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed')
  const [file] = (await readdir(rig.out)).filter((f) => !f.endsWith('.json') && !f.startsWith('.'))
  const printerJobId = rig.jobs.getJob(job.ippId)?.printerJobId
  assert.is(printerJobId, Number((await stat(join(rig.out, file), { bigint: true })).ino))
  const device = createOutputDevice(`file://${rig.out}`, { logger })
  assert.is((await device.outcome!(printerJobId!, new AbortController().signal)).state, 'completed')
  await rm(join(rig.out, file))
  assert.equal((await device.outcome!(printerJobId!, new AbortController().signal)).reason, 'printer-job-not-found')
  // a job id that cannot be recorded is a clear error
  const doc = rig.store.get(jobsDoc(PEER, periodOf(rig.clock.now)))!
  assert.throws(() => jobsFamily.recordPrinterJob(doc, job.id, 0, rig.clock.now), /positive integer/)
  assert.throws(() => jobsFamily.recordPrinterJob(doc, job.id, 77, rig.clock.now), /printed: only a printing job/)
})

/**
 * A site stops (as a kill would, but gracefully) the moment a real printer accepts its job;
 * the printer ends the job as `outcome` says while the site is down; then the site restarts.
 */
async function stopAtAcceptThenRestart (outcome: JobOutcome): Promise<JobRecord> {
  const printer = await startIppEvePrinter({ jobOutcome: outcome })
  try {
    const ipp = (): OutputDevice => createOutputDevice(printer.uri, { logger, ipp: { follow: { pollIntervalMs: 50, unreachableDeadlineMs: 5000 } } })
    const real = ipp()
    let stopped: Promise<void> | undefined
    const stopsAtAccept: OutputDevice = {
      uri: real.uri,
      probe: async (signal) => await real.probe(signal),
      print: async (req, progress, signal) => await real.print(req, {
        accepted: (id) => { progress.accepted(id); stopped = rig.jobs.stop() }
      }, signal)
    }
    await teardown(rig)
    rig = await build(rig.dir, new Map([['p1', stopsAtAccept]]), rig.clock)
    const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
    const job = await submit(rig, pdf)
    await rig.jobs.release(job.ippId, alice)
    await until(() => stopped !== undefined, 10_000, 'the printer accepted the job')
    await stopped
    const left = rig.jobs.getJob(job.ippId)
    assert.equal([left?.state, typeof left?.printerJobId], ['printing', 'number'], 'stopped while printing: left printing, with the printer job id')
    const asker = ipp()
    await until(async () => (await asker.outcome!(left!.printerJobId!, new AbortController().signal)).state !== 'pending', 10_000, 'the printer ended the job')
    await teardown(rig)
    rig = await build(rig.dir, new Map([['p1', ipp()]]), rig.clock)
    const r = rig
    await until(() => r.jobs.getJob(job.ippId)?.state !== 'printing', 10_000, 'the restarted site settled the job')
    return r.jobs.getJob(job.ippId)!
  } finally {
    await printer.stop()
  }
}

test('a real printer that aborts a job while the site is down: the job fails, not charged', async () => {
  const job = await stopAtAcceptThenRestart('abort')
  assert.equal([job.state, job.reason], ['failed', 'aborted-by-system'])
  assert.equal(rig.store.get(acctDoc(PEER, periodOf(rig.clock.now))) === undefined ? [] : usageOf(rig), [])
})

test('a real printer that completes a job while the site is down: printed, charged once', async () => {
  const job = await stopAtAcceptThenRestart('complete')
  assert.equal([job.state, job.reason], ['printed', 'job-completed-successfully'])
  assert.equal(usageOf(rig).map((u) => u.jobId), [job.id])
})

// ---- documents whose analysis was stopped (time or memory limit) ----------------------

/** An analysis that is always stopped, having learnt `progress` (as the analyzer's workers report it). */
function stoppedAnalysis (progress: AnalysisProgress): (path: string, format: string) => Promise<DocumentInfo> {
  return async () => { throw new AnalysisStoppedError('application/pdf: analysis stopped after 60000 ms, it took longer than 60000 ms; pages unknown', 'time-limit', progress) }
}

/** A printer that accepts every job and reports `impressions` printed. */
function countingPrinter (impressions: number): OutputDevice {
  let next = 0
  return {
    uri: 'ipp://counting.invalid/ipp/print',
    print: async (_req, progress) => { next++; progress.accepted(next); return { printerJobId: next, impressions } },
    probe: async () => ({ ok: true, message: '' })
  }
}

test('a document whose analysis was stopped is kept and held with its pages unknown; printed, it is charged its declared pages once, as colour', async () => {
  await teardown(rig)
  rig = await build(rig.dir, undefined, rig.clock, stoppedAnalysis({ format: 'application/pdf', declaredPages: 4 }))
  const pdf = await makePdf(rig.dir, { pages: 4, colorPages: [] })
  const job = await submit(rig, pdf, 'alice', 2)
  assert.equal([job.state, job.reason, job.pages, job.colorPages, job.declaredPages, job.format], ['held', PAGES_UNKNOWN_REASON, undefined, undefined, 4, 'application/pdf'])
  assert.match(job.message ?? '', /took longer than 60000 ms.*the 4 pages the document declares/)
  assert.ok(await rig.spool.has(job.sha256!), 'the document is spooled')
  await rig.jobs.release(job.ippId, alice)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed')
  await rejects(rig.jobs.release(job.ippId, alice), InvalidJobStateError)
  // the file printer reports no impressions: declared pages × copies, every page counted colour
  assert.equal(usageOf(rig).map((u) => [u.jobId, u.pages, u.colorPages, u.sheets, u.copies]), [[job.id, 8, 8, 8, 2]])
})

test('a job with unknown pages is charged what its printer reports printing, also when settled after a restart', async () => {
  await teardown(rig)
  rig = await build(rig.dir, new Map([['p1', countingPrinter(5)]]), rig.clock, stoppedAnalysis({ format: 'application/pdf' }))
  const pdf = await makePdf(rig.dir, { pages: 1, colorPages: [] })
  const printed = await submit(rig, pdf)
  const crashed = await submit(rig, pdf)
  assert.equal([printed.state, printed.pages, printed.declaredPages], ['held', undefined, undefined])
  await rig.jobs.release(printed.ippId, alice)
  await until(() => rig.jobs.getJob(printed.ippId)?.state === 'printed')
  // the other was at its printer when the site stopped; the printer says it printed 7 impressions
  await leftPrinting(rig, [{ job: crashed, printer: 'p1', printerJobId: 9 }])
  await teardown(rig)
  const asking: OutputDevice = { ...countingPrinter(0), outcome: async () => ({ state: 'completed', impressions: 7 }) }
  rig = await build(rig.dir, new Map([['p1', asking]]), rig.clock)
  const r = rig
  await until(() => r.jobs.getJob(crashed.ippId)?.state === 'printed', 5000, 'the printer\'s answer settled the job')
  assert.equal(usageOf(r).map((u) => [u.jobId, u.pages, u.colorPages, u.sheets]).sort(), [[printed.id, 5, 5, 5], [crashed.id, 7, 7, 7]].sort())
})

test('the charge rule: analysed pages; else the printer\'s impressions; else declared pages; else one page per copy', () => {
  const job = { copies: 3, sides: 'two-sided-long-edge' }
  assert.equal(printCharge({ ...job, pages: 5, colorPages: 1 }, 99), { pages: 15, colorPages: 3, sheets: 9, basis: 'analysed' })
  assert.equal(printCharge({ ...job, declaredPages: 5 }, 12), { pages: 12, colorPages: 12, sheets: 6, basis: 'printer-impressions' })
  assert.equal(printCharge({ ...job, declaredPages: 5 }, 0), { pages: 15, colorPages: 15, sheets: 9, basis: 'declared-pages' })
  assert.equal(printCharge(job), { pages: 3 * UNKNOWN_PAGES_FALLBACK, colorPages: 3 * UNKNOWN_PAGES_FALLBACK, sheets: 3, basis: 'fallback' })
})


// ---- the same bytes sent twice --------------------------------------------------------

test('the same document sent twice: one copy refused while the other is still being analysed leaves the bytes, and the other is held and prints them', async () => {
  await teardown(rig)
  // the first analysis waits until the second copy has been refused as corrupt
  let calls = 0
  let refused!: () => void
  const secondRefused = new Promise<void>((resolve) => { refused = resolve })
  rig = await build(rig.dir, undefined, rig.clock, async () => {
    if (++calls === 2) throw new CorruptDocumentError('second copy refused')
    await secondRefused
    return { format: 'application/pdf', pages: 1, colorPages: 0 }
  })
  const pdf = await makePdf(rig.dir, { pages: 1 })
  const kept = await rig.jobs.createJob({ queue: 'print', owner: 'bob', name: 'kept', copies: 1, sides: 'one-sided' })
  const refusedJob = await rig.jobs.createJob({ queue: 'print', owner: 'alice', name: 'refused', copies: 1, sides: 'one-sided' })
  const held = rig.jobs.addDocument(kept.ippId, { format: 'application/pdf', data: createReadStream(pdf) })
  await until(() => calls === 1, 10_000, 'the first copy under analysis')
  await rejects(rig.jobs.addDocument(refusedJob.ippId, { format: 'application/pdf', data: createReadStream(pdf) }), CorruptDocumentError)
  refused()
  const job = await held
  assert.is(job.state, 'held')
  assert.ok(await rig.spool.has(job.sha256!), 'the held job\'s document is still in the spool')
  await rig.jobs.release(job.ippId, bob)
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed', 10_000, 'the kept job printed')
  const printed = (await readdir(rig.out)).filter((f) => !f.endsWith('.json') && !f.startsWith('.'))
  assert.is(printed.length, 1)
  assert.ok((await readFile(join(rig.out, printed[0]))).equals(await readFile(pdf)), 'the printer got the document\'s bytes')
})


// ---- a print whose charge could not be written ------------------------------------------

test('a print the printer completed but whose charge could not be written is charged later as it was printed (one-sided: the printer dropped sides), not as the policy would print it now', async () => {
  await teardown(rig)
  // loading this month's accounting document fails while `failing`: the charge fails before anything of it is in memory
  let failing = false
  const flaky = (inner: Persistence): Persistence => ({
    load: async (name) => { if (failing && name.includes('acct')) throw new Error('EIO: i/o error, read'); return await inner.load(name) },
    append: async (name, u) => await inner.append(name, u),
    compact: async (name, e) => await inner.compact(name, e),
    remove: async (name) => await inner.remove(name),
    names: async () => await inner.names(),
    close: async () => await inner.close()
  })
  const printer: OutputDevice = {
    uri: 'ipp://drops-sides.invalid/ipp/print',
    probe: async () => ({ ok: true, message: '' }),
    // accepted, printed one-sided (it took no `sides`); the charge that follows fails
    print: async (_req, progress) => { progress.accepted(7); failing = true; return { printerJobId: 7, dropped: ['sides'] } },
    outcome: async () => ({ state: 'completed' })
  }
  rig = await build(rig.dir, new Map([['p1', printer]]), rig.clock, undefined, flaky)
  const pdf = await makePdf(rig.dir, { pages: 4, colorPages: [] })
  const created = await rig.jobs.createJob({ queue: 'print', owner: 'alice', name: 'duplex', copies: 1, sides: 'two-sided-long-edge' })
  const job = await rig.jobs.addDocument(created.ippId, { format: 'application/pdf', data: createReadStream(pdf) })
  await rig.jobs.release(job.ippId, alice)
  await until(() => failing && rig.jobs.getJob(job.ippId)?.state === 'printing' && rig.store.get(acctDoc(PEER, periodOf(rig.clock.now))) === undefined, 10_000, 'printed, its charge failed')
  failing = false
  await rig.jobs.sweep() // asks the printer about the job left printing
  await until(() => rig.jobs.getJob(job.ippId)?.state === 'printed', 10_000, 'settled from the printer')
  assert.equal(usageOf(rig).map((u) => [u.jobId, u.pages, u.sheets, u.duplex]), [[job.id, 4, 4, false]], 'charged once, one-sided as printed')
})

test.run()
