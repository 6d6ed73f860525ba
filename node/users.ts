/**
 * The directory as this node edits and checks it: CSV import, PIN and card checks. PINs and
 * card numbers are hashed before anything is written.
 */
import { hkdfSync } from 'node:crypto'
import { importCsv } from './users-csv.ts'
import type { ImportReport } from '../ui/users-api.ts'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { hashPin, verifyPin, getUser, listUsers, normalizeCard, cardIndex } from '../crdt/directory.ts'
import { currentPinHash, cardHolder } from './enrolment.ts'

export { MAX_IMPORT_BYTES } from './users-csv.ts'
/** A hash computed for unknown users too, so a wrong username takes as long as a wrong PIN. */
let decoyHash: Promise<string> | undefined

/** What an import did (or would do, in a dry run). */
export type ImportResult = ImportReport

/**
 * The key of the directory's card index (crdt/directory.ts): derived from the mesh's
 * network key, which every member holds in its data folder and no document carries.
 */
export function cardKeyOf (networkKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', networkKey, 'printmesh', 'directory card index v1', 32))
}

/**
 * Imports users from CSV (node/users-csv.ts: the original `username,full name,PIN[,card]`
 * rows, or a header naming the columns, with email, groups and home site too). Every row is
 * checked before anything is written: a bad row refuses the whole file, naming its line;
 * `dryRun` only reports what would be added, changed and unchanged, and the lines in error.
 * Cards need `cardKey`. `homeSite` is that of new users whose row names none.
 */
export async function importUsersCsv (store: DocStore, csv: string, homeSite: string | undefined, by: string, cardKey?: Uint8Array, options: { dryRun?: boolean } = {}): Promise<ImportResult> {
  return await importCsv(store, csv, { ...(homeSite !== undefined ? { homeSite } : {}), by, ...(cardKey !== undefined ? { cardKey } : {}), dryRun: options.dryRun === true })
}

/**
 * True when the user exists, is not disabled, has a PIN and the PIN matches. A refused user
 * pays the same slow hash: also one without a PIN (`pinHash: ''`, as the LDAP sync adds
 * users), so timing does not tell who has one.
 */
export async function checkPin (store: DocStore, username: string, pin: string): Promise<boolean> {
  const directory = await store.open(directoryDoc())
  const user = getUser(directory, username)
  // the newest of the directory's PIN and the user's enrolments held here (node/enrolment.ts)
  const pinHash = user === undefined ? '' : currentPinHash(store, directory, user)
  if (user === undefined || user.disabled === true || pinHash === '') {
    decoyHash ??= hashPin('000000')
    await verifyPin(pin, await decoyHash)
    return false
  }
  return await verifyPin(pin, pinHash)
}

/**
 * The user holding `card`, when the card is known, its holder not disabled, and its slow hash matches (one slow hash
 * per attempt, found or not, so timing tells nothing). Never logs the card number.
 */
export async function checkCard (store: DocStore, cardKey: Uint8Array, card: string): Promise<string | undefined> {
  const normal = normalizeCard(card)
  const index = cardIndex(normal, cardKey)
  // the directory where it knows the card, else the enrolments held here (node/enrolment.ts)
  const holder = cardHolder(store, await store.open(directoryDoc()), index)
  const user = holder?.user
  const badge = holder?.card
  if (user === undefined || badge === undefined || user.disabled === true) {
    decoyHash ??= hashPin('000000')
    await verifyPin(normal, await decoyHash)
    return undefined
  }
  return await verifyPin(normal, badge.hash) ? user.username : undefined
}

export async function users (store: DocStore): Promise<Array<{ username: string, fullName: string }>> {
  return listUsers(await store.open(directoryDoc())).map((u) => ({ username: u.username, fullName: u.fullName }))
}
