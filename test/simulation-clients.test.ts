// The chaos simulator with workstation clients (issue 14): client spooling (jobs held at the
// client, released at a site or terminal of its site through the client's grant) and
// fallback printing (a client that reaches no peer of its site prints at once on its own
// printer, charged in its own accounting) keep every invariant, both paths happen, a run
// with clients replays exactly, and runs without clients are untouched by the option.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { simulate, type SimOptions, type SimSummary } from '../simulations/simulator.ts'
import { formatViolation } from '../simulations/invariants.ts'

/** The size of the README's runs; seed 1 has releases of clients' jobs elsewhere, automatic fallback prints and ones asked on the page (about 6 s). */
const FULL: SimOptions = { seed: 1, peers: 8, steps: 300, faults: 120, terminals: 3, clients: 3, maxSeconds: 120 }
/** A small run for the replay check (about 2 s each). */
const SMALL: SimOptions = { seed: 2, peers: 8, steps: 150, faults: 60, terminals: 2, clients: 3, maxSeconds: 60 }

function explain (s: SimSummary): string {
  return s.violations.map(formatViolation).join('\n')
}

test('with 3 clients, client spooling and fallback printing keep every invariant, and both happen', async () => {
  const s = await simulate(FULL)
  assert.equal(s.violations, [], explain(s))
  assert.equal(s.invariants, { 1: 'PASS', 2: 'PASS', 3: 'PASS', 4: 'PASS' })
  assert.ok(s.convergence.converged)
  assert.is(s.peers.clients, 3)
  assert.ok(s.clients.acknowledged > 10, `jobs were printed at clients (${s.clients.acknowledged})`)
  assert.ok(s.clients.releasedElsewhere > 0 && s.clients.printedElsewhere > 0, `clients' jobs were released and printed at sites or terminals (${s.clients.releasedElsewhere} granted, ${s.clients.printedElsewhere} printed)`)
  assert.ok(s.clients.isolated > 0, 'jobs were printed at clients that could reach no peer of their site')
  assert.ok(s.clients.fallbackPrinted > s.clients.printNow, `fallback printers printed jobs beyond those asked on the page (${s.clients.fallbackPrinted} printed, ${s.clients.printNow} asked)`)
  // regression: a fallback print the printer refused before accepting it stayed held for good (seed 1: j73)
  assert.is(s.clients.fallbackMissed, 0, 'every job printed at an isolated client left held at once')
  assert.ok(s.faults.crash + s.faults['crash-mid-write'] > 10 && s.faults.partition > 0, 'the run crashed and partitioned peers')
})

test('a run with clients replays to the same fingerprint', async () => {
  const a = await simulate(SMALL)
  const b = await simulate(SMALL)
  assert.equal(a.violations, [], explain(a))
  assert.is(a.fingerprint, b.fingerprint)
  assert.equal(a.clients, b.clients)
})

test('clients: 0 is a run without clients (the option changes nothing else)', async () => {
  const without = await simulate({ ...SMALL, clients: undefined })
  const zero = await simulate({ ...SMALL, clients: 0 })
  assert.is(zero.fingerprint, without.fingerprint)
  assert.is(zero.peers.clients, 0)
  assert.is(zero.clients.jobs, 0)
})

test.run()
