// Regression tests for invariant violations the chaos simulator found, each reduced to one
// site, one job and one simulated kill -9 (simulations/instrument.ts CrashablePersistence:
// from the crash instant on nothing more reaches the disk). Fixed in devices/jobs/service.ts
// by making `printing` durable before the printer sees the document.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { listUsage } from '../crdt/accounting.ts'
import { acctDoc, periodOf } from '../crdt/names.ts'
import { generateIdentity } from '../transports/identity.ts'
import { JobService } from '../devices/jobs/service.ts'
import { Spool } from '../devices/spool.ts'
import { PrinterError, type OutputDevice, type PrintProgress, type PrintRequest } from '../devices/output/types.ts'
import type { Signer } from '../crdt/envelope.ts'
import { CrashablePersistence } from '../simulations/instrument.ts'
import { AsyncTracker } from '../simulations/scheduler.ts'
import { tempDir } from './helpers/site.ts'
import { until } from './helpers/wait.ts'
import { makePdf } from './fixtures/documents.ts'
import { readFile } from 'node:fs/promises'

const NOW = Date.UTC(2026, 10, 10, 12)
const logger = pino({ level: 'silent' })

/** A printer that takes every job (counting it) and then holds on to it until told to finish. */
class Printer implements OutputDevice {
  readonly uri = 'sim://printer'
  accepted: string[] = []
  completed: string[] = []
  /** Runs just before the printer reports acceptance (the test crashes the site there). */
  beforeAccepted?: () => void
  private finishers: Array<() => void> = []
  async print (req: PrintRequest, progress: PrintProgress, signal: AbortSignal): Promise<{ impressions: number }> {
    signal.throwIfAborted()
    this.accepted.push(req.jobName)
    this.beforeAccepted?.()
    progress.accepted()
    return await new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new PrinterError('site stopped', 'aborted-by-system', false)), { once: true })
      // the paper comes out whether or not the site still waits
      this.finishers.push(() => { this.completed.push(req.jobName); resolve({ impressions: 1 }) })
    })
  }

  finishAll (): void { for (const f of this.finishers.splice(0)) f() }
  async probe (): Promise<{ ok: boolean, message: string }> { return { ok: true, message: 'idle' } }
}

interface Site { store: DocStore, jobs: JobService, persistence: CrashablePersistence }

async function open (dir: string, signer: Signer, printer: Printer): Promise<Site> {
  const persistence = new CrashablePersistence(await LevelPersistence.open(join(dir, 'db')), new AsyncTracker(), 'site-a', () => {})
  const store = new DocStore(persistence, signer)
  for (const n of await store.storedNames()) await store.open(n)
  const jobs = new JobService({ peer: signer.id, site: 'a', queues: [{ name: 'secure', hold: true, defaultPrinter: 'mfp', info: '', location: '' }] },
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
  const { signer } = await generateIdentity()
  const printer = new Printer()
  let site = await open(dir, signer, printer)
  const ippId = await heldJob(site)
  await site.jobs.release(ippId, { user: 'alice', admin: false })
  await until(() => site.jobs.getJob(ippId)?.state === 'printing', 5000, 'the job is printing')
  await kill(site)
  printer.finishAll() // the paper comes out while the site is down
  site = await open(dir, signer, printer)
  try {
    const usage = listUsage(await site.store.open(acctDoc(signer.id, periodOf(NOW))))
    assert.equal(printer.completed, ['j1'])
    assert.is(usage.length, 1, `printed once, charged ${usage.length} times; the job is now ${site.jobs.getJob(ippId)?.state ?? 'missing'} (${site.jobs.getJob(ippId)?.reason ?? ''})`)
  } finally {
    await site.jobs.stop()
    await site.store.close()
  }
})

test.run()
