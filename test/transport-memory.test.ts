// The in-memory transport: the shared transport contract suite, then its fault knobs
// (partitions, seeded loss, duplication, reordering, latency on a virtual clock).
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  AdmissionRefusedError, MemoryNetwork, PeerExistsError, PeerUnreachableError, seededRandom,
  type LinkFaults, type MemoryNetworkInit, type MemoryTransport, type Schedule
} from '../transports/memory.ts'
import { MAX_MESSAGE_BYTES, PeerNotConnectedError, type Admission } from '../transports/types.ts'
import { rejects } from './helpers/assert.ts'
import { runTransportSuite, type TransportFixture } from './helpers/transport-suite.ts'

const utf8 = new TextEncoder()

/** Admits everyone, presenting the peer's name. */
function admitAll (name: string): Admission {
  return { credentials: () => utf8.encode(name), admit: async () => true }
}

/** A memory network whose peers are all stopped on teardown, errors collected rather than lost. */
function memoryFixture (init?: MemoryNetworkInit): TransportFixture & { network: MemoryNetwork } {
  const network = new MemoryNetwork(init)
  const made: MemoryTransport[] = []
  return {
    network,
    async makePeer (name, admission = admitAll(name)) {
      const t = network.createTransport(name, admission)
      made.push(t)
      await t.start()
      return t
    },
    async connect (a, b) { await network.connect(a.self, b.self) },
    async teardown () {
      const results = await Promise.allSettled(made.map(async (t) => { await t.stop() }))
      const errors = results.flatMap((r) => r.status === 'rejected' ? [r.reason] : [])
      if (errors.length > 0) throw new AggregateError(errors, 'stopping memory transports failed')
    }
  }
}

runTransportSuite('memory transport', async () => memoryFixture())

/** Virtual time: tasks run only when the test advances the clock, in (time, order) order. */
class VirtualClock {
  now = 0
  private seq = 0
  private tasks: Array<{ at: number, seq: number, fn: () => void }> = []
  readonly schedule: Schedule = (fn, ms) => {
    this.tasks.push({ at: this.now + Math.max(0, ms), seq: this.seq++, fn })
  }

  get pending (): number { return this.tasks.length }

  /** Runs every task due up to `now + ms`, including tasks those schedule within the window. */
  advance (ms: number): void {
    const target = this.now + ms
    for (;;) {
      const next = this.nextDue(target)
      if (next === undefined) break
      this.now = next.at
      next.fn()
    }
    this.now = target
  }

  /** Runs tasks until none are left. */
  runAll (): void {
    for (;;) {
      const next = this.nextDue(Infinity)
      if (next === undefined) return
      this.now = next.at
      next.fn()
    }
  }

  private nextDue (limit: number): { at: number, seq: number, fn: () => void } | undefined {
    let best = -1
    for (let i = 0; i < this.tasks.length; i++) {
      const t = this.tasks[i]
      if (t.at > limit) continue
      if (best < 0 || t.at < this.tasks[best].at || (t.at === this.tasks[best].at && t.seq < this.tasks[best].seq)) best = i
    }
    return best < 0 ? undefined : this.tasks.splice(best, 1)[0]
  }
}

/** Messages for the fault tests: a 4-byte index. */
function numbered (i: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, i)
  return out
}
function indexOf (data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0)
}

/** Fault-test world: a network on a virtual clock with alice and bob linked. */
interface World { clock: VirtualClock, network: MemoryNetwork, alice: MemoryTransport, bob: MemoryTransport, atBob: Array<{ index: number, at: number }> }

async function world (faults: LinkFaults, seed = 1): Promise<World> {
  const clock = new VirtualClock()
  const network = new MemoryNetwork({ random: seededRandom(seed), schedule: clock.schedule, faults })
  const alice = network.createTransport('alice', admitAll('alice'))
  const bob = network.createTransport('bob', admitAll('bob'))
  await alice.start()
  await bob.start()
  await network.connect('alice', 'bob')
  const atBob: World['atBob'] = []
  bob.on('message', (_from, data) => { atBob.push({ index: indexOf(data), at: clock.now }) })
  return { clock, network, alice, bob, atBob }
}

/** Sends `count` numbered messages alice → bob, lets the clock run out, returns bob's indices. */
async function sendAll (w: World, count: number): Promise<number[]> {
  for (let i = 0; i < count; i++) await w.alice.send('bob', numbered(i))
  w.clock.runAll()
  return w.atBob.map((m) => m.index)
}

