/**
 * Peer exchange over gossipsub: every peer announces its listen addresses on one topic, and
 * dials announced peers it is not connected to. Sites of one mesh thus link directly (not
 * only through central), so the mesh keeps working when central, or any single peer, is
 * down. Gossipsub signs every message with the sender's key (StrictSign), so an
 * announcement cannot name someone else; admission still decides whether a dialled peer may
 * sync.
 *
 * Message: UTF-8 JSON `{ "addrs": [multiaddr, …] }` on topic {@link PEER_EXCHANGE_TOPIC}.
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { Host } from './host.ts'

export const PEER_EXCHANGE_TOPIC = '/printmesh/peers/1.0.0'
/** Default announcement period: a new peer is linked to everyone within about this long. */
export const DEFAULT_ANNOUNCE_MS = 10_000
/** Announcements carry a handful of addresses; anything bigger is not ours. */
const MAX_ANNOUNCEMENT_BYTES = 4096
/** A peer we failed to dial is not tried again from announcements for this many periods. */
const REDIAL_BACKOFF_PERIODS = 3

export interface PeerExchangeInit {
  host: Host
  /** Dials a peer through the sync transport, so admission runs. */
  dial: (addrs: Multiaddr[]) => Promise<unknown>
  /** Peers not to dial (the operator's block list, revoked peers). */
  skip: (peer: string) => boolean
  connected: (peer: string) => boolean
  logger: Logger
  announceMs?: number
}

export class PeerExchange {
  private timer?: NodeJS.Timeout
  private readonly failedAt = new Map<string, number>()
  private started = false

  constructor (private readonly init: PeerExchangeInit) {}

  private readonly onMessage = (evt: CustomEvent<{ topic: string, data: Uint8Array, from?: { toString: () => string } }>): void => {
    const { topic, data, from } = evt.detail
    if (topic !== PEER_EXCHANGE_TOPIC || from === undefined || data.byteLength > MAX_ANNOUNCEMENT_BYTES) return
    const peer = from.toString()
    if (peer === this.init.host.peerId.toString() || this.init.connected(peer) || this.init.skip(peer)) return
    const failed = this.failedAt.get(peer)
    if (failed !== undefined && Date.now() - failed < REDIAL_BACKOFF_PERIODS * (this.init.announceMs ?? DEFAULT_ANNOUNCE_MS)) return
    let addrs: Multiaddr[]
    try {
      const parsed = JSON.parse(new TextDecoder().decode(data)) as { addrs?: unknown }
      if (!Array.isArray(parsed.addrs)) return
      addrs = parsed.addrs.filter((a): a is string => typeof a === 'string').map((a) => multiaddr(a))
        .filter((a) => a.getComponents().some((c) => c.name === 'p2p' && c.value === peer))
    } catch (err) {
      this.init.logger.debug({ peer, err: (err as Error).message }, 'ignored a malformed peer announcement')
      return
    }
    if (addrs.length === 0) return
    this.init.dial(addrs).then(() => this.failedAt.delete(peer), (err: unknown) => {
      this.failedAt.set(peer, Date.now())
      this.init.logger.debug({ peer, err: (err as Error).message }, 'could not dial an announced peer')
    })
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const pubsub = this.init.host.services.pubsub
    pubsub.addEventListener('message', this.onMessage as unknown as EventListener)
    pubsub.subscribe(PEER_EXCHANGE_TOPIC)
    this.timer = setInterval(() => { void this.announce() }, this.init.announceMs ?? DEFAULT_ANNOUNCE_MS)
    this.timer.unref()
    void this.announce()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    const pubsub = this.init.host.services.pubsub
    pubsub.removeEventListener('message', this.onMessage as unknown as EventListener)
    pubsub.unsubscribe(PEER_EXCHANGE_TOPIC)
  }

  /** Publishes this peer's addresses now. Never throws: announcing is best effort. */
  async announce (): Promise<void> {
    const addrs = this.init.host.getMultiaddrs().map(String)
    if (addrs.length === 0) return
    try {
      await this.init.host.services.pubsub.publish(PEER_EXCHANGE_TOPIC, new TextEncoder().encode(JSON.stringify({ addrs })))
    } catch (err) {
      // no subscribed peer yet (or shutting down): the next period tries again
      this.init.logger.debug({ err: (err as Error).message }, 'peer announcement not sent')
    }
  }
}
