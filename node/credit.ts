/**
 * Users' credit across the mesh (issue 20), as escrow (crdt/escrow.ts): each peer spends only
 * from the share of a user's credit it holds, so a partitioned terminal can approve a print
 * from its own share and the user's total can never go below zero.
 *
 * - Top-ups (and deductions) are written where the admin acts: central or a site. Central
 *   passes what it holds on to a server of the user's home site (the peers where the user
 *   prints come first), at each pass of {@link CREDIT_PASS_MS}.
 * - A print reserves its cost from this peer's share before it starts (devices/jobs/credit-gate.ts);
 *   when the share is short, this peer asks reachable peers holding shares for the rest over
 *   `/printmesh/escrow/1.0.0` (one JSON request: `{user, amount}` → `{given}`): the giver writes
 *   the give into its own document first, then answers, and the share counts here once the
 *   giver's document arrives by sync (a lost answer loses nothing: the give still arrives).
 * - A terminal tops its share up to half of what it and its site hold when a user logs in at
 *   its panel ({@link CreditService.prefetch}), so the user can print there when the site is cut off.
 * - Reservations are settled to the charged amount, or given back, by the print engine; a
 *   reservation left by a crash is settled at the next pass from this peer's accounting (the
 *   usage record, when the print was charged) or given back after {@link RESERVATION_TTL_MS}.
 *
 * Calls for one user run one at a time on this peer, so two prints cannot both spend the
 * same share.
 */
import { randomUUID } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import type { DocStore } from '../crdt/store.ts'
import type { Membership } from '../crdt/membership.ts'
import type { JobRecord } from '../crdt/jobs.ts'
import type { UsageCost } from '../crdt/accounting.ts'
import { listUsage } from '../crdt/accounting.ts'
import { acctDoc, directoryDoc, escrowDoc, licenseDoc, parseDocName, periodOf, type PeerId, type SiteId } from '../crdt/names.ts'
import { getUser } from '../crdt/directory.ts'
import { listCertificates } from '../crdt/license.ts'
import { ADMIN_ISSUER_ROLES } from '../crdt/capability.ts'
import { pricesAt, priceUsage, readPriceList } from '../crdt/prices.ts'
import {
  addDeduction, addEntry, atZeroFor, getSpend, InvalidCreditPolicyError, listEntries, MAX_CREDIT_AMOUNT, parseCreditPolicy, readCreditPolicy, setSpend, sharesOf,
  writeCreditPolicy, type CreditPolicy, type CreditView
} from '../crdt/escrow.ts'
import { CreditRefusedError, type CopyCredit, type CreditGate, type CreditReserved } from '../devices/jobs/credit-gate.ts'
import { printCharge, usageId } from '../devices/jobs/usage.ts'
import { callRpc, handleRpc } from '../transports/rpc.ts'
import { KindedError, InvalidRequestError } from '../crdt/errors.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import type { Clock, PeerSelf } from './peer.ts'
import type { UserAuthenticator } from '../ui/api.ts'
import type { Actor } from '../devices/jobs/types.ts'

/** The share protocol: one request for part of a user's credit, one answer. */
export const ESCROW_PROTOCOL = '/printmesh/escrow/1.0.0'
/** One share request and its answer: a peer a hop away answers in milliseconds; an unanswered one is given up so the release can be refused in time. */
const SHARE_REQUEST_TIMEOUT_MS = 3_000
/** How long a given share may take to arrive by sync after the giver answered (live updates are immediate; this covers a busy peer). */
const SHARE_ARRIVAL_TIMEOUT_MS = 5_000
/** How often central passes credit on to home sites and reservations left by a crash are settled. */
export const CREDIT_PASS_MS = 30_000
/** A reservation with no charge this long after it was made is given back: no print waits that long for its printer. */
export const RESERVATION_TTL_MS = 24 * 3600_000
/** At a login a terminal tops what it holds up to this part of what it and its site hold together (half: a second terminal still gets a quarter). */
const PREFETCH_FRACTION = 0.5

