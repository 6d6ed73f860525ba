/**
 * The job domain's contract: what a print job is, the states it moves through, and the
 * calls the IPP server (the wire) and the HTTP API make on it. The wire maps IPP
 * operations onto these calls and their errors onto IPP status codes; it holds no
 * job state of its own.
 */
import { KindedError } from '../../crdt/errors.ts'
import type { PeerId, SiteId } from '../../crdt/names.ts'
import type { AdminCapability } from '../../crdt/capability.ts'
import type { Readable } from 'node:stream'
import type { JobIntake } from './intake-limits.ts'

export type { JobState, JobRecord } from '../../crdt/jobs.ts'
export { TERMINAL_STATES } from '../../crdt/jobs.ts'
import type { JobRecord } from '../../crdt/jobs.ts'

/** Where a job listed at this site is held, when another site holds it. */
export interface JobSource {
  site: SiteId
  /** The source site's host name, as users see it next to the job. */
  hostname: string
  /** The holding peer. */
  peer: PeerId
}

/** A job as listed to users: local, or held by a partner site (then with its source). */
export type JobView = JobRecord & {
  source?: JobSource
  prefetched?: boolean
  /** The terminal or workstation holding it is off or unreachable from here (a release would fail until it is back). */
  unavailable?: boolean
}

/** A print queue (IPP endpoint) of this site. */
export interface QueueInfo {
  name: string
  /** Hold every job for release (secure print); when false, jobs print on arrival. */
  hold: boolean
  /** Printer used when a job is released without naming one (IPP Release-Job, direct queues). */
  defaultPrinter?: string
  info: string
  location: string
  /**
   * IPP intake needs an authenticated user, who then owns the job whatever
   * requesting-user-name says (Print-Job, Create-Job, Send-Document, Validate-Job).
   * Default false: the owner is the requesting-user-name the client sends (`lp -U bob`).
   */
  authenticatedIntake?: boolean
  /**
   * Jobs of this queue are released only at the peer holding them (a terminal's Hold mode):
   * no other peer lists them, gets a grant for them or fetches their document.
   */
  pinned?: boolean
  /** The owner's delegates (directory) may release this queue's jobs too (a site's queue, a terminal's Delegated mode). */
  delegable?: boolean
  /**
   * A workstation's queue (a client's): its jobs belong to this user, whatever name the OS
   * sends or none; a job for another requesting-user-name is refused, unless
   * `othersAllowed()` says the site allows it (then that name owns it).
   */
  owner?: { user: string, othersAllowed: () => boolean }
}

/**
 * Who may release whose jobs besides their owner: the directory's delegates (node/delegation.ts).
 * Read at the holder of a job, so a release is allowed by the holder's copy of the directory.
 */
export interface Delegation {
  /** The users `owner` named as delegates (empty for an unknown or disabled owner). */
  delegatesOf (owner: string): readonly string[]
  /** The owners who named `user` as a delegate. */
  delegatorsOf (user: string): readonly string[]
}

/**
 * Why `actor` may not release `job`, in words for the user; undefined when they may: its owner,
 * an admin, or a delegate of the owner when the job came through a queue that allows delegates.
 */
export function releaseRefusal (job: Pick<JobRecord, 'owner' | 'delegable'>, actor: Actor, delegation?: Delegation): string | undefined {
  if (actor.admin || actor.user === job.owner) return undefined
  const delegate = delegation?.delegatesOf(job.owner).includes(actor.user) === true
  if (!delegate) return `this job belongs to another user, who has not named ${actor.user} a delegate`
  if (job.delegable !== true) return `this job of ${job.owner} came to a queue where only its owner releases it, not a delegate`
  return undefined
}

export interface CreateJobRequest {
  queue: string
  owner: string
  name: string
  copies: number
  sides: string
  media?: string
  /** IPP `job-hold-until`: `no-hold` prints on arrival even on a held queue. */
  holdUntil?: string
  /**
   * The intake's limits and the client's address (intake-limits.ts): the job is refused when
   * its owner or address already holds its quota, and its document when it grows past a
   * limit. Absent (jobs made by tests and the simulator): no limits.
   */
  intake?: JobIntake
  /** The workstation's job it was handed over from (client spooling off). */
  handedOverFrom?: { peer: PeerId, jobId: string }
}

