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
 * - A peer asked for more than it holds passes the request on (up to {@link MAX_SHARE_RELAYS}
 *   times along a chain that never returns to a peer it passed) to the peers it reaches that
 *   hold shares, so a terminal reaches the credit held by another site or another terminal
 *   through its site: it gathers what they give, then gives it on.
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
import type { UsageCost, UsageRecord } from '../crdt/accounting.ts'
import { listUsage } from '../crdt/accounting.ts'
import { acctDoc, directoryDoc, escrowDoc, licenseDoc, parseDocName, periodOf, type PeerId, type SiteId } from '../crdt/names.ts'
import { getUser, listUsers } from '../crdt/directory.ts'
import { listCertificates } from '../crdt/license.ts'
import { ADMIN_ISSUER_ROLES } from '../crdt/capability.ts'
import { pricesAt, priceUsage, readPriceList } from '../crdt/prices.ts'
import {
  accountOf, addDeduction, addEntry, atZeroFor, CREDIT_ACCOUNT, creditTotals, sharesAt, getSpend, InvalidCreditPolicyError, listEntries, MAX_CREDIT_AMOUNT, parseCreditPolicy, parseQuotaAccount,
  QUOTA_MEASURES, quotaAccount, quotaOf, readCreditPolicy, setSpend, sharesOf, writeCreditPolicy, type CreditPolicy, type CreditView, type MintEntry, type QuotaMeasure, type SpendEntry
} from '../crdt/escrow.ts'
import { CreditRefusedError, type CopyAllowance, type CopyCharged, type CopyCredit, type CreditGate, type CreditReserved } from '../devices/jobs/credit-gate.ts'
import { printCharge, usageId } from '../devices/jobs/usage.ts'
import { callRpc, handleRpc } from '../transports/rpc.ts'
import { KindedError, InvalidRequestError } from '../crdt/errors.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import type { Clock, PeerSelf } from './peer.ts'
import type { UserAuthenticator } from '../ui/api.ts'
import type { CreditStatusView, CreditSummaryView, QuotaStatusView } from '../ui/routes/credit.ts'
import type { Actor } from '../devices/jobs/types.ts'

/** The share protocol: one request for part of a user's credit, one answer. */
export const ESCROW_PROTOCOL = '/printmesh/escrow/1.0.0'
/** One share request and its answer: a peer a hop away answers in milliseconds; an unanswered one is given up so the release can be refused in time. */
const SHARE_REQUEST_TIMEOUT_MS = 3_000
/** How many times a share request may be passed on (terminal → its site → another site or central → that site's terminal): every peer of a usual mesh is within reach. */
export const MAX_SHARE_RELAYS = 2
/** How long a share request that may be passed on `relays` more times is waited for: each pass adds one request's time. */
export function shareRequestTimeout (relays: number): number { return SHARE_REQUEST_TIMEOUT_MS * (1 + relays) }
/** How long a given share may take to arrive by sync after the giver answered (live updates are immediate; this covers a busy peer). */
const SHARE_ARRIVAL_TIMEOUT_MS = 5_000
/** How often central passes credit on to home sites and reservations left by a crash are settled. */
export const CREDIT_PASS_MS = 30_000
/** A reservation with no charge this long after it was made is given back: no print waits that long for its printer. */
export const RESERVATION_TTL_MS = 24 * 3600_000
/** At a login a terminal tops what it holds up to this part of what it and its site hold together (half: a second terminal still gets a quarter). */
const PREFETCH_FRACTION = 0.5
/** A client looks at what its site holds of its user this long after an update of a server's escrow document: a burst of updates, one look. */
const SITE_SHARE_CHECK_MS = 500

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
export interface ShareRequest {
  user: string
  amount: number
  /** Absent: credit. */
  account?: string
  /** How many more times the request may be passed on (absent: 0). */
  relays?: number
  /** The peers it passed through before the one asking (never asked again: no cycle). */
  via?: string[]
}
/** What was given (0: nothing to give). */
export interface ShareAnswer { given: number }

/** How share requests reach other peers (libp2p here, an in-memory hub in tests and the simulator). */
export interface EscrowLink {
  /** Peers that can be asked now. */
  reachable: () => string[]
  ask: (peer: string, request: ShareRequest, signal: AbortSignal) => Promise<ShareAnswer>
}

/** A user's credit as this peer sees it, for the API (ui/routes/credit.ts). */
export type CreditStatus = CreditStatusView
/** One user's credit and quotas in the admin's list. */
export type CreditSummary = CreditSummaryView
/** A user's quota of one measure this month, for the API. */
export type QuotaStatus = QuotaStatusView

