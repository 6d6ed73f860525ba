/**
 * Persistence encrypted at rest: a {@link Persistence} that seals every stored value with
 * AES-256-GCM under a key the node keeps outside its data folder (node/store-key.ts), over
 * the level implementation (crdt/persistence.ts). A terminal replicates the directory (PIN
 * and card hashes, the card and PIN indexes) and its enrolment documents; a copy of its
 * data folder without the key must reveal none of them (issue 12 item 4).
 *
 * Sealed value: `FORMAT_V1 (1 byte) ‖ nonce (12 bytes, random per value) ‖ ciphertext ‖ tag (16 bytes)`.
 * The associated data is the format byte and the document name, so a value copied under
 * another document's keys fails authentication instead of being read as that document's.
 * Keys (`v1␀<docName>␀u␀<clock>`) stay readable: document names carry no credential.
 *
 * The database says it is encrypted by a small file in its folder ({@link ENCRYPTION_FILE}; a
 * plain `LevelPersistence.open` refuses such a folder):
 * the format, whether a migration is under way, and a key check (a known text sealed under the
 * key). The key is checked against it *before* the level database is opened, so a wrong key
 * changes not one byte of the folder. A database without that file but with level files is a
 * plaintext one from before: it is migrated on open, each document rewritten sealed in one
 * atomic batch, then the whole database compacted so the plaintext leaves the disk. A
 * migration cut short resumes at the next open (values that already open under the key are
 * kept as they are).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { mkdir, open as openFile, readFile, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { LevelPersistence, PersistenceError, ENCRYPTION_FILE, type Persistence } from './persistence.ts'
import type { DocName } from './names.ts'

/** The sealed layout's version byte: bumped if the cipher or layout changes, so old values stay readable. */
export const FORMAT_V1 = 1
/** AES-256: a 32-byte key. */
export const STORE_KEY_BYTES = 32
/** GCM's standard nonce size; random nonces are safe far beyond the values a terminal writes (2^32 per key). */
const NONCE_BYTES = 12
/** GCM's full tag: truncated tags weaken the forgery bound. */
const TAG_BYTES = 16
const CIPHER = 'aes-256-gcm'
export { ENCRYPTION_FILE }
/** What the key check seals: any fixed text works, opening it proves the key. */
const KEY_CHECK_TEXT = 'printmesh store key check'
/** The key check's associated data: no document name can equal it (names start with `v1/`). */
const KEY_CHECK_CONTEXT = 'printmesh:key-check'
/** The prefix of a document value's associated data, apart from other uses of the same key ({@link sealBytes} callers). */
const DOC_CONTEXT = 'printmesh:doc:'

/** A store key: 32 bytes, made only by {@link storeKey}. */
export type StoreKey = Uint8Array & { readonly __storeKey: true }

export class InvalidStoreKeyError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidStoreKeyError' }
}

/** Checks `bytes` is a store key (32 bytes). */
export function storeKey (bytes: Uint8Array): StoreKey {
  if (bytes.byteLength !== STORE_KEY_BYTES) throw new InvalidStoreKeyError(`a store key is ${STORE_KEY_BYTES} bytes, not ${bytes.byteLength}`)
  return bytes as StoreKey
}

/** A fresh random store key. */
export function newStoreKey (): StoreKey {
  return storeKey(randomBytes(STORE_KEY_BYTES))
}

/** The database is encrypted under another key than the one given: nothing was read or changed. */
export class WrongStoreKeyError extends PersistenceError {
  constructor (readonly dir: string, readonly keyName: string) {
    super(`the database ${dir} is encrypted with another key than ${keyName}: start with the key file it was created with; nothing was changed`)
    this.name = 'WrongStoreKeyError'
  }
}

/** A stored value fails authentication: altered on disk, or moved from another document. */
export class TamperedEntryError extends PersistenceError {
  constructor (readonly doc: string, readonly dir: string) {
    super(`a stored entry of ${doc} in ${dir} fails authentication under the store key: it was altered on disk or moved from another document`)
    this.name = 'TamperedEntryError'
  }
}

