// The encrypted persistence (crdt/encrypted-persistence.ts) over a real level database: what is
// stored comes back, what lands on disk is sealed (no plaintext byte in any file of the
// folder), a flipped byte or a value moved to another document is refused with a named error,
// a wrong key is refused before the folder changes, and a plaintext database is migrated on
// open with nothing lost and no plaintext left on disk; a plain open of an encrypted database is
// refused. The terminal's login state (node/login-state.ts) is sealed with the same key.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { pino } from 'pino'
import { LevelPersistence, EncryptedDatabaseError } from '../crdt/persistence.ts'
import { persistentLoginGuard, readLoginFailures, LOGIN_FAILURES_FILE, SealedLoginStateError } from '../node/login-state.ts'
import { until } from '../simulations/wait.ts'
import { defaultStoreKeyFile, encryptsStore, openNodePersistence, readStoreKey, StoreKeyFileError, StoreKeyRequiredError } from '../node/store-key.ts'
import { EncryptedPersistence, ENCRYPTION_FILE, FORMAT_V1, TamperedEntryError, WrongStoreKeyError, isEncryptedLevel, newStoreKey } from '../crdt/encrypted-persistence.ts'
import { jobsDoc, directoryDoc, peerId } from '../crdt/names.ts'
import { tempDir } from '../simulations/node-process.ts'

const jobs = jobsDoc(peerId('terminal-a1'), '2026-12')
const directory = directoryDoc()
const encoder = new TextEncoder()
/** Values that look like what the directory holds: a reader must not find them on disk. */
const SECRET_A = 'scrypt$32768$8$1$c2VjcmV0LXNhbHQtYWxpY2U=$aGFzaC1vZi1hbGljZXMtcGlu'
const SECRET_B = 'card-index-5f1e0a9c3d7b2486e1f0a9c3d7b24861'
const value = (text: string): Uint8Array => encoder.encode(text)
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const quiet = pino({ level: 'silent' })

let dir = ''
let db = ''
test.before.each(async () => { dir = await tempDir('printmesh-encrypted-'); db = join(dir, 'db') })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

/** Every file below `root` with the sha256 of its bytes. */
async function fingerprint (root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name)] = createHash('sha256').update(await readFile(join(e.parentPath, e.name))).digest('hex')
  }
  return out
}

/** Whether any file below `root` holds `needle`. */
async function onDisk (root: string, needle: string): Promise<boolean> {
  const bytes = Buffer.from(needle)
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && (await readFile(join(e.parentPath, e.name))).includes(bytes)) return true
  }
  return false
}