export interface CreditServiceInit {
  /** The site whose at-zero policy applies to prints here (undefined: central, which prints nothing). */
  site?: SiteId
  /**
   * A workstation's client: its user, whose share it tops up from the site at every pass, so
   * fallback printing (with the site unreachable) can pay from what the client holds.
   */
  prefetchFor?: string
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
  /** Watches the license document for a new policy (and a client its site's escrow documents) while started. */
  private onEntry: ((doc: string) => void) | undefined
  /** A client's pending look at what its site holds of its user. */
  private checkTimer: ReturnType<typeof setTimeout> | undefined
  /** Share requests under way from this peer (user, account, peer asked: {@link askingKey}), and their count. */
  private readonly asking = new Map<string, number>()
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
    this.timer = setInterval(() => { this.passSoon() }, CREDIT_PASS_MS)
    this.timer.unref()
    // a new policy (credit turned on, a quota set) is acted on when it arrives, not at the next pass: quotas minted, shares taken
    let seen = JSON.stringify(this.policy() ?? null)
    // a workstation's client: its user's credit or quota newly at its site's servers (a top-up, central's hand-over) is taken when it arrives
    const user = this.init.prefetchFor
    let atSite = user !== undefined ? this.heldAtSite(user) : ''
    let checking = false
    const check = (): void => {
      checking = false
      const now = user !== undefined ? this.heldAtSite(user) : ''
      if (now === atSite) return
      atSite = now
      this.passSoon()
    }
    this.onEntry = (doc: string): void => {
      if (doc === licenseDoc()) {
        const now = JSON.stringify(this.policy() ?? null)
        if (now === seen) return
        seen = now
        this.passSoon()
        return
      }
      const parsed = user !== undefined ? parseDocName(doc) : undefined
      if (parsed?.family !== 'escrow' || parsed.peer === undefined || parsed.peer === this.self || checking) return
      const who = this.c.membership.info(parsed.peer)
      if (who?.role !== 'central' && !(who?.role === 'site' && who.site === this.init.site)) return
      // updates come in bursts (a print's spend, a hand-over): looked at once they settled
      checking = true
      this.checkTimer = setTimeout(check, SITE_SHARE_CHECK_MS)
      this.checkTimer.unref()
    }
    this.c.store.on('entry', this.onEntry)
  }

  /** What the servers of this peer's site hold of `user`'s credit and this month's quotas (a key that changes with them). */
  private heldAtSite (user: string): string {
    const period = periodOf(this.c.clock.now())
    return [CREDIT_ACCOUNT, ...QUOTA_MEASURES.map((m) => quotaAccount(period, m))].map((account) => {
      let n = 0
      for (const [peer, amount] of this.view(user, account).shares) {
        const who = this.c.membership.info(peer)
        if (who?.role === 'site' && who.site === this.init.site) n += amount
      }
      return n
    }).join('/')
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    if (this.onEntry !== undefined) this.c.store.off('entry', this.onEntry)
    this.onEntry = undefined
    if (this.checkTimer !== undefined) clearTimeout(this.checkTimer)
    this.checkTimer = undefined
  }

  /** A pass in the background (its failure logged). */
  private passSoon (): void {
    void this.pass().catch((err: unknown) => this.log.error({ err }, 'credit pass failed'))
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

  /** The user's shares of `account` (default: credit) from every escrow document this peer holds. */
  view (user: string, account = CREDIT_ACCOUNT): CreditView {
    return sharesOf(this.escrowDocs(), user, (p) => this.c.membership.info(p)?.role, account, this.c.membership.authority)
  }

  /** Whether calls for `user` are under way on this peer (its queue is not empty). */
  busy (user: string): boolean {
    return this.queues.has(user)
  }

  /** What this peer holds of the user's `account` (default: credit). */
  here (user: string, account = CREDIT_ACCOUNT): number {
    return this.view(user, account).shares.get(this.self) ?? 0
  }

  /** The user's monthly quota per measure (the policy's rules and the directory's groups); absent measures are not limited. */
  quotas (user: string): Partial<Record<QuotaMeasure, number>> {
    const directory = this.c.store.get(directoryDoc())
    if (directory !== undefined) return quotaOf(this.policy(), user, getUser(directory, user)?.groups ?? [])
    // a workstation's client has no directory (it holds credentials): the quotas the authority minted for the user this month say it
    const period = periodOf(this.c.clock.now())
    const out: Partial<Record<QuotaMeasure, number>> = {}
    for (const m of QUOTA_MEASURES) {
      const minted = this.view(user, quotaAccount(period, m)).credited
      if (minted > 0) out[m] = minted
    }
    return out
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
      enforced: this.policy()?.enforced === true,
      quotas: this.quotaStatus(user)
    }
  }

  /**
   * Every user with credit or quota entries, matching `q` (a part of the name), by name: their
   * balance and this month's quotas, as this peer's replicas tell (central's: the whole mesh).
   */
  list (q: string, offset: number, limit: number): { users: CreditSummary[], total: number } {
    const totals = creditTotals(this.escrowDocs(), (p) => this.c.membership.info(p)?.role, this.c.membership.authority)
    const needle = q.toLowerCase()
    const names = [...totals.keys()].filter((u) => u.toLowerCase().includes(needle)).sort()
    const period = periodOf(this.c.clock.now())
    const currency = this.currency()
    const users = names.slice(offset, offset + limit).map((user): CreditSummary => {
      const accounts = totals.get(user) ?? new Map()
      const credit = accounts.get(CREDIT_ACCOUNT) ?? { credited: 0, spent: 0, reserved: 0 }
      const limits = this.quotas(user)
      return {
        user,
        ...(currency !== undefined ? { currency } : {}),
        balance: credit.credited - credit.spent,
        credited: credit.credited,
        spent: credit.spent,
        reserved: credit.reserved,
        quotas: QUOTA_MEASURES.flatMap((measure) => {
          const quota = limits[measure]
          if (quota === undefined) return []
          const t = accounts.get(quotaAccount(period, measure)) ?? { credited: 0, spent: 0, reserved: 0 }
          return [{ measure, period, quota, used: t.spent, left: Math.max(0, Math.max(quota, t.credited) - t.spent) }]
        })
      }
    })
    return { users, total: names.length }
  }

  /** The user's quotas this month: the quota, what was used, what is left, what this peer holds. */
  private quotaStatus (user: string): QuotaStatus[] {
    const period = periodOf(this.c.clock.now())
    return QUOTA_MEASURES.flatMap((measure) => {
      const quota = this.quotas(user)[measure]
      if (quota === undefined) return []
      const v = this.view(user, quotaAccount(period, measure))
      return [{ measure, period, quota, used: v.spent, left: Math.max(0, Math.max(quota, v.credited) - v.spent), here: v.shares.get(this.self) ?? 0 }]
    })
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
    const needs = await this.needs(job, printer, false)
    if (needs.length === 0) return { monochrome: false }
    return await this.serial(job.owner, async () => {
      const short = await this.reserveAll(job, needs, signal)
      if (short === undefined) return { monochrome: false }
      const policy = this.policy()
      if ((job.colorPages ?? 0) > 0 && this.init.site !== undefined && policy !== undefined && atZeroFor(policy, this.init.site) === 'mono-only') {
        if (await this.reserveAll(job, await this.needs(job, printer, true), signal) === undefined) {
          this.log.info({ user: job.owner, job: job.id, short: short.account }, 'credit or quota covers the job in monochrome only: printed in monochrome')
          return { monochrome: true }
        }
      }
      throw new CreditRefusedError(this.shortMessage(job.owner, short))
    })
  }

  async settle (job: JobRecord, charged: { pages: number, colorPages: number, cost?: UsageCost }): Promise<void> {
    const id = usageId(job)
    const spends = this.spendsOf(id)
    const enforced = this.policy()?.enforced === true
    if (spends.length === 0 && !enforced) return
    const accounts = new Set(spends.map((e) => accountOf(e)))
    if (enforced) accounts.add(CREDIT_ACCOUNT) // a print charged without a reservation (settled after a restart) still pays
    const amounts = [...accounts].map((account) => ({ account, amount: amountFor(account, charged) }))
    const own = this.c.store.get(escrowDoc(this.self))
    if (amounts.every(({ account, amount }) => { const held = getSpend(own, id, account); return held?.settled === true && held.amount === amount })) return
    await this.serial(job.owner, async () => {
      await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => {
        for (const { account, amount } of amounts) setSpend(d, { type: 'spend', account, user: job.owner, amount, usageId: id, settled: true, time: this.c.clock.now() })
      })
    })
  }

  async release (job: JobRecord): Promise<void> {
    const id = usageId(job)
    if (!this.spendsOf(id).some((e) => !e.settled)) return
    await this.serial(job.owner, async () => { await this.dropReservations(job.owner, id) })
  }

  /** What `job` (as printed: monochrome or not) needs of each account that limits its owner here: credit when enforced and priced, and this month's quotas the owner has. */
  private async needs (job: JobRecord, printer: string, monochrome: boolean): Promise<Need[]> {
    const cost = await this.costOf(job, printer, monochrome)
    const charge = printCharge(monochrome ? { ...job, colorPages: 0 } : job, undefined, monochrome)
    const out: Need[] = []
    if (this.policy()?.enforced === true && cost !== undefined) out.push({ account: CREDIT_ACCOUNT, amount: cost })
    const quota = this.quotas(job.owner)
    const period = periodOf(this.c.clock.now())
    if (quota.pages !== undefined) out.push({ account: quotaAccount(period, 'pages'), amount: charge.pages })
    if (quota.colour !== undefined) out.push({ account: quotaAccount(period, 'colour'), amount: charge.colorPages })
    if (quota.cost !== undefined && cost !== undefined) out.push({ account: quotaAccount(period, 'cost'), amount: cost })
    return out.filter((n) => n.amount > 0)
  }

  /**
   * Reserves every need of the job, all or none (replacing what this usage id held before: a
   * retry, a restart, monochrome instead of colour); the first need that falls short, or
   * undefined when all are reserved. Runs inside the user's queue.
   */
  private async reserveAll (job: JobRecord, needs: Need[], signal: AbortSignal): Promise<Short | undefined> {
    const id = usageId(job)
    const own = (): Y.Doc | undefined => this.c.store.get(escrowDoc(this.self))
    for (const n of needs) {
      const held = getSpend(own(), id, n.account)
      const already = held !== undefined && !held.settled ? held.amount : 0
      const have = await this.gather(job.owner, n.amount - already, signal, n.account) + already
      if (have < n.amount) {
        await this.dropReservations(job.owner, id)
        return { ...n, have }
      }
    }
    const wanted = new Set(needs.map((n) => n.account))
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => {
      for (const e of this.spendsOf(id)) if (!e.settled && !wanted.has(accountOf(e))) setSpend(d, { ...e, usageId: id, amount: 0, settled: true, time: this.c.clock.now() })
      for (const n of needs) setSpend(d, { type: 'spend', account: n.account, user: job.owner, amount: n.amount, usageId: id, settled: false, time: this.c.clock.now() })
    })
    return undefined
  }

  /** This peer's spends paying for `usageId`, in every account. */
  private spendsOf (id: string): SpendEntry[] {
    const doc = this.c.store.get(escrowDoc(this.self))
    if (doc === undefined) return []
    return listEntries(doc).flatMap(([, e]) => e.type === 'spend' && e.usageId === id ? [e] : [])
  }

  /** Gives back every unsettled reservation of `usageId` (a print not charged). */
  private async dropReservations (user: string, id: string): Promise<void> {
    const open = this.spendsOf(id).filter((e) => !e.settled)
    if (open.length === 0) return
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => {
      for (const e of open) setSpend(d, { ...e, user, usageId: id, amount: 0, settled: true, time: this.c.clock.now() })
    })
  }

  // ---- copies (devices/jobs/credit-gate.ts CopyCredit) ----

  async allowCopy (user: string, signal: AbortSignal): Promise<void> {
    const accounts = this.copyAccounts(user)
    if (accounts.length === 0) return
    await this.prefetch(user, signal)
    // colour is not asked for: a user with no colour quota left may still copy in monochrome (the session ends at the first colour page)
    for (const account of accounts.filter((a) => parseQuotaAccount(a)?.measure !== 'colour')) {
      if (this.here(user, account) <= 0) await this.serial(user, async () => await this.gather(user, 1, signal, account))
      const have = this.here(user, account)
      if (have <= 0) throw new CreditRefusedError(this.shortMessage(user, { account, amount: 1, have }, true))
    }
  }

  copyAllowance (user: string): CopyAllowance | undefined {
    const accounts = this.copyAccounts(user)
    if (accounts.length === 0) return undefined
    const out: CopyAllowance = {}
    for (const account of accounts) {
      const held = this.here(user, account)
      const measure = parseQuotaAccount(account)?.measure
      if (measure === 'pages') out.pages = held
      else if (measure === 'colour') out.colorPages = held
      else out.cost = Math.min(out.cost ?? held, held)
    }
    return out
  }

  async payCopy (id: string, user: string, charged: CopyCharged, signal: AbortSignal): Promise<Record<string, number>> {
    const accounts = this.copyAccounts(user, charged.at)
    const unpaid: Record<string, number> = {}
    if (accounts.length === 0) return unpaid
    await this.serial(user, async () => {
      for (const account of accounts) {
        const amount = amountFor(account, charged)
        if (amount <= 0) continue
        const held = getSpend(this.c.store.get(escrowDoc(this.self)), id, account)
        const paid = held?.settled === true
          ? held.amount // paid before a restart
          : Math.min(amount, await this.gather(user, amount, signal, account))
        if (held?.settled !== true) await this.writeSpend(user, id, paid, true, account)
        if (paid < amount) unpaid[account] = amount - paid
      }
    })
    if (Object.keys(unpaid).length > 0) this.log.warn({ user, usage: id, charged, unpaid }, 'copies beyond the credit or quota reachable: the rest is unpaid')
    return unpaid
  }

  /** The accounts that limit `user`'s copies: credit when enforced, the quotas the user has of the month of `at` (default now). */
  private copyAccounts (user: string, at = this.c.clock.now()): string[] {
    const out: string[] = []
    if (this.policy()?.enforced === true) out.push(CREDIT_ACCOUNT)
    const period = periodOf(at)
    const quota = this.quotas(user)
    for (const m of QUOTA_MEASURES) if (quota[m] !== undefined) out.push(quotaAccount(period, m))
    return out
  }

  // ---- shares between peers ----

  /** Answers another peer's share request: gives up to what is asked from the share held here. */
  async answer (peer: string, request: unknown): Promise<ShareAnswer> {
    const r = request as Partial<ShareRequest> | null
    if (typeof r !== 'object' || r === null || typeof r.user !== 'string' || r.user.length === 0 || r.user.length > 256 || !isPositiveAmount(r.amount) ||
      (r.account !== undefined && r.account !== CREDIT_ACCOUNT && (typeof r.account !== 'string' || parseQuotaAccount(r.account) === undefined)) ||
      (r.relays !== undefined && (!Number.isSafeInteger(r.relays) || r.relays < 0 || r.relays > MAX_SHARE_RELAYS)) ||
      (r.via !== undefined && (!Array.isArray(r.via) || r.via.length > MAX_SHARE_RELAYS || !r.via.every((p) => typeof p === 'string' && p.length > 0 && p.length <= 256)))) {
      throw new InvalidCreditRequestError(`a share request is {"user": "<name>", "amount": <minor units or pages>, "account"?: "credit" or "quota/<YYYY-MM>/<pages|colour|cost>", "relays"?: 0-${MAX_SHARE_RELAYS}, "via"?: [<peer ids passed>]}`)
    }
    if (this.c.membership.info(peer) === undefined) throw new InvalidCreditRequestError(`peer ${peer} is not a member of the mesh`)
    const { user, amount } = r as ShareRequest
    const account = r.account ?? CREDIT_ACCOUNT
    const relays = r.relays ?? 0
    if (this.self < peer && (this.asking.get(askingKey(user, account, peer)) ?? 0) > 0) {
      // this peer is short and asking the asker itself for the same account: answering from the user's queue would wait for that
      // ask, which waits for this answer; of two peers asking each other, the smaller id answers at once and the other waits
      this.log.info({ user, account, from: peer }, 'share request answered with nothing: this peer is asking the asker for the same credit')
      return { given: 0 }
    }
    return await this.serial(user, async () => {
      if (account !== CREDIT_ACCOUNT) await this.mintQuota(user, account)
      if (relays > 0 && this.here(user, account) < amount && isServer(this.c.membership.info(this.self)?.role)) {
        // short: gather the rest from peers this one reaches (not back along the chain), within the time the asker waits less one request's
        const passed = [...(r.via ?? []), peer]
        await this.gather(user, amount, this.timeout(shareRequestTimeout(relays - 1)), account, { relays: relays - 1, via: passed })
      }
      // what is held read inside the write: central's pass, which is not in this user's queue, cannot give the same credit
      const given = await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => {
        const give = Math.min(amount, this.here(user, account))
        if (give > 0) addEntry(d, randomUUID(), { type: 'give', ...accountField(account), user, amount: give, to: peer as PeerId, time: this.c.clock.now() })
        return Math.max(0, give)
      })
      if (given > 0) this.log.info({ user, account, to: peer, given }, 'credit share given')
      return { given }
    })
  }

  /**
   * A light peer takes part of its site's share of `user`'s credit ahead of need (at login), so
   * prints here work while the site is cut off: up to {@link PREFETCH_FRACTION} of what the two
   * hold together. Never rejects.
   */
  async prefetch (user: string, signal: AbortSignal): Promise<void> {
    if (this.link === undefined) return
    try {
      // in the user's queue: a print here meanwhile neither races it for the same shares nor ends its wait with another give
      await this.serial(user, async () => {
        if (this.policy()?.enforced === true) await this.prefetchAccount(user, CREDIT_ACCOUNT, signal)
        const period = periodOf(this.c.clock.now())
        const quota = this.quotas(user)
        for (const m of QUOTA_MEASURES) {
          const limit = quota[m]
          if (limit === undefined) continue
          const account = quotaAccount(period, m)
          await this.prefetchAccount(user, account, signal)
          // nothing at the site yet this month: the authority mints the quota when first asked
          const want = Math.floor(limit * PREFETCH_FRACTION) - this.here(user, account)
          if (this.here(user, account) === 0 && want > 0) await this.gather(user, want, signal, account)
        }
      })
    } catch (err) {
      this.log.warn({ user, err: (err as Error).message }, 'could not take a share of the user\'s credit ahead of need')
    }
  }

  /** Tops this peer's share of `account` up to a part of what it and its site's servers hold together: logging in again takes nothing more. */
  private async prefetchAccount (user: string, account: string, signal: AbortSignal): Promise<void> {
    const view = this.view(user, account)
    for (const peer of this.link?.reachable() ?? []) {
      const who = this.c.membership.info(peer)
      const share = view.shares.get(peer) ?? 0
      if (who?.role !== 'site' || who.site !== this.init.site || share <= 0) continue
      const mine = this.here(user, account)
      const ask = Math.floor((share + mine) * PREFETCH_FRACTION) - mine
      if (ask > 0) await this.askFor(peer, user, ask, signal, account)
    }
  }

  /**
   * Brings this peer's share of `user`'s `account` up to `needed` if it can, asking reachable
   * peers that hold shares (largest first), and for a quota the mesh's authority, which mints
   * it when first asked; returns the share then held. Runs inside the user's queue.
   */
  private async gather (user: string, needed: number, signal: AbortSignal, account = CREDIT_ACCOUNT, chain: Relay = { relays: MAX_SHARE_RELAYS, via: [] }): Promise<number> {
    const quota = account !== CREDIT_ACCOUNT
    if (quota) await this.mintQuota(user, account)
    let have = this.here(user, account)
    if (have >= needed || this.link === undefined) return have
    const view = this.view(user, account)
    const authority = this.c.membership.authority
    const reachable = this.link.reachable().filter((p) => p !== this.self && !chain.via.includes(p))
    const holders = reachable
      .filter((p) => (view.shares.get(p) ?? 0) > 0 || (quota && p === authority))
      .sort((a, b) => (view.shares.get(b) ?? 0) - (view.shares.get(a) ?? 0))
    // holders first, asked for what they hold and may pass on; then servers that hold nothing but may reach holders this peer does not
    const unreached = [...view.shares].some(([p, a]) => a > 0 && p !== this.self && !chain.via.includes(p) && !reachable.includes(p))
    const relayers = chain.relays > 0 && unreached ? reachable.filter((p) => !holders.includes(p) && isServer(this.c.membership.info(p)?.role)) : []
    for (const peer of [...holders, ...relayers]) {
      if (signal.aborted) break
      // only sites and central pass a request on: a terminal or a client asked for more than it holds gives what it has
      await this.askFor(peer, user, needed - have, signal, account, isServer(this.c.membership.info(peer)?.role) ? chain : { relays: 0, via: chain.via })
      have = this.here(user, account)
      if (have >= needed) break
    }
    return have
  }

  /** Asks `peer` for `amount` of `user`'s `account` and waits until what it gave has arrived here. */
  private async askFor (peer: string, user: string, amount: number, signal: AbortSignal, account = CREDIT_ACCOUNT, chain: Relay = { relays: 0, via: [] }): Promise<void> {
    if (this.link === undefined) return
    const key = askingKey(user, account, peer)
    this.asking.set(key, (this.asking.get(key) ?? 0) + 1)
    try {
      await this.askAndWait(peer, user, amount, signal, account, chain)
    } finally {
      const n = (this.asking.get(key) ?? 1) - 1
      if (n > 0) this.asking.set(key, n)
      else this.asking.delete(key)
    }
  }

  private async askAndWait (peer: string, user: string, amount: number, signal: AbortSignal, account: string, chain: Relay): Promise<void> {
    if (this.link === undefined) return
    const before = this.received(peer, user, account)
    let answer: ShareAnswer
    try {
      const relaying = chain.relays > 0 ? { relays: chain.relays, ...(chain.via.length > 0 ? { via: chain.via } : {}) } : {}
      answer = await this.link.ask(peer, { user, amount, ...accountField(account), ...relaying }, AbortSignal.any([signal, this.timeout(shareRequestTimeout(chain.relays))]))
    } catch (err) {
      this.log.info({ peer, user, account, err: (err as Error).message }, 'share request not answered')
      return
    }
    if (!Number.isSafeInteger(answer.given) || answer.given <= 0) return
    await this.arrival(peer, () => this.received(peer, user, account) >= before + answer.given, signal)
  }

  /** What `peer` gave this peer of `user`'s `account`, as far as its document here tells. */
  private received (peer: string, user: string, account: string): number {
    const doc = this.c.store.get(escrowDoc(peer as PeerId))
    if (doc === undefined) return 0
    let sum = 0
    for (const [, e] of listEntries(doc)) if (e.type === 'give' && e.to === this.self && e.user === user && accountOf(e) === account) sum += e.amount
    return sum
  }

  /**
   * The mesh's authority mints a user's quota of a month (`account`) from the policy: what the
   * rules give less what it minted already (a raised quota mints the difference; a lowered
   * one takes nothing back). Only the current and the next month; anyone else does nothing.
   */
  private async mintQuota (user: string, account: string): Promise<void> {
    const q = parseQuotaAccount(account)
    if (q === undefined || this.c.membership.authority !== this.self) return
    const now = periodOf(this.c.clock.now())
    if (q.period !== now && q.period !== nextPeriod(now)) return
    const limit = this.quotas(user)[q.measure]
    if (limit === undefined) return
    const own = this.c.store.get(escrowDoc(this.self))
    const minted = own === undefined ? 0 : listEntries(own).reduce((n, [, e]) => n + (e.type === 'mint' && e.user === user && accountOf(e) === account ? e.amount : 0), 0)
    if (limit <= minted) return
    // the id is the state it was minted from: minting again from the same state is a no-op
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => addEntry(d, `quota:${account}:${user}:${minted}`, { type: 'mint', account, user, amount: limit - minted, reason: `quota ${q.period}`, by: 'policy', time: this.c.clock.now() }))
    this.log.info({ user, account, amount: limit - minted }, 'monthly quota minted')
  }

  /** A signal aborted `ms` from now on the node's clock (the simulator's virtual one; else a timer). */
  private timeout (ms: number): AbortSignal {
    const schedule = this.c.clock.schedule
    if (schedule === undefined) return AbortSignal.timeout(ms)
    const controller = new AbortController()
    schedule(() => { controller.abort(new Error(`timed out after ${ms} ms`)) }, ms)
    return controller.signal
  }

  /** Resolves once `done()` holds after an update of `peer`'s escrow document arrived (or at once), or after the arrival deadline. */
  private async arrival (peer: string, done: () => boolean, signal: AbortSignal): Promise<void> {
    if (done()) return
    const name = escrowDoc(peer as PeerId)
    await new Promise<void>((resolve) => {
      const deadline = this.timeout(SHARE_ARRIVAL_TIMEOUT_MS)
      const finish = (): void => { this.c.store.off('entry', onEntry); signal.removeEventListener('abort', finish); deadline.removeEventListener('abort', finish); resolve() }
      const onEntry = (doc: string): void => { if (doc === name && done()) finish() }
      this.c.store.on('entry', onEntry)
      signal.addEventListener('abort', finish)
      deadline.addEventListener('abort', finish)
    })
  }

  // ---- the pass: central hands credit to home sites; crashed reservations settled ----

  /** One pass (every {@link CREDIT_PASS_MS}): exported for tests and the simulator. */
  async pass (): Promise<void> {
    await this.settleLeftovers()
    await this.premintQuotas()
    if (this.init.prefetchFor !== undefined) await this.prefetch(this.init.prefetchFor, this.timeout(SHARE_REQUEST_TIMEOUT_MS * 4))
    const role = this.c.membership.info(this.self)?.role
    if (role === 'central' || role === 'site' || this.init.site === undefined) await this.passOnToHomeSites()
  }

  /** Reservations this peer left unsettled (a crash between reserve and charge): settled from its accounting, or given back once stale. */
  private async settleLeftovers (): Promise<void> {
    const doc = this.c.store.get(escrowDoc(this.self))
    if (doc === undefined) return
    const now = this.c.clock.now()
    for (const [, e] of listEntries(doc)) {
      if (e.type !== 'spend' || e.settled || e.usageId === undefined) continue
      const usage = e.usageId
      const record = await this.chargedHere(usage, e.time, now)
      const spend = (amount: number): SpendEntry & { usageId: string } => ({ ...e, usageId: usage, amount, settled: true, time: now })
      if (record !== undefined) await this.serial(e.user, async () => { await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { setSpend(d, spend(amountFor(accountOf(e), record))) }) })
      else if (now - e.time > RESERVATION_TTL_MS) await this.serial(e.user, async () => { await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { setSpend(d, spend(0)) }) })
    }
  }

  /** The usage record this peer charged under `id` (in the periods between `since` and `now`), if it did. */
  private async chargedHere (id: string, since: number, now: number): Promise<UsageRecord | undefined> {
    for (const period of new Set([periodOf(since), periodOf(now)])) {
      const record = listUsage(await this.c.store.open(acctDoc(this.self, period))).find((r) => r.id === id)
      if (record !== undefined) return record
    }
    return undefined
  }

  /**
   * The authority mints this month's quotas of every user the rules give one (so a peer that
   * knows no groups, a workstation's client, learns them from the mints), and from day
   * {@link QUOTA_PREMINT_DAY} next month's, so a month starts with quotas in place even while
   * it is down. One pass of the directory; each user's quota minted once (a raised one: the difference).
   */
  private async premintQuotas (): Promise<void> {
    const directory = this.c.store.get(directoryDoc())
    const policy = this.policy()
    if (directory === undefined || this.c.membership.authority !== this.self || (policy?.quotas ?? []).length === 0) return
    const now = this.c.clock.now()
    const periods = [periodOf(now), ...(new Date(now).getUTCDate() >= QUOTA_PREMINT_DAY ? [nextPeriod(periodOf(now))] : [])]
    const minted = new Map<string, number>()
    for (const [, e] of listEntries(await this.c.store.open(escrowDoc(this.self)))) {
      if (e.type === 'mint' && e.account !== undefined) minted.set(`${e.user}\n${e.account}`, (minted.get(`${e.user}\n${e.account}`) ?? 0) + e.amount)
    }
    const mints: Array<{ id: string, entry: MintEntry }> = []
    for (const u of listUsers(directory)) {
      if (u.disabled === true) continue
      const limits = quotaOf(policy, u.username, u.groups ?? [])
      for (const period of periods) {
        for (const m of QUOTA_MEASURES) {
          const limit = limits[m]
          const account = quotaAccount(period, m)
          const have = minted.get(`${u.username}\n${account}`) ?? 0
          if (limit === undefined || limit <= have) continue
          mints.push({ id: `quota:${account}:${u.username}:${have}`, entry: { type: 'mint', account, user: u.username, amount: limit - have, reason: `quota ${period}`, by: 'policy', time: now } })
        }
      }
    }
    if (mints.length === 0) return
    // one write for the whole pass: thousands of users cost one envelope, not thousands
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { for (const { id, entry } of mints) addEntry(d, id, entry) })
    this.log.info({ mints: mints.length, periods }, 'monthly quotas minted')
  }

  /**
   * Central keeps no credit, and a site none of other sites' users (a top-up made there, what a
   * visitor's print gathered and left): each user's share goes to a reachable server of their home site.
   */
  private async passOnToHomeSites (): Promise<void> {
    const own = this.c.store.get(escrowDoc(this.self))
    const directory = this.c.store.get(directoryDoc())
    if (own === undefined || directory === undefined || this.link === undefined) return
    const reachable = new Set(this.link.reachable())
    const servers = new Map<string, string | undefined>()
    const serverOf = (site: string): string | undefined => {
      if (!servers.has(site)) servers.set(site, this.sitePeers(site).find((p) => reachable.has(p)))
      return servers.get(site)
    }
    let given = 0
    // one write for the whole pass, its amounts read inside it: a share request answered meanwhile cannot give the same credit
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => {
      const held = sharesAt(this.escrowDocs(), this.self, (p) => this.c.membership.info(p)?.role, this.c.membership.authority)
      for (const [user, accounts] of held) {
        const home = getUser(directory, user)?.homeSite
        // a site keeps its own users' credit; a user with a reservation or a share request under way here is left for the next pass
        if (home === this.init.site || this.queues.has(user)) continue
        const server = home === undefined ? undefined : serverOf(home)
        if (server === undefined) continue
        for (const [account, amount] of accounts) {
          if (amount <= 0) continue
          addEntry(d, randomUUID(), { type: 'give', ...accountField(account), user, amount, to: server as PeerId, time: this.c.clock.now() })
          given++
        }
      }
    })
    if (given > 0) this.log.info({ shares: given }, 'credit passed on to the users\' home sites')
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
  private elsewhere (user: string, account = CREDIT_ACCOUNT): number {
    return [...this.view(user, account).shares].filter(([p, a]) => p !== this.self && a > 0).reduce((n, [, a]) => n + a, 0)
  }

  /** Why a job is refused: what it needs of the account that fell short, what is available here, and where the rest is. */
  private shortMessage (user: string, short: Short, copying = false): string {
    const cur = this.currency()
    const q = parseQuotaAccount(short.account)
    const amount = (n: number): string => q?.measure === 'pages' ? `${n} pages` : q?.measure === 'colour' ? `${n} colour pages` : money(n, cur)
    const view = this.view(user, short.account)
    const elsewhere = this.elsewhere(user, short.account)
    if (q === undefined) {
      const where = elsewhere > 0
        ? `; ${money(elsewhere, cur)} more is held by peers that cannot be reached from here now`
        : view.credited - view.spent <= short.have ? `; top up to ${copying ? 'copy' : 'print it'}` : ''
      return copying
        ? `not enough credit to copy: ${user} has ${money(short.have, cur)} available here${where}`
        : `not enough credit: this job costs ${money(short.amount, cur)}, ${user} has ${money(short.have, cur)} available here${where}`
    }
    const label = { pages: 'page quota', colour: 'colour page quota', cost: 'spending quota' }[q.measure]
    const where = elsewhere > 0
      ? `; ${amount(elsewhere)} more is held by peers that cannot be reached from here now`
      : view.credited - view.spent <= short.have ? `; the ${label} is renewed on the 1st of next month` : ''
    return `${label} of ${q.period} used up: ${copying ? 'nothing left to copy' : `this job needs ${amount(short.amount)}`}, ${user} has ${amount(short.have)} left here${where}`
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

  private async writeSpend (user: string, id: string, amount: number, settled: boolean, account = CREDIT_ACCOUNT): Promise<void> {
    await this.c.store.transact(escrowDoc(this.self), { kind: 'local', service: 'credit' }, (d) => { setSpend(d, { type: 'spend', ...accountField(account), user, amount, usageId: id, settled, time: this.c.clock.now() }) })
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

/** How far a share request may still be passed on, and the peers it passed (none of them is asked). */
interface Relay { relays: number, via: string[] }

/** The key of this peer asking `peer` for `user`'s `account`. */
function askingKey (user: string, account: string, peer: string): string { return `${user}\u0000${account}\u0000${peer}` }

/** Sites and central pass share requests on; terminals and clients only hold shares. */
function isServer (role: string | undefined): boolean { return role === 'site' || role === 'central' }

/** What a job needs of one account: minor units, pages or colour pages. */
interface Need { account: string, amount: number }
/** A need that could not be met: what this peer had. */
interface Short extends Need { have: number }

/** From this day of a month (UTC) the authority mints next month's quotas ahead: ten days before central's outage at a month's start would matter. */
export const QUOTA_PREMINT_DAY = 20


/** The `account` field of an entry: none for credit (the entries before quotas had none). */
function accountField (account: string): { account?: string } {
  return account === CREDIT_ACCOUNT ? {} : { account }
}

/** What a charge amounts to in `account`: money for credit and cost quotas, pages, colour pages. */
function amountFor (account: string, charged: { pages: number, colorPages: number, cost?: UsageCost }): number {
  const measure = parseQuotaAccount(account)?.measure
  return measure === 'pages' ? charged.pages : measure === 'colour' ? charged.colorPages : charged.cost?.amount ?? 0
}

/** The month after `period` (`YYYY-MM`). */
function nextPeriod (period: string): string {
  const [y, m] = period.split('-').map(Number)
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, '0')}`
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
        unhandle = await handleRpc(c.host, ESCROW_PROTOCOL, async (peer, request) => await c.credit.answer(peer, request), c.logger, shareRequestTimeout(MAX_SHARE_RELAYS))
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
