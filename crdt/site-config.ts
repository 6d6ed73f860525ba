/**
 * The site config family: `v1/site/<siteId>`, written only by that site (or the authority).
 * It holds what other peers need to know about a site to roam jobs with it: the host name
 * its jobs are marked with, the partner sites it roams with and how it shows their jobs.
 *
 * Roaming between two sites depends only on those two sites' documents ({@link roamsWith}):
 * each must name the other as a partner. Central plays no part.
 *
 * It also holds what the site's peers apply themselves: what its workstations' clients may do
 * ({@link ClientSettings}) and the release modes its terminals offer for device spooling
 * ({@link TerminalModeSettings}); a terminal applies these as they arrive and keeps the last
 * it received (its replica) while the site is unreachable.
 */
import type { SiteId } from './names.ts'
import { GROUP_NAME } from './directory.ts'
import type * as Y from 'yjs'

/** How a site shows the jobs of its partner sites. */
export type RoamingMode =
  | 'shared' // fetched ahead of time and listed in My Jobs next to local jobs
  | 'separate' // listed apart; the bytes are fetched on release

export const ROAMING_MODES: readonly RoamingMode[] = ['shared', 'separate']
/** A new site roams with nobody until its admin names partners; separate mode moves no bytes ahead of time. */
export const DEFAULT_ROAMING_MODE: RoamingMode = 'separate'
/** More partners than this is a configuration mistake, not a branch network. */
export const MAX_PARTNERS = 500
/** Site ids as document names allow them. */
const SITE_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** Host names are shown to users; longer ones are configuration mistakes. */
const MAX_HOSTNAME_CHARS = 253

export interface RoamingSettings {
  /** Site ids this site roams with (both sides must name each other). */
  partners: SiteId[]
  mode: RoamingMode
}

/** What the workstations' clients of a site may do (issue 14). */
export interface ClientSettings {
  /** A client takes jobs for other requesting-user-names than its workstation's user (default false: a workstation prints for its user). */
  otherUsers: boolean
  /**
   * Client spooling: the client keeps the document and publishes only the job record (default
   * true: the point of a client). Off: the client hands each job to its site, which holds it.
   */
  spooling: boolean
}

/** Client spooling is on unless a site's admin turns it off (the default). */
export const DEFAULT_CLIENT_SPOOLING = true

/** Device spooling's release modes (issue 13): the queues a terminal offers at `/printers/<mode>`. */
export const TERMINAL_RELEASE_MODES = ['direct', 'hold', 'pull', 'delegated'] as const
export type TerminalReleaseMode = typeof TERMINAL_RELEASE_MODES[number]

/** The release modes the site's terminals offer, and the one `/ipp/print` takes (issue 13). */
export interface TerminalModeSettings {
  /** Offered modes, in {@link TERMINAL_RELEASE_MODES} order; never empty. */
  modes: TerminalReleaseMode[]
  /** One of `modes`: the queue at `/ipp/print`. */
  defaultMode: TerminalReleaseMode
}

/**
 * The site's print policy (issue 13 item 5), applied by whichever peer of the site prints a job
 * (its server, a terminal, also offline from its replica of this document): what the printer is
 * told and what is charged.
 */
export interface PrintPolicy {
  /** Every job prints two-sided (long edge), whatever it asked: paper saved, charged as duplex sheets. */
  forceDuplex: boolean
  /** Members of these directory groups print in monochrome only: sent as such, charged no colour pages. */
  monoGroups: string[]
}

/** No policy until an admin sets one: jobs print as sent. */
export const NO_PRINT_POLICY: PrintPolicy = { forceDuplex: false, monoGroups: [] }
/** More groups than a directory has; a longer list is a mistake. */
const MAX_POLICY_GROUPS = 500

