// Intake limits (issue 21, "intake that bad input cannot sink"), each with real IPP requests
// against a site's node in-process: a document past the size limit after decompression, a
// decompression bomb (IPP compression gzip and deflate, HTTP Content-Encoding), a job of too
// many pages (analysed, declared by a document whose analysis was stopped, or declared by the
// client), a user or an address holding its quota of jobs or bytes, an address sending too
// many documents at once. Each refusal has its status and a message naming the limit and its
// value; nothing of the refused document stays in the spool or is held; a normal job sent
// right after still prints; /metrics counts each refusal by its limit.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { Agent, request as httpRequest, type ClientRequest } from 'node:http'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { Op, Tag, attr, encodeMessage, findAttr, integerValue, statusName, stringValue, type IppAttribute, type IppMessage } from '../devices/ipp/wire.ts'
import { AnalysisStoppedError, parseDocument } from '../devices/documents/index.ts'
import { NodeMetrics } from '../ui/metrics.ts'
import { makePdf } from './fixtures/documents.ts'
import { gzipBomb, zlibBomb } from '../simulations/bench/hostile-documents.ts'
import { paddedPdf, type PaddedPdf } from '../simulations/bench/pdf.ts'
import { startIppRig, ippPost, httpProbe, ippRequest, type IppRig, type IppReply } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const MiB = 1024 * 1024
/**
 * Small limits, so each is reached with a few small requests, at two sites: one for the
 * documents (its size limit above the 16 MiB a body must inflate to before its ratio is
 * judged, so the two are told apart; the quotas at their defaults, above it), one for the
 * quotas (the document limits at their defaults).
 */
const DOCUMENT_LIMITS = { maxDocumentBytes: 24 * MiB, maxDecompressionRatio: 100, maxJobImpressions: 20 }
const QUOTA_LIMITS = { maxJobsPerUser: 3, maxBytesPerUser: 1 * MiB, maxJobsPerAddress: 5, maxBytesPerAddress: 1.5 * MiB, maxUploadsPerAddress: 2 }
const ADMIN = { user: 'admin', admin: true }
/** A sender's own loopback address (all of 127/8 is loopback), so its address quotas are its own. */
const ADDRESS = { jobs: '127.0.0.2', bytes: '127.0.0.3', uploads: '127.0.0.4' }

/** The site of the document tests, and of the quota tests. */
let docRig: IppRig
let quotaRig: IppRig
/** The site the running test sends to. */
let rig: IppRig
let docs: string
let pdf1: Buffer
let pdf5: Buffer
let big: PaddedPdf
const metrics = new NodeMetrics()
/** The next analysis stops as the worker pool stops one past its time limit, with this declared page count. */
let stopNextAnalysis: number | undefined

test.before(async () => {
  docs = await tempDir('printmesh-intake-')
  pdf1 = await readFile(await makePdf(docs, { pages: 1 }))
  pdf5 = await readFile(await makePdf(docs, { pages: 5, title: 'five pages' }))
  big = await paddedPdf(600 * 1024)
  quotaRig = await startIppRig({ limits: QUOTA_LIMITS, onRefused: metrics.intakeRefused })
  docRig = await startIppRig({
    limits: DOCUMENT_LIMITS,
    onRefused: metrics.intakeRefused,
    analyze: async (path, format, signal) => {
      const declared = stopNextAnalysis
      stopNextAnalysis = undefined
      if (declared !== undefined) throw new AnalysisStoppedError('the document took longer than 60000 ms to analyse', 'time-limit', { format: 'application/pdf', declaredPages: declared })
      return await parseDocument(path, format, signal)
    }
  })
  metrics.use({ jobStates: () => docRig.jobs.stateCounts() })
  rig = docRig
})
test.after(async () => {
  await docRig?.stop()
  await quotaRig?.stop()
  if (docs !== undefined) await rm(docs, { recursive: true, force: true })
})
test.after.each(async () => {
  // quotas start from nothing in every test: jobs a test left held are deleted
  for (const job of rig.jobs.listJobs({ which: 'not-completed' })) if (job.state === 'held') await rig.jobs.cancel(job.ippId, ADMIN)
})

const pdfFormat = attr('document-format', Tag.mimeMediaType, 'application/pdf')

function printJob (user: string, operation: IppAttribute[] = [], job?: IppAttribute[]): IppMessage {
  return ippRequest(Op.PrintJob, rig.uri, { user, operation: [pdfFormat, ...operation], ...(job !== undefined ? { job } : {}) })
}

