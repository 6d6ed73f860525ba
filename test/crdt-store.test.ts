// The document store: durable before resolve, no re-persisting of replays, errors surface.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { DocStore, COMPACT_THRESHOLD } from '../crdt/store.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { jobsDoc, type DocName } from '../crdt/names.ts'
import { tempDir } from './helpers/site.ts'

const doc = jobsDoc('site-a', '2026-11')
const local = { kind: 'local', service: 'test' } as const
let dir = ''
test.before.each(async () => { dir = await tempDir() })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

/** Counts what reaches the underlying persistence. */
class CountingPersistence implements Persistence {
  appends = 0
  failNext = false
  constructor (private readonly inner: Persistence) {}
  load = async (n: DocName) => await this.inner.load(n)
  async append (n: DocName, u: Uint8Array): Promise<void> {
    if (this.failNext) { this.failNext = false; throw new Error('disk full') }
    this.appends++
    await this.inner.append(n, u)
  }
  compact = async (n: DocName, u: Uint8Array) => await this.inner.compact(n, u)
  remove = async (n: DocName) => await this.inner.remove(n)
  names = async () => await this.inner.names()
  close = async () => await this.inner.close()
}

test('a change is on disk when transact resolves and is restored on reopen', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  await store.transact(doc, local, (d) => d.getMap('m').set('k', 'v'))
  await store.close()
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  assert.is((await store.open(doc)).getMap('m').get('k'), 'v')
  await store.close()
})

test('loading from storage does not persist the replayed updates again', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  for (let i = 0; i < 3; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  await store.close()
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  store = new DocStore(counting)
  await store.open(doc)
  assert.is(counting.appends, 0)
  await store.transact(doc, local, (d) => d.getMap('m').set('new', 1))
  assert.is(counting.appends, 1)
  await store.close()
})

test('a failing append rejects the transact that caused it, and later writes work', async () => {
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  const store = new DocStore(counting)
  await store.open(doc)
  counting.failNext = true
  try {
    await store.transact(doc, local, (d) => d.getMap('m').set('a', 1))
    assert.unreachable('transact should reject')
  } catch (err) {
    assert.match((err as Error).message, /disk full/)
  }
  await store.transact(doc, local, (d) => d.getMap('m').set('b', 2))
  assert.is(counting.appends, 1)
  await store.close()
})

test('the store compacts after the threshold and still restores every change', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  const n = COMPACT_THRESHOLD + 10
  for (let i = 0; i < n; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  await store.close()
  const p = await LevelPersistence.open(join(dir, 'db'))
  const stored = await p.load(doc)
  assert.ok(stored.length < n / 2, `expected compaction, found ${stored.length} updates`)
  await p.close()
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  const m = (await store.open(doc)).getMap('m')
  assert.is(m.size, n)
  assert.is(m.get(`k${n - 1}`), n - 1)
  await store.close()
})

test('updates applied from a peer are persisted and emitted with their origin', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')))
  const remote = new Y.Doc()
  remote.getMap('m').set('from', 'bob')
  const seen: string[] = []
  store.on('update', (_n, _u, origin) => seen.push(origin.kind))
  await store.applyUpdate(doc, Y.encodeStateAsUpdate(remote), { kind: 'peer', peer: 'bob' })
  assert.equal(seen, ['peer'])
  assert.is((await store.open(doc)).getMap('m').get('from'), 'bob')
  await store.close()
})

test.run()
