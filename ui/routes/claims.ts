/**
 * Claiming jobs at a terminal's panel (issue 13 item 3): where the site does not trust the
 * `requesting-user-name` workstations send, a job sent straight to the terminal is nobody's
 * until a user logged in at the panel claims it. `GET /api/claims` lists them to any logged-in
 * user (name, pages, when, from which address: what tells the sender their own job);
 * `POST /api/claims/:id` makes it the caller's. An admin session claims nothing (it owns no jobs).
 */
import type { ClaimApi } from '../api.ts'
import { MAX_NAME_LENGTH, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const CLAIM_ROUTES = { service: 'panel', prefixes: ['/api/claims'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function claimRoutes (api: ClaimApi): HttpPlugin {
  return {
    ...CLAIM_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/claims', async (request) => {
        authenticate(request, 'user')
        return { jobs: api.claimable() }
      })

      const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } } } as const
      app.post('/api/claims/:id', { schema: { params } }, async (request) => {
        const caller = authenticate(request, 'user')
        const { id } = request.params as { id: string }
        const job = await api.claim(caller.actor, id)
        request.log.info({ job: id, by: caller.actor.user }, 'job claimed at the panel')
        return { job }
      })
    }
  }
}
