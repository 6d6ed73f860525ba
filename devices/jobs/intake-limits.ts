/**
 * What one intake (an IPP server) takes from its clients, so that bad input cannot sink the
 * peer holding the jobs (issue 21, "intake that bad input cannot sink"): how large a
 * document may be once decompressed and how much larger than what was sent, how many
 * pages a job may print, and how many unfinished jobs and bytes one user and one remote
 * address may hold at once.
 *
 * The limits belong to the intake (its options; node/intake.ts) and travel with each job it
 * creates ({@link JobIntake}); the job service enforces them where it knows the jobs
 * (devices/jobs/service.ts), the IPP server where only it knows the bytes (decompression,
 * uploads in progress). Each refusal is an {@link IntakeLimitError} naming its limit, which
 * the IPP layer answers with one status (devices/ipp/mapping.ts) and counts for /metrics.
 */
import { JobError } from './types.ts'

/** The limits, by the name refusals are counted under. */
export type IntakeLimitName =
  | 'document-size' | 'decompression-ratio' | 'job-impressions'
  | 'user-jobs' | 'user-bytes' | 'address-jobs' | 'address-bytes'
  | 'address-uploads'

export const INTAKE_LIMIT_NAMES: readonly IntakeLimitName[] = [
  'document-size', 'decompression-ratio', 'job-impressions', 'user-jobs', 'user-bytes', 'address-jobs', 'address-bytes', 'address-uploads'
]

/** What one intake takes; see {@link DEFAULT_INTAKE_LIMITS} for the defaults and why. */
export interface IntakeLimits {
  /** Largest document spooled, in bytes, counted after any decompression (IPP `compression`, HTTP Content-Encoding). */
  maxDocumentBytes: number
  /** Most bytes a compressed body may inflate to per byte received, once past {@link DECOMPRESSION_RATIO_FLOOR_BYTES}. */
  maxDecompressionRatio: number
  /** Most impressions (pages × copies) one job may print: analysed pages, else the pages the document declares. */
  maxJobImpressions: number
  /** Most unfinished jobs (received, held, releasing, printing) one owner may have. */
  maxJobsPerUser: number
  /** Most bytes of documents those jobs may hold. */
  maxBytesPerUser: number
  /** Most unfinished jobs sent from one remote address (every owner together). */
  maxJobsPerAddress: number
  maxBytesPerAddress: number
  /** Most documents one remote address may be sending at once; more are answered server-error-busy. */
  maxUploadsPerAddress: number
}

const MiB = 1024 ** 2
const GiB = 1024 ** 3

/** Large print files seen in practice (poster rasters, photo books) are hundreds of MB; the 1.5 GiB spool file of the attack is over it. */
export const DEFAULT_MAX_DOCUMENT_BYTES = 1 * GiB
/** PDFs barely compress and text or PostScript 5-20:1, while gzip bombs run at ~1,000:1; 100:1 is also Apache POI's zip-bomb bound. */
export const DEFAULT_MAX_DECOMPRESSION_RATIO = 100
/** Below this a decompressed body cannot hurt, whatever its ratio (a text of blank lines compresses ~1,000:1). */
export const DECOMPRESSION_RATIO_FLOOR_BYTES = 16 * MiB
/** A 500-page manual in 20 copies, ~3 h at a 60 ppm MFP; the attack's job had 13,421,773 pages. */
export const DEFAULT_MAX_JOB_IMPRESSIONS = 10_000
/** A person holds a few unreleased jobs, rarely dozens; a hundred is a script (held jobs expire after two days anyway). */
export const DEFAULT_MAX_JOBS_PER_USER = 100
/** Two documents of the largest size, or a thousand ordinary 2 MB ones. */
export const DEFAULT_MAX_BYTES_PER_USER = 2 * GiB
/**
 * One address may be a NAT or a print server forwarding a whole branch, so several users' worth:
 * as many jobs as a CUPS server holds in all by default (MaxJobs 500), yet fewer than the
 * attack's 1,291 from unauthenticated senders, who can claim any user name.
 */
export const DEFAULT_MAX_JOBS_PER_ADDRESS = 500
/** Five users at their byte limit. */
export const DEFAULT_MAX_BYTES_PER_ADDRESS = 10 * GiB
/**
 * A CUPS queue sends one job at a time, but people behind one NAT, or one person's script, send
 * 20 at once (test/site-busy-printer.test.ts), and `lp` shows server-error-busy as an error
 * instead of retrying as CUPS's ipp backend does: so well above that. More from one address is
 * a flood, each upload holding a socket, a spool file and a turn of the analysis workers.
 */
export const DEFAULT_MAX_UPLOADS_PER_ADDRESS = 64