/** The marker file is not one this version can read. */
export class UnknownStoreFormatError extends PersistenceError {
  constructor (dir: string, detail: string) {
    super(`the encryption marker ${join(dir, ENCRYPTION_FILE)} is not one this printmesh reads (${detail}): was the database written by a newer version?`)
    this.name = 'UnknownStoreFormatError'
  }
}

const encoder = new TextEncoder()

function aad (context: string): Uint8Array {
  const text = encoder.encode(context)
  const out = new Uint8Array(1 + text.byteLength)
  out[0] = FORMAT_V1
  out.set(text, 1)
  return out
}

/**
 * Seals `plain` under `key`, bound to `context` (the associated data: opening it under
 * another context fails). Other modules seal their files with it (node/login-state.ts), each
 * under a context of its own.
 */
export function sealBytes (key: StoreKey, plain: Uint8Array, context: string): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad(context))
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  const out = new Uint8Array(1 + NONCE_BYTES + body.byteLength + TAG_BYTES)
  out[0] = FORMAT_V1
  out.set(nonce, 1)
  out.set(body, 1 + NONCE_BYTES)
  out.set(cipher.getAuthTag(), 1 + NONCE_BYTES + body.byteLength)
  return out
}

/** Opens what {@link sealBytes} sealed with the same key and context; undefined when it does not authenticate. */
export function openBytes (key: StoreKey, sealed: Uint8Array, context: string): Uint8Array | undefined {
  if (sealed.byteLength < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== FORMAT_V1) return undefined
  const nonce = sealed.subarray(1, 1 + NONCE_BYTES)
  const tag = sealed.subarray(sealed.byteLength - TAG_BYTES)
  const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(aad(context))
  decipher.setAuthTag(tag)
  try {
    const plain = Buffer.concat([decipher.update(sealed.subarray(1 + NONCE_BYTES, sealed.byteLength - TAG_BYTES)), decipher.final()])
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength)
  } catch {
    return undefined // GCM's tag check failed: the only way final() throws here
  }
}

/** What {@link ENCRYPTION_FILE} holds. */
interface Marker {
  format: typeof FORMAT_V1
  cipher: typeof CIPHER
  /** `migrating` while a plaintext database is being rewritten sealed. */
  state: 'encrypted' | 'migrating'
  /** {@link KEY_CHECK_TEXT} sealed under the key, base64. */
  check: string
}

async function readMarker (dir: string): Promise<Marker | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, ENCRYPTION_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new PersistenceError(`cannot read ${join(dir, ENCRYPTION_FILE)}: ${(err as Error).message}`, { cause: err })
  }
  let marker: Partial<Marker>
  try {
    marker = JSON.parse(text) as Partial<Marker>
  } catch (err) {
    throw new UnknownStoreFormatError(dir, (err as Error).message)
  }
  if (marker.format !== FORMAT_V1 || marker.cipher !== CIPHER || typeof marker.check !== 'string' || (marker.state !== 'encrypted' && marker.state !== 'migrating')) {
    throw new UnknownStoreFormatError(dir, `format ${String(marker.format)}, cipher ${String(marker.cipher)}, state ${String(marker.state)}`)
  }
  return marker as Marker
}

