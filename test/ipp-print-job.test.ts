// Job creation over IPP: Print-Job, Validate-Job, Create-Job + Send-Document, against the
// real job service in-process. Documents stream into the spool; format, compression and
// fidelity errors get their RFC 8011 statuses.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import { Op, Status, Tag, attr, collection, findAttr, integerValue, stringValue, stringValues, statusName, type IppMessage } from '../devices/ipp/wire.ts'
import { makePdf, makePostScript, makeText } from './fixtures/documents.ts'
import { startIppRig, ippPost, ippRequest, type IppRig, type IppReply } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { rm } from 'node:fs/promises'

let rig: IppRig
let docs: string
let pdf2: Buffer

test.before(async () => {
  rig = await startIppRig({ users: { carol: '3030' } })
  docs = await tempDir('printmesh-ipp-docs-')
  pdf2 = await readFile(await makePdf(docs, { pages: 2, media: 'a4' }))
})
test.after(async () => {
  await rig?.stop()
  if (docs !== undefined) await rm(docs, { recursive: true, force: true })
})

function status (r: IppReply): string {
  assert.is(r.httpStatus, 200, `HTTP ${r.httpStatus}: ${r.raw.toString()}`)
  return statusName(r.message?.code ?? -1)
}
function jobAttr (m: IppMessage | undefined, name: string) {
  assert.ok(m !== undefined)
  return findAttr(m, Tag.jobAttributes, name)
}
function jobIdOf (r: IppReply): number {
  const id = integerValue(jobAttr(r.message, 'job-id'))
  assert.ok(id !== undefined && id > 0, 'job-id in the response')
  return id
}
const pdfFormat = attr('document-format', Tag.mimeMediaType, 'application/pdf')

test('Print-Job holds a PDF for its owner with the requested options', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, {
    user: 'alice',
    operation: [attr('job-name', Tag.nameWithoutLanguage, 'Quarterly report'), pdfFormat],
    job: [attr('copies', Tag.integer, 2), attr('sides', Tag.keyword, 'two-sided-long-edge'), attr('media', Tag.keyword, 'iso_a4_210x297mm')]
  }), pdf2)
  assert.is(status(r), 'successful-ok')
  const id = jobIdOf(r)
  assert.is(stringValue(jobAttr(r.message, 'job-uri')), `ipp://127.0.0.1:${rig.port}/jobs/${id}`)
  assert.is(integerValue(jobAttr(r.message, 'job-state')), 4)
  assert.equal(stringValues(jobAttr(r.message, 'job-state-reasons')), ['job-hold-until-specified'])
  const job = rig.jobs.getJob(id)
  assert.ok(job !== undefined)
  assert.is(job.state, 'held')
  assert.is(job.owner, 'alice')
  assert.is(job.name, 'Quarterly report')
  assert.is(job.pages, 2)
  assert.is(job.copies, 2)
  assert.is(job.sides, 'two-sided-long-edge')
  assert.is(job.media, 'iso_a4_210x297mm')
  assert.is(job.size, pdf2.length)
})

test('media-col media-size picks the named size; no user name means anonymous', async () => {
  const size = collection(attr('x-dimension', Tag.integer, 21590), attr('y-dimension', Tag.integer, 27940))
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, {
    operation: [pdfFormat],
    job: [attr('media-col', Tag.begCollection, [{ name: 'media-size', values: [size] }])]
  }), pdf2)
  assert.is(status(r), 'successful-ok')
  const job = rig.jobs.getJob(jobIdOf(r))
  assert.is(job?.media, 'na_letter_8.5x11in')
  assert.is(job?.owner, 'anonymous')
  assert.is(job?.name, 'Untitled')
})

test('application/octet-stream is auto-detected; PostScript and text are accepted', async () => {
  const auto = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'bob' }), pdf2)
  assert.is(status(auto), 'successful-ok')
  assert.is(rig.jobs.getJob(jobIdOf(auto))?.format, 'application/pdf')
  const ps = await readFile(await makePostScript(docs, { pages: 3 }))
  const r1 = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'bob', operation: [attr('document-format', Tag.mimeMediaType, 'application/postscript')] }), ps)
  assert.is(status(r1), 'successful-ok')
  assert.is(rig.jobs.getJob(jobIdOf(r1))?.pages, 3)
  const txt = await readFile(await makeText(docs, 'one\ntwo\n'))
  const r2 = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'bob', operation: [attr('document-format', Tag.mimeMediaType, 'text/plain')] }), txt)
  assert.is(status(r2), 'successful-ok')
  assert.is(rig.jobs.getJob(jobIdOf(r2))?.state, 'held')
})

