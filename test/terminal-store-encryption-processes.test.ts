// A stolen terminal data folder (issue 12 item 4) with real processes: central (users with
// known PINs and cards imported by the CLI), site-a, and a terminal of site-a started with
// `--store-key-file` outside its data folder. Users log in at the terminal and one enrols a
// card there; the terminal is stopped and every file of its data folder is searched for each
// PIN, card number, and credential hash or index as the directory holds them (text, raw bytes,
// hex, base64): none is found, while the same search over the site's unencrypted database finds
// every hash and index (so the search can fail). Started with another key, or without its key
// file, the terminal stops naming the key file and leaves its folder byte-unchanged. Restarted
// with its key while the site and central are stopped, it logs those users in offline. A terminal
// folder from before (unencrypted) is encrypted on its first start with a key, nothing lost.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { access, cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startTerminal, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'
import { startTerminalMesh, panelLogin, MESH_TIMEOUT_MS, type TerminalMesh, type PanelSession } from './helpers/terminal-mesh.ts'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc, enrolDoc, peerId, type DocName } from '../crdt/names.ts'
import { EncryptedPersistence } from '../crdt/encrypted-persistence.ts'
import { readStoreKey } from '../node/store-key.ts'
import { readLoginFailures, LOGIN_FAILURES_FILE } from '../node/login-state.ts'
import { listUsers } from '../crdt/directory.ts'
import { listEnrolments } from '../crdt/enrolment.ts'
import { signerFor } from '../transports/identity.ts'
import { loadOrCreatePeerKey, PEER_KEY_FILE } from '../transports/host.ts'

const USERS = {
  alice: { pin: '246801', card: '04A1B2C3D4' },
  bob: { pin: '135702', card: '0BB0CAFE77' }
}
/** The card alice registers at the terminal's panel (its enrolment document). */
const ENROLLED_CARD = '0C0FFEE123'

let mesh: TerminalMesh | undefined
let keys = ''
let keyFile = ''
/** The terminal as restarted by the offline test. */
let restarted: SiteProcess | undefined
/** What the first test searched for (the upgrade test searches again). */
let searched: Secret[] = []
function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const terminal = (): SiteProcess => m().terminals[0].node

test.before(async () => {
  keys = await tempDir('printmesh-store-keys-')
  keyFile = join(keys, 'terminal.store-key') // outside the data folder, as on other media
  mesh = await startTerminalMesh(USERS, [['--store-key-file', keyFile]])
})

test.after(async () => {
  await runCleanup([
    ['restarted terminal', async () => await restarted?.stop()],
    ['mesh', async () => await mesh?.stop()],
    ['key folder', async () => { if (keys !== '') await rm(keys, { recursive: true, force: true }) }]
  ])
})

/** A secret and the byte forms it could be stored in. */
interface Secret { what: string, forms: Array<{ form: string, bytes: Buffer }> }

const textForms = (s: string): Secret['forms'] => [...new Set([s, s.toLowerCase(), s.toUpperCase()])].map((t) => ({ form: `text ${t}`, bytes: Buffer.from(t) }))
/** Bytes as raw, hex (both cases) and base64 (standard and URL-safe). */
const byteForms = (b: Buffer): Secret['forms'] => [
  { form: 'raw', bytes: b },
  { form: 'hex', bytes: Buffer.from(b.toString('hex')) },
  { form: 'HEX', bytes: Buffer.from(b.toString('hex').toUpperCase()) },
  { form: 'base64', bytes: Buffer.from(b.toString('base64')) },
  { form: 'base64url', bytes: Buffer.from(b.toString('base64url')) }
]
/** A slow hash `scrypt$N$r$p$<salt b64>$<hash b64>`: the whole string, and its salt and hash in every form. */
function hashSecret (what: string, stored: string): Secret {
  const [, , , , salt, hash] = stored.split('$')
  return { what, forms: [...textForms(stored), ...byteForms(Buffer.from(salt, 'base64')), ...byteForms(Buffer.from(hash, 'base64'))] }
}
/** A keyed index (HMAC, hex as the directory holds it). */
const indexSecret = (what: string, hex: string): Secret => ({ what, forms: [...textForms(hex), ...byteForms(Buffer.from(hex, 'hex'))] })

/** Every (secret, form, file) found below `dir`. */
async function search (dir: string, secrets: Secret[]): Promise<Array<{ what: string, form: string, file: string }>> {
  const found: Array<{ what: string, form: string, file: string }> = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const file = join(e.parentPath, e.name)
    const bytes = await readFile(file)
    for (const s of secrets) for (const f of s.forms) if (bytes.includes(f.bytes)) found.push({ what: s.what, form: f.form, file })
  }
  return found
}

/** Every file below `dir` with the sha256 of its bytes. */
async function fingerprint (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name)] = createHash('sha256').update(await readFile(join(e.parentPath, e.name))).digest('hex')
  }
  return out
}