/** Fault-test run with cleanup on success and failure. */
async function withWorld<T> (faults: LinkFaults, seed: number, body: (w: World) => Promise<T>): Promise<T> {
  const w = await world(faults, seed)
  try {
    return await body(w)
  } finally {
    await w.alice.stop()
    await w.bob.stop()
    w.clock.runAll()
  }
}

const isSorted = (xs: number[]): boolean => xs.every((x, i) => i === 0 || xs[i - 1] <= x)
const range = (n: number): number[] => [...Array(n).keys()]
/** Messages per fault run: enough that a 10–50 % fault shows with near certainty. */
const FAULT_RUN = 200

const faults = suite('memory transport faults')

const peers: MemoryTransport[] = []
faults.after.each(async () => {
  const stopping = peers.splice(0).map(async (t) => { await t.stop() })
  await Promise.all(stopping)
})

/** A started transport that the after-each hook stops. */
async function started (network: MemoryNetwork, name: string, admission: Admission = admitAll(name)): Promise<MemoryTransport> {
  const t = network.createTransport(name, admission)
  peers.push(t)
  await t.start()
  return t
}

faults('partition cuts links across groups, refuses connect across them until heal(); heal does not reconnect', async () => {
  const network = new MemoryNetwork()
  const [alice, bob, charlie] = [await started(network, 'alice'), await started(network, 'bob'), await started(network, 'charlie')]
  await network.connect('alice', 'bob')
  await network.connect('alice', 'charlie')
  await network.connect('bob', 'charlie')
  const lost: string[] = []
  for (const t of [alice, bob, charlie]) t.on('peer:disconnect', (p) => lost.push(`${t.self}-${p}`))
  network.partition(['alice'], ['bob', 'charlie'])
  assert.equal(lost.sort(), ['alice-bob', 'alice-charlie', 'bob-alice', 'charlie-alice'])
  assert.ok(network.linked('bob', 'charlie'), 'links within a group stay up')
  assert.ok(network.partitioned('alice', 'bob'))
  await rejects(network.connect('alice', 'bob'), PeerUnreachableError)
  await rejects(network.connect('charlie', 'alice'), PeerUnreachableError)
  await rejects(alice.send('bob', utf8.encode('across')), PeerNotConnectedError)
  network.heal()
  assert.not.ok(network.linked('alice', 'bob'), 'heal() does not reconnect by itself')
  assert.not.ok(network.partitioned('alice', 'bob'))
  const got: string[] = []
  const arrived = new Promise<void>((resolve) => bob.once('message', (from, data) => { got.push(`${from}:${Buffer.from(data).toString()}`); resolve() }))
  await network.connect('alice', 'bob')
  await alice.send('bob', utf8.encode('healed'))
  await arrived
  assert.equal(got, ['alice:healed'])
})

faults('a partition during admission fails the dial and neither side sees peer:connect', async () => {
  const network = new MemoryNetwork()
  let release = (): void => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const slow: Admission = { credentials: () => utf8.encode('bob'), admit: async () => { await gate; return true } }
  const alice = await started(network, 'alice')
  const bob = await started(network, 'bob', slow)
  const connects: string[] = []
  alice.on('peer:connect', (p) => connects.push(p))
  bob.on('peer:connect', (p) => connects.push(p))
  const dial = network.connect('alice', 'bob')
  network.partition(['alice'], ['bob'])
  release()
  await rejects(dial, PeerUnreachableError)
  assert.equal(connects, [])
  assert.not.ok(network.linked('alice', 'bob'))
})

faults('a refused dial rejects AdmissionRefusedError naming who refused', async () => {
  const network = new MemoryNetwork()
  await started(network, 'alice')
  await started(network, 'bob', { credentials: () => utf8.encode('bob'), admit: async () => false })
  const err = await rejects(network.connect('alice', 'bob'), AdmissionRefusedError)
  assert.is(err.refusedBy, 'bob')
  assert.is(err.peer, 'alice')
})

