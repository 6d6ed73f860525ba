/**
 * `npm run bench`: runs the benchmarks of the registry (registry.ts), prints one table per
 * benchmark on stdout (progress goes to stderr) and writes `<out>/<name>.json`.
 * Benchmarks are measurements, not tests: there are no thresholds. The command exits
 * non-zero only when a benchmark could not run at all.
 *
 *   npm run bench                          every benchmark, full sizes
 *   npm run bench -- --quick               small sizes (CI smoke)
 *   npm run bench -- --only convergence    one benchmark (repeatable)
 *   npm run bench -- --only intake-abuse   an on-demand one (ON_DEMAND_BENCHMARKS: never run unless named)
 *   npm run bench -- --out /tmp/results    results folder (default ./bench-results)
 */
import { Command, InvalidArgumentError } from 'commander'
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { RUN_BUILT_ENV } from '../printmesh-command.ts'
import { BENCHMARKS, ON_DEMAND_BENCHMARKS } from './registry.ts'
import { formatTable, machineInfo, type BenchResult, type Benchmark } from './common.ts'

/** Default results folder, relative to the working directory (gitignored). */
const DEFAULT_OUT = 'bench-results'

export interface RunOptions {
  quick: boolean
  only: string[]
  out: string
}

/** Every benchmark a name may select: the default ones and those run only by name. */
const KNOWN: readonly Benchmark[] = [...BENCHMARKS, ...ON_DEMAND_BENCHMARKS]

export class UnknownBenchmarkError extends Error {
  constructor (name: string) {
    super(`unknown benchmark ${JSON.stringify(name)}; known: ${KNOWN.map((b) => b.name).join(', ')}`)
    this.name = 'UnknownBenchmarkError'
  }
}

function selected (only: string[]): Benchmark[] {
  for (const name of only) if (!KNOWN.some((b) => b.name === name)) throw new UnknownBenchmarkError(name)
  return only.length === 0 ? [...BENCHMARKS] : KNOWN.filter((b) => only.includes(b.name))
}

function print (result: BenchResult): void {
  const lines = [formatTable(`${result.benchmark}${result.quick ? ' (quick)' : ''}`, result.rows)]
  if (result.summary !== undefined && result.summary.length > 0) lines.push(formatTable(`${result.benchmark}: summary`, result.summary))
  for (const note of result.notes) lines.push(`  note: ${note}`)
  process.stdout.write(`${lines.join('\n\n')}\n\n`)
}

/** The production build (node/build.js); printmesh processes the benchmarks start run it (node/bin/printmesh.js). */
const BUILD_SCRIPT = new URL('../../node/build.js', import.meta.url).pathname

export class BuildError extends Error {
  constructor (message: string) { super(message); this.name = 'BuildError' }
}

/**
 * Benchmarks measure what production runs: the built JavaScript through the bin, not the
 * sources through tsx. Builds node/dist once here if it is stale (each process's bin would
 * otherwise find it so), then has every printmesh process started from now on run the bin.
 */
export function useBuiltPrintmesh (log: (line: string) => void): void {
  const built = spawnSync(process.execPath, [BUILD_SCRIPT, '--if-stale'], { encoding: 'utf8' })
  if (built.status !== 0) throw new BuildError(`node/build.js failed: ${built.stderr}`)
  if (built.stderr.trim() !== '') log(built.stderr.trim().replace(/^printmesh: /, ''))
  process.env[RUN_BUILT_ENV] = '1'
}

/** Runs the selected benchmarks; resolves with the results and the names that failed. */
export async function runBenchmarks (opts: RunOptions): Promise<{ results: BenchResult[], failed: string[] }> {
  const out = resolve(opts.out)
  await mkdir(out, { recursive: true })
  const log = (line: string): void => { process.stderr.write(`[bench] ${line}\n`) }
  useBuiltPrintmesh(log)
  const results: BenchResult[] = []
  const failed: string[] = []
  for (const bench of selected(opts.only)) {
    const startedAt = new Date()
    log(`${bench.name}: ${bench.description}`)
    try {
      const measured = await bench.run({ quick: opts.quick, log })
      const result: BenchResult = {
        benchmark: bench.name,
        quick: opts.quick,
        startedAt: startedAt.toISOString(),
        durationMs: Date.now() - startedAt.getTime(),
        machine: machineInfo(),
        ...measured
      }
      await writeFile(join(out, `${bench.name}.json`), JSON.stringify(result, null, 2) + '\n')
      print(result)
      results.push(result)
      log(`${bench.name}: done in ${(result.durationMs / 1000).toFixed(1)} s, wrote ${join(out, `${bench.name}.json`)}`)
    } catch (err) {
      failed.push(bench.name)
      log(`${bench.name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    }
  }
  return { results, failed }
}

function collect (value: string, previous: string[]): string[] {
  if (!KNOWN.some((b) => b.name === value)) throw new InvalidArgumentError(`known: ${KNOWN.map((b) => b.name).join(', ')}`)
  return [...previous, value]
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === new URL(import.meta.url).pathname
if (isMain) {
  const program = new Command('bench')
    .description(`printmesh benchmarks (no pass/fail): each prints a table and writes <out>/<name>.json\n\n${BENCHMARKS.map((b) => `  ${b.name.padEnd(12)} ${b.description}`).join('\n')}\n\nrun only when named with --only:\n${ON_DEMAND_BENCHMARKS.map((b) => `  ${b.name.padEnd(12)} ${b.description}`).join('\n')}`)
    .option('--only <name>', 'run only this benchmark (repeatable)', collect, [])
    .option('--quick', 'small sizes, for a CI smoke run', false)
    .option('--out <dir>', 'results folder', DEFAULT_OUT)
    .showHelpAfterError()
  program.parse(process.argv)
  const opts = program.opts<RunOptions>()
  runBenchmarks(opts).then(({ failed }) => {
    if (failed.length > 0) process.stderr.write(`[bench] failed: ${failed.join(', ')}\n`)
    process.exit(failed.length > 0 ? 1 : 0)
  }, (err: unknown) => {
    process.stderr.write(`[bench] ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
