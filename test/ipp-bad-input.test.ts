// Bad input at every layer (HTTP, IPP framing, IPP semantics) gets the right status, and
// the server keeps serving after each one.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { request as httpRequest } from 'node:http'
import { readFile, rm } from 'node:fs/promises'
import { Op, Tag, attr, encodeMessage, findAttr, stringValue, statusName, type IppMessage } from '../devices/ipp/wire.ts'
import { MAX_HEADER } from '../devices/ipp/server.ts'
import { makePdf } from './fixtures/documents.ts'
import { startIppRig, ippPost, ippRequest, rawExchange, type IppRig, type IppReply } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

let rig: IppRig
let docs: string

test.before(async () => {
  rig = await startIppRig()
  docs = await tempDir('printmesh-ipp-docs-')
})
test.after(async () => {
  await rig?.stop()
  if (docs !== undefined) await rm(docs, { recursive: true, force: true })
})
test.after.each(async () => {
  // the server must still answer a good request after every bad one
  const r = await ippPost(rig.uri, ippRequest(Op.GetPrinterAttributes, rig.uri, { operation: [attr('requested-attributes', Tag.keyword, 'printer-state')] }))
  assert.is(statusName(r.message?.code ?? -1), 'successful-ok', 'the server still serves')
})

function ippStatus (r: IppReply): string {
  assert.is(r.httpStatus, 200, `HTTP ${r.httpStatus}: ${r.raw.toString()}`)
  assert.ok(r.message !== undefined)
  return statusName(r.message.code)
}
const base = (): IppMessage => ippRequest(Op.GetPrinterAttributes, rig.uri, { user: 'alice' })
const withOperation = (attributes: IppMessage['groups'][number]['attributes']): IppMessage => ({ ...base(), groups: [{ tag: Tag.operationAttributes, attributes }] })
const charset = attr('attributes-charset', Tag.charset, 'utf-8')
const language = attr('attributes-natural-language', Tag.naturalLanguage, 'en')
const printerUri = (): ReturnType<typeof attr> => attr('printer-uri', Tag.uri, rig.uri)

test('unsupported IPP versions; the reply echoes the request-id', async () => {
  for (const version of [{ major: 0, minor: 0 }, { major: 3, minor: 0 }]) {
    const r = await ippPost(rig.uri, { ...base(), version, requestId: 777 })
    assert.is(ippStatus(r), 'server-error-version-not-supported')
    assert.is(r.message?.requestId, 777)
  }
  assert.is(ippStatus(await ippPost(rig.uri, { ...base(), version: { major: 1, minor: 0 } })), 'successful-ok')
})

test('request-id 0 or negative is a bad request', async () => {
  assert.is(ippStatus(await ippPost(rig.uri, { ...base(), requestId: 0 })), 'client-error-bad-request')
  assert.is(ippStatus(await ippPost(rig.uri, { ...base(), requestId: -5 })), 'client-error-bad-request')
})

test('operation attributes: missing, misordered, duplicated or of the wrong syntax', async () => {
  const cases: Array<[string, IppMessage]> = [
    ['no groups', { ...base(), groups: [] }],
    ['empty operation group', withOperation([])],
    ['charset only', withOperation([charset, printerUri()])],
    ['language only', withOperation([language, printerUri()])],
    ['language before charset', withOperation([language, charset, printerUri()])],
    ['charset as keyword', withOperation([attr('attributes-charset', Tag.keyword, 'utf-8'), language, printerUri()])],
    ['no printer-uri', withOperation([charset, language])],
    ['printer-uri as text', withOperation([charset, language, attr('printer-uri', Tag.textWithoutLanguage, rig.uri)])],
    ['duplicate attribute', withOperation([charset, language, printerUri(), printerUri()])],
    ['user name as keyword', withOperation([charset, language, printerUri(), attr('requesting-user-name', Tag.keyword, 'alice')])],
    ['job group first', { ...base(), groups: [{ tag: Tag.jobAttributes, attributes: [] }, ...base().groups] }],
    ['two operation groups', { ...base(), groups: [...base().groups, ...base().groups] }],
    ['requested-attributes as text', withOperation([charset, language, printerUri(), attr('requested-attributes', Tag.textWithoutLanguage, 'all')])]
  ]
  for (const [what, msg] of cases) {
    const r = await ippPost(rig.uri, msg)
    assert.is(ippStatus(r), 'client-error-bad-request', what)
    assert.ok((stringValue(findAttr(r.message!, Tag.operationAttributes, 'status-message')) ?? '').length > 0, `${what}: status-message says why`)
  }
})

test('an unsupported charset', async () => {
  const r = await ippPost(rig.uri, withOperation([attr('attributes-charset', Tag.charset, 'iso-8859-1'), language, printerUri()]))
  assert.is(ippStatus(r), 'client-error-charset-not-supported')
  assert.is(findAttr(r.message!, Tag.operationAttributes, 'attributes-charset')?.values[0].value, 'utf-8', 'the reply is in utf-8')
})

