/**
 * The directory family: `v1/directory`, users with their PIN hashes and cards. Written by
 * central; a standalone site is its own authority until it joins a mesh. PINs and card
 * numbers are stored only as salted scrypt hashes (at {@link PIN_SCRYPT_N}); no PIN or card
 * number ever enters a document, a log or an API answer.
 *
 * A card is found without a slow hash per user: each card also carries a keyed index,
 * HMAC-SHA256 under a key no document holds (node/users.ts derives it from the mesh's
 * network key, which every member has in its data folder). The index alone names the
 * user; the card's slow hash is then checked once, so a copy of the documents without the
 * key cannot be searched for card numbers, and one with it still pays a slow hash to
 * confirm each guess against the stored card.
 *
 * PINs may carry a keyed index the same way (PIN-only login at a terminal's panel: a PIN
 * typed without a username): HMAC-SHA256 of the PIN under a key of its own ({@link pinKeyOf},
 * derived from the card key under another label), so the PIN's user is found by one index
 * read and the PIN's slow hash is then checked once. The index is bound to the hash it was
 * written with (`pinIndex.salt` is that hash's salt): a writer that sets a new `pinHash`
 * without knowing the PIN (an older import, the LDAP sync) leaves an index that no longer
 * counts, never one naming the user by their old PIN. A PIN has few digits: anyone holding
 * the documents *and* the network key can try every PIN against the indexes at HMAC speed,
 * as they can card numbers; without the key the indexes reveal nothing.
 */