faults('a seeded lossRate drops a reproducible subset: same seed, same delivered set', async () => {
  const run = async (seed: number): Promise<number[]> => await withWorld({ lossRate: 0.3 }, seed, async (w) => await sendAll(w, FAULT_RUN))
  const first = await run(42)
  const again = await run(42)
  const other = await run(43)
  assert.equal(again, first, 'same seed, same survivors')
  assert.not.equal(other, first, 'another seed loses other messages')
  assert.ok(first.length > 0 && first.length < FAULT_RUN, `some but not all delivered (${first.length}/${FAULT_RUN})`)
  assert.ok(isSorted(first) && new Set(first).size === first.length, 'loss alone neither reorders nor duplicates')
  assert.equal(await withWorld({ lossRate: 0 }, 42, async (w) => await sendAll(w, FAULT_RUN)), range(FAULT_RUN), 'lossRate 0 loses nothing')
})

faults('duplication happens when enabled and never when disabled', async () => {
  const dup = await withWorld({ duplicateRate: 0.5 }, 7, async (w) => await sendAll(w, FAULT_RUN))
  assert.ok(dup.length > FAULT_RUN, `some messages delivered twice (${dup.length} for ${FAULT_RUN})`)
  assert.equal([...new Set(dup)], range(FAULT_RUN), 'every message arrives, in order, duplicates next to their original')
  assert.ok(range(FAULT_RUN).every((i) => dup.filter((x) => x === i).length <= 2), 'at most one extra copy')
  // Every other knob on, duplication off: each message at most once.
  const noDup = await withWorld({ duplicateRate: 0, lossRate: 0.2, reorder: true, latencyMs: [1, 30] }, 7, async (w) => await sendAll(w, FAULT_RUN))
  assert.is(new Set(noDup).size, noDup.length, 'no duplicates with duplicateRate 0')
})

faults('reordering happens when enabled and never when disabled, even with latency jitter', async () => {
  const shuffled = await withWorld({ reorder: true }, 11, async (w) => await sendAll(w, FAULT_RUN))
  assert.not.ok(isSorted(shuffled), 'reorder shuffles messages that are due together')
  assert.equal([...shuffled].sort((a, b) => a - b), range(FAULT_RUN), 'reorder alone neither loses nor duplicates')
  const jittered = await withWorld({ reorder: false, latencyMs: [1, 50], duplicateRate: 0.3 }, 11, async (w) => await sendAll(w, FAULT_RUN))
  assert.ok(isSorted(jittered), 'without reorder a late message holds back those after it')
  assert.equal([...new Set(jittered)], range(FAULT_RUN))
})

faults('latency delays delivery by virtual time: fixed, ranged, and per link', async () => {
  await withWorld({ latencyMs: 100 }, 1, async (w) => {
    await w.alice.send('bob', numbered(0))
    w.clock.advance(99)
    assert.equal(w.atBob, [], 'nothing before 100 ms')
    w.clock.advance(1)
    assert.equal(w.atBob, [{ index: 0, at: 100 }])
  })
  await withWorld({ latencyMs: [50, 150] }, 3, async (w) => {
    for (let i = 0; i < 20; i++) await w.alice.send('bob', numbered(i))
    w.clock.advance(49)
    assert.equal(w.atBob, [], 'nothing before the minimum latency')
    w.clock.advance(101)
    assert.equal(w.atBob.map((m) => m.index), range(20), 'everything by the maximum latency, in order')
    assert.ok(w.atBob.every((m) => m.at >= 50 && m.at <= 150))
    assert.ok(new Set(w.atBob.map((m) => m.at)).size > 1, 'delays vary within the range')
  })
  await withWorld({}, 1, async (w) => {
    const charlie = w.network.createTransport('charlie', admitAll('charlie'))
    peers.push(charlie)
    await charlie.start()
    await w.network.connect('alice', 'charlie')
    const atCharlie: number[] = []
    charlie.on('message', (_from, data) => atCharlie.push(indexOf(data)))
    w.network.setFaults({ latencyMs: 100 }, ['bob', 'alice'])
    await w.alice.send('bob', numbered(1))
    await w.alice.send('charlie', numbered(2))
    w.clock.advance(0)
    assert.equal(atCharlie, [2], 'a link without faults of its own is immediate')
    assert.equal(w.atBob, [], 'the slow link is slow')
    w.clock.advance(100)
    assert.equal(w.atBob.map((m) => m.index), [1])
  })
})

faults('messages in flight when a link is cut are dropped, never delivered on a later link', async () => {
  await withWorld({ latencyMs: 100 }, 1, async (w) => {
    await w.alice.send('bob', numbered(1))
    await w.alice.disconnect('bob')
    await w.network.connect('alice', 'bob')
    await w.alice.send('bob', numbered(2))
    w.clock.runAll()
    assert.equal(w.atBob.map((m) => m.index), [2])
  })
})

