// Handover (client spooling off) under attack: crashes, expiring grants, failing fetches, the
// same document twice, a busy or flooded site, oversized documents. Two job services in one
// process, as test/handover.test.ts; the link calls the site's desk directly and its fetch
// follows the blob protocol's rules (only a job being released is served; one transfer per
// destination file at a time, transports/blob.ts fetchBlob).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { siteId, type PeerId } from '../crdt/names.ts'
import { Spool } from '../devices/spool.ts'
import { createJobService, type JobService } from '../devices/jobs/service.ts'
import { HandOverDesk, HandOverSender, HANDOVER_GRANT_TTL_MS } from '../devices/jobs/handover.ts'
import { intakeLimits, type IntakeLimits } from '../devices/jobs/intake-limits.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import { parseDocument, type DocumentInfo } from '../devices/documents/index.ts'
import { DocumentNotServedError, HANDED_OVER_REASON, type HandOverReply, type HandOverRequest, type JobRecord, type RoamingLink } from '../devices/jobs/types.ts'
import { makePdf } from './fixtures/documents.ts'
import { parseReleaseRequest } from '../node/roaming.ts'
import { tempDir } from '../simulations/node-process.ts'
import { generateIdentity } from '../transports/identity.ts'
import { until } from '../simulations/wait.ts'

const logger = pino({ level: 'silent' })
const SITE = siteId('site-a')
const WAIT_MS = 10_000
const clientId = await generateIdentity()
const siteIdentity = await generateIdentity()
const CLIENT = clientId.signer.id as PeerId
const SITE_PEER = siteIdentity.signer.id as PeerId
const ALICE = { user: 'alice', admin: false }

type Analyze = (path: string, format: string, signal?: AbortSignal) => Promise<DocumentInfo>
interface Node { dir: string, store: DocStore, spool: Spool, copies: Spool, jobs: JobService, clock: { offset: number } }

async function node (dir: string, identity: Awaited<ReturnType<typeof generateIdentity>>, queue: string, analyze?: Analyze): Promise<Node> {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), identity.signer)
  const spool = await Spool.open(join(dir, 'spool'))
  const copies = await Spool.open(join(dir, 'copies'))
  const clock = { offset: 0 }
  const jobs = createJobService(
    { peer: identity.signer.id as PeerId, site: SITE, sweepMs: 0, queues: [{ name: queue, hold: true, defaultPrinter: 'p1', info: '', location: '' }] },
    {
      store,
      spool,
      printers: new Map([['p1', createOutputDevice(`file://${join(dir, 'out')}`, { logger })]]),
      logger,
      now: () => Date.now() + clock.offset,
      ...(analyze !== undefined ? { analyze } : {})
    })
  await jobs.start()
  return { dir, store, spool, copies, jobs, clock }
}

interface Options {
  limits?: Partial<IntakeLimits>
  clientAnalyze?: Analyze
  siteAnalyze?: Analyze
  /** Called before each fetch of the site (may throw, as a transfer that broke off, or wait). */
  beforeFetch?: (sha256: string) => Promise<void>
  /** Answers the client instead of the desk (undefined: the desk answers). */
  intercept?: (request: HandOverRequest) => HandOverReply | undefined
}

interface Rig { client: Node, site: Node, desk: HandOverDesk, sender: HandOverSender, link: RoamingLink, settings: { handingOver: boolean, siteUp: boolean }, calls: HandOverRequest[], fetches: string[], abort: AbortController, limits: IntakeLimits, transfers: Set<string> }
let rig: Rig | undefined