export interface SiteSettings {
  site: SiteId
  /** The host name remote jobs of this site are marked with. */
  hostname: string
  roaming: RoamingSettings
  clients: ClientSettings
  /** Undefined until an admin sets them: each terminal then offers its own `--modes`. */
  terminals: TerminalModeSettings | undefined
  /**
   * Whether the site's terminals take the `requesting-user-name` a workstation sends as the
   * job's owner (default true, as `lp -U` expects); false: a job sent straight to a terminal is
   * held for whoever logs in at its panel and claims it (issue 13 item 3).
   */
  terminalsTrustUserName: boolean
  policy: PrintPolicy
  /** Hold and retention times an admin set; what is absent is the site's start-up flag (`--hold-hours`, `--retention-hours`). */
  times: Partial<SiteTimes>
  updatedAt: number
}

export class InvalidSiteSettingsError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidSiteSettingsError' }
}

const settingsMap = (doc: Y.Doc): Y.Map<unknown> => doc.getMap('settings')

/** The settings in a site's document; defaults for what was never written. */
export function readSiteSettings (doc: Y.Doc | undefined, site: SiteId): SiteSettings {
  const map = doc === undefined ? new Map<string, unknown>() : settingsMap(doc)
  const partners = map.get('partners')
  const mode = map.get('mode')
  const hostname = map.get('hostname')
  const updatedAt = map.get('updatedAt')
  const clientOtherUsers = map.get('clientOtherUsers')
  const clientSpooling = map.get('clientSpooling')
  return {
    site,
    hostname: typeof hostname === 'string' ? hostname : site,
    roaming: {
      partners: Array.isArray(partners) ? partners.filter((p): p is SiteId => typeof p === 'string') : [],
      mode: ROAMING_MODES.includes(mode as RoamingMode) ? mode as RoamingMode : DEFAULT_ROAMING_MODE
    },
    clients: { otherUsers: clientOtherUsers === true, spooling: typeof clientSpooling === 'boolean' ? clientSpooling : DEFAULT_CLIENT_SPOOLING },
    terminals: readTerminalModes(map.get('terminalModes'), map.get('terminalDefaultMode')),
    terminalsTrustUserName: map.get('terminalTrustUserName') !== false,
    policy: readPolicy(map.get('policyForceDuplex'), map.get('policyMonoGroups')),
    times: readSiteTimes(doc),
    updatedAt: typeof updatedAt === 'number' ? updatedAt : 0
  }
}

function readPolicy (forceDuplex: unknown, monoGroups: unknown): PrintPolicy {
  return {
    forceDuplex: forceDuplex === true,
    monoGroups: Array.isArray(monoGroups) ? monoGroups.filter((g): g is string => typeof g === 'string') : []
  }
}

/**
 * An admin's settings change as an object naming only `known` settings: the one check each
 * validator below starts with (`what`: the kind of settings in messages, `example`: what to send).
 */
function settingsChange (input: unknown, what: string, known: readonly string[], example: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidSiteSettingsError(`${what} must be an object like ${example}`)
  const unknown = Object.keys(input).filter((k) => !known.includes(k))
  const list = known.length === 2 ? known.join(' and ') : `${known.slice(0, -1).join(', ')} and ${known[known.length - 1]}`
  if (unknown.length > 0) throw new InvalidSiteSettingsError(`unknown ${what.replace(/s$/, '')} ${JSON.stringify(unknown[0])}: ${list} are known`)
  return input as Record<string, unknown>
}

