// The directory's lookups kept between changes (crdt/directory.ts: the sorted users, card index →
// holder, PIN index → users, delegate → delegators): they answer as a pass over every user would, after local and
// remote changes, and inside a transaction that has just changed the users.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import * as Y from 'yjs'
import { putUser, getUser, removeUser, listUsers, delegatorsOf, userByCardIndex, usersByPinIndex, currentPinIndex, type DirectoryUser } from '../crdt/directory.ts'

const user = (username: string, extra: Partial<DirectoryUser> = {}): DirectoryUser => ({ username, fullName: username, pinHash: '', updatedAt: 1, ...extra })
const card = (index: string): { index: string, hash: string } => ({ index, hash: 'scrypt$2048$8$1$AAAA$BBBB' })

/** What a pass over every user answers (the lookups before they were kept). */
const scan = {
  list: (doc: Y.Doc): string[] => [...doc.getMap<DirectoryUser>('users').values()].map((u) => u.username).sort((a, b) => a.localeCompare(b)),
  delegators: (doc: Y.Doc, d: string): string[] => [...doc.getMap<DirectoryUser>('users').values()].filter((u) => u.disabled !== true && u.delegates?.includes(d) === true).map((u) => u.username).sort(),
  card: (doc: Y.Doc, i: string): string | undefined => [...doc.getMap<DirectoryUser>('users').values()].find((u) => u.cards?.some((c) => c.index === i) === true)?.username,
  pin: (doc: Y.Doc, i: string): string[] => [...doc.getMap<DirectoryUser>('users').values()].filter((u) => currentPinIndex(u) === i).map((u) => u.username).sort((a, b) => a.localeCompare(b))
}
/** A PIN hash with this salt, and the PIN index bound to it. */
const pinOf = (salt: string, index: string): Pick<DirectoryUser, 'pinHash' | 'pinIndex'> => ({ pinHash: `scrypt$2048$8$1$${salt}$BBBB`, pinIndex: { index, salt } })

const agrees = (doc: Y.Doc, why: string): void => {
  assert.equal(listUsers(doc).map((u) => u.username), scan.list(doc), `${why}: the list`)
  for (const d of ['alice', 'bob', 'carol', 'dave', 'nobody']) assert.equal(delegatorsOf(doc, d), scan.delegators(doc, d), `${why}: delegators of ${d}`)
  for (const i of ['c1', 'c2', 'c3', 'c4', 'none']) assert.is(userByCardIndex(doc, i)?.username, scan.card(doc, i), `${why}: card ${i}`)
  for (const i of ['p1', 'p2', 'none']) assert.equal(usersByPinIndex(doc, i).map((u) => u.username), scan.pin(doc, i), `${why}: PIN index ${i}`)
}

test('the kept lookups answer as a scan, after each local change', () => {
  const doc = new Y.Doc()
  doc.transact(() => {
    putUser(doc, user('carol', { delegates: ['alice'], cards: [card('c3')], ...pinOf('s3', 'p1') }))
    putUser(doc, user('alice', { cards: [card('c1'), card('c2')], ...pinOf('s1', 'p1') }))
    putUser(doc, user('bob', { delegates: ['alice', 'alice', 'carol'], ...pinOf('s2', 'p2') }))
  })
  agrees(doc, 'at first')
  assert.equal(usersByPinIndex(doc, 'p1').map((u) => u.username), ['alice', 'carol'])
  putUser(doc, user('bob', { delegates: ['alice', 'alice', 'carol'], ...pinOf('s2', 'p2'), pinHash: 'scrypt$2048$8$1$new$BBBB' }))
  assert.equal(usersByPinIndex(doc, 'p2'), [], 'a PIN hash set without its index unbinds the old index')
  putUser(doc, user('bob', { delegates: ['alice', 'alice', 'carol'], ...pinOf('s2', 'p2') }))
  agrees(doc, 'the PIN set again with its index')
  assert.equal(delegatorsOf(doc, 'alice'), ['bob', 'carol'])
  assert.is(userByCardIndex(doc, 'c2')?.username, 'alice')
  assert.equal(listUsers(doc).map((u) => u.username), ['alice', 'bob', 'carol'])

  putUser(doc, { ...user('carol', { delegates: ['alice'], cards: [card('c3')] }), disabled: true })
  agrees(doc, 'carol disabled')
  assert.equal(delegatorsOf(doc, 'alice'), ['bob'], 'a disabled user delegates to nobody')

  putUser(doc, user('alice', { cards: [card('c2')] }))
  agrees(doc, 'a card removed')
  assert.is(userByCardIndex(doc, 'c1'), undefined)

  putUser(doc, user('dave', { cards: [card('c1')], delegates: ['bob'] }))
  agrees(doc, 'a user added')
  assert.is(userByCardIndex(doc, 'c1')?.username, 'dave')
  assert.equal(delegatorsOf(doc, 'bob'), ['dave'])

  removeUser(doc, 'bob')
  agrees(doc, 'a user removed')
  assert.equal(delegatorsOf(doc, 'alice'), [])

  // answers are the caller's to change
  listUsers(doc).pop()
  delegatorsOf(doc, 'bob').push('mallory')
  agrees(doc, 'after callers changed their answers')
})