async function build (o: Options = {}): Promise<Rig> {
  const client = await node(await tempDir(), clientId, 'printmesh', o.clientAnalyze)
  const site = await node(await tempDir(), siteIdentity, 'print', o.siteAnalyze)
  const abort = new AbortController()
  const calls: HandOverRequest[] = []
  const fetches: string[] = []
  const settings = { handingOver: true, siteUp: true }
  /** As fetchBlob: two transfers never write one partial file (BlobTransferInProgressError). */
  const writing = new Set<string>()
  let r: Rig | undefined
  const link: RoamingLink = {
    requestGrant: async () => { throw new Error('not in this test') },
    commit: async () => { throw new Error('not in this test') },
    deleteJob: async () => { throw new Error('not in this test') },
    fetch: async (_holder, sha256, dest) => {
      fetches.push(sha256)
      const partial = `${dest}.partial`
      if (writing.has(partial)) throw new Error(`a transfer into ${dest} is already under way`)
      writing.add(partial)
      try {
        await o.beforeFetch?.(sha256)
        // the blob protocol's rule: only a job still to print is served
        if (!client.jobs.listJobs({ which: 'not-completed' }).some((j) => j.sha256 === sha256 && j.state === 'releasing')) throw new DocumentNotServedError('the workstation', 'no job being released has it') // as node/roaming.ts translates the blob protocol's denial
        await copyFile(client.spool.path(sha256), partial)
        await delay(20) // a transfer takes a while
        await rename(partial, dest)
      } finally {
        writing.delete(partial)
      }
    },
    handOver: async (_site, request): Promise<HandOverReply> => {
      calls.push(request)
      if (!settings.siteUp) throw new Error('site unreachable')
      return o.intercept?.(request) ?? (r as Rig).desk.handOver(CLIENT, request)
    }
  }
  const limits = intakeLimits(o.limits ?? {})
  const sender = new HandOverSender({ site: SITE }, { jobs: client.jobs, link, handingOver: () => settings.handingOver, siteServer: () => settings.siteUp ? SITE_PEER : undefined, logger })
  r = { client, site, desk: undefined as unknown as HandOverDesk, sender, link, settings, calls, fetches, abort, limits, transfers: writing }
  r.desk = newDesk(r)
  return r
}

/** The site's desk, as its roaming service makes it at start (an empty `pending`). */
function newDesk (r: Rig): HandOverDesk {
  const abort = r.abort
  return new HandOverDesk({ site: SITE, limits: r.limits }, {
    jobs: r.site.jobs, link: r.link, copies: r.site.copies, memberOf: (p) => p === CLIENT ? { role: 'client', site: SITE } : undefined, signal: () => abort.signal, logger
  })
}

async function close (n: Node): Promise<void> {
  await n.jobs.stop()
  await n.store.close()
  await rm(n.dir, { recursive: true, force: true })
}

test.after.each(async () => {
  if (rig === undefined) return
  rig.abort.abort()
  await rig.sender.stop()
  await close(rig.client)
  await close(rig.site)
  rig = undefined
})

async function pdf (n: Node, name: string, pages = 3): Promise<string> {
  return await makePdf(n.dir, { pages, colorPages: [1], title: name })
}

async function submit (n: Node, name: string, file?: string): Promise<JobRecord> {
  const path = file ?? await pdf(n, name)
  const job = await n.jobs.createJob({ queue: n.jobs.queues()[0].name, owner: 'alice', name, copies: 1, sides: 'one-sided' })
  return await n.jobs.addDocument(job.ippId, { format: 'application/pdf', data: createReadStream(path) })
}

async function passUntil (r: Rig, done: () => boolean, what: string): Promise<void> {
  await until(async () => { await r.sender.pass(); return done() }, WAIT_MS, what)
}

const siteJobs = (r: Rig): JobRecord[] => r.site.jobs.listJobs({ which: 'all' })
const state = (n: Node, id: string): string | undefined => n.jobs.getById(id)?.state
/** Alice's job can still be printed somewhere: held on the workstation with its bytes, or held at the site. */
async function stillPrintable (r: Rig, job: JobRecord): Promise<boolean> {
  const here = r.client.jobs.getById(job.id)
  if (here?.state === 'held' && await r.client.spool.has(job.sha256 ?? '')) return true
  return siteJobs(r).some((j) => j.handedOverFrom?.jobId === job.id && j.state === 'held')
}

// ---- 1. a fetch that breaks off ---------------------------------------------------------------

