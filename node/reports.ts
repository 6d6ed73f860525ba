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
import { uniqueUsage, listUsage, type UsageRecord } from '../crdt/accounting.ts'
import { parseDocName, directoryDoc, licenseDoc, siteConfigDoc, siteId, type SiteId } from '../crdt/names.ts'
import { listUsers } from '../crdt/directory.ts'
import { InvalidRequestError, NotCentralError } from '../crdt/errors.ts'
import type { DocStore } from '../crdt/store.ts'
import {
  InvalidPriceListError, parsePriceList, parseSitePrices, readPriceList, readSitePrices, writePriceList, writeSitePrices,
  type PriceList, type SitePrices
} from '../crdt/prices.ts'
import type { MeshPeerView } from '../ui/api.ts'
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

/** The values of one dimension for a record (a user in two groups counts in both). */
function keysOf (dim: Dimension, h: HeldRecord, ctx: ReportContext): string[] {
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
    case 'day': return [new Date(r.time).toISOString().slice(0, 10)]
    case 'week': return [isoWeek(r.time)]
    case 'month': return [new Date(r.time).toISOString().slice(0, 7)]
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
 * Each usage id once, by the rule of crdt/accounting.ts {@link uniqueUsage} (the earliest,
 * then by site), keeping the peer that holds the record kept.
 */
export function uniqueHeld (held: readonly HeldRecord[]): HeldRecord[] {
  const peerOf = new Map<UsageRecord, string>(held.map((h) => [h.record, h.peer]))
  return uniqueUsage(held.map((h) => h.record)).map((record) => ({ record, peer: peerOf.get(record) as string }))
}

/** Rows of `dims` over `held`, sorted by their keys. */
function breakdown (held: readonly HeldRecord[], dims: readonly Dimension[], ctx: ReportContext): ReportRow[] {
  const rows = new Map<string, ReportRow>()
  for (const h of held) {
    let combos: string[][] = [[]]
    for (const dim of dims) combos = combos.flatMap((c) => keysOf(dim, h, ctx).map((k) => [...c, k]))
    for (const keys of combos) {
      const id = JSON.stringify(keys)
      let row = rows.get(id)
      if (row === undefined) rows.set(id, row = { keys, ...emptyTotals() })
      addToTotals(row, h.record)
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
export function freshness (held: readonly HeldRecord[], ctx: ReportContext): PeerFreshness[] {
  const stats = new Map<string, { records: number, last?: number }>()
  for (const h of held) {
    const s = stats.get(h.peer) ?? { records: 0 }
    s.records++
    if (s.last === undefined || h.record.time > s.last) s.last = h.record.time
    stats.set(h.peer, s)
  }
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

/** The report over `held` (every record this node holds, duplicates included). */
export function buildReport (held: readonly HeldRecord[], query: ReportQuery, ctx: ReportContext): Report {
  const { groupBy, top: topN = DEFAULT_TOP, ...filter } = query
  const counted = uniqueHeld(held).filter((h) => matchesFilter(h, filter, ctx))
  const totals = emptyTotals()
  for (const h of counted) addToTotals(totals, h.record)
  const peers = freshness(held, ctx)
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

/** Every usage record in the accounting documents this node holds, with the peer of each. */
export function heldRecords (store: DocStore): HeldRecord[] {
  const out: HeldRecord[] = []
  for (const name of store.openNames()) {
    const parsed = parseDocName(name)
    if (parsed?.family !== 'acct' || parsed.peer === undefined) continue
    const doc = store.get(name)
    if (doc !== undefined) for (const record of listUsage(doc)) out.push({ peer: parsed.peer, record })
  }
  return out
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
    report: (query) => buildReport(heldRecords(c.store), query, context()),

    mine (user, filter): MyUsage {
      const held = heldRecords(c.store)
      const report = buildReport(held, { ...filter, user, groupBy: [] }, context())
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
