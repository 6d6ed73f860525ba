// PIN-only login (issue 12): a PIN typed alone at a terminal's panel names its user through a
// keyed index (crdt/directory.ts PinIndex, node/users.ts checkPinOnly), then one slow hash.
// Where a peer logs users in by PIN alone, PINs must be unique: the admin API, the CSV import
// and a user's PIN change refuse a PIN another user holds, without naming them. Wrong PINs
// count against the address in the node's login guard (`/api/login` as the pseudo-user
// `#pin`), so guessing is locked out. In-process: the directory on the memory mesh's stores,
// the HTTP layer through fastify's inject.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import pino from 'pino'
import { createHmac } from 'node:crypto'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { directoryDoc, enrolDoc, peerId } from '../crdt/names.ts'
import { getUser, putUser, hashPin, cardIndex, pinIndexOf, pinKeyOf, currentPinIndex, type DirectoryUser } from '../crdt/directory.ts'
import { pinOnlyLoginOf } from '../crdt/enrolment.ts'
import { DirectoryAdmin } from '../node/directory-admin.ts'
import { Enrolments, EnrolmentMerger, PinTakenError, PinChangesThrottledError, MAX_TAKEN_PIN_REFUSALS, announcePinOnly, pinOnlyLoginInUse } from '../node/enrolment.ts'
import { checkPin, checkPinOnly, panelLogins, PIN_ONLY_USERNAME } from '../node/users.ts'
import { buildHttpApp } from '../ui/server.ts'
import { LoginGuard, MAX_FAILURES_PER_PAIR } from '../ui/rate-limit.ts'
import type { MeshApi } from '../ui/api.ts'
import { rejects } from './helpers/assert.ts'

const CARD_KEY = new Uint8Array(32).fill(7)
const PIN_KEY = pinKeyOf(CARD_KEY)
const logger = pino({ level: 'silent' })
const local = { kind: 'local', service: 'test' } as const

let mesh: TestMesh
test.before.each(() => { mesh = new TestMesh() })
test.after.each(async () => { await mesh.teardown() })

/** Central's directory admin, with alice (PIN 2468) and bob (PIN 1357). */
async function directoryWithUsers (central: MeshPeer): Promise<DirectoryAdmin> {
  const admin = new DirectoryAdmin({ store: central.store, cardKey: CARD_KEY, authority: () => true })
  await admin.add({ username: 'alice', fullName: 'Alice', pin: '2468' }, 'test')
  await admin.add({ username: 'bob', fullName: 'Bob', pin: '1357', cards: ['2468CAFE'] }, 'test')
  return admin
}

/** A terminal of the mesh says it logs users in by PIN alone (its enrolment document, as `--pin-only-login` writes it), as central holds it. */
async function pinOnlyTerminalAt (holder: MeshPeer, terminal = 'terminal-a1'): Promise<void> {
  const t = await mesh.addPeer(terminal, 'terminal', 'site-a')
  await announcePinOnly(t.store, t.id, true, Date.now())
  await mesh.connect(t, holder)
  await until(() => pinOnlyLoginInUse(holder.store), 10_000, 'the terminal\'s PIN-only statement at central')
}

test('the PIN index: HMAC of the PIN under the PIN key (not the card key), bound to the hash it was written with; one PIN finds its user among 3,000 without a slow hash per user', async () => {
  const central = await mesh.addCentral()
  await directoryWithUsers(central)
  const directory = await central.store.open(directoryDoc())
  const alice = getUser(directory, 'alice') as DirectoryUser
  assert.is(alice.pinIndex?.index, createHmac('sha256', PIN_KEY).update('2468').digest('hex'))
  assert.is.not(alice.pinIndex?.index, cardIndex('2468', CARD_KEY), 'a PIN and a card of the same digits have different indexes')
  assert.is.not(alice.pinIndex?.index, createHmac('sha256', CARD_KEY).update('2468').digest('hex'))
  assert.is(alice.pinHash.split('$')[4], alice.pinIndex?.salt, 'bound to the salt of the hash written with it')
  assert.not.ok(JSON.stringify(directory.toJSON()).includes('2468"'), 'no PIN digits in the document')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '2468'), 'alice')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '1357'), 'bob')
  // 3,000 more users, each with a slow hash of its own and an index: one lookup costs one slow hash, not 3,000
  const [other] = [await hashPin('9999')]
  await central.store.transact(directoryDoc(), local, (d) => {
    for (let i = 0; i < 3000; i++) putUser(d, { username: `user${i}`, fullName: `User ${i}`, pinHash: other, pinIndex: { index: pinIndexOf(String(100000 + i), PIN_KEY), salt: other.split('$')[4] }, updatedAt: 1 })
  })
  const started = performance.now()
  assert.is(await checkPinOnly(central.store, PIN_KEY, '2468'), 'alice')
  const ms = performance.now() - started
  assert.ok(ms < 2_000, `one PIN-only login among 3,002 users took ${Math.round(ms)} ms (a slow hash per user would take minutes)`)
  // an index left from an earlier PIN counts for nobody: a writer that changed the hash without indexing it
  await central.store.transact(directoryDoc(), local, (d) => { putUser(d, { ...alice, pinHash: other, updatedAt: 2 }) })
  assert.is(currentPinIndex(getUser(directory, 'alice') as DirectoryUser), undefined, 'stale index: its salt is not the new hash\'s')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '2468'), undefined, 'the old PIN no longer logs alice in')
})

