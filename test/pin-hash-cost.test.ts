// The scrypt cost of PINs and cards (crdt/directory.ts PIN_SCRYPT_N), apart from that of admin
// passwords and the mesh token (PASSWORD_SCRYPT_N): every writer of a PIN or card hash uses the
// PIN cost, and hashes written before at 2^15 still verify, at their own cost.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc } from '../crdt/names.ts'
import {
  PIN_SCRYPT_N, PASSWORD_SCRYPT_N, hashPin, cardCredential, cardIndex, indexedPinHash, slowHash, verifyPin, getUser, putUser, pinKeyOf
} from '../crdt/directory.ts'
import { generateIdentity } from '../transports/identity.ts'
import { cardKeyOf, checkCard, checkPin, importUsersCsv } from '../node/users.ts'
import { DirectoryAdmin } from '../node/directory-admin.ts'
import { mergeHandover } from '../node/directory-handover.ts'
import type { Certificate } from '../crdt/license.ts'
import { tempDir } from '../simulations/node-process.ts'

const KEY = cardKeyOf(new Uint8Array(32).fill(7))
/** PIN 482916 as hashed before PINs had a cost of their own: scrypt N=2^15, r=8, p=1, a 16-byte salt. */
const OLD_PIN_HASH = 'scrypt$32768$8$1$b2xkLXBpbi1zYWx0LTE2Yg==$Ix8TkdZqLeRdVFrKV0lYy9cx4VURgRITu8QgW5IAvcI='
/** Card 0004417223 (normalized) hashed the same way. */
const OLD_CARD_HASH = 'scrypt$32768$8$1$b2xkLWNhcmQtc2FsdC0xNg==$R4a68zZQAqZeeaf800yWtxD8JrZA2Le6LwWlY7hNKwU='

/** `[N, r, p]` of a stored hash. */
const costOf = (hash: string): number[] => {
  const [scheme, n, r, p, salt, key] = hash.split('$')
  assert.is(scheme, 'scrypt')
  assert.ok(salt !== '' && key !== '' && key !== undefined, `a whole hash: ${hash}`)
  return [Number(n), Number(r), Number(p)]
}

let dir = ''
let store: DocStore

test.before.each(async () => {
  dir = await tempDir('printmesh-pin-cost-')
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
})

