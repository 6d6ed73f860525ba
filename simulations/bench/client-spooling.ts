/**
 * Client spooling (issue 14): the bytes that pass through a site's server per job when the
 * workstation keeps the document (client spooling) against when the site holds it, for the
 * same jobs released at the same terminal. Real processes: central (users imported), site-a,
 * a terminal of site-a whose printer is a `file://` folder, and a workstation client.
 *
 *   client spooling: Print-Job to the client → released on the terminal's panel → the
 *     terminal fetches the document from the client (a file printer: the client cannot send
 *     to it itself, so this is the path with the most traffic between peers) → printed.
 *   site holding (the anchor): the same jobs Print-Job'd to the site's queue → released on
 *     the panel → the terminal fetches the document from the site → printed.
 *
 * Bytes through the site: the document bytes it received over IPP (the upload: the job's
 * size, 0 with client spooling), the document bytes it sent to peers
 * (`printmesh_document_bytes_sent_total`) and its sync traffic in and out
 * (`printmesh_sync_bytes_total`), from its own /metrics before and after each run.
 */
import { execFile } from 'node:child_process'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { startCentral, startClient, startSite, startTerminal, tempDir, type SiteProcess } from '../node-process.ts'
import { loopbackTarget, printJobRequest, sendPrintJob } from './ipp-load.ts'
import { paddedPdf, type PaddedPdf } from './pdf.ts'
import { call, login, waitFor, type Session } from './roaming.ts'
import { BenchmarkError, MB, round, type BenchContext, type Benchmark, type Row } from './common.ts'
import { printmeshArgs } from '../printmesh-command.ts'

/** The sizes: 100 jobs of 5 MB. */
const FULL = { jobs: 100, bytes: 5 * MB }
/** Quick: the same path, small. */
const QUICK = { jobs: 5, bytes: 1 * MB }
const USER = 'spooler'
const PIN = '4711'
/** Set-up steps (joining, the directory reaching the terminal) finish within this. */
const SETUP_TIMEOUT_MS = 120_000
/** One job, from Print-Job to the printed file, within this. */
const JOB_TIMEOUT_MS = 120_000
/** The whole of one mode's jobs within this (bounded run). */
const RUN_BUDGET_MS = 900_000
const ROOT = new URL('../..', import.meta.url).pathname

export class ClientSpoolingBenchError extends BenchmarkError {
  constructor (message: string) { super(message); this.name = 'ClientSpoolingBenchError' }
}

interface SiteBytes { documentsSent: number, syncIn: number, syncOut: number }

/** The site's counters of document bytes sent and sync bytes, from its /metrics. */
async function siteBytes (site: SiteProcess): Promise<SiteBytes> {
  const res = await fetch(`${site.httpUrl}/metrics`, { headers: { authorization: `Bearer ${site.adminToken}` } })
  const text = await res.text()
  const value = (prefix: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(prefix))
    if (line === undefined) throw new ClientSpoolingBenchError(`no ${prefix} in the site's /metrics`)
    return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return {
    documentsSent: value('printmesh_document_bytes_sent_total '),
    syncIn: value('printmesh_sync_bytes_total{direction="in"}'),
    syncOut: value('printmesh_sync_bytes_total{direction="out"}')
  }
}

interface PanelJob { id: string, name: string, state: string }

/** Prints `jobs` documents to `ippUri` one at a time, each released on the terminal's panel and waited for in the printer folder. */
async function runJobs (ctx: BenchContext, mode: string, ippUri: string, terminal: SiteProcess, panel: Session, printerDir: string, doc: PaddedPdf, jobs: number, firstVariant: number): Promise<{ done: number, ms: number }> {
  const target = loopbackTarget(ippUri)
  const started = performance.now()
  let done = 0
  for (let n = 0; n < jobs && performance.now() - started < RUN_BUDGET_MS; n++) {
    const name = `${mode} ${n}`
    const answer = await sendPrintJob(target, printJobRequest(ippUri, USER, name, n + 1), doc.variant(firstVariant + n), JOB_TIMEOUT_MS)
    if (answer.code > 0xff) throw new ClientSpoolingBenchError(`Print-Job ${name} refused: status 0x${answer.code.toString(16)}`)
    const job = await waitFor(async () => (await call<{ jobs: PanelJob[] }>(terminal, '/api/panel/jobs', { session: panel })).jobs.find((j) => j.name === name && j.state === 'held'), JOB_TIMEOUT_MS, `${name} listed on the panel`, 20)
    await call(terminal, `/api/panel/jobs/${job.id}/release`, { method: 'POST', session: panel })
    await waitFor(async () => (await readdir(printerDir).catch(() => [] as string[])).filter((f) => !f.startsWith('.')).length >= firstVariant + n + 1, JOB_TIMEOUT_MS, `${name} printed`, 20)
    done++
    if ((n + 1) % 10 === 0) ctx.log(`client-spooling: ${mode}: ${n + 1}/${jobs}`)
  }
  return { done, ms: performance.now() - started }
}

