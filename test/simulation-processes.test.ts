// The multi-process chaos simulator (simulations/processes.ts): real printmesh processes on
// loopback — central and three sites with file printers — through kill -9 (also right after
// an acknowledged print and right after a release) and partitions keep every invariant; a
// run in which a site loses its disk (injected) is caught as invariant 1 with its seed and
// trace. Every process and temp folder is gone when a run returns.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { access } from 'node:fs/promises'
import { simulateProcesses, PROCESS_FAULT_KINDS, type ProcessSimSummary } from '../simulations/processes.ts'
import { formatViolation } from '../simulations/invariants.ts'

/** Real-time bound of each run: set-up alone starts four processes on a small machine. */
const RUN_SECONDS = 150
/** Convergence deadline after the final heal (anti-entropy runs every second). */
const HEAL_SECONDS = 45

function explain (s: ProcessSimSummary): string {
  return s.violations.map(formatViolation).join('\n')
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

async function assertCleanedUp (s: ProcessSimSummary): Promise<void> {
  assert.ok(s.processes.pids.length >= s.peers.central + s.peers.sites)
  assert.equal(s.processes.pids.filter(alive), [], 'every process the run started has ended')
  try {
    await access(s.dataDir)
    assert.unreachable(`the run's folder ${s.dataDir} is still there`)
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'ENOENT', String(err))
  }
}

test('central + 3 sites, 30 steps, 8 faults (kill -9, kill right after an ack or a release, partitions) keep every invariant', async () => {
  const s = await simulateProcesses({ seed: 1, sites: 3, steps: 30, faults: 8, maxSeconds: RUN_SECONDS, healSeconds: HEAL_SECONDS })
  assert.equal(s.violations, [], explain(s))
  assert.equal(s.invariants, { 1: 'PASS', 2: 'PASS', 3: 'PASS', 4: 'PASS' })
  assert.ok(s.convergence.converged)
  assert.ok(s.faults.kill + s.faults['kill-after-ack'] + s.faults['kill-mid-release'] >= 1, `a kill -9: ${JSON.stringify(s.faults)}`)
  assert.ok(s.faults.partition >= 1, `a partition: ${JSON.stringify(s.faults)}`)
  assert.ok(PROCESS_FAULT_KINDS.reduce((n, k) => n + s.faults[k], 0) <= 8)
  assert.ok(s.processes.started > 4, 'killed processes were restarted')
  assert.ok(s.jobs.acknowledged >= 5, `the workload printed: ${JSON.stringify(s.jobs)}`)
  assert.ok(s.jobs.printed >= 2, `printers printed: ${JSON.stringify(s.jobs)}`)
  assert.ok(s.releases.granted >= 2, `releases: ${JSON.stringify(s.releases)}`)
  await assertCleanedUp(s)
})

test('a site that loses its disk (injected: lose-disk) is caught as invariant 1, with the seed, step and trace', async () => {
  const s = await simulateProcesses({ seed: 3, sites: 2, steps: 6, faults: 0, maxSeconds: RUN_SECONDS, healSeconds: HEAL_SECONDS, inject: 'lose-disk' })
  assert.is(s.invariants[1], 'FAIL', JSON.stringify(s.invariants))
  const v = s.violations.find((x) => x.invariant === 1)
  assert.ok(v !== undefined)
  assert.is(v.seed, 3)
  assert.is(v.step, 7, 'found in the final checks')
  assert.match(v.message, /acknowledged job j\d+ is missing on its holder site-[ab]/)
  assert.ok(v.trace.some((t) => t.includes('injected-disk-loss')), v.trace.join('\n'))
  assert.match(formatViolation(v), /seed 3, step 7/)
  // nothing else broke: no double print, no double charge, and the new server converged
  assert.is(s.invariants[2], 'PASS', explain(s))
  assert.is(s.invariants[3], 'PASS', explain(s))
  assert.is(s.invariants[4], 'PASS', explain(s))
  await assertCleanedUp(s)
})

test('the CLI documents --processes and its injection', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'simulations/cli.ts', '--help'], { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr)
  for (const text of ['--processes', 'lose-disk']) assert.ok(r.stdout.includes(text), `--help mentions ${text}`)
  const wrong = spawnSync(process.execPath, ['--import', 'tsx', 'simulations/cli.ts', '--processes', '--inject', 'diverge'], { encoding: 'utf8' })
  assert.is(wrong.status, 2)
  assert.match(wrong.stderr, /with --processes, --inject must be one of lose-disk/)
})

test.run()
