/**
 * The libp2p host every printmesh process runs: TCP, a private network (pnet) in front of
 * noise encryption, yamux, identify, ping, gossipsub (as the service `pubsub`), optional mDNS
 * and bootstrap discovery, and an auto-dialer that connects to whatever discovery finds.
 *
 * The peer's Ed25519 key is created once and kept in a file, so the peer id survives
 * restarts. The private-network key is a 32-byte secret in the libp2p pnet key format
 * (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits): peers without the same key cannot
 * finish the first handshake step, before noise even starts.
 *
 * Nothing here is process-global: every host has its own key, sockets, timers and state,
 * so any number of hosts can run in one process or in many.
 */
import { constants as fsConstants } from 'node:fs'
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type {
  AbortOptions, Connection, Libp2p, PeerDiscovery, PeerId, PeerInfo, PrivateKey, Startable
} from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { generateKey, preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Logger } from 'pino'

/** Name of the peer key file inside the data folder. */
export const PEER_KEY_FILE = 'peer.key'
/** Owner read/write only: the file is the peer's identity. */
const SECRET_FILE_MODE = 0o600
/** Owner-only folder for a freshly created key file. */
const SECRET_DIR_MODE = 0o700

/** First line of a libp2p pnet key file (the only version that exists). */
const NETWORK_KEY_HEADER = '/key/swarm/psk/1.0.0/'
/** Second line: the only encoding @libp2p/pnet decodes. */
const NETWORK_KEY_ENCODING = '/base16/'
/** Size of the text @libp2p/pnet's generateKey writes: two header lines + 64 hex digits. */
const NETWORK_KEY_TEXT_BYTES = NETWORK_KEY_HEADER.length + 1 + NETWORK_KEY_ENCODING.length + 1 + 64

/** Connections kept before libp2p prunes the least valuable: a mesh of tens of peers plus slack. */
const MAX_CONNECTIONS = 128
/** Parallel outbound dials: enough to rejoin a mesh of tens of peers at once. */
const MAX_PARALLEL_DIALS = 32
/** One dial (DNS, TCP, pnet, noise, yamux) must finish within this. */
const DIAL_TIMEOUT_MS = 10_000
/** Inbound connections per second from one IP: sites behind one NAT and loopback tests open many. */
const INBOUND_CONNECTION_THRESHOLD = 50
/** Inbound connections still upgrading at once (pnet + noise cost CPU). */
const MAX_INCOMING_PENDING_CONNECTIONS = 32
/** The pnet nonce exchange must finish within this; a slow LAN link needs more than the 1 s default. */
const PNET_TIMEOUT_MS = 5_000
/** mDNS query interval: a new peer on the LAN is found within this. */
const DEFAULT_MDNS_INTERVAL_MS = 10_000

/** First redial delay after a failed dial or a lost connection. */
const REDIAL_BASE_MS = 1_000
/** Longest delay between redials of one peer. */
const REDIAL_MAX_MS = 60_000
/** Failed redials in a row before a peer is forgotten until discovery reports it again (~6 min). */
const REDIAL_MAX_ATTEMPTS = 10
/** A connection that lived this long counts as healthy: the redial backoff of its peer resets. */
const STABLE_CONNECTION_MS = 30_000

/** The peer key file exists but does not hold an Ed25519 libp2p private key. */
export class InvalidPeerKeyError extends Error {
  constructor (readonly path: string, reason: string) {
    super(`peer key file ${path} is not usable: ${reason}`)
    this.name = 'InvalidPeerKeyError'
  }
}

/** A secret key file can be read by other users. */
export class InsecureKeyFileError extends Error {
  constructor (readonly path: string, mode: number) {
    super(`key file ${path} has mode ${(mode & 0o777).toString(8)}; other users must not read it (chmod 600 ${path})`)
    this.name = 'InsecureKeyFileError'
  }
}

/** A key file that must exist (the network key is copied to every peer, never created silently) is missing. */
export class MissingKeyFileError extends Error {
  constructor (readonly path: string) {
    super(`key file ${path} does not exist`)
    this.name = 'MissingKeyFileError'
  }
}

/** The network key is not a libp2p pnet key (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits). */
export class InvalidNetworkKeyError extends Error {
  constructor (reason: string) {
    super(`invalid private-network key: ${reason}`)
    this.name = 'InvalidNetworkKeyError'
  }
}

