// `npm run bench -- --quick` end to end: every benchmark of the registry runs at small sizes
// (real site processes, a private cupsd, in-process meshes), prints its table and writes
// JSON with the expected fields and numeric values. No thresholds: benchmarks measure.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../simulations/node-process.ts'
import { BENCHMARKS } from '../simulations/bench/registry.ts'
import type { BenchResult, Row } from '../simulations/bench/common.ts'

const ROOT = new URL('..', import.meta.url).pathname
/** The quick run takes about a minute on 2 cores (roaming included); past this it is stuck. */
const RUN_TIMEOUT_MS = 150_000

async function runQuick (out: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'simulations/bench/run.ts'), '--quick', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS)
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

async function result (out: string, name: string): Promise<BenchResult> {
  return JSON.parse(await readFile(join(out, `${name}.json`), 'utf8')) as BenchResult
}

function numeric (rows: Row[], fields: string[], where: string): void {
  assert.ok(rows.length > 0, `${where}: no rows`)
  for (const row of rows) {
    for (const f of fields) {
      const v = row[f]
      assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${where}: ${f} = ${JSON.stringify(v)} in ${JSON.stringify(row)}`)
    }
  }
}

test('npm run bench -- --quick runs every benchmark and writes its JSON', async () => {
  const out = await tempDir('printmesh-bench-smoke-')
  try {
    const run = await runQuick(out)
    assert.is(run.code, 0, `bench exited ${String(run.code)}:\n${run.stderr}\n${run.stdout}`)
    for (const bench of BENCHMARKS) {
      assert.match(run.stdout, `== ${bench.name} (quick)`)
      const r = await result(out, bench.name)
      assert.is(r.benchmark, bench.name)
      assert.is(r.quick, true)
      assert.type(r.startedAt, 'string')
      assert.ok(r.durationMs > 0)
      assert.ok(r.machine.cpus > 0)
      assert.type(r.params, 'object')
      assert.ok(Array.isArray(r.notes))
    }

    const ingestion = await result(out, 'ingestion')
    assert.is(ingestion.rows.length, 8, 'printmesh and cups × 2 sizes × 2 concurrencies')
    assert.equal([...new Set(ingestion.rows.map((r) => r.system))].sort(), ['cups', 'printmesh'])
    numeric(ingestion.rows, ['concurrency', 'requests', 'failed', 'req/s', 'MB/s', 'p50 ms', 'p99 ms'], 'ingestion')
    for (const r of ingestion.rows) assert.ok(Number(r.requests) > 0, `no successful requests: ${JSON.stringify(r)}`)
    assert.is(ingestion.summary?.length, 4)
    numeric(ingestion.summary ?? [], ['req/s printmesh/cups', 'p50 printmesh/cups', 'p99 printmesh/cups'], 'ingestion ratios')

    const convergence = await result(out, 'convergence')
    numeric(convergence.rows, ['peers', 'jobs', 'create jobs/s', 'half settle ms', 'heal→identical ms', 'envelopes after heal'], 'convergence')

    const footprint = await result(out, 'footprint')
    assert.equal(footprint.rows.map((r) => r.case), ['idle site', 'idle terminal', 'idle client', 'site with retained jobs'])
    numeric(footprint.rows, ['jobs', 'start→ready ms', 'RSS MB', 'peak RSS MB', 'data MB'], 'footprint')
    for (const r of footprint.rows) assert.ok(Number(r['RSS MB']) > 0)
    // the idle rows carry issue 19's goal and whether it is met, from the RSS in the same row
    const idle = footprint.rows.filter((r) => String(r.case).startsWith('idle '))
    assert.equal(idle.map((r) => r['goal MB']), [120, 100, 80])
    numeric(idle, ['anchor MB', 'RSS/anchor', 'RSS/goal'], 'footprint idle rows')
    for (const r of idle) {
      assert.is(r['goal met'], Number(r['RSS MB']) <= Number(r['goal MB']) ? 'yes' : 'no', JSON.stringify(r))
      assert.ok(Math.abs(Number(r['RSS/goal']) - Number(r['RSS MB']) / Number(r['goal MB'])) < 0.01, JSON.stringify(r))
    }
    // the benchmark measures what production runs: the built JavaScript through the bin, not tsx
    assert.match(String(footprint.params.command), 'node/bin/printmesh.js site')
    numeric(footprint.summary ?? [], ['jobs', 'sim days', 'jobs retained', 'documents', 'jobs docs', 'acct docs', 'db MB', 'spool KB'], 'simulated year')

    const roaming = await result(out, 'roaming')
    numeric(roaming.rows, ['sites', 'jobs', 'listed', 'listed at 1st ask', 'unlisted', 'jobs/s sent', 'p50 ms', 'p99 ms', 'max ms'], 'roaming listing')
    for (const r of roaming.rows) assert.ok(Number(r.listed) > 0, `no job listed at a partner site: ${JSON.stringify(r)}`)
    assert.is(roaming.summary?.length, 2, 'roaming release and plain TCP copy')
    numeric(roaming.summary ?? [], ['MB', 'runs', 'median ms', 'MB/s', 'best MB/s', 'vs TCP'], 'roaming release')
    for (const r of roaming.summary ?? []) assert.ok(Number(r['MB/s']) > 0, `no transfer rate: ${JSON.stringify(r)}`)

    const credit = await result(out, 'credit-availability')
    numeric(credit.rows, ['seed', 'reservations', 'refused', 'refused although covered', 'unavailability %', 'goal %'], 'credit availability')
    for (const r of credit.rows) assert.ok(Number(r.reservations) > 0 && r['invariant 5'] === 'PASS', `releases needed credit and invariant 5 held: ${JSON.stringify(r)}`)
    assert.is(credit.summary?.length, 1)
  } finally {
    await rm(out, { recursive: true, force: true })
  }
})

test.run()
