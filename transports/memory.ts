/**
 * An in-memory {@link SyncTransport} for unit tests and chaos simulations: every peer lives
 * in one process, on one {@link MemoryNetwork}, which decides who is linked to whom and what
 * happens to messages on the way.
 *
 * With no faults it keeps the transport contract exactly (the shared suite in
 * test/helpers/transport-suite.ts checks it): admission on both sides before any message,
 * messages per link in order and at most once, delivered asynchronously as copies.
 * With faults on ({@link LinkFaults}) messages may be lost, duplicated, reordered and delayed,
 * which the sync layer above must repair. Given a seeded `random` and a deterministic
 * `schedule` (a virtual clock), a run is reproducible message for message.
 *
 * Invariants:
 * 1. A message is only queued on a link that both sides admitted, and only delivered while
 *    that same link is up: when it is cut, whatever is in flight on it is dropped.
 * 2. Without `reorder`, a link delivers each direction's messages in send order (latency
 *    jitter delays later messages rather than overtaking earlier ones).
 * 3. The only sources of nondeterminism are `random` and `schedule`.
 */
import { EventEmitter } from 'node:events'
import {
  MAX_MESSAGE_BYTES, MessageTooLargeError, PeerNotConnectedError,
  type Admission, type SyncTransport, type TransportEvents
} from './types.ts'

/** What can go wrong with messages on a link. All off by default. */
export interface LinkFaults {
  /** One-way delay per message: fixed, or uniform in `[min, max]` ms. Default 0. */
  latencyMs?: number | [min: number, max: number]
  /** Probability (0–1) that a message silently disappears. Default 0. */
  lossRate?: number
  /** Probability (0–1) that a message is delivered twice. Default 0. */
  duplicateRate?: number
  /** Deliver the messages that are due at the same time in random order, not send order. */
  reorder?: boolean
}

/** Runs `fn` after `ms` milliseconds; a simulator passes its virtual clock. */
export type Schedule = (fn: () => void, ms: number) => void

/** Options of a {@link MemoryNetwork}. */
export interface MemoryNetworkInit {
  /** Uniform [0, 1) source for every fault decision; pass {@link seededRandom} for reproducible runs. Default Math.random. */
  random?: () => number
  /** Faults on every link that has none of its own (see {@link MemoryNetwork.setFaults}). */
  faults?: LinkFaults
  /** Timer used for every delivery. Default setTimeout. */
  schedule?: Schedule
}

/** connect() was refused by one side's {@link Admission}. */
export class AdmissionRefusedError extends Error {
  constructor (readonly refusedBy: string, readonly peer: string) {
    super(`${refusedBy} refused admission to ${peer}`)
    this.name = 'AdmissionRefusedError'
  }
}

/** connect() could not reach a peer: not created, not started, or across a partition. */
export class PeerUnreachableError extends Error {
  constructor (readonly peer: string, readonly reason: string) {
    super(`peer ${peer} is unreachable: ${reason}`)
    this.name = 'PeerUnreachableError'
  }
}

/** A second live transport with an existing peer name. */
export class PeerExistsError extends Error {
  constructor (readonly peer: string) {
    super(`a transport for peer ${peer} already exists on this network`)
    this.name = 'PeerExistsError'
  }
}

const defaultSchedule: Schedule = (fn, ms) => { setTimeout(fn, ms) }

