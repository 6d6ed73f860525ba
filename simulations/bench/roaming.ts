/**
 * Roaming: printing at one site and picking the job up at another, with real processes.
 * Central (users imported) enrolls N `printmesh site` processes with join tokens, then is
 * stopped: roaming depends only on the sites involved. Every site names every other as a
 * roaming partner in separate mode, so a partner's job is listed apart and its document is
 * never fetched ahead.
 *
 *   1. Listing latency: Print-Job (the ingestion benchmark's IPP client) at site A, paced;
 *      the clock runs from A's successful-ok to the job being listed as held at site B, in
 *      the list B's user sees (`GET /api/jobs?scope=mine`, the partner jobs). Jobs rotate
 *      over every ordered pair of sites. B is polled only while it has a job outstanding.
 *   2. Release throughput: one large job printed at A, released at B by the admin, B's
 *      printer a `file://` folder: from the release request to the document complete in that
 *      folder (the file device writes a hidden temp file and links the final name only
 *      after fsync). The same bytes are then copied once over a plain loopback TCP
 *      connection into a file (fsync'd), for comparison.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pipeline } from 'node:stream/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import { startCentral, startSite, tempDir, type SiteProcess } from '../node-process.ts'
import { runPrintJobLoad } from './ipp-load.ts'
import { paddedPdf, type PaddedPdf } from './pdf.ts'
import { BenchmarkError, MB, quantile, round, type BenchContext, type Benchmark, type Row } from './common.ts'
import { printmeshArgs } from '../printmesh-command.ts'

/** Sizes from the issue: 10 sites, 1,000 jobs, a 50 MB release. */
const FULL = { sites: 10, jobs: 1_000, releaseBytes: 50 * MB }
/** Quick mode: the same paths, small. */
const QUICK = { sites: 3, jobs: 20, releaseBytes: 5 * MB }
/** Size of each listing-latency job: a small document, so the figure is about the job record, not the upload. */
const LISTING_DOC_BYTES = 20 * 1024
/** Offered rate of listing jobs (the sender waits for each answer): a busy hour across branches, far below ingestion capacity, so queueing does not dominate. */
const JOBS_PER_SECOND = 10
/** Unmeasured jobs first (one per site), so connections and JIT warm-up are not in the figures. */
const WARMUP_JOBS_PER_SITE = 1
/** B is asked right after A's answer, then this often while it has a job outstanding: the resolution of the latency figure. */
const POLL_MS = 10
/** A job not listed at B this long after A's answer counts as unlisted. */
const LIST_TIMEOUT_MS = 60_000
/** Sending stops after this even if jobs remain (bounded run); the row says how many were sent. */
const SEND_BUDGET_MS = { full: 300_000, quick: 30_000 }
/** Each set-up step (directory replicated, sites connected, partners mutual) must finish within this. */
const SETUP_TIMEOUT_MS = 120_000
/** Polling interval of set-up steps. */
const SETUP_POLL_MS = 100
/** A site joining a loaded 2-core machine may need longer than the test harness's 30 s. */
const SITE_START_TIMEOUT_MS = 90_000
/** The large Print-Job, the release and the TCP copy must each finish within this. */
const RELEASE_TIMEOUT_MS = 180_000
/** Releases (and TCP copies) measured, alternating: the median of three is steadier than one sample. */
const RELEASE_RUNS = 3
/** The printer folder at B is checked this often during the release: the resolution of the release time. */
const RELEASE_POLL_MS = 5
/** Any single API call gets no longer than this. */
const HTTP_TIMEOUT_MS = 30_000
/** Every bench user's PIN (imported at central, replicated to every site). */
const PIN = '4711'

export class RoamingTimeoutError extends BenchmarkError {
  constructor (what: string, ms: number) { super(`${what} not reached within ${ms} ms`); this.name = 'RoamingTimeoutError' }
}

export class RoamingApiError extends BenchmarkError {
  constructor (what: string, status: number, body: string) { super(`${what}: HTTP ${status} ${body.slice(0, 300)}`); this.name = 'RoamingApiError' }
}

