/**
 * Job creation: Print-Job, Validate-Job, Create-Job and Send-Document. A job has one
 * document (multiple-document-jobs-supported is false). The document streams from the
 * request into the domain, decompressed on the way when `compression` says so, and the
 * request is acknowledged only once the domain has made the job durable. The intake's limits
 * (devices/jobs/intake-limits.ts) go with the job: a document past the decompression ratio
 * (checked here, as it inflates), the document size or the job's pages (checked by the
 * domain) ends as client-error-request-entity-too-large, and so does a job that declares
 * more (`job-k-octets`, `job-impressions`) before any byte is read; a user or address
 * holding its quota gets client-error-not-possible. The job's owner is the authenticated
 * user when the request authenticated, else its requesting-user-name; a queue with
 * `authenticatedIntake` takes no job without a login.
 */
import type { Readable, Transform } from 'node:stream'
import { createGunzip, createInflate, createInflateRaw } from 'node:zlib'
import { TERMINAL_STATES, UNCLAIMED_OWNER, type CreateJobRequest, type JobRecord } from '../../jobs/types.ts'
import { IntakeTooLargeError, formatBytes } from '../../jobs/intake-limits.ts'
import { boundedInflate } from '../decompression.ts'
import { checkJobTemplate, supportedFormats, AUTO_DETECT_FORMAT, COMPRESSIONS } from '../capabilities.ts'
import { IppStatusError } from '../errors.ts'
import { ippStatusOf } from '../mapping.ts'
import { RequestAbortedError } from '../request-stream.ts'
import { Tag, Status, attr, type IppAttribute } from '../wire.ts'
import {
  opAttr, opName, opString, opKeyword, opBoolean, opInteger, targetJob, jobGroup, unknownOperationAttributes, okStatus, intakeUser,
  JOB_CREATION_RESPONSE, type OperationContext, type OperationHandler, type OperationResult
} from './common.ts'

/** job-name when neither job-name nor document-name is given. */
const UNTITLED = 'Untitled'

/** Operation attributes of job creation (RFC 8011 4.2.1.1, 4.2.4.1) beyond the common ones. */
const CREATION_ATTRIBUTES = [
  'job-name', 'ipp-attribute-fidelity', 'document-name', 'compression', 'document-format',
  'document-natural-language', 'job-k-octets', 'job-impressions', 'job-media-sheets', 'document-format-detected'
]
const SEND_DOCUMENT_ATTRIBUTES = ['last-document', 'document-name', 'compression', 'document-format', 'document-natural-language']

/** What a job-creating request asked for, checked. */
interface PreparedJob {
  request: CreateJobRequest
  format: string
  compression: string
  unsupported: IppAttribute[]
}

/** Checks document-format: client-error-document-format-not-supported unless the queue takes it. */
function documentFormat (ctx: OperationContext): string {
  const declared = opString(ctx, 'document-format', [Tag.mimeMediaType])
  if (declared === undefined) return AUTO_DETECT_FORMAT
  const format = declared.toLowerCase()
  if (!supportedFormats(ctx.domain.supportedFormats()).includes(format)) {
    throw new IppStatusError(Status.clientErrorDocumentFormatNotSupported, `document-format ${declared} is not supported`,
      [attr('document-format', Tag.mimeMediaType, declared)])
  }
  return format
}

/** Checks compression: client-error-compression-not-supported unless none, gzip or deflate. */
function compression (ctx: OperationContext): string {
  const value = opKeyword(ctx, 'compression') ?? 'none'
  if (!COMPRESSIONS.includes(value)) {
    throw new IppStatusError(Status.clientErrorCompressionNotSupported, `compression ${value} is not supported`,
      [attr('compression', Tag.keyword, value)])
  }
  return value
}

/** Rejects with client-error-attributes-or-values-not-supported when fidelity is asked for and something is unsupported. */
function enforceFidelity (ctx: OperationContext, unsupported: IppAttribute[]): void {
  if (unsupported.length > 0 && opBoolean(ctx, 'ipp-attribute-fidelity') === true) {
    throw new IppStatusError(Status.clientErrorAttributesOrValuesNotSupported,
      `not supported: ${unsupported.map((a) => a.name).join(', ')}`, unsupported)
  }
}

