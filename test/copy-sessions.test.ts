// Copy sessions (node/copy-sessions.ts) in process, on a real document store and a real snmpd
// (helpers/snmpd.ts) serving the device's counters: the charge rule for every kind of device
// (colour and mono counters, only one of them, neither, a sheet counter), counters that went
// backwards or belong to another device, the next user's login ending the last user's
// session, a session whose record was written just before a crash charged once, and a failed
// session kept in the data folder with its start reading, and a broken session file.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { acctDoc, licenseDoc, periodOf, siteId, type PeerId } from '../crdt/names.ts'
import { writePriceList } from '../crdt/prices.ts'
import { listUsage, recordUsage, type UsageRecord } from '../crdt/accounting.ts'
import { CopySessions, copyCharge, CopyStateFileError, CountersMismatchError, COPY_SESSION_FILE, COPY_PROGRESS_MS } from '../node/copy-sessions.ts'
import { snmpCounters, parseSnmpAddress } from '../devices/counters/snmp.ts'
import type { CounterReading } from '../devices/counters/types.ts'
import { tempDir } from '../simulations/node-process.ts'
import { generateIdentity } from '../transports/identity.ts'
import { until } from '../simulations/wait.ts'
import { startSnmpd, TEST_OIDS, type TestSnmpd } from './helpers/snmpd.ts'
import { runCleanup } from './helpers/browser.ts'
import { CreditRefusedError, type CopyAllowance, type CopyCredit } from '../devices/jobs/credit-gate.ts'

const identity = await generateIdentity()
const PEER = identity.signer.id as PeerId
const SITE = siteId('site-a')
/** A short SNMP timeout: the failure test waits for it. */
const TIMEOUT_MS = 300
const logger = pino({ level: 'silent' })

const reading = (r: Partial<CounterReading> & { total: number }, serial = 'S1'): CounterReading => ({ device: { address: 'snmp://mfp:161', serial }, at: 0, ...r })
const print = (pages: number, colorPages: number, sheets = pages): Pick<UsageRecord, 'pages' | 'colorPages' | 'sheets'> => ({ pages, colorPages, sheets })

test('the charge: colour and mono counters as counted, less the prints between the readings', () => {
  const charge = copyCharge(reading({ total: 100, color: 40, mono: 60 }), reading({ total: 112, color: 44, mono: 68 }), [print(3, 1)])
  assert.equal(charge, { pages: 9, colorPages: 3, sheets: 9, printPages: 3 })
})

test('the charge: one colour counter gives mono as the rest, one mono counter colour as the rest', () => {
  assert.equal(copyCharge(reading({ total: 100, color: 40 }), reading({ total: 110, color: 43 }), []), { pages: 10, colorPages: 3, sheets: 10, printPages: 0 })
  assert.equal(copyCharge(reading({ total: 100, mono: 60 }), reading({ total: 110, mono: 66 }), []), { pages: 10, colorPages: 4, sheets: 10, printPages: 0 })
})

test('the charge: a device counting no colour has every page charged as colour; a monochrome one (colour 0) none', () => {
  assert.equal(copyCharge(reading({ total: 100 }), reading({ total: 105 }), []), { pages: 5, colorPages: 5, sheets: 5, printPages: 0 })
  assert.equal(copyCharge(reading({ total: 100, color: 0 }), reading({ total: 105, color: 0 }), []), { pages: 5, colorPages: 0, sheets: 5, printPages: 0 })
})

test('the charge: sheets from the sheet counter, less the prints\' sheets', () => {
  assert.equal(copyCharge(reading({ total: 100, color: 0, sheets: 70 }), reading({ total: 110, color: 0, sheets: 76 }), [print(2, 0, 1)]), { pages: 8, colorPages: 0, sheets: 5, printPages: 2 })
})

test('the charge: counters that went backwards, or another device\'s serial, are refused', () => {
  assert.throws(() => copyCharge(reading({ total: 100 }), reading({ total: 90 }), []), (e: Error) => e instanceof CountersMismatchError && /went backwards by 10/.test(e.message))
  assert.throws(() => copyCharge(reading({ total: 100 }), reading({ total: 110 }, 'S2'), []), (e: Error) => e instanceof CountersMismatchError && /serial S2/.test(e.message))
})

interface Rig { dir: string, store: DocStore, agent: TestSnmpd, open: (credit?: CopyCredit) => CopySessions, close: () => Promise<void> }

