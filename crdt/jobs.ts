/**
 * The jobs family: `v1/jobs/<peer>/<period>`, written only by the peer that holds the
 * jobs' bytes. Each job is one entry of the top-level map `jobs`, keyed by its uuid and
 * replaced whole on every change (a single writer per document means no concurrent edits).
 *
 * The state machine (DESIGN.md) is enforced here, in {@link transition}:
 *   received → held | releasing | failed | deleted
 *   held → releasing | deleted | expired
 *   releasing → printing | held | failed    (releasing: granted, not yet handed to a printer)
 *   printing → printed | failed | held      (printing: handed to a printer; held only when it
 *                                            certainly never accepted the job)
 *   printed, failed, deleted → expired (retention)
 */
import type * as Y from 'yjs'

export type JobState =
  | 'received' // created, document not (fully) spooled yet
  | 'held' // spooled and waiting for secure release
  | 'releasing' // a release was granted; the document is being prepared, not yet sent
  | 'printing' // handed to a printer (durably recorded before sending); following it to completion
  | 'printed'
  | 'failed'
  | 'deleted'
  | 'expired'

/** States a job never leaves, except to be expired by retention. */
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['printed', 'failed', 'deleted', 'expired'])

const TRANSITIONS: Record<JobState, readonly JobState[]> = {
  received: ['held', 'releasing', 'failed', 'deleted'],
  held: ['releasing', 'deleted', 'expired'],
  releasing: ['printing', 'held', 'failed'],
  printing: ['printed', 'failed', 'held'],
  printed: ['expired'],
  failed: ['expired'],
  deleted: ['expired'],
  expired: []
}

/** One job as stored in the holding peer's jobs document. */
export interface JobRecord {
  /** Mesh-wide unique id (uuid). */
  id: string
  /** Small integer id for IPP clients (`job-id`), unique per site. */
  ippId: number
  site: string
  queue: string
  owner: string
  name: string
  state: JobState
  /** IPP-style keyword saying why it is in its state (e.g. `document-format-error`). */
  reason?: string
  /** Human-readable message for failures. */
  message?: string
  /** MIME type of the spooled document, after auto-detection. */
  format?: string
  /** sha256 (hex) of the spooled document: its name in the content-addressed spool. */
  sha256?: string
  size?: number
  /** Pages of one copy of the document. */
  pages?: number
  colorPages?: number
  copies: number
  /** `one-sided`, `two-sided-long-edge`, `two-sided-short-edge`. */
  sides: string
  /** PWG self-describing media name, e.g. `iso_a4_210x297mm`. */
  media?: string
  /** Printer name it was (or is being) released to. */
  printer?: string
  createdAt: number
  /** When it reached a terminal state. */
  completedAt?: number
  /** Last change. */
  updatedAt: number
}

export class InvalidTransitionError extends Error {
  constructor (readonly from: JobState, readonly to: JobState) {
    super(`a ${from} job cannot become ${to}`)
    this.name = 'InvalidTransitionError'
  }
}

/** Whether the state machine allows `from → to`. */
export function canTransition (from: JobState, to: JobState): boolean {
  return TRANSITIONS[from].includes(to)
}

const jobsMap = (doc: Y.Doc): Y.Map<JobRecord> => doc.getMap<JobRecord>('jobs')

/** Adds a new job; its id must be new to the document. */
export function putNewJob (doc: Y.Doc, job: JobRecord): void {
  const map = jobsMap(doc)
  if (map.has(job.id)) throw new Error(`job ${job.id} already exists`)
  map.set(job.id, { ...job })
}

export function getJob (doc: Y.Doc, id: string): JobRecord | undefined {
  return jobsMap(doc).get(id)
}

export function listJobs (doc: Y.Doc): JobRecord[] {
  return [...jobsMap(doc).values()]
}

/** Changes fields other than the state. */
export function updateJob (doc: Y.Doc, id: string, patch: Partial<Omit<JobRecord, 'id' | 'state'>>, now: number): JobRecord {
  const job = getJob(doc, id)
  if (job === undefined) throw new Error(`job ${id} not in document`)
  const next = { ...job, ...patch, updatedAt: now }
  jobsMap(doc).set(id, next)
  return next
}

/** Moves a job along the state machine; throws {@link InvalidTransitionError} otherwise. */
export function transition (
  doc: Y.Doc, id: string, to: JobState, now: number,
  patch: Partial<Omit<JobRecord, 'id' | 'state'>> = {}
): JobRecord {
  const job = getJob(doc, id)
  if (job === undefined) throw new Error(`job ${id} not in document`)
  if (!canTransition(job.state, to)) throw new InvalidTransitionError(job.state, to)
  const next: JobRecord = { ...job, ...patch, state: to, updatedAt: now }
  if (TERMINAL_STATES.has(to) && next.completedAt === undefined) next.completedAt = now
  jobsMap(doc).set(id, next)
  return next
}

/** Removes a job's entry entirely (after retention). */
export function purgeJob (doc: Y.Doc, id: string): void {
  jobsMap(doc).delete(id)
}

/** Subscribes to job changes in one document; returns the unsubscribe function. */
export function observeJobs (doc: Y.Doc, fn: (changedIds: string[]) => void): () => void {
  const map = jobsMap(doc)
  const handler = (event: Y.YMapEvent<JobRecord>): void => fn([...event.keysChanged])
  map.observe(handler)
  return () => map.unobserve(handler)
}
