// The document store: durable before resolve, no re-persisting of replays, errors surface.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { DocStore, COMPACT_THRESHOLD } from '../crdt/store.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { jobsDoc, peerId, type DocName } from '../crdt/names.ts'
import { seal, open, KIND_UPDATE, KIND_SNAPSHOT, type Envelope } from '../crdt/envelope.ts'
import { generateIdentity } from '../transports/identity.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'

const doc = jobsDoc(peerId('site-a'), '2026-11')
const alice = await generateIdentity()
const bob = await generateIdentity()
const local = { kind: 'local', service: 'test' } as const
let dir = ''
test.before.each(async () => { dir = await tempDir() })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

/** Counts what reaches the underlying persistence. */
class CountingPersistence implements Persistence {
  appends = 0
  failNext = false
  /** The next append fails, but only once the append after it has been issued (a slow failing write). */
  failNextLate = false
  private releaseLate?: () => void
  constructor (private readonly inner: Persistence) {}
  load = async (n: DocName) => await this.inner.load(n)
  async append (n: DocName, u: Uint8Array): Promise<void> {
    this.releaseLate?.()
    this.releaseLate = undefined
    if (this.failNext) { this.failNext = false; throw new Error('disk full') }
    if (this.failNextLate) {
      this.failNextLate = false
      await new Promise<void>((resolve) => { this.releaseLate = resolve })
      throw new Error('disk full')
    }
    this.appends++
    await this.inner.append(n, u)
  }
  /** Compactions fail while set (counted in compactsFailed). */
  failCompact = false
  compactsFailed = 0
  async compact (n: DocName, u: Uint8Array[]): Promise<void> {
    if (this.failCompact) { this.compactsFailed++; throw new Error('disk full') }
    await this.inner.compact(n, u)
  }

  remove = async (n: DocName) => await this.inner.remove(n)
  names = async () => await this.inner.names()
  close = async () => await this.inner.close()
}

test('a change is on disk when transact resolves and is restored on reopen', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  await store.transact(doc, local, (d) => d.getMap('m').set('k', 'v'))
  await store.close()
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  assert.is((await store.open(doc)).getMap('m').get('k'), 'v')
  await store.close()
})

test('loading from storage does not persist the replayed updates again', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  for (let i = 0; i < 3; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  await store.close()
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  store = new DocStore(counting, alice.signer)
  await store.open(doc)
  assert.is(counting.appends, 0)
  await store.transact(doc, local, (d) => d.getMap('m').set('new', 1))
  assert.is(counting.appends, 1)
  await store.close()
})

test('a failing append rejects the transact that caused it, and later writes work', async () => {
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  const store = new DocStore(counting, alice.signer)
  await store.open(doc)
  counting.failNext = true
  try {
    await store.transact(doc, local, (d) => d.getMap('m').set('a', 1))
    assert.unreachable('transact should reject')
  } catch (err) {
    assert.match((err as Error).message, /disk full/)
  }
  await store.transact(doc, local, (d) => d.getMap('m').set('b', 2))
  await store.close()
  // the later write stored the document whole (a snapshot), the failed change included
  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  assert.equal(Object.fromEntries((await reopened.open(doc)).getMap('m').entries()), { a: 1, b: 2 })
  await reopened.close()
})

/**
 * A store that wrote `first`, then two changes at once (`lost`, `after`) whose first append
 * fails: at once (`failNext`), or only after the second was issued (`failNextLate`).
 */
async function failingWrite (how: 'failNext' | 'failNextLate'): Promise<{ store: DocStore, outcomes: Array<PromiseSettledResult<unknown>> }> {
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  const store = new DocStore(counting, alice.signer)
  await store.open(doc)
  await store.transact(doc, local, (d) => d.getMap('m').set('first', 0))
  const pending = [
    store.transact(doc, local, (d) => d.getMap('m').set('lost', 1)),
    store.transact(doc, local, (d) => d.getMap('m').set('after', 2))
  ]
  counting[how] = true
  return { store, outcomes: await Promise.allSettled(pending) }
}

