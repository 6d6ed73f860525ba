/**
 * A standalone site's admin accounts, handed to central when the site joins a mesh (issue 16
 * item 5), as its users are (node/directory-handover.ts): they live in the standalone
 * directory, which the site drops once central's arrives. Right after its certificate is
 * issued, the joining site sends its accounts over the enrollment protocol; central adds
 * them to its own and answers with a report:
 *
 * - an account central has not is added, with its password hash (a salted slow hash, the same
 *   under any key), disabled if it was;
 * - its role is narrowed to the joining site: a standalone site's mesh admin and site admins
 *   become site admins of that site, never admins of the mesh they join; a report viewer
 *   stays a report viewer;
 * - an account central already has is a conflict: central's is kept, never overwritten; the
 *   site's is kept aside (crdt/admin-accounts.ts `adoptable/<central>`) with its hash, what it
 *   was there, who last wrote it and when, for a mesh admin to adopt under another name or
 *   dismiss on central's accounts page (node/admin-accounts.ts `adopt`); a repeated hand-over
 *   of an account central added from it before (the same hash) is not kept;
 * - a second factor cannot move: the TOTP secret is sealed with a key derived from the old
 *   network key, which the mesh does not share, so it is dropped and listed, to be enrolled
 *   again.
 *
 * Only a site whose certificate was issued within node/directory-handover.ts
 * `HANDOVER_WINDOW_MS` may hand accounts over (node/enrollment.ts checks it). If the handover fails, the site's start fails before it forgets its
 * directory: starting it again with the same join string repeats it (central keeps what it
 * added the first time, and reports those as conflicts).
 */
import type { Logger } from 'pino'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { slowHashCost } from '../crdt/directory.ts'
import type { Certificate } from '../crdt/license.ts'
import { ADMIN_ROLES, getAdminAccount, listAdminAccounts, narrowedRole, putAdminAccount, putAdoptable, validAccountName, type AdminAccount, type AdminRole, type AdoptableAdminAccount } from '../crdt/admin-accounts.ts'
import { siteId } from '../crdt/names.ts'
import { requestHandover } from './directory-handover.ts'
import type { Host } from '../transports/host.ts'

/** A standalone site has a handful of admins; more in one join is not a site's directory. */
export const MAX_HANDED_ADMINS = 200
/** A slow hash (`scrypt$N$r$p$salt$hash`, crdt/directory.ts `slowHash`); its cost is checked apart ({@link slowHashCost}). */
const PASSWORD_HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/

/** N, r and p of a hash that matched {@link PASSWORD_HASH}. */
const hashCost = (hash: string): [number, number, number] => {
  const [, n, r, p] = hash.split('$')
  return [Number(n), Number(r), Number(p)]
}

/** One account as handed over: no TOTP secret (it cannot move), whether it had one. */
export interface HandoverAdmin {
  username: string
  role: AdminRole
  passwordHash: string
  disabled?: boolean
  hadTotp?: boolean
  /** Its sites there (a site admin's), who last changed it and when it was made and changed: shown if it must be adopted. */
  sites?: string[]
  by?: string
  createdAt?: number
  updatedAt?: number
}

/** Longest `by` kept from a hand-over (an account name, or `admin`): more is not a name. */
const MAX_BY_LENGTH = 200
/** The most sites kept from one handed-over account (node/admin-accounts.ts's limit). */
const MAX_SITES = 100

/** What central did with the accounts handed over. */
export interface AdminHandoverReport {
  /** Accounts added, with the role they got. */
  added: Array<{ username: string, role: AdminRole }>
  /** Accounts central kept its own of, or could not take. */
  conflicts: Array<{ username: string, reason: string }>
  /** Accounts whose second factor must be enrolled again. */
  totpDropped: string[]
}

export class AdminHandoverError extends Error {
  constructor (message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'AdminHandoverError' }
}

/**
 * Central's side: adds the `admins` handed over by the site of `cert` to the accounts of
 * `authority` (central itself); never changes an account it has.
 */
