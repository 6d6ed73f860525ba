/**
 * Central's LDAP synchronisation: reads people (and their groups) from an LDAP directory
 * with ldapts, in pages, and brings the mesh's directory document in line with them, every
 * `intervalMinutes` and on demand ("sync now", or a dry run that only says what would
 * change).
 *
 * One sync:
 *   1. binds (ldaps://, or StartTLS on ldap:// when configured) and reads every entry of
 *      `userFilter` under `baseDN` in pages of `pageSize`, then the groups;
 *   2. plans ({@link planSync}, pure): each entry becomes a user to add, a user to change
 *      (naming the fields), an unchanged one, or an error (bad username, duplicate username
 *      or card, a card another user holds, a username a user not from LDAP already has:
 *      never overwritten). An entry with an error is left out of this sync: a new user is
 *      not added, an existing one keeps their record. Users with `source: 'ldap'` that LDAP
 *      no longer lists are disabled, never deleted (their jobs and records stay); a user the
 *      sync disabled who comes back is enabled again (one an admin disabled stays disabled);
 *   3. applies the plan in one directory transaction (nothing is written on a dry run).
 * A failed sync (server down, bad bind, a timeout) writes nothing and is reported as failed.
 * If LDAP returns no users at all while the directory holds active LDAP users, the sync is
 * refused: an emptied base DN or a wrong filter must not disable everyone.
 *
 * What LDAP owns in a record it created: the full name, and the email, groups, home site
 * and card when they are mapped (only what is mapped is overwritten; unmapped fields are
 * left as an admin set them). PINs: LDAP holds none for us, so a user added by LDAP has no
 * PIN (`pinHash: ''`, which no PIN matches: such a user logs in with a card, or after an
 * admin or the user sets a PIN); a mapped `pin` attribute seeds the PIN of a user who has
 * none and is never applied over an existing one. Cards: the one mapped card per entry is
 * added beside cards an admin gave the user; when LDAP's card changes, only the card LDAP
 * gave before is replaced (the sync remembers its index in its state file).
 *
 * The last reports and the sync's state are kept in `<data>/ldap-sync.json` (they survive a
 * restart); `/metrics` reads the sync's tallies ({@link LdapSync.metrics}). The bind password is read from its file at each sync (so it can be rotated
 * without a restart) and never logged.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Client, type Entry } from 'ldapts'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import {
  cardCredential, cardIndex, hashPin, listUsers, normalizeCard, putUser, validateCard, validatePin, validateUsername,
  type CardCredential, type DirectoryUser
} from '../crdt/directory.ts'
import { KindedError } from '../crdt/errors.ts'
import type { Startable } from './compose.ts'
import { ldapConfigSummary, readBindPassword, readCa, type LdapConfig } from './ldap-config.ts'
import type { LdapSyncMetrics } from '../ui/metrics.ts'
import type { LdapStatus, LdapSyncApi, SyncChange, SyncEntryError, SyncPlan, SyncReport, SyncTrigger } from '../ui/ldap-api.ts'
import { assertUserCapacity } from './license-file.ts'

export type { LdapStatus, SyncChange, SyncEntryError, SyncPlan, SyncReport, SyncTrigger }

/** The reports kept (newest first): a day of hourly syncs and then some. */
export const KEPT_REPORTS = 30
/** Names listed per section of a kept report; the counts are always whole (a first sync of 10,000 users lists the first 200). */
export const LISTED_PER_SECTION = 200
/** The sync's reports and state, in the data folder. */
export const LDAP_STATE_FILE = 'ldap-sync.json'
/** The transaction origin's user for scheduled syncs. */
const SCHEDULER = 'ldap-sync'

/** A directory user as one LDAP entry gives it. */
export interface LdapUser {
  dn: string
  username?: string
  fullName?: string
  email?: string
  card?: string
  homeSite?: string
  pin?: string
  /** Group names, when groups are configured. */
  groups?: string[]
}

