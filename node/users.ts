/**
 * The directory as this node edits and checks it: CSV import, PIN and card checks. PINs and
 * card numbers are hashed before anything is written.
 */
import { hkdfSync } from 'node:crypto'
import { importCsv } from './users-csv.ts'
import type { ImportReport } from '../ui/users-api.ts'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { parse } from 'csv-parse/sync'
import { hashPin, verifyPin, getUser, putUser, listUsers, normalizeCard, cardIndex, pinIndexOf, pinKeyOf, validatePin, hashSalt, currentPinIndex, InvalidUserError, type DirectoryUser } from '../crdt/directory.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import type { ImportLineError } from '../ui/users-api.ts'
import type { UserAuthenticator } from '../ui/api.ts'
import type { Actor } from '../devices/jobs/types.ts'
import { currentPinHash, cardHolder, pinHolders, pinIndexes, pinOnlyLoginInUse } from './enrolment.ts'

export { pinKeyOf }
/** The pseudo-username of a PIN-only login at `/api/login` (`{"username": "#pin", "pin": …}`): no directory name has a `#`, and the login guard counts its failures per address as it counts cards'. */
export const PIN_ONLY_USERNAME = '#pin'

export { MAX_IMPORT_BYTES } from './users-csv.ts'
/**
 * A hash computed for unknown users too, so a wrong username takes as long as a wrong PIN. It is
 * at the PIN cost (crdt/directory.ts `PIN_SCRYPT_N`), as every PIN hashed since; a user whose PIN
 * was hashed at 2^15 before still verifies, ~8 times slower, until their PIN is set again.
 */
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
 *
 * With `cardKey`, the file's PINs are indexed for PIN-only login too (after the import, bound
 * to the hashes it wrote), and where PINs must be unique (node/enrolment.ts
 * `pinOnlyLoginInUse`) a PIN another user holds, or one given twice in the file, is a line in
 * error: the import then writes nothing.
 */
export async function importUsersCsv (store: DocStore, csv: string, homeSite: string | undefined, by: string, cardKey?: Uint8Array, options: { dryRun?: boolean } = {}): Promise<ImportResult> {
  const dryRun = options.dryRun === true
  const pinKey = cardKey !== undefined ? pinKeyOf(cardKey) : undefined
  const pins = pinKey !== undefined ? csvPins(csv) : []
  const taken = pinKey !== undefined && pinOnlyLoginInUse(store) ? await takenPins(store, pins, pinKey) : []
  if (taken.length > 0 && !dryRun) {
    throw new InvalidRequestError(`nothing imported: ${taken.length} line${taken.length === 1 ? '' : 's'} cannot be: ${taken.slice(0, 10).map((e) => `line ${e.line}: ${e.message}`).join('; ')}`)
  }
  const report = await importCsv(store, csv, { ...(homeSite !== undefined ? { homeSite } : {}), by, ...(cardKey !== undefined ? { cardKey } : {}), dryRun })
  if (dryRun) return taken.length === 0 ? report : { ...report, errors: [...report.errors, ...taken].sort((a, b) => a.line - b.line) }
  if (pinKey !== undefined) await indexImportedPins(store, pins, pinKey, by)
  return report
}

/** A PIN a CSV row gives its user, and the row's line. */
interface CsvPin { line: number, username: string, pin: string }

/**
 * The PINs of a CSV file as node/users-csv.ts reads it (a header row whose first cell is
 * `username`, naming a `PIN` column; else `username,full name,PIN[,card]`). Rows that file
 * refuses are its to report: only well-formed usernames and PINs are returned.
 */
function csvPins (csv: string): CsvPin[] {
  let records: Array<{ record: string[], info: { lines: number } }>
  try {
    records = parse(csv, { skip_empty_lines: true, trim: true, relax_column_count: true, bom: true, info: true }) as unknown as typeof records
  } catch {
    return [] // the import refuses the file itself, with the parser's reason
  }
  let user = 0
  let pinColumn = 2
  if (records.length > 0 && records[0].record[0]?.toLowerCase() === 'username') {
    const columns = records[0].record.map((name) => name.toLowerCase().replace(/[\s_-]/g, ''))
    user = columns.indexOf('username')
    pinColumn = columns.indexOf('pin')
    records = records.slice(1)
  }
  if (pinColumn < 0) return []
  return records
    .map(({ record, info }) => ({ line: info.lines, username: record[user] ?? '', pin: record[pinColumn] ?? '' }))
    .filter((p) => /^\d{4,12}$/.test(p.pin) && /^[A-Za-z0-9._@-]{1,64}$/.test(p.username))
}

