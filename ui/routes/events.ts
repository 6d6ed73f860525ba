/**
 * Live updates for the admin console: `GET /api/events` (admin) is a server-sent event stream
 * (`text/event-stream`). Each time documents change here (a job printed at another site, a
 * printer's state, an action's outcome, an accounting record) or a peer connects or
 * disconnects ({@link PEERS_FEED}), one `change` event names the families that changed, at
 * most every {@link COALESCE_MS}; the page then asks the API again for what it shows. A comment line every {@link KEEPALIVE_MS} keeps proxies from closing an
 * idle stream. Streams end when the server stops.
 */
import type { ServerResponse } from 'node:http'
import type { HttpPlugin } from './plugin.ts'

export const EVENTS_ROUTES = { service: 'mesh', prefixes: ['/api/events'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** The name a `change` event gives to peers connecting or disconnecting (no document family is called so). */
export const PEERS_FEED = 'peers'
/** Changes within this are sent as one event: a burst of sync envelopes is one refresh. */
export const COALESCE_MS = 250
/** An idle stream gets a comment this often, so nothing between closes it. */
const KEEPALIVE_MS = 20_000
/** Most streams open at once: each is a socket and a listener. */
const MAX_STREAMS = 100

/** Where change notices come from (node: the document store's `entry` events, as document families, and the transport's peers as {@link PEERS_FEED}). */
export interface ChangeFeed {
  /** Calls `fn` with a document family each time one of its documents changes; returns the unsubscribe. */
  subscribe: (fn: (family: string) => void) => () => void
}

export function eventsRoutes (feed: ChangeFeed): HttpPlugin {
  const open = new Set<() => void>()
  return {
    ...EVENTS_ROUTES,
    register (app, { authenticate }) {
      app.addHook('preClose', async () => { for (const end of [...open]) end() })
      app.get('/api/events', async (request, reply) => {
        authenticate(request, 'admin')
        if (open.size >= MAX_STREAMS) return await reply.code(503).send({ error: `too many live streams open (${MAX_STREAMS}); close a console tab` })
        reply.hijack()
        const res: ServerResponse = reply.raw
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', connection: 'keep-alive' })
        res.write(': printmesh live updates\n\n')
        let families = new Set<string>()
        let timer: NodeJS.Timeout | undefined
        const flush = (): void => {
          timer = undefined
          const changed = [...families].sort()
          families = new Set()
          res.write(`event: change\ndata: ${JSON.stringify({ families: changed })}\n\n`)
        }
        const unsubscribe = feed.subscribe((family) => {
          families.add(family)
          timer ??= setTimeout(flush, COALESCE_MS)
        })
        const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS)
        keepalive.unref()
        const end = (): void => {
          if (!open.delete(end)) return
          unsubscribe()
          clearInterval(keepalive)
          if (timer !== undefined) clearTimeout(timer)
          res.end()
        }
        open.add(end)
        request.raw.on('close', end)
        res.on('error', end)
        // the client may have left while the request's hooks ran (a token's slow hash): no close event comes then
        if (res.destroyed || res.socket?.destroyed === true) end()
      })
    }
  }
}
