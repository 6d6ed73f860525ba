/**
 * The audit family: `v1/audit/<peer>/<period>`, what admins did at one node (a site or
 * central: where admins log in), written only by that node (crdt/membership.ts), so each
 * entry is signed by the node that authenticated the admin, replicated to central and every
 * site, and cannot be forged by another peer: an envelope for `<peer>`'s document signed by
 * anyone else is rejected where it enters (crdt/sync.ts).
 *
 * Append-only: entries live in a Y.Map keyed by their random id, as usage records do
 * (crdt/accounting.ts), and {@link appendAudit} is the only mutation: it refuses an id the
 * document holds, so an entry, once written, is never replaced (a Y.Array would allow the
 * same, but a retried write could then add an entry twice, and reading one by id would walk
 * the log). Nothing here deletes an entry: retention drops whole documents, a month at a
 * time ({@link AUDIT_RETENTION_MONTHS} in crdt/names.ts), as jobs documents are dropped.
 *
 * An entry names the node that wrote it; one naming another node than its document's is
 * not that node's record and is left out where it is read ({@link listAudit}).
 */
import type * as Y from 'yjs'

/**
 * How the admin proved (or tried to prove) who they are: the admin bearer token, a session of
 * the admin page, or an account's password at the sign-in (only on a refused sign-in: a
 * successful one is the session's).
 */
export type AuditVia = 'token' | 'session' | 'password'
const VIAS: readonly AuditVia[] = ['token', 'session', 'password']

export interface AuditEntry {
  /** Unique id (random): the key of the entry. */
  id: string
  /** When the action was done (ms since the epoch, the node's clock). */
  at: number
  /** The node where it was done, which wrote the entry: the document's peer. */
  node: string
  /** That node's role (`site`, `central`) and site, for reading the log without a peer table. */
  role: string
  site?: string
  /** Who: the admin's name as the node authenticated them (`admin` for the admin token); on a refused attempt the name claimed, `(wrong token)` for a token no node issued. */
  actor: string
  via: AuditVia
  /** What: the method and route, e.g. `PATCH /api/users/:username`. */
  action: string
  /** On what: the path (and query) asked for, e.g. `/api/users/bob`. */
  target: string
  /** The HTTP status it was answered with: a success, or 401/403 for a refused attempt. */
  status: number
  /** Present on a refused attempt (a wrong token or password, a role's or the CSRF check's 403): why, as answered. */
  refused?: string
  /** The resource before the action (what a GET of `target` answered), for PUT, PATCH and DELETE. */
  before?: unknown
  /** The resource after it (PUT, PATCH), or what the action answered (POST). */
  after?: unknown
  /** The request's JSON body, secrets (PINs, card numbers, tokens) replaced. */
  request?: unknown
}

/** Entry ids: random, URL-safe. */
const ID = /^[A-Za-z0-9_-]{8,64}$/
/** Longest actor, action or target kept: longer ones are not what the HTTP layer writes. */
const MAX_FIELD_CHARS = 2048

export class InvalidAuditEntryError extends Error {
  constructor (detail: string) { super(`invalid audit entry: ${detail}`); this.name = 'InvalidAuditEntryError' }
}

/** An audit entry's id already in the log: entries are written once. */
export class AuditEntryExistsError extends Error {
  constructor (id: string) { super(`audit entry ${id} already recorded: the log is append-only`); this.name = 'AuditEntryExistsError' }
}

const entries = (doc: Y.Doc): Y.Map<AuditEntry> => doc.getMap<AuditEntry>('audit')

const text = (value: unknown): value is string => typeof value === 'string' && value !== '' && value.length <= MAX_FIELD_CHARS

/** Why a record read from `peer`'s document is not a valid audit entry, or undefined when it is. */
export function auditProblem (e: AuditEntry, peer: string): string | undefined {
  if (typeof e !== 'object' || e === null) return 'not a record'
  if (typeof e.id !== 'string' || !ID.test(e.id)) return 'bad id'
  if (typeof e.at !== 'number' || !Number.isFinite(e.at)) return 'bad time'
  if (e.node !== peer) return `written by ${String(e.node)} in ${peer}'s document`
  if (!text(e.role)) return 'no role'
  if (e.site !== undefined && !text(e.site)) return 'bad site'
  if (!text(e.actor)) return 'no actor'
  if (!VIAS.includes(e.via)) return 'bad via'
  if (e.refused !== undefined && !text(e.refused)) return 'bad refusal'
  if (!text(e.action)) return 'no action'
  if (!text(e.target)) return 'no target'
  if (!Number.isInteger(e.status)) return 'bad status'
  return undefined
}

/**
 * Appends an entry to `doc` (the writing node's document of the entry's month).
 * @throws InvalidAuditEntryError for a malformed entry, AuditEntryExistsError for an id already there
 */
export function appendAudit (doc: Y.Doc, e: AuditEntry): void {
  const problem = auditProblem(e, e.node)
  if (problem !== undefined) throw new InvalidAuditEntryError(problem)
  const map = entries(doc)
  if (map.has(e.id)) throw new AuditEntryExistsError(e.id)
  // plain JSON: what Yjs stores is what every reader gets back
  map.set(e.id, JSON.parse(JSON.stringify(e)) as AuditEntry)
}

/** The valid entries of `peer`'s document, oldest first (forged or malformed records are left out). */
export function listAudit (doc: Y.Doc, peer: string): AuditEntry[] {
  return [...entries(doc).values()].filter((e) => auditProblem(e, peer) === undefined).sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))
}

/** How many records the document holds (valid or not), without copying them. */
export function countAudit (doc: Y.Doc): number {
  return entries(doc).size
}
