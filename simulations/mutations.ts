/**
 * The mutation set (issue 18 item 4): realistic bugs planted in the product, one at a time,
 * to measure what the simulator's invariants catch. A mutation is a text patch (an exact
 * snippet of a product file and what replaces it), applied to a scratch copy of the
 * checkout, never to the working tree: the product carries no switches and pays nothing.
 * A snippet that no longer occurs exactly once (the code moved on) is reported `stale`, to
 * be updated here. `runMutations` runs every mutation against a set of seeds in a child
 * process in the scratch copy (simulations/mutant-child.ts) and reports, per mutation, the
 * first seed that caught it (a violation, or a run that failed outright) or that none did.
 */
import { spawn } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

/** What the product areas are. */
export type MutationArea = 'release' | 'arbitration' | 'charging' | 'retention' | 'spool' | 'store' | 'sync' | 'roaming' | 'membership' | 'client' | 'device' | 'credit' | 'panel'

export interface Mutation {
  name: string
  area: MutationArea
  /** The bug, as a user or an operator would describe what goes wrong. */
  bug: string
  /** Product file (relative to the checkout) and the exact snippet replaced. */
  file: string
  find: string
  replace: string
  /** What its runs need beyond the run's options (a client path needs clients): its seeds get their own baseline. */
  options?: Partial<ChildOptions>
}

/** Workstation clients a client mutation's runs get. */
const CLIENT_RUNS: Partial<ChildOptions> = { clients: 3 }
/** Device spooling a device mutation's runs get (jobs in terminals' Direct, Hold, Pull and Delegated queues). */
const DEVICE_RUNS: Partial<ChildOptions> = { deviceSpooling: true }
/** Credit as escrow a credit mutation's runs get (prices, an enforced policy, top-ups, shares between peers; invariant 5). */
const CREDIT_RUNS: Partial<ChildOptions> = { credit: true, creditProbes: true }
/** Disk faults a mutation that needs a slow (or failing) disk gets: disk-full, io-error and slow-disk. */
const DISK_RUNS: Partial<ChildOptions> = { diskFaults: true }
/** Terminals' panels a panel mutation's runs get (logins by PIN, card and PIN alone, copy sessions; invariant 6). */
const PANEL_RUNS: Partial<ChildOptions> = { panel: true }