/**
 * Refuses a job that says it is larger than the intake takes: `job-k-octets` beyond the
 * document size, `job-impressions` beyond the pages per job (the ranges advertised as
 * job-k-octets-supported and job-impressions-supported).
 */
function checkDeclaredSize (ctx: OperationContext, copies: number): void {
  const kOctets = opInteger(ctx, 'job-k-octets')
  if (kOctets !== undefined && kOctets * 1024 > ctx.limits.maxDocumentBytes) {
    throw new IntakeTooLargeError('document-size', `document too large: job-k-octets says ${formatBytes(kOctets * 1024)}, the largest document this printer accepts is ${formatBytes(ctx.limits.maxDocumentBytes)}`)
  }
  const impressions = opInteger(ctx, 'job-impressions')
  if (impressions !== undefined && impressions * copies > ctx.limits.maxJobImpressions) {
    throw new IntakeTooLargeError('job-impressions', `job too large: job-impressions says ${impressions * copies} pages; this printer prints at most ${ctx.limits.maxJobImpressions} pages per job (pages × copies)`)
  }
}

/**
 * Checks everything a job-creating request says, before any job exists: first who owns the
 * job (on a queue with authenticated intake, nothing else is looked at without a login).
 */
function prepareJob (ctx: OperationContext): PreparedJob {
  const owner = intakeUser(ctx, ctx.queue)
  const format = documentFormat(ctx)
  const comp = compression(ctx)
  const name = opName(ctx, 'job-name') ?? opName(ctx, 'document-name') ?? UNTITLED
  opBoolean(ctx, 'ipp-attribute-fidelity') // syntax check
  const { template, unsupported } = checkJobTemplate(ctx.jobTemplate)
  checkDeclaredSize(ctx, template.copies)
  unsupported.unshift(...unknownOperationAttributes(ctx, CREATION_ATTRIBUTES))
  enforceFidelity(ctx, unsupported)
  return {
    request: {
      queue: ctx.queue.name,
      owner,
      name,
      copies: template.copies,
      sides: template.sides,
      ...(template.media !== undefined ? { media: template.media } : {}),
      ...(template.holdUntil !== undefined ? { holdUntil: template.holdUntil } : {}),
      intake: { address: ctx.address, limits: ctx.limits }
    },
    format,
    compression: comp,
    unsupported
  }
}

/**
 * The inflater for IPP `deflate`: RFC 1951 raw deflate, though some clients send a zlib
 * (RFC 1950) stream; the first two bytes tell them apart. Peeks without consuming.
 */
async function inflaterFor (body: Readable): Promise<Transform> {
  const it = body.iterator({ destroyOnReturn: false })
  const first = await it.next()
  await it.return?.()
  if (first.done === true) return createInflateRaw()
  const chunk = first.value as Buffer
  body.unshift(chunk)
  const zlibHeader = chunk.length >= 2 && (chunk[0] & 0x0f) === 8 && ((chunk[0] << 8) | chunk[1]) % 31 === 0
  return zlibHeader ? createInflate() : createInflateRaw()
}

/** The status and message for a document that did not make it into the spool. */
function documentFailure (err: unknown, transportError: Error | undefined): IppStatusError | undefined {
  const cause = transportError ?? err
  if (cause instanceof Error && typeof (cause as NodeJS.ErrnoException).code === 'string' && (cause as NodeJS.ErrnoException).code?.startsWith('Z_') === true) {
    return new IppStatusError(Status.clientErrorCompressionError, `the document does not decompress: ${cause.message}`)
  }
  return undefined
}

/**
 * Streams the request's document into the domain. Maps the domain's format errors to
 * their IPP statuses (with the now aborted job in the response) and rethrows the rest.
 */
