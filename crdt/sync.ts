/**
 * The sync engine: replicates every document a peer holds with every connected peer that
 * may read it. Wire format in crdt/PROTOCOL.md. Invariants, enforced in this file:
 *   1. On connect, and every anti-entropy period, each side sends HELLO: per document, its
 *      log vector (y-protocols' step 1, with signed-log sequence numbers in place of Yjs
 *      clocks, so deletions are never missed). The other side answers with the envelopes
 *      the vector lacks (step 2). Nothing gossip missed stays missing.
 *   2. Every envelope from a peer is checked where it enters, in {@link SyncEngine.receive}:
 *      well-formed, a known document name, `membership.canWrite(author, doc)`, a valid
 *      signature by the author. Anything else is rejected, counted, logged once per peer and
 *      reason, and never applied, persisted or relayed.
 *   3. An accepted envelope is relayed, unchanged, to every other connected peer that may
 *      read the document: never back to the peer it came from (relay makes a line A–B–C
 *      carry A's changes to C).
 *   4. Send failures are not errors: the next anti-entropy round repairs them.
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { Logger } from 'pino'
import type { DocStore, LogVector, Origin } from './store.ts'
import { open, MalformedEnvelopeError, type Envelope, type Verifier } from './envelope.ts'
import { parseDocName, licenseDoc, type DocName } from './names.ts'
import type { Membership } from './membership.ts'

/** Protocol version carried in every message; a peer speaking another one is ignored. */
export const SYNC_VERSION = 1
const MSG_HELLO = 0
const MSG_ENVELOPES = 1
/** Default anti-entropy period: a missed update is repaired within this time. */
export const DEFAULT_ANTI_ENTROPY_MS = 15_000
/** Envelopes are batched into messages of at most this size. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024
/** After the license document changes, an anti-entropy round follows this soon (batching bursts of changes). */
const MEMBERSHIP_RESYNC_MS = 200
/** Most documents one HELLO may list; bounds what a peer can make us compute. */
const MAX_HELLO_DOCS = 100_000

/** The part of a transport the engine needs (transports/types.ts SyncTransport fits it). */
export interface SyncLink {
  readonly self: string
  peers (): string[]
  send (peer: string, data: Uint8Array): Promise<void>
  on (event: 'peer:connect' | 'peer:disconnect', fn: (peer: string) => void): unknown
  on (event: 'message', fn: (peer: string, data: Uint8Array) => void): unknown
  off (event: 'peer:connect' | 'peer:disconnect', fn: (peer: string) => void): unknown
  off (event: 'message', fn: (peer: string, data: Uint8Array) => void): unknown
}

export type RejectReason = 'malformed' | 'unknown-document' | 'not-authorized' | 'bad-signature' | 'apply-failed'

export interface SyncStats {
  envelopesIn: number
  envelopesOut: number
  bytesIn: number
  bytesOut: number
  rejected: Record<RejectReason, number>
}

export interface DocSyncState {
  doc: string
  /** Per connected peer: `in-sync`, `behind` (we lack something they have), `ahead` (they lack something), `unknown`. */
  peers: Record<string, 'in-sync' | 'behind' | 'ahead' | 'unknown'>
  /** How many changes this peer holds of it (the sum of its log vector): of a document one peer writes, a peer holds all another does once its count is as high (with several writers, equal sums can hide different changes). */
  changes: number
}

export interface SyncInit {
  antiEntropyMs?: number
  /** Documents outside retention are neither sent nor accepted (default: all are kept). */
  retained?: (doc: string) => boolean
  /** Timer for the resync after a license change (default setTimeout); a simulator passes its virtual clock. */
  schedule?: (fn: () => void, ms: number) => void
  /** Told how long each batch of a peer's envelopes took to check and store (for metrics). */
  onBatchApplied?: (seconds: number) => void
}
export interface SyncComponents {
  store: DocStore
  link: SyncLink
  membership: Membership
  verify: Verifier
  logger: Logger
}

export class SyncEngine {
  private readonly stats: SyncStats = {
    envelopesIn: 0, envelopesOut: 0, bytesIn: 0, bytesOut: 0,
    rejected: { malformed: 0, 'unknown-document': 0, 'not-authorized': 0, 'bad-signature': 0, 'apply-failed': 0 }
  }

  /** The last vector each peer announced per document. */
  private readonly theirs = new Map<string, Map<string, LogVector>>()
  /** (peer, reason) pairs already logged. */
  private readonly logged = new Set<string>()
  /** Per peer, the chain of inbound work: messages from one peer are handled in order. */
  private readonly inbound = new Map<string, Promise<void>>()
  private timer?: NodeJS.Timeout
  private soon?: NodeJS.Timeout
  private resyncPending = false
  private started = false
  private readonly log: Logger

  constructor (private readonly init: SyncInit, private readonly c: SyncComponents) {
    this.log = c.logger.child({ service: 'sync' })
  }

