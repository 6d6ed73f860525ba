/**
 * The child process of a mutation run (simulations/mutations.ts), started in the scratch
 * copy that carries the mutation: runs the seeds given as one JSON argument and prints one
 * JSON line per seed (the invariants violated and the first message, or the run's error),
 * stopping at the first failing seed when asked.
 */
import { simulate } from './simulator.ts'

const { seeds, options, stopAtFirst } = JSON.parse(process.argv[2] ?? '{}') as {
  seeds: number[]
  options: { peers: number, steps: number, faults: number, terminals: number, maxSeconds: number }
  stopAtFirst: boolean
}
for (const seed of seeds) {
  let line: { seed: number, invariants: number[], message?: string, error?: string }
  try {
    const s = await simulate({ ...options, seed })
    const invariants = [...new Set(s.violations.map((v) => v.invariant))].sort()
    line = { seed, invariants, ...(s.violations.length > 0 ? { message: s.violations[0].message } : {}) }
  } catch (err) {
    line = { seed, invariants: [], error: (err as Error).message }
  }
  process.stdout.write(JSON.stringify(line) + '\n')
  if (stopAtFirst && (line.invariants.length > 0 || line.error !== undefined)) break
}