/** Checks a print policy from an admin (`{"forceDuplex": true, "monoGroups": ["students"]}`); what is left out stays as it is. */
export function validatePrintPolicy (input: unknown): Partial<PrintPolicy> {
  const { forceDuplex, monoGroups } = settingsChange(input, 'print policy settings', ['forceDuplex', 'monoGroups'], '{"forceDuplex": true, "monoGroups": ["students"]}')
  if (forceDuplex === undefined && monoGroups === undefined) throw new InvalidSiteSettingsError('name forceDuplex (true or false) or monoGroups (a list of group names)')
  if (forceDuplex !== undefined && typeof forceDuplex !== 'boolean') throw new InvalidSiteSettingsError('forceDuplex must be true or false')
  if (monoGroups !== undefined) {
    if (!Array.isArray(monoGroups)) throw new InvalidSiteSettingsError('monoGroups must be a list of group names')
    if (monoGroups.length > MAX_POLICY_GROUPS) throw new InvalidSiteSettingsError(`monoGroups: at most ${MAX_POLICY_GROUPS} groups`)
    for (const g of monoGroups) if (typeof g !== 'string') throw new InvalidSiteSettingsError(`monoGroups: not a group name: ${JSON.stringify(g)}`)
  }
  // trimmed as the directory trims them, or a policy would name a group nobody is in
  const groups = monoGroups === undefined ? undefined : [...new Set((monoGroups as string[]).map((g) => g.trim()).filter((g) => g !== ''))].sort()
  for (const g of groups ?? []) if (!GROUP_NAME.test(g)) throw new InvalidSiteSettingsError(`monoGroups: not a group name: ${JSON.stringify(g)} (1-128 characters, no ; or control characters)`)
  return {
    ...(forceDuplex !== undefined ? { forceDuplex } : {}),
    ...(groups !== undefined ? { monoGroups: groups } : {})
  }
}

/** Writes the print policy settings given (already validated). */
export function setPrintPolicy (doc: Y.Doc, policy: Partial<PrintPolicy>, now: number): void {
  const map = settingsMap(doc)
  if (policy.forceDuplex !== undefined) map.set('policyForceDuplex', policy.forceDuplex)
  if (policy.monoGroups !== undefined) map.set('policyMonoGroups', [...policy.monoGroups])
  map.set('updatedAt', now)
}

// ---- hold and retention times (issue 16 item 4) ----

/**
 * How long the site keeps jobs, set by an admin at run time over its start-up flags: applied
 * by each peer of the site that holds jobs (its server, terminals, workstation clients), at
 * each use, to jobs already held too (a hold is measured from the job's creation, retention
 * from its end, as always).
 */
export interface SiteTimes {
  /** A held job nobody released expires this many hours after it was created. */
  holdHours: number
  /** A finished job and its document are purged this many hours after it ended. */
  retentionHours: number
}

/** Shortest time either may be set to (about a minute): the job service sweeps once a minute, a shorter time could not be kept. */
export const MIN_TIMES_HOURS = 0.0167
/** Longest hold: a held job's document fills the spool; a month unreleased is a forgotten job, not a slow user. */
export const MAX_HOLD_HOURS = 31 * 24
/** Longest retention: a year of job history; the accounting keeps usage beyond that, the spool need not keep documents. */
export const MAX_RETENTION_HOURS = 366 * 24
const HOURS_MS = 3600_000

/** The times an admin set in a site's document (each absent: the start-up flag). */
export function readSiteTimes (doc: Y.Doc | undefined): Partial<SiteTimes> {
  if (doc === undefined) return {}
  const map = settingsMap(doc)
  const hold = map.get('holdHours')
  const retention = map.get('retentionHours')
  const valid = (h: unknown, max: number): h is number => typeof h === 'number' && Number.isFinite(h) && h >= MIN_TIMES_HOURS && h <= max
  return { ...(valid(hold, MAX_HOLD_HOURS) ? { holdHours: hold } : {}), ...(valid(retention, MAX_RETENTION_HOURS) ? { retentionHours: retention } : {}) }
}

/** The hold and retention in ms a peer of the site applies now: the admin's times, else its own start-up values. */
export function effectiveTimesMs (doc: Y.Doc | undefined, startUp: { holdMs: number, retentionMs: number }): { holdMs: number, retentionMs: number } {
  const set = readSiteTimes(doc)
  return {
    holdMs: set.holdHours !== undefined ? set.holdHours * HOURS_MS : startUp.holdMs,
    retentionMs: set.retentionHours !== undefined ? set.retentionHours * HOURS_MS : startUp.retentionMs
  }
}

/** A change of the times from an admin: a number sets it, null returns it to the start-up flag, absent leaves it. */
export type SiteTimesChange = { [K in keyof SiteTimes]?: number | null }

