// Reports with real processes over libp2p on loopback: central and three sites, each
// printing (ipptool, --no-hold, to its virtual printer) under a price list central sets.
// Central's report totals every site's records with exact costs; a price change prices
// new records only; a site that is stopped is named as pending since its last record, and
// once it is back (and prints again) central's totals are the sum of the sites' own records.
// A terminal of site-a reports what it holds (its site's records, not the others'). The CSV
// export opens with the same totals; a user sees their own usage and cost.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { parse } from 'csv-parse/sync'
import { startSite, startCentral, startTerminal, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { printFile } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { runCleanup } from './helpers/browser.ts'
import type { Report, ReportTotals, MyUsage } from '../ui/reports-api.ts'
import type { UsageRecord } from '../crdt/accounting.ts'

/** Replication waits at most this long: anti-entropy runs every second in tests. */
const MESH_TIMEOUT_MS = 30_000
const SITES = ['a', 'b', 'c'] as const

let central: SiteProcess | undefined
let terminal: SiteProcess | undefined
const sites: Partial<Record<typeof SITES[number], SiteProcess>> = {}
let siteCDir = ''
let docs = ''

/** EUR: mono 5 cents, colour 20, duplex mono 4 and colour 18. */
const PRICES = {
  currency: 'EUR',
  rules: [{ color: 'mono', perPage: 5 }, { color: 'colour', perPage: 20 }, { color: 'mono', sides: 'duplex', perPage: 4 }, { color: 'colour', sides: 'duplex', perPage: 18 }]
}

const site = (name: typeof SITES[number]): SiteProcess => sites[name] as SiteProcess
const report = async (node: SiteProcess, query = ''): Promise<Report> => await admin<Report>(node, `/api/reports${query}`)
const ownRecords = async (node: SiteProcess): Promise<UsageRecord[]> => (await admin<{ records: UsageRecord[] }>(node, '/api/usage/records')).records.filter((r) => r.site === `site-${SITES.find((s) => sites[s] === node) ?? ''}`)

async function print (node: SiteProcess, user: string, pdf: { pages: number, colorPages: number[] }, opts: { copies?: number, sides?: string } = {}): Promise<void> {
  const file = await makePdf(docs, { ...pdf, title: `${user}-${Math.random()}` })
  await printFile(node.ippUri, file, { user, format: 'application/pdf', ...opts })
}

/** Waits until `node` has `count` usage records of its own (printed and charged). */
async function charged (node: SiteProcess, count: number): Promise<UsageRecord[]> {
  let records: UsageRecord[] = []
  await until(async () => (records = await ownRecords(node)).length === count, MESH_TIMEOUT_MS, `${count} records charged`)
  return records.sort((x, y) => x.time - y.time)
}

function sum (totals: ReportTotals[]): Pick<ReportTotals, 'records' | 'pages' | 'colorPages' | 'sheets' | 'cost'> {
  const out = { records: 0, pages: 0, colorPages: 0, sheets: 0, cost: { EUR: 0 } }
  for (const t of totals) {
    out.records += t.records; out.pages += t.pages; out.colorPages += t.colorPages; out.sheets += t.sheets; out.cost.EUR += t.cost.EUR ?? 0
  }
  return out
}

test.before(async () => {
  docs = await tempDir('printmesh-report-docs-')
  siteCDir = await tempDir('printmesh-site-c-')
  central = await startCentral()
  const joinString = async (s: string): Promise<string> =>
    (await admin<{ joinString: string }>(central as SiteProcess, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: s } })).joinString
  for (const name of SITES) {
    sites[name] = await startSite({ ...(name === 'c' ? { dataDir: siteCDir } : {}), args: ['--site', `site-${name}`, '--no-hold', '--join', await joinString(`site-${name}`)] })
  }
  const { joinString: terminalJoin } = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'terminal', site: 'site-a' } })
  terminal = await startTerminal({ args: ['--join', terminalJoin] })
})

test.after(async () => {
  await runCleanup([
    ['terminal', async () => await terminal?.stop()],
    ...SITES.map((s): [string, () => Promise<void>] => [`site-${s}`, async () => await sites[s]?.stop()]),
    ['central', async () => await central?.stop()],
    ['site-c data', async () => await rm(siteCDir, { recursive: true, force: true })],
    ['documents', async () => await rm(docs, { recursive: true, force: true })]
  ])
})

