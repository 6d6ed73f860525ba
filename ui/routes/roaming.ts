/** Roaming settings of this site: partners and mode (admins). */
import type { SiteApi } from '../api.ts'
import type { HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const ROAMING_ROUTES = { service: 'print', prefixes: ['/api/roaming'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function roamingRoutes (api: SiteApi): HttpPlugin {
  return {
    ...ROAMING_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/roaming', async (request) => {
        authenticate(request, 'admin')
        return api.roaming()
      })

      app.put('/api/roaming', { schema: { body: { type: 'object' } } }, async (request) => {
        const caller = authenticate(request, 'admin')
        const roaming = await api.setRoaming(request.body)
        request.log.info({ by: caller.actor.user, partners: roaming.partners.map((p) => p.site), mode: roaming.mode }, 'roaming settings changed')
        return roaming
      })
    }
  }
}
