/**
 * Error kinds, in one place below every layer that raises errors (crdt, transports,
 * devices, node) and the layer that answers them (ui/ maps each kind to one HTTP status,
 * devices/ipp to IPP statuses where it needs to). An error class says what happened in
 * its own words; its `kind` says what the caller can do about it.
 */

/**
 * What a caller can do about an error:
 * - `not-found`: nothing by that name (job, printer, queue) here;
 * - `not-authorized`: this caller may not do this (another user's job, a site that is not a partner);
 * - `invalid-state`: not now (a printed job cannot be released; only central can do this);
 * - `invalid-request`: the request itself is wrong (bad field, bad settings);
 * - `unavailable`: someone this needs cannot be reached now; retry later.
 */
export type ErrorKind = 'not-found' | 'not-authorized' | 'invalid-state' | 'invalid-request' | 'unavailable'

/** An error whose kind the answering layers map to a status; subclasses name what happened. */
export abstract class KindedError extends Error {
  abstract readonly kind: ErrorKind
}

/** Whether `err` carries a kind. */
export function isKinded (err: unknown): err is KindedError {
  return err instanceof KindedError
}

/** A request field or body is wrong; the message says which and why. */
export class InvalidRequestError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'InvalidRequestError' }
}

/** Only the mesh's central node can do this (tokens, approvals, revocations, the directory). */
export class NotCentralError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('only the central node can do this'); this.name = 'NotCentralError' }
}
