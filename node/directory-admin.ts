/**
 * The directory as its authority administers it: central, or a standalone site until it
 * joins a mesh. List and search (paged), add, edit, disable and enable, delete (the user's
 * jobs and accounting records stay: they are other documents), reset a PIN, add and remove
 * cards, and CSV import with a preview (node/users-csv.ts). PINs and card numbers are hashed
 * before anything is written and never shown. On a node that is not the authority every
 * write is refused with {@link UsersManagedElsewhereError}; reads still answer.
 *
 * Writes run one at a time, so a check (is the name free? is the card held?) still holds
 * when its write lands.
 *
 * PINs are written with their keyed index (crdt/directory.ts `PinIndex`, for PIN-only login).
 * Once a peer of the mesh logs users in by PIN alone (node/enrolment.ts `pinOnlyLoginInUse`), a
 * PIN another user holds is refused ({@link PinTakenError}, not naming them).
 */
import type * as Y from 'yjs'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { putUser, getUser, listUsers, removeUser, cardCredential, cardIndex, normalizeCard, userByCardIndex, indexedPinHash, pinIndexOf, pinKeyOf, type DirectoryUser } from '../crdt/directory.ts'
import { PinTakenError, pinHolders, pinOnlyLoginInUse } from './enrolment.ts'
import type { DirectoryApi, DirectoryUserView, ImportReport, NewUser, UserPage, UserPatch, UserQuery } from '../ui/users-api.ts'
import { importUsersCsv } from './users.ts'
import { assertUserCapacity } from './license-file.ts'
import {
  checkUsername, checkPin, checkCard, checkFullName, checkEmail, checkGroups, checkHomeSite, checkDelegates, userView,
  CardHeldError, InvalidUserFieldError, UnknownCardError, UnknownUserError, UserExistsError, UsersManagedElsewhereError, CARD_ID_CHARS
} from './user-fields.ts'

/** A page holds this many users unless the caller asks otherwise: a screenful. */
export const DEFAULT_PAGE_SIZE = 50
/** The most users one page may hold: large enough for an export, small enough to answer fast. */
export const MAX_PAGE_SIZE = 1000

export interface DirectoryAdminInit {
  store: DocStore
  /** Key of the directory's card index (node/users.ts `cardKeyOf`). */
  cardKey: Uint8Array
  /** Whether this node writes the directory now (central; a site while standalone). */
  authority: () => boolean
  /** Home site of new users added or imported without one (a site's own id; none on central). */
  homeSite?: string
  /** Where users are managed instead, for the refusal's message, when known. */
  managedAt?: () => string | undefined
  now?: () => number
}

export class DirectoryAdmin implements DirectoryApi {
  private readonly init: DirectoryAdminInit
  private queue: Promise<unknown> = Promise.resolve()
  /** Key of the PIN index (crdt/directory.ts `pinKeyOf`). */
  private readonly pinKey: Uint8Array

  constructor (init: DirectoryAdminInit) {
    this.init = init
    this.pinKey = pinKeyOf(init.cardKey)
  }