/** The services every printmesh host runs. */
export interface HostServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  autoDial: AutoDialer
}

/** A started printmesh libp2p host. */
export type Host = Libp2p<HostServices>

/** Options of {@link createHost}. */
export interface HostOptions {
  /**
   * The peer's identity: a data folder (the key lives in {@link PEER_KEY_FILE} inside it and
   * is created on first start), or a key already loaded (tests, simulations).
   */
  identity: { dataDir: string } | { privateKey: PrivateKey }
  /** Listen addresses, e.g. `/ip4/0.0.0.0/tcp/4001` or `/ip4/127.0.0.1/tcp/0`. */
  listen: string[]
  /** The private-network key in the libp2p pnet key format (text or its bytes). */
  networkKey: Uint8Array | string
  /** Discover peers on the LAN with mDNS. Default false. */
  mdns?: boolean
  /** mDNS query interval in ms; default 10 s. */
  mdnsIntervalMs?: number
  /** Multiaddrs with `/p2p/<peer id>` dialled at start and redialled with backoff. */
  bootstrap?: string[]
  /** Where the host logs its own decisions (dials, redials); libp2p internals log via `DEBUG=libp2p:*`. */
  logger: Logger
}

/**
 * Loads the peer's Ed25519 private key from `path`, creating it (mode 0600, owner-only
 * folder) when the file does not exist. The file holds the key in libp2p's protobuf
 * encoding. Creation is atomic: a crash never leaves a half-written key, and two processes
 * racing on the same file end up with the same key.
 *
 * @throws {InvalidPeerKeyError} the file exists but is not an Ed25519 key
 * @throws {InsecureKeyFileError} the file is readable by group or others
 */
export async function loadOrCreatePeerKey (path: string): Promise<PrivateKey> {
  const existing = await readSecretFile(path)
  if (existing !== undefined) return decodePeerKey(path, existing)
  const key = await generateKeyPair('Ed25519')
  const created = await writeSecretFileOnce(path, privateKeyToProtobuf(key))
  // Another process won the race: its key is the identity now.
  if (!created) return decodePeerKey(path, await readFile(path))
  return key
}

function decodePeerKey (path: string, bytes: Uint8Array): PrivateKey {
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new InvalidPeerKeyError(path, err instanceof Error ? err.message : String(err))
  }
  if (key.type !== 'Ed25519') throw new InvalidPeerKeyError(path, `expected an Ed25519 key, found ${key.type}`)
  return key
}

/** A fresh private-network key, as the text bytes of the libp2p pnet key format. */
export function generateNetworkKey (): Uint8Array {
  const out = new Uint8Array(NETWORK_KEY_TEXT_BYTES)
  generateKey(out)
  return out
}

/**
 * Reads and validates a private-network key file.
 *
 * @throws {MissingKeyFileError} there is no such file
 * @throws {InvalidNetworkKeyError} the file is not in the pnet key format
 * @throws {InsecureKeyFileError} the file is readable by group or others
 */
export async function loadNetworkKey (path: string): Promise<Uint8Array> {
  const bytes = await readSecretFile(path)
  if (bytes === undefined) throw new MissingKeyFileError(path)
  parseNetworkKey(bytes)
  return bytes
}

/**
 * Writes a fresh private-network key to `path` (mode 0600) and returns it; when the file
 * already exists, loads that one instead. For the first peer of a new mesh; every other
 * peer gets a copy of the file.
 */
export async function loadOrCreateNetworkKey (path: string): Promise<Uint8Array> {
  const existing = await readSecretFile(path)
  if (existing !== undefined) {
    parseNetworkKey(existing)
    return existing
  }
  const key = generateNetworkKey()
  if (await writeSecretFileOnce(path, key)) return key
  return await loadNetworkKey(path)
}

/**
 * Checks a network key (text or bytes) and returns it as bytes.
 *
 * @throws {InvalidNetworkKeyError}
 */
export function parseNetworkKey (key: Uint8Array | string): Uint8Array {
  const text = typeof key === 'string' ? key : new TextDecoder('utf-8', { fatal: false }).decode(key)
  const lines = text.split(/\r\n|\r|\n/)
  if (lines[0] !== NETWORK_KEY_HEADER) throw new InvalidNetworkKeyError(`first line must be ${NETWORK_KEY_HEADER}`)
  if (lines[1] !== NETWORK_KEY_ENCODING) throw new InvalidNetworkKeyError(`second line must be ${NETWORK_KEY_ENCODING}`)
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) throw new InvalidNetworkKeyError('third line must be 64 hex digits (32 bytes)')
  if (lines.slice(3).some((l) => l.trim() !== '')) throw new InvalidNetworkKeyError('unexpected text after the key')
  return typeof key === 'string' ? new TextEncoder().encode(key) : key
}