test('a wrong, malformed or shared PIN and a disabled holder log nobody in; username + PIN still works', async () => {
  const central = await mesh.addCentral()
  const admin = await directoryWithUsers(central)
  for (const pin of ['0000', '24680', '24', 'abcd', '', '2468 ']) assert.is(await checkPinOnly(central.store, PIN_KEY, pin), undefined, `PIN ${JSON.stringify(pin)}`)
  // carol gets alice's PIN while no peer logs in by PIN alone (allowed): the PIN then names two users, so neither by PIN alone
  await admin.add({ username: 'carol', fullName: 'Carol', pin: '2468' }, 'test')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '2468'), undefined, 'a PIN two users hold logs neither in alone')
  assert.ok(await checkPin(central.store, 'carol', '2468'), 'carol still logs in with her name')
  await admin.edit('bob', { disabled: true }, 'test')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '1357'), undefined, 'a disabled user is refused')
})

test('where a terminal logs in by PIN alone, a PIN another user holds is refused at the admin API (add, reset) and the CSV import, without naming them; the user\'s own PIN is fine', async () => {
  const central = await mesh.addCentral()
  const admin = await directoryWithUsers(central)
  await admin.add({ username: 'dave', fullName: 'Dave', pin: '1357' }, 'test') // before any terminal logs in by PIN alone: allowed
  await pinOnlyTerminalAt(central)
  const added = await rejects(admin.add({ username: 'erin', fullName: 'Erin', pin: '2468' }, 'test'), PinTakenError)
  assert.is(added.kind, 'invalid-state', 'a 409')
  assert.match(added.message, /already another user's/)
  assert.not.match(added.message, /alice/)
  assert.is(getUser(await central.store.open(directoryDoc()), 'erin'), undefined, 'nothing written')
  const reset = await rejects(admin.setPin('bob', '2468', 'test'), PinTakenError)
  assert.not.match(reset.message, /alice/)
  await admin.setPin('alice', '2468', 'test') // her own PIN again
  await admin.setPin('bob', '8642', 'test')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '8642'), 'bob')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '1357'), 'dave', 'bob moved away from the PIN he shared with dave: it is dave\'s alone now')
  // CSV: a PIN of a user outside the file, and one given twice in the file, are lines in error; nothing is written
  const preview = await admin.importCsv('frank,Frank,2468\ngina,Gina,7777\nhank,Hank,7777\n', { dryRun: true }, 'test')
  assert.equal(preview.errors.map((e) => e.line), [1, 3])
  assert.not.ok(preview.errors.some((e) => e.message.includes('alice')), 'whose is not said')
  try {
    await admin.importCsv('frank,Frank,2468\n', { dryRun: false }, 'test')
    assert.unreachable('imported a taken PIN')
  } catch (err) {
    assert.match((err as Error).message, /line 1: .*already another user's/)
  }
  assert.is(getUser(await central.store.open(directoryDoc()), 'frank'), undefined)
  // an import's PINs are indexed: a new user, and a PIN changed by the file
  const report = await admin.importCsv('username,full name,pin\nivy,Ivy,5151\nalice,,6161\n', { dryRun: false }, 'test')
  assert.is(report.imported, 2)
  assert.is(await checkPinOnly(central.store, PIN_KEY, '5151'), 'ivy')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '6161'), 'alice')
  assert.is(await checkPinOnly(central.store, PIN_KEY, '2468'), undefined, 'alice\'s old PIN is free')
})