export interface DocumentUpload {
  /** Declared `document-format`; `application/octet-stream` asks for auto-detection. */
  format: string
  /** Already decompressed document bytes. */
  data: Readable
}

export interface JobFilter {
  queue?: string
  owner?: string
  which: 'completed' | 'not-completed' | 'all'
  limit?: number
}

/** What the wire and the HTTP API may ask of the jobs of this site. */
export interface JobDomain {
  queues (): QueueInfo[]
  queue (name: string): QueueInfo | undefined
  /** Formats the site can parse and print (`document-format-supported`). */
  supportedFormats (): readonly string[]
  /** Creates a job in state `received`, waiting for its document; rejects with an `IntakeQuotaError` when its intake's quota is reached. */
  createJob (req: CreateJobRequest): Promise<JobRecord>
  /**
   * Spools the document (fsync'd), parses it and holds (or prints) the job. Resolves only
   * when the job is durable, so the caller may acknowledge it. Rejects with
   * {@link UnsupportedFormatError} or {@link CorruptDocumentError}, or an `IntakeLimitError`
   * when the document passes a limit of the job's intake (the job is then failed, its bytes gone).
   * A document whose analysis was stopped by a limit (time, memory) is kept: the job is held
   * with its pages unknown ({@link PAGES_UNKNOWN_REASON}).
   */
  addDocument (ippId: number, doc: DocumentUpload): Promise<JobRecord>
  getJob (ippId: number): JobRecord | undefined
  listJobs (filter: JobFilter): JobRecord[]
  /** Deletes (cancels) a job not yet printed. */
  cancel (ippId: number, by: Actor): Promise<JobRecord>
  /** Holds a job that would print on arrival or is waiting. */
  hold (ippId: number, by: Actor): Promise<JobRecord>
  /** Releases a held job to `printer` (default: the queue's default printer). */
  release (ippId: number, by: Actor, printer?: string): Promise<JobRecord>
}

/**
 * The owner of a job whose queue does not trust the `requesting-user-name` the workstation sent
 * (a terminal of a site that says so, issue 13): nobody yet. It is held whatever its queue does,
 * listed to nobody and released by nobody until a user logged in at the holder claims it
 * (`JobService.claim`) and so becomes its owner. `#` is never in a user name (the `#pin` pseudo-user's convention).
 */
export const UNCLAIMED_OWNER = '#unclaimed'

/**
 * Reason of a job held although its document's analysis was stopped (time or memory limit):
 * its pages are unknown. It can be released like any held job; its print is charged by the
 * printer's impression count, else by the pages the document declares (usage.ts `printCharge`).
 */
export const PAGES_UNKNOWN_REASON = 'job-pages-unknown'

/** Who asks: end users may act on their own jobs, admins on all. */
export interface Actor {
  user: string
  admin: boolean
}

/** Base of the job domain's errors, so the wire and HTTP layers can map them. */
/** A job request that cannot be done; its `kind` (crdt/errors.ts) says what the caller can do about it. */
export abstract class JobError extends KindedError {}
export class JobNotFoundError extends JobError {
  readonly kind = 'not-found'
  constructor (id: number | string) { super(`job ${id} not found`); this.name = 'JobNotFoundError' }
}
export class QueueNotFoundError extends JobError {
  readonly kind = 'not-found'
  constructor (name: string) { super(`queue ${name} not found`); this.name = 'QueueNotFoundError' }
}
export class PrinterNotFoundError extends JobError {
  readonly kind = 'not-found'
  constructor (name: string) { super(`printer ${name} not found`); this.name = 'PrinterNotFoundError' }
}
export class NotAuthorizedError extends JobError {
  readonly kind = 'not-authorized'
  constructor (message: string) { super(message); this.name = 'NotAuthorizedError' }
}
/** The job is not in a state that allows the request (e.g. releasing a printed job). */
export class InvalidJobStateError extends JobError {
  readonly kind = 'invalid-state'
  constructor (message: string) { super(message); this.name = 'InvalidJobStateError' }
}

