/**
 * Enrolment anywhere (issue 15 item 4): a logged-in user registers a card at a terminal's
 * panel, or sets a new PIN at a site's page, and it is written to this peer's own enrolment
 * document (`v1/enrol/<peer>`, crdt/enrolment.ts), so it works at once here and at the
 * site's other peers, with central up or down. Central merges enrolments into the
 * directory as they reach it ({@link EnrolmentMerger}), once per enrolment id; a card two
 * users claimed is flagged for an admin and works for neither until one is chosen.
 *
 * Logins consult the directory and the enrolments a node holds ({@link currentPinHash},
 * {@link cardHolder}; precedence in crdt/enrolment.ts). No card number or PIN is written,
 * logged or answered: only the keyed index and slow hashes the directory uses.
 */
import { randomBytes } from 'node:crypto'
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc, enrolDoc, parseDocName, peerId } from '../crdt/names.ts'
import {
  getUser, putUser, listUsers, usersByPinIndex, cardCredential, cardIndex, normalizeCard, userByCardIndex, indexedPinHash, pinIndexOf, pinKeyOf, boundPinIndex, currentPinIndex,
  type CardCredential, type DirectoryUser
} from '../crdt/directory.ts'
import {
  listEnrolments, pinOnlyLoginOf, announcePinOnlyLogin, putEnrolment, mergedEnrolment, markMerged, listMerged, pinTime, getCardConflict, putCardConflict, listCardConflicts, byAge,
  type Enrolment, type CardConflict, type CardClaim, type MergedEnrolment
} from '../crdt/enrolment.ts'
import { KindedError } from '../crdt/errors.ts'
import { checkCard as checkCardFormat, checkPin as checkPinFormat, UnknownUserError } from './user-fields.ts'
import type { Startable } from './compose.ts'

/** The enrolling user's old PIN is wrong (or they are unknown or disabled). */
export class WrongPinError extends KindedError {
  readonly kind = 'not-authorized'
  constructor () { super('the current PIN is wrong'); this.name = 'WrongPinError' }
}

/** New PIN and its repetition differ. */
export class PinMismatchError extends KindedError {
  readonly kind = 'invalid-request'
  constructor () { super('the new PIN and its repetition differ'); this.name = 'PinMismatchError' }
}

/** The card is another user's. Their name is not said: a logged-in user could otherwise learn who holds any card number. */
export class CardOfAnotherUserError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('this card is registered to another user; if it is yours, ask an administrator'); this.name = 'CardOfAnotherUserError' }
}

/** A card two users claimed waits for an admin; nobody may register it meanwhile. */
export class CardDisputedError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('this card is claimed by two users and waits for an admin to decide; it cannot be registered now'); this.name = 'CardDisputedError' }
}

/** No conflict for that card id, or it was decided already. */
export class UnknownConflictError extends KindedError {
  readonly kind = 'not-found'
  constructor (id: string) { super(`no undecided card conflict ${JSON.stringify(id)}`); this.name = 'UnknownConflictError' }
}

/** The admin named a user who did not claim the card. */
export class NotAClaimantError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (user: string, claimants: string[]) { super(`${user} did not claim this card; choose one of ${claimants.join(', ')}`); this.name = 'NotAClaimantError' }
}

/**
 * The PIN is another user's, where PINs must be unique (a peer of the mesh logs users in by PIN
 * alone). Whose is not said, and a user's PIN change refused so is throttled
 * ({@link MAX_TAKEN_PIN_REFUSALS}): each refusal tells that some user has that PIN.
 */
export class PinTakenError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('this PIN is already another user\'s; PINs must be unique here because users log in by PIN alone: choose another PIN'); this.name = 'PinTakenError' }
}

/** Too many of a user's PIN changes were refused as taken: they could map which PINs are in use. */
export class PinChangesThrottledError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (retryAfterMs: number) { super(`too many new PINs refused as taken; try again in ${Math.ceil(retryAfterMs / 60_000)} minutes`); this.name = 'PinChangesThrottledError' }
}

/** PIN changes one user may have refused as taken per window: a few unlucky choices pass, a search of the PIN space does not. */
export const MAX_TAKEN_PIN_REFUSALS = 3
/** The window of {@link MAX_TAKEN_PIN_REFUSALS}. */
export const TAKEN_PIN_WINDOW_MS = 60 * 60_000

/**
 * Records in this peer's own enrolment document whether it logs users in by PIN alone (a
 * terminal's `--pin-only-login`), so the peers that set PINs keep them unique. Writes nothing
 * for a peer that never said so and does not now.
 */