export interface Session { cookie: string, csrf: string }
interface ListedJob { id: string, name: string, state: string, sha256?: string }

const siteId = (i: number): string => `site-${i + 1}`
/** The user who picks jobs up at site `i`. */
const userAt = (i: number): string => `roamer-${i + 1}`

export async function call<T> (node: SiteProcess, path: string, init: { method?: string, body?: unknown, session?: Session } = {}): Promise<T> {
  const headers: Record<string, string> = init.session !== undefined
    ? { cookie: init.session.cookie, 'x-csrf-token': init.session.csrf }
    : { authorization: `Bearer ${node.adminToken}` }
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(node.httpUrl + path, { method: init.method ?? 'GET', headers, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) })
  const text = await res.text()
  if (res.status < 200 || res.status > 299) throw new RoamingApiError(`${init.method ?? 'GET'} ${node.httpUrl}${path}`, res.status, text)
  return JSON.parse(text) as T
}

/** A session for `username`, or undefined while the directory has not reached the site. */
export async function login (node: SiteProcess, username: string, pin = PIN): Promise<Session | undefined> {
  const res = await fetch(`${node.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }), signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) })
  if (res.status !== 200) { await res.body?.cancel(); return undefined }
  const { csrfToken } = await res.json() as { csrfToken: string }
  return { cookie: (res.headers.get('set-cookie') ?? '').split(';')[0], csrf: csrfToken }
}

export async function waitFor<T> (check: () => Promise<T | undefined | false>, timeoutMs: number, what: string, pollMs = SETUP_POLL_MS): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (performance.now() > deadline) throw new RoamingTimeoutError(what, timeoutMs)
    await delay(pollMs)
  }
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

/** One Print-Job through the ingestion benchmark's client; resolves at the successful-ok. */
async function printJob (site: SiteProcess, user: string, doc: Buffer, timeoutMs: number): Promise<void> {
  const r = await runPrintJobLoad({ printerUri: site.ippUri, concurrency: 1, maxRequests: 1, maxMs: timeoutMs, user, document: () => doc })
  if (r.ok !== 1) throw new BenchmarkError(`Print-Job at ${site.httpUrl} failed: ${r.errors.join('; ')}`)
}

const ROOT = new URL('../..', import.meta.url).pathname

/** Central with the bench users, and `n` sites enrolled with join tokens; central is stopped at the end. */
async function startMesh (ctx: BenchContext, n: number, work: string, sites: SiteProcess[], state: { central?: SiteProcess }): Promise<Session[]> {
  const centralDir = join(work, 'central')
  await mkdir(centralDir)
  const csv = join(work, 'users.csv')
  await writeFile(csv, Array.from({ length: n }, (_, i) => `${userAt(i)},Roaming user ${i + 1},${PIN}\n`).join(''))
  await promisify(execFile)(process.execPath, [...printmeshArgs(), 'users', 'import', csv, '--data', centralDir], { cwd: ROOT, timeout: SETUP_TIMEOUT_MS })
  ctx.log('roaming: starting central')
  const central = state.central = await startCentral({ dataDir: centralDir })
  for (let i = 0; i < n; i++) {
    const { joinString } = await call<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: siteId(i) } })
    const t0 = performance.now()
    sites.push(await startSite({
      printers: [`mfp=file://${join(work, `printer-${siteId(i)}`)}`],
      args: ['--site', siteId(i), '--hostname', `${siteId(i)}.bench.test`, '--join', joinString],
      startTimeoutMs: SITE_START_TIMEOUT_MS
    }))
    ctx.log(`roaming: ${siteId(i)} ready in ${Math.round(performance.now() - t0)} ms`)
  }
  // before central goes: the directory reached every site and the sites know each other directly
  const sessions: Session[] = []
  for (const [i, site] of sites.entries()) {
    sessions.push(await waitFor(async () => await login(site, userAt(i)), SETUP_TIMEOUT_MS, `directory at ${siteId(i)}`))
  }
  ctx.log('roaming: waiting for every site to connect to every other')
  for (const [i, site] of sites.entries()) {
    await waitFor(async () => {
      const status = await call<{ peers: Array<{ peer: string, connected: boolean }> }>(site, '/api/mesh')
      return sites.every((other) => other === site || status.peers.some((p) => p.peer === other.peer && p.connected))
    }, SETUP_TIMEOUT_MS, `${siteId(i)} connected to every other site`)
  }
  await central.stop()
  state.central = undefined
  for (const [i, site] of sites.entries()) {
    await call(site, '/api/roaming', { method: 'PUT', body: { partners: sites.flatMap((_, j) => j === i ? [] : [siteId(j)]), mode: 'separate' } })
  }
  for (const [i, site] of sites.entries()) {
    await waitFor(async () => {
      const view = await call<{ partners: Array<{ mutual: boolean }> }>(site, '/api/roaming')
      return view.partners.length === n - 1 && view.partners.every((p) => p.mutual)
    }, SETUP_TIMEOUT_MS, `every partnership mutual at ${siteId(i)}`)
  }
  return sessions
}