/** The rows whose PIN another user holds (one not given a new PIN by the file), or an earlier row gives. */
async function takenPins (store: DocStore, pins: readonly CsvPin[], pinKey: Uint8Array): Promise<ImportLineError[]> {
  const holders = pinIndexes(store, await store.open(directoryDoc()))
  const inFile = new Set(pins.map((p) => p.username))
  const seen = new Map<string, CsvPin>()
  const out: ImportLineError[] = []
  for (const p of pins) {
    const index = pinIndexOf(p.pin, pinKey)
    const earlier = seen.get(index)
    if (earlier !== undefined && earlier.username !== p.username) {
      out.push({ line: p.line, message: `the PIN of ${p.username} is also given on line ${earlier.line}; PINs must be unique here because users log in by PIN alone` })
      continue
    }
    seen.set(index, p)
    // a holder the file gives a PIN of its own is moving away from this one (a PIN the file keeps would meet it above)
    if ((holders.get(index) ?? []).some((h) => h.user.username !== p.username && !inFile.has(h.user.username))) {
      out.push({ line: p.line, message: `the PIN of ${p.username} is already another user's; PINs must be unique here because users log in by PIN alone` })
    }
  }
  return out
}

/** Slow hashes (confirming a PIN an import left as it was) run this many at once: libuv's default thread pool. */
const INDEX_HASH_CONCURRENCY = 4

/**
 * Indexes the PINs an import gave (bound to the hash now stored): written with the hash the
 * import made from that PIN, or confirmed against it by a slow hash when the PIN was already
 * the user's without an index (a file imported again after an upgrade).
 */
async function indexImportedPins (store: DocStore, pins: readonly CsvPin[], pinKey: Uint8Array, by: string): Promise<void> {
  const directory = await store.open(directoryDoc())
  const updates: DirectoryUser[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < pins.length) {
      const p = pins[next++]
      const user = getUser(directory, p.username)
      const salt = user === undefined ? undefined : hashSalt(user.pinHash)
      const index = pinIndexOf(p.pin, pinKey)
      if (user === undefined || salt === undefined || currentPinIndex(user) === index) continue
      if (!await verifyPin(p.pin, user.pinHash)) continue // the file's PIN is not the one stored (cannot be, after an import; never index it)
      updates.push({ ...user, pinIndex: { index, salt } })
    }
  }
  await Promise.all(Array.from({ length: Math.min(INDEX_HASH_CONCURRENCY, pins.length) }, worker))
  if (updates.length === 0) return
  await store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => {
    // the record as it is now, unless its PIN changed meanwhile (then the index would be another PIN's)
    for (const u of updates) { const now = getUser(doc, u.username); if (now?.pinHash === u.pinHash) putUser(doc, { ...now, pinIndex: u.pinIndex }) }
  })
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

/**
 * PIN-only login: the user whose PIN in force is `pin`, found by the PIN's keyed index under
 * `pinKey` (crdt/directory.ts `pinKeyOf`; one pass over the index, no slow hash per user), then
 * confirmed by that PIN's slow hash. Undefined for an unknown PIN, a disabled holder, and a
 * PIN two users hold (set apart before PINs had to be unique: each logs in with their name).
 * One slow hash per attempt, found or not; never logs the PIN.
 */
export async function checkPinOnly (store: DocStore, pinKey: Uint8Array, pin: string): Promise<string | undefined> {
  let holders: ReturnType<typeof pinHolders> = []
  try {
    validatePin(pin)
    holders = pinHolders(store, await store.open(directoryDoc()), pinIndexOf(pin, pinKey))
  } catch (err) {
    if (!(err instanceof InvalidUserError)) throw err // not a PIN's shape: wrong, as any unknown PIN
  }
  const holder = holders.length === 1 ? holders[0] : undefined
  if (holder === undefined || holder.user.disabled === true || holder.pinHash === '') {
    decoyHash ??= hashPin('000000')
    await verifyPin(pin, await decoyHash)
    return undefined
  }
  return await verifyPin(pin, holder.pinHash) ? holder.user.username : undefined
}

/**
 * How a terminal's panel logs users in (`/api/login`, `/api/login/card`): username and PIN,
 * card, and with `pinOnlyLogin` the PIN alone, sent as the pseudo-user {@link PIN_ONLY_USERNAME}
 * (the login guard then counts its failures per address, as it counts wrong cards). Without
 * `pinOnlyLogin` that pseudo-user is refused as any wrong login.
 */
export function panelLogins (store: DocStore, cardKey: Uint8Array, options: { pinOnlyLogin?: boolean } = {}): UserAuthenticator {
  const pinKey = pinKeyOf(cardKey)
  const actor = (user: string | undefined): Actor | undefined => user !== undefined ? { user, admin: false } : undefined
  return {
    authenticateUser: async (username, pin) => {
      if (username === PIN_ONLY_USERNAME) return actor(options.pinOnlyLogin === true ? await checkPinOnly(store, pinKey, pin) : undefined)
      return await checkPin(store, username, pin) ? { user: username, admin: false } : undefined
    },
    authenticateCard: async (card) => actor(await checkCard(store, cardKey, card))
  }
}

export async function users (store: DocStore): Promise<Array<{ username: string, fullName: string }>> {
  return listUsers(await store.open(directoryDoc())).map((u) => ({ username: u.username, fullName: u.fullName }))
}
