/**
 * A workstation client's local page API (node/client.ts), for the workstation's own user,
 * so from loopback only (403 otherwise): the page is served on the machine it describes.
 * - `GET /api/client`: the workstation, whether its site is reachable, its jobs (where a
 *   fallback job went), the fallback printers and the chosen one.
 * - `PUT /api/client/fallback` `{printer}`: the fallback printer tried first.
 * - `POST /api/client/jobs/:id/fallback` `{printer?}`: print a held job on a fallback printer now.
 * - `DELETE /api/client/jobs/:id`: cancel a job of this workstation.
 */
import type { FastifyRequest } from 'fastify'
import type { ClientApi } from '../api.ts'
import { InvalidRequestError } from '../../crdt/errors.ts'
import { ForbiddenError } from '../errors.ts'
import { MAX_NAME_LENGTH, objectBody, type HttpPlugin } from './plugin.ts'
import { fromLoopback } from './card-reader.ts'

/** This family's service and the paths it owns. */
export const CLIENT_ROUTES = { service: 'client', prefixes: ['/api/client'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

function local (request: FastifyRequest): void {
  if (!fromLoopback(request)) throw new ForbiddenError('a workstation\'s page is for its own user: open it on the workstation (http://127.0.0.1:PORT/)')
}

function printerOf (body: unknown, required: boolean): string | undefined {
  const { printer } = objectBody(body ?? {}, '{"printer":"backup"}')
  if (printer === undefined && !required) return undefined
  if (typeof printer !== 'string' || printer.length === 0 || printer.length > MAX_NAME_LENGTH) throw new InvalidRequestError('printer must be the name of a fallback printer, e.g. {"printer":"backup"}')
  return printer
}

export function clientRoutes (api: ClientApi): HttpPlugin {
  return {
    ...CLIENT_ROUTES,
    register (app) {
      app.get('/api/client', async (request) => {
        local(request)
        return api.status()
      })
      app.put('/api/client/fallback', async (request) => {
        local(request)
        await api.chooseFallback(printerOf(request.body, true) as string)
        return api.status()
      })
      app.post('/api/client/jobs/:id/fallback', async (request) => {
        local(request)
        await api.printOnFallback((request.params as { id: string }).id, printerOf(request.body, false))
        return api.status()
      })
      app.delete('/api/client/jobs/:id', async (request) => {
        local(request)
        await api.cancel((request.params as { id: string }).id)
        return api.status()
      })
    }
  }
}
