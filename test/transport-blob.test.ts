// The blob transfer protocol over real libp2p hosts on 127.0.0.1 sharing one network key:
// site-a holds the files and serves them, site-b fetches them. Whole transfers, resumes after
// an abort and after the holder restarts, corrupted partial files, refusals, hostile raw
// clients, unreachable holders and the per-peer transfer limit.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr as multiaddrOf } from '@multiformats/multiaddr'
import { pino } from 'pino'
import {
  BLOB_PROTOCOL, BlobDeniedError, BlobHolderBusyError, BlobHolderUnreachableError, BlobIntegrityError,
  BlobNotFoundError, BlobTransferInProgressError, fetchBlob, PARTIAL_SUFFIX, serveBlobs, type BlobServerOptions
} from '../transports/blob.ts'
import { createHost, generateNetworkKey, type Host } from '../transports/host.ts'
import { rejects } from './helpers/assert.ts'
import { tempDir } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const logger = pino({ level: process.env.PRINTMESH_TEST_LOG ?? 'silent' })
/** Loopback only, a port the kernel picks. */
const LISTEN = ['/ip4/127.0.0.1/tcp/0']
/** The large transfer: big enough to span many yamux windows and pauses. */
const BIG_BYTES = 50 * 1024 * 1024
/** Where interrupted transfers are cut: well inside the big file. */
const CUT_AT_BYTES = 10 * 1024 * 1024
/** A file for tests about everything but size. */
const SMALL_BYTES = 1024 * 1024
/** Random data is written in pieces of this size, so the test never holds a whole file. */
const WRITE_PIECE_BYTES = 1024 * 1024
/** An unreachable holder must be reported well before the 10 s dial timeout when the port is closed. */
const PROMPT_FAILURE_MS = 5_000
/** Deadline for a raw exchange with the server. */
const RAW_TIMEOUT_MS = 20_000

interface Blob { sha256: string, path: string, size: number }

/** Writes `size` random bytes to `path` piece by piece; returns their sha256. */
async function writeRandomFile (path: string, size: number): Promise<Blob> {
  const hash = createHash('sha256')
  const handle = await open(path, 'wx')
  try {
    for (let left = size; left > 0; left -= WRITE_PIECE_BYTES) {
      const piece = randomBytes(Math.min(left, WRITE_PIECE_BYTES))
      hash.update(piece)
      await handle.write(piece)
    }
  } finally {
    await handle.close()
  }
  return { sha256: hash.digest('hex'), path, size }
}

async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

// ---------------------------------------------------------------------------------------

const networkKey = generateNetworkKey()
/** Files shared by every test (the big one is costly to make). */
let shared = ''
let big: Blob
let small: Blob
/** Per-test state, torn down after each test whatever happened. */
let dir = ''
let hosts: Host[] = []
let servers: Array<() => Promise<void>> = []

async function newHost (privateKey?: PrivateKey): Promise<Host> {
  const host = await createHost({ identity: { privateKey: privateKey ?? await generateKeyPair('Ed25519') }, listen: LISTEN, networkKey, logger })
  hosts.push(host)
  return host
}

/** site-a: a host serving `blobs` (by sha256), asking `canFetch` (default: everyone may). */
async function startHolder (
  blobs: Blob[], opts: Partial<BlobServerOptions> & { privateKey?: PrivateKey } = {}
): Promise<{ host: Host, peer: string, addrs: string[], stop: () => Promise<void> }> {
  const host = await newHost(opts.privateKey)
  const stop = await serveBlobs(host, {
    resolve: opts.resolve ?? (async (sha) => blobs.find((b) => b.sha256 === sha)?.path),
    canFetch: opts.canFetch ?? (() => true),
    maxTransfersPerPeer: opts.maxTransfersPerPeer
  }, logger.child({ peer: 'site-a' }))
  servers.push(stop)
  return { host, stop, peer: host.peerId.toString(), addrs: host.getMultiaddrs().map((a) => a.toString()) }
}

