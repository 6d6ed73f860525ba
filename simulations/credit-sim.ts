/**
 * Credit as escrow in the chaos simulator (issue 20 items 4 and 5; `simulate({ credit: true })`,
 * `npm run sim -- --credit`): the workload's credit side, the share requests' wire, and
 * invariant 5 with the availability figure.
 *
 * - **Set-up**: central writes a price list (mono and colour per page) and an enforced credit
 *   policy (at zero: refuse or mono-only, seeded, per site too); the directory gives every user
 *   a home site (simulator.ts writes it); every user is topped up at central.
 * - **Peers**: every peer (central too) runs node/credit.ts's `CreditService`, built like the
 *   role's own (`creditService`, the service's real-time pass timer off: passes are workload
 *   steps), attached to one {@link MemoryEscrowHub} whose requests and answers travel on the
 *   virtual clock with the link's faults (latency, loss, duplication) and reach only linked,
 *   unpartitioned, live peers.
 * - **Workload** (its own generator, so the run's other choices are those of a run without
 *   credit): top-ups at central or at a site now and then (seeded amounts, some small, so
 *   refusals happen); a terminal takes part of its site's share when a user releases there
 *   (`prefetch`, as a panel login does, in the background); every sweep runs the sweeping
 *   peer's `pass()` and central's (central hands credit on to home sites; leftovers settled).
 *   Once per run a terminal writes a mint into its own document (a forged top-up: it must
 *   count nowhere).
 * - **Invariant 5** (after every step and fault): from every peer's *own* escrow document (the
 *   ground truth of what it wrote; for a peer that is down, the union of the copies of its
 *   gives and mints others hold), per user, every live peer's true share — what it minted (a
 *   site or central only) plus what anyone gave it, less what it gave and spent — is ≥ 0, and
 *   the user's spends ≤ the mints. After the final heal and convergence: every peer's view
 *   (`CreditService.view`) equals the ground truth (credited, spent, each peer's share: no
 *   credit lost, none counted twice, a forged mint nowhere); every usage record a peer charged
 *   with a cost is paid by its own spend of exactly that cost under the usage id, settled, and
 *   every settled spend of a print has its usage record (charged once, paid once); no
 *   reservation is left for a job that ended.
 * - **Availability**: every refused reservation (`CreditRefusedError`) is compared with the
 *   user's balance by the ground truth at that moment; refused although the balance covered
 *   the job (in monochrome where the site allows it) counts as unavailable.
 */
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import { CreditService, MAX_SHARE_RELAYS, type CreditComponents } from '../node/credit.ts'
import { serviceFactory, type ServiceFactory } from '../node/compose.ts'
import { CreditRefusedError, type CreditReserved } from '../devices/jobs/credit-gate.ts'
import { addEntry, listEntries, type EscrowEntry } from '../crdt/escrow.ts'
import { writePriceList } from '../crdt/prices.ts'
import { listUsage } from '../crdt/accounting.ts'
import { escrowDoc, licenseDoc, parseDocName, siteId as toSiteId, type PeerId } from '../crdt/names.ts'
import type { JobRecord } from '../crdt/jobs.ts'
import type { Role } from '../crdt/license.ts'
import type { LinkFaults, MemoryNetwork } from '../transports/memory.ts'
import { seededRandom } from '../transports/memory.ts'
import type { Checker } from './invariants.ts'
import type { MeshPeer } from './mesh.ts'
import type { VirtualClock } from './scheduler.ts'
import { MemoryEscrowHub } from './escrow-link.ts'