/** What the sync remembers between runs (beside its reports). */
export interface LdapSyncState {
  /** The keyed index of the card LDAP gave each user, so a changed LDAP card replaces only that one. */
  cards: Record<string, string>
  /** Users the sync disabled because LDAP stopped listing them: only these are enabled again when they come back. */
  disabledBySync: string[]
}

interface StateFile extends LdapSyncState { reports: SyncReport[] }

/** A sync could not run (LDAP unreachable, bind refused, timeout, a refused plan); nothing was written. */
export class LdapSyncError extends KindedError {
  readonly kind = 'unavailable'
  constructor (message: string) { super(message); this.name = 'LdapSyncError' }
}

// ---- reading LDAP ----

/** Attribute values of an entry by lower-case name, as strings (ldapts gives names as the server spells them). */
function valuesOf (entry: Entry): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const [name, value] of Object.entries(entry)) {
    if (name === 'dn') continue
    const list = Array.isArray(value) ? value : [value]
    out.set(name.toLowerCase(), list.map((v) => Buffer.isBuffer(v) ? v.toString('utf8') : String(v)))
  }
  return out
}

/** A DN in one comparable form: lower case, no spaces around separators. */
export function normalizeDN (dn: string): string {
  return dn.split(/(?<!\\),/).map((rdn) => rdn.trim().replace(/\s*=\s*/, '=')).join(',').toLowerCase()
}

/** The value of a DN's first RDN (`cn=Staff,ou=groups,…` → `Staff`): a group's name from memberOf. */
export function firstRdnValue (dn: string): string {
  const first = dn.split(/(?<!\\),/)[0] ?? ''
  const eq = first.indexOf('=')
  return first.slice(eq + 1).trim().replace(/\\(.)/g, '$1')
}

/**
 * An ldapts error in words: its result-code errors carry only `Code: 0x31` as message, so
 * their class names it (`InvalidCredentialsError` → `invalid credentials (LDAP result 49)`).
 */
export function describeLdapError (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  if (typeof code === 'number' && err.name.endsWith('Error') && err.name !== 'Error') {
    const words = err.name.slice(0, -'Error'.length).replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()
    return `${words} (LDAP result ${code})`
  }
  return err.message
}

/**
 * Reads the configured users (and groups) from LDAP. `onClient` receives the client so a
 * stopping node can cut a sync short. @throws LdapSyncError
 */
export async function readLdap (config: LdapConfig, password: string, ca: string | undefined, onClient?: (c: Client | undefined) => void): Promise<LdapUser[]> {
  const timeout = config.timeoutSeconds * 1000
  const tlsOptions = ca !== undefined ? { ca } : {}
  // ldapts: tlsOptions given to the constructor make even an ldap:// connection start with a TLS
  // handshake (ldapts/ldapts#161), so they go there only for ldaps://, and to startTLS() otherwise
  const ldaps = /^ldaps:/i.test(config.url)
  const client = new Client({ url: config.url, timeout, connectTimeout: timeout, ...(ldaps ? { tlsOptions } : {}) })
  onClient?.(client)
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      throw new LdapSyncError(`${what} at ${config.url}: ${describeLdapError(err)}`)
    }
  }
  try {
    if (config.startTls) await step('StartTLS failed', async () => { await client.startTLS(tlsOptions) })
    await step(`cannot bind as ${config.bindDN}`, async () => { await client.bind(config.bindDN, password) })
    const map = config.attributes
    const wanted = [map.username, map.fullName, map.email, map.card, map.homeSite, map.pin, config.groups.from === 'memberOf' ? config.groups.attribute : undefined]
      .filter((a): a is string => a !== undefined)
    const users: LdapUser[] = []
    const first = (values: Map<string, string[]>, attr: string | undefined): string | undefined => attr === undefined ? undefined : values.get(attr.toLowerCase())?.[0]
    await step(`user search under ${config.baseDN} failed`, async () => {
      for await (const page of client.searchPaginated(config.baseDN, { scope: 'sub', filter: config.userFilter, attributes: wanted, paged: { pageSize: config.pageSize } })) {
        for (const entry of page.searchEntries) {
          const v = valuesOf(entry)
          const user: LdapUser = { dn: entry.dn }
          for (const field of ['username', 'fullName', 'email', 'card', 'homeSite', 'pin'] as const) {
            const value = first(v, map[field])?.trim()
            if (value !== undefined && value !== '') user[field] = value
          }
          if (config.groups.from === 'memberOf') user.groups = (v.get(config.groups.attribute.toLowerCase()) ?? []).map(firstRdnValue).filter((g) => g !== '')
          users.push(user)
        }
      }
    })
    const groups = config.groups
    if (groups.from === 'entries') {
      const byMember = new Map<string, string[]>()
      await step(`group search under ${groups.baseDN} failed`, async () => {
        for await (const page of client.searchPaginated(groups.baseDN, { scope: 'sub', filter: groups.filter, attributes: [groups.nameAttribute, groups.memberAttribute], paged: { pageSize: config.pageSize } })) {
          for (const entry of page.searchEntries) {
            const v = valuesOf(entry)
            const name = v.get(groups.nameAttribute.toLowerCase())?.[0] ?? firstRdnValue(entry.dn)
            for (const member of v.get(groups.memberAttribute.toLowerCase()) ?? []) {
              const key = member.includes('=') ? normalizeDN(member) : member.toLowerCase()
              byMember.set(key, [...(byMember.get(key) ?? []), name])
            }
          }
        }
      })
      for (const user of users) {
        user.groups = [...byMember.get(normalizeDN(user.dn)) ?? [], ...(user.username !== undefined ? byMember.get(user.username.toLowerCase()) ?? [] : [])]
      }
    }
    for (const user of users) if (user.groups !== undefined) user.groups = [...new Set(user.groups)].sort()
    return users
  } finally {
    onClient?.(undefined)
    await client.unbind().catch(() => {}) // the connection may be gone already (server down): nothing is left to close
  }
}

