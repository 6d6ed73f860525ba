// Get-Jobs and Get-Job-Attributes: which-jobs, my-jobs, limit, requested-attributes and
// its groups, and the domain → IPP job attribute mapping. Requests that read names and
// owners log in (HTTP Basic) as the owner: other users' names are private (what clients
// that do not log in see is in test/ipp-auth.test.ts).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm } from 'node:fs/promises'
import { Op, Tag, attr, findAttr, groupsOf, integerValue, stringValue, stringValues, statusName, type IppGroup, type IppMessage } from '../devices/ipp/wire.ts'
import { makePdf } from './fixtures/documents.ts'
import { startIppRig, ippPost, ippRequest, type IppRig, type IppReply } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

/** Who prints here, with their PINs. */
const PINS: Record<string, string> = { alice: '1357', bob: '2468' }

let rig: IppRig
let docs: string
/** alice: held (3 pages), held then canceled; bob: held, printed (no-hold). */
const ids: Record<string, number> = {}

function status (r: IppReply): string {
  assert.is(r.httpStatus, 200)
  return statusName(r.message?.code ?? -1)
}
function jobs (m: IppMessage | undefined): IppGroup[] {
  assert.ok(m !== undefined)
  return groupsOf(m, Tag.jobAttributes)
}
function idsOf (m: IppMessage | undefined): number[] {
  return jobs(m).map((g) => integerValue(g.attributes.find((a) => a.name === 'job-id')) ?? -1)
}
async function print (user: string, pdf: Buffer, job: ReturnType<typeof attr>[] = []): Promise<number> {
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user, operation: [attr('document-format', Tag.mimeMediaType, 'application/pdf'), attr('job-name', Tag.nameWithoutLanguage, `${user}'s job`)], job }), pdf)
  assert.is(status(r), 'successful-ok')
  return integerValue(findAttr(r.message!, Tag.jobAttributes, 'job-id'))!
}
/** Get-Jobs as `user`, logged in when they have a PIN here. */
async function getJobs (user: string, operation: ReturnType<typeof attr>[] = []): Promise<IppReply> {
  return await ippPost(rig.uri, ippRequest(Op.GetJobs, rig.uri, { user, operation }), undefined, PINS[user] !== undefined ? { auth: [user, PINS[user]] } : {})
}

test.before(async () => {
  rig = await startIppRig({ users: PINS })
  docs = await tempDir('printmesh-ipp-docs-')
  const pdf = await readFile(await makePdf(docs, { pages: 3, colorPages: [1], media: 'a4' }))
  ids.aliceHeld = await print('alice', pdf, [attr('copies', Tag.integer, 2), attr('sides', Tag.keyword, 'two-sided-long-edge')])
  ids.aliceCanceled = await print('alice', pdf)
  await rig.jobs.cancel(ids.aliceCanceled, { user: 'alice', admin: false })
  ids.bobHeld = await print('bob', pdf)
  ids.bobPrinted = await print('bob', pdf, [attr('job-hold-until', Tag.keyword, 'no-hold')])
  await until(() => rig.jobs.getJob(ids.bobPrinted)?.state === 'printed', 10_000, 'bob\'s job printing')
})
test.after(async () => {
  await rig?.stop()
  if (docs !== undefined) await rm(docs, { recursive: true, force: true })
})

test('default: not-completed jobs of everyone, with only job-id and job-uri', async () => {
  const r = await getJobs('alice')
  assert.is(status(r), 'successful-ok')
  assert.equal(idsOf(r.message).sort(), [ids.aliceHeld, ids.bobHeld].sort())
  for (const g of jobs(r.message)) assert.equal(g.attributes.map((a) => a.name), ['job-id', 'job-uri'])
})

test('which-jobs completed and all; an unknown value is refused', async () => {
  assert.equal(idsOf((await getJobs('alice', [attr('which-jobs', Tag.keyword, 'completed')])).message).sort(), [ids.aliceCanceled, ids.bobPrinted].sort())
  assert.is(idsOf((await getJobs('alice', [attr('which-jobs', Tag.keyword, 'all')])).message).length, 4)
  const bad = await getJobs('alice', [attr('which-jobs', Tag.keyword, 'fetchable')])
  assert.is(status(bad), 'client-error-attributes-or-values-not-supported')
  assert.is(stringValue(findAttr(bad.message!, Tag.unsupportedAttributes, 'which-jobs')), 'fetchable')
})

test('my-jobs lists only the logged-in user\'s jobs', async () => {
  const mine = await getJobs('alice', [attr('my-jobs', Tag.boolean, true), attr('which-jobs', Tag.keyword, 'all')])
  assert.equal(idsOf(mine.message).sort(), [ids.aliceHeld, ids.aliceCanceled].sort())
  const bobs = await getJobs('bob', [attr('my-jobs', Tag.boolean, true), attr('which-jobs', Tag.keyword, 'all')])
  assert.is(status(bobs), 'successful-ok')
  assert.equal(idsOf(bobs.message).sort(), [ids.bobHeld, ids.bobPrinted].sort())
})

