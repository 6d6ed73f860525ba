// Terminals' panels in the chaos simulator (issue 12, simulations/panel-sim.ts): seeded runs
// where users log in at terminals by PIN, card and PIN alone (also cut off from their site and
// central) and copy, while central changes PINs and disables users and every fault kind
// strikes, keep invariants 1-4 and 6, with the copies charged exactly in invariant 3; and the
// panel mutations (a stale login index, a disabled user let in, a PIN two users hold logging
// one in, prints charged under the queue's name, prints charged as copies, a session dropped
// at a restart) are each caught, so the checks can fail.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { fileURLToPath } from 'node:url'
import { simulate, type SimSummary } from '../simulations/simulator.ts'
import { formatViolation } from '../simulations/invariants.ts'
import { MUTATIONS, runMutations, formatMutationTable } from '../simulations/mutations.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Small runs: 1 central, 3 sites, 2 terminals; every fault kind happens in 150 steps. */
const RUN = { peers: 6, steps: 150, faults: 60, terminals: 2, maxSeconds: 60 } as const

const explain = (s: SimSummary): string => `seed ${s.seed}: ${JSON.stringify(s.invariants)} ${JSON.stringify(s.panel)}\n${s.violations.slice(0, 3).map(formatViolation).join('\n')}`

test('seeds 1-3 with panels and faults: invariants 1-4 and 6 hold; users logged in (also offline) and were refused, PINs changed, sessions copied and one was closed by a restart', async () => {
  const runs: SimSummary[] = []
  for (const seed of [1, 2, 3]) {
    const s = await simulate({ ...RUN, seed, panel: true })
    assert.equal(s.violations, [], explain(s))
    assert.is(s.invariants[6], 'PASS', explain(s))
    runs.push(s)
  }
  const panels = runs.map((s) => s.panel).filter((p) => p !== undefined)
  assert.is(panels.length, 3, 'every summary has the panel figures')
  const sum = (f: (p: typeof panels[number]) => number): number => panels.reduce((n, p) => n + f(p), 0)
  assert.ok(sum((p) => p.accepted) > 10, `logins accepted (${sum((p) => p.accepted)})`)
  assert.ok(sum((p) => p.logins - p.accepted) > 0, 'logins refused (an old PIN, a disabled user)')
  assert.ok(sum((p) => p.offline) > 0, 'logins at a terminal that reached no server')
  assert.ok(sum((p) => p.pinChanges) > 0 && sum((p) => p.disables) > 0, 'central changed PINs and disabled users')
  assert.ok(sum((p) => p.pagesCopied) > sum((p) => p.sessions), 'sessions copied pages')
  assert.ok(sum((p) => p.closedAtRestart) > 0, 'a session left open by a crash was closed at the restart')
})

/** Seed 4's fingerprint at 60 steps and 20 faults, recorded at 0009ea7, before panels existed (a change to runs without panels must update it knowingly). */
const BEFORE_PANELS = '1b3801781e84bd259a54793e6690c15547bd7f880f5e888f085098177159eaef'

test('runs without panels (panel false or absent) replay to the fingerprint they had before panels existed', async () => {
  const off = await simulate({ ...RUN, steps: 60, faults: 20, seed: 4, panel: false })
  const without = await simulate({ ...RUN, steps: 60, faults: 20, seed: 4 })
  assert.is(off.fingerprint, BEFORE_PANELS)
  assert.is(without.fingerprint, BEFORE_PANELS)
  assert.is(off.panel, undefined)
})

test('the panel mutations are each caught by a seeded run with panels, which passes unmutated', async () => {
  const only = MUTATIONS.filter((m) => m.area === 'panel').map((m) => m.name)
  assert.is(only.length, 6)
  const run = await runMutations({ root: ROOT, seeds: [1, 2, 3], options: { ...RUN }, only })
  assert.equal(run.baselineFailures, [], 'the seeds pass without a mutation')
  const missed = run.results.filter((r) => r.status !== 'caught')
  assert.equal(missed.map((r) => r.name), [], formatMutationTable(run))
  // a login bug shows as invariant 6, a charging bug as invariant 3
  const expected = (name: string): number => name.startsWith('login-') || name.startsWith('pin-') ? 6 : 3
  for (const r of run.results) assert.ok(r.invariants?.includes(expected(r.name)), `${r.name} is caught as invariant ${expected(r.name)} (${JSON.stringify(r.invariants)}: ${r.message ?? ''})`)
})

test.run()
