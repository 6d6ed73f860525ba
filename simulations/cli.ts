/**
 * `npm run sim -- [options]`: runs one seeded chaos simulation — in-process by default, or
 * with `--processes` real `printmesh` processes on loopback (simulations/processes.ts) —
 * prints a summary table (and any violations with their seed, step and trace) to stdout,
 * optionally writes the summary as JSON, and exits 1 on any invariant violation (2 on a
 * usage or run error).
 */
import { writeFile } from 'node:fs/promises'
import { Command, InvalidArgumentError } from 'commander'
import { simulate, FAULT_KINDS, DISK_FAULT_KINDS, DEFAULT_TERMINALS, type SimSummary, type Injection } from './simulator.ts'
import { simulateProcesses, PROCESS_FAULT_KINDS, PROCESS_INJECTIONS, type ProcessSimSummary, type ProcessInjection } from './processes.ts'
import { INVARIANTS, formatViolation } from './invariants.ts'
import { MUTATIONS, runMutations, formatMutationTable } from './mutations.ts'
import { fileURLToPath } from 'node:url'

/** Upper bounds, so a typo cannot ask for a run that never ends. */
const MAX_PEERS = 500
const MAX_FAULTS = 100_000
const MAX_STEPS = 1_000_000
/** Default real-time bound of a run (seconds). */
const DEFAULT_MAX_SECONDS = 1800
const INJECTIONS: readonly Injection[] = ['double-print', 'drop-acked-job', 'drop-usage', 'diverge', 'miss-duplicates']
/** Escrow bugs planted at run time (need --credit). */
const CREDIT_INJECTIONS = ['credit-overspend'] as const
type CreditInjection = typeof CREDIT_INJECTIONS[number]
/** Upper bound of --peers with --processes: each process needs ~100 MB and seconds of CPU to start. */
const MAX_PROCESS_PEERS = 16
/** Defaults with --processes: a run of about a minute on a small machine. */
const PROCESS_DEFAULTS = { peers: 4, steps: 30, faults: 8 } as const

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
    ['peers', `${s.peers.central + s.peers.sites + s.peers.terminals + s.peers.clients} (1 central, ${s.peers.sites} sites, ${s.peers.terminals} terminals${s.peers.clients > 0 ? `, ${s.peers.clients} clients` : ''})`],
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
    ['releases at terminals (granted)', String(s.releases.atTerminals)],
    ['offline releases (jobs printed twice, detected)', `${s.releases.offline} (${s.releases.duplicates})`],
    ['retention sweeps', String(s.sweeps)],
    ...(s.peers.clients > 0
      ? [
          ['client jobs (acknowledged)', `${s.clients.jobs} (${s.clients.acknowledged})`],
          ['client jobs released at a site or terminal (printed there)', `${s.clients.releasedElsewhere} (${s.clients.printedElsewhere})`],
          ['client jobs printed on fallback printers (asked on the page)', `${s.clients.fallbackPrinted} (${s.clients.printNow})`],
          ['client jobs printed isolated (still held: fallback missed)', `${s.clients.isolated} (${s.clients.fallbackMissed})`]
        ] satisfies Array<[string, string]>
      : []),
    ...(s.deviceSpooling.jobs.direct + s.deviceSpooling.jobs.hold + s.deviceSpooling.jobs.pull + s.deviceSpooling.jobs.delegated > 0
      ? [
          ['device-spooled jobs: direct / hold / pull / delegated', `${s.deviceSpooling.jobs.direct} / ${s.deviceSpooling.jobs.hold} / ${s.deviceSpooling.jobs.pull} / ${s.deviceSpooling.jobs.delegated}`],
          ['  printed (each once)', `${s.deviceSpooling.printed.direct} / ${s.deviceSpooling.printed.hold} / ${s.deviceSpooling.printed.pull} / ${s.deviceSpooling.printed.delegated}`],
          ['device-spooled releases at the terminal / elsewhere (by delegates; at a terminal, site down)', `${s.deviceSpooling.releasedAtTerminal} / ${s.deviceSpooling.releasedElsewhere} (${s.deviceSpooling.byDelegates}; ${s.deviceSpooling.whileSiteDown})`],
          ['device-spooled jobs printed elsewhere (Direct held again; offline)', `${s.deviceSpooling.printedElsewhere} (${s.deviceSpooling.directElsewhere}; ${s.deviceSpooling.offline})`],
          ['forbidden releases refused; partner sites refused', `${s.deviceSpooling.forbiddenRefused}; ${s.deviceSpooling.partnerRefused}`],
          ['holding terminal crashed mid-release', String(s.deviceSpooling.holderCrashes)]
        ] satisfies Array<[string, string]>
      : []),
    ...(s.credit !== undefined
      ? [
          ['credit: top-ups (credited); spent', `${s.credit.topUps} (${s.credit.credited}); ${s.credit.spent}`],
          ['credit: reservations (refused; refused although covered in the mesh)', `${s.credit.reserves} (${s.credit.refused}; ${s.credit.refusedCovered})`],
          ['credit: unavailability (refused although covered / reservations)', `${(s.credit.unavailability * 100).toFixed(2)} %`],
          ['  covered: beyond the relays / cut off or down / reachable (at the home site)', `${s.credit.coveredWhy.notLinked} / ${s.credit.coveredWhy.cut} / ${s.credit.coveredWhy.reachable} (${s.credit.coveredWhy.atHome})`],
          ['credit: printed in monochrome; prefetches at terminals; forged mints', `${s.credit.monochrome}; ${s.credit.prefetches}; ${s.credit.forgedMints}`],
          ...(s.credit.probes > 0 ? [['credit: probes of two reservations at once (both reserved)', `${s.credit.probes} (${s.credit.probesBothReserved})`] as [string, string]] : []),
          ['credit: share requests (lost; duplicated)', `${s.credit.requests} (${s.credit.lost}; ${s.credit.duplicated})`]
        ] satisfies Array<[string, string]>
      : []),
    ...FAULT_KINDS.filter((k) => !(DISK_FAULT_KINDS as readonly string[]).includes(k) || s.faults[k] > 0).map((k): [string, string] => [`faults: ${k}`, String(s.faults[k])]),
    ['envelopes in / out', `${s.messages.envelopesIn} / ${s.messages.envelopesOut}`],
    ['convergence after final heal', s.convergence.converged
      ? `${s.convergence.virtualMs} ms virtual, ${s.convergence.realMs} ms real, ${s.convergence.rounds} rounds`
      : `NOT converged after ${s.convergence.rounds} rounds`],
    ...(s.panel !== undefined
      ? [
          ['panel logins (accepted; at a terminal working offline)', `${s.panel.logins} (${s.panel.accepted}; ${s.panel.offline})`],
          ['central: PIN changes; users disabled or enabled', `${s.panel.pinChanges}; ${s.panel.disables}`],
          ['copy sessions (pages copied; closed at a restart; a print misattributed)', `${s.panel.sessions} (${s.panel.pagesCopied}; ${s.panel.closedAtRestart}; ${s.panel.misattributed})`]
        ] satisfies Array<[string, string]>
      : []),
    ...INVARIANTS.map((i): [string, string] => [`invariant ${i.id}: ${i.name}`, i.id === 5 && s.credit === undefined ? 'n/a (no --credit)' : i.id === 6 && s.panel === undefined ? 'n/a (no --panel)' : s.invariants[i.id]]),
    ['fingerprint', s.fingerprint.slice(0, 16)],
    ['real time', `${(s.realMs / 1000).toFixed(1)} s`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')
}