test('the kept lookups follow remote updates', () => {
  const central = new Y.Doc()
  const terminal = new Y.Doc()
  central.on('update', (u: Uint8Array) => { Y.applyUpdate(terminal, u) })
  putUser(central, user('alice', { cards: [card('c1')] }))
  agrees(terminal, 'one user')
  putUser(central, user('bob', { delegates: ['alice'], cards: [card('c2')] }))
  agrees(terminal, 'a second user arrives')
  assert.equal(delegatorsOf(terminal, 'alice'), ['bob'])
  assert.is(userByCardIndex(terminal, 'c2')?.username, 'bob')
  putUser(central, { ...user('bob', { delegates: ['alice'], cards: [card('c2')] }), disabled: true })
  assert.equal(delegatorsOf(terminal, 'alice'), [], 'a user disabled on central delegates to nobody at once')
  removeUser(central, 'alice')
  assert.is(userByCardIndex(terminal, 'c1'), undefined, 'a user removed on central holds no card at once')
  agrees(terminal, 'after removal')
})

test('inside a transaction, and in observers of one, the lookups see its changes', () => {
  const doc = new Y.Doc()
  putUser(doc, user('alice', { cards: [card('c1')] }))
  agrees(doc, 'kept before the transaction')
  doc.transact(() => {
    putUser(doc, user('bob', { delegates: ['alice'], cards: [card('c2')] }))
    removeUser(doc, 'alice')
    assert.equal(listUsers(doc).map((u) => u.username), ['bob'])
    assert.equal(delegatorsOf(doc, 'alice'), ['bob'])
    assert.is(userByCardIndex(doc, 'c1'), undefined)
    assert.is(userByCardIndex(doc, 'c2')?.username, 'bob')
    putUser(doc, user('carol', pinOf('s9', 'p1')))
    assert.equal(usersByPinIndex(doc, 'p1').map((u) => u.username), ['carol'])
  })
  agrees(doc, 'after it')
  const seen: string[][] = []
  // an observer registered before the lookups' own, reading the users as the change lands
  const other = new Y.Doc()
  other.getMap('users').observe(() => { seen.push(listUsers(other).map((u) => u.username)) })
  putUser(other, user('alice'))
  agrees(other, 'kept')
  putUser(other, user('bob'))
  assert.equal(seen, [['alice'], ['alice', 'bob']])
  assert.is(getUser(other, 'bob')?.username, 'bob')
})

test('10,000 users: the kept lookups answer in well under a millisecond', () => {
  const doc = new Y.Doc()
  doc.transact(() => {
    for (let i = 0; i < 10_000; i++) putUser(doc, user(`user${String(i).padStart(5, '0')}`, { cards: [card(`card${i}`)], ...(i % 100 === 0 ? { delegates: ['user00001'] } : {}) }))
  })
  assert.is(delegatorsOf(doc, 'user00001').length, 100)
  assert.is(userByCardIndex(doc, 'card9999')?.username, 'user09999')
  assert.is(listUsers(doc).length, 10_000)
  const t0 = performance.now()
  for (let k = 0; k < 100; k++) { delegatorsOf(doc, 'user00001'); userByCardIndex(doc, `card${k}`) }
  const each = (performance.now() - t0) / 100
  assert.ok(each < 0.5, `a card lookup and a delegators list took ${each.toFixed(3)} ms (a scan of 10,000 users takes ~2 ms each)`)
})

test.run()
