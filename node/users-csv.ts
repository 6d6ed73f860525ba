/**
 * CSV import into the directory, with a preview. Two forms, told apart by the first cell:
 *
 * - **With a header** (first cell `username`): columns by name, in any order:
 *   `username`, `full name` (or `name`), `PIN`, `card`, `email`, `groups` (separated by `;`),
 *   `home site` (or `site`); case, spaces, `_` and `-` in names do not matter. A row may be
 *   shorter than the header (missing cells are empty). An empty cell keeps the user's value;
 *   a new user needs a full name and a PIN.
 * - **Without** (the original form): `username,full name,PIN[,card]`.
 *
 * A card given for a user becomes that user's one card (as before: the file names the
 * badge each user holds). The plan compares each row with the directory: added, changed
 * (which fields; a PIN counts as changed only when it differs, checked against the stored
 * hash), unchanged, and per-line errors. A dry run stops there; an import writes nothing
 * when any line has an error.
 */
import { parse } from 'csv-parse/sync'
import { InvalidRequestError, isKinded } from '../crdt/errors.ts'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import {
  hashPin, verifyPin, putUser, getUser, normalizeCard, cardCredential, cardIndex, userByCardIndex, type DirectoryUser
} from '../crdt/directory.ts'
import type { ImportLineError, ImportReport } from '../ui/users-api.ts'
import { checkUsername, checkPin, checkCard, checkFullName, checkEmail, checkGroups, checkHomeSite } from './user-fields.ts'
import { assertUserCapacity } from './license-file.ts'

/** Largest CSV accepted in one import: a directory of ~100k users. */
export const MAX_IMPORT_BYTES = 10 * 1024 * 1024
/** Slow hashes (PIN checks and new hashes) run this many at once: libuv's default thread pool. */
const HASH_CONCURRENCY = 4
/** An import refused for its lines names this many of them in its message. */
const ERRORS_IN_MESSAGE = 10

/** The fields a row may carry, and the header names that mean each. */
type Field = 'username' | 'fullName' | 'pin' | 'card' | 'email' | 'groups' | 'homeSite'
const HEADER_NAMES: Readonly<Record<string, Field>> = {
  username: 'username', fullname: 'fullName', name: 'fullName', pin: 'pin', card: 'card', email: 'email', groups: 'groups', homesite: 'homeSite', site: 'homeSite'
}
/** The original columns, for files without a header. */
const POSITIONAL: readonly Field[] = ['username', 'fullName', 'pin', 'card']
const POSITIONAL_FORM = 'username,full name,PIN[,card]'

/** One row, its cells by field (empty cells left out), and its line in the file. */
interface Row { line: number, cells: Partial<Record<Field, string>> }

/** Parses the file into rows; a file that cannot be read at all is refused whole. */
function parseRows (csv: string): { rows: Row[], errors: ImportLineError[] } {
  if (Buffer.byteLength(csv) > MAX_IMPORT_BYTES) throw new InvalidRequestError(`CSV larger than ${MAX_IMPORT_BYTES} bytes`)
  let records: Array<{ record: string[], info: { lines: number } }>
  try {
    // rows with and without a card column mix; each row's length is checked below
    records = parse(csv, { skip_empty_lines: true, trim: true, relax_column_count: true, bom: true, info: true }) as unknown as Array<{ record: string[], info: { lines: number } }>
  } catch (err) {
    throw new InvalidRequestError(`CSV could not be parsed: ${(err as Error).message}`)
  }
  let columns: readonly Field[] = POSITIONAL
  let headed = false
  if (records.length > 0 && records[0].record[0]?.toLowerCase() === 'username') {
    headed = true
    const seen = new Set<Field>()
    columns = records[0].record.map((name) => {
      const field = HEADER_NAMES[name.toLowerCase().replace(/[\s_-]/g, '')]
      if (field === undefined) throw new InvalidRequestError(`unknown column ${JSON.stringify(name)}: known columns are username, full name, PIN, card, email, groups, home site`)
      if (seen.has(field)) throw new InvalidRequestError(`column ${JSON.stringify(name)} appears twice`)
      seen.add(field)
      return field
    })
    records = records.slice(1)
  }
  if (records.length === 0) throw new InvalidRequestError(`CSV has no user rows (expected: ${POSITIONAL_FORM}, or a header row naming the columns)`)
  const rows: Row[] = []
  const errors: ImportLineError[] = []
  for (const { record, info } of records) {
    const line = info.lines
    if (headed ? record.length > columns.length : record.length !== 3 && record.length !== 4) {
      errors.push({ line, message: headed ? `${record.length} cells, but the header names ${columns.length} columns` : `expected 3 or 4 columns (${POSITIONAL_FORM}), got ${record.length}` })
      continue
    }
    const cells: Row['cells'] = {}
    record.forEach((value, i) => { if (value !== '') cells[columns[i]] = value })
    rows.push({ line, cells })
  }
  return { rows, errors }
}

