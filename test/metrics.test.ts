// /metrics of a real site, scraped as Prometheus does: Node's process metrics, IPP intake
// and release latency histograms, usage counters exact per charge and kept across a restart,
// jobs by state; and sync latency on a site that receives a peer's updates.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'

const run = promisify(execFile)
let dir = ''
const started: SiteProcess[] = []

test.before(async () => { dir = await tempDir('printmesh-metrics-') })
test.after(async () => {
  for (const s of started.reverse()) await s.stop()
  await rm(dir, { recursive: true, force: true })
})

/** One scrape: sample name with labels (as written) → value. */
async function scrape (site: SiteProcess): Promise<Map<string, number>> {
  const res = await fetch(`${site.httpUrl}/metrics`)
  assert.is(res.status, 200)
  assert.match(String(res.headers.get('content-type')), /^text\/plain; version=0\.0\.4/)
  const out = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

interface ApiJob { id: string, state: string }
async function jobs (site: SiteProcess): Promise<ApiJob[]> {
  const res = await fetch(`${site.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${site.adminToken}` } })
  return ((await res.json()) as { jobs: ApiJob[] }).jobs
}

async function release (site: SiteProcess, id: string): Promise<void> {
  const res = await fetch(`${site.httpUrl}/api/jobs/${id}/release`, { method: 'POST', headers: { authorization: `Bearer ${site.adminToken}`, 'content-type': 'application/json' }, body: '{}' })
  assert.is(res.status, 200, await res.text())
}

test('a site\'s /metrics: process metrics, intake and release histograms, usage counted exactly and kept across a restart', async () => {
  const data = `${dir}/site`
  let site = await startSite({ dataDir: data })
  started.push(site)
  const before = await scrape(site)
  assert.ok((before.get('process_resident_memory_bytes') ?? 0) > 0, 'process metrics')
  assert.ok(before.has('nodejs_eventloop_lag_seconds'), 'event-loop metrics')
  assert.ok(before.has('nodejs_heap_size_used_bytes'), 'heap metrics')
  assert.is(before.get('printmesh_usage_pages_total'), 0)

  const pdf = await makePdf(dir, { pages: 3, colorPages: [1] })
  for (const title of ['one', 'two']) await run('lp', ['-h', `127.0.0.1:${site.ippPort}`, '-d', 'print', '-U', 'dana', '-t', title, pdf])
  await until(async () => (await jobs(site)).filter((j) => j.state === 'held').length === 2, 20_000, 'both held')
  const held = await scrape(site)
  assert.is(held.get('printmesh_jobs{state="held"}'), 2)
  const ipp = [...held.keys()].filter((k) => k.startsWith('printmesh_ipp_request_duration_seconds_count')).map((k) => `${k} ${held.get(k)}`)
  // lp sends Create-Job, then the document with Send-Document: both observed, once per job
  for (const op of ['Create-Job', 'Send-Document']) {
    assert.is(held.get(`printmesh_ipp_request_duration_seconds_count{operation="${op}",status="successful-ok"}`), 2, `${op} in ${ipp.join(', ')}`)
  }

  for (const j of await jobs(site)) await release(site, j.id)
  await until(async () => (await jobs(site)).every((j) => j.state === 'printed'), 30_000, 'both printed')
  const printed = await scrape(site)
  assert.equal(
    ['jobs', 'pages', 'color_pages', 'sheets'].map((k) => printed.get(`printmesh_usage_${k}_total`)),
    [2, 6, 2, 6], 'two jobs of 3 pages, 1 of them colour')
  assert.is(printed.get('printmesh_release_duration_seconds_count{outcome="printed"}'), 2)
  assert.equal([printed.get('printmesh_jobs{state="held"}'), printed.get('printmesh_jobs{state="printed"}')], [0, 2])

  // counters continue from the site's own accounting after a restart
  await site.stop()
  started.pop()
  site = await startSite({ dataDir: data })
  started.push(site)
  const restarted = await scrape(site)
  assert.equal(['jobs', 'pages', 'color_pages', 'sheets'].map((k) => restarted.get(`printmesh_usage_${k}_total`)), [2, 6, 2, 6])
  assert.is(restarted.get('printmesh_jobs{state="printed"}'), 2)
})

test.run()