interface Outstanding {
  observer: number
  ackAt: number
  /** B's lists requested after A's answer that did not show the job yet. */
  misses: number
}

interface ListingResult { sent: number, listed: number, firstAsk: number, unlisted: number, failed: number, errors: string[], sendMs: number, latenciesMs: number[], polls: number, stoppedEarly: boolean }

/**
 * Job `k` goes to site `k mod n` for the user who collects at another site; over `n·(n-1)`
 * jobs every ordered pair appears once. Jobs are sent one after the other at
 * {@link JOBS_PER_SECOND}, while a poller watches each site that has a job outstanding.
 */
async function measureListing (ctx: BenchContext, sites: SiteProcess[], sessions: Session[], total: number, budgetMs: number, doc: PaddedPdf, firstVariant: number): Promise<ListingResult> {
  const n = sites.length
  const outstanding = new Map<string, Outstanding>() // by document sha256: every job's document is distinct
  const latenciesMs: number[] = []
  const errors: string[] = []
  let sent = 0
  let failed = 0
  let unlisted = 0
  let polls = 0
  let firstAsk = 0 // jobs B already listed at the first ask after A's answer
  let sending = true
  let halted = false // the poller failed: the sender stops too
  const start = performance.now()
  // the poller naps between rounds; a new outstanding job wakes it, so B is first asked right after A's answer
  let wakeUp: (() => void) | undefined
  let woken = false // a job arrived while a round was under way: skip the next nap
  const wake = (): void => { woken = true; wakeUp?.() }
  const nap = async (ms: number): Promise<void> => await new Promise<void>((resolve) => {
    const done = (): void => { clearTimeout(timer); wakeUp = undefined; woken = false; resolve() }
    const timer = setTimeout(done, ms)
    wakeUp = done
    if (woken) done()
  })

  const sender = async (): Promise<void> => {
    try {
      for (let k = 0; k < total && !halted && performance.now() - start < budgetMs; k++) {
        const origin = k % n
        const observer = (origin + 1 + (Math.floor(k / n) % (n - 1))) % n
        const due = start + (k * 1000) / JOBS_PER_SECOND
        const wait = due - performance.now()
        if (wait > 0) await delay(wait)
        const bytes = doc.variant(firstVariant + k)
        try {
          await printJob(sites[origin], userAt(observer), bytes, LIST_TIMEOUT_MS)
          outstanding.set(sha256(bytes), { observer, ackAt: performance.now(), misses: 0 })
          sent++
          wake()
        } catch (err) {
          failed++
          const message = err instanceof Error ? err.message : String(err)
          if (errors.length < 5 && !errors.includes(message)) errors.push(message)
        }
      }
    } finally {
      sending = false
      wake()
    }
  }

  const poller = async (): Promise<void> => {
    try {
      await poll()
    } catch (err) {
      halted = true
      throw err
    }
  }
  const poll = async (): Promise<void> => {
    while (sending || outstanding.size > 0) {
      if (performance.now() - start > budgetMs + LIST_TIMEOUT_MS) break
      const observers = [...new Set([...outstanding.values()].map((o) => o.observer))]
      await Promise.all(observers.map(async (o) => {
        const askedAt = performance.now()
        const list = await call<{ jobs: ListedJob[], remote: ListedJob[] }>(sites[o], '/api/jobs?scope=mine', { session: sessions[o] })
        const at = performance.now()
        polls++
        for (const job of [...list.remote, ...list.jobs]) {
          if (job.state !== 'held' || job.sha256 === undefined) continue
          const w = outstanding.get(job.sha256)
          if (w === undefined || w.observer !== o) continue
          latenciesMs.push(at - w.ackAt)
          if (w.misses === 0) firstAsk++
          outstanding.delete(job.sha256)
        }
        for (const w of outstanding.values()) if (w.observer === o && w.ackAt <= askedAt) w.misses++
      }))
      const now = performance.now()
      for (const [sha, w] of outstanding) if (now - w.ackAt > LIST_TIMEOUT_MS) { unlisted++; outstanding.delete(sha) }
      await nap(POLL_MS)
    }
  }

  const progress = setInterval(() => ctx.log(`roaming: ${sent}/${total} jobs sent, ${latenciesMs.length} listed`), 10_000)
  try {
    // both settle before anything is stopped: a failed poller halts the sender, which then returns
    const settled = await Promise.allSettled([sender(), poller()])
    for (const s of settled) if (s.status === 'rejected') throw s.reason
  } finally {
    clearInterval(progress)
  }
  unlisted += outstanding.size
  return { sent, listed: latenciesMs.length, firstAsk, unlisted, failed, errors, sendMs: performance.now() - start, latenciesMs, polls, stoppedEarly: sent + failed < total }
}

