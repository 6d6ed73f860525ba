// The site's print policy (issue 13 item 5): its validation, what it makes of a job, and a real
// job service printing and charging under it — told two-sided and monochrome, charged duplex
// sheets and no colour; charged what the printer did when it could not (no duplex, no monochrome).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createReadStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { acctDoc, directoryDoc, periodOf, siteConfigDoc, siteId, type PeerId } from '../crdt/names.ts'
import { listUsage } from '../crdt/accounting.ts'
import { putUser } from '../crdt/directory.ts'
import { InvalidSiteSettingsError, NO_PRINT_POLICY, setPrintPolicy, validatePrintPolicy } from '../crdt/site-config.ts'
import { Spool } from '../devices/spool.ts'
import { createJobService, type JobService } from '../devices/jobs/service.ts'
import { asPrinted } from '../devices/jobs/policy.ts'
import { printCharge } from '../devices/jobs/usage.ts'
import type { OutputDevice, PrintRequest } from '../devices/output/types.ts'
import type { JobRecord } from '../devices/jobs/types.ts'
import { makePdf } from './fixtures/documents.ts'
import { tempDir } from '../simulations/node-process.ts'
import { generateIdentity } from '../transports/identity.ts'
import { until } from '../simulations/wait.ts'

const logger = pino({ level: 'silent' })
const SITE = siteId('site-a')
const identity = await generateIdentity()
const PEER = identity.signer.id as PeerId
/** A release settles within this here (an in-process printer that answers at once). */
const WAIT_MS = 5_000

const job = (over: Partial<JobRecord> = {}): JobRecord => ({
  id: 'j1', ippId: 1, site: SITE, queue: 'print', owner: 'alice', name: 'r.pdf', state: 'held', copies: 1, sides: 'one-sided', pages: 3, colorPages: 2, createdAt: 0, updatedAt: 0, ...over
})

test('validation: bad policies name what is wrong; groups are kept once each, sorted; what is left out stays', () => {
  for (const [input, message] of [
    [null, 'must be an object'], [[], 'must be an object'], [{}, 'name forceDuplex'], [{ forceDuplex: 1 }, 'forceDuplex must be true or false'],
    [{ monoGroups: 'a' }, 'monoGroups must be a list'], [{ monoGroups: [7] }, 'not a group name: 7'], [{ monoGroups: ['a\u0001'] }, 'not a group name'],
    [{ colour: true }, 'unknown print policy setting "colour"']
  ] as const) {
    assert.throws(() => validatePrintPolicy(input), (err: Error) => err instanceof InvalidSiteSettingsError && err.message.includes(message), JSON.stringify(input))
  }
  assert.equal(validatePrintPolicy({ monoGroups: ['staff', 'students', 'staff'] }), { monoGroups: ['staff', 'students'] })
  assert.equal(validatePrintPolicy({ forceDuplex: true }), { forceDuplex: true })
})

test('asPrinted: forced duplex turns one-sided jobs two-sided (long edge) and leaves two-sided ones; a monochrome-only group (in any case) has no colour pages; others print as sent', () => {
  const policy = { forceDuplex: true, monoGroups: ['students'] }
  assert.equal(asPrinted(job(), policy, ['students']), { job: job({ sides: 'two-sided-long-edge', colorPages: 0 }), monochrome: true })
  assert.equal(asPrinted(job({ sides: 'two-sided-short-edge' }), policy, []), { job: job({ sides: 'two-sided-short-edge' }), monochrome: false })
  assert.equal(asPrinted(job(), policy, ['staff']), { job: job({ sides: 'two-sided-long-edge' }), monochrome: false })
  assert.equal(asPrinted(job(), NO_PRINT_POLICY, ['students']), { job: job(), monochrome: false })
  assert.equal(asPrinted(job(), policy, ['Students']).monochrome, true, 'a group name from LDAP in another case is the same group')
})

