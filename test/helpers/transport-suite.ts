/**
 * The acceptance suite every {@link SyncTransport} implementation reruns, after
 * automerge-repo's `runStorageAdapterTests`: one set of contract tests, one fixture per
 * implementation (in-memory, libp2p).
 *
 * `runTransportSuite(name, setup)` registers the tests on a uvu `suite(name)` and **runs it**
 * (`.run()` is called inside), so a test file just calls it once per implementation:
 *
 * ```ts
 * runTransportSuite('memory transport', async () => memoryFixture())
 * ```
 *
 * `setup` is called before every test and `teardown` after it, also when the test failed,
 * so every test starts from fresh peers. Tests wait on transport events with a deadline,
 * never on fixed sleeps. Peers are named alice, bob and charlie.
 */
import { createHash } from 'node:crypto'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  MAX_MESSAGE_BYTES, MessageTooLargeError, PeerNotConnectedError,
  type Admission, type SyncTransport
} from '../../transports/types.ts'
import { rejects } from './assert.ts'

/** What an implementation supplies to run the suite against itself. */
export interface TransportFixture {
  /**
   * Creates a **started** transport for a peer labelled `name` (alice, bob, charlie). Its
   * `self` may be any id (the memory transport uses the name, libp2p a peer id). Without
   * `admission` the peer presents `name` as credentials and admits everyone.
   */
  makePeer (name: string, admission?: Admission): Promise<SyncTransport>
  /**
   * Makes `a` dial `b`. Resolves once both sides have emitted `peer:connect` for each
   * other. Rejects (with any error) when either side refused admission or the dial failed,
   * and only once the attempt has ended on both sides, so that neither emits
   * `peer:connect` for it afterwards.
   */
  connect (a: SyncTransport, b: SyncTransport): Promise<void>
  /** Stops every peer this fixture made and frees what it holds; safe after peers were stopped. */
  teardown (): Promise<void>
}

/** Deadline for one expected event; generous because libp2p moves 10 MB through noise. */
const EVENT_TIMEOUT_MS = 30_000
/** Messages sent each way in the ordering test (the brief's number). */
const ORDERED_COUNT = 500
/** Size of the large-message test: bigger than any yamux/noise frame, well under the limit. */
const LARGE_BYTES = 10 * 1024 * 1024
/** Marks an ordering-test data message. */
const KIND_DATA = 0
/** Marks the last message of an ordering-test run: everything sent before it has arrived. */
const KIND_END = 1

/** One received message as the observer saw it. */
interface Received { from: string, data: Uint8Array }

/**
 * Records every event a transport emits and lets a test wait until a condition over them
 * holds; the condition is re-checked on each event, never by polling.
 */
class Observer {
  readonly connects: string[] = []
  readonly disconnects: string[] = []
  readonly messages: Received[] = []
  private readonly waiters = new Set<() => void>()
  private readonly onConnect = (peer: string): void => { this.connects.push(peer); this.notify() }
  private readonly onDisconnect = (peer: string): void => { this.disconnects.push(peer); this.notify() }
  private readonly onMessage = (from: string, data: Uint8Array): void => { this.messages.push({ from, data }); this.notify() }

  constructor (readonly name: string, readonly transport: SyncTransport) {
    transport.on('peer:connect', this.onConnect)
    transport.on('peer:disconnect', this.onDisconnect)
    transport.on('message', this.onMessage)
  }

  /** Messages received from `from`, in arrival order. */
  from (from: string): Uint8Array[] {
    return this.messages.filter((m) => m.from === from).map((m) => m.data)
  }

