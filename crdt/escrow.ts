/**
 * The escrow family: `v1/escrow/<peer>`, users' credit split into shares held by peers
 * (issue 20; DESIGN.md invariant 5: no user spends more than their credit, even while
 * partitioned). Each peer writes only its own document (crdt/membership.ts), an entry map
 * of three kinds:
 *
 *   mint   new credit for a user, created where an admin tops it up (a site or central);
 *          a negative adjustment is a `spend` without a usage id
 *   give   part of this peer's share of a user's credit handed to another peer
 *   spend  what a print or copy here cost the user, under its usage id (reserved before the
 *          print, settled to the charged amount after it, 0 when nothing was charged)
 *
 * A peer's share of a user's credit is what it minted, plus what others gave it (entries
 * in *their* documents naming it), less what it gave and spent. Nothing is ever written by
 * two peers, so there is nothing to merge: a give counts out of the giver the moment it is
 * written and into the receiver once the receiver holds the giver's document, so a share is
 * never counted at two peers, and a peer that spends only from its own share (serially,
 * knowing all of its own entries) can never make the user's total go below zero, whatever
 * the network does. Credit in flight (given, not yet seen by the receiver) is unspendable
 * for a while, never lost: it arrives with the giver's document.
 *
 * Every entry is in one account: `credit` (money, in integer minor units of the mesh's price
 * list currency, crdt/prices.ts; entries without an account are credit), or a monthly quota,
 * `quota/<YYYY-MM>/<pages|colour|cost>` ({@link quotaAccount}): pages, colour pages or money a
 * user may use that month, minted by the mesh's authority from the policy's quota rules
 * ({@link quotaOf}) and moving between peers like credit.
 *
 * Mints count only from peers that authenticate admins (sites, central): a terminal or a
 * client writing one into its own document makes no credit anywhere ({@link sharesOf} takes
 * the roles). What a peer's own entries say about its own share cannot be checked by others
 * (a forged overspend by a certified peer is visible in its signed document, not prevented).
 */
import type * as Y from 'yjs'
import { ADMIN_ISSUER_ROLES } from './capability.ts'
import type { Role } from './license.ts'
import { parseDocName, type PeerId } from './names.ts'

/** Top-ups and adjustments above this (a hundred million minor units) are typing mistakes, and far below float trouble. */
export const MAX_CREDIT_AMOUNT = 100_000_000

/** The account of users' prepaid money. */
export const CREDIT_ACCOUNT = 'credit'
/** What a monthly quota counts. */
export type QuotaMeasure = 'pages' | 'colour' | 'cost'
export const QUOTA_MEASURES: readonly QuotaMeasure[] = ['pages', 'colour', 'cost']

/** The account of a user's quota of `measure` for the month `period` (`YYYY-MM`). */
export function quotaAccount (period: string, measure: QuotaMeasure): string {
  return `quota/${period}/${measure}`
}

/** The period and measure of a quota account; undefined for credit or anything else. */
export function parseQuotaAccount (account: string): { period: string, measure: QuotaMeasure } | undefined {
  const m = /^quota\/(\d{4}-\d{2})\/(pages|colour|cost)$/.exec(account)
  return m === null ? undefined : { period: m[1], measure: m[2] as QuotaMeasure }
}

export interface MintEntry {
  type: 'mint'
  /** Absent: {@link CREDIT_ACCOUNT}. */
  account?: string
  user: string
  /** Minor units, > 0. */
  amount: number
  /** Why (a top-up, a refund): shown in the user's history. */
  reason: string
  /** The admin who topped up. */
  by: string
  time: number
}

export interface GiveEntry {
  type: 'give'
  account?: string
  user: string
  amount: number
  /** The peer receiving the share. */
  to: PeerId
  time: number
}

export interface SpendEntry {
  type: 'spend'
  account?: string
  user: string
  /** Minor units spent (a reservation until `settled`). */
  amount: number
  /** The usage record it pays for (`<jobId>/print`, a copy session's id); absent for an admin's deduction. */
  usageId?: string
  /** Why, for an admin's deduction. */
  reason?: string
  /** False while reserved for a print under way; true once the charge is known. */
  settled: boolean
  time: number
}

export type EscrowEntry = MintEntry | GiveEntry | SpendEntry

const entries = (doc: Y.Doc): Y.Map<EscrowEntry> => doc.getMap<EscrowEntry>('entries')

/** The account of an entry. */
export const accountOf = (e: { account?: string }): string => e.account ?? CREDIT_ACCOUNT