test('Validate-Job checks without creating a job', async () => {
  const before = rig.jobs.listJobs({ which: 'all' }).length
  const ok = await ippPost(rig.uri, ippRequest(Op.ValidateJob, rig.uri, { user: 'alice', operation: [pdfFormat], job: [attr('copies', Tag.integer, 3)] }))
  assert.is(status(ok), 'successful-ok')
  const bad = await ippPost(rig.uri, ippRequest(Op.ValidateJob, rig.uri, { user: 'alice', operation: [attr('document-format', Tag.mimeMediaType, 'application/x-unknown')] }))
  assert.is(status(bad), 'client-error-document-format-not-supported')
  assert.is(stringValue(findAttr(bad.message!, Tag.unsupportedAttributes, 'document-format')), 'application/x-unknown')
  const copies = await ippPost(rig.uri, ippRequest(Op.ValidateJob, rig.uri, {
    user: 'alice', operation: [attr('ipp-attribute-fidelity', Tag.boolean, true)], job: [attr('copies', Tag.integer, 5000)]
  }))
  assert.is(status(copies), 'client-error-attributes-or-values-not-supported')
  assert.is(rig.jobs.listJobs({ which: 'all' }).length, before)
})

test('unsupported attributes: rejected with fidelity, ignored and reported without', async () => {
  const job = [attr('finishings', Tag.enum, 4), attr('x-vendor-thing', Tag.keyword, 'on'), attr('copies', Tag.integer, 1)]
  const before = rig.jobs.listJobs({ which: 'all' }).length
  const strict = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, {
    user: 'alice', operation: [attr('ipp-attribute-fidelity', Tag.boolean, true), pdfFormat], job
  }), pdf2)
  assert.is(status(strict), 'client-error-attributes-or-values-not-supported')
  const unsupported = strict.message!.groups.find((g) => g.tag === Tag.unsupportedAttributes)
  assert.equal(unsupported?.attributes.map((a) => a.name), ['finishings', 'x-vendor-thing'])
  assert.is(findAttr(strict.message!, Tag.unsupportedAttributes, 'x-vendor-thing')?.values[0].tag, Tag.unsupported)
  assert.is(rig.jobs.listJobs({ which: 'all' }).length, before, 'no job for a rejected request')

  const lax = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'alice', operation: [pdfFormat], job }), pdf2)
  assert.is(status(lax), 'successful-ok-ignored-or-substituted-attributes')
  assert.is(integerValue(findAttr(lax.message!, Tag.unsupportedAttributes, 'finishings')), 4)
  assert.is(rig.jobs.getJob(jobIdOf(lax))?.state, 'held')
})

test('Create-Job then Send-Document; the job takes exactly one document', async () => {
  const created = await ippPost(rig.uri, ippRequest(Op.CreateJob, rig.uri, { user: 'carol', operation: [attr('job-name', Tag.nameWithoutLanguage, 'two-step')] }))
  assert.is(status(created), 'successful-ok')
  const id = jobIdOf(created)
  assert.is(integerValue(jobAttr(created.message, 'job-state')), 3)
  assert.equal(stringValues(jobAttr(created.message, 'job-state-reasons')), ['job-incoming'])
  const jobId = attr('job-id', Tag.integer, id)

  const missingLast = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'carol', operation: [jobId, pdfFormat] }), pdf2)
  assert.is(status(missingLast), 'client-error-bad-request')
  const intruder = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'mallory', operation: [jobId, attr('last-document', Tag.boolean, true), pdfFormat] }), pdf2)
  assert.is(status(intruder), 'client-error-not-authorized')
  assert.is(rig.jobs.getJob(id)?.state, 'received')

  const sent = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'carol', operation: [jobId, attr('last-document', Tag.boolean, true), pdfFormat] }), pdf2)
  assert.is(status(sent), 'successful-ok')
  assert.is(integerValue(jobAttr(sent.message, 'job-state')), 4)
  assert.is(rig.jobs.getJob(id)?.pages, 2)

  const second = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'carol', operation: [jobId, attr('last-document', Tag.boolean, true), pdfFormat] }), pdf2)
  assert.is(status(second), 'server-error-multiple-document-jobs-not-supported')
  const closing = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'carol', operation: [jobId, attr('last-document', Tag.boolean, true)] }))
  assert.is(status(closing), 'successful-ok')
  assert.is(rig.jobs.getJob(id)?.size, pdf2.length)

  const byUri = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, {
    user: 'carol', noPrinterUri: true, operation: [attr('job-uri', Tag.uri, `ipp://127.0.0.1:${rig.port}/jobs/99999`), attr('last-document', Tag.boolean, true)]
  }), pdf2)
  assert.is(status(byUri), 'client-error-not-found')
})