/** Checks hold and retention times from an admin (`{"holdHours": 24, "retentionHours": 168}`, either, or null for the start-up flag). */
export function validateSiteTimes (input: unknown): SiteTimesChange {
  const example = '{"holdHours": 24, "retentionHours": 168}'
  const { holdHours, retentionHours } = settingsChange(input, 'time settings', ['holdHours', 'retentionHours'], example)
  if (holdHours === undefined && retentionHours === undefined) throw new InvalidSiteSettingsError(`name holdHours or retentionHours (hours, or null for the start-up flag), like ${example}`)
  const hours = (value: unknown, field: string, max: number): number | null | undefined => {
    if (value === undefined || value === null) return value
    if (typeof value !== 'number' || !Number.isFinite(value) || value < MIN_TIMES_HOURS || value > max) throw new InvalidSiteSettingsError(`${field} must be a number of hours from ${MIN_TIMES_HOURS} (one minute) to ${max}, or null for the start-up flag; not ${JSON.stringify(value)}`)
    return value
  }
  const hold = hours(holdHours, 'holdHours', MAX_HOLD_HOURS)
  const retention = hours(retentionHours, 'retentionHours', MAX_RETENTION_HOURS)
  return { ...(hold !== undefined ? { holdHours: hold } : {}), ...(retention !== undefined ? { retentionHours: retention } : {}) }
}

/** Writes the times given (already validated); null removes one (the start-up flag applies again). */
export function setSiteTimes (doc: Y.Doc, change: SiteTimesChange, now: number): void {
  const map = settingsMap(doc)
  for (const key of ['holdHours', 'retentionHours'] as const) {
    const value = change[key]
    if (value === null) map.delete(key)
    else if (value !== undefined) map.set(key, value)
  }
  map.set('updatedAt', now)
}

const isReleaseMode = (m: unknown): m is TerminalReleaseMode => (TERMINAL_RELEASE_MODES as readonly unknown[]).includes(m)

/** Terminal modes as stored; undefined when never set or not readable (a newer writer's shape): terminals keep their own. */
function readTerminalModes (modes: unknown, defaultMode: unknown): TerminalModeSettings | undefined {
  if (!Array.isArray(modes) || !isReleaseMode(defaultMode)) return undefined
  const known = TERMINAL_RELEASE_MODES.filter((m) => modes.includes(m))
  return known.includes(defaultMode) ? { modes: known, defaultMode } : undefined
}

/** A change of the terminals' settings from an admin: what is left out stays as it is. */
export interface TerminalSettingsChange {
  modes?: TerminalModeSettings
  trustUserName?: boolean
}

/**
 * Checks terminal settings from an admin: `{"modes": ["pull", "hold"], "defaultMode": "pull"}`
 * (without `defaultMode`, the first mode named; the modes come back in their usual order),
 * `{"trustUserName": false}`, or both.
 */
export function validateTerminalSettings (input: unknown): TerminalSettingsChange {
  const example = '{"modes": ["hold", "pull"], "defaultMode": "pull", "trustUserName": true}'
  const { modes, defaultMode, trustUserName } = settingsChange(input, 'terminal settings', ['modes', 'defaultMode', 'trustUserName'], example)
  if (trustUserName !== undefined && typeof trustUserName !== 'boolean') throw new InvalidSiteSettingsError('trustUserName must be true or false')
  if (modes === undefined) {
    if (defaultMode !== undefined) throw new InvalidSiteSettingsError('defaultMode: name the modes offered with it')
    if (trustUserName === undefined) throw new InvalidSiteSettingsError(`name modes (and defaultMode) or trustUserName, like ${example}`)
    return { trustUserName }
  }
  if (!Array.isArray(modes) || modes.length === 0) throw new InvalidSiteSettingsError(`modes must be a non-empty list of release modes (${TERMINAL_RELEASE_MODES.join(', ')})`)
  for (const m of modes) {
    if (!isReleaseMode(m)) throw new InvalidSiteSettingsError(`modes: ${JSON.stringify(m)} is not a release mode (${TERMINAL_RELEASE_MODES.join(', ')})`)
  }
  if (new Set(modes).size !== modes.length) throw new InvalidSiteSettingsError('modes: a release mode is named twice')
  const chosen = defaultMode ?? modes[0]
  if (!isReleaseMode(chosen)) throw new InvalidSiteSettingsError(`defaultMode: ${JSON.stringify(chosen)} is not a release mode (${TERMINAL_RELEASE_MODES.join(', ')})`)
  if (!modes.includes(chosen)) throw new InvalidSiteSettingsError(`defaultMode: ${chosen} is not one of the modes offered (${(modes as string[]).join(', ')})`)
  return {
    modes: { modes: TERMINAL_RELEASE_MODES.filter((m) => modes.includes(m)), defaultMode: chosen },
    ...(trustUserName !== undefined ? { trustUserName } : {})
  }
}

