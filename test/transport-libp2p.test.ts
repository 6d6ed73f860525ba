// The libp2p transport: the shared transport contract suite over real hosts on 127.0.0.1,
// then what only libp2p has: persisted peer keys, the private network (pnet), one stream per
// peer pair whatever the start order, and hostile peers breaking the wire format.
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pino } from 'pino'
import {
  createHost, generateNetworkKey, InsecureKeyFileError, InvalidNetworkKeyError, InvalidPeerKeyError,
  loadNetworkKey, loadOrCreateNetworkKey, loadOrCreatePeerKey, parseNetworkKey, PEER_KEY_FILE, type Host
} from '../transports/host.ts'
import { Libp2pTransport, MAX_CREDENTIALS_BYTES, SYNC_PROTOCOL } from '../transports/libp2p.ts'
import { MAX_MESSAGE_BYTES, PeerNotConnectedError, type Admission, type SyncTransport } from '../transports/types.ts'
import { rejects } from './helpers/assert.ts'
import { tempDir } from '../simulations/node-process.ts'
import { runTransportSuite, type TransportFixture } from './helpers/transport-suite.ts'

const logger = pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })
const utf8 = new TextEncoder()
/** Loopback only, a port the kernel picks. */
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
/** Deadline for one expected event. */
const EVENT_TIMEOUT_MS = 20_000

/** Admits everyone, presenting the peer's name. */
function admitAll (name: string): Admission {
  return { credentials: () => utf8.encode(name), admit: async () => true }
}

async function newHost (networkKey: Uint8Array, privateKey?: PrivateKey): Promise<Host> {
  return await createHost({
    identity: { privateKey: privateKey ?? await generateKeyPair('Ed25519') },
    listen: LISTEN,
    networkKey,
    logger
  })
}

/** Two keys, the first with the lower peer id (who opens the sync stream, see PROTOCOL.md). */
async function orderedKeys (): Promise<[lower: PrivateKey, higher: PrivateKey]> {
  const keys = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')])
  const [a, b] = keys.map((k) => peerIdFromPrivateKey(k).toString())
  return a < b ? [keys[0], keys[1]] : [keys[1], keys[0]]
}

