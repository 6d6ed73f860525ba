/**
 * Credit and quotas at release (issue 20): before a print, the peer that prints reserves what
 * it will cost the job's owner (money, and pages against monthly quotas) from the shares it holds for them; after it, the reservation is
 * settled to what was charged, or given back when nothing was. The print engine
 * (print-engine.ts) calls these; node/credit.ts implements them over the escrow family
 * (crdt/escrow.ts), asking other peers for shares when this one holds too little. Every call
 * is keyed by the job's usage id, so a retry or a restart reserves and settles once.
 */
import type { JobRecord } from '../../crdt/jobs.ts'
import type { UsageCost } from '../../crdt/accounting.ts'

/** What a reservation decided. */
export interface CreditReserved {
  /** The credit covers only a monochrome print and the site's policy allows one: print it in monochrome. */
  monochrome: boolean
}

export interface CreditGate {
  /**
   * Reserves the cost of printing `job` (as the policy prints it) at `printer` for its owner.
   * @throws CreditRefusedError saying what the job costs and what is available here
   */
  reserve: (job: JobRecord, printer: string, signal: AbortSignal) => Promise<CreditReserved>
  /** The print was charged (its pages, colour pages and price, none when unpriced): the reservations become those spends. */
  settle: (job: JobRecord, charged: { pages: number, colorPages: number, cost?: UsageCost }) => Promise<void>
  /** The print was not charged: the reservation returns to this peer's share. */
  release: (job: JobRecord) => Promise<void>
}

/** A job whose cost the owner's credit here does not cover; the message says how much is available and why. */
export class CreditRefusedError extends Error {
  override readonly name = 'CreditRefusedError'
  /** The job's `state-reason` while it waits, held, for more credit. */
  readonly reason = 'credit-exhausted'
}

/** What copies may still use here of each limit on the user (absent: that measure is not limited). */
export interface CopyAllowance {
  /** Minor units: the least of the user's credit held here (credit enforced) and this month's spending quota held here. */
  cost?: number
  /** This month's page quota held here. */
  pages?: number
  /** This month's colour page quota held here. */
  colorPages?: number
}

/** What a copy session was charged: pages, colour pages, and its price (none when copies are unpriced). */
export interface CopyCharged {
  pages: number
  colorPages: number
  cost?: UsageCost
  /** When the session started: its pages count against that month's quotas (a payment retried after midnight on the 1st pays the same accounts). Absent: now. */
  at?: number
}

/**
 * Credit and quotas for copy sessions at a terminal (node/copy-sessions.ts): a copy is charged
 * after the fact, from the device's counters, so a session is allowed only while some credit
 * and some page quota are reachable, is ended as soon as what it copied reaches what this peer
 * holds of any limit (as far as the counters, read every few seconds, allow), and pays at its
 * end what the shares cover.
 */
export interface CopyCredit {
  /** Takes shares for copying here and checks there is some of every limit but colour; @throws CreditRefusedError when one is used up */
  allowCopy: (user: string, signal: AbortSignal) => Promise<void>
  /** What copies may still use here; undefined when nothing limits the user. */
  copyAllowance: (user: string) => CopyAllowance | undefined
  /**
   * Pays a copy session's charge (`usageId`) from the shares here, gathering what lacks;
   * resolves to what could not be paid (copied beyond a limit), per account (`credit`,
   * `quota/<YYYY-MM>/<measure>`); empty when all was paid.
   */
  payCopy: (usageId: string, user: string, charged: CopyCharged, signal: AbortSignal) => Promise<Record<string, number>>
}
