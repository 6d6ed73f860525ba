// Regression tests for invariant violations the chaos simulator found, each reduced to one
// site, one job and one simulated kill -9 (simulations/instrument.ts CrashablePersistence:
// from the crash instant on nothing more reaches the disk). Fixed in devices/jobs/service.ts
// by making `printing` durable before the printer sees the document (seeds 5, 8, 13), and
// by recording the printer's job id on acceptance and asking the printer after a restart
// instead of assuming the job printed (seed 11).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { listUsage } from '../crdt/accounting.ts'
import { acctDoc, periodOf, siteId } from '../crdt/names.ts'
import { generateIdentity } from '../transports/identity.ts'
import { JobService } from '../devices/jobs/service.ts'
import type { JobRecord } from '../devices/jobs/types.ts'
import { Spool } from '../devices/spool.ts'
import { PrinterError, type OutputDevice, type PrinterJobOutcome, type PrintProgress, type PrintRequest } from '../devices/output/types.ts'
import type { Signer } from '../crdt/envelope.ts'
import { CrashablePersistence } from '../simulations/instrument.ts'
import { AsyncTracker } from '../simulations/scheduler.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { makePdf } from './fixtures/documents.ts'
import { readFile } from 'node:fs/promises'

const NOW = Date.UTC(2026, 10, 10, 12)
const logger = pino({ level: 'silent' })

/**
 * A printer that takes every job (counting it, giving it an id) and then holds on to it until
 * told to finish or fail it; it remembers how each job ended and says so when asked (`outcome`,
 * no `follow`: the site asks again at its sweeps). While `online` is false it does not answer.
 */
class Printer implements OutputDevice {
  readonly uri = 'sim://printer'
  accepted: string[] = []
  completed: string[] = []
  online = true
  /** Answers given by `outcome`. */
  answers: PrinterJobOutcome[] = []
  /** Runs just before the printer reports acceptance (the test crashes the site there). */
  beforeAccepted?: () => void
  private readonly ends = new Map<number, PrinterJobOutcome>()
  private endings: Array<(how: 'completed' | 'failed') => void> = []
  async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<{ printerJobId: number, impressions: number }> {
    signal.throwIfAborted()
    this.accepted.push(req.jobName)
    const id = this.accepted.length
    this.ends.set(id, { state: 'pending' })
    this.beforeAccepted?.()
    progress.accepted(id)
    return await new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new PrinterError('site stopped', 'aborted-by-system', false)), { once: true })
      // the paper comes out (or jams) whether or not the site still waits
      this.endings.push((how) => {
        if (how === 'completed') {
          this.completed.push(req.jobName)
          this.ends.set(id, { state: 'completed', impressions: 1 })
          resolve({ printerJobId: id, impressions: 1 })
        } else {
          this.ends.set(id, { state: 'failed', reason: 'media-jam', message: 'paper jam, job canceled at the device' })
          reject(new PrinterError('paper jam', 'media-jam', false))
        }
      })
    })
  }

  finishAll (): void { for (const end of this.endings.splice(0)) end('completed') }
  failAll (): void { for (const end of this.endings.splice(0)) end('failed') }
  async probe (): Promise<{ ok: boolean, message: string }> { return { ok: true, message: 'idle' } }
  async outcome (printerJobId: number): Promise<PrinterJobOutcome> {
    const answer: PrinterJobOutcome = !this.online
      ? { state: 'unknown', reason: 'printer-unreachable' }
      : this.ends.get(printerJobId) ?? { state: 'unknown', reason: 'printer-job-not-found' }
    this.answers.push(answer)
    return answer
  }
}

interface Site { store: DocStore, jobs: JobService, persistence: CrashablePersistence }

async function open (dir: string, signer: Signer, printer: Printer): Promise<Site> {
  const persistence = new CrashablePersistence(await LevelPersistence.open(join(dir, 'db')), new AsyncTracker(), 'site-a', () => {})
  const store = new DocStore(persistence, signer)
  for (const n of await store.storedNames()) await store.open(n)
  const jobs = new JobService({ peer: signer.id, site: siteId('a'), queues: [{ name: 'secure', hold: true, defaultPrinter: 'mfp', info: '', location: '' }] },
    { store, spool: await Spool.open(join(dir, 'spool')), printers: new Map([['mfp', printer]]), logger, now: () => NOW })
  await jobs.start()
  return { store, jobs, persistence }
}

/** kill -9: the disk sees nothing more; then the process's memory is thrown away. */
async function kill (site: Site): Promise<void> {
  site.persistence.crash()
  await site.jobs.stop()
  await site.store.close()
}

let dir: string
let pdf: Buffer
test.before.each(async () => {
  dir = await tempDir('sim-repro-')
  pdf = await readFile(await makePdf(dir, { pages: 1 }))
})
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

async function heldJob (site: Site): Promise<number> {
  const job = await site.jobs.createJob({ queue: 'secure', owner: 'alice', name: 'j1', copies: 1, sides: 'one-sided' })
  await site.jobs.addDocument(job.ippId, { format: 'application/pdf', data: Readable.from([pdf]) })
  return job.ippId
}

/**
 * A site releases a held job, is killed once `printed(job)` holds, `whileDown` happens to
 * the printer, and the site restarts on the same folder.
 */