test('limit caps the number of jobs; limit 0 is refused', async () => {
  const r = await getJobs('alice', [attr('which-jobs', Tag.keyword, 'all'), attr('limit', Tag.integer, 1)])
  assert.is(jobs(r.message).length, 1)
  assert.is(status(await getJobs('alice', [attr('limit', Tag.integer, 0)])), 'client-error-attributes-or-values-not-supported')
})

test('requested-attributes: names, all, job-template and job-description', async () => {
  const named = await getJobs('alice', [attr('requested-attributes', Tag.keyword, 'job-state', 'job-originating-user-name')])
  // not-completed: alice's held job and bob's; alice sees the owner of her own only
  assert.equal(jobs(named.message).map((g) => g.attributes.map((a) => a.name)).sort(), [['job-originating-user-name', 'job-state'], ['job-state']])
  const template = await getJobs('alice', [attr('requested-attributes', Tag.keyword, 'job-template')])
  const names = jobs(template.message)[0].attributes.map((a) => a.name)
  assert.ok(names.includes('copies') && names.includes('sides'))
  assert.not.ok(names.includes('job-id'))
  const description = await getJobs('alice', [attr('requested-attributes', Tag.keyword, 'job-description')])
  const dnames = jobs(description.message)[0].attributes.map((a) => a.name)
  assert.ok(dnames.includes('job-id') && dnames.includes('job-state') && dnames.includes('time-at-creation'))
  assert.not.ok(dnames.includes('copies'))
})

test('Get-Job-Attributes maps the held job fully', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { user: 'alice', operation: [attr('job-id', Tag.integer, ids.aliceHeld)] }), undefined, { auth: ['alice', PINS.alice] })
  assert.is(status(r), 'successful-ok')
  const m = r.message!
  const a = (n: string) => findAttr(m, Tag.jobAttributes, n)
  assert.is(integerValue(a('job-id')), ids.aliceHeld)
  assert.is(stringValue(a('job-uri')), `ipp://127.0.0.1:${rig.port}/jobs/${ids.aliceHeld}`)
  assert.is(stringValue(a('job-printer-uri')), rig.uri)
  assert.is(stringValue(a('job-name')), "alice's job")
  assert.is(stringValue(a('job-originating-user-name')), 'alice')
  assert.is(integerValue(a('job-state')), 4)
  assert.equal(stringValues(a('job-state-reasons')), ['job-hold-until-specified'])
  assert.is(stringValue(a('job-hold-until')), 'indefinite')
  assert.is(integerValue(a('copies')), 2)
  assert.is(stringValue(a('sides')), 'two-sided-long-edge')
  assert.is(stringValue(a('media')), 'iso_a4_210x297mm')
  assert.is(integerValue(a('number-of-documents')), 1)
  assert.is(integerValue(a('job-impressions')), 6, '3 pages × 2 copies')
  assert.is(integerValue(a('job-media-sheets')), 4, '2 sheets duplex × 2 copies')
  assert.ok((integerValue(a('time-at-creation')) ?? 0) > 0)
  assert.is(a('time-at-completed')?.values[0].tag, Tag.noValue)
  assert.ok(a('date-time-at-creation')?.values[0].value instanceof Date)
  assert.is(stringValue(a('document-format')), 'application/pdf')
})

test('Get-Job-Attributes of finished jobs: canceled (7) and completed (9)', async () => {
  const canceled = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { user: 'x', operation: [attr('job-id', Tag.integer, ids.aliceCanceled)] }))
  assert.is(integerValue(findAttr(canceled.message!, Tag.jobAttributes, 'job-state')), 7)
  assert.ok(stringValues(findAttr(canceled.message!, Tag.jobAttributes, 'job-state-reasons')).includes('job-canceled-by-user'))
  const printed = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { user: 'x', operation: [attr('job-id', Tag.integer, ids.bobPrinted), attr('requested-attributes', Tag.keyword, 'job-state', 'time-at-completed', 'job-impressions-completed', 'output-device-assigned')] }))
  const m = printed.message!
  assert.is(integerValue(findAttr(m, Tag.jobAttributes, 'job-state')), 9)
  assert.ok((integerValue(findAttr(m, Tag.jobAttributes, 'time-at-completed')) ?? 0) > 0)
  assert.is(integerValue(findAttr(m, Tag.jobAttributes, 'job-impressions-completed')), 3)
  assert.is(stringValue(findAttr(m, Tag.jobAttributes, 'output-device-assigned')), 'p1')
})

test('Get-Job-Attributes by job-uri, and of a job that does not exist', async () => {
  const byUri = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { noPrinterUri: true, operation: [attr('job-uri', Tag.uri, `ipp://127.0.0.1:${rig.port}/jobs/${ids.bobHeld}`)] }), undefined, { auth: ['bob', PINS.bob] })
  assert.is(status(byUri), 'successful-ok')
  assert.is(stringValue(findAttr(byUri.message!, Tag.jobAttributes, 'job-originating-user-name')), 'bob')
  const missing = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, { operation: [attr('job-id', Tag.integer, 4242)] }))
  assert.is(status(missing), 'client-error-not-found')
  const noId = await ippPost(rig.uri, ippRequest(Op.GetJobAttributes, rig.uri, {}))
  assert.is(status(noId), 'client-error-bad-request')
})

test.run()
