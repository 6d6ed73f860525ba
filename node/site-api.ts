/**
 * The site's implementation of {@link SiteApi}: what the HTTP layer may ask of a site,
 * composed from the job service, the directory and the accounting documents.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc, parseDocName } from '../crdt/names.ts'
import { listUsers } from '../crdt/directory.ts'
import { listUsage, totalUsageBy, type UsageRecord } from '../crdt/accounting.ts'
import { listJobs as listJobRecords } from '../crdt/jobs.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { Actor, JobRecord } from '../devices/jobs/types.ts'
import { InvalidRequestError, type SiteApi, type SiteInfo, type PrinterView, type UsageQuery, type UsageTotal, type UsageRecordView, type UserView } from '../ui/api.ts'
import { importUsersCsv, checkPin } from './users.ts'

/** A printer that does not answer its probe within this is shown as unreachable. */
const PROBE_TIMEOUT_MS = 2000

export interface SiteApiComponents {
  info: SiteInfo
  /** This peer's id: its accounting documents are `v1/acct/<peer>/…`. */
  peer: string
  adminToken: string
  store: DocStore
  jobs: JobService
  printers: ReadonlyMap<string, OutputDevice>
  /** Whether this site writes the directory itself (standalone) rather than central. */
  directoryAuthority: () => boolean
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
    return out.sort((a, b) => a.time - b.time || a.id.localeCompare(b.id))
  }

  const remoteJobs = (): JobRecord[] => {
    const out: JobRecord[] = []
    for (const name of c.store.openNames()) {
      const parsed = parseDocName(name)
      if (parsed?.family !== 'jobs' || parsed.peer === c.peer) continue
      const doc = c.store.get(name)
      if (doc !== undefined) out.push(...listJobRecords(doc))
    }
    return out
  }

  return {
    info: () => c.info,

    async authenticateUser (username: string, pin: string): Promise<Actor | undefined> {
      return await checkPin(c.store, username, pin) ? { user: username, admin: false } : undefined
    },

    authenticateAdmin (token: string): Actor | undefined {
      return timingSafeEqual(digest(token), adminDigest) ? { user: 'admin', admin: true } : undefined
    },

    listJobs (actor: Actor, scope: 'mine' | 'all'): JobRecord[] {
      if (scope === 'all' && !actor.admin) throw new InvalidRequestError('only admins may list all jobs')
      const jobs = c.jobs.listJobs({ which: 'all', ...(scope === 'mine' ? { owner: actor.user } : {}) })
      // admins also see the jobs other peers hold, as replicated here (read-only until roaming)
      if (scope === 'all') jobs.push(...remoteJobs())
      return jobs.sort((a, b) => b.createdAt - a.createdAt)
    },

    async releaseJob (actor: Actor, jobId: string, printer?: string): Promise<JobRecord> {
      return await c.jobs.release(jobId, actor, printer)
    },

    async deleteJob (actor: Actor, jobId: string): Promise<JobRecord> {
      return await c.jobs.cancel(jobId, actor)
    },

    async printers (): Promise<PrinterView[]> {
      return await Promise.all([...c.printers].map(async ([name, device]) => {
        const probe = await device.probe(AbortSignal.timeout(PROBE_TIMEOUT_MS))
        return { name, uri: device.uri, state: probe.ok ? 'idle' : 'unreachable', message: probe.message }
      }))
    },

    usageRecords: (q: UsageQuery): UsageRecordView[] => records(q),

    usageTotals (q: UsageQuery, by: 'user' | 'printer' | 'day'): UsageTotal[] {
      return totalUsageBy(records(q), by)
    },

    users (): UserView[] {
      const doc = c.store.get(directoryDoc())
      return doc === undefined ? [] : listUsers(doc).map((u) => ({ username: u.username, fullName: u.fullName }))
    },

    async importUsers (csv: string): Promise<{ imported: number }> {
      if (!c.directoryAuthority()) throw new InvalidRequestError('this site is part of a mesh: users are managed on central')
      return await importUsersCsv(c.store, csv, c.info.site, 'admin')
    }
  }
}