/** Top-up or deduction input that cannot be used; the message names the field. */
export class InvalidCreditRequestError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'InvalidCreditRequestError' }
}

/** Not here: credit is created only at sites and central (where admins log in), the policy only by the mesh's authority. */
export class CreditAuthorityError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (message: string) { super(message); this.name = 'CreditAuthorityError' }
}

/** A deduction larger than the credit reachable from here. */
export class CreditShortError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (message: string) { super(message); this.name = 'CreditShortError' }
}

/** A share request: part of `user`'s credit asked of the peer holding it. */
export interface ShareRequest { user: string, amount: number }
/** What was given (0: nothing to give). */
export interface ShareAnswer { given: number }

/** How share requests reach other peers (libp2p here, an in-memory hub in tests and the simulator). */
export interface EscrowLink {
  /** Peers that can be asked now. */
  reachable: () => string[]
  ask: (peer: string, request: ShareRequest, signal: AbortSignal) => Promise<ShareAnswer>
}

/** A user's credit as this peer sees it, for the API. */
export interface CreditStatus {
  user: string
  /** The mesh price list's currency (undefined: no price list). */
  currency?: string
  /** Credited less spent, over every share this peer knows of. */
  balance: number
  credited: number
  spent: number
  reserved: number
  /** What this peer holds: what a print here can spend without asking anyone. */
  here: number
  shares: Array<{ peer: string, amount: number, reachable: boolean }>
  enforced: boolean
}

export interface CreditServiceInit {
  /** The site whose at-zero policy applies to prints here (undefined: central, which prints nothing). */
  site?: SiteId
}

export interface CreditComponents {
  self: Pick<PeerSelf, 'id'>
  store: DocStore
  membership: Membership
  clock: Clock
  logger: Logger
}

const isPositiveAmount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= MAX_CREDIT_AMOUNT

/** Formats minor units for messages as the pages show money (ui/web/money.js): `2.40 EUR`. */
function money (amount: number, currency: string | undefined): string {
  return `${(amount / 100).toFixed(2)}${currency !== undefined ? ` ${currency}` : ''}`
}

export class CreditService implements CreditGate, CopyCredit, Startable {
  private link: EscrowLink | undefined
  private readonly queues = new Map<string, Promise<unknown>>()
  private timer: ReturnType<typeof setInterval> | undefined
  private readonly log: Logger
  private readonly self: PeerId

  constructor (private readonly init: CreditServiceInit, private readonly c: CreditComponents) {
    this.self = c.self.id
    this.log = c.logger.child({ service: 'credit' })
  }

  /** Sets how share requests travel (the escrow server on libp2p; the hub in process). */
  useLink (link: EscrowLink | undefined): void {
    this.link = link
  }

  async start (): Promise<void> {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => { void this.pass().catch((err: unknown) => this.log.error({ err }, 'credit pass failed')) }, CREDIT_PASS_MS)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** The mesh's credit policy as this peer holds it (undefined: none set, credit not enforced). */
  policy (): CreditPolicy | undefined {
    return readCreditPolicy(this.c.store.get(licenseDoc()))
  }

  /** Sets the mesh's credit policy; only the mesh's authority (central, a standalone site) can. */
  async setPolicy (raw: unknown, by: string): Promise<CreditPolicy> {
    if (this.c.membership.authority !== this.self) throw new CreditAuthorityError('the credit policy is set at central (the mesh\'s authority)')
    let policy: CreditPolicy
    try {
      policy = parseCreditPolicy(raw, by, this.c.clock.now())
    } catch (err) {
      if (err instanceof InvalidCreditPolicyError) throw new InvalidRequestError(err.message)
      throw err
    }
    await this.c.store.transact(licenseDoc(), { kind: 'admin', user: by }, (d) => { writeCreditPolicy(d, policy) })
    this.log.info({ by, enforced: policy.enforced, atZero: policy.atZero }, 'credit policy set')
    return policy
  }

  /** The user's shares from every escrow document this peer holds. */
  view (user: string): CreditView {
    return sharesOf(this.escrowDocs(), user, (p) => this.c.membership.info(p)?.role)
  }