import type * as Y from 'yjs'
import { createHmac, hkdfSync, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/** One badge of a user: how it is found (keyed index) and checked (slow hash). */
export interface CardCredential {
  /** HMAC-SHA256 of the card number under the directory's card key, hex. */
  index: string
  /** Salted scrypt hash of the card number, as `pinHash`. */
  hash: string
}

/** A PIN's keyed index, bound to the slow hash it was written with. */
export interface PinIndex {
  /** HMAC-SHA256 of the PIN under the directory's PIN key, hex. */
  index: string
  /** The salt (base64) of the `pinHash` written with it: the index counts only while that hash is the user's. */
  salt: string
}

export interface DirectoryUser {
  username: string
  fullName: string
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` */
  pinHash: string
  /** The PIN's keyed index (PIN-only login), when the PIN was set by a writer that indexes it; see {@link currentPinIndex}. */
  pinIndex?: PinIndex
  /** When the PIN was last set (an admin, an import, a merged enrolment); absent: `updatedAt` stands for it (crdt/enrolment.ts precedence). */
  pinSetAt?: number
  /** The user's cards (badges), if any. */
  cards?: CardCredential[]
  homeSite?: string
  /** Contact address, as the directory source gives it. */
  email?: string
  /** Group names (departments), for reports and quotas. */
  groups?: string[]
  /** Users who may release this user's jobs (usernames). */
  delegates?: string[]
  /** A disabled user cannot log in or release; their jobs and records are kept. */
  disabled?: boolean
  /** Where the record came from: `ldap` records are owned by the LDAP sync. */
  source?: 'csv' | 'ldap' | 'admin' | 'local'
  updatedAt: number
}

/**
 * scrypt cost of admin passwords and the mesh admin token ({@link slowHash}): 2^15 makes one
 * guess cost ~50-100 ms of CPU and 32 MiB of memory. A password has enough entropy for that
 * cost to make offline guessing of a stolen hash slow; an admin logs in rarely, so it can be
 * paid at every login.
 */
export const PASSWORD_SCRYPT_N = 2 ** 15
/**
 * scrypt cost of PINs and card numbers ({@link hashPin}, {@link cardCredential},
 * {@link indexedPinHash}): 2^11 (r=8: 2 MiB), ~4 ms of CPU a check on the x86 server cores
 * printmesh is benchmarked on (2^12 measured 8-10 ms there, 2^13 17-20 ms, 2^15 80-95 ms).
 * A PIN has 10^4-10^6 values, so no hash cost makes an offline guess of a stolen hash slow:
 * at 2^15 a 4-digit PIN still falls in minutes. What protects PINs is that their hashes are
 * encrypted at rest (a terminal's store key), reach only the peers that need them, and that
 * online guesses are locked out (the login guard). The slow hash only has to make a stolen
 * hash cost CPU-minutes per user (10^6 PINs × 4 ms ≈ an hour of CPU for a 6-digit PIN)
 * rather than be instant, and a login at a terminal must fit its 20 ms budget (issue 12,
 * request to job list) on a small terminal CPU, several times slower than a server core.
 * Hashes carry their parameters: those written at 2^15 before still verify, at their cost.
 */
export const PIN_SCRYPT_N = 2 ** 11
const SCRYPT_R = 8
const SCRYPT_P = 1
/** scrypt needs 128·N·r bytes; leave headroom over the default 32 MiB limit. */
const SCRYPT_MAXMEM = 64 * 1024 * 1024
const SALT_BYTES = 16
const HASH_BYTES = 32
/** Usernames as most directories allow them. */
const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/
/** PINs: digits, 4 to 12 of them, as MFP panels accept. */
const PIN = /^\d{4,12}$/
/** A group name as the directory keeps it (CSV, LDAP, the users API trim it first): 1-128 characters, no `;` (the CSV list separator) or control characters. */
export const GROUP_NAME = /^[^;\p{Cc}]{1,128}$/u

/** Card numbers as readers type them: letters and digits, 4 to 64 (125 kHz and MIFARE UIDs fit). */
const CARD = /^[A-Za-z0-9]{4,64}$/

export class InvalidUserError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidUserError' }
}

function scrypt (pin: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: n, r, p, maxmem: SCRYPT_MAXMEM }
  return new Promise((resolve, reject) => {
    scryptCb(pin, salt, HASH_BYTES, opts, (err, key) => { if (err !== null) reject(err); else resolve(key) })
  })
}

export function validateUsername (username: string): void {
  if (!USERNAME.test(username)) throw new InvalidUserError(`invalid username ${JSON.stringify(username)}: use 1-64 letters, digits or . _ @ -`)
}

export function validatePin (pin: string): void {
  if (!PIN.test(pin)) throw new InvalidUserError('a PIN must be 4 to 12 digits')
}

export function validateCard (card: string): void {
  if (!CARD.test(card)) throw new InvalidUserError('a card number must be 4 to 64 letters or digits')
}

/** Card numbers as readers send them differ only in case (hex UIDs): one form for hashing. */
export function normalizeCard (card: string): string {
  return card.trim().toUpperCase()
}

/**
 * Salted slow hash (`scrypt$N$r$p$salt$hash`) of a secret: by default at the cost of admin
 * passwords and the mesh admin token ({@link PASSWORD_SCRYPT_N}); PINs and cards are hashed
 * at {@link PIN_SCRYPT_N} ({@link hashPin}, {@link cardCredential}).
 */
export async function slowHash (secret: string, n: number = PASSWORD_SCRYPT_N): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await scrypt(secret, salt, n, SCRYPT_R, SCRYPT_P)
  return ['scrypt', n, SCRYPT_R, SCRYPT_P, salt.toString('base64'), key.toString('base64')].join('$')
}

/** Salted slow hash of a PIN, at the PIN cost ({@link PIN_SCRYPT_N}). */
export async function hashPin (pin: string): Promise<string> {
  validatePin(pin)
  return await slowHash(pin, PIN_SCRYPT_N)
}

/** The stored form of a card: its keyed index under `cardKey` and its salted slow hash. */
export async function cardCredential (card: string, cardKey: Uint8Array): Promise<CardCredential> {
  const normal = normalizeCard(card)
  validateCard(normal)
  return { index: cardIndex(normal, cardKey), hash: await slowHash(normal, PIN_SCRYPT_N) }
}

/** The keyed index of a (normalized) card number: found without a slow hash. */
export function cardIndex (card: string, cardKey: Uint8Array): string {
  return createHmac('sha256', cardKey).update(normalizeCard(card)).digest('hex')
}

/**
 * The key of the PIN index, derived from the card key (node/users.ts `cardKeyOf`, itself from
 * the network key) under a label of its own: a PIN and a card with the same digits never share
 * an index, and every peer holding the card key can compute it.
 */
export function pinKeyOf (cardKey: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', cardKey, 'printmesh', 'directory PIN index v1', 32))
}

/** The keyed index of a PIN: its user found without a slow hash (PIN-only login). */
export function pinIndexOf (pin: string, pinKey: Uint8Array): string {
  return createHmac('sha256', pinKey).update(pin).digest('hex')
}

/** The salt of a stored slow hash (`scrypt$N$r$p$salt$hash`), or undefined when it is not one. */
export function hashSalt (stored: string): string | undefined {
  const parts = stored.split('$')
  return parts[0] === 'scrypt' && parts.length === 6 ? parts[4] : undefined
}

/** A PIN's stored form with its index: the slow hash and the index bound to it. */
export async function indexedPinHash (pin: string, pinKey: Uint8Array): Promise<{ pinHash: string, pinIndex: PinIndex }> {
  const pinHash = await hashPin(pin)
  return { pinHash, pinIndex: { index: pinIndexOf(pin, pinKey), salt: hashSalt(pinHash) as string } }
}

/** The index of `pinHash`'s PIN when `pinIndex` was written with that hash, else undefined (a stale or absent index). */
export function boundPinIndex (pinHash: string, pinIndex: PinIndex | undefined): string | undefined {
  if (pinIndex === undefined || typeof pinIndex.index !== 'string' || pinHash === '') return undefined
  return pinIndex.salt === hashSalt(pinHash) ? pinIndex.index : undefined
}

/** The index of the user's directory PIN, when it is indexed and the index belongs to the current hash. */
export function currentPinIndex (user: DirectoryUser): string | undefined {
  return boundPinIndex(user.pinHash, user.pinIndex)
}

/**
 * The users whose directory PIN has keyed index `index` ({@link currentPinIndex}; disabled
 * users included), by username: found without a pass over every user. PIN enrolments not yet
 * merged are not seen here (node/enrolment.ts weighs them).
 */
export function usersByPinIndex (doc: Y.Doc, index: string): DirectoryUser[] {
  const derived = derivedOf(doc)
  const names = derived === undefined ? pinIndexMapOf(doc).get(index) : (derived.byPin ??= pinIndexMapOf(doc)).get(index)
  return (names ?? []).map((name) => usersMap(doc).get(name)).filter((u): u is DirectoryUser => u !== undefined)
}

/** The user holding the card with this index, if any (the first in the directory's order when two do). */
export function userByCardIndex (doc: Y.Doc, index: string): DirectoryUser | undefined {
  const derived = derivedOf(doc)
  if (derived === undefined) return scanUserByCard(doc, index)
  derived.byCard ??= cardIndexOf(doc)
  const username = derived.byCard.get(index)
  return username === undefined ? undefined : usersMap(doc).get(username)
}

function scanUserByCard (doc: Y.Doc, index: string): DirectoryUser | undefined {
  for (const user of usersMap(doc).values()) {
    if (user.cards?.some((c) => c.index === index) === true) return user
  }
  return undefined
}

/**
 * Whether scrypt parameters are ones this code writes ({@link slowHash}: N a power of two from
 * {@link PIN_SCRYPT_N} to {@link PASSWORD_SCRYPT_N}, r 8, p 1). Others are refused unverified:
 * a hash is only as trusted as its writer, and one handed over by a joining site with p = 100,000
 * would hold a thread of the pool for minutes per sign-in attempt.
 */
export function slowHashCost (n: number, r: number, p: number): boolean {
  return Number.isInteger(n) && n >= PIN_SCRYPT_N && n <= PASSWORD_SCRYPT_N && (n & (n - 1)) === 0 && r === SCRYPT_R && p === SCRYPT_P
}

/**
 * Checks a PIN (or a normalized card number, or a password) against a stored hash in constant
 * time, at the cost the hash names (a PIN hashed at 2^15 before {@link PIN_SCRYPT_N} still
 * verifies); false for malformed hashes.
 */
export async function verifyPin (pin: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || hash === undefined || !slowHashCost(Number(n), Number(r), Number(p))) return false
  const expected = Buffer.from(hash, 'base64')
  const key = await scrypt(pin, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p))
  return key.length === expected.length && timingSafeEqual(key, expected)
}

const usersMap = (doc: Y.Doc): Y.Map<DirectoryUser> => doc.getMap<DirectoryUser>('users')

export function putUser (doc: Y.Doc, user: DirectoryUser): void {
  validateUsername(user.username)
  usersMap(doc).set(user.username, { ...user })
}

export function getUser (doc: Y.Doc, username: string): DirectoryUser | undefined {
  return usersMap(doc).get(username)
}

/** Every user, by username (a fresh array: the caller may change it). */
export function listUsers (doc: Y.Doc): DirectoryUser[] {
  const derived = derivedOf(doc)
  if (derived === undefined) return sortedUsers(doc)
  derived.sorted ??= sortedUsers(doc)
  return derived.sorted.slice()
}

const sortedUsers = (doc: Y.Doc): DirectoryUser[] => [...usersMap(doc).values()].sort((a, b) => a.username.localeCompare(b.username))

export function removeUser (doc: Y.Doc, username: string): boolean {
  const had = usersMap(doc).has(username)
  usersMap(doc).delete(username)
  return had
}

/** The delegates `owner` named (empty for an unknown or disabled owner: a disabled user's jobs are released by nobody but an admin). */
export function delegatesOf (doc: Y.Doc, owner: string): readonly string[] {
  const user = usersMap(doc).get(owner)
  return user === undefined || user.disabled === true ? [] : user.delegates ?? []
}

/** The enabled users who named `delegate` among their delegates (a fresh array, sorted). */
export function delegatorsOf (doc: Y.Doc, delegate: string): string[] {
  const derived = derivedOf(doc)
  if (derived === undefined) return scanDelegators(doc, delegate)
  derived.delegators ??= delegatorIndexOf(doc)
  return derived.delegators.get(delegate)?.slice() ?? []
}

function scanDelegators (doc: Y.Doc, delegate: string): string[] {
  const out: string[] = []
  for (const user of usersMap(doc).values()) {
    if (user.disabled !== true && user.delegates?.includes(delegate) === true) out.push(user.username)
  }
  return out.sort()
}

/**
 * What the directory's readers ask of every user, kept per document until its users change:
 * a terminal with 10,000 synced users answers each login and job list from these (a card's
 * holder, a PIN index's users, a user's delegators, the sorted list) instead of a pass over
 * every user (~2 ms for a card or the delegators, ~8 ms for the sorted list, measured at
 * 10,000 users).
 */
interface DerivedUsers {
  sorted?: DirectoryUser[]
  /** Card index → username (the first holder in the users map's order, as a scan finds it). */
  byCard?: Map<string, string>
  /** Delegate → the enabled users who named them, sorted. */
  delegators?: Map<string, string[]>
  /** PIN index in force ({@link currentPinIndex}) → its users, by username. */
  byPin?: Map<string, string[]>
}
const derivedUsers = new WeakMap<Y.Doc, DerivedUsers>()

/**
 * The document's derived users, emptied whenever its users map changes (an observer, which
 * Yjs calls for local and remote changes alike). Undefined while a transaction on the document
 * is open or its observers are still being called: the map may have changed without the
 * observer having run yet, so readers then scan the map itself.
 */
function derivedOf (doc: Y.Doc): DerivedUsers | undefined {
  if (doc._transaction !== null || doc._transactionCleanups.length > 0) return undefined
  let derived = derivedUsers.get(doc)
  if (derived === undefined) {
    derived = {}
    derivedUsers.set(doc, derived)
    usersMap(doc).observe(() => { derivedUsers.set(doc, {}) })
  }
  return derived
}

function cardIndexOf (doc: Y.Doc): Map<string, string> {
  const out = new Map<string, string>()
  for (const user of usersMap(doc).values()) {
    if (!Array.isArray(user.cards)) continue
    for (const card of user.cards) if (typeof card?.index === 'string' && !out.has(card.index)) out.set(card.index, user.username)
  }
  return out
}

function pinIndexMapOf (doc: Y.Doc): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const user of usersMap(doc).values()) {
    const index = currentPinIndex(user)
    if (index === undefined) continue
    const list = out.get(index)
    if (list === undefined) out.set(index, [user.username]); else list.push(user.username)
  }
  for (const list of out.values()) list.sort((a, b) => a.localeCompare(b))
  return out
}

function delegatorIndexOf (doc: Y.Doc): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const user of usersMap(doc).values()) {
    if (user.disabled === true || !Array.isArray(user.delegates)) continue
    for (const delegate of new Set(user.delegates)) {
      const list = out.get(delegate)
      if (list === undefined) out.set(delegate, [user.username]); else list.push(user.username)
    }
  }
  for (const list of out.values()) list.sort()
  return out
}
