/**
 * The read-only operations: Get-Job-Attributes, Get-Jobs and Get-Printer-Attributes. None
 * needs authentication, except Get-Jobs with my-jobs: "my" jobs are those of the user the
 * request proves to be, not of the name it claims (a claimed name would tell anyone whose
 * jobs are whose). Job answers leave out what names other users' jobs (`jobGroup`), and
 * Get-Jobs lists nothing to an unauthenticated client when the site says so.
 */
import type { JobFilter } from '../../jobs/types.ts'
import { printerAttributes, isJobTemplatePrinterAttribute, supportedFormats } from '../capabilities.ts'
import { IppStatusError } from '../errors.ts'
import { JOB_TEMPLATE_ATTRIBUTES } from '../mapping.ts'
import { Tag, Status, attr, type IppGroup } from '../wire.ts'
import {
  targetJob, requested, jobGroup, opBoolean, opInteger, opKeyword, opString, unknownOperationAttributes, okStatus, authenticatedActor,
  type OperationHandler
} from './common.ts'

/** requested-attributes group keywords for job attributes. */
const JOB_GROUPS: Record<string, (name: string) => boolean> = {
  'job-template': (n) => JOB_TEMPLATE_ATTRIBUTES.has(n),
  'job-description': (n) => !JOB_TEMPLATE_ATTRIBUTES.has(n)
}
/** Get-Jobs answers with these unless asked for more (RFC 8011 4.2.6.1). */
const GET_JOBS_DEFAULT = ['job-id', 'job-uri']
const WHICH_JOBS: ReadonlyArray<JobFilter['which']> = ['completed', 'not-completed', 'all']

export const getJobAttributes: OperationHandler = async (ctx) => {
  const job = targetJob(ctx)
  const want = requested(ctx, 'all', JOB_GROUPS)
  const unsupported = unknownOperationAttributes(ctx, ['requested-attributes'])
  return { status: okStatus(unsupported), unsupported, groups: [jobGroup(ctx, job, want)] }
}

export const getJobs: OperationHandler = async (ctx) => {
  const which = opKeyword(ctx, 'which-jobs') ?? 'not-completed'
  if (!(WHICH_JOBS as readonly string[]).includes(which)) {
    throw new IppStatusError(Status.clientErrorAttributesOrValuesNotSupported, `which-jobs ${which} is not supported`,
      [attr('which-jobs', Tag.keyword, which)])
  }
  const limit = opInteger(ctx, 'limit')
  if (limit !== undefined && limit < 1) {
    throw new IppStatusError(Status.clientErrorAttributesOrValuesNotSupported, 'limit must be at least 1', [attr('limit', Tag.integer, limit)])
  }
  const myJobs = opBoolean(ctx, 'my-jobs') ?? false
  const owner = myJobs ? authenticatedActor(ctx, 'Get-Jobs with my-jobs').user : undefined
  const want = requested(ctx, GET_JOBS_DEFAULT, JOB_GROUPS)
  const unsupported = unknownOperationAttributes(ctx, ['which-jobs', 'limit', 'my-jobs', 'requested-attributes'])
  if (ctx.actor === undefined && ctx.anonymousJobs === 'none') return { status: okStatus(unsupported), unsupported, groups: [] }
  const jobs = ctx.domain.listJobs({
    // asked of the server as a whole (`lpstat -o`, printer-uri ipp://host/): every queue's jobs
    ...(ctx.serverWide === true ? {} : { queue: ctx.queue.name }),
    which: which as JobFilter['which'],
    ...(owner !== undefined ? { owner } : {}),
    ...(limit !== undefined ? { limit } : {})
  })
  const groups: IppGroup[] = jobs.slice(0, limit ?? jobs.length).map((job) => jobGroup(ctx, job, want))
  return { status: okStatus(unsupported), unsupported, groups }
}

/** Printer attributes returned only when named (PWG 5100.7: media-col-database can be large). */
export const PRINTER_EXPLICIT_ONLY: ReadonlySet<string> = new Set(['media-col-database'])
export const PRINTER_GROUPS: Record<string, (name: string) => boolean> = {
  'job-template': isJobTemplatePrinterAttribute,
  'printer-description': (n) => !isJobTemplatePrinterAttribute(n)
}

export const getPrinterAttributes: OperationHandler = async (ctx) => {
  const format = opString(ctx, 'document-format', [Tag.mimeMediaType])
  if (format !== undefined && !supportedFormats(ctx.domain.supportedFormats()).includes(format.toLowerCase())) {
    throw new IppStatusError(Status.clientErrorDocumentFormatNotSupported, `document-format ${format} is not supported`,
      [attr('document-format', Tag.mimeMediaType, format)])
  }
  const want = requested(ctx, 'all', PRINTER_GROUPS, PRINTER_EXPLICIT_ONLY)
  const unsupported = unknownOperationAttributes(ctx, ['requested-attributes', 'document-format', 'first-index', 'limit'])
  const queuedJobCount = ctx.domain.listJobs({ queue: ctx.queue.name, which: 'not-completed' }).length
  const attributes = printerAttributes({
    queue: ctx.queue,
    formats: ctx.domain.supportedFormats(),
    printerUri: ctx.uris.printerUri(ctx.queue.name),
    urisSupported: ctx.uris.printerUrisSupported(ctx.queue.name),
    moreInfoUri: ctx.uris.moreInfoUri(ctx.queue.name),
    queuedJobCount,
    limits: ctx.limits,
    now: ctx.now()
  }).filter((a) => want.has(a.name))
  return { status: okStatus(unsupported), unsupported, groups: [{ tag: Tag.printerAttributes, attributes }] }
}