export const MUTATIONS: readonly Mutation[] = [
  // ---- release ----
  {
    name: 'printing-not-durable-first', area: 'release', bug: 'the printer gets the job before `printing` is durable (a kill -9 after acceptance holds it again: printed twice)',
    file: 'devices/jobs/print-engine.ts', find: '        await target.markPrinting()\n', replace: '        void target.markPrinting()\n'
  },
  {
    name: 'recover-printing-as-held', area: 'release', bug: 'a restart holds a job its printer had again instead of asking the printer',
    file: 'devices/jobs/service.ts', find: '        // the printer says how it ended (in the background: a printer may be slow to answer)\n        this.askPrinterAbout(doc, job)',
    replace: '        await this.move(doc, job.id, \'held\', { kind: \'local\', service: \'jobs\' }, { reason: \'release-interrupted\' })'
  },
  {
    name: 'copies-not-sent', area: 'release', bug: 'the printer is sent one copy whatever the job asked',
    file: 'devices/jobs/usage.ts', find: '    copies: job.copies,\n    sides: job.sides,', replace: '    copies: 1,\n    sides: job.sides,'
  },
  {
    name: 'sides-not-sent', area: 'release', bug: 'the printer is sent every job one-sided',
    file: 'devices/jobs/usage.ts', find: '    copies: job.copies,\n    sides: job.sides,', replace: '    copies: job.copies,\n    sides: \'one-sided\','
  },
  {
    name: 'holder-misses-granted-print', area: 'release', bug: 'the holder ignores that a granted release printed: the job stays printing there',
    file: 'devices/jobs/service.ts', find: '      } else if (rel.state === \'printed\') {\n        await this.c.store.transact(doc, origin, (d) => {',
    replace: '      } else if (rel.state === \'printed\' && rel.user === \'nobody\') {\n        await this.c.store.transact(doc, origin, (d) => {'
  },
  // ---- arbitration ----
  {
    name: 'commit-after-grant-expiry', area: 'arbitration', bug: 'the holder commits a release whose grant already expired (the job may have been released again meanwhile)',
    file: 'devices/jobs/service.ts', find: '    if (job.grant.expiresAt <= this.now()) throw new InvalidJobStateError(`the release grant of job ${job.ippId} expired`)\n', replace: ''
  },
  {
    name: 'grant-expires-at-every-sweep', area: 'arbitration', bug: 'the sweep takes back every grant, expired or not',
    file: 'devices/jobs/service.ts', find: 'job.grant.printer !== HANDOVER_PRINTER && job.grant.expiresAt <= now', replace: 'job.grant.printer !== HANDOVER_PRINTER'
  },
  {
    name: 'roaming-ignores-refused-commit', area: 'arbitration', bug: 'a releasing site prints although the holder refused its commit',
    file: 'devices/jobs/roaming.ts', find: '      if (!committed.ok) throw new ReleaseAbandonedError', replace: '      if (!committed.ok && committed.message === \'\') throw new ReleaseAbandonedError'
  },
  {
    name: 'roaming-grant-outlives-ttl', area: 'arbitration', bug: 'a releasing site keeps fetching and commits long after the grant\'s time ran out',
    file: 'devices/jobs/roaming.ts', find: 'started + reply.ttlMs - GRANT_SAFETY_MS', replace: 'started + reply.ttlMs * 10'
  },
  // ---- charging ----
  {
    name: 'charge-ignores-copies', area: 'charging', bug: 'pages are charged for one copy whatever the copies',
    file: 'devices/jobs/usage.ts', find: 'return { pages: job.pages * job.copies,', replace: 'return { pages: job.pages,'
  },
  {
    name: 'colour-not-per-copy', area: 'charging', bug: 'colour pages are charged for one copy',
    file: 'devices/jobs/usage.ts', find: 'colorPages: (job.colorPages ?? 0) * job.copies,', replace: 'colorPages: job.colorPages ?? 0,'
  },
  {
    name: 'duplex-ignored-in-sheets', area: 'charging', bug: 'sheets are counted as if every job were one-sided',
    file: 'devices/jobs/usage.ts', find: '  const duplex = job.sides !== \'one-sided\'\n  if (job.pages !== undefined) {', replace: '  const duplex = false\n  if (job.pages !== undefined) {'
  },
  {
    name: 'sheets-round-down', area: 'charging', bug: 'an odd page count printed duplex loses its last sheet',
    file: 'crdt/accounting.ts', find: 'return Math.ceil(pages / (duplex ? 2 : 1)) * copies', replace: 'return Math.floor(pages / (duplex ? 2 : 1)) * copies'
  },
  {
    name: 'usage-id-per-printer', area: 'charging', bug: 'the usage id names the printer, so the same print recorded twice is two charges',
    file: 'devices/jobs/usage.ts', find: '    id: usageId(job),\n    kind: \'print\',', replace: '    id: `${usageId(job)}@${at.printer}`,\n    kind: \'print\','
  },
  {
    name: 'charged-check-this-period-only', area: 'charging', bug: 'after a restart across a month boundary a print charged last month is charged again',
    file: 'devices/jobs/print-engine.ts', find: 'return await isCharged(this.c.store, this.init.peer, target.job, since) || await isCharged(',
    replace: 'return since < 0 || await isCharged('
  },
  {
    name: 'charge-at-acceptance', area: 'charging', bug: 'a job is charged when the printer accepts it, so a jam after acceptance is still charged',
    file: 'devices/jobs/print-engine.ts', find: '              leave?.()\n', replace: '              leave?.()\n              void this.charge(target)\n'
  },
  {
    name: 'assumed-print-not-charged', area: 'charging', bug: 'a job counted as printed after a restart is not charged',
    file: 'devices/jobs/print-engine.ts', find: '    if (!charged) await this.charge(target)\n', replace: ''
  },
  {
    name: 'report-counts-duplicates', area: 'charging', bug: 'usage reports count a job printed offline at two sites twice',
    file: 'crdt/accounting.ts', find: '  for (const r of uniqueUsage(records)) {', replace: '  for (const r of records) {'
  },
  // ---- retention ----
  {
    name: 'retention-from-creation', area: 'retention', bug: 'finished jobs are purged their retention after creation, not after they finished',
    file: 'devices/jobs/service.ts', find: 'this.elapsedSince(job.id, job.completedAt ?? job.updatedAt, now, true) >= this.retentionMs', replace: 'this.elapsedSince(job.id, job.createdAt, now) >= this.retentionMs'
  },
  {
    name: 'hold-in-the-wrong-unit', area: 'retention', bug: 'the hold is read as if given in a smaller unit: held jobs expire far too early',
    file: 'devices/jobs/service.ts', find: 'this.elapsedSince(job.id, job.createdAt, now) >= this.holdMs)', replace: 'this.elapsedSince(job.id, job.createdAt, now) >= this.holdMs / 4)'
  },
  {
    name: 'hold-on-wall-clock-only', area: 'retention', bug: 'holds and retention count on the wall clock alone, so a clock set forward while the site runs expires and purges jobs early',
    file: 'devices/jobs/service.ts', find: '    return seen === undefined || this.monotonic === undefined ? wall : Math.min(', replace: '    return seen !== null ? wall : Math.min('
  },
  // ---- spool ----
  {
    name: 'spool-remove-shard', area: 'spool', bug: 'removing a document removes its whole shard folder, with other jobs\' documents',
    file: 'devices/spool.ts', find: '    await rm(this.path(sha256), { force: true })', replace: '    await rm(join(this.dir, sha256.slice(0, 2)), { recursive: true, force: true })'
  },
  {
    name: 'purge-removes-bytes-in-use', area: 'spool', bug: 'purging a finished job also removes the bytes of every job not held (releasing or printing ones too)',
    file: 'devices/jobs/service.ts', find: '      for (const { job } of this.all()) if (job.sha256 !== undefined) purgedBytes.delete(job.sha256)\n',
    replace: '      for (const { job } of this.all()) if (job.sha256 !== undefined && job.state !== \'held\') purgedBytes.add(job.sha256)\n'
  },
  // ---- store ----
  {
    name: 'store-gap-counted-held', area: 'store', bug: 'an envelope that arrives after a gap moves the log vector past the gap, so the missing one is never asked for',
    file: 'crdt/store.ts', find: '    } else if (e.seq === have + 1) {', replace: '    } else if (e.seq >= have + 1) {'
  },
  {
    name: 'store-seq-ignores-held-ahead', area: 'store', bug: 'the next sequence number ignores own envelopes held out of order (a number peers hold is reused: a forked log)',
    file: 'crdt/store.ts', find: 'const seq = Math.max(entry.vector.get(this.self) ?? 0, ...(entry.ahead.get(this.self) ?? [])) + 1', replace: 'const seq = (entry.vector.get(this.self) ?? 0) + 1'
  },
  {
    name: 'own-envelope-sent-before-durable', area: 'store', bug: 'a peer sends its own change to its peers as soon as it is sealed, before it is on disk: a kill -9 while a slow disk still writes it loses it at home but not at the peers, and the restarted peer gives its number to another change (a forked log)',
    file: 'crdt/store.ts',
    find: "    const durable = entry.durable.then(async () => {\n      await appended\n      if (own && entry.unstored !== undefined) throw entry.unstored // on disk, but maybe built on a change that is not\n      entry.entries++\n      entry.sinceSnapshot += bytes.byteLength\n      this.emit('entry', name, bytes, envelope, origin)\n    })",
    replace: "    if (own) this.emit('entry', name, bytes, envelope, origin)\n    const durable = entry.durable.then(async () => {\n      await appended\n      if (own && entry.unstored !== undefined) throw entry.unstored\n      entry.entries++\n      entry.sinceSnapshot += bytes.byteLength\n      if (!own) this.emit('entry', name, bytes, envelope, origin)\n    })",
    options: DISK_RUNS
  },
  // ---- sync ----
  {
    name: 'sync-no-relay', area: 'sync', bug: 'a peer never passes on envelopes it received, only its own',
    file: 'crdt/sync.ts', find: '      if (peer === from || !this.c.membership.canRead(peer, name)) continue\n      this.sendEnvelopes(peer, [bytes])',
    replace: '      if (from !== undefined || !this.c.membership.canRead(peer, name)) continue\n      this.sendEnvelopes(peer, [bytes])'
  },
  {
    name: 'sync-hello-skips-first-doc', area: 'sync', bug: 'HELLO leaves out one document, so anti-entropy never repairs it',
    file: 'crdt/sync.ts', find: '    const names = this.c.store.openNames().filter((n) => this.c.membership.canRead(peer, n))\n    encoding.writeVarUint(enc, names.length)',
    replace: '    const names = this.c.store.openNames().filter((n) => this.c.membership.canRead(peer, n)).slice(1)\n    encoding.writeVarUint(enc, names.length)'
  },
  // ---- membership ----
  {
    name: 'membership-terminal-reads-all-jobs', area: 'membership', bug: 'a terminal receives every site\'s jobs and accounting, not only its own site\'s',
    file: 'crdt/membership.ts', find: '        return name.peer === peer || (info.site !== undefined && this.info(name.peer ?? \'\')?.site === info.site)',
    replace: '        return name.peer === peer || this.info(name.peer ?? \'\') !== undefined'
  },
  // ---- roaming ----
  {
    name: 'offline-ignores-release-records', area: 'roaming', bug: 'an offline release ignores another site\'s release record it holds (the bug issue 18 found)',
    file: 'devices/jobs/roaming.ts', find: '    if (elsewhere !== undefined) throw new InvalidJobStateError(', replace: '    if (elsewhere !== undefined && elsewhere.site === \'\') throw new InvalidJobStateError('
  },
  {
    name: 'offline-reprints-own-release', area: 'roaming', bug: 'a site that printed a job offline prints it offline again when asked twice (found by the retry workload)',
    file: 'devices/jobs/roaming.ts', find: '    if (this.releaseOf(job.id)?.state === \'printed\') throw new InvalidJobStateError(', replace: '    if (this.releaseOf(job.id)?.state === \'printed\' && job.site === \'\') throw new InvalidJobStateError('
  },
  {
    name: 'offline-ignores-holder-state', area: 'roaming', bug: 'an offline release prints a job the holder\'s record shows released already',
    file: 'devices/jobs/roaming.ts', find: '!this.prefetched.has(sha) || job.state !== \'held\') throw cause', replace: '!this.prefetched.has(sha) || TERMINAL_STATES.has(job.state)) throw cause'
  },
  {
    name: 'holder-misses-offline-duplicate', area: 'roaming', bug: 'the holder does not record a second print made offline elsewhere',
    file: 'devices/jobs/service.ts', find: '} else if (job.state === \'printed\' && printedHere !== peer && !(job.duplicates ?? []).some((d) => d.peer === peer)) {',
    replace: '} else if (job.state === \'printed\' && printedHere !== peer && (job.duplicates ?? []).some((d) => d.peer === peer)) {'
  },
  {
    name: 'roaming-recover-printing-returned', area: 'roaming', bug: 'a releasing site restarted while its printer had a partner\'s job hands the job back instead of counting it printed',
    file: 'devices/jobs/roaming.ts', find: '          await this.engine.assumePrinted(this.target(rel), \'this site restarted while the printer had the job; counted as printed\')',
    replace: '          await this.moveRelease(rel.jobId, \'returned\', { reason: \'release-interrupted\' })'
  },
  // ---- client (workstation clients: client spooling, fallback printing) ----
  {
    name: 'workstation-grants-printing-job', area: 'client', bug: 'a workstation grants a release at a terminal or the site of a job its fallback printer is printing (a device\'s own print taken as still releasable): printed twice',
    file: 'devices/jobs/service.ts',
    find: '    if (job.state !== \'held\') throw new InvalidJobStateError(`job ${job.ippId} is ${job.state}, not held`)\n    if (job.sha256 === undefined) throw new InvalidJobStateError(`job ${job.ippId} has no document`)\n',
    replace: '    if (job.state !== \'held\' && !(job.heldAt !== undefined && job.state === \'printing\')) throw new InvalidJobStateError(`job ${job.ippId} is ${job.state}, not held`)\n    if (job.sha256 === undefined) throw new InvalidJobStateError(`job ${job.ippId} has no document`)\n',
    options: CLIENT_RUNS
  },
  {
    name: 'workstation-usage-id', area: 'client', bug: 'a workstation\'s job is charged under a usage id naming the workstation, not the job\'s one usage id (reports count it apart from the same print recorded elsewhere)',
    file: 'devices/jobs/usage.ts', find: '  return `${job.id}/print`', replace: '  return `${job.id}/${(job as { heldAt?: string }).heldAt ?? \'print\'}`',
    options: CLIENT_RUNS
  },
  // ---- device (device spooling at terminals: Direct, Hold, Pull, Delegated) ----
  {
    name: 'hold-listed-elsewhere', area: 'device', bug: 'a terminal\'s Hold job is listed at the other peers of its site (and partners), as a Pull job would be',
    file: 'devices/jobs/roaming.ts', find: '      for (const job of jobsFamily.listJobs(doc)) if (job.pinned !== true) yield { holder: parsed.peer, job }',
    replace: '      for (const job of jobsFamily.listJobs(doc)) yield { holder: parsed.peer, job }',
    options: DEVICE_RUNS
  },
  {
    name: 'hold-grantable-elsewhere', area: 'device', bug: 'a terminal grants another peer the release of a Hold job when asked (the job is not listed there, but a peer that asks gets it)',
    file: 'devices/jobs/service.ts', find: '    if (job.pinned === true) throw new NotAuthorizedError(`job ${job.ippId} is held for release at its own device only`)\n    this.authorizeRelease(job, by)\n    const gone',
    replace: '    this.authorizeRelease(job, by)\n    const gone',
    options: DEVICE_RUNS
  },
  {
    name: 'hold-document-fetchable', area: 'device', bug: 'a terminal serves a Hold job\'s document to another peer of its site that asks for it',
    file: 'devices/jobs/roaming.ts', find: 'FETCHABLE.has(job.state) && job.pinned !== true) return', replace: 'FETCHABLE.has(job.state)) return',
    options: DEVICE_RUNS
  },
  {
    name: 'delegate-releases-any-job', area: 'device', bug: 'a delegate may release every job of the owner, not only those sent to a Delegated queue (a Pull job too)',
    file: 'devices/jobs/types.ts', find: '  if (job.delegable !== true) return `this job of ${job.owner} came to a queue where only its owner releases it, not a delegate`\n',
    replace: '',
    options: DEVICE_RUNS
  },
  {
    name: 'roaming-print-without-commit', area: 'device', bug: 'a peer releasing another peer\'s job prints once the document arrived without committing the grant (the holder never moved it to printing first)',
    file: 'devices/jobs/roaming.ts', find: '      const committed = await this.untilDeadline(deadline, async () => await this.c.link.commit(rel.holder, rel.jobId, grantId, this.signal(REQUEST_TIMEOUT_MS)))\n',
    replace: '      const committed = grantId === \'\' ? { ok: false as const, message: \'no grant\' } : { ok: true as const }\n',
    options: DEVICE_RUNS
  },
  // ---- credit (escrow; issue 20) ----
  {
    name: 'giver-gives-more-than-held', area: 'credit', bug: 'a peer asked for part of a user\'s credit gives what is asked, whatever its share holds',
    file: 'node/credit.ts', find: 'const give = Math.min(amount, this.here(user, account))', replace: 'const give = amount; void this.here(user, account)',
    options: CREDIT_RUNS
  },
  {
    name: 'reservation-not-serialized', area: 'credit', bug: 'reservations for one user at one peer are not made one at a time: two prints both spend the same share',
    file: 'node/credit.ts', find: 'return await this.serial(job.owner, async () => {',
    replace: 'return await (async <T>(fn: () => Promise<T>): Promise<T> => await fn())(async () => {',
    options: CREDIT_RUNS
  },
  {
    name: 'unprinted-reservation-kept', area: 'credit', bug: 'a print that was not charged (refused by the printer, failed, stopped) keeps its reservation: the credit stays spent',
    file: 'devices/jobs/print-engine.ts', find: '      await this.c.credit?.release(target.job)\n', replace: '      void target\n',
    options: CREDIT_RUNS
  },
  {
    name: 'central-passes-all-credited', area: 'credit', bug: 'central\'s pass counts what it gave away as still held: every pass hands on to the home site everything ever credited there again',
    file: 'crdt/escrow.ts', find: '        if (owner === peer) add(e.user, account, -e.amount)\n', replace: '',
    options: CREDIT_RUNS
  },
  {
    name: 'shares-count-terminal-mint', area: 'credit', bug: 'a mint in a terminal\'s (or a client\'s) own document counts as credit: a forged top-up is spendable',
    file: 'crdt/escrow.ts', find: 'role === undefined || !ADMIN_ISSUER_ROLES.includes(role)) continue', replace: 'role === undefined) continue',
    options: CREDIT_RUNS
  },
  {
    name: 'reservation-not-counted', area: 'credit', bug: 'a reservation for a print under way does not count against the peer\'s share until it is settled: a second print of the user reserves the same credit',
    file: 'crdt/escrow.ts', find: '      } else {\n        add(owner, -e.amount)\n        spent += e.amount\n', replace: '      } else {\n        if (e.settled) add(owner, -e.amount)\n        spent += e.amount\n',
    options: CREDIT_RUNS
  },
  {
    name: 'give-not-counted-out', area: 'credit', bug: 'a share given away still counts at the giver (only the receiver\'s side of a give is counted)',
    file: 'crdt/escrow.ts', find: '        add(owner, -e.amount)\n        add(e.to, e.amount)\n', replace: '        add(e.to, e.amount)\n',
    options: CREDIT_RUNS
  },
  // ---- panel (terminals' logins and copies; issue 12) ----
  {
    name: 'login-index-misses-updates', area: 'panel', bug: 'the directory\'s lookups (PIN and card indexes) are kept after users change: a PIN set at central does not log in by PIN alone at a terminal',
    file: 'crdt/directory.ts', find: 'usersMap(doc).observe(() => { derivedUsers.set(doc, {}) })', replace: 'void usersMap(doc)',
    options: PANEL_RUNS
  },
  {
    name: 'login-ignores-disabled', area: 'panel', bug: 'a user disabled at central still logs in at a terminal with username and PIN',
    file: 'node/users.ts', find: "  if (user === undefined || user.disabled === true || pinHash === '') {", replace: "  if (user === undefined || pinHash === '') {",
    options: PANEL_RUNS
  },
  {
    name: 'pin-only-takes-first-holder', area: 'panel', bug: 'a PIN two users hold logs the first of them in by PIN alone (it must log in neither: found by a review)',
    file: 'node/users.ts', find: '  const holder = holders.length === 1 ? holders[0] : undefined', replace: '  const holder = holders[0]',
    options: PANEL_RUNS
  },
  {
    name: 'usage-names-queue-not-printer', area: 'panel', bug: 'a print is charged naming the job\'s queue instead of the printer that printed it: reports by printer are wrong, and a terminal\'s copy sessions no longer subtract its prints (found by a review)',
    file: 'devices/jobs/usage.ts', find: '    printer: at.printer,\n', replace: '    printer: job.queue,\n',
    options: PANEL_RUNS
  },
  {
    name: 'copy-prints-not-subtracted', area: 'panel', bug: 'a copy session charges what the terminal printed meanwhile as copies too',
    file: 'node/copy-sessions.ts', find: "if (r.kind === 'print' && r.printer === this.init.printer && r.time >= from && r.time <= to) out.push(r)", replace: "if (r.kind === 'print' && r.printer === '' && r.time >= from && r.time <= to) out.push(r)",
    options: PANEL_RUNS
  },
  {
    name: 'copy-left-open-dropped', area: 'panel', bug: 'a copy session open when the terminal stopped is dropped at the restart: what the user copied is never charged',
    file: 'node/copy-sessions.ts', find: "      void this.serial(async () => await this.close('restart'))", replace: "      this.state = { version: 1, failed: this.state.failed }; void this.serial(async () => {})",
    options: PANEL_RUNS
  }
]