export async function announcePinOnly (store: DocStore, self: string, on: boolean, now: number): Promise<void> {
  const name = enrolDoc(peerId(self))
  if (!on && !pinOnlyLoginOf(await store.open(name), self)) return
  await store.transact(name, { kind: 'local', service: 'panel' }, (doc) => { announcePinOnlyLogin(doc, self, on, now) })
}

/** Whether a peer whose enrolment document this node holds logs users in by PIN alone (then PINs must be unique). */
export function pinOnlyLoginInUse (store: DocStore): boolean {
  for (const name of store.openNames()) {
    const parsed = parseDocName(name)
    if (parsed?.family !== 'enrol' || parsed.peer === undefined) continue
    const doc = store.get(name)
    if (doc !== undefined && pinOnlyLoginOf(doc, parsed.peer)) return true
  }
  return false
}

/**
 * Calls `visit` with every user's PIN in force (as {@link currentPinHash} picks it: the newest
 * of the directory's and their unmerged PIN enrolments): its keyed index and hash. Disabled
 * users are included (their PIN is still theirs); a PIN set without an index counts for
 * nobody. One pass over the users and the enrolments held: no slow hash.
 */
function eachIndexedPin (store: DocStore, directory: Y.Doc, visit: (index: string, holder: { user: DirectoryUser, pinHash: string }) => void): void {
  const newest = newestPinEnrolments(store, directory)
  for (const user of listUsers(directory)) {
    const current = pinInForce(user, newest.get(user.username))
    if (current.index !== undefined) visit(current.index, { user, pinHash: current.pinHash })
  }
}

/** Per user, their newest unmerged PIN enrolment held here. */
function newestPinEnrolments (store: DocStore, directory: Y.Doc): Map<string, Enrolment> {
  const newest = new Map<string, Enrolment>()
  for (const e of unmergedEnrolments(store, directory)) {
    if (e.kind !== 'pin' || e.pinHash === undefined) continue
    const before = newest.get(e.user)
    if (before === undefined || e.at > before.at) newest.set(e.user, e)
  }
  return newest
}

/** The user's PIN in force, given their newest unmerged PIN enrolment: its hash and keyed index. */
function pinInForce (user: DirectoryUser, e: Enrolment | undefined): { pinHash: string, index: string | undefined } {
  return e !== undefined && e.at > pinTime(user)
    ? { pinHash: e.pinHash as string, index: boundPinIndex(e.pinHash as string, e.pinIndex) }
    : { pinHash: user.pinHash, index: currentPinIndex(user) }
}

/** Every user's PIN in force by its keyed index, with its hash (for checking many PINs at once: a CSV import). */
export function pinIndexes (store: DocStore, directory: Y.Doc): Map<string, Array<{ user: DirectoryUser, pinHash: string }>> {
  const out = new Map<string, Array<{ user: DirectoryUser, pinHash: string }>>()
  eachIndexedPin(store, directory, (index, holder) => { out.set(index, [...out.get(index) ?? [], holder]) })
  return out
}

/**
 * The users whose PIN in force has keyed index `index` (a login, one PIN set), by username.
 * Only the candidates are weighed: the users whose directory PIN has that index (crdt/directory.ts
 * `usersByPinIndex`, kept between changes) and those with an unmerged PIN enrolment: no pass
 * over every user.
 */
export function pinHolders (store: DocStore, directory: Y.Doc, index: string): Array<{ user: DirectoryUser, pinHash: string }> {
  const newest = newestPinEnrolments(store, directory)
  const candidates = new Map(usersByPinIndex(directory, index).map((u) => [u.username, u]))
  for (const name of newest.keys()) {
    const user = getUser(directory, name)
    if (user !== undefined) candidates.set(name, user)
  }
  const out: Array<{ user: DirectoryUser, pinHash: string }> = []
  for (const user of [...candidates.values()].sort((a, b) => a.username.localeCompare(b.username))) {
    const current = pinInForce(user, newest.get(user.username))
    if (current.index === index) out.push({ user, pinHash: current.pinHash })
  }
  return out
}

/** Conflicts are shown by a short id: the first hex digits of the card's keyed index (not enough to search for card numbers). */
export const CONFLICT_ID_CHARS = 16

/** Every enrolment this node holds that central has not merged yet, oldest first. */
export function unmergedEnrolments (store: DocStore, directory: Y.Doc): Enrolment[] {
  const out: Enrolment[] = []
  for (const name of store.openNames()) {
    const parsed = parseDocName(name)
    if (parsed?.family !== 'enrol' || parsed.peer === undefined) continue
    const doc = store.get(name)
    if (doc === undefined) continue
    for (const e of listEnrolments(doc, parsed.peer)) if (mergedEnrolment(directory, e.id) === undefined) out.push(e)
  }
  return out.sort(byAge)
}