  /** What this peer holds of the user's credit. */
  here (user: string): number {
    return this.view(user).shares.get(this.self) ?? 0
  }

  status (user: string): CreditStatus {
    const v = this.view(user)
    const reachable = new Set(this.link?.reachable() ?? [])
    const currency = readPriceList(this.c.store.get(licenseDoc()))?.currency
    return {
      user,
      ...(currency !== undefined ? { currency } : {}),
      balance: v.credited - v.spent,
      credited: v.credited,
      spent: v.spent,
      reserved: v.reserved,
      here: v.shares.get(this.self) ?? 0,
      shares: [...v.shares].filter(([, a]) => a !== 0).map(([peer, amount]) => ({ peer, amount, reachable: peer === this.self || reachable.has(peer) })),
      enforced: this.policy()?.enforced === true
    }
  }

  /** New credit for `user`, created here (a site or central) by admin `by`. */
  async topUp (user: string, amount: unknown, reason: unknown, by: string): Promise<CreditStatus> {
    this.assertAuthority()
    if (!isPositiveAmount(amount)) throw new InvalidCreditRequestError(`amount must be a whole number of minor units (cents) from 1 to ${MAX_CREDIT_AMOUNT}`)
    const why = checkReason(reason)
    await this.serial(user, async () => {
      await this.c.store.transact(escrowDoc(this.self), { kind: 'admin', user: by }, (d) => addEntry(d, randomUUID(), { type: 'mint', user, amount, reason: why, by, time: this.c.clock.now() }))
    })
    this.log.info({ user, amount, by }, 'credit topped up')
    void this.pass().catch((err: unknown) => this.log.warn({ err }, 'could not pass new credit on'))
    return this.status(user)
  }

  /** Takes `amount` of `user`'s credit away (a correction), from the share held here, gathering more first if needed. */
  async deduct (user: string, amount: unknown, reason: unknown, by: string, signal: AbortSignal): Promise<CreditStatus> {
    this.assertAuthority()
    if (!isPositiveAmount(amount)) throw new InvalidCreditRequestError(`amount must be a whole number of minor units (cents) from 1 to ${MAX_CREDIT_AMOUNT}`)
    const why = checkReason(reason)
    await this.serial(user, async () => {
      const have = await this.gather(user, amount, signal)
      if (have < amount) throw new CreditShortError(`only ${money(have, this.currency())} of ${user}'s credit can be reached from here; nothing was deducted`)
      await this.c.store.transact(escrowDoc(this.self), { kind: 'admin', user: by }, (d) => { addDeduction(d, randomUUID(), { type: 'spend', user, amount, reason: why, time: this.c.clock.now() }) })
    })
    return this.status(user)
  }

  // ---- the release gate (devices/jobs/credit-gate.ts) ----

  async reserve (job: JobRecord, printer: string, signal: AbortSignal): Promise<CreditReserved> {
    const policy = this.policy()
    if (policy?.enforced !== true) return { monochrome: false }
    const id = usageId(job)
    const cost = await this.costOf(job, printer, false)
    if (cost === undefined) return { monochrome: false } // unpriced: nothing to pay
    return await this.serial(job.owner, async () => {
      const held = getSpend(this.c.store.get(escrowDoc(this.self)), id)
      if (held !== undefined && !held.settled && held.amount >= cost) return { monochrome: false } // reserved before a restart
      const already = held !== undefined && !held.settled ? held.amount : 0
      const have = await this.gather(job.owner, cost - already, signal) + already
      if (have >= cost) {
        await this.writeSpend(job.owner, id, cost, false)
        return { monochrome: false }
      }
      const mono = (job.colorPages ?? 0) > 0 && this.init.site !== undefined && atZeroFor(policy, this.init.site) === 'mono-only'
        ? await this.costOf(job, printer, true)
        : undefined
      if (mono !== undefined && have >= mono) {
        await this.writeSpend(job.owner, id, mono, false)
        this.log.info({ user: job.owner, job: job.id, cost, mono }, 'credit covers the job in monochrome only: printed in monochrome')
        return { monochrome: true }
      }
      if (already > 0) await this.dropSpend(job.owner, id)
      throw new CreditRefusedError(this.shortMessage(job.owner, cost, have, mono))
    })
  }

