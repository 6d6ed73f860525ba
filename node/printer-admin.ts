/**
 * Printers managed at run time, and admin actions across sites (issue 16 item 4).
 *
 * {@link SitePrinters} (sites): the site's printers as a live set. The `--printer` flags are
 * the start-up set; what an admin adds, edits or removes is written to the site's own
 * document (crdt/site-config.ts `printers`) and applied at once to the printers map the
 * release engine reads (the same `Map` object: no restart), and again at every start over
 * the start-up set. A printer with a job releasing or printing on it is not removed, nor
 * moved to another address (409). It also publishes what its printers say of themselves
 * (Get-Printer-Attributes: state, reasons, supplies) to its document, for every console.
 *
 * Admin actions: an admin at another site (or central) cannot write this site's document;
 * their node writes a signed action to its own `v1/admin-actions/<peer>` (crdt/admin-actions.ts).
 * This site applies each action naming it exactly once, in one transaction with its outcome
 * (applied, or refused with the reason) in its own document, keyed by the action's id:
 *   1. an action with an outcome here is never applied again (replays, restarts, relays);
 *   2. it is applied only when its author is a site or central by its certificate now
 *      (crdt/capability.ts ADMIN_ISSUER_ROLES; sync already refused any other writer): another
 *      role's is refused, an author whose certificate is not known (revoked, expired, not yet
 *      arrived) leaves it pending;
 *   3. actions are applied oldest first, one at a time, at start and as they arrive, so an
 *      action written while this site was cut off is applied when it reconnects.
 *
 * {@link createAdminConsole} (sites and central): the mesh as the console shows it, from the
 * documents this node holds (every site's config, every admin node's actions, every peer's
 * jobs): sites with their printers, status and pending actions, jobs; and asking for a change
 * (applied here when it is this site's, else an action, pending until the outcome arrives).
 * Terminals and clients serve it read-only, over what they hold (every site's config, their
 * own site's jobs).
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { DocStore, Origin } from '../crdt/store.ts'
import { adminActionsDoc, parseDocName, siteConfigDoc, type DocName, type PeerId, type SiteId } from '../crdt/names.ts'
import {
  actionOutcome, announceSiteQueues, validateClientSettings, validateSiteTimes, validatePrintPolicy, validateRoaming, validateTerminalSettings, publishTerminalLinks, readTerminalLinks, InvalidSiteSettingsError, readSiteQueues, type SiteQueues, listActionOutcomes, publishPrinterStatus, putSitePrinter, readPrinterStatus,
  readSitePrinters, readSiteSettings, recordActionOutcome, removeSitePrinter, validatePrinter, validatePrinterName,
  type ActionOutcome, type PrinterFields, type PrinterStatus
} from '../crdt/site-config.ts'
import { appendAdminAction, isPrinterOp, listAdminActions, type ActionPrinter, type AdminAction, type AdminActionOp, type SettingsOp } from '../crdt/admin-actions.ts'
import { listJobs, listReleases } from '../crdt/jobs.ts'
import { ADMIN_ISSUER_ROLES } from '../crdt/capability.ts'
import type { Role } from '../crdt/license.ts'
import { InvalidRequestError, KindedError } from '../crdt/errors.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { Startable } from './compose.ts'
import { probePrinter } from './site-api.ts'
import { PEERS_FEED, type ChangeFeed } from '../ui/routes/events.ts'
import type { SyncLink } from '../crdt/sync.ts'
import type { ConsoleApi, ConsoleAction, ConsoleJob, ConsoleJobQuery, ConsolePrinter, ConsoleSite, PrinterChange } from '../ui/routes/console.ts'

/** How often the site asks its printers how they are (Get-Printer-Attributes); only changes are written. */
export const PRINTER_STATUS_REFRESH_MS = 30_000
/** How often the site looks whether its terminals are connected (no network: its own view); only changes are written. */
export const TERMINAL_LINKS_REFRESH_MS = 5_000
/** Job states in which a printer has (or is about to get) the job: it is not removed or moved then. */
const BUSY_JOB_STATES: ReadonlySet<string> = new Set(['releasing', 'printing'])
/** Remote release states in which this site's printer has (or is about to get) a partner's job. */
const BUSY_RELEASE_STATES: ReadonlySet<string> = new Set(['fetching', 'printing'])
/** Most jobs one console page lists. */
const MAX_JOBS_PAGE = 200
/** A console page lists this many jobs unless asked. */
const DEFAULT_JOBS_PAGE = 50