export const DEFAULT_INTAKE_LIMITS: Readonly<IntakeLimits> = {
  maxDocumentBytes: DEFAULT_MAX_DOCUMENT_BYTES,
  maxDecompressionRatio: DEFAULT_MAX_DECOMPRESSION_RATIO,
  maxJobImpressions: DEFAULT_MAX_JOB_IMPRESSIONS,
  maxJobsPerUser: DEFAULT_MAX_JOBS_PER_USER,
  maxBytesPerUser: DEFAULT_MAX_BYTES_PER_USER,
  maxJobsPerAddress: DEFAULT_MAX_JOBS_PER_ADDRESS,
  maxBytesPerAddress: DEFAULT_MAX_BYTES_PER_ADDRESS,
  maxUploadsPerAddress: DEFAULT_MAX_UPLOADS_PER_ADDRESS
}

/** The defaults with `overrides` over them; every value must be a positive number. */
export function intakeLimits (overrides: Partial<IntakeLimits> = {}): IntakeLimits {
  const limits = { ...DEFAULT_INTAKE_LIMITS, ...overrides }
  for (const [name, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`intake limit ${name} must be a positive number, not ${String(value)}`)
  }
  return limits
}

/** Where a job came from and what its intake takes: given with the job's creation. */
export interface JobIntake {
  /** The client's remote address. */
  address: string
  limits: IntakeLimits
}

