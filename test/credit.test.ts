// Credit as escrow in process (issue 20; crdt/escrow.ts, node/credit.ts): central, site-a and two
// terminals of site-a as mesh peers over the memory network, with share requests through an
// in-memory hub. The invariant (DESIGN.md 5): nobody spends more than was credited, at every
// moment, partitioned or not, and no credit is lost (after healing, every peer sees the shares add
// up to the balance).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { pino } from 'pino'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { MemoryEscrowHub } from '../simulations/escrow-link.ts'
import { until } from '../simulations/wait.ts'
import { CreditService, CreditAuthorityError, CREDIT_PASS_MS, InvalidCreditRequestError } from '../node/credit.ts'
import { CreditRefusedError, type CopyCharged } from '../devices/jobs/credit-gate.ts'
import { addEntry, parseCreditPolicy, quotaAccount, quotaOf, setSpend, sharesOf, InvalidCreditPolicyError } from '../crdt/escrow.ts'
import { directoryDoc, escrowDoc, licenseDoc, periodOf, siteId, type PeerId } from '../crdt/names.ts'
import { putUser } from '../crdt/directory.ts'
import { writePriceList } from '../crdt/prices.ts'
import type { JobRecord } from '../crdt/jobs.ts'
import type { Role } from '../crdt/license.ts'

const SITE = siteId('site-a')
/** 1.00 a page, mono; 3.00 a colour page. */
const MONO = 100
const COLOUR = 300
const silent = pino({ level: 'silent' })

let mesh: TestMesh
let hub: MemoryEscrowHub
const credit = new Map<string, CreditService>()

function service (peer: MeshPeer, site?: typeof SITE): CreditService {
  const s = new CreditService(site !== undefined ? { site } : {}, { self: { id: peer.id }, store: peer.store, membership: peer.membership, clock: { now: Date.now }, logger: silent })
  credit.set(peer.name, s)
  hub.attach(peer.id, s)
  return s
}

let seq = 0
function job (pages: number, colorPages = 0): JobRecord {
  const now = Date.now()
  return { id: `job-${++seq}`, ippId: seq, site: SITE, queue: 'secure', owner: 'alice', name: `doc-${seq}.pdf`, state: 'held', pages, colorPages, copies: 1, sides: 'one-sided', createdAt: now, updatedAt: now }
}

interface Peers { central: MeshPeer, site: MeshPeer, t1: MeshPeer, t2: MeshPeer }