test('after a failed append, the document is stored whole again and no sequence number is ever reused, also after a restart', async () => {
  const { store, outcomes } = await failingWrite('failNext')
  assert.is(outcomes[0].status, 'rejected')
  await store.transact(doc, local, (d) => d.getMap('m').set('next', 3))
  await store.close()

  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const m = (await reopened.open(doc)).getMap('m')
  assert.equal(Object.fromEntries(m.entries()), { first: 0, lost: 1, after: 2, next: 3 })
  for (let i = 0; i < 3; i++) await reopened.transact(doc, local, (d) => d.getMap('m').set(`more${i}`, i))
  await reopened.close()
  const p = await LevelPersistence.open(join(dir, 'db'))
  const seqs = (await p.load(doc)).map((b) => open(b).envelope.seq)
  await p.close()
  assert.equal(seqs.length, new Set(seqs).size, `a sequence number was stored twice: ${seqs.join(', ')}`)
})

test('a restart right after a failed append (a hole in its own numbers on disk) numbers new envelopes above the hole', async () => {
  // the third envelope is issued (and stored) before the second one's write fails
  const { store, outcomes } = await failingWrite('failNextLate')
  // the third is on disk but built on the second's change: not acknowledged either
  assert.equal(outcomes.map((o) => o.status), ['rejected', 'rejected'])
  await store.close() // before any later write could store the document whole again

  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const m = (await reopened.open(doc)).getMap('m')
  for (let i = 0; i < 3; i++) await reopened.transact(doc, local, (d) => d.getMap('m').set(`more${i}`, i))
  const held = Object.fromEntries(m.entries())
  await reopened.close()
  const loadAll = async (): Promise<Uint8Array[]> => {
    const p = await LevelPersistence.open(join(dir, 'db'))
    try { return await p.load(doc) } finally { await p.close() }
  }
  const stored = (await loadAll()).map((b) => open(b).envelope)
  const seqs = stored.map((e) => e.seq)
  assert.equal(seqs.length, new Set(seqs).size, `a sequence number was stored twice: ${seqs.join(', ')}`)
  // every acknowledged change is there, and a peer given everything stored holds the same
  assert.equal(held, { first: 0, more0: 0, more1: 1, more2: 2 })
  const peer = new Y.Doc()
  for (const e of stored) Y.applyUpdate(peer, e.update)
  assert.equal(Object.fromEntries(peer.getMap('m').entries()), held)
  // the hole is closed (the first write after the restart stored a snapshot): a peer's log vector reaches the newest envelope
  const bobStore = new DocStore(await LevelPersistence.open(join(dir, 'bob-db')), bob.signer)
  for (const b of await loadAll()) await bobStore.applyEnvelope(b, open(b).envelope, { kind: 'peer', peer: alice.signer.id })
  assert.is(bobStore.vector(doc).get(alice.signer.id), Math.max(...seqs))
  await bobStore.close()
})