/** A page's price in minor units: mono and colour. */
export const MONO_PRICE = 20
export const COLOUR_PRICE = 60
/** Share of steps that start with a top-up (at central or a site). */
const TOP_UP_SHARE = 0.06
/** Share of top-ups that are small (so some users run short and releases are refused). */
const SMALL_TOP_UP_SHARE = 0.4
/** A user's first credit, at central: from … to (minor units). Jobs cost 20–360. */
const INITIAL_CREDIT: [number, number] = [60, 900]
const TOP_UP: [number, number] = [200, 1500]
const SMALL_TOP_UP: [number, number] = [10, 120]
/** Share of releases at a holder followed at once by a release of another held job of the same user there. */
const PAIRED_RELEASE_SHARE = 0.3
/** Standard workload: share of prints at the user's home site. */
const HOME_PRINT_SHARE = 0.9
/** Standard workload: how long the one partition lasts (virtual). */
const STANDARD_PARTITION_MS = 2 * 3600_000
/** A forged mint's amount (a terminal writing credit for a user into its own document). */
const FORGED_MINT = 50_000
/** Share of steps that end with a probe of two reservations at once (with `probes`). */
const PROBE_SHARE = 0.2

/** The simulator's view of one peer, as the credit side needs it. */
export interface CreditPeer {
  name: string
  role: Role
  site?: string
  signer: { id: string }
  mesh?: MeshPeer
  crashed: boolean
  credit?: CreditService
}

/** What the credit side needs of the simulation. */
export interface CreditHost {
  seed: number
  clock: VirtualClock
  network: MemoryNetwork
  peers: readonly CreditPeer[]
  users: readonly string[]
  checker: Checker
  step: () => number
  event: (peer: string, kind: string, job?: string, detail?: string) => void
  /** The job (label, owner, state on its holder if known) whose id is `jobId`. */
  jobOf: (jobId: string) => { label: string, state?: string } | undefined
  /** Whether a job state is final (printed, failed, deleted, expired). */
  ended: (state: string | undefined) => boolean
  /** Whether two peers (by name) are neighbours in the run's topology (linked when both are up and no partition cuts them). */
  neighbours: (a: string, b: string) => boolean
  steps: number
  inject?: 'overspend'
  /** The standard workload: prints at home; one site cut off for two hours. */
  standard?: boolean
  /** Two prints of one user reserved at one peer in the same turn now and then ({@link CreditSim.probe}). */
  probes?: boolean
  logger?: Logger
}

/** What credit did in a run. */
export interface CreditStats {
  /** Top-ups (the first credit of every user included) and their sum. */
  topUps: number
  credited: number
  /** Spent by the end (settled spends), by the ground truth. */
  spent: number
  /** Reservations tried (priced prints at a peer whose policy is enforced), refused, and refused although the user's balance covered the job somewhere in the mesh. */
  reserves: number
  refused: number
  refusedCovered: number
  /**
   * Of those refused although covered, why: `notLinked` — what the peer and the peers its
   * share requests reach in the topology (linked, up or not; passed on by sites and central
   * up to MAX_SHARE_RELAYS times) held did not cover the job; `cut` — those held enough but
   * the ones that did were partitioned off or down (or a server between was); `reachable` —
   * peers it could reach held enough (a request or answer lost or late, a give still on its way,
   * a stale view of who holds what); `atHome` — of all of them, those at the user's home site
   * or its terminals.
   */
  coveredWhy: { notLinked: number, cut: number, reachable: number, atHome: number }
  /** refusedCovered / reserves (0 when none). */
  unavailability: number
  /** Share requests sent over the wire, and those lost (request or answer) or duplicated. */
  requests: number
  lost: number
  duplicated: number
  /** Prefetches at terminals (a release there). */
  prefetches: number
  /** Probes (two reservations of one user at one peer in the same turn), and those where both were reserved (the share covered both). */
  probes: number
  probesBothReserved: number
  /** Mints written by a terminal into its own document (must count nowhere). */
  forgedMints: number
  /** Prints paid in monochrome because only that fitted ('mono-only' sites). */
  monochrome: number
}

type Entries = Map<string, EscrowEntry>

/** A credit service whose real-time pass timer never runs (passes are workload steps), counting reservations for the availability figure. */
class SimCreditService extends CreditService {
  constructor (init: ConstructorParameters<typeof CreditService>[0], c: CreditComponents, private readonly hooks: { reserved: (job: JobRecord, r: CreditReserved) => void, refused: (job: JobRecord, err: CreditRefusedError) => void }) {
    super(init, c)
  }

  override async start (): Promise<void> {}
  override async stop (): Promise<void> {}

