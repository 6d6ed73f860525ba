/**
 * What the HTTP layer may ask of a node's user directory (ui/routes/directory.ts): central's,
 * or a standalone site's (its own directory authority until it joins a mesh). Implemented by
 * node/directory-admin.ts. No PIN, card number or hash ever appears in a view.
 */

/** One user as admins see them. */
export interface DirectoryUserView {
  username: string
  fullName: string
  email?: string
  groups: string[]
  homeSite?: string
  delegates: string[]
  disabled: boolean
  source?: string
  /** The user's cards, each by a short id (a prefix of its keyed index), never the number. */
  cards: Array<{ id: string }>
  updatedAt: number
}

/** A page of the directory, in username order. */
export interface UserPage {
  users: DirectoryUserView[]
  /** How many users match the search, on every page. */
  total: number
  offset: number
  limit: number
}

export interface UserQuery {
  /** Matched, case-insensitively, against username, full name, email and groups. */
  q?: string
  offset?: number
  limit?: number
}

/** A new user: username, full name and PIN are required. */
export interface NewUser {
  username: string
  fullName: string
  pin: string
  email?: string
  groups?: string[]
  homeSite?: string
  delegates?: string[]
  /** Card numbers as readers type them. */
  cards?: string[]
}

/** What an edit may change; `null` clears an optional field. */
export interface UserPatch {
  fullName?: string
  email?: string | null
  groups?: string[]
  homeSite?: string | null
  delegates?: string[]
  disabled?: boolean
}

/** One line of a CSV import that cannot be applied. */
export interface ImportLineError { line: number, message: string }

/** What a CSV import did (or, in a dry run, would do). */
export interface ImportReport {
  dryRun: boolean
  /** Users added and changed (0 in a dry run). */
  imported: number
  added: string[]
  changed: Array<{ username: string, fields: string[] }>
  unchanged: string[]
  errors: ImportLineError[]
}

/** The directory's admin operations; each write names who made it. */
export interface DirectoryApi {
  list: (query: UserQuery) => Promise<UserPage>
  get: (username: string) => Promise<DirectoryUserView>
  add: (user: NewUser, by: string) => Promise<DirectoryUserView>
  edit: (username: string, patch: UserPatch, by: string) => Promise<DirectoryUserView>
  remove: (username: string, by: string) => Promise<void>
  setPin: (username: string, pin: string, by: string) => Promise<void>
  addCard: (username: string, card: string, by: string) => Promise<DirectoryUserView>
  /** Removes the card given by its number or by its id (as views show it). */
  removeCard: (username: string, card: { card?: string, id?: string }, by: string) => Promise<DirectoryUserView>
  importCsv: (csv: string, options: { dryRun: boolean }, by: string) => Promise<ImportReport>
}