/** Reads a secret file, refusing one others can read; undefined when it does not exist. */
async function readSecretFile (path: string): Promise<Uint8Array | undefined> {
  let mode: number
  try {
    mode = (await stat(path)).mode
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if ((mode & 0o077) !== 0) throw new InsecureKeyFileError(path, mode)
  return new Uint8Array(await readFile(path))
}

/**
 * Creates `path` with `bytes` atomically (temp file, fsync, hard link) and mode 0600.
 * Returns false, writing nothing, when the file already exists.
 */
async function writeSecretFileOnce (path: string, bytes: Uint8Array): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: SECRET_DIR_MODE })
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`
  const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, SECRET_FILE_MODE)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await link(tmp, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    await unlink(tmp)
  }
}

/**
 * Creates and starts a printmesh host. The caller owns it and stops it with `host.stop()`.
 *
 * Discovery: mDNS (when `mdns`) and bootstrap (when `bootstrap` lists addresses) only report
 * peers; the {@link AutoDialer} service dials them (see there for the backoff).
 *
 * @throws {InvalidNetworkKeyError} `networkKey` is not a pnet key
 */
export async function createHost (opts: HostOptions): Promise<Host> {
  const psk = parseNetworkKey(opts.networkKey)
  const privateKey = 'privateKey' in opts.identity
    ? opts.identity.privateKey
    : await loadOrCreatePeerKey(join(opts.identity.dataDir, PEER_KEY_FILE))

  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (opts.mdns === true) peerDiscovery.push(mdns({ interval: opts.mdnsIntervalMs ?? DEFAULT_MDNS_INTERVAL_MS }))
  if (opts.bootstrap !== undefined && opts.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: opts.bootstrap }))

  const host = await createLibp2p<HostServices>({
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk, timeout: PNET_TIMEOUT_MS }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    connectionManager: {
      maxConnections: MAX_CONNECTIONS,
      maxParallelDials: MAX_PARALLEL_DIALS,
      dialTimeout: DIAL_TIMEOUT_MS,
      inboundConnectionThreshold: INBOUND_CONNECTION_THRESHOLD,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS
    },
    services: {
      identify: identify(),
      ping: ping(),
      // A peer alone on a topic (its partners offline) still publishes; anti-entropy catches the others up.
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }),
      autoDial: autoDialer({ logger: opts.logger })
    }
  })
  return host
}

/** Options of the {@link AutoDialer}. */
export interface AutoDialerInit {
  logger: Logger
}

/** What the {@link AutoDialer} needs from libp2p. */
export interface AutoDialerComponents {
  peerId: PeerId
  events: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>
  connectionManager: {
    openConnection (peer: PeerId, options?: AbortOptions): Promise<Connection>
    getConnections (peer?: PeerId): Connection[]
  }
}

/** Redial state of one discovered peer. */
interface Target {
  id: PeerId
  /** Failed dials (or short-lived connections) in a row. */
  failures: number
  timer?: ReturnType<typeof setTimeout>
  dialing: boolean
  /** When the current connection opened, to tell a healthy one from a flapping one. */
  connectedAt?: number
}

/**
 * Connects to every peer discovery reports (libp2p only reports them), and keeps them
 * connected:
 *
 * 1. On `peer:discovery` a peer we are not connected to is dialled at once (unless a dial or
 *    a scheduled redial for it is pending).
 * 2. A failed dial is retried after `REDIAL_BASE_MS · 2^(failures-1)`, capped at
 *    `REDIAL_MAX_MS`; after `REDIAL_MAX_ATTEMPTS` failures in a row the peer is forgotten
 *    until discovery reports it again (mDNS re-reports every query interval, bootstrap only
 *    at start — so a bootstrap peer is retried for ~6 minutes, then on the next restart).
 * 3. When a discovered peer disconnects, it is redialled with the same backoff; a connection
 *    that lived at least `STABLE_CONNECTION_MS` resets the failure count, so a peer that is
 *    refused right after connecting (e.g. revoked) is redialled ever more slowly, not in a loop.
 *
 * Starting twice and stopping without starting are safe; stop cancels every timer and dial.
 */
export class AutoDialer implements Startable {
  private readonly targets = new Map<string, Target>()
  private controller?: AbortController
  private readonly log: Logger

  constructor (private readonly components: AutoDialerComponents, init: AutoDialerInit) {
    this.log = init.logger.child({ component: 'autodial' })
  }

  readonly [Symbol.toStringTag] = 'printmesh:autodial'

  start (): void {
    if (this.controller !== undefined) return
    this.controller = new AbortController()
    this.components.events.addEventListener('peer:discovery', this.onDiscovery)
    this.components.events.addEventListener('peer:connect', this.onConnect)
    this.components.events.addEventListener('peer:disconnect', this.onDisconnect)
  }

  /** Stops dialling before libp2p closes its connections, so their closing schedules nothing. */
  beforeStop (): void {
    this.stop()
  }

  stop (): void {
    if (this.controller === undefined) return
    this.components.events.removeEventListener('peer:discovery', this.onDiscovery)
    this.components.events.removeEventListener('peer:connect', this.onConnect)
    this.components.events.removeEventListener('peer:disconnect', this.onDisconnect)
    this.controller.abort(new Error('auto-dialer stopped'))
    this.controller = undefined
    for (const t of this.targets.values()) clearTimeout(t.timer)
    this.targets.clear()
  }

  /** Peers discovery reported that are being kept connected (for diagnostics). */
  watched (): string[] {
    return [...this.targets.keys()]
  }

  private readonly onDiscovery = (evt: CustomEvent<PeerInfo>): void => {
    const id = evt.detail.id
    if (id.equals(this.components.peerId)) return
    const key = id.toString()
    let target = this.targets.get(key)
    if (target === undefined) {
      target = { id, failures: 0, dialing: false }
      this.targets.set(key, target)
    }
    if (target.dialing || target.timer !== undefined || this.isConnected(id)) return
    this.dial(target)
  }

  private readonly onConnect = (evt: CustomEvent<PeerId>): void => {
    const target = this.targets.get(evt.detail.toString())
    if (target !== undefined) target.connectedAt = Date.now()
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const target = this.targets.get(evt.detail.toString())
    if (target === undefined || this.controller === undefined) return
    const lived = target.connectedAt === undefined ? 0 : Date.now() - target.connectedAt
    target.connectedAt = undefined
    target.failures = lived >= STABLE_CONNECTION_MS ? 0 : target.failures + 1
    this.scheduleRedial(target)
  }

  private isConnected (id: PeerId): boolean {
    return this.components.connectionManager.getConnections(id).some((c) => c.status === 'open')
  }

  private dial (target: Target): void {
    const controller = this.controller
    if (controller === undefined) return
    target.dialing = true
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
    this.components.connectionManager.openConnection(target.id, { signal }).then(() => {
      target.dialing = false
      this.log.debug({ remote: target.id.toString() }, 'dialled discovered peer')
    }, (err: unknown) => {
      target.dialing = false
      if (controller.signal.aborted) return // stopping: the failure is ours
      target.failures++
      this.log.debug({ remote: target.id.toString(), failures: target.failures, err }, 'dial to discovered peer failed')
      this.scheduleRedial(target)
    })
  }

  private scheduleRedial (target: Target): void {
    if (this.controller === undefined || target.timer !== undefined) return
    if (target.failures >= REDIAL_MAX_ATTEMPTS) {
      this.log.info({ remote: target.id.toString(), failures: target.failures }, 'giving up on peer until it is discovered again')
      this.targets.delete(target.id.toString())
      return
    }
    const delay = Math.min(REDIAL_MAX_MS, REDIAL_BASE_MS * 2 ** Math.max(0, target.failures - 1))
    target.timer = setTimeout(() => {
      target.timer = undefined
      if (this.targets.get(target.id.toString()) !== target) return
      if (target.dialing || this.isConnected(target.id)) return
      this.dial(target)
    }, delay)
    // A pending redial must not keep a stopping process alive.
    target.timer.unref()
  }
}

/** The auto-dialer as a libp2p service factory. */
export function autoDialer (init: AutoDialerInit): (components: AutoDialerComponents) => AutoDialer {
  return (components) => new AutoDialer(components, init)
}
