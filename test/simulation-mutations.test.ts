// The mutation set (simulations/mutations.ts): every planted bug still applies to the
// product, and a fast subset (one per area the short runs reach) is caught by a tiny seeded
// run, so the simulator's checks provably fail on realistic bugs. The whole set runs on
// demand: npm run sim -- mutations --seeds 1-5,7.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { MUTATIONS, runMutations, formatMutationTable } from '../simulations/mutations.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Caught by seed 11 of the tiny run within seconds each; one per area where one is (a credit mutation's runs have --credit: a baseline of their own). */
const FAST = [
  'copies-not-sent',
  'holder-misses-granted-print',
  'charge-ignores-copies',
  'usage-id-per-printer',
  'hold-in-the-wrong-unit',
  'store-gap-counted-held',
  'membership-terminal-reads-all-jobs',
  // with --credit (its own baseline): invariant 5
  'giver-gives-more-than-held'
]

test('every mutation names a snippet that occurs exactly once in its product file, and names are unique', async () => {
  assert.ok(MUTATIONS.length >= 25, `${MUTATIONS.length} mutations`)
  assert.is(new Set(MUTATIONS.map((m) => m.name)).size, MUTATIONS.length)
  for (const m of MUTATIONS) {
    const text = await readFile(join(ROOT, m.file), 'utf8')
    const at = text.indexOf(m.find)
    assert.ok(at >= 0 && text.indexOf(m.find, at + 1) < 0, `${m.name}: its snippet of ${m.file} occurs ${at < 0 ? 'nowhere' : 'more than once'} (update simulations/mutations.ts)`)
    assert.is.not(m.find, m.replace, `${m.name} changes something`)
  }
})

test('a fast subset of planted bugs is each caught by a tiny seeded run, which passes unmutated', async () => {
  const run = await runMutations({ root: ROOT, seeds: [11], options: { peers: 6, steps: 80, faults: 20, terminals: 1, maxSeconds: 60 }, only: FAST })
  assert.equal(run.baselineFailures, [], 'the seed passes without a mutation')
  const missed = run.results.filter((r) => r.status !== 'caught')
  assert.equal(missed.map((r) => r.name), [], formatMutationTable(run))
  for (const r of run.results) assert.is(r.seed, 11)
})

test.run()
