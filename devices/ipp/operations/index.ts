/** The operations this server implements, by operation id; every other id is answered server-error-operation-not-supported. */
import { Op } from '../wire.ts'
import type { OperationHandler } from './common.ts'
import { printJob, validateJob, createJob, sendDocument } from './print.ts'
import { cancelJob, holdJob, releaseJob } from './job-control.ts'
import { getJobAttributes, getJobs, getPrinterAttributes } from './queries.ts'

export const OPERATIONS: ReadonlyMap<number, OperationHandler> = new Map([
  [Op.PrintJob, printJob],
  [Op.ValidateJob, validateJob],
  [Op.CreateJob, createJob],
  [Op.SendDocument, sendDocument],
  [Op.CancelJob, cancelJob],
  [Op.GetJobAttributes, getJobAttributes],
  [Op.GetJobs, getJobs],
  [Op.GetPrinterAttributes, getPrinterAttributes],
  [Op.HoldJob, holdJob],
  [Op.ReleaseJob, releaseJob]
])

/** Operations that act on one job (need job-id/job-uri rather than just printer-uri). */
export const JOB_OPERATIONS: ReadonlySet<number> = new Set([
  Op.SendDocument, Op.CancelJob, Op.GetJobAttributes, Op.HoldJob, Op.ReleaseJob
])

export type { OperationContext, OperationHandler, OperationResult, ServerUris } from './common.ts'
