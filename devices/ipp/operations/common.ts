/**
 * What every IPP operation handler gets (the request, its target queue, the requesting
 * user and whether they authenticated, the document stream, the domain) and the small
 * helpers they share: reading operation attributes strictly, `requested-attributes`
 * filtering, private job attributes, demanding authentication and finding the job a
 * request names.
 */
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Actor, JobDomain, JobRecord, QueueInfo } from '../../jobs/types.ts'
import type { IntakeLimits } from '../../jobs/intake-limits.ts'
import { maySeePrivate, PRIVATE_JOB_ATTRIBUTES, type AnonymousJobList } from '../auth.ts'
import { IppStatusError } from '../errors.ts'
import { jobAttributes, type JobUris } from '../mapping.ts'
import { Tag, Status, attr, stringValue, type IppAttribute, type IppGroup, type IppMessage } from '../wire.ts'

/** Builds the URIs the server hands out; they follow the host and path style the client used. */
export interface ServerUris extends JobUris {
  /** An http page about the queue (the server's GET page). */
  moreInfoUri (queue: string): string
  /** Every URI the queue answers at (`printer-uri-supported`), with its security and authentication. */
  printerUrisSupported (queue: string): PrinterUriSupported[]
}

/** One value of `printer-uri-supported` and its `uri-security-supported` and `uri-authentication-supported`. */
export interface PrinterUriSupported {
  uri: string
  security: 'tls' | 'none'
  authentication: 'basic' | 'requesting-user-name'
}

/** One IPP request as a handler sees it. */
export interface OperationContext {
  request: IppMessage
  /** The operation-attributes group (first group, already validated). */
  operation: IppAttribute[]
  /** Attributes of the request's job-attributes group(s), in order. */
  jobTemplate: IppAttribute[]
  /** The queue the HTTP path names (the default queue for `/ipp/print` and `/jobs/N`). */
  queue: QueueInfo
  /**
   * The request names the server rather than a queue (printer-uri `ipp://host/`, or none for
   * the CUPS server operations): Get-Jobs then lists every queue's jobs. `queue` is the default.
   */
  serverWide?: boolean
  /** Job id taken from a `/jobs/N` request path. */
  pathJobId?: number
  /**
   * Who the request says it is: the authenticated user when it authenticated (whatever
   * requesting-user-name says), else `requesting-user-name`, else {@link ANONYMOUS}.
   */
  user: string
  /** The user or admin the request's HTTP authentication proved; absent without one. */
  actor?: Actor
  /** What Get-Jobs shows a client that did not authenticate. */
  anonymousJobs: AnonymousJobList
  /** Document bytes after the IPP message. */
  body: Readable
  /** The client's remote address (IPv4-mapped IPv6 addresses as plain IPv4). */
  address: string
  /** What this intake takes (devices/jobs/intake-limits.ts); job creation hands them to the domain. */
  limits: IntakeLimits
  domain: JobDomain
  uris: ServerUris
  logger: Logger
  now: () => number
}

/** What a handler answers; the server adds the operation group (charset, language, status-message). */
export interface OperationResult {
  status: number
  message?: string
  unsupported?: IppAttribute[]
  groups?: IppGroup[]
}

export type OperationHandler = (ctx: OperationContext) => Promise<OperationResult>

/** The owner recorded when a client sends no requesting-user-name. */
export const ANONYMOUS = 'anonymous'

/** The operation attribute `name`, if present. */
export function opAttr (ctx: OperationContext, name: string): IppAttribute | undefined {
  return ctx.operation.find((a) => a.name === name)
}

function wrongSyntax (a: IppAttribute, expected: string): IppStatusError {
  return new IppStatusError(Status.clientErrorBadRequest, `${a.name} must be a single ${expected} value`, [a])
}

/** A single-valued operation attribute of one of `tags`, as a string. */
export function opString (ctx: OperationContext, name: string, tags: readonly number[]): string | undefined {
  const a = opAttr(ctx, name)
  if (a === undefined) return undefined
  if (a.values.length !== 1 || !tags.includes(a.values[0].tag)) throw wrongSyntax(a, tags.map((t) => `0x${t.toString(16)}`).join('/'))
  return stringValue(a)
}

/** A single-valued name operation attribute (nameWithoutLanguage or nameWithLanguage). */
export function opName (ctx: OperationContext, name: string): string | undefined {
  return opString(ctx, name, [Tag.nameWithoutLanguage, Tag.nameWithLanguage])
}

export function opKeyword (ctx: OperationContext, name: string): string | undefined {
  return opString(ctx, name, [Tag.keyword])
}

export function opBoolean (ctx: OperationContext, name: string): boolean | undefined {
  const a = opAttr(ctx, name)
  if (a === undefined) return undefined
  if (a.values.length !== 1 || a.values[0].tag !== Tag.boolean) throw wrongSyntax(a, 'boolean')
  return a.values[0].value as boolean
}

export function opInteger (ctx: OperationContext, name: string): number | undefined {
  const a = opAttr(ctx, name)
  if (a === undefined) return undefined
  if (a.values.length !== 1 || a.values[0].tag !== Tag.integer) throw wrongSyntax(a, 'integer')
  return a.values[0].value as number
}

/** Which attributes a response may carry, from `requested-attributes` and its group names. */
export interface Requested {
  has (name: string): boolean
}

/**
 * Parses `requested-attributes`. `groups` maps group keywords (e.g. `job-template`) to a
 * membership test; `all` always means everything except attributes in `explicitOnly`,
 * which are returned only when named (e.g. `media-col-database`).
 */