  private readonly onConnect = (peer: string): void => { this.sendHello(peer) }
  private readonly onDisconnect = (peer: string): void => { this.theirs.delete(peer); this.inbound.delete(peer) }
  private readonly onMessage = (peer: string, data: Uint8Array): void => {
    const prev = this.inbound.get(peer) ?? Promise.resolve()
    const next = prev.then(async () => await this.handle(peer, data)).catch((err: unknown) => {
      this.log.error({ err, peer }, 'sync message handling failed')
    })
    this.inbound.set(peer, next)
  }

  private readonly onEntry = (name: DocName, bytes: Uint8Array, _e: Envelope, origin: Origin): void => {
    const from = origin.kind === 'peer' ? origin.peer : undefined
    // new certificates may make envelopes rejected earlier acceptable: ask for them again
    if (name === licenseDoc()) this.scheduleAntiEntropy()
    for (const peer of this.c.link.peers()) {
      if (peer === from || !this.c.membership.canRead(peer, name)) continue
      this.sendEnvelopes(peer, [bytes])
    }
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.c.link.on('peer:connect', this.onConnect)
    this.c.link.on('peer:disconnect', this.onDisconnect)
    this.c.link.on('message', this.onMessage)
    this.c.store.on('entry', this.onEntry)
    for (const peer of this.c.link.peers()) this.sendHello(peer)
    this.timer = setInterval(() => this.antiEntropy(), this.init.antiEntropyMs ?? DEFAULT_ANTI_ENTROPY_MS)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearInterval(this.timer)
    clearTimeout(this.soon)
    this.soon = undefined
    this.resyncPending = false
    this.c.link.off('peer:connect', this.onConnect)
    this.c.link.off('peer:disconnect', this.onDisconnect)
    this.c.link.off('message', this.onMessage)
    this.c.store.off('entry', this.onEntry)
    await Promise.allSettled([...this.inbound.values()])
  }

  private scheduleAntiEntropy (): void {
    if (this.resyncPending) return
    this.resyncPending = true
    const run = (): void => {
      this.resyncPending = false
      if (this.started) this.antiEntropy()
    }
    if (this.init.schedule !== undefined) { this.init.schedule(run, MEMBERSHIP_RESYNC_MS); return }
    this.soon = setTimeout(run, MEMBERSHIP_RESYNC_MS)
    this.soon.unref()
  }

  /** Sends HELLO to every connected peer now (also runs on a timer). */
  antiEntropy (): void {
    // a document a failed write left unstored is stored whole first (its envelope then goes out as any)
    void this.c.store.storeUnstored().catch((err: unknown) => this.c.logger.error({ err }, 'could not store the documents a failed write left unstored'))
    for (const peer of this.c.link.peers()) this.sendHello(peer)
  }

  private keeps (doc: string): boolean {
    return this.init.retained?.(doc) ?? true
  }

  getStats (): SyncStats {
    return { ...this.stats, rejected: { ...this.stats.rejected } }
  }

  /** Per document, how this peer compares with each connected peer's last HELLO. */
  docStates (): DocSyncState[] {
    const out: DocSyncState[] = []
    const names = new Set<string>(this.c.store.openNames())
    for (const docs of this.theirs.values()) for (const n of docs.keys()) names.add(n)
    for (const doc of [...names].sort()) {
      const mine = this.c.store.vector(doc as DocName)
      const peers: DocSyncState['peers'] = {}
      for (const peer of this.c.link.peers()) {
        if (!this.c.membership.canRead(peer, doc)) continue
        const theirs = this.theirs.get(peer)?.get(doc)
        if (theirs === undefined) { peers[peer] = this.theirs.has(peer) ? (mine.size > 0 ? 'ahead' : 'in-sync') : 'unknown'; continue }
        const behind = [...theirs].some(([a, s]) => (mine.get(a) ?? 0) < s)
        const ahead = [...mine].some(([a, s]) => (theirs.get(a) ?? 0) < s)
        peers[peer] = behind ? 'behind' : ahead ? 'ahead' : 'in-sync'
      }
      let changes = 0
      for (const clock of mine.values()) changes += clock
      out.push({ doc, peers, changes })
    }
    return out
  }

  // ---- sending -------------------------------------------------------------

