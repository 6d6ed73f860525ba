// Jobs, accounting and directory families: the state machine, merge properties, PIN hashes.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import * as jobs from '../crdt/jobs.ts'
import { recordUsage, listUsage, totalUsage, uniqueUsage, sheetsFor, type UsageRecord } from '../crdt/accounting.ts'
import { hashPin, verifyPin, putUser, getUser, removeUser, listUsers, InvalidUserError } from '../crdt/directory.ts'
import { issueCertificate, recordCertificate, revoke, putJoinRequest, listCertificates, listRevocations, listJoinRequests } from '../crdt/license.ts'
import { generateIdentity } from '../transports/identity.ts'
import { jobsDoc, acctDoc, peerId, siteId, parseDocName, periodOf, isRetained, monthsBetween, InvalidDocNameError } from '../crdt/names.ts'

const job = (id: string, ippId: number): jobs.JobRecord => ({
  id, ippId, site: siteId('site-a'), queue: 'print', owner: 'alice', name: `doc ${id}`, state: 'received',
  copies: 1, sides: 'one-sided', createdAt: 1000, updatedAt: 1000
})

/** A tiny seeded generator (mulberry32), so failures replay. */
function rng (seed: number): () => number {
  return () => {
    seed |= 0; seed = seed + 0x6D2B79F5 | 0
    let t = Math.imul(seed ^ seed >>> 15, 1 | seed)
    t = t + Math.imul(t ^ t >>> 7, 61 | t) ^ t
    return ((t ^ t >>> 14) >>> 0) / 4294967296
  }
}

test('the job state machine allows the DESIGN.md paths and refuses the rest', () => {
  const d = new Y.Doc()
  jobs.putNewJob(d, job('j1', 1))
  for (const to of ['held', 'releasing', 'printing', 'printed', 'expired'] as const) jobs.transition(d, 'j1', to, 2000)
  assert.is(jobs.getJob(d, 'j1')?.state, 'expired')
  jobs.putNewJob(d, job('j2', 2))
  jobs.transition(d, 'j2', 'held', 2000)
  assert.throws(() => jobs.transition(d, 'j2', 'printed', 2001), (e: unknown) => e instanceof jobs.InvalidTransitionError)
  jobs.transition(d, 'j2', 'deleted', 2002)
  assert.throws(() => jobs.transition(d, 'j2', 'releasing', 2003), /a deleted job cannot become releasing/)
  assert.is(jobs.getJob(d, 'j2')?.completedAt, 2002)
})

test('jobs documents merge the same in any order and repeated updates change nothing', () => {
  for (let seed = 1; seed <= 25; seed++) {
    const rand = rng(seed)
    const writer = new Y.Doc()
    const updates: Uint8Array[] = []
    writer.on('update', (u: Uint8Array) => updates.push(u))
    const states: jobs.JobState[] = ['held', 'releasing', 'printing', 'printed']
    for (let i = 0; i < 10; i++) {
      jobs.putNewJob(writer, job(`j${i}`, i + 1))
      const steps = Math.floor(rand() * 5)
      for (let s = 0; s < steps; s++) jobs.transition(writer, `j${i}`, states[s], 1000 + s)
    }
    const shuffled = [...updates].sort(() => rand() - 0.5)
    const a = new Y.Doc(); const b = new Y.Doc()
    for (const u of updates) Y.applyUpdate(a, u)
    for (const u of shuffled) { Y.applyUpdate(b, u); Y.applyUpdate(b, u) } // duplicated delivery
    assert.equal(jobs.listJobs(b).sort((x, y) => x.ippId - y.ippId), jobs.listJobs(a).sort((x, y) => x.ippId - y.ippId), `seed ${seed}`)
    assert.equal(Y.encodeStateVector(a), Y.encodeStateVector(b))
  }
})

const usage = (id: string, user: string, pages: number, time: number): UsageRecord => ({
  id, kind: 'print', user, jobId: id, jobName: id, printer: 'p1', site: 'site-a', pages, colorPages: 0,
  sheets: pages, duplex: false, copies: 1, time
})

test('usage recorded twice (retry, replay or two merged histories) is charged once', () => {
  const a = new Y.Doc(); const b = new Y.Doc()
  assert.ok(recordUsage(a, usage('j1/print', 'alice', 3, 1)))
  assert.not.ok(recordUsage(a, usage('j1/print', 'alice', 3, 1)))
  recordUsage(b, usage('j1/print', 'alice', 3, 1)) // the same event recorded on another replica
  recordUsage(b, usage('j2/print', 'bob', 5, 2))
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b))
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const totals = totalUsage([...listUsage(a), ...listUsage(b)], (r) => r.user)
  assert.equal(totals.map((t) => [t.key, t.jobs, t.pages]), [['alice', 1, 3], ['bob', 1, 5]])
})

