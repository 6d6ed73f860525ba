/**
 * The one place where the job domain meets IPP: domain job states → IPP `job-state` and
 * `job-state-reasons`, a {@link JobRecord} → IPP job attributes, and domain errors → IPP
 * status codes. The operation handlers never translate on their own.
 */
import {
  JobNotFoundError, QueueNotFoundError, PrinterNotFoundError, NotAuthorizedError, InvalidJobStateError,
  type JobRecord, type JobState
} from '../jobs/types.ts'
import { CorruptDocumentError, UnsupportedFormatError } from '../documents/index.ts'
import { DocumentTooLargeError } from '../spool.ts'
import { IntakeBusyError, IntakeQuotaError, IntakeTooLargeError } from '../jobs/intake-limits.ts'
import { IppStatusError } from './errors.ts'
import { Tag, Status, attr, type IppAttribute } from './wire.ts'

/** RFC 8011 `job-state` enum values. */
export const JobStateEnum = {
  pending: 3,
  pendingHeld: 4,
  processing: 5,
  processingStopped: 6,
  canceled: 7,
  aborted: 8,
  completed: 9
} as const

/** Domain state → IPP job-state, its default reason keyword and a human message. */
const STATE_MAP: Record<JobState, { state: number, reason: string, message: string }> = {
  received: { state: JobStateEnum.pending, reason: 'job-incoming', message: 'Receiving the document.' },
  held: { state: JobStateEnum.pendingHeld, reason: 'job-hold-until-specified', message: 'Held for release at a printer.' },
  releasing: { state: JobStateEnum.processing, reason: 'job-printing', message: 'Being sent to a printer.' },
  printing: { state: JobStateEnum.processing, reason: 'job-printing', message: 'Printing.' },
  printed: { state: JobStateEnum.completed, reason: 'job-completed-successfully', message: 'Printed.' },
  failed: { state: JobStateEnum.aborted, reason: 'aborted-by-system', message: 'Failed.' },
  deleted: { state: JobStateEnum.canceled, reason: 'job-canceled-by-user', message: 'Deleted.' },
  expired: { state: JobStateEnum.canceled, reason: 'aborted-by-system', message: 'Expired before it was released.' }
}

/** IPP keywords are lowercase ASCII with digits and hyphens (RFC 8011 5.1.4). */
const KEYWORD = /^[a-z0-9][a-z0-9._-]*$/
/** RFC 8011 limits name values to 255 octets and the job-state-message text to 1023. */
const MAX_NAME_OCTETS = 255
const MAX_TEXT_OCTETS = 1023
/** `output-device-assigned` is name(127). */
const MAX_OUTPUT_DEVICE_OCTETS = 127

/** IPP `job-state` of a domain state. */
export function ippJobState (state: JobState): number {
  return STATE_MAP[state].state
}

/** `job-state-reasons` of a job: the state's reason plus the domain's own keyword, if any. */
export function ippJobStateReasons (job: JobRecord): string[] {
  const reasons = [STATE_MAP[job.state].reason]
  if (job.reason !== undefined && KEYWORD.test(job.reason) && !reasons.includes(job.reason)) {
    // A failed job's domain reason (e.g. document-format-error) says more than aborted-by-system.
    if (job.state === 'failed') reasons[0] = job.reason
    else reasons.push(job.reason)
  }
  return reasons
}

/** Domain states matching IPP which-jobs values. */
export function isCompleted (state: JobState): boolean {
  return ippJobState(state) >= JobStateEnum.canceled
}

/** Builds the URIs a job's attributes name. */
export interface JobUris {
  jobUri (ippId: number): string
  printerUri (queue: string): string
}

/** Seconds since the epoch: the clock of printer-up-time and time-at-* (as CUPS does, so values survive restarts). */
export function ippTime (ms: number): number {
  return Math.max(1, Math.floor(ms / 1000))
}

/** Impressions (sides printed) of the whole job, when the page count is known. */
function impressions (job: JobRecord): number | undefined {
  return job.pages === undefined ? undefined : job.pages * job.copies
}

/** Sheets of media the whole job uses, when the page count is known. */
function mediaSheets (job: JobRecord): number | undefined {
  if (job.pages === undefined) return undefined
  const perCopy = job.sides === 'one-sided' ? job.pages : Math.ceil(job.pages / 2)
  return perCopy * job.copies
}

function truncateUtf8 (s: string, maxOctets: number): string {
  const b = Buffer.from(s, 'utf8')
  if (b.length <= maxOctets) return s
  let end = maxOctets
  while (end > 0 && (b[end] & 0xc0) === 0x80) end-- // do not cut a multi-byte character
  return b.subarray(0, end).toString('utf8')
}

function intOrNoValue (name: string, v: number | undefined): IppAttribute {
  return v === undefined ? attr(name, Tag.noValue, null) : attr(name, Tag.integer, v)
}

function timeOrNoValue (name: string, ms: number | undefined): IppAttribute {
  return ms === undefined ? attr(name, Tag.noValue, null) : attr(name, Tag.integer, ippTime(ms))
}

function dateOrNoValue (name: string, ms: number | undefined): IppAttribute {
  return ms === undefined ? attr(name, Tag.noValue, null) : attr(name, Tag.dateTime, new Date(ms))
}

