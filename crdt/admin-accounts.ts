/**
 * Named admin accounts and the mesh's admin token (issue 16 item 5), kept in documents only
 * the mesh's authority (central; a standalone site is its own) may write, so the one write
 * rule of crdt/membership.ts guards them where updates enter:
 *
 * - accounts: map `admins/<authority>` of `v1/directory` (read by central, sites and
 *   terminals: every node with an admin console that logs users in already holds the
 *   directory's hashes);
 * - the mesh token: key `<authority>` of map `meshToken` of `v1/license` (read by every
 *   certified peer, so every node accepts it). Only a slow hash of the token is written.
 *
 * Both are kept under the authority's peer id and read under the current authority's: what
 * a standalone site wrote as its own authority stays in its documents when it joins a mesh
 * (Yjs keeps local changes), but no longer counts there once central is the authority, so a
 * stale account or token never competes with central's.
 *
 * A password is kept as the directory's salted scrypt hash (crdt/directory.ts `slowHash`);
 * a TOTP secret only sealed (the node seals it with a key derived from the network key,
 * node/admin-accounts.ts), so the documents alone give neither.
 */
import type * as Y from 'yjs'

/** What an admin account may do: everything; writes on the nodes of its sites; only read. */
export type AdminRole = 'mesh-admin' | 'site-admin' | 'report-viewer'
export const ADMIN_ROLES: readonly AdminRole[] = ['mesh-admin', 'site-admin', 'report-viewer']

export interface AdminAccount {
  username: string
  role: AdminRole
  /** The site ids a `site-admin` administers (empty for the other roles). */
  sites: string[]
  /** `scrypt$N$r$p$salt$hash` (crdt/directory.ts `slowHash`). */
  passwordHash: string
  /** The TOTP secret, sealed (base64 of nonce, tag and ciphertext); absent: no second factor. */
  totpSealed?: string
  /** A disabled account cannot log in; its sessions end at their next call. */
  disabled?: boolean
  /** Bumped on every change of password, role, sites, TOTP or state: sessions opened before it end. */
  version: number
  createdAt: number
  updatedAt: number
  /** Who last changed it (an admin account's name, or `admin` for the token). */
  by: string
}

/** The mesh admin token as replicated: its slow hash, and when and by whom it was set. */
export interface MeshTokenRecord {
  /** `scrypt$N$r$p$salt$hash` of the token. */
  hash: string
  rotatedAt: number
  by: string
}

/** Account names: as directory usernames, so they read the same in the audit log. */
const ACCOUNT_NAME = /^[A-Za-z0-9._@-]{1,64}$/

export class InvalidAdminAccountError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidAdminAccountError' }
}

export function validAccountName (username: string): boolean {
  return ACCOUNT_NAME.test(username)
}

const admins = (directory: Y.Doc, authority: string): Y.Map<AdminAccount> => directory.getMap<AdminAccount>(`admins/${authority}`)
const meshToken = (license: Y.Doc): Y.Map<MeshTokenRecord> => license.getMap<MeshTokenRecord>('meshToken')

/** Writes `account` among the accounts of `authority` (the writing node's own id: only the authority's writes are accepted). */
export function putAdminAccount (directory: Y.Doc, authority: string, account: AdminAccount): void {
  if (!validAccountName(account.username)) throw new InvalidAdminAccountError(`invalid account name ${JSON.stringify(account.username)}`)
  if (!ADMIN_ROLES.includes(account.role)) throw new InvalidAdminAccountError(`invalid role ${JSON.stringify(account.role)}`)
  admins(directory, authority).set(account.username, { ...account, sites: [...account.sites] })
}

/** `authority`'s account of this name, when it is a well-formed one (anything else in the map counts as absent). */
export function getAdminAccount (directory: Y.Doc, authority: string, username: string): AdminAccount | undefined {
  const a = admins(directory, authority).get(username)
  return a !== undefined && wellFormed(a) ? a : undefined
}

export function listAdminAccounts (directory: Y.Doc, authority: string): AdminAccount[] {
  return [...admins(directory, authority).values()].filter(wellFormed).sort((a, b) => a.username.localeCompare(b.username))
}

export function removeAdminAccount (directory: Y.Doc, authority: string, username: string): boolean {
  const had = admins(directory, authority).has(username)
  admins(directory, authority).delete(username)
  return had
}

/** Sets `authority`'s mesh token (there is one per authority: the mesh's). */
export function setMeshToken (license: Y.Doc, authority: string, record: MeshTokenRecord): void {
  meshToken(license).set(authority, { ...record })
}

/** `authority`'s mesh token record, once it set one. */
export function getMeshToken (license: Y.Doc, authority: string): MeshTokenRecord | undefined {
  const r = meshToken(license).get(authority)
  return r !== undefined && typeof r.hash === 'string' && r.hash.startsWith('scrypt$') ? r : undefined
}

function wellFormed (a: AdminAccount): boolean {
  return typeof a === 'object' && a !== null && typeof a.username === 'string' && ADMIN_ROLES.includes(a.role) &&
    Array.isArray(a.sites) && typeof a.passwordHash === 'string' && typeof a.version === 'number'
}
