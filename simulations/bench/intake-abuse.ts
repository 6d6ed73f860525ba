/**
 * intake-abuse: hostile IPP traffic against a real `printmesh site` process on loopback, and
 * whether the site survives it (issue 21, "intake that bad input cannot sink"). Not part of
 * `npm run bench` nor of its CI smoke: run it by name, `npm run bench -- --only intake-abuse`.
 *
 * Phases, each bounded in requests and in time, each from its own loopback source address
 * (127.0.0.2…; all of 127/8 is loopback), so the per-address limits of one phase do not
 * touch another or the valid client:
 *   fuzz     truncated, bit-flipped, wrong-tag, huge-length and garbage Print-Job requests
 *   lengths  huge declared lengths: an attribute length past the message, a Content-Length
 *            of 10 GiB then a dropped connection, or zeros streamed until the server answers,
 *            a `job-k-octets` of 2 TiB
 *   bombs    gzip and zlib bombs (`compression` gzip/deflate, HTTP Content-Encoding), a
 *            flate-bomb PDF, a 50,000-page PDF
 *   bursts   many Print-Jobs at once from one address; one address spraying user names (the
 *            attack of issue 21: 1,291 held jobs from unauthenticated senders); one user
 *            printing until refused
 * Meanwhile a valid client (127.0.0.1, user alice) prints a one-page PDF every second: the
 * answer comes once its job is held, so its latency is the time to held.
 *
 * Reported: every phase's answers by status; whether the site is alive and answering after
 * each; its resident memory (sampled, and the kernel's high-water mark), open file
 * descriptors, error log lines; documents left in the spool that no job owns (stranded);
 * the refusals /metrics counts by limit; and how many valid jobs were held within a second.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import { startSite, tempDir, type SiteProcess } from '../node-process.ts'
import { Op, Tag, attr, decodeMessage, encodeMessage, findAttr, integerValue, statusName, stringValue, type IppAttribute, type IppMessage } from '../../devices/ipp/wire.ts'
import { ANALYSIS_TIMEOUT_ENV } from '../../devices/documents/analyzer.ts'
import { gzipBomb, makeFlateBombPdf, makeManyPagesPdf, zlibBomb } from './hostile-documents.ts'
import { paddedPdf, type PaddedPdf } from './pdf.ts'
import { printJobRequest } from './ipp-load.ts'
import { BenchmarkError, MB, quantile, round, rssOf, type BenchContext, type Benchmark, type Row } from './common.ts'

/** What one run sends; `--quick` shrinks counts and the site's limits with them. */
interface Sizes {
  fuzzRequests: number
  /** Print-Jobs sent at once from one address. */
  burst: number
  /** Jobs one address sprays under distinct user names (bounded: past the address's limit). */
  sprayJobs: number
  /** Jobs one user sends (bounded: past the user's limit). */
  userJobs: number
  /** What each decompression bomb inflates to. */
  bombBytes: number
  /** Bytes streamed at most after a 10 GiB Content-Length (past the document size limit). */
  streamBytes: number
  /** Site options: the intake limits the run meets. */
  siteArgs: string[]
  /** Time bound of each phase. */
  phaseMs: number
}

const FULL: Sizes = {
  fuzzRequests: 2_000,
  burst: 96, // past the default 64 at once per address
  sprayJobs: 650, // past the default 500 per address
  userJobs: 130, // past the default 100 per user
  bombBytes: 1024 * MB,
  streamBytes: 1200 * MB, // past the default 1 GiB per document
  siteArgs: [],
  phaseMs: 240_000
}
const QUICK: Sizes = {
  fuzzRequests: 200,
  burst: 24,
  sprayJobs: 60,
  userJobs: 30,
  bombBytes: 64 * MB,
  streamBytes: 80 * MB,
  siteArgs: ['--max-address-jobs', '40', '--max-user-jobs', '20', '--max-document-mb', '64', '--max-address-uploads', '12'],
  phaseMs: 90_000
}
/** How long things may take and how often they happen, in ms. */
const TIMING = {
  analysisLimit: 20_000, // the site's analysis limit: pdf.js reads the 50,000-page tree's declared count within it under load; the default is 60 s
  request: 90_000, // a request without an answer by then timed out (the 50,000-page PDF is answered after its analysis limit)
  probeInterval: 1_000, // the valid client prints this often
  heldWithin: 1_000, // a valid job held within this is on time (the issue's bound)
  sample: 100, // memory and descriptors are sampled this often
  settle: 30_000 // after the phases, documents still arriving are waited for this long before the spool is counted
}
/** Requests one fuzzing or spraying address has in flight at once. */
const CONCURRENCY = 8
/** Seed of the fuzzer: the same mutations on every run. */
const FUZZ_SEED = 21
/** The valid client's address; every phase sends from its own. */
const VALID_ADDRESS = '127.0.0.1'
const ADDRESSES = { fuzz: '127.0.0.2', lengths: '127.0.0.3', bombs: '127.0.0.4', burst: '127.0.0.5', spray: '127.0.0.6', user: '127.0.0.7' }
/** Content-Length declared by the huge-length requests. */
const TEN_GIB = 10 * 1024 ** 3