/**
 * The credential hashes and indexes a stopped node's (unencrypted) database holds: its directory
 * and the terminal's enrolments. Read from a copy: opening a level database moves its log into
 * compressed tables, where the search below could not see what the node itself left on disk.
 */
async function credentialsIn (node: SiteProcess, terminalPeer: string): Promise<Secret[]> {
  const copy = join(keys, 'site-db-copy')
  await cp(join(node.dataDir, 'db'), copy, { recursive: true })
  const store = new DocStore(await LevelPersistence.open(copy), signerFor(await loadOrCreatePeerKey(join(node.dataDir, PEER_KEY_FILE))))
  try {
    const secrets: Secret[] = []
    for (const u of listUsers(await store.open(directoryDoc()))) {
      secrets.push(hashSecret(`${u.username}'s PIN hash`, u.pinHash))
      if (u.pinIndex !== undefined) secrets.push(indexSecret(`${u.username}'s PIN index`, u.pinIndex.index))
      for (const [i, c] of (u.cards ?? []).entries()) secrets.push(indexSecret(`${u.username}'s card ${i} index`, c.index), hashSecret(`${u.username}'s card ${i} hash`, c.hash))
    }
    const peer = peerId(terminalPeer)
    for (const e of listEnrolments(await store.open(enrolDoc(peer)), peer)) {
      if (e.card !== undefined) secrets.push(indexSecret(`${e.user}'s enrolled card index`, e.card.index), hashSecret(`${e.user}'s enrolled card hash`, e.card.hash))
    }
    return secrets
  } finally {
    await store.close()
  }
}

/** A card login at a terminal's panel: its status and the user it logged in. */
async function cardLogin (node: SiteProcess, card: string): Promise<{ status: number, user?: string }> {
  const res = await fetch(`${node.httpUrl}/api/login/card`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card }) })
  const body = await res.json() as { user?: string }
  return { status: res.status, ...(body.user !== undefined ? { user: body.user } : {}) }
}

/** Whether `node` holds some of document `doc`, in sync with a peer (an empty document can read as in sync). */
async function holds (node: SiteProcess, doc: string): Promise<boolean> {
  const d = (await admin<{ documents: Array<{ doc: string, peers: Record<string, string>, changes: number }> }>(node, '/api/mesh')).documents.find((x) => x.doc === doc)
  return d !== undefined && d.changes > 0 && Object.values(d.peers).includes('in-sync')
}

/** Starting the terminal on its data folder fails; resolves to what it printed. */
async function refusedStart (args: string[]): Promise<string> {
  try {
    restarted = await startTerminal({ dataDir: terminal().dataDir, args: ['--printer', m().terminals[0].printer.uri, ...args] })
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('the terminal started')
}

test('a copy of the terminal\'s data folder holds no PIN, card number, credential hash or index in any form; the site\'s unencrypted database holds every hash and index', async () => {
  // users reach the terminal: alice by PIN, bob by card; alice registers a card there
  const alice = await panelLogin(terminal(), 'alice', USERS.alice.pin)
  assert.is(alice.status, 200)
  assert.equal(await cardLogin(terminal(), USERS.bob.card), { status: 200, user: 'bob' })
  const s = alice.session as PanelSession
  const enrolled = await fetch(`${terminal().httpUrl}/api/enrol/card`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify({ card: ENROLLED_CARD }) })
  assert.is(enrolled.status, 200)
  assert.equal(await cardLogin(terminal(), ENROLLED_CARD), { status: 200, user: 'alice' })
  const enrolment = enrolDoc(peerId(terminal().peer))
  await until(async () => await holds(m().site, enrolment), MESH_TIMEOUT_MS, 'the site holds the terminal\'s enrolment')
  const logins = join(terminal().dataDir, 'login-failures.json')
  assert.is((await panelLogin(terminal(), USERS.bob.pin, USERS.alice.pin)).status, 401, 'a PIN typed as a user name is counted as one')
  await until(async () => await access(logins).then(() => true, () => false), MESH_TIMEOUT_MS, 'the failure stored')
  await terminal().kill('SIGTERM')
  await m().site.kill('SIGTERM')
  await m().central.kill('SIGTERM')

  const credentials = await credentialsIn(m().site, terminal().peer)
  assert.ok(credentials.some((c) => c.what === 'alice\'s enrolled card hash'), 'the site holds the card enrolled at the terminal')
  assert.ok(credentials.filter((c) => c.what.includes('PIN index')).length === 2, 'both PINs indexed')
  // the site keeps them unencrypted: the search finds each (so it can fail)
  const atSite = await search(m().site.dataDir, credentials)
  for (const c of credentials) assert.ok(atSite.some((f) => f.what === c.what), `the search finds ${c.what} in the site's folder`)
  const secrets = [
    ...credentials,
    ...Object.entries(USERS).flatMap(([u, { pin, card }]) => [{ what: `${u}'s PIN`, forms: textForms(pin) }, { what: `${u}'s card number`, forms: [...textForms(card), ...byteForms(Buffer.from(card, 'hex'))] }]),
    { what: 'the enrolled card number', forms: [...textForms(ENROLLED_CARD), ...byteForms(Buffer.from(ENROLLED_CARD, 'hex'))] }
  ]
  assert.ok(Object.keys(await fingerprint(join(terminal().dataDir, 'db'))).length > 0, 'the terminal has a database to steal')
  searched = secrets
  const atTerminal = await search(terminal().dataDir, secrets)
  assert.equal(atTerminal, [], 'nothing found in the terminal\'s data folder')
  assert.ok(secrets.length >= 12, `${secrets.length} secrets searched`)
})