// ---- planning ----

/** One record to write, with the secrets still to hash. */
interface Write {
  user: DirectoryUser
  /** A card number to add as a credential (hashed before the transaction). */
  newCard?: string
  /** A PIN to seed (hashed before the transaction). */
  seedPin?: string
}

/** A plan and what applying it writes. */
export interface PlannedSync {
  plan: SyncPlan
  writes: Write[]
  state: LdapSyncState
}

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean => JSON.stringify(a ?? []) === JSON.stringify(b ?? [])

/**
 * Compares LDAP's users with the directory's (pure: no I/O, no slow hashes). `cardKey`
 * indexes cards; `state` is what the previous syncs remembered.
 */
export function planSync (config: LdapConfig, directory: readonly DirectoryUser[], entries: readonly LdapUser[], cardKey: Uint8Array, state: LdapSyncState, now: number): PlannedSync {
  const map = config.attributes
  const groupsMapped = config.groups.from !== 'none'
  const byName = new Map(directory.map((u) => [u.username, u]))
  const plan: SyncPlan = { entries: entries.length, added: [], changed: [], disabled: [], unchanged: 0, errors: [] }
  const writes: Write[] = []
  const ldapCards: Record<string, string> = { ...state.cards }
  const disabledBySync = new Set(state.disabledBySync)
  const seen = new Set<string>()
  const fail = (entry: LdapUser, message: string): void => { plan.errors.push({ entry: entry.dn, ...(entry.username !== undefined ? { username: entry.username } : {}), message }) }

  // pass 1: each entry's username and card, checked on their own and against each other
  interface Candidate { entry: LdapUser, username: string, card?: string, index?: string }
  const candidates: Candidate[] = []
  const cardsInLdap = new Map<string, string>()
  for (const entry of entries) {
    const username = entry.username
    if (username === undefined) { fail(entry, `no ${map.username} attribute (the username)`); continue }
    try {
      validateUsername(username)
    } catch (err) {
      fail(entry, (err as Error).message)
      continue
    }
    if (seen.has(username)) { fail(entry, `username ${username} is given by another LDAP entry too; this one is left out`); continue }
    seen.add(username)
    const candidate: Candidate = { entry, username }
    if (map.card !== undefined && entry.card !== undefined) {
      const card = normalizeCard(entry.card)
      try {
        validateCard(card)
      } catch (err) {
        fail(entry, `${map.card}: ${(err as Error).message}`)
        continue
      }
      const holder = cardsInLdap.get(card)
      if (holder !== undefined) { fail(entry, `${map.card}: the same card number as ${holder}`); continue }
      cardsInLdap.set(card, username)
      candidate.card = card
      candidate.index = cardIndex(card, cardKey)
    }
    if (map.pin !== undefined && entry.pin !== undefined) {
      try {
        validatePin(entry.pin)
      } catch (err) {
        fail(entry, `${map.pin}: ${(err as Error).message}`)
        continue
      }
    }
    candidates.push(candidate)
  }

  // who holds each card now, less the LDAP cards this sync takes away or moves
  const ldapIndexOf = new Map(candidates.map((c) => [c.username, c.index]))
  const holders = new Map<string, string>()
  for (const u of directory) {
    for (const c of u.cards ?? []) {
      const fromLdap = state.cards[u.username] === c.index
      if (fromLdap && (map.card === undefined || ldapIndexOf.get(u.username) !== c.index)) continue
      holders.set(c.index, u.username)
    }
  }

  // pass 2: each entry against the directory
  for (const { entry, username, card, index } of candidates) {
    const existing = byName.get(username)
    if (existing !== undefined && existing.source !== 'ldap') {
      fail(entry, `username ${username} belongs to a user not from LDAP (${existing.source ?? 'no source'}): left as it is`)
      continue
    }
    if (index !== undefined) {
      const holder = holders.get(index)
      if (holder !== undefined && holder !== username) { fail(entry, `${map.card}: this card already belongs to ${holder}`); continue }
    }
    const fullName = entry.fullName ?? username
    const wanted: Partial<DirectoryUser> = { fullName }
    if (map.email !== undefined) wanted.email = entry.email
    if (map.homeSite !== undefined) wanted.homeSite = entry.homeSite
    if (groupsMapped) wanted.groups = entry.groups ?? []
    if (existing === undefined) {
      const user: DirectoryUser = { username, fullName, pinHash: '', source: 'ldap', updatedAt: now }
      if (wanted.email !== undefined) user.email = wanted.email
      if (wanted.homeSite !== undefined) user.homeSite = wanted.homeSite
      if (groupsMapped) user.groups = wanted.groups
      plan.added.push(username)
      writes.push({ user, ...(card !== undefined ? { newCard: card } : {}), ...(entry.pin !== undefined ? { seedPin: entry.pin } : {}) })
      if (index !== undefined) ldapCards[username] = index
      else delete ldapCards[username]
      continue
    }
    const fields: string[] = []
    const user: DirectoryUser = { ...existing }
    if (existing.fullName !== fullName) { fields.push('fullName'); user.fullName = fullName }
    for (const field of ['email', 'homeSite'] as const) {
      if (map[field] === undefined || existing[field] === wanted[field]) continue
      fields.push(field)
      if (wanted[field] === undefined) delete user[field]
      else user[field] = wanted[field]
    }
    if (groupsMapped && !sameList(existing.groups, wanted.groups)) { fields.push('groups'); user.groups = wanted.groups }
    let newCard: string | undefined
    if (map.card !== undefined) {
      const before = state.cards[username]
      const cards = existing.cards ?? []
      if (before !== index || (index !== undefined && !cards.some((c) => c.index === index))) {
        const kept: CardCredential[] = cards.filter((c) => c.index !== before || c.index === index)
        if (index !== undefined && !kept.some((c) => c.index === index)) newCard = card
        if (kept.length > 0 || newCard !== undefined) user.cards = kept
        else delete user.cards
        fields.push('card')
        if (index !== undefined) ldapCards[username] = index
        else delete ldapCards[username]
      }
    }
    let seedPin: string | undefined
    if (entry.pin !== undefined && existing.pinHash === '') { seedPin = entry.pin; fields.push('pin') }
    if (existing.disabled === true && disabledBySync.has(username)) {
      fields.push('enabled')
      delete user.disabled
      disabledBySync.delete(username)
    }
    if (fields.length === 0) { plan.unchanged++; continue }
    user.updatedAt = now
    plan.changed.push({ username, fields })
    writes.push({ user, ...(newCard !== undefined ? { newCard } : {}), ...(seedPin !== undefined ? { seedPin } : {}) })
  }

  // LDAP users LDAP no longer lists: disabled, never deleted
  for (const u of directory) {
    if (u.source !== 'ldap' || seen.has(u.username) || u.disabled === true) continue
    plan.disabled.push(u.username)
    writes.push({ user: { ...u, disabled: true, updatedAt: now } })
    disabledBySync.add(u.username)
  }
  return { plan, writes, state: { cards: ldapCards, disabledBySync: [...disabledBySync] } }
}

