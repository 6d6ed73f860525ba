/** Roaming settings of this site: partners and mode; what its workstation clients may do; the release modes its terminals offer; its print policy; its hold and retention times (admins). */
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

      app.put('/api/roaming/clients', { schema: { body: { type: 'object' } } }, async (request) => {
        const caller = authenticate(request, 'admin')
        const view = await api.setClientSettings(request.body)
        request.log.info({ by: caller.actor.user, clients: view.clients }, 'client settings changed')
        return view
      })

      // device spooling at the site's terminals: the queues they offer and the one /ipp/print takes (applied by each terminal as it arrives)
      app.put('/api/roaming/terminals', { schema: { body: { type: 'object' } } }, async (request) => {
        const caller = authenticate(request, 'admin')
        const view = await api.setTerminalModes(request.body)
        request.log.info({ by: caller.actor.user, terminals: view.terminals }, 'terminal modes changed')
        return view
      })

      // the site's print policy: force duplex, monochrome for some groups (applied by whichever of its peers prints)
      app.put('/api/roaming/policy', { schema: { body: { type: 'object' } } }, async (request) => {
        const caller = authenticate(request, 'admin')
        const view = await api.setPrintPolicy(request.body)
        request.log.info({ by: caller.actor.user, policy: view.policy }, 'print policy changed')
        return view
      })

      // how long the site's peers hold and keep jobs, over their start-up flags (applied at each use: jobs already held too)
      app.put('/api/roaming/times', { schema: { body: { type: 'object' } } }, async (request) => {
        const caller = authenticate(request, 'admin')
        const view = await api.setTimes(request.body)
        request.log.info({ by: caller.actor.user, times: view.times }, 'hold and retention times changed')
        return view
      })
    }
  }
}