/** An agent whose connections come from `address`. */
function from (address: string): Agent {
  return new Agent({ keepAlive: false, localAddress: address })
}

function status (r: IppReply): string {
  assert.is(r.httpStatus, 200, `HTTP ${r.httpStatus}: ${r.raw.toString()}`)
  return statusName(r.message?.code ?? -1)
}
function statusMessage (r: IppReply): string {
  return stringValue(findAttr(r.message as IppMessage, Tag.operationAttributes, 'status-message')) ?? ''
}

/** Asserts the answer's status and that its status-message matches. */
function refused (r: IppReply, expected: string, message: RegExp): void {
  assert.is(status(r), expected, statusMessage(r))
  assert.match(statusMessage(r), message)
}

/** Every file in the spool belongs to a job, and nothing is half-written. */
async function assertSpoolClean (): Promise<void> {
  const spool = join(rig.dir, 'spool')
  const known = new Set(rig.jobs.listJobs({ which: 'all' }).map((j) => j.sha256))
  for (const sub of await readdir(spool)) {
    const files = await readdir(join(spool, sub))
    if (sub === 'tmp') assert.equal(files, [], 'a half-written document left in the spool')
    else for (const f of files) assert.ok(known.has(f), `spooled document ${f} belongs to no job`)
  }
}

/** The jobs `owner` has in each state. */
function statesOf (owner: string): string[] {
  return rig.jobs.listJobs({ which: 'all', owner }).map((j) => j.state)
}

/** A normal one-page job from `agent`'s address is held, released and printed. */
async function printsNormally (user: string, agent?: Agent): Promise<void> {
  const r = await ippPost(rig.uri, printJob(user), pdf1, agent !== undefined ? { agent } : {})
  assert.is(status(r), 'successful-ok', statusMessage(r))
  const id = integerValue(findAttr(r.message as IppMessage, Tag.jobAttributes, 'job-id')) as number
  await rig.jobs.release(id, ADMIN)
  await until(() => rig.jobs.getJob(id)?.state === 'printed', 20_000, `${user}'s normal job printed`)
}

test('the limits are advertised: job-k-octets-supported and job-impressions-supported', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.GetPrinterAttributes, rig.uri, { operation: [attr('requested-attributes', Tag.keyword, 'job-k-octets-supported', 'job-impressions-supported')] }))
  const range = (name: string): unknown => findAttr(r.message as IppMessage, Tag.printerAttributes, name)?.values[0]?.value
  assert.equal(range('job-k-octets-supported'), { lower: 0, upper: DOCUMENT_LIMITS.maxDocumentBytes / 1024 })
  assert.equal(range('job-impressions-supported'), { lower: 0, upper: DOCUMENT_LIMITS.maxJobImpressions })
})

test('a document larger than the limit once decompressed: request-entity-too-large, nothing kept', async () => {
  // 25 MiB of hex digits compress about 2:1, well within the ratio: only the size stops it
  const text = Buffer.from(randomBytes(12.5 * MiB).toString('hex'))
  const r = await ippPost(rig.uri, printJob('dora', [attr('compression', Tag.keyword, 'gzip')]), gzipSync(text))
  refused(r, 'client-error-request-entity-too-large', /document too large: it is over 24 MiB \(after decompression\)/)
  assert.equal(statesOf('dora'), ['failed'])
  assert.match(rig.jobs.listJobs({ which: 'all', owner: 'dora' })[0].message ?? '', /over 24 MiB/)
  // a client that says so up front is refused before a byte of its document is read
  const declared = await ippPost(rig.uri, printJob('dora', [attr('job-k-octets', Tag.integer, 25 * 1024)]), pdf1)
  refused(declared, 'client-error-request-entity-too-large', /job-k-octets says 25 MiB, the largest document this printer accepts is 24 MiB/)
  assert.equal(statesOf('dora'), ['failed'])
  await assertSpoolClean()
  await printsNormally('dora')
})

