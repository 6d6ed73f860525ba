// The report engine (node/reports.ts) and prices (crdt/prices.ts) as pure functions: exact
// totals for a mixed set (colour, duplex, copies, two sites, a record held twice, an old
// unpriced one), costs from the price list's layers, "pending since" per peer, the CSV
// export (totals, a formula cell escaped) and the errors of bad price lists and queries.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parse } from 'csv-parse/sync'
import { sheetsFor, type UsageRecord } from '../crdt/accounting.ts'
import { parsePriceList, parseSitePrices, priceUsage, InvalidPriceListError, type Prices } from '../crdt/prices.ts'
import { buildReport, isoWeek, type HeldRecord, type ReportContext } from '../node/reports.ts'
import { parseReportQuery, reportCsv, formatMinor } from '../ui/routes/reports.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import type { MeshPeerView } from '../ui/api.ts'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { acctDoc, licenseDoc, peerId, periodOf } from '../crdt/names.ts'
import { recordUsage, listUsage } from '../crdt/accounting.ts'
import { writePriceList, pricedUsage } from '../crdt/prices.ts'
import { heldRecords } from '../node/reports.ts'
import { generateIdentity } from '../transports/identity.ts'
import { tempDir } from '../simulations/node-process.ts'

const T0 = Date.UTC(2026, 11, 1, 9, 0, 0) // Tuesday 2026-12-01
const HOUR = 3_600_000

/** EUR: mono 5, colour 20, duplex 4 / 18; site-b colour 25 (central's override); site-a's printer big mono 3 (site-a's own). */
const prices: Prices = {
  list: parsePriceList({
    currency: 'EUR',
    rules: [{ color: 'mono', perPage: 5 }, { color: 'colour', perPage: 20 }, { color: 'mono', sides: 'duplex', perPage: 4 }, { color: 'colour', sides: 'duplex', perPage: 18 }],
    sites: { 'site-b': [{ color: 'colour', perPage: 25 }] }
  }, 'admin', T0),
  site: parseSitePrices({ printers: { big: [{ color: 'mono', perPage: 3 }] } }, 'admin', T0)
}

function usage (fields: Partial<UsageRecord> & Pick<UsageRecord, 'id' | 'user' | 'site' | 'printer' | 'time'>, perCopy: { pages: number, colour: number }, copies: number, duplex: boolean): UsageRecord {
  const r: UsageRecord = {
    kind: 'print', jobId: fields.id.split('/')[0], jobName: 'report', pages: perCopy.pages * copies, colorPages: perCopy.colour * copies,
    sheets: sheetsFor(perCopy.pages, copies, duplex), duplex, copies, ...fields
  }
  return r
}

const PEER_A = 'peer-site-a'
const PEER_B = 'peer-site-b'
const PEER_C = 'peer-site-c'

// A: 3 pages (2 colour) × 2 copies duplex at site-a: mono 2 × 4 + colour 4 × 18 = 80
const a = usage({ id: 'j1/print', user: 'alice', site: 'site-a', printer: 'virtual', time: T0 }, { pages: 3, colour: 2 }, 2, true)
// B: 5 colour pages simplex at site-b: 5 × 25 (site-b's colour) = 125
const b = usage({ id: 'j2/print', user: 'bob', site: 'site-b', printer: 'virtual', time: T0 + HOUR }, { pages: 5, colour: 5 }, 1, false)
// C: 10 mono pages at site-a's printer big: 10 × 3 (its own price) = 30
const c = usage({ id: 'j3/print', user: '=HYPERLINK("http://evil")', site: 'site-a', printer: 'big', time: T0 + 2 * HOUR }, { pages: 10, colour: 0 }, 1, false)
// E: a copy written before prices existed: unpriced
const e: UsageRecord = { ...usage({ id: 'c1/copy', user: 'carol', site: 'site-b', printer: 'mfp', time: T0 + 26 * HOUR }, { pages: 2, colour: 0 }, 1, false), kind: 'copy' }

const priced = (r: UsageRecord, p: Prices): UsageRecord => {
  const site = r.site === 'site-a' ? p : { list: p.list } // site-a's overrides are site-a's only
  const cost = priceUsage(site, r)
  return cost === undefined ? r : { ...r, cost }
}

const held: HeldRecord[] = [
  { peer: PEER_A, record: priced(a, prices) },
  { peer: PEER_B, record: priced(b, { list: prices.list }) },
  { peer: PEER_A, record: priced(c, prices) },
  // A again, held in site-b's document too (printed offline at both): counted once
  { peer: PEER_B, record: { ...priced(a, prices), site: 'site-a', time: T0 + 5 * HOUR } },
  { peer: PEER_B, record: e }
]

