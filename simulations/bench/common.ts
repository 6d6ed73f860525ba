/**
 * What every benchmark shares: the result shape the runner writes as JSON, the context a
 * benchmark runs in, statistics, the table printer, process memory and folder sizes.
 */
import { readdir, lstat, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cpus, totalmem } from 'node:os'
import type { JobRecord } from '../../crdt/jobs.ts'

/** One benchmark's output: what the runner prints and writes to `<out>/<name>.json`. */
export interface BenchResult {
  /** The benchmark's registry name. */
  benchmark: string
  /** Whether it ran at `--quick` sizes. */
  quick: boolean
  startedAt: string
  /** Wall time of the whole benchmark, ms. */
  durationMs: number
  /** The machine it ran on, so results from different machines are not compared blindly. */
  machine: MachineInfo
  /** The sizes and bounds it ran with. */
  params: Record<string, unknown>
  /** One object per measured case; every table row is one of these. */
  rows: Row[]
  /** A second, derived table (e.g. printmesh/CUPS ratios), when the benchmark has one. */
  summary?: Row[]
  /** Things a reader must know about this run (stopped early, what was simulated how). */
  notes: string[]
}

export interface MachineInfo { cpus: number, cpuModel: string, memoryMb: number, node: string, platform: string }

/** One table row / JSON record. */
export type Row = Record<string, string | number | boolean | null>

/** Where and how a benchmark runs. */
export interface BenchContext {
  quick: boolean
  /** Progress lines go here (stderr), tables to stdout. */
  log (line: string): void
}

/** A benchmark in the runner's registry. */
export interface Benchmark {
  /** `--only` name and JSON file name. */
  name: string
  /** One line for `--help` and the README. */
  description: string
  /** Measures and returns rows; throws {@link BenchmarkError} (or anything) on failure. */
  run (ctx: BenchContext): Promise<Omit<BenchResult, 'benchmark' | 'quick' | 'startedAt' | 'durationMs' | 'machine'>>
}

/** A benchmark could not measure what it set out to (setup failed, a system refused work). */
export class BenchmarkError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BenchmarkError'
  }
}

export function machineInfo (): MachineInfo {
  const list = cpus()
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    platform: `${process.platform}-${process.arch}`
  }
}

/** The `q`-quantile (0..1) of `values` by nearest rank; NaN for no values. */
export function quantile (values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]
}

/** Rounds for display and JSON: `digits` decimals. */
export function round (n: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

/** A plain-text table: one header row, columns padded, numbers right-aligned. */
export function formatTable (title: string, rows: Row[], columns?: string[]): string {
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))]
  const cell = (v: unknown): string => v === null || v === undefined ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 2 })) : String(v)
  const body = rows.map((r) => cols.map((c) => cell(r[c])))
  const widths = cols.map((c, i) => Math.max(c.length, ...body.map((b) => b[i].length)))
  const numeric = cols.map((c) => rows.every((r) => typeof r[c] === 'number' || r[c] === null || r[c] === undefined))
  const line = (cells: string[]): string => cells.map((s, i) => numeric[i] ? s.padStart(widths[i]) : s.padEnd(widths[i])).join('  ').trimEnd()
  return [`== ${title}`, line(cols), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

/** Resident set size of a process in bytes, from /proc (Linux). */
export async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB$/m)
  if (m === null) throw new BenchmarkError(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** Bytes of regular files under `dir` (apparent size, like `du -sb`). */
export async function folderBytes (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await folderBytes(path)
    else if (entry.isFile()) total += (await lstat(path)).size
  }
  return total
}

export const MB = 1024 * 1024

/** A plausible job record for bulk benchmarks (no document behind it); `n` varies pages, owners and ids. */
export function syntheticJob (n: number, now: number, fields: Pick<JobRecord, 'id' | 'site' | 'state' | 'reason'> & Partial<JobRecord>): JobRecord {
  return {
    ippId: n + 1,
    queue: 'print',
    owner: `user${n % 250}`,
    name: `report ${n}.pdf`,
    format: 'application/pdf',
    sha256: n.toString(16).padStart(64, '0'),
    size: 100 * 1024,
    pages: 1 + (n % 7),
    colorPages: n % 3 === 0 ? 1 : 0,
    copies: 1,
    sides: 'one-sided',
    media: 'iso_a4_210x297mm',
    createdAt: now,
    updatedAt: now,
    ...fields
  }
}