  async list (query: UserQuery): Promise<UserPage> {
    const offset = query.offset ?? 0
    const limit = query.limit ?? DEFAULT_PAGE_SIZE
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidUserFieldError('offset must be a whole number, 0 or more')
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) throw new InvalidUserFieldError(`limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`)
    const q = (query.q ?? '').trim().toLowerCase()
    const matches = listUsers(await this.doc()).filter((u) => q === '' || [u.username, u.fullName, u.email ?? '', ...(u.groups ?? [])].some((s) => s.toLowerCase().includes(q)))
    return { users: matches.slice(offset, offset + limit).map(userView), total: matches.length, offset, limit }
  }

  async get (username: string): Promise<DirectoryUserView> {
    return userView(this.existing(await this.doc(), username))
  }

  async add (input: NewUser, by: string): Promise<DirectoryUserView> {
    return await this.write(by, async (doc) => {
      checkUsername(input.username)
      if (getUser(doc, input.username) !== undefined) throw new UserExistsError(input.username)
      checkPin(input.pin)
      this.checkFreePin(doc, input.username, input.pin)
      await assertUserCapacity(this.init.store, [input.username]) // the license's users limit (node/license-file.ts)
      const cards = [...new Set((input.cards ?? []).map(normalizeCard))]
      for (const card of cards) this.checkFreeCard(doc, input.username, card)
      const user: DirectoryUser = {
        username: input.username,
        fullName: checkFullName(input.fullName),
        ...this.optional(doc, input.username, { ...input, ...(input.homeSite === undefined && this.init.homeSite !== undefined ? { homeSite: this.init.homeSite } : {}) }),
        ...await indexedPinHash(input.pin, this.pinKey),
        ...(cards.length > 0 ? { cards: await Promise.all(cards.map(async (c) => await cardCredential(c, this.init.cardKey))) } : {}),
        source: 'admin',
        updatedAt: this.now()
      }
      return user
    })
  }

  async edit (username: string, patch: UserPatch, by: string): Promise<DirectoryUserView> {
    return await this.write(by, async (doc) => {
      const user = { ...this.existing(doc, username) }
      if (patch.fullName !== undefined) user.fullName = checkFullName(patch.fullName)
      for (const field of ['email', 'homeSite'] as const) {
        if (patch[field] === null) delete user[field]
      }
      Object.assign(user, this.optional(doc, username, {
        ...(typeof patch.email === 'string' ? { email: patch.email } : {}),
        ...(typeof patch.homeSite === 'string' ? { homeSite: patch.homeSite } : {}),
        ...(patch.groups !== undefined ? { groups: patch.groups } : {}),
        ...(patch.delegates !== undefined ? { delegates: patch.delegates } : {})
      }))
      if (patch.disabled !== undefined) {
        if (patch.disabled) user.disabled = true
        else {
          // enabling counts against the license's users limit, as adding does
          if (user.disabled === true) await assertUserCapacity(this.init.store, [username])
          delete user.disabled
        }
      }
      user.updatedAt = this.now()
      return user
    })
  }

  async remove (username: string, by: string): Promise<void> {
    await this.serial(async () => {
      this.writable()
      this.existing(await this.doc(), username)
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => {
        removeUser(doc, username)
        // nobody keeps a delegate that is gone
        for (const u of listUsers(doc)) {
          if (u.delegates?.includes(username) === true) putUser(doc, { ...u, delegates: u.delegates.filter((d) => d !== username), updatedAt: this.now() })
        }
      })
    })
  }

  async setPin (username: string, pin: string, by: string): Promise<void> {
    await this.write(by, async (doc) => {
      const user = this.existing(doc, username)
      checkPin(pin)
      this.checkFreePin(doc, username, pin)
      return { ...user, ...await indexedPinHash(pin, this.pinKey), pinSetAt: this.now(), updatedAt: this.now() }
    })
  }

  async addCard (username: string, card: string, by: string): Promise<DirectoryUserView> {
    return await this.write(by, async (doc) => {
      const user = this.existing(doc, username)
      const normal = normalizeCard(card)
      checkCard(normal)
      const index = cardIndex(normal, this.init.cardKey)
      if (user.cards?.some((c) => c.index === index) === true) return user
      this.checkFreeCard(doc, username, normal)
      return { ...user, cards: [...user.cards ?? [], await cardCredential(normal, this.init.cardKey)], updatedAt: this.now() }
    })
  }

  async removeCard (username: string, which: { card?: string, id?: string }, by: string): Promise<DirectoryUserView> {
    return await this.write(by, async (doc) => {
      const user = this.existing(doc, username)
      let keep: DirectoryUser['cards']
      if (which.card !== undefined) {
        const index = cardIndex(normalizeCard(which.card), this.init.cardKey)
        keep = user.cards?.filter((c) => c.index !== index)
      } else if (which.id !== undefined && which.id.length === CARD_ID_CHARS) {
        keep = user.cards?.filter((c) => !c.index.startsWith(which.id as string))
      } else {
        throw new InvalidUserFieldError(`name the card by its number (card) or by its id (id, ${CARD_ID_CHARS} hex digits, as the user's cards list it)`)
      }
      if (keep === undefined || keep.length === user.cards?.length) throw new UnknownCardError(username)
      const { cards: _, ...rest } = user
      return { ...rest, ...(keep.length > 0 ? { cards: keep } : {}), updatedAt: this.now() }
    })
  }

  async importCsv (csv: string, options: { dryRun: boolean }, by: string): Promise<ImportReport> {
    return await this.serial(async () => {
      if (!options.dryRun) this.writable()
      return await importUsersCsv(this.init.store, csv, this.init.homeSite, by, this.init.cardKey, options)
    })
  }

  // ---- helpers ----

  private now (): number {
    return (this.init.now ?? Date.now)()
  }

  private async doc (): Promise<Y.Doc> {
    return await this.init.store.open(directoryDoc())
  }

  private writable (): void {
    if (!this.init.authority()) throw new UsersManagedElsewhereError(this.init.managedAt?.())
  }

  private existing (doc: Y.Doc, username: string): DirectoryUser {
    const user = getUser(doc, username)
    if (user === undefined) throw new UnknownUserError(username)
    return user
  }

  private checkFreeCard (doc: Y.Doc, username: string, card: string): void {
    checkCard(card)
    const holder = userByCardIndex(doc, cardIndex(card, this.init.cardKey))
    if (holder !== undefined && holder.username !== username) throw new CardHeldError(username, holder.username)
  }

  /** Where PINs must be unique (a peer logs users in by PIN alone), refuses a PIN another user holds. */
  private checkFreePin (doc: Y.Doc, username: string, pin: string): void {
    if (!pinOnlyLoginInUse(this.init.store)) return
    if (pinHolders(this.init.store, doc, pinIndexOf(pin, this.pinKey)).some((h) => h.user.username !== username)) throw new PinTakenError()
  }

  /** The optional fields given, checked. */
  private optional (doc: Y.Doc, username: string, input: Pick<NewUser, 'email' | 'groups' | 'homeSite' | 'delegates'>): Partial<DirectoryUser> {
    return {
      ...(input.email !== undefined ? { email: checkEmail(input.email) } : {}),
      ...(input.groups !== undefined ? { groups: checkGroups(input.groups) } : {}),
      ...(input.homeSite !== undefined ? { homeSite: checkHomeSite(input.homeSite) } : {}),
      ...(input.delegates !== undefined ? { delegates: checkDelegates(username, input.delegates, (d) => getUser(doc, d) !== undefined) } : {})
    }
  }

  /** One write at a time: checks and the write they allow see the same directory. */
  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return await run
  }

  /** Builds the user's new record from the directory (refused when this node is not its authority) and stores it. */
  private async write (by: string, build: (doc: Y.Doc) => Promise<DirectoryUser>): Promise<DirectoryUserView> {
    return await this.serial(async () => {
      this.writable()
      const user = await build(await this.doc())
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => { putUser(doc, user) })
      return userView(user)
    })
  }
}
