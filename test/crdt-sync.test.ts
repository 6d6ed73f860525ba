// Document sync over the in-memory transport: convergence, relay, anti-entropy, catch-up,
// forged updates rejected at every hop, admission and revocation.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { jobsDoc, acctDoc, directoryDoc, licenseDoc, type DocName } from '../crdt/names.ts'
import { seal, KIND_UPDATE } from '../crdt/envelope.ts'
import { revoke } from '../crdt/license.ts'
import { AdmissionRefusedError } from '../transports/memory.ts'

const PERIOD = '2026-11'
let mesh: TestMesh
test.before.each(() => { mesh = new TestMesh() })
test.after.each(async () => { await mesh.teardown() })

const local = { kind: 'local', service: 'test' } as const

async function write (peer: MeshPeer, doc: DocName, key: string, value: unknown): Promise<void> {
  await peer.store.transact(doc, local, (d) => d.getMap('m').set(key, value))
}

async function converged (...peers: MeshPeer[]): Promise<void> {
  const same = (): boolean => {
    const first = JSON.stringify(peers[0].snapshot())
    return peers.every((p) => JSON.stringify(p.snapshot()) === first)
  }
  try {
    await until(same, 10_000, 'convergence')
  } catch (err) {
    throw new Error(`${(err as Error).message}:\n${peers.map((p) => `${p.name}: ${JSON.stringify(p.snapshot())} ${JSON.stringify(p.store.openNames().map((n) => [n.slice(-20), [...p.store.vector(n)]]))} ${JSON.stringify(p.sync.getStats())} peers=${p.transport.peers().length}`).join('\n')}`)
  }
}

const valueAt = (peer: MeshPeer, doc: DocName, key: string): unknown => peer.store.get(doc)?.getMap('m').get(key)

test('peers that connect exchange what each lacks and converge to identical documents', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  await write(a, jobsDoc(a.id, PERIOD), 'job1', 'held')
  await write(b, jobsDoc(b.id, PERIOD), 'job2', 'held')
  await write(central, directoryDoc(), 'alice', 'Alice')
  await mesh.connect(a, b)
  await mesh.connect(b, central)
  await converged(central, a, b)
  assert.is(valueAt(a, jobsDoc(b.id, PERIOD), 'job2'), 'held')
  assert.is(valueAt(b, directoryDoc(), 'alice'), 'Alice')
})

test('live changes relay along a line A–B–C, and are never echoed to their sender', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  const c = await mesh.addPeer('site-c', 'site', 'c')
  await mesh.connect(a, b)
  await mesh.connect(b, c)
  await mesh.connect(b, central) // C learns A's certificate from central's license document
  await converged(central, a, b, c)
  const before = a.sync.getStats().envelopesIn
  for (let i = 0; i < 20; i++) await write(a, jobsDoc(a.id, PERIOD), `job${i}`, i)
  await until(() => valueAt(c, jobsDoc(a.id, PERIOD), 'job19') === 19, 10_000, 'relay to C')
  assert.not.ok(mesh.network.linked(a.id, c.id))
  assert.is(a.sync.getStats().envelopesIn, before, 'A received its own changes back')
})

test('anti-entropy repairs messages lost on the way', async () => {
  await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  await mesh.connect(a, b)
  await converged(a, b)
  mesh.network.setFaults({ lossRate: 1 }, [a.id, b.id])
  for (let i = 0; i < 10; i++) await write(a, jobsDoc(a.id, PERIOD), `lost${i}`, i)
  assert.is(valueAt(b, jobsDoc(a.id, PERIOD), 'lost0'), undefined)
  mesh.network.setFaults({}, [a.id, b.id])
  b.sync.antiEntropy()
  await converged(a, b)
  assert.is(valueAt(b, jobsDoc(a.id, PERIOD), 'lost9'), 9)
})

test('deletions replicate too (they advance no Yjs clock)', async () => {
  await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  await write(a, jobsDoc(a.id, PERIOD), 'gone', 1)
  await mesh.connect(a, b)
  await converged(a, b)
  mesh.network.setFaults({ lossRate: 1 }, [a.id, b.id])
  await a.store.transact(jobsDoc(a.id, PERIOD), local, (d) => d.getMap('m').delete('gone'))
  mesh.network.setFaults({}, [a.id, b.id])
  b.sync.antiEntropy()
  await until(() => valueAt(b, jobsDoc(a.id, PERIOD), 'gone') === undefined, 10_000, 'deletion replicated')
})

test('a peer that was stopped catches up after restart without operator action', async () => {
  await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  let c = await mesh.addPeer('site-c', 'site', 'c')
  await mesh.connect(a, c)
  await write(c, acctDoc(c.id, PERIOD), 'u1', 1)
  await converged(a, c)
  await c.stop()
  for (let i = 0; i < 50; i++) await write(a, jobsDoc(a.id, PERIOD), `while-away-${i}`, i)
  c = await mesh.restart(c, 'site', 'c')
  assert.is(valueAt(c, acctDoc(c.id, PERIOD), 'u1'), 1, 'its own data survived the restart')
  await mesh.connect(a, c)
  await converged(a, c)
  assert.is(valueAt(c, jobsDoc(a.id, PERIOD), 'while-away-49'), 49)
})

