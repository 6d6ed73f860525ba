/**
 * The directory's user fields as admins give them (API, CLI, CSV): their checks, the named
 * errors the HTTP layer maps to 400/404/409, and the view that shows a user without any
 * secret. Shared by node/directory-admin.ts and node/users-csv.ts.
 */
import { KindedError } from '../crdt/errors.ts'
import { GROUP_NAME, InvalidUserError, validateUsername, validatePin, validateCard, normalizeCard, type DirectoryUser } from '../crdt/directory.ts'
import { siteId, InvalidDocNameError } from '../crdt/names.ts'
import type { DirectoryUserView } from '../ui/users-api.ts'

/** A field of a user is wrong (username, PIN, card, email, group, home site, full name). */
export class InvalidUserFieldError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'InvalidUserFieldError' }
}

/** A user by that name is already in the directory. */
export class UserExistsError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (readonly username: string) { super(`user ${username} already exists`); this.name = 'UserExistsError' }
}

/** No user by that name. */
export class UnknownUserError extends KindedError {
  readonly kind = 'not-found'
  constructor (readonly username: string) { super(`no user ${username}`); this.name = 'UnknownUserError' }
}

/** The card is held by another user: a card names one person. */
export class CardHeldError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (username: string, readonly holder: string) { super(`the card of ${username} already belongs to ${holder}`); this.name = 'CardHeldError' }
}

/** The user holds no such card. */
export class UnknownCardError extends KindedError {
  readonly kind = 'not-found'
  constructor (username: string) { super(`${username} holds no such card`); this.name = 'UnknownCardError' }
}

/** A delegate that is not in the directory, or the user themself. */
export class InvalidDelegateError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'InvalidDelegateError' }
}

/** This node does not write the directory: a site that joined a mesh, whose users central manages. */
export class UsersManagedElsewhereError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (where?: string) {
    super(`this site is part of a mesh: users are managed on central${where !== undefined ? ` (${where})` : ''}`)
    this.name = 'UsersManagedElsewhereError'
  }
}

/** Full names as people write them, without control characters. */
const MAX_FULL_NAME = 256
/** RFC 5321's limit on an address; the shape check is deliberately loose (one @, a dot in the domain). */
const MAX_EMAIL = 254
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/
/** Group names as directories have them (departments, LDAP cn values); `;` separates them in CSV. */
const GROUP = GROUP_NAME
/** More groups or delegates than this is a mistake, not a directory. */
const MAX_LIST = 100
/** Card ids shown in views: 16 hex digits of the keyed index tell cards apart and reveal nothing. */
export const CARD_ID_CHARS = 16
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

/** Runs a crdt/ check, turning its InvalidUserError into the HTTP layer's 400. */
function checked (check: () => void): void {
  try {
    check()
  } catch (err) {
    if (err instanceof InvalidUserError) throw new InvalidUserFieldError(err.message)
    throw err
  }
}

export const checkUsername = (username: string): void => { checked(() => validateUsername(username)) }
export const checkPin = (pin: string): void => { checked(() => validatePin(pin)) }
export const checkCard = (card: string): void => { checked(() => validateCard(normalizeCard(card))) }

export function checkFullName (fullName: string): string {
  const name = fullName.trim()
  if (name === '' || name.length > MAX_FULL_NAME || CONTROL.test(name)) throw new InvalidUserFieldError(`a full name must be 1 to ${MAX_FULL_NAME} characters without control characters`)
  return name
}

export function checkEmail (email: string): string {
  const e = email.trim()
  if (e.length > MAX_EMAIL || !EMAIL.test(e)) throw new InvalidUserFieldError(`invalid email ${JSON.stringify(email)}`)
  return e
}

export function checkGroups (groups: readonly string[]): string[] {
  const out = [...new Set(groups.map((g) => g.trim()).filter((g) => g !== ''))]
  if (out.length > MAX_LIST) throw new InvalidUserFieldError(`at most ${MAX_LIST} groups`)
  for (const g of out) if (!GROUP.test(g)) throw new InvalidUserFieldError(`invalid group ${JSON.stringify(g)}: 1-128 characters, no ; or control characters`)
  return out
}

export function checkHomeSite (site: string): string {
  try {
    return siteId(site.trim())
  } catch (err) {
    if (err instanceof InvalidDocNameError) throw new InvalidUserFieldError(`invalid home site ${JSON.stringify(site)}: 1-128 letters, digits or . _ : -`)
    throw err
  }
}

/** Delegates must be other users of the directory (`exists`), each named once. */
export function checkDelegates (username: string, delegates: readonly string[], exists: (name: string) => boolean): string[] {
  const out = [...new Set(delegates)]
  if (out.length > MAX_LIST) throw new InvalidDelegateError(`at most ${MAX_LIST} delegates`)
  for (const d of out) {
    if (d === username) throw new InvalidDelegateError(`${username} cannot be their own delegate`)
    if (!exists(d)) throw new InvalidDelegateError(`delegate ${d} is not a user`)
  }
  return out
}

/** A user as admins see them: no PIN hash, cards by id only. */
export function userView (u: DirectoryUser): DirectoryUserView {
  return {
    username: u.username,
    fullName: u.fullName,
    ...(u.email !== undefined ? { email: u.email } : {}),
    groups: u.groups ?? [],
    ...(u.homeSite !== undefined ? { homeSite: u.homeSite } : {}),
    delegates: u.delegates ?? [],
    disabled: u.disabled === true,
    ...(u.source !== undefined ? { source: u.source } : {}),
    cards: (u.cards ?? []).map((c) => ({ id: c.index.slice(0, CARD_ID_CHARS) })),
    updatedAt: u.updatedAt
  }
}
