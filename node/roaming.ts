/**
 * Roaming over libp2p: the {@link RoamingLink} a site uses to reach the peers holding its
 * partners' jobs, and the handlers that answer them. Two protocols (transports/PROTOCOL.md):
 * `/printmesh/release/1.0.0` (one JSON request, one JSON response: grant, commit, settle, delete, print, handover)
 * and `/printmesh/blob/1.0.0` (the job's document). What the answers are is decided by
 * the roaming service (devices/jobs/roaming.ts); this module only translates.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { callRpc, handleRpc, RpcUnreachableError } from '../transports/rpc.ts'
import { fetchBlob, serveBlobs, BlobDeniedError, BlobHolderUnreachableError, BlobNotFoundError, type BlobServerOptions } from '../transports/blob.ts'
import { parseAdminCapability, type AdminCapability } from '../crdt/capability.ts'
import { SIDES } from '../devices/ipp/capabilities.ts'
import { peerId, type PeerId, type SiteId } from '../crdt/names.ts'
import { DocumentNotServedError, HolderUnreachableError, type DirectPrintRequest, type GrantRequest, type HandOverReply, type HandOverRequest, type RoamingHolder, type RoamingLink, type GrantReply, type SettleReply, type SettleReport } from '../devices/jobs/types.ts'

export const RELEASE_PROTOCOL = '/printmesh/release/1.0.0'
/** A holder answers a release request within this or the request fails. */
const RELEASE_HANDLER_TIMEOUT_MS = 15_000
/** Job ids are uuids; printer and user names are short. */
const MAX_FIELD_CHARS = 256
/** A release's message (why it was returned or failed), as the releasing peer recorded it. */
const MAX_MESSAGE_CHARS = 2_000

type Request =
  | { op: 'grant', request: GrantRequest }
  | { op: 'commit', jobId: string, grantId: string }
  | ({ op: 'settle' } & SettleReport)
  | { op: 'delete', jobId: string, user: string, adminCapability?: AdminCapability }
  | { op: 'print', request: DirectPrintRequest }
  | { op: 'handover', request: HandOverRequest }

const isField = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD_CHARS
/** Copies of one job a site takes: IPP's own bound on `copies` is far above any real job. */
const MAX_COPIES = 9_999
const SHA256_HEX = /^[0-9a-f]{64}$/
/** Media names as IPP has them (PWG 5101.1 self-describing names and their legacy aliases): lower case, digits and `_.-`. */
const MEDIA_NAME = /^[a-z0-9][a-z0-9_.-]*$/
const isCount = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max

/** Checks a handover request from the wire (a workstation's job, as its client describes it). */
function parseHandOver (g: unknown): { op: 'handover', request: HandOverRequest } | string {
  if (typeof g !== 'object' || g === null) return 'handover needs a request'
  const r = g as Record<string, unknown>
  if (!isField(r.jobId) || !isField(r.grantId) || !isField(r.owner) || !isField(r.name) || !isField(r.sides) || !isField(r.format)) return 'handover needs jobId, grantId, owner, name, sides and format'
  if (!SIDES.includes(r.sides)) return `handover sides must be one of ${SIDES.join(', ')}`
  if (r.owner.startsWith('#')) return 'handover owner must be a user name (names starting with # are the product\'s own)'
  if (!isCount(r.copies, MAX_COPIES) || r.copies < 1) return `handover copies must be 1-${MAX_COPIES}`
  if (typeof r.sha256 !== 'string' || !SHA256_HEX.test(r.sha256)) return 'handover sha256 must be 64 hex digits'
  if (!isCount(r.size, Number.MAX_SAFE_INTEGER)) return 'handover size must be a byte count'
  if (r.media !== undefined && (!isField(r.media) || !MEDIA_NAME.test(r.media))) return 'handover media must be a media name (PWG 5101.1, e.g. iso_a4_210x297mm)'
  return {
    op: 'handover',
    request: { jobId: r.jobId, grantId: r.grantId, owner: r.owner, name: r.name, copies: r.copies, sides: r.sides, format: r.format, sha256: r.sha256, size: r.size, ...(r.media !== undefined ? { media: r.media } : {}) }
  }
}

/** Checks a request from the wire; a string says what is wrong. */
export function parseReleaseRequest (raw: unknown): Request | string {
  if (typeof raw !== 'object' || raw === null) return 'request must be a JSON object'
  const r = raw as Record<string, unknown>
  if (r.op === 'grant') {
    const g = r.request as Record<string, unknown> | undefined
    if (typeof g !== 'object' || g === null || !isField(g.jobId) || !isField(g.user) || !isField(g.printer)) return 'grant needs jobId, user and printer'
    const capability = adminCapabilityOf(g)
    if (typeof capability === 'string') return capability
    return { op: 'grant', request: { jobId: g.jobId, user: g.user, printer: g.printer, ...(capability !== undefined ? { adminCapability: capability } : {}) } }
  }
  if (r.op === 'print') {
    const g = r.request as Record<string, unknown> | undefined
    if (typeof g !== 'object' || g === null || !isField(g.jobId) || !isField(g.user) || !isField(g.printer) || !isField(g.printerUri) || !isField(g.printerLabel)) return 'print needs jobId, user, printer, printerUri and printerLabel'
    const capability = adminCapabilityOf(g)
    if (typeof capability === 'string') return capability
    return { op: 'print', request: { jobId: g.jobId, user: g.user, printer: g.printer, printerUri: g.printerUri, printerLabel: g.printerLabel, ...(capability !== undefined ? { adminCapability: capability } : {}) } }
  }
  if (r.op === 'handover') return parseHandOver(r.request)
  if (r.op === 'commit') return isField(r.jobId) && isField(r.grantId) ? { op: 'commit', jobId: r.jobId, grantId: r.grantId } : 'commit needs jobId and grantId'
  if (r.op === 'settle') {
    if (!isField(r.jobId) || !isField(r.grantId)) return 'settle needs jobId and grantId'
    if (r.state !== 'printed' && r.state !== 'failed' && r.state !== 'returned') return 'settle state must be printed, failed or returned'
    if (r.reason !== undefined && !isField(r.reason)) return 'settle reason must be a short string'
    if (r.message !== undefined && (typeof r.message !== 'string' || r.message.length > MAX_MESSAGE_CHARS)) return `settle message must be a string of at most ${MAX_MESSAGE_CHARS} characters`
    return { op: 'settle', jobId: r.jobId, grantId: r.grantId, state: r.state, ...(r.reason !== undefined ? { reason: r.reason } : {}), ...(r.message !== undefined ? { message: r.message } : {}) }
  }
  if (r.op === 'delete') {
    if (!isField(r.jobId) || !isField(r.user)) return 'delete needs jobId and user'
    const capability = adminCapabilityOf(r)
    if (typeof capability === 'string') return capability
    return { op: 'delete', jobId: r.jobId, user: r.user, ...(capability !== undefined ? { adminCapability: capability } : {}) }
  }
  return `unknown op ${JSON.stringify(r.op)}`
}