// ---- the service ----

export interface LdapSyncInit {
  config: LdapConfig
  store: DocStore
  /** The data folder: the reports and state live in {@link LDAP_STATE_FILE} there. */
  dataDir: string
  cardKey: Uint8Array
  logger: Logger
  now?: () => number
}

const cap = <T>(list: readonly T[]): T[] => list.slice(0, LISTED_PER_SECTION)

/**
 * The scheduler and "sync now": one sync at a time (a request during a sync waits for it
 * and then runs its own), the first one right after start, then `intervalMinutes` after
 * each one ends.
 */
export class LdapSync implements Startable, LdapSyncApi {
  private readonly init: LdapSyncInit
  private readonly log: Logger
  private readonly now: () => number
  private readonly file: string
  private state: LdapSyncState = { cards: {}, disabledBySync: [] }
  private reports: SyncReport[] = []
  private timer: NodeJS.Timeout | undefined
  private nextRunAt: number | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private running = false
  private stopped = true
  private client: Client | undefined
  private readonly tallies: LdapSyncMetrics = { syncs: { ok: 0, failed: 0 } }

  constructor (init: LdapSyncInit) {
    this.init = init
    this.log = init.logger.child({ component: 'ldap-sync' })
    this.now = init.now ?? Date.now
    this.file = join(init.dataDir, LDAP_STATE_FILE)
  }

