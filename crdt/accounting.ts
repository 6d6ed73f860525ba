/**
 * The accounting family: `v1/acct/<peer>/<period>`, append-only usage records written by
 * the peer that printed or copied. Records are keyed by their unique id, so recording the
 * same usage twice (a retry, a replay, a merge of two histories) stores it once: invariant 3
 * of DESIGN.md ("every page charged exactly once") rests on deterministic ids.
 */
import type * as Y from 'yjs'

export interface UsageRecord {
  /** Unique and deterministic for the event charged, e.g. `<jobId>/print`. */
  id: string
  kind: 'print' | 'copy'
  user: string
  jobId: string
  jobName: string
  printer: string
  site: string
  /** Pages charged: document pages × copies. */
  pages: number
  /** Colour pages charged: colour pages × copies. */
  colorPages: number
  /** Sheets of paper: ceil(pages per copy / sides) × copies. */
  sheets: number
  duplex: boolean
  copies: number
  /** ms since epoch (UTC). */
  time: number
  /** PWG media name the job asked for (`iso_a4_210x297mm`); absent when unknown (and on records older than prices). */
  media?: string
  /** What it cost at the price list in force when it was written (crdt/prices.ts); absent: unpriced. */
  cost?: UsageCost
  /** Who released the job, when not the user charged (a delegate, an admin). */
  releasedBy?: string
}

/** The price a record was charged at: money in integer minor units (cents), never floats. */
export interface UsageCost {
  /** ISO 4217 code of the price list, e.g. `EUR`. */
  currency: string
  /** Minor units charged: mono pages × `mono` + colour pages × `colour`. */
  amount: number
  /** Minor units per mono page applied. */
  mono: number
  /** Minor units per colour page applied. */
  colour: number
}

const usageMap = (doc: Y.Doc): Y.Map<UsageRecord> => doc.getMap<UsageRecord>('usage')

/** Records usage once; returns false when a record with that id already exists. */
export function recordUsage (doc: Y.Doc, record: UsageRecord): boolean {
  const map = usageMap(doc)
  if (map.has(record.id)) return false
  map.set(record.id, { ...record })
  return true
}

/** Calls `fn` with each usage record added to `doc` from now on (local or replicated); returns the unsubscribe. */
export function observeUsage (doc: Y.Doc, fn: (added: UsageRecord) => void): () => void {
  const map = usageMap(doc)
  const observer = (event: Y.YMapEvent<UsageRecord>): void => {
    event.changes.keys.forEach((change, key) => {
      const record = map.get(key)
      if (change.action === 'add' && record !== undefined) fn(record)
    })
  }
  map.observe(observer)
  return () => map.unobserve(observer)
}

export function listUsage (doc: Y.Doc): UsageRecord[] {
  return [...usageMap(doc).values()]
}

/** How many usage records `doc` holds (without reading them). */
export function countUsage (doc: Y.Doc): number {
  return usageMap(doc).size
}

export function hasUsage (doc: Y.Doc, id: string): boolean {
  return usageMap(doc).has(id)
}

/** Sheets for a job: pages per copy over the sides, times copies. */
export function sheetsFor (pages: number, copies: number, duplex: boolean): number {
  return Math.ceil(pages / (duplex ? 2 : 1)) * copies
}

export interface UsageTotals {
  key: string
  jobs: number
  pages: number
  colorPages: number
  sheets: number
}

/** How usage can be totalled. */
export type TotalsBy = 'user' | 'printer' | 'day'

/** Totals by user, printer or UTC day (`YYYY-MM-DD`). */
export function totalUsageBy (records: Iterable<UsageRecord>, by: TotalsBy): UsageTotals[] {
  return totalUsage(records, by === 'user' ? (r) => r.user : by === 'printer' ? (r) => r.printer : (r) => new Date(r.time).toISOString().slice(0, 10))
}

/**
 * One record per id, the earliest (then by site): the same usage may sit in two peers'
 * documents (a job printed offline at two sites charges one id at each), and every report
 * and export must count it once.
 */
export function uniqueUsage (records: Iterable<UsageRecord>): UsageRecord[] {
  const byId = new Map<string, UsageRecord>()
  for (const r of records) {
    const kept = byId.get(r.id)
    if (kept === undefined || keepsOver(r, kept)) byId.set(r.id, r)
  }
  return [...byId.values()]
}

/** Whether `r` is kept over `kept`, another record of the same usage id ({@link uniqueUsage}'s rule; reports use it too). */
export function keepsOver (r: UsageRecord, kept: UsageRecord): boolean {
  return r.time < kept.time || (r.time === kept.time && r.site < kept.site)
}

/** Totals by a key (user, printer, UTC day); records are de-duplicated by id first. */
export function totalUsage (records: Iterable<UsageRecord>, keyOf: (r: UsageRecord) => string): UsageTotals[] {
  const totals = new Map<string, UsageTotals>()
  for (const r of uniqueUsage(records)) {
    const key = keyOf(r)
    const t = totals.get(key) ?? { key, jobs: 0, pages: 0, colorPages: 0, sheets: 0 }
    t.jobs++
    t.pages += r.pages
    t.colorPages += r.colorPages
    t.sheets += r.sheets
    totals.set(key, t)
  }
  return [...totals.values()].sort((a, b) => a.key.localeCompare(b.key))
}
