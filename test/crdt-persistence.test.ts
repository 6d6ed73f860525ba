// The level persistence: what is appended comes back in order, after compaction and reopen.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { LevelPersistence, PersistenceError } from '../crdt/persistence.ts'
import { jobsDoc, acctDoc, directoryDoc, peerId } from '../crdt/names.ts'
import { tempDir } from '../simulations/node-process.ts'

const alice = jobsDoc(peerId('site-a'), '2026-11')
const bob = acctDoc(peerId('site-a'), '2026-11')
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b)

let dir = ''
test.before.each(async () => { dir = await tempDir() })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

test('appended updates load back in append order, per document', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  for (let i = 0; i < 20; i++) await p.append(alice, bytes(i))
  await p.append(bob, bytes(99))
  assert.equal((await p.load(alice)).map((u) => u[0]), [...Array(20).keys()])
  assert.equal((await p.load(bob)).map((u) => u[0]), [99])
  assert.equal(await p.load(directoryDoc()), [])
  await p.close()
})

test('updates survive close and reopen, and appends continue after the last clock', async () => {
  let p = await LevelPersistence.open(join(dir, 'db'))
  await p.append(alice, bytes(1))
  await p.append(alice, bytes(2))
  await p.close()
  p = await LevelPersistence.open(join(dir, 'db'))
  await p.append(alice, bytes(3))
  assert.equal((await p.load(alice)).map((u) => u[0]), [1, 2, 3])
  await p.close()
})

test('reading a document while appends are in flight never makes a later append overwrite one', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  await p.append(alice, bytes(0))
  const writes: Array<Promise<void>> = []
  for (let i = 1; i <= 50; i++) {
    writes.push(p.append(alice, bytes(i)))
    if (i % 5 === 0) writes.push(p.load(alice).then(() => undefined))
  }
  await Promise.all(writes)
  assert.equal((await p.load(alice)).map((u) => u[0]).sort((x, y) => x - y), [...Array(51).keys()])
  await p.close()
})

test('appends issued without waiting are group-committed: each resolves, in call order, and all load back in order', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  const n = 2_500 // more than one group
  const resolved: number[] = []
  const appends = Array.from({ length: n }, (_, i) => p.append(i % 2 === 0 ? alice : bob, bytes(i % 256, i >> 8)).then(() => resolved.push(i)))
  await Promise.all(appends)
  assert.equal(resolved, [...Array(n).keys()])
  const idOf = (u: Uint8Array): number => u[0] + (u[1] << 8)
  assert.equal((await p.load(alice)).map(idOf), [...Array(n).keys()].filter((i) => i % 2 === 0))
  assert.equal((await p.load(bob)).map(idOf), [...Array(n).keys()].filter((i) => i % 2 === 1))
  await p.close()
})

test('close waits for appends still queued: they are on disk after reopening', async () => {
  let p = await LevelPersistence.open(join(dir, 'db'))
  const pending = Array.from({ length: 50 }, (_, i) => p.append(alice, bytes(i)))
  await p.close()
  await Promise.all(pending)
  p = await LevelPersistence.open(join(dir, 'db'))
  assert.equal((await p.load(alice)).map((u) => u[0]), [...Array(50).keys()])
  await p.close()
})

test('compaction replaces all entries by the given ones, and later appends follow them', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  for (let i = 0; i < 5; i++) await p.append(alice, bytes(i))
  await p.compact(alice, [bytes(41), bytes(42)])
  await p.append(alice, bytes(43))
  assert.equal((await p.load(alice)).map((u) => u[0]), [41, 42, 43])
  await p.close()
})

test('names lists each stored document once; remove drops one document only', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  await p.append(alice, bytes(1))
  await p.append(alice, bytes(2))
  await p.append(bob, bytes(3))
  assert.equal((await p.names()).sort(), [bob, alice].sort())
  await p.remove(alice)
  assert.equal(await p.names(), [bob])
  assert.equal(await p.load(alice), [])
  await p.close()
})

test('a second process opening the same database gets a clear error', async () => {
  const p = await LevelPersistence.open(join(dir, 'db'))
  // classic-level locks per process too, so a second open in this process shows the lock
  try {
    await LevelPersistence.open(join(dir, 'db'))
    assert.unreachable('second open should fail')
  } catch (err) {
    assert.instance(err, PersistenceError)
    assert.match((err as Error).message, /in use by another printmesh process/)
  }
  await p.close()
})

test.run()