export const clientSpooling: Benchmark = {
  name: 'client-spooling',
  description: 'bytes through the site\'s server per job, client spooling vs the site holding the document (real processes, released at a terminal)',
  async run (ctx) {
    const size = ctx.quick ? QUICK : FULL
    const work = await tempDir('printmesh-bench-spooling-')
    const running: SiteProcess[] = []
    try {
      const centralDir = join(work, 'central')
      await mkdir(centralDir)
      await writeFile(join(work, 'users.csv'), `${USER},Spooling user,${PIN}\n`)
      await promisify(execFile)(process.execPath, [...printmeshArgs(), 'users', 'import', join(work, 'users.csv'), '--data', centralDir], { cwd: ROOT, timeout: SETUP_TIMEOUT_MS })
      const central = await startCentral({ dataDir: centralDir })
      running.push(central)
      const token = async (role: string): Promise<string> => (await call<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role, site: 'site-a' } })).joinString
      const site = await startSite({ args: ['--site', 'site-a', '--join', await token('site')] })
      running.push(site)
      const printerDir = join(work, 'mfp')
      const terminal = await startTerminal({ args: ['--join', await token('terminal'), '--printer', `file://${printerDir}`, '--name', 'mfp', '--no-dnssd'] })
      running.push(terminal)
      const client = await startClient({ args: ['--join', await token('client'), '--user', USER, '--name', 'workstation'] })
      running.push(client)
      const panel = await waitFor(async () => await login(terminal, USER, PIN), SETUP_TIMEOUT_MS, 'the directory at the terminal')
      await waitFor(async () => (await (await fetch(`${client.httpUrl}/api/client`)).json() as { siteReachable: boolean }).siteReachable, SETUP_TIMEOUT_MS, 'the client reaching its site')
      const doc = await paddedPdf(size.bytes)
      ctx.log(`client-spooling: ${size.jobs} jobs of ${round(doc.size / MB)} MB each way`)

      const measure = async (mode: string, ippUri: string, firstVariant: number): Promise<Row> => {
        const before = await siteBytes(site)
        const { done, ms } = await runJobs(ctx, mode, ippUri, terminal, panel, printerDir, doc, size.jobs, firstVariant)
        // the last records settle at the site before the counters are read again
        await waitFor(async () => (await call<{ jobs: Array<{ name: string, state: string }> }>(site, '/api/jobs?scope=all')).jobs.filter((j) => j.name.startsWith(mode) && j.state === 'printed').length >= done, SETUP_TIMEOUT_MS, `${mode}: the site knows every job printed`)
        const after = await siteBytes(site)
        const upload = mode === 'site holding' ? done * doc.size : 0
        const through = upload + (after.documentsSent - before.documentsSent) + (after.syncIn - before.syncIn) + (after.syncOut - before.syncOut)
        return {
          mode,
          jobs: done,
          'job MB': round(doc.size / MB, 2),
          'upload to site MB': round(upload / MB, 2),
          'documents sent by site MB': round((after.documentsSent - before.documentsSent) / MB, 2),
          'site sync in+out KB': round((after.syncIn - before.syncIn + after.syncOut - before.syncOut) / 1024, 1),
          'through site per job KB': round(through / done / 1024, 1),
          'share of document bytes %': round(100 * through / (done * doc.size), 3),
          'seconds per job': round(ms / done / 1000, 2)
        }
      }
      const spooled = await measure('client spooling', client.ippUri, 0)
      const anchor = await measure('site holding', site.ippUri, size.jobs)
      const ratio = Number(spooled['through site per job KB']) / Number(anchor['through site per job KB'])
      return {
        params: { jobs: size.jobs, jobBytes: doc.size, runBudgetMs: RUN_BUDGET_MS },
        rows: [spooled, anchor],
        summary: [{ 'client spooling / site holding (bytes through the site)': round(ratio, 4), 'goal: ≤ 1 % of the document bytes': Number(spooled['share of document bytes %']) <= 1 }],
        notes: [
          'the terminal\'s printer is a file:// folder, so the client cannot send to it itself: the terminal fetches the document from the client (client → terminal); with an ipp:// printer the client sends to the printer and the terminal moves no byte either',
          'the site\'s bytes: its IPP upload (the job\'s size when it holds the job), the document bytes it sent to peers and its sync traffic in and out, from its own /metrics'
        ]
      }
    } finally {
      for (const node of running.reverse()) await node.stop().catch(() => {})
      await rm(work, { recursive: true, force: true })
    }
  }
}
