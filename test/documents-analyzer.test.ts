// Document analysis in a pool of worker threads: same answers; per-document time and memory
// limits counted from the start of each analysis; one slow or hostile document holds up no
// other; workers over a limit, grown or idle are replaced or ended.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocumentAnalyzer, type DocumentAnalyzerOptions } from '../devices/documents/analyzer.ts'
import { parseDocument, AnalysisStoppedError, CorruptDocumentError } from '../devices/documents/index.ts'
import { makePdf, makeJpeg } from './fixtures/documents.ts'
import { makeFlateBombPdf, makeManyOperatorsPdf, makeManyPagesPdf } from '../simulations/bench/hostile-documents.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'
import { until } from '../simulations/wait.ts'

const log = pino({ level: 'silent' })
let dir = ''
/** A 3-page PDF (page 2 in colour): the valid document every test expects an answer for. */
let valid = ''
/** 50,000 pages under one flat page tree: minutes of pdf.js time (simulations/bench/hostile-documents.ts). */
let manyPages = ''
/** One page whose content stream inflates to 1 GiB. */
let bomb = ''
/** One page of 8 Mi operators: hundreds of MB of pdf.js heap. */
let manyOperators = ''
const analyzers: DocumentAnalyzer[] = []

/** An analyzer the test's teardown closes. */
function analyzer (options?: DocumentAnalyzerOptions): DocumentAnalyzer {
  const a = new DocumentAnalyzer(log, options)
  analyzers.push(a)
  return a
}

test.before(async () => {
  dir = await tempDir()
  valid = await makePdf(dir, { pages: 3, colorPages: [1] })
  manyPages = await makeManyPagesPdf(dir)
  bomb = await makeFlateBombPdf(dir)
  manyOperators = await makeManyOperatorsPdf(dir)
})
test.after.each(async () => { for (const a of analyzers.splice(0)) await a.close() })
test.after(async () => { await rm(dir, { recursive: true, force: true }) })

/** Threads of this process: a worker thread ends when its worker is terminated. */
function threadCount (): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1])
}

/** A function telling whether `promise` has settled yet. */
function settled (promise: Promise<unknown>): () => boolean {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  return () => done
}

test('the worker gives the same answers as parsing in-process', async () => {
  const a = analyzer()
  const pdf = await makePdf(dir, { pages: 5, colorPages: [0, 4] })
  const jpeg = await makeJpeg(dir, { color: true })
  assert.equal(await a.parse(pdf, 'application/pdf'), await parseDocument(pdf, 'application/pdf'))
  assert.equal(await a.parse(jpeg, 'application/octet-stream'), await parseDocument(jpeg, 'application/octet-stream'))
})

test('corrupt documents are refused with CorruptDocumentError and the worker keeps working', async () => {
  const a = analyzer({ workers: 1 })
  const bad = join(dir, 'bad.pdf')
  await writeFile(bad, '%PDF-1.4\n garbage garbage\n')
  await rejects(a.parse(bad, 'application/pdf'), CorruptDocumentError)
  assert.is((await a.parse(valid, 'application/pdf')).pages, 3)
  assert.is(a.workers, 1)
})

test('an analysis over its time limit is stopped (pages unknown, not corrupt) and the next document gets a fresh worker', async () => {
  const a = analyzer({ workers: 1 })
  const stopped = rejects(a.parse(manyPages, 'application/pdf', undefined, 1500), AnalysisStoppedError)
  await until(() => a.workers === 1, 5000, 'the document in a worker')
  const withWorker = threadCount()
  const err = await stopped
  await until(() => threadCount() < withWorker, 5000, 'the stopped worker\'s thread ended (terminated, its memory given back)')
  assert.is(err.stop, 'time-limit')
  assert.match(err.message, /longer than 1500 ms/)
  assert.is(err.progress.format, 'application/pdf') // pdf.js needs ~5 s to read this page tree's /Count
  assert.is((await a.parse(valid, 'application/pdf')).pages, 3)
})

test('a slow document does not hold up a valid one sent after it: it is answered before the slow one is stopped', async () => {
  const limitMs = 4000
  const a = analyzer({ workers: 2, timeoutMs: limitMs })
  const slow = rejects(a.parse(manyPages, 'application/pdf'), AnalysisStoppedError)
  const slowDone = settled(slow)
  const info = await a.parse(valid, 'application/pdf')
  assert.equal([info.pages, info.colorPages], [3, 1])
  assert.not.ok(slowDone(), 'answered while the slow document was still being analysed')
  assert.is((await slow).stop, 'time-limit')
})

