/**
 * The site's implementation of {@link SiteApi}: what the HTTP layer may ask of a site,
 * composed from the job service, the directory and the accounting documents.
 */
import { InvalidRequestError } from '../crdt/errors.ts'
import { timingSafeEqual, createHash } from 'node:crypto'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc, parseDocName } from '../crdt/names.ts'
import { listUsers } from '../crdt/directory.ts'
import { listUsage, totalUsageBy, uniqueUsage, type UsageRecord } from '../crdt/accounting.ts'
import { listJobs as listJobRecords } from '../crdt/jobs.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import { InvalidSiteSettingsError, type SiteTimes } from '../crdt/site-config.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { Actor, JobView } from '../devices/jobs/types.ts'
import { type RoamingView, type SiteApi, type SiteInfo, type PrinterView, type UsageQuery, type UsageTotal, type UsageRecordView, type UserView } from '../ui/api.ts'
import { importUsersCsv, checkPin } from './users.ts'
import type { Delegation } from '../devices/jobs/types.ts'

/** A printer that does not answer its probe within this is shown as unreachable. */
const PROBE_TIMEOUT_MS = 2000

/** How a printer is shown (web page, panel): what its probe says, `unreachable` when it does not answer or fails. */
export async function probePrinter (name: string, device: OutputDevice): Promise<PrinterView> {
  try {
    const probe = await device.probe(AbortSignal.timeout(PROBE_TIMEOUT_MS))
    return {
      name,
      uri: device.uri,
      state: probe.state === 'stopped' ? 'stopped' : probe.ok ? probe.state ?? 'idle' : 'unreachable',
      message: probe.message,
      ...(probe.reasons !== undefined ? { reasons: probe.reasons } : {}),
      ...(probe.markers !== undefined ? { markers: probe.markers } : {}),
      probedAt: Date.now()
    }
  } catch (err) {
    return { name, uri: device.uri, state: 'unreachable', message: (err as Error).message }
  }
}

export interface SiteApiComponents {
  info: SiteInfo
  /** This peer's id: its accounting documents are `v1/acct/<peer>/…`. */
  peer: string
  adminToken: string
  store: DocStore
  jobs: JobService
  roaming: RoamingService
  printers: ReadonlyMap<string, OutputDevice>
  /** Whether this site writes the directory itself (standalone) rather than central. */
  directoryAuthority: () => boolean
  /** Key of the directory's card index (cards in imported users). */
  cardKey: Uint8Array
  /** Whose jobs a user may release as their delegate (the directory); without it, only their own. */
  delegation?: Delegation
}

const HOUR_MS = 3600_000