  async settle (job: JobRecord, cost: UsageCost | undefined): Promise<void> {
    const id = usageId(job)
    const held = getSpend(this.c.store.get(escrowDoc(this.self)), id)
    if (held === undefined && this.policy()?.enforced !== true) return
    if (held?.settled === true && held.amount === (cost?.amount ?? 0)) return
    await this.serial(job.owner, async () => { await this.writeSpend(job.owner, id, cost?.amount ?? 0, true) })
  }

  async release (job: JobRecord): Promise<void> {
    const id = usageId(job)
    const held = getSpend(this.c.store.get(escrowDoc(this.self)), id)
    if (held === undefined || held.settled) return
    await this.serial(job.owner, async () => { await this.dropSpend(job.owner, id) })
  }

  // ---- copies (devices/jobs/credit-gate.ts CopyCredit) ----

  async allowCopy (user: string, signal: AbortSignal): Promise<void> {
    if (this.policy()?.enforced !== true) return
    await this.prefetch(user, signal)
    if (this.here(user) <= 0) await this.serial(user, async () => await this.gather(user, 1, signal))
    const have = this.here(user)
    if (have <= 0) throw new CreditRefusedError(`not enough credit to copy: ${user} has ${money(0, this.currency())} available here${this.elsewhere(user) > 0 ? `; ${money(this.elsewhere(user), this.currency())} more is held by peers that cannot be reached from here now` : '; top up to copy'}`)
  }

  copyAllowance (user: string): number | undefined {
    return this.policy()?.enforced === true ? this.here(user) : undefined
  }

  async payCopy (id: string, user: string, cost: number, signal: AbortSignal): Promise<number> {
    if (this.policy()?.enforced !== true) return 0
    return await this.serial(user, async () => {
      const held = getSpend(this.c.store.get(escrowDoc(this.self)), id)
      if (held?.settled === true) return Math.max(0, cost - held.amount) // paid before a restart
      const have = await this.gather(user, cost, signal)
      const paid = Math.min(cost, have)
      await this.writeSpend(user, id, paid, true)
      if (paid < cost) this.log.warn({ user, usage: id, cost, paid }, 'copies beyond the credit reachable: the rest is unpaid')
      return cost - paid
    })
  }

  // ---- shares between peers ----