/** The id of the spend paying for a usage record: one per usage id and account per peer. */
export const spendId = (usageId: string, account = CREDIT_ACCOUNT): string => account === CREDIT_ACCOUNT ? `spend:${usageId}` : `spend:${usageId}:${account}`

/** Adds an entry under `id` (a mint's or give's fresh id); false when the id exists already. */
export function addEntry (doc: Y.Doc, id: string, entry: MintEntry | GiveEntry): boolean {
  const map = entries(doc)
  if (map.has(id)) return false
  map.set(id, { ...entry })
  return true
}

/** Sets the spend paying for `usageId` (a reservation, or its settlement). */
export function setSpend (doc: Y.Doc, spend: SpendEntry & { usageId: string }): void {
  entries(doc).set(spendId(spend.usageId, accountOf(spend)), { ...spend })
}

/** Records an admin's deduction under `id`. */
export function addDeduction (doc: Y.Doc, id: string, spend: Omit<SpendEntry, 'usageId' | 'settled'>): void {
  entries(doc).set(id, { ...spend, settled: true })
}

/** The spend paying for `usageId` in this peer's document, if any. */
export function getSpend (doc: Y.Doc | undefined, usageId: string, account = CREDIT_ACCOUNT): SpendEntry | undefined {
  const e = doc === undefined ? undefined : entries(doc).get(spendId(usageId, account))
  return e?.type === 'spend' ? e : undefined
}

/** Every entry of one peer's document, with its id. */
export function listEntries (doc: Y.Doc): Array<[string, EscrowEntry]> {
  return [...entries(doc).entries()]
}

const isAmount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_CREDIT_AMOUNT

/** Whether a replicated entry is well formed (anything else counts for nothing). */
function wellFormed (e: unknown): e is EscrowEntry {
  if (typeof e !== 'object' || e === null) return false
  const x = e as Record<string, unknown>
  if (typeof x.user !== 'string' || !isAmount(x.amount) || (x.account !== undefined && typeof x.account !== 'string')) return false
  return x.type === 'mint' || (x.type === 'give' && typeof x.to === 'string') || x.type === 'spend'
}

/** One user's credit as this peer's replicas tell it. */
export interface CreditView {
  /** Each peer's share now (only peers with a non-zero share or history). */
  shares: Map<string, number>
  /** Everything minted for the user. */
  credited: number
  /** Everything spent (reservations included). */
  spent: number
  /** Reserved for prints under way (part of `spent`). */
  reserved: number
}

/**
 * The user's shares of `account` at every peer, from the escrow documents `docs` (name →
 * document) this peer holds; `roleOf` tells whose mints count (undefined: not a member), and
 * `authority` is the only peer whose quota mints count.
 */
export function sharesOf (docs: Iterable<[string, Y.Doc]>, user: string, roleOf: (peer: string) => Role | undefined, account = CREDIT_ACCOUNT, authority?: string): CreditView {
  const quota = account !== CREDIT_ACCOUNT
  const shares = new Map<string, number>()
  const add = (peer: string, amount: number): void => { shares.set(peer, (shares.get(peer) ?? 0) + amount) }
  let credited = 0
  let spent = 0
  let reserved = 0
  for (const [name, doc] of docs) {
    const peer = parseDocName(name)
    if (peer?.family !== 'escrow' || peer.peer === undefined) continue
    const owner = peer.peer
    for (const e of entries(doc).values()) {
      if (!wellFormed(e) || e.user !== user || accountOf(e) !== account) continue
      if (e.type === 'mint') {
        const role = roleOf(owner)
        if (quota ? owner !== authority : role === undefined || !ADMIN_ISSUER_ROLES.includes(role)) continue
        add(owner, e.amount)
        credited += e.amount
      } else if (e.type === 'give') {
        add(owner, -e.amount)
        add(e.to, e.amount)
      } else {
        add(owner, -e.amount)
        spent += e.amount
        if (!e.settled) reserved += e.amount
      }
    }
  }
  return { shares, credited, spent, reserved }
}

