/**
 * The terminal's panel: the routes the touch screen at an MFP calls. A user logs in (the
 * core's `/api/login`, sessions and login throttling), then lists the jobs they can release
 * at this device, releases one or all, deletes, and logs out. Every route answers for the
 * logged-in user only; an admin session sees nothing here (an admin owns no jobs).
 */
import type { CopyApi, CopyEndReason, PanelApi } from '../api.ts'
import { InvalidRequestError, KindedError } from '../../crdt/errors.ts'
import { MAX_NAME_LENGTH, objectBody, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const PANEL_ROUTES = { service: 'panel', prefixes: ['/api/panel'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** Copy routes of a terminal started without `--counters`. */
export class NoDeviceCountersError extends KindedError {
  readonly kind = 'not-found'
  constructor () { super('copying is not offered here: this terminal reads no device counters (start it with --counters)'); this.name = 'NoDeviceCountersError' }
}

/** Reasons the panel may give for ending a copy session (a restart is the terminal's own). */
const PANEL_END_REASONS: readonly CopyEndReason[] = ['done', 'logout', 'idle', 'next-user']

/** How the panel page logs users in. */
export interface PanelLoginOptions {
  /** Users type only their PIN (the page logs in at `/api/login` as the pseudo-user `#pin`); default false. */
  pinOnlyLogin?: boolean
}

/** `copies`: the terminal's copy sessions (device counters); without, the copy routes answer 404. `login`: how the page logs users in (`/api/panel/status` says it). */
export function panelRoutes (api: PanelApi, copies?: CopyApi, login: PanelLoginOptions = {}): HttpPlugin {
  return {
    ...PANEL_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/panel/status', async () => ({ ...api.status(), pinOnlyLogin: login.pinOnlyLogin === true }))

      app.get('/api/panel/jobs', async (request) => {
        const caller = authenticate(request, 'user')
        return { jobs: api.jobs(caller.actor) }
      })

      const jobParams = {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH } }
      } as const

      app.post('/api/panel/jobs/:id/release', { schema: { params: jobParams } }, async (request) => {
        const caller = authenticate(request, 'user')
        const { id } = request.params as { id: string }
        const job = await api.release(caller.actor, id)
        request.log.info({ user: caller.actor.user, job: job.id }, 'job released at the panel')
        return { job }
      })

      app.post('/api/panel/release-all', async (request) => {
        const caller = authenticate(request, 'user')
        const outcome = await api.releaseAll(caller.actor)
        request.log.info({ user: caller.actor.user, released: outcome.released.length, refused: outcome.refused.length }, 'release all at the panel')
        return outcome
      })

      app.delete('/api/panel/jobs/:id', { schema: { params: jobParams } }, async (request) => {
        const caller = authenticate(request, 'user')
        const { id } = request.params as { id: string }
        await api.remove(caller.actor, id)
        request.log.info({ user: caller.actor.user, job: id }, 'job deleted at the panel')
        return { ok: true }
      })

      // copy sessions: start, follow (running count), end and charge
      const copy = (): CopyApi => { if (copies === undefined) throw new NoDeviceCountersError(); return copies }
      app.get('/api/panel/copy', async (request) => {
        const caller = authenticate(request, 'user')
        return { session: await copy().current(caller.actor) ?? null }
      })

      app.post('/api/panel/copy/start', async (request) => {
        const caller = authenticate(request, 'user')
        return { session: await copy().begin(caller.actor) }
      })

      // an admin's view of the sessions that ended uncharged (counters unreadable), with their start readings
      app.get('/api/panel/copy/failed', async (request) => {
        authenticate(request, 'admin')
        return { failed: copy().failed() }
      })

      // body optional: { reason } (default done)
      app.post('/api/panel/copy/end', async (request) => {
        const caller = authenticate(request, 'user')
        const reason = request.body === undefined || request.body === null ? 'done' : objectBody(request.body, '{"reason":"done"}').reason ?? 'done'
        if (!(PANEL_END_REASONS as readonly unknown[]).includes(reason)) throw new InvalidRequestError(`reason must be one of ${PANEL_END_REASONS.join(', ')}`)
        return await copy().end(caller.actor, reason as CopyEndReason)
      })
    }
  }
}