  /** Answers another peer's share request: gives up to what is asked from the share held here. */
  async answer (peer: string, request: unknown): Promise<ShareAnswer> {
    const r = request as Partial<ShareRequest> | null
    if (typeof r !== 'object' || r === null || typeof r.user !== 'string' || r.user.length === 0 || r.user.length > 256 || !isPositiveAmount(r.amount)) {
      throw new InvalidCreditRequestError('a share request is {"user": "<name>", "amount": <minor units>}')
    }
    if (this.c.membership.info(peer) === undefined) throw new InvalidCreditRequestError(`peer ${peer} is not a member of the mesh`)
    const { user, amount } = r as ShareRequest
    return await this.serial(user, async () => {
      const given = Math.min(amount, this.here(user))
      if (given <= 0) return { given: 0 }
      await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => addEntry(d, randomUUID(), { type: 'give', user, amount: given, to: peer as PeerId, time: this.c.clock.now() }))
      this.log.info({ user, to: peer, given }, 'credit share given')
      return { given }
    })
  }

  /**
   * A light peer takes part of its site's share of `user`'s credit ahead of need (at login), so
   * prints here work while the site is cut off: up to {@link PREFETCH_FRACTION} of what the two
   * hold together. Never rejects.
   */
  async prefetch (user: string, signal: AbortSignal): Promise<void> {
    if (this.policy()?.enforced !== true || this.link === undefined) return
    try {
      const view = this.view(user)
      const site = this.init.site
      for (const peer of this.link.reachable()) {
        const who = this.c.membership.info(peer)
        const share = view.shares.get(peer) ?? 0
        if (who?.role !== 'site' || who.site !== site || share <= 0) continue
        // topped up to a part of what the two hold together: logging in again takes nothing more
        const mine = this.here(user)
        const ask = Math.floor((share + mine) * PREFETCH_FRACTION) - mine
        if (ask > 0) await this.askFor(peer, user, ask, signal)
      }
    } catch (err) {
      this.log.warn({ user, err: (err as Error).message }, 'could not take a share of the user\'s credit ahead of need')
    }
  }

  /**
   * Brings this peer's share of `user`'s credit up to `needed` if it can, asking reachable
   * peers that hold shares (largest first); returns the share then held. Runs inside the
   * user's queue.
   */
  private async gather (user: string, needed: number, signal: AbortSignal): Promise<number> {
    let have = this.here(user)
    if (have >= needed || this.link === undefined) return have
    const shares = this.view(user).shares
    const candidates = this.link.reachable().filter((p) => p !== this.self && (shares.get(p) ?? 0) > 0).sort((a, b) => (shares.get(b) ?? 0) - (shares.get(a) ?? 0))
    for (const peer of candidates) {
      if (signal.aborted) break
      await this.askFor(peer, user, needed - have, signal)
      have = this.here(user)
      if (have >= needed) break
    }
    return have
  }

  /** Asks `peer` for `amount` of `user`'s credit and waits until what it gave has arrived here. */
  private async askFor (peer: string, user: string, amount: number, signal: AbortSignal): Promise<void> {
    if (this.link === undefined) return
    const before = this.received(peer, user)
    let answer: ShareAnswer
    try {
      answer = await this.link.ask(peer, { user, amount }, AbortSignal.any([signal, AbortSignal.timeout(SHARE_REQUEST_TIMEOUT_MS)]))
    } catch (err) {
      this.log.info({ peer, user, err: (err as Error).message }, 'share request not answered')
      return
    }
    if (!Number.isSafeInteger(answer.given) || answer.given <= 0) return
    await this.arrival(peer, () => this.received(peer, user) >= before + answer.given, signal)
  }

  /** What `peer` gave this peer of `user`'s credit, as far as its document here tells. */
  private received (peer: string, user: string): number {
    const doc = this.c.store.get(escrowDoc(peer as PeerId))
    if (doc === undefined) return 0
    let sum = 0
    for (const [, e] of listEntries(doc)) if (e.type === 'give' && e.to === this.self && e.user === user) sum += e.amount
    return sum
  }

  /** Resolves once `done()` holds after an update of `peer`'s escrow document arrived (or at once), or after the arrival deadline. */
  private async arrival (peer: string, done: () => boolean, signal: AbortSignal): Promise<void> {
    if (done()) return
    const name = escrowDoc(peer as PeerId)
    await new Promise<void>((resolve) => {
      const finish = (): void => { clearTimeout(timer); this.c.store.off('entry', onEntry); signal.removeEventListener('abort', finish); resolve() }
      const onEntry = (doc: string): void => { if (doc === name && done()) finish() }
      const timer = setTimeout(finish, SHARE_ARRIVAL_TIMEOUT_MS)
      this.c.store.on('entry', onEntry)
      signal.addEventListener('abort', finish)
    })
  }

  // ---- the pass: central hands credit to home sites; crashed reservations settled ----

  /** One pass (every {@link CREDIT_PASS_MS}): exported for tests and the simulator. */
  async pass (): Promise<void> {
    await this.settleLeftovers()
    if (this.c.membership.info(this.self)?.role === 'central' || this.init.site === undefined) await this.passOnToHomeSites()
  }

  /** Reservations this peer left unsettled (a crash between reserve and charge): settled from its accounting, or given back once stale. */
  private async settleLeftovers (): Promise<void> {
    const doc = this.c.store.get(escrowDoc(this.self))
    if (doc === undefined) return
    const now = this.c.clock.now()
    for (const [, e] of listEntries(doc)) {
      if (e.type !== 'spend' || e.settled || e.usageId === undefined) continue
      const charged = await this.chargedHere(e.usageId, e.time, now)
      if (charged !== undefined) await this.serial(e.user, async () => { await this.writeSpend(e.user, e.usageId as string, charged, true) })
      else if (now - e.time > RESERVATION_TTL_MS) await this.serial(e.user, async () => { await this.dropSpend(e.user, e.usageId as string) })
    }
  }

  /** The cost this peer charged under `id` (in the periods between `since` and `now`), if it did. */
  private async chargedHere (id: string, since: number, now: number): Promise<number | undefined> {
    for (const period of new Set([periodOf(since), periodOf(now)])) {
      const record = listUsage(await this.c.store.open(acctDoc(this.self, period))).find((r) => r.id === id)
      if (record !== undefined) return record.cost?.amount ?? 0
    }
    return undefined
  }

  /** Central keeps no credit: it gives each user's share to a reachable server of their home site. */
  private async passOnToHomeSites (): Promise<void> {
    const own = this.c.store.get(escrowDoc(this.self))
    const directory = this.c.store.get(directoryDoc())
    if (own === undefined || directory === undefined || this.link === undefined) return
    const reachable = new Set(this.link.reachable())
    const users = new Set(listEntries(own).map(([, e]) => e.user))
    for (const user of users) {
      const home = getUser(directory, user)?.homeSite
      if (home === undefined) continue
      const server = this.sitePeers(home).find((p) => reachable.has(p))
      if (server === undefined) continue
      await this.serial(user, async () => {
        const amount = this.here(user)
        if (amount <= 0) return
        await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => addEntry(d, randomUUID(), { type: 'give', user, amount, to: server as PeerId, time: this.c.clock.now() }))
        this.log.info({ user, to: server, amount }, 'credit passed on to the user\'s home site')
      })
    }
  }

  /** The site servers of `site`, by their certificates. */
  private sitePeers (site: string): string[] {
    const license = this.c.store.get(licenseDoc())
    if (license === undefined) return []
    return listCertificates(license).filter((c) => c.role === 'site' && c.site === site && this.c.membership.info(c.peer) !== undefined).map((c) => c.peer)
  }

  // ---- helpers ----

  private assertAuthority (): void {
    const role = this.c.membership.info(this.self)?.role ?? (this.init.site === undefined ? 'central' : 'site')
    if (!ADMIN_ISSUER_ROLES.includes(role)) throw new CreditAuthorityError(`a ${role} cannot create or take away credit: top up at a site or at central`)
  }

  private currency (): string | undefined {
    return readPriceList(this.c.store.get(licenseDoc()))?.currency
  }

  /** What other peers hold of the user's credit, as far as this peer knows. */
  private elsewhere (user: string): number {
    return [...this.view(user).shares].filter(([p, a]) => p !== this.self && a > 0).reduce((n, [, a]) => n + a, 0)
  }

  private shortMessage (user: string, cost: number, have: number, mono: number | undefined): string {
    const cur = this.currency()
    const view = this.view(user)
    const elsewhere = this.elsewhere(user)
    const monoPart = mono !== undefined ? ` (${money(mono, cur)} in monochrome)` : ''
    const where = elsewhere > 0
      ? `; ${money(elsewhere, cur)} more is held by peers that cannot be reached from here now`
      : view.credited - view.spent <= have ? '; top up to print it' : ''
    return `not enough credit: this job costs ${money(cost, cur)}${monoPart}, ${user} has ${money(have, cur)} available here${where}`
  }

  /** What printing `job` at `printer` costs at the prices in force (monochrome: no colour pages); undefined when unpriced. */
  private async costOf (job: JobRecord, printer: string, monochrome: boolean): Promise<number | undefined> {
    const site = this.init.site
    if (site === undefined) return undefined
    const charge = printCharge(monochrome ? { ...job, colorPages: 0 } : job, undefined, monochrome)
    const cost = priceUsage(await pricesAt(this.c.store, site), {
      kind: 'print', site, printer, duplex: job.sides !== 'one-sided', pages: charge.pages, colorPages: charge.colorPages, ...(job.media !== undefined ? { media: job.media } : {})
    })
    return cost?.amount
  }

  private async writeSpend (user: string, id: string, amount: number, settled: boolean): Promise<void> {
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { setSpend(d, { type: 'spend', user, amount, usageId: id, settled, time: this.c.clock.now() }) })
  }

  private async dropSpend (user: string, id: string): Promise<void> {
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { setSpend(d, { type: 'spend', user, amount: 0, usageId: id, settled: true, time: this.c.clock.now() }) })
  }

  /** Runs `fn` after every earlier call for `user` on this peer has ended. */
  private async serial<T> (user: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(user) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.queues.set(user, tail)
    void tail.then(() => { if (this.queues.get(user) === tail) this.queues.delete(user) })
    return await run
  }

  private escrowDocs (): Array<[string, Y.Doc]> {
    const out: Array<[string, Y.Doc]> = []
    for (const name of this.c.store.openNames()) {
      if (parseDocName(name)?.family !== 'escrow') continue
      const doc = this.c.store.get(name)
      if (doc !== undefined) out.push([name, doc])
    }
    return out
  }
}

