// A real printer that takes one job at a time (ippeveprinter answers `server-error-busy`
// while it processes a job) is normal: jobs wait for it and every one prints once and is
// charged once — on a queue that holds jobs and on one that
// prints on arrival.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'

const run = promisify(execFile)
/** Jobs released at once to the one-job-at-a-time printer (the report: 2 of 8 printed). */
const HELD_JOBS = 8
/** Jobs sent to the print-on-arrival queue (the report: 8 of 20 went back to held). */
const ARRIVAL_JOBS = 20
/**
 * How long the printer takes per job: the held jobs together (8 × 2.5 s) outlast the IPP
 * device's own retries of one submission (~15 s), which is where jobs used to be given up.
 */
const HELD_PROCESS_MS = 2_500
/** The arrival jobs together (20 × 1 s) outlast it too. */
const ARRIVAL_PROCESS_MS = 1_000
/** All of them together well under this. */
const ALL_PRINTED_MS = 180_000

let docs = ''
const started: Array<{ stop: () => Promise<void> }> = []

test.before(async () => { docs = await tempDir('printmesh-busy-') })
test.after(async () => {
  for (const s of started.reverse()) await s.stop()
  await rm(docs, { recursive: true, force: true })
})

interface ApiJob { id: string, name: string, owner: string, state: string, pages: number, reason?: string }

async function jobsOf (site: SiteProcess): Promise<ApiJob[]> {
  const res = await fetch(`${site.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${site.adminToken}` } })
  return ((await res.json()) as { jobs: ApiJob[] }).jobs
}

async function totals (site: SiteProcess): Promise<Array<{ key: string, jobs: number, pages: number }>> {
  const res = await fetch(`${site.httpUrl}/api/usage/totals?by=user`, { headers: { authorization: `Bearer ${site.adminToken}` } })
  return ((await res.json()) as { totals: Array<{ key: string, jobs: number, pages: number }> }).totals
}

/** Back to `held` with a reason other than the hold on arrival (a given-up release), or failed. */
function stranded (job: ApiJob): boolean {
  return (job.state === 'held' && job.reason !== 'job-hold-until-specified') || job.state === 'failed'
}

/** Whether the site's log shows the printer answering `server-error-busy` to a submission. */
function printerWasBusy (site: SiteProcess): boolean {
  return site.logs().some((l) => l.includes('printer not ready, retrying') && l.includes('"reason":"busy"'))
}

async function lp (site: SiteProcess, file: string, user: string, title: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${site.ippPort}`, '-d', 'print', '-U', user, '-t', title, file])
}

/** Printed documents by job name, read from the printer's own spool (`<id>-<name>.pdf`). */
async function printedNames (printer: IppEvePrinter): Promise<string[]> {
  return (await printer.jobFiles()).map((f) => (f.split('/').pop() ?? '').replace(/^\d+-/, '').replace(/\.pdf$/, '')).sort()
}

async function setUp (args: string[], processMs: number): Promise<{ site: SiteProcess, printer: IppEvePrinter }> {
  const printer = await startIppEvePrinter({ name: 'one-at-a-time', processMs })
  started.push(printer)
  const site = await startSite({ printers: [`office=${printer.uri}`], users: 'username,full name,PIN\ncarol,Carol,2468\n', args })
  started.push(site)
  return { site, printer }
}

test(`${HELD_JOBS} held jobs released at once to a one-job-at-a-time printer all print, each once and charged once`, async () => {
  const { site, printer } = await setUp([], HELD_PROCESS_MS)
  const pdf = await makePdf(docs, { pages: 2, colorPages: [] })
  const names = Array.from({ length: HELD_JOBS }, (_, i) => `held-${i}`)
  for (const name of names) await lp(site, pdf, 'carol', name)
  await until(async () => (await jobsOf(site)).filter((j) => j.state === 'held').length === HELD_JOBS, 30_000, 'all jobs held')
  const held = (await jobsOf(site)).sort((a, b) => a.name.localeCompare(b.name))

  const answers = await Promise.all(held.map(async (j) => await fetch(`${site.httpUrl}/api/jobs/${j.id}/release`, {
    method: 'POST',
    headers: { authorization: `Bearer ${site.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ printer: 'office' })
  })))
  assert.equal(answers.map((r) => r.status), held.map(() => 200))

  await until(async () => {
    const jobs = await jobsOf(site)
    assert.equal(jobs.filter(stranded), [], 'a released job went back to held or failed instead of waiting for the printer')
    return jobs.filter((j) => j.state === 'printed').length === HELD_JOBS
  }, ALL_PRINTED_MS, `all ${HELD_JOBS} jobs printed`)
  assert.equal(await printedNames(printer), names, 'each job reached the printer exactly once')
  assert.equal(await totals(site), [{ key: 'carol', jobs: HELD_JOBS, pages: 2 * HELD_JOBS, colorPages: 0, sheets: 2 * HELD_JOBS }])
  assert.ok(printerWasBusy(site), 'the printer never answered busy: the test did not test waiting')
})

test(`${ARRIVAL_JOBS} jobs sent to a print-on-arrival queue all print on a one-job-at-a-time printer, none back to held`, async () => {
  const { site, printer } = await setUp(['--no-hold'], ARRIVAL_PROCESS_MS)
  const pdf = await makePdf(docs, { pages: 1, colorPages: [] })
  const names = Array.from({ length: ARRIVAL_JOBS }, (_, i) => `arrival-${String(i).padStart(2, '0')}`)
  await Promise.all(names.map(async (name) => await lp(site, pdf, 'carol', name)))

  await until(async () => {
    const jobs = await jobsOf(site)
    assert.equal(jobs.filter(stranded), [], 'a job went back to held or failed instead of waiting for the printer')
    return jobs.filter((j) => j.state === 'printed').length === ARRIVAL_JOBS
  }, ALL_PRINTED_MS, `all ${ARRIVAL_JOBS} jobs printed`)
  assert.equal(await printedNames(printer), names, 'each job reached the printer exactly once')
  assert.equal(await totals(site), [{ key: 'carol', jobs: ARRIVAL_JOBS, pages: ARRIVAL_JOBS, colorPages: 0, sheets: ARRIVAL_JOBS }])
  assert.ok(printerWasBusy(site), 'the printer never answered busy: the test did not test waiting')
})

test.run()
