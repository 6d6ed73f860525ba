/**
 * The enrolment family: `v1/enrol/<peer>`, the credentials users registered at one peer (a
 * card at a terminal's panel, a new PIN at a site's page), written only by that peer, so
 * enrolment works while central is down. Each record holds the credential as the directory
 * stores it (a card's keyed index and slow hash, a PIN's slow hash), never the card number or
 * PIN. Central merges them into the directory (node/enrolment.ts) and notes each merged id,
 * and each card claimed by two users, in the directory document's `enrolments` and
 * `cardConflicts` maps (written only by the directory's authority, as the rest of it).
 *
 * Precedence where a node checks a login (node/users.ts):
 * - Cards: the directory wins where it knows the card (a user's card, or a conflict entry);
 *   otherwise an unmerged enrolment of the card names its user, unless two enrolments give
 *   it to different users (then nobody, until central flags it and an admin decides).
 * - PINs: the newest of the directory's PIN (`pinSetAt`, else the record's `updatedAt`: see
 *   {@link pinTime}) and the user's unmerged PIN enrolments (`at`); an admin's reset or an
 *   import after an enrolment wins over it, an unrelated edit of the record does not; once
 *   central merged it the directory holds it.
 *
 * Who may enrol what: only a site or terminal writes its own document (crdt/membership.ts,
 * checked where envelopes enter); a record naming another enrolling peer than its document is
 * ignored where it is read. A user may enrol at any site (users roam); the user must exist and
 * not be disabled, there and at central's merge.
 * - Merged enrolments are ignored: from then on the directory decides (so a card an admin
 *   removes after the merge does not come back from its enrolment).
 *
 * PIN-only login: a PIN enrolment carries the PIN's keyed index too (crdt/directory.ts
 * `PinIndex`), so a PIN set at a site works for PIN-only login at once. A terminal that logs
 * users in by PIN alone (`--pin-only-login`) says so in its own document
 * ({@link announcePinOnlyLogin}); wherever a peer holding that document sets a PIN (central's
 * admin, a site's or terminal's PIN change), a PIN another user holds is then refused, since
 * a PIN typed alone must name one user.
 */
import type * as Y from 'yjs'
import type { CardCredential, DirectoryUser, PinIndex } from './directory.ts'

export type EnrolmentKind = 'card' | 'pin'

export interface Enrolment {
  /** Unique id (random), the merge's idempotence key. */
  id: string
  user: string
  kind: EnrolmentKind
  /** For `card`: the card as the directory stores it. */
  card?: CardCredential
  /** For `pin`: the new PIN's slow hash. */
  pinHash?: string
  /** For `pin`: its keyed index, bound to `pinHash` (absent from peers that did not index PINs yet). */
  pinIndex?: PinIndex
  /** When it was made (ms since the epoch, the enrolling peer's clock). */
  at: number
  /** The enrolling peer: must be the document's peer. */
  by: string
}

/** What central did with an enrolment (kept in the directory document, by enrolment id). */
export interface MergedEnrolment {
  outcome: 'added' | 'pin-set' | 'older-than-directory' | 'conflict' | 'unknown-user' | 'already-held'
  at: number
  /** For a card added to its user: the claim, kept for a later conflict over it. */
  claim?: CardClaim
}

/** One claim of a card by a user, as a conflict lists it. */
export interface CardClaim { enrolment: string, user: string, at: number, by: string, card: CardCredential }

/** A card two users claimed: it works for neither until an admin assigns it. */
export interface CardConflict {
  /** The card's keyed index (the conflict's id). */
  index: string
  /** Oldest first (by time, then enrolment id): the first is what central suggests. */
  claims: CardClaim[]
  /** Set when an admin decided: the user the card went to. */
  resolvedTo?: string
  resolvedBy?: string
  resolvedAt?: number
  at: number
}

/** A slow hash as crdt/directory.ts writes it. */
const HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/
/** A card index: HMAC-SHA256, hex. */
const INDEX = /^[0-9a-f]{64}$/
const ID = /^[A-Za-z0-9_-]{8,64}$/

const enrolments = (doc: Y.Doc): Y.Map<Enrolment> => doc.getMap<Enrolment>('enrolments')
const merged = (directory: Y.Doc): Y.Map<MergedEnrolment> => directory.getMap<MergedEnrolment>('enrolments')
const settings = (doc: Y.Doc): Y.Map<PinOnlyLogin> => doc.getMap<PinOnlyLogin>('settings')
const conflicts = (directory: Y.Doc): Y.Map<CardConflict> => directory.getMap<CardConflict>('cardConflicts')

