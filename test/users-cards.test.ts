// Cards (badges) in the directory: imported from a CSV column, stored only as a keyed index
// and a salted slow hash, found without a slow hash per user, checked once; bad, duplicate
// and foreign cards refused with the line that has them.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc } from '../crdt/names.ts'
import { getUser } from '../crdt/directory.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { generateIdentity } from '../transports/identity.ts'
import { cardKeyOf, checkCard, checkPin, importUsersCsv } from '../node/users.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'
import { containsBytes } from './helpers/files.ts'

const KEY = cardKeyOf(new Uint8Array(32).fill(7))
const OTHER_KEY = cardKeyOf(new Uint8Array(32).fill(8))

let dir = ''
let store: DocStore

test.before.each(async () => {
  dir = await tempDir('printmesh-cards-')
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
})

test.after.each(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

test('a card imported with its user logs that user in, in any letter case; a wrong or unknown card does not', async () => {
  await importUsersCsv(store, 'username,full name,PIN,card\nalice,Alice,2468,0004417223\nbob,Bob,1357,a1b2c3d4\ncarol,Carol,9999,\ndave,Dave,1111\n', 'site-a', 'test', KEY)
  assert.is(await checkCard(store, KEY, '0004417223'), 'alice')
  assert.is(await checkCard(store, KEY, 'A1B2C3D4'), 'bob')
  assert.is(await checkCard(store, KEY, ' a1b2c3d4 '), 'bob', 'readers may pad with spaces')
  assert.is(await checkCard(store, KEY, '0004417224'), undefined)
  assert.is(await checkCard(store, OTHER_KEY, '0004417223'), undefined, 'the index is keyed: another mesh\'s key finds nothing')
  assert.ok(await checkPin(store, 'carol', '9999'), 'a row with an empty card imports its user')
  assert.ok(await checkPin(store, 'dave', '1111'), 'a row of three columns beside rows of four too')
  assert.is(getUser(await store.open(directoryDoc()), 'carol')?.cards, undefined)
})

test('the card number is stored nowhere: only an index under the key and a salted slow hash', async () => {
  await importUsersCsv(store, 'alice,Alice,2468,0004417223\n', 'site-a', 'test', KEY)
  const [badge] = getUser(await store.open(directoryDoc()), 'alice')?.cards ?? []
  assert.match(badge.index, /^[0-9a-f]{64}$/)
  assert.match(badge.hash, /^scrypt\$/)
  assert.not.ok(JSON.stringify(badge).includes('0004417223'))
  await store.close()
  assert.not.ok(await containsBytes(dir, '0004417223'), 'not in the database files either')
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
})

test('bad, repeated and already-held cards are refused with their line, and nothing is written', async () => {
  await importUsersCsv(store, 'alice,Alice,2468,0004417223\n', 'site-a', 'test', KEY)
  const bad = await rejects(importUsersCsv(store, 'bob,Bob,1357,12\n', 'site-a', 'test', KEY), InvalidRequestError)
  assert.match(bad.message, /line 1: a card number must be 4 to 64 letters or digits/)
  const twice = await rejects(importUsersCsv(store, 'bob,Bob,1357,CAFE01\ncarol,Carol,9999,cafe01\n', 'site-a', 'test', KEY), InvalidRequestError)
  assert.match(twice.message, /line 2: this card is already on line 1/)
  const held = await rejects(importUsersCsv(store, 'bob,Bob,1357,0004417223\n', 'site-a', 'test', KEY), InvalidRequestError)
  assert.match(held.message, /the card of bob already belongs to alice/)
  const keyless = await rejects(importUsersCsv(store, 'bob,Bob,1357,BEEF01\n', 'site-a', 'test'), InvalidRequestError)
  assert.match(keyless.message, /no card key/)
  assert.is(getUser(await store.open(directoryDoc()), 'bob'), undefined, 'no refused row was written')
  // alice herself may be re-imported with her card
  await importUsersCsv(store, 'alice,Alice L.,2468,0004417223\n', 'site-a', 'test', KEY)
  assert.is(await checkCard(store, KEY, '0004417223'), 'alice')
})

test.run()