async function rig (): Promise<Rig> {
  const dir = await tempDir('printmesh-copy-')
  const agent = await startSnmpd({ total: 1000, color: 200, mono: 800, serial: 'MFP-1' })
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), identity.signer)
  const made: CopySessions[] = []
  const open = (credit?: CopyCredit): CopySessions => {
    const counters = snmpCounters({ ...parseSnmpAddress(`snmp://127.0.0.1:${agent.port}?color=${TEST_OIDS.color}&mono=${TEST_OIDS.mono}`, agent.community), timeoutMs: TIMEOUT_MS })
    const s = new CopySessions({ peer: PEER, site: SITE, printer: 'device', data: dir }, { store, counters, logger, now: Date.now, ...(credit !== undefined ? { credit } : {}) })
    made.push(s)
    return s
  }
  return {
    dir, store, agent, open,
    close: async () => await runCleanup([
      ['sessions', async () => { for (const s of made) await s.stop() }],
      ['store', async () => await store.close()],
      ['snmpd', async () => await agent.stop()],
      ['folder', async () => await rm(dir, { recursive: true, force: true })]
    ])
  }
}

const copies = async (store: DocStore): Promise<UsageRecord[]> => listUsage(await store.open(acctDoc(PEER, periodOf(Date.now())))).filter((r) => r.kind === 'copy')

test('the next user\'s session ends the open one, charged to its own user', async () => {
  const r = await rig()
  try {
    const s = r.open()
    await s.start()
    const alice = await s.begin({ user: 'alice', admin: false })
    await r.agent.set({ total: 1004, color: 201, mono: 803 })
    const bob = await s.begin({ user: 'bob', admin: false })
    assert.is.not(bob.id, alice.id)
    assert.equal((await copies(r.store)).map((c) => [c.user, c.jobId, c.pages, c.colorPages]), [['alice', alice.id, 4, 1]])
    assert.is(await s.current({ user: 'alice', admin: false }), undefined, 'alice has no session any more')
    assert.is((await s.current({ user: 'bob', admin: false }))?.id, bob.id)
  } finally {
    await r.close()
  }
})

test('a session whose record was written just before a crash is closed at the next start without a second charge', async () => {
  const r = await rig()
  try {
    const s = r.open()
    await s.start()
    const alice = await s.begin({ user: 'alice', admin: false })
    await r.agent.set({ total: 1003, color: 200, mono: 803 })
    // the crash: the record is in the accounting document, the open session still in the file
    const now = Date.now()
    await r.store.transact(acctDoc(PEER, periodOf(now)), { kind: 'local', service: 'accounting' }, (d) => recordUsage(d, {
      id: `${alice.id}/copy`, kind: 'copy', user: 'alice', jobId: alice.id, jobName: 'Copy', printer: 'device', site: SITE, pages: 3, colorPages: 0, sheets: 3, duplex: false, copies: 1, time: now
    }))
    await s.stop()
    const again = r.open()
    await again.start()
    await until(async () => JSON.parse(await readFile(join(r.dir, COPY_SESSION_FILE), 'utf8')).open === undefined, 10_000, 'the left-open session closed at start')
    assert.equal((await copies(r.store)).map((c) => [c.jobId, c.pages]), [[alice.id, 3]], 'one record')
  } finally {
    await r.close()
  }
})

test('a session the counters cannot end is kept in the data folder as failed, with its start reading, and charges nothing', async () => {
  const r = await rig()
  try {
    const s = r.open()
    await s.start()
    const bob = await s.begin({ user: 'bob', admin: false })
    await r.agent.halt()
    const end = await s.end({ user: 'bob', admin: false }, 'logout')
    assert.is(end.outcome, 'failed')
    const state = JSON.parse(await readFile(join(r.dir, COPY_SESSION_FILE), 'utf8')) as { open?: unknown, failed: Array<{ id: string, user: string, reason: string, start: { total: number, color: number } }> }
    assert.is(state.open, undefined)
    assert.equal(state.failed.map((f) => [f.id, f.user, f.reason, f.start.total, f.start.color]), [[bob.id, 'bob', 'logout', 1000, 200]])
    assert.equal(await copies(r.store), [])
  } finally {
    await r.close()
  }
})

test('a copy session file that is not JSON stops the start with the file named, and is left as it was', async () => {
  const r = await rig()
  try {
    await writeFile(join(r.dir, COPY_SESSION_FILE), '{"version":1,"open":')
    const s = r.open()
    try {
      await s.start()
      assert.unreachable('started on a broken file')
    } catch (err) {
      assert.instance(err, CopyStateFileError)
      assert.match((err as Error).message, COPY_SESSION_FILE)
    }
    assert.is(await readFile(join(r.dir, COPY_SESSION_FILE), 'utf8'), '{"version":1,"open":')
  } finally {
    await r.close()
  }
})