test('the store compacts after the threshold and still restores every change', async () => {
  let store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const n = COMPACT_THRESHOLD + 10
  for (let i = 0; i < n; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  await store.close()
  const p = await LevelPersistence.open(join(dir, 'db'))
  const stored = await p.load(doc)
  assert.ok(stored.length < n / 2, `expected compaction, found ${stored.length} updates`)
  await p.close()
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const m = (await store.open(doc)).getMap('m')
  assert.is(m.size, n)
  assert.is(m.get(`k${n - 1}`), n - 1)
  await store.close()
})

/** Counts the snapshots a store seals of its own documents. */
function countSnapshots (store: DocStore): { count: number } {
  const seen = { count: 0 }
  store.on('entry', (_n, _b, e) => { if (e.kind === KIND_SNAPSHOT && e.author === store.self) seen.count++ })
  return seen
}

test('a large document is not re-encoded every threshold writes: the next snapshot waits until the writes outweigh the last one', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const snapshots = countSnapshots(store)
  await store.transact(doc, local, (d) => d.getMap('m').set('big', 'x'.repeat(300_000)))
  const n = 2 * COMPACT_THRESHOLD + 10
  for (let i = 0; i < n; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  // one snapshot at the threshold; the ~1,000 small writes after it weigh far less than its 300 KB
  assert.is(snapshots.count, 1)
  await store.close()
  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const m = (await reopened.open(doc)).getMap('m')
  assert.is(m.size, n + 1)
  assert.is(m.get(`k${n - 1}`), n - 1)
  await reopened.close()
})

test('peers\' envelopes held past the threshold do not make every local write a snapshot', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const snapshots = countSnapshots(store)
  const remote = new Y.Doc()
  let last = Y.encodeStateVector(remote)
  for (let seq = 1; seq <= COMPACT_THRESHOLD + 50; seq++) {
    remote.getMap('m').set(`bob${seq}`, seq)
    const update = Y.encodeStateAsUpdate(remote, last)
    last = Y.encodeStateVector(remote)
    const { envelope, bytes } = await seal(bob.signer, { doc, seq, kind: KIND_UPDATE, update })
    await store.applyEnvelope(bytes, envelope, { kind: 'peer', peer: bob.signer.id })
  }
  for (let i = 0; i < 20; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`alice${i}`, i))
  assert.is(snapshots.count, 1)
  assert.is((await store.open(doc)).getMap('m').size, COMPACT_THRESHOLD + 50 + 20)
  await store.close()
})

test('every local change is stored as an envelope signed by this peer, numbered 1, 2, 3', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  for (let i = 0; i < 3; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  assert.equal([...store.vector(doc)], [[alice.signer.id, 3]])
  await store.close()
  const p = await LevelPersistence.open(join(dir, 'db'))
  const stored = (await p.load(doc)).map((b) => open(b).envelope)
  assert.equal(stored.map((e) => [e.author, e.seq, e.doc]), [1, 2, 3].map((n) => [alice.signer.id, n, doc]))
  await p.close()
})

test('a peer\'s envelope that could not be stored is asked for again, and the peer\'s later envelopes are still taken', async () => {
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  const store = new DocStore(counting, alice.signer)
  const remote = new Y.Doc()
  const envelopes: Array<{ envelope: Envelope, bytes: Uint8Array }> = []
  let last = Y.encodeStateVector(remote)
  for (let seq = 1; seq <= 4; seq++) {
    remote.getMap('m').set(`bob${seq}`, seq)
    envelopes.push(await seal(bob.signer, { doc, seq, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(remote, last) }))
    last = Y.encodeStateVector(remote)
  }
  const fromBob = { kind: 'peer', peer: bob.signer.id } as const
  const outcomes: string[] = []
  for (const [i, { envelope, bytes }] of envelopes.entries()) {
    if (i === 1) counting.failNext = true
    outcomes.push(await store.applyEnvelope(bytes, envelope, fromBob).then(() => 'ok', () => 'rejected'))
  }
  assert.equal(outcomes, ['ok', 'rejected', 'ok', 'ok'])
  // anti-entropy sees bob's log stop at 1, so bob sends 2 again; it is stored this time
  assert.is(store.vector(doc).get(bob.signer.id), 1)
  assert.is(await store.applyEnvelope(envelopes[1].bytes, envelopes[1].envelope, fromBob), true)
  assert.is(store.vector(doc).get(bob.signer.id), 4)
  // a failed write of this peer's own holds back its own later envelopes, not bob's
  counting.failNext = true
  await rejects(store.transact(doc, local, (d) => d.getMap('m').set('alice', 1)), Error)
  remote.getMap('m').set('bob5', 5)
  const fifth = await seal(bob.signer, { doc, seq: 5, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(remote, last) })
  assert.is(await store.applyEnvelope(fifth.bytes, fifth.envelope, fromBob), true)
  await store.close()
  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  assert.is((await reopened.open(doc)).getMap('m').size, 5)
  assert.is(reopened.vector(doc).get(bob.signer.id), 5)
  await reopened.close()
})

