// Users managed on central through /api/users, with real processes on loopback: central and
// a site joined to it (what central changes reaches the site: a new user logs in there, a
// disabled one is refused with the right PIN, a reset PIN replaces the old one), a
// standalone site managing its own users with the same routes, the JSON errors (400, 404,
// 409), and the CSV import's preview. Disabled users and cards are also checked on a bare
// store (checkPin, checkCard).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { generateIdentity } from '../transports/identity.ts'
import { cardKeyOf, checkCard, checkPin } from '../node/users.ts'
import { DirectoryAdmin } from '../node/directory-admin.ts'
import type { DirectoryUserView, ImportReport, UserPage } from '../ui/users-api.ts'

/** Replication to the site runs every second (anti-entropy) or at once: well within this. */
const MESH_TIMEOUT_MS = 30_000

let central: SiteProcess
let site: SiteProcess
let standalone: SiteProcess

/** A request as the node's admin; the status and the parsed answer, whatever the status. */
async function call (node: SiteProcess, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(node.httpUrl + path, {
    method,
    headers: { authorization: `Bearer ${node.adminToken}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {})
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** Asserts a JSON error with its status and message. */
async function refused (answer: Promise<{ status: number, body: Record<string, unknown> }>, status: number, message: RegExp): Promise<void> {
  const { status: got, body } = await answer
  assert.is(got, status, JSON.stringify(body))
  assert.match(String(body.error), message)
}

async function login (node: SiteProcess, username: string, pin: string): Promise<number> {
  const res = await fetch(`${node.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  return res.status
}

const userAt = async (node: SiteProcess, username: string): Promise<DirectoryUserView | undefined> => {
  const answer = await call(node, 'GET', `/api/users/${username}`)
  return answer.status === 200 ? answer.body.user as DirectoryUserView : undefined
}

test.before(async () => {
  central = await startCentral()
  const { joinString } = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-a' } })
  site = await startSite({ args: ['--site', 'site-a', '--join', joinString] })
  standalone = await startSite({ args: ['--site', 'branch-z'] })
})

test.after(async () => {
  await runCleanup([
    ['standalone site', async () => await standalone?.stop()],
    ['site', async () => await site?.stop()],
    ['central', async () => await central?.stop()]
  ])
})

test('central adds users, finds them by search a page at a time with the total, edits and deletes them', async () => {
  for (const [username, fullName, email, groups] of [
    ['alice', 'Alice Liddell', 'alice@example.org', ['finance', 'board']],
    ['bob', 'Bob Builder', 'bob@example.org', ['works']],
    ['carol', 'Carol Finance', undefined, ['finance']],
    ['dave', 'Dave', undefined, []]
  ] as const) {
    const added = await call(central, 'POST', '/api/users', { username, fullName, pin: '2468', ...(email !== undefined ? { email } : {}), groups })
    assert.is(added.status, 201, JSON.stringify(added.body))
  }
  const all = await admin<UserPage>(central, '/api/users')
  assert.equal(all.users.map((u) => u.username), ['alice', 'bob', 'carol', 'dave'])
  assert.is(all.total, 4)
  assert.not.ok(JSON.stringify(all).includes('scrypt'), 'no hash in an answer')
  const finance = await admin<UserPage>(central, '/api/users?q=FINANCE&limit=1')
  assert.equal([finance.users.map((u) => u.username), finance.total], [['alice'], 2], 'search matches groups and names, case-insensitively')
  const second = await admin<UserPage>(central, '/api/users?q=finance&offset=1&limit=1')
  assert.equal(second.users.map((u) => u.username), ['carol'])

  const edited = await call(central, 'PATCH', '/api/users/bob', { fullName: 'Robert Builder', email: null, groups: ['works', 'site'], homeSite: 'site-a', delegates: ['alice'] })
  assert.is(edited.status, 200, JSON.stringify(edited.body))
  const bob = await userAt(central, 'bob')
  assert.equal({ ...bob, updatedAt: 0 }, { username: 'bob', fullName: 'Robert Builder', groups: ['works', 'site'], homeSite: 'site-a', delegates: ['alice'], disabled: false, source: 'admin', cards: [], updatedAt: 0 })

  assert.is((await call(central, 'DELETE', '/api/users/alice')).status, 200)
  assert.is(await userAt(central, 'alice'), undefined)
  assert.equal((await userAt(central, 'bob'))?.delegates, [], 'a deleted user is nobody\'s delegate any more')
  await refused(call(central, 'GET', '/api/users/alice'), 404, /no user alice/)
})

test('bad values and conflicts are refused with JSON errors: 400 for bad values, 404 for unknown users, 409 for taken names and cards', async () => {
  assert.is((await call(central, 'POST', '/api/users', { username: 'erin', fullName: 'Erin', pin: '1357', cards: ['CAFE0001'] })).status, 201)
  await refused(call(central, 'POST', '/api/users', { username: 'erin', fullName: 'Erin again', pin: '1357' }), 409, /user erin already exists/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '12' }), 400, /PIN must be 4 to 12 digits/)
  await refused(call(central, 'POST', '/api/users', { username: 'no spaces', fullName: 'X', pin: '1234' }), 400, /invalid username/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', email: 'not-an-address' }), 400, /invalid email/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', cards: ['x!'] }), 400, /card number must be/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', cards: ['cafe0001'] }), 409, /already belongs to erin/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', delegates: ['nobody'] }), 400, /delegate nobody is not a user/)
  await refused(call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', role: 'admin' }), 400, /unknown field role/)
  await refused(call(central, 'PATCH', '/api/users/erin', { delegates: ['erin'] }), 400, /own delegate/)
  await refused(call(central, 'PATCH', '/api/users/nobody', { fullName: 'N' }), 404, /no user nobody/)
  await refused(call(central, 'POST', '/api/users/nobody/pin', { pin: '1234' }), 404, /no user nobody/)
  await refused(call(central, 'DELETE', '/api/users/erin/cards', { card: 'BEEF0001' }), 404, /holds no such card/)
  await refused(call(central, 'GET', '/api/users?limit=5000'), 400, /limit must be/)
  assert.is(await userAt(central, 'frank'), undefined, 'nothing refused was written')

  const erin = await userAt(central, 'erin')
  assert.is(erin?.cards.length, 1)
  const removed = await call(central, 'DELETE', '/api/users/erin/cards', { id: erin?.cards[0].id })
  assert.equal((removed.body.user as DirectoryUserView).cards, [], 'a card is removed by the id the list shows')
  // the card is free now: someone else may have it
  assert.is((await call(central, 'POST', '/api/users', { username: 'frank', fullName: 'Frank', pin: '1234', cards: ['CAFE0001'] })).status, 201)
  // without the admin token: nothing
  const anonymous = await fetch(`${central.httpUrl}/api/users`)
  assert.is(anonymous.status, 401)
})