export async function mergeAdminHandover (store: DocStore, cert: Certificate, authority: string, admins: unknown, now: number): Promise<AdminHandoverReport> {
  const report: AdminHandoverReport = { added: [], conflicts: [], totpDropped: [] }
  if (!Array.isArray(admins)) return { ...report, conflicts: [{ username: '', reason: 'admins must be a list' }] }
  if (admins.length > MAX_HANDED_ADMINS) return { ...report, conflicts: [{ username: '', reason: `at most ${MAX_HANDED_ADMINS} accounts are handed over at once` }] }
  const site = cert.site
  if (site === undefined) return { ...report, conflicts: [{ username: '', reason: 'only a site hands accounts over' }] }
  const directory = await store.open(directoryDoc())
  const fresh: AdminAccount[] = []
  const aside: AdoptableAdminAccount[] = []
  const centralHashes = new Set(listAdminAccounts(directory, authority).map((a) => a.passwordHash))
  for (const raw of admins as Array<Partial<HandoverAdmin> | null>) {
    const username = typeof raw?.username === 'string' ? raw.username : ''
    if (raw === null || typeof raw !== 'object' || !validAccountName(username)) { report.conflicts.push({ username, reason: 'not a valid account name' }); continue }
    if (typeof raw.role !== 'string' || !ADMIN_ROLES.includes(raw.role)) { report.conflicts.push({ username, reason: 'not a valid role' }); continue }
    if (typeof raw.passwordHash !== 'string' || !PASSWORD_HASH.test(raw.passwordHash) || !slowHashCost(...hashCost(raw.passwordHash))) { report.conflicts.push({ username, reason: 'no valid password hash' }); continue }
    if (fresh.some((a) => a.username === username)) { report.conflicts.push({ username, reason: 'handed over twice' }); continue }
    const role = narrowedRole(raw.role)
    const held = getAdminAccount(directory, authority, username)
    if (held !== undefined) {
      const reason = 'central already has an account of this name: kept central\'s'
      // a hash central holds already (hashes are salted: that very account) is the account central added or adopted from
      // this site before, handed over again (a join retried): nothing to adopt
      const keep = held.passwordHash !== raw.passwordHash && !centralHashes.has(raw.passwordHash)
      if (keep) aside.push(adoptableOf(raw as HandoverAdmin, site, cert.peer, role, now, reason))
      report.conflicts.push({ username, reason: keep ? `${reason}; a mesh admin may adopt it under another name on central's admin accounts page` : reason })
      continue
    }
    fresh.push({ username, role, sites: role === 'site-admin' ? [site] : [], passwordHash: raw.passwordHash, ...(raw.disabled === true ? { disabled: true } : {}), version: 1, createdAt: now, updatedAt: now, by: `handover from ${site}` })
    report.added.push({ username, role })
    if (raw.hadTotp === true) report.totpDropped.push(username)
  }
  if (fresh.length > 0 || aside.length > 0) {
    await store.transact(directoryDoc(), { kind: 'local', service: 'enrollment' }, (d) => {
      for (const a of fresh) putAdminAccount(d, authority, a)
      for (const a of aside) putAdoptable(d, authority, a)
    })
  }
  return report
}

/** A handed-over account central keeps aside to be adopted: only well-formed extras are kept. */
function adoptableOf (raw: HandoverAdmin, site: string, sitePeer: string, role: AdminRole, now: number, reason: string): AdoptableAdminAccount {
  const sites = Array.isArray(raw.sites) && raw.sites.length <= MAX_SITES ? raw.sites.filter(isSiteId) : []
  const time = (t: unknown): number | undefined => typeof t === 'number' && Number.isFinite(t) && t > 0 ? t : undefined
  const createdAt = time(raw.createdAt)
  const updatedAt = time(raw.updatedAt)
  return {
    site,
    sitePeer,
    username: raw.username,
    standaloneRole: raw.role,
    standaloneSites: raw.role === 'site-admin' ? sites : [],
    role,
    sites: role === 'site-admin' ? [site] : [],
    passwordHash: raw.passwordHash,
    hadTotp: raw.hadTotp === true,
    ...(raw.disabled === true ? { disabled: true } : {}),
    ...(typeof raw.by === 'string' && raw.by.length <= MAX_BY_LENGTH ? { by: raw.by } : {}),
    ...(createdAt !== undefined ? { createdAt } : {}),
    ...(updatedAt !== undefined ? { updatedAt } : {}),
    handedAt: now,
    reason
  }
}

function isSiteId (value: unknown): value is string {
  if (typeof value !== 'string') return false
  try {
    siteId(value)
    return true
  } catch {
    return false
  }
}

/** The joining site's side: hands every admin account of its standalone directory (written as its own authority, `self`) to central and logs the report. */
export async function handOverAdmins (host: Host, central: string, addrs: string[], store: DocStore, self: string, logger: Logger): Promise<AdminHandoverReport> {
  const accounts = listAdminAccounts(await store.open(directoryDoc()), self)
  if (accounts.length === 0) return { added: [], conflicts: [], totpDropped: [] }
  const admins: HandoverAdmin[] = accounts.map((a) => ({
    username: a.username,
    role: a.role,
    passwordHash: a.passwordHash,
    ...(a.disabled === true ? { disabled: true } : {}),
    ...(a.totpSealed !== undefined ? { hadTotp: true } : {}),
    sites: [...a.sites],
    by: a.by,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt
  }))
  const answer = await requestHandover(host, central, addrs, { admins }, 'admin accounts') as { reason?: string, adminHandover?: AdminHandoverReport } | undefined
  const report = answer?.adminHandover
  if (report === undefined) throw new AdminHandoverError(`central did not take this site's admin accounts: ${answer?.reason ?? 'no report in its answer'}`)
  logger.info({ added: report.added.map((a) => `${a.username} (${a.role})`), conflicts: report.conflicts.length, totpDropped: report.totpDropped.length }, 'standalone admin accounts handed to central')
  for (const c of report.conflicts) logger.warn({ account: c.username }, `admin account not handed over: ${c.reason}`)
  if (report.totpDropped.length > 0) logger.warn({ accounts: report.totpDropped }, 'these admin accounts must enrol their second factor (TOTP) again: it was sealed with the old network key')
  return report
}
