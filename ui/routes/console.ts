/**
 * The admin console's API (issue 16 item 4), on sites and central (and read-only on terminals
 * and clients: a change there is 409, node/printer-admin.ts `ConsoleReadOnlyError`): the mesh's sites with their
 * printers (state, reasons and supplies as each site last saw them) and pending admin
 * actions, jobs mesh-wide, and changes to any site's printers:
 *
 *   GET    /api/console/sites                     → {sites}
 *   GET    /api/console/printers                  → {printers}
 *   GET    /api/console/sites/:site/printers/:name → the printer (the audit log's "before")
 *   GET    /api/console/jobs?q=&state=&site=&offset=&limit= → {jobs, total, offset, limit}
 *   GET    /api/console/actions                   → {actions} asked from this node, newest first
 *   POST   /api/console/sites/:site/printers      {name, uri, description?}
 *   PATCH  /api/console/sites/:site/printers/:name {uri?, description?}
 *   DELETE /api/console/sites/:site/printers/:name
 *   PUT    /api/console/sites/:site/settings/:kind  (roaming, clients, terminals, policy, times: the body
 *          the site's own PUT /api/roaming, /roaming/clients, /roaming/terminals, /roaming/policy,
 *          /roaming/times takes)
 *
 * A change of this site's own printers or settings is applied at once (200 `{status: 'applied'}`); one
 * of another site's is a signed admin action that site applies (202 `{status: 'pending', id}`,
 * then `applied` or `refused` in `/api/console/actions` once its outcome arrives). Bad input
 * is 400 naming the field, an unknown site or printer 404, a busy printer 409.
 */
import type { HttpPlugin } from './plugin.ts'
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { AdminAction, AdminActionOp } from '../../crdt/admin-actions.ts'
import type { ClientSettings, PrintPolicy, RoamingSettings, SiteQueues, SiteTimes, TerminalModeSettings } from '../../crdt/site-config.ts'