/** One mutation's result over the seeds. */
export interface MutationResult {
  name: string
  area: MutationArea
  bug: string
  /** caught: a seed had a violation (or its run failed); survived: every seed passed; stale: the snippet is not in the product once. */
  status: 'caught' | 'survived' | 'stale'
  /** The first seed that caught it, the invariants it violated, and the first message (or the run's error). */
  seed?: number
  invariants?: number[]
  message?: string
  seconds: number
}

export interface MutationRun {
  seeds: number[]
  options: ChildOptions
  /** Seeds that failed without any mutation (left out: they would catch everything). */
  baselineFailures: Array<{ seed: number, message: string }>
  results: MutationResult[]
}

/** What the child runs for each seed. */
export interface ChildOptions { peers: number, steps: number, faults: number, terminals: number, maxSeconds: number, clients?: number, deviceSpooling?: boolean, credit?: boolean, creditProbes?: boolean, panel?: boolean, diskFaults?: boolean }

/** One seed's outcome, as the child prints it (one JSON line per seed). */
interface SeedOutcome { seed: number, invariants: number[], message?: string, error?: string }

/** Real-time bound of one child (all its seeds), beyond each run's own bound. */
const CHILD_SLACK_S = 60
/** Top-level entries of the checkout the scratch copy leaves out (large, or not needed to run). */
const NOT_COPIED = new Set(['node_modules', '.git', 'test', 'bench'])

