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
 * Accounts a joining site could not hand over (node/admin-handover.ts: central already had an
 * account of that name) are kept by central for a mesh admin to adopt explicitly: map
 * `adoptable/<authority>` of `v1/directory`, by `<site>:<username>`, with the password hash
 * the site sent (never a TOTP secret: it cannot move), what the account was on the standalone
 * site, who last wrote it there and when, and the role it gets when adopted (narrowed to the
 * joining site, as the hand-over narrows). Only the authority writes it (the directory's rule).
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

/**
 * An account of a joined site's standalone directory that central did not add at the join
 * (a name it already had), kept to be adopted (under another name) or dismissed.
 */
export interface AdoptableAdminAccount {
  /** The joining site's id, and its peer (the standalone authority that wrote the account). */
  site: string
  sitePeer: string
  username: string
  /** The role and sites it had on the standalone site. */
  standaloneRole: AdminRole
  standaloneSites: string[]
  /** The role and sites it gets when adopted: {@link narrowedRole}, the joining site's. */
  role: AdminRole
  sites: string[]
  passwordHash: string
  /** It had a second factor there: adopted without it (sealed under the old network key). */
  hadTotp: boolean
  disabled?: boolean
  /** Who last changed it on the standalone site, and when it was made and last changed there (absent from an older site). */
  by?: string
  createdAt?: number
  updatedAt?: number
  /** When central received it, and why it was not added then. */
  handedAt: number
  reason: string
}

/**
 * The role an account written on a standalone site gets in the mesh it joins: never more than
 * the joining site (its mesh admin and site admins become site admins of it; a report viewer
 * stays one). A mesh admin may change the role afterwards, as a change of its own.
 */
export function narrowedRole (role: AdminRole): AdminRole {
  return role === 'report-viewer' ? 'report-viewer' : 'site-admin'
}

/** The key of an adoptable account: the site it came from and its name there. */
export function adoptableId (site: string, username: string): string {
  return `${site}:${username}`
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

const adoptable = (directory: Y.Doc, authority: string): Y.Map<AdoptableAdminAccount> => directory.getMap<AdoptableAdminAccount>(`adoptable/${authority}`)

/** Keeps `account` (from a joining site) among those `authority` may adopt; a repeat of the same site's name replaces it. */
export function putAdoptable (directory: Y.Doc, authority: string, account: AdoptableAdminAccount): void {
  if (!validAccountName(account.username)) throw new InvalidAdminAccountError(`invalid account name ${JSON.stringify(account.username)}`)
  adoptable(directory, authority).set(adoptableId(account.site, account.username), { ...account, sites: [...account.sites], standaloneSites: [...account.standaloneSites] })
}

/** The adoptable account of this id, when it is a well-formed one. */
export function getAdoptable (directory: Y.Doc, authority: string, id: string): AdoptableAdminAccount | undefined {
  const a = adoptable(directory, authority).get(id)
  return a !== undefined && wellFormedAdoptable(a) ? a : undefined
}

/** The accounts `authority` may adopt, with their ids, oldest hand-over first. */
export function listAdoptable (directory: Y.Doc, authority: string): Array<{ id: string, account: AdoptableAdminAccount }> {
  return [...adoptable(directory, authority).entries()].filter(([, a]) => wellFormedAdoptable(a)).map(([id, account]) => ({ id, account }))
    .sort((a, b) => a.account.handedAt - b.account.handedAt || a.id.localeCompare(b.id))
}

export function removeAdoptable (directory: Y.Doc, authority: string, id: string): boolean {
  const had = adoptable(directory, authority).has(id)
  adoptable(directory, authority).delete(id)
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

function wellFormedAdoptable (a: AdoptableAdminAccount): boolean {
  return typeof a === 'object' && a !== null && typeof a.username === 'string' && typeof a.site === 'string' && typeof a.sitePeer === 'string' &&
    ADMIN_ROLES.includes(a.role) && ADMIN_ROLES.includes(a.standaloneRole) && Array.isArray(a.sites) && Array.isArray(a.standaloneSites) &&
    typeof a.passwordHash === 'string' && typeof a.handedAt === 'number' && typeof a.reason === 'string'
}
