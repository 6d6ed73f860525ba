// Credit as escrow in the chaos simulator (issue 20 items 4 and 5; simulations/credit-sim.ts):
// a few seeded runs with `credit` under every fault kind keep invariant 5 (no user spends more
// than credited, no peer more than its share, at every step and fault; after the heal every
// view equals the peers' own documents, every charge paid once, no reservation left), with
// top-ups, refusals, share requests and the availability figure; and a planted escrow bug
// (peers reserving without checking their share) makes invariant 5 fail, so the check works.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { simulate, type SimSummary } from '../simulations/simulator.ts'
import { formatViolation } from '../simulations/invariants.ts'

/** Small runs: 1 central, 3 sites, 2 terminals; every fault kind happens in 150 steps. */
const RUN = { peers: 6, steps: 150, faults: 60, terminals: 2, maxSeconds: 60 } as const

const explain = (s: SimSummary): string => `seed ${s.seed}: ${JSON.stringify(s.invariants)} ${JSON.stringify(s.credit)}\n${s.violations.slice(0, 3).map(formatViolation).join('\n')}`

for (const seed of [1, 2, 3]) {
  test(`seed ${seed} with credit and faults: invariants 1-5 hold; credit was topped up, reserved, refused and asked for`, async () => {
    const s = await simulate({ ...RUN, seed, credit: true })
    assert.equal(s.violations, [], explain(s))
    assert.is(s.invariants[5], 'PASS', explain(s))
    const c = s.credit
    assert.ok(c !== undefined, 'the summary has the credit figures')
    assert.ok(c.topUps > 12, `every user's first credit and some top-ups (${c.topUps})`)
    assert.ok(c.reserves > 10, `prints reserved credit (${c.reserves})`)
    assert.ok(c.spent > 0, 'credit was spent')
    assert.ok(c.requests > 0, `shares were asked of other peers (${c.requests})`)
    assert.ok(c.unavailability >= 0 && c.unavailability <= 1)
    assert.ok(s.faults.partition + s.faults.crash + s.faults['crash-mid-write'] + s.faults.loss + s.faults.duplicate + s.faults.delay + s.faults['clock-skew'] > 20, 'faults happened')
  })
}

test('regression, seed 5 with device spooling: a partner site refusing a terminal\'s Pull job for credit right after the commit still tells the holder, which puts the job back (it was left printing: invariant 1)', async () => {
  const s = await simulate({ peers: 8, steps: 300, faults: 120, terminals: 3, maxSeconds: 120, seed: 5, credit: true, deviceSpooling: true })
  assert.equal(s.violations, [], explain(s))
})

test('credit: false replays to the fingerprint of a run without the option (other seeds stay as they were)', async () => {
  const off = await simulate({ ...RUN, steps: 80, faults: 30, seed: 4, credit: false })
  const without = await simulate({ ...RUN, steps: 80, faults: 30, seed: 4 })
  assert.is(off.fingerprint, without.fingerprint)
  assert.is(off.credit, undefined)
})

test('planted escrow bug: peers that reserve without checking their share are caught as invariant 5', async () => {
  const s = await simulate({ ...RUN, seed: 1, credit: true, creditInject: 'overspend' })
  assert.is(s.invariants[5], 'FAIL', explain(s))
  const v = s.violations.find((x) => x.invariant === 5)
  assert.match(v?.message ?? '', /spent or gave more of u\d+'s credit than it held|spent \d+ .* of \d+ credited/)
})

test.run()