/**
 * A small, fast, seedable PRNG (mulberry32) for reproducible fault decisions.
 * Not for anything security related.
 */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function checkFaults (faults: LinkFaults): LinkFaults {
  const rate = (name: string, v: number | undefined): void => {
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${v}`)
  }
  rate('lossRate', faults.lossRate)
  rate('duplicateRate', faults.duplicateRate)
  const latency = faults.latencyMs
  const [min, max] = Array.isArray(latency) ? latency : [latency ?? 0, latency ?? 0]
  if (!(Number.isFinite(min) && Number.isFinite(max) && min >= 0 && min <= max)) {
    throw new RangeError(`latencyMs must be a finite delay >= 0 or a range [min, max] with min <= max, got ${JSON.stringify(latency)}`)
  }
  const copy: LinkFaults = { ...faults }
  if (Array.isArray(latency)) copy.latencyMs = [min, max]
  return copy
}

/** A message on its way: ready once its latency has elapsed. */
interface InFlight { data: Uint8Array, ready: boolean }

/** One direction of a link. */
class Channel {
  readonly queue: InFlight[] = []
  drainScheduled = false
  constructor (readonly from: string, readonly to: string) {}
}

/** An admitted connection between two peers; cut once, never reopened (a reconnect is a new Link). */
class Link {
  up = true
  readonly channels: Map<string, Channel>
  constructor (a: string, b: string) {
    this.channels = new Map([[a, new Channel(a, b)], [b, new Channel(b, a)]])
  }
}

function pairKey (a: string, b: string): string {
  return JSON.stringify(a < b ? [a, b] : [b, a])
}

/**
 * The in-memory network: creates {@link MemoryTransport}s, dials between them, and
 * injects faults and partitions.
 */
export class MemoryNetwork {
  private readonly random: () => number
  private readonly schedule: Schedule
  private defaultFaults: LinkFaults
  private readonly pairFaults = new Map<string, LinkFaults>()
  private readonly transports = new Map<string, MemoryTransport>()
  private readonly links = new Map<string, Link>()
  private readonly dialing = new Map<string, Promise<void>>()
  private partitions: Array<[Set<string>, Set<string>]> = []

  constructor (init: MemoryNetworkInit = {}) {
    this.random = init.random ?? Math.random
    this.schedule = init.schedule ?? defaultSchedule
    this.defaultFaults = checkFaults(init.faults ?? {})
  }

  /**
   * A transport for peer `peer` (also its `self`). A name may be reused once its previous
   * transport is stopped (a restarted process); the old instance can then no longer start.
   */
  createTransport (peer: string, admission: Admission): MemoryTransport {
    const existing = this.transports.get(peer)
    if (existing?.started === true) throw new PeerExistsError(peer)
    const transport = new MemoryTransport(this, peer, admission)
    this.transports.set(peer, transport)
    return transport
  }

  /**
   * Dials from `a` to `b`: both present credentials, both admit (concurrently). Resolves
   * after `peer:connect` was emitted on both sides (at `a` first); already linked resolves
   * at once, a dial already under way is joined. Rejects {@link PeerUnreachableError} when
   * either is missing, stopped or across a partition, {@link AdmissionRefusedError} when
   * either side refuses (then neither side sees `peer:connect`), and with an admission's
   * own error if `admit()` throws.
   */
  async connect (a: string, b: string): Promise<void> {
    if (a === b) throw new PeerUnreachableError(b, 'a peer cannot dial itself')
    const key = pairKey(a, b)
    if (this.links.has(key)) return
    const pending = this.dialing.get(key)
    if (pending !== undefined) return await pending
    const dial = this.dial(a, b).finally(() => this.dialing.delete(key))
    this.dialing.set(key, dial)
    await dial
  }

  /** Cuts the link between `a` and `b`, emitting `peer:disconnect` on both sides; no-op if not linked. */
  disconnect (a: string, b: string): void {
    const key = pairKey(a, b)
    const link = this.links.get(key)
    if (link === undefined) return
    this.links.delete(key)
    link.up = false
    for (const channel of link.channels.values()) channel.queue.length = 0
    // Both sides learn of it; a throwing listener on one side must not hide it from the other.
    try {
      this.transports.get(a)?.emit('peer:disconnect', b)
    } finally {
      this.transports.get(b)?.emit('peer:disconnect', a)
    }
  }

  /**
   * Cuts every link between a peer of `groupA` and one of `groupB` (emitting
   * `peer:disconnect`) and refuses `connect()` across them until {@link heal}.
   */
  partition (groupA: string[], groupB: string[]): void {
    const a = new Set(groupA)
    const b = new Set(groupB)
    this.partitions.push([a, b])
    for (const x of a) for (const y of b) this.disconnect(x, y)
  }

  /** Lifts every partition. Does not reconnect anyone: the caller dials again, like a real dialer. */
  heal (): void {
    this.partitions = []
  }

  /**
   * Sets the faults of the link between `between[0]` and `between[1]` (both directions), or
   * without `between` the network-wide default used by links with no faults of their own.
   * Replaces, not merges: `setFaults({})` turns everything off. Applies to messages sent
   * from now on; messages already in flight keep their fate.
   */
  setFaults (faults: LinkFaults, between?: [string, string]): void {
    const checked = checkFaults(faults)
    if (between === undefined) this.defaultFaults = checked
    else this.pairFaults.set(pairKey(between[0], between[1]), checked)
  }

  /** Whether `a` and `b` have an admitted, open link. */
  linked (a: string, b: string): boolean {
    return this.links.has(pairKey(a, b))
  }

  /** Whether `a` and `b` are on opposite sides of a partition. */
  partitioned (a: string, b: string): boolean {
    return this.partitions.some(([x, y]) => (x.has(a) && y.has(b)) || (x.has(b) && y.has(a)))
  }

  /** @internal Peers linked to `peer`. */
  peersOf (peer: string): string[] {
    const out: string[] = []
    for (const [key, link] of this.links) {
      if (!link.up) continue
      const [x, y] = JSON.parse(key) as [string, string]
      if (x === peer) out.push(y)
      else if (y === peer) out.push(x)
    }
    return out
  }

  /** @internal Whether `transport` is the one registered under its name. */
  isCurrent (transport: MemoryTransport): boolean {
    return this.transports.get(transport.self) === transport
  }

  /** @internal Takes one message (already copied) from `from` to `to`, applying the link's faults. */
  enqueue (from: string, to: string, data: Uint8Array): void {
    const link = this.links.get(pairKey(from, to))
    if (link === undefined) throw new PeerNotConnectedError(to)
    const channel = link.channels.get(from)
    if (channel === undefined) throw new Error(`link ${from}–${to} has no channel from ${from}`)
    const faults = this.pairFaults.get(pairKey(from, to)) ?? this.defaultFaults
    const lossRate = faults.lossRate ?? 0
    const duplicateRate = faults.duplicateRate ?? 0
    if (lossRate > 0 && this.random() < lossRate) return
    const copies = duplicateRate > 0 && this.random() < duplicateRate ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const message: InFlight = { data: i === 0 ? data : Uint8Array.from(data), ready: false }
      channel.queue.push(message)
      const delay = this.latency(faults)
      if (delay === 0) {
        message.ready = true
        this.scheduleDrain(link, channel, faults.reorder === true)
      } else {
        this.schedule(() => {
          message.ready = true
          this.scheduleDrain(link, channel, faults.reorder === true)
        }, delay)
      }
    }
  }

  private latency (faults: LinkFaults): number {
    const latency = faults.latencyMs ?? 0
    if (!Array.isArray(latency)) return latency
    const [min, max] = latency
    return min === max ? min : min + this.random() * (max - min)
  }

  /**
   * Delivery happens in a separate turn after messages become ready, so that everything due
   * at the same moment is delivered together: in send order, or shuffled with `reorder`.
   */
  private scheduleDrain (link: Link, channel: Channel, reorder: boolean): void {
    if (!link.up || channel.drainScheduled) return
    channel.drainScheduled = true
    this.schedule(() => {
      channel.drainScheduled = false
      this.drain(link, channel, reorder)
    }, 0)
  }

  private drain (link: Link, channel: Channel, reorder: boolean): void {
    if (!link.up) return
    let due: InFlight[]
    if (reorder) {
      due = channel.queue.filter((m) => m.ready)
      for (let i = due.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1))
        const swap = due[i]; due[i] = due[j]; due[j] = swap
      }
      const remaining = channel.queue.filter((m) => !m.ready)
      channel.queue.length = 0
      channel.queue.push(...remaining)
    } else {
      let n = 0
      while (n < channel.queue.length && channel.queue[n].ready) n++
      due = channel.queue.splice(0, n)
    }
    const receiver = this.transports.get(channel.to)
    for (let i = 0; i < due.length; i++) {
      if (!link.up || receiver === undefined) return
      try {
        receiver.emit('message', channel.from, due[i].data)
      } catch (err) {
        // The listener's error belongs to whoever runs the schedule; what is still due goes
        // back to the front of the queue and is delivered in another turn.
        channel.queue.unshift(...due.slice(i + 1))
        this.scheduleDrain(link, channel, reorder)
        throw err
      }
    }
  }

  private async dial (a: string, b: string): Promise<void> {
    const ta = this.reachable(a, b)
    const tb = this.reachable(b, a)
    const credA = Uint8Array.from(ta.admission.credentials())
    const credB = Uint8Array.from(tb.admission.credentials())
    const [bAdmitsA, aAdmitsB] = await Promise.all([tb.admission.admit(a, credA), ta.admission.admit(b, credB)])
    if (!bAdmitsA) throw new AdmissionRefusedError(b, a)
    if (!aAdmitsB) throw new AdmissionRefusedError(a, b)
    // Admission took time: the world may have changed meanwhile.
    if (this.reachable(a, b) !== ta || this.reachable(b, a) !== tb) {
      throw new PeerUnreachableError(b, 'a peer was stopped or replaced during admission')
    }
    const key = pairKey(a, b)
    if (this.links.has(key)) return
    this.links.set(key, new Link(a, b))
    try {
      ta.emit('peer:connect', b)
    } finally {
      if (this.links.has(key)) tb.emit('peer:connect', a)
    }
  }

  private reachable (peer: string, other: string): MemoryTransport {
    const t = this.transports.get(peer)
    if (t === undefined) throw new PeerUnreachableError(peer, 'no such peer on this network')
    if (!t.started) throw new PeerUnreachableError(peer, 'not started')
    if (this.partitioned(peer, other)) throw new PeerUnreachableError(peer, `partitioned from ${other}`)
    return t
  }
}

/** One peer's transport on a {@link MemoryNetwork}; its `self` is the name it was created with. */
export class MemoryTransport extends EventEmitter<TransportEvents> implements SyncTransport {
  private running = false

  /** Use {@link MemoryNetwork.createTransport}. */
  constructor (private readonly network: MemoryNetwork, readonly self: string, readonly admission: Admission) {
    super()
  }

  /** Whether the transport is started (dialable). */
  get started (): boolean { return this.running }

  async start (): Promise<void> {
    if (this.running) return
    if (!this.network.isCurrent(this)) throw new PeerExistsError(this.self)
    this.running = true
  }

  async stop (): Promise<void> {
    this.halt()
  }

  /** Cuts every link at once, synchronously, as a killed process does (`stop` does the same). */
  halt (): void {
    if (!this.running) return
    this.running = false
    for (const peer of this.network.peersOf(this.self)) this.network.disconnect(this.self, peer)
  }

  peers (): string[] {
    if (!this.running) return []
    return this.network.peersOf(this.self)
  }

  async send (peer: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (data.byteLength > MAX_MESSAGE_BYTES) throw new MessageTooLargeError(data.byteLength)
    if (!this.running || !this.network.linked(this.self, peer)) throw new PeerNotConnectedError(peer)
    // Copies exactly the view's bytes; the receiver never shares the sender's buffer.
    this.network.enqueue(this.self, peer, Uint8Array.from(data))
  }

  async disconnect (peer: string): Promise<void> {
    this.network.disconnect(this.self, peer)
  }
}
