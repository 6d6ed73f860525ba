// The file: output device (the built-in virtual printer): exact bytes, atomic publish, sidecar.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { pino } from 'pino'
import { FileOutputDevice, extensionFor, sanitizeJobName, type FileSidecar } from '../devices/output/file.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import { PrinterError, type PrintProgress, type PrintRequest } from '../devices/output/types.ts'

const logger = pino({ level: 'silent' })
const dirs: string[] = []

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'printmesh-output-file-'))
  dirs.push(dir)
  return dir
}

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function request (documentPath: string, over: Partial<PrintRequest> = {}): PrintRequest {
  return { documentPath, format: 'application/pdf', jobName: 'Quarterly Report (final).pdf', userName: 'alice', copies: 2, sides: 'two-sided-long-edge', media: 'iso_a4_210x297mm', ...over }
}

function recorder (): PrintProgress & { calls: Array<number | undefined> } {
  const calls: Array<number | undefined> = []
  return { calls, accepted (id?: number) { calls.push(id) } }
}

test('writes the exact bytes under <timestamp>-<sanitized name>.<ext>, and a sidecar', async () => {
  const src = tempDir()
  const out = join(tempDir(), 'nested', 'out') // does not exist yet: the device creates it
  const bytes = randomBytes(3 * 1024 * 1024 + 17) // several stream chunks
  const doc = join(src, 'doc.pdf')
  writeFileSync(doc, bytes)
  const device = createOutputDevice(pathToFileURL(out).href, { logger })
  assert.instance(device, FileOutputDevice)
  const progress = recorder()

  const outcome = await device.print(request(doc), progress, new AbortController().signal)

  assert.equal(outcome, {})
  assert.equal(progress.calls.length, 1, 'accepted once')
  const files = (await readdir(out)).sort()
  assert.is(files.length, 2, `document and sidecar only, got ${files.join(', ')}`)
  const [docName, sidecarName] = files
  assert.match(docName, /^\d{8}T\d{9}Z-quarterly_report_final_pdf\.pdf$/)
  assert.is(sidecarName, `${docName}.json`)
  assert.ok((await readFile(join(out, docName))).equals(bytes), 'document bytes identical')
  const sidecar = JSON.parse(await readFile(join(out, sidecarName), 'utf8')) as FileSidecar
  assert.equal({ ...sidecar, writtenAt: 'x' }, {
    jobName: 'Quarterly Report (final).pdf',
    userName: 'alice',
    format: 'application/pdf',
    copies: 2,
    sides: 'two-sided-long-edge',
    media: 'iso_a4_210x297mm',
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    writtenAt: 'x',
    document: docName
  })
  assert.ok(!Number.isNaN(Date.parse(sidecar.writtenAt)))
})

test('two jobs with the same name in the same millisecond both survive', async () => {
  const src = tempDir()
  const out = tempDir()
  const a = join(src, 'a.txt')
  const b = join(src, 'b.txt')
  writeFileSync(a, 'first\n')
  writeFileSync(b, 'second\n')
  const fixed = new Date('2024-05-01T10:20:30.123Z')
  const device = new FileOutputDevice(pathToFileURL(out).href, out, { logger, now: () => fixed })
  const signal = new AbortController().signal
  await device.print(request(a, { format: 'text/plain', jobName: 'notes' }), recorder(), signal)
  await device.print(request(b, { format: 'text/plain', jobName: 'notes' }), recorder(), signal)
  const files = (await readdir(out)).sort()
  assert.equal(files, [
    '20240501T102030123Z-notes-2.txt', '20240501T102030123Z-notes-2.txt.json',
    '20240501T102030123Z-notes.txt', '20240501T102030123Z-notes.txt.json'
  ])
  assert.is(await readFile(join(out, '20240501T102030123Z-notes.txt'), 'utf8'), 'first\n')
  assert.is(await readFile(join(out, '20240501T102030123Z-notes-2.txt'), 'utf8'), 'second\n')
})

test('a failed write leaves no file (partial or final) behind and is a before-accept PrinterError', async () => {
  const out = tempDir()
  const device = createOutputDevice(pathToFileURL(out).href, { logger })
  const progress = recorder()
  const err = await device.print(request(join(out, 'missing-source.pdf')), progress, new AbortController().signal).then(() => undefined, (e: unknown) => e)
  assert.instance(err, PrinterError)
  assert.is((err as PrinterError).beforeAccept, true)
  assert.equal(progress.calls, [])
  assert.equal(await readdir(out), [], 'no temp file, no document')
})

test('an aborted signal writes nothing and rejects before accept', async () => {
  const src = tempDir()
  const out = tempDir()
  const doc = join(src, 'doc.pdf')
  writeFileSync(doc, randomBytes(1024))
  const ac = new AbortController()
  ac.abort(new Error('site stopping'))
  const device = createOutputDevice(pathToFileURL(out).href, { logger })
  const err = await device.print(request(doc), recorder(), ac.signal).then(() => undefined, (e: unknown) => e)
  assert.instance(err, PrinterError)
  assert.is((err as PrinterError).reason, 'release-aborted')
  assert.is((err as PrinterError).beforeAccept, true)
  assert.equal(await readdir(out), [])
})

test('a folder that cannot be created fails the print and the probe, without throwing from probe', async () => {
  // A path below a regular file can never become a folder (permission bits would not stop root).
  const base = tempDir()
  writeFileSync(join(base, 'file'), 'x')
  const device = createOutputDevice(pathToFileURL(join(base, 'file', 'sub')).href, { logger })
  const probe = await device.probe(new AbortController().signal)
  assert.is(probe.ok, false)
  assert.match(probe.message, /cannot write/)
  const doc = join(base, 'doc.pdf')
  writeFileSync(doc, 'x')
  const progress = recorder()
  const err = await device.print(request(doc), progress, new AbortController().signal).then(() => undefined, (e: unknown) => e)
  assert.instance(err, PrinterError)
  assert.is((err as PrinterError).beforeAccept, true)
  assert.equal(progress.calls, [])
})

test('probe of a writable (or not yet created) folder is ok', async () => {
  const out = tempDir()
  const signal = new AbortController().signal
  assert.is((await createOutputDevice(pathToFileURL(out).href, { logger }).probe(signal)).ok, true)
  assert.is((await createOutputDevice(pathToFileURL(join(out, 'later')).href, { logger }).probe(signal)).ok, true)
})

test('job names are sanitized and extensions follow the format', () => {
  assert.is(sanitizeJobName('Hello, World!'), 'hello_world')
  assert.is(sanitizeJobName('../../etc/passwd'), 'etc_passwd')
  assert.is(sanitizeJobName('   '), 'untitled')
  assert.is(sanitizeJobName('Ünïcodé report'), 'unicode_report')
  assert.is(sanitizeJobName('x'.repeat(500)).length, 80)
  assert.is(extensionFor('application/pdf'), 'pdf')
  assert.is(extensionFor('text/plain; charset=utf-8'), 'txt')
  assert.is(extensionFor('application/x-unknown'), 'bin')
})

test.run()
