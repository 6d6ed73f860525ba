/**
 * Prometheus text exposition (format 0.0.4) of a node's jobs and usage (when it runs the
 * print service), its mesh and sync traffic (when it has a mesh) and its HTTP traffic.
 */
import type { JobState } from '../devices/jobs/types.ts'
import type { MeshStatus, SiteApi } from './api.ts'

/** The content type Prometheus scrapers expect for the text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Every job state, so a state with no jobs reports 0 rather than vanishing. */
const JOB_STATES: readonly JobState[] = ['received', 'held', 'releasing', 'printing', 'printed', 'failed', 'deleted', 'expired']
/** The identity the metrics endpoint reads jobs as; it only counts them. */
const METRICS_READER = { user: 'metrics', admin: true } as const

/** Counts HTTP responses by status code. */
export class HttpCounter {
  private readonly byStatus = new Map<number, number>()

  record (status: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1)
  }

  entries (): Array<[number, number]> {
    return [...this.byStatus.entries()].sort((a, b) => a[0] - b[0])
  }
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabel (value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
}

function family (out: string[], name: string, type: 'gauge' | 'counter', help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
}

/** What {@link renderMetrics} reads; each absent source leaves its families out. */
export interface MetricSources {
  site?: SiteApi
  mesh?: MeshStatus
  http: HttpCounter
}

/** Renders the metrics document. */
export function renderMetrics (sources: MetricSources): string {
  const out: string[] = []
  if (sources.site !== undefined) renderSiteMetrics(out, sources.site)
  if (sources.mesh !== undefined) renderMeshMetrics(out, sources.mesh)
  family(out, 'printmesh_http_requests_total', 'counter', 'HTTP requests answered, by status code.')
  for (const [status, n] of sources.http.entries()) out.push(`printmesh_http_requests_total{status="${status}"} ${n}`)
  return out.join('\n') + '\n'
}

function renderSiteMetrics (out: string[], api: SiteApi): void {
  const jobCounts = new Map<JobState, number>(JOB_STATES.map((s) => [s, 0]))
  for (const job of api.listJobs(METRICS_READER, 'all').jobs) {
    jobCounts.set(job.state, (jobCounts.get(job.state) ?? 0) + 1)
  }
  family(out, 'printmesh_jobs', 'gauge', 'Jobs known to this site, by state.')
  for (const [state, n] of jobCounts) out.push(`printmesh_jobs{state="${escapeLabel(state)}"} ${n}`)

  let jobs = 0
  let pages = 0
  let colorPages = 0
  let sheets = 0
  for (const row of api.usageTotals({}, 'printer')) {
    jobs += row.jobs
    pages += row.pages
    colorPages += row.colorPages
    sheets += row.sheets
  }
  family(out, 'printmesh_usage_jobs_total', 'counter', 'Print and copy jobs recorded in accounting.')
  out.push(`printmesh_usage_jobs_total ${jobs}`)
  family(out, 'printmesh_usage_pages_total', 'counter', 'Pages recorded in accounting.')
  out.push(`printmesh_usage_pages_total ${pages}`)
  family(out, 'printmesh_usage_color_pages_total', 'counter', 'Colour pages recorded in accounting.')
  out.push(`printmesh_usage_color_pages_total ${colorPages}`)
  family(out, 'printmesh_usage_sheets_total', 'counter', 'Sheets of paper recorded in accounting.')
  out.push(`printmesh_usage_sheets_total ${sheets}`)
}

function renderMeshMetrics (out: string[], status: MeshStatus): void {
  const connected = new Set(status.peers.filter((p) => p.connected).map((p) => p.peer))
  family(out, 'printmesh_mesh_peers', 'gauge', 'Peers this node knows of, and how many of them are connected now.')
  out.push(`printmesh_mesh_peers{state="connected"} ${connected.size}`)
  out.push(`printmesh_mesh_peers{state="known"} ${status.peers.length}`)
  family(out, 'printmesh_mesh_documents', 'gauge', 'Replicated documents this node holds.')
  out.push(`printmesh_mesh_documents ${status.documents.length}`)

  const { stats } = status
  family(out, 'printmesh_sync_envelopes_total', 'counter', 'Sync envelopes received from and sent to peers.')
  out.push(`printmesh_sync_envelopes_total{direction="in"} ${stats.envelopesIn}`)
  out.push(`printmesh_sync_envelopes_total{direction="out"} ${stats.envelopesOut}`)
  family(out, 'printmesh_sync_bytes_total', 'counter', 'Bytes of sync envelopes received from and sent to peers.')
  out.push(`printmesh_sync_bytes_total{direction="in"} ${stats.bytesIn}`)
  out.push(`printmesh_sync_bytes_total{direction="out"} ${stats.bytesOut}`)
  family(out, 'printmesh_sync_rejected_total', 'counter', 'Incoming updates refused, by reason.')
  for (const reason of Object.keys(stats.rejected).sort()) {
    out.push(`printmesh_sync_rejected_total{reason="${escapeLabel(reason)}"} ${stats.rejected[reason]}`)
  }

  const lagging = status.documents.filter((d) =>
    Object.entries(d.peers).some(([peer, state]) => state === 'behind' && connected.has(peer))).length
  family(out, 'printmesh_sync_lag_documents', 'gauge', 'Documents in which this node is behind at least one connected peer.')
  out.push(`printmesh_sync_lag_documents ${lagging}`)
}
