/**
 * What the HTTP layer may ask of central's LDAP synchronisation (ui/routes/ldap.ts), and the
 * shapes it answers with. Implemented by node/ldap-sync.ts. No bind password, nor where it
 * is kept, ever appears here.
 */

/** A user a sync changed (or would change), with the fields: fullName, email, homeSite, groups, card, pin, enabled. */
export interface SyncChange { username: string, fields: string[] }

/** An LDAP entry left out of a sync, and why (bad username, duplicate, card held by another, a user not from LDAP). */
export interface SyncEntryError { entry: string, username?: string, message: string }

/** What a sync did (or, on a dry run, would do). */
export interface SyncPlan {
  /** LDAP entries read. */
  entries: number
  added: string[]
  changed: SyncChange[]
  disabled: string[]
  unchanged: number
  errors: SyncEntryError[]
}

export type SyncTrigger = 'schedule' | 'manual'

/** One sync as kept and shown: the plan's sections (lists capped, node/ldap-sync.ts `LISTED_PER_SECTION`) with their whole counts. */
export interface SyncReport extends SyncPlan {
  trigger: SyncTrigger
  dryRun: boolean
  /** Who asked (an admin) or `ldap-sync` for the schedule. */
  by: string
  startedAt: number
  finishedAt: number
  result: 'ok' | 'failed'
  /** Why the sync failed (nothing was written). */
  error?: string
  counts: { added: number, changed: number, disabled: number, unchanged: number, errors: number }
  /** Whether a list was cut short. */
  truncated: boolean
}

/** The settings as shown: node/ldap-config.ts `LdapConfig` without `bindPasswordFile`. */
export interface LdapSettingsView {
  url: string
  startTls: boolean
  caFile?: string
  bindDN: string
  baseDN: string
  userFilter: string
  attributes: Partial<Record<'username' | 'fullName' | 'email' | 'card' | 'homeSite' | 'pin', string>>
  groups: { from: string } & Record<string, string>
  pageSize: number
  intervalMinutes: number
  timeoutSeconds: number
}

/** What `GET /api/ldap/status` shows. */
export interface LdapStatus {
  configured: true
  config: LdapSettingsView
  running: boolean
  /** When the next scheduled sync starts (ms since the epoch), while the scheduler runs. */
  nextRunAt?: number
  /** Newest first. */
  reports: SyncReport[]
}

/** Central's LDAP sync as the routes use it. */
export interface LdapSyncApi {
  status (): LdapStatus
  /** Syncs now (after one in progress); a dry run only plans. Resolves the report, failed or not. */
  sync (options: { dryRun?: boolean, trigger?: SyncTrigger, by?: string }): Promise<SyncReport>
}
