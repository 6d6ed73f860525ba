/**
 * IPP ingestion: Print-Job requests per second and latency into a held queue, printmesh's
 * site (a real `printmesh site` process) and a private CUPS (Debian's cupsd) side by side
 * in the same run, for each document size and concurrency, alternating the two systems
 * case by case so both see the same machine state. Every request carries a distinct PDF
 * of the same size.
 */
import { startSite, type SiteProcess } from '../node-process.ts'
import { startPrivateCups, type PrivateCups } from './cups.ts'
import { paddedPdf, type PaddedPdf } from './pdf.ts'
import { runPrintJobLoad, type LoadResult } from './ipp-load.ts'
import { BenchmarkError, MB, quantile, round, type BenchContext, type Benchmark, type Row } from './common.ts'

/** Document sizes the issue asks for. */
const SIZES = [{ label: '100 KB', bytes: 100 * 1024 }, { label: '5 MB', bytes: 5 * MB }]
/** Concurrency levels the issue asks for: one client, and a busy branch. */
const CONCURRENCY = [1, 8]
/** Requests per case and time budget per case; bounded in both so a slow server cannot stall the run. */
const FULL_BOUNDS = { small: { requests: 3_000, ms: 20_000 }, large: { requests: 120, ms: 30_000 } }
/** Quick mode: enough requests to exercise every path, little enough for CI. */
const QUICK_BOUNDS = { small: { requests: 16, ms: 5_000 }, large: { requests: 4, ms: 10_000 } }
/** Unmeasured requests per system first, so connection setup and JIT warm-up are not in the figures. */
const WARMUP_REQUESTS = 4
/**
 * The site's per-user and per-address intake quotas (100 and 500 unfinished jobs, 2 and 10 GiB
 * by default) would refuse a full run's thousands of held jobs from one user at one address
 * after the first hundred; CUPS's private queue has no job limit either (cups.ts).
 */
const UNLIMITED_INTAKE_ARGS = ['--max-user-jobs', '1000000', '--max-address-jobs', '1000000', '--max-user-mb', '1000000', '--max-address-mb', '1000000']
/** The user every job is printed as. */
const USER = 'bench'

interface Target { system: 'printmesh' | 'cups', uri: string }

function row (system: string, size: string, concurrency: number, r: LoadResult, bytes: number): Row {
  const seconds = r.elapsedMs / 1000
  return {
    system,
    size,
    concurrency,
    requests: r.ok,
    failed: r.failed,
    seconds: round(seconds, 2),
    'req/s': round(r.ok / seconds, 1),
    'MB/s': round((r.ok * bytes) / MB / seconds, 1),
    'p50 ms': round(quantile(r.latenciesMs, 0.5), 1),
    'p99 ms': round(quantile(r.latenciesMs, 0.99), 1)
  }
}

async function measure (ctx: BenchContext): ReturnType<Benchmark['run']> {
  const bounds = ctx.quick ? QUICK_BOUNDS : FULL_BOUNDS
  const rows: Row[] = []
  const summary: Row[] = []
  const notes: string[] = []
  let site: SiteProcess | undefined
  let cups: PrivateCups | undefined
  try {
    ctx.log('ingestion: starting printmesh site and a private cupsd')
    site = await startSite({ args: UNLIMITED_INTAKE_ARGS })
    cups = await startPrivateCups(ctx.log)
    const targets: Target[] = [{ system: 'printmesh', uri: site.ippUri }, { system: 'cups', uri: cups.queueUri }]
    const docs = new Map<string, PaddedPdf>()
    for (const s of SIZES) docs.set(s.label, await paddedPdf(s.bytes))
    let serial = 0 // distinct documents across the whole run
    const small = docs.get(SIZES[0].label) as PaddedPdf
    for (const t of targets) {
      const warm = await runPrintJobLoad({ printerUri: t.uri, concurrency: 1, maxRequests: WARMUP_REQUESTS, maxMs: bounds.large.ms, user: USER, document: () => small.variant(serial++) })
      if (warm.failed > 0) throw new BenchmarkError(`${t.system} refused the warm-up Print-Job: ${warm.errors.join('; ')}`)
    }
    for (const s of SIZES) {
      const doc = docs.get(s.label) as PaddedPdf
      const b = s.bytes >= MB ? bounds.large : bounds.small
      for (const concurrency of CONCURRENCY) {
        for (const t of targets) {
          ctx.log(`ingestion: ${t.system} ${s.label} × ${concurrency} (≤ ${b.requests} requests, ≤ ${b.ms / 1000} s)`)
          const r = await runPrintJobLoad({ printerUri: t.uri, concurrency, maxRequests: b.requests, maxMs: b.ms, user: USER, document: () => doc.variant(serial++) })
          if (r.ok === 0) throw new BenchmarkError(`${t.system} accepted none of ${r.failed} Print-Job requests (${s.label}, concurrency ${concurrency}): ${r.errors.join('; ')}`)
          if (r.failed > 0) notes.push(`${t.system} ${s.label} ×${concurrency}: ${r.failed} requests failed (${r.errors.join('; ')})`)
          rows.push(row(t.system, s.label, concurrency, r, doc.size))
        }
        const pm = rows[rows.length - 2]
        const cu = rows[rows.length - 1]
        summary.push({
          size: s.label,
          concurrency,
          'req/s printmesh/cups': round(Number(pm['req/s']) / Number(cu['req/s']), 2),
          'p50 printmesh/cups': round(Number(pm['p50 ms']) / Number(cu['p50 ms']), 2),
          'p99 printmesh/cups': round(Number(pm['p99 ms']) / Number(cu['p99 ms']), 2)
        })
      }
    }
    notes.push('A ratio above 1 in req/s means printmesh accepts more jobs per second; above 1 in latency means printmesh answers more slowly.')
    notes.push('The printmesh site runs with its per-user and per-address job and byte quotas raised out of reach (CUPS\'s queue has none); every other intake limit is its default.')
    notes.push('printmesh answers successful-ok only after the document is fsync\'d, analysed (pages, colour) and the held job is durable; CUPS answers after writing the spool file, without fsync.')
    return {
      params: { sizesBytes: SIZES.map((s) => docs.get(s.label)?.size ?? s.bytes), concurrency: CONCURRENCY, bounds, warmupRequests: WARMUP_REQUESTS, cupsQueue: 'raw, job-hold-until-default=indefinite', printmeshQueue: 'print (held)' },
      rows,
      summary,
      notes
    }
  } finally {
    const stops = await Promise.allSettled([site?.stop(), cups?.stop()])
    for (const s of stops) if (s.status === 'rejected') ctx.log(`ingestion: stopping a server failed: ${String(s.reason)}`)
  }
}

export const ingestion: Benchmark = {
  name: 'ingestion',
  description: 'IPP Print-Job req/s and p50/p99 latency into a held queue, printmesh site vs CUPS (cupsd), 100 KB and 5 MB PDFs, concurrency 1 and 8',
  run: measure
}
