/**
 * The node's store key (`--store-key-file`): the AES-256 key its database is encrypted with at
 * rest (crdt/encrypted-persistence.ts). It lives OUTSIDE the data folder — by default beside
 * it, `<data>.store-key` — so a copy of the data folder alone reveals no PIN, card number or
 * credential hash. For that promise to hold against a stolen disk, put the key on other media
 * than the data folder (a separate partition or USB key, a secrets mount, the MFP's secure
 * storage).
 *
 * Which roles encrypt ({@link encryptsStore}): a terminal always, every other role when it is
 * given `--store-key-file`. A terminal is the peer most exposed (an embedded device in a
 * corridor, its storage removable, often returned to a leasing company) and it replicates
 * credential hashes it does not own. A site or central runs on a server in a machine room,
 * holds the directory as its authority and is backed up with the server; a client is not meant
 * to hold credential hashes at all (issue 12 item 4 sends them only to the peers that need
 * them). They may still ask for it with the option.
 *
 * File format: the 32-byte key as 64 hex digits and a newline, mode 0600, created on first start.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { Role } from '../crdt/license.ts'
import { LevelPersistence, type Persistence } from '../crdt/persistence.ts'
import { EncryptedPersistence, isEncryptedLevel, newStoreKey, storeKey, STORE_KEY_BYTES, type StoreKey } from '../crdt/encrypted-persistence.ts'

/** The default key file's suffix: `<data>.store-key`, beside the data folder, not in it. */
export const STORE_KEY_SUFFIX = '.store-key'
/** Group or other permission bits: a key file readable by others is reported. */
const NOT_OWNER_ONLY = 0o077

/** Roles whose database is encrypted even without `--store-key-file` (see the header for why only terminals). */
const ENCRYPTED_BY_DEFAULT: ReadonlySet<Role> = new Set(['terminal'])

/** The default key file of the data folder `dataDir`. */
export function defaultStoreKeyFile (dataDir: string): string {
  return resolve(dataDir) + STORE_KEY_SUFFIX
}

/** Whether a node of `role` encrypts its database (given `storeKeyFile` or not). */
export function encryptsStore (role: Role, storeKeyFile: string | undefined): boolean {
  return ENCRYPTED_BY_DEFAULT.has(role) || storeKeyFile !== undefined
}

/** The key file is unusable: missing for an encrypted database, or not a key. Nothing was changed. */
export class StoreKeyFileError extends Error {
  constructor (message: string) { super(message); this.name = 'StoreKeyFileError' }
}

/** The database is encrypted but this node was started without a store key. */
export class StoreKeyRequiredError extends Error {
  constructor (dir: string) {
    super(`the database ${dir} is encrypted: start with --store-key-file naming the key it was created with`)
    this.name = 'StoreKeyRequiredError'
  }
}

const HEX_KEY = new RegExp(`^[0-9a-f]{${STORE_KEY_BYTES * 2}}$`)

/** Reads the key in `file`; undefined when there is no such file. */
export async function readStoreKey (file: string): Promise<StoreKey | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StoreKeyFileError(`cannot read the store key file ${file}: ${(err as Error).message}`)
  }
  const hex = text.trim().toLowerCase()
  if (!HEX_KEY.test(hex)) throw new StoreKeyFileError(`the store key file ${file} does not hold a store key (${STORE_KEY_BYTES * 2} hex digits)`)
  return storeKey(Buffer.from(hex, 'hex'))
}

/**
 * Opens the node's database in `<dataDir>/db`: encrypted under the key in `keyFile` when
 * `encrypt` (the key created there on the first start of a database that is not encrypted
 * yet; a plaintext database is migrated), plain otherwise. Every refusal happens before the
 * database is opened, so it leaves the data folder as it was.
 */
export async function openNodePersistence (dataDir: string, options: { encrypt: boolean, keyFile: string }, logger: Logger): Promise<{ persistence: Persistence, key?: StoreKey }> {
  const dir = join(dataDir, 'db')
  const encrypted = await isEncryptedLevel(dir)
  if (!options.encrypt) {
    if (encrypted) throw new StoreKeyRequiredError(dir)
    return { persistence: await LevelPersistence.open(dir) }
  }
  const { keyFile } = options
  let key = await readStoreKey(keyFile)
  if (key === undefined) {
    if (encrypted) throw new StoreKeyFileError(`the database ${dir} is encrypted, but its key file ${keyFile} is missing: start with --store-key-file naming the key it was created with; nothing was changed`)
    key = newStoreKey()
    await mkdir(dirname(keyFile), { recursive: true })
    // `wx`: never replace a key another start wrote meanwhile (that database would be lost)
    await writeFile(keyFile, Buffer.from(key).toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
    logger.info({ keyFile }, 'store key created: keep it on other media than the data folder, and back it up — the database cannot be read without it')
  } else if (((await stat(keyFile)).mode & NOT_OWNER_ONLY) !== 0) {
    logger.warn({ keyFile }, 'the store key file is readable by other users than its owner: chmod 600 it')
  }
  const { persistence, report } = await EncryptedPersistence.openLevel(dir, key, keyFile)
  if (report.outcome === 'migrated') logger.info({ documents: report.migrated, keyFile }, 'database encrypted at rest: every document rewritten sealed')
  return { persistence, key }
}
