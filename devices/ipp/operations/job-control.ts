/**
 * Cancel-Job, Hold-Job and Release-Job: each names a job and asks the domain, acting as the
 * requesting user; the domain decides whether that user may, and the mapping turns its
 * refusal into the IPP status.
 */
import type { Actor } from '../../jobs/types.ts'
import { Tag, type IppAttribute } from '../wire.ts'
import { targetJob, unknownOperationAttributes, okStatus, opString, type OperationContext, type OperationHandler } from './common.ts'

/** End users act through IPP; admin rights come only through the authenticated web API. */
function actor (ctx: OperationContext): Actor {
  return { user: ctx.user, admin: false }
}

/** RFC 8011 job operations may carry a message for the operator; Hold-Job may carry job-hold-until. */
const JOB_OPERATION_ATTRIBUTES = ['message', 'job-hold-until']

function common (ctx: OperationContext): IppAttribute[] {
  opString(ctx, 'message', [Tag.textWithoutLanguage, Tag.textWithLanguage]) // syntax check
  return unknownOperationAttributes(ctx, JOB_OPERATION_ATTRIBUTES)
}

export const cancelJob: OperationHandler = async (ctx) => {
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.cancel(job.ippId, actor(ctx))
  return { status: okStatus(unsupported), unsupported }
}

export const holdJob: OperationHandler = async (ctx) => {
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.hold(job.ippId, actor(ctx))
  return { status: okStatus(unsupported), unsupported }
}

export const releaseJob: OperationHandler = async (ctx) => {
  const job = targetJob(ctx)
  const unsupported = common(ctx)
  await ctx.domain.release(job.ippId, actor(ctx))
  return { status: okStatus(unsupported), unsupported }
}