  async start (): Promise<void> {
    await this.load()
    this.stopped = false
    this.log.info({ config: ldapConfigSummary(this.init.config) }, 'LDAP sync scheduled')
    this.schedule(0)
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.nextRunAt = undefined
    await this.client?.unbind().catch(() => {}) // cuts a sync in progress short: it fails and writes nothing
    await this.queue.catch(() => {})
  }

  /** The tallies `/metrics` reads (ui/metrics.ts). */
  metrics (): LdapSyncMetrics {
    return { ...this.tallies, syncs: { ...this.tallies.syncs } }
  }

  status (): LdapStatus {
    return {
      configured: true,
      config: ldapConfigSummary(this.init.config),
      running: this.running,
      ...(this.nextRunAt !== undefined ? { nextRunAt: this.nextRunAt } : {}),
      reports: [...this.reports]
    }
  }

  /** Runs a sync now (after one in progress); a dry run only plans. Resolves the report, failed or not. */
  async sync (options: { dryRun?: boolean, trigger?: SyncTrigger, by?: string } = {}): Promise<SyncReport> {
    const run = this.queue.then(async () => await this.runOnce(options.dryRun === true, options.trigger ?? 'manual', options.by ?? SCHEDULER))
    this.queue = run.catch(() => {})
    return await run
  }

