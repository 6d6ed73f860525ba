/**
 * The jobs family: `v1/jobs/<peer>/<period>`, written only by the peer that holds the
 * jobs' bytes. Each job is one entry of the top-level map `jobs`, keyed by its uuid and
 * replaced whole on every change (a single writer per document means no concurrent edits).
 *
 * The state machine (DESIGN.md) is enforced here, in {@link transition}:
 *   received → held | releasing | failed | deleted
 *   held → releasing | deleted | expired
 *   releasing → printing | held | failed    (releasing: granted, not yet handed to a printer)
 *   printing → printed | failed | held | releasing
 *                                           (printing: handed to a printer; held or releasing
 *                                            only when it certainly never accepted the job:
 *                                            releasing again while a busy printer is waited for)
 *   printed, failed, deleted → expired (retention)
 *
 * A `printing` job gets its printer's job id ({@link recordPrinterJob}) as soon as the
 * printer accepts it, so that after a crash its holder can ask the printer how it ended.
 */
import type * as Y from 'yjs'
import type { PeerId, SiteId } from './names.ts'

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
  // deleted: handed over to its site by a workstation's client (client spooling off), under the site's grant
  releasing: ['printing', 'held', 'failed', 'deleted'],
  printing: ['printed', 'failed', 'held', 'releasing'],
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
  site: SiteId
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
  /** Pages of one copy of the document; absent while unknown (not analysed yet, or its analysis was stopped: reason `job-pages-unknown`). */
  pages?: number
  colorPages?: number
  /**
   * Pages of one copy the document declares (a PDF's page tree), kept when its analysis was
   * stopped before counting them: charged when the printer reports no impressions.
   */
  declaredPages?: number
  copies: number
  /** `one-sided`, `two-sided-long-edge`, `two-sided-short-edge`. */
  sides: string
  /** PWG self-describing media name, e.g. `iso_a4_210x297mm`. */
  media?: string
  /** Printer name it was (or is being) released to. */
  printer?: string
  /**
   * The printer's own id for the job (IPP `job-id`; a folder printer's document inode),
   * recorded while `printing`, right after the printer accepted it. Absent when the
   * printer gave none or the holder crashed before recording it.
   */
  printerJobId?: number
  /** Set while another site holds the release grant (`releasing`/`printing` for a remote printer). */
  grant?: ReleaseGrant
  /** Released only at its holder (a terminal's Hold queue): never listed elsewhere, never granted. */
  pinned?: boolean
  /** The device holding the job when that is not its site's server (a terminal's name), shown where it is listed. */
  heldAt?: string
  /** The client address that sent it (IPP `job-originating-host-name`): the intake's per-address quotas count it, also after a restart. */
  originatingHost?: string
  /** The owner's delegates (directory) may release it too: it came through a queue that allows it (a site's, a terminal's Delegated mode). */
  delegable?: boolean
  /** The workstation's job this one was handed over from (client spooling off): its client and job id; the site takes each once. */
  handedOverFrom?: { peer: PeerId, jobId: string }
  /** Who released it, when not its owner (a delegate, an admin); the charge stays the owner's. */
  releasedBy?: string
  /** The peer that printed it, when not the holder itself (a roaming release). */
  printedBy?: { peer: PeerId, site: SiteId, printer: string }
  /** Further prints of this job found when peers reconnected (offline releases): reported, never charged twice. */
  duplicates?: Array<{ peer: PeerId, site: SiteId, at: number }>
  createdAt: number
  /** When it reached a terminal state. */
  completedAt?: number
  /** Last change. */
  updatedAt: number
}

/** A release grant: the holder let `peer` (of `site`) print the job on `printer` until `expiresAt` (holder's clock). */
export interface ReleaseGrant {
  /** Unique per grant, so a release record answers exactly one grant. */
  id: string
  peer: PeerId
  site: SiteId
  printer: string
  user: string
  expiresAt: number
}

/** A printer job id that cannot be recorded: not a positive integer, the job not printing, or a different id already recorded. */
export class PrinterJobIdError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PrinterJobIdError'
  }
}

/** Checks that `printerJobId` is a positive safe integer (the only ids printers hand out). */
function checkPrinterJobId (printerJobId: unknown): void {
  if (typeof printerJobId !== 'number' || !Number.isSafeInteger(printerJobId) || printerJobId <= 0) {
    throw new PrinterJobIdError(`a printer job id must be a positive integer, got ${String(printerJobId)}`)
  }
}

