/**
 * The card reader daemon's routes (issue 12 item 2), part of the panel:
 * - `POST /api/panel/card` `{card}`: a reader daemon on the MFP posts the card it read.
 *   With a daemon token configured it must send `Authorization: Bearer <token>` (401
 *   otherwise); without one, only loopback may post (403 otherwise). A malformed card is
 *   400. 202 `{expiresAt}`: the card waits that long for the panel page.
 * - `POST /api/panel/card/claim`: the panel page (served to the device's own browser, so
 *   loopback only) takes the waiting card, once: `{card}` or `{card: null}`. The page then
 *   logs in with it through `/api/login/card`, as a card typed by a wedge reader.
 */
import type { FastifyRequest } from 'fastify'
import type { CardReaderDoor } from '../api.ts'
import { InvalidRequestError } from '../../crdt/errors.ts'
import { ForbiddenError, UnauthenticatedError } from '../errors.ts'
import { objectBody, type HttpPlugin } from './plugin.ts'
import { PANEL_ROUTES } from './panel.ts'

/** Whether the request comes from this machine (the MFP itself). */
export function fromLoopback (request: FastifyRequest): boolean {
  const ip = request.socket.remoteAddress ?? ''
  return ip === '127.0.0.1' || ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.')
}

const bearer = (request: FastifyRequest): string | undefined => {
  const header = request.headers.authorization
  return header?.startsWith('Bearer ') === true ? header.slice('Bearer '.length) : undefined
}

export function cardReaderRoutes (door: CardReaderDoor): HttpPlugin {
  return {
    service: PANEL_ROUTES.service,
    prefixes: ['/api/panel/card'],
    register (app) {
      app.post('/api/panel/card', async (request, reply) => {
        if (door.needsToken) {
          if (!door.tokenMatches(bearer(request))) throw new UnauthenticatedError('wrong or missing card reader token (Authorization: Bearer <token from --card-reader-token-file>)')
        } else if (!fromLoopback(request)) {
          throw new ForbiddenError('card readers post from the device itself (loopback) unless the terminal has --card-reader-token-file')
        }
        const { card } = objectBody(request.body, '{"card":"0004417223"}')
        if (typeof card !== 'string') throw new InvalidRequestError('card must be a string of the card number, e.g. {"card":"0004417223"}')
        const held = door.post(card)
        request.log.info('card posted by a reader daemon') // never the card number
        return await reply.code(202).send(held)
      })

      app.post('/api/panel/card/claim', async (request) => {
        if (!fromLoopback(request)) throw new ForbiddenError('only the panel on the device itself (loopback) takes cards from the reader daemon')
        return { card: door.take() ?? null }
      })
    }
  }
}