/** A peer's statement that it logs users in by PIN alone (its `settings` map, key `pinOnlyLogin`). */
export interface PinOnlyLogin {
  on: boolean
  /** When it last said so. */
  at: number
  /** The peer: must be the document's. */
  by: string
}

/** Records whether `peer` (the document's writer) logs users in by PIN alone; unchanged when it already says so. */
export function announcePinOnlyLogin (doc: Y.Doc, peer: string, on: boolean, at: number): void {
  const current = settings(doc).get('pinOnlyLogin')
  if (current?.on === on && current.by === peer) return
  settings(doc).set('pinOnlyLogin', { on, at, by: peer })
}

/** Whether `peer`'s document says it logs users in by PIN alone (a statement naming another writer is ignored). */
export function pinOnlyLoginOf (doc: Y.Doc, peer: string): boolean {
  const s = settings(doc).get('pinOnlyLogin')
  return typeof s === 'object' && s !== null && s.by === peer && s.on === true
}

/** When the directory's PIN of `user` was set, for the precedence above. */
export function pinTime (user: DirectoryUser): number {
  return user.pinSetAt ?? user.updatedAt
}

export class InvalidEnrolmentError extends Error {
  constructor (detail: string) { super(`invalid enrolment: ${detail}`); this.name = 'InvalidEnrolmentError' }
}

/** Why a record read from `peer`'s document is not a valid enrolment, or undefined when it is. */
export function enrolmentProblem (e: Enrolment, peer: string): string | undefined {
  if (typeof e !== 'object' || e === null) return 'not a record'
  if (typeof e.id !== 'string' || !ID.test(e.id)) return 'bad id'
  if (typeof e.user !== 'string' || e.user === '') return 'no user'
  if (typeof e.at !== 'number' || !Number.isFinite(e.at)) return 'bad time'
  if (e.by !== peer) return `written by ${String(e.by)} in ${peer}'s document`
  if (e.kind === 'card') {
    if (typeof e.card?.index !== 'string' || !INDEX.test(e.card.index) || typeof e.card.hash !== 'string' || !HASH.test(e.card.hash)) return 'bad card credential'
    return undefined
  }
  if (e.kind === 'pin') {
    if (typeof e.pinHash !== 'string' || !HASH.test(e.pinHash)) return 'bad PIN hash'
    if (e.pinIndex !== undefined && (typeof e.pinIndex?.index !== 'string' || !INDEX.test(e.pinIndex.index) || typeof e.pinIndex.salt !== 'string')) return 'bad PIN index'
    return undefined
  }
  return 'unknown kind'
}

export function putEnrolment (doc: Y.Doc, e: Enrolment): void {
  const problem = enrolmentProblem(e, e.by)
  if (problem !== undefined) throw new InvalidEnrolmentError(problem)
  enrolments(doc).set(e.id, { ...e })
}

/** The valid enrolments of `peer`'s document (forged or malformed records are left out). */
export function listEnrolments (doc: Y.Doc, peer: string): Enrolment[] {
  return [...enrolments(doc).values()].filter((e) => enrolmentProblem(e, peer) === undefined).sort(byAge)
}

/** Oldest first, then by id: the deterministic order the merge and conflicts use. */
export function byAge (a: { at: number, id?: string, enrolment?: string }, b: { at: number, id?: string, enrolment?: string }): number {
  return a.at - b.at || (a.id ?? a.enrolment ?? '').localeCompare(b.id ?? b.enrolment ?? '')
}

export function mergedEnrolment (directory: Y.Doc, id: string): MergedEnrolment | undefined {
  return merged(directory).get(id)
}

/** Every merged enrolment central noted. */
export function listMerged (directory: Y.Doc): MergedEnrolment[] {
  return [...merged(directory).values()]
}

export function markMerged (directory: Y.Doc, id: string, m: MergedEnrolment): void {
  merged(directory).set(id, m)
}

export function getCardConflict (directory: Y.Doc, index: string): CardConflict | undefined {
  return conflicts(directory).get(index)
}

export function putCardConflict (directory: Y.Doc, c: CardConflict): void {
  conflicts(directory).set(c.index, { ...c, claims: [...c.claims].sort(byAge) })
}

export function listCardConflicts (directory: Y.Doc): CardConflict[] {
  return [...conflicts(directory).values()].sort((a, b) => a.at - b.at || a.index.localeCompare(b.index))
}
