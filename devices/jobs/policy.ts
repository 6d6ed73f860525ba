/**
 * The site's print policy (issue 13 item 5; crdt/site-config.ts `PrintPolicy`) as a print sees
 * it: what the printer is told, and what is charged for it. Applied by the print engine of the
 * peer that prints (a site's server, a terminal, a workstation's client), for its own site, from
 * its replicas of the site's document and the directory: so a terminal cut off from its site and
 * central applies the policy it last received. A workstation's client applies forced duplex, but
 * knows no groups (the directory, with its credentials, does not reach clients), so it prints
 * monochrome-only users in colour: a known gap.
 *
 * One rule for both the print and its charge ({@link asPrinted}): a job forced to duplex is sent
 * two-sided and charged in duplex sheets; a job of a user in a monochrome-only group is sent with
 * `print-color-mode=monochrome` and charged no colour pages.
 */
import type { DocStore } from '../../crdt/store.ts'
import { directoryDoc, siteConfigDoc, type SiteId } from '../../crdt/names.ts'
import { readSiteSettings, type PrintPolicy } from '../../crdt/site-config.ts'
import { getUser } from '../../crdt/directory.ts'
import type { JobRecord } from './types.ts'

/** Sides a forced-duplex job prints with: portrait documents, the common case, bind on the long edge. */
export const FORCED_SIDES = 'two-sided-long-edge'

/** A job as it is printed and charged under a policy. */
export interface PrintedAs {
  /** The job with what the policy changed (sides; colour pages none when monochrome). */
  job: JobRecord
  /** The printer is told to print in monochrome. */
  monochrome: boolean
}

/** What `policy` makes of `job`, whose owner is in `groups` (the directory's; none when unknown). */
export function asPrinted (job: JobRecord, policy: PrintPolicy, groups: readonly string[]): PrintedAs {
  // group names compare without case: LDAP's `Students` is the policy's `students`
  const member = new Set(groups.map((g) => g.toLowerCase()))
  const monochrome = policy.monoGroups.some((g) => member.has(g.toLowerCase()))
  const duplex = policy.forceDuplex && job.sides === 'one-sided'
  if (!monochrome && !duplex) return { job, monochrome: false }
  return {
    job: {
      ...job,
      ...(duplex ? { sides: FORCED_SIDES } : {}),
      ...(monochrome ? { colorPages: 0 } : {})
    },
    monochrome
  }
}

/** The policy of `site` and the owner's groups, read from this peer's replicas now. */
export function printPolicyOf (store: DocStore, site: SiteId): (job: JobRecord) => PrintedAs {
  return (job) => {
    const { policy } = readSiteSettings(store.get(siteConfigDoc(site)), site)
    if (!policy.forceDuplex && policy.monoGroups.length === 0) return { job, monochrome: false }
    const directory = store.get(directoryDoc())
    const groups = directory === undefined ? [] : getUser(directory, job.owner)?.groups ?? []
    return asPrinted(job, policy, groups)
  }
}