/** The PIN hash in force for `user`: the newest of the directory's record and the user's unmerged PIN enrolments. */
export function currentPinHash (store: DocStore, directory: Y.Doc, user: DirectoryUser): string {
  let hash = user.pinHash
  let at = pinTime(user)
  for (const e of unmergedEnrolments(store, directory)) {
    if (e.kind === 'pin' && e.user === user.username && e.pinHash !== undefined && e.at > at) { hash = e.pinHash; at = e.at }
  }
  return hash
}

/**
 * Who holds the card with keyed index `index`, and its stored hash: the directory where it
 * knows the card (a user's card; a conflict not yet decided gives it to nobody); otherwise
 * the unmerged enrolments of it, when they all name one (existing) user.
 */
export function cardHolder (store: DocStore, directory: Y.Doc, index: string): { user: DirectoryUser, card: CardCredential } | undefined {
  const user = userByCardIndex(directory, index)
  const badge = user?.cards?.find((c) => c.index === index)
  if (user !== undefined && badge !== undefined) return { user, card: badge }
  if (getCardConflict(directory, index) !== undefined) return undefined
  const claims = unmergedEnrolments(store, directory).filter((e) => e.kind === 'card' && e.card?.index === index)
  const users = new Set(claims.map((e) => e.user))
  if (users.size !== 1) return undefined // none, or claimed by two users: works for neither
  const enrolled = getUser(directory, claims[0].user)
  return enrolled === undefined || claims[0].card === undefined ? undefined : { user: enrolled, card: claims[0].card }
}

export interface EnrolmentsInit {
  store: DocStore
  /** This peer (the enrolment document it writes). */
  self: string
  cardKey: Uint8Array
  /** Checks a PIN as logins do (node/users.ts `checkPin`). */
  checkPin: (username: string, pin: string) => Promise<boolean>
  logger: Logger
  now?: () => number
}

/** What a user may do at this peer: register a card, set a new PIN. */
export class Enrolments {
  private queue: Promise<unknown> = Promise.resolve()
  /** Key of the PIN index, derived from the card key (crdt/directory.ts `pinKeyOf`). */
  private readonly pinKey: Uint8Array
  /** Per user, when their PIN changes were refused as taken (for {@link MAX_TAKEN_PIN_REFUSALS}). */
  private readonly takenRefusals = new Map<string, number[]>()
  constructor (private readonly init: EnrolmentsInit) { this.pinKey = pinKeyOf(init.cardKey) }

  /**
   * Registers `card` for `username` (logged in). Refused at once when this node can tell the
   * card is someone else's (the directory, or an enrolment it holds) or disputed.
   */
  async enrolCard (username: string, card: string): Promise<{ registered: boolean }> {
    return await this.serial(async () => {
      const normal = normalizeCard(card)
      checkCardFormat(normal)
      const directory = await this.directory()
      this.enabledUser(directory, username)
      const index = cardIndex(normal, this.init.cardKey)
      const conflict = getCardConflict(directory, index)
      if (conflict !== undefined && conflict.resolvedTo === undefined) throw new CardDisputedError()
      const holder = cardHolder(this.init.store, directory, index)
      if (holder !== undefined && holder.user.username !== username) throw new CardOfAnotherUserError()
      if (holder === undefined && unmergedEnrolments(this.init.store, directory).some((e) => e.kind === 'card' && e.card?.index === index)) throw new CardDisputedError()
      if (holder !== undefined) return { registered: false } // already theirs
      await this.write({ user: username, kind: 'card', card: await cardCredential(normal, this.init.cardKey) })
      this.init.logger.info({ user: username, peer: this.init.self }, 'card registered')
      return { registered: true }
    })
  }

