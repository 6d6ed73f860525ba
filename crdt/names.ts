/**
 * Typed, versioned document names. Every replicated document has exactly one name, built
 * here and nowhere else, so the family (and so who may write it) can be read off the name.
 *
 *   v1/license                   central
 *   v1/directory                 central (a standalone site is its own authority)
 *   v1/site/<siteId>             that site
 *   v1/jobs/<peerId>/<period>    the peer holding the jobs
 *   v1/acct/<peerId>/<period>    the peer that printed or copied
 *   v1/enrol/<peerId>            the peer where users registered cards and PINs (crdt/enrolment.ts)
 *   v1/audit/<peerId>/<period>   the site or central where an admin acted (crdt/audit.ts)
 *   v1/admin-actions/<peerId>    a site or central asking other sites for changes (crdt/admin-actions.ts)
 *   v1/escrow/<peerId>           the shares of users' credit the peer holds, gives and spends (crdt/escrow.ts)
 */

/** A document name; only the builders below make one. */
export type DocName = string & { readonly __docName: true }

/** A peer's id (its libp2p peer id, from its Ed25519 key): only {@link peerId} makes one from a string. */
export type PeerId = string & { readonly __peerId: true }
/** A site's id (what `--site` names, what certificates bind terminals and clients to): only {@link siteId} makes one. */
export type SiteId = string & { readonly __siteId: true }

/** Bumped when a family's layout changes incompatibly; old names stay readable. */
export const NAME_VERSION = 'v1'

export type Family = 'license' | 'directory' | 'site' | 'jobs' | 'acct' | 'enrol' | 'audit' | 'admin-actions' | 'escrow'

export interface ParsedName {
  family: Family
  /** For jobs, acct, enrol, audit, admin-actions and escrow: the writing peer. */
  peer?: PeerId
  /** For jobs, acct and audit: the time partition, `YYYY-MM` (UTC). */
  period?: string
  /** For site: the site id. */
  site?: SiteId
}

/** Peer ids, site ids and periods may not contain the separator or be empty. */
const SEGMENT = /^[A-Za-z0-9._:-]{1,128}$/
const PERIOD = /^\d{4}-\d{2}$/

export class InvalidDocNameError extends Error {
  constructor (detail: string) { super(`invalid document name: ${detail}`); this.name = 'InvalidDocNameError' }
}

function segment (what: string, value: string): string {
  if (!SEGMENT.test(value)) throw new InvalidDocNameError(`${what} ${JSON.stringify(value)}`)
  return value
}

function period (value: string): string {
  if (!PERIOD.test(value)) throw new InvalidDocNameError(`period ${JSON.stringify(value)}`)
  return value
}

/** A peer id from a string (a certificate, a wire message, a document name); @throws InvalidDocNameError when it cannot be one. */
export function peerId (value: string): PeerId {
  return segment('peer', value) as PeerId
}

/** A site id from a string (the command line, a certificate, a record); @throws InvalidDocNameError when it cannot be one. */
export function siteId (value: string): SiteId {
  return segment('site', value) as SiteId
}

export const licenseDoc = (): DocName => `${NAME_VERSION}/license` as DocName
export const directoryDoc = (): DocName => `${NAME_VERSION}/directory` as DocName
export const siteConfigDoc = (site: SiteId): DocName => `${NAME_VERSION}/site/${segment('site', site)}` as DocName
export const jobsDoc = (peer: PeerId, p: string): DocName =>
  `${NAME_VERSION}/jobs/${segment('peer', peer)}/${period(p)}` as DocName
export const acctDoc = (peer: PeerId, p: string): DocName =>
  `${NAME_VERSION}/acct/${segment('peer', peer)}/${period(p)}` as DocName
export const enrolDoc = (peer: PeerId): DocName => `${NAME_VERSION}/enrol/${segment('peer', peer)}` as DocName
export const auditDoc = (peer: PeerId, p: string): DocName =>
  `${NAME_VERSION}/audit/${segment('peer', peer)}/${period(p)}` as DocName
export const adminActionsDoc = (peer: PeerId): DocName => `${NAME_VERSION}/admin-actions/${segment('peer', peer)}` as DocName
export const escrowDoc = (peer: PeerId): DocName => `${NAME_VERSION}/escrow/${segment('peer', peer)}` as DocName

/** The monthly time partition a moment falls in (UTC), e.g. `2026-11`. */
export function periodOf (time: number): string {
  return new Date(time).toISOString().slice(0, 7)
}

/** Parses a name back; undefined for anything not built by the builders above. */
export function parseDocName (name: string): ParsedName | undefined {
  const parts = name.split('/')
  if (parts[0] !== NAME_VERSION) return undefined
  const [, family, a, b] = parts
  if (family === 'license' && parts.length === 2) return { family }
  if (family === 'directory' && parts.length === 2) return { family }
  if (family === 'site' && parts.length === 3 && SEGMENT.test(a)) return { family, site: a as SiteId }
  if ((family === 'enrol' || family === 'admin-actions' || family === 'escrow') && parts.length === 3 && SEGMENT.test(a)) return { family, peer: a as PeerId }
  if ((family === 'jobs' || family === 'acct' || family === 'audit') && parts.length === 4 && SEGMENT.test(a) && PERIOD.test(b)) {
    return { family, peer: a as PeerId, period: b }
  }
  return undefined
}

/** Narrows a string to a DocName after checking it parses. */
export function asDocName (name: string): DocName {
  if (parseDocName(name) === undefined) throw new InvalidDocNameError(JSON.stringify(name))
  return name as DocName
}

/** Months between two periods (`YYYY-MM`), `to` minus `from`. */
export function monthsBetween (from: string, to: string): number {
  const [fy, fm] = from.split('-').map(Number)
  const [ty, tm] = to.split('-').map(Number)
  return (ty - fy) * 12 + (tm - fm)
}

/** Audit documents are dropped whole this many months after their period: a year of admin actions, whatever the day. */
export const AUDIT_RETENTION_MONTHS = 13

/**
 * Whether a document is still kept at `now`: jobs documents are dropped whole once their
 * period is more than `jobsMonths` months old (every job in them is past retention by
 * then), audit documents once it is more than `auditMonths` old; every other family is kept.
 */
export function isRetained (name: string, now: number, jobsMonths: number, auditMonths = AUDIT_RETENTION_MONTHS): boolean {
  const parsed = parseDocName(name)
  if (parsed?.period === undefined) return true
  if (parsed.family === 'jobs') return monthsBetween(parsed.period, periodOf(now)) <= jobsMonths
  if (parsed.family === 'audit') return monthsBetween(parsed.period, periodOf(now)) <= auditMonths
  return true
}
