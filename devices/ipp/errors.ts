/**
 * The error an IPP operation handler throws to end the request with a given IPP status.
 * The server turns it into a response (HTTP 200, the status in the IPP header, the
 * message in `status-message`, any unsupported attributes in their own group).
 */
import type { IppAttribute, IppGroup } from './wire.ts'

export class IppStatusError extends Error {
  constructor (
    /** IPP status code (`Status.*`). */
    readonly status: number,
    message: string,
    /** Attributes for the unsupported-attributes group (RFC 8011 4.1.7). */
    readonly unsupported: IppAttribute[] = [],
    /** Further groups for the response (e.g. the job a failed Print-Job created). */
    readonly groups: IppGroup[] = [],
    /** `cause`: the domain error it answers (the server counts intake refusals by it). */
    options?: ErrorOptions
  ) {
    super(message, options)
    this.name = 'IppStatusError'
  }
}
