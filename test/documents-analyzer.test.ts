// Document analysis in a worker thread: same answers, bounded time, survives bad documents.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocumentAnalyzer } from '../devices/documents/analyzer.ts'
import { parseDocument, CorruptDocumentError } from '../devices/documents/index.ts'
import { makePdf, makeJpeg } from './fixtures/documents.ts'
import { tempDir } from './helpers/site.ts'
import { rejects } from './helpers/assert.ts'

let dir = ''
let analyzer: DocumentAnalyzer
test.before.each(async () => { dir = await tempDir(); analyzer = new DocumentAnalyzer(pino({ level: 'silent' })) })
test.after.each(async () => { await analyzer.close(); await rm(dir, { recursive: true, force: true }) })

test('the worker gives the same answers as parsing in-process', async () => {
  const pdf = await makePdf(dir, { pages: 5, colorPages: [0, 4] })
  const jpeg = await makeJpeg(dir, { color: true })
  assert.equal(await analyzer.parse(pdf, 'application/pdf'), await parseDocument(pdf, 'application/pdf'))
  assert.equal(await analyzer.parse(jpeg, 'application/octet-stream'), await parseDocument(jpeg, 'application/octet-stream'))
})

test('corrupt documents are refused with CorruptDocumentError and the worker keeps working', async () => {
  const bad = join(dir, 'bad.pdf')
  await writeFile(bad, '%PDF-1.4\n garbage garbage\n')
  await rejects(analyzer.parse(bad, 'application/pdf'), CorruptDocumentError)
  const pdf = await makePdf(dir, { pages: 2, colorPages: [] })
  assert.is((await analyzer.parse(pdf, 'application/pdf')).pages, 2)
})

test('an analysis over its time limit is refused, and the next document is analysed by a fresh worker', async () => {
  const pdf = await makePdf(dir, { pages: 2, colorPages: [] })
  const err = await rejects(analyzer.parse(pdf, 'application/pdf', undefined, 1), CorruptDocumentError)
  assert.match(err.message, /took longer than 1 ms/)
  assert.is((await analyzer.parse(pdf, 'application/pdf')).pages, 2)
})

test.run()