test('decompression bombs (compression gzip and deflate, Content-Encoding gzip): request-entity-too-large at the ratio, nothing kept', async () => {
  const gzip = await ippPost(rig.uri, printJob('bomber', [attr('compression', Tag.keyword, 'gzip')]), gzipBomb(64 * MiB))
  refused(gzip, 'client-error-request-entity-too-large', /decompresses to more than 100 times its compressed size/)
  const deflate = await ippPost(rig.uri, printJob('bomber', [attr('compression', Tag.keyword, 'deflate')]), zlibBomb(64 * MiB))
  refused(deflate, 'client-error-request-entity-too-large', /decompresses to more than 100 times its compressed size/)
  // the whole HTTP body compressed: the IPP message and the document
  const body = gzipSync(Buffer.concat([encodeMessage(printJob('bomber')), Buffer.alloc(64 * MiB)]))
  const http = await httpProbe(rig.uri, body, undefined, { headers: { 'Content-Encoding': 'gzip' } })
  refused(http, 'client-error-request-entity-too-large', /decompresses to more than 100 times its compressed size/)
  assert.equal(statesOf('bomber'), ['failed', 'failed', 'failed'])
  await assertSpoolClean()
  await printsNormally('bomber')
})

test('a job of more pages × copies than the limit: request-entity-too-large, the job aborted, not held', async () => {
  const fits = await ippPost(rig.uri, printJob('paige', [], [attr('copies', Tag.integer, 4)]), pdf5)
  assert.is(status(fits), 'successful-ok', '5 pages × 4 copies = 20, the limit')
  const tooMany = await ippPost(rig.uri, printJob('paige', [], [attr('copies', Tag.integer, 5)]), pdf5)
  refused(tooMany, 'client-error-request-entity-too-large', /the document has 5 pages × 5 copies = 25 pages; this printer prints at most 20 pages per job/)
  assert.is(integerValue(findAttr(tooMany.message as IppMessage, Tag.jobAttributes, 'job-state')), 8, 'the answer shows the job aborted')
  // a document whose analysis was stopped (pages unknown) by the pages it declares
  stopNextAnalysis = 50_000
  const declared = await ippPost(rig.uri, printJob('paige'), pdf5)
  refused(declared, 'client-error-request-entity-too-large', /the document declares 50000 pages; this printer prints at most 20 pages per job/)
  // a client that says so up front
  const validate = await ippPost(rig.uri, ippRequest(Op.ValidateJob, rig.uri, { user: 'paige', operation: [pdfFormat, attr('job-impressions', Tag.integer, 21)] }))
  refused(validate, 'client-error-request-entity-too-large', /job-impressions says 21 pages; this printer prints at most 20/)
  assert.equal(statesOf('paige'), ['held', 'failed', 'failed'])
  const failed = rig.jobs.listJobs({ which: 'all', owner: 'paige' }).filter((j) => j.state === 'failed')
  for (const j of failed) assert.match(j.message ?? '', /at most 20 pages per job/)
  await assertSpoolClean()
  await printsNormally('paige')
})

test('a user holding the most jobs: client-error-not-possible until one is gone', async () => {
  rig = quotaRig // from here on
  for (let i = 0; i < QUOTA_LIMITS.maxJobsPerUser; i++) assert.is(status(await ippPost(rig.uri, printJob('uma'), pdf1)), 'successful-ok')
  const fourth = await ippPost(rig.uri, printJob('uma'), pdf5)
  refused(fourth, 'client-error-not-possible', /too many jobs: uma has 3 unfinished jobs here, the most one user may have is 3/)
  assert.equal(statesOf('uma'), ['held', 'held', 'held'], 'no job made for the refused request')
  await assertSpoolClean()
  await printsNormally('someone-else') // the same address, another user
  await rig.jobs.cancel(rig.jobs.listJobs({ which: 'all', owner: 'uma' })[0].ippId, ADMIN)
  assert.is(status(await ippPost(rig.uri, printJob('uma'), pdf5)), 'successful-ok', 'one deleted: uma may print again')
})

test('requests at the same moment cannot pass a quota together', async () => {
  // eight at once, each from its own address (so none is refused as busy): exactly three held
  const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => await ippPost(rig.uri, printJob('rush'), pdf1, { agent: from(`127.0.1.${i + 1}`) })))
  assert.equal(answers.map(status).sort(), [...Array(3).fill('successful-ok'), ...Array(5).fill('client-error-not-possible')].sort())
  assert.equal(statesOf('rush'), ['held', 'held', 'held'])
  await assertSpoolClean()
})

