/**
 * Reports over every accounting document a node holds (central holds all): totals and
 * breakdowns by user, group, site, printer, peer, kind, colour, sides, media and period,
 * top users and printers, sheets saved by duplex, cost; and, per peer, how up to date its
 * accounting is here ("pending from site X since T"), so a total is never silently partial.
 *
 * {@link buildReport} is the engine, a pure function of the records held; {@link createReports}
 * wires it to a node's store, directory (groups) and mesh view (connections), and writes the
 * price lists (crdt/prices.ts): the mesh's where this node is the authority, a site's own
 * overrides on that site.
 */
import { countUsage, keepsOver, listUsage, type UsageRecord } from '../crdt/accounting.ts'
import { parseDocName, directoryDoc, licenseDoc, siteConfigDoc, siteId, type DocName, type SiteId } from '../crdt/names.ts'
import { listUsers } from '../crdt/directory.ts'
import { InvalidRequestError, NotCentralError } from '../crdt/errors.ts'
import type { DocStore } from '../crdt/store.ts'
import {
  InvalidPriceListError, parsePriceList, parseSitePrices, readPriceList, readSitePrices, writePriceList, writeSitePrices,
  type PriceList, type SitePrices
} from '../crdt/prices.ts'
import type { MeshPeerView } from '../ui/api.ts'
import { MAX_GROUP_BY } from '../ui/reports-api.ts'
import type {
  Dimension, MyUsage, PeerFreshness, Report, ReportFilter, ReportQuery, ReportRow, ReportTotals, ReportsApi
} from '../ui/reports-api.ts'

/** Top users and printers listed unless the query says otherwise: a screenful. */
export const DEFAULT_TOP = 10
/** Key of a user without a group, a record without a known media. */
export const NONE = '(none)'
const DAY_MS = 86_400_000

/** A usage record and the peer whose accounting document holds it. */
export interface HeldRecord { peer: string, record: UsageRecord }

/** What the engine knows besides the records. */
export interface ReportContext {
  now: number
  /** A user's directory groups. */
  groupsOf: (user: string) => readonly string[]
  /** Peers as the mesh knows them (role, site, connected, last seen); this node excluded. */
  peers: readonly MeshPeerView[]
  self: { peer: string, role: string, site?: string }
  /** The mesh price list's currency, when there is one. */
  currency?: string
}

/** ISO 8601 week of a moment (UTC), `2026-W49`. */
export function isoWeek (time: number): string {
  const d = new Date(time)
  const weekday = (d.getUTCDay() + 6) % 7 // Monday 0
  const thursday = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - weekday + 3))
  const year = thursday.getUTCFullYear()
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / DAY_MS / 7) + 1
  return `${year}-W${String(week).padStart(2, '0')}`
}

/** The printer's key in reports: printer names repeat across sites (every site's `virtual`). */
const printerKey = (r: UsageRecord): string => `${r.site}/${r.printer}`

/** UTC days as `YYYY-MM-DD` by day number, so a report formats each day once, not once per record. */
type DayNames = Map<number, string>

function dayName (time: number, days: DayNames): string {
  const n = Math.floor(time / DAY_MS)
  let name = days.get(n)
  if (name === undefined) days.set(n, name = new Date(n * DAY_MS).toISOString().slice(0, 10))
  return name
}

/** The values of one dimension for a record (a user in two groups counts in both). */
function keysOf (dim: Dimension, h: HeldRecord, ctx: ReportContext, days: DayNames): string[] {
  const r = h.record
  switch (dim) {
    case 'user': return [r.user]
    case 'group': { const g = ctx.groupsOf(r.user); return g.length > 0 ? [...g] : [NONE] }
    case 'site': return [r.site]
    case 'printer': return [printerKey(r)]
    case 'peer': return [h.peer]
    case 'kind': return [r.kind]
    case 'color': return [r.colorPages > 0 ? 'colour' : 'mono']
    case 'sides': return [r.duplex ? 'duplex' : 'simplex']
    case 'media': return [r.media ?? NONE]
    case 'day': return [dayName(r.time, days)]
    case 'week': return [isoWeek(r.time)]
    case 'month': return [dayName(r.time, days).slice(0, 7)]
  }
}