  /** Resolves once `check()` holds, checked now and after every event; rejects after the deadline. */
  async until (check: () => boolean, what: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<void> {
    if (check()) return
    await new Promise<void>((resolve, reject) => {
      const waiter = (): void => {
        if (!check()) return
        clearTimeout(timer)
        this.waiters.delete(waiter)
        resolve()
      }
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new Error(`${this.name}: ${what} did not happen within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.add(waiter)
    })
  }

  detach (): void {
    this.transport.off('peer:connect', this.onConnect)
    this.transport.off('peer:disconnect', this.onDisconnect)
    this.transport.off('message', this.onMessage)
  }

  private notify (): void {
    for (const waiter of [...this.waiters]) waiter()
  }
}

/** An {@link Admission} that records what it was asked and refuses the peers in `refused`. */
class RecordingAdmission implements Admission {
  readonly calls: Array<{ peer: string, credentials: Uint8Array }> = []
  /** Peer ids this side refuses; everyone else is admitted. */
  readonly refused = new Set<string>()
  constructor (readonly presented: Uint8Array) {}
  credentials (): Uint8Array { return this.presented }
  async admit (peer: string, credentials: Uint8Array): Promise<boolean> {
    this.calls.push({ peer, credentials: Uint8Array.from(credentials) })
    return !this.refused.has(peer)
  }
}

/** A peer under test: its transport, what it saw, and the admission it uses. */
interface Peer { name: string, t: SyncTransport, seen: Observer, admission: RecordingAdmission }

const utf8 = new TextEncoder()

/** Deterministic, non-repeating-looking bytes (so a shifted or truncated copy never matches). */
function patternBytes (size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

function sha256 (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** An ordering-test message: kind, index, and an index-dependent amount of filler. */
function orderedMessage (kind: number, index: number): Uint8Array {
  const out = new Uint8Array(5 + (index % 7) * 97)
  out[0] = kind
  new DataView(out.buffer).setUint32(1, index)
  out.fill(index & 0xff, 5)
  return out
}

function decodeOrdered (data: Uint8Array): { kind: number, index: number } {
  assert.ok(data.byteLength >= 5, `ordering message of ${data.byteLength} bytes is too short`)
  const index = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1)
  assert.is(data.byteLength, 5 + (index % 7) * 97, `message ${index} arrived with the wrong length`)
  for (let i = 5; i < data.byteLength; i++) {
    if (data[i] !== (index & 0xff)) assert.unreachable(`message ${index} arrived corrupted at byte ${i}`)
  }
  return { kind: data[0], index }
}

/**
 * Registers the transport contract tests on `suite(name)` and runs them. `setup` builds a
 * fresh fixture for every test; its `teardown` runs after every test, passed or failed.
 */
export function runTransportSuite (name: string, setup: () => Promise<TransportFixture>): void {
  const test = suite(name)
  let fixture: TransportFixture | undefined
  let observers: Observer[] = []

  test.before.each(async () => {
    observers = []
    fixture = await setup()
  })

  test.after.each(async () => {
    for (const o of observers) o.detach()
    observers = []
    const f = fixture
    fixture = undefined
    if (f !== undefined) await f.teardown()
  })

  function current (): TransportFixture {
    if (fixture === undefined) throw new Error('transport fixture used outside a test')
    return fixture
  }

  /** Makes a started peer that presents `cert:<name>` and admits everyone not in `admission.refused`. */
  async function peer (peerName: string): Promise<Peer> {
    const admission = new RecordingAdmission(utf8.encode(`cert:${peerName}`))
    const t = await current().makePeer(peerName, admission)
    const seen = new Observer(peerName, t)
    observers.push(seen)
    return { name: peerName, t, seen, admission }
  }

  /** Connects `a` to `b` and waits for `peer:connect` number `times` on both sides. */
  async function link (a: Peer, b: Peer, times = 1): Promise<void> {
    await current().connect(a.t, b.t)
    await a.seen.until(() => a.seen.connects.filter((p) => p === b.t.self).length >= times, `peer:connect for ${b.name}`)
    await b.seen.until(() => b.seen.connects.filter((p) => p === a.t.self).length >= times, `peer:connect for ${a.name}`)
  }

  /** Sends one message and waits until the receiver has it; returns what arrived. */
  async function roundTrip (from: Peer, to: Peer, data: Uint8Array): Promise<Uint8Array> {
    const before = to.seen.from(from.t.self).length
    await from.t.send(to.t.self, data)
    await to.seen.until(() => to.seen.from(from.t.self).length > before, `message from ${from.name}`)
    return to.seen.from(from.t.self)[before]
  }

  /** Both peers report each other, and only each other, as connected. */
  function assertLinkedOnly (a: Peer, b: Peer): void {
    assert.equal(a.t.peers(), [b.t.self], `${a.name}.peers()`)
    assert.equal(b.t.peers(), [a.t.self], `${b.name}.peers()`)
  }

  test('admitted peers see peer:connect on both sides, after each admitted the other\'s credentials', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    assert.equal(alice.seen.connects, [bob.t.self])
    assert.equal(bob.seen.connects, [alice.t.self])
    assertLinkedOnly(alice, bob)
    assert.equal(bob.admission.calls, [{ peer: alice.t.self, credentials: utf8.encode('cert:alice') }], 'bob admitted alice once, with her credentials')
    assert.equal(alice.admission.calls, [{ peer: bob.t.self, credentials: utf8.encode('cert:bob') }], 'alice admitted bob once, with his credentials')
    assert.equal([...await roundTrip(alice, bob, utf8.encode('hi bob'))], [...utf8.encode('hi bob')])
    assert.equal([...await roundTrip(bob, alice, utf8.encode('hi alice'))], [...utf8.encode('hi alice')])
  })

  for (const refuser of ['dialed', 'dialing'] as const) {
    test(`a refusal by the ${refuser} side yields no peer:connect and lets no message pass`, async () => {
      const alice = await peer('alice')
      const bob = await peer('bob')
      const charlie = await peer('charlie')
      const refusing = refuser === 'dialed' ? bob : alice
      const refused = refuser === 'dialed' ? alice : bob
      refusing.admission.refused.add(refused.t.self)

      let connectError: unknown
      try {
        await current().connect(alice.t, bob.t)
      } catch (err) {
        connectError = err
      }
      assert.instance(connectError, Error, 'connect() rejects when admission is refused')
      assert.equal(refusing.admission.calls.filter((c) => c.peer === refused.t.self).length, 1, `${refusing.name} was asked about ${refused.name} once`)
      assert.equal(refusing.admission.calls.find((c) => c.peer === refused.t.self)?.credentials, utf8.encode(`cert:${refused.name}`))
      await rejects(alice.t.send(bob.t.self, utf8.encode('sneak')), PeerNotConnectedError)
      await rejects(bob.t.send(alice.t.self, utf8.encode('sneak')), PeerNotConnectedError)

      // A later, admitted connection and message on each of them: by the time it has passed,
      // a connect event or message from the refused attempt would have had its chance too.
      await link(alice, charlie)
      await link(bob, charlie)
      await roundTrip(alice, charlie, utf8.encode('after'))
      await roundTrip(bob, charlie, utf8.encode('after'))
      assert.equal(alice.seen.connects, [charlie.t.self], 'alice never saw bob connect')
      assert.equal(bob.seen.connects, [charlie.t.self], 'bob never saw alice connect')
      assert.equal(bob.seen.from(alice.t.self).length, 0, 'no message from alice reached bob')
      assert.equal(alice.seen.from(bob.t.self).length, 0, 'no message from bob reached alice')
      assert.equal(alice.t.peers(), [charlie.t.self])
      assert.equal(bob.t.peers(), [charlie.t.self])
    })
  }

  test(`${ORDERED_COUNT} messages each way arrive in order, none lost or duplicated`, async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    const aliceSends = (async () => {
      // One at a time, each awaited.
      for (let i = 0; i < ORDERED_COUNT; i++) await alice.t.send(bob.t.self, orderedMessage(KIND_DATA, i))
      await alice.t.send(bob.t.self, orderedMessage(KIND_END, ORDERED_COUNT))
    })()
    const bobSends = (async () => {
      // All issued at once: order is the order of the send() calls.
      const sends: Array<Promise<void>> = []
      for (let i = 0; i < ORDERED_COUNT; i++) sends.push(bob.t.send(alice.t.self, orderedMessage(KIND_DATA, i)))
      sends.push(bob.t.send(alice.t.self, orderedMessage(KIND_END, ORDERED_COUNT)))
      await Promise.all(sends)
    })()
    await Promise.all([aliceSends, bobSends])
    const ended = (o: Observer, from: string) => () => o.from(from).some((d) => d[0] === KIND_END)
    await bob.seen.until(ended(bob.seen, alice.t.self), 'the last message from alice')
    await alice.seen.until(ended(alice.seen, bob.t.self), 'the last message from bob')
    const expected = [...Array(ORDERED_COUNT + 1).keys()]
    for (const [receiver, sender] of [[bob, alice], [alice, bob]] as const) {
      const got = receiver.seen.from(sender.t.self).map(decodeOrdered)
      assert.equal(got.map((m) => m.index), expected, `${receiver.name} got ${sender.name}'s messages in order, once each`)
      assert.equal(got.filter((m) => m.kind === KIND_END).length, 1)
    }
  })

  test('a 10 MB message arrives intact, and the connection stays usable after it', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    const large = patternBytes(LARGE_BYTES, 7)
    const digest = sha256(large)
    await alice.t.send(bob.t.self, large)
    await alice.t.send(bob.t.self, utf8.encode('after the large one'))
    await bob.seen.until(() => bob.seen.from(alice.t.self).length >= 2, 'both messages from alice')
    const [got, next] = bob.seen.from(alice.t.self)
    assert.is(got.byteLength, LARGE_BYTES)
    assert.is(sha256(got), digest)
    assert.ok(sameBytes(got, large))
    assert.ok(sameBytes(next, utf8.encode('after the large one')))
  })

  test('a message of MAX_MESSAGE_BYTES + 1 rejects MessageTooLargeError and is not delivered', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    await rejects(alice.t.send(bob.t.self, new Uint8Array(MAX_MESSAGE_BYTES + 1)), MessageTooLargeError)
    // The connection is still there and the oversized message never arrives ahead of this one.
    const next = await roundTrip(alice, bob, utf8.encode('small'))
    assert.ok(sameBytes(next, utf8.encode('small')))
    assert.is(bob.seen.from(alice.t.self).length, 1)
    assertLinkedOnly(alice, bob)
  })