const meshPeers: MeshPeerView[] = [
  { peer: PEER_A, role: 'site', site: 'site-a', addresses: [], connected: true, revoked: false },
  { peer: PEER_B, role: 'site', site: 'site-b', addresses: [], connected: false, lastSeen: T0 + 30 * HOUR, revoked: false },
  { peer: PEER_C, role: 'site', site: 'site-c', addresses: [], connected: false, lastSeen: T0 + 40 * HOUR, revoked: false },
  // a workstation's client that never charged anything, and a revoked site: neither makes a report partial
  { peer: 'peer-client', role: 'client', site: 'site-a', addresses: [], connected: false, lastSeen: T0, revoked: false },
  { peer: 'peer-site-old', role: 'site', site: 'site-old', addresses: [], connected: false, lastSeen: T0, revoked: true }
]
const groups: Record<string, string[]> = { alice: ['staff', 'colour-team'], bob: ['staff'] }
const ctx: ReportContext = { now: T0 + 48 * HOUR, groupsOf: (u) => groups[u] ?? [], peers: meshPeers, self: { peer: 'central', role: 'central' }, currency: 'EUR' }

test('each record is priced at the layer that applies: the printer\'s own, the site\'s, the mesh default; colour and mono apart', () => {
  assert.equal(held.map((h) => h.record.cost?.amount), [80, 125, 30, 80, undefined])
  assert.equal(held[0].record.cost, { currency: 'EUR', amount: 80, mono: 4, colour: 18 })
  // no mono rule anywhere: a page it needs has no price, so the record stays unpriced rather than cheap
  const colourOnly = { list: parsePriceList({ currency: 'EUR', rules: [{ color: 'colour', perPage: 20 }] }, 'admin', T0) }
  assert.is(priceUsage(colourOnly, c), undefined)
  assert.is(priceUsage({}, c), undefined, 'no price list: unpriced')
  // the most specific rule wins inside a layer: A4 duplex mono print beats mono
  const a4 = { list: parsePriceList({ currency: 'EUR', rules: [{ color: 'mono', perPage: 5 }, { kind: 'print', color: 'mono', sides: 'duplex', media: 'iso_a4_210x297mm', perPage: 2 }] }, 'admin', T0) }
  assert.is(priceUsage(a4, { ...c, duplex: true, media: 'iso_a4_210x297mm' })?.amount, 20)
  assert.is(priceUsage(a4, { ...c, duplex: true, media: 'na_letter_8.5x11in' })?.amount, 50)
})

test('report totals are exact for a mixed set (colour, duplex, copies, two sites, a record held twice, an unpriced copy)', () => {
  const report = buildReport(held, { groupBy: [] }, ctx)
  assert.equal(report.totals, {
    records: 4, pages: 23, colorPages: 9, monoPages: 14, sheets: 21, copies: 5, duplexPages: 6, sheetsSaved: 2, cost: { EUR: 235 }, unpriced: 1
  })
})

test('breakdowns by site, group, kind, sides, colour and period; top users by pages', () => {
  const bySite = buildReport(held, { groupBy: ['site'] }, ctx)
  assert.equal(bySite.rows.map((r) => [r.keys[0], r.records, r.pages, r.colorPages, r.sheets, r.cost.EUR ?? 0, r.unpriced]), [
    ['site-a', 2, 16, 4, 14, 110, 0],
    ['site-b', 2, 7, 5, 7, 125, 1]
  ])
  // alice is in two groups: she counts in both; carol has none
  const byGroup = buildReport(held, { groupBy: ['group'] }, ctx)
  assert.equal(byGroup.rows.map((r) => [r.keys[0], r.pages]), [['(none)', 12], ['colour-team', 6], ['staff', 11]])
  assert.equal(buildReport(held, { groupBy: ['kind'] }, ctx).rows.map((r) => [r.keys[0], r.pages]), [['copy', 2], ['print', 21]])
  assert.equal(buildReport(held, { groupBy: ['sides'] }, ctx).rows.map((r) => [r.keys[0], r.pages, r.sheetsSaved]), [['duplex', 6, 2], ['simplex', 17, 0]])
  assert.equal(buildReport(held, { groupBy: ['color'] }, ctx).rows.map((r) => [r.keys[0], r.records]), [['colour', 2], ['mono', 2]])
  assert.equal(buildReport(held, { groupBy: ['day', 'site'] }, ctx).rows.map((r) => [...r.keys, r.pages]), [
    ['2026-12-01', 'site-a', 16], ['2026-12-01', 'site-b', 5], ['2026-12-02', 'site-b', 2]
  ])
  assert.equal(buildReport(held, { groupBy: ['week'] }, ctx).rows.map((r) => r.keys[0]), ['2026-W49'])
  assert.equal(buildReport(held, { groupBy: ['month'] }, ctx).rows.map((r) => [r.keys[0], r.pages]), [['2026-12', 23]])
  assert.equal(bySite.top.users.map((r) => [r.keys[0], r.pages]), [['=HYPERLINK("http://evil")', 10], ['alice', 6], ['bob', 5], ['carol', 2]])
  assert.equal(bySite.top.printers.map((r) => [r.keys[0], r.pages]), [['site-a/big', 10], ['site-a/virtual', 6], ['site-b/virtual', 5], ['site-b/mfp', 2]])
})

