/**
 * A standalone site's users, handed to central when the site joins a mesh, instead of being
 * wiped with its standalone directory. Right after its certificate is issued, the joining
 * site sends its users (PIN hashes included: they are salted scrypt hashes, the same under
 * any key) in batches over the enrollment protocol; central merges them into its directory
 * (node/enrollment.ts) and answers with a report:
 *
 * - a user central does not have is added, with the site as home site unless it had one;
 * - a user central already has is a conflict: central's record is kept, never overwritten;
 * - cards cannot move: their index is keyed by the old network key, which the mesh does not
 *   share, so each user's cards are dropped and listed, to be registered again;
 * - delegates are kept where the delegate is in central's directory afterwards.
 *
 * Only a site whose certificate was issued within {@link HANDOVER_WINDOW_MS} may hand users
 * over. If the handover fails, the site's start fails before it forgets its directory:
 * starting it again with the same join string repeats the handover (central answers the
 * certificate it already issued).
 */
import type { Logger } from 'pino'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc } from '../crdt/names.ts'
import { getUser, listUsers, putUser, validateUsername, type DirectoryUser } from '../crdt/directory.ts'
import type { Certificate } from '../crdt/license.ts'
import { requestEnrollment } from '../transports/enroll.ts'
import type { Host } from '../transports/host.ts'
import { checkEmail, checkFullName, checkGroups, checkHomeSite } from './user-fields.ts'

/** A joining site hands its users over within this of its certificate: a join, not a back door for members. */
export const HANDOVER_WINDOW_MS = 60 * 60_000
/** One batch's JSON stays below the enrollment protocol's 64 KiB message limit (transports/rpc.ts). */
const BATCH_BYTES = 48 * 1024
/** Central just answered the join: a batch that fails this many times in a row ends the start. */
const BATCH_ATTEMPTS = 5
const RETRY_MS = 2_000
/** A slow hash at any cost: PINs hashed at 2^15 before and at crdt/directory.ts `PIN_SCRYPT_N` since (the hash names its parameters). */
const PIN_HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/

/** One user as handed over: the record without its cards, and how many cards it had. */
export interface HandoverUser extends Omit<DirectoryUser, 'cards' | 'updatedAt'> { cardCount?: number }

/** What central did with the users handed over. */
export interface HandoverReport {
  added: string[]
  /** Users central kept its own record of, or could not take. */
  conflicts: Array<{ username: string, reason: string }>
  /** Users whose cards must be registered again. */
  cardsDropped: string[]
}

/** Central's side: merges `users` from site `site` into the directory; never changes a user it has. */
export async function mergeHandover (store: DocStore, cert: Certificate, users: unknown, now: number): Promise<HandoverReport> {
  const report: HandoverReport = { added: [], conflicts: [], cardsDropped: [] }
  if (!Array.isArray(users)) return { ...report, conflicts: [{ username: '', reason: 'users must be a list' }] }
  const doc = await store.open(directoryDoc())
  const fresh: DirectoryUser[] = []
  for (const raw of users as Array<Partial<HandoverUser>>) {
    const username = typeof raw?.username === 'string' ? raw.username : ''
    try {
      validateUsername(username)
      if (typeof raw.pinHash !== 'string' || !PIN_HASH.test(raw.pinHash)) throw new Error('no valid PIN hash')
      if (getUser(doc, username) !== undefined) {
        report.conflicts.push({ username, reason: 'central already has this user: kept central\'s record' })
        continue
      }
      const homeSite = checkHomeSite(typeof raw.homeSite === 'string' ? raw.homeSite : cert.site ?? '')
      fresh.push({
        username,
        fullName: checkFullName(typeof raw.fullName === 'string' ? raw.fullName : ''),
        pinHash: raw.pinHash,
        homeSite,
        ...(typeof raw.email === 'string' ? { email: checkEmail(raw.email) } : {}),
        ...(Array.isArray(raw.groups) ? { groups: checkGroups(raw.groups.filter((g): g is string => typeof g === 'string')) } : {}),
        ...(Array.isArray(raw.delegates) ? { delegates: raw.delegates.filter((d): d is string => typeof d === 'string' && d !== username) } : {}),
        ...(raw.disabled === true ? { disabled: true } : {}),
        source: 'local',
        updatedAt: now
      })
      if (typeof raw.cardCount === 'number' && raw.cardCount > 0) report.cardsDropped.push(username)
    } catch (err) {
      report.conflicts.push({ username, reason: `not taken: ${(err as Error).message}` })
    }
  }
  if (fresh.length > 0) {
    await store.transact(directoryDoc(), { kind: 'admin', user: `join:${cert.site ?? cert.peer}` }, (d) => {
      for (const u of fresh) {
        // delegates must be users of the mesh's directory
        const delegates = u.delegates?.filter((name) => getUser(d, name) !== undefined || fresh.some((f) => f.username === name))
        const { delegates: _, ...rest } = u
        putUser(d, { ...rest, ...(delegates !== undefined && delegates.length > 0 ? { delegates } : {}) })
      }
    })
  }
  report.added = fresh.map((u) => u.username)
  return report
}

