/**
 * Every benchmark `npm run bench` knows, in run order. Add a benchmark by writing a module
 * that exports a {@link Benchmark} and listing it here; `--only NAME` selects by its name.
 */
import type { Benchmark } from './common.ts'
import { ingestion } from './ingestion.ts'
import { convergence } from './convergence.ts'
import { footprint } from './footprint.ts'
import { roaming } from './roaming.ts'

export const BENCHMARKS: readonly Benchmark[] = [
  ingestion,
  convergence,
  footprint,
  roaming
]