test('a transfer that breaks off once (a stream reset) loses nothing: alice\'s job stays printable on the workstation or at the site', async () => {
  let broken = false
  rig = await build({ beforeFetch: async () => { if (!broken) { broken = true; throw new Error('stream reset') } } })
  const r = rig
  const job = await submit(r.client, 'reset.pdf')
  await passUntil(r, () => broken && state(r.client, job.id) === 'deleted', 'handed over once the transfer is asked again')
  const atSite = siteJobs(r).map((j) => `${j.state}:${j.reason ?? ''}`)
  assert.ok(await stillPrintable(r, job),
    `job lost: workstation ${state(r.client, job.id)} (${r.client.jobs.getById(job.id)?.reason ?? ''}), bytes there ${String(await r.client.spool.has(job.sha256 ?? ''))}; site jobs ${JSON.stringify(atSite)}`)
})

// ---- 2. the same document twice ---------------------------------------------------------------

test('alice prints the same document twice: both jobs are handed over, two jobs held at the site, none lost', async () => {
  rig = await build()
  const r = rig
  const file = await pdf(r.client, 'twice.pdf')
  const a = await submit(r.client, 'twice.pdf', file)
  const b = await submit(r.client, 'twice.pdf', file)
  assert.is(a.sha256, b.sha256)
  await passUntil(r, () => [a, b].every((j) => state(r.client, j.id) === 'deleted'), 'both handed over')
  const lost = []
  for (const j of [a, b]) if (!await stillPrintable(r, j)) lost.push(j.id === a.id ? 'first' : 'second')
  assert.equal(lost, [], `site jobs ${JSON.stringify(siteJobs(r).map((j) => `${j.state}:${j.message ?? ''}`))}`)
  assert.is(siteJobs(r).filter((j) => j.state === 'held').length, 2, 'two jobs held at the site')
})

test('the same document handed over twice, one after the other: the workstation keeps no copy of it once both are at the site', async () => {
  rig = await build()
  const r = rig
  const file = await pdf(r.client, 'again.pdf')
  const a = await submit(r.client, 'again.pdf', file)
  await passUntil(r, () => state(r.client, a.id) === 'deleted', 'first handed over')
  const b = await submit(r.client, 'again.pdf', file)
  await passUntil(r, () => state(r.client, b.id) === 'deleted', 'second handed over')
  assert.is(siteJobs(r).filter((j) => j.state === 'held').length, 2)
  assert.not.ok(await r.client.spool.has(a.sha256 ?? ''), 'no copy left on the workstation (spooling off)')
})

test('a second job of the same document still being analysed on the workstation keeps its bytes when the first one is handed over', async () => {
  let gate: (() => void) | undefined
  let calls = 0
  const clientAnalyze: Analyze = async (path, format, signal) => {
    const info = await parseDocument(path, format, signal)
    if (++calls === 2) await new Promise<void>((resolve) => { gate = resolve })
    return info
  }
  rig = await build({ clientAnalyze })
  const r = rig
  const file = await pdf(r.client, 'copy.pdf')
  const a = await submit(r.client, 'copy.pdf', file)
  // the second print of the same file: its bytes are in the spool, its analysis under way
  const second = submit(r.client, 'copy.pdf', file)
  await until(() => gate !== undefined, WAIT_MS, 'second job being analysed')
  await passUntil(r, () => state(r.client, a.id) === 'deleted', 'first handed over')
  gate?.()
  const b = await second
  assert.is(b.state, 'held')
  assert.ok(await r.client.spool.has(b.sha256 ?? ''), 'the second job, held on the workstation, still has its document')
})

// ---- 3. the grant expiring -------------------------------------------------------------------