  override async reserve (job: JobRecord, printer: string, signal: AbortSignal): Promise<CreditReserved> {
    try {
      const r = await super.reserve(job, printer, signal)
      this.hooks.reserved(job, r)
      return r
    } catch (err) {
      if (err instanceof CreditRefusedError) this.hooks.refused(job, err)
      throw err
    }
  }
}

export class CreditSim {
  readonly hub: MemoryEscrowHub
  private readonly rng: () => number
  /** The probes' own choices. */
  private readonly probeRng: () => number
  /** Link faults as the simulator set them (the network keeps its own private). */
  private defaultFaults: LinkFaults = {}
  private readonly pairFaults = new Map<string, LinkFaults>()
  /** Each peer's own escrow entries at the last look while it was up. */
  private readonly own = new Map<string, Entries>()
  /** Violations reported once per key. */
  private readonly reported = new Set<string>()
  /** Policy: at-zero behaviour per site. */
  private readonly atZero = new Map<string, 'refuse' | 'mono-only'>()
  private readonly abort = new AbortController()
  private forgedAt = -1
  /** Standard workload: when the partition started (virtual), and whether it was lifted. */
  private cutAt: number | undefined
  private cutOver = false
  readonly stats: CreditStats = { topUps: 0, credited: 0, spent: 0, reserves: 0, refused: 0, refusedCovered: 0, coveredWhy: { notLinked: 0, cut: 0, reachable: 0, atHome: 0 }, unavailability: 0, requests: 0, lost: 0, duplicated: 0, prefetches: 0, probes: 0, probesBothReserved: 0, forgedMints: 0, monochrome: 0 }

  constructor (private readonly host: CreditHost) {
    this.rng = seededRandom(host.seed ^ 0xc4ed17)
    this.probeRng = seededRandom(host.seed ^ 0x9e0be5)
    const wireRng = seededRandom(host.seed ^ 0xe5c40)
    this.hub = new MemoryEscrowHub(host.network, {
      schedule: host.clock.schedule,
      random: wireRng,
      faults: (a, b) => this.pairFaults.get(pair(a, b)) ?? this.defaultFaults,
      up: (id) => host.peers.some((p) => p.signer.id === id && p.credit !== undefined && !p.crashed),
      onMessage: (m) => {
        if (m.kind === 'request') this.stats.requests++
        if (m.fate === 'lost') this.stats.lost++
        if (m.fate === 'duplicated') this.stats.duplicated++
        if (m.fate !== 'delivered' || m.kind === 'answer') this.host.event(this.nameOf(m.from), `share-${m.kind}-${m.fate}`, undefined, `to ${this.nameOf(m.to)}${m.given !== undefined ? `, given ${m.given}` : ''}`)
      }
    })
    // once per run, a third of the way in (or at the first step after with a terminal up), a terminal forges a mint
    this.forgedAt = Math.max(1, Math.floor(host.steps / 3))
  }

  private int (min: number, max: number): number { return min + Math.floor(this.rng() * (max - min + 1)) }
  private pick<T> (list: readonly T[]): T | undefined { return list.length === 0 ? undefined : list[Math.floor(this.rng() * list.length)] }
  private nameOf (id: string): string { return this.host.peers.find((p) => p.signer.id === id)?.name ?? id }
  private up (p: CreditPeer): boolean { return p.mesh !== undefined && !p.crashed }

  /** Records the link faults the simulator sets (call beside `network.setFaults`). */
  setFaults (faults: LinkFaults, between?: [string, string]): void {
    if (between === undefined) this.defaultFaults = faults
    else this.pairFaults.set(pair(between[0], between[1]), faults)
  }