test('a job whose pages are unknown, printed monochrome, is charged no colour pages (not every page as colour)', () => {
  const unknown = job({ pages: undefined, colorPages: undefined, declaredPages: 4 })
  assert.equal([printCharge(unknown).colorPages, printCharge(unknown, undefined, true).colorPages], [4, 0])
  assert.equal([printCharge(unknown, 5).colorPages, printCharge(unknown, 5, true).colorPages], [5, 0])
})

interface Rig { dir: string, store: DocStore, jobs: JobService, requests: PrintRequest[] }

/** A job service of site-a printing to an in-process printer that drops `dropped`; alice is in `students`. */
async function rig (dropped: string[] = []): Promise<Rig> {
  const dir = await tempDir()
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), identity.signer)
  const requests: PrintRequest[] = []
  const printer: OutputDevice = {
    uri: 'test:policy',
    async print (req, progress) { requests.push(req); progress.accepted(undefined); return dropped.length > 0 ? { dropped } : {} },
    async probe () { return { ok: true, message: 'idle' } }
  }
  const jobs = createJobService(
    { peer: PEER, site: SITE, queues: [{ name: 'print', hold: true, defaultPrinter: 'p1', info: '', location: '' }] },
    { store, spool: await Spool.open(join(dir, 'spool')), printers: new Map([['p1', printer]]), logger })
  await jobs.start()
  await store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', groups: ['students'], updatedAt: 0 } as never))
  await store.transact(siteConfigDoc(SITE), { kind: 'local', service: 'test' }, (d) => setPrintPolicy(d, { forceDuplex: true, monoGroups: ['students'] }, 0))
  return { dir, store, jobs, requests }
}

async function printed (r: Rig, owner: string): Promise<{ request: PrintRequest | undefined, usage: unknown[] }> {
  const pdf = await makePdf(r.dir, { pages: 3, colorPages: [0, 1], title: owner })
  const created = await r.jobs.createJob({ queue: 'print', owner, name: `${owner}.pdf`, copies: 1, sides: 'one-sided' })
  const held = await r.jobs.addDocument(created.ippId, { format: 'application/pdf', data: createReadStream(pdf) })
  await r.jobs.release(held.id, { user: owner, admin: false })
  await until(() => r.jobs.getById(held.id)?.state === 'printed', WAIT_MS, `${owner}'s job printed`)
  const usage = listUsage(r.store.get(acctDoc(PEER, periodOf(Date.now()))) as never).filter((u) => u.jobId === held.id).map((u) => [u.user, u.pages, u.colorPages, u.sheets])
  return { request: r.requests.at(-1), usage }
}

async function close (r: Rig): Promise<void> {
  await r.jobs.stop()
  await r.store.close()
  await rm(r.dir, { recursive: true, force: true })
}

test('a release under the policy: alice (students) is sent two-sided and monochrome, charged 2 sheets and no colour; bob two-sided in colour', async () => {
  const r = await rig()
  try {
    const alice = await printed(r, 'alice')
    assert.equal([alice.request?.sides, alice.request?.colorMode], ['two-sided-long-edge', 'monochrome'])
    assert.equal(alice.usage, [['alice', 3, 0, 2]])
    const bob = await printed(r, 'bob')
    assert.equal([bob.request?.sides, bob.request?.colorMode], ['two-sided-long-edge', undefined])
    assert.equal(bob.usage, [['bob', 3, 2, 2]])
  } finally {
    await close(r)
  }
})

test('a printer that took neither two-sided nor monochrome: charged what it printed, one-sided sheets and the colour pages', async () => {
  const r = await rig(['sides', 'print-color-mode'])
  try {
    const alice = await printed(r, 'alice')
    assert.equal([alice.request?.sides, alice.request?.colorMode], ['two-sided-long-edge', 'monochrome'], 'asked')
    assert.equal(alice.usage, [['alice', 3, 2, 3]], 'charged as printed')
  } finally {
    await close(r)
  }
})

test.run()