export function emptyTotals (): ReportTotals {
  return { records: 0, pages: 0, colorPages: 0, monoPages: 0, sheets: 0, copies: 0, duplexPages: 0, sheetsSaved: 0, cost: {}, unpriced: 0 }
}

/** Adds one record to totals (integers only: pages, sheets, minor units). */
export function addToTotals (t: ReportTotals, r: UsageRecord): void {
  t.records++
  t.pages += r.pages
  t.colorPages += r.colorPages
  t.monoPages += r.pages - r.colorPages
  t.sheets += r.sheets
  t.copies += r.copies
  if (r.duplex) {
    t.duplexPages += r.pages
    t.sheetsSaved += r.pages - r.sheets
  }
  if (r.cost === undefined) t.unpriced++
  else t.cost[r.cost.currency] = (t.cost[r.cost.currency] ?? 0) + r.cost.amount
}

function matchesFilter (h: HeldRecord, f: ReportFilter, ctx: ReportContext): boolean {
  const r = h.record
  if (f.from !== undefined && r.time < f.from) return false
  if (f.to !== undefined && r.time >= f.to) return false
  if (f.site !== undefined && r.site !== f.site) return false
  if (f.user !== undefined && r.user !== f.user) return false
  if (f.kind !== undefined && r.kind !== f.kind) return false
  if (f.peer !== undefined && h.peer !== f.peer) return false
  if (f.printer !== undefined && (f.printer.includes('/') ? printerKey(r) : r.printer) !== f.printer) return false
  if (f.group !== undefined && !ctx.groupsOf(r.user).includes(f.group)) return false
  return true
}

/**
 * Each usage id once, by the rule of crdt/accounting.ts `uniqueUsage` ({@link keepsOver}: the
 * earliest, then by site), keeping the peer that holds the record kept.
 */
export function uniqueHeld (held: readonly HeldRecord[]): HeldRecord[] {
  const byId = new Map<string, HeldRecord>()
  for (const h of held) {
    const kept = byId.get(h.record.id)
    if (kept === undefined || keepsOver(h.record, kept.record)) byId.set(h.record.id, h)
  }
  return [...byId.values()]
}

/** Rows of `dims` over `held`, sorted by their keys. */
function breakdown (held: readonly HeldRecord[], dims: readonly Dimension[], ctx: ReportContext): ReportRow[] {
  if (dims.length > MAX_GROUP_BY) throw new InvalidRequestError(`a report breaks down by at most ${MAX_GROUP_BY} dimensions`)
  const rows = new Map<string, ReportRow>()
  const days: DayNames = new Map()
  // a row's id joins its keys with a character no key holds (they are names, dates, keywords)
  const add = (keys: readonly string[], r: UsageRecord): void => {
    const id = keys.join('\u0000')
    let row = rows.get(id)
    if (row === undefined) rows.set(id, row = { keys: [...keys], ...emptyTotals() })
    addToTotals(row, r)
  }
  for (const h of held) {
    if (dims.length === 0) { add([], h.record); continue }
    for (const a of keysOf(dims[0], h, ctx, days)) {
      if (dims.length === 1) { add([a], h.record); continue }
      for (const b of keysOf(dims[1], h, ctx, days)) add([a, b], h.record)
    }
  }
  return [...rows.values()].sort((a, b) => {
    for (let i = 0; i < a.keys.length; i++) {
      const c = a.keys[i].localeCompare(b.keys[i])
      if (c !== 0) return c
    }
    return 0
  })
}

const byPagesDesc = (a: ReportRow, b: ReportRow): number => b.pages - a.pages || a.keys[0].localeCompare(b.keys[0])

/** Roles whose peers record usage (sites print, terminals print and copy): one of them not connected makes a report partial. */
const ACCOUNTING_ROLES = new Set(['site', 'terminal'])

/**
 * How up to date each accounting peer is here: every peer with records held, and every known
 * site and terminal (a workstation's client that never charged anything is not waited for).
 * A revoked peer will send nothing more: it is listed, never pending.
 */