async function receiveDocument (ctx: OperationContext, job: JobRecord, format: string, comp: string): Promise<JobRecord> {
  const inflater = comp === 'gzip' ? createGunzip() : comp === 'deflate' ? await inflaterFor(ctx.body) : undefined
  let transportError: Error | undefined
  const data: Readable = inflater === undefined
    ? ctx.body
    : boundedInflate(ctx.body, inflater, ctx.limits.maxDecompressionRatio, (err) => { transportError = err })
  try {
    return await ctx.domain.addDocument(job.ippId, { format, data })
  } catch (err) {
    if (err instanceof RequestAbortedError || transportError instanceof RequestAbortedError) throw new RequestAbortedError()
    const after = ctx.domain.getJob(job.ippId)
    const groups = after === undefined ? [] : [jobGroup(ctx, after, JOB_CREATION_RESPONSE)]
    const failure = documentFailure(err, transportError)
    if (failure !== undefined) throw new IppStatusError(failure.status, failure.message, [], groups)
    const status = ippStatusOf(err)
    if (status !== undefined) throw new IppStatusError(status, (err as Error).message, [], groups, { cause: err })
    throw err
  } finally {
    if (!data.destroyed && !data.readableEnded) data.destroy() // the domain stopped early: release the pipeline
  }
}

export const printJob: OperationHandler = async (ctx) => {
  const prep = prepareJob(ctx)
  const job = await ctx.domain.createJob(prep.request)
  ctx.logger.debug({ job: job.ippId, owner: job.owner, format: prep.format }, 'Print-Job: receiving the document')
  const done = await receiveDocument(ctx, job, prep.format, prep.compression)
  return { status: okStatus(prep.unsupported), unsupported: prep.unsupported, groups: [jobGroup(ctx, done, JOB_CREATION_RESPONSE)] }
}

export const validateJob: OperationHandler = async (ctx) => {
  const prep = prepareJob(ctx)
  return { status: okStatus(prep.unsupported), unsupported: prep.unsupported }
}

export const createJob: OperationHandler = async (ctx) => {
  const prep = prepareJob(ctx)
  const job = await ctx.domain.createJob(prep.request)
  return { status: okStatus(prep.unsupported), unsupported: prep.unsupported, groups: [jobGroup(ctx, job, JOB_CREATION_RESPONSE)] }
}

/** True when the stream ends without a byte (a Send-Document that only closes the job). */
async function isEmpty (body: Readable): Promise<boolean> {
  for await (const chunk of body) {
    if ((chunk as Buffer).length > 0) return false
  }
  return true
}

export const sendDocument: OperationHandler = async (ctx): Promise<OperationResult> => {
  const job = targetJob(ctx)
  if (opAttr(ctx, 'last-document') === undefined) throw new IppStatusError(Status.clientErrorBadRequest, 'missing last-document')
  opBoolean(ctx, 'last-document')
  // a job nobody owns yet (its queue does not trust the name sent): the workstation that created it sends its document
  const sender = job.owner === UNCLAIMED_OWNER ? job.originatingHost === ctx.address : job.owner === intakeUser(ctx, ctx.domain.queue(job.queue))
  if (!sender) throw new IppStatusError(Status.clientErrorNotAuthorized, `job ${job.ippId} belongs to another user`)
  const format = documentFormat(ctx)
  const comp = compression(ctx)
  const unsupported = unknownOperationAttributes(ctx, SEND_DOCUMENT_ATTRIBUTES)
  enforceFidelity(ctx, unsupported)
  if (job.state !== 'received') {
    // The job already has its document. An empty Send-Document with last-document=true
    // only closes the job (RFC 8011 4.3.1); anything else would be a second document.
    const closing = opBoolean(ctx, 'last-document') === true && await isEmpty(ctx.body)
    if (closing) return { status: okStatus(unsupported), unsupported, groups: [jobGroup(ctx, job, JOB_CREATION_RESPONSE)] }
    if (TERMINAL_STATES.has(job.state)) {
      throw new IppStatusError(Status.clientErrorNotPossible, `job ${job.ippId} is already ${job.state}`)
    }
    throw new IppStatusError(Status.serverErrorMultipleDocumentJobsNotSupported, 'a job takes exactly one document')
  }
  const done = await receiveDocument(ctx, job, format, comp)
  return { status: okStatus(unsupported), unsupported, groups: [jobGroup(ctx, done, JOB_CREATION_RESPONSE)] }
}