async function restartedWhilePrinting (printer: Printer, printed: (job: JobRecord | undefined) => boolean, whileDown: () => void): Promise<{ site: Site, ippId: number, signer: Signer }> {
  const { signer } = await generateIdentity()
  const first = await open(dir, signer, printer)
  const ippId = await heldJob(first)
  await first.jobs.release(ippId, { user: 'alice', admin: false })
  await until(() => printed(first.jobs.getJob(ippId)), 5000, 'the printer has the job')
  await kill(first)
  whileDown()
  return { site: await open(dir, signer, printer), ippId, signer }
}

test('invariant 2: a kill -9 as the printer accepts a job never lets it print twice', async () => {
  const { signer } = await generateIdentity()
  const printer = new Printer()
  let site = await open(dir, signer, printer)
  const ippId = await heldJob(site)
  const first = site
  printer.beforeAccepted = () => first.persistence.crash() // the process dies as the printer answers
  await site.jobs.release(ippId, { user: 'alice', admin: false })
  await until(() => printer.accepted.length === 1, 5000, 'the printer accepted the job')
  await kill(site)
  printer.beforeAccepted = undefined
  site = await open(dir, signer, printer)
  const after = site.jobs.getJob(ippId)
  try {
    // recovery turned `releasing` back into `held`: the user may release it again
    if (after?.state === 'held') {
      await site.jobs.release(ippId, { user: 'alice', admin: false })
      const again = site
      await until(() => again.jobs.getJob(ippId)?.state !== 'releasing', 5000, 'the second release reached the printer')
    }
    assert.equal(printer.accepted, ['j1'], `the printer accepted the job ${printer.accepted.length} times; after the restart it was ${after?.state ?? 'missing'}`)
  } finally {
    printer.finishAll()
    await site.jobs.stop()
    await site.store.close()
  }
})

test('invariant 3: a kill -9 while the printer prints still charges the job exactly once', async () => {
  const printer = new Printer()
  // the paper comes out while the site is down
  const { site, ippId, signer } = await restartedWhilePrinting(printer, (job) => job?.state === 'printing', () => printer.finishAll())
  try {
    await until(() => site.jobs.getJob(ippId)?.state !== 'printing', 5000, 'the restarted site settled the job')
    const usage = listUsage(await site.store.open(acctDoc(signer.id, periodOf(NOW))))
    assert.equal(printer.completed, ['j1'])
    assert.is(usage.length, 1, `printed once, charged ${usage.length} times; the job is now ${site.jobs.getJob(ippId)?.state ?? 'missing'} (${site.jobs.getJob(ippId)?.reason ?? ''})`)
    assert.is(site.jobs.getJob(ippId)?.state, 'printed')
  } finally {
    await site.jobs.stop()
    await site.store.close()
  }
})

test('invariant 3 (seed 11): a job the printer fails while the site is down is failed, not charged', async () => {
  const printer = new Printer()
  // accepted, its id recorded; then a paper jam while the site is down: no paper comes out
  const { site, ippId, signer } = await restartedWhilePrinting(printer, (job) => job?.printerJobId === 1, () => printer.failAll())
  try {
    await until(() => site.jobs.getJob(ippId)?.state !== 'printing', 5000, 'the restarted site settled the job')
    const job = site.jobs.getJob(ippId)
    const usage = listUsage(await site.store.open(acctDoc(signer.id, periodOf(NOW))))
    assert.equal(printer.completed, [])
    assert.is(usage.length, 0, `nothing printed, charged ${usage.length} times; the job is ${job?.state ?? 'missing'} (${job?.reason ?? ''})`)
    assert.equal([job?.state, job?.reason], ['failed', 'media-jam'])
  } finally {
    await site.jobs.stop()
    await site.store.close()
  }
})

test('invariant 3: a job still printing at the restart stays printing until the printer ends it, then is charged once', async () => {
  const printer = new Printer()
  // accepted, its id recorded; the printer cannot be reached when the site comes back …
  const { site, ippId, signer } = await restartedWhilePrinting(printer, (job) => job?.printerJobId === 1, () => { printer.online = false })
  try {
    const acct = await site.store.open(acctDoc(signer.id, periodOf(NOW)))
    await until(() => printer.answers.length > 0, 5000, 'recovery asked the printer')
    const unanswered = printer.answers.length
    printer.online = true // … then it answers: still printing
    await until(async () => { await site.jobs.sweep(); return printer.answers.length > unanswered }, 5000, 'a sweep asked again')
    assert.equal(new Set(printer.answers.slice(0, unanswered).map((a) => a.state)), new Set(['unknown']))
    assert.is(printer.answers[unanswered].state, 'pending')
    assert.is(site.jobs.getJob(ippId)?.state, 'printing', 'neither assumed printed nor failed while the printer says nothing or "pending"')
    assert.is(listUsage(acct).length, 0)
    printer.finishAll()
    // every sweep asks again (in the background, once a previous question is answered): completed
    await until(async () => { await site.jobs.sweep(); return site.jobs.getJob(ippId)?.state === 'printed' }, 5000, 'a sweep settled the job as printed')
    await site.jobs.sweep()
    assert.equal(printer.completed, ['j1'])
    assert.equal(listUsage(acct).map((u) => u.jobId), [site.jobs.getJob(ippId)?.id])
  } finally {
    await site.jobs.stop()
    await site.store.close()
  }
})

test.run()
