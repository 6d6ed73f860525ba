// The ipp: output device against a real printer (Debian's ippeveprinter on loopback).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { Writable } from 'node:stream'
import { PDFDocument, StandardFonts } from 'pdf-lib'
import { pino } from 'pino'
import { IppOutputDevice, type IppOutputDeviceOptions } from '../devices/output/ipp.ts'
import { FileOutputDevice } from '../devices/output/file.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import { InvalidPrinterJobIdError, PrinterError, UnsupportedDeviceUriError, type PrintProgress, type PrintRequest } from '../devices/output/types.ts'
import { Op, Status, Tag, attr } from '../devices/ipp/wire.ts'
import { startIppEvePrinter, type IppEvePrinter, type IppEvePrinterOptions } from './helpers/ippeveprinter.ts'
import { ippPost, ippRequest } from './helpers/ipp-client.ts'
import { until } from '../simulations/wait.ts'

/** Short limits so failure paths finish in well under a second. */
const FAST: Omit<IppOutputDeviceOptions, 'logger'> = {
  retry: { maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 50 },
  timeouts: { connectMs: 2_000, requestMs: 5_000, printIdleMs: 10_000, probeMs: 1_000 },
  follow: { pollIntervalMs: 50, unreachableDeadlineMs: 10_000 }
}

const silent = pino({ level: 'silent' })
const dirs: string[] = []
const printers: IppEvePrinter[] = []
let pdf = ''
let pdfBytes: Buffer = Buffer.alloc(0)

/** A logger that keeps its records, to see what the device reported. */
function capturingLogger (onRecord?: (r: { level: number, msg: string }) => void): { logger: pino.Logger, records: Array<{ level: number, msg: string }> } {
  const records: Array<{ level: number, msg: string }> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue
        const record = JSON.parse(line) as { level: number, msg: string }
        records.push(record)
        onRecord?.(record)
      }
      done()
    }
  })
  return { logger: pino({ level: 'debug' }, sink), records }
}

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'printmesh-output-ipp-'))
  dirs.push(dir)
  return dir
}

async function printer (opts?: IppEvePrinterOptions): Promise<IppEvePrinter> {
  const p = await startIppEvePrinter(opts)
  printers.push(p)
  return p
}

function device (uri: string, over: Partial<IppOutputDeviceOptions> = {}): IppOutputDevice {
  const d = createOutputDevice(uri, { logger: over.logger ?? silent, ipp: { ...FAST, ...over } })
  assert.instance(d, IppOutputDevice)
  return d as IppOutputDevice
}

function request (over: Partial<PrintRequest> = {}): PrintRequest {
  return { documentPath: pdf, format: 'application/pdf', jobName: 'Budget 2024 (v2)', userName: 'alice', copies: 1, sides: 'one-sided', ...over }
}

function recorder (onAccepted?: (id?: number) => void): PrintProgress & { calls: Array<number | undefined> } {
  const calls: Array<number | undefined> = []
  return { calls, accepted (id?: number) { calls.push(id); onAccepted?.(id) } }
}

async function rejection (p: Promise<unknown>): Promise<PrinterError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.instance(err, PrinterError, `expected a PrinterError, got ${String(err)}`)
  return err as PrinterError
}

test.before(async () => {
  const doc = await PDFDocument.create()
  const font = await doc.embedFont(StandardFonts.Helvetica)
  for (let i = 1; i <= 3; i++) doc.addPage([595, 842]).drawText(`printmesh page ${i}`, { x: 50, y: 780, size: 18, font })
  pdfBytes = Buffer.from(await doc.save())
  pdf = join(tempDir(), 'budget.pdf')
  writeFileSync(pdf, pdfBytes)
})