test('the site took the job but the client never read the answer (site unreachable for it): after the grant\'s time the job is not both held at the site and printable on the workstation', async () => {
  rig = await build()
  const r = rig
  const job = await submit(r.client, 'twice-printed.pdf')
  await r.sender.pass() // granted, asked: the site starts taking it
  await until(() => siteJobs(r).some((j) => j.state === 'held'), WAIT_MS, 'held at the site')
  r.settings.siteUp = false // the answer never reaches the client
  r.client.clock.offset = HANDOVER_GRANT_TTL_MS + 60_000
  await r.client.jobs.sweep()
  await r.sender.pass()
  let printedHere = false
  try {
    await r.client.jobs.release(job.id, ALICE) // at the workstation's own release (or a terminal's grant, or the fallback printer)
    await r.client.jobs.idle()
    printedHere = state(r.client, job.id) === 'printed'
  } catch { /* refused: right */ }
  const heldThere = siteJobs(r).filter((j) => j.handedOverFrom?.jobId === job.id && j.state === 'held')
  assert.not.ok(printedHere && heldThere.length > 0, `printed on the workstation (${state(r.client, job.id)}) and held at the site as job ${heldThere[0]?.ippId}: printed twice once released there`)
})

// ---- 4. a busy or flooded site ----------------------------------------------------------------

test('the site answering that it is busy ("asked again later") keeps the job for a later pass: handed over once the site has room', async () => {
  let busy = true
  rig = await build({ intercept: () => busy ? { ok: false, error: 'invalid-state', message: 'the site is taking too many jobs at once; asked again later' } : undefined })
  const r = rig
  const job = await submit(r.client, 'busy.pdf')
  await passUntil(r, () => r.calls.length > 0, 'answered busy')
  assert.is.not(state(r.client, job.id), 'deleted', 'not handed over while the site is busy')
  busy = false
  await passUntil(r, () => state(r.client, job.id) === 'deleted', 'handed over once the site has room')
})

/** Handovers the desk keeps in hand in the next test: its bound (1,000 in the product) made small, as many jobs taken as it. */
const PENDING_BOUND = 40

test(`a site that took as many jobs from its workstations as it keeps handovers in hand (${PENDING_BOUND} here, 1,000 in the product) still takes the next one`, async () => {
  // the site analyses in a moment here: the desk's bookkeeping is under test, not the analyser
  const siteAnalyze: Analyze = async () => ({ format: 'application/pdf', pages: 1, colorPages: 0 })
  rig = await build({ siteAnalyze, limits: { maxJobsPerUser: 100_000, maxJobsPerAddress: 100_000, maxBytesPerUser: 1e12, maxBytesPerAddress: 1e12 } })
  const r = rig
  r.desk = new HandOverDesk({ site: SITE, limits: r.limits, maxPending: PENDING_BOUND }, {
    jobs: r.site.jobs, link: r.link, copies: r.site.copies, memberOf: (p) => p === CLIENT ? { role: 'client', site: SITE } : undefined, signal: () => r.abort.signal, logger
  })
  // as many earlier handovers (other client jobs) as the bound, each asked until adopted as the client does
  const docs = join(r.client.dir, 'docs')
  const served = new Map<string, string>()
  const link = r.link
  const fetch = link.fetch.bind(link)
  link.fetch = async (holder, sha256, dest, signal) => {
    const path = served.get(sha256)
    if (path === undefined) return await fetch(holder, sha256, dest, signal)
    await copyFile(path, dest)
  }
  await mkdir(docs, { recursive: true })
  const BATCH = 10
  for (let from = 0; from < PENDING_BOUND; from += BATCH) {
    const requests: HandOverRequest[] = []
    for (let i = from; i < from + BATCH; i++) {
      const bytes = randomBytes(64)
      const sha256 = createHash('sha256').update(bytes).digest('hex')
      const path = join(docs, sha256)
      await writeFile(path, bytes)
      served.set(sha256, path)
      requests.push({ jobId: `earlier-${i}`, grantId: `g-${i}`, owner: `user${i % 50}`, name: `doc${i}`, copies: 1, sides: 'one-sided', format: 'application/pdf', sha256, size: 64 })
    }
    for (const q of requests) r.desk.handOver(CLIENT, q)
    await until(() => requests.every((q) => { const a = r.desk.handOver(CLIENT, q); return a.ok && a.state === 'adopted' }), 60_000, `batch from ${from} adopted`)
  }
  assert.is(siteJobs(r).filter((j) => j.state === 'held').length, PENDING_BOUND)
  const job = await submit(r.client, 'after-a-thousand.pdf')
  await passUntil(r, () => state(r.client, job.id) === 'deleted', 'the next job handed over')
})