test('started with another key, or with its key file missing, the terminal stops naming the key file and its data folder is byte-unchanged', async () => {
  const before = await fingerprint(terminal().dataDir)
  const other = join(keys, 'other.store-key')
  await writeFile(other, randomBytes(32).toString('hex') + '\n', { mode: 0o600 })
  const wrong = await refusedStart(['--store-key-file', other])
  assert.match(wrong, new RegExp(`printmesh: the database \\S+ is encrypted with another key than ${other}`))
  assert.equal(await fingerprint(terminal().dataDir), before, 'no file of the data folder changed (another key)')
  const missing = join(keys, 'missing.store-key')
  const gone = await refusedStart(['--store-key-file', missing])
  assert.match(gone, new RegExp(`printmesh: the database \\S+ is encrypted, but its key file ${missing} is missing`))
  assert.is(await access(missing).then(() => true, () => false), false, 'no key made up in its place')
  assert.equal(await fingerprint(terminal().dataDir), before, 'no file of the data folder changed (no key)')
})

test('restarted with its key while the site and central are stopped, the terminal logs those users in offline: PIN, card, and the card enrolled at it', async () => {
  restarted = await startTerminal({ dataDir: terminal().dataDir, args: ['--printer', m().terminals[0].printer.uri, '--store-key-file', keyFile] })
  const status = await (await fetch(`${restarted.httpUrl}/api/panel/status`)).json() as { online: boolean }
  assert.is(status.online, false, 'the terminal is offline')
  assert.is((await panelLogin(restarted, 'alice', USERS.alice.pin)).status, 200, 'alice by PIN')
  assert.is((await panelLogin(restarted, 'bob', USERS.bob.pin)).status, 200, 'bob by PIN')
  assert.equal(await cardLogin(restarted, USERS.alice.card), { status: 200, user: 'alice' }, 'alice by card')
  assert.equal(await cardLogin(restarted, USERS.bob.card), { status: 200, user: 'bob' }, 'bob by card')
  assert.equal(await cardLogin(restarted, ENROLLED_CARD), { status: 200, user: 'alice' }, 'the card enrolled at the terminal')
})

test('a terminal upgraded from an unencrypted database loses nothing: its first start with a key encrypts every document and the login state, and it still logs the users in offline', async () => {
  await restarted?.kill('SIGTERM')
  // the folder as a printmesh without encryption left it: every document and the login state in clear
  const dataDir = terminal().dataDir
  const db = join(dataDir, 'db')
  const key = await readStoreKey(keyFile)
  if (key === undefined) throw new Error('no key')
  const { persistence: sealed } = await EncryptedPersistence.openLevel(db, key, keyFile)
  const docs = new Map<DocName, Uint8Array[]>()
  for (const name of await sealed.names()) docs.set(name, await sealed.load(name))
  await sealed.close()
  const logins = await readLoginFailures(dataDir, key)
  await rm(db, { recursive: true })
  const plain = await LevelPersistence.open(db)
  for (const [name, entries] of docs) await plain.compact(name, entries)
  await plain.close()
  if (logins !== undefined) await writeFile(join(dataDir, LOGIN_FAILURES_FILE), logins)
  assert.ok((await search(dataDir, searched)).length > 0, 'the unencrypted folder shows the credentials (the search can fail)')

  const newKey = join(keys, 'upgraded.store-key')
  restarted = await startTerminal({ dataDir, args: ['--printer', m().terminals[0].printer.uri, '--store-key-file', newKey] })
  const migrated = await restarted.waitForLog('database encrypted at rest: every document rewritten sealed')
  assert.is(migrated.documents, docs.size, 'every document rewritten')
  assert.is((await stat(newKey)).mode & 0o777, 0o600, 'the new key file is the owner\'s only')
  assert.is((await panelLogin(restarted, 'alice', USERS.alice.pin)).status, 200, 'alice by PIN')
  assert.equal(await cardLogin(restarted, USERS.bob.card), { status: 200, user: 'bob' }, 'bob by card')
  assert.equal(await cardLogin(restarted, ENROLLED_CARD), { status: 200, user: 'alice' }, 'the card enrolled at the terminal')
  await restarted.kill('SIGTERM')
  assert.equal(await search(dataDir, searched), [], 'nothing found in the folder after the upgrade')
})

test.run()