/** The site's settings an admin may change, by kind (the routes' `/settings/:kind`). */
export const SETTINGS_KINDS = ['roaming', 'clients', 'terminals', 'policy', 'times'] as const
export type SettingsKind = typeof SETTINGS_KINDS[number]
const SETTINGS_KIND: Record<SettingsOp, SettingsKind> = { 'set-roaming': 'roaming', 'set-clients': 'clients', 'set-terminals': 'terminals', 'set-policy': 'policy', 'set-times': 'times' }
const SETTINGS_OP: Record<SettingsKind, SettingsOp> = { roaming: 'set-roaming', clients: 'set-clients', terminals: 'set-terminals', policy: 'set-policy', times: 'set-times' }

/** Writes one kind of the site's settings as its admin API does (node/site.ts: the roaming service); throws InvalidSiteSettingsError for a broken rule. */
export type SiteSettingsWriter = Record<SettingsKind, (input: unknown) => Promise<unknown>>

/** A start-up printer (`--printer NAME=URI`). */
export interface StartupPrinter { name: string, uri: string, description?: string }

/** A printer with a job releasing or printing on it: removing it (or moving it) would lose where the job went. */
export class PrinterBusyError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (name: string, jobs: number) { super(`printer ${name} has ${jobs} job${jobs === 1 ? '' : 's'} releasing or printing: wait until ${jobs === 1 ? 'it ends' : 'they end'}`); this.name = 'PrinterBusyError' }
}

/** No printer by that name at this site. */
export class UnknownPrinterError extends KindedError {
  readonly kind = 'not-found'
  constructor (name: string) { super(`no printer named ${name} here`); this.name = 'UnknownPrinterError' }
}

/** A printer by that name is already there. */
export class PrinterExistsError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (name: string) { super(`a printer named ${name} is already configured`); this.name = 'PrinterExistsError' }
}

/** The site's queue releases to this printer when a user names none. */
export class DefaultPrinterError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (name: string) { super(`printer ${name} is the queue's default printer and cannot be removed`); this.name = 'DefaultPrinterError' }
}

/**
 * A terminal's or a client's console: it shows what that light peer holds and changes nothing,
 * since only sites and central hold the admin documents (crdt/membership.ts: admin actions and
 * the audit log go to them only), so an admin's change is signed by a node admins log in at.
 */
export class ConsoleReadOnlyError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (role: string) { super(`this ${role}'s console shows what it holds and changes nothing: make changes at a site's or central's console`); this.name = 'ConsoleReadOnlyError' }
}

/** An action for a site this node knows nothing of. */
export class UnknownSiteError extends KindedError {
  readonly kind = 'not-found'
  constructor (site: string) { super(`no site named ${site} is known here`); this.name = 'UnknownSiteError' }
}

const asRequestError = (err: unknown): unknown => err instanceof InvalidSiteSettingsError ? new InvalidRequestError(err.message) : err

export interface SitePrintersInit {
  store: DocStore
  self: PeerId
  site: SiteId
  /** The release engine's printers: changed in place. */
  printers: Map<string, OutputDevice>
  /** The `--printer` flags (or the built-in virtual printer). */
  startup: readonly StartupPrinter[]
  /** The queue's default printer: never removed. */
  defaultPrinter: string
  /** An author's role by its certificate now (undefined: not a member). */
  roleOf: (peer: string) => Role | undefined
  /** Builds the output device of a URI (node/site.ts: the registry's). */
  device: (uri: string) => OutputDevice
  logger: Logger
  now?: () => number
  statusRefreshMs?: number
  /** The queues the site runs, announced in its document at start for every console. */
  queues?: SiteQueues
  /** The site's terminals and whether each is connected to it now, published for consoles elsewhere. */
  terminals?: () => Array<{ peer: string, up: boolean }>
  terminalRefreshMs?: number
  /** Applies settings actions (without it they are refused). */
  settings?: SiteSettingsWriter
}

