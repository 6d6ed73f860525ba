/**
 * What printing a job sends and charges, in one place for both kinds of release: a local
 * one (the holder prints on its own printer) and a roaming one (another site prints a job
 * it fetched). Both charge under the usage id `<jobId>/print`, so however many peers record
 * a print of one job, reports count it once (DESIGN.md invariant 3).
 */
import type * as Y from 'yjs'
import type { DocStore } from '../../crdt/store.ts'
import { acctDoc, periodOf } from '../../crdt/names.ts'
import { recordUsage, hasUsage, sheetsFor } from '../../crdt/accounting.ts'
import type { JobRecord } from '../../crdt/jobs.ts'
import type { PrintRequest } from '../output/types.ts'

/** The usage id of a job's print: the same at every peer that might print it. */
export function usageId (job: Pick<JobRecord, 'id'>): string {
  return `${job.id}/print`
}

/** Whether `peer` already charged this job's print in the period of `time`. */
export async function isCharged (store: DocStore, peer: string, job: Pick<JobRecord, 'id'>, time: number): Promise<boolean> {
  return hasUsage(await store.open(acctDoc(peer, periodOf(time))), usageId(job))
}

/** Charges a printed job in `peer`'s accounting document; a second call is a no-op. */
export async function chargePrint (
  store: DocStore, at: { peer: string, site: string, printer: string }, job: JobRecord, now: number
): Promise<void> {
  const pages = job.pages ?? 0
  const duplex = job.sides !== 'one-sided'
  await store.transact(acctDoc(at.peer, periodOf(now)), { kind: 'local', service: 'accounting' }, (d: Y.Doc) => recordUsage(d, {
    id: usageId(job),
    kind: 'print',
    user: job.owner,
    jobId: job.id,
    jobName: job.name,
    printer: at.printer,
    site: at.site,
    pages: pages * job.copies,
    colorPages: (job.colorPages ?? 0) * job.copies,
    sheets: sheetsFor(pages, job.copies, duplex),
    duplex,
    copies: job.copies,
    time: now
  }))
}

/** What a printer is sent for a job whose document is at `documentPath`. */
export function printRequestFor (job: JobRecord, documentPath: string): PrintRequest {
  return {
    documentPath,
    format: job.format ?? 'application/octet-stream',
    jobName: job.name,
    userName: job.owner,
    copies: job.copies,
    sides: job.sides,
    ...(job.media !== undefined ? { media: job.media } : {})
  }
}