/** The raw level entries (key → value) of the database, with the persistence closed. */
async function raw<T> (fn: (level: ClassicLevel<string, Uint8Array>) => Promise<T>): Promise<T> {
  const level = new ClassicLevel<string, Uint8Array>(db, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await level.open()
  try { return await fn(level) } finally { await level.close() }
}
const keysOf = async (level: ClassicLevel<string, Uint8Array>, doc: string): Promise<string[]> => {
  const out: string[] = []
  for await (const k of level.keys()) if (k.split('\u0000')[1] === doc) out.push(k)
  return out
}

test('what is appended and compacted loads back, across a reopen; on disk every value is sealed (format byte first) and no plaintext is in any file', async () => {
  const key = newStoreKey()
  let { persistence: p, report } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  assert.is(report.outcome, 'created')
  await p.append(directory, value(SECRET_A))
  await p.append(directory, value(SECRET_B))
  for (let i = 0; i < 30; i++) await p.append(jobs, value(`job ${i}`))
  await p.compact(jobs, [value('jobs snapshot'), value('job 30')])
  await p.close();
  ({ persistence: p, report } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  assert.is(report.outcome, 'opened')
  assert.equal((await p.load(directory)).map(text), [SECRET_A, SECRET_B])
  assert.equal((await p.load(jobs)).map(text), ['jobs snapshot', 'job 30'])
  assert.equal((await p.names()).sort(), [directory, jobs].sort())
  await p.remove(jobs)
  assert.equal(await p.load(jobs), [])
  await p.close()
  await raw(async (level) => {
    for await (const v of level.values()) assert.is(v[0], FORMAT_V1)
  })
  for (const s of [SECRET_A, SECRET_B, 'jobs snapshot']) assert.not.ok(await onDisk(dir, s), `${s} is on disk`)
  assert.ok(await isEncryptedLevel(db))
})

test('a flipped byte in a stored value is refused with TamperedEntryError naming the document', async () => {
  const key = newStoreKey()
  let { persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  await p.append(directory, value(SECRET_A))
  await p.close()
  await raw(async (level) => {
    const [k] = await keysOf(level, directory)
    const v = Uint8Array.from(await level.get(k) as Uint8Array)
    v[v.length - 20] ^= 0x01 // inside the ciphertext
    await level.put(k, v)
  });
  ({ persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  try {
    await p.load(directory)
    assert.unreachable('a tampered value loaded')
  } catch (err) {
    assert.instance(err, TamperedEntryError)
    assert.match((err as Error).message, /v1\/directory/)
    assert.match((err as Error).message, /altered on disk/)
  } finally {
    await p.close()
  }
})

test('a value moved under another document\'s keys is refused: the document name is bound to the value', async () => {
  const key = newStoreKey()
  let { persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  await p.append(directory, value(SECRET_A))
  await p.append(jobs, value('job 1'))
  await p.close()
  await raw(async (level) => {
    const [from] = await keysOf(level, directory)
    const [to] = await keysOf(level, jobs)
    await level.put(to, await level.get(from) as Uint8Array)
  });
  ({ persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  try {
    assert.equal((await p.load(directory)).map(text), [SECRET_A], 'the original still opens')
    await p.load(jobs)
    assert.unreachable('the moved value loaded')
  } catch (err) {
    assert.instance(err, TamperedEntryError)
    assert.match((err as Error).message, /v1\/jobs\/terminal-a1/)
  } finally {
    await p.close()
  }
})

test('another key is refused with WrongStoreKeyError naming the key, and the folder is byte-unchanged; the right key still opens it', async () => {
  const key = newStoreKey()
  let { persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  await p.append(directory, value(SECRET_A))
  await p.close()
  const before = await fingerprint(dir)
  try {
    await EncryptedPersistence.openLevel(db, newStoreKey(), '/media/usb/other.store-key')
    assert.unreachable('another key opened the database')
  } catch (err) {
    assert.instance(err, WrongStoreKeyError)
    assert.match((err as Error).message, /\/media\/usb\/other\.store-key/)
  }
  assert.equal(await fingerprint(dir), before, 'no file changed')
  ;({ persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  assert.equal((await p.load(directory)).map(text), [SECRET_A])
  await p.close()
})

test('a plaintext database is migrated on open: every document loads as before, and no plaintext is left in any file', async () => {
  const plain = await LevelPersistence.open(db)
  await plain.append(directory, value(SECRET_A))
  await plain.append(directory, value(SECRET_B))
  for (let i = 0; i < 50; i++) await plain.append(jobs, value(`plain job ${i}`))
  await plain.close()
  assert.ok(await onDisk(dir, SECRET_A), 'the plaintext database holds the secret (the search can fail)')
  const key = newStoreKey()
  let { persistence: p, report } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  assert.equal(report, { outcome: 'migrated', migrated: 2 })
  assert.equal((await p.load(directory)).map(text), [SECRET_A, SECRET_B])
  assert.equal((await p.load(jobs)).map(text), Array.from({ length: 50 }, (_, i) => `plain job ${i}`))
  await p.append(jobs, value('after the migration'))
  await p.close()
  for (const s of [SECRET_A, SECRET_B, 'plain job 7']) assert.not.ok(await onDisk(dir, s), `${s} is still on disk`)
  ;({ persistence: p, report } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  assert.is(report.outcome, 'opened')
  assert.is((await p.load(jobs)).length, 51)
  await p.close()
})

test('a migration cut short resumes at the next open: sealed values are kept, plaintext ones sealed', async () => {
  const key = newStoreKey()
  let { persistence: p } = await EncryptedPersistence.openLevel(db, key, 'the test key')
  await p.append(jobs, value('sealed before the cut'))
  await p.close()
  // as if the process died mid-migration: the marker still says so, one value still plaintext
  const markerPath = join(db, ENCRYPTION_FILE)
  const marker = JSON.parse(await readFile(markerPath, 'utf8')) as { state: string }
  await writeFile(markerPath, JSON.stringify({ ...marker, state: 'migrating' }))
  await raw(async (level) => { await level.put(['v1', directory, 'u', '0'.padStart(16, '0')].join('\u0000'), value(SECRET_A)) })
  let report
  ;({ persistence: p, report } = await EncryptedPersistence.openLevel(db, key, 'the test key'))
  assert.is(report.outcome, 'migrated')
  assert.equal((await p.load(jobs)).map(text), ['sealed before the cut'])
  assert.equal((await p.load(directory)).map(text), [SECRET_A])
  await p.close()
  assert.not.ok(await onDisk(dir, SECRET_A))
  assert.is((JSON.parse(await readFile(markerPath, 'utf8')) as { state: string }).state, 'encrypted')
})

test('a plain open of an encrypted database is refused with EncryptedDatabaseError (it would write plaintext among sealed values)', async () => {
  const { persistence: p } = await EncryptedPersistence.openLevel(db, newStoreKey(), 'the test key')
  await p.append(directory, value(SECRET_A))
  await p.close()
  const before = await fingerprint(dir)
  try {
    await LevelPersistence.open(db)
    assert.unreachable('a plain open succeeded')
  } catch (err) {
    assert.instance(err, EncryptedDatabaseError)
    assert.match((err as Error).message, /--store-key-file/)
  }
  assert.equal(await fingerprint(dir), before)
})

test('the login state sealed with the store key: no typed name in the file, the lockout back after a restart, a plaintext file from before sealed at once', async () => {
  const key = newStoreKey()
  // a PIN typed into the user name field is counted under that "name"
  const typed = '246801'
  await writeFile(join(dir, LOGIN_FAILURES_FILE), JSON.stringify({ version: 1, failures: [[`user:${typed}`, [Date.now()]]] }))
  const guard = await persistentLoginGuard(dir, {}, quiet, key)
  await until(async () => !await onDisk(dir, typed), 5_000, 'the plaintext file sealed')
  await guard.pin('bob', '10.0.0.9', async () => undefined)
  await until(async () => (await readLoginFailures(dir, key))?.includes('pair:bob|10.0.0.9') === true, 5_000, 'the failure stored')
  for (const s of [typed, 'bob', '10.0.0.9']) assert.not.ok(await onDisk(dir, s), `${s} in the file`)
  const again = await persistentLoginGuard(dir, {}, quiet, key)
  assert.equal(again.snapshot().failures.map(([k]) => k).sort(), ['ip:10.0.0.9', 'pair:bob|10.0.0.9', 'user:246801', 'user:bob'])
  try {
    await readLoginFailures(dir, newStoreKey())
    assert.unreachable('another key opened the login state')
  } catch (err) {
    assert.instance(err, SealedLoginStateError)
  }
})

test('the node\'s store key: created 0600 beside the data folder on a terminal\'s first start; a malformed key file, or an encrypted database opened without a key, is refused naming the file', async () => {
  assert.is(encryptsStore('terminal', undefined), true, 'a terminal always encrypts')
  assert.is(encryptsStore('site', undefined), false, 'a site only when asked')
  assert.is(encryptsStore('client', join(dir, 'client.store-key')), true)
  const data = join(dir, 'data-terminal')
  const keyFile = defaultStoreKeyFile(data)
  assert.is(keyFile, `${data}.store-key`, 'beside the data folder, not in it')
  const { persistence, key } = await openNodePersistence(data, { encrypt: true, keyFile }, quiet)
  await persistence.close()
  assert.is((await stat(keyFile)).mode & 0o777, 0o600)
  assert.equal(await readStoreKey(keyFile), key)
  await writeFile(keyFile, 'not a key\n')
  try {
    await openNodePersistence(data, { encrypt: true, keyFile }, quiet)
    assert.unreachable('a malformed key file was taken')
  } catch (err) {
    assert.instance(err, StoreKeyFileError)
    assert.match((err as Error).message, new RegExp(`${keyFile} does not hold a store key`))
  }
  try {
    await openNodePersistence(data, { encrypt: false, keyFile }, quiet)
    assert.unreachable('an encrypted database opened without its key')
  } catch (err) {
    assert.instance(err, StoreKeyRequiredError)
  }
  await rm(keyFile)
  try {
    await openNodePersistence(data, { encrypt: true, keyFile }, quiet)
    assert.unreachable('a key was made up for an encrypted database')
  } catch (err) {
    assert.instance(err, StoreKeyFileError)
    assert.match((err as Error).message, /is missing/)
  }
  assert.is(await readStoreKey(keyFile), undefined, 'no key file created in its place')
})

test.run()