// ---- 5. an oversized document -----------------------------------------------------------------

test('a document over the site\'s size limit is refused from the size the client declares, before the site downloads it', async () => {
  rig = await build({ limits: { maxDocumentBytes: 1_000 } })
  const r = rig
  const job = await submit(r.client, 'poster.pdf', undefined)
  assert.ok((job.size ?? 0) > 1_000, `the document is ${job.size ?? 0} bytes`)
  await passUntil(r, () => state(r.client, job.id) === 'held' && r.calls.length > 0, 'refused')
  assert.match(r.client.jobs.getById(job.id)?.message ?? '', /kept on this workstation/)
  assert.equal(r.fetches, [], 'the site fetched a document it could only refuse (a client may declare any size: the site fills its disk first)')
})

test('a handover request from the wire with a sides value IPP would never accept is refused as malformed (the site\'s IPP intake takes only its sides-supported)', () => {
  const request = { jobId: 'j', grantId: 'g', owner: 'alice', name: 'x.pdf', copies: 1, sides: 'sideways-please', format: 'application/pdf', sha256: 'a'.repeat(64), size: 10 }
  const parsed = parseReleaseRequest({ op: 'handover', request })
  assert.type(parsed, 'string', `accepted: ${JSON.stringify(parsed)}`)
})

// ---- 6. the site restarting mid-handover ---------------------------------------------------------

test('the site stopped (a restart) while fetching a document: once it is back, alice\'s job is still printable somewhere', async () => {
  let stopping = false
  rig = await build({ beforeFetch: async () => { if (!stopping) { stopping = true; const s = (rig as Rig).abort.signal; await new Promise<void>((_resolve, reject) => { s.addEventListener('abort', () => { reject(new Error('the site is stopping')) }) }) } } })
  const r = rig
  const job = await submit(r.client, 'restart.pdf')
  await r.sender.pass()
  await until(() => stopping, WAIT_MS, 'fetch under way')
  r.abort.abort() // the site stops: its roaming service aborts the handovers under way
  await until(() => siteJobs(r).every((j) => j.state !== 'received'), WAIT_MS, 'the site job settled')
  // started again: a new desk (its pending map empty) over the same jobs
  r.abort = new AbortController()
  r.desk = newDesk(r)
  await passUntil(r, () => state(r.client, job.id) === 'deleted', 'handed over once the site is back')
  assert.ok(await stillPrintable(r, job),
    `job lost: workstation ${state(r.client, job.id)} (${r.client.jobs.getById(job.id)?.reason ?? ''}); site jobs ${JSON.stringify(siteJobs(r).map((j) => `${j.state}:${j.reason ?? ''}`))}`)
})

// ---- 7. behaviour that is right (these pass) --------------------------------------------------

test('a job its owner deleted at the site is still answered as adopted to a client asking again: not taken twice, the client\'s copy goes', async () => {
  rig = await build()
  const r = rig
  const job = await submit(r.client, 'mine.pdf')
  await passUntil(r, () => state(r.client, job.id) === 'deleted', 'handed over')
  const there = siteJobs(r)[0]
  await r.site.jobs.cancel(there.id, ALICE)
  const again = r.desk.handOver(CLIENT, { jobId: job.id, grantId: 'x', owner: 'alice', name: 'mine.pdf', copies: 1, sides: 'one-sided', format: 'application/pdf', sha256: job.sha256 ?? '', size: job.size ?? 0 })
  assert.equal([again.ok, again.ok && again.state], [true, 'adopted'])
  assert.is(siteJobs(r).length, 1, 'not taken twice')
  assert.is(r.client.jobs.getById(job.id)?.reason, HANDED_OVER_REASON)
})