/** Writes the terminal settings given (already validated). */
export function setTerminalSettings (doc: Y.Doc, change: TerminalSettingsChange, now: number): void {
  const map = settingsMap(doc)
  if (change.modes !== undefined) {
    map.set('terminalModes', [...change.modes.modes])
    map.set('terminalDefaultMode', change.modes.defaultMode)
  }
  if (change.trustUserName !== undefined) map.set('terminalTrustUserName', change.trustUserName)
  map.set('updatedAt', now)
}

/** Checks roaming settings from an admin; returns them normalized (sorted, without duplicates or this site). */
export function validateRoaming (site: SiteId, input: unknown): RoamingSettings {
  if (typeof input !== 'object' || input === null) throw new InvalidSiteSettingsError('roaming settings must be an object with partners and mode')
  const { partners, mode } = input as { partners?: unknown, mode?: unknown }
  if (!Array.isArray(partners)) throw new InvalidSiteSettingsError('partners must be a list of site ids')
  if (partners.length > MAX_PARTNERS) throw new InvalidSiteSettingsError(`at most ${MAX_PARTNERS} partners`)
  for (const p of partners) {
    if (typeof p !== 'string' || !SITE_ID.test(p)) throw new InvalidSiteSettingsError(`not a site id: ${JSON.stringify(p)}`)
  }
  if (!ROAMING_MODES.includes(mode as RoamingMode)) throw new InvalidSiteSettingsError(`mode must be one of ${ROAMING_MODES.join(', ')}`)
  const unique = [...new Set(partners as SiteId[])].filter((p) => p !== site).sort()
  return { partners: unique, mode: mode as RoamingMode }
}

/** Writes the roaming settings (already validated). */
export function setRoaming (doc: Y.Doc, roaming: RoamingSettings, now: number): void {
  const map = settingsMap(doc)
  map.set('partners', [...roaming.partners])
  map.set('mode', roaming.mode)
  map.set('updatedAt', now)
}

/** Checks client settings from an admin (`{"otherUsers": true}`, `{"spooling": false}`, or both); what is left out stays as it is. */
export function validateClientSettings (input: unknown): Partial<ClientSettings> {
  const { otherUsers, spooling } = settingsChange(input, 'client settings', ['otherUsers', 'spooling'], '{"otherUsers": false, "spooling": true}')
  if (otherUsers === undefined && spooling === undefined) throw new InvalidSiteSettingsError('name otherUsers or spooling (true or false)')
  if (otherUsers !== undefined && typeof otherUsers !== 'boolean') throw new InvalidSiteSettingsError('otherUsers must be true or false')
  if (spooling !== undefined && typeof spooling !== 'boolean') throw new InvalidSiteSettingsError('spooling must be true or false')
  return { ...(otherUsers === undefined ? {} : { otherUsers }), ...(spooling === undefined ? {} : { spooling }) }
}

/** Writes the client settings given (already validated). */
export function setClientSettings (doc: Y.Doc, clients: Partial<ClientSettings>, now: number): void {
  const map = settingsMap(doc)
  if (clients.otherUsers !== undefined) map.set('clientOtherUsers', clients.otherUsers)
  if (clients.spooling !== undefined) map.set('clientSpooling', clients.spooling)
  map.set('updatedAt', now)
}