test('a copy is priced as it is charged, at the copy prices in force then (colour and mono pages apart)', async () => {
  const r = await rig()
  try {
    // the mesh's price list: copies 5 cents a mono page, 20 a colour one; prints dearer, so the kind counts
    await r.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => writePriceList(d, {
      currency: 'EUR',
      rules: [{ kind: 'copy', color: 'mono', perPage: 5 }, { kind: 'copy', color: 'colour', perPage: 20 }, { kind: 'print', perPage: 99 }],
      sites: {},
      printers: {},
      updatedAt: Date.now(),
      updatedBy: 'admin'
    }))
    const s = r.open()
    await s.start()
    await s.begin({ user: 'carol', admin: false })
    await r.agent.set({ total: 1010, color: 203, mono: 807 }) // 7 mono, 3 colour
    const end = await s.end({ user: 'carol', admin: false }, 'done')
    assert.is(end.outcome, 'charged')
    const [copy] = await copies(r.store)
    assert.equal([copy.pages, copy.colorPages], [10, 3])
    assert.equal(copy.cost, { ...copy.cost, currency: 'EUR', amount: 7 * 5 + 3 * 20 })
  } finally {
    await r.close()
  }
})

/** What a user may copy at the terminal (credit, pages of the month's quota), as the copy sessions see it (node/credit.ts implements it over the escrow family). */
function creditOf (held: Record<string, CopyAllowance>): CopyCredit & { paid: Array<[string, string, number]> } {
  const paid: Array<[string, string, number]> = []
  return {
    paid,
    allowCopy: async (user) => {
      if ((held[user]?.cost ?? 1) <= 0) throw new CreditRefusedError(`not enough credit to copy: ${user} has 0.00 EUR available here; top up to copy`)
      if ((held[user]?.pages ?? 1) <= 0) throw new CreditRefusedError(`page quota used up: nothing left to copy, ${user} has 0 pages left here`)
    },
    copyAllowance: (user) => held[user],
    payCopy: async (id, user, charged): Promise<Record<string, number>> => {
      const a = held[user] ?? {}
      const cost = charged.cost?.amount ?? 0
      const p = Math.min(cost, a.cost ?? cost)
      if (a.cost !== undefined) a.cost -= p
      if (a.pages !== undefined) a.pages -= Math.min(a.pages, charged.pages)
      paid.push([id, user, p])
      return cost > p ? { credit: cost - p } : {}
    }
  }
}

test('with credit enforced: no credit, no session; the running count ends the session when its cost reaches the credit held here, and the charge is paid once from it', async () => {
  const r = await rig()
  try {
    await r.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => writePriceList(d, {
      currency: 'EUR', rules: [{ kind: 'copy', perPage: 10 }], sites: {}, printers: {}, updatedAt: Date.now(), updatedBy: 'admin'
    }))
    const credit = creditOf({ dave: { cost: 0 }, erin: { cost: 50 } })
    const s = r.open(credit)
    await s.start()
    let refused: unknown
    try { await s.begin({ user: 'dave', admin: false }) } catch (err) { refused = err }
    assert.instance(refused, CreditRefusedError, 'dave, with no credit, cannot start copying')
    assert.is(await s.current({ user: 'dave', admin: false }), undefined, 'no session was opened')
    const erin = await s.begin({ user: 'erin', admin: false })
    await r.agent.set({ total: 1003, color: 200, mono: 803 }) // 3 pages: 0.30 of 0.50
    assert.equal((await s.current({ user: 'erin', admin: false }))?.copied, { pages: 3, colorPages: 0 }, 'still copying')
    await r.agent.set({ total: 1006, color: 200, mono: 806 }) // 6 pages: 0.60, beyond the 0.50 held
    await until(async () => await s.current({ user: 'erin', admin: false }) === undefined, COPY_PROGRESS_MS + 10_000, 'the session ended by the running count')
    assert.equal((await copies(r.store)).map((c) => [c.user, c.jobId, c.pages, c.cost?.amount]), [['erin', erin.id, 6, 60]], 'what was copied is charged as counted')
    assert.equal(credit.paid, [[`${erin.id}/copy`, 'erin', 50]], 'paid once, no more than the credit held')
  } finally {
    await r.close()
  }
})

test('with a page quota: the running count ends the session when the pages copied reach the quota held here', async () => {
  const r = await rig()
  try {
    const credit = creditOf({ frank: { pages: 5 } })
    const s = r.open(credit)
    await s.start()
    const frank = await s.begin({ user: 'frank', admin: false })
    await r.agent.set({ total: 1004, color: 200, mono: 804 }) // 4 of 5 pages
    assert.equal((await s.current({ user: 'frank', admin: false }))?.copied, { pages: 4, colorPages: 0 }, 'still copying')
    await r.agent.set({ total: 1005, color: 200, mono: 805 }) // the fifth
    await until(async () => await s.current({ user: 'frank', admin: false }) === undefined, COPY_PROGRESS_MS + 10_000, 'the session ended by the running count')
    assert.equal((await copies(r.store)).map((c) => [c.user, c.jobId, c.pages]), [['frank', frank.id, 5]], 'what was copied is charged as counted')
    assert.equal(credit.paid, [[`${frank.id}/copy`, 'frank', 0]], 'paid once (unpriced: nothing of credit)')
  } finally {
    await r.close()
  }
})

test.run()