  test('send to an unconnected peer rejects PeerNotConnectedError', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    const charlie = await peer('charlie')
    await rejects(alice.t.send(bob.t.self, utf8.encode('nobody home')), PeerNotConnectedError)
    await link(alice, bob)
    // Connected to bob does not mean connected to anyone else.
    await rejects(alice.t.send(charlie.t.self, utf8.encode('not linked')), PeerNotConnectedError)
    await rejects(alice.t.send('no-such-peer', utf8.encode('unknown')), PeerNotConnectedError)
    assert.is(charlie.seen.messages.length, 0)
  })

  test('disconnect() emits peer:disconnect on both sides and later sends reject', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    await alice.t.disconnect(bob.t.self)
    await alice.seen.until(() => alice.seen.disconnects.length >= 1, 'peer:disconnect for bob')
    await bob.seen.until(() => bob.seen.disconnects.length >= 1, 'peer:disconnect for alice')
    assert.equal(alice.seen.disconnects, [bob.t.self])
    assert.equal(bob.seen.disconnects, [alice.t.self])
    assert.equal(alice.t.peers(), [])
    assert.equal(bob.t.peers(), [])
    await rejects(alice.t.send(bob.t.self, utf8.encode('gone')), PeerNotConnectedError)
    await rejects(bob.t.send(alice.t.self, utf8.encode('gone')), PeerNotConnectedError)
    // Disconnecting again is harmless and emits nothing more.
    await alice.t.disconnect(bob.t.self)
    await bob.t.disconnect(alice.t.self)
    assert.equal(alice.seen.disconnects, [bob.t.self])
    assert.equal(bob.seen.disconnects, [alice.t.self])
  })

  test('peers reconnect after a disconnect and exchange messages again', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    await link(alice, bob)
    await roundTrip(alice, bob, utf8.encode('first'))
    await bob.t.disconnect(alice.t.self)
    await alice.seen.until(() => alice.seen.disconnects.length >= 1, 'peer:disconnect for bob')
    await bob.seen.until(() => bob.seen.disconnects.length >= 1, 'peer:disconnect for alice')
    await link(alice, bob, 2)
    assert.equal(alice.seen.connects, [bob.t.self, bob.t.self])
    assert.equal(bob.seen.connects, [alice.t.self, alice.t.self])
    assertLinkedOnly(alice, bob)
    assert.ok(sameBytes(await roundTrip(alice, bob, utf8.encode('second')), utf8.encode('second')))
    assert.ok(sameBytes(await roundTrip(bob, alice, utf8.encode('reply')), utf8.encode('reply')))
    assert.equal(bob.seen.from(alice.t.self).length, 2, 'nothing from the first connection was replayed')
  })

  test('stop() emits peer:disconnect for every peer on both sides and is safe to call twice', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    const charlie = await peer('charlie')
    await link(alice, bob)
    await link(charlie, alice)
    await alice.t.stop()
    await alice.seen.until(() => alice.seen.disconnects.length >= 2, 'peer:disconnect for bob and charlie')
    await bob.seen.until(() => bob.seen.disconnects.length >= 1, 'peer:disconnect for alice')
    await charlie.seen.until(() => charlie.seen.disconnects.length >= 1, 'peer:disconnect for alice')
    assert.equal([...alice.seen.disconnects].sort(), [bob.t.self, charlie.t.self].sort())
    assert.equal(bob.seen.disconnects, [alice.t.self])
    assert.equal(charlie.seen.disconnects, [alice.t.self])
    assert.equal(alice.t.peers(), [])
    await rejects(alice.t.send(bob.t.self, utf8.encode('stopped')), PeerNotConnectedError)
    await rejects(bob.t.send(alice.t.self, utf8.encode('stopped')), PeerNotConnectedError)
    await alice.t.stop()
    assert.equal([...alice.seen.disconnects].sort(), [bob.t.self, charlie.t.self].sort(), 'a second stop() emits nothing')
    // The others are unaffected by alice stopping.
    await link(bob, charlie)
    await roundTrip(bob, charlie, utf8.encode('still here'))
  })

  test('start() twice is safe: connections and new dials keep working', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    const charlie = await peer('charlie')
    await link(alice, bob)
    await alice.t.start()
    await alice.t.start()
    assertLinkedOnly(alice, bob)
    assert.equal(alice.seen.disconnects, [])
    await roundTrip(alice, bob, utf8.encode('still connected'))
    await roundTrip(bob, alice, utf8.encode('both ways'))
    await link(alice, charlie)
    await roundTrip(charlie, alice, utf8.encode('new dial'))
    assert.equal([...alice.t.peers()].sort(), [bob.t.self, charlie.t.self].sort())
  })

  test('messages are attributed to their sender', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    const charlie = await peer('charlie')
    await link(bob, alice)
    await link(charlie, alice)
    await bob.t.send(alice.t.self, utf8.encode('from bob'))
    await charlie.t.send(alice.t.self, utf8.encode('from charlie'))
    await alice.seen.until(() => alice.seen.messages.length >= 2, 'both messages')
    assert.equal(alice.seen.from(bob.t.self).map((d) => Buffer.from(d).toString()), ['from bob'])
    assert.equal(alice.seen.from(charlie.t.self).map((d) => Buffer.from(d).toString()), ['from charlie'])
  })

  test('received messages are independent copies, exactly the bytes of the view sent', async () => {
    const alice = await peer('alice')
    const bob = await peer('bob')
    const charlie = await peer('charlie')
    await link(alice, bob)
    await link(alice, charlie)
    const original = patternBytes(4096, 3)
    const sent = Uint8Array.from(original)
    await alice.t.send(bob.t.self, sent)
    await alice.t.send(charlie.t.self, sent)
    sent.fill(0) // the sender reuses its buffer right after send() resolved
    await bob.seen.until(() => bob.seen.messages.length >= 1, 'the message from alice')
    await charlie.seen.until(() => charlie.seen.messages.length >= 1, 'the message from alice')
    const atBob = bob.seen.messages[0].data
    const atCharlie = charlie.seen.messages[0].data
    assert.ok(sameBytes(atBob, original), 'bob got the bytes as they were at send time')
    atBob.fill(0xaa) // one receiver scribbles on its copy
    assert.ok(sameBytes(atCharlie, original), 'charlie\'s copy is not bob\'s')
    assert.ok(sent.every((b) => b === 0), 'the sender\'s buffer is not the receiver\'s')

    // A view into a larger buffer sends exactly the view; an empty message arrives empty.
    const backing = patternBytes(64, 5)
    const view = backing.subarray(9, 20)
    const gotView = await roundTrip(alice, bob, view)
    assert.is(gotView.byteLength, 11)
    assert.ok(sameBytes(gotView, backing.subarray(9, 20)))
    const gotEmpty = await roundTrip(alice, bob, new Uint8Array(0))
    assert.is(gotEmpty.byteLength, 0)
  })

  test.run()
}