test('a user added on central logs in at the joined site; disabled, the right PIN is refused there; a reset PIN replaces the old one', async () => {
  assert.is((await call(central, 'POST', '/api/users', { username: 'gina', fullName: 'Gina', pin: '4711' })).status, 201)
  await until(async () => await userAt(site, 'gina') !== undefined, MESH_TIMEOUT_MS, 'gina at the site')
  assert.is(await login(site, 'gina', '4711'), 200)

  assert.is((await call(central, 'PATCH', '/api/users/gina', { disabled: true })).status, 200)
  await until(async () => (await userAt(site, 'gina'))?.disabled === true, MESH_TIMEOUT_MS, 'gina disabled at the site')
  assert.is(await login(site, 'gina', '4711'), 401, 'a disabled user\'s right PIN is refused')

  assert.is((await call(central, 'PATCH', '/api/users/gina', { disabled: false })).status, 200)
  assert.is((await call(central, 'POST', '/api/users/gina/pin', { pin: '8080' })).status, 200)
  const before = (await userAt(central, 'gina'))?.updatedAt
  await until(async () => { const g = await userAt(site, 'gina'); return g?.disabled === false && g.updatedAt === before }, MESH_TIMEOUT_MS, 'gina enabled with her new PIN at the site')
  assert.is(await login(site, 'gina', '8080'), 200)
  assert.is(await login(site, 'gina', '4711'), 401, 'the old PIN no longer works')
})

test('a site that joined a mesh refuses user changes with 409, pointing to central; its users still list', async () => {
  await refused(call(site, 'POST', '/api/users', { username: 'hank', fullName: 'Hank', pin: '1234' }), 409, /users are managed on central/)
  await refused(call(site, 'PATCH', '/api/users/gina', { fullName: 'G' }), 409, /users are managed on central/)
  await refused(call(site, 'POST', '/api/users/import', 'hank,Hank,1234\n', 'text/csv'), 409, /users are managed on central/)
  const preview = await call(site, 'POST', '/api/users/import?dryRun=1', 'hank,Hank,1234\n', 'text/csv')
  assert.is(preview.status, 200, 'a preview writes nothing, so a member may show one')
  assert.ok((await admin<UserPage>(site, '/api/users?q=gina')).total === 1)
})