  /** The `credit` service factory of peer `p` (as node/release.ts's, with the simulator's hooks). */
  factory (p: CreditPeer): () => ServiceFactory {
    return () => serviceFactory<CreditComponents, CreditService>(['self', 'store', 'membership', 'clock', 'logger'], (c) => {
      const service = new SimCreditService(p.site !== undefined ? { site: toSiteId(p.site) } : {}, c, {
        reserved: (job, r) => {
          this.stats.reserves++
          if (r.monochrome) { this.stats.monochrome++; this.host.event(p.name, 'credit-monochrome', this.host.jobOf(job.id)?.label) }
        },
        refused: (job, err) => { this.refused(p, job, err) }
      })
      if (this.host.inject === 'overspend') {
        // the planted bug: a peer that never asks and never checks its share; it reserves whatever a job costs
        (service as unknown as { gather: (u: string, needed: number) => Promise<number> }).gather = async (_u, needed) => needed
      }
      p.credit = service
      this.hub.attach(p.signer.id, service)
      return service
    })
  }

  /** A peer's process is gone: its service answers nothing more. */
  detach (p: CreditPeer): void {
    if (p.credit !== undefined) this.hub.detach(p.signer.id, p.credit)
    p.credit = undefined
  }

  /** A user's home site: users spread over the sites, round robin. */
  homeSite (user: string): string {
    const sites = this.host.peers.filter((p) => p.role === 'site')
    return sites[(Number(user.slice(1)) - 1) % sites.length]?.site ?? 'a'
  }

