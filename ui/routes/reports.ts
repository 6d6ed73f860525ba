/**
 * Reports (central and sites): `GET /api/reports` (admin) totals and breakdowns with
 * filters and per-peer freshness, `GET /api/reports.csv` the same as CSV (csv-stringify,
 * cells that would start a formula escaped), `GET /api/usage/mine` a logged-in user's own
 * usage and cost, `GET`/`PUT /api/prices` the mesh price list (written where the node is the
 * mesh's authority) and `PUT /api/prices/site` a site's own overrides.
 */
import { stringify } from 'csv-stringify/sync'
import { InvalidRequestError } from '../../crdt/errors.ts'
import { DIMENSIONS, MAX_GROUP_BY, type Dimension, type Report, type ReportFilter, type ReportQuery, type ReportsApi, type ReportTotals } from '../reports-api.ts'
import { parseTimeParam } from './accounting.ts'
import { MAX_NAME_LENGTH, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const REPORTS_ROUTES = { service: 'reports', prefixes: ['/api/reports', '/api/prices'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** Most top users and printers one report lists. */
const MAX_TOP = 1000
/** Query parameters a report takes; any other is a mistake worth naming. */
const REPORT_PARAMS = ['groupBy', 'from', 'to', 'site', 'user', 'group', 'printer', 'kind', 'peer', 'top']

export function reportsRoutes (api: ReportsApi): HttpPlugin {
  return {
    ...REPORTS_ROUTES,
    register (app, { authenticate, now }) {
      app.get('/api/reports', async (request) => {
        authenticate(request, 'admin')
        return api.report(parseReportQuery(request.query as Record<string, unknown>))
      })

      app.get('/api/reports.csv', async (request, reply) => {
        authenticate(request, 'admin')
        const report = api.report(parseReportQuery(request.query as Record<string, unknown>))
        const day = new Date(now()).toISOString().slice(0, 10)
        return await reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="printmesh-report-${day}.csv"`)
          .send(reportCsv(report))
      })

      app.get('/api/usage/mine', async (request) => {
        const { actor } = authenticate(request, 'user')
        const query = request.query as Record<string, unknown>
        for (const key of Object.keys(query)) if (key !== 'from' && key !== 'to') throw new InvalidRequestError(`unknown query parameter "${key}" (from, to)`)
        return api.mine(actor.user, timeRange(query))
      })

      app.get('/api/prices', async (request) => {
        authenticate(request, 'admin')
        return api.prices()
      })

      app.put('/api/prices', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return await api.setPriceList(request.body, actor.user)
      })

      app.put('/api/prices/site', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return await api.setSitePrices(request.body, actor.user)
      })
    }
  }
}

function timeRange (query: Record<string, unknown>): Pick<ReportFilter, 'from' | 'to'> {
  const from = parseTimeParam(query.from, 'from')
  const to = parseTimeParam(query.to, 'to')
  if (from !== undefined && to !== undefined && to < from) throw new InvalidRequestError('"to" is before "from"')
  return { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }
}

function textParam (query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name]
  if (v === undefined || v === '') return undefined
  if (typeof v !== 'string') throw new InvalidRequestError(`"${name}" must be given once`)
  if (v.length > MAX_NAME_LENGTH) throw new InvalidRequestError(`"${name}" is longer than ${MAX_NAME_LENGTH} characters`)
  return v
}

/** A report's query parameters; @throws InvalidRequestError naming the bad one. */
export function parseReportQuery (query: Record<string, unknown>): ReportQuery {
  for (const key of Object.keys(query)) {
    if (!REPORT_PARAMS.includes(key)) throw new InvalidRequestError(`unknown query parameter "${key}" (${REPORT_PARAMS.join(', ')})`)
  }
  const groupBy: Dimension[] = []
  const raw = textParam(query, 'groupBy')
  if (raw !== undefined) {
    for (const d of raw.split(',')) {
      if (!(DIMENSIONS as readonly string[]).includes(d)) throw new InvalidRequestError(`groupBy: "${d}" is not one of ${DIMENSIONS.join(', ')}`)
      if (groupBy.includes(d as Dimension)) throw new InvalidRequestError(`groupBy: "${d}" is given twice`)
      groupBy.push(d as Dimension)
    }
    if (groupBy.length > MAX_GROUP_BY) throw new InvalidRequestError(`groupBy: at most ${MAX_GROUP_BY} dimensions (e.g. day,site)`)
  }
  const out: ReportQuery = { groupBy, ...timeRange(query) }
  for (const name of ['site', 'user', 'group', 'printer', 'peer'] as const) {
    const v = textParam(query, name)
    if (v !== undefined) out[name] = v
  }
  const kind = textParam(query, 'kind')
  if (kind !== undefined) {
    if (kind !== 'print' && kind !== 'copy') throw new InvalidRequestError('"kind" must be print or copy')
    out.kind = kind
  }
  const top = textParam(query, 'top')
  if (top !== undefined) {
    if (!/^\d+$/.test(top) || Number(top) < 1 || Number(top) > MAX_TOP) throw new InvalidRequestError(`"top" must be a whole number from 1 to ${MAX_TOP}`)
    out.top = Number(top)
  }
  return out
}

/** Digits after the decimal point of a currency (EUR 2, JPY 0), as Intl knows it. */
function minorDigits (currency: string): number {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2
  } catch {
    return 2 // a code Intl does not know: cents
  }
}

/** Minor units as a decimal string (`1234` EUR → `12.34`), exactly: integer arithmetic, no float. */
export function formatMinor (amount: number, currency: string): string {
  const digits = minorDigits(currency)
  if (digits === 0) return String(amount)
  const sign = amount < 0 ? '-' : ''
  const abs = String(Math.abs(amount)).padStart(digits + 1, '0')
  return `${sign}${abs.slice(0, -digits)}.${abs.slice(-digits)}`
}

/** Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"). */
const FORMULA_START = /^[=+\-@\t\r]/

/** The report as CSV: a row per breakdown row, a total row, then a row per peer whose records may be missing. */
export function reportCsv (report: Report): string {
  const currencies = [...new Set([...(report.currency !== undefined ? [report.currency] : []), ...Object.keys(report.totals.cost)])].sort()
  const header = [...(report.groupBy.length > 0 ? report.groupBy : ['report']), 'records', 'pages', 'colour pages', 'mono pages', 'sheets', 'copies', 'duplex pages', 'sheets saved by duplex',
    ...currencies.map((c) => `cost (${c})`), 'unpriced records']
  const cells = (t: ReportTotals): Array<string | number> => [t.records, t.pages, t.colorPages, t.monoPages, t.sheets, t.copies, t.duplexPages, t.sheetsSaved,
    ...currencies.map((c) => formatMinor(t.cost[c] ?? 0, c)), t.unpriced]
  const width = Math.max(report.groupBy.length, 1)
  const rows: Array<Array<string | number>> = [header]
  for (const row of report.rows) rows.push([...row.keys, ...cells(row)])
  rows.push(['total', ...Array<string>(width - 1).fill(''), ...cells(report.totals)])
  for (const p of report.pending) {
    const since = p.pendingSince !== undefined ? ` since ${new Date(p.pendingSince).toISOString()}` : ''
    // padded to the header's width: RFC 4180 rows have one length
    rows.push([`pending from ${p.site ?? p.peer}${since} (peer ${p.peer} not connected)`, ...Array<string>(header.length - 1).fill('')])
  }
  return stringify(rows, {
    record_delimiter: 'windows',
    cast: { string: (value) => FORMULA_START.test(value) ? `'${value}` : value }
  })
}
