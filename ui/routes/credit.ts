/**
 * Users' credit (issue 20; node/credit.ts): balances, top-ups, deductions and the mesh's
 * credit policy, on every node that runs a credit service.
 *
 *   GET  /api/credit/mine                  a logged-in user: their own balance
 *   GET  /api/credit/users?q=&offset=&limit=  admin: users with credit or quotas, by name: balance, this month's quotas
 *   GET  /api/credit/users/:user           admin: a user's balance and where its shares are
 *   POST /api/credit/users/:user/top-up    admin, `{amount, reason?}` in minor units: new credit, created here (a site or central)
 *   POST /api/credit/users/:user/deduct    admin, `{amount, reason?}`: credit taken away (from what can be reached from here)
 *   GET  /api/credit/policy                admin: `{enforced, atZero, sites}` (none: `{enforced: false}`)
 *   PUT  /api/credit/policy                admin, at the mesh's authority: the policy
 */
import type { FastifyRequest } from 'fastify'
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { CreditPolicy } from '../../crdt/escrow.ts'
import { objectBody, MAX_NAME_LENGTH, type HttpPlugin } from './plugin.ts'

/** A user's quota of one measure this month: the quota, what was used, what is left, what this node holds. */
export interface QuotaStatusView { measure: 'pages' | 'colour' | 'cost', period: string, quota: number, used: number, left: number, here: number }

/** One user's credit and quotas in the admin's list (`GET /api/credit/users`). */
export interface CreditSummaryView {
  user: string
  /** The mesh price list's currency (undefined: no price list). */
  currency?: string
  /** Credited less spent, over every share this node knows of. */
  balance: number
  credited: number
  spent: number
  /** Reserved for prints under way (part of `spent`). */
  reserved: number
  quotas: Array<Omit<QuotaStatusView, 'here'>>
}

/** One user's credit as a node sees it (node/credit.ts): the summary, with where the shares are. */
export interface CreditStatusView extends Omit<CreditSummaryView, 'quotas'> {
  /** What this node holds: what a print here can spend without asking anyone. */
  here: number
  shares: Array<{ peer: string, amount: number, reachable: boolean }>
  enforced: boolean
  /** This month's quotas the user has. */
  quotas: QuotaStatusView[]
}

/** What the routes need of a node's credit service. */
export interface CreditApi {
  status: (user: string) => CreditStatusView
  list: (q: string, offset: number, limit: number) => { users: CreditSummaryView[], total: number }
  topUp: (user: string, amount: unknown, reason: unknown, by: string) => Promise<CreditStatusView>
  deduct: (user: string, amount: unknown, reason: unknown, by: string, signal: AbortSignal) => Promise<CreditStatusView>
  policy: () => CreditPolicy | undefined
  setPolicy: (raw: unknown, by: string) => Promise<CreditPolicy>
}

/** Users listed per page by default, and at most. */
const DEFAULT_PAGE = 50
const MAX_PAGE = 500

/** A whole-number query parameter within bounds, or its default when absent; 400 naming it otherwise. */
function pageNumber (raw: unknown, name: string, min: number, max: number, fallback: number): number {
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidRequestError(`${name} must be a whole number from ${min} to ${max}`)
  return n
}

/** How long an admin's deduction may spend gathering shares from other peers. */
const DEDUCT_TIMEOUT_MS = 15_000

export const CREDIT_ROUTES = { service: 'credit', prefixes: ['/api/credit'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

function userParam (request: FastifyRequest): string {
  const { user } = request.params as { user?: string }
  if (typeof user !== 'string' || user.length === 0 || user.length > MAX_NAME_LENGTH) throw new InvalidRequestError('the user name in the path is missing or too long')
  return user
}

export function creditRoutes (api: CreditApi): HttpPlugin {
  return {
    ...CREDIT_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/credit/mine', async (request) => {
        const { actor } = authenticate(request, 'user')
        return api.status(actor.user)
      })
      app.get('/api/credit/users', async (request) => {
        authenticate(request, 'admin')
        const query = request.query as Record<string, unknown>
        const q = typeof query.q === 'string' ? query.q : ''
        const offset = pageNumber(query.offset, 'offset', 0, Number.MAX_SAFE_INTEGER, 0)
        const limit = pageNumber(query.limit, 'limit', 1, MAX_PAGE, DEFAULT_PAGE)
        return { ...api.list(q, offset, limit), offset, limit }
      })
      app.get('/api/credit/users/:user', async (request) => {
        authenticate(request, 'admin')
        return api.status(userParam(request))
      })
      app.post('/api/credit/users/:user/top-up', async (request) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"amount": 1000, "reason": "term fee"}')
        return await api.topUp(userParam(request), body.amount, body.reason, actor.user)
      })
      app.post('/api/credit/users/:user/deduct', async (request) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"amount": 250, "reason": "correction"}')
        return await api.deduct(userParam(request), body.amount, body.reason, actor.user, AbortSignal.timeout(DEDUCT_TIMEOUT_MS))
      })
      app.get('/api/credit/policy', async (request) => {
        authenticate(request, 'admin')
        return api.policy() ?? { enforced: false }
      })
      app.put('/api/credit/policy', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return await api.setPolicy(request.body, actor.user)
      })
    }
  }
}