test('a standalone site manages its own users with the same routes, and its users log in there', async () => {
  assert.is((await call(standalone, 'POST', '/api/users', { username: 'ivan', fullName: 'Ivan', pin: '5555' })).status, 201)
  assert.is((await userAt(standalone, 'ivan'))?.homeSite, 'branch-z', 'a site\'s new users are at home there')
  assert.is(await login(standalone, 'ivan', '5555'), 200)
  assert.is((await call(standalone, 'PATCH', '/api/users/ivan', { disabled: true })).status, 200)
  assert.is(await login(standalone, 'ivan', '5555'), 401)
  const imported = await call(standalone, 'POST', '/api/users/import', 'jane,Jane,1212\n', 'text/csv')
  assert.is(imported.status, 200, JSON.stringify(imported.body))
  assert.is((await userAt(standalone, 'jane'))?.homeSite, 'branch-z', 'imported users without a home site get this site')
})

test('CSV import on central: a header names the columns; the preview reports added, changed, unchanged and line errors without writing; the import applies it', async () => {
  await call(central, 'POST', '/api/users', { username: 'kim', fullName: 'Kim', pin: '3333', email: 'kim@example.org' })
  await call(central, 'POST', '/api/users', { username: 'lee', fullName: 'Lee', pin: '4444' })
  const csv = [
    'Username,Full Name,PIN,Email,Groups,Card,Home Site',
    'kim,Kim,3333,kim@example.org,,,', // the same: unchanged (the PIN is checked against its hash)
    'lee,Lee Chang,4444,lee@example.org,ops;night,,site-a', // changed: full name, email, groups, home site
    'mia,Mia,6060,,ops,D00D0001,site-a', // new, with a card
    'ned,Ned,12,,,,', // bad PIN
    'oli,Oli,7070,,,cafe0001,' // frank's card
  ].join('\n') + '\n'
  const preview = await call(central, 'POST', '/api/users/import?dryRun=1', csv, 'text/csv')
  assert.is(preview.status, 200, JSON.stringify(preview.body))
  const report = preview.body as unknown as ImportReport
  assert.equal(report.added, ['mia'])
  assert.equal(report.changed, [{ username: 'lee', fields: ['fullName', 'email', 'groups', 'homeSite'] }])
  assert.equal(report.unchanged, ['kim'])
  assert.equal(report.errors, [{ line: 5, message: 'a PIN must be 4 to 12 digits' }, { line: 6, message: 'the card of oli already belongs to frank' }])
  assert.is(await userAt(central, 'mia'), undefined, 'a preview writes nothing')

  await refused(call(central, 'POST', '/api/users/import', csv, 'text/csv'), 400, /nothing imported: 2 lines cannot be: line 5: a PIN must be/)
  const fixed = csv.split('\n').filter((l) => !l.startsWith('ned') && !l.startsWith('oli')).join('\n')
  const done = await call(central, 'POST', '/api/users/import', fixed, 'text/csv')
  assert.is(done.status, 200, JSON.stringify(done.body))
  assert.is((done.body as unknown as ImportReport).imported, 2)
  assert.equal({ ...await userAt(central, 'lee'), updatedAt: 0 }, { username: 'lee', fullName: 'Lee Chang', email: 'lee@example.org', groups: ['ops', 'night'], homeSite: 'site-a', delegates: [], disabled: false, source: 'admin', cards: [], updatedAt: 0 })
  assert.is((await userAt(central, 'mia'))?.cards.length, 1)
  // the original form still imports, and reimporting the same rows changes nothing
  const old = 'pat,Pat Old-Style,9090\nquin,Quin,9191,B0B00001\n'
  assert.equal((await call(central, 'POST', '/api/users/import', old, 'text/csv')).body.added, ['pat', 'quin'])
  const again = (await call(central, 'POST', '/api/users/import', old, 'text/csv')).body as unknown as ImportReport
  assert.equal([again.added, again.changed, again.unchanged], [[], [], ['pat', 'quin']])
  await until(async () => await login(site, 'mia', '6060') === 200, MESH_TIMEOUT_MS, 'mia, imported on central, logs in at the site')
})

test('a disabled user is refused by PIN and by card on a bare directory, like an unknown one', async () => {
  const dir = await tempDir('printmesh-users-admin-')
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
  try {
    const cardKey = cardKeyOf(new Uint8Array(32).fill(3))
    const directory = new DirectoryAdmin({ store, cardKey, authority: () => true })
    await directory.add({ username: 'rita', fullName: 'Rita', pin: '2222', cards: ['0004417223'] }, 'test')
    assert.ok(await checkPin(store, 'rita', '2222'))
    assert.is(await checkCard(store, cardKey, '0004417223'), 'rita')
    await directory.edit('rita', { disabled: true }, 'test')
    assert.not.ok(await checkPin(store, 'rita', '2222'))
    assert.is(await checkCard(store, cardKey, '0004417223'), undefined)
    await directory.edit('rita', { disabled: false }, 'test')
    assert.is(await checkCard(store, cardKey, '0004417223'), 'rita')
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