/** A byte count as people read it: `1 GiB`, `2.5 MiB`, `812 bytes`. */
export function formatBytes (bytes: number): string {
  const units: Array<[number, string]> = [[GiB, 'GiB'], [MiB, 'MiB'], [1024, 'KiB']]
  for (const [size, unit] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`
  }
  return `${bytes} bytes`
}

/** A refusal by one of the intake's limits; `limit` names it (and its /metrics label). */
export abstract class IntakeLimitError extends JobError {
  abstract readonly limit: IntakeLimitName
}

/** A document or job beyond a size limit (bytes, decompression ratio, impressions): client-error-request-entity-too-large. */
export class IntakeTooLargeError extends IntakeLimitError {
  readonly kind = 'invalid-request'
  constructor (readonly limit: 'document-size' | 'decompression-ratio' | 'job-impressions', message: string) {
    super(message)
    this.name = 'IntakeTooLargeError'
  }
}

/**
 * The user or address already holds as many jobs or bytes as it may: client-error-not-possible,
 * as CUPS answers its MaxJobsPerUser ("Too many active jobs"). It clears only as jobs are
 * released, deleted or expire, not by retrying, so it is no server-error-busy.
 */
export class IntakeQuotaError extends IntakeLimitError {
  readonly kind = 'invalid-state'
  constructor (readonly limit: 'user-jobs' | 'user-bytes' | 'address-jobs' | 'address-bytes', message: string) {
    super(message)
    this.name = 'IntakeQuotaError'
  }
}

/** The address is sending as many documents at once as it may: server-error-busy, retry after a few seconds. */
export class IntakeBusyError extends IntakeLimitError {
  readonly kind = 'unavailable'
  readonly limit = 'address-uploads'
  constructor (message: string, readonly retryAfterSeconds: number) {
    super(message)
    this.name = 'IntakeBusyError'
  }
}

/** Unfinished jobs and the bytes of their documents. */
export interface Holding { jobs: number, bytes: number }

const NONE: Holding = Object.freeze({ jobs: 0, bytes: 0 })

/**
 * The unfinished jobs each owner and each remote address hold, kept as jobs come and go
 * (the job service adds a job when it is created or loaded, counts its bytes as they arrive
 * and removes it once finished), so a quota check walks no jobs. Addresses are known only
 * for jobs received since this process started: jobs loaded at start count for their owner.
 */
export class Holdings {
  private readonly entries = new Map<string, { owner: string, address: string | undefined, bytes: number }>()
  private readonly owners = new Map<string, Holding>()
  private readonly addresses = new Map<string, Holding>()

  /** Counts job `id` (once). */
  add (id: string, owner: string, address: string | undefined, bytes = 0): void {
    if (this.entries.has(id)) return
    this.entries.set(id, { owner, address, bytes })
    this.shift(owner, address, 1, bytes)
  }

  /** Adds bytes of job `id`'s document as they arrive. */
  grow (id: string, bytes: number): void {
    const e = this.entries.get(id)
    if (e === undefined) return
    e.bytes += bytes
    this.shift(e.owner, e.address, 0, bytes)
  }

  /** Sets job `id`'s bytes to its document's size, once known. */
  settle (id: string, bytes: number): void {
    const e = this.entries.get(id)
    if (e === undefined) return
    this.shift(e.owner, e.address, 0, bytes - e.bytes)
    e.bytes = bytes
  }

  /** Job `id` finished (or was purged): it no longer counts. */
  remove (id: string): void {
    const e = this.entries.get(id)
    if (e === undefined) return
    this.entries.delete(id)
    this.shift(e.owner, e.address, -1, -e.bytes)
  }

  ofUser (owner: string): Holding { return this.owners.get(owner) ?? NONE }
  ofAddress (address: string): Holding { return this.addresses.get(address) ?? NONE }

  private shift (owner: string, address: string | undefined, jobs: number, bytes: number): void {
    tally(this.owners, owner, jobs, bytes)
    if (address !== undefined) tally(this.addresses, address, jobs, bytes)
  }
}

function tally (map: Map<string, Holding>, key: string, jobs: number, bytes: number): void {
  const h = map.get(key) ?? { jobs: 0, bytes: 0 }
  h.jobs += jobs
  h.bytes += bytes
  if (h.jobs <= 0) map.delete(key) // nothing held: no entry, so the maps do not grow with every address ever seen
  else map.set(key, h)
}

/**
 * Refuses a new job ({@link IntakeQuotaError}) when its owner or its address already holds as
 * many unfinished jobs, or as many bytes, as it may.
 */
export function checkNewJob (holdings: Holdings, owner: string, intake: JobIntake): void {
  const { limits, address } = intake
  const user = holdings.ofUser(owner)
  const from = holdings.ofAddress(address)
  if (user.jobs >= limits.maxJobsPerUser) {
    throw new IntakeQuotaError('user-jobs', `too many jobs: ${owner} has ${user.jobs} unfinished jobs here, the most one user may have is ${limits.maxJobsPerUser}; print or delete some first`)
  }
  if (from.jobs >= limits.maxJobsPerAddress) {
    throw new IntakeQuotaError('address-jobs', `too many jobs: ${from.jobs} unfinished jobs here were sent from ${address}, the most one address may have is ${limits.maxJobsPerAddress}; print or delete some first`)
  }
  checkBytes(holdings, owner, intake, 'full')
}

/**
 * Refuses ({@link IntakeQuotaError}) when the owner's or address's unfinished jobs hold more
 * bytes than they may (`over`, checked as a document arrives), or already all they may (`full`,
 * checked before a job is created).
 */
export function checkBytes (holdings: Holdings, owner: string, intake: JobIntake, when: 'over' | 'full'): void {
  const { limits, address } = intake
  const user = holdings.ofUser(owner)
  const from = holdings.ofAddress(address)
  const beyond = (held: number, limit: number): boolean => when === 'full' ? held >= limit : held > limit
  // before a job: what is held; as a document arrives: that it would pass the limit
  const hold = (held: number, limit: number): string => when === 'full' ? `hold ${formatBytes(held)}` : `would hold more than ${formatBytes(limit)} with this document`
  if (beyond(user.bytes, limits.maxBytesPerUser)) {
    throw new IntakeQuotaError('user-bytes', `too much held: ${owner}'s unfinished jobs here ${hold(user.bytes, limits.maxBytesPerUser)}, the most one user may hold is ${formatBytes(limits.maxBytesPerUser)}; print or delete some first`)
  }
  if (beyond(from.bytes, limits.maxBytesPerAddress)) {
    throw new IntakeQuotaError('address-bytes', `too much held: unfinished jobs sent from ${address} ${hold(from.bytes, limits.maxBytesPerAddress)}, the most one address may hold is ${formatBytes(limits.maxBytesPerAddress)}; print or delete some first`)
  }
}

/**
 * Refuses ({@link IntakeTooLargeError}) a job of more impressions than one job may print:
 * `pages` analysed, or declared by a document whose analysis was stopped.
 */
export function checkImpressions (pages: number, copies: number, declared: boolean, limits: IntakeLimits): void {
  const impressions = pages * copies
  if (impressions <= limits.maxJobImpressions) return
  const what = declared ? `the document declares ${pages} pages` : `the document has ${pages} pages`
  const times = copies > 1 ? ` × ${copies} copies = ${impressions} pages` : ''
  throw new IntakeTooLargeError('job-impressions', `job too large: ${what}${times}; this printer prints at most ${limits.maxJobImpressions} pages per job (pages × copies)`)
}

/** The document grew past `maxBytes`, the largest the intake (or the spool) takes. */
export function documentTooLarge (maxBytes: number): IntakeTooLargeError {
  return new IntakeTooLargeError('document-size', `document too large: it is over ${formatBytes(maxBytes)} (after decompression), the largest document this printer accepts`)
}
