/** Jobs and printers: the user's (or, for admins, every) job list, release and delete, the printers to release to. */
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { SiteApi } from '../api.ts'
import { MAX_NAME_LENGTH, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const JOBS_ROUTES = { service: 'print', prefixes: ['/api/jobs', '/api/printers'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function jobsRoutes (api: SiteApi): HttpPlugin {
  return {
    ...JOBS_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/jobs', {
        schema: {
          querystring: {
            type: 'object',
            properties: { scope: { type: 'string', enum: ['mine', 'all'] } }
          }
        }
      }, async (request) => {
        const { scope: asked } = request.query as { scope?: 'mine' | 'all' }
        const caller = authenticate(request, asked === 'all' ? 'admin' : 'user')
        // an admin owns no jobs: without a scope, an admin sees every job, a user their own
        const scope = asked ?? (caller.actor.admin ? 'all' : 'mine')
        return api.listJobs(caller.actor, scope)
      })

      const jobParams = {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } }
      } as const

      app.post('/api/jobs/:id/release', { schema: { params: jobParams } }, async (request) => {
        const caller = authenticate(request, 'user')
        const { id } = request.params as { id: string }
        const printer = releasePrinter(request.body)
        const job = await api.releaseJob(caller.actor, id, printer)
        request.log.info({ user: caller.actor.user, job: job.id, printer: job.printer ?? printer }, 'job released')
        return { job }
      })

      app.delete('/api/jobs/:id', { schema: { params: jobParams } }, async (request) => {
        const caller = authenticate(request, 'user')
        const { id } = request.params as { id: string }
        const job = await api.deleteJob(caller.actor, id)
        request.log.info({ user: caller.actor.user, job: job.id }, 'job deleted')
        return { job }
      })

      app.get('/api/printers', async (request) => {
        authenticate(request, 'user')
        return { printers: await api.printers() }
      })
    }
  }
}

/** `{printer?}` from a release request's body (which may be absent). */
function releasePrinter (body: unknown): string | undefined {
  if (body === undefined || body === null) return undefined
  if (typeof body !== 'object' || Array.isArray(body)) throw new InvalidRequestError('body must be a JSON object like {"printer": "name"}')
  const printer = (body as { printer?: unknown }).printer
  if (printer === undefined || printer === null || printer === '') return undefined
  if (typeof printer !== 'string' || printer.length > MAX_NAME_LENGTH) throw new InvalidRequestError('"printer" must be a printer name')
  return printer
}