/** How one raw request ended. */
type Outcome = { kind: 'ipp', status: string, message: string, headers: IncomingHttpHeaders } | { kind: 'http', code: number } | { kind: 'dropped', error: string } | { kind: 'timeout' }

interface RawRequest {
  port: number
  path?: string
  localAddress: string
  headers?: Record<string, string>
  /** The whole body, or a writer for bodies made as they go (stopped when the answer comes). */
  body: Buffer | ((req: ReturnType<typeof httpRequest>, answered: () => boolean) => Promise<void>)
  timeoutMs?: number
}

/** Sends one HTTP request, well-formed or not, and says how it ended; never throws. */
async function rawPost (r: RawRequest): Promise<Outcome> {
  return await new Promise<Outcome>((resolve) => {
    let done = false
    const finish = (o: Outcome): void => { if (!done) { done = true; clearTimeout(timer); resolve(o) } }
    const headers: Record<string, string> = {
      'Content-Type': 'application/ipp',
      ...(Buffer.isBuffer(r.body) ? { 'Content-Length': String(r.body.length) } : {}),
      ...r.headers
    }
    const req = httpRequest({ host: '127.0.0.1', port: r.port, path: r.path ?? '/ipp/print', method: 'POST', localAddress: r.localAddress, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', (err) => finish({ kind: 'dropped', error: err.message }))
      res.on('end', () => {
        const raw = Buffer.concat(chunks)
        if (res.headers['content-type'] !== 'application/ipp') { finish({ kind: 'http', code: res.statusCode ?? 0 }); return }
        try {
          const m = decodeMessage(raw).message
          finish({ kind: 'ipp', status: statusName(m.code), message: stringValue(findAttr(m, Tag.operationAttributes, 'status-message')) ?? '', headers: res.headers })
        } catch (err) {
          finish({ kind: 'dropped', error: `undecodable answer: ${(err as Error).message}` })
        }
        req.destroy()
      })
    })
    const timer = setTimeout(() => { req.destroy(); finish({ kind: 'timeout' }) }, r.timeoutMs ?? TIMING.request)
    req.on('error', (err) => finish({ kind: 'dropped', error: err.message }))
    if (Buffer.isBuffer(r.body)) req.end(r.body)
    else r.body(req, () => done).catch((err: unknown) => finish({ kind: 'dropped', error: String(err) }))
  })
}

/** Resolves when `req` can take more (drained) or will take no more (closed). */
async function writable (req: ReturnType<typeof httpRequest>): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => { req.off('drain', done); req.off('close', done); resolve() }
    req.on('drain', done)
    req.on('close', done)
  })
}

/** A label for the table: the IPP status without its `client-error-` prefix, an HTTP code, or how it ended. */
function labelOf (o: Outcome): string {
  if (o.kind === 'ipp') return o.status.replace(/^(client-error|server-error|successful)-/, '')
  if (o.kind === 'http') return `HTTP ${o.code}`
  return o.kind
}

/** Counts of labels, most frequent first: `bad-request 1,812, HTTP 400 170`. */
function tally (outcomes: readonly Outcome[]): string {
  const counts = new Map<string, number>()
  for (const o of outcomes) counts.set(labelOf(o), (counts.get(labelOf(o)) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ')
}

/** Seeded PRNG (LCG): the fuzzer sends the same bytes on every run. */
function rng (seed: number): (n: number) => number {
  let s = seed
  return (n) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s >>> 8) % n }
}

/** The load generator's Print-Job (held until released) with more operation and job attributes. */
function printJob (uri: string, user: string, requestId: number, operation: IppAttribute[] = [], job: IppAttribute[] = []): IppMessage {
  const base = printJobRequest(uri, user, `abuse ${requestId}`, requestId)
  return {
    ...base,
    groups: base.groups.map((g) => ({ ...g, attributes: [...g.attributes, ...(g.tag === Tag.operationAttributes ? operation : job)] }))
  }
}