test('the time limit counts from the start of a document\'s analysis: one queued longer than the limit still succeeds', async () => {
  const limitMs = 2000
  const a = analyzer({ workers: 2, timeoutMs: limitMs })
  // both workers busy with documents that will be stopped at the limit
  const slow = [1, 2].map(async () => await rejects(a.parse(manyPages, 'application/pdf'), AnalysisStoppedError))
  const queuedAt = Date.now()
  const info = await a.parse(valid, 'application/pdf')
  const waitedMs = Date.now() - queuedAt
  assert.is(info.pages, 3)
  assert.ok(waitedMs > limitMs, `waited ${waitedMs} ms, longer than the ${limitMs} ms limit`)
  assert.equal((await Promise.all(slow)).map((err) => err.stop), ['time-limit', 'time-limit'])
})

test('a worker over its memory limit (heap + inflated buffers) is replaced and the next document is analysed', async () => {
  // 48 MB: under the inflate bound (64 MiB), so the sampled memory limit stops the bomb first
  const a = analyzer({ workers: 1, memoryLimitMb: 48 })
  const err = await rejects(a.parse(bomb, 'application/pdf'), AnalysisStoppedError)
  assert.is(err.stop, 'memory-limit')
  assert.equal(err.progress, { format: 'application/pdf', declaredPages: 1 })
  assert.is((await a.parse(valid, 'application/pdf')).pages, 3)
})

test('a worker whose heap outgrows its resourceLimits is replaced and the next document is analysed', async () => {
  // only the V8 heap limit can stop it: the sampled limit and the time limit are far away
  const a = analyzer({ workers: 1, oldGenerationMb: 64, memoryLimitMb: 4096, timeoutMs: 30_000 })
  const err = await rejects(a.parse(manyOperators, 'application/pdf'), AnalysisStoppedError)
  assert.is(err.stop, 'memory-limit')
  assert.match(err.message, /heap outgrew/)
  assert.is((await a.parse(valid, 'application/pdf')).pages, 3)
})

test('a flate bomb inflates only up to the bound: one page, counted colour, within the worker\'s memory', async () => {
  const a = analyzer({ workers: 1 })
  const before = process.memoryUsage.rss()
  let peak = before
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 20)
  try {
    const info = await a.parse(bomb, 'application/pdf')
    assert.equal([info.pages, info.colorPages], [1, 1])
  } finally {
    clearInterval(sampler)
  }
  const grewMb = Math.round((peak - before) / 1024 ** 2)
  assert.ok(grewMb < 512, `the process grew by ${grewMb} MB at most`)
})

test('a page of operators beyond the inflate bound is counted colour at the cut, not analysed to its end', async () => {
  // 32 Mi operators, 128 MiB inflated: analysed to the end it takes gigabytes of pdf.js heap
  const operatorBomb = await makeManyOperatorsPdf(dir, 32 * 1024 ** 2, 'operator-bomb.pdf')
  const a = analyzer({ workers: 1 })
  const info = await a.parse(operatorBomb, 'application/pdf')
  assert.equal([info.pages, info.colorPages], [1, 1])
})

test('an aborted analysis is stopped, its worker replaced', async () => {
  const a = analyzer({ workers: 1 })
  const abort = new AbortController()
  const slow = rejects(a.parse(manyPages, 'application/pdf', abort.signal), Error)
  const queued = rejects(a.parse(valid, 'application/pdf', abort.signal), Error)
  await until(() => a.workers === 1, 5000, 'the slow document in a worker')
  abort.abort(new Error('stopping'))
  assert.equal([(await slow).message, (await queued).message], ['stopping', 'stopping'])
  assert.is(a.workers, 0)
  assert.is((await a.parse(valid, 'application/pdf')).pages, 3)
})

test('workers are not kept bloated: replaced after a document that grew them, ended when idle', async () => {
  const recycling = analyzer({ workers: 2, recycleAboveMb: 1 })
  assert.is((await recycling.parse(valid, 'application/pdf')).pages, 3)
  assert.is(recycling.workers, 0)
  const idling = analyzer({ workers: 2, idleMs: 200 })
  assert.is((await idling.parse(valid, 'application/pdf')).pages, 3)
  assert.is(idling.workers, 1)
  await until(() => idling.workers === 0, 5000, 'the idle worker ended')
})

test.run()