test('a failed compaction rejects no write: every write resolves and is stored, and later writes compact again', async () => {
  const counting = new CountingPersistence(await LevelPersistence.open(join(dir, 'db')))
  const store = new DocStore(counting, alice.signer)
  counting.failCompact = true
  const n = COMPACT_THRESHOLD + 5
  for (let i = 0; i < n; i++) await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))
  assert.ok(counting.compactsFailed > 1, `compaction is retried by each later write (failed ${counting.compactsFailed} times)`)
  counting.failCompact = false
  await store.transact(doc, local, (d) => d.getMap('m').set('last', n))
  await store.close()
  const p = await LevelPersistence.open(join(dir, 'db'))
  const stored = await p.load(doc)
  await p.close()
  assert.ok(stored.length < n / 2, `expected compaction once it works again, found ${stored.length} entries`)
  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  assert.is((await reopened.open(doc)).getMap('m').size, n + 1)
  await reopened.close()
})

test('concurrent local changes are emitted once durable, in sequence order, and all are restored', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  await store.open(doc)
  const emitted: number[] = []
  store.on('entry', (_n, _b, e) => emitted.push(e.seq))
  const n = 200
  await Promise.all(Array.from({ length: n }, async (_, i) => await store.transact(doc, local, (d) => d.getMap('m').set(`k${i}`, i))))
  assert.equal(emitted, [...Array(n).keys()].map((i) => i + 1))
  await store.close()
  const reopened = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  assert.is((await reopened.open(doc)).getMap('m').size, n)
  assert.equal([...reopened.vector(doc)], [[alice.signer.id, n]])
  await reopened.close()
})

test('an envelope from a peer is applied, persisted unchanged, emitted once, and a duplicate is ignored', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const remote = new Y.Doc()
  remote.getMap('m').set('from', 'bob')
  const { envelope, bytes } = await seal(bob.signer, { doc, seq: 1, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(remote) })
  const seen: string[] = []
  store.on('entry', (_n, _b, e, origin) => seen.push(`${origin.kind}:${e.author === bob.signer.id}`))
  assert.ok(await store.applyEnvelope(bytes, envelope, { kind: 'peer', peer: 'bob' }))
  assert.not.ok(await store.applyEnvelope(bytes, envelope, { kind: 'peer', peer: 'charlie' }))
  assert.equal(seen, ['peer:true'])
  assert.is((await store.open(doc)).getMap('m').get('from'), 'bob')
  assert.equal((await store.missingFor(doc, new Map())).map((b) => Buffer.from(b)), [Buffer.from(bytes)])
  assert.equal(await store.missingFor(doc, new Map([[bob.signer.id, 1]])), [])
  await store.close()
})

test('envelopes arriving out of order are held; the vector advances once the gap is filled', async () => {
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), alice.signer)
  const remote = new Y.Doc()
  const updates: Uint8Array[] = []
  remote.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 3; i++) remote.getMap('m').set(`k${i}`, i)
  const sealed = await Promise.all(updates.map(async (update, i) => await seal(bob.signer, { doc, seq: i + 1, kind: KIND_UPDATE, update })))
  await store.applyEnvelope(sealed[2].bytes, sealed[2].envelope, { kind: 'peer', peer: 'bob' })
  assert.is(store.vector(doc).get(bob.signer.id) ?? 0, 0)
  await store.applyEnvelope(sealed[0].bytes, sealed[0].envelope, { kind: 'peer', peer: 'bob' })
  assert.is(store.vector(doc).get(bob.signer.id), 1)
  await store.applyEnvelope(sealed[1].bytes, sealed[1].envelope, { kind: 'peer', peer: 'bob' })
  assert.is(store.vector(doc).get(bob.signer.id), 3)
  assert.is((await store.open(doc)).getMap('m').size, 3)
  await store.close()
})

test.run()
