// Get-Printer-Attributes, the queue paths (/ipp/print, /ipp/print/<q>, /printers/<q>, and
// CUPS' POST to / with printer-uri), the GET page, and the server's start/stop lifecycle.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Agent, get } from 'node:http'
import { Op, Tag, attr, findAttr, integerValue, stringValue, stringValues, booleanValue, statusName, type IppMessage } from '../devices/ipp/wire.ts'
import { SUPPORTED_OPERATIONS } from '../devices/ipp/capabilities.ts'
import { OPERATIONS } from '../devices/ipp/operations/index.ts'
import { createIppServer } from '../devices/ipp/server.ts'
import { startIppRig, ippPost, ippRequest, type IppRig, type IppReply } from './helpers/ipp-client.ts'

let rig: IppRig

test.before(async () => {
  rig = await startIppRig({
    queues: [
      { name: 'print', hold: true, info: 'Secure print', location: 'Floor 2' },
      { name: 'direct', hold: false, info: 'Prints on arrival', location: 'Lobby' }
    ]
  })
})
test.after(async () => { await rig?.stop() })

function status (r: IppReply): string {
  assert.is(r.httpStatus, 200, `HTTP ${r.httpStatus}`)
  return statusName(r.message?.code ?? -1)
}
async function gpa (url: string, printerUri = url, operation: ReturnType<typeof attr>[] = []): Promise<IppMessage> {
  const r = await ippPost(url, ippRequest(Op.GetPrinterAttributes, printerUri, { user: 'alice', operation }))
  assert.is(status(r), 'successful-ok')
  return r.message!
}
const p = (m: IppMessage, name: string) => findAttr(m, Tag.printerAttributes, name)

test('the attributes IPP clients and ipptool require, with the right syntax', async () => {
  const m = await gpa(rig.uri)
  assert.equal(stringValues(p(m, 'printer-uri-supported')), [rig.uri])
  assert.is(stringValues(p(m, 'uri-security-supported')).length, 1)
  assert.is(stringValues(p(m, 'uri-authentication-supported')).length, 1)
  assert.is(stringValue(p(m, 'printer-name')), 'print')
  assert.is(p(m, 'printer-name')?.values[0].tag, Tag.nameWithoutLanguage)
  assert.is(stringValue(p(m, 'printer-info')), 'Secure print')
  assert.is(stringValue(p(m, 'printer-location')), 'Floor 2')
  assert.is(integerValue(p(m, 'printer-state')), 3)
  assert.equal(stringValues(p(m, 'printer-state-reasons')), ['none'])
  assert.is(booleanValue(p(m, 'printer-is-accepting-jobs')), true)
  assert.ok((integerValue(p(m, 'printer-up-time')) ?? 0) > 0)
  assert.is(integerValue(p(m, 'queued-job-count')), 0)
  assert.equal(p(m, 'operations-supported')?.values.map((v) => v.value).sort(), [...SUPPORTED_OPERATIONS].sort())
  assert.equal(stringValues(p(m, 'charset-supported')), ['utf-8', 'us-ascii'])
  assert.is(stringValue(p(m, 'natural-language-configured')), 'en')
  const formats = stringValues(p(m, 'document-format-supported'))
  for (const f of ['application/octet-stream', 'application/pdf', 'application/postscript', 'text/plain']) assert.ok(formats.includes(f), f)
  assert.equal(stringValues(p(m, 'compression-supported')), ['none', 'deflate', 'gzip'])
  assert.is(booleanValue(p(m, 'multiple-document-jobs-supported')), false)
  assert.ok(stringValues(p(m, 'ipp-versions-supported')).includes('2.0'))
  assert.equal(p(m, 'copies-supported')?.values[0].value, { lower: 1, upper: 999 })
  assert.ok(stringValues(p(m, 'sides-supported')).includes('two-sided-long-edge'))
  assert.is(stringValue(p(m, 'media-default')), 'iso_a4_210x297mm')
  assert.ok(stringValues(p(m, 'media-supported')).includes('na_letter_8.5x11in'))
  assert.is(p(m, 'media-col-default')?.values[0].tag, Tag.begCollection)
  assert.equal(stringValues(p(m, 'print-color-mode-supported')), ['auto', 'monochrome', 'color'])
  assert.is(stringValue(p(m, 'job-hold-until-default')), 'indefinite')
  assert.match(stringValue(p(m, 'printer-uuid')) ?? '', /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.is(p(m, 'media-col-database'), undefined, 'media-col-database only when asked for by name')
})

test('the advertised operations are exactly the implemented ones', () => {
  assert.equal([...OPERATIONS.keys()].sort(), [...SUPPORTED_OPERATIONS].sort())
})

test('requested-attributes: names, groups, and media-col-database by name', async () => {
  const one = await gpa(rig.uri, rig.uri, [attr('requested-attributes', Tag.keyword, 'printer-uri-supported')])
  assert.equal(one.groups[1].attributes.map((a) => a.name), ['printer-uri-supported'])
  const template = await gpa(rig.uri, rig.uri, [attr('requested-attributes', Tag.keyword, 'job-template')])
  const names = template.groups[1].attributes.map((a) => a.name)
  assert.ok(names.includes('copies-supported') && names.includes('media-col-ready'))
  assert.not.ok(names.includes('printer-name') || names.includes('media-col-database'))
  const description = await gpa(rig.uri, rig.uri, [attr('requested-attributes', Tag.keyword, 'printer-description')])
  const dnames = description.groups[1].attributes.map((a) => a.name)
  assert.ok(dnames.includes('printer-name') && dnames.includes('operations-supported'))
  assert.not.ok(dnames.includes('copies-supported'))
  const db = await gpa(rig.uri, rig.uri, [attr('requested-attributes', Tag.keyword, 'all', 'media-col-database')])
  assert.is(p(db, 'media-col-database')?.values.length, 5)
})

test('document-format the queue cannot take is refused', async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.GetPrinterAttributes, rig.uri, { operation: [attr('document-format', Tag.mimeMediaType, 'image/x-nope')] }))
  assert.is(status(r), 'client-error-document-format-not-supported')
  assert.is(stringValue(findAttr(r.message!, Tag.operationAttributes, 'status-message')), 'document-format image/x-nope is not supported')
})