/** Sends `bytes` on a raw blob stream (half-closing unless told not to) and collects the answer until the stream closes. */
async function rawExchange (from: Host, to: string[], bytes: Uint8Array, halfClose = true): Promise<{ text: string, error?: Error }> {
  const stream = await from.dialProtocol(to.map((a) => multiaddrOf(a)), BLOB_PROTOCOL, { signal: AbortSignal.timeout(RAW_TIMEOUT_MS) })
  const chunks: Uint8Array[] = []
  const closed = closedEvent(stream)
  stream.addEventListener('message', (evt: StreamMessageEvent) => { chunks.push(evt.data.subarray()) })
  stream.send(bytes)
  if (halfClose) await stream.close({ signal: AbortSignal.timeout(RAW_TIMEOUT_MS) })
  const evt = await closed
  return { text: Buffer.concat(chunks).toString('utf8'), error: evt.error }
}

/** Resolves with the stream's 'close' event; rejects after {@link RAW_TIMEOUT_MS}. */
async function closedEvent (stream: Stream): Promise<StreamCloseEvent> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`raw stream still open after ${RAW_TIMEOUT_MS} ms`)) }, RAW_TIMEOUT_MS)
    stream.addEventListener('close', (evt) => { clearTimeout(timer); resolve(evt) }, { once: true })
  })
}

const blob = suite('blob transfer')

blob.before(async () => {
  shared = await tempDir('printmesh-blob-')
  big = await writeRandomFile(join(shared, 'big'), BIG_BYTES)
  small = await writeRandomFile(join(shared, 'small'), SMALL_BYTES)
})
blob.after(async () => { await rm(shared, { recursive: true, force: true }) })
blob.before.each(async () => { dir = await tempDir('printmesh-blob-test-') })
blob.after.each(async () => {
  const errors: unknown[] = []
  for (const stop of servers.splice(0)) {
    try { await stop() } catch (err) { errors.push(err) }
  }
  for (const host of hosts.splice(0)) {
    try { await host.stop() } catch (err) { errors.push(err) }
  }
  await rm(dir, { recursive: true, force: true })
  if (errors.length > 0) throw new AggregateError(errors, 'teardown failed')
})

blob('a 50 MB random file arrives byte-identical, with monotonic progress and no partial file left', async () => {
  const siteA = await startHolder([big])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const seen: number[] = []
  const result = await fetchBlob(siteB, siteA, big.sha256, dest, {
    onProgress: (received, size) => { assert.is(size, BIG_BYTES); seen.push(received) }
  })
  assert.equal(result, { size: BIG_BYTES, resumed: false })
  assert.is(await sha256File(dest), big.sha256)
  assert.is((await stat(dest)).size, BIG_BYTES)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX), 'the partial file was renamed')
  assert.is(seen[0], 0, 'a fresh transfer starts at 0')
  assert.is(seen[seen.length - 1], BIG_BYTES)
  assert.ok(seen.every((n, i) => i === 0 || n >= seen[i - 1]), 'progress never goes back')
})

blob('an aborted transfer keeps its partial file; the next fetch resumes from it and the file is identical', async () => {
  const siteA = await startHolder([big])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const controller = new AbortController()
  const reason = new Error('user cancelled')
  const err = await rejects(fetchBlob(siteB, siteA, big.sha256, dest, {
    signal: controller.signal,
    onProgress: (received) => { if (received >= CUT_AT_BYTES) controller.abort(reason) }
  }), Error)
  assert.is(err, reason, 'the signal reason is thrown')
  assert.not.ok(await exists(dest), 'nothing unverified at the destination')
  const kept = (await stat(dest + PARTIAL_SUFFIX)).size
  assert.ok(kept >= CUT_AT_BYTES && kept < BIG_BYTES, `partial file holds ${kept} bytes`)

  const starts: number[] = []
  const result = await fetchBlob(siteB, siteA, big.sha256, dest, {
    onProgress: (received) => { if (starts.length === 0) starts.push(received) }
  })
  assert.equal(result, { size: BIG_BYTES, resumed: true })
  assert.is(starts[0], kept, 'the second transfer started at the partial file size, so only the rest crossed')
  assert.is(await sha256File(dest), big.sha256)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX))
})

