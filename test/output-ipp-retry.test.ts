// The ipp: device's retry policy, against a scripted printer that misbehaves on cue:
// retried only before acceptance, never resubmitted once the printer may have the job.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { IppOutputDevice } from '../devices/output/ipp.ts'
import { PrinterError, type PrintProgress, type PrintRequest } from '../devices/output/types.ts'
import { Op, Status, Tag, attr, decodeMessage, encodeMessage, type IppAttribute, type IppMessage } from '../devices/ipp/wire.ts'

const logger = pino({ level: 'silent' })
const FAST = {
  retry: { maxAttempts: 4, initialBackoffMs: 10, maxBackoffMs: 20 },
  timeouts: { connectMs: 1_000, requestMs: 2_000, printIdleMs: 2_000, probeMs: 500 },
  follow: { pollIntervalMs: 10, unreachableDeadlineMs: 2_000 }
}

/** What the scripted printer does with one request. */
type Action =
  | { status: number, job?: IppAttribute[] }
  /** read the whole request, then drop the connection without answering */
  | 'drop'

interface Received { op: number, bodyBytes: number }

/** A tiny IPP printer whose answers come from `script(op, nthOfThatOp)`. */
async function scriptedPrinter (script: (op: number, n: number) => Action): Promise<{ uri: string, received: Received[], close(): Promise<void> }> {
  const received: Received[] = []
  const counts = new Map<number, number>()
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const buf = Buffer.concat(chunks)
      const { message, bodyOffset } = decodeMessage(buf)
      received.push({ op: message.code, bodyBytes: buf.length - bodyOffset })
      const n = (counts.get(message.code) ?? 0) + 1
      counts.set(message.code, n)
      const action = script(message.code, n)
      if (action === 'drop') {
        req.socket.destroy()
        return
      }
      const reply: IppMessage = {
        version: { major: 2, minor: 0 },
        code: action.status,
        requestId: message.requestId,
        groups: [
          { tag: Tag.operationAttributes, attributes: [attr('attributes-charset', Tag.charset, 'utf-8'), attr('attributes-natural-language', Tag.naturalLanguage, 'en')] },
          ...(action.job !== undefined ? [{ tag: message.code === Op.GetPrinterAttributes ? Tag.printerAttributes : Tag.jobAttributes, attributes: action.job }] : [])
        ]
      }
      const body = encodeMessage(reply)
      res.writeHead(200, { 'content-type': 'application/ipp', 'content-length': body.length })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    uri: `ipp://127.0.0.1:${port}/ipp/print`,
    received,
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve, reject) => server.close((err) => err === undefined ? resolve() : reject(err)))
    }
  }
}

const CAPABILITIES: Action = { status: Status.successfulOk, job: [attr('document-format-supported', Tag.mimeMediaType, 'application/pdf'), attr('printer-state', Tag.enum, 3)] }
const ACCEPTED: Action = { status: Status.successfulOk, job: [attr('job-id', Tag.integer, 42), attr('job-state', Tag.enum, 3)] }
const COMPLETED: Action = { status: Status.successfulOk, job: [attr('job-state', Tag.enum, 9), attr('job-state-reasons', Tag.keyword, 'job-completed-successfully'), attr('job-impressions-completed', Tag.integer, 2)] }

let dir = ''
let doc = ''
const DOC_BYTES = 200_000
const servers: Array<{ close(): Promise<void> }> = []

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'printmesh-ipp-retry-'))
  doc = join(dir, 'doc.pdf')
  writeFileSync(doc, Buffer.alloc(DOC_BYTES, 0x25))
})

test.after(async () => {
  for (const s of servers) await s.close()
  rmSync(dir, { recursive: true, force: true })
})

async function printer (script: (op: number, n: number) => Action): Promise<Awaited<ReturnType<typeof scriptedPrinter>>> {
  const p = await scriptedPrinter(script)
  servers.push(p)
  return p
}

function request (): PrintRequest {
  return { documentPath: doc, format: 'application/pdf', jobName: 'job', userName: 'bob', copies: 1, sides: 'one-sided' }
}

function recorder (): PrintProgress & { calls: Array<number | undefined> } {
  const calls: Array<number | undefined> = []
  return { calls, accepted (id?: number) { calls.push(id) } }
}

async function rejection (p: Promise<unknown>): Promise<PrinterError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.instance(err, PrinterError, `expected a PrinterError, got ${String(err)}`)
  return err as PrinterError
}

const printJobs = (received: Received[]): Received[] => received.filter((r) => r.op === Op.PrintJob)