test('Send-Document to a canceled job is not possible', async () => {
  const created = await ippPost(rig.uri, ippRequest(Op.CreateJob, rig.uri, { user: 'carol' }))
  const id = jobIdOf(created)
  // canceling needs carol's login (HTTP Basic): her name alone proves nothing
  const cancel = ippRequest(Op.CancelJob, rig.uri, { user: 'carol', operation: [attr('job-id', Tag.integer, id)] })
  assert.is(status(await ippPost(rig.uri, cancel, undefined, { auth: ['carol', '3030'] })), 'successful-ok')
  const late = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'carol', operation: [attr('job-id', Tag.integer, id), attr('last-document', Tag.boolean, true), pdfFormat] }), pdf2)
  assert.is(status(late), 'client-error-not-possible')
})

test('compressed documents: gzip, raw deflate and zlib deflate; corrupt streams and unknown codings', async () => {
  const cases: Array<[string, Buffer]> = [['gzip', gzipSync(pdf2)], ['deflate', deflateRawSync(pdf2)], ['deflate', deflateSync(pdf2)]]
  for (const [compression, bytes] of cases) {
    const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'dave', operation: [attr('compression', Tag.keyword, compression), pdfFormat] }), bytes)
    assert.is(status(r), 'successful-ok', compression)
    const job = rig.jobs.getJob(jobIdOf(r))
    assert.is(job?.pages, 2, compression)
    assert.is(job?.size, pdf2.length, `${compression}: the spool holds the decompressed document`)
  }
  const broken = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'dave', operation: [attr('compression', Tag.keyword, 'gzip'), pdfFormat] }), Buffer.from('definitely not gzip'))
  assert.is(status(broken), 'client-error-compression-error')
  const failed = rig.jobs.getJob(jobIdOf(broken))
  assert.is(failed?.state, 'failed')
  const unknown = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'dave', operation: [attr('compression', Tag.keyword, 'compress'), pdfFormat] }), pdf2)
  assert.is(status(unknown), 'client-error-compression-not-supported')
})

test('a corrupt document ends the job aborted with document-format-error', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'erin', operation: [pdfFormat] }), Buffer.from('%PDF-1.7\nthis is not a pdf at all\n%%EOF\n'))
  assert.is(status(r), 'client-error-document-format-error')
  const id = jobIdOf(r)
  const got = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { user: 'erin', operation: [attr('job-id', Tag.integer, id)] }))
  assert.is(status(got), 'successful-ok')
  assert.is(integerValue(jobAttr(got.message, 'job-state')), 8)
  assert.ok(stringValues(jobAttr(got.message, 'job-state-reasons')).includes('document-format-error'))
})

test('an unsupported document-format is refused before any job exists', async () => {
  const before = rig.jobs.listJobs({ which: 'all' }).length
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'erin', operation: [attr('document-format', Tag.mimeMediaType, 'application/vnd.ms-excel')] }), Buffer.from('PK\x03\x04'))
  assert.is(status(r), 'client-error-document-format-not-supported')
  assert.is(rig.jobs.listJobs({ which: 'all' }).length, before)
  const undetectable = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'erin' }), Buffer.from([0, 1, 2, 3, 4, 5, 6, 7]))
  assert.is(status(undetectable), 'client-error-document-format-not-supported')
})

test('chunked upload with Expect: 100-continue', async () => {
  const body = new PassThrough()
  const reply = ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'frank', operation: [pdfFormat] }), body, { chunked: true, expectContinue: true })
  for (let i = 0; i < pdf2.length; i += 100) body.write(pdf2.subarray(i, i + 100))
  body.end()
  const r = await reply
  assert.is(status(r), 'successful-ok')
  assert.is(rig.jobs.getJob(jobIdOf(r))?.size, pdf2.length)
})

test('the document streams into the spool while it is still arriving', async () => {
  const body = new PassThrough()
  const text = 'line of text for a long document\n'.repeat(64 * 1024) // 2 MiB
  const reply = ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'gina', operation: [attr('document-format', Tag.mimeMediaType, 'text/plain')] }), body, { chunked: true })
  body.write(text.slice(0, 1024 * 1024))
  const spoolTmp = join(rig.dir, 'spool', 'tmp')
  await until(async () => {
    const names = await readdir(spoolTmp).catch(() => [])
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(spoolTmp, n)).catch(() => ({ size: 0 }))).size))
    return sizes.some((s) => s > 512 * 1024)
  }, 10_000, 'the first half reaching the spool before the request ends')
  body.end(text.slice(1024 * 1024))
  const r = await reply
  assert.is(status(r), 'successful-ok')
  assert.is(rig.jobs.getJob(jobIdOf(r))?.size, Buffer.byteLength(text))
})

test('job-hold-until no-hold prints on arrival even on a held queue', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'hank', operation: [pdfFormat], job: [attr('job-hold-until', Tag.keyword, 'no-hold')] }), pdf2)
  assert.is(status(r), 'successful-ok')
  const id = jobIdOf(r)
  await until(() => rig.jobs.getJob(id)?.state === 'printed', 10_000, 'the job printing')
})

test.run()