test.after.each(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

test('PINs and cards have a cost of their own, below that of passwords and the mesh token', async () => {
  assert.is(PASSWORD_SCRYPT_N, 2 ** 15, 'admin passwords and the mesh token keep 2^15')
  assert.ok(PIN_SCRYPT_N < PASSWORD_SCRYPT_N, 'a PIN check fits a terminal\'s login budget')
  assert.ok(PIN_SCRYPT_N >= 2 ** 10, 'a stolen PIN hash still costs CPU-minutes per user, not nothing')
  assert.equal(costOf(await hashPin('482916')), [PIN_SCRYPT_N, 8, 1])
  assert.equal(costOf((await cardCredential('0004417223', KEY)).hash), [PIN_SCRYPT_N, 8, 1])
  assert.equal(costOf((await indexedPinHash('482916', pinKeyOf(KEY))).pinHash), [PIN_SCRYPT_N, 8, 1])
  assert.equal(costOf(await slowHash('a long admin password')), [PASSWORD_SCRYPT_N, 8, 1], 'slowHash (admin accounts, the mesh token) keeps the password cost')
  assert.ok(await verifyPin('482916', await hashPin('482916')))
  assert.not.ok(await verifyPin('482917', await hashPin('482916')))
})

test('a PIN or card hashed at 2^15 before still verifies, at its own cost; a wrong one does not', async () => {
  assert.ok(await verifyPin('482916', OLD_PIN_HASH))
  assert.not.ok(await verifyPin('482917', OLD_PIN_HASH))
  assert.ok(await verifyPin('0004417223', OLD_CARD_HASH))
  assert.not.ok(await verifyPin('0004417224', OLD_CARD_HASH))
  // and through the login checks, beside a user hashed at the new cost
  const directory = await store.open(directoryDoc())
  const fresh = await cardCredential('A1B2C3D4', KEY)
  await store.transact(directoryDoc(), { kind: 'admin', user: 'test' }, (doc) => {
    putUser(doc, { username: 'old', fullName: 'Old Hash', pinHash: OLD_PIN_HASH, cards: [{ index: cardIndex('0004417223', KEY), hash: OLD_CARD_HASH }], updatedAt: 1 })
    putUser(doc, { username: 'new', fullName: 'New Hash', pinHash: '', cards: [fresh], updatedAt: 1 })
  })
  assert.ok(await checkPin(store, 'old', '482916'), 'an old PIN hash logs its user in')
  assert.not.ok(await checkPin(store, 'old', '111111'))
  assert.is(await checkCard(store, KEY, '0004417223'), 'old', 'an old card hash too')
  assert.is(await checkCard(store, KEY, 'a1b2c3d4'), 'new')
  assert.is(getUser(directory, 'old')?.pinHash, OLD_PIN_HASH, 'a login does not rewrite the stored hash')
})

test('a hash naming a cost this code never writes is refused unverified, without spending it (a joining site\'s p = 100,000 would hold a thread for minutes)', async () => {
  const good = await slowHash('correct horse', PIN_SCRYPT_N)
  const [, , , , salt, hash] = good.split('$')
  assert.ok(await verifyPin('correct horse', good))
  const started = performance.now()
  for (const [n, r, p] of [[PIN_SCRYPT_N, 8, 100_000], [PIN_SCRYPT_N, 64, 1], [PASSWORD_SCRYPT_N * 2, 8, 1], [PIN_SCRYPT_N / 2, 8, 1], [3000, 8, 1]]) {
    assert.not.ok(await verifyPin('correct horse', ['scrypt', n, r, p, salt, hash].join('$')), `N=${n} r=${r} p=${p} refused`)
  }
  // refused before any scrypt: the five together take far less than one scrypt at p = 100,000 (minutes)
  assert.ok(performance.now() - started < 5_000, `refused at once (${Math.round(performance.now() - started)} ms)`)
})

test('the CSV import and the users admin write PIN and card hashes at the PIN cost', async () => {
  await importUsersCsv(store, 'username,full name,PIN,card\nalice,Alice,2468,0004417223\n', 'site-a', 'test', KEY)
  const admin = new DirectoryAdmin({ store, cardKey: KEY, authority: () => true, homeSite: 'site-a' })
  await admin.add({ username: 'bob', fullName: 'Bob', pin: '1357', cards: ['a1b2c3d4'] }, 'test')
  await admin.add({ username: 'carol', fullName: 'Carol', pin: '9753' }, 'test')
  await admin.setPin('carol', '8642', 'test')
  await admin.addCard('carol', 'c0ffee01', 'test')
  const directory = await store.open(directoryDoc())
  for (const name of ['alice', 'bob', 'carol']) {
    const user = getUser(directory, name)
    assert.ok(user !== undefined, name)
    assert.equal(costOf(user.pinHash), [PIN_SCRYPT_N, 8, 1], `${name}'s PIN`)
    assert.is(user.cards?.length, 1, `${name}'s card`)
    for (const card of user.cards ?? []) assert.equal(costOf(card.hash), [PIN_SCRYPT_N, 8, 1], `${name}'s card`)
  }
  assert.ok(await checkPin(store, 'alice', '2468'))
  assert.ok(await checkPin(store, 'carol', '8642'))
  assert.is(await checkCard(store, KEY, 'C0FFEE01'), 'carol')
})

test('central takes a standalone site\'s users with PIN hashes of either cost, and they log in', async () => {
  const cert = { peer: 'peer-site-b', role: 'site', site: 'site-b', issuedAt: 1, expiresAt: 2 } as unknown as Certificate
  const report = await mergeHandover(store, cert, [
    { username: 'old', fullName: 'Old Hash', pinHash: OLD_PIN_HASH },
    { username: 'new', fullName: 'New Hash', pinHash: await hashPin('135790') },
    { username: 'bad', fullName: 'No Hash', pinHash: 'scrypt$2048$8$1$' }
  ], 5)
  assert.equal(report.added, ['old', 'new'])
  assert.equal(report.conflicts.map((c) => c.username), ['bad'])
  assert.ok(await checkPin(store, 'old', '482916'))
  assert.ok(await checkPin(store, 'new', '135790'))
})

test.run()
