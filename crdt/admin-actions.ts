/**
 * The admin-actions family: `v1/admin-actions/<peer>`, changes an admin logged in at one node
 * (a site or central) asks of another site, written only by that node (crdt/membership.ts:
 * the document's peer, a site or central), so each action is signed by the node that
 * authenticated the admin and cannot be forged by another peer: an envelope for `<peer>`'s
 * document signed by anyone else is rejected where it enters (crdt/sync.ts).
 *
 * The site an action names applies it once (node/printer-admin.ts) and records the outcome
 * (applied, or refused with the reason) in its own site document (crdt/site-config.ts
 * {@link recordActionOutcome}), keyed by the action's id: the outcome is what makes it
 * "done", so an action is applied once however often it is read, replayed or restarted
 * over, and the asking node shows it pending until that outcome reaches it.
 *
 * Append-only, as the audit family: a Y.Map by random id, {@link appendAdminAction} refuses an
 * id the document holds. An action naming another author than its document's peer is not
 * that peer's and is left out where read ({@link listAdminActions}).
 */
import type * as Y from 'yjs'

/** What an admin may ask of another site: its printers, and its settings (crdt/site-config.ts, checked by the same rules as at the site). */
export const PRINTER_OPS = ['add-printer', 'edit-printer', 'remove-printer'] as const
export const SETTINGS_OPS = ['set-roaming', 'set-clients', 'set-terminals', 'set-policy', 'set-times'] as const
export const ADMIN_ACTION_OPS = [...PRINTER_OPS, ...SETTINGS_OPS] as const
export type PrinterOp = typeof PRINTER_OPS[number]
export type SettingsOp = typeof SETTINGS_OPS[number]
export type AdminActionOp = typeof ADMIN_ACTION_OPS[number]

export const isPrinterOp = (op: AdminActionOp): op is PrinterOp => (PRINTER_OPS as readonly string[]).includes(op)

/** The printer an action is about: its name, and for add and edit the fields to set. */
export interface ActionPrinter {
  name: string
  uri?: string
  description?: string
}

export interface AdminAction {
  /** Unique id (random): the key of the action, and of its outcome at the target site. */
  id: string
  /** The node that wrote it (a site or central): the document's peer. */
  by: string
  /** The admin's name as that node authenticated them. */
  admin: string
  /** The site asked to apply it. */
  site: string
  op: AdminActionOp
  /** For the printer ops. */
  printer?: ActionPrinter
  /** For the settings ops: the settings as an admin sends them to the site's own API (a JSON object). */
  settings?: Record<string, unknown>
  /** When it was asked (ms since the epoch, the asking node's clock). */
  at: number
}

/** Action ids: random, URL-safe. */
export const ADMIN_ACTION_ID = /^[A-Za-z0-9_-]{8,64}$/
/** Longest admin name, site, printer name, URI or description kept: longer ones are not what the console writes. */
const MAX_FIELD_CHARS = 2048
/** Largest settings object kept (as JSON): 500 partners or groups fit. */
const MAX_SETTINGS_CHARS = 64 * 1024

export class InvalidAdminActionError extends Error {
  constructor (detail: string) { super(`invalid admin action: ${detail}`); this.name = 'InvalidAdminActionError' }
}

/** An action id already in the document: actions are written once. */
export class AdminActionExistsError extends Error {
  constructor (id: string) { super(`admin action ${id} already recorded`); this.name = 'AdminActionExistsError' }
}

const actions = (doc: Y.Doc): Y.Map<AdminAction> => doc.getMap<AdminAction>('actions')

const text = (value: unknown): value is string => typeof value === 'string' && value !== '' && value.length <= MAX_FIELD_CHARS
const optionalText = (value: unknown): boolean => value === undefined || (typeof value === 'string' && value.length <= MAX_FIELD_CHARS)

/** Why a record read from `peer`'s document is not a valid action, or undefined when it is. */
export function adminActionProblem (a: AdminAction, peer: string): string | undefined {
  if (typeof a !== 'object' || a === null) return 'not a record'
  if (typeof a.id !== 'string' || !ADMIN_ACTION_ID.test(a.id)) return 'bad id'
  if (a.by !== peer) return `written by ${String(a.by)} in ${peer}'s document`
  if (!text(a.admin)) return 'no admin'
  if (!text(a.site)) return 'no site'
  if (!(ADMIN_ACTION_OPS as readonly unknown[]).includes(a.op)) return 'unknown op'
  if (isPrinterOp(a.op)) {
    if (typeof a.printer !== 'object' || a.printer === null || !text(a.printer.name)) return 'no printer name'
    if (!optionalText(a.printer.uri) || !optionalText(a.printer.description)) return 'bad printer fields'
  } else {
    if (typeof a.settings !== 'object' || a.settings === null || Array.isArray(a.settings)) return 'no settings'
    if (JSON.stringify(a.settings).length > MAX_SETTINGS_CHARS) return 'settings too large'
  }
  if (typeof a.at !== 'number' || !Number.isFinite(a.at)) return 'bad time'
  return undefined
}

/**
 * Appends an action to `doc` (the asking node's own document).
 * @throws InvalidAdminActionError for a malformed action, AdminActionExistsError for an id already there
 */
export function appendAdminAction (doc: Y.Doc, a: AdminAction): void {
  const problem = adminActionProblem(a, a.by)
  if (problem !== undefined) throw new InvalidAdminActionError(problem)
  const map = actions(doc)
  if (map.has(a.id)) throw new AdminActionExistsError(a.id)
  // plain JSON: what Yjs stores is what every reader gets back
  map.set(a.id, JSON.parse(JSON.stringify(a)) as AdminAction)
}

/** The valid actions of `peer`'s document, oldest first (forged or malformed records are left out). */
export function listAdminActions (doc: Y.Doc, peer: string): AdminAction[] {
  return [...actions(doc).values()].filter((a) => adminActionProblem(a, peer) === undefined).sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))
}

/** Every record of the document, valid or not (to tell a forged one was never applied). */
export function countAdminActions (doc: Y.Doc): number {
  return actions(doc).size
}
