/** The site's users for admins: the list, and a CSV import. */
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { SiteApi } from '../api.ts'
import { CSV_IMPORT_BODY_LIMIT, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const USERS_ROUTES = { service: 'print', prefixes: ['/api/users'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function usersRoutes (api: SiteApi): HttpPlugin {
  return {
    ...USERS_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/users', async (request) => {
        authenticate(request, 'admin')
        return { users: api.users() }
      })

      app.post('/api/users/import', { bodyLimit: CSV_IMPORT_BODY_LIMIT }, async (request) => {
        const caller = authenticate(request, 'admin')
        if (typeof request.body !== 'string') {
          throw new InvalidRequestError('send the users as a text/csv body of "username,full name,PIN" rows')
        }
        const result = await api.importUsers(request.body)
        request.log.info({ by: caller.actor.user, imported: result.imported }, 'users imported')
        return { imported: result.imported }
      })
    }
  }
}