/** The multi-process summary as an aligned two-column table. */
function formatProcessSummary (s: ProcessSimSummary): string {
  const rows: Array<[string, string]> = [
    ['mode', 'processes (real printmesh processes on loopback)'],
    ['seed', `${s.seed} (choices only: process timing makes runs not exactly replayable)`],
    ['peers', `${s.peers.central + s.peers.sites} (1 central, ${s.peers.sites} sites)`],
    ['steps', String(s.steps)],
    ['jobs sent', String(s.jobs.sent)],
    ['jobs acknowledged', String(s.jobs.acknowledged)],
    ['jobs printed (found in printer folders)', String(s.jobs.printed)],
    ['jobs assumed printed (file printer killed mid-write)', String(s.jobs.assumedPrinted)],
    ['jobs deleted', String(s.jobs.deleted)],
    ['jobs failed', String(s.jobs.failed)],
    ['jobs expired', String(s.jobs.expired)],
    ['jobs still held', String(s.jobs.held)],
    ['releases (granted / refused; at another site)', `${s.releases.attempted} (${s.releases.granted} / ${s.releases.refused}; ${s.releases.roaming})`],
    ...PROCESS_FAULT_KINDS.map((k): [string, string] => [`faults: ${k}`, String(s.faults[k])]),
    ['processes started (incl. restarts)', String(s.processes.started)],
    ['convergence after final heal', s.convergence.converged ? `${s.convergence.realMs} ms` : `NOT converged after ${s.convergence.realMs} ms`],
    ...INVARIANTS.filter((i) => i.id <= 4).map((i): [string, string] => [`invariant ${i.id}: ${i.name}`, s.invariants[i.id]]),
    ['real time', `${(s.realMs / 1000).toFixed(1)} s`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')
}

/** A usage error found after parsing (a flag that does not fit the chosen mode). */
class UsageError extends Error {
  constructor (message: string) { super(message); this.name = 'UsageError' }
}

/** The run was interrupted (Ctrl-C) before it finished. */
class RunInterruptedError extends Error {
  constructor () { super('interrupted: processes stopped, temp folder removed'); this.name = 'RunInterruptedError' }
}

async function main (): Promise<number> {
  if (process.argv[2] === 'mutations') return await mutationsMain(process.argv.slice(3))
  const program = new Command()
    .name('npm run sim --')
    .description('Seeded chaos simulation of a printmesh mesh: workload, faults, invariant checks (DESIGN.md "Jobs" 1-4; 5, credit, with --credit); in-process by default, real processes with --processes.')
    .option('--processes', `multi-process mode: real printmesh processes on 127.0.0.1 (1 central, the rest sites with file printers), kill -9 and restarts, partitions through /api/mesh/blocked; uses --peers (default ${PROCESS_DEFAULTS.peers}), --steps (default ${PROCESS_DEFAULTS.steps}), --faults (default ${PROCESS_DEFAULTS.faults}), --seed, --max-seconds, --json, --data-dir, --inject ${PROCESS_INJECTIONS.join('|')}; the seed fixes choices, not process timing`)
    .option('--peers <n>', 'peers in all: 1 central, the terminals, the rest sites', bounded('--peers', 3, MAX_PEERS), 10)
    .option('--faults <n>', 'fault events spread over the run (crash, partition, loss, duplication, reordering, delay, clock skew; with --processes: kill -9, kill -9 right after an acknowledged print or a release, partition)', bounded('--faults', 0, MAX_FAULTS), 100)
    .option('--seed <n>', 'seed of every random decision; the same seed replays the same run (in-process mode)', bounded('--seed', 0, 2 ** 31 - 1), 1)
    .option('--steps <n>', 'workload and fault steps (default: 2 × faults + 100)', bounded('--steps', 1, MAX_STEPS))
    .option('--terminals <n>', 'terminal peers among --peers', bounded('--terminals', 0, MAX_PEERS), DEFAULT_TERMINALS)
    .option('--clients <n>', 'workstation clients beyond --peers (client spooling, fallback printing), one site\'s each, round robin', bounded('--clients', 0, MAX_PEERS), 0)
    .option('--device-spooling', 'device spooling at terminals (issue 13): terminals pair up per site and take jobs into their Direct, Hold, Pull and Delegated queues, released at the terminal, elsewhere through its grant and by delegates; default off')
    .option('--credit', 'credit as escrow (issue 20): prices and an enforced credit policy, users with home sites and top-ups, shares asked between peers over the faulty network, prints reserving and settling credit; checks invariant 5 and prints the availability figure; default off')
    .option('--credit-probes', 'with --credit: now and then two prints of one user reserved at one peer in the same turn, checked, given back (the credit mutations\' runs)')
    .option('--panel', 'terminals\' panels (issue 12): users log in at terminals by PIN, card or PIN alone, whatever the terminal reaches, and copy (copy sessions on simulated device counters); central changes PINs and disables users; checks invariant 6 and the copies in invariant 3; not with --credit; default off')
    .option('--disk-faults', 'adds the disk faults (issue 18), each on one peer\'s database for some steps while it runs on: disk-full (every write fails with ENOSPC), io-error (a few writes fail with EIO), slow-disk (writes complete later on the virtual clock; a crash loses those not completed); default off')
    .option('--credit-standard', 'with --credit: the standard workload of the availability figure — users print at their home site (90 %), one site and its terminals cut off for two hours a third of the way in; --faults defaults to 0')
    .option('--json <file>', 'also write the summary (with violations) as JSON to this file')
    .option('--data-dir <dir>', 'parent folder of the run\'s temp folder (default /dev/shm, else the OS temp dir; with --processes the OS temp dir); removed at the end')
    .option('--max-seconds <n>', 'real-time bound of the run', bounded('--max-seconds', 1, 86_400), DEFAULT_MAX_SECONDS)
    .option('--inject <bug>', `deliberately break something to see the checks fail: ${INJECTIONS.join(', ')}; with --credit: ${CREDIT_INJECTIONS.join(', ')} (peers reserve whatever a job costs, without checking their share); with --processes: ${PROCESS_INJECTIONS.join(', ')} (a site holding acknowledged jobs loses its data folder and rejoins)`, (v: string) => {
      if (!INJECTIONS.includes(v as Injection) && !PROCESS_INJECTIONS.includes(v as ProcessInjection) && !CREDIT_INJECTIONS.includes(v as CreditInjection)) throw new InvalidArgumentError(`--inject must be one of ${[...INJECTIONS, ...CREDIT_INJECTIONS, ...PROCESS_INJECTIONS].join(', ')}`)
      return v as Injection | ProcessInjection | CreditInjection
    })
    .option('--no-roaming', 'release jobs only at the site holding them (by default half the releases happen at another site: under the holder\'s grant, or offline from a prefetched copy)')
    .option('--strict-clock', 'hold and retention must last their length by the true clock even where the holder restarted on a skewed clock (off: what the skew at its starts explains is tolerated; a clock skewed while it runs never is)')
    .option('--quiet', 'no progress lines on stderr')
  program.parse()
  const o = program.opts<{ processes?: boolean, peers: number, faults: number, seed: number, steps?: number, terminals: number, clients: number, deviceSpooling?: boolean, credit?: boolean, creditProbes?: boolean, creditStandard?: boolean, panel?: boolean, diskFaults?: boolean, json?: string, dataDir?: string, maxSeconds: number, inject?: Injection | ProcessInjection | CreditInjection, quiet?: boolean, roaming?: boolean, strictClock?: boolean }>()
  const progress = o.quiet === true ? {} : { progress: (line: string) => process.stderr.write(`[sim] ${line}\n`) }
  if (o.processes === true) {
    const given = (flag: string): boolean => program.getOptionValueSource(flag) !== 'default' && program.getOptionValueSource(flag) !== undefined
    if (given('terminals')) throw new UsageError('--terminals does not apply to --processes (no terminal processes yet)')
    if (given('clients')) throw new UsageError('--clients does not apply to --processes (no client processes yet)')
    if (given('deviceSpooling')) throw new UsageError('--device-spooling does not apply to --processes (no terminal processes yet)')
    if (given('credit')) throw new UsageError('--credit does not apply to --processes (in-process only for now)')
    if (given('panel')) throw new UsageError('--panel does not apply to --processes (no terminal processes yet)')
    if (given('diskFaults')) throw new UsageError('--disk-faults does not apply to --processes (in-process only for now)')
    if (given('roaming')) throw new UsageError('--no-roaming does not apply to --processes (every site roams with every other there)')
    if (o.inject !== undefined && !PROCESS_INJECTIONS.includes(o.inject as ProcessInjection)) throw new UsageError(`with --processes, --inject must be one of ${PROCESS_INJECTIONS.join(', ')}`)
    const peers = given('peers') ? o.peers : PROCESS_DEFAULTS.peers
    if (peers > MAX_PROCESS_PEERS) throw new UsageError(`with --processes, --peers must be at most ${MAX_PROCESS_PEERS}`)
    // Ctrl-C ends the run at the next step; the run then stops its processes and removes its folder
    const interrupted = new AbortController()
    process.once('SIGINT', () => interrupted.abort(new RunInterruptedError()))
    const summary = await simulateProcesses({
      signal: interrupted.signal,
      seed: o.seed,
      sites: peers - 1,
      faults: given('faults') ? o.faults : PROCESS_DEFAULTS.faults,
      steps: o.steps ?? PROCESS_DEFAULTS.steps,
      maxSeconds: o.maxSeconds,
      ...(o.dataDir !== undefined ? { dataDir: o.dataDir } : {}),
      ...(o.inject !== undefined ? { inject: o.inject as ProcessInjection } : {}),
      ...progress
    })
    process.stdout.write(formatProcessSummary(summary) + '\n')
    for (const v of summary.violations) process.stdout.write('\n' + formatViolation(v) + '\n')
    if (o.json !== undefined) await writeFile(o.json, JSON.stringify(summary, null, 2) + '\n')
    return summary.violations.length > 0 ? 1 : 0
  }
  const creditInject = CREDIT_INJECTIONS.includes(o.inject as CreditInjection)
  if (creditInject && o.credit !== true) throw new UsageError(`--inject ${o.inject} needs --credit`)
  if (o.inject !== undefined && !creditInject && !INJECTIONS.includes(o.inject as Injection)) throw new UsageError(`--inject ${o.inject} needs --processes`)
  if (o.creditStandard === true && o.credit !== true) throw new UsageError('--credit-standard needs --credit')
  if (o.creditProbes === true && o.credit !== true) throw new UsageError('--credit-probes needs --credit')
  if (o.panel === true && o.credit === true) throw new UsageError('--panel and --credit cannot be combined yet (copies would need the credit service\'s copy allowance)')
  const faultsGiven = program.getOptionValueSource('faults') !== 'default' && program.getOptionValueSource('faults') !== undefined
  const faults = o.creditStandard === true && !faultsGiven ? 0 : o.faults
  const terminals = Math.min(o.terminals, Math.max(0, o.peers - 3))
  const summary = await simulate({
    seed: o.seed,
    peers: o.peers,
    faults,
    steps: o.steps ?? (o.creditStandard === true ? 300 : o.faults * 2 + 100),
    terminals,
    ...(o.clients > 0 ? { clients: o.clients } : {}),
    ...(o.deviceSpooling === true ? { deviceSpooling: true } : {}),
    ...(o.credit === true ? { credit: true } : {}),
    ...(o.creditStandard === true ? { creditStandard: true } : {}),
    ...(o.creditProbes === true ? { creditProbes: true } : {}),
    ...(o.panel === true ? { panel: true } : {}),
    ...(o.diskFaults === true ? { diskFaults: true } : {}),
    ...(creditInject ? { creditInject: 'overspend' as const } : {}),
    maxSeconds: o.maxSeconds,
    ...(o.dataDir !== undefined ? { dataDir: o.dataDir } : {}),
    ...(o.inject !== undefined && !creditInject ? { inject: o.inject as Injection } : {}),
    roaming: o.roaming !== false,
    ...(o.strictClock === true ? { strictClock: true } : {}),
    ...progress
  })
  process.stdout.write(formatSummary(summary) + '\n')
  for (const v of summary.violations) process.stdout.write('\n' + formatViolation(v) + '\n')
  if (o.json !== undefined) await writeFile(o.json, JSON.stringify(summary, null, 2) + '\n')
  return summary.violations.length > 0 ? 1 : 0
}

/** `npm run sim -- mutations`: every planted bug against a set of seeds (simulations/mutations.ts). */
async function mutationsMain (argv: string[]): Promise<number> {
  const program = new Command()
    .name('npm run sim -- mutations')
    .description('Runs every mutation of simulations/mutations.ts (a realistic bug planted in a scratch copy of the product) against the seeds and prints which were caught; exit 1 when one survived or is stale.')
    .option('--seeds <range>', 'seeds, e.g. 1-5 or 1,3,7', '1-3')
    .option('--only <names>', 'comma-separated mutation names (default: all)')
    .option('--peers <n>', 'peers of each run', bounded('--peers', 3, MAX_PEERS), 8)
    .option('--steps <n>', 'steps of each run', bounded('--steps', 1, MAX_STEPS), 300)
    .option('--faults <n>', 'faults of each run', bounded('--faults', 0, MAX_FAULTS), 120)
    .option('--terminals <n>', 'terminals of each run', bounded('--terminals', 0, MAX_PEERS), DEFAULT_TERMINALS)
    .option('--max-seconds <n>', 'real-time bound of each run', bounded('--max-seconds', 1, 86_400), 120)
    .option('--json <file>', 'also write the results as JSON to this file')
    .option('--device-spooling', 'every run with device spooling at terminals (device mutations always have it)')
    .option('--disk-faults', 'every run with the disk faults too (disk-full, io-error, slow-disk)')
    .option('--list', 'list the mutations and exit')
  program.parse(argv, { from: 'user' })
  const o = program.opts<{ seeds: string, only?: string, peers: number, steps: number, faults: number, terminals: number, maxSeconds: number, json?: string, list?: boolean, deviceSpooling?: boolean, diskFaults?: boolean }>()
  if (o.list === true) {
    for (const m of MUTATIONS) process.stdout.write(`${m.name} (${m.area}): ${m.bug}\n`)
    return 0
  }
  const seeds = parseSeeds(o.seeds)
  const run = await runMutations({
    root: fileURLToPath(new URL('..', import.meta.url)),
    seeds,
    options: { peers: o.peers, steps: o.steps, faults: o.faults, terminals: Math.min(o.terminals, Math.max(0, o.peers - 3)), maxSeconds: o.maxSeconds, ...(o.deviceSpooling === true ? { deviceSpooling: true } : {}), ...(o.diskFaults === true ? { diskFaults: true } : {}) },
    ...(o.only !== undefined ? { only: o.only.split(',').map((s) => s.trim()) } : {}),
    onLine: (line) => process.stderr.write(`[mutations] ${line}\n`),
    onResult: (r) => process.stderr.write(`[mutations] ${r.name}: ${r.status}${r.seed !== undefined ? ` at seed ${r.seed}` : ''} (${r.seconds} s)${r.message !== undefined ? ` — ${r.message.slice(0, 160)}` : ''}\n`)
  })
  process.stdout.write(formatMutationTable(run) + '\n')
  if (o.json !== undefined) await writeFile(o.json, JSON.stringify(run, null, 2) + '\n')
  return run.results.every((r) => r.status === 'caught') ? 0 : 1
}

/** `1-5` or `1,3,7` (or both: `1-3,9`). */
function parseSeeds (text: string): number[] {
  const seeds: number[] = []
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part)
    if (m === null) throw new UsageError(`--seeds: ${part} is not a seed or a range`)
    const from = Number(m[1])
    const to = m[2] !== undefined ? Number(m[2]) : from
    if (to < from || to - from > 1000) throw new UsageError(`--seeds: bad range ${part}`)
    for (let s = from; s <= to; s++) seeds.push(s)
  }
  return seeds
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`sim: ${err instanceof UsageError || err instanceof RunInterruptedError ? err.message : err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 2
})