/** One mutation of a valid request: what a broken or hostile client sends. */
function mutate (head: Buffer, doc: Buffer, rand: (n: number) => number): { kind: string, body: Buffer } {
  const kind = ['truncate', 'bitflip', 'tag', 'length', 'garbage'][rand(5)]
  const buf = Buffer.from(head)
  if (kind === 'truncate') return { kind, body: buf.subarray(0, rand(buf.length)) }
  if (kind === 'bitflip') {
    for (let k = 0, flips = 1 + rand(8); k < flips; k++) { const at = rand(buf.length); buf[at] ^= 1 << rand(8) }
  } else if (kind === 'tag') {
    // a value or delimiter tag where one is expected: any byte from 0x00 to 0x7f
    for (let k = 0, n = 1 + rand(3); k < n; k++) buf[9 + rand(buf.length - 9)] = rand(0x80)
  } else if (kind === 'length') {
    // a name or value length far past what follows
    const at = 9 + rand(buf.length - 11)
    buf.writeUInt16BE(0x8000 + rand(0x8000), at)
  } else {
    return { kind, body: Buffer.from(Array.from({ length: rand(512) }, () => rand(256))) }
  }
  return { kind, body: Buffer.concat([buf, doc]) }
}

/** Runs `job(i)` for i < count from `concurrency` workers, until `count` or `deadline`. */
async function workers (count: number, concurrency: number, deadline: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline) await job(next++)
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

interface ProbeResult { sent: number, held: number, onTime: number, latenciesMs: number[], failures: string[] }

/** Open file descriptors of a process. */
async function fdsOf (pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length
}

/** The kernel's high-water mark of the process's resident memory, in bytes. */
async function rssHighWater (pid: number): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new BenchmarkError(`no VmHWM for pid ${pid}`)
  return Number(m[1]) * 1024
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

interface ApiJob { id: string, state: string, sha256?: string, owner: string }

