// Cancel-Job, Hold-Job and Release-Job, each logged in with username and PIN (HTTP Basic):
// the owner may act, others get client-error-not-authorized; unknown jobs not-found;
// finished jobs not-possible. (Without a login, test/ipp-auth.test.ts.)
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm } from 'node:fs/promises'
import { Op, Tag, attr, findAttr, integerValue, statusName } from '../devices/ipp/wire.ts'
import { makePdf } from './fixtures/documents.ts'
import { startIppRig, ippPost, ippRequest, type IppRig, type IppReply } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

/** Everyone who prints here, with their PINs. */
const PINS: Record<string, string> = { alice: '1111', bob: '2222', carol: '3333', dave: '4444', erin: '5555', frank: '6666' }

let rig: IppRig
let docs: string
let pdf: Buffer

test.before(async () => {
  rig = await startIppRig({ users: PINS })
  docs = await tempDir('printmesh-ipp-docs-')
  pdf = await readFile(await makePdf(docs, { pages: 1 }))
})
test.after(async () => {
  await rig?.stop()
  if (docs !== undefined) await rm(docs, { recursive: true, force: true })
})

function login (user: string): [string, string] {
  return [user, PINS[user]]
}
function status (r: IppReply): string {
  assert.is(r.httpStatus, 200)
  return statusName(r.message?.code ?? -1)
}
async function print (user: string): Promise<number> {
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user, operation: [attr('document-format', Tag.mimeMediaType, 'application/pdf')] }), pdf)
  assert.is(status(r), 'successful-ok')
  return integerValue(findAttr(r.message!, Tag.jobAttributes, 'job-id'))!
}
/** `user`, logged in, asks `code` of job `id`. */
async function act (code: number, user: string, id: number): Promise<string> {
  return status(await ippPost(rig.uri, ippRequest(code, rig.uri, { user, operation: [attr('job-id', Tag.integer, id)] }), undefined, { auth: login(user) }))
}

test('Cancel-Job: others are not authorized, the owner is, twice is not possible', async () => {
  const id = await print('alice')
  assert.is(await act(Op.CancelJob, 'bob', id), 'client-error-not-authorized')
  assert.is(rig.jobs.getJob(id)?.state, 'held')
  assert.is(await act(Op.CancelJob, 'alice', id), 'successful-ok')
  assert.is(rig.jobs.getJob(id)?.state, 'deleted')
  assert.is(await act(Op.CancelJob, 'alice', id), 'client-error-not-possible')
  assert.is(await act(Op.CancelJob, 'alice', 9999), 'client-error-not-found')
})

test('Release-Job sends a held job to the queue\'s printer; Hold-Job on a printed job is not possible', async () => {
  const id = await print('carol')
  assert.is(await act(Op.ReleaseJob, 'dave', id), 'client-error-not-authorized')
  assert.is(await act(Op.ReleaseJob, 'carol', id), 'successful-ok')
  await until(() => rig.jobs.getJob(id)?.state === 'printed', 10_000, 'the released job printing')
  assert.is(await act(Op.HoldJob, 'carol', id), 'client-error-not-possible')
  assert.is(await act(Op.ReleaseJob, 'carol', id), 'client-error-not-possible')
  assert.is(await act(Op.CancelJob, 'carol', id), 'client-error-not-possible')
})

test('Hold-Job on a Create-Job job keeps it held on a queue that would print it', async () => {
  const created = await ippPost(rig.uri, ippRequest(Op.CreateJob, rig.uri, { user: 'erin', job: [attr('job-hold-until', Tag.keyword, 'no-hold')] }))
  const id = integerValue(findAttr(created.message!, Tag.jobAttributes, 'job-id'))!
  assert.is(await act(Op.HoldJob, 'erin', id), 'successful-ok')
  const sent = await ippPost(rig.uri, ippRequest(Op.SendDocument, rig.uri, { user: 'erin', operation: [attr('job-id', Tag.integer, id), attr('last-document', Tag.boolean, true)] }), pdf)
  assert.is(status(sent), 'successful-ok')
  assert.is(rig.jobs.getJob(id)?.state, 'held')
  assert.is(await act(Op.HoldJob, 'erin', id), 'successful-ok', 'holding a held job is a no-op')
})

test('job operations need a job: job-id with printer-uri, or job-uri', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.CancelJob, rig.uri, { user: 'alice' }), undefined, { auth: login('alice') })
  assert.is(status(r), 'client-error-bad-request')
  const id = await print('frank')
  const byUri = await ippPost(rig.uri, ippRequest(Op.CancelJob, rig.uri, { user: 'frank', noPrinterUri: true, operation: [attr('job-uri', Tag.uri, `ipp://127.0.0.1:${rig.port}/jobs/${id}`)] }), undefined, { auth: login('frank') })
  assert.is(status(byUri), 'successful-ok')
  const atJobPath = await ippPost(`${rig.base}/jobs/${id}`, ippRequest(Op.GetJobAttributes, `ipp://127.0.0.1:${rig.port}/jobs/${id}`, { noPrinterUri: true, operation: [attr('job-uri', Tag.uri, `ipp://127.0.0.1:${rig.port}/jobs/${id}`)] }))
  assert.is(integerValue(findAttr(atJobPath.message!, Tag.jobAttributes, 'job-state')), 7)
})

test.run()