/** Longest reason kept with a top-up or deduction. */
const MAX_REASON_CHARS = 200

function checkReason (reason: unknown): string {
  if (reason === undefined) return ''
  if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS) throw new InvalidCreditRequestError(`reason must be text of at most ${MAX_REASON_CHARS} characters`)
  return reason
}

/** How long a share taken at login may take: it runs beside the login, never delaying it. */
const PREFETCH_TIMEOUT_MS = 10_000

/** A terminal's panel logins, each successful one followed by {@link CreditService.prefetch} in the background. */
export function prefetchingOnLogin (users: UserAuthenticator, credit: CreditService): UserAuthenticator {
  const after = (actor: Actor | undefined): Actor | undefined => {
    if (actor !== undefined) void credit.prefetch(actor.user, AbortSignal.timeout(PREFETCH_TIMEOUT_MS))
    return actor
  }
  return {
    authenticateUser: async (username, pin) => after(await users.authenticateUser(username, pin)),
    ...(users.authenticateCard !== undefined ? { authenticateCard: async (card: string) => after(await users.authenticateCard?.(card)) } : {})
  }
}

/** Share requests over libp2p: the peers this host is connected to, asked on {@link ESCROW_PROTOCOL}. */
export function libp2pEscrowLink (host: Libp2p): EscrowLink {
  return {
    reachable: () => [...new Set(host.getConnections().map((c) => c.remotePeer.toString()))],
    ask: async (peer, request, signal) => {
      const answer = await callRpc(host, ESCROW_PROTOCOL, peer, [], request, signal) as Partial<ShareAnswer> | null
      return { given: typeof answer?.given === 'number' ? answer.given : 0 }
    }
  }
}

/** The `credit` service: every role has one (central tops up and passes on; the others spend). */
export function creditService (init: CreditServiceInit): ServiceFactory<CreditService> {
  return serviceFactory<CreditComponents, CreditService>(['self', 'store', 'membership', 'clock', 'logger'], (c) => new CreditService(init, c))
}

/** The `escrow-server` service: answers share requests on libp2p and gives the credit service its libp2p link. */
export function escrowServerService (): ServiceFactory<Startable> {
  return serviceFactory<{ host: Libp2p, libp2p: Startable, credit: CreditService, logger: Logger }, Startable>(['host', 'libp2p', 'credit', 'logger'], (c) => {
    let unhandle: (() => Promise<void>) | undefined
    return {
      start: async () => {
        if (unhandle !== undefined) return
        unhandle = await handleRpc(c.host, ESCROW_PROTOCOL, async (peer, request) => await c.credit.answer(peer, request), c.logger, SHARE_REQUEST_TIMEOUT_MS)
        c.credit.useLink(libp2pEscrowLink(c.host))
      },
      stop: async () => {
        c.credit.useLink(undefined)
        await unhandle?.()
        unhandle = undefined
      }
    }
  })
}
