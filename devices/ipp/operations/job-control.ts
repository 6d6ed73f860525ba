/**
 * Cancel-Job, Hold-Job and Release-Job: each needs an authenticated requester (a user by
 * username and PIN, or an admin; requesting-user-name alone proves nothing), names a job
 * and asks the domain, acting as that requester; the domain decides whether they may (a
 * user: their own jobs; an admin: any), and the mapping turns its refusal into the IPP
 * status. Authentication is asked for first, before the job is looked up (as CUPS's
 * policies do), so an unauthenticated client always gets the challenge it can answer.
 */
import { Tag, type IppAttribute } from '../wire.ts'
import { authenticatedActor, targetJob, unknownOperationAttributes, okStatus, opString, type OperationContext, type OperationHandler } from './common.ts'

/** RFC 8011 job operations may carry a message for the operator; Hold-Job may carry job-hold-until. */
const JOB_OPERATION_ATTRIBUTES = ['message', 'job-hold-until']

function common (ctx: OperationContext): IppAttribute[] {
  opString(ctx, 'message', [Tag.textWithoutLanguage, Tag.textWithLanguage]) // syntax check
  return unknownOperationAttributes(ctx, JOB_OPERATION_ATTRIBUTES)
}

export const cancelJob: OperationHandler = async (ctx) => {
  const by = authenticatedActor(ctx, 'Cancel-Job')
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.cancel(job.ippId, by)
  return { status: okStatus(unsupported), unsupported }
}

export const holdJob: OperationHandler = async (ctx) => {
  const by = authenticatedActor(ctx, 'Hold-Job')
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.hold(job.ippId, by)
  return { status: okStatus(unsupported), unsupported }
}

export const releaseJob: OperationHandler = async (ctx) => {
  const by = authenticatedActor(ctx, 'Release-Job')
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.release(job.ippId, by)
  return { status: okStatus(unsupported), unsupported }
}