/** Document files (not hidden temp files, not sidecars) in a file printer's folder. */
async function printedFiles (dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return []; throw err })
  return names.filter((f) => !f.startsWith('.') && !f.endsWith('.json'))
}

interface ReleaseResult { ms: number, grantMs: number }

/** Prints `bytes` at A for B's user, waits until B lists it, releases it at B (admin) and times it until the document is complete in B's printer folder. */
async function measureRelease (ctx: BenchContext, a: SiteProcess, b: SiteProcess, bIndex: number, bPrinterDir: string, bytes: Buffer): Promise<ReleaseResult> {
  const sha = sha256(bytes)
  ctx.log(`roaming: printing ${round(bytes.length / MB, 1)} MB at ${siteId(0)}`)
  await printJob(a, userAt(bIndex), bytes, RELEASE_TIMEOUT_MS)
  const job = await waitFor(async () => (await call<{ jobs: ListedJob[] }>(b, '/api/jobs?scope=all')).jobs.find((j) => j.sha256 === sha && j.state === 'held'),
    LIST_TIMEOUT_MS, `the large job listed at ${siteId(bIndex)}`)
  ctx.log(`roaming: releasing it at ${siteId(bIndex)}`)
  const before = new Set(await printedFiles(bPrinterDir))
  const t0 = performance.now()
  await call(b, `/api/jobs/${job.id}/release`, { method: 'POST', body: {} })
  const grantMs = performance.now() - t0
  const file = await waitFor(async () => (await printedFiles(bPrinterDir)).find((f) => !before.has(f)), RELEASE_TIMEOUT_MS, `the document in ${siteId(bIndex)}'s printer folder`, RELEASE_POLL_MS)
  const ms = performance.now() - t0
  const out = await readFile(join(bPrinterDir, file))
  if (out.length !== bytes.length || sha256(out) !== sha) throw new BenchmarkError(`${siteId(bIndex)} printed ${out.length} bytes that differ from the ${bytes.length} sent`)
  // let the holder record the print before anything else runs
  await waitFor(async () => (await call<{ jobs: ListedJob[] }>(a, '/api/jobs?scope=all')).jobs.find((j) => j.id === job.id && j.state === 'printed'),
    RELEASE_TIMEOUT_MS, `the large job printed at ${siteId(0)}`)
  return { ms, grantMs }
}

