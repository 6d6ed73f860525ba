// Enrolment documents (crdt/enrolment.ts, node/enrolment.ts) over the in-memory mesh: who may
// write them (forged ones are rejected where they enter), and central's merge: once per
// enrolment, PINs by time, a card two users claim flagged and given to nobody until an admin
// assigns it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import pino from 'pino'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { directoryDoc, enrolDoc, peerId } from '../crdt/names.ts'
import { putUser, hashPin, cardCredential, getUser, verifyPin } from '../crdt/directory.ts'
import { putEnrolment, listEnrolments, type Enrolment } from '../crdt/enrolment.ts'
import { EnrolmentMerger, cardHolder, currentPinHash, NotAClaimantError } from '../node/enrolment.ts'
import { rejects } from './helpers/assert.ts'

const CARD_KEY = new Uint8Array(32).fill(7)
const logger = pino({ level: 'silent' })
const local = { kind: 'local', service: 'test' } as const
let mesh: TestMesh
test.before.each(() => { mesh = new TestMesh() })
test.after.each(async () => { await mesh.teardown() })

let seq = 0
async function enrol (peer: MeshPeer, doc: MeshPeer, e: Partial<Enrolment> & Pick<Enrolment, 'user' | 'kind'>): Promise<Enrolment> {
  const record: Enrolment = { id: `enrolment-${++seq}`, at: Date.now(), by: doc.id, ...e }
  await peer.store.transact(enrolDoc(peerId(doc.id)), local, (d) => { putEnrolment(d, record) })
  return record
}

test('an enrolment document is taken only from its own peer, a site or terminal: another terminal\'s forgery and a client\'s own are rejected at central', async () => {
  const central = await mesh.addCentral()
  const t1 = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  const t2 = await mesh.addPeer('terminal-a2', 'terminal', 'site-a')
  const client = await mesh.addPeer('client-a', 'client', 'site-a')
  for (const p of [t1, t2, client]) await mesh.connect(p, central)
  const card = await cardCredential('04A1B2C3', CARD_KEY)
  await enrol(t2, t1, { user: 'mallory', kind: 'card', card }) // t2 writes into t1's document
  await enrol(client, client, { user: 'mallory', kind: 'card', card })
  await enrol(t1, t1, { user: 'alice', kind: 'card', card })
  await until(() => central.store.get(enrolDoc(peerId(t1.id))) !== undefined && listEnrolments(central.store.get(enrolDoc(peerId(t1.id))) as never, t1.id).length > 0, 10_000, 't1\'s own enrolment at central')
  await until(() => central.sync.getStats().rejected['not-authorized'] >= 2, 10_000, 'both forgeries rejected')
  assert.equal(listEnrolments(central.store.get(enrolDoc(peerId(t1.id))) as never, t1.id).map((e) => e.user), ['alice'], 'only t1\'s own record')
  const clientDoc = central.store.get(enrolDoc(peerId(client.id)))
  assert.equal(clientDoc === undefined ? [] : listEnrolments(clientDoc, client.id), [], 'nothing of the client\'s')
})

test('a record naming another enrolling peer than its document is ignored where it is read', async () => {
  const central = await mesh.addCentral()
  const t1 = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  const card = await cardCredential('04A1B2C3', CARD_KEY)
  await central.store.transact(enrolDoc(peerId(t1.id)), local, (d) => { d.getMap('enrolments').set('x-forged-1', { id: 'x-forged-1', user: 'alice', kind: 'card', card, at: 1, by: central.id }) })
  assert.equal(listEnrolments(await central.store.open(enrolDoc(peerId(t1.id))), t1.id), [])
})

test('central merges once: an older PIN enrolment loses to the directory, a newer one wins (also after an unrelated edit of the record); a card two users claimed is in neither record until an admin assigns it', async () => {
  const central = await mesh.addCentral()
  const t1 = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  const t3 = await mesh.addPeer('terminal-b1', 'terminal', 'site-b')
  const at = Date.now()
  const [alicePin, bobPin] = [await hashPin('1111'), await hashPin('2222')]
  await central.store.transact(directoryDoc(), local, (d) => {
    putUser(d, { username: 'alice', fullName: 'Alice', pinHash: alicePin, updatedAt: at })
    putUser(d, { username: 'bob', fullName: 'Bob', pinHash: bobPin, updatedAt: at })
  })
  const card = await cardCredential('0099887766', CARD_KEY)
  await enrol(central, t1, { user: 'alice', kind: 'card', card, at: at + 10 })
  await enrol(central, t3, { user: 'bob', kind: 'card', card: await cardCredential('0099887766', CARD_KEY), at: at + 20 })
  await enrol(central, t1, { user: 'alice', kind: 'pin', pinHash: await hashPin('3333'), at: at - 5 })
  await enrol(central, t3, { user: 'bob', kind: 'pin', pinHash: await hashPin('4444'), at: at + 30 })
  const directory = await central.store.open(directoryDoc())
  assert.ok(await verifyPin('4444', currentPinHash(central.store, directory, getUser(directory, 'bob') as never)), 'before the merge: bob\'s newer enrolled PIN is in force')
  assert.ok(await verifyPin('1111', currentPinHash(central.store, directory, getUser(directory, 'alice') as never)), 'alice\'s older one is not')
  assert.is(cardHolder(central.store, directory, card.index), undefined, 'claimed by two users: nobody')
  const merger = new EnrolmentMerger({ store: central.store, logger })
  await merger.start()
  await merger.start() // starting twice is safe, and merges nothing again
  try {
    assert.ok(await verifyPin('4444', getUser(directory, 'bob')?.pinHash ?? ''), 'bob\'s new PIN merged')
    assert.ok(await verifyPin('1111', getUser(directory, 'alice')?.pinHash ?? ''), 'alice keeps the directory\'s PIN')
    const [conflict] = await merger.conflicts()
    assert.equal(conflict.claims.map((c) => c.user), ['alice', 'bob'])
    assert.is(conflict.suggested, 'alice')
    assert.equal([getUser(directory, 'alice')?.cards ?? [], getUser(directory, 'bob')?.cards ?? []], [[], []], 'in neither record')
    assert.is(cardHolder(central.store, directory, card.index), undefined)
    await rejects(merger.assign(conflict.id, 'carol', 'admin'), NotAClaimantError)
    await merger.assign(conflict.id, 'bob', 'admin')
    assert.is(cardHolder(central.store, directory, card.index)?.user.username, 'bob', 'the admin\'s choice, not the first claim')
    assert.equal((await merger.conflicts()).map((c) => c.resolvedTo), ['bob'])
    // an edit of bob's record after his enrolled PIN (the card above) does not make a later PIN of his lose
    await enrol(central, t3, { user: 'bob', kind: 'pin', pinHash: await hashPin('5555'), at: at + 50 })
    await until(async () => await verifyPin('5555', getUser(directory, 'bob')?.pinHash ?? ''), 10_000, 'bob\'s next PIN merged as it arrives')
  } finally {
    await merger.stop()
  }
})

test.run()