/** What `peer` holds, per user and account (its mints and the gives naming it, less its own gives and spends), over every escrow document in `docs`. */
export function sharesAt (docs: Iterable<[string, Y.Doc]>, peer: string, roleOf: (peer: string) => Role | undefined, authority?: string): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>()
  const add = (user: string, account: string, amount: number): void => {
    const accounts = out.get(user) ?? new Map<string, number>()
    out.set(user, accounts)
    accounts.set(account, (accounts.get(account) ?? 0) + amount)
  }
  for (const [name, doc] of docs) {
    const owner = parseDocName(name)?.peer
    if (parseDocName(name)?.family !== 'escrow' || owner === undefined) continue
    for (const e of entries(doc).values()) {
      if (!wellFormed(e)) continue
      const account = accountOf(e)
      if (owner === peer && e.type === 'mint') {
        const role = roleOf(owner)
        if (account !== CREDIT_ACCOUNT ? owner === authority : role !== undefined && ADMIN_ISSUER_ROLES.includes(role)) add(e.user, account, e.amount)
      } else if (e.type === 'give') {
        if (owner === peer) add(e.user, account, -e.amount)
        if (e.to === peer) add(e.user, account, e.amount)
      } else if (owner === peer && e.type === 'spend') {
        add(e.user, account, -e.amount)
      }
    }
  }
  return out
}

/** Per user and account: what was minted, spent and is reserved, over every escrow document in `docs` (the same counting rules as {@link sharesOf}). */
export function creditTotals (docs: Iterable<[string, Y.Doc]>, roleOf: (peer: string) => Role | undefined, authority?: string): Map<string, Map<string, { credited: number, spent: number, reserved: number }>> {
  const out = new Map<string, Map<string, { credited: number, spent: number, reserved: number }>>()
  const totals = (user: string, account: string): { credited: number, spent: number, reserved: number } => {
    const accounts = out.get(user) ?? new Map<string, { credited: number, spent: number, reserved: number }>()
    out.set(user, accounts)
    const t = accounts.get(account) ?? { credited: 0, spent: 0, reserved: 0 }
    accounts.set(account, t)
    return t
  }
  for (const [name, doc] of docs) {
    const owner = parseDocName(name)
    if (owner?.family !== 'escrow' || owner.peer === undefined) continue
    for (const e of entries(doc).values()) {
      if (!wellFormed(e)) continue
      const account = accountOf(e)
      if (e.type === 'mint') {
        const role = roleOf(owner.peer)
        const counts = account !== CREDIT_ACCOUNT ? owner.peer === authority : role !== undefined && ADMIN_ISSUER_ROLES.includes(role)
        if (counts) totals(e.user, account).credited += e.amount
      } else if (e.type === 'spend') {
        const t = totals(e.user, account)
        t.spent += e.amount
        if (!e.settled) t.reserved += e.amount
      }
    }
  }
  return out
}

/** What happens at a site when a user's credit does not cover a job: refuse it, or print it in monochrome when that fits. */
export type AtZero = 'refuse' | 'mono-only'

/**
 * A monthly quota: what a user (`user`) or each member of a group (`group`) may print in a
 * calendar month (UTC): pages, colour pages, money (minor units); an absent measure is not
 * limited. A user's own rule wins over their groups'; of several groups, the largest
 * allowance of each measure.
 */
export interface QuotaRule {
  user?: string
  group?: string
  pages?: number
  colour?: number
  cost?: number
}

/** The mesh's credit policy (in the license document, written by the mesh's authority). */
export interface CreditPolicy {
  /** Whether prints and copies need credit at all. */
  enforced: boolean
  /** Monthly quotas (none: no quota); applied whether or not credit is enforced. */
  quotas?: QuotaRule[]
  /** At every site not named in `sites`. */
  atZero: AtZero
  /** Per-site choice, by site id. */
  sites: Record<string, AtZero>
  updatedAt: number
  updatedBy: string
}

/** A credit policy that cannot be used; the message names the field. */
export class InvalidCreditPolicyError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidCreditPolicyError' }
}

const isAtZero = (v: unknown): v is AtZero => v === 'refuse' || v === 'mono-only'
/** Site ids as document names allow them. */
const SITE = /^[A-Za-z0-9._:-]{1,128}$/

/** Checks a policy from the API (`{enforced, atZero?, sites?}`). */
export function parseCreditPolicy (raw: unknown, by: string, now: number): CreditPolicy {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidCreditPolicyError('the credit policy must be an object like {"enforced":true,"atZero":"refuse","sites":{"site-b":"mono-only"}}')
  const r = raw as Record<string, unknown>
  for (const key of Object.keys(r)) if (!['enforced', 'atZero', 'sites', 'quotas'].includes(key)) throw new InvalidCreditPolicyError(`unknown field ${JSON.stringify(key)} (enforced, atZero, sites, quotas)`)
  if (typeof r.enforced !== 'boolean') throw new InvalidCreditPolicyError('enforced must be true or false')
  const atZero = r.atZero ?? 'refuse'
  if (!isAtZero(atZero)) throw new InvalidCreditPolicyError('atZero must be "refuse" or "mono-only"')
  const sites: Record<string, AtZero> = {}
  if (r.sites !== undefined) {
    if (typeof r.sites !== 'object' || r.sites === null || Array.isArray(r.sites)) throw new InvalidCreditPolicyError('sites must be an object of site id → "refuse" or "mono-only"')
    for (const [site, v] of Object.entries(r.sites)) {
      if (!SITE.test(site)) throw new InvalidCreditPolicyError(`sites: ${JSON.stringify(site)} is not a site id`)
      if (!isAtZero(v)) throw new InvalidCreditPolicyError(`sites.${site} must be "refuse" or "mono-only"`)
      sites[site] = v
    }
  }
  const quotas = parseQuotas(r.quotas)
  return { enforced: r.enforced, atZero, sites, ...(quotas.length > 0 ? { quotas } : {}), updatedAt: now, updatedBy: by }
}