/** central, site-a, two terminals, all linked; alice's home is site-a; pages priced; credit enforced with `atZero`. */
async function meshOf (atZero: 'refuse' | 'mono-only' = 'refuse'): Promise<Peers> {
  const central = await mesh.addCentral()
  const site = await mesh.addPeer('site-a', 'site', 'site-a')
  const t1 = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  const t2 = await mesh.addPeer('terminal-a2', 'terminal', 'site-a')
  for (const [a, b] of [[central, site], [central, t1], [central, t2], [site, t1], [site, t2], [t1, t2]] as const) await mesh.connect(a, b)
  service(central)
  for (const p of [site, t1, t2]) service(p, SITE)
  await central.store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => { putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', homeSite: 'site-a', updatedAt: Date.now() }) })
  await central.store.transact(licenseDoc(), { kind: 'local', service: 'test' }, (d) => {
    writePriceList(d, { currency: 'EUR', rules: [{ color: 'mono', perPage: MONO }, { color: 'colour', perPage: COLOUR }], sites: {}, printers: {}, updatedAt: 0, updatedBy: 'test' })
  })
  await c('central').setPolicy({ enforced: true, atZero }, 'admin')
  await until(() => [site, t1, t2].every((p) => credit.get(p.name)?.policy()?.atZero === atZero), 10_000, 'the policy everywhere')
  return { central, site, t1, t2 }
}

/** alice's workstation: a client of site-a linked to the site and central, with its credit service keeping alice's share. */
async function workstationOf (central: MeshPeer, site: MeshPeer): Promise<{ client: MeshPeer, credit: CreditService }> {
  const client = await mesh.addPeer('client-a1', 'client', 'site-a')
  await mesh.connect(client, site)
  await mesh.connect(client, central)
  const credit = new CreditService({ site: SITE, prefetchFor: 'alice' }, { self: { id: client.id }, store: client.store, membership: client.membership, clock: { now: Date.now }, logger: silent })
  hub.attach(client.id, credit)
  return { client, credit }
}

/** Awaits `fn`, which must reject with an error `check` accepts (a RegExp: its message matches). */
async function rejects (fn: () => Promise<unknown>, check: RegExp | ((err: Error) => boolean)): Promise<void> {
  let thrown: unknown
  try { await fn() } catch (err) { thrown = err }
  assert.instance(thrown, Error, 'it rejected')
  const ok = check instanceof RegExp ? check.test((thrown as Error).message) : check(thrown as Error)
  assert.ok(ok, `unexpected error: ${(thrown as Error).message}`)
}

const c = (name: string): CreditService => {
  const s = credit.get(name)
  if (s === undefined) throw new Error(`no credit service ${name}`)
  return s
}

/** The invariant at one peer's view: spent ≤ credited, and the shares add up to the balance. */
function assertInvariant (name: string): void {
  const v = c(name).view('alice')
  assert.ok(v.spent <= v.credited, `${name}: spent ${v.spent} ≤ credited ${v.credited}`)
  const shares = [...v.shares.values()].reduce((n, a) => n + a, 0)
  assert.is(shares, v.credited - v.spent, `${name}: the shares add up to the balance`)
}

test.before.each(() => {
  mesh = new TestMesh()
  hub = new MemoryEscrowHub(mesh.network)
  credit.clear()
})
test.after.each(async () => { await mesh.teardown() })

test('shares from the escrow documents: a mint counts only from a site or central, a give moves credit, a spend (reserved or settled) takes it away', () => {
  const docs: Array<[string, Y.Doc]> = []
  const docOf = (peer: string): Y.Doc => { const d = new Y.Doc(); docs.push([escrowDoc(peer as PeerId), d]); return d }
  const roles: Record<string, Role> = { central: 'central', siteA: 'site', term1: 'terminal' }
  const central = docOf('central')
  const term = docOf('term1')
  addEntry(central, 'm1', { type: 'mint', user: 'alice', amount: 1000, reason: 'term', by: 'admin', time: 1 })
  addEntry(central, 'g1', { type: 'give', user: 'alice', amount: 400, to: 'term1' as PeerId, time: 2 })
  addEntry(term, 'forged', { type: 'mint', user: 'alice', amount: 5000, reason: 'free money', by: 'me', time: 3 })
  setSpend(term, { type: 'spend', user: 'alice', amount: 150, usageId: 'j1/print', settled: true, time: 4 })
  setSpend(term, { type: 'spend', user: 'alice', amount: 100, usageId: 'j2/print', settled: false, time: 5 })
  addEntry(central, 'm2', { type: 'mint', user: 'bob', amount: 77, reason: '', by: 'admin', time: 6 })
  const v = sharesOf(docs, 'alice', (p) => roles[p])
  assert.equal(Object.fromEntries(v.shares), { central: 600, term1: 150 })
  assert.equal({ credited: v.credited, spent: v.spent, reserved: v.reserved }, { credited: 1000, spent: 250, reserved: 100 })
})

test('a top-up at central reaches the home site; a terminal\'s print gathers what it lacks from the site and spends exactly the job\'s price', async () => {
  const { site, t1 } = await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  assert.is(c('central').here('alice'), 0, 'central keeps none')
  const j = job(3, 1) // 2 mono + 1 colour = 5.00
  assert.equal(await c('terminal-a1').reserve(j, 'device', AbortSignal.timeout(5000)), { monochrome: false })
  await c('terminal-a1').settle(j, { pages: 3, colorPages: 1, cost: { currency: 'EUR', amount: 500, mono: MONO, colour: COLOUR } })
  assert.is(c('terminal-a1').here('alice'), 0, 'it took exactly the shortfall')
  await until(() => c('site-a').view('alice').spent === 500, 10_000, 'the spend at the site')
  assert.is(c('site-a').here('alice'), 500)
  for (const n of ['central', 'site-a', 'terminal-a1']) assertInvariant(n)
  void site; void t1
})

test('partitioned from the site and from each other, two terminals never spend more than the shares they took; every refusal says what is available here; after healing no credit is lost', async () => {
  const { central, site, t1, t2 } = await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  await c('terminal-a1').prefetch('alice', AbortSignal.timeout(5000))
  await c('terminal-a1').prefetch('alice', AbortSignal.timeout(5000))
  assert.is(c('terminal-a1').here('alice'), 500, 'a second login takes no more')
  await c('terminal-a2').prefetch('alice', AbortSignal.timeout(5000))
  assert.equal([c('terminal-a1').here('alice'), c('terminal-a2').here('alice')], [500, 250])
  mesh.network.partition([t1.id], [t2.id, site.id, central.id])
  mesh.network.partition([t2.id], [site.id, central.id])
  const printed = { 'terminal-a1': 0, 'terminal-a2': 0 }
  const refusals: string[] = []
  for (let round = 0; round < 8; round++) {
    for (const name of ['terminal-a1', 'terminal-a2'] as const) {
      const j = job(1 + (round % 2))
      try {
        await c(name).reserve(j, 'device', AbortSignal.timeout(5000))
        await c(name).settle(j, { pages: j.pages ?? 0, colorPages: 0, cost: { currency: 'EUR', amount: (j.pages ?? 0) * MONO, mono: MONO, colour: COLOUR } })
        printed[name] += (j.pages ?? 0) * MONO
      } catch (err) {
        assert.instance(err, CreditRefusedError)
        refusals.push((err as Error).message)
      }
      assert.ok(c(name).view('alice').spent <= 1000)
    }
  }
  assert.is(printed['terminal-a1'], 500, 'terminal 1 spent exactly its share')
  assert.is(printed['terminal-a2'], 200, 'terminal 2 spent all of its share that a job fitted in')
  assert.is(c('terminal-a2').here('alice'), 50, 'and keeps the rest')
  assert.ok(refusals.length > 0)
  for (const r of refusals) assert.match(r, /^not enough credit: this job costs [12]\.00 EUR, alice has \d\.\d\d EUR available here; \d+\.\d\d EUR more is held by peers that cannot be reached from here now$/)
  mesh.network.heal()
  for (const [a, b] of [[central, t1], [central, t2], [site, t1], [site, t2], [t1, t2]] as const) await mesh.connect(a, b)
  await until(() => ['central', 'site-a', 'terminal-a1', 'terminal-a2'].every((n) => c(n).view('alice').spent === 700), 10_000, 'every spend everywhere').catch((err: Error) => { throw new Error(`${err.message}: ${['central', 'site-a', 'terminal-a1', 'terminal-a2'].map((n) => `${n} ${c(n).view('alice').spent}`).join(', ')}`) })
  for (const n of ['central', 'site-a', 'terminal-a1', 'terminal-a2']) assertInvariant(n)
  assert.is(c('central').status('alice').balance, 300)
})

test('a peer gives no more than it holds: a job dearer than all of the credit is refused, and the credit is still all there', async () => {
  await meshOf()
  await c('central').topUp('alice', 400, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 400, 10_000, 'the credit at the site')
  await rejects(async () => await c('terminal-a1').reserve(job(5), 'device', AbortSignal.timeout(5000)), /this job costs 5\.00 EUR, alice has 4\.00 EUR available here; top up to print it/)
  assert.equal([c('site-a').here('alice'), c('terminal-a1').here('alice')], [0, 400], 'the site gave what it had')
  for (const n of ['site-a', 'terminal-a1']) assertInvariant(n)
  assert.is(c('terminal-a1').status('alice').balance, 400)
})

test('a share whose answer is lost after the giver wrote it still arrives by sync: nothing is lost, nothing counted twice', async () => {
  const { site } = await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  hub.loseAnswers = true
  await rejects(async () => await c('terminal-a1').reserve(job(3), 'device', AbortSignal.timeout(5000)), (err: Error) => err instanceof CreditRefusedError)
  hub.loseAnswers = false
  site.sync.antiEntropy()
  await until(() => c('terminal-a1').here('alice') === 300, 10_000, 'the lost share arrived by sync')
  assert.is(c('site-a').here('alice'), 700)
  await c('terminal-a1').reserve(job(3), 'device', AbortSignal.timeout(5000))
  assert.is(c('terminal-a1').here('alice'), 0)
  for (const n of ['central', 'site-a', 'terminal-a1']) assertInvariant(n)
})

test('with "mono-only", a colour job the credit covers only in monochrome is printed in monochrome; a released reservation returns to the share', async () => {
  await meshOf('mono-only')
  await c('central').topUp('alice', 400, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 400, 10_000, 'the credit at the site')
  const colour = job(3, 2) // 1 mono + 2 colour = 7.00; in mono 3.00
  assert.equal(await c('site-a').reserve(colour, 'mfp', AbortSignal.timeout(5000)), { monochrome: true })
  assert.is(c('site-a').here('alice'), 100)
  await c('site-a').release(colour)
  assert.is(c('site-a').here('alice'), 400, 'the reservation came back')
  const big = job(5)
  await rejects(async () => await c('site-a').reserve(big, 'mfp', AbortSignal.timeout(5000)), /this job costs 5\.00 EUR, alice has 4\.00 EUR available here; top up to print it/)
})

test('copies: a terminal with no credit reachable refuses to start copying; a session\'s charge is paid from the share, gathered from the site, never beyond the credit', async () => {
  await meshOf()
  await rejects(async () => await c('terminal-a1').allowCopy('alice', AbortSignal.timeout(5000)), /^not enough credit to copy: alice has 0\.00 EUR available here; top up to copy$/)
  await c('central').topUp('alice', 300, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 300, 10_000, 'the credit at the site')
  await c('terminal-a1').allowCopy('alice', AbortSignal.timeout(5000))
  const copied = (pages: number): CopyCharged => ({ pages, colorPages: 0, cost: { currency: 'EUR', amount: pages * 50, mono: 50, colour: 50 } })
  assert.equal(c('terminal-a1').copyAllowance('alice'), { cost: 150 }, 'half of the site\'s share taken for copying')
  assert.equal(await c('terminal-a1').payCopy('copy-1/copy', 'alice', copied(4), AbortSignal.timeout(5000)), {}, 'the rest gathered from the site')
  assert.equal(await c('terminal-a1').payCopy('copy-2/copy', 'alice', copied(5), AbortSignal.timeout(5000)), { credit: 150 }, 'only what is left is paid')
  assert.equal(await c('terminal-a1').payCopy('copy-2/copy', 'alice', copied(5), AbortSignal.timeout(5000)), { credit: 150 }, 'paying again (a restart) pays nothing more')
  const v = c('terminal-a1').view('alice')
  assert.equal([v.credited, v.spent], [300, 300])
  assertInvariant('terminal-a1')
})

test('quota rules: a user\'s own rule wins over their groups\'; of several groups, the largest allowance of each measure; group names without case', () => {
  const policy = parseCreditPolicy({ enforced: false, quotas: [{ group: 'students', pages: 100, colour: 10 }, { group: 'staff', pages: 500 }, { user: 'carol', pages: 5 }] }, 'admin', 0)
  assert.equal(quotaOf(policy, 'alice', ['Students']), { pages: 100, colour: 10 })
  assert.equal(quotaOf(policy, 'bob', ['students', 'staff']), { pages: 500, colour: 10 })
  assert.equal(quotaOf(policy, 'carol', ['staff']), { pages: 5 })
  assert.equal(quotaOf(policy, 'dave', []), {})
})

test('monthly quotas: central mints a user\'s quota when first asked; a terminal takes half ahead; cut off, it prints only the pages it holds and says what is left; after healing the quota adds up', async () => {
  const { central, site, t1, t2 } = await meshOf()
  await central.store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => { putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', homeSite: 'site-a', groups: ['Students'], updatedAt: Date.now() }) })
  await c('central').setPolicy({ enforced: false, quotas: [{ group: 'students', pages: 10, colour: 2 }] }, 'admin')
  await until(() => c('terminal-a1').quotas('alice').pages === 10, 10_000, 'the quota and alice\'s groups at the terminal')
  await c('terminal-a1').prefetch('alice', AbortSignal.timeout(5000))
  const period = periodOf(Date.now())
  assert.equal([c('terminal-a1').here('alice', quotaAccount(period, 'pages')), c('terminal-a1').here('alice', quotaAccount(period, 'colour'))], [5, 1], 'half of each quota taken ahead')
  mesh.network.partition([t1.id], [t2.id, site.id, central.id])
  const ends: string[] = []
  for (const [pages, colour] of [[2, 1], [2, 0], [2, 0], [1, 1]]) {
    try {
      const j = job(pages, colour)
      await c('terminal-a1').reserve(j, 'device', AbortSignal.timeout(5000))
      await c('terminal-a1').settle(j, { pages, colorPages: colour })
      ends.push('printed')
    } catch (err) {
      assert.instance(err, CreditRefusedError)
      ends.push((err as Error).message)
    }
  }
  assert.equal(ends, [
    'printed',
    'printed',
    `page quota of ${period} used up: this job needs 2 pages, alice has 1 pages left here; 5 pages more is held by peers that cannot be reached from here now`,
    `colour page quota of ${period} used up: this job needs 1 colour pages, alice has 0 colour pages left here; 1 colour pages more is held by peers that cannot be reached from here now`
  ])
  mesh.network.heal()
  for (const [a, b] of [[central, t1], [site, t1], [t1, t2]] as const) await mesh.connect(a, b)
  await until(() => c('central').status('alice').quotas.find((q) => q.measure === 'pages')?.used === 4, 10_000, 'the pages used, at central')
  assert.equal(c('central').status('alice').quotas.map((q) => [q.measure, q.quota, q.used, q.left]), [['pages', 10, 4, 6], ['colour', 2, 1, 1]])
})

test('a quota used up with "mono-only" prints colour jobs in monochrome while pages are left; with neither left the refusal says when it renews', async () => {
  const { central } = await meshOf('mono-only')
  await central.store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => { putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', homeSite: 'site-a', groups: ['students'], updatedAt: Date.now() }) })
  await c('central').setPolicy({ enforced: false, atZero: 'mono-only', quotas: [{ group: 'students', pages: 4, colour: 0 }] }, 'admin')
  await until(() => c('site-a').quotas('alice').pages === 4, 10_000, 'the quota at the site')
  const colour = job(3, 2)
  assert.equal(await c('site-a').reserve(colour, 'mfp', AbortSignal.timeout(5000)), { monochrome: true }, 'no colour quota: printed in monochrome')
  await c('site-a').settle(colour, { pages: 3, colorPages: 0 })
  const period = periodOf(Date.now())
  await rejects(async () => await c('site-a').reserve(job(2), 'mfp', AbortSignal.timeout(5000)), new RegExp(`^page quota of ${period} used up: this job needs 2 pages, alice has 1 pages left here; the page quota is renewed on the 1st of next month$`))
})

test('copies count against the month\'s page and colour quotas: no pages left, no session; a session may use what the terminal holds; the charge spends each quota once', async () => {
  const { central } = await meshOf()
  await central.store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => { putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', homeSite: 'site-a', groups: ['students'], updatedAt: Date.now() }) })
  await c('central').setPolicy({ enforced: false, quotas: [{ group: 'students', pages: 10, colour: 2 }] }, 'admin')
  await until(() => c('terminal-a1').quotas('alice').pages === 10, 10_000, 'the quota at the terminal')
  await c('terminal-a1').allowCopy('alice', AbortSignal.timeout(5000))
  assert.equal(c('terminal-a1').copyAllowance('alice'), { pages: 5, colorPages: 1 }, 'half of each quota taken ahead')
  const period = periodOf(Date.now())
  assert.equal(await c('terminal-a1').payCopy('copy-1/copy', 'alice', { pages: 7, colorPages: 1 }, AbortSignal.timeout(5000)), {}, 'what the terminal lacked gathered from the mesh')
  assert.equal(await c('terminal-a1').payCopy('copy-2/copy', 'alice', { pages: 4, colorPages: 2 }, AbortSignal.timeout(5000)), { [`quota/${period}/pages`]: 1, [`quota/${period}/colour`]: 1 }, 'beyond the quotas: the rest is unpaid')
  assert.equal(await c('terminal-a1').payCopy('copy-2/copy', 'alice', { pages: 4, colorPages: 2 }, AbortSignal.timeout(5000)), { [`quota/${period}/pages`]: 1, [`quota/${period}/colour`]: 1 }, 'paying again (a restart) spends nothing more')
  assert.equal([c('terminal-a1').view('alice', `quota/${period}/pages`).spent, c('terminal-a1').view('alice', `quota/${period}/colour`).spent], [10, 2])
  await rejects(async () => await c('terminal-a1').allowCopy('alice', AbortSignal.timeout(5000)), new RegExp(`^page quota of ${period} used up: nothing left to copy, alice has 0 pages left here; the page quota is renewed on the 1st of next month$`))
  // a session's pages count in the month it started: paid (and paid again, after a restart) from that month's quota only
  const now = new Date()
  const nextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1, 12)
  for (let i = 0; i < 2; i++) assert.equal(await c('terminal-a1').payCopy('copy-3/copy', 'alice', { pages: 2, colorPages: 0, at: nextMonth }, AbortSignal.timeout(5000)), {})
  assert.equal([c('terminal-a1').view('alice', `quota/${periodOf(nextMonth)}/pages`).spent, c('terminal-a1').view('alice', `quota/${period}/pages`).spent], [2, 10], 'next month\'s quota paid once; this month\'s untouched')
})

test('a workstation\'s client keeps a share of its user\'s credit (topped up at each pass), so a fallback print with the site away is paid from it', async () => {
  const { central, site } = await meshOf()
  const { client, credit } = await workstationOf(central, site)
  await c('central').topUp('alice', 600, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 600, 10_000, 'the credit at the site')
  await until(() => credit.policy()?.enforced === true, 10_000, 'the policy at the client')
  await credit.pass()
  assert.is(credit.here('alice'), 300, 'half of what it and the site hold')
  mesh.network.partition([client.id], [site.id, central.id])
  const j = job(2)
  await credit.reserve(j, 'fallback', AbortSignal.timeout(5000))
  await credit.settle(j, { pages: 2, colorPages: 0, cost: { currency: 'EUR', amount: 200, mono: MONO, colour: COLOUR } })
  assert.is(credit.here('alice'), 100)
  await rejects(async () => await credit.reserve(job(2), 'fallback', AbortSignal.timeout(5000)), /this job costs 2\.00 EUR, alice has 1\.00 EUR available here; 3\.00 EUR more is held by peers that cannot be reached from here now/)
})

test('a workstation\'s client takes its share when its user\'s new credit reaches the site, not at its next pass', async () => {
  const { central, site } = await meshOf()
  const { credit } = await workstationOf(central, site)
  await credit.start()
  try {
    await c('central').topUp('alice', 800, 'term', 'admin')
    // well within the pass's 30 s: the hand-over to site-a is what starts it
    await until(() => credit.here('alice') === 400, CREDIT_PASS_MS / 3, 'half of what the site got at the workstation')
    assert.is(c('site-a').here('alice'), 400)
  } finally {
    await credit.stop()
  }
})

test('a quota reaches peers that know no groups: central mints every user\'s quota at its pass and hands it to the home site; a client learns it from the mint and prints no more than it holds', async () => {
  const { central, site } = await meshOf()
  await central.store.transact(directoryDoc(), { kind: 'local', service: 'test' }, (d) => { putUser(d, { username: 'alice', fullName: 'Alice', pinHash: '', homeSite: 'site-a', groups: ['students'], updatedAt: Date.now() }) })
  await c('central').setPolicy({ enforced: false, quotas: [{ group: 'students', pages: 10 }] }, 'admin')
  const { client, credit } = await workstationOf(central, site)
  const pages = quotaAccount(periodOf(Date.now()), 'pages')
  await c('central').pass()
  await c('central').pass() // the second pass hands what the first minted to alice's home site
  await until(() => c('site-a').here('alice', pages) === 10, 10_000, 'the quota at the home site')
  await until(() => credit.quotas('alice').pages !== undefined, 10_000, 'central\'s mint at the client')
  assert.equal(credit.quotas('alice'), { pages: 10 }, 'the client knows the quota from central\'s mint')
  await credit.pass()
  assert.is(credit.here('alice', pages), 5)
  mesh.network.partition([client.id], [site.id, central.id])
  await rejects(async () => await credit.reserve(job(6), 'fallback', AbortSignal.timeout(5000)), /page quota of \d{4}-\d\d used up: this job needs 6 pages, alice has 5 pages left here; 5 pages more is held by peers that cannot be reached from here now/)
  await credit.reserve(job(5), 'fallback', AbortSignal.timeout(5000))
})

test('a terminal that reaches only its site is paid from another terminal\'s share: the site passes the request on, gathers, and gives on', async () => {
  const { central, site, t1, t2 } = await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  await c('terminal-a2').prefetch('alice', AbortSignal.timeout(5000))
  assert.equal([c('site-a').here('alice'), c('terminal-a2').here('alice')], [500, 500])
  mesh.network.partition([t1.id], [t2.id, central.id]) // terminal 1 reaches its site only
  const j = job(8) // 8.00: more than the site holds
  assert.equal(await c('terminal-a1').reserve(j, 'device', AbortSignal.timeout(10_000)), { monochrome: false })
  await c('terminal-a1').settle(j, { pages: 8, colorPages: 0, cost: { currency: 'EUR', amount: 800, mono: MONO, colour: COLOUR } })
  assert.equal([c('terminal-a1').here('alice'), c('site-a').here('alice'), c('terminal-a2').here('alice')], [0, 0, 200], 'the site passed on what terminal 2 gave, and terminal 2 gave only the shortfall')
  mesh.network.heal()
  await until(() => ['central', 'site-a', 'terminal-a1', 'terminal-a2'].every((n) => c(n).view('alice').spent === 800), 10_000, 'the spend everywhere')
  for (const n of ['central', 'site-a', 'terminal-a1', 'terminal-a2']) assertInvariant(n)
  void site
})

test('two prints of one user at one peer at once: the second waits for the first and is refused when the share no longer covers it', async () => {
  await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  const outcomes = await Promise.allSettled([job(6), job(6)].map(async (j) => await c('site-a').reserve(j, 'device', AbortSignal.timeout(10_000))))
  assert.equal(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected'], 'one print reserved, one refused')
  const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult
  assert.match((refused.reason as Error).message, /this job costs 6\.00 EUR, alice has 4\.00 EUR available here/)
  assert.is(c('site-a').here('alice'), 400, 'the share never went below what is reserved')
  assertInvariant('site-a')
})

test('two terminals short at once ask each other: they do not wait on each other until their timeouts; one is given what the other holds', async () => {
  // share requests take 20 ms on the wire, so both terminals are asking when the other's request arrives
  hub = new MemoryEscrowHub(mesh.network, { schedule: (fn, ms) => { setTimeout(fn, ms) }, faults: () => ({ latencyMs: 20 }), random: Math.random })
  const { central, site, t1, t2 } = await meshOf()
  await c('central').topUp('alice', 1000, 'term', 'admin')
  await until(() => c('site-a').here('alice') === 1000, 10_000, 'the credit at the site')
  await c('terminal-a1').prefetch('alice', AbortSignal.timeout(5000))
  await c('terminal-a2').prefetch('alice', AbortSignal.timeout(5000))
  assert.equal([c('terminal-a1').here('alice'), c('terminal-a2').here('alice')], [500, 250])
  mesh.network.partition([t1.id, t2.id], [site.id, central.id])
  // each holds less than its job costs, and together enough for one of them; timeouts far beyond the share requests' own (9 s)
  const outcomes = await Promise.allSettled([c('terminal-a1').reserve(job(6), 'device', AbortSignal.timeout(30_000)), c('terminal-a2').reserve(job(3), 'device', AbortSignal.timeout(30_000))])
  assert.is(outcomes.filter((o) => o.status === 'fulfilled').length, 1, `one print reserved: ${outcomes.map((o) => o.status === 'rejected' ? (o.reason as Error).message : 'reserved').join(' / ')}`)
  const held = (): number => c('terminal-a1').here('alice') + c('terminal-a2').here('alice') + c('terminal-a1').view('alice').reserved
  await until(() => held() === 750, 10_000, 'what the two hold and reserved adds up to what they took').catch((err: Error) => { throw new Error(`${err.message}: ${held()}`) })
})

test('bad input: amounts, reasons, policies and share requests are refused with what is wrong; a terminal cannot create credit', async () => {
  const { t1 } = await meshOf()
  for (const amount of [0, -5, 1.5, '100', 1e12]) {
    await rejects(async () => await c('central').topUp('alice', amount, '', 'admin'), (err: Error) => err instanceof InvalidCreditRequestError && /amount must be a whole number/.test(err.message))
  }
  await rejects(async () => await c('central').topUp('alice', 10, 'x'.repeat(500), 'admin'), /reason must be text/)
  await rejects(async () => await c('terminal-a1').topUp('alice', 10, '', 'admin'), (err: Error) => err instanceof CreditAuthorityError)
  await rejects(async () => await c('site-a').setPolicy({ enforced: true }, 'admin'), (err: Error) => err instanceof CreditAuthorityError)
  for (const [raw, message] of [[{ enforced: 'yes' }, /enforced must be true or false/], [{ enforced: true, atZero: 'free' }, /atZero must be/], [{ enforced: true, sites: { 'site a': 'refuse' } }, /is not a site id/], [{ enforced: true, colour: 1 }, /unknown field "colour"/], [{ enforced: true, quotas: [{ pages: 5 }] }, /names a user or a group/], [{ enforced: true, quotas: [{ group: 'x', pages: -1 }] }, /quotas\[0\]\.pages must be a whole number/], [{ enforced: true, quotas: [{ group: 'x' }] }, /limits nothing/]] as const) {
    assert.throws(() => parseCreditPolicy(raw, 'admin', 0), (err: Error) => err instanceof InvalidCreditPolicyError && message.test(err.message))
  }
  await rejects(async () => await c('site-a').answer(t1.id, { user: 'alice', amount: -1 }), /a share request is/)
  for (const bad of [{ relays: 3 }, { relays: -1 }, { relays: 1.5 }, { via: 'x' }, { via: ['a', 'b', 'c'] }, { via: [''] }]) {
    await rejects(async () => await c('site-a').answer(t1.id, { user: 'alice', amount: 1, ...bad }), /a share request is .*"relays"\?: 0-2/)
  }
  await rejects(async () => await c('site-a').answer('12D3KooWnotamember', { user: 'alice', amount: 1 }), /not a member/)
})

test.run()