blob('the holder stopping mid-transfer is BlobHolderUnreachableError; after it restarts the fetch resumes', async () => {
  const key = await generateKeyPair('Ed25519')
  const first = await startHolder([big], { privateKey: key })
  const siteB = await newHost()
  const dest = join(dir, 'job')
  let stopping: Promise<void> | undefined
  await rejects(fetchBlob(siteB, first, big.sha256, dest, {
    onProgress: (received) => { if (received >= CUT_AT_BYTES && stopping === undefined) stopping = Promise.resolve(first.host.stop()) }
  }), BlobHolderUnreachableError)
  await stopping
  const kept = (await stat(dest + PARTIAL_SUFFIX)).size
  assert.ok(kept > 0 && kept < BIG_BYTES, `partial file holds ${kept} bytes`)
  assert.not.ok(await exists(dest))

  const restarted = await startHolder([big], { privateKey: key })
  assert.is(restarted.peer, first.peer, 'same holder, new address')
  const starts: number[] = []
  const result = await fetchBlob(siteB, restarted, big.sha256, dest, {
    onProgress: (received) => { if (starts.length === 0) starts.push(received) }
  })
  assert.equal(result, { size: BIG_BYTES, resumed: true })
  assert.is(starts[0], kept)
  assert.is(await sha256File(dest), big.sha256)
})

blob('a corrupted partial file is BlobIntegrityError and deleted; the next fetch starts afresh', async () => {
  const siteA = await startHolder([small])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const prefix = (await readFile(small.path)).subarray(0, 300_000)
  prefix[1234] ^= 0xff
  await writeFile(dest + PARTIAL_SUFFIX, prefix)
  const err = await rejects(fetchBlob(siteB, siteA, small.sha256, dest), BlobIntegrityError)
  assert.match(err.message, small.sha256)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX), 'the bad partial file was deleted')
  assert.not.ok(await exists(dest))

  assert.equal(await fetchBlob(siteB, siteA, small.sha256, dest), { size: SMALL_BYTES, resumed: false })
  assert.is(await sha256File(dest), small.sha256)
})

blob('a partial file longer than the blob is BlobIntegrityError and deleted', async () => {
  const siteA = await startHolder([small])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  await writeFile(dest + PARTIAL_SUFFIX, Buffer.alloc(SMALL_BYTES + 1))
  await rejects(fetchBlob(siteB, siteA, small.sha256, dest), BlobIntegrityError)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX))
})

blob('an empty blob transfers', async () => {
  const empty = await writeRandomFile(join(dir, 'empty'), 0)
  const siteA = await startHolder([empty])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  assert.equal(await fetchBlob(siteB, siteA, empty.sha256, dest), { size: 0, resumed: false })
  assert.is((await stat(dest)).size, 0)
})

blob('an unknown sha256 is BlobNotFoundError and leaves no file', async () => {
  const siteA = await startHolder([small])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const unknown = createHash('sha256').update('nobody has this').digest('hex')
  const err = await rejects(fetchBlob(siteB, siteA, unknown, dest), BlobNotFoundError)
  assert.match(err.message, unknown)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX))
  assert.not.ok(await exists(dest))
})

blob('canFetch false is BlobDeniedError; canFetch sees the fetcher\'s peer id and resolve is never asked', async () => {
  const asked: Array<[string, string]> = []
  let resolved = 0
  const siteA = await startHolder([small], {
    canFetch: (peer, sha) => { asked.push([peer, sha]); return false },
    resolve: async () => { resolved++; return small.path }
  })
  const siteB = await newHost()
  const dest = join(dir, 'job')
  await rejects(fetchBlob(siteB, siteA, small.sha256, dest), BlobDeniedError)
  assert.equal(asked, [[siteB.peerId.toString(), small.sha256]])
  assert.is(resolved, 0, 'a refused peer cannot probe what the holder has')
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX))
})

