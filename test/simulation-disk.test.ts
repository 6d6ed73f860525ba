// Disk faults in the chaos simulator (issue 18 item 3; `diskFaults`, simulations/instrument.ts):
// a peer whose every database write fails with ENOSPC for some steps, running on (disk-full),
// whose single writes fail with EIO (io-error), or whose writes complete only a while later on
// the virtual clock (slow-disk). Disk-full found two product bugs, each a seed here that fails
// without its fix:
// - seed 4: a document an own write of which failed kept the change in memory and a number in
//   its vector that no envelope carried; it was stored whole only at its next local change, and
//   last month's jobs document never changed again, so peers never converged (invariant 4).
//   Now anti-entropy stores such documents (crdt/store.ts storeUnstored).
// - seed 13: an offline roaming release whose record could not be written was refused, but the
//   record stayed in memory saying `printing`, was stored with the whole document later, and
//   the next start counted the job printed and charged it, never printed (invariant 3). Now the
//   release is recorded given back (devices/jobs/roaming.ts record).
// With io-error and slow-disk too (`diskFaults: true`):
// - seed 19: a print whose printer completed it, but whose `printed` write then failed with EIO,
//   was recorded failed (aborted-by-system) by the print engine's catch-all, as if the printer
//   never printed it: its holder did not know the print (invariant 2). Now a write failing
//   after the printer completed leaves the job `printing`, settled from the printer's answer
//   (devices/jobs/print-engine.ts print).
// Also: a planted bug that only slow-disk catches, and the option off replays to the fingerprint
// of a run without it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { simulate, type SimSummary } from '../simulations/simulator.ts'
import { formatViolation } from '../simulations/invariants.ts'
import { runMutations, formatMutationTable } from '../simulations/mutations.ts'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const explain = (s: SimSummary): string => `seed ${s.seed}: ${JSON.stringify(s.invariants)} ${JSON.stringify(s.faults)}\n${s.violations.slice(0, 3).map(formatViolation).join('\n')}`

for (const [seed, what] of [[4, 'a document a failed write left unstored is stored and converges'], [13, 'a release refused because its record could not be written is never charged']] as const) {
  test(`seed ${seed} at 8 peers with disk-full faults keeps invariants 1-4: ${what}`, async () => {
    // disk-full alone: these seeds replay the runs that found the bugs (made before io-error and slow-disk existed)
    const s = await simulate({ peers: 8, steps: 300, faults: 120, terminals: 3, maxSeconds: 120, seed, diskFaults: ['disk-full'] })
    assert.equal(s.violations, [], explain(s))
    assert.ok(s.faults['disk-full'] >= 5, `disks filled up (${s.faults['disk-full']})`)
  })
}

test('seed 19 at 8 peers with every disk fault keeps invariants 1-4: a print whose end failed to be written is not recorded failed', async () => {
  const s = await simulate({ peers: 8, steps: 300, faults: 120, terminals: 3, maxSeconds: 120, seed: 19, diskFaults: true })
  assert.equal(s.violations, [], explain(s))
  assert.ok(s.faults['io-error'] >= 5 && s.faults['slow-disk'] >= 3, `disks failed and slowed (${s.faults['io-error']}, ${s.faults['slow-disk']})`)
})

// A planted bug only slow-disk catches (a crash striking while writes are under way): on a
// working disk every append called before a crash reaches it, so an envelope sent before it
// was durable is on disk anyway.
test('slow disks catch own envelopes sent before they are durable (a forked log), seed 2 at 150 steps', async () => {
  const run = await runMutations({ root: ROOT, seeds: [2], options: { peers: 8, steps: 150, faults: 60, terminals: 3, maxSeconds: 60 }, only: ['own-envelope-sent-before-durable'] })
  assert.equal(run.baselineFailures, [], 'the seed passes without the mutation')
  assert.equal(run.results.map((r) => r.status), ['caught'], formatMutationTable(run))
})

test('diskFaults: false replays to the fingerprint of a run without the option, with no disk fault', async () => {
  const run = { peers: 6, steps: 60, faults: 20, terminals: 2, maxSeconds: 60, seed: 4 } as const
  const off = await simulate({ ...run, diskFaults: false })
  const without = await simulate(run)
  assert.is(off.fingerprint, without.fingerprint)
  assert.is(off.faults['disk-full'], 0)
})

test.run()