test('a user\'s PIN change at a PIN-only terminal refuses another user\'s PIN (throttled after a few), sets a free one indexed, and central\'s merge keeps the index', async () => {
  const central = await mesh.addCentral()
  await directoryWithUsers(central)
  const terminal = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  await mesh.connect(terminal, central)
  await until(() => { const d = terminal.store.get(directoryDoc()); return d !== undefined && getUser(d, 'bob') !== undefined }, 10_000, 'the directory at the terminal')
  await announcePinOnly(terminal.store, terminal.id, true, Date.now())
  assert.ok(pinOnlyLoginOf(await terminal.store.open(enrolDoc(peerId(terminal.id))), terminal.id))
  let now = Date.now()
  const enrolments = new Enrolments({ store: terminal.store, self: terminal.id, cardKey: CARD_KEY, checkPin: async (u, p) => await checkPin(terminal.store, u, p), logger, now: () => now })
  for (let i = 0; i < MAX_TAKEN_PIN_REFUSALS; i++) {
    const err = await rejects(enrolments.enrolPin('bob', '1357', '2468', '2468'), PinTakenError)
    assert.not.match(err.message, /alice/)
  }
  await rejects(enrolments.enrolPin('bob', '1357', '3690', '3690'), PinChangesThrottledError)
  now += 61 * 60_000 // the window passes
  await enrolments.enrolPin('bob', '1357', '3690', '3690')
  assert.is(await checkPinOnly(terminal.store, PIN_KEY, '3690'), 'bob', 'works at once at the terminal (its own enrolment)')
  assert.is(await checkPinOnly(terminal.store, PIN_KEY, '1357'), undefined, 'the old PIN no longer')
  const merger = new EnrolmentMerger({ store: central.store, logger })
  await until(() => pinOnlyLoginInUse(central.store), 10_000, 'the enrolment document at central')
  await merger.start()
  try {
    await until(async () => await checkPinOnly(central.store, PIN_KEY, '3690') === 'bob', 10_000, 'central merged bob\'s PIN with its index')
    assert.is(currentPinIndex(getUser(await central.store.open(directoryDoc()), 'bob') as DirectoryUser), pinIndexOf('3690', PIN_KEY))
  } finally {
    await merger.stop()
  }
})

test('lockout: wrong PINs typed alone count against the address in the login guard; after 5 the right PIN is refused there (429, Retry-After), not from another address; without PIN-only login the pseudo-user logs nobody in', async () => {
  const central = await mesh.addCentral()
  await directoryWithUsers(central)
  let now = Date.now()
  const app = buildHttpApp({ mesh: {} as MeshApi, adminToken: 'the-admin-token-1234', logger, now: () => now, logins: new LoginGuard({ now: () => now }), users: panelLogins(central.store, CARD_KEY, { pinOnlyLogin: true }), plugins: [] })
  try {
    const login = async (pin: string, remoteAddress = '192.0.2.10'): Promise<{ status: number, body: { user?: string, error?: string }, retryAfter?: string }> => {
      const r = await app.inject({ method: 'POST', url: '/api/login', payload: { username: PIN_ONLY_USERNAME, pin }, remoteAddress })
      return { status: r.statusCode, body: r.json(), ...(r.headers['retry-after'] !== undefined ? { retryAfter: String(r.headers['retry-after']) } : {}) }
    }
    const ok = await login('2468')
    assert.equal([ok.status, ok.body.user], [200, 'alice'])
    for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) assert.is((await login(String(1000 + i))).status, 401, `wrong PIN ${i + 1}`)
    const locked = await login('2468')
    assert.is(locked.status, 429, 'the right PIN from the locked-out address')
    assert.ok(Number(locked.retryAfter) > 0, 'says how long to wait')
    assert.match(locked.body.error ?? '', /try again in \d+ seconds/)
    assert.equal((await login('1357', '192.0.2.11')).body.user, 'bob', 'another address is not locked out')
    now += 16 * 60_000 // the window passes
    assert.equal((await login('2468')).body.user, 'alice', 'after the window, the right PIN works again')
  } finally {
    await app.close()
  }
  const plain = buildHttpApp({ mesh: {} as MeshApi, adminToken: 'the-admin-token-1234', logger, users: panelLogins(central.store, CARD_KEY), plugins: [] })
  try {
    assert.is((await plain.inject({ method: 'POST', url: '/api/login', payload: { username: PIN_ONLY_USERNAME, pin: '2468' } })).statusCode, 401, 'a terminal without --pin-only-login')
    assert.is((await plain.inject({ method: 'POST', url: '/api/login', payload: { username: 'alice', pin: '2468' } })).statusCode, 200, 'username + PIN as before')
  } finally {
    await plain.close()
  }
})

test.run()
