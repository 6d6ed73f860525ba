/**
 * The login guard's counted failures kept in the data folder (`login-failures.json`), so a
 * restart does not wipe a lockout: loaded at start, written after every change (one write
 * at a time, the latest state last). The file names usernames and addresses, never a PIN,
 * card or token, and is readable by the node's user only.
 *
 * A username is what someone typed, though: a PIN typed into the name field would be kept as
 * one. A node whose database is encrypted at rest (a terminal: node/store-key.ts) therefore
 * seals this file with its store key too (crdt/encrypted-persistence.ts `sealBytes`), so a
 * copy of its data folder shows no typed name; a plaintext file from before is read and
 * rewritten sealed at once.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { LoginGuard, InvalidLoginSnapshotError, type LoginGuardInit } from '../ui/rate-limit.ts'
import { openBytes, sealBytes, type StoreKey } from '../crdt/encrypted-persistence.ts'

/** The file in the data folder. */
export const LOGIN_FAILURES_FILE = 'login-failures.json'
/** The associated data the file is sealed under: a value sealed for a document cannot pass for it. */
const SEAL_CONTEXT = 'printmesh:login-failures'
/** A plaintext file starts with a JSON object; a sealed one with its format byte. */
const JSON_START = 0x7b

/**
 * The stored failures as JSON text (opened with `key` when the file is sealed); undefined when
 * there is no file. Throws {@link SealedLoginStateError} when a sealed file does not open.
 */
export async function readLoginFailures (dataDir: string, key?: StoreKey): Promise<string | undefined> {
  return (await readStored(dataDir, key))?.text
}

async function readStored (dataDir: string, key?: StoreKey): Promise<{ text: string, sealed: boolean } | undefined> {
  const path = join(dataDir, LOGIN_FAILURES_FILE)
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (bytes[0] === JSON_START || key === undefined) return { text: bytes.toString('utf8'), sealed: false }
  const plain = openBytes(key, bytes, SEAL_CONTEXT)
  if (plain === undefined) throw new SealedLoginStateError(path)
  return { text: new TextDecoder().decode(plain), sealed: true }
}

/** The file is sealed under another key, or altered. */
export class SealedLoginStateError extends Error {
  constructor (path: string) { super(`${path} does not open with this node's store key`); this.name = 'SealedLoginStateError' }
}

/**
 * A login guard whose failures survive restarts. A missing file starts empty; an unreadable
 * or malformed one is reported and replaced (a lockout is lost, the node still starts).
 */
export async function persistentLoginGuard (dataDir: string, init: Omit<LoginGuardInit, 'onChange'>, logger: Logger, key?: StoreKey): Promise<LoginGuard> {
  const path = join(dataDir, LOGIN_FAILURES_FILE)
  let writing: Promise<void> | undefined
  let again = false
  const write = async (): Promise<void> => {
    do {
      again = false
      const text = JSON.stringify(guard.snapshot())
      await writeFile(`${path}.tmp`, key !== undefined ? sealBytes(key, new TextEncoder().encode(text), SEAL_CONTEXT) : text, { mode: 0o600 })
      await rename(`${path}.tmp`, path)
    } while (again)
  }
  const onChange = (): void => {
    if (writing !== undefined) { again = true; return }
    writing = write()
      .catch((err: unknown) => { logger.error({ err }, 'could not store the login failures; a restart would forget them') })
      .finally(() => { writing = undefined })
  }
  const guard = new LoginGuard({ ...init, onChange })
  let stored: { text: string, sealed: boolean } | undefined
  try {
    stored = await readStored(dataDir, key)
  } catch (err) {
    logger.warn({ err, path }, 'could not read the stored login failures; starting without them')
  }
  if (stored !== undefined) {
    try {
      guard.restore(JSON.parse(stored.text))
    } catch (err) {
      if (!(err instanceof SyntaxError) && !(err instanceof InvalidLoginSnapshotError)) throw err
      logger.warn({ path, reason: (err as Error).message }, 'the stored login failures are malformed; starting without them')
    }
    // a plaintext file from before the store was encrypted: seal it now, not at the next failure
    if (key !== undefined && !stored.sealed) onChange()
  }
  return guard
}