/** A site's printers as it manages them now. */
export interface LocalPrinter { name: string, uri: string, description: string, source: 'start-up' | 'admin' }

export class SitePrinters implements Startable {
  private readonly log: Logger
  private readonly now: () => number
  private readonly descriptions = new Map<string, string>()
  private readonly fromAdmin = new Set<string>()
  private queue: Promise<unknown> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private terminalTimer: NodeJS.Timeout | undefined
  private started = false
  private readonly onEntry = (name: DocName): void => {
    const parsed = parseDocName(name)
    // a new action, or a certificate that makes a pending action's author known
    if ((parsed?.family === 'admin-actions' && parsed.peer !== this.init.self) || parsed?.family === 'license') {
      this.serial(async () => await this.applyPending()).catch((err: unknown) => this.log.error({ err }, 'admin actions not applied; tried again with the next change'))
    }
  }

  constructor (private readonly init: SitePrintersInit) {
    this.log = init.logger.child({ service: 'printer-admin' })
    this.now = init.now ?? Date.now
    for (const p of init.startup) this.descriptions.set(p.name, p.description ?? '')
  }

  private get docName (): DocName { return siteConfigDoc(this.init.site) }
  private origin (admin: string): Origin { return { kind: 'admin', user: admin } }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    // listening first: an action arriving while the held ones are applied is applied after them
    this.init.store.on('entry', this.onEntry)
    await this.serial(async () => {
      const doc = await this.init.store.open(this.docName)
      const queues = this.init.queues
      if (queues !== undefined) await this.init.store.transact(this.docName, { kind: 'local', service: 'printer-admin' }, (d) => { announceSiteQueues(d, queues, this.now()) })
      const { printers, removed } = readSitePrinters(doc)
      for (const name of removed) if (name !== this.init.defaultPrinter) { this.init.printers.delete(name); this.descriptions.delete(name) }
      for (const p of printers) this.install(p.name, p.uri, p.description)
      await this.applyPending()
    })
    void this.refreshStatus()
    this.timer = setInterval(() => { void this.refreshStatus() }, this.init.statusRefreshMs ?? PRINTER_STATUS_REFRESH_MS)
    this.timer.unref()
    if (this.init.terminals !== undefined) {
      void this.publishTerminals()
      this.terminalTimer = setInterval(() => { void this.publishTerminals() }, this.init.terminalRefreshMs ?? TERMINAL_LINKS_REFRESH_MS)
      this.terminalTimer.unref()
    }
  }

  /** Publishes which of the site's terminals are connected, when that changed. */
  private async publishTerminals (): Promise<void> {
    const terminals = this.init.terminals
    if (!this.started || terminals === undefined) return
    await this.serial(async () => {
      const links = terminals()
      await this.init.store.transact(this.docName, { kind: 'local', service: 'printer-admin' }, (doc) => { publishTerminalLinks(doc, links, this.now()) })
    }).catch((err: unknown) => this.log.warn({ err }, 'terminal links not published'))
  }

  async stop (): Promise<void> {
    this.init.store.off('entry', this.onEntry)
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.terminalTimer !== undefined) clearInterval(this.terminalTimer)
    this.timer = undefined
    this.terminalTimer = undefined
    this.started = false
    await this.queue.catch(() => {})
  }

  /** One change at a time: actions, admins' changes and status writes never interleave. */
  private async serial<T> (work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => {})
    return await run
  }

  private install (name: string, uri: string, description: string): void {
    const current = this.init.printers.get(name)
    if (current === undefined || current.uri !== uri) this.init.printers.set(name, this.init.device(uri))
    this.descriptions.set(name, description)
    this.fromAdmin.add(name)
  }

  /** The printers now, by name. */
  list (): LocalPrinter[] {
    return [...this.init.printers].map(([name, device]) => ({ name, uri: device.uri, description: this.descriptions.get(name) ?? '', source: this.fromAdmin.has(name) ? 'admin' as const : 'start-up' as const }))
      .sort((a, b) => a.name.localeCompare(b.name))
  }

  /** How many jobs are releasing or printing on `name` at this site (its own jobs and partners' it releases). */
  busyJobs (name: string): number {
    let n = 0
    const prefix = `v1/jobs/${this.init.self}/`
    for (const docName of this.init.store.openNames()) {
      if (!docName.startsWith(prefix)) continue
      const doc = this.init.store.get(docName)
      if (doc === undefined) continue
      for (const j of listJobs(doc)) if (j.printer === name && BUSY_JOB_STATES.has(j.state)) n++
      for (const r of listReleases(doc)) if (r.printer === name && BUSY_RELEASE_STATES.has(r.state)) n++
    }
    return n
  }

  /** Checks a change against the printers now; @throws the error to answer (400, 404, 409) */
  private check (op: AdminActionOp, name: string, fields: PrinterFields): void {
    validatePrinterName(name)
    const exists = this.init.printers.has(name)
    if (op === 'add-printer') {
      if (exists) throw new PrinterExistsError(name)
      return
    }
    if (!exists) throw new UnknownPrinterError(name)
    if (op === 'remove-printer' && name === this.init.defaultPrinter) throw new DefaultPrinterError(name)
    const moves = op === 'remove-printer' || (fields.uri !== undefined && fields.uri !== this.init.printers.get(name)?.uri)
    const busy = moves ? this.busyJobs(name) : 0
    if (busy > 0) throw new PrinterBusyError(name, busy)
  }

  /** Writes and applies a checked change, with the action's outcome when it is one (one transaction). */
  private async write (op: AdminActionOp, name: string, fields: PrinterFields, admin: string, outcome?: Omit<ActionOutcome, 'status' | 'at'>): Promise<LocalPrinter | undefined> {
    const now = this.now()
    const uri = fields.uri ?? this.init.printers.get(name)?.uri ?? ''
    const description = fields.description ?? this.descriptions.get(name) ?? ''
    await this.init.store.transact(this.docName, this.origin(admin), (doc) => {
      if (op === 'remove-printer') removeSitePrinter(doc, name, now)
      else putSitePrinter(doc, { name, uri, description }, now)
      if (outcome !== undefined) recordActionOutcome(doc, { ...outcome, status: 'applied', at: now })
    })
    if (op === 'remove-printer') {
      this.init.printers.delete(name)
      this.descriptions.delete(name)
      this.fromAdmin.delete(name)
      this.log.info({ printer: name, by: admin }, 'printer removed')
      void this.refreshStatus()
      return undefined
    }
    this.install(name, uri, description)
    this.log.info({ printer: name, uri, by: admin, op }, op === 'add-printer' ? 'printer added' : 'printer changed')
    void this.refreshStatus()
    return this.list().find((p) => p.name === name)
  }

  /** An admin of this site adds a printer; @throws InvalidRequestError (400), PrinterExistsError (409) */
  async add (input: unknown, admin: string): Promise<LocalPrinter> {
    return await this.serial(async () => {
      let fields: PrinterFields
      try { fields = validatePrinter(input, false) } catch (err) { throw asRequestError(err) }
      const name = fields.name as string
      this.check('add-printer', name, fields)
      this.device(fields.uri as string)
      return await this.write('add-printer', name, fields, admin) as LocalPrinter
    })
  }

  /** An admin of this site changes a printer's address or description; @throws 400, 404, 409 (busy and moved) */
  async edit (name: string, input: unknown, admin: string): Promise<LocalPrinter> {
    return await this.serial(async () => {
      let fields: PrinterFields
      try { validatePrinterName(name); fields = validatePrinter(input, true) } catch (err) { throw asRequestError(err) }
      this.check('edit-printer', name, fields)
      if (fields.uri !== undefined) this.device(fields.uri)
      return await this.write('edit-printer', name, fields, admin) as LocalPrinter
    })
  }

  /** An admin of this site removes a printer; @throws 404, 409 (busy, the default) */
  async remove (name: string, admin: string): Promise<void> {
    await this.serial(async () => {
      try { validatePrinterName(name) } catch (err) { throw asRequestError(err) }
      this.check('remove-printer', name, {})
      await this.write('remove-printer', name, {}, admin)
    })
  }

  /** The device for a URI, or the 400 saying why there is none. */
  private device (uri: string): OutputDevice {
    try {
      return this.init.device(uri)
    } catch (err) {
      throw new InvalidRequestError(`uri: ${(err as Error).message}`)
    }
  }

  /** Applies every action naming this site that has no outcome here yet (rules 1-3 of the header). */
  private async applyPending (): Promise<void> {
    const store = this.init.store
    const own = await store.open(this.docName)
    const pending: AdminAction[] = []
    for (const name of await store.storedNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'admin-actions' || parsed.peer === undefined || parsed.peer === this.init.self) continue
      const doc = await store.open(name)
      for (const a of listAdminActions(doc, parsed.peer)) if (a.site === this.init.site && actionOutcome(own, a.id) === undefined) pending.push(a)
    }
    pending.sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))
    for (const a of pending) await this.applyAction(a)
  }

  private async applyAction (a: AdminAction): Promise<void> {
    const role = this.init.roleOf(a.by)
    const refuse = async (reason: string): Promise<void> => {
      await this.init.store.transact(this.docName, this.origin(a.admin), (doc) => { recordActionOutcome(doc, { id: a.id, by: a.by, status: 'refused', reason, at: this.now() }) })
      this.log.warn({ action: a.id, by: a.by, admin: a.admin, op: a.op, printer: a.printer?.name, reason }, 'admin action refused')
    }
    if (role === undefined) {
      // not known (yet, or any more: revoked, expired): left pending, never applied; a certificate arriving later settles it
      this.log.warn({ action: a.id, by: a.by }, 'admin action from a peer whose certificate is not known here: left pending')
      return
    }
    if (!ADMIN_ISSUER_ROLES.includes(role)) {
      await refuse(`a ${role} may not ask for admin actions`)
      return
    }
    try {
      if (!isPrinterOp(a.op)) {
        await this.applySettings(a, a.op)
        return
      }
      const printer = a.printer as ActionPrinter
      const name = printer.name
      let fields: PrinterFields = {}
      if (a.op === 'add-printer') fields = validatePrinter({ name, uri: printer.uri, ...(printer.description !== undefined ? { description: printer.description } : {}) }, false)
      if (a.op === 'edit-printer') fields = validatePrinter({ ...(printer.uri !== undefined ? { uri: printer.uri } : {}), ...(printer.description !== undefined ? { description: printer.description } : {}) }, true)
      this.check(a.op, name, fields)
      if (fields.uri !== undefined) this.device(fields.uri)
      await this.write(a.op, name, fields, `${a.admin}@${a.by}`, { id: a.id, by: a.by })
      this.log.info({ action: a.id, by: a.by, admin: a.admin, op: a.op, printer: name }, 'admin action applied')
    } catch (err) {
      if (err instanceof KindedError || err instanceof InvalidSiteSettingsError) await refuse(err.message)
      else throw err
    }
  }

  /**
   * A settings action: written through the site's own settings writer (the roaming service:
   * the same rules and side effects as the site's admin API), then its outcome. Two
   * transactions, so a crash between them applies it again at the next start: a settings
   * change sets values, and setting them twice leaves them as once.
   */
  private async applySettings (a: AdminAction, op: SettingsOp): Promise<void> {
    const writer = this.init.settings
    if (writer === undefined) throw new InvalidRequestError('this site takes no settings changes from elsewhere')
    await writer[SETTINGS_KIND[op]](a.settings)
    await this.init.store.transact(this.docName, this.origin(`${a.admin}@${a.by}`), (doc) => { recordActionOutcome(doc, { id: a.id, by: a.by, status: 'applied', at: this.now() }) })
    this.log.info({ action: a.id, by: a.by, admin: a.admin, op }, 'admin action applied')
  }

  /** Asks every printer how it is and publishes what changed. */
  async refreshStatus (): Promise<void> {
    if (!this.started) return
    const statuses: PrinterStatus[] = await Promise.all([...this.init.printers].map(async ([name, device]) => {
      const v = await probePrinter(name, device)
      return { name, uri: device.uri, description: this.descriptions.get(name) ?? '', state: v.state, message: v.message, reasons: v.reasons ?? [], markers: v.markers ?? [], at: v.probedAt ?? this.now() }
    }))
    if (!this.started) return
    await this.serial(async () => {
      const live = statuses.filter((s) => this.init.printers.has(s.name))
      await this.init.store.transact(this.docName, { kind: 'local', service: 'printer-status' }, (doc) => { publishPrinterStatus(doc, live) })
    }).catch((err: unknown) => this.log.warn({ err }, 'printer status not published'))
  }
}