// ---- roaming ----------------------------------------------------------------------

/** The two sites do not name each other as roaming partners. */
export class NotPartnerError extends JobError {
  readonly kind = 'not-authorized'
  constructor (message: string) { super(message); this.name = 'NotPartnerError' }
}
/** The peer holding a job answered, but would not send its document: it has no such document (any more), or not for this peer. */
export class DocumentNotServedError extends JobError {
  readonly kind = 'not-found'
  constructor (readonly holder: string, reason: string) { super(`${holder} would not send the document: ${reason}`); this.name = 'DocumentNotServedError' }
}

/** The peer holding a job could not be reached (and no prefetched copy may stand in). */
export class HolderUnreachableError extends JobError {
  readonly kind = 'unavailable'
  /** `device`: the terminal or workstation holding the job, when not the site's server (its `heldAt`). */
  constructor (readonly site: string, readonly reason: string, device?: string) {
    super(device === undefined
      ? `site ${site}, which holds this job, is unreachable (${reason}); release it when the site is back`
      : `${device}, which holds this job, is off or unreachable (${reason}); release it when ${device} is back on the network`)
    this.name = 'HolderUnreachableError'
  }
}

/** The holder of a job cannot reach the printer it was asked to send the job to (the requester then fetches it instead). */
export class DirectPrinterUnreachableError extends JobError {
  readonly kind = 'unavailable'
  constructor (message: string) { super(message); this.name = 'DirectPrinterUnreachableError' }
}

/** A site's request to print a job another peer holds. */
export interface GrantRequest {
  jobId: string
  /** The user who released it (authenticated by the requesting site), or the admin's name. */
  user: string
  /** Present when an admin released it: signed by the peer the admin logged in at (crdt/capability.ts). */
  adminCapability?: AdminCapability
  /** Printer of the requesting site. */
  printer: string
}

/**
 * A site's or terminal's request that the holder itself send a job to one of the requester's
 * printers (a workstation's client: client → printer, no byte through the requester).
 */
export interface DirectPrintRequest extends GrantRequest {
  /** The printer's IPP URI (`ipp://`, `ipps://`; never a file). */
  printerUri: string
  /** How the holder names that printer in its accounting: `<site>:<device or printer name>`. */
  printerLabel: string
}

/**
 * A workstation's client handing one of its held jobs to its site's server (client spooling
 * off): the job as the client analysed it, under the grant the client gave the site. The site
 * fetches the document (blob protocol, by `sha256`), analyses it again and holds it as its own.
 */
export interface HandOverRequest {
  jobId: string
  grantId: string
  owner: string
  name: string
  copies: number
  sides: string
  media?: string
  format: string
  sha256: string
  size: number
}

/** The site's answer: still taking it (ask again), taken (its job there), or refused (why). */
export type HandOverReply =
  | { ok: true, state: 'adopting' }
  | { ok: true, state: 'adopted', jobId: string, ippId: number }
  | { ok: false, error: RoamingRefusal | 'refused', message: string }

/** The printer name of a grant a client gives its site for a handover (never a real printer: names never start with `#`). */
export const HANDOVER_PRINTER = '#handover'
/** The reason of a client's job once its site took it (`deleted` here, held there). */
export const HANDED_OVER_REASON = 'job-handed-over'

/**
 * A releasing peer's report of how a granted release of the holder's job ended, sent to the
 * holder (release protocol op `settle`) because a holder that is a terminal or a workstation's
 * client of another site may not read the releaser's jobs document, where the release record is.
 * The holder applies it as it would that record (`JobService.followRelease`), only when the
 * job is granted to the sender under `grantId`; applying it again changes nothing.
 */