export class InvalidTransitionError extends Error {
  constructor (readonly from: string, readonly to: string) {
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
  const next = withoutUndefined({ ...job, ...patch, updatedAt: now })
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
  const next: JobRecord = withoutUndefined({ ...job, ...patch, state: to, updatedAt: now })
  if (TERMINAL_STATES.has(to) && next.completedAt === undefined) next.completedAt = now
  jobsMap(doc).set(id, next)
  return next
}

/**
 * Records the id the printer gave a `printing` job when it accepted it. Recording the same
 * id again changes nothing; throws {@link PrinterJobIdError} for a bad id, a job that is
 * not `printing`, or a job that already has another printer job id.
 */
export function recordPrinterJob (doc: Y.Doc, id: string, printerJobId: number, now: number): JobRecord {
  checkPrinterJobId(printerJobId)
  const job = getJob(doc, id)
  if (job === undefined) throw new Error(`job ${id} not in document`)
  if (job.printerJobId === printerJobId) return job
  if (job.state !== 'printing') throw new PrinterJobIdError(`job ${id} is ${job.state}: only a printing job gets a printer job id`)
  if (job.printerJobId !== undefined) throw new PrinterJobIdError(`job ${id} already has printer job id ${job.printerJobId}, not ${printerJobId}`)
  return updateJob(doc, id, { printerJobId }, now)
}

/** A patch field set to `undefined` removes it (Yjs stores plain JSON). */
function withoutUndefined<T extends object> (record: T): T {
  for (const key of Object.keys(record) as Array<keyof T>) if (record[key] === undefined) delete record[key]
  return record
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

// ---- remote releases ----------------------------------------------------------------
//
// A site that prints a job held by another peer records the release in its own jobs
// document (map `releases`, keyed by the job id): the holder reads it there to follow the
// job (printed at B shows as printed at A) and to find duplicates of offline releases.
//
//   fetching → printing | returned | failed     (fetching: bytes on their way, no printer saw them)
//   printing → printed | returned | failed      (returned: the printer certainly never accepted it)

export type RemoteReleaseState = 'fetching' | 'printing' | 'printed' | 'returned' | 'failed'

const RELEASE_TRANSITIONS: Record<RemoteReleaseState, readonly RemoteReleaseState[]> = {
  fetching: ['printing', 'returned', 'failed'],
  printing: ['printed', 'returned', 'failed'],
  printed: [],
  returned: [],
  failed: []
}

/** One release, at this peer, of a job another peer holds. */
export interface RemoteRelease {
  jobId: string
  /** The peer holding the job (writer of its jobs document). */
  holder: PeerId
  holderSite: SiteId
  /** Printer of this site it goes to. */
  printer: string
  /** The holder's grant this release acts on; absent for an offline release. */
  grantId?: string
  /** Released without a grant because the holder was unreachable (a prefetched copy). */
  offline: boolean
  /** Who released it here. */
  user: string
  state: RemoteReleaseState
  /** The holder's record as it was released: what is printed and charged. */
  job: JobRecord
  /** The printer's own id for the job, recorded right after it accepted it (see {@link recordReleasePrinterJob}). */
  printerJobId?: number
  reason?: string
  message?: string
  createdAt: number
  updatedAt: number
}

export function isFinalRelease (state: RemoteReleaseState): boolean {
  return RELEASE_TRANSITIONS[state].length === 0
}

const releasesMap = (doc: Y.Doc): Y.Map<RemoteRelease> => doc.getMap<RemoteRelease>('releases')

/** Records a new remote release; a job is released by one peer at most once per document. */
export function putRelease (doc: Y.Doc, release: RemoteRelease): void {
  const map = releasesMap(doc)
  const existing = map.get(release.jobId)
  if (existing !== undefined && !isFinalRelease(existing.state)) throw new Error(`job ${release.jobId} is already being released here`)
  map.set(release.jobId, { ...release })
}

export function getRelease (doc: Y.Doc, jobId: string): RemoteRelease | undefined {
  return releasesMap(doc).get(jobId)
}

export function listReleases (doc: Y.Doc): RemoteRelease[] {
  return [...releasesMap(doc).values()]
}

/** Moves a remote release along its state machine. */
export function moveRelease (
  doc: Y.Doc, jobId: string, to: RemoteReleaseState, now: number, patch: { reason?: string, message?: string } = {}
): RemoteRelease {
  const rel = getRelease(doc, jobId)
  if (rel === undefined) throw new Error(`release of ${jobId} not in document`)
  if (!RELEASE_TRANSITIONS[rel.state].includes(to)) throw new InvalidTransitionError(`${rel.state} release`, to)
  const next: RemoteRelease = { ...rel, ...patch, state: to, updatedAt: now }
  releasesMap(doc).set(jobId, next)
  return next
}

/**
 * Records the id this peer's printer gave a remote release in state `printing` when it
 * accepted it; the same id again changes nothing. Throws {@link PrinterJobIdError} as
 * {@link recordPrinterJob} does.
 */
export function recordReleasePrinterJob (doc: Y.Doc, jobId: string, printerJobId: number, now: number): RemoteRelease {
  checkPrinterJobId(printerJobId)
  const rel = getRelease(doc, jobId)
  if (rel === undefined) throw new Error(`release of ${jobId} not in document`)
  if (rel.printerJobId === printerJobId) return rel
  if (rel.state !== 'printing') throw new PrinterJobIdError(`release of ${jobId} is ${rel.state}: only a printing release gets a printer job id`)
  if (rel.printerJobId !== undefined) throw new PrinterJobIdError(`release of ${jobId} already has printer job id ${rel.printerJobId}, not ${printerJobId}`)
  const next: RemoteRelease = { ...rel, printerJobId, updatedAt: now }
  releasesMap(doc).set(jobId, next)
  return next
}

export function purgeRelease (doc: Y.Doc, jobId: string): void {
  releasesMap(doc).delete(jobId)
}