export function freshness (stats: ReadonlyMap<string, PeerStats>, ctx: ReportContext): PeerFreshness[] {
  const known = new Map(ctx.peers.map((p) => [p.peer, p]))
  const ids = new Set<string>([...stats.keys(), ...ctx.peers.filter((p) => ACCOUNTING_ROLES.has(p.role ?? '') && !p.revoked).map((p) => p.peer)])
  ids.add(ctx.self.peer)
  if (ctx.self.role === 'central' && !stats.has(ctx.self.peer)) ids.delete(ctx.self.peer) // central writes no accounting
  return [...ids].sort().map((peer): PeerFreshness => {
    const s = stats.get(peer) ?? { records: 0 }
    const isSelf = peer === ctx.self.peer
    const view = known.get(peer)
    const role = isSelf ? ctx.self.role : view?.role
    const site = isSelf ? ctx.self.site : view?.site
    const connected = isSelf || view?.connected === true
    const revoked = !isSelf && view?.revoked === true
    const since = s.last ?? view?.lastSeen
    return {
      peer,
      ...(role !== undefined ? { role } : {}),
      ...(site !== undefined ? { site } : {}),
      ...(isSelf ? { self: true as const } : {}),
      connected,
      ...(s.last !== undefined ? { lastRecordAt: s.last } : {}),
      records: s.records,
      ...(revoked ? { revoked: true as const } : {}),
      ...(!connected && !revoked && since !== undefined ? { pendingSince: since } : {})
    }
  })
}

/** What a report says of one peer's records here: how many, and the time of the newest. */
export interface PeerStats { records: number, last?: number }

/** {@link PeerStats} of every peer with records in `held`. */
export function peerStats (held: readonly HeldRecord[]): Map<string, PeerStats> {
  const stats = new Map<string, PeerStats>()
  for (const h of held) {
    const s = stats.get(h.peer) ?? { records: 0 }
    s.records++
    if (s.last === undefined || h.record.time > s.last) s.last = h.record.time
    stats.set(h.peer, s)
  }
  return stats
}

/**
 * The report over `held` (the records this node holds, duplicates included; at least those
 * of the query's time range). `stats`: every peer's {@link PeerStats} over all it holds,
 * when `held` is only the range's (default: computed from `held`).
 */
export function buildReport (held: readonly HeldRecord[], query: ReportQuery, ctx: ReportContext, stats: ReadonlyMap<string, PeerStats> = peerStats(held)): Report {
  const { groupBy, top: topN = DEFAULT_TOP, ...filter } = query
  const counted = uniqueHeld(held).filter((h) => matchesFilter(h, filter, ctx))
  const totals = emptyTotals()
  for (const h of counted) addToTotals(totals, h.record)
  const peers = freshness(stats, ctx)
  return {
    generatedAt: ctx.now,
    groupBy: [...groupBy],
    filter,
    ...(ctx.currency !== undefined ? { currency: ctx.currency } : {}),
    totals,
    rows: breakdown(counted, groupBy, ctx),
    top: {
      users: breakdown(counted, ['user'], ctx).sort(byPagesDesc).slice(0, topN),
      printers: breakdown(counted, ['printer'], ctx).sort(byPagesDesc).slice(0, topN)
    },
    peers,
    pending: peers.filter((p) => !p.connected && p.revoked !== true)
  }
}

export interface ReportsComponents {
  store: DocStore
  self: { peer: string, role: string, site?: string }
  /** The mesh's view of peers (node/mesh.ts status), undefined without a mesh. */
  peers: () => readonly MeshPeerView[] | undefined
  /** Whether this node writes the mesh price list (central; a standalone site). */
  authority: () => boolean
  now: () => number
}

/** Whether the month `period` (`YYYY-MM`, UTC) overlaps [from, to). */
function periodOverlaps (period: string, from: number | undefined, to: number | undefined): boolean {
  const [y, m] = period.split('-').map(Number)
  const start = Date.UTC(y, m - 1, 1)
  const end = Date.UTC(y, m, 1)
  return (from === undefined || end > from) && (to === undefined || start < to)
}

/**
 * The usage records in the accounting documents this node holds, with the peer of each: of
 * the documents whose month overlaps [from, to) only (a record sits in the document of the
 * month it was written, at its time), and every peer's {@link PeerStats} over all documents
 * (counted without reading records; the newest read from each peer's newest document).
 */
