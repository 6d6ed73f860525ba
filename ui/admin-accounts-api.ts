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
  /** Whether any account exists (the admin page then offers the account login first). */
  any: () => boolean
}