/** Job attribute names of the `job-template` group that {@link jobAttributes} returns. */
export const JOB_TEMPLATE_ATTRIBUTES: ReadonlySet<string> = new Set([
  'copies', 'sides', 'media', 'job-hold-until', 'finishings', 'print-quality', 'orientation-requested'
])

/**
 * All IPP job attributes of a job (job-description and job-template). Callers filter by
 * `requested-attributes`.
 */
export function jobAttributes (job: JobRecord, uris: JobUris, now = Date.now()): IppAttribute[] {
  const processingAt = job.state === 'releasing' || job.state === 'printing' || job.state === 'printed'
    ? job.updatedAt
    : undefined
  const completedAt = isCompleted(job.state) ? (job.completedAt ?? job.updatedAt) : undefined
  const imp = impressions(job)
  const sheets = mediaSheets(job)
  const printed = job.state === 'printed'
  const out: IppAttribute[] = [
    attr('job-id', Tag.integer, job.ippId),
    attr('job-uri', Tag.uri, uris.jobUri(job.ippId)),
    attr('job-printer-uri', Tag.uri, uris.printerUri(job.queue)),
    attr('job-name', Tag.nameWithoutLanguage, truncateUtf8(job.name, MAX_NAME_OCTETS)),
    attr('job-originating-user-name', Tag.nameWithoutLanguage, truncateUtf8(job.owner, MAX_NAME_OCTETS)),
    attr('job-state', Tag.enum, ippJobState(job.state)),
    attr('job-state-reasons', Tag.keyword, ...ippJobStateReasons(job)),
    attr('job-state-message', Tag.textWithoutLanguage, truncateUtf8(job.message !== undefined && job.message !== '' ? job.message : STATE_MAP[job.state].message, MAX_TEXT_OCTETS)),
    attr('job-printer-up-time', Tag.integer, ippTime(now)),
    attr('time-at-creation', Tag.integer, ippTime(job.createdAt)),
    timeOrNoValue('time-at-processing', processingAt),
    timeOrNoValue('time-at-completed', completedAt),
    attr('date-time-at-creation', Tag.dateTime, new Date(job.createdAt)),
    dateOrNoValue('date-time-at-processing', processingAt),
    dateOrNoValue('date-time-at-completed', completedAt),
    attr('number-of-documents', Tag.integer, job.size === undefined ? 0 : 1),
    attr('job-k-octets', Tag.integer, Math.ceil((job.size ?? 0) / 1024)),
    intOrNoValue('job-impressions', imp),
    intOrNoValue('job-media-sheets', sheets),
    attr('job-k-octets-processed', Tag.integer, printed ? Math.ceil((job.size ?? 0) / 1024) : 0),
    attr('job-impressions-completed', Tag.integer, printed ? (imp ?? 0) : 0),
    attr('job-media-sheets-completed', Tag.integer, printed ? (sheets ?? 0) : 0),
    attr('copies', Tag.integer, job.copies),
    attr('sides', Tag.keyword, job.sides),
    attr('job-hold-until', Tag.keyword, job.state === 'held' ? 'indefinite' : 'no-hold'),
    attr('finishings', Tag.enum, 3), // none: the queue passes documents through unfinished
    attr('print-quality', Tag.enum, 4), // normal: the only quality a pass-through queue has
    attr('orientation-requested', Tag.enum, 3) // portrait: documents print as laid out
  ]
  if (job.media !== undefined) out.push(attr('media', Tag.keyword, job.media))
  if (job.format !== undefined) out.push(attr('document-format', Tag.mimeMediaType, job.format))
  if (job.pages !== undefined) out.push(attr('job-pages', Tag.integer, job.pages))
  if (job.printer !== undefined) out.push(attr('output-device-assigned', Tag.nameWithoutLanguage, truncateUtf8(job.printer, MAX_OUTPUT_DEVICE_OCTETS)))
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(job.id)) {
    out.push(attr('job-uuid', Tag.uri, `urn:uuid:${job.id.toLowerCase()}`))
  }
  return out
}

/**
 * The IPP status for an error thrown by the job domain, or undefined when the error is
 * not one of the domain's (an internal error the caller logs and reports as such).
 */
export function ippStatusOf (err: unknown): number | undefined {
  if (err instanceof IppStatusError) return err.status
  if (err instanceof JobNotFoundError) return Status.clientErrorNotFound
  if (err instanceof QueueNotFoundError) return Status.clientErrorNotFound
  if (err instanceof NotAuthorizedError) return Status.clientErrorNotAuthorized
  if (err instanceof InvalidJobStateError) return Status.clientErrorNotPossible
  if (err instanceof PrinterNotFoundError) return Status.clientErrorNotPossible // nothing to release the job to
  if (err instanceof UnsupportedFormatError) return Status.clientErrorDocumentFormatNotSupported
  if (err instanceof CorruptDocumentError) return Status.clientErrorDocumentFormatError
  if (err instanceof DocumentTooLargeError) return Status.clientErrorRequestEntityTooLarge
  // intake limits (devices/jobs/intake-limits.ts): too large for this printer; a quota that
  // clears only as jobs are printed or deleted (CUPS's "Too many active jobs"); a flood that
  // clears in seconds, which clients retry by themselves
  if (err instanceof IntakeTooLargeError) return Status.clientErrorRequestEntityTooLarge
  if (err instanceof IntakeQuotaError) return Status.clientErrorNotPossible
  if (err instanceof IntakeBusyError) return Status.serverErrorBusy
  return undefined
}