/** The site's users as handed over, in batches that fit one enrollment message each. */
export function handoverBatches (users: readonly DirectoryUser[]): HandoverUser[][] {
  const batches: HandoverUser[][] = []
  let batch: HandoverUser[] = []
  let size = 0
  for (const { cards, updatedAt: _, ...rest } of users) {
    const user: HandoverUser = { ...rest, ...(cards !== undefined && cards.length > 0 ? { cardCount: cards.length } : {}) }
    const bytes = Buffer.byteLength(JSON.stringify(user)) + 1
    if (batch.length > 0 && size + bytes > BATCH_BYTES) { batches.push(batch); batch = []; size = 0 }
    batch.push(user)
    size += bytes
  }
  if (batch.length > 0) batches.push(batch)
  return batches
}

/** The handover failed; the site keeps its directory and its start fails (start it again to retry). */
export class HandoverError extends Error {
  constructor (message: string, options?: { cause?: unknown }) { super(message, options); this.name = 'HandoverError' }
}

/**
 * One handover request to central over the enrollment protocol, tried {@link BATCH_ATTEMPTS}
 * times {@link RETRY_MS} apart; `what` names what is handed over in the error.
 */
export async function requestHandover (host: Host, central: string, addrs: string[], request: Record<string, unknown>, what: string): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await requestEnrollment(host, central, addrs, request)
    } catch (err) {
      if (attempt >= BATCH_ATTEMPTS) throw new HandoverError(`could not hand this site's ${what} to central: ${(err as Error).message}; start the site again to retry`, { cause: err })
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }
}

/** The joining site's side: hands every user of its standalone directory to central and logs the report. */
export async function handOverUsers (host: Host, central: string, addrs: string[], store: DocStore, logger: Logger): Promise<HandoverReport> {
  const total: HandoverReport = { added: [], conflicts: [], cardsDropped: [] }
  const users = listUsers(await store.open(directoryDoc()))
  if (users.length === 0) return total
  for (const batch of handoverBatches(users)) {
    const answer = await requestHandover(host, central, addrs, { users: batch }, 'users') as { status?: string, reason?: string, handover?: HandoverReport } | undefined
    if (answer?.handover === undefined) throw new HandoverError(`central did not take this site's users: ${answer?.reason ?? 'no report in its answer'}`)
    total.added.push(...answer.handover.added)
    total.conflicts.push(...answer.handover.conflicts)
    total.cardsDropped.push(...answer.handover.cardsDropped)
  }
  logger.info({ added: total.added.length, conflicts: total.conflicts.length, cardsDropped: total.cardsDropped.length }, 'standalone users handed to central')
  for (const c of total.conflicts) logger.warn({ user: c.username }, `user not handed over: ${c.reason}`)
  if (total.cardsDropped.length > 0) logger.warn({ users: total.cardsDropped }, 'these users\' cards must be registered again on central: cards are keyed by the old network key')
  return total
}