/** Writes the host name when it changed (a site announces it at start). */
export function setHostname (doc: Y.Doc, hostname: string, now: number): void {
  if (hostname.length === 0 || hostname.length > MAX_HOSTNAME_CHARS) throw new InvalidSiteSettingsError(`host name must be 1-${MAX_HOSTNAME_CHARS} characters`)
  const map = settingsMap(doc)
  if (map.get('hostname') === hostname) return
  map.set('hostname', hostname)
  map.set('updatedAt', now)
}

/** Whether jobs may roam between two sites: each names the other as a partner. */
export function roamsWith (a: SiteSettings, b: SiteSettings): boolean {
  return a.site !== b.site && a.roaming.partners.includes(b.site) && b.roaming.partners.includes(a.site)
}

// ---- printers managed at run time (issue 16 item 4) ----

/** A printer an admin added or edited at run time; the site's `--printer` flags are its start-up set. */
export interface SitePrinter {
  name: string
  /** `ipp://` or `ipps://`: printers an admin adds from the console are network printers. */
  uri: string
  description: string
  updatedAt: number
}

/** The site's printers as its document says: added or edited ones, and the names removed (start-up printers too). */
export interface SitePrinters {
  printers: SitePrinter[]
  removed: string[]
}

/** Printer names as queues and accounting show them: a letter or digit first, no spaces or slashes. */
export const PRINTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** A description is a line on a page, not a document. */
export const MAX_PRINTER_DESCRIPTION_CHARS = 200
/** Longest URI kept: a printer's address, not a payload. */
const MAX_PRINTER_URI_CHARS = 1024
/** Schemes an admin may add: network printers only (a `file:` device writes into the site's own folders). */
const PRINTER_SCHEMES = ['ipp:', 'ipps:']

/** A printer entry as stored: a printer, or the mark that it was removed. */
type StoredPrinter = SitePrinter | { name: string, removed: true, updatedAt: number }

const printersMap = (doc: Y.Doc): Y.Map<StoredPrinter> => doc.getMap<StoredPrinter>('printers')

/** The printers in a site's document (what was never written: none). */
export function readSitePrinters (doc: Y.Doc | undefined): SitePrinters {
  const printers: SitePrinter[] = []
  const removed: string[] = []
  if (doc === undefined) return { printers, removed }
  for (const [name, p] of printersMap(doc)) {
    if (typeof p !== 'object' || p === null || p.name !== name) continue
    if ('removed' in p) removed.push(name)
    else if (typeof p.uri === 'string') printers.push({ name, uri: p.uri, description: typeof p.description === 'string' ? p.description : '', updatedAt: typeof p.updatedAt === 'number' ? p.updatedAt : 0 })
  }
  return { printers: printers.sort((a, b) => a.name.localeCompare(b.name)), removed: removed.sort() }
}

/** A printer's fields from an admin: for a new printer all of name and uri (description optional), for an edit any of uri and description. */
export interface PrinterFields { name?: string, uri?: string, description?: string }

/** Checks a printer name; @throws InvalidSiteSettingsError naming the field */
export function validatePrinterName (name: unknown): string {
  if (typeof name !== 'string' || !PRINTER_NAME.test(name)) throw new InvalidSiteSettingsError(`name must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit, not ${JSON.stringify(name)}`)
  return name
}

/**
 * Checks a printer from an admin: `{"name": "lobby", "uri": "ipp://10.0.0.5/ipp/print", "description": "Lobby"}`
 * (`edit`: name comes from the path, and at least one of uri and description).
 */