blob('malformed requests from a raw client get bad-request or a reset; the server keeps serving', async () => {
  const siteA = await startHolder([small])
  const raw = await newHost()
  const utf8 = new TextEncoder()
  const badRequests: Array<[what: string, body: string]> = [
    ['garbage', 'GET / HTTP/1.1\r\n\r\n'],
    ['not an object', '[1,2,3]'],
    ['a short sha256', JSON.stringify({ sha256: 'abc', offset: 0 })],
    ['an uppercase sha256', JSON.stringify({ sha256: small.sha256.toUpperCase(), offset: 0 })],
    ['a negative offset', JSON.stringify({ sha256: small.sha256, offset: -1 })],
    ['a fractional offset', JSON.stringify({ sha256: small.sha256, offset: 1.5 })],
    ['a string offset', JSON.stringify({ sha256: small.sha256, offset: '0' })],
    ['an empty request', '']
  ]
  for (const [what, body] of badRequests) {
    const answer = await rawExchange(raw, siteA.addrs, utf8.encode(body))
    assert.is(answer.error, undefined, `${what}: closed cleanly`)
    const header = JSON.parse(answer.text.trimEnd()) as { status: string, reason: string }
    assert.is(header.status, 'bad-request', what)
    assert.type(header.reason, 'string')
    assert.ok(answer.text.endsWith('\n') && answer.text.indexOf('\n') === answer.text.length - 1, `${what}: one header line, nothing more`)
  }

  const beyond = await rawExchange(raw, siteA.addrs, utf8.encode(JSON.stringify({ sha256: small.sha256, offset: SMALL_BYTES + 1 })))
  assert.equal(JSON.parse(beyond.text), { status: 'invalid-offset', size: SMALL_BYTES })

  const oversized = await rawExchange(raw, siteA.addrs, new Uint8Array(4096).fill(0x20), false)
  assert.ok(oversized.error !== undefined, 'an oversized request is reset')
  assert.is(oversized.text, '')

  // A well-formed raw request gets the header line, then exactly the bytes from the offset.
  const ok = await rawExchange(raw, siteA.addrs, utf8.encode(JSON.stringify({ sha256: small.sha256, offset: SMALL_BYTES - 5 })))
  assert.is(ok.text.slice(0, ok.text.indexOf('\n')), JSON.stringify({ status: 'ok', size: SMALL_BYTES }))

  const siteB = await newHost()
  assert.equal(await fetchBlob(siteB, siteA, small.sha256, join(dir, 'job')), { size: SMALL_BYTES, resumed: false })
})

blob('an unreachable holder is BlobHolderUnreachableError, promptly, and no partial file is made', async () => {
  const gone = await startHolder([small])
  await gone.stop()
  await gone.host.stop()
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const started = Date.now()
  const err = await rejects(fetchBlob(siteB, gone, small.sha256, dest), BlobHolderUnreachableError)
  assert.ok(Date.now() - started < PROMPT_FAILURE_MS, `failed after ${Date.now() - started} ms`)
  assert.match(err.message, gone.peer)
  // A peer we know no address of fails the same way.
  const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  await rejects(fetchBlob(siteB, { peer: stranger }, small.sha256, dest), BlobHolderUnreachableError)
  assert.not.ok(await exists(dest + PARTIAL_SUFFIX))
})

blob('a peer at its transfer limit is told BlobHolderBusyError; a freed slot serves again', async () => {
  const siteA = await startHolder([big, small], { maxTransfersPerPeer: 1 })
  const siteB = await newHost()
  // A raw client takes the only slot and stops reading once the body starts.
  const hog = await siteB.dialProtocol(siteA.addrs.map((a) => multiaddrOf(a)), BLOB_PROTOCOL, { signal: AbortSignal.timeout(RAW_TIMEOUT_MS) })
  const firstBytes = new Promise<void>((resolve) => {
    hog.addEventListener('message', () => { hog.pause(); resolve() }, { once: true })
  })
  hog.send(new TextEncoder().encode(JSON.stringify({ sha256: big.sha256, offset: 0 })))
  await hog.close({ signal: AbortSignal.timeout(RAW_TIMEOUT_MS) })
  await firstBytes

  await rejects(fetchBlob(siteB, siteA, small.sha256, join(dir, 'busy')), BlobHolderBusyError)
  hog.abort(new Error('hog gives up'))
  await until(async () => {
    try {
      await fetchBlob(siteB, siteA, small.sha256, join(dir, 'job'))
      return true
    } catch (err) {
      if (err instanceof BlobHolderBusyError) return false
      throw err
    }
  }, RAW_TIMEOUT_MS, 'the slot to be freed')
  assert.is(await sha256File(join(dir, 'job')), small.sha256)
})

blob('a second fetch into the same destination while one runs is BlobTransferInProgressError', async () => {
  const siteA = await startHolder([small])
  const siteB = await newHost()
  const dest = join(dir, 'job')
  const first = fetchBlob(siteB, siteA, small.sha256, dest)
  await rejects(fetchBlob(siteB, siteA, small.sha256, dest), BlobTransferInProgressError)
  assert.equal(await first, { size: SMALL_BYTES, resumed: false })
})

blob('stopping the server twice is safe, and a stopped server serves nothing', async () => {
  const siteA = await startHolder([small])
  const siteB = await newHost()
  await siteA.stop()
  await siteA.stop()
  await rejects(fetchBlob(siteB, siteA, small.sha256, join(dir, 'job')), BlobHolderUnreachableError)
})

blob.run()