/** What one valid row does to the directory. */
interface Change {
  row: Row
  base?: DirectoryUser
  fields: string[]
  /** The row's values, checked. */
  fullName?: string
  email?: string
  groups?: string[]
  homeSite?: string
  cardIndex?: string
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimited<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++])
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean =>
  JSON.stringify([...a ?? []].sort()) === JSON.stringify([...b ?? []].sort())

export interface CsvImportOptions {
  /** Home site of new users whose row names none (the importing site; none on central). */
  homeSite?: string
  /** Who imports, for the change's origin. */
  by: string
  /** Key of the card index; without it a file with cards is refused. */
  cardKey?: Uint8Array
  dryRun: boolean
  now?: () => number
}

/** Plans the import of `csv` against the directory in `store` and, unless a dry run, applies it. */
export async function importCsv (store: DocStore, csv: string, options: CsvImportOptions): Promise<ImportReport> {
  const { rows, errors } = parseRows(csv)
  const { cardKey } = options
  if (cardKey === undefined && rows.some((r) => r.cells.card !== undefined)) throw new InvalidRequestError('cards cannot be imported here: this node has no card key')
  const doc = await store.open(directoryDoc())
  const lineOf = new Map<string, number>()
  const cardLine = new Map<string, number>()
  /** The card index each user of the file is given, to let a card move between two of them. */
  const cardOf = new Map<string, string>()
  const changes: Change[] = []
  for (const row of rows) {
    const { cells, line } = row
    const fail = (message: string): void => { errors.push({ line, message }) }
    try {
      const username = cells.username ?? ''
      checkUsername(username)
      const first = lineOf.get(username)
      if (first !== undefined) { fail(`username ${username} appears twice (also on line ${first})`); continue }
      lineOf.set(username, line)
      const base = getUser(doc, username)
      const change: Change = { row, fields: [], ...(base !== undefined ? { base } : {}) }
      if (cells.fullName !== undefined) change.fullName = checkFullName(cells.fullName)
      else if (base === undefined) { fail(`${username} is new and needs a full name`); continue }
      if (cells.pin !== undefined) checkPin(cells.pin)
      else if (base === undefined) { fail(`${username} is new and needs a PIN`); continue }
      if (cells.email !== undefined) change.email = checkEmail(cells.email)
      if (cells.groups !== undefined) change.groups = checkGroups(cells.groups.split(';'))
      if (cells.homeSite !== undefined) change.homeSite = checkHomeSite(cells.homeSite)
      if (cells.card !== undefined && cardKey !== undefined) {
        const card = normalizeCard(cells.card)
        checkCard(card)
        const other = cardLine.get(card)
        if (other !== undefined) { fail(`this card is already on line ${other}`); continue }
        cardLine.set(card, line)
        change.cardIndex = cardIndex(card, cardKey)
        cardOf.set(username, change.cardIndex)
      }
      changes.push(change)
    } catch (err) {
      if (isKinded(err)) { fail(err.message); continue }
      throw err
    }
  }
  // a card held by a user outside the file, or kept by one in it, stays theirs: one holder per card
  for (const change of changes) {
    if (change.cardIndex === undefined) continue
    const holder = userByCardIndex(doc, change.cardIndex)
    const username = change.row.cells.username as string
    if (holder === undefined || holder.username === username) continue
    const holderGets = cardOf.get(holder.username)
    if (holderGets === undefined || holderGets === change.cardIndex) {
      errors.push({ line: change.row.line, message: `the card of ${username} already belongs to ${holder.username}` })
      change.fields = ['refused']
    }
  }
  const valid = changes.filter((c) => c.fields[0] !== 'refused')
  await eachLimited(valid.filter((c) => c.base !== undefined && c.row.cells.pin !== undefined), HASH_CONCURRENCY, async (c) => {
    if (!await verifyPin(c.row.cells.pin as string, (c.base as DirectoryUser).pinHash)) c.fields.push('pin')
  })
  for (const c of valid) {
    const b = c.base
    if (b === undefined) continue
    if (c.fullName !== undefined && c.fullName !== b.fullName) c.fields.push('fullName')
    if (c.email !== undefined && c.email !== b.email) c.fields.push('email')
    if (c.groups !== undefined && !sameList(c.groups, b.groups)) c.fields.push('groups')
    if (c.homeSite !== undefined && c.homeSite !== b.homeSite) c.fields.push('homeSite')
    if (c.cardIndex !== undefined && !(b.cards?.length === 1 && b.cards[0].index === c.cardIndex)) c.fields.push('card')
  }
  const username = (c: Change): string => c.row.cells.username as string
  errors.sort((a, b) => a.line - b.line)
  const report: ImportReport = {
    dryRun: options.dryRun,
    imported: 0,
    added: valid.filter((c) => c.base === undefined).map(username),
    changed: valid.filter((c) => c.base !== undefined && c.fields.length > 0).map((c) => ({ username: username(c), fields: c.fields })),
    unchanged: valid.filter((c) => c.base !== undefined && c.fields.length === 0).map(username),
    errors
  }
  if (options.dryRun) return report
  if (errors.length > 0) {
    const shown = errors.slice(0, ERRORS_IN_MESSAGE).map((e) => `line ${e.line}: ${e.message}`).join('; ')
    throw new InvalidRequestError(`nothing imported: ${errors.length} line${errors.length === 1 ? '' : 's'} cannot be: ${shown}${errors.length > ERRORS_IN_MESSAGE ? '; …' : ''}`)
  }
  await assertUserCapacity(store, report.added) // the license's users limit (node/license-file.ts)
  const now = (options.now ?? Date.now)()
  const writes: DirectoryUser[] = []
  await eachLimited(valid.filter((c) => c.base === undefined || c.fields.length > 0), HASH_CONCURRENCY, async (c) => {
    const { cells } = c.row
    const b = c.base
    const pinHash = b === undefined || c.fields.includes('pin') ? await hashPin(cells.pin as string) : b.pinHash
    const cards = c.cardIndex !== undefined && (b === undefined || c.fields.includes('card'))
      ? [await cardCredential(cells.card as string, cardKey as Uint8Array)]
      : b?.cards
    const homeSite = c.homeSite ?? b?.homeSite ?? options.homeSite
    const email = c.email ?? b?.email
    const groups = c.groups ?? b?.groups
    writes.push({
      ...b,
      username: cells.username as string,
      fullName: c.fullName ?? (b as DirectoryUser).fullName,
      pinHash,
      ...(cards !== undefined ? { cards } : {}),
      ...(homeSite !== undefined ? { homeSite } : {}),
      ...(email !== undefined ? { email } : {}),
      ...(groups !== undefined ? { groups } : {}),
      source: b?.source ?? 'csv',
      ...(b !== undefined && c.fields.includes('pin') ? { pinSetAt: now } : {}), // a PIN enrolled before this import loses to it
      updatedAt: now
    })
  })
  await store.transact(directoryDoc(), { kind: 'admin', user: options.by }, (d) => {
    for (const u of writes) putUser(d, u)
  })
  return { ...report, dryRun: false, imported: writes.length }
}