test('filters: time range, site, user, group, printer (by name or site/printer), kind, peer', () => {
  const pages = (q: Parameters<typeof parseReportQuery>[0]): number => buildReport(held, parseReportQuery(q), ctx).totals.pages
  assert.is(pages({ from: String(T0 + HOUR), to: String(T0 + 3 * HOUR) }), 15)
  assert.is(pages({ site: 'site-b' }), 7)
  assert.is(pages({ user: 'alice' }), 6)
  assert.is(pages({ group: 'staff' }), 11)
  assert.is(pages({ printer: 'virtual' }), 11)
  assert.is(pages({ printer: 'site-b/virtual' }), 5)
  assert.is(pages({ kind: 'copy' }), 2)
  assert.is(pages({ peer: PEER_A }), 16)
})

test('every report says per peer when its last record is from and whether it is connected: the cut-off ones are pending since then', () => {
  const oldRecord = usage({ id: 'old/print', user: 'bob', site: 'site-old', printer: 'p', time: T0 - HOUR }, { pages: 1, colour: 0 }, 1, false)
  const report = buildReport([...held, { peer: 'peer-site-old', record: oldRecord }], { groupBy: [] }, { ...ctx })
  assert.equal(report.peers.map((p) => [p.peer, p.connected, p.records, p.lastRecordAt, p.pendingSince]), [
    [PEER_A, true, 2, T0 + 2 * HOUR, undefined],
    [PEER_B, false, 3, T0 + 26 * HOUR, T0 + 26 * HOUR],
    // a site known to the mesh whose records never arrived: pending since it was last seen
    [PEER_C, false, 0, undefined, T0 + 40 * HOUR],
    ['peer-site-old', false, 1, T0 - HOUR, undefined]
  ])
  assert.is(report.peers.find((p) => p.peer === 'peer-site-old')?.revoked, true)
  assert.equal(report.pending.map((p) => p.site), ['site-b', 'site-c'])
})

test('the CSV export has the breakdown, the totals and the pending peers; a cell starting with = is escaped', () => {
  const csv = reportCsv(buildReport(held, { groupBy: ['user'] }, ctx))
  assert.ok(csv.includes('"\'=HYPERLINK(""http://evil"")"'), csv)
  const rows = parse(csv) as string[][]
  assert.equal(rows[0], ['user', 'records', 'pages', 'colour pages', 'mono pages', 'sheets', 'copies', 'duplex pages', 'sheets saved by duplex', 'cost (EUR)', 'unpriced records'])
  assert.equal(rows[1], ['\'=HYPERLINK("http://evil")', '1', '10', '0', '10', '10', '1', '0', '0', '0.30', '0'])
  assert.equal(rows.find((r) => r[0] === 'alice'), ['alice', '1', '6', '4', '2', '4', '2', '6', '2', '0.80', '0'])
  assert.equal(rows.find((r) => r[0] === 'total'), ['total', '4', '23', '9', '14', '21', '5', '6', '2', '2.35', '1'])
  assert.equal(rows.filter((r) => r[0].startsWith('pending')).map((r) => r[0]), [
    `pending from site-b since ${new Date(T0 + 26 * HOUR).toISOString()} (peer ${PEER_B} not connected)`,
    `pending from site-c since ${new Date(T0 + 40 * HOUR).toISOString()} (peer ${PEER_C} not connected)`
  ])
})

test('money is formatted from integer minor units exactly', () => {
  assert.equal([formatMinor(235, 'EUR'), formatMinor(5, 'EUR'), formatMinor(0, 'EUR'), formatMinor(1234, 'JPY'), formatMinor(100000000001, 'USD')], ['2.35', '0.05', '0.00', '1234', '1000000000.01'])
  assert.is(isoWeek(Date.UTC(2027, 0, 1)), '2026-W53')
  assert.is(isoWeek(Date.UTC(2026, 0, 1)), '2026-W01')
})