export function validatePrinter (input: unknown, edit: boolean): PrinterFields {
  const known = edit ? ['uri', 'description'] : ['name', 'uri', 'description']
  const { name, uri, description } = settingsChange(input, 'printer fields', known, '{"name": "lobby", "uri": "ipp://printer.example/ipp/print", "description": "Lobby, ground floor"}')
  const out: PrinterFields = {}
  if (!edit) out.name = validatePrinterName(name)
  if (uri !== undefined || !edit) {
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_PRINTER_URI_CHARS) throw new InvalidSiteSettingsError('uri must be the printer\'s ipp:// or ipps:// address')
    let url: URL
    try {
      url = new URL(uri)
    } catch {
      throw new InvalidSiteSettingsError(`uri: not a URI: ${JSON.stringify(uri)}`)
    }
    if (!PRINTER_SCHEMES.includes(url.protocol)) throw new InvalidSiteSettingsError(`uri must start with ipp:// or ipps://, not ${url.protocol}`)
    if (url.hostname === '') throw new InvalidSiteSettingsError('uri must name the printer\'s host')
    out.uri = uri
  }
  if (description !== undefined) {
    if (typeof description !== 'string' || description.length > MAX_PRINTER_DESCRIPTION_CHARS || /[\u0000-\u001f\u007f]/.test(description)) throw new InvalidSiteSettingsError(`description must be text of at most ${MAX_PRINTER_DESCRIPTION_CHARS} characters on one line`)
    out.description = description.trim()
  }
  if (edit && out.uri === undefined && out.description === undefined) throw new InvalidSiteSettingsError('name uri or description to change')
  return out
}

/** Writes a printer (already validated). */
export function putSitePrinter (doc: Y.Doc, printer: Omit<SitePrinter, 'updatedAt'>, now: number): void {
  printersMap(doc).set(printer.name, { name: printer.name, uri: printer.uri, description: printer.description, updatedAt: now })
  settingsMap(doc).set('updatedAt', now)
}

/** Marks a printer removed (a start-up printer stays removed over restarts until added again). */
export function removeSitePrinter (doc: Y.Doc, name: string, now: number): void {
  printersMap(doc).set(name, { name, removed: true, updatedAt: now })
  settingsMap(doc).set('updatedAt', now)
}

/** What the site last saw of a printer (IPP Get-Printer-Attributes), published for every admin console of the mesh. */
export interface PrinterStatus {
  name: string
  uri: string
  description: string
  /** `idle`, `processing`, `stopped`, or `unreachable`. */
  state: string
  message: string
  reasons: string[]
  markers: Array<{ name: string, level: number, color?: string, type?: string }>
  /** When it was found so (written only when something changed). */
  at: number
}

const statusMap = (doc: Y.Doc): Y.Map<PrinterStatus> => doc.getMap<PrinterStatus>('printerStatus')

/** The printers' last published status, by name. */
export function readPrinterStatus (doc: Y.Doc | undefined): Map<string, PrinterStatus> {
  const out = new Map<string, PrinterStatus>()
  if (doc === undefined) return out
  for (const [name, s] of statusMap(doc)) if (typeof s === 'object' && s !== null && s.name === name && typeof s.state === 'string') out.set(name, s)
  return out
}

/** Whether two statuses say the same (the time aside): only a change is written. */
function sameStatus (a: PrinterStatus | undefined, b: PrinterStatus): boolean {
  return a !== undefined && a.uri === b.uri && a.description === b.description && a.state === b.state && a.message === b.message && JSON.stringify(a.reasons) === JSON.stringify(b.reasons) && JSON.stringify(a.markers) === JSON.stringify(b.markers)
}

/** Writes the statuses that changed and drops those of printers no longer here; returns whether anything was written. */
export function publishPrinterStatus (doc: Y.Doc, statuses: PrinterStatus[]): boolean {
  const map = statusMap(doc)
  let changed = false
  const names = new Set(statuses.map((s) => s.name))
  for (const name of [...map.keys()]) if (!names.has(name)) { map.delete(name); changed = true }
  for (const s of statuses) {
    if (sameStatus(map.get(s.name), s)) continue
    map.set(s.name, JSON.parse(JSON.stringify(s)) as PrinterStatus)
    changed = true
  }
  return changed
}

/** How an admin action (crdt/admin-actions.ts) ended at the site it named. */
export interface ActionOutcome {
  id: string
  status: 'applied' | 'refused'
  /** Why it was refused. */
  reason?: string
  /** The node that asked (the action's author). */
  by: string
  at: number
}