/** Resolves once `t` has emitted peer:connect for `peer` (or already lists it); cancellable. */
function connected (t: SyncTransport, peer: string, timeoutMs = EVENT_TIMEOUT_MS): { done: Promise<void>, cancel: () => void } {
  let cancel = (): void => {}
  const done = new Promise<void>((resolve, reject) => {
    if (t.peers().includes(peer)) { resolve(); return }
    const onConnect = (p: string): void => { if (p === peer) { cleanup(); resolve() } }
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no peer:connect for ${peer} within ${timeoutMs} ms`)) }, timeoutMs)
    const cleanup = (): void => { clearTimeout(timer); t.off('peer:connect', onConnect) }
    cancel = cleanup
    t.on('peer:connect', onConnect)
  })
  return { done, cancel }
}

/** Resolves on the host's next `peer:disconnect` for `peer`. */
async function hostDisconnected (host: Host, peer: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<void> {
  if (host.getConnections().every((c) => c.remotePeer.toString() !== peer)) return
  await new Promise<void>((resolve, reject) => {
    const onDisconnect = (evt: CustomEvent): void => {
      if (String(evt.detail) !== peer) return
      cleanup(); resolve()
    }
    const timer = setTimeout(() => { cleanup(); reject(new Error(`host still connected to ${peer} after ${timeoutMs} ms`)) }, timeoutMs)
    const cleanup = (): void => { clearTimeout(timer); host.removeEventListener('peer:disconnect', onDisconnect) }
    host.addEventListener('peer:disconnect', onDisconnect)
  })
}

/** Stops transports, then hosts; every failure is collected and rethrown together. */
async function stopAll (peers: Array<{ transport?: SyncTransport, host: Host }>): Promise<void> {
  const errors: unknown[] = []
  for (const p of peers) {
    try { await p.transport?.stop() } catch (err) { errors.push(err) }
  }
  for (const p of peers) {
    try { await p.host.stop() } catch (err) { errors.push(err) }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'teardown failed')
}

/** Real hosts on 127.0.0.1 sharing one network key; `connect` dials b's listen addresses. */
function libp2pFixture (): TransportFixture {
  const networkKey = generateNetworkKey()
  const made: Array<{ host: Host, transport: Libp2pTransport }> = []
  return {
    async makePeer (name, admission = admitAll(name)) {
      const host = await newHost(networkKey)
      const transport = new Libp2pTransport({ host, admission, logger: logger.child({ peer: name }) })
      made.push({ host, transport })
      await transport.start()
      return transport
    },
    async connect (a, b) {
      const dialer = made.find((p) => p.transport === a)
      const dialed = made.find((p) => p.transport === b)
      if (dialer === undefined || dialed === undefined) throw new Error('connect() with a transport this fixture did not make')
      const bSawA = connected(b, a.self)
      try {
        await dialer.transport.dial(dialed.host.getMultiaddrs())
      } catch (err) {
        bSawA.cancel()
        throw err
      }
      await bSawA.done
    },
    async teardown () {
      await stopAll(made.splice(0))
    }
  }
}

runTransportSuite('libp2p transport', async () => libp2pFixture())

// ---------------------------------------------------------------------------------------

const keys = suite('peer and network keys')
let dir = ''
keys.before.each(async () => { dir = await tempDir() })
keys.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

keys('the peer key is created once (mode 0600) and the peer id is the same after a restart', async () => {
  const networkKey = generateNetworkKey()
  const first = await createHost({ identity: { dataDir: dir }, listen: LISTEN, networkKey, logger })
  const id = first.peerId.toString()
  await first.stop()
  assert.is((await stat(join(dir, PEER_KEY_FILE))).mode & 0o777, 0o600)
  const second = await createHost({ identity: { dataDir: dir }, listen: LISTEN, networkKey, logger })
  try {
    assert.is(second.peerId.toString(), id)
    assert.is(second.peerId.type, 'Ed25519')
  } finally {
    await second.stop()
  }
  const other = await loadOrCreatePeerKey(join(dir, 'elsewhere', PEER_KEY_FILE))
  assert.is.not(peerIdFromPrivateKey(other).toString(), id, 'another file is another identity')
})

keys('a peer key file others can read, or that holds no key, is refused', async () => {
  const path = join(dir, PEER_KEY_FILE)
  await loadOrCreatePeerKey(path)
  await chmod(path, 0o644)
  await rejects(loadOrCreatePeerKey(path), InsecureKeyFileError)
  await writeFile(path, 'not a key', { mode: 0o600 })
  await chmod(path, 0o600)
  await rejects(loadOrCreatePeerKey(path), InvalidPeerKeyError)
})

keys('network keys: generated in the pnet format, persisted 0600, malformed ones refused', async () => {
  const key = generateNetworkKey()
  assert.equal(parseNetworkKey(key), key)
  assert.match(new TextDecoder().decode(key), /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
  const path = join(dir, 'network.key')
  const created = await loadOrCreateNetworkKey(path)
  assert.is((await stat(path)).mode & 0o777, 0o600)
  assert.equal(await loadNetworkKey(path), created)
  assert.equal(await loadOrCreateNetworkKey(path), created, 'an existing key is kept')
  assert.equal(new Uint8Array(await readFile(path)), created)
  assert.throws(() => parseNetworkKey('/key/swarm/psk/1.0.0/\n/base16/\nabcd'), (e: unknown) => e instanceof InvalidNetworkKeyError)
  assert.throws(() => parseNetworkKey('hello'), (e: unknown) => e instanceof InvalidNetworkKeyError)
  await rejects(newHost(utf8.encode('/key/swarm/psk/1.0.0/\n/base58/\nxyz')), InvalidNetworkKeyError)
})

keys.run()

// ---------------------------------------------------------------------------------------

const pnet = suite('private network')
let pnetPeers: Array<{ transport?: SyncTransport, host: Host }> = []
pnet.after.each(async () => { await stopAll(pnetPeers.splice(0)) })

pnet('a peer with another network key cannot connect; one with the same key can', async () => {
  const ours = generateNetworkKey()
  const theirs = generateNetworkKey()
  const alice = { host: await newHost(ours), transport: undefined as Libp2pTransport | undefined }
  pnetPeers.push(alice)
  const stranger = { host: await newHost(theirs), transport: undefined as Libp2pTransport | undefined }
  pnetPeers.push(stranger)
  const bob = { host: await newHost(ours), transport: undefined as Libp2pTransport | undefined }
  pnetPeers.push(bob)
  for (const [name, p] of [['alice', alice], ['stranger', stranger], ['bob', bob]] as const) {
    p.transport = new Libp2pTransport({ host: p.host, admission: admitAll(name), logger })
    await p.transport.start()
  }
  const a = alice.transport!
  const aliceConnects: string[] = []
  a.on('peer:connect', (p) => aliceConnects.push(p))
  let dialError: unknown
  try {
    await stranger.transport!.dial(alice.host.getMultiaddrs(), AbortSignal.timeout(EVENT_TIMEOUT_MS))
  } catch (err) {
    dialError = err
  }
  assert.instance(dialError, Error, 'the dial across network keys fails')
  assert.is(alice.host.getConnections().length, 0, 'alice holds no connection from the stranger')
  await rejects(stranger.transport!.send(a.self, utf8.encode('hello?')), PeerNotConnectedError)

  const bobSawAlice = connected(bob.transport!, a.self)
  assert.is(await a.dial(bob.host.getMultiaddrs()), bob.transport!.self)
  await bobSawAlice.done
  assert.equal(aliceConnects, [bob.transport!.self], 'alice only ever connected to bob')
})

pnet.run()

// ---------------------------------------------------------------------------------------

const wire = suite('sync streams on the wire')
let wirePeers: Array<{ transport?: SyncTransport, host: Host }> = []
wire.after.each(async () => { await stopAll(wirePeers.splice(0)) })

/** Streams of the sync protocol between two hosts, counted on a's side. */
function syncStreams (a: Host, b: Host): Stream[] {
  return a.getConnections(b.peerId).flatMap((c) => c.streams).filter((s) => s.protocol === SYNC_PROTOCOL)
}

for (const firstStarted of ['lower', 'higher'] as const) {
  wire(`transports started after the hosts connected (${firstStarted} id first) share exactly one stream`, async () => {
    const networkKey = generateNetworkKey()
    const [lower, higher] = await orderedKeys()
    const hostA = await newHost(networkKey, firstStarted === 'lower' ? lower : higher)
    wirePeers.push({ host: hostA })
    const hostB = await newHost(networkKey, firstStarted === 'lower' ? higher : lower)
    wirePeers.push({ host: hostB })
    await hostA.dial(hostB.getMultiaddrs(), { signal: AbortSignal.timeout(EVENT_TIMEOUT_MS) })
    // hostA's transport starts first.
    const a = new Libp2pTransport({ host: hostA, admission: admitAll('a'), logger })
    const b = new Libp2pTransport({ host: hostB, admission: admitAll('b'), logger })
    wirePeers[0].transport = a
    wirePeers[1].transport = b
    const aConnects: string[] = []
    const bConnects: string[] = []
    a.on('peer:connect', (p) => aConnects.push(p))
    b.on('peer:connect', (p) => bConnects.push(p))
    const aSawB = connected(a, b.self)
    const bSawA = connected(b, a.self)
    await a.start()
    await b.start()
    await Promise.all([aSawB.done, bSawA.done])
    assert.equal(aConnects, [b.self])
    assert.equal(bConnects, [a.self])
    assert.is(syncStreams(hostA, hostB).length, 1, 'one sync stream on a')
    assert.is(syncStreams(hostB, hostA).length, 1, 'one sync stream on b')
    await a.send(b.self, utf8.encode('one stream'))
  })
}

wire('a send whose signal is already aborted rejects and is never delivered', async () => {
  const networkKey = generateNetworkKey()
  const peers = await Promise.all(['alice', 'bob'].map(async (name) => {
    const host = await newHost(networkKey)
    const transport = new Libp2pTransport({ host, admission: admitAll(name), logger })
    wirePeers.push({ host, transport })
    await transport.start()
    return { host, transport }
  }))
  const [alice, bob] = peers
  const got: string[] = []
  bob.transport.on('message', (_from, data) => got.push(Buffer.from(data).toString()))
  const bobSawAlice = connected(bob.transport, alice.transport.self)
  await alice.transport.dial(bob.host.getMultiaddrs())
  await bobSawAlice.done
  const reason = new Error('caller gave up')
  const aborted = alice.transport.send(bob.transport.self, utf8.encode('never'), AbortSignal.abort(reason))
  await aborted.then(() => assert.unreachable('the aborted send resolved'), (err: unknown) => assert.is(err, reason))
  await alice.transport.send(bob.transport.self, utf8.encode('after'))
  await new Promise<void>((resolve) => {
    if (got.length > 0) { resolve(); return }
    bob.transport.once('message', () => resolve())
  })
  assert.equal(got, ['after'])
})

/** Frame bytes exactly as PROTOCOL.md defines them: varint(1 + body length), type, body. */
function rawFrame (type: number, body: Uint8Array, announcedLength = 1 + body.byteLength): Uint8Array {
  const prefix: number[] = []
  let rest = announcedLength
  do {
    prefix.push((rest % 0x80) | (rest >= 0x80 ? 0x80 : 0))
    rest = Math.floor(rest / 0x80)
  } while (rest > 0)
  return Uint8Array.from([...prefix, type, ...body])
}

const HELLO = 0x01
const ADMITTED = 0x02
const MESSAGE = 0x03

/**
 * Hostile frame sequences. `asked`: whether a valid HELLO reached admission; `admitted`:
 * whether the peer passed the whole handshake before misbehaving.
 */
const hostile: Array<{ what: string, frames: Uint8Array[], afterAdmission?: Uint8Array[], asked: boolean, admitted: boolean }> = [
  { what: 'a MESSAGE before the handshake', frames: [rawFrame(MESSAGE, utf8.encode('sneak'))], asked: false, admitted: false },
  { what: 'a HELLO over MAX_CREDENTIALS_BYTES (by its length prefix alone)', frames: [rawFrame(HELLO, new Uint8Array(0), 2 + MAX_CREDENTIALS_BYTES)], asked: false, admitted: false },
  { what: 'an unknown frame type after HELLO', frames: [rawFrame(HELLO, utf8.encode('raw')), rawFrame(0x7f, new Uint8Array(0))], asked: true, admitted: false },
  {
    what: 'a frame over MAX_MESSAGE_BYTES after admission (by its length prefix alone)',
    frames: [rawFrame(HELLO, utf8.encode('raw')), rawFrame(ADMITTED, new Uint8Array(0))],
    // sent only once the transport has admitted the peer: sent together with the handshake, the
    // length prefix may be read before admission ends and be refused by the handshake's own limit
    afterAdmission: [rawFrame(MESSAGE, new Uint8Array(0), 2 + MAX_MESSAGE_BYTES)],
    asked: true,
    admitted: true
  }
]

for (const { what, frames, afterAdmission = [], asked, admitted: passes } of hostile) {
  wire(`a peer sending ${what} is disconnected${passes ? '' : ' and never admitted'}`, async () => {
    const networkKey = generateNetworkKey()
    const [lower, higher] = await orderedKeys()
    const host = await newHost(networkKey, higher)
    const admitted: string[] = []
    const transport = new Libp2pTransport({
      host,
      admission: { credentials: () => utf8.encode('victim'), admit: async (peer) => { admitted.push(peer); return true } },
      logger
    })
    wirePeers.push({ host, transport })
    await transport.start()
    // The raw peer sorts lower, so it, not the transport, opens the stream (PROTOCOL.md).
    const raw = await newHost(networkKey, lower)
    wirePeers.push({ host: raw })
    const connects: string[] = []
    const disconnects: string[] = []
    transport.on('peer:disconnect', (p) => disconnects.push(p))
    const messages: Uint8Array[] = []
    transport.on('peer:connect', (p) => connects.push(p))
    transport.on('message', (_p, d) => messages.push(d))
    const stream = await raw.dialProtocol(host.getMultiaddrs(), SYNC_PROTOCOL, { signal: AbortSignal.timeout(EVENT_TIMEOUT_MS) })
    const gone = hostDisconnected(raw, transport.self)
    const rawId = raw.peerId.toString()
    const joined = afterAdmission.length > 0 ? connected(transport, rawId) : undefined
    for (const frame of frames) stream.send(frame)
    if (joined !== undefined) {
      await joined.done
      for (const frame of afterAdmission) stream.send(frame)
    }
    await gone
    assert.equal(connects, passes ? [rawId] : [], passes ? 'admitted before it misbehaved' : 'no peer:connect for the hostile peer')
    assert.equal(disconnects, connects, 'every peer:connect has its peer:disconnect')
    assert.equal(messages, [], 'nothing it sent was delivered')
    assert.equal(transport.peers(), [])
    assert.equal(admitted, asked ? [rawId] : [], 'admission was asked only after a valid HELLO')
  })
}

wire('a well-behaved raw peer speaking PROTOCOL.md by hand is admitted and its message delivered', async () => {
  // The positive control for the hostile cases above: the same frames, in the right order.
  const networkKey = generateNetworkKey()
  const [lower, higher] = await orderedKeys()
  const host = await newHost(networkKey, higher)
  const transport = new Libp2pTransport({ host, admission: admitAll('victim'), logger })
  wirePeers.push({ host, transport })
  await transport.start()
  const raw = await newHost(networkKey, lower)
  wirePeers.push({ host: raw })
  const rawId = raw.peerId.toString()
  const delivered = new Promise<Uint8Array>((resolve) => transport.once('message', (_p, d) => resolve(d)))
  const stream = await raw.dialProtocol(host.getMultiaddrs(), SYNC_PROTOCOL, { signal: AbortSignal.timeout(EVENT_TIMEOUT_MS) })
  // HELLO ("victim") then ADMITTED, as raw bytes.
  const expected = [...rawFrame(HELLO, utf8.encode('victim')), ...rawFrame(ADMITTED, new Uint8Array(0))]
  const received: number[] = []
  const sawAdmitted = new Promise<void>((resolve) => {
    stream.addEventListener('message', (evt) => {
      received.push(...evt.data.subarray())
      if (received.length >= expected.length) resolve()
    })
  })
  const joined = connected(transport, rawId)
  stream.send(rawFrame(HELLO, utf8.encode('raw')))
  stream.send(rawFrame(ADMITTED, new Uint8Array(0)))
  await sawAdmitted
  assert.equal(received, expected, 'the transport sent exactly HELLO and ADMITTED')
  await joined.done
  stream.send(rawFrame(MESSAGE, utf8.encode('by hand')))
  assert.is(Buffer.from(await delivered).toString(), 'by hand')
  assert.equal(transport.peers(), [rawId])
})

wire.run()
