/**
 * A site's terminals for its admin page (issue 12 item 6): `GET /api/terminals` (admin)
 * lists each terminal of the site: online or when last seen, and what it last said of
 * itself — its printer's state, reasons and supplies, its directory copy, its last sync.
 */
import type { TerminalsApi } from '../api.ts'
import type { HttpPlugin } from './plugin.ts'

export function terminalsRoutes (api: TerminalsApi): HttpPlugin {
  return {
    service: 'mesh',
    prefixes: ['/api/terminals'],
    register (app, { authenticate }) {
      app.get('/api/terminals', async (request) => {
        authenticate(request, 'admin')
        return { terminals: await api.list() }
      })
    }
  }
}
