/**
 * Enrolment anywhere (node/enrolment.ts): a logged-in user registers a card or sets a new
 * PIN where they are; central's admins decide cards two users claimed.
 *
 *   POST /api/enrol/card                     (user) { card }: the card now logs them in here, and everywhere once central merged it
 *   POST /api/enrol/pin                      (user) { oldPin, newPin, repeat }
 *   GET  /api/enrol/conflicts                (admin, central) cards claimed by two users, undecided first
 *   POST /api/enrol/conflicts/:id/assign     (admin, central) { user }: the card goes to that claimant
 *
 * Card numbers and PINs are never logged or answered. Errors: 400 bad values, 403 wrong
 * current PIN, 404 a route this node does not offer or an unknown conflict, 409 a card
 * another user holds or that waits for an admin.
 */
import { KindedError } from '../../crdt/errors.ts'
import { InvalidRequestError } from '../../crdt/errors.ts'
import { MAX_NAME_LENGTH, objectBody, type HttpPlugin } from './plugin.ts'

/** This family's paths. */
export const ENROL_ROUTES = { service: 'panel', prefixes: ['/api/enrol'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** What the routes call; each node offers the part it has (terminal: cards, PINs; site: PINs; central: conflicts). */
export interface EnrolApi {
  enrolCard?: (user: string, card: string) => Promise<{ registered: boolean }>
  enrolPin?: (user: string, oldPin: string, newPin: string, repeat: string) => Promise<void>
  conflicts?: () => Promise<unknown[]>
  assign?: (id: string, user: string, by: string) => Promise<unknown>
}

/** A route of enrolment this node does not offer. */
export class EnrolmentNotHereError extends KindedError {
  readonly kind = 'not-found'
  constructor (what: string) { super(`${what} is not offered on this node`); this.name = 'EnrolmentNotHereError' }
}

function text (body: Record<string, unknown>, field: string): string {
  const value = body[field]
  if (typeof value !== 'string' || value.length > MAX_NAME_LENGTH) throw new InvalidRequestError(`${field} must be a text of at most ${MAX_NAME_LENGTH} characters`)
  return value
}

function offered<T> (fn: T | undefined, what: string): T {
  if (fn === undefined) throw new EnrolmentNotHereError(what)
  return fn
}

export function enrolRoutes (api: EnrolApi): HttpPlugin {
  return {
    ...ENROL_ROUTES,
    register (app, { authenticate }) {
      app.post('/api/enrol/card', async (request) => {
        const caller = authenticate(request, 'user')
        const enrol = offered(api.enrolCard, 'registering a card')
        const body = objectBody(request.body, '{"card": "…"}')
        const outcome = await enrol(caller.actor.user, text(body, 'card'))
        request.log.info({ user: caller.actor.user, registered: outcome.registered }, 'card registration')
        return outcome
      })

      app.post('/api/enrol/pin', async (request) => {
        const caller = authenticate(request, 'user')
        const enrol = offered(api.enrolPin, 'setting a PIN')
        const body = objectBody(request.body, '{"oldPin": "…", "newPin": "…", "repeat": "…"}')
        await enrol(caller.actor.user, text(body, 'oldPin'), text(body, 'newPin'), text(body, 'repeat'))
        request.log.info({ user: caller.actor.user }, 'new PIN set')
        return { ok: true }
      })

      app.get('/api/enrol/conflicts', async (request) => {
        authenticate(request, 'admin')
        return { conflicts: await offered(api.conflicts, 'card conflicts')() }
      })

      app.post('/api/enrol/conflicts/:id/assign', async (request) => {
        const caller = authenticate(request, 'admin')
        const { id } = request.params as { id: string }
        const body = objectBody(request.body, '{"user": "alice"}')
        const conflict = await offered(api.assign, 'card conflicts')(id, text(body, 'user'), caller.actor.user)
        request.log.info({ by: caller.actor.user, conflict: id }, 'disputed card assigned')
        return { conflict }
      })
    }
  }
}
