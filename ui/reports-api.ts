/**
 * What the HTTP layer may ask of a node's reports (ui/routes/reports.ts): totals and
 * breakdowns over every accounting document the node holds (central holds all), how up to
 * date each peer's accounting is, and the price lists. Implemented by node/reports.ts.
 * Money is in integer minor units (cents) of its currency, never floats.
 */
import type { PriceList, SitePrices } from '../crdt/prices.ts'
import type { UsageRecord } from '../crdt/accounting.ts'

/** What a report can be broken down by (`groupBy`, up to {@link MAX_GROUP_BY} at once, e.g. `day,site`). */
export const DIMENSIONS = ['user', 'group', 'site', 'printer', 'peer', 'kind', 'color', 'sides', 'media', 'day', 'week', 'month'] as const
export type Dimension = typeof DIMENSIONS[number]
/** Two dimensions draw a chart's series (pages by day and site); more is a pivot table, not a report. */
export const MAX_GROUP_BY = 2

/** Which records a report counts; every field optional. */
export interface ReportFilter {
  /** ms since epoch, inclusive. */
  from?: number
  /** ms since epoch, exclusive. */
  to?: number
  site?: string
  user?: string
  /** A directory group: records of its members. */
  group?: string
  /** A printer name, or `<site>/<printer>`. */
  printer?: string
  kind?: 'print' | 'copy'
  /** The peer whose accounting document holds the record. */
  peer?: string
}

export interface ReportQuery extends ReportFilter {
  groupBy: Dimension[]
  /** How many top users and printers (default 10). */
  top?: number
}

/** Totals of a set of usage records (each usage id once). */
export interface ReportTotals {
  /** Usage records (a print job, a copy run). */
  records: number
  pages: number
  colorPages: number
  monoPages: number
  sheets: number
  copies: number
  /** Pages printed two-sided. */
  duplexPages: number
  /** Sheets duplex saved: duplex pages minus the sheets they took. */
  sheetsSaved: number
  /** Minor units by currency, of the priced records. */
  cost: Record<string, number>
  /** Records without a price (written before a price list, or no rule applied). */
  unpriced: number
}

export interface ReportRow extends ReportTotals {
  /** One value per `groupBy` dimension, in order (`(none)` for a user without a group, an unknown media). */
  keys: string[]
}

/** How up to date one peer's accounting is here, so a total is never silently partial. */
export interface PeerFreshness {
  peer: string
  role?: string
  site?: string
  /** This node itself (always up to date). */
  self?: true
  connected: boolean
  /** Its certificate was revoked: it sends nothing more, so it is never pending. */
  revoked?: true
  /** Time of the newest record of this peer held here. */
  lastRecordAt?: number
  /** Records of this peer held here (before de-duplication across peers). */
  records: number
  /** Not connected: its records since this time may be missing here (its last record, else when it was last seen). */
  pendingSince?: number
}

export interface Report {
  generatedAt: number
  groupBy: Dimension[]
  filter: ReportFilter
  /** The currency of the mesh price list in force, when there is one. */
  currency?: string
  totals: ReportTotals
  rows: ReportRow[]
  top: { users: ReportRow[], printers: ReportRow[] }
  /** Every peer that writes accounting, as known here. */
  peers: PeerFreshness[]
  /** The peers not connected now: "pending from site X since T". */
  pending: PeerFreshness[]
}

/** A user's own usage (self-service). */
export interface MyUsage {
  user: string
  totals: ReportTotals
  records: UsageRecord[]
  pending: PeerFreshness[]
}

export interface ReportsApi {
  report (query: ReportQuery): Report
  /** One user's records and totals (no group or peer filter). */
  mine (user: string, filter: ReportFilter): MyUsage
  /** The mesh price list and this site's overrides (when the node is a site). */
  prices (): { list?: PriceList, site?: SitePrices }
  /** Replaces the mesh price list; only where this node is the mesh's authority. @throws InvalidRequestError, NotCentralError */
  setPriceList (input: unknown, by: string): Promise<PriceList>
  /** Replaces this site's overrides; only on a site. @throws InvalidRequestError */
  setSitePrices (input: unknown, by: string): Promise<SitePrices>
}
