/**
 * The job domain's contract: what a print job is, the states it moves through, and the
 * calls the IPP server (the wire) and the HTTP API make on it. The wire maps IPP
 * operations onto these calls and their errors onto IPP status codes; it holds no
 * job state of its own.
 */
import type { Readable } from 'node:stream'

export type { JobState, JobRecord } from '../../crdt/jobs.ts'
export { TERMINAL_STATES } from '../../crdt/jobs.ts'
import type { JobRecord } from '../../crdt/jobs.ts'

/** A print queue (IPP endpoint) of this site. */
export interface QueueInfo {
  name: string
  /** Hold every job for release (secure print); when false, jobs print on arrival. */
  hold: boolean
  /** Printer used when a job is released without naming one (IPP Release-Job, direct queues). */
  defaultPrinter?: string
  info: string
  location: string
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
  /** Creates a job in state `received`, waiting for its document. */
  createJob (req: CreateJobRequest): Promise<JobRecord>
  /**
   * Spools the document (fsync'd), parses it and holds (or prints) the job. Resolves only
   * when the job is durable, so the caller may acknowledge it. Rejects with
   * {@link UnsupportedFormatError} or {@link CorruptDocumentError} (the job is then failed).
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

/** Who asks: end users may act on their own jobs, admins on all. */
export interface Actor {
  user: string
  admin: boolean
}

/** Base of the job domain's errors, so the wire and HTTP layers can map them. */
export class JobError extends Error {}
export class JobNotFoundError extends JobError {
  constructor (id: number | string) { super(`job ${id} not found`); this.name = 'JobNotFoundError' }
}
export class QueueNotFoundError extends JobError {
  constructor (name: string) { super(`queue ${name} not found`); this.name = 'QueueNotFoundError' }
}
export class PrinterNotFoundError extends JobError {
  constructor (name: string) { super(`printer ${name} not found`); this.name = 'PrinterNotFoundError' }
}
export class NotAuthorizedError extends JobError {
  constructor (message: string) { super(message); this.name = 'NotAuthorizedError' }
}
/** The job is not in a state that allows the request (e.g. releasing a printed job). */
export class InvalidJobStateError extends JobError {
  constructor (message: string) { super(message); this.name = 'InvalidJobStateError' }
}