faults('the same seed and clock replay a chaotic run message for message', async () => {
  const chaos: LinkFaults = { lossRate: 0.2, duplicateRate: 0.2, reorder: true, latencyMs: [1, 30] }
  const run = async (): Promise<Array<{ index: number, at: number }>> => await withWorld(chaos, 99, async (w) => {
    await sendAll(w, FAULT_RUN)
    return w.atBob
  })
  const first = await run()
  assert.equal(await run(), first)
  assert.not.ok(isSorted(first.map((m) => m.index)), 'the run really was chaotic')
})

faults('a throwing message listener surfaces its error and later messages still arrive', async () => {
  await withWorld({}, 1, async (w) => {
    const boom = new Error('listener failed')
    let thrown = false
    w.bob.prependListener('message', () => {
      if (!thrown) { thrown = true; throw boom }
    })
    for (let i = 0; i < 3; i++) await w.alice.send('bob', numbered(i))
    assert.throws(() => w.clock.runAll(), (err: unknown) => err === boom)
    w.clock.runAll()
    assert.equal(w.atBob.map((m) => m.index), [1, 2], 'the rest is delivered in order')
  })
})

faults('exactly MAX_MESSAGE_BYTES is accepted and delivered', async () => {
  await withWorld({}, 1, async (w) => {
    let size = -1
    w.bob.on('message', (_from, data) => { size = data.byteLength })
    await w.alice.send('bob', new Uint8Array(MAX_MESSAGE_BYTES))
    w.clock.runAll()
    assert.is(size, MAX_MESSAGE_BYTES)
  })
})

faults('an aborted signal rejects send and nothing is delivered', async () => {
  await withWorld({}, 1, async (w) => {
    const controller = new AbortController()
    controller.abort()
    try {
      await w.alice.send('bob', numbered(0), controller.signal)
      assert.unreachable('send with an aborted signal resolved')
    } catch (err) {
      assert.instance(err, Error)
      assert.is((err as Error).name, 'AbortError')
    }
    w.clock.runAll()
    assert.equal(w.atBob, [])
  })
})

faults('stop() before start() is safe; a stopped peer cannot be dialed until started again', async () => {
  const network = new MemoryNetwork()
  const alice = network.createTransport('alice', admitAll('alice'))
  peers.push(alice)
  await alice.stop()
  await alice.stop()
  const bob = await started(network, 'bob')
  await rejects(network.connect('bob', 'alice'), PeerUnreachableError)
  await rejects(network.connect('bob', 'nobody'), PeerUnreachableError)
  await alice.start()
  await network.connect('bob', 'alice')
  assert.equal(bob.peers(), ['alice'])
})

faults('a live peer name cannot be taken twice; a stopped one can be reused, retiring the old transport', async () => {
  const network = new MemoryNetwork()
  const old = await started(network, 'alice')
  assert.throws(() => network.createTransport('alice', admitAll('alice')), (err: unknown) => err instanceof PeerExistsError)
  await old.stop()
  const restarted = await started(network, 'alice')
  await rejects(old.start(), PeerExistsError)
  await started(network, 'bob')
  await network.connect('bob', 'alice')
  assert.equal(restarted.peers(), ['bob'])
  assert.equal(old.peers(), [], 'the retired instance has no connections')
})

faults('concurrent dials of one pair make one connection', async () => {
  const network = new MemoryNetwork()
  const alice = await started(network, 'alice')
  const bob = await started(network, 'bob')
  const connects: string[] = []
  alice.on('peer:connect', (p) => connects.push(`alice-${p}`))
  bob.on('peer:connect', (p) => connects.push(`bob-${p}`))
  await Promise.all([network.connect('alice', 'bob'), network.connect('bob', 'alice'), network.connect('alice', 'bob')])
  assert.equal(connects.sort(), ['alice-bob', 'bob-alice'])
})

faults('setFaults rejects nonsense values with RangeError', () => {
  const network = new MemoryNetwork()
  for (const bad of [{ lossRate: 1.5 }, { duplicateRate: -0.1 }, { latencyMs: -1 }, { latencyMs: [10, 5] as [number, number] }, { lossRate: Number.NaN }]) {
    assert.throws(() => network.setFaults(bad), (err: unknown) => err instanceof RangeError, JSON.stringify(bad))
  }
  assert.throws(() => new MemoryNetwork({ faults: { lossRate: 2 } }), (err: unknown) => err instanceof RangeError)
})

faults.run()