/**
 * Runs `mutations` (default: all) against `seeds` in a scratch copy of the checkout at
 * `root`; stops a mutation at the first seed that catches it. `onResult` sees each result.
 */
export async function runMutations (opts: {
  root: string
  seeds: number[]
  options: ChildOptions
  only?: string[]
  scratchParent?: string
  onResult?: (r: MutationResult) => void
  onLine?: (line: string) => void
}): Promise<MutationRun> {
  const chosen = opts.only === undefined ? MUTATIONS : MUTATIONS.filter((m) => opts.only?.includes(m.name))
  const unknown = (opts.only ?? []).filter((n) => !MUTATIONS.some((m) => m.name === n))
  if (unknown.length > 0) throw new RangeError(`no mutation named ${unknown.join(', ')}`)
  const scratch = await mkdtemp(join(opts.scratchParent ?? tmpdir(), 'printmesh-mutants-'))
  try {
    await cp(opts.root, scratch, {
      recursive: true,
      filter: (src) => {
        const rel = src.slice(resolve(opts.root).length + 1)
        // build outputs (node/dist*) come and go while others build: not needed to run, and a vanished file would fail the copy
        return !NOT_COPIED.has(rel.split('/')[0]) && !/^node\/dist[^/]*(\/|$)/.test(rel)
      }
    })
    await symlink(join(resolve(opts.root), 'node_modules'), join(scratch, 'node_modules'), 'dir')
    // one baseline per set of run options (a client mutation's runs have clients)
    const baselines = new Map<string, Array<{ seed: number, message: string }>>()
    const baselineOf = async (options: ChildOptions): Promise<Array<{ seed: number, message: string }>> => {
      const key = JSON.stringify(options)
      let failures = baselines.get(key)
      if (failures === undefined) {
        opts.onLine?.(`baseline: seeds ${opts.seeds.join(', ')} without a mutation${options.clients !== undefined && options.clients > 0 ? `, ${options.clients} clients` : ''}${options.deviceSpooling === true ? ', device spooling' : ''}${options.credit === true ? ', credit' : ''}`)
        const baseline = await runChild(scratch, opts.seeds, options, false)
        failures = baseline.filter((o) => o.invariants.length > 0 || o.error !== undefined).map((o) => ({ seed: o.seed, message: o.error ?? o.message ?? '' }))
        baselines.set(key, failures)
      }
      return failures
    }
    const results: MutationResult[] = []
    for (const m of chosen) {
      const started = Date.now()
      const options = { ...opts.options, ...m.options }
      const failing = await baselineOf(options)
      const seeds = opts.seeds.filter((s) => !failing.some((f) => f.seed === s))
      const path = join(scratch, m.file)
      const original = await readFile(path, 'utf8')
      const at = original.indexOf(m.find)
      let result: MutationResult
      if (at < 0 || original.indexOf(m.find, at + 1) >= 0) {
        result = { name: m.name, area: m.area, bug: m.bug, status: 'stale', message: `${m.file}: the snippet occurs ${at < 0 ? 'nowhere' : 'more than once'}`, seconds: 0 }
      } else {
        await writeFile(path, original.slice(0, at) + m.replace + original.slice(at + m.find.length))
        try {
          const outcomes = await runChild(scratch, seeds, options, true)
          const hit = outcomes.find((o) => o.invariants.length > 0 || o.error !== undefined)
          result = hit === undefined
            ? { name: m.name, area: m.area, bug: m.bug, status: 'survived', seconds: 0 }
            : { name: m.name, area: m.area, bug: m.bug, status: 'caught', seed: hit.seed, invariants: hit.invariants, message: hit.error !== undefined ? `run failed: ${hit.error}` : hit.message ?? '', seconds: 0 }
        } finally {
          await writeFile(path, original)
        }
      }
      result.seconds = Math.round((Date.now() - started) / 1000)
      results.push(result)
      opts.onResult?.(result)
    }
    const baselineFailures = [...baselines.values()].flat()
    return { seeds: opts.seeds, options: opts.options, baselineFailures, results }
  } finally {
    await rm(scratch, { recursive: true, force: true })
  }
}

