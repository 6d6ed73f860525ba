/** Accounting for admins: totals by user, printer or day, the records, and their CSV export. */
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { SiteApi, UsageQuery, UsageRecordView } from '../api.ts'
import { toCsv } from '../csv.ts'
import type { HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const ACCOUNTING_ROUTES = { service: 'print', prefixes: ['/api/usage'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function accountingRoutes (api: SiteApi): HttpPlugin {
  return {
    ...ACCOUNTING_ROUTES,
    register (app, { authenticate, now }) {
      app.get('/api/usage/totals', async (request) => {
        authenticate(request, 'admin')
        const query = request.query as Record<string, unknown>
        const by = query.by
        if (by !== 'user' && by !== 'printer' && by !== 'day') {
          throw new InvalidRequestError('query parameter "by" must be user, printer or day')
        }
        return { by, totals: api.usageTotals(parseUsageQuery(query), by) }
      })

      app.get('/api/usage/records', async (request) => {
        authenticate(request, 'admin')
        return { records: api.usageRecords(parseUsageQuery(request.query as Record<string, unknown>)) }
      })

      app.get('/api/usage.csv', async (request, reply) => {
        authenticate(request, 'admin')
        const records = api.usageRecords(parseUsageQuery(request.query as Record<string, unknown>))
        const day = new Date(now()).toISOString().slice(0, 10)
        return await reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="printmesh-usage-${day}.csv"`)
          .send(usageCsv(records))
      })
    }
  }
}

/** Reads one time bound: milliseconds since epoch, or an ISO 8601 date / date-time. */
export function parseTimeParam (value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined
  if (typeof value !== 'string') throw new InvalidRequestError(`"${name}" must be given once`)
  if (/^\d+$/.test(value)) return Number(value)
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    const ms = Date.parse(value)
    if (!Number.isNaN(ms)) return ms
  }
  throw new InvalidRequestError(`"${name}" must be an ISO date (2024-05-31, 2024-05-31T12:00:00Z) or milliseconds since epoch`)
}

/** `from`, `to` and `user` query parameters of the accounting routes. */
function parseUsageQuery (query: Record<string, unknown>): UsageQuery {
  const out: UsageQuery = {}
  const from = parseTimeParam(query.from, 'from')
  const to = parseTimeParam(query.to, 'to')
  if (from !== undefined) out.from = from
  if (to !== undefined) out.to = to
  if (from !== undefined && to !== undefined && to < from) throw new InvalidRequestError('"to" is before "from"')
  if (typeof query.user === 'string' && query.user !== '') out.user = query.user
  return out
}

/** Column headers of the accounting export, in order. */
const USAGE_CSV_HEADER = ['id', 'time', 'kind', 'user', 'job id', 'job name', 'printer', 'site', 'pages', 'colour pages', 'sheets', 'duplex', 'copies']

/** The accounting export: one row per usage record, times in ISO 8601 UTC. */
export function usageCsv (records: readonly UsageRecordView[]): string {
  return toCsv(USAGE_CSV_HEADER, records.map((r) => [
    r.id, new Date(r.time).toISOString(), r.kind, r.user, r.jobId, r.jobName, r.printer, r.site,
    r.pages, r.colorPages, r.sheets, r.duplex, r.copies
  ]))
}

