/**
 * What the HTTP layer asks of a node's admin accounts and mesh token (node/admin-accounts.ts):
 * the routes of ui/routes/admin-accounts.ts, the account login and the checks the server core
 * (ui/server.ts `authenticate`) makes on every call.
 */
import type { AdminRole } from '../crdt/admin-accounts.ts'

export type { AdminRole }

/** An account as answered: never its password hash or TOTP secret. */
export interface AdminAccountView {
  username: string
  role: AdminRole
  sites: string[]
  /** Whether the account has a confirmed second factor. */
  totp: boolean
  disabled: boolean
  createdAt: number
  updatedAt: number
  by: string
}

/**
 * An account a joined site wrote while it was standalone that central did not add at the join
 * (it had an account of that name), as a mesh admin sees it before adopting it: never its hash.
 */
export interface AdoptableAccountView {
  /** `<site>:<username>`: the key to adopt or dismiss it by. */
  id: string
  /** The joining site's id and peer (the standalone authority that wrote it). */
  site: string
  sitePeer: string
  username: string
  /** What it was on the standalone site. */
  standaloneRole: AdminRole
  standaloneSites: string[]
  /** What it becomes when adopted: narrowed to the joining site (a report viewer stays one). */
  role: AdminRole
  sites: string[]
  /** It had a second factor there: it is adopted without one, to be set up again. */
  totp: boolean
  disabled: boolean
  /** Who last changed it on the standalone site, and when it was made and changed there (absent from an older site). */
  by?: string
  createdAt?: number
  updatedAt?: number
  /** When central received it, and why it was not added then. */
  handedAt: number
  reason: string
  /** Whether central has an account of this name now: then it is adopted under another name only. */
  taken: boolean
}

/** What adopting an account did. */
export interface AdoptedAccount {
  account: AdminAccountView
  /** Where it came from. */
  adoptedFrom: { id: string, site: string, sitePeer: string, username: string, by?: string, updatedAt?: number }
  /** Its second factor was not carried over: the account signs in with its password alone until it sets one up again. */
  totpDropped: boolean
  /** What the adopter should know, in a sentence (the console shows it). */
  notice: string
}

export interface NewAdminAccount {
  username: string
  role: AdminRole
  sites?: string[]
  password: string
}

export interface AdminAccountPatch {
  role?: AdminRole
  sites?: string[]
  disabled?: boolean
}

/** Who an account session or the mesh token stands for, as the core enforces it. */
export interface AdminPrincipal {
  username: string
  role: AdminRole
  sites: readonly string[]
  /** The account's version when the session opened; a later change ends the session. */
  version: number
}

export interface AdminAccountsApi {
  /** Opens what the synchronous checks read; awaited by the core before any route runs. */
  ready: () => Promise<void>
  list: () => Promise<AdminAccountView[]>
  get: (username: string) => Promise<AdminAccountView>
  add: (input: NewAdminAccount, by: string) => Promise<AdminAccountView>
  update: (username: string, patch: AdminAccountPatch, by: string) => Promise<AdminAccountView>
  remove: (username: string, by: string) => Promise<void>
  setPassword: (username: string, password: string, by: string) => Promise<AdminAccountView>
  /** Starts a TOTP enrolment: the otpauth:// URI, answered this once; nothing is kept until confirmed. */
  startTotp: (username: string, by: string) => Promise<{ otpauthUri: string }>
  /** Confirms the enrolment with a valid code of the new secret; then login needs a code. */
  confirmTotp: (username: string, code: string, by: string) => Promise<AdminAccountView>
  removeTotp: (username: string, by: string) => Promise<AdminAccountView>
  /** A new mesh token (authority only): answered once; the old one stops working where the change arrives. */
  rotateToken: (by: string) => Promise<{ token: string, rotatedAt: number }>
  /** The account when username, password and (when enrolled) TOTP code are right and it is enabled; else undefined. */
  login: (username: string, password: string, totp?: string) => Promise<AdminPrincipal | undefined>
  /** The account as it is now, when it is still enabled and unchanged since `version`; else undefined (synchronous). */
  current: (username: string, version: number) => AdminPrincipal | undefined
  /** What identifies the current mesh token (changes at every rotation), or undefined while there is none (then each node's own start-up token works). */
  meshTokenStamp: () => string | undefined
  /** Checks a token against the mesh token's slow hash (remembered once right, so later calls are synchronous). */
  verifyMeshToken: (token: string) => Promise<boolean>
  /** Whether `token` was verified as the current mesh token (synchronous; after {@link verifyMeshToken}). */
  meshTokenKnown: (token: string) => boolean
  /** Accounts joined sites wrote while standalone that central could not add at the join (central, the authority, only). */
  adoptable: () => Promise<AdoptableAccountView[]>
  /**
   * Adopts one as an account of the mesh's authority: its password hash, its role narrowed to
   * its site, no second factor; under `username` when given (central's account of the same
   * name is never overwritten: AdminAccountExistsError). The adoptable entry is removed.
   */
  adopt: (id: string, options: { username?: string }, by: string) => Promise<AdoptedAccount>
  /** Forgets an adoptable account without adopting it. */
  dismissAdoptable: (id: string, by: string) => Promise<void>
  /** Whether any account exists (the admin page then offers the account login first). */
  any: () => boolean
}