async function measure (ctx: BenchContext): ReturnType<Benchmark['run']> {
  const sizes = ctx.quick ? QUICK : FULL
  const docs = await tempDir('printmesh-abuse-')
  let site: SiteProcess | undefined
  const rows: Row[] = []
  const notes: string[] = []
  let sampler: NodeJS.Timeout | undefined
  let requestId = 1
  try {
    ctx.log('intake-abuse: making documents and starting a printmesh site')
    const small: PaddedPdf = await paddedPdf(8 * 1024)
    const flateBomb = await readFile(await makeFlateBombPdf(docs, { inflatedBytes: sizes.bombBytes }))
    const manyPages = await readFile(await makeManyPagesPdf(docs))
    site = await startSite({ args: sizes.siteArgs, env: { [ANALYSIS_TIMEOUT_ENV]: String(TIMING.analysisLimit) } })
    const s = site
    const uri = s.ippUri
    let serial = 0 // distinct documents: the spool is content-addressed
    const rssStart = await rssOf(s.pid)
    const fdsStart = await fdsOf(s.pid)
    let rssPeak = rssStart
    let fdsPeak = fdsStart
    sampler = setInterval(() => {
      rssOf(s.pid).then((b) => { rssPeak = Math.max(rssPeak, b) }, () => undefined)
      fdsOf(s.pid).then((n) => { fdsPeak = Math.max(fdsPeak, n) }, () => undefined)
    }, TIMING.sample)

    /** The site answers Get-Printer-Attributes (and its process lives). */
    const answering = async (): Promise<boolean> => {
      if (!alive(s.pid)) return false
      const msg: IppMessage = {
        version: { major: 2, minor: 0 },
        code: Op.GetPrinterAttributes,
        requestId: requestId++,
        groups: [{
          tag: Tag.operationAttributes,
          attributes: [
            attr('attributes-charset', Tag.charset, 'utf-8'),
            attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
            attr('printer-uri', Tag.uri, uri),
            attr('requested-attributes', Tag.keyword, 'printer-state')
          ]
        }]
      }
      const o = await rawPost({ port: s.ippPort, localAddress: VALID_ADDRESS, body: encodeMessage(msg), timeoutMs: 10_000 })
      if (o.kind !== 'ipp' || o.status !== 'successful-ok') ctx.log(`intake-abuse: Get-Printer-Attributes answered ${labelOf(o)}`)
      return o.kind === 'ipp' && o.status === 'successful-ok'
    }
    const admin = 'Basic ' + Buffer.from(`admin:${s.adminToken}`).toString('base64')

    // the valid client, from the start of the first phase to the end of the last
    const probe: ProbeResult = { sent: 0, held: 0, onTime: 0, latenciesMs: [], failures: [] }
    let probing = true
    const probeLoop = (async () => {
      while (probing) {
        const began = performance.now()
        probe.sent++
        const o = await rawPost({ port: s.ippPort, localAddress: VALID_ADDRESS, body: Buffer.concat([encodeMessage(printJob(uri, 'alice', requestId++)), small.variant(serial++)]), timeoutMs: TIMING.request })
        const ms = performance.now() - began
        if (o.kind === 'ipp' && o.status === 'successful-ok') {
          probe.held++
          probe.latenciesMs.push(ms)
          if (ms <= TIMING.heldWithin) probe.onTime++
        } else if (probe.failures.length < 5) probe.failures.push(labelOf(o) + (o.kind === 'ipp' ? `: ${o.message}` : ''))
        // alice deletes it (admin): her own quota must not fill with probes
        await deleteHeldJobsOf(s, 'alice')
        await delay(Math.max(0, TIMING.probeInterval - (performance.now() - began)))
      }
    })()

    const phase = async (name: string, what: string, run: (deadline: number) => Promise<Outcome[]>): Promise<void> => {
      ctx.log(`intake-abuse: ${name}: ${what}`)
      const t0 = performance.now()
      const outcomes = await run(t0 + sizes.phaseMs)
      const up = await answering()
      rows.push({
        phase: name,
        sent: what,
        requests: outcomes.length,
        answers: tally(outcomes),
        'site answering after': up,
        'RSS MB': round(alive(s.pid) ? (await rssOf(s.pid)) / MB : 0, 0),
        fds: alive(s.pid) ? await fdsOf(s.pid) : 0,
        seconds: round((performance.now() - t0) / 1000, 1)
      })
      if (!up) throw new BenchmarkError(`the site stopped answering after the ${name} phase`)
    }

    await phase('fuzz', `${sizes.fuzzRequests} mutated Print-Jobs`, async (deadline) => {
      const rand = rng(FUZZ_SEED)
      const head = encodeMessage(printJob(uri, 'fuzz', 4242, [], [attr('copies', Tag.integer, 1), attr('media-col', Tag.begCollection, [attr('media-type', Tag.keyword, 'stationery')])]))
      const doc = small.variant(0)
      const out: Outcome[] = []
      await workers(sizes.fuzzRequests, CONCURRENCY, deadline, async () => {
        const { body } = mutate(head, doc, rand)
        out.push(await rawPost({ port: s.ippPort, localAddress: ADDRESSES.fuzz, body, timeoutMs: 30_000 }))
      })
      return out
    })

    await phase('lengths', 'huge declared lengths', async () => {
      const out: Outcome[] = []
      const head = (user: string, operation: IppAttribute[] = []): Buffer => encodeMessage(printJob(uri, user, requestId++, operation))
      // an attribute whose value length runs past the end of the message
      const h = head('lengths')
      const past = Buffer.from(h)
      past.writeUInt16BE(0xffff, h.indexOf(Buffer.from('lengths')) - 2)
      out.push(await rawPost({ port: s.ippPort, localAddress: ADDRESSES.lengths, body: past }))
      // 10 GiB announced, 64 KiB sent, then the client hangs up
      out.push(await rawPost({
        port: s.ippPort,
        localAddress: ADDRESSES.lengths,
        headers: { 'Content-Length': String(TEN_GIB) },
        timeoutMs: 5_000,
        body: async (req) => { req.write(head('dropper')); req.write(Buffer.alloc(64 * 1024)); await delay(500); req.destroy() }
      }))
      // 10 GiB announced, zeros streamed until the server answers (the document size limit)
      out.push(await rawPost({
        port: s.ippPort,
        localAddress: ADDRESSES.lengths,
        headers: { 'Content-Length': String(TEN_GIB) },
        body: async (req, answered) => {
          req.write(head('streamer'))
          const chunk = Buffer.alloc(MB)
          for (let sent = 0; sent < sizes.streamBytes && !answered() && !req.destroyed; sent += chunk.length) {
            if (!req.write(chunk)) await writable(req)
          }
        }
      }))
      // a job that says it is 2 TiB
      out.push(await rawPost({ port: s.ippPort, localAddress: ADDRESSES.lengths, body: Buffer.concat([head('declarer', [attr('job-k-octets', Tag.integer, 2 ** 31 - 1)]), small.variant(serial++)]) }))
      return out
    })

    await phase('bombs', 'gzip, zlib and Content-Encoding bombs, a flate-bomb PDF, a 50,000-page PDF', async () => {
      const compressed = (c: string): Buffer => encodeMessage(printJob(uri, 'bomber', requestId++, [attr('compression', Tag.keyword, c)]))
      const sent = await Promise.all([
        rawPost({ port: s.ippPort, localAddress: ADDRESSES.bombs, body: Buffer.concat([compressed('gzip'), gzipBomb(sizes.bombBytes)]) }),
        rawPost({ port: s.ippPort, localAddress: ADDRESSES.bombs, body: Buffer.concat([compressed('deflate'), zlibBomb(sizes.bombBytes)]) }),
        rawPost({ port: s.ippPort, localAddress: ADDRESSES.bombs, headers: { 'Content-Encoding': 'gzip' }, body: gzipSync(Buffer.concat([encodeMessage(printJob(uri, 'bomber', requestId++)), Buffer.alloc(64 * MB)])) }),
        rawPost({ port: s.ippPort, localAddress: ADDRESSES.bombs, body: Buffer.concat([encodeMessage(printJob(uri, 'bomber', requestId++)), flateBomb]) }),
        rawPost({ port: s.ippPort, localAddress: ADDRESSES.bombs, body: Buffer.concat([encodeMessage(printJob(uri, 'bomber', requestId++)), manyPages]) })
      ])
      const [, , , flate, pages] = sent
      notes.push(`the flate-bomb PDF (a valid one-page PDF) was answered ${labelOf(flate)}; the 50,000-page PDF ${labelOf(pages)}${pages.kind === 'ipp' ? ` ("${pages.message}")` : ''}`)
      return sent
    })

    await phase('bursts', `${sizes.burst} at once from one address; one address spraying ${sizes.sprayJobs} user names; one user sending ${sizes.userJobs} jobs`, async (deadline) => {
      const job = (address: string, user: string): Promise<Outcome> =>
        rawPost({ port: s.ippPort, localAddress: address, body: Buffer.concat([encodeMessage(printJob(uri, user, requestId++)), small.variant(serial++)]) })
      const out: Outcome[] = []
      out.push(...await Promise.all(Array.from({ length: sizes.burst }, async (_, i) => await job(ADDRESSES.burst, `burst${i}`))))
      const sprayed: Outcome[] = []
      await workers(sizes.sprayJobs, CONCURRENCY, deadline, async (i) => { sprayed.push(await job(ADDRESSES.spray, `spray${i}`)) })
      const oneUser: Outcome[] = []
      await workers(sizes.userJobs, CONCURRENCY, deadline, async () => { oneUser.push(await job(ADDRESSES.user, 'mallory')) })
      const ok = (os: Outcome[]): number => os.filter((o) => o.kind === 'ipp' && o.status === 'successful-ok').length
      notes.push(`bursts: ${ok(out)} of ${out.length} sent at once were held (${tally(out)}); the spraying address got ${ok(sprayed)} of ${sprayed.length} held (${tally(sprayed)}); mallory ${ok(oneUser)} of ${oneUser.length} (${tally(oneUser)})`)
      return [...out, ...sprayed, ...oneUser]
    })

    probing = false
    await probeLoop
    clearInterval(sampler)
    sampler = undefined

    // documents still arriving (dropped clients) settle; then count what the spool holds that no job owns
    const settleBy = performance.now() + TIMING.settle
    while (performance.now() < settleBy && (await apiJobs(s)).some((j) => j.state === 'received' && j.owner !== 'fuzz')) await delay(200)
    const jobs = await apiJobs(s)
    const owned = new Set(jobs.map((j) => j.sha256).filter((h): h is string => h !== undefined))
    const spool = join(s.dataDir, 'spool')
    let half = 0
    let stranded = 0
    for (const sub of await readdir(spool)) {
      const files = await readdir(join(spool, sub))
      if (sub === 'tmp') half += files.length
      else stranded += files.filter((f) => !owned.has(f)).length
    }
    const refusals = await refusalsByLimit(s)
    const errorLines = s.logs().filter((l) => /"level":(50|60)/.test(l)).length
    const rssHwm = await rssHighWater(s.pid)
    const summary: Row[] = [
      { measure: 'site process alive at the end', value: alive(s.pid) ? 'yes' : 'NO' },
      { measure: 'site error/fatal log lines', value: errorLines },
      { measure: 'RSS at start, MB', value: round(rssStart / MB, 0) },
      { measure: 'RSS sampled peak, MB', value: round(rssPeak / MB, 0) },
      { measure: 'RSS high-water (VmHWM), MB', value: round(rssHwm / MB, 0) },
      { measure: 'RSS at end, MB', value: round((await rssOf(s.pid)) / MB, 0) },
      { measure: 'open fds at start / peak / end', value: `${fdsStart} / ${fdsPeak} / ${await fdsOf(s.pid)}` },
      { measure: 'half-written spool files (spool/tmp)', value: half },
      { measure: 'stranded spool files (no job owns them)', value: stranded },
      { measure: 'jobs held at the end (not deleted)', value: jobs.filter((j) => j.state === 'held').length },
      { measure: 'jobs still receiving (fuzzed Create-Jobs expire in 5 min)', value: jobs.filter((j) => j.state === 'received').length },
      ...Object.entries(refusals).map(([limit, n]) => ({ measure: `refused by ${limit} (/metrics)`, value: n })),
      { measure: 'valid jobs sent during the abuse', value: probe.sent },
      { measure: 'valid jobs held', value: probe.held },
      { measure: `valid jobs held within ${TIMING.heldWithin / 1000} s`, value: probe.onTime },
      { measure: 'valid job time to held p50 / p90 / max, ms', value: `${round(quantile(probe.latenciesMs, 0.5), 0)} / ${round(quantile(probe.latenciesMs, 0.9), 0)} / ${round(Math.max(...probe.latenciesMs), 0)}` }
    ]
    if (probe.failures.length > 0) notes.push(`valid jobs not held: ${probe.failures.join('; ')}`)
    notes.push(`the site ran with an analysis time limit of ${TIMING.analysisLimit / 1000} s (${ANALYSIS_TIMEOUT_ENV}) and ${sizes.siteArgs.length > 0 ? sizes.siteArgs.join(' ') : 'its default intake limits'}; each phase came from its own loopback address, the valid client from ${VALID_ADDRESS}`)
    notes.push('the valid client\'s Print-Job is answered once its job is held (spooled, analysed, durable): its latency is the time to held; it waits for an analysis worker like any job')
    return {
      params: { ...sizes, analysisLimitMs: TIMING.analysisLimit, probeIntervalMs: TIMING.probeInterval, fuzzSeed: FUZZ_SEED, addresses: { valid: VALID_ADDRESS, ...ADDRESSES } },
      rows,
      summary,
      notes
    }
  } finally {
    if (sampler !== undefined) clearInterval(sampler)
    const stops = await Promise.allSettled([site?.stop()])
    for (const st of stops) if (st.status === 'rejected') ctx.log(`intake-abuse: stopping the site failed: ${String(st.reason)}`)
    await rm(docs, { recursive: true, force: true })
  }
}

async function apiJobs (s: SiteProcess): Promise<ApiJob[]> {
  const res = await fetch(`${s.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${s.adminToken}` } })
  if (!res.ok) throw new BenchmarkError(`GET /api/jobs: HTTP ${res.status}`)
  return ((await res.json()) as { jobs: ApiJob[] }).jobs
}

/** Deletes `owner`'s held jobs through the API (as an admin). */
async function deleteHeldJobsOf (s: SiteProcess, owner: string): Promise<void> {
  for (const j of (await apiJobs(s)).filter((j) => j.owner === owner && j.state === 'held')) {
    await fetch(`${s.httpUrl}/api/jobs/${j.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${s.adminToken}` } })
  }
}

/** printmesh_ipp_intake_refused_total by limit, from the site's /metrics. */
async function refusalsByLimit (s: SiteProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^printmesh_ipp_intake_refused_total\{limit="([a-z-]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2])
  return out
}

export const intakeAbuse: Benchmark = {
  name: 'intake-abuse',
  description: 'hostile IPP traffic (fuzzed requests, huge lengths, decompression and PDF bombs, bursts) against a site: alive, memory, fds, stranded spool files, valid jobs held within 1 s (run by name only)',
  run: measure
}
