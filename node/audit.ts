/**
 * A node's audit log (issue 16 item 6): {@link createAuditLog} writes the admin actions the
 * HTTP layer reports (ui/routes/audit.ts) to this node's own `v1/audit/<peer>/<month>`
 * document (crdt/audit.ts), signed and replicated as every document is, and answers
 * `GET /api/audit` from every audit document the node holds: central and sites hold every
 * site's and central's, so each shows the whole mesh's log. Sites and central keep one;
 * terminals and clients have no admin to record (crdt/membership.ts refuses their writes).
 */
import { randomBytes } from 'node:crypto'
import type { DocStore } from '../crdt/store.ts'
import { AUDIT_RETENTION_MONTHS, auditDoc, isRetained, parseDocName, peerId, periodOf } from '../crdt/names.ts'
import { appendAudit, listAudit, type AuditEntry } from '../crdt/audit.ts'
import type { AuditApi, AuditPage, AuditQuery, AuditRecord } from '../ui/routes/audit.ts'

/** Fewest months of audit log a node may keep: the current month and the one before, so a month is never dropped while it is written. */
export const MIN_AUDIT_RETENTION_MONTHS = 1
/** Most months: ten years, far past any audit rule; beyond it a typo is likelier than a policy. */
export const MAX_AUDIT_RETENTION_MONTHS = 120

/** An audit retention that is not a whole number of months in range. */
export class InvalidAuditRetentionError extends Error {
  constructor (value: unknown) {
    super(`audit retention must be a whole number of months from ${MIN_AUDIT_RETENTION_MONTHS} to ${MAX_AUDIT_RETENTION_MONTHS}, got ${JSON.stringify(value)}`)
    this.name = 'InvalidAuditRetentionError'
  }
}

/** `months` when it is a valid audit retention. @throws InvalidAuditRetentionError */
export function checkAuditRetention (months: unknown): number {
  if (typeof months !== 'number' || !Number.isInteger(months) || months < MIN_AUDIT_RETENTION_MONTHS || months > MAX_AUDIT_RETENTION_MONTHS) throw new InvalidAuditRetentionError(months)
  return months
}

/**
 * A node's retention rule (its `retained` component) with audit documents kept `auditMonths`
 * months after their month (default {@link AUDIT_RETENTION_MONTHS}) and jobs documents
 * `jobsMonths`: older ones are dropped whole by the documents service and no longer taken
 * from peers (crdt/sync.ts), so a node keeping fewer months does not fetch them back.
 */
export function retentionRule (jobsMonths: number, auditMonths: number = AUDIT_RETENTION_MONTHS, now: () => number = Date.now): (doc: string) => boolean {
  const months = checkAuditRetention(auditMonths)
  return (doc) => isRetained(doc, now(), jobsMonths, months)
}

export interface AuditLogInit {
  store: DocStore
  /** This node: the writer of its entries. */
  self: { peer: string, role: string, site?: string }
  now: () => number
}

/** Whether the month `period` (`YYYY-MM`) overlaps [since, until). */
function periodOverlaps (period: string, since: number | undefined, until: number | undefined): boolean {
  const [y, m] = period.split('-').map(Number)
  return (since === undefined || Date.UTC(y, m, 1) > since) && (until === undefined || Date.UTC(y, m - 1, 1) < until)
}

function matches (e: AuditEntry, q: AuditQuery): boolean {
  if (q.since !== undefined && e.at < q.since) return false
  if (q.until !== undefined && e.at >= q.until) return false
  if (q.actor !== undefined && e.actor !== q.actor) return false
  if (q.node !== undefined && e.node !== q.node && e.site !== q.node) return false
  if (q.outcome !== undefined && (e.refused !== undefined) !== (q.outcome === 'refused')) return false
  if (q.action !== undefined) {
    const part = q.action.toLowerCase()
    if (!e.action.toLowerCase().includes(part) && !e.target.toLowerCase().includes(part)) return false
  }
  return true
}

/** The audit log of a site or central, for ui/server.ts (`audit`) and ui/routes/audit.ts. */
export function createAuditLog (init: AuditLogInit): AuditApi {
  const self = peerId(init.self.peer)
  /** Time of this node's last entry: each next one is later, so a node's entries list in the order they were made. */
  let last = 0
  return {
    async record (r: AuditRecord): Promise<void> {
      const at = Math.max(init.now(), last + 1)
      last = at
      const entry: AuditEntry = {
        id: randomBytes(12).toString('base64url'),
        at,
        node: self,
        role: init.self.role,
        ...(init.self.site !== undefined ? { site: init.self.site } : {}),
        ...r
      }
      await init.store.transact(auditDoc(self, periodOf(at)), { kind: 'admin', user: r.actor }, (doc) => { appendAudit(doc, entry) })
    },

    query (q: AuditQuery): AuditPage {
      const found: AuditEntry[] = []
      for (const name of init.store.openNames()) {
        const parsed = parseDocName(name)
        if (parsed?.family !== 'audit' || parsed.peer === undefined || parsed.period === undefined) continue
        if (!periodOverlaps(parsed.period, q.since, q.until)) continue
        const doc = init.store.get(name)
        if (doc === undefined) continue
        for (const e of listAudit(doc, parsed.peer)) if (matches(e, q)) found.push(e)
      }
      found.sort((a, b) => b.at - a.at || b.id.localeCompare(a.id))
      const offset = q.offset ?? 0
      return { entries: found.slice(offset, offset + q.limit), total: found.length, limit: q.limit, offset }
    }
  }
}