export function heldRecords (store: DocStore, range: { from?: number, to?: number } = {}): { held: HeldRecord[], stats: Map<string, PeerStats> } {
  const held: HeldRecord[] = []
  const stats = new Map<string, PeerStats>()
  const newest = new Map<string, { period: string, name: DocName }>()
  for (const name of store.openNames()) {
    const parsed = parseDocName(name)
    if (parsed?.family !== 'acct' || parsed.peer === undefined || parsed.period === undefined) continue
    const doc = store.get(name)
    if (doc === undefined) continue
    const count = countUsage(doc)
    if (count === 0) continue
    const s = stats.get(parsed.peer) ?? { records: 0 }
    s.records += count
    stats.set(parsed.peer, s)
    const n = newest.get(parsed.peer)
    if (n === undefined || parsed.period > n.period) newest.set(parsed.peer, { period: parsed.period, name })
    if (periodOverlaps(parsed.period, range.from, range.to)) for (const record of listUsage(doc)) held.push({ peer: parsed.peer, record })
  }
  for (const [peer, { name }] of newest) {
    const doc = store.get(name)
    const s = stats.get(peer)
    if (doc === undefined || s === undefined) continue
    for (const r of listUsage(doc)) if (s.last === undefined || r.time > s.last) s.last = r.time
  }
  return { held, stats }
}

/** The reports of a node (central, a site): {@link ReportsApi} for ui/routes/reports.ts. */
export function createReports (c: ReportsComponents): ReportsApi {
  const context = (): ReportContext => {
    const directory = c.store.get(directoryDoc())
    const groups = new Map<string, readonly string[]>(directory === undefined ? [] : listUsers(directory).map((u) => [u.username, u.groups ?? []]))
    const currency = readPriceList(c.store.get(licenseDoc()))?.currency
    return {
      now: c.now(),
      groupsOf: (user) => groups.get(user) ?? [],
      peers: c.peers() ?? [],
      self: c.self,
      ...(currency !== undefined ? { currency } : {})
    }
  }
  const ownSite = (): SiteId => {
    if (c.self.role !== 'site' || c.self.site === undefined) throw new InvalidRequestError('only a site has prices of its own: set per-site overrides in the mesh price list on central')
    return siteId(c.self.site)
  }
  const checked = <T>(parse: () => T): T => {
    try {
      return parse()
    } catch (err) {
      if (err instanceof InvalidPriceListError) throw new InvalidRequestError(`bad price list: ${err.message}`)
      throw err
    }
  }
  return {
    report (query) {
      const { held, stats } = heldRecords(c.store, query)
      return buildReport(held, query, context(), stats)
    },

    mine (user, filter): MyUsage {
      const { held, stats } = heldRecords(c.store, filter)
      const report = buildReport(held, { ...filter, user, groupBy: [] }, context(), stats)
      const records = uniqueHeld(held).map((h) => h.record)
        .filter((r) => r.user === user && (filter.from === undefined || r.time >= filter.from) && (filter.to === undefined || r.time < filter.to))
        .sort((a, b) => b.time - a.time || a.id.localeCompare(b.id))
      return { user, totals: report.totals, records, pending: report.pending }
    },

    prices () {
      const list = readPriceList(c.store.get(licenseDoc()))
      const site = c.self.role === 'site' && c.self.site !== undefined ? readSitePrices(c.store.get(siteConfigDoc(siteId(c.self.site)))) : undefined
      return { ...(list !== undefined ? { list } : {}), ...(site !== undefined ? { site } : {}) }
    },

    async setPriceList (input, by): Promise<PriceList> {
      if (!c.authority()) throw new NotCentralError()
      const list = checked(() => parsePriceList(input, by, c.now()))
      await c.store.transact(licenseDoc(), { kind: 'admin', user: by }, (d) => writePriceList(d, list))
      return list
    },

    async setSitePrices (input, by): Promise<SitePrices> {
      const site = ownSite()
      const prices = checked(() => parseSitePrices(input, by, c.now()))
      await c.store.transact(siteConfigDoc(site), { kind: 'admin', user: by }, (d) => writeSitePrices(d, prices))
      return prices
    }
  }
}