test('server-error-busy before acceptance is retried, and the job is submitted until accepted once', async () => {
  const p = await printer((op, n) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return n <= 2 ? { status: Status.serverErrorBusy } : ACCEPTED
    return COMPLETED
  })
  const progress = recorder()
  const outcome = await new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), progress, new AbortController().signal)
  assert.equal(outcome, { printerJobId: 42, impressions: 2 })
  assert.equal(progress.calls, [42])
  assert.is(printJobs(p.received).length, 3)
  assert.ok(printJobs(p.received).every((r) => r.bodyBytes === DOC_BYTES), 'whole document each time')
})

test('past busyFlatMs, server-error-busy is asked again after the short busy wait (doubling), other "not now" answers after the long one', async () => {
  const waits: Array<{ reason: string, waitMs: number }> = []
  const capture = pino({ level: 'warn' }, { write: (line: string) => { const r = JSON.parse(line) as { msg: string, reason: string, waitMs: number }; if (r.msg === 'printer not ready, retrying') waits.push({ reason: r.reason, waitMs: r.waitMs }) } })
  const p = await printer((op, n) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return n === 1 ? { status: Status.serverErrorServiceUnavailable } : n <= 4 ? { status: Status.serverErrorBusy } : ACCEPTED
    return COMPLETED
  })
  const retry = { maxAttempts: 6, initialBackoffMs: 400, maxBackoffMs: 1_000, busyInitialBackoffMs: 10, busyFlatMs: 0 }
  const outcome = await new IppOutputDevice(p.uri, { ...FAST, logger: capture, retry }).print(request(), recorder(), new AbortController().signal)
  assert.equal(outcome, { printerJobId: 42, impressions: 2 })
  assert.equal(waits.map((w) => w.reason), ['service-unavailable', 'busy', 'busy', 'busy'])
  const [unavailable, ...busy] = waits.map((w) => w.waitMs)
  assert.ok(unavailable >= 320 && unavailable <= 480, `service-unavailable waits initialBackoffMs ±20 % (${unavailable} ms)`)
  busy.forEach((ms, i) => { const base = 10 * 2 ** i; assert.ok(ms >= base * 0.8 && ms <= base * 1.2, `busy answer ${i + 1} waits ${base} ms ±20 % (${ms} ms)`) })
})

test('within busyFlatMs of the first busy answer a busy printer is asked again every busyInitialBackoffMs, not doubling', async () => {
  const waits: number[] = []
  const capture = pino({ level: 'warn' }, { write: (line: string) => { const r = JSON.parse(line) as { msg: string, waitMs: number }; if (r.msg === 'printer not ready, retrying') waits.push(r.waitMs) } })
  const p = await printer((op, n) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return n <= 5 ? { status: Status.serverErrorBusy } : ACCEPTED
    return COMPLETED
  })
  const retry = { maxAttempts: 2, initialBackoffMs: 400, maxBackoffMs: 1_000, busyInitialBackoffMs: 10, busyFlatMs: 10_000 }
  const outcome = await new IppOutputDevice(p.uri, { ...FAST, logger: capture, retry }).print(request(), recorder(), new AbortController().signal)
  assert.equal(outcome, { printerJobId: 42, impressions: 2 })
  assert.is(waits.length, 5)
  waits.forEach((ms, i) => assert.ok(ms >= 8 && ms <= 12, `busy answer ${i + 1} waits 10 ms ±20 % (${ms} ms)`))
})

const PROCESSING: Action = { status: Status.successfulOk, job: [attr('document-format-supported', Tag.mimeMediaType, 'application/pdf'), attr('printer-state', Tag.enum, 4)] }

test('after a busy answer the document is sent again only once the printer reports idle, and busy answers use up no attempt within busyWindowMs', async () => {
  // Print-Job 1 busy; then the printer reports processing for three Get-Printer-Attributes, then idle
  const p = await printer((op, n) => {
    if (op === Op.GetPrinterAttributes) return n >= 2 && n <= 4 ? PROCESSING : CAPABILITIES
    if (op === Op.PrintJob) return n === 1 ? { status: Status.serverErrorBusy } : ACCEPTED
    return COMPLETED
  })
  const retry = { maxAttempts: 2, initialBackoffMs: 5_000, maxBackoffMs: 5_000, busyInitialBackoffMs: 5, busyWindowMs: 10_000 }
  const outcome = await new IppOutputDevice(p.uri, { ...FAST, logger, retry }).print(request(), recorder(), new AbortController().signal)
  assert.equal(outcome, { printerJobId: 42, impressions: 2 })
  assert.is(printJobs(p.received).length, 2, 'uploaded twice: busy, then once idle (not while processing)')
  assert.is(p.received.filter((r) => r.op === Op.GetPrinterAttributes).length, 5, 'asked five times: before each upload and three times while processing')
})

