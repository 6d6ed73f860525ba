/**
 * Central's LDAP synchronisation for admins (node/ldap-sync.ts):
 *
 *   GET  /api/ldap/status            the configuration (no secret), whether a sync runs, the next
 *                                    scheduled run, the last reports (newest first)
 *   POST /api/ldap/sync[?dryRun=1]   sync now (after one in progress); a dry run only reports
 *
 * A sync that failed (LDAP unreachable, bind refused) answers 503 with its reason and is
 * kept in the reports; nothing was changed. Without `--ldap-config` both answer 409 saying so.
 */
import { InvalidRequestError, KindedError } from '../../crdt/errors.ts'
import type { LdapStatus, LdapSyncApi, SyncReport } from '../ldap-api.ts'
import type { HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const LDAP_ROUTES = { service: 'ldap', prefixes: ['/api/ldap'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** The LDAP routes on a central started without --ldap-config (409). */
export class LdapNotConfiguredError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('LDAP sync is not configured: start central with --ldap-config FILE'); this.name = 'LdapNotConfiguredError' }
}

/** A sync asked for failed (LDAP down, bind refused); nothing was changed (503). */
export class LdapSyncFailedError extends KindedError {
  readonly kind = 'unavailable'
  constructor (reason: string) { super(`LDAP sync failed, nothing was changed: ${reason}`); this.name = 'LdapSyncFailedError' }
}

/** What a sync answers: its report. */
export interface LdapSyncAnswer { report: SyncReport }

function dryRunParam (value: unknown): boolean {
  if (value === undefined || value === '0' || value === 'false') return false
  if (value === '' || value === '1' || value === 'true') return true
  throw new InvalidRequestError('dryRun must be 1, true, 0 or false')
}

/** `sync` is undefined on a central without LDAP configuration. */
export function ldapRoutes (sync: LdapSyncApi | undefined): HttpPlugin {
  const configured = (): LdapSyncApi => {
    if (sync === undefined) throw new LdapNotConfiguredError()
    return sync
  }
  return {
    ...LDAP_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/ldap/status', async (request): Promise<LdapStatus> => {
        authenticate(request, 'admin')
        return configured().status()
      })

      app.post('/api/ldap/sync', async (request): Promise<LdapSyncAnswer> => {
        const caller = authenticate(request, 'admin')
        const dryRun = dryRunParam((request.query as Record<string, unknown>).dryRun)
        const report = await configured().sync({ dryRun, trigger: 'manual', by: caller.actor.user })
        request.log.info({ by: caller.actor.user, dryRun, result: report.result, ...report.counts }, dryRun ? 'LDAP dry run asked' : 'LDAP sync asked')
        if (report.result === 'failed') throw new LdapSyncFailedError(report.error ?? 'unknown reason')
        return { report }
      })
    }
  }
}