export function requested (
  ctx: OperationContext,
  defaults: readonly string[] | 'all',
  groups: Record<string, (name: string) => boolean>,
  explicitOnly: ReadonlySet<string> = new Set()
): Requested {
  const a = opAttr(ctx, 'requested-attributes')
  if (a !== undefined && a.values.some((v) => v.tag !== Tag.keyword)) {
    throw new IppStatusError(Status.clientErrorBadRequest, 'requested-attributes must be keywords', [a])
  }
  const names = a === undefined ? (defaults === 'all' ? ['all'] : defaults) : a.values.map((v) => v.value as string)
  const wanted = new Set(names)
  const all = wanted.has('all')
  const tests = names.map((n) => groups[n]).filter((t): t is (name: string) => boolean => t !== undefined)
  return { has: (n) => wanted.has(n) || (!explicitOnly.has(n) && (all || tests.some((t) => t(n)))) }
}

/**
 * Job attributes filtered by what was requested; those that name the job or its user are
 * left out unless the requester authenticated as its owner or an admin (CUPS leaves them
 * out the same way; job-id always stays).
 */
export function jobGroup (ctx: OperationContext, job: JobRecord, want: Requested): IppGroup {
  const visible = maySeePrivate(ctx.actor, job)
  const attributes = jobAttributes(job, ctx.uris, ctx.now()).filter((a) => want.has(a.name) && (visible || !PRIVATE_JOB_ATTRIBUTES.has(a.name)))
  return { tag: Tag.jobAttributes, attributes }
}

/**
 * The authenticated requester, or client-error-not-authenticated (the server answers it
 * with HTTP 401 and a Basic challenge, so CUPS clients ask for the password and retry).
 */
export function authenticatedActor (ctx: OperationContext, what: string): Actor {
  if (ctx.actor !== undefined) return ctx.actor
  throw new IppStatusError(Status.clientErrorNotAuthenticated, `${what} needs your username and PIN (HTTP Basic authentication)`)
}

/**
 * The owner of a job this request creates or adds to: on a queue with authenticated intake,
 * the authenticated user (client-error-not-authenticated without one); elsewhere
 * {@link OperationContext.user}.
 */
export function intakeUser (ctx: OperationContext, queue: QueueInfo | undefined): string {
  if (queue?.authenticatedIntake === true) return authenticatedActor(ctx, `printing to queue ${queue.name}`).user
  const owner = queue?.owner
  if (owner === undefined || ctx.user === owner.user || ctx.user === ANONYMOUS) return owner?.user ?? ctx.user
  if (owner.othersAllowed()) return ctx.user
  throw new IppStatusError(Status.clientErrorNotAuthorized, `this workstation prints for ${owner.user} only, not for ${ctx.user} (the site does not let its clients print for other users)`)
}

/** The attributes a job-creating operation answers with (RFC 8011 4.2.1.2). */
export const JOB_CREATION_RESPONSE: Requested = {
  has: (n) => ['job-id', 'job-uri', 'job-state', 'job-state-reasons', 'job-state-message', 'number-of-intervening-jobs'].includes(n)
}

/** `…/jobs/N` at the end of a job-uri. */
const JOB_URI_PATH = /\/jobs\/(\d{1,10})$/

/**
 * The job a job operation targets: `job-uri`, or `printer-uri` + `job-id`, or the
 * request path `/jobs/N`. Throws client-error-bad-request when none is given and
 * client-error-not-found when the job does not exist.
 */
export function targetJob (ctx: OperationContext): JobRecord {
  let id = opInteger(ctx, 'job-id')
  if (id === undefined) {
    const uri = opString(ctx, 'job-uri', [Tag.uri])
    if (uri !== undefined) {
      let path: string
      try { path = new URL(uri).pathname } catch { throw new IppStatusError(Status.clientErrorBadRequest, `job-uri ${uri} is not a URI`) }
      const m = JOB_URI_PATH.exec(path)
      if (m === null) throw new IppStatusError(Status.clientErrorNotFound, `job-uri ${uri} names no job of this server`)
      id = Number(m[1])
    } else if (ctx.pathJobId !== undefined) {
      id = ctx.pathJobId
    }
  }
  if (id === undefined) throw new IppStatusError(Status.clientErrorBadRequest, 'missing job-id or job-uri')
  if (id < 1) throw new IppStatusError(Status.clientErrorNotFound, `job ${id} not found`)
  const job = ctx.domain.getJob(id)
  if (job === undefined) throw new IppStatusError(Status.clientErrorNotFound, `job ${id} not found`)
  return job
}

/** The operation attributes every request may carry (RFC 8011 4.1.4 and common extensions). */
const COMMON_OPERATION_ATTRIBUTES = ['attributes-charset', 'attributes-natural-language', 'printer-uri', 'requesting-user-name', 'requesting-user-uri', 'job-uri', 'job-id']

/**
 * Operation attributes the handler does not know, for the unsupported-attributes group
 * (RFC 8011 4.1.7: ignored, reported, status successful-ok-ignored-or-substituted-attributes).
 */
export function unknownOperationAttributes (ctx: OperationContext, known: readonly string[]): IppAttribute[] {
  return ctx.operation
    .filter((a) => !COMMON_OPERATION_ATTRIBUTES.includes(a.name) && !known.includes(a.name))
    .map((a) => attr(a.name, Tag.unsupported, null))
}

/** successful-ok, or successful-ok-ignored-or-substituted-attributes when something was left out. */
export function okStatus (unsupported: readonly IppAttribute[]): number {
  return unsupported.length === 0 ? Status.successfulOk : Status.successfulOkIgnoredOrSubstitutedAttributes
}