/** Copies `src` over a loopback TCP connection into `dst` (node `net`, fsync'd at the end); returns the ms taken. */
async function tcpCopy (src: string, dst: string): Promise<number> {
  const signal = AbortSignal.timeout(RELEASE_TIMEOUT_MS)
  const server = createServer()
  const received = new Promise<void>((resolve, reject) => {
    server.once('connection', (socket) => {
      pipeline(socket, createWriteStream(dst), { signal }).then(async () => {
        const fh = await open(dst, 'r+')
        try { await fh.sync() } finally { await fh.close() }
      }).then(resolve, reject)
    })
  })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  try {
    const { port } = server.address() as AddressInfo
    const t0 = performance.now()
    await Promise.all([pipeline(createReadStream(src), connect(port, '127.0.0.1'), { signal }), received])
    return performance.now() - t0
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

async function measure (ctx: BenchContext): ReturnType<Benchmark['run']> {
  const size = ctx.quick ? QUICK : FULL
  const budgetMs = ctx.quick ? SEND_BUDGET_MS.quick : SEND_BUDGET_MS.full
  const work = await tempDir('printmesh-bench-roaming-')
  const sites: SiteProcess[] = []
  const state: { central?: SiteProcess } = {}
  try {
    ctx.log(`roaming: central and ${size.sites} sites, in sequence`)
    const sessions = await startMesh(ctx, size.sites, work, sites, state)

    // 2. release throughput first, on a quiet mesh; releases and TCP copies alternate
    const bigPdf = await paddedPdf(size.releaseBytes)
    const bigBytes = bigPdf.size
    const releaseMs: number[] = []
    const grantMs: number[] = []
    const tcpMs: number[] = []
    for (let i = 0; i < RELEASE_RUNS; i++) {
      const big = bigPdf.variant(i) // a distinct document each time: the spools are content-addressed
      const release = await measureRelease(ctx, sites[0], sites[1], 1, join(work, `printer-${siteId(1)}`), big)
      releaseMs.push(release.ms)
      grantMs.push(release.grantMs)
      ctx.log('roaming: the same bytes over plain TCP')
      const src = join(work, 'release.pdf')
      const dst = join(work, 'tcp-copy.pdf')
      await writeFile(src, big)
      tcpMs.push(await tcpCopy(src, dst))
      if ((await stat(dst)).size !== big.length) throw new BenchmarkError('the TCP copy is incomplete')
      await rm(dst)
    }
    const rate = (ms: number): number => bigBytes / MB / (ms / 1000)
    const release = quantile(releaseMs, 0.5)
    const tcp = quantile(tcpMs, 0.5)

    // 1. listing latency
    const doc = await paddedPdf(LISTING_DOC_BYTES)
    ctx.log(`roaming: ${WARMUP_JOBS_PER_SITE * size.sites} warm-up jobs`)
    const warm = await measureListing(ctx, sites, sessions, WARMUP_JOBS_PER_SITE * size.sites, budgetMs, doc, 0)
    if (warm.listed < warm.sent || warm.failed > 0) throw new BenchmarkError(`warm-up: ${warm.listed} of ${warm.sent} jobs listed, ${warm.failed} refused (${warm.errors.join('; ')})`)
    ctx.log(`roaming: ${size.jobs} jobs at ≤ ${JOBS_PER_SECOND}/s over ${size.sites * (size.sites - 1)} site pairs (≤ ${budgetMs / 1000} s)`)
    const r = await measureListing(ctx, sites, sessions, size.jobs, budgetMs, doc, 1_000_000)
    if (r.listed === 0) throw new BenchmarkError(`none of ${r.sent} jobs was listed at its partner site (${r.failed} refused: ${r.errors.join('; ')})`)

    const notes = [
      `${size.sites} site processes (central enrolled them, then was stopped), every site a roaming partner of every other in separate mode (nothing prefetched); the test harness's settings: loopback, no mDNS, anti-entropy every 1 s.`,
      `Listing latency: job k is printed (one ${round(doc.size / 1024, 0)} KB PDF each, distinct) at site k mod ${size.sites} for the user who collects at another site, rotating over all ${size.sites * (size.sites - 1)} ordered pairs; sent one at a time at ≤ ${JOBS_PER_SECOND} jobs/s. The clock runs from A's Print-Job successful-ok to the job appearing as held in that user's partner-job list at B (GET /api/jobs?scope=mine), asked right after A's answer and then every ${POLL_MS} ms while B has a job outstanding (${r.polls} polls), so a figure is late by up to ${POLL_MS} ms plus one request, and a job already listed when A answered shows as one request's time ('listed at 1st ask' counts those: B's first list requested after A's answer already showed them).`,
      `Release: a ${round(bigBytes / MB, 1)} MB PDF (distinct each run) printed at ${siteId(0)}, released at ${siteId(1)} by the admin (release request answered in ${round(quantile(grantMs, 0.5), 0)} ms, median); timed from the release request to the document complete in ${siteId(1)}'s file:// printer folder: fetched over libp2p (Noise, yamux) into ${siteId(1)}'s copy spool, checked, then written to the printer folder and fsync'd; no --roaming-rate cap. The TCP row copies the same file over a loopback socket (node net) into a file, fsync'd once. ${RELEASE_RUNS} runs each, alternating; MB/s and 'vs TCP' (release rate ÷ TCP rate) are from the medians.`
    ]
    if (r.stoppedEarly) notes.push(`Sending stopped at the ${budgetMs / 1000} s bound after ${r.sent + r.failed} of ${size.jobs} jobs.`)
    if (r.failed > 0) notes.push(`${r.failed} Print-Job requests failed: ${r.errors.join('; ')}`)
    if (r.unlisted > 0) notes.push(`${r.unlisted} jobs were not listed at their partner site within ${LIST_TIMEOUT_MS / 1000} s and are left out of the latencies.`)
    return {
      params: { ...size, releaseDocBytes: bigBytes, releaseRuns: RELEASE_RUNS, listingDocBytes: doc.size, jobsPerSecond: JOBS_PER_SECOND, warmupJobs: WARMUP_JOBS_PER_SITE * size.sites, pollMs: POLL_MS, listTimeoutMs: LIST_TIMEOUT_MS, sendBudgetMs: budgetMs, mode: 'separate' },
      rows: [{
        sites: size.sites,
        jobs: r.sent,
        listed: r.listed,
        'listed at 1st ask': r.firstAsk,
        unlisted: r.unlisted,
        'jobs/s sent': round(r.sent / (r.sendMs / 1000), 1),
        'p50 ms': round(quantile(r.latenciesMs, 0.5), 1),
        'p99 ms': round(quantile(r.latenciesMs, 0.99), 1),
        'max ms': round(Math.max(...r.latenciesMs), 1)
      }],
      summary: [
        { transfer: `roaming release ${siteId(0)}→${siteId(1)}`, MB: round(bigBytes / MB, 1), runs: releaseMs.length, 'median ms': round(release, 0), 'MB/s': round(rate(release), 1), 'best MB/s': round(rate(Math.min(...releaseMs)), 1), 'vs TCP': round(tcp / release, 2) },
        { transfer: 'plain TCP copy (loopback)', MB: round(bigBytes / MB, 1), runs: tcpMs.length, 'median ms': round(tcp, 0), 'MB/s': round(rate(tcp), 1), 'best MB/s': round(rate(Math.min(...tcpMs)), 1), 'vs TCP': 1 }
      ] satisfies Row[],
      notes
    }
  } finally {
    const stops = await Promise.allSettled([state.central?.stop(), ...sites.map(async (s) => await s.stop())])
    for (const s of stops) if (s.status === 'rejected') ctx.log(`roaming: stopping a process failed: ${String(s.reason)}`)
    await rm(work, { recursive: true, force: true })
  }
}

export const roaming: Benchmark = {
  name: 'roaming',
  description: 'print at one site, pick up at another: listing latency p50/p99/max (10 site processes, 1,000 jobs) and release MB/s of a 50 MB job vs a plain TCP copy',
  run: measure
}
