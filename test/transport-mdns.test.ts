// mDNS discovery: two hosts on the loopback of the test's private network namespace find
// each other, the auto-dialer connects them and the sync transport admits them, with no
// explicit dial. Multicast must not leave the machine, so this file refuses to run unless
// loopback is the only interface (npm test runs it inside `unshare -n`).
import { networkInterfaces } from 'node:os'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import { createHost, generateNetworkKey, type Host } from '../transports/host.ts'
import { Libp2pTransport } from '../transports/libp2p.ts'
import type { SyncTransport } from '../transports/types.ts'

const logger = pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })
const utf8 = new TextEncoder()
/** The first mDNS query goes out at start and every peer answers it; this leaves room for one retry. */
const DISCOVERY_TIMEOUT_MS = 30_000
/** A query interval shorter than the default 10 s, so a lost first query costs little. */
const MDNS_INTERVAL_MS = 2_000

const interfaces = Object.keys(networkInterfaces())
if (interfaces.length !== 1 || interfaces[0] !== 'lo') {
  // Fail loudly rather than multicast onto a real network.
  throw new Error(`refusing to run mDNS tests: interfaces are [${interfaces.join(', ')}], expected only 'lo' (run through npm test, which uses a private network namespace)`)
}

/** Resolves once `t` has emitted peer:connect for `peer`. */
async function connected (t: SyncTransport, peer: string): Promise<void> {
  if (t.peers().includes(peer)) return
  await new Promise<void>((resolve, reject) => {
    const onConnect = (p: string): void => { if (p === peer) { cleanup(); resolve() } }
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no peer:connect for ${peer} within ${DISCOVERY_TIMEOUT_MS} ms`)) }, DISCOVERY_TIMEOUT_MS)
    const cleanup = (): void => { clearTimeout(timer); t.off('peer:connect', onConnect) }
    t.on('peer:connect', onConnect)
  })
}

const made: Array<{ host: Host, transport: Libp2pTransport }> = []

test.after.each(async () => {
  const errors: unknown[] = []
  for (const p of made) {
    try { await p.transport.stop() } catch (err) { errors.push(err) }
  }
  for (const p of made.splice(0)) {
    try { await p.host.stop() } catch (err) { errors.push(err) }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'teardown failed')
})

test('two hosts with mdns on discover each other and connect, with no explicit dial', async () => {
  const networkKey = generateNetworkKey()
  const peers: Array<{ host: Host, transport: Libp2pTransport }> = []
  for (const name of ['site-a', 'site-b']) {
    const host = await createHost({
      identity: { privateKey: await generateKeyPair('Ed25519') },
      listen: ['/ip4/127.0.0.1/tcp/0'],
      networkKey,
      mdns: true,
      mdnsIntervalMs: MDNS_INTERVAL_MS,
      logger
    })
    const transport = new Libp2pTransport({ host, admission: { credentials: () => utf8.encode(name), admit: async () => true }, logger })
    made.push({ host, transport })
    await transport.start()
    peers.push({ host, transport })
  }
  const [a, b] = peers
  await Promise.all([connected(a.transport, b.transport.self), connected(b.transport, a.transport.self)])
  assert.equal(a.transport.peers(), [b.transport.self])
  assert.equal(b.transport.peers(), [a.transport.self])
  assert.ok(a.host.services.autoDial.watched().includes(b.transport.self) || b.host.services.autoDial.watched().includes(a.transport.self),
    'the connection came from the auto-dialer acting on discovery')
  const got = new Promise<string>((resolve) => b.transport.once('message', (_p, d) => resolve(Buffer.from(d).toString())))
  await a.transport.send(b.transport.self, utf8.encode('found you'))
  assert.is(await got, 'found you')
})

test.run()
