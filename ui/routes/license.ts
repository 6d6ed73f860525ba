/**
 * Central's product license for admins: `GET /api/license` (the license's fields, usage
 * against its limits, and its state), `PUT /api/license` (install a new signed license file,
 * the file's JSON as the body). Registered on central only; a part of the mesh service.
 */
import type { HttpPlugin } from './plugin.ts'
import { objectBody } from './plugin.ts'

export type LicenseLimitName = 'sites' | 'terminals' | 'clients' | 'users'

/** What `GET /api/license` answers. */
export interface LicenseView {
  /** `unlicensed` (evaluation, no limits), `valid`, `expiring` (within 30 days), `expired-in-grace`, `expired` (new enrolments refused). */
  state: 'unlicensed' | 'valid' | 'expiring' | 'expired-in-grace' | 'expired'
  /** The installed license's fields (ISO times); absent when unlicensed. */
  license?: { organisation: string, licenseId: string, limits: Record<LicenseLimitName, number>, issuedAt: string, expiresAt: string }
  /** What is in use against the limits: enrolled sites, terminals and clients, active users. */
  usage: Record<LicenseLimitName, number>
  /** A sentence for the admin page's banner and the logs. */
  message: string
}

/** What central hands the routes. */
export interface LicenseApi {
  view: () => LicenseView
  /** Verifies and installs a license file's text; throws the license's InvalidLicenseError (400). */
  install: (text: string) => Promise<LicenseView>
}

/** This family's service (the license belongs to the mesh's authority) and the paths it owns. */
export const LICENSE_ROUTES = { service: 'mesh', prefixes: ['/api/license'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function licenseRoutes (license: LicenseApi): HttpPlugin {
  return {
    ...LICENSE_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/license', async (request) => {
        authenticate(request, 'admin')
        return license.view()
      })

      app.put('/api/license', async (request) => {
        const caller = authenticate(request, 'admin')
        const file = objectBody(request.body, '{"license": {…}, "signature": "…"} (the license file as issued)')
        const view = await license.install(JSON.stringify(file, null, 2) + '\n')
        request.log.info({ by: caller.actor.user, licenseId: view.license?.licenseId, state: view.state }, 'license installed')
        return view
      })
    }
  }
}