export const CONSOLE_ROUTES = { service: 'mesh', prefixes: ['/api/console'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** An action with how it ended at its site (`pending` until that site's outcome reaches this node). */
export interface ConsoleAction extends AdminAction {
  status: 'pending' | 'applied' | 'refused'
  reason?: string
  settledAt?: number
}

export interface ConsolePrinter {
  site: string
  name: string
  uri: string
  description: string
  state?: string
  message?: string
  reasons?: string[]
  markers?: Array<{ name: string, level: number, color?: string, type?: string }>
  /** When the site last found its state changed. */
  statusAt?: number
  /** Actions asked for it and not yet applied. */
  pending: Array<{ id: string, op: AdminActionOp, at: number }>
}

export interface ConsoleSite {
  site: string
  hostname: string
  /** This node's own site. */
  self: boolean
  /** Its server is connected to this node (or is this node). */
  up: boolean
  lastSeen?: number
  terminals: Array<{ peer: string, up: boolean, lastSeen?: number }>
  roaming: RoamingSettings
  clients: ClientSettings
  terminalModes: TerminalModeSettings | undefined
  policy: PrintPolicy
  /** Hold and retention times an admin set (hours); what is absent is the start-up flag in `queues`. */
  times: Partial<SiteTimes>
  /** Its queues, and the hold and retention times it started with (once it announced them). */
  queues?: SiteQueues
  printers: ConsolePrinter[]
  /** The newest actions asked of it, with their status. */
  actions: ConsoleAction[]
  /** How many actions it has settled. */
  outcomes: number
}

export interface ConsoleJob {
  id: string
  name: string
  owner: string
  state: string
  site: string
  /** The peer holding it. */
  holder: string
  printer?: string
  pages?: number
  copies: number
  createdAt: number
  updatedAt: number
  heldAt?: string
  /** The site that printed it, when not its own (roaming). */
  printedAt?: string
}

export interface ConsoleJobQuery { q?: string, state?: string, site?: string, offset?: number, limit?: number }

export interface PrinterChange { op: AdminActionOp, name?: string, fields?: unknown }

/** What the console routes ask of a node (node/printer-admin.ts createAdminConsole). */
export interface ConsoleApi {
  sites: () => ConsoleSite[]
  printers: () => ConsolePrinter[]
  jobs: (q: ConsoleJobQuery) => { jobs: ConsoleJob[], total: number, offset: number, limit: number }
  actions: () => ConsoleAction[]
  changePrinter: (site: string, change: PrinterChange, admin: string) => Promise<ConsoleAction | { status: 'applied', printer?: unknown }>
  /** `kind`: roaming, clients, terminals, policy or times, with the body the site's own `/api/roaming…` route takes. */
  changeSettings: (site: string, kind: string, input: unknown, admin: string) => Promise<ConsoleAction | { status: 'applied', settings?: unknown }>
}

/** Job states a filter may name. */
const JOB_STATES = ['received', 'held', 'releasing', 'printing', 'printed', 'failed', 'deleted', 'expired']
/** Longest search text: a name or a user, not a document. */
const MAX_QUERY_CHARS = 200
/** Most jobs one page may ask for. */
const MAX_LIMIT = 200

function intParam (value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (typeof value !== 'string' || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidRequestError(`${name} must be a whole number from ${min} to ${max}`)
  return n
}

function textParam (value: unknown, name: string): string | undefined {
  if (value === undefined || value === '') return undefined
  if (typeof value !== 'string' || value.length > MAX_QUERY_CHARS) throw new InvalidRequestError(`${name} must be text of at most ${MAX_QUERY_CHARS} characters`)
  return value
}

const KNOWN_PARAMS = ['q', 'state', 'site', 'offset', 'limit']

export function consoleRoutes (api: ConsoleApi): HttpPlugin {
  return {
    ...CONSOLE_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/console/sites', async (request) => {
        authenticate(request, 'admin')
        return { sites: api.sites() }
      })
      app.get('/api/console/printers', async (request) => {
        authenticate(request, 'admin')
        return { printers: api.printers() }
      })
      app.get('/api/console/sites/:site/printers/:name', async (request, reply) => {
        authenticate(request, 'admin')
        const { site, name } = request.params as { site: string, name: string }
        const found = api.printers().find((p) => p.site === site && p.name === name)
        return found ?? await reply.code(404).send({ error: `no printer named ${name} is known at ${site}` })
      })
      app.get('/api/console/actions', async (request) => {
        authenticate(request, 'admin')
        return { actions: api.actions() }
      })
      app.get('/api/console/jobs', async (request) => {
        authenticate(request, 'admin')
        const query = request.query as Record<string, unknown>
        const unknown = Object.keys(query).find((k) => !KNOWN_PARAMS.includes(k))
        if (unknown !== undefined) throw new InvalidRequestError(`unknown parameter ${unknown}: ${KNOWN_PARAMS.join(', ')} are known`)
        const state = textParam(query.state, 'state')
        if (state !== undefined && !JOB_STATES.includes(state)) throw new InvalidRequestError(`state must be one of ${JOB_STATES.join(', ')}`)
        const q = textParam(query.q, 'q')
        const site = textParam(query.site, 'site')
        const offset = intParam(query.offset, 'offset', 0, 1_000_000)
        const limit = intParam(query.limit, 'limit', 1, MAX_LIMIT)
        return api.jobs({ ...(q !== undefined ? { q } : {}), ...(state !== undefined ? { state } : {}), ...(site !== undefined ? { site } : {}), ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) })
      })

      const answer = async (reply: { code: (n: number) => unknown }, result: { status: string }): Promise<unknown> => {
        reply.code(result.status === 'pending' ? 202 : 200)
        return result
      }
      app.post('/api/console/sites/:site/printers', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const { site } = request.params as { site: string }
        return await answer(reply, await api.changePrinter(site, { op: 'add-printer', fields: request.body }, caller.actor.user))
      })
      app.patch('/api/console/sites/:site/printers/:name', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const { site, name } = request.params as { site: string, name: string }
        return await answer(reply, await api.changePrinter(site, { op: 'edit-printer', name, fields: request.body }, caller.actor.user))
      })
      app.put('/api/console/sites/:site/settings/:kind', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const { site, kind } = request.params as { site: string, kind: string }
        return await answer(reply, await api.changeSettings(site, kind, request.body, caller.actor.user))
      })
      app.delete('/api/console/sites/:site/printers/:name', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const { site, name } = request.params as { site: string, name: string }
        return await answer(reply, await api.changePrinter(site, { op: 'remove-printer', name }, caller.actor.user))
      })
    }
  }
}