  /**
   * Sets a new PIN for `username` after checking the current one, with its keyed index. Where
   * PINs must be unique ({@link pinOnlyLoginInUse}), a PIN another user holds is refused
   * ({@link PinTakenError}), at most {@link MAX_TAKEN_PIN_REFUSALS} times an hour per user.
   */
  async enrolPin (username: string, oldPin: string, newPin: string, repeat: string): Promise<void> {
    await this.serial(async () => {
      if (newPin !== repeat) throw new PinMismatchError()
      checkPinFormat(newPin)
      const waitMs = this.takenWait(username)
      if (waitMs > 0) throw new PinChangesThrottledError(waitMs)
      if (!await this.init.checkPin(username, oldPin)) throw new WrongPinError()
      const directory = await this.directory()
      this.enabledUser(directory, username)
      if (pinOnlyLoginInUse(this.init.store) && pinHolders(this.init.store, directory, pinIndexOf(newPin, this.pinKey)).some((h) => h.user.username !== username)) {
        this.takenRefusals.set(username, [...this.takenRefusals.get(username) ?? [], this.now()])
        this.init.logger.info({ user: username, peer: this.init.self }, 'new PIN refused: another user holds it')
        throw new PinTakenError()
      }
      await this.write({ user: username, kind: 'pin', ...await indexedPinHash(newPin, this.pinKey) })
      this.init.logger.info({ user: username, peer: this.init.self }, 'new PIN set')
    })
  }

  /** How long `username` must wait before a PIN change may be refused as taken again (0: they may try). */
  private takenWait (username: string): number {
    const live = (this.takenRefusals.get(username) ?? []).filter((t) => t > this.now() - TAKEN_PIN_WINDOW_MS)
    if (live.length === 0) this.takenRefusals.delete(username)
    else this.takenRefusals.set(username, live)
    return live.length < MAX_TAKEN_PIN_REFUSALS ? 0 : live[live.length - MAX_TAKEN_PIN_REFUSALS] + TAKEN_PIN_WINDOW_MS - this.now()
  }

  private now (): number { return (this.init.now ?? Date.now)() }

  private enabledUser (directory: Y.Doc, username: string): DirectoryUser {
    const user = getUser(directory, username)
    if (user === undefined || user.disabled === true) throw new UnknownUserError(username)
    return user
  }

  private async directory (): Promise<Y.Doc> { return await this.init.store.open(directoryDoc()) }

  private async write (e: Omit<Enrolment, 'id' | 'at' | 'by'>): Promise<void> {
    const record: Enrolment = { ...e, id: randomBytes(12).toString('base64url'), at: (this.init.now ?? Date.now)(), by: this.init.self }
    await this.init.store.transact(enrolDoc(peerId(this.init.self)), { kind: 'user', user: e.user }, (doc) => { putEnrolment(doc, record) })
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return await run
  }
}

/** A card conflict as admins see it: a short id, the claims (oldest first) and the decision. */
export interface CardConflictView {
  id: string
  claims: Array<{ user: string, at: number, by: string }>
  /** The first claim's user: who central suggests. */
  suggested: string
  resolvedTo?: string
  resolvedBy?: string
  at: number
}

const conflictView = (c: CardConflict): CardConflictView => ({
  id: c.index.slice(0, CONFLICT_ID_CHARS),
  claims: c.claims.map((k) => ({ user: k.user, at: k.at, by: k.by })),
  suggested: c.claims[0]?.user ?? '',
  ...(c.resolvedTo !== undefined ? { resolvedTo: c.resolvedTo } : {}),
  ...(c.resolvedBy !== undefined ? { resolvedBy: c.resolvedBy } : {}),
  at: c.at
})

/** The origin of the merger's directory writes. */
const MERGE_ORIGIN = { kind: 'local', service: 'enrolment-merge' } as const

export interface EnrolmentMergerInit {
  store: DocStore
  logger: Logger
  now?: () => number
}

/**
 * Central's merge of enrolments into the directory, as they arrive (and all held ones at
 * start), oldest first, each once (its id is noted in the directory):
 * - a PIN newer than the user's record sets it; an older one is noted and ignored;
 * - a card nobody holds is added to the user; one another user holds (or already disputed)
 *   becomes a conflict: the card is taken from the holder and works for nobody until an
 *   admin assigns it ({@link assign}).
 */
export class EnrolmentMerger implements Startable {
  private queue: Promise<unknown> = Promise.resolve()
  private readonly onEntry = (name: string): void => {
    if (parseDocName(name)?.family === 'enrol') void this.serial(async () => await this.mergeAll())
  }

  constructor (private readonly init: EnrolmentMergerInit) {}

  private started = false

  async start (): Promise<void> {
    if (!this.started) this.init.store.on('entry', this.onEntry)
    this.started = true
    await this.serial(async () => await this.mergeAll())
  }

  async stop (): Promise<void> {
    this.init.store.off('entry', this.onEntry)
    this.started = false
    await this.queue
  }

  /** Card conflicts, undecided first. */
  async conflicts (): Promise<CardConflictView[]> {
    const all = listCardConflicts(await this.init.store.open(directoryDoc()))
    return [...all.filter((c) => c.resolvedTo === undefined), ...all.filter((c) => c.resolvedTo !== undefined)].map(conflictView)
  }