test('central reports every site\'s usage priced at the list in force (and a site\'s own printer price); bad price lists are refused by name; a price change prices new records only; a stopped site is pending since its last record; back, the totals are the sum of the sites\' records', async () => {
  const c = central as SiteProcess
  await admin(c, '/api/users', { method: 'POST', body: { username: 'alice', fullName: 'Alice', pin: '2468', groups: ['staff'] } })
  await admin(c, '/api/prices', { method: 'PUT', body: PRICES })
  for (const s of SITES) await until(async () => (await admin<{ list?: { currency: string } }>(site(s), '/api/prices')).list?.currency === 'EUR', MESH_TIMEOUT_MS, `the price list at site-${s}`)
  // site-b's admin prices its own printer's mono pages at 2; the mesh list is central's alone
  await admin(site('b'), '/api/prices/site', { method: 'PUT', body: { printers: { virtual: [{ color: 'mono', perPage: 2 }] } } })
  const refused = async (node: SiteProcess, path: string, body: unknown): Promise<[number, string]> => {
    const res = await fetch(node.httpUrl + path, { method: 'PUT', headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return [res.status, (await res.json() as { error: string }).error]
  }
  assert.equal(await refused(site('b'), '/api/prices', PRICES), [409, 'only the central node can do this'])
  assert.equal(await refused(site('b'), '/api/prices/site', { currency: 'USD' }), [400, 'bad price list: unknown field "currency" (rules, printers; the currency is the mesh\'s)'])
  assert.equal(await refused(c, '/api/prices', { currency: 'EUR', rules: [{ perPage: 1.5 }] }), [400, 'bad price list: rules[0]: perPage must be a whole number of minor units (cents) from 0 to 1000000, not 1.5'])
  assert.equal(await refused(c, '/api/prices/site', { rules: [] }), [400, 'only a site has prices of its own: set per-site overrides in the mesh price list on central'])

  // a: 2 pages (1 colour) × 2 copies duplex = 4 pages, 2 colour, 2 sheets: 2 × 4 + 2 × 18 = 44
  await print(site('a'), 'alice', { pages: 2, colorPages: [1] }, { copies: 2, sides: 'two-sided-long-edge' })
  // b: 3 mono pages at its printer's own 2 = 6; c: 1 colour page = 20
  await print(site('b'), 'bob', { pages: 3, colorPages: [] })
  await print(site('c'), 'alice', { pages: 1, colorPages: [0] })
  const [a1] = await charged(site('a'), 1)
  assert.equal([a1.pages, a1.colorPages, a1.sheets, a1.cost], [4, 2, 2, { currency: 'EUR', amount: 44, mono: 4, colour: 18 }])
  await charged(site('b'), 1)
  const [c1] = await charged(site('c'), 1)

  await until(async () => (await report(c)).totals.records === 3, MESH_TIMEOUT_MS, 'three records at central')
  const all = await report(c, '?groupBy=site')
  assert.equal(all.totals, { records: 3, pages: 8, colorPages: 3, monoPages: 5, sheets: 6, copies: 4, duplexPages: 4, sheetsSaved: 2, cost: { EUR: 70 }, unpriced: 0 })
  assert.equal(all.rows.map((r) => [r.keys[0], r.pages, r.cost.EUR]), [['site-a', 4, 44], ['site-b', 3, 6], ['site-c', 1, 20]])
  assert.equal(all.pending, [])
  assert.equal((await report(c, '?groupBy=group')).rows.map((r) => [r.keys[0], r.pages]), [['(none)', 3], ['staff', 5]])

  // mono goes up to 7: the record already written keeps its 44, the next one costs the new price
  await admin(c, '/api/prices', { method: 'PUT', body: { ...PRICES, rules: [{ color: 'mono', perPage: 7 }, ...PRICES.rules.slice(1)] } })
  await until(async () => (await admin<{ list?: { rules: Array<{ perPage: number }> } }>(site('a'), '/api/prices')).list?.rules[0].perPage === 7, MESH_TIMEOUT_MS, 'the new price at site-a')
  await print(site('a'), 'alice', { pages: 1, colorPages: [] })
  const [first, second] = await charged(site('a'), 2)
  assert.equal([first.cost?.amount, second.cost?.amount], [44, 7])
  // a terminal of site-a reports what it holds: its site's accounting, not the other sites'
  const t = terminal as SiteProcess
  await until(async () => (await report(t)).totals.records === 2, MESH_TIMEOUT_MS, 'site-a\'s records at its terminal')
  assert.equal((await report(t, '?groupBy=site')).rows.map((r) => [r.keys[0], r.pages, r.cost.EUR]), [['site-a', 5, 51]])

  // site-c is stopped: central names it pending since its last record
  await site('c').kill('SIGTERM')
  await until(async () => (await report(c)).pending.length === 1, MESH_TIMEOUT_MS, 'site-c pending at central')
  const cutOff = await report(c)
  assert.equal(cutOff.pending.map((p) => [p.site, p.connected, p.pendingSince, p.records]), [['site-c', false, c1.time, 1]])
  assert.equal(cutOff.peers.filter((p) => p.connected).map((p) => `${p.role ?? ''} ${p.site ?? ''}`).sort(), ['site site-a', 'site site-b', 'terminal site-a'])

  // back again, it prints once more (6 mono pages at 7 = 42); central's totals are the sum of what each site recorded
  sites.c = await startSite({ dataDir: siteCDir, args: ['--site', 'site-c', '--no-hold'] })
  await print(site('c'), 'carol', { pages: 2, colorPages: [] }, { copies: 3 })
  await charged(site('c'), 2)
  const own = await Promise.all(SITES.map(async (s) => (await report(site(s), `?peer=${site(s).peer}`)).totals))
  const expected = sum(own)
  assert.equal(expected, { records: 5, pages: 15, colorPages: 3, sheets: 13, cost: { EUR: 70 + 7 + 42 } }) // carol's 6 mono pages at the new 7
  await until(async () => (await report(c)).totals.records === 5 && (await report(c)).pending.length === 0, MESH_TIMEOUT_MS, 'site-c\'s records at central')
  const back = await report(c)
  assert.equal({ records: back.totals.records, pages: back.totals.pages, colorPages: back.totals.colorPages, sheets: back.totals.sheets, cost: back.totals.cost }, expected)

  // the CSV export opens with the same totals
  const res = await fetch(`${c.httpUrl}/api/reports.csv?groupBy=site`, { headers: { authorization: `Bearer ${c.adminToken}` } })
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/csv/)
  const rows = parse(await res.text()) as string[][]
  assert.equal(rows.find((r) => r[0] === 'total')?.slice(0, 3), ['total', '5', '15'])
  assert.is(rows[0][9], 'cost (EUR)')
  assert.is(rows.find((r) => r[0] === 'total')?.[9], '1.19')

  // alice sees her own usage and cost at site-a (the directory reached it from central); a user may not see reports
  await until(async () => (await fetch(`${site('a').httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', pin: '2468' }) })).status === 200, MESH_TIMEOUT_MS, 'alice logs in at site-a')
  const login = await fetch(`${site('a').httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', pin: '2468' }) })
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]
  await until(async () => (await (await fetch(`${site('a').httpUrl}/api/usage/mine`, { headers: { cookie } })).json() as MyUsage).totals.records === 3, MESH_TIMEOUT_MS, 'alice\'s three records at site-a')
  const mine = await (await fetch(`${site('a').httpUrl}/api/usage/mine`, { headers: { cookie } })).json() as MyUsage
  assert.equal([mine.user, mine.totals.pages, mine.totals.cost, mine.records.map((r) => r.site).sort()], ['alice', 6, { EUR: 71 }, ['site-a', 'site-a', 'site-c']])
  assert.is((await fetch(`${site('a').httpUrl}/api/reports`, { headers: { cookie } })).status, 403)
  assert.is((await fetch(`${c.httpUrl}/api/reports?groupBy=colour`, { headers: { authorization: `Bearer ${c.adminToken}` } })).status, 400)
})

test.run()