test('the same usage in two peers\' documents (a job printed offline at two sites) is listed and totalled once', () => {
  const atA = usage('j1/print', 'alice', 3, 20)
  const atB = { ...usage('j1/print', 'alice', 3, 10), site: 'site-b' }
  const records = uniqueUsage([atA, usage('j2/print', 'bob', 5, 15), atB])
  assert.equal(records.map((r) => [r.id, r.site]).sort(), [['j1/print', 'site-b'], ['j2/print', 'site-a']])
  assert.equal(totalUsage([atA, atB], (r) => r.user).map((t) => [t.key, t.jobs, t.pages]), [['alice', 1, 3]])
})

/** Applies `updates` in order to one doc and shuffled, twice each, to another: both must agree. */
function mergesTheSame (updates: Uint8Array[], seed: number, read: (d: Y.Doc) => unknown): void {
  const rand = rng(seed)
  const a = new Y.Doc(); const b = new Y.Doc()
  for (const u of updates) Y.applyUpdate(a, u)
  for (const u of [...updates].sort(() => rand() - 0.5)) { Y.applyUpdate(b, u); Y.applyUpdate(b, u) }
  assert.equal(read(b), read(a), `seed ${seed}`)
}

function recorded (fn: (d: Y.Doc, rand: () => number, i: number) => void, seed: number, steps = 20): Uint8Array[] {
  const rand = rng(seed)
  const writer = new Y.Doc()
  const updates: Uint8Array[] = []
  writer.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < steps; i++) fn(writer, rand, i)
  return updates
}

test('directory and license documents merge the same in any order, with duplicates', async () => {
  const hash = await hashPin('1234')
  const central = (await generateIdentity()).signer
  const certs = await Promise.all([0, 1, 2].map(async (i) => await issueCertificate(central, { peer: `peer-${i}`, role: 'site', site: `s${i}`, issuedAt: 1, expiresAt: 2 })))
  for (let seed = 1; seed <= 20; seed++) {
    const dir = recorded((d, rand, i) => {
      const name = `user${Math.floor(rand() * 5)}`
      if (rand() < 0.3) removeUser(d, name)
      else putUser(d, { username: name, fullName: `User ${i}`, pinHash: hash, updatedAt: i })
    }, seed)
    mergesTheSame(dir, seed, (d) => listUsers(d))
    const lic = recorded((d, rand, i) => {
      const k = Math.floor(rand() * 3)
      if (rand() < 0.5) recordCertificate(d, certs[k])
      else if (rand() < 0.5) revoke(d, { peer: `peer-${k}`, at: i, reason: 'test' })
      else putJoinRequest(d, { peer: `peer-${k}`, role: 'site', site: `s${k}`, requestedAt: i })
    }, seed)
    mergesTheSame(lic, seed, (d) => [listCertificates(d), listRevocations(d), listJoinRequests(d)])
  }
})

test('sheets count duplex and copies', () => {
  assert.is(sheetsFor(5, 1, false), 5)
  assert.is(sheetsFor(5, 1, true), 3)
  assert.is(sheetsFor(5, 2, true), 6)
})

test('PINs are stored as salted slow hashes that verify only the right PIN', async () => {
  const h1 = await hashPin('1234')
  const h2 = await hashPin('1234')
  assert.not.equal(h1, h2) // salted
  assert.not.match(h1, /1234/)
  assert.ok(await verifyPin('1234', h1))
  assert.not.ok(await verifyPin('4321', h1))
  assert.not.ok(await verifyPin('1234', 'garbage'))
  try { await hashPin('12'); assert.unreachable() } catch (e) { assert.instance(e, InvalidUserError) }
  const d = new Y.Doc()
  putUser(d, { username: 'alice', fullName: 'Alice', pinHash: h1, updatedAt: 1 })
  assert.is(getUser(d, 'alice')?.fullName, 'Alice')
  assert.throws(() => putUser(d, { username: 'bad name', fullName: '', pinHash: h1, updatedAt: 1 }), (e: unknown) => e instanceof InvalidUserError)
})

test('jobs documents leave retention whole, months after their period; other families stay', () => {
  const now = Date.UTC(2026, 10, 22)
  assert.ok(isRetained(jobsDoc(peerId('p'), '2026-08'), now, 3))
  assert.not.ok(isRetained(jobsDoc(peerId('p'), '2026-07'), now, 3))
  assert.ok(isRetained(acctDoc(peerId('p'), '2020-01'), now, 3))
  assert.is(monthsBetween('2025-12', '2026-02'), 2)
})

test('document names are typed, versioned and parse back', () => {
  assert.is(jobsDoc(peerId('site-a'), periodOf(Date.UTC(2026, 10, 22))), 'v1/jobs/site-a/2026-11')
  assert.equal(parseDocName(acctDoc(peerId('p1'), '2026-01')), { family: 'acct', peer: 'p1', period: '2026-01' })
  assert.is(parseDocName('v2/jobs/x/2026-01'), undefined)
  assert.throws(() => jobsDoc(peerId('a/b'), '2026-01'), (e: unknown) => e instanceof InvalidDocNameError)
})

test.run()