// ---- the console's view of the mesh ----

export interface AdminConsoleInit {
  store: DocStore
  self: PeerId
  /** This node's site (a site), or undefined (central). */
  site?: SiteId
  /** This site's printers (a site), applied here at once. */
  local?: SitePrinters
  /** This site's settings (a site), applied here at once. */
  localSettings?: SiteSettingsWriter
  /** The mesh's peers as this node sees them (connected or not). */
  peers: () => Array<{ peer: string, role?: string, site?: string, connected: boolean, lastSeen?: number }>
  now?: () => number
  /** A light peer's role (terminal, client): its console only shows ({@link ConsoleReadOnlyError}). */
  readOnly?: 'terminal' | 'client'
}

/** Sites this node holds a document of. */
function siteNames (store: DocStore): SiteId[] {
  return store.openNames().map((n) => parseDocName(n)).filter((p) => p?.family === 'site' && p.site !== undefined).map((p) => p?.site as SiteId).sort()
}

/** The console's API over the documents this node holds (for ui/routes/console.ts). */
export function createAdminConsole (init: AdminConsoleInit): ConsoleApi {
  const store = init.store
  const now = init.now ?? Date.now

  /** Every action this node holds (any author), with its outcome as its site's document says. */
  const allActions = (): ConsoleAction[] => {
    const out: ConsoleAction[] = []
    for (const name of store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'admin-actions' || parsed.peer === undefined) continue
      const doc = store.get(name)
      if (doc === undefined) continue
      for (const a of listAdminActions(doc, parsed.peer)) {
        const o = actionOutcome(store.get(siteConfigDoc(a.site as SiteId)), a.id)
        out.push({ ...a, status: o?.status ?? 'pending', ...(o?.reason !== undefined ? { reason: o.reason } : {}), ...(o !== undefined ? { settledAt: o.at } : {}) })
      }
    }
    return out.sort((a, b) => b.at - a.at)
  }

  const sitePrintersOf = (site: SiteId, actions: ConsoleAction[]): ConsolePrinter[] => {
    const doc = store.get(siteConfigDoc(site))
    const status = readPrinterStatus(doc)
    const pending = actions.filter((a) => a.site === site && a.status === 'pending')
    const configured = new Map<string, { uri: string, description: string }>()
    if (site === init.site && init.local !== undefined) {
      for (const p of init.local.list()) configured.set(p.name, { uri: p.uri, description: p.description })
    } else {
      // another site's printers as it published them (start-up ones included), else as its document configures them
      const { printers } = readSitePrinters(doc)
      for (const p of printers) configured.set(p.name, { uri: p.uri, description: p.description })
      for (const [name, s] of status) configured.set(name, { uri: s.uri, description: s.description })
    }
    return [...configured].map(([name, p]): ConsolePrinter => {
      const s = status.get(name)
      return {
        site,
        name,
        uri: p.uri,
        description: p.description,
        ...(s !== undefined ? { state: s.state, message: s.message, reasons: s.reasons, markers: s.markers, statusAt: s.at } : {}),
        pending: pending.filter((a) => a.printer?.name === name).map((a) => ({ id: a.id, op: a.op, at: a.at }))
      }
    }).sort((a, b) => a.name.localeCompare(b.name))
  }

  const sites = (): ConsoleSite[] => {
    const actions = allActions()
    const peers = init.peers()
    return siteNames(store).map((site) => {
      const doc = store.get(siteConfigDoc(site))
      const settings = readSiteSettings(doc, site)
      const server = peers.filter((p) => p.role === 'site' && p.site === site)
      // this site's terminals as it sees them; another site's as that site published them, or connected here
      const connected = peers.filter((p) => p.role === 'terminal' && p.site === site)
      const terminals = site === init.site
        ? connected
        : [...new Map<string, { peer: string, connected: boolean, lastSeen?: number }>([
            ...readTerminalLinks(doc).map((t): [string, { peer: string, connected: boolean, lastSeen?: number }] => [t.peer, { peer: t.peer, connected: t.up, lastSeen: t.since }]),
            ...connected.filter((p) => p.connected).map((p): [string, { peer: string, connected: boolean, lastSeen?: number }] => [p.peer, p])
          ]).values()]
      const self = site === init.site
      return {
        site,
        hostname: settings.hostname,
        self,
        up: self || server.some((p) => p.connected),
        ...(server[0]?.lastSeen !== undefined ? { lastSeen: server[0].lastSeen } : {}),
        terminals: terminals.map((t) => ({ peer: t.peer, up: t.connected, ...(t.lastSeen !== undefined ? { lastSeen: t.lastSeen } : {}) })),
        roaming: settings.roaming,
        clients: settings.clients,
        terminalModes: settings.terminals,
        policy: settings.policy,
        times: settings.times,
        ...(readSiteQueues(doc) !== undefined ? { queues: readSiteQueues(doc) } : {}),
        printers: sitePrintersOf(site, actions),
        actions: actions.filter((a) => a.site === site).slice(0, 20),
        outcomes: listActionOutcomes(doc).length
      }
    })
  }

  const jobs = (q: ConsoleJobQuery): { jobs: ConsoleJob[], total: number, offset: number, limit: number } => {
    const found: ConsoleJob[] = []
    const text = q.q?.toLowerCase()
    for (const name of store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === undefined) continue
      const doc = store.get(name)
      if (doc === undefined) continue
      for (const j of listJobs(doc)) {
        if (q.state !== undefined && j.state !== q.state) continue
        if (q.site !== undefined && j.site !== q.site) continue
        if (text !== undefined && !j.name.toLowerCase().includes(text) && !j.owner.toLowerCase().includes(text) && !(j.printer ?? '').toLowerCase().includes(text)) continue
        found.push({ id: j.id, name: j.name, owner: j.owner, state: j.state, site: j.site, holder: parsed.peer, ...(j.printer !== undefined ? { printer: j.printer } : {}), ...(j.pages !== undefined ? { pages: j.pages } : {}), copies: j.copies, createdAt: j.createdAt, updatedAt: j.updatedAt, ...(j.heldAt !== undefined ? { heldAt: j.heldAt } : {}), ...(j.printedBy !== undefined ? { printedAt: j.printedBy.site } : {}) })
      }
    }
    found.sort((a, b) => b.createdAt - a.createdAt || a.id.localeCompare(b.id))
    const limit = Math.min(q.limit ?? DEFAULT_JOBS_PAGE, MAX_JOBS_PAGE)
    const offset = q.offset ?? 0
    return { jobs: found.slice(offset, offset + limit), total: found.length, offset, limit }
  }

  /** Writes an action to this node's own document: pending until the site it names settles it. */
  const ask = async (action: AdminAction): Promise<ConsoleAction> => {
    await store.transact(adminActionsDoc(init.self), { kind: 'admin', user: action.admin }, (doc) => { appendAdminAction(doc, action) })
    return { ...action, status: 'pending' }
  }

  return {
    sites,
    printers: () => sites().flatMap((s) => s.printers),
    jobs,
    actions: () => allActions().filter((a) => a.by === init.self),

    async changePrinter (site: string, change: PrinterChange, admin: string): Promise<ConsoleAction | { status: 'applied', printer?: unknown }> {
      if (init.readOnly !== undefined) throw new ConsoleReadOnlyError(init.readOnly)
      if (site === init.site && init.local !== undefined) {
        // this site's own printers: applied here, now
        if (change.op === 'add-printer') return { status: 'applied', printer: await init.local.add(change.fields, admin) }
        if (change.op === 'edit-printer') return { status: 'applied', printer: await init.local.edit(change.name as string, change.fields, admin) }
        await init.local.remove(change.name as string, admin)
        return { status: 'applied' }
      }
      if (!siteNames(store).includes(site as SiteId)) throw new UnknownSiteError(site)
      if (!isPrinterOp(change.op)) throw new InvalidRequestError(`${change.op} is not a printer change`)
      // checked here as the site will check them, so a bad request is a 400 now rather than a refusal later
      let fields: PrinterFields = {}
      try {
        if (change.op === 'add-printer') fields = validatePrinter(change.fields, false)
        if (change.op === 'edit-printer') fields = validatePrinter(change.fields, true)
        if (change.op !== 'add-printer') validatePrinterName(change.name)
      } catch (err) { throw asRequestError(err) }
      const action: AdminAction = {
        id: randomBytes(12).toString('base64url'),
        by: init.self,
        admin,
        site,
        op: change.op,
        printer: { name: change.op === 'add-printer' ? fields.name as string : change.name as string, ...(fields.uri !== undefined ? { uri: fields.uri } : {}), ...(fields.description !== undefined ? { description: fields.description } : {}) },
        at: now()
      }
      return await ask(action)
    },

    async changeSettings (site: string, kind: string, input: unknown, admin: string): Promise<ConsoleAction | { status: 'applied', settings?: unknown }> {
      if (init.readOnly !== undefined) throw new ConsoleReadOnlyError(init.readOnly)
      if (!(SETTINGS_KINDS as readonly string[]).includes(kind)) throw new InvalidRequestError(`settings kind must be one of ${SETTINGS_KINDS.join(', ')}, not ${JSON.stringify(kind)}`)
      const k = kind as SettingsKind
      if (site === init.site && init.localSettings !== undefined) {
        try {
          return { status: 'applied', settings: await init.localSettings[k](input) }
        } catch (err) { throw asRequestError(err) }
      }
      if (!siteNames(store).includes(site as SiteId)) throw new UnknownSiteError(site)
      // checked here by the rules the site checks them by, so a bad change is a 400 now rather than a refusal later
      try {
        if (k === 'roaming') validateRoaming(site as SiteId, input)
        if (k === 'clients') validateClientSettings(input)
        if (k === 'terminals') validateTerminalSettings(input)
        if (k === 'policy') validatePrintPolicy(input)
        if (k === 'times') validateSiteTimes(input)
      } catch (err) { throw asRequestError(err) }
      return await ask({ id: randomBytes(12).toString('base64url'), by: init.self, admin, site, op: SETTINGS_OP[k], settings: JSON.parse(JSON.stringify(input)) as Record<string, unknown>, at: now() })
    }
  }
}