  private schedule (delayMs: number): void {
    if (this.stopped) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.nextRunAt = this.now() + delayMs
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.nextRunAt = undefined
      void this.sync({ trigger: 'schedule' })
        .catch((err: unknown) => { this.log.error({ err }, 'LDAP sync could not keep its report') })
        .finally(() => { this.schedule(this.init.config.intervalMinutes * 60_000) })
    }, delayMs)
  }

  private async runOnce (dryRun: boolean, trigger: SyncTrigger, by: string): Promise<SyncReport> {
    const startedAt = this.now()
    this.running = true
    const { config, store, cardKey } = this.init
    let report: SyncReport
    try {
      const password = await readBindPassword(config)
      const ca = await readCa(config)
      this.log.info({ trigger, dryRun, by, url: config.url }, 'LDAP sync started')
      const entries = await readLdap(config, password, ca, (c) => { this.client = c })
      if (this.stopped && trigger === 'schedule') throw new LdapSyncError('central is stopping')
      const directory = listUsers(await store.open(directoryDoc()))
      const planned = planSync(config, directory, entries, cardKey, this.state, startedAt)
      const activeLdap = directory.filter((u) => u.source === 'ldap' && u.disabled !== true).length
      if (entries.length === 0 && activeLdap > 0) {
        throw new LdapSyncError(`LDAP returned no users under ${config.baseDN} for ${config.userFilter}: nothing disabled (${activeLdap} LDAP users are active; check baseDN and userFilter)`)
      }
      // users the sync makes active (added, or enabled again) count against the license's users limit, as an admin's do
      await assertUserCapacity(store, [...planned.plan.added, ...planned.plan.changed.filter((c) => c.fields.includes('enabled')).map((c) => c.username)])
      if (!dryRun && planned.writes.length > 0) {
        const records: DirectoryUser[] = []
        for (const w of planned.writes) {
          const user = { ...w.user }
          if (w.newCard !== undefined) user.cards = [...(user.cards ?? []), await cardCredential(w.newCard, cardKey)]
          if (w.seedPin !== undefined) user.pinHash = await hashPin(w.seedPin)
          records.push(user)
        }
        await store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => { for (const u of records) putUser(doc, u) })
      }
      if (!dryRun) this.state = planned.state
      report = this.report(planned.plan, { trigger, dryRun, by, startedAt, result: 'ok' })
      this.log.info({ trigger, dryRun, ...report.counts, ms: report.finishedAt - startedAt }, dryRun ? 'LDAP dry run finished' : 'LDAP sync finished')
      if (report.errors.length > 0) this.log.warn({ errors: report.errors.slice(0, 10), count: report.counts.errors }, 'LDAP entries left out of the sync')
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      report = this.report({ entries: 0, added: [], changed: [], disabled: [], unchanged: 0, errors: [] }, { trigger, dryRun, by, startedAt, result: 'failed', error: message })
      this.log.error({ trigger, dryRun, error: message }, 'LDAP sync failed: nothing was changed')
    } finally {
      this.running = false
    }
    if (!dryRun) {
      this.reports = [report, ...this.reports].slice(0, KEPT_REPORTS)
      this.tallies.syncs[report.result]++
      if (report.result === 'ok') {
        this.tallies.lastSuccessAt = report.finishedAt
        this.tallies.lastCounts = { ...report.counts }
      }
      await this.save()
    }
    return report
  }

  private report (plan: SyncPlan, meta: Pick<SyncReport, 'trigger' | 'dryRun' | 'by' | 'startedAt' | 'result' | 'error'>): SyncReport {
    const counts = { added: plan.added.length, changed: plan.changed.length, disabled: plan.disabled.length, unchanged: plan.unchanged, errors: plan.errors.length }
    const truncated = [counts.added, counts.changed, counts.disabled, counts.errors].some((n) => n > LISTED_PER_SECTION)
    return {
      ...meta,
      ...(meta.error === undefined ? {} : { error: meta.error }),
      finishedAt: this.now(),
      entries: plan.entries,
      added: cap(plan.added),
      changed: cap(plan.changed),
      disabled: cap(plan.disabled),
      unchanged: plan.unchanged,
      errors: cap(plan.errors),
      counts,
      truncated
    }
  }

  private async load (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // first start: no reports yet
      throw err
    }
    const saved = JSON.parse(text) as Partial<StateFile>
    this.reports = Array.isArray(saved.reports) ? saved.reports : []
    this.state = { cards: saved.cards ?? {}, disabledBySync: saved.disabledBySync ?? [] }
  }

  private async save (): Promise<void> {
    const tmp = `${this.file}.tmp`
    await writeFile(tmp, JSON.stringify({ ...this.state, reports: this.reports } satisfies StateFile))
    await rename(tmp, this.file)
  }
}