test('operations this server does not implement', async () => {
  for (const code of [Op.PrintUri, Op.SendUri, Op.PausePrinter, Op.CupsAddModifyPrinter, Op.CupsGetPpds, 0x7777]) {
    const r = await ippPost(rig.uri, { ...base(), code })
    assert.is(ippStatus(r), 'server-error-operation-not-supported', `0x${code.toString(16)}`)
  }
})

test('broken IPP framing: truncated, malformed, short, empty', async () => {
  const good = encodeMessage({ ...base(), requestId: 4242 })
  const truncated = await ippPost(rig.uri, good.subarray(0, good.length - 5))
  assert.is(ippStatus(truncated), 'client-error-bad-request')
  assert.is(truncated.message?.requestId, 4242, 'the request-id is echoed from the header')
  const garbage = Buffer.concat([good.subarray(0, 8), Buffer.from([0x01, 0x47, 0xff, 0xff, 0x00])])
  assert.is(ippStatus(await ippPost(rig.uri, garbage)), 'client-error-bad-request')
  const badTag = Buffer.concat([good.subarray(0, 9), Buffer.from([0x21, 0x00, 0x01, 0x61, 0x00, 0x02, 0x00, 0x01, 0x03])])
  const r = await ippPost(rig.uri, badTag)
  assert.is(ippStatus(r), 'client-error-bad-request')
  assert.match(stringValue(findAttr(r.message!, Tag.operationAttributes, 'status-message')) ?? '', /integer value must be 4 bytes/)
  assert.is((await ippPost(rig.uri, Buffer.from([2, 0, 0]))).httpStatus, 400)
  assert.is((await ippPost(rig.uri, Buffer.alloc(0))).httpStatus, 400)
})

test('an IPP header beyond MAX_HEADER is refused as too large', async () => {
  const attrs = []
  for (let i = 0; attrs.length * 1000 < MAX_HEADER + 10_000; i++) attrs.push(attr(`x-filler-${i}`, Tag.textWithoutLanguage, 'x'.repeat(990)))
  const msg = withOperation([charset, language, printerUri(), ...attrs])
  const r = await ippPost(rig.uri, msg)
  if (r.httpStatus === 200) assert.is(ippStatus(r), 'client-error-request-entity-too-large')
  else assert.is(r.httpStatus, 413)
})

test('HTTP level: wrong content type, wrong method, unknown coding, malformed HTTP', async () => {
  const r = await ippPost(rig.uri, base(), undefined, { headers: { 'Content-Type': 'text/plain' } })
  assert.is(r.httpStatus, 400)
  const coded = await ippPost(rig.uri, base(), undefined, { headers: { 'Content-Encoding': 'br' } })
  assert.is(coded.httpStatus, 415)
  const put = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${rig.base}/ipp/print`, { method: 'PUT' }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
  assert.is(put, 405)
  const answer = await rawExchange(rig.port, Buffer.from('POST /ipp/print HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n'))
  assert.match(answer, /^HTTP\/1\.1 400/)
  const junk = await rawExchange(rig.port, Buffer.from('\x00\x01\x02 garbage\r\n\r\n'))
  assert.match(junk, /^HTTP\/1\.1 400/)
})

test('a client that disconnects mid-document leaves a failed job and a working server', async () => {
  const pdf = await readFile(await makePdf(docs, { pages: 1 }))
  const head = encodeMessage(ippRequest(Op.PrintJob, rig.uri, { user: 'quitter', operation: [attr('document-format', Tag.mimeMediaType, 'application/pdf')] }))
  const req = httpRequest(`${rig.base}/ipp/print`, { method: 'POST', headers: { 'Content-Type': 'application/ipp', 'Content-Length': String(head.length + pdf.length) } })
  req.on('error', () => {}) // the abort below is the point
  req.write(head)
  req.write(pdf.subarray(0, 100))
  await until(() => rig.jobs.listJobs({ which: 'all', owner: 'quitter' }).length === 1, 10_000, 'the job being created')
  req.destroy()
  await until(() => rig.jobs.listJobs({ which: 'all', owner: 'quitter' })[0]?.state === 'failed', 10_000, 'the job failing')
})

test('fuzzed requests always get an answer', async () => {
  const good = encodeMessage(ippRequest(Op.PrintJob, rig.uri, { user: 'fuzz', operation: [attr('job-name', Tag.nameWithoutLanguage, 'f')], job: [attr('copies', Tag.integer, 1), attr('media-col', Tag.begCollection, [attr('media-type', Tag.keyword, 'stationery')])] }))
  let seed = 42
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  for (let i = 0; i < 150; i++) {
    const buf = Buffer.from(good)
    for (let k = 0, flips = 1 + rand(3); k < flips; k++) buf[rand(buf.length)] = rand(256)
    const r = await ippPost(rig.uri, buf, Buffer.from('%PDF-1.4\n'))
    assert.ok(r.httpStatus === 200 || r.httpStatus === 400 || r.httpStatus === 413, `answer ${r.httpStatus}`)
    if (r.httpStatus === 200) assert.ok(r.message !== undefined)
  }
})

test.run()
