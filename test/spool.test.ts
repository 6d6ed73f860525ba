// The content-addressed spool: durable writes, nothing left behind by a failed one, and a
// subfolder removed behind the process's back made again.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { DocumentTooLargeError, Spool } from '../devices/spool.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'

let dir = ''
test.before.each(async () => { dir = await tempDir() })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

test('a written document is at its hash with its exact bytes, and no temp file is left', async () => {
  const spool = await Spool.open(join(dir, 'spool'))
  const bytes = randomBytes(200 * 1024)
  const doc = await spool.write(Readable.from([bytes.subarray(0, 70_000), bytes.subarray(70_000)]))
  assert.equal([doc.sha256, doc.size, doc.path], [sha(bytes), bytes.length, spool.path(sha(bytes))])
  assert.ok((await readFile(doc.path)).equals(bytes))
  assert.equal(await readdir(join(dir, 'spool', 'tmp')), [])
})

test('a source failing midway fails the write with its own error and leaves nothing in the spool', async () => {
  const spool = await Spool.open(join(dir, 'spool'))
  const source = new Readable({ read () {} })
  source.push(randomBytes(1024))
  setImmediate(() => source.destroy(new Error('client went away')))
  const err = await rejects(spool.write(source), Error)
  assert.match(err.message, /client went away/)
  assert.equal(await spool.list(), [])
  assert.equal(await readdir(join(dir, 'spool', 'tmp')), [])
})

test('a document past the limit fails with DocumentTooLargeError, nothing kept', async () => {
  const spool = await Spool.open(join(dir, 'spool'))
  await rejects(spool.write(Readable.from([randomBytes(600), randomBytes(600)]), { maxBytes: 1000 }), DocumentTooLargeError)
  assert.equal(await spool.list(), [])
  assert.equal(await readdir(join(dir, 'spool', 'tmp')), [])
})

test('when the temp file cannot be made, the source is destroyed (its descriptor released), not left open', async () => {
  const spool = await Spool.open(join(dir, 'spool'))
  await rm(join(dir, 'spool', 'tmp'), { recursive: true })
  const source = Readable.from([randomBytes(1024)])
  await rejects(spool.write(source), Error)
  assert.ok(source.destroyed, 'the source stream is destroyed')
})

test('a subfolder removed behind the spool\'s back is made again at the next write of its prefix', async () => {
  const spool = await Spool.open(join(dir, 'spool'))
  const first = randomBytes(4096)
  const doc = await spool.write(Readable.from([first]))
  await rm(join(dir, 'spool', doc.sha256.slice(0, 2)), { recursive: true })
  // the same bytes again: the same prefix, whose folder the spool made (and remembers) before
  const again = await spool.write(Readable.from([first]))
  assert.ok((await readFile(again.path)).equals(first))
  assert.equal(await spool.list(), [doc.sha256])
})

test.run()
