/** The operations this server implements, by operation id; every other id is answered server-error-operation-not-supported. */
import { Op } from '../wire.ts'
import type { OperationHandler } from './common.ts'
import { printJob, validateJob, createJob, sendDocument } from './print.ts'
import { cancelJob, holdJob, releaseJob } from './job-control.ts'
import { getJobAttributes, getJobs, getPrinterAttributes } from './queries.ts'
import { cupsGetClasses, cupsGetDefault, cupsGetPrinters } from './cups.ts'

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
  [Op.ReleaseJob, releaseJob],
  [Op.CupsGetDefault, cupsGetDefault],
  [Op.CupsGetPrinters, cupsGetPrinters],
  [Op.CupsGetClasses, cupsGetClasses]
])

/** Operations that act on one job (need job-id/job-uri rather than just printer-uri). */
export const JOB_OPERATIONS: ReadonlySet<number> = new Set([
  Op.SendDocument, Op.CancelJob, Op.GetJobAttributes, Op.HoldJob, Op.ReleaseJob
])

/** Operations addressed to the server as a whole: they need no printer-uri. */
export const SERVER_OPERATIONS: ReadonlySet<number> = new Set([Op.CupsGetDefault, Op.CupsGetPrinters, Op.CupsGetClasses])

/** Operations that may name the server itself (printer-uri `ipp://host/`): the server-wide ones, Get-Jobs, and job operations by job-id. */
export const SERVER_WIDE_OPERATIONS: ReadonlySet<number> = new Set([...SERVER_OPERATIONS, Op.GetJobs, ...JOB_OPERATIONS])

export type { OperationContext, OperationHandler, OperationResult, ServerUris } from './common.ts'