test('a bad price list is refused naming the field; a bad report query names the parameter', () => {
  const refused = (raw: unknown): string => {
    try { parsePriceList(raw, 'admin', T0) } catch (err) { assert.instance(err, InvalidPriceListError); return (err as Error).message }
    throw new Error('accepted')
  }
  assert.is(refused({ currency: 'euro', rules: [] }), 'currency must be an ISO 4217 code like EUR')
  assert.is(refused({ currency: 'EUR', rules: [{ perPage: 0.5 }] }), 'rules[0]: perPage must be a whole number of minor units (cents) from 0 to 1000000, not 0.5')
  assert.is(refused({ currency: 'EUR', rules: [{ colour: 'mono', perPage: 1 }] }), 'rules[0]: unknown field "colour" (kind, color, sides, media, perPage)')
  assert.is(refused({ currency: 'EUR', printers: { 'no-slash': [] } }), 'printers: "no-slash" is not a "<site>/<printer>"')
  const badQuery = (q: Record<string, unknown>): string => {
    try { parseReportQuery(q) } catch (err) { assert.instance(err, InvalidRequestError); return (err as Error).message }
    throw new Error('accepted')
  }
  assert.match(badQuery({ groupBy: 'colour' }), /^groupBy: "colour" is not one of user, group/)
  assert.is(badQuery({ groupBy: 'day,site,user' }), 'groupBy: at most 2 dimensions (e.g. day,site)')
  assert.match(badQuery({ form: '2026-01-01' }), /^unknown query parameter "form"/)
  assert.is(badQuery({ kind: 'scan' }), '"kind" must be print or copy')
  assert.is(badQuery({ from: '2026-02-01', to: '2026-01-01' }), '"to" is before "from"')
})

test('a price change prices new records only: each record keeps the price it was written with (a real store)', async () => {
  const dir = await tempDir('printmesh-prices-')
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
  try {
    const peer = peerId(PEER_A)
    const write = async (r: UsageRecord): Promise<void> => {
      const priced = await pricedUsage(store, r)
      await store.transact(acctDoc(peer, periodOf(r.time)), { kind: 'local', service: 'accounting' }, (d) => recordUsage(d, priced))
    }
    const mono = (id: string, time: number): UsageRecord => usage({ id, user: 'alice', site: 'site-a', printer: 'virtual', time }, { pages: 10, colour: 0 }, 1, false)
    await write(mono('before/print', T0)) // no price list yet: unpriced
    await store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => writePriceList(d, parsePriceList({ currency: 'EUR', rules: [{ perPage: 5 }] }, 'admin', T0)))
    await write(mono('first/print', T0 + HOUR))
    await store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => writePriceList(d, parsePriceList({ currency: 'EUR', rules: [{ perPage: 7 }] }, 'admin', T0)))
    await write(mono('second/print', T0 + 2 * HOUR))
    const costs = Object.fromEntries(listUsage(await store.open(acctDoc(peer, periodOf(T0)))).map((r) => [r.id, r.cost?.amount]))
    assert.equal(costs, { 'before/print': undefined, 'first/print': 50, 'second/print': 70 })
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test('a report reads only the months its time range covers, and still says when each peer\'s newest record is from', async () => {
  const dir = await tempDir('printmesh-held-')
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
  try {
    const nov = Date.UTC(2026, 10, 20)
    const dec = Date.UTC(2026, 11, 2)
    const put = async (peer: string, r: UsageRecord): Promise<void> => { await store.transact(acctDoc(peerId(peer), periodOf(r.time)), { kind: 'local', service: 'accounting' }, (d) => recordUsage(d, r)) }
    const one = (id: string, time: number): UsageRecord => usage({ id, user: 'alice', site: 'site-a', printer: 'virtual', time }, { pages: 1, colour: 0 }, 1, false)
    await put(PEER_A, one('a1/print', nov))
    await put(PEER_A, one('a2/print', nov + HOUR))
    await put(PEER_A, one('a3/print', dec))
    await put(PEER_B, one('b1/print', nov + 2 * HOUR))
    const { held, stats } = heldRecords(store, { from: Date.UTC(2026, 11, 1) })
    assert.equal(held.map((h) => h.record.id), ['a3/print'])
    assert.equal(Object.fromEntries(stats), { [PEER_A]: { records: 3, last: dec }, [PEER_B]: { records: 1, last: nov + 2 * HOUR } })
    assert.equal(heldRecords(store, { to: Date.UTC(2026, 11, 1) }).held.map((h) => h.record.id).sort(), ['a1/print', 'a2/print', 'b1/print'])
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
