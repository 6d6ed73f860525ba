/**
 * The directory as this node edits and checks it: CSV import, PIN and card checks. PINs and
 * card numbers are hashed before anything is written.
 */
import { hkdfSync } from 'node:crypto'
import { InvalidRequestError } from '../crdt/errors.ts'
import { parse } from 'csv-parse/sync'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import {
  hashPin, verifyPin, putUser, getUser, listUsers, validateUsername, validatePin, validateCard, normalizeCard, cardCredential,
  cardIndex, userByCardIndex, InvalidUserError, type DirectoryUser
} from '../crdt/directory.ts'

/** Largest CSV accepted in one import: a directory of ~100k users. */
export const MAX_IMPORT_BYTES = 10 * 1024 * 1024
/** A hash computed for unknown users too, so a wrong username takes as long as a wrong PIN. */
let decoyHash: Promise<string> | undefined

export interface ImportResult { imported: number }

/**
 * The key of the directory's card index (crdt/directory.ts): derived from the mesh's
 * network key, which every member holds in its data folder and no document carries.
 */
export function cardKeyOf (networkKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', networkKey, 'printmesh', 'directory card index v1', 32))
}

/**
 * Imports `username,full name,PIN[,card]` rows (a header row starting with `username` is
 * skipped; the card column may be empty). Every row is validated before anything is
 * written: a bad row rejects the whole file with its line number. Cards need `cardKey`.
 */
export async function importUsersCsv (store: DocStore, csv: string, homeSite: string, by: string, cardKey?: Uint8Array): Promise<ImportResult> {
  if (Buffer.byteLength(csv) > MAX_IMPORT_BYTES) throw new InvalidRequestError(`CSV larger than ${MAX_IMPORT_BYTES} bytes`)
  let rows: string[][]
  try {
    rows = parse(csv, { skip_empty_lines: true, trim: true, relax_column_count: true, bom: true }) as string[][] // rows with and without a card column mix; each is checked below
  } catch (err) {
    throw new InvalidRequestError(`CSV could not be parsed: ${(err as Error).message}`)
  }
  if (rows.length > 0 && rows[0][0]?.toLowerCase() === 'username') rows = rows.slice(1)
  if (rows.length === 0) throw new InvalidRequestError('CSV has no user rows (expected: username,full name,PIN[,card])')
  const seen = new Set<string>()
  const cards = new Map<string, number>()
  rows.forEach((row, i) => {
    const line = `line ${i + 1}`
    if (row.length !== 3 && row.length !== 4) throw new InvalidRequestError(`${line}: expected 3 or 4 columns (username,full name,PIN[,card]), got ${row.length}`)
    try {
      validateUsername(row[0])
      validatePin(row[2])
      if ((row[3] ?? '') !== '') validateCard(normalizeCard(row[3]))
    } catch (err) {
      if (err instanceof InvalidUserError) throw new InvalidRequestError(`${line}: ${err.message}`)
      throw err
    }
    if (seen.has(row[0])) throw new InvalidRequestError(`${line}: username ${row[0]} appears twice`)
    seen.add(row[0])
    const card = normalizeCard(row[3] ?? '')
    if (card !== '') {
      const first = cards.get(card)
      if (first !== undefined) throw new InvalidRequestError(`${line}: this card is already on line ${first}`)
      cards.set(card, i + 1)
    }
  })
  if (cards.size > 0 && cardKey === undefined) throw new InvalidRequestError('cards cannot be imported here: this node has no card key')
  const now = Date.now()
  const users: DirectoryUser[] = []
  for (const [username, fullName, pin, card] of rows) {
    const badge = card !== undefined && card !== '' && cardKey !== undefined ? await cardCredential(card, cardKey) : undefined
    users.push({ username, fullName, pinHash: await hashPin(pin), ...(badge !== undefined ? { cards: [badge] } : {}), homeSite, updatedAt: now })
  }
  if (cardKey !== undefined) {
    // a card already held by a user this file does not re-import stays theirs: refuse rather than give it two holders
    const existing = await store.open(directoryDoc())
    for (const u of users) {
      for (const c of u.cards ?? []) {
        const holder = userByCardIndex(existing, c.index)
        if (holder !== undefined && holder.username !== u.username && !seen.has(holder.username)) throw new InvalidRequestError(`the card of ${u.username} already belongs to ${holder.username}`)
      }
    }
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

/**
 * The user holding `card`, when the card is known and its slow hash matches (one slow hash
 * per attempt, found or not, so timing tells nothing). Never logs the card number.
 */
export async function checkCard (store: DocStore, cardKey: Uint8Array, card: string): Promise<string | undefined> {
  const normal = normalizeCard(card)
  const index = cardIndex(normal, cardKey)
  const user = userByCardIndex(await store.open(directoryDoc()), index)
  const badge = user?.cards?.find((c) => c.index === index)
  if (user === undefined || badge === undefined) {
    decoyHash ??= hashPin('000000')
    await verifyPin(normal, await decoyHash)
    return undefined
  }
  return await verifyPin(normal, badge.hash) ? user.username : undefined
}

export async function users (store: DocStore): Promise<Array<{ username: string, fullName: string }>> {
  return listUsers(await store.open(directoryDoc())).map((u) => ({ username: u.username, fullName: u.fullName }))
}