const outcomesMap = (doc: Y.Doc): Y.Map<ActionOutcome> => doc.getMap<ActionOutcome>('actionOutcomes')

/** The outcome of action `id` at this site, if it was applied or refused. */
export function actionOutcome (doc: Y.Doc | undefined, id: string): ActionOutcome | undefined {
  if (doc === undefined) return undefined
  const o = outcomesMap(doc).get(id)
  return typeof o === 'object' && o !== null && (o.status === 'applied' || o.status === 'refused') ? o : undefined
}

/** Every outcome the site recorded, newest first. */
export function listActionOutcomes (doc: Y.Doc | undefined): ActionOutcome[] {
  if (doc === undefined) return []
  return [...outcomesMap(doc).values()].filter((o) => typeof o === 'object' && o !== null && typeof o.id === 'string').sort((a, b) => b.at - a.at)
}

/** Records an action's outcome (once: a recorded one is kept). */
export function recordActionOutcome (doc: Y.Doc, outcome: ActionOutcome): void {
  const map = outcomesMap(doc)
  if (map.has(outcome.id)) return
  map.set(outcome.id, { ...outcome })
}

/** The site's print queues and how long they keep jobs, as it started with them: shown in every console. */
export interface SiteQueues {
  queues: Array<{ name: string, hold: boolean }>
  /** A held job is released or expires within this (the start-up flag; an admin's `times` overrides it). */
  holdMs: number
  /** Finished jobs are kept this long (the start-up flag; an admin's `times` overrides it). */
  retentionMs: number
}

/** The queues a site announced at its last start; undefined before it announced any. */
export function readSiteQueues (doc: Y.Doc | undefined): SiteQueues | undefined {
  if (doc === undefined) return undefined
  const map = settingsMap(doc)
  const queues = map.get('queues')
  const holdMs = map.get('holdMs')
  const retentionMs = map.get('retentionMs')
  if (!Array.isArray(queues) || typeof holdMs !== 'number' || typeof retentionMs !== 'number') return undefined
  return { queues: queues.filter((q): q is { name: string, hold: boolean } => typeof q === 'object' && q !== null && typeof q.name === 'string' && typeof q.hold === 'boolean'), holdMs, retentionMs }
}

/** Writes the queues a site starts with, when they changed (a site announces them at start, as its host name). */
export function announceSiteQueues (doc: Y.Doc, facts: SiteQueues, now: number): void {
  if (JSON.stringify(readSiteQueues(doc)) === JSON.stringify(facts)) return
  const map = settingsMap(doc)
  map.set('queues', facts.queues.map((q) => ({ name: q.name, hold: q.hold })))
  map.set('holdMs', facts.holdMs)
  map.set('retentionMs', facts.retentionMs)
  map.set('updatedAt', now)
}

/** Whether one of the site's terminals is connected to its site, as the site last saw it: for consoles elsewhere. */
export interface TerminalLink {
  peer: string
  up: boolean
  /** Since when (the site's clock). */
  since: number
}

const terminalLinksMap = (doc: Y.Doc): Y.Map<TerminalLink> => doc.getMap<TerminalLink>('terminalLinks')

/** The site's terminals as it last published them. */
export function readTerminalLinks (doc: Y.Doc | undefined): TerminalLink[] {
  if (doc === undefined) return []
  return [...terminalLinksMap(doc).values()].filter((t) => typeof t === 'object' && t !== null && typeof t.peer === 'string' && typeof t.up === 'boolean').sort((a, b) => a.peer.localeCompare(b.peer))
}

/** Writes the terminals whose link changed (up or down) and drops those no longer the site's. */
export function publishTerminalLinks (doc: Y.Doc, links: Array<{ peer: string, up: boolean }>, now: number): void {
  const map = terminalLinksMap(doc)
  const peers = new Set(links.map((l) => l.peer))
  for (const peer of [...map.keys()]) if (!peers.has(peer)) map.delete(peer)
  for (const l of links) if (map.get(l.peer)?.up !== l.up) map.set(l.peer, { peer: l.peer, up: l.up, since: now })
}