  private sendHello (peer: string): void {
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, SYNC_VERSION)
    encoding.writeVarUint(enc, MSG_HELLO)
    const names = this.c.store.openNames().filter((n) => this.c.membership.canRead(peer, n))
    encoding.writeVarUint(enc, names.length)
    for (const name of names) {
      encoding.writeVarString(enc, name)
      const vector = this.c.store.vector(name)
      encoding.writeVarUint(enc, vector.size)
      for (const [author, seq] of vector) {
        encoding.writeVarString(enc, author)
        encoding.writeVarUint(enc, seq)
      }
    }
    this.send(peer, encoding.toUint8Array(enc))
  }

  private sendEnvelopes (peer: string, envelopes: Uint8Array[]): void {
    let batch: Uint8Array[] = []
    let size = 0
    const flush = (): void => {
      if (batch.length === 0) return
      const enc = encoding.createEncoder()
      encoding.writeVarUint(enc, SYNC_VERSION)
      encoding.writeVarUint(enc, MSG_ENVELOPES)
      encoding.writeVarUint(enc, batch.length)
      for (const e of batch) encoding.writeVarUint8Array(enc, e)
      this.stats.envelopesOut += batch.length
      this.send(peer, encoding.toUint8Array(enc))
      batch = []
      size = 0
    }
    for (const e of envelopes) {
      if (size + e.length > MAX_BATCH_BYTES) flush()
      batch.push(e)
      size += e.length
    }
    flush()
  }

  private send (peer: string, data: Uint8Array): void {
    this.stats.bytesOut += data.length
    this.c.link.send(peer, data).catch((err: unknown) => {
      // a dropped message is repaired by the next anti-entropy round
      this.log.debug({ peer, err: (err as Error).message }, 'sync send failed')
    })
  }

  // ---- receiving ------------------------------------------------------------

  private reject (peer: string, reason: RejectReason, detail: string): void {
    this.stats.rejected[reason]++
    const key = `${peer}\u0000${reason}`
    if (this.logged.has(key)) return
    this.logged.add(key)
    this.log.warn({ peer, reason, detail }, 'rejected an update from a peer (further ones from it for this reason are only counted)')
  }

  private async handle (peer: string, data: Uint8Array): Promise<void> {
    this.stats.bytesIn += data.length
    let dec: decoding.Decoder
    let type: number
    try {
      dec = decoding.createDecoder(data)
      const version = decoding.readVarUint(dec)
      if (version !== SYNC_VERSION) { this.reject(peer, 'malformed', `sync version ${version}`); return }
      type = decoding.readVarUint(dec)
    } catch (err) {
      this.reject(peer, 'malformed', (err as Error).message)
      return
    }
    if (type === MSG_HELLO) await this.receiveHello(peer, dec)
    else if (type === MSG_ENVELOPES) await this.receiveEnvelopes(peer, dec)
    else this.reject(peer, 'malformed', `message type ${type}`)
  }

  private async receiveHello (peer: string, dec: decoding.Decoder): Promise<void> {
    const announced = new Map<string, LogVector>()
    try {
      const count = decoding.readVarUint(dec)
      if (count > MAX_HELLO_DOCS) throw new Error(`HELLO lists ${count} documents`)
      for (let i = 0; i < count; i++) {
        const doc = decoding.readVarString(dec)
        const n = decoding.readVarUint(dec)
        const vector: LogVector = new Map()
        for (let j = 0; j < n; j++) vector.set(decoding.readVarString(dec), decoding.readVarUint(dec))
        announced.set(doc, vector)
      }
    } catch (err) {
      this.reject(peer, 'malformed', `HELLO: ${(err as Error).message}`)
      return
    }
    this.theirs.set(peer, announced)
    const missing: Uint8Array[] = []
    const names = new Set<string>(this.c.store.openNames())
    for (const name of names) {
      if (!this.c.membership.canRead(peer, name) || !this.keeps(name)) continue
      missing.push(...await this.c.store.missingFor(name as DocName, announced.get(name) ?? new Map()))
    }
    if (missing.length > 0) this.sendEnvelopes(peer, missing)
  }

  private async receiveEnvelopes (peer: string, dec: decoding.Decoder): Promise<void> {
    let list: Uint8Array[]
    try {
      const count = decoding.readVarUint(dec)
      list = []
      for (let i = 0; i < count; i++) list.push(decoding.readVarUint8Array(dec))
    } catch (err) {
      this.reject(peer, 'malformed', `ENVELOPES: ${(err as Error).message}`)
      return
    }
    const started = performance.now()
    for (const bytes of list) await this.receive(peer, bytes)
    this.init.onBatchApplied?.((performance.now() - started) / 1000)
  }

  /** The one entry point of peer data into the store. */
  private async receive (peer: string, bytes: Uint8Array): Promise<void> {
    this.stats.envelopesIn++
    let envelope: Envelope
    let signed: Uint8Array
    try {
      ({ envelope, signed } = open(bytes))
    } catch (err) {
      if (!(err instanceof MalformedEnvelopeError)) throw err
      this.reject(peer, 'malformed', err.message)
      return
    }
    if (parseDocName(envelope.doc) === undefined) { this.reject(peer, 'unknown-document', envelope.doc); return }
    if (!this.keeps(envelope.doc)) return // past retention: a lagging peer's old news, not an error
    // a duplicate (relays flood) needs no signature check: it will not be applied again
    if (this.c.store.has(envelope)) return
    if (!this.c.membership.canWrite(envelope.author, envelope.doc)) {
      this.reject(peer, 'not-authorized', `${envelope.author} may not write ${envelope.doc}`)
      return
    }
    if (!await this.c.verify(envelope.author, signed, envelope.signature)) {
      this.reject(peer, 'bad-signature', `${envelope.doc} #${envelope.seq} by ${envelope.author}`)
      return
    }
    try {
      await this.c.store.applyEnvelope(bytes, envelope, { kind: 'peer', peer })
    } catch (err) {
      this.reject(peer, 'apply-failed', (err as Error).message)
    }
  }
}