/** Replaces the marker whole and durably (written beside, synced, renamed). */
async function writeMarker (dir: string, key: StoreKey, state: Marker['state']): Promise<void> {
  const marker: Marker = { format: FORMAT_V1, cipher: CIPHER, state, check: Buffer.from(sealBytes(key, encoder.encode(KEY_CHECK_TEXT), KEY_CHECK_CONTEXT)).toString('base64') }
  const path = join(dir, ENCRYPTION_FILE)
  const file = await openFile(`${path}.tmp`, 'w', 0o600)
  try {
    await file.writeFile(JSON.stringify(marker, null, 2))
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(`${path}.tmp`, path)
}

/** Whether the level database in `dir` is encrypted (or being migrated to it). */
export async function isEncryptedLevel (dir: string): Promise<boolean> {
  return await readMarker(dir) !== undefined
}

/** Whether `dir` holds a level database already (level's CURRENT file names its manifest). */
async function levelExists (dir: string): Promise<boolean> {
  try {
    await stat(join(dir, 'CURRENT'))
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

const docContext = (name: DocName): string => DOC_CONTEXT + name

/** What {@link EncryptedPersistence.openLevel} did on open, for the node's log. */
export interface OpenReport {
  /** `created`: a new database; `migrated`: a plaintext one (or one cut short) rewritten sealed. */
  outcome: 'opened' | 'created' | 'migrated'
  /** Documents rewritten by the migration. */
  migrated: number
}

export class EncryptedPersistence implements Persistence {
  private constructor (private readonly inner: LevelPersistence, private readonly key: StoreKey, private readonly dir: string) {}

  /**
   * Opens (creating if needed) the level database in `dir` encrypted under `key`; a plaintext
   * one is migrated. `keyName` names the key where errors mention it (the key file).
   * Fails with {@link WrongStoreKeyError} before touching the folder when the key is not the database's.
   */
  static async openLevel (dir: string, key: StoreKey, keyName: string): Promise<{ persistence: EncryptedPersistence, report: OpenReport }> {
    const marker = await readMarker(dir)
    if (marker !== undefined) {
      if (openBytes(key, Buffer.from(marker.check, 'base64'), KEY_CHECK_CONTEXT) === undefined) throw new WrongStoreKeyError(dir, keyName)
    } else if (await levelExists(dir)) {
      // a plaintext database: from now on it is this key's, whatever happens during the migration
      await writeMarker(dir, key, 'migrating')
    } else {
      await mkdir(dir, { recursive: true })
      await writeMarker(dir, key, 'encrypted')
      const persistence = new EncryptedPersistence(await LevelPersistence.open(dir, { encrypted: true }), key, dir)
      return { persistence, report: { outcome: 'created', migrated: 0 } }
    }
    const persistence = new EncryptedPersistence(await LevelPersistence.open(dir, { encrypted: true }), key, dir)
    if (marker?.state === 'encrypted') return { persistence, report: { outcome: 'opened', migrated: 0 } }
    try {
      const migrated = await persistence.migrate()
      await writeMarker(dir, key, 'encrypted')
      return { persistence, report: { outcome: 'migrated', migrated } }
    } catch (err) {
      await persistence.close()
      throw err
    }
  }

  /** Rewrites every document sealed (each in one atomic batch), then purges the plaintext from the disk. */
  private async migrate (): Promise<number> {
    const names = await this.inner.names()
    for (const name of names) {
      const entries = await this.inner.load(name)
      const context = docContext(name)
      // a value that opens already was sealed by a migration cut short; any other is plaintext
      const sealed = entries.map((e) => openBytes(this.key, e, context) !== undefined ? e : sealBytes(this.key, e, context))
      await this.inner.compact(name, sealed)
    }
    await this.inner.purge()
    return names.length
  }

  private open (name: DocName, value: Uint8Array): Uint8Array {
    const plain = openBytes(this.key, value, docContext(name))
    if (plain === undefined) throw new TamperedEntryError(name, this.dir)
    return plain
  }

  async load (name: DocName): Promise<Uint8Array[]> {
    return (await this.inner.load(name)).map((v) => this.open(name, v))
  }

  async append (name: DocName, update: Uint8Array): Promise<void> {
    await this.inner.append(name, sealBytes(this.key, update, docContext(name)))
  }

  async compact (name: DocName, entries: Uint8Array[]): Promise<void> {
    const context = docContext(name)
    await this.inner.compact(name, entries.map((e) => sealBytes(this.key, e, context)))
  }

  async remove (name: DocName): Promise<void> { await this.inner.remove(name) }
  async names (): Promise<DocName[]> { return await this.inner.names() }
  async close (): Promise<void> { await this.inner.close() }
}