export interface SettleReport {
  jobId: string
  grantId: string
  /** The release's final state (the printer is the grant's). */
  state: 'printed' | 'failed' | 'returned'
  reason?: string
  message?: string
}

/** The holder's answer to a {@link SettleReport}: its job's state after applying it, or a refusal. */
export type SettleReply = { ok: true, state: JobRecord['state'] } | { ok: false, error: RoamingRefusal, message: string }

/** The holder's answer: the grant, or why not (the error's class name and message). */
export type GrantReply =
  | { ok: true, grantId: string, ttlMs: number, job: JobRecord }
  | { ok: false, error: RoamingRefusal, message: string }

/** Why a holder refuses; the requester turns each back into the matching error class. */
export type RoamingRefusal = 'not-found' | 'not-authorized' | 'invalid-state' | 'not-partner' | 'bad-request' | 'printer-unreachable'

/**
 * How a site reaches the peers holding jobs; node/ implements it over libp2p, the
 * simulator in memory. Every call rejects with {@link HolderUnreachableError} when the
 * holder cannot be reached.
 */
export interface RoamingLink {
  requestGrant (holder: PeerId, request: GrantRequest, signal: AbortSignal): Promise<GrantReply>
  /** Asks the holder to move a granted job to `printing`; ok false when it refuses. */
  commit (holder: PeerId, jobId: string, grantId: string, signal: AbortSignal): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }>
  /** Asks the holder to delete a held job for its owner (`user`), or for an admin (`adminCapability`). */
  deleteJob (holder: PeerId, jobId: string, user: string, signal: AbortSignal, adminCapability?: AdminCapability): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }>
  /** Asks the holder to send the job to the requester's printer itself; ok: the holder printing it (`releasing`). */
  requestPrint? (holder: PeerId, request: DirectPrintRequest, signal: AbortSignal): Promise<{ ok: true, job: JobRecord } | { ok: false, error: RoamingRefusal, message: string }>
  /** Hands a held job of this client to its site's server (`site`), which takes it as its own (client spooling off). */
  handOver? (site: PeerId, request: HandOverRequest, signal: AbortSignal): Promise<HandOverReply>
  /** Reports how a granted release ended to the job's holder (op `settle`); any answer, refusal included, is final. */
  settle? (holder: PeerId, report: SettleReport, signal: AbortSignal): Promise<SettleReply>
  /** Fetches a job document into `dest` (resumable, sha256-verified). */
  fetch (holder: PeerId, sha256: string, dest: string, signal: AbortSignal, onProgress?: (received: number, size: number) => void): Promise<void>
  /** Whether `holder` is connected now (no answer: assume so); lists a device's jobs as unavailable while it is off. */
  connected? (holder: PeerId): boolean
}

/** What the holder's side answers to other sites; the link's server calls these. */
export interface RoamingHolder {
  grant (peer: PeerId, request: GrantRequest): Promise<GrantReply>
  commit (peer: PeerId, jobId: string, grantId: string): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }>
  deleteJob (peer: PeerId, jobId: string, user: string, adminCapability?: AdminCapability): Promise<{ ok: true } | { ok: false, error: RoamingRefusal, message: string }>
  /** Sends a held job to the requester's printer from here (a holder that can: a workstation's client). */
  printDirect (peer: PeerId, request: DirectPrintRequest): Promise<{ ok: true, job: JobRecord } | { ok: false, error: RoamingRefusal, message: string }>
  /** Applies a releasing peer's report of how its granted release of a job held here ended. */
  settle (peer: PeerId, report: SettleReport): Promise<SettleReply>
  /** Takes a job a workstation's client of this site hands over (only a site's server does). */
  handOver (peer: PeerId, request: HandOverRequest): Promise<HandOverReply>
  /** Whether `peer` may fetch the document `sha256` (a partner site, a job still to print). */
  mayFetch (peer: PeerId, sha256: string): boolean
  /** Where the document `sha256` of a job still to print is. */
  blobPath (sha256: string): string | undefined
}
