// The chaos simulator with device spooling at terminals (issues 13 and 18 item 5): jobs sent
// straight to terminals' Direct, Hold, Pull and Delegated queues, released at the terminal,
// at other peers of its site through its grant and by delegates, under crashes (the holding
// terminal's too, mid-release), partitions and the site down, keep every invariant and every
// mode happens; a run replays exactly; and runs without the option are untouched by it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { simulate, DEVICE_MODES, type SimOptions, type SimSummary } from '../simulations/simulator.ts'
import { formatViolation } from '../simulations/invariants.ts'

/** The size of the README's runs (about 6 s); seed 3 has every mode acknowledged and printed, and a release at a terminal while the site was down. */
const FULL: SimOptions = { seed: 3, peers: 8, steps: 300, faults: 120, terminals: 3, deviceSpooling: true, maxSeconds: 120 }
/** A small run for the replay check (about 2 s each). */
const SMALL: SimOptions = { seed: 2, peers: 8, steps: 150, faults: 60, terminals: 3, deviceSpooling: true, maxSeconds: 60 }

function explain (s: SimSummary): string {
  return s.violations.map(formatViolation).join('\n')
}

test('with device spooling, jobs in all four modes keep every invariant under faults, and each mode is printed, released at its terminal and elsewhere', async () => {
  const s = await simulate(FULL)
  assert.equal(s.violations, [], explain(s))
  assert.equal(s.invariants, { 1: 'PASS', 2: 'PASS', 3: 'PASS', 4: 'PASS' })
  assert.ok(s.convergence.converged)
  const d = s.deviceSpooling
  for (const mode of DEVICE_MODES) {
    assert.ok(d.jobs[mode] > 0, `${mode} jobs were acknowledged (${d.jobs[mode]})`)
    assert.ok(d.printed[mode] > 0, `${mode} jobs were printed (${d.printed[mode]})`)
  }
  assert.ok(d.releasedAtTerminal > 0, `jobs were released at their terminal (${d.releasedAtTerminal})`)
  assert.ok(d.releasedElsewhere > 0 && d.printedElsewhere > 0, `Pull and Delegated jobs were released and printed elsewhere through the terminal's grant (${d.releasedElsewhere} granted, ${d.printedElsewhere} printed)`)
  assert.ok(d.byDelegates > 0, `a delegate released a Delegated job (${d.byDelegates})`)
  assert.ok(d.whileSiteDown > 0, `a Pull or Delegated job was released at another terminal while the site's server was down (${d.whileSiteDown})`)
  assert.ok(d.forbiddenRefused > 0, `releases the mode forbids were tried and refused (${d.forbiddenRefused})`)
  assert.ok(d.holderCrashes > 0, `a holding terminal crashed mid-release (${d.holderCrashes})`)
  assert.is(d.offline, 0, 'no device-spooled job was printed offline (nobody may copy one ahead)')
  assert.ok(s.faults.crash + s.faults['crash-mid-write'] > 10 && s.faults.partition > 0, 'the run crashed and partitioned peers')
})

test('a run with device spooling replays to the same fingerprint', async () => {
  const a = await simulate(SMALL)
  const b = await simulate(SMALL)
  assert.equal(a.violations, [], explain(a))
  assert.ok(a.deviceSpooling.jobs.hold + a.deviceSpooling.jobs.pull > 0, 'the small run has device-spooled jobs')
  assert.is(a.fingerprint, b.fingerprint)
  assert.equal(a.deviceSpooling, b.deviceSpooling)
})

test('deviceSpooling: false is a run without the option (it changes nothing else)', async () => {
  const without = await simulate({ ...SMALL, deviceSpooling: undefined })
  const off = await simulate({ ...SMALL, deviceSpooling: false })
  assert.is(off.fingerprint, without.fingerprint)
  assert.equal(off.deviceSpooling.jobs, { direct: 0, hold: 0, pull: 0, delegated: 0 })
  assert.is(off.deviceSpooling.releasedElsewhere + off.deviceSpooling.forbiddenRefused + off.deviceSpooling.holderCrashes, 0)
})

test.run()