test('queue paths: /ipp/print/<q>, /printers/<q>, POST / by printer-uri; unknown paths 404', async () => {
  const named = await gpa(`${rig.base}/ipp/print/direct`)
  assert.is(stringValue(p(named, 'printer-name')), 'direct')
  assert.is(stringValue(p(named, 'job-hold-until-default')), 'no-hold')
  assert.equal(stringValues(p(named, 'printer-uri-supported')), [`ipp://127.0.0.1:${rig.port}/ipp/print/direct`])
  const cups = await gpa(`${rig.base}/printers/direct`)
  assert.equal(stringValues(p(cups, 'printer-uri-supported')), [`ipp://127.0.0.1:${rig.port}/printers/direct`])
  const rootReply = await ippPost(`${rig.base}/`, ippRequest(Op.GetPrinterAttributes, `ipp://printserver.example:${rig.port}/printers/direct`),
    undefined, { headers: { Host: `printserver.example:${rig.port}` } })
  assert.is(status(rootReply), 'successful-ok')
  const root = rootReply.message!
  assert.is(stringValue(p(root, 'printer-name')), 'direct')
  assert.equal(stringValues(p(root, 'printer-uri-supported')), [`ipp://printserver.example:${rig.port}/printers/direct`], 'URIs follow the Host the client used')
  const missing = await ippPost(`${rig.base}/`, ippRequest(Op.GetPrinterAttributes, `ipp://localhost:${rig.port}/printers/nope`))
  assert.is(status(missing), 'client-error-not-found')
  for (const path of ['/printers/nope', '/ipp/printer', '/ipp/print/a/b', '/admin']) {
    const r = await ippPost(`${rig.base}${path}`, ippRequest(Op.GetPrinterAttributes, rig.uri))
    assert.is(r.httpStatus, 404, path)
  }
})

test('GET on a queue path returns a small HTML page', async () => {
  const page = await new Promise<{ status: number, type: string, body: string }>((resolve, reject) => {
    get(`${rig.base}/printers/print`, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }))
    }).on('error', reject)
  })
  assert.is(page.status, 200)
  assert.match(page.type, /^text\/html/)
  assert.match(page.body, /<h1>print<\/h1>/)
  assert.match(page.body, /Floor 2/)
})

test('keep-alive: many requests over one connection', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const sockets = new Set<unknown>()
    for (let i = 0; i < 20; i++) {
      const r = await ippPost(rig.uri, ippRequest(Op.GetPrinterAttributes, rig.uri, { operation: [attr('requested-attributes', Tag.keyword, 'printer-state')] }), undefined, { agent })
      assert.is(status(r), 'successful-ok')
      for (const list of Object.values(agent.freeSockets)) for (const s of list ?? []) sockets.add(s)
    }
    assert.is(sockets.size, 1)
  } finally {
    agent.destroy()
  }
})

test('lifecycle: start twice and stop twice are safe; stop closes idle keep-alive connections', async () => {
  const server = createIppServer({ domain: rig.jobs, logger: rig.logger, host: '127.0.0.1', port: 0 })
  await server.stop() // never started
  await server.start()
  await server.start()
  const url = `ipp://127.0.0.1:${server.port}/ipp/print`
  const agent = new Agent({ keepAlive: true })
  try {
    const r = await ippPost(url, ippRequest(Op.GetPrinterAttributes, url), undefined, { agent })
    assert.is(status(r), 'successful-ok')
    const started = Date.now()
    await server.stop()
    assert.ok(Date.now() - started < 2000, 'an idle keep-alive connection does not delay stop')
    await server.stop()
    await ippPost(url, ippRequest(Op.GetPrinterAttributes, url)).then(
      () => assert.unreachable('the port is closed'),
      (err: NodeJS.ErrnoException) => assert.is(err.code, 'ECONNREFUSED'))
  } finally {
    agent.destroy()
    await server.stop()
  }
})

test.run()