/** Runs the child over `seeds` in `dir`; with `stopAtFirst`, it stops at the first seed that fails. */
async function runChild (dir: string, seeds: number[], options: ChildOptions, stopAtFirst: boolean): Promise<SeedOutcome[]> {
  if (seeds.length === 0) return []
  const args = ['--import', 'tsx', 'simulations/mutant-child.ts', JSON.stringify({ seeds, options, stopAtFirst })]
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { err += b.toString() })
  const bound = (options.maxSeconds * seeds.length + CHILD_SLACK_S) * 1000
  const timer = setTimeout(() => child.kill('SIGKILL'), bound)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  const outcomes = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as SeedOutcome)
  if (outcomes.length === 0 || (code !== 0 && !outcomes.some((o) => o.invariants.length > 0 || o.error !== undefined))) {
    // the child itself died (a mutation that breaks loading, or the bound): the first seed not reported failed
    const seed = seeds.find((s) => !outcomes.some((o) => o.seed === s)) ?? seeds[0]
    outcomes.push({ seed, invariants: [], error: `child exited ${code ?? 'killed'}: ${err.trim().split('\n').slice(-3).join(' / ') || 'no output'}` })
  }
  return outcomes
}

/** Results as the table the CLI prints and the README shows. */
export function formatMutationTable (run: MutationRun): string {
  const rows = run.results.map((r) => `| ${r.name} | ${r.area} | ${r.status}${r.seed !== undefined ? ` (seed ${r.seed}${r.invariants !== undefined && r.invariants.length > 0 ? `, invariant ${r.invariants.join(', ')}` : ''})` : ''} | ${r.seconds} s |`)
  const caught = run.results.filter((r) => r.status === 'caught').length
  return [
    `seeds ${run.seeds.join(', ')} at --peers ${run.options.peers} --steps ${run.options.steps} --faults ${run.options.faults} --terminals ${run.options.terminals}${run.results.some((r) => r.area === 'client') ? ` (client mutations: --clients ${CLIENT_RUNS.clients ?? 0})` : ''}${run.results.some((r) => r.area === 'device') ? ' (device mutations: --device-spooling)' : ''}${run.results.some((r) => r.area === 'credit') ? ' (credit mutations: --credit)' : ''}`,
    ...(run.baselineFailures.length > 0 ? [`seeds failing without a mutation (left out): ${run.baselineFailures.map((f) => `${f.seed} (${f.message})`).join('; ')}`] : []),
    '',
    '| mutation | area | result | time |',
    '|---|---|---|---|',
    ...rows,
    '',
    `${caught} of ${run.results.length} caught`
  ].join('\n')
}