test('the directory (PIN and card hashes) reaches sites and terminals, never a workstation\'s client', async () => {
  const central = await mesh.addCentral()
  const site = await mesh.addPeer('site-a', 'site', 'a')
  const terminal = await mesh.addPeer('terminal-a1', 'terminal', 'a')
  const client = await mesh.addPeer('client-a1', 'client', 'a')
  for (const p of [site, terminal, client]) await mesh.connect(central, p)
  await mesh.connect(site, client)
  await write(central, directoryDoc(), 'alice', 'scrypt$…')
  await write(central, licenseDoc(), 'marker', 1)
  await until(() => valueAt(site, directoryDoc(), 'alice') !== undefined && valueAt(terminal, directoryDoc(), 'alice') !== undefined, 10_000, 'directory at site and terminal')
  // written after the directory and sent the same way: had the directory been sent to the client, it would be there first
  await until(() => valueAt(client, licenseDoc(), 'marker') === 1, 10_000, 'the license reached the client')
  assert.is(client.store.get(directoryDoc())?.getMap('m').get('alice'), undefined, 'no directory at the client')
})

test('forged updates are rejected, counted, never applied, persisted or relayed', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  const t = await mesh.addPeer('terminal-a1', 'terminal', 'a')
  await mesh.connect(t, a)
  await mesh.connect(a, b)
  await mesh.connect(b, central)
  // a terminal writing the directory
  await write(t, directoryDoc(), 'mallory', 'admin')
  // a site writing another site's accounting
  await write(a, acctDoc(b.id, PERIOD), 'free-prints', -100)
  // anyone but central writing the license
  await write(b, licenseDoc(), 'unlimited', true)
  // a relay forging another peer's envelope (right name, wrong key)
  const forged = new Y.Doc()
  forged.getMap('m').set('fake-job', 'printed')
  const { bytes } = await seal({ id: b.id, sign: a.signer.sign.bind(a.signer) }, { doc: jobsDoc(b.id, PERIOD), seq: 99, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(forged) })
  await a.transport.send(b.id, concatEnvelopeMessage(bytes))
  // and a legitimate change behind them, so we know everything before it was processed
  await write(a, jobsDoc(a.id, PERIOD), 'marker', 1)
  await until(() => valueAt(central, jobsDoc(a.id, PERIOD), 'marker') === 1, 10_000, 'marker at central')
  assert.is(valueAt(a, directoryDoc(), 'mallory'), undefined)
  assert.is(valueAt(b, acctDoc(b.id, PERIOD), 'free-prints'), undefined)
  assert.is(valueAt(central, acctDoc(b.id, PERIOD), 'free-prints'), undefined)
  assert.is(valueAt(central, licenseDoc(), 'unlimited'), undefined)
  assert.is(valueAt(b, jobsDoc(b.id, PERIOD), 'fake-job'), undefined)
  assert.ok(a.sync.getStats().rejected['not-authorized'] >= 1, 'site-a rejected the terminal\'s directory write')
  assert.ok(b.sync.getStats().rejected['not-authorized'] >= 1, 'site-b rejected site-a\'s write of its accounting')
  assert.ok(central.sync.getStats().rejected['not-authorized'] >= 1, 'central rejected site-b\'s license write')
  assert.is(b.sync.getStats().rejected['bad-signature'], 1)
  // not persisted either: a restarted site-b still lacks them
  await b.stop()
  const b2 = await mesh.restart(b, 'site', 'b')
  assert.is(valueAt(b2, acctDoc(b.id, PERIOD), 'free-prints'), undefined)
})

test('peers without a certificate from this mesh\'s central are refused at admission', async () => {
  await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const stranger = await mesh.addPeer('stranger', 'site', 'x', 'uncertified')
  const foreign = await mesh.addPeer('foreign', 'site', 'y', 'foreign')
  for (const p of [stranger, foreign]) {
    try {
      await mesh.connect(p, a)
      assert.unreachable('admission should fail')
    } catch (err) {
      assert.instance(err, AdmissionRefusedError)
    }
    assert.equal(a.transport.peers(), [])
  }
})

test('a revoked peer is cut off: its later updates are rejected and it cannot reconnect', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  await mesh.connect(a, central)
  await mesh.connect(b, central)
  await converged(central, a, b)
  await central.store.transact(licenseDoc(), local, (d) => revoke(d, { peer: b.id, at: Date.now(), reason: 'stolen' }))
  await until(() => a.membership.revoked(b.id), 10_000, 'revocation at site-a')
  assert.not.ok(a.membership.canWrite(b.id, jobsDoc(b.id, PERIOD)))
  await until(() => !central.transport.peers().includes(b.id), 10_000, 'central cut site-b off')
  try {
    await mesh.connect(b, a)
    assert.unreachable('a revoked peer must not be admitted')
  } catch (err) {
    assert.instance(err, AdmissionRefusedError)
  }
})

/** An ENVELOPES message (crdt/PROTOCOL.md) carrying one envelope. */
function concatEnvelopeMessage (envelope: Uint8Array): Uint8Array {
  // version 1, type 1, count 1, varUint length, bytes
  const len: number[] = []
  let n = envelope.length
  while (n > 0x7f) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
  len.push(n)
  return Uint8Array.from([1, 1, 1, ...len, ...envelope])
}

test.run()
