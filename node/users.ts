/**
 * The site-local user list (the directory document while a site stands alone): CSV import
 * and PIN checks. PINs are hashed before anything is written.
 */
import { InvalidRequestError } from '../crdt/errors.ts'
import { parse } from 'csv-parse/sync'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { hashPin, verifyPin, putUser, getUser, listUsers, validateUsername, validatePin, InvalidUserError, type DirectoryUser } from '../crdt/directory.ts'

/** Largest CSV accepted in one import: a directory of ~100k users. */
export const MAX_IMPORT_BYTES = 10 * 1024 * 1024
/** A hash computed for unknown users too, so a wrong username takes as long as a wrong PIN. */
let decoyHash: Promise<string> | undefined

export interface ImportResult { imported: number }

/**
 * Imports `username,full name,PIN` rows (a header row starting with `username` is skipped).
 * Every row is validated before anything is written: a bad row rejects the whole file with
 * its line number.
 */
export async function importUsersCsv (store: DocStore, csv: string, homeSite: string, by: string): Promise<ImportResult> {
  if (Buffer.byteLength(csv) > MAX_IMPORT_BYTES) throw new InvalidRequestError(`CSV larger than ${MAX_IMPORT_BYTES} bytes`)
  let rows: string[][]
  try {
    rows = parse(csv, { skip_empty_lines: true, trim: true, relax_column_count: false, bom: true }) as string[][]
  } catch (err) {
    throw new InvalidRequestError(`CSV could not be parsed: ${(err as Error).message}`)
  }
  if (rows.length > 0 && rows[0][0]?.toLowerCase() === 'username') rows = rows.slice(1)
  if (rows.length === 0) throw new InvalidRequestError('CSV has no user rows (expected: username,full name,PIN)')
  const seen = new Set<string>()
  rows.forEach((row, i) => {
    const line = `line ${i + 1}`
    if (row.length !== 3) throw new InvalidRequestError(`${line}: expected 3 columns (username,full name,PIN), got ${row.length}`)
    try {
      validateUsername(row[0])
      validatePin(row[2])
    } catch (err) {
      if (err instanceof InvalidUserError) throw new InvalidRequestError(`${line}: ${err.message}`)
      throw err
    }
    if (seen.has(row[0])) throw new InvalidRequestError(`${line}: username ${row[0]} appears twice`)
    seen.add(row[0])
  })
  const now = Date.now()
  const users: DirectoryUser[] = []
  for (const [username, fullName, pin] of rows) {
    users.push({ username, fullName, pinHash: await hashPin(pin), homeSite, updatedAt: now })
  }
  await store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => {
    for (const u of users) putUser(doc, u)
  })
  return { imported: users.length }
}

/** True when the user exists and the PIN matches. */
export async function checkPin (store: DocStore, username: string, pin: string): Promise<boolean> {
  const user = getUser(await store.open(directoryDoc()), username)
  if (user === undefined) {
    decoyHash ??= hashPin('000000')
    await verifyPin(pin, await decoyHash)
    return false
  }
  return await verifyPin(pin, user.pinHash)
}

export async function users (store: DocStore): Promise<Array<{ username: string, fullName: string }>> {
  return listUsers(await store.open(directoryDoc())).map((u) => ({ username: u.username, fullName: u.fullName }))
}