test.after(async () => {
  for (const p of printers) await p.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

test('a released PDF reaches the printer byte for byte and the job completes', async () => {
  const p = await printer({ impressions: 3 })
  const progress = recorder()
  const outcome = await device(p.uri).print(request(), progress, new AbortController().signal)

  assert.is(typeof outcome.printerJobId, 'number')
  assert.equal(progress.calls, [outcome.printerJobId], 'accepted once, with the printer job id')
  assert.is(outcome.impressions, 3, 'job-impressions-completed passed on')
  const files = await p.jobFiles()
  assert.is(files.length, 1)
  assert.is(basename(files[0]), `${outcome.printerJobId}-budget_2024_v2_.pdf`)
  assert.ok((await readFile(files[0])).equals(pdfBytes), 'spooled bytes identical to the source')
  const [attrs] = await p.jobAttributes()
  assert.is(attrs['job-name'], 'Budget 2024 (v2)')
  assert.is(attrs['job-originating-user-name'], 'alice')
  assert.is(attrs['document-format'], 'application/pdf')
})

test('a multi-megabyte document is streamed intact', async () => {
  const p = await printer()
  const big = join(tempDir(), 'big.pdf')
  const bytes = Buffer.concat([pdfBytes, Buffer.from('\n%'), randomBytes(6 * 1024 * 1024)])
  writeFileSync(big, bytes)
  const outcome = await device(p.uri).print(request({ documentPath: big }), recorder(), new AbortController().signal)
  assert.is(outcome.impressions, undefined, 'a printer reporting 0 impressions is "not reported"')
  const [file] = await p.jobFiles()
  assert.ok((await readFile(file)).equals(bytes))
})

test('copies, sides and media are sent when the printer supports them', async () => {
  const p = await printer({ duplex: true })
  await device(p.uri).print(request({ copies: 2, sides: 'two-sided-long-edge', media: 'iso_a4_210x297mm' }), recorder(), new AbortController().signal)
  const [attrs] = await p.jobAttributes()
  assert.is(attrs.copies, '2')
  assert.is(attrs.sides, 'two-sided-long-edge')
  assert.is(attrs.media, 'iso_a4_210x297mm')
})

test('unsupported sides and media are dropped (and logged), and the job still prints', async () => {
  const p = await printer({ duplex: false })
  const { logger, records } = capturingLogger()
  const outcome = await device(p.uri, { logger }).print(request({ sides: 'two-sided-long-edge', media: 'oe_no-such-paper_1x1in' }), recorder(), new AbortController().signal)
  assert.is(typeof outcome.printerJobId, 'number')
  const [attrs] = await p.jobAttributes()
  assert.is(attrs.sides, undefined)
  assert.is(attrs.media, undefined)
  const warning = records.find((r) => r.msg.includes('does not support these job attributes')) as { dropped?: string[] } | undefined
  assert.equal(warning?.dropped, ['sides=two-sided-long-edge', 'media=oe_no-such-paper_1x1in'])
})

test('a format the printer does not support fails clearly, before anything is sent', async () => {
  const p = await printer({ formats: ['application/pdf'] })
  const jpeg = join(tempDir(), 'photo.jpg')
  writeFileSync(jpeg, randomBytes(2048))
  const progress = recorder()
  const err = await rejection(device(p.uri).print(request({ documentPath: jpeg, format: 'image/jpeg' }), progress, new AbortController().signal))
  assert.is(err.reason, 'document-format-not-supported')
  assert.is(err.beforeAccept, true)
  assert.match(err.message, /image\/jpeg/)
  assert.equal(progress.calls, [])
  assert.equal(await p.jobFiles(), [])
})

test('a printer that is down is retried a bounded number of times, then fails before accept', async () => {
  const p = await printer()
  await p.stop()
  const { logger, records } = capturingLogger()
  const progress = recorder()
  const err = await rejection(device(p.uri, { logger }).print(request(), progress, new AbortController().signal))
  assert.is(err.beforeAccept, true)
  assert.is(err.reason, 'printer-unreachable')
  assert.match(err.message, /after 3 attempts/)
  assert.match(err.message, /ECONNREFUSED/)
  assert.is(records.filter((r) => r.msg === 'printer not ready, retrying').length, 2, 'two retries after the first attempt')
  assert.equal(progress.calls, [])
})

test('an already aborted signal sends nothing', async () => {
  const p = await printer()
  const ac = new AbortController()
  ac.abort(new Error('site stopping'))
  const progress = recorder()
  const err = await rejection(device(p.uri).print(request(), progress, ac.signal))
  assert.is(err.reason, 'release-aborted')
  assert.is(err.beforeAccept, true)
  assert.equal(progress.calls, [])
  assert.equal(await p.jobFiles(), [])
})

test('aborting during the retry backoff ends the release at once', async () => {
  const p = await printer()
  await p.stop()
  const ac = new AbortController()
  // Abort as soon as the device starts its first backoff, which is 10 s long.
  const { logger } = capturingLogger((r) => { if (r.msg === 'printer not ready, retrying') ac.abort(new Error('admin canceled')) })
  const d = device(p.uri, { logger, retry: { maxAttempts: 5, initialBackoffMs: 10_000, maxBackoffMs: 10_000 } })
  const started = Date.now()
  const err = await rejection(d.print(request(), recorder(), ac.signal))
  assert.is(err.reason, 'release-aborted')
  assert.is(err.beforeAccept, true)
  assert.ok(Date.now() - started < 5_000, `ended after ${Date.now() - started} ms`)
})

test('aborting while following an accepted job rejects after accept, without waiting for the printer', async () => {
  const p = await printer({ jobOutcome: 'hold' })
  const ac = new AbortController()
  // Abort once the first poll has seen the job not yet ended (pending or processing: on a loaded machine the printer may not have started it): the device is then in its 30 s pause.
  const { logger } = capturingLogger((r) => { if (r.msg === 'printer job state' && ['pending', 'pending-held', 'processing', 'processing-stopped'].includes((r as { state?: string }).state ?? '')) ac.abort(new Error('site stopping')) })
  const progress = recorder()
  const d = device(p.uri, { logger, follow: { pollIntervalMs: 30_000, unreachableDeadlineMs: 60_000 } })
  const started = Date.now()
  const err = await rejection(d.print(request(), progress, ac.signal))
  assert.is(progress.calls.length, 1, 'the printer accepted first')
  assert.is(err.reason, 'release-aborted')
  assert.is(err.beforeAccept, false)
  assert.ok(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms (poll interval is 30 s)`)
  assert.is((await p.jobFiles()).length, 1, 'the document was delivered once')
})

test('a printer job aborted at the printer rejects with its job-state-reasons, after accept', async () => {
  const p = await printer({ jobOutcome: 'abort' })
  const progress = recorder()
  const err = await rejection(device(p.uri).print(request(), progress, new AbortController().signal))
  assert.is(progress.calls.length, 1)
  assert.is(err.beforeAccept, false)
  assert.is(err.reason, 'aborted-by-system')
  assert.match(err.message, /aborted/)
})

test('a printer that vanishes after accepting is never resubmitted: printer-unreachable-after-accept', async () => {
  const p = await printer({ jobOutcome: 'hold' })
  let stopping: Promise<void> | undefined
  const progress = recorder(() => { stopping = p.stop() })
  const d = device(p.uri, { follow: { pollIntervalMs: 50, unreachableDeadlineMs: 400 } })
  const err = await rejection(d.print(request(), progress, new AbortController().signal))
  await stopping
  assert.is(progress.calls.length, 1)
  assert.is(err.reason, 'printer-unreachable-after-accept')
  assert.is(err.beforeAccept, false)
})

test('ipps: a self-signed printer is refused by default and printed to only when allowed', async () => {
  const p = await printer({ tls: true })
  assert.ok(p.ippsUri !== undefined)
  const progress = recorder()
  const { logger, records } = capturingLogger()
  const err = await rejection(device(p.ippsUri, { logger }).print(request(), progress, new AbortController().signal))
  assert.is(err.reason, 'printer-certificate-untrusted')
  assert.is(err.beforeAccept, true)
  assert.is(records.filter((r) => r.msg === 'printer not ready, retrying').length, 0, 'a certificate problem is not retried')
  assert.equal(progress.calls, [])

  const outcome = await device(p.ippsUri, { allowSelfSignedCertificate: true }).print(request(), progress, new AbortController().signal)
  assert.equal(progress.calls, [outcome.printerJobId])
  const [file] = await p.jobFiles()
  assert.ok((await readFile(file)).equals(pdfBytes))
})

test('probe says what a live printer is doing', async () => {
  const p = await printer()
  const result = await device(p.uri).probe(new AbortController().signal)
  assert.is(result.ok, true)
  assert.match(result.message, /^idle; /)
})

test('probe of a dead printer says not ok and never throws', async () => {
  const p = await printer()
  await p.stop()
  const started = Date.now()
  const result = await device(p.uri).probe(new AbortController().signal)
  assert.is(result.ok, false)
  assert.match(result.message, /does not answer/)
  assert.ok(Date.now() - started < 3_000)
  // An address nobody answers on (TEST-NET-1; no route in the sandbox) is not ok either.
  const black = await device('ipp://192.0.2.1:631/ipp/print', { timeouts: { probeMs: 300 } }).probe(new AbortController().signal)
  assert.is(black.ok, false)
})

// ---- asking about a job after the fact (what a restarted site does) ----------------------

/** Prints until the printer accepts, then stops following (as a site killed right then): the printer job id. */
async function acceptedJob (d: IppOutputDevice): Promise<number> {
  const ac = new AbortController()
  const progress = recorder(() => ac.abort(new Error('site killed')))
  await d.print(request(), progress, ac.signal).catch(() => undefined)
  const [id] = progress.calls
  assert.is(typeof id, 'number', 'the printer accepted the job')
  return id as number
}

test('outcome: a job the printer completed is completed, with its impressions, long after print() returned', async () => {
  const p = await printer({ impressions: 3 })
  const d = device(p.uri)
  const { printerJobId } = await d.print(request(), recorder(), new AbortController().signal)
  assert.ok(printerJobId !== undefined)
  // a new device object, as after a restart: nothing but the id carries over
  assert.equal(await device(p.uri).outcome(printerJobId, new AbortController().signal), { state: 'completed', impressions: 3 })
})

test('outcome: a job aborted at the printer is failed with its job-state-reasons', async () => {
  const p = await printer({ jobOutcome: 'abort' })
  const d = device(p.uri)
  const id = await acceptedJob(d)
  await until(async () => (await d.outcome(id, new AbortController().signal)).state !== 'pending', 10_000, 'the printer ended the job')
  const answer = await d.outcome(id, new AbortController().signal)
  assert.is(answer.state, 'failed')
  assert.is(answer.reason, 'aborted-by-system')
  assert.match(answer.message ?? '', new RegExp(`printer job ${id} aborted`))
})

test('outcome: a job waiting at the printer is pending; follow waits until it is canceled there', async () => {
  const p = await printer()
  const d = device(p.uri)
  // a job that waits at the printer for its document (ippeveprinter prints one job at a time and
  // refuses a second Print-Job while busy, so a waiting job is made with Create-Job)
  const created = await ippPost(p.uri, ippRequest(Op.CreateJob, p.uri, { user: 'alice', operation: [attr('job-name', Tag.nameWithoutLanguage, 'waiting')] }))
  const waiting = created.message?.groups.find((g) => g.tag === Tag.jobAttributes)?.attributes.find((a) => a.name === 'job-id')?.values[0]?.value
  assert.is(typeof waiting, 'number', `Create-Job answered ${created.message?.code ?? created.httpStatus}`)
  const id = waiting as number
  assert.equal(await d.outcome(id, new AbortController().signal), { state: 'pending' })

  const following = d.follow(id, new AbortController().signal)
  // someone cancels it at the printer (Cancel-Job, as its panel or web page would)
  const cancel = await ippPost(p.uri, ippRequest(Op.CancelJob, p.uri, { user: 'alice', operation: [attr('job-id', Tag.integer, id)] }))
  assert.is(cancel.message?.code, Status.successfulOk, `Cancel-Job answered ${cancel.message?.code ?? cancel.httpStatus}`)
  const answer = await following
  assert.is(answer.state, 'failed')
  assert.match(answer.message ?? '', new RegExp(`printer job ${id} canceled`))
  assert.ok(answer.reason !== undefined && answer.reason !== 'none', `a reason: ${answer.reason ?? ''}`)
  assert.equal(await d.outcome(id, new AbortController().signal), answer, 'asking again gives the same answer')
})

test('outcome: a job the printer does not know, or a printer that is gone, is unknown and says why', async () => {
  const p = await printer()
  const d = device(p.uri)
  const { printerJobId } = await d.print(request(), recorder(), new AbortController().signal)
  const forgotten = await d.outcome((printerJobId ?? 0) + 1000, new AbortController().signal)
  assert.is(forgotten.state, 'unknown')
  assert.is(forgotten.reason, 'printer-job-not-found')
  await p.stop()
  const gone = await d.outcome(printerJobId ?? 1, new AbortController().signal)
  assert.is(gone.state, 'unknown')
  assert.is(gone.reason, 'printer-unreachable')
  assert.match(gone.message ?? '', /ECONNREFUSED/)
  // follow gives up after its own deadline without an answer (50 ms polls, 400 ms deadline)
  const followed = await device(p.uri, { follow: { pollIntervalMs: 50, unreachableDeadlineMs: 400 } }).follow(printerJobId ?? 1, new AbortController().signal)
  assert.equal([followed.state, followed.reason], ['unknown', 'printer-unreachable'])
  assert.match(followed.message ?? '', /gave up following/)
})

test('outcome and follow: an aborted question answers unknown at once; a bad id is a clear error', async () => {
  const p = await printer({ jobOutcome: 'hold' })
  const d = device(p.uri, { follow: { pollIntervalMs: 30_000, unreachableDeadlineMs: 60_000 } })
  const id = await acceptedJob(d)
  const ac = new AbortController()
  const started = Date.now()
  const following = d.follow(id, ac.signal)
  await until(async () => (await d.outcome(id, new AbortController().signal)).state === 'pending', 5_000, 'the job is pending')
  ac.abort(new Error('site stopping'))
  assert.equal((await following).reason, 'outcome-query-aborted')
  assert.ok(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms (poll interval is 30 s)`)
  for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN]) {
    await d.outcome(bad, new AbortController().signal).then(
      () => assert.unreachable(`accepted job id ${bad}`),
      (err: unknown) => { assert.instance(err, InvalidPrinterJobIdError); assert.match((err as Error).message, /job-id/) })
  }
})

test('device URIs: ipp, ipps and file are built, anything else is rejected', () => {
  const ok = (uri: string): unknown => createOutputDevice(uri, { logger: silent })
  assert.instance(ok('ipp://printer.example:631/ipp/print'), IppOutputDevice)
  assert.instance(ok('ipps://printer.example/ipp/print'), IppOutputDevice)
  assert.instance(ok('ipp://[::1]:8631/ipp/print'), IppOutputDevice)
  assert.instance(ok('file:///tmp/printmesh-out'), FileOutputDevice)
  for (const bad of [
    'socket://printer.example:9100', 'lpd://printer.example/queue', 'http://printer.example:631/ipp/print',
    'not a uri', '', 'ipp://', 'ipp:///ipp/print', 'ipp://user:secret@printer.example/ipp/print',
    'file://otherhost/srv/out', 'file:relative/dir', 'file:///tmp/out?x=1', 'file:///'
  ]) {
    assert.throws(() => ok(bad), (err: unknown) => err instanceof UnsupportedDeviceUriError, `accepted ${JSON.stringify(bad)}`)
  }
})

test.run()