test('a user holding the most bytes: the document that passes it is refused as it arrives', async () => {
  assert.is(status(await ippPost(rig.uri, printJob('ursula'), big.variant(1))), 'successful-ok')
  const second = await ippPost(rig.uri, printJob('ursula'), big.variant(2))
  refused(second, 'client-error-not-possible', /too much held: ursula's unfinished jobs here would hold more than 1 MiB with this document, the most one user may hold is 1 MiB/)
  assert.equal(statesOf('ursula'), ['held', 'failed'])
  await assertSpoolClean()
  await printsNormally('ursula') // 600 KiB held and a small one fit
})

test('an address holding the most jobs: client-error-not-possible for every user sending from it', async () => {
  const agent = from(ADDRESS.jobs)
  for (let i = 1; i <= QUOTA_LIMITS.maxJobsPerAddress; i++) assert.is(status(await ippPost(rig.uri, printJob(`nat${i}`), pdf1, { agent })), 'successful-ok')
  const next = await ippPost(rig.uri, printJob('nat6'), pdf1, { agent })
  refused(next, 'client-error-not-possible', /too many jobs: 5 unfinished jobs here were sent from 127\.0\.0\.2, the most one address may have is 5/)
  assert.equal(statesOf('nat6'), [])
  await assertSpoolClean()
  await printsNormally('nat6') // from another address
})

test('an address holding the most bytes: client-error-not-possible', async () => {
  const agent = from(ADDRESS.bytes)
  assert.is(status(await ippPost(rig.uri, printJob('bea'), big.variant(3), { agent })), 'successful-ok')
  assert.is(status(await ippPost(rig.uri, printJob('bob'), big.variant(4), { agent })), 'successful-ok')
  const third = await ippPost(rig.uri, printJob('bill'), big.variant(5), { agent })
  refused(third, 'client-error-not-possible', /too much held: unfinished jobs sent from 127\.0\.0\.3 would hold more than 1\.5 MiB with this document, the most one address may hold is 1\.5 MiB/)
  assert.equal(statesOf('bill'), ['failed'])
  await assertSpoolClean()
  await printsNormally('bill')
})

/** Starts a Print-Job from `address` and sends only the start of its document. */
function halfSent (address: string, user: string): ClientRequest {
  const head = encodeMessage(printJob(user))
  const req = httpRequest(`${rig.base}/ipp/print`, { method: 'POST', localAddress: address, headers: { 'Content-Type': 'application/ipp', 'Content-Length': String(head.length + pdf1.length) } })
  req.on('error', () => {}) // ended by the test
  req.write(head)
  req.write(pdf1.subarray(0, 100))
  return req
}

test('an address sending more documents at once than it may: server-error-busy with Retry-After', async () => {
  const slow = [halfSent(ADDRESS.uploads, 'sam'), halfSent(ADDRESS.uploads, 'sam')]
  try {
    await until(() => statesOf('sam').filter((s) => s === 'received').length === 2, 10_000, 'both documents arriving')
    const third = await httpProbe(rig.uri, printJob('sue'), pdf1, { agent: from(ADDRESS.uploads) })
    refused(third, 'server-error-busy', /busy: 2 documents are being received from 127\.0\.0\.4 now, the most one address may send at once; try again in 5 seconds/)
    assert.is(third.headers?.['retry-after'], '5')
    assert.equal(statesOf('sue'), [])
    await printsNormally('sue') // another address is not held up
  } finally {
    for (const req of slow) req.end(pdf1.subarray(100))
  }
  await until(() => statesOf('sam').every((s) => s === 'held'), 10_000, 'the slow documents held')
  await assertSpoolClean()
  await printsNormally('sue', from(ADDRESS.uploads))
})

test('/metrics counts the refusals by limit', async () => {
  const text = await metrics.render()
  const counted = (limit: string): number => Number(new RegExp(`^printmesh_ipp_intake_refused_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  assert.equal({
    'document-size': counted('document-size'),
    'decompression-ratio': counted('decompression-ratio'),
    'job-impressions': counted('job-impressions'),
    'user-jobs': counted('user-jobs'),
    'user-bytes': counted('user-bytes'),
    'address-jobs': counted('address-jobs'),
    'address-bytes': counted('address-bytes'),
    'address-uploads': counted('address-uploads')
  }, {
    'document-size': 2,
    'decompression-ratio': 3,
    'job-impressions': 3,
    'user-jobs': 6,
    'user-bytes': 1,
    'address-jobs': 1,
    'address-bytes': 1,
    'address-uploads': 1
  })
})

test.run()