test('a printer busy longer than busyWindowMs fails with busy, having been sent the document once', async () => {
  const p = await printer((op) => op === Op.GetPrinterAttributes ? PROCESSING : { status: Status.serverErrorBusy })
  const retry = { maxAttempts: 5, initialBackoffMs: 10, maxBackoffMs: 20, busyInitialBackoffMs: 10, busyWindowMs: 300 }
  const err = await rejection(new IppOutputDevice(p.uri, { ...FAST, logger, retry }).print(request(), recorder(), new AbortController().signal))
  assert.is(err.beforeAccept, true)
  assert.is(err.reason, 'busy')
  assert.is(printJobs(p.received).length, 1, 'the first upload only: the printer never reported idle')
  assert.ok(p.received.filter((r) => r.op === Op.GetPrinterAttributes).length > 5, 'it was asked while the window lasted, beyond maxAttempts')
})

test('busy for longer than the retry limit fails before accept with the printer\'s reason', async () => {
  const p = await printer((op) => op === Op.GetPrinterAttributes ? CAPABILITIES : { status: Status.serverErrorServiceUnavailable })
  const err = await rejection(new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), recorder(), new AbortController().signal))
  assert.is(err.beforeAccept, true)
  assert.is(err.reason, 'service-unavailable')
  assert.is(printJobs(p.received).length, FAST.retry.maxAttempts)
})

test('a refusal that is not "busy" is not retried', async () => {
  const p = await printer((op) => op === Op.GetPrinterAttributes ? CAPABILITIES : { status: Status.clientErrorNotAuthorized })
  const err = await rejection(new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), recorder(), new AbortController().signal))
  assert.is(err.beforeAccept, true)
  assert.is(err.reason, 'not-authorized')
  assert.is(printJobs(p.received).length, 1)
})

test('a Print-Job delivered in full whose answer is lost is never resubmitted', async () => {
  const p = await printer((op) => op === Op.GetPrinterAttributes ? CAPABILITIES : 'drop')
  const progress = recorder()
  const err = await rejection(new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), progress, new AbortController().signal))
  assert.is(err.reason, 'printer-unreachable-after-accept')
  assert.is(err.beforeAccept, false)
  assert.is(printJobs(p.received).length, 1, 'exactly one submission')
  assert.is(printJobs(p.received)[0].bodyBytes, DOC_BYTES)
  assert.equal(progress.calls, [])
})

test('after acceptance, dropped polls are tolerated and the job is followed to completion', async () => {
  const p = await printer((op, n) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return ACCEPTED
    if (n <= 3) return 'drop'
    if (n === 4) return { status: Status.serverErrorBusy }
    if (n === 5) return { status: Status.successfulOk, job: [attr('job-state', Tag.enum, 5)] }
    return COMPLETED
  })
  const outcome = await new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), recorder(), new AbortController().signal)
  assert.equal(outcome, { printerJobId: 42, impressions: 2 })
  assert.is(printJobs(p.received).length, 1)
  assert.is(p.received.filter((r) => r.op === Op.GetJobAttributes).length, 6)
})

test('a printer that forgets the accepted job gives printer-unreachable-after-accept, no resubmission', async () => {
  const p = await printer((op) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return ACCEPTED
    return { status: Status.clientErrorNotFound }
  })
  const err = await rejection(new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), recorder(), new AbortController().signal))
  assert.is(err.reason, 'printer-unreachable-after-accept')
  assert.is(err.beforeAccept, false)
  assert.is(printJobs(p.received).length, 1)
})

test('a job canceled at the device rejects with its reason keyword', async () => {
  const p = await printer((op) => {
    if (op === Op.GetPrinterAttributes) return CAPABILITIES
    if (op === Op.PrintJob) return ACCEPTED
    return { status: Status.successfulOk, job: [attr('job-state', Tag.enum, 7), attr('job-state-reasons', Tag.keyword, 'job-canceled-at-device')] }
  })
  const err = await rejection(new IppOutputDevice(p.uri, { logger, ...FAST }).print(request(), recorder(), new AbortController().signal))
  assert.is(err.reason, 'job-canceled-at-device')
  assert.is(err.beforeAccept, false)
})

test.run()