/** The request's admin capability, if any; a bare `admin` claim is refused (admins are proven, not claimed). */
function adminCapabilityOf (r: Record<string, unknown>): AdminCapability | undefined | string {
  if (r.adminCapability === undefined) {
    return r.admin === undefined || r.admin === false ? undefined : 'an admin claim must carry a signed adminCapability; admin: true is not taken on trust'
  }
  return parseAdminCapability(r.adminCapability)
}

/** Serves release requests and job documents for `holder`; returns the function that stops both. */
export async function serveRoaming (host: Libp2p, holder: RoamingHolder, logger: Logger, blobOptions: Partial<BlobServerOptions> = {}): Promise<() => Promise<void>> {
  const log = logger.child({ component: 'release-server' })
  const stopRpc = await handleRpc(host, RELEASE_PROTOCOL, async (peer, raw) => {
    const req = parseReleaseRequest(raw)
    if (typeof req === 'string') return { ok: false, error: 'bad-request', message: req }
    const from = peerId(peer) // the libp2p connection's authenticated peer
    switch (req.op) {
      case 'grant': return await holder.grant(from, req.request)
      case 'commit': return await holder.commit(from, req.jobId, req.grantId)
      case 'settle': {
        const { op: _op, ...report } = req
        return await holder.settle(from, report)
      }
      case 'delete': return await holder.deleteJob(from, req.jobId, req.user, req.adminCapability)
      case 'print': return await holder.printDirect(from, req.request)
      case 'handover': return await holder.handOver(from, req.request)
    }
  }, log, RELEASE_HANDLER_TIMEOUT_MS)
  const stopBlobs = await serveBlobs(host, {
    ...blobOptions,
    canFetch: (peer, sha) => holder.mayFetch(peerId(peer), sha),
    resolve: async (sha) => holder.blobPath(sha)
  }, logger)
  return async () => { await stopRpc(); await stopBlobs() }
}

/** The libp2p {@link RoamingLink}: `siteOf` names the holder's site in errors. */
export function libp2pRoamingLink (host: Libp2p, siteOf: (peer: string) => string | undefined): RoamingLink {
  const call = async (holder: string, request: Request, signal: AbortSignal): Promise<unknown> => {
    try {
      return await callRpc(host, RELEASE_PROTOCOL, holder, [], request, signal)
    } catch (err) {
      if (err instanceof RpcUnreachableError || signal.aborted) throw new HolderUnreachableError(siteOf(holder) ?? holder, (err as Error).message)
      throw err
    }
  }
  return {
    connected: (holder) => {
      try {
        return host.getConnections(peerIdFromString(holder)).some((c) => c.status === 'open')
      } catch {
        return false // not a peer id
      }
    },
    requestGrant: async (holder, request, signal) => await call(holder, { op: 'grant', request }, signal) as GrantReply,
    requestPrint: async (holder, request, signal) => await call(holder, { op: 'print', request }, signal) as Awaited<ReturnType<NonNullable<RoamingLink['requestPrint']>>>,
    handOver: async (site, request, signal) => await call(site, { op: 'handover', request }, signal) as HandOverReply,
    commit: async (holder, jobId, grantId, signal) => await call(holder, { op: 'commit', jobId, grantId }, signal) as Awaited<ReturnType<RoamingLink['commit']>>,
    settle: async (holder, report, signal) => await call(holder, { op: 'settle', ...report }, signal) as SettleReply,
    deleteJob: async (holder, jobId, user, signal, adminCapability) => await call(holder, { op: 'delete', jobId, user, ...(adminCapability !== undefined ? { adminCapability } : {}) }, signal) as Awaited<ReturnType<RoamingLink['deleteJob']>>,
    fetch: async (holder, sha256, dest, signal, onProgress) => {
      try {
        await fetchBlob(host, { peer: holder }, sha256, dest, { signal, ...(onProgress !== undefined ? { onProgress } : {}) })
      } catch (err) {
        if (err instanceof BlobHolderUnreachableError) throw new HolderUnreachableError(siteOf(holder) ?? holder, err.message)
        // the holder answered and said no: asking again changes nothing
        if (err instanceof BlobNotFoundError || err instanceof BlobDeniedError) throw new DocumentNotServedError(siteOf(holder) ?? holder, err.message)
        throw err
      }
    }
  }
}