test('releasing → deleted is only the handover\'s: a job released at a printer (or granted to a terminal) cannot be cancelled, and completeHandOver refuses a printer\'s grant', async () => {
  rig = await build()
  const r = rig
  const job = await submit(r.client, 'granted.pdf')
  const granted = await r.client.jobs.grantRelease(job.id, { peer: SITE_PEER, site: SITE, printer: 'mfp' }, ALICE, 60_000)
  let cancelRefused = false
  try { await r.client.jobs.cancel(job.id, ALICE) } catch { cancelRefused = true }
  assert.ok(cancelRefused, 'cancel refused while releasing')
  let completeRefused = false
  try { await r.client.jobs.completeHandOver(job.id, granted.grant?.id ?? '', 1) } catch { completeRefused = true }
  assert.ok(completeRefused, 'not completed as a handover')
  assert.is(state(r.client, job.id), 'releasing')
  assert.ok(await r.client.spool.has(job.sha256 ?? ''))
})

test('the site counts handed-over jobs against the workstation\'s address: over maxJobsPerAddress the next is refused and kept on the workstation', async () => {
  rig = await build({ limits: { maxJobsPerAddress: 1 } })
  const r = rig
  const a = await submit(r.client, 'first.pdf')
  await passUntil(r, () => state(r.client, a.id) === 'deleted', 'first handed over')
  const b = await submit(r.client, 'second.pdf')
  await passUntil(r, () => state(r.client, b.id) === 'held' && r.client.jobs.getById(b.id)?.message !== undefined && r.calls.some((q) => q.jobId === b.id), 'second refused')
  assert.match(r.client.jobs.getById(b.id)?.message ?? '', /^kept on this workstation: site site-a refused it/)
  assert.ok(await r.client.spool.has(b.sha256 ?? ''))
  assert.is(siteJobs(r).filter((j) => j.state === 'held').length, 1)
})

test('a forged request for a job the client does not have (another job\'s sha256, another owner) takes nothing at the site', async () => {
  rig = await build()
  const r = rig
  const other = await submit(r.site, 'bobs.pdf') // a document the site holds already
  const reply = r.desk.handOver(CLIENT, { jobId: 'forged', grantId: 'g', owner: 'bob', name: 'x', copies: 1, sides: 'one-sided', format: 'application/pdf', sha256: other.sha256 ?? '', size: other.size ?? 0 })
  assert.equal([reply.ok, reply.ok && reply.state], [true, 'adopting'])
  await until(() => { const a = r.desk.handOver(CLIENT, { jobId: 'forged', grantId: 'g', owner: 'bob', name: 'x', copies: 1, sides: 'one-sided', format: 'application/pdf', sha256: other.sha256 ?? '', size: other.size ?? 0 }); return !a.ok || a.state !== 'adopting' }, WAIT_MS, 'settled')
  assert.equal(siteJobs(r).filter((j) => j.state === 'held').map((j) => j.name), ['bobs.pdf'], 'nothing new held at the site')
})

test('the site killed (kill -9) mid-fetch: at its restart its job without a document fails, the client asks again and the site takes the job once', async () => {
  let hang = true
  let fetching = false
  rig = await build({ beforeFetch: async () => { if (hang) { fetching = true; await new Promise<void>(() => {}) } } })
  const r = rig
  const job = await submit(r.client, 'killed.pdf')
  await r.sender.pass()
  await until(() => fetching, WAIT_MS, 'fetch under way')
  // kill -9: nothing of the take runs again; the site's database and spool stay as they are
  await r.site.jobs.stop()
  await r.site.store.close()
  r.transfers.clear() // the killed process's transfers are gone with it
  hang = false
  r.site = await node(r.site.dir, siteIdentity, 'print')
  r.abort = new AbortController()
  r.desk = newDesk(r)
  await passUntil(r, () => state(r.client, job.id) === 'deleted', 'handed over after the restart')
  assert.equal(siteJobs(r).map((j) => j.state).sort(), ['failed', 'held'])
  assert.is(siteJobs(r).find((j) => j.state === 'held')?.handedOverFrom?.jobId, job.id)
})

test.run()