/** The times a site applies now, in hours, with which an admin set and the start-up flags' values. */
function timesView (now: { holdMs: number, retentionMs: number, startUp: { holdMs: number, retentionMs: number } }, set: Partial<SiteTimes>): RoamingView['times'] {
  return {
    holdHours: now.holdMs / HOUR_MS,
    retentionHours: now.retentionMs / HOUR_MS,
    set: (['holdHours', 'retentionHours'] as const).filter((k) => set[k] !== undefined),
    startUp: { holdHours: now.startUp.holdMs / HOUR_MS, retentionHours: now.startUp.retentionMs / HOUR_MS }
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

export function createSiteApi (c: SiteApiComponents): SiteApi {
  const adminDigest = digest(c.adminToken)

  const records = (q: UsageQuery): UsageRecord[] => {
    const out: UsageRecord[] = []
    for (const name of c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'acct') continue
      const doc = c.store.get(name)
      if (doc === undefined) continue
      for (const r of listUsage(doc)) {
        if (q.from !== undefined && r.time < q.from) continue
        if (q.to !== undefined && r.time >= q.to) continue
        if (q.user !== undefined && r.user !== q.user) continue
        out.push(r)
      }
    }
    return uniqueUsage(out).sort((a, b) => a.time - b.time || a.id.localeCompare(b.id))
  }

  /** Every job other peers hold, as replicated here (admins' overview). */
  const replicatedJobs = (): JobView[] => {
    const out: JobView[] = []
    for (const name of c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === c.peer || parsed.peer === undefined) continue
      const doc = c.store.get(name)
      if (doc !== undefined) for (const job of listJobRecords(doc)) out.push(c.roaming.view(parsed.peer, job))
    }
    return out
  }

  const roamingView = (): RoamingView => {
    const own = c.roaming.settings()
    return {
      site: own.site,
      hostname: own.hostname,
      mode: own.roaming.mode,
      partners: own.roaming.partners.map((site) => {
        const theirs = c.roaming.settingsOf(site)
        return { site, ...(theirs.updatedAt > 0 ? { hostname: theirs.hostname } : {}), mutual: c.roaming.roamsWith(site) }
      }),
      clients: own.clients,
      terminals: own.terminals === undefined
        ? { configured: false, trustUserName: own.terminalsTrustUserName }
        : { configured: true, ...own.terminals, trustUserName: own.terminalsTrustUserName },
      policy: own.policy,
      times: timesView(c.jobs.times(), own.times)
    }
  }

  /** Applies an admin's change of the site's settings; bad input is the client's error (400), with the rule it broke. */
  const changeSettings = async (change: () => Promise<unknown>): Promise<RoamingView> => {
    try {
      await change()
    } catch (err) {
      if (err instanceof InvalidSiteSettingsError) throw new InvalidRequestError(err.message)
      throw err
    }
    return roamingView()
  }

  const newestFirst = (a: JobView, b: JobView): number => b.createdAt - a.createdAt

  return {
    info: () => c.info,

    async authenticateUser (username: string, pin: string): Promise<Actor | undefined> {
      return await checkPin(c.store, username, pin) ? { user: username, admin: false } : undefined
    },

    authenticateAdmin (token: string): Actor | undefined {
      return timingSafeEqual(digest(token), adminDigest) ? { user: 'admin', admin: true } : undefined
    },

    listJobs (actor: Actor, scope: 'mine' | 'all') {
      if (scope === 'all' && !actor.admin) throw new InvalidRequestError('only admins may list all jobs')
      if (scope === 'all') return { jobs: [...c.jobs.listJobs({ which: 'all' }), ...replicatedJobs()].sort(newestFirst), remote: [] }
      // the user's own jobs, and those of users who named them a delegate (jobs of queues that allow it)
      const owners = [actor.user, ...(c.delegation?.delegatorsOf(actor.user) ?? [])]
      const releasable = (j: JobView): boolean => j.owner === actor.user || j.delegable === true
      const local: JobView[] = owners.flatMap((owner) => c.jobs.listJobs({ which: 'all', owner })).filter(releasable)
      const partners = owners.flatMap((owner) => c.roaming.listPartnerJobs(owner)).filter(releasable)
      const shared = c.roaming.settings().roaming.mode === 'shared'
      return {
        jobs: (shared ? [...local, ...partners] : local).sort(newestFirst),
        remote: shared ? [] : partners.sort(newestFirst)
      }
    },

    async releaseJob (actor: Actor, jobId: string, printer?: string): Promise<JobView> {
      if (c.jobs.getById(jobId) === undefined) return await c.roaming.releaseRemote(actor, jobId, printer)
      return await c.jobs.release(jobId, actor, printer)
    },

    async deleteJob (actor: Actor, jobId: string): Promise<JobView> {
      if (c.jobs.getById(jobId) === undefined) {
        await c.roaming.deleteRemote(actor, jobId)
        const found = c.roaming.listPartnerJobs().find((j) => j.id === jobId)
        return found === undefined ? { id: jobId } as JobView : { ...found, state: 'deleted' }
      }
      return await c.jobs.cancel(jobId, actor)
    },

    roaming: roamingView,

    setRoaming: async (input: unknown) => await changeSettings(async () => await c.roaming.setRoaming(input)),
    setClientSettings: async (input: unknown) => await changeSettings(async () => await c.roaming.setClientSettings(input)),
    setPrintPolicy: async (input: unknown) => await changeSettings(async () => await c.roaming.setPrintPolicy(input)),
    setTerminalModes: async (input: unknown) => await changeSettings(async () => await c.roaming.setTerminalSettings(input)),
    setTimes: async (input: unknown) => await changeSettings(async () => await c.roaming.setTimes(input)),

    async printers (): Promise<PrinterView[]> {
      return await Promise.all([...c.printers].map(async ([name, device]) => await probePrinter(name, device)))
    },

    usageRecords: (q: UsageQuery): UsageRecordView[] => records(q),

    usageTotals (q: UsageQuery, by: 'user' | 'printer' | 'day'): UsageTotal[] {
      return totalUsageBy(records(q), by)
    },

    jobStates: () => c.jobs.stateCounts(),

    users (): UserView[] {
      const doc = c.store.get(directoryDoc())
      return doc === undefined ? [] : listUsers(doc).map((u) => ({ username: u.username, fullName: u.fullName }))
    },

    async importUsers (csv: string): Promise<{ imported: number }> {
      if (!c.directoryAuthority()) throw new InvalidRequestError('this site is part of a mesh: users are managed on central')
      return await importUsersCsv(c.store, csv, c.info.site, 'admin', c.cardKey)
    }
  }
}