  /** At the end of set-up (certificates and directory known everywhere): prices, the policy, every user's first credit. */
  async setup (): Promise<void> {
    const central = this.host.peers.find((p) => p.role === 'central')
    if (central?.mesh === undefined || central.credit === undefined) throw new Error('central has no credit service')
    await central.mesh.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => {
      writePriceList(d, { currency: 'EUR', rules: [{ color: 'mono', perPage: MONO_PRICE }, { color: 'colour', perPage: COLOUR_PRICE }], sites: {}, printers: {}, updatedAt: this.host.clock.now(), updatedBy: 'admin' })
    })
    const atZero = this.rng() < 0.5 ? 'refuse' : 'mono-only'
    const sites: Record<string, 'refuse' | 'mono-only'> = {}
    for (const s of this.host.peers.filter((p) => p.role === 'site')) {
      const choice = this.rng() < 0.5 ? 'refuse' : 'mono-only'
      if (choice !== atZero) sites[s.site ?? s.name] = choice
      this.atZero.set(s.site ?? s.name, choice)
    }
    await central.credit.setPolicy({ enforced: true, atZero, sites }, 'admin')
    this.host.event('central', 'credit-policy', undefined, `at zero ${atZero}${Object.keys(sites).length > 0 ? `; ${Object.entries(sites).map(([s, v]) => `${s} ${v}`).join(', ')}` : ''}`)
    for (const user of this.host.users) await this.topUp(central, user, this.int(...INITIAL_CREDIT))
  }

  private async topUp (at: CreditPeer, user: string, amount: number): Promise<void> {
    try {
      await (at.credit ?? fail(at)).topUp(user, amount, 'simulated top-up', 'admin')
      this.stats.topUps++
      this.stats.credited += amount
      this.host.event(at.name, 'credit-top-up', undefined, `${user} +${amount}`)
    } catch (err) {
      this.host.event(at.name, 'credit-top-up-failed', undefined, `${user}: ${(err as Error).message}`)
    }
  }

  /** Standard workload: whether this print (or release elsewhere) happens at the user's home site. */
  printsAtHome (): boolean {
    return this.host.standard === true && this.rng() < HOME_PRINT_SHARE
  }

  /** Standard workload: site a and its terminals cut off from everyone else for two hours, a third of the way in. */
  private standardPartition (step: number): void {
    if (this.host.standard !== true || this.cutOver) return
    const now = this.host.clock.now()
    if (this.cutAt === undefined && step >= Math.floor(this.host.steps / 3)) {
      const site = this.host.peers.find((p) => p.role === 'site')?.site
      const inside = this.host.peers.filter((p) => p.site === site && p.role !== 'client')
      const outside = this.host.peers.filter((p) => !inside.includes(p))
      this.host.network.partition(inside.map((p) => p.signer.id), outside.map((p) => p.signer.id))
      this.cutAt = now
      this.host.event('network', 'partition', undefined, `${inside.map((p) => p.name).join(',')} for ${STANDARD_PARTITION_MS / 60_000} min`)
    } else if (this.cutAt !== undefined && now >= this.cutAt + STANDARD_PARTITION_MS) {
      this.host.network.heal()
      this.cutOver = true
      this.host.event('network', 'heal')
    }
  }

  /** At the start of every step: now and then a top-up at central or a site; once a forged mint at a terminal. */
  async beforeStep (step: number): Promise<void> {
    this.standardPartition(step)
    if (this.rng() < TOP_UP_SHARE) {
      const at = this.pick(this.host.peers.filter((p) => (p.role === 'central' || p.role === 'site') && this.up(p) && p.credit !== undefined))
      const user = this.pick(this.host.users)
      const amount = this.rng() < SMALL_TOP_UP_SHARE ? this.int(...SMALL_TOP_UP) : this.int(...TOP_UP)
      // in the background: a top-up waits in the user's queue behind a print gathering shares, which waits on the virtual clock (awaited here, the step would never end)
      if (at !== undefined && user !== undefined) void this.topUp(at, user, amount)
    }
    if (step === this.forgedAt) {
      const t = this.pick(this.host.peers.filter((p) => p.role === 'terminal' && this.up(p)))
      const user = this.pick(this.host.users)
      if (t?.mesh !== undefined && user !== undefined) {
        await t.mesh.store.transact(escrowDoc(t.signer.id as PeerId), { kind: 'local', service: 'forger' }, (d) => {
          addEntry(d, `forged-${step}`, { type: 'mint', user, amount: FORGED_MINT, reason: 'forged', by: 'nobody', time: this.host.clock.now() })
        }).catch(() => {})
        this.stats.forgedMints++
        this.host.event(t.name, 'credit-forged-mint', undefined, `${user} +${FORGED_MINT}`)
      } else if (this.host.peers.some((p) => p.role === 'terminal')) {
        this.forgedAt++
      }
    }
  }

  /**
   * A probe (with `probes`, at the end of a step): at a live site or terminal whose queue for
   * a user is idle, two mono jobs of that user, each costing what the peer's share covers once
   * but not twice, are reserved in the same turn, with no time to ask other peers (so nothing
   * waits on the virtual clock); invariant 5 is checked while they are held (two spends of one
   * share leave it below zero), and both are given back. Not counted in the availability figure.
   */
  async probe (): Promise<void> {
    if (this.host.probes !== true || this.probeRng() >= PROBE_SHARE) return
    const peers = this.host.peers.filter((p) => p.credit !== undefined && this.up(p) && p.site !== undefined && (p.role === 'site' || p.role === 'terminal'))
    const p = peers[Math.floor(this.probeRng() * peers.length)]
    const user = this.host.users[Math.floor(this.probeRng() * this.host.users.length)]
    const credit = p?.credit
    if (credit === undefined || user === undefined || credit.busy(user)) return
    const pages = Math.floor(credit.here(user) / MONO_PRICE)
    if (pages < 1) return
    const step = this.host.step()
    const now = this.host.clock.now()
    const jobs = ['a', 'b'].map((k): JobRecord => ({ id: `probe-${step}-${k}`, ippId: 0, site: toSiteId(p.site ?? ''), queue: 'secure', owner: user, name: `probe ${k}`, state: 'held', pages, colorPages: 0, copies: 1, sides: 'one-sided', createdAt: now, updatedAt: now }))
    // the service's own reserve, not the simulator's counting override: probes are not releases
    const reserve = CreditService.prototype.reserve
    const outcomes = await Promise.allSettled(jobs.map(async (j) => await reserve.call(credit, j, 'probe', AbortSignal.abort())))
    this.stats.probes++
    const reserved = outcomes.filter((o) => o.status === 'fulfilled').length
    if (reserved === 2) this.stats.probesBothReserved++
    this.host.event(p.name, 'credit-probe', undefined, `${user}: two jobs of ${pages * MONO_PRICE} at once, ${reserved} reserved`)
    this.check()
    for (const j of jobs) await credit.release(j)
  }

  /** A user is about to release a job at `at`: at a terminal, its panel login takes part of the site's share first (in the background). */
  beforeRelease (at: CreditPeer, user: string): void {
    if (at.role !== 'terminal' || at.credit === undefined || at.crashed) return
    this.stats.prefetches++
    void at.credit.prefetch(user, this.abort.signal)
  }

  /** Whether the user releasing a job at its holder releases a second of theirs there at once (two reservations of one user at one peer). */
  alsoRelease (): boolean {
    return this.rng() < PAIRED_RELEASE_SHARE
  }

  /**
   * A sweep at `at`: its pass, and central's (credit handed on to home sites). In the
   * background, as their timers run them: a pass waits in a user's queue behind a print
   * gathering shares, which waits on the virtual clock.
   */
  atSweep (at: CreditPeer): void {
    const central = this.host.peers.find((p) => p.role === 'central')
    for (const p of [at, central]) this.passOf(p)
  }

  /** Every live peer's pass (the final heal: what their timers would do), in the background. */
  passAll (): void {
    for (const p of this.host.peers) this.passOf(p)
  }

  private passOf (p: CreditPeer | undefined): void {
    if (p?.credit === undefined || p.crashed) return
    p.credit.pass().catch((err: unknown) => { this.host.event(p.name, 'credit-pass-failed', undefined, (err as Error).message) })
  }

  // ---- the ground truth ----------------------------------------------------------------

  private ownEntriesOf (p: CreditPeer): Entries | undefined {
    const doc = p.mesh?.store.get(escrowDoc(p.signer.id as PeerId))
    return doc === undefined ? undefined : new Map(listEntries(doc))
  }

  /** Looks at every live peer's own document. */
  private refresh (): void {
    for (const p of this.host.peers) {
      if (!this.up(p)) continue
      this.own.set(p.name, this.ownEntriesOf(p) ?? new Map())
    }
  }

  /**
   * What each writer wrote: a live peer's own document; for a peer that is down, its entries
   * at the last look, with the gives and mints (never changed once written) other live
   * peers' copies of its document hold, and each spend at the lowest amount any of them shows.
   */
  private truth (): Map<string, Entries> {
    this.refresh()
    const out = new Map<string, Entries>()
    for (const p of this.host.peers) {
      if (this.up(p)) { out.set(p.name, this.own.get(p.name) ?? new Map()); continue }
      const merged: Entries = new Map(this.own.get(p.name) ?? [])
      for (const q of this.host.peers) {
        const doc = this.up(q) ? q.mesh?.store.get(escrowDoc(p.signer.id as PeerId)) : undefined
        if (doc === undefined) continue
        for (const [id, e] of listEntries(doc)) {
          const had = merged.get(id)
          if (had === undefined || (e.type === 'spend' && had.type === 'spend' && e.amount < had.amount)) merged.set(id, e)
        }
      }
      out.set(p.name, merged)
    }
    return out
  }

  /** Per user: mints (by sites and central), spends, and each peer's true share. */
  private ledger (truth: Map<string, Entries>): Map<string, { credited: number, spent: number, reserved: number, shares: Map<string, number> }> {
    const out = new Map<string, { credited: number, spent: number, reserved: number, shares: Map<string, number> }>()
    const of = (user: string): { credited: number, spent: number, reserved: number, shares: Map<string, number> } => {
      let u = out.get(user)
      if (u === undefined) { u = { credited: 0, spent: 0, reserved: 0, shares: new Map() }; out.set(user, u) }
      return u
    }
    const add = (m: Map<string, number>, k: string, v: number): void => { m.set(k, (m.get(k) ?? 0) + v) }
    for (const p of this.host.peers) {
      for (const e of truth.get(p.name)?.values() ?? []) {
        if (!isCredit(e)) continue // a quota's entries are another account
        const u = of(e.user)
        if (e.type === 'mint') {
          if (p.role !== 'central' && p.role !== 'site') continue // a terminal's or a client's mint makes no credit
          u.credited += e.amount
          add(u.shares, p.name, e.amount)
        } else if (e.type === 'give') {
          add(u.shares, p.name, -e.amount)
          add(u.shares, this.nameOf(e.to), e.amount)
        } else {
          u.spent += e.amount
          if (!e.settled) u.reserved += e.amount
          add(u.shares, p.name, -e.amount)
        }
      }
    }
    return out
  }

  private once (key: string, message: string, peer?: string): void {
    if (this.reported.has(key)) return
    this.reported.add(key)
    this.host.checker.violation(5, this.host.step(), message, undefined, peer)
  }

  /** Invariant 5 after a step or a fault: no live peer's true share below zero; no user's spends above the mints. */
  check (): void {
    const truth = this.truth()
    for (const [user, u] of this.ledger(truth)) {
      for (const [peer, share] of u.shares) {
        const p = this.host.peers.find((q) => q.name === peer)
        if (p === undefined || !this.up(p) || share >= 0) continue
        this.once(`share:${peer}:${user}`, `${peer} spent or gave more of ${user}'s credit than it held: its share is ${share} (its mints, plus what others gave it anywhere, less what it gave and spent, by its own escrow document)`, peer)
      }
      if (u.spent > u.credited) this.once(`total:${user}`, `${user} spent ${u.spent} (${u.reserved} reserved) of ${u.credited} credited, by every peer's own escrow document`)
    }
  }

  private refused (p: CreditPeer, job: JobRecord, err: CreditRefusedError): void {
    this.stats.reserves++
    this.stats.refused++
    const copies = job.copies ?? 1
    const colour = (job.colorPages ?? 0) * copies
    const mono = (job.pages ?? 0) * copies - colour
    const cost = mono * MONO_PRICE + colour * COLOUR_PRICE
    const monoCost = (mono + colour) * MONO_PRICE
    const least = colour > 0 && this.atZero.get(p.site ?? '') === 'mono-only' ? monoCost : cost
    const u = this.ledger(this.truth()).get(job.owner)
    const balance = u === undefined ? 0 : u.credited - u.spent
    const covered = balance >= least
    let why = ''
    if (covered && u !== undefined) {
      this.stats.refusedCovered++
      const held = (peers: Set<CreditPeer>): number => [...peers].reduce((n, q) => n + Math.max(0, u.shares.get(q.name) ?? 0), 0)
      const linkedNow = (a: CreditPeer, b: CreditPeer): boolean => this.up(b) && this.host.network.linked(a.signer.id, b.signer.id) && !this.host.network.partitioned(a.signer.id, b.signer.id)
      why = held(this.withinRelays(p, linkedNow)) >= least ? 'reachable' : held(this.withinRelays(p, (a, b) => this.host.neighbours(a.name, b.name))) >= least ? 'cut' : 'notLinked'
      this.stats.coveredWhy[why as 'reachable' | 'cut' | 'notLinked']++
      if (p.site === this.homeSite(job.owner)) this.stats.coveredWhy.atHome++
    }
    this.host.event(p.name, covered ? 'credit-refused-covered' : 'credit-refused', this.host.jobOf(job.id)?.label, `${job.owner}: costs ${least}, balance ${balance} in the mesh${why !== '' ? ` (${why})` : ''}; ${err.message}`)
  }

  /** `p` and the peers a share request from it reaches over links `linked`: passed on by sites and central up to {@link MAX_SHARE_RELAYS} times. */
  private withinRelays (p: CreditPeer, linked: (a: CreditPeer, b: CreditPeer) => boolean): Set<CreditPeer> {
    const seen = new Set<CreditPeer>([p])
    let edge = [p]
    for (let hop = 0; hop <= MAX_SHARE_RELAYS && edge.length > 0; hop++) {
      const next: CreditPeer[] = []
      for (const a of edge) {
        if (a !== p && a.role !== 'site' && a.role !== 'central') continue // terminals and clients pass nothing on
        for (const b of this.host.peers) if (!seen.has(b) && linked(a, b)) { seen.add(b); next.push(b) }
      }
      edge = next
    }
    return seen
  }

  /**
   * Invariant 5 after the final heal and convergence (every peer up): views equal the ground
   * truth, charges paid once, no reservation left for a job that ended.
   */
  finalChecks (): void {
    this.check()
    const truth = this.truth()
    const ledger = this.ledger(truth)
    const users = new Set([...this.host.users, ...ledger.keys()])
    for (const p of this.host.peers) {
      if (p.credit === undefined || !this.up(p)) continue
      for (const user of users) {
        const want = ledger.get(user) ?? { credited: 0, spent: 0, reserved: 0, shares: new Map<string, number>() }
        const v = p.credit.view(user)
        const shares = (m: Map<string, number>): string => JSON.stringify([...m].filter(([, a]) => a !== 0).map(([k, a]) => [k.startsWith('12D3') ? this.nameOf(k) : k, a]).sort())
        const got = { credited: v.credited, spent: v.spent, shares: shares(v.shares) }
        const exp = { credited: want.credited, spent: want.spent, shares: shares(want.shares) }
        if (JSON.stringify(got) !== JSON.stringify(exp)) this.once(`view:${p.name}:${user}`, `after the heal ${p.name} sees ${user}'s credit as ${JSON.stringify(got)}, the peers' own documents say ${JSON.stringify(exp)}`, p.name)
        const sum = [...v.shares.values()].reduce((n, a) => n + a, 0)
        if (sum !== v.credited - v.spent) this.once(`sum:${p.name}:${user}`, `after the heal ${p.name}'s shares of ${user}'s credit add up to ${sum}, not the balance ${v.credited - v.spent}`, p.name)
      }
      // charged once, paid once: this peer's usage records and its own spends
      const own = truth.get(p.name) ?? new Map()
      const charged = new Map<string, number>()
      const store = p.mesh?.store
      for (const n of store?.openNames() ?? []) {
        const parsed = parseDocName(n)
        if (parsed?.family !== 'acct' || parsed.peer !== p.signer.id) continue
        for (const r of listUsage(store?.get(n) as Y.Doc)) charged.set(r.id, r.cost?.amount ?? 0)
      }
      for (const [id, cost] of charged) {
        const spend = own.get(`spend:${id}`)
        const label = this.host.jobOf(id.split('/')[0])?.label ?? id
        if (cost > 0 && (spend?.type !== 'spend' || spend.amount !== cost || !spend.settled)) {
          this.once(`paid:${p.name}:${id}`, `${p.name} charged ${label} ${cost} but its own spend for it is ${spend?.type === 'spend' ? `${spend.amount}${spend.settled ? '' : ' (unsettled)'}` : 'missing'}`, p.name)
        }
      }
      for (const [id, e] of own) {
        if (e.type !== 'spend' || !id.startsWith('spend:') || !isCredit(e)) continue
        const usage = id.slice('spend:'.length)
        const job = this.host.jobOf(usage.split('/')[0])
        if (e.settled && e.amount > 0 && !charged.has(usage)) this.once(`unpaid:${p.name}:${usage}`, `${p.name} spent ${e.amount} of ${e.user}'s credit for ${job?.label ?? usage}, which it never charged`, p.name)
        if (!e.settled && this.host.ended(job?.state)) this.once(`left:${p.name}:${usage}`, `${p.name} still holds a reservation of ${e.amount} of ${e.user}'s credit for ${job?.label ?? usage}, which ended ${job?.state ?? ''}`, p.name)
      }
    }
    const final = this.ledger(truth)
    this.stats.spent = [...final.values()].reduce((n, u) => n + u.spent - u.reserved, 0)
    this.stats.unavailability = this.stats.reserves === 0 ? 0 : this.stats.refusedCovered / this.stats.reserves
  }

  /** Stops what waits in the background (prefetches). */
  close (): void {
    this.abort.abort()
    this.hub.close()
  }
}

/** Whether an entry is in the credit account (entries without an account are credit; quotas are others). */
function isCredit (e: EscrowEntry): boolean { return ((e as { account?: string }).account ?? 'credit') === 'credit' }

function pair (a: string, b: string): string { return a < b ? `${a}|${b}` : `${b}|${a}` }

function fail (p: CreditPeer): never { throw new Error(`${p.name} has no credit service`) }
