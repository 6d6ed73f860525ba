/**
 * `npm run sim -- [options]`: runs one seeded in-process chaos simulation, prints a summary
 * table (and any violations with their seed, step and trace) to stdout, optionally writes
 * the summary as JSON, and exits 1 on any invariant violation (2 on a usage or run error).
 */
import { writeFile } from 'node:fs/promises'
import { Command, InvalidArgumentError } from 'commander'
import { simulate, FAULT_KINDS, DEFAULT_TERMINALS, type SimSummary, type Injection } from './simulator.ts'
import { INVARIANTS, formatViolation } from './invariants.ts'

/** Upper bounds, so a typo cannot ask for a run that never ends. */
const MAX_PEERS = 500
const MAX_FAULTS = 100_000
const MAX_STEPS = 1_000_000
/** Default real-time bound of a run (seconds). */
const DEFAULT_MAX_SECONDS = 1800
const INJECTIONS: readonly Injection[] = ['double-print', 'drop-acked-job', 'drop-usage', 'diverge']

function bounded (name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    return n
  }
}

/** The summary as an aligned two-column table. */
function formatSummary (s: SimSummary): string {
  const rows: Array<[string, string]> = [
    ['seed', String(s.seed)],
    ['peers', `${s.peers.central + s.peers.sites + s.peers.terminals} (1 central, ${s.peers.sites} sites, ${s.peers.terminals} terminals)`],
    ['steps', String(s.steps)],
    ['jobs created', String(s.jobs.created)],
    ['jobs acknowledged', String(s.jobs.acknowledged)],
    ['jobs printed', String(s.jobs.printed)],
    ['jobs deleted', String(s.jobs.deleted)],
    ['jobs expired', String(s.jobs.expired)],
    ['jobs failed', String(s.jobs.failed)],
    ['jobs purged (retention)', String(s.jobs.purged)],
    ['jobs still held', String(s.jobs.held)],
    ['releases (granted / refused; at another site)', `${s.releases.attempted} (${s.releases.granted} / ${s.releases.refused}; ${s.releases.roaming})`],
    ['retention sweeps', String(s.sweeps)],
    ...FAULT_KINDS.map((k): [string, string] => [`faults: ${k}`, String(s.faults[k])]),
    ['envelopes in / out', `${s.messages.envelopesIn} / ${s.messages.envelopesOut}`],
    ['convergence after final heal', s.convergence.converged
      ? `${s.convergence.virtualMs} ms virtual, ${s.convergence.realMs} ms real, ${s.convergence.rounds} rounds`
      : `NOT converged after ${s.convergence.rounds} rounds`],
    ...INVARIANTS.map((i): [string, string] => [`invariant ${i.id}: ${i.name}`, s.invariants[i.id]]),
    ['fingerprint', s.fingerprint.slice(0, 16)],
    ['real time', `${(s.realMs / 1000).toFixed(1)} s`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')
}

async function main (): Promise<number> {
  const program = new Command()
    .name('npm run sim --')
    .description('Seeded in-process chaos simulation of a printmesh mesh: workload, faults, invariant checks (DESIGN.md "Jobs" 1-4).')
    .option('--peers <n>', 'peers in all: 1 central, the terminals, the rest sites', bounded('--peers', 3, MAX_PEERS), 10)
    .option('--faults <n>', 'fault events spread over the run (crash, partition, loss, duplication, reordering, delay, clock skew)', bounded('--faults', 0, MAX_FAULTS), 100)
    .option('--seed <n>', 'seed of every random decision; the same seed replays the same run', bounded('--seed', 0, 2 ** 31 - 1), 1)
    .option('--steps <n>', 'workload and fault steps (default: 2 × faults + 100)', bounded('--steps', 1, MAX_STEPS))
    .option('--terminals <n>', 'terminal peers among --peers', bounded('--terminals', 0, MAX_PEERS), DEFAULT_TERMINALS)
    .option('--json <file>', 'also write the summary (with violations) as JSON to this file')
    .option('--data-dir <dir>', 'parent folder of the run\'s temp folder (default /dev/shm, else the OS temp dir); removed at the end')
    .option('--max-seconds <n>', 'real-time bound of the run', bounded('--max-seconds', 1, 86_400), DEFAULT_MAX_SECONDS)
    .option('--inject <bug>', `deliberately break something to see the checks fail: ${INJECTIONS.join(', ')}`, (v: string) => {
      if (!INJECTIONS.includes(v as Injection)) throw new InvalidArgumentError(`--inject must be one of ${INJECTIONS.join(', ')}`)
      return v as Injection
    })
    .option('--roaming', 'release half the jobs at another site than their holder, under its grant (runs are not yet exactly replayable with it)')
    .option('--quiet', 'no progress lines on stderr')
  program.parse()
  const o = program.opts<{ peers: number, faults: number, seed: number, steps?: number, terminals: number, json?: string, dataDir?: string, maxSeconds: number, inject?: Injection, quiet?: boolean, roaming?: boolean }>()
  const terminals = Math.min(o.terminals, Math.max(0, o.peers - 3))
  const summary = await simulate({
    seed: o.seed,
    peers: o.peers,
    faults: o.faults,
    steps: o.steps ?? o.faults * 2 + 100,
    terminals,
    maxSeconds: o.maxSeconds,
    ...(o.dataDir !== undefined ? { dataDir: o.dataDir } : {}),
    ...(o.inject !== undefined ? { inject: o.inject } : {}),
    ...(o.roaming === true ? { roaming: true } : {}),
    ...(o.quiet === true ? {} : { progress: (line: string) => process.stderr.write(`[sim] ${line}\n`) })
  })
  process.stdout.write(formatSummary(summary) + '\n')
  for (const v of summary.violations) process.stdout.write('\n' + formatViolation(v) + '\n')
  if (o.json !== undefined) await writeFile(o.json, JSON.stringify(summary, null, 2) + '\n')
  return summary.violations.length > 0 ? 1 : 0
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`sim: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 2
})
