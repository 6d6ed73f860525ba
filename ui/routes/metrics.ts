/** Prometheus metrics at `/metrics` (ui/metrics.ts): every role registers it; public, as scrapers expect. */
import type { NodeMetrics } from '../metrics.ts'
import type { HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const METRICS_ROUTES = { service: 'metrics', prefixes: ['/metrics'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function metricsRoutes (metrics: NodeMetrics): HttpPlugin {
  return {
    ...METRICS_ROUTES,
    register (app) {
      app.get('/metrics', async (_request, reply) => {
        return await reply.type(metrics.contentType).send(await metrics.render())
      })
    }
  }
}