/**
 * The console's live updates (ui/routes/events.ts): each envelope the store takes, as its
 * document's family, and each peer connecting or disconnecting on `links` (the node's sync
 * transport), as {@link PEERS_FEED}: a connection is no document change, and the console's
 * peers page shows them. A revocation is both: the license document changes, and every node
 * disconnects the peer.
 */
export function storeChangeFeed (store: DocStore, links: Pick<SyncLink, 'on' | 'off'>): ChangeFeed {
  // one listener of each kind for every open stream together: a console tab each would pass the emitters' listener warning
  const subscribers = new Set<(family: string) => void>()
  const onEntry = (name: DocName): void => {
    const family = parseDocName(name)?.family
    if (family !== undefined) for (const fn of subscribers) fn(family)
  }
  const onPeer = (): void => { for (const fn of subscribers) fn(PEERS_FEED) }
  return {
    subscribe (fn) {
      if (subscribers.size === 0) {
        store.on('entry', onEntry)
        links.on('peer:connect', onPeer)
        links.on('peer:disconnect', onPeer)
      }
      subscribers.add(fn)
      return () => {
        if (!subscribers.delete(fn) || subscribers.size > 0) return
        store.off('entry', onEntry)
        links.off('peer:connect', onPeer)
        links.off('peer:disconnect', onPeer)
      }
    }
  }
}