  /** An admin gives the disputed card (by its short id) to one of its claimants. */
  async assign (id: string, user: string, by: string): Promise<CardConflictView> {
    return await this.serial(async () => {
      const directory = await this.init.store.open(directoryDoc())
      const conflict = listCardConflicts(directory).find((c) => c.index.slice(0, CONFLICT_ID_CHARS) === id && c.resolvedTo === undefined)
      if (conflict === undefined) throw new UnknownConflictError(id)
      const claim = conflict.claims.find((k) => k.user === user)
      if (claim === undefined) throw new NotAClaimantError(user, [...new Set(conflict.claims.map((k) => k.user))])
      const holder = getUser(directory, user)
      if (holder === undefined) throw new UnknownUserError(user)
      const decided: CardConflict = { ...conflict, resolvedTo: user, resolvedBy: by, resolvedAt: this.now() }
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => {
        putUser(doc, { ...holder, cards: [...(holder.cards ?? []).filter((c) => c.index !== claim.card.index), claim.card], updatedAt: this.now() })
        putCardConflict(doc, decided)
      })
      this.init.logger.info({ user, by, conflict: id }, 'disputed card assigned')
      return conflictView(decided)
    })
  }

  private now (): number { return (this.init.now ?? Date.now)() }

  private async mergeAll (): Promise<void> {
    const store = this.init.store
    const directory = await store.open(directoryDoc())
    const pending = unmergedEnrolments(store, directory)
    if (pending.length === 0) return
    await store.transact(directoryDoc(), MERGE_ORIGIN, (doc) => {
      for (const e of pending) {
        const outcome = this.mergeOne(doc, e)
        markMerged(doc, e.id, { outcome, at: this.now(), ...(outcome === 'added' && e.card !== undefined ? { claim: this.claimOf(e, e.card) } : {}) })
        this.init.logger.info({ enrolment: e.id, user: e.user, kind: e.kind, by: e.by, outcome }, 'enrolment merged')
      }
    })
  }

  private claimOf (e: Enrolment, card: CardCredential): CardClaim {
    return { enrolment: e.id, user: e.user, at: e.at, by: e.by, card }
  }

  private mergeOne (doc: Y.Doc, e: Enrolment): MergedEnrolment['outcome'] {
    const user = getUser(doc, e.user)
    if (user === undefined) return 'unknown-user'
    if (e.kind === 'pin') {
      if (e.pinHash === undefined || e.at <= pinTime(user)) return 'older-than-directory'
      const { pinIndex: _, ...rest } = user // the old PIN's index goes with it
      putUser(doc, { ...rest, pinHash: e.pinHash, ...(e.pinIndex !== undefined ? { pinIndex: e.pinIndex } : {}), pinSetAt: e.at, updatedAt: this.now() })
      return 'pin-set'
    }
    const card = e.card as CardCredential
    const claim = this.claimOf(e, card)
    const conflict = getCardConflict(doc, card.index)
    if (conflict !== undefined) {
      if (conflict.resolvedTo !== undefined) return 'already-held' // an admin decided: the directory says whose it is
      putCardConflict(doc, { ...conflict, claims: [...conflict.claims, claim] })
      return 'conflict'
    }
    const holder = userByCardIndex(doc, card.index)
    if (holder === undefined) {
      putUser(doc, { ...user, cards: [...(user.cards ?? []), card], updatedAt: this.now() })
      return 'added'
    }
    if (holder.username === e.user) return 'already-held'
    // the card is another user's: both claims go to an admin, and the card works for neither meanwhile
    const held = holder.cards?.find((c) => c.index === card.index) as CardCredential
    const earlier = this.enrolledClaim(doc, holder.username, card.index) ?? { enrolment: 'directory', user: holder.username, at: 0, by: 'directory', card: held }
    putUser(doc, { ...holder, cards: (holder.cards ?? []).filter((c) => c.index !== card.index), updatedAt: this.now() })
    putCardConflict(doc, { index: card.index, claims: [earlier, claim], at: this.now() })
    return 'conflict'
  }

  /** The merged enrolment that gave `user` the card, if the card came from one. */
  private enrolledClaim (doc: Y.Doc, user: string, index: string): CardClaim | undefined {
    for (const m of listMerged(doc)) {
      if (m.claim?.user === user && m.claim.card.index === index) return m.claim
    }
    return undefined
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch((err: unknown) => { this.init.logger.error({ err }, 'merging enrolments failed') })
    return await run
  }
}