/** More quota rules than this is a mistake, not a policy. */
export const MAX_QUOTA_RULES = 1000
/** User and group names as the directory allows them. */
const NAME = /^[^\s/]{1,128}$/

function parseQuotas (raw: unknown): QuotaRule[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) throw new InvalidCreditPolicyError('quotas must be a list like [{"group":"students","pages":100,"colour":20}]')
  if (raw.length > MAX_QUOTA_RULES) throw new InvalidCreditPolicyError(`quotas: at most ${MAX_QUOTA_RULES} rules`)
  return raw.map((q, i) => {
    const where = `quotas[${i}]`
    if (typeof q !== 'object' || q === null || Array.isArray(q)) throw new InvalidCreditPolicyError(`${where} must be an object like {"group":"students","pages":100}`)
    const x = q as Record<string, unknown>
    for (const key of Object.keys(x)) if (!['user', 'group', 'pages', 'colour', 'cost'].includes(key)) throw new InvalidCreditPolicyError(`${where}: unknown field ${JSON.stringify(key)} (user, group, pages, colour, cost)`)
    if ((x.user === undefined) === (x.group === undefined)) throw new InvalidCreditPolicyError(`${where} names a user or a group (one of them)`)
    for (const k of ['user', 'group'] as const) if (x[k] !== undefined && (typeof x[k] !== 'string' || !NAME.test(x[k] as string))) throw new InvalidCreditPolicyError(`${where}.${k} must be a user or group name`)
    const rule: QuotaRule = { ...(x.user !== undefined ? { user: x.user as string } : { group: x.group as string }) }
    for (const m of QUOTA_MEASURES) {
      if (x[m] === undefined) continue
      if (!isAmount(x[m])) throw new InvalidCreditPolicyError(`${where}.${m} must be a whole number from 0 to ${MAX_CREDIT_AMOUNT}`)
      rule[m] = x[m]
    }
    if (QUOTA_MEASURES.every((m) => rule[m] === undefined)) throw new InvalidCreditPolicyError(`${where} limits nothing: give pages, colour or cost`)
    return rule
  })
}

/** A user's monthly quota per measure under `policy` (their groups from the directory); undefined measures are not limited. */
export function quotaOf (policy: CreditPolicy | undefined, user: string, groups: readonly string[]): Partial<Record<QuotaMeasure, number>> {
  const rules = policy?.quotas ?? []
  const own = rules.find((q) => q.user === user)
  const member = new Set(groups.map((g) => g.toLowerCase()))
  const applicable = own !== undefined ? [own] : rules.filter((q) => q.group !== undefined && member.has(q.group.toLowerCase()))
  const out: Partial<Record<QuotaMeasure, number>> = {}
  for (const q of applicable) {
    for (const m of QUOTA_MEASURES) {
      const v = q[m]
      if (v !== undefined) out[m] = Math.max(out[m] ?? 0, v)
    }
  }
  return out
}

const creditMap = (license: Y.Doc): Y.Map<unknown> => license.getMap('credit')

/** The mesh's credit policy in the license document; undefined when none was set (credit not enforced). */
export function readCreditPolicy (license: Y.Doc | undefined): CreditPolicy | undefined {
  const raw = license === undefined ? undefined : creditMap(license).get('policy')
  return raw === undefined ? undefined : raw as CreditPolicy
}

/** Writes the mesh's credit policy (already checked) into the license document. */
export function writeCreditPolicy (license: Y.Doc, policy: CreditPolicy): void {
  creditMap(license).set('policy', structuredClone(policy))
}

/** What happens at `site` when credit runs short under `policy`. */
export function atZeroFor (policy: CreditPolicy, site: string): AtZero {
  return policy.sites[site] ?? policy.atZero
}
