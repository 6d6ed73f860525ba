/**
 * Handover: a workstation's client whose site turned client spooling off hands each job it
 * takes to its site's server, which holds it as its own job (the site's spool, the site's
 * limits, released as any of its jobs). Both halves live here:
 *
 *   client (HandOverSender, node/handover.ts runs it)     site (HandOverDesk, in the roaming service)
 *   held → releasing, granted to the site ─────────────►
 *   `handover` request (the job as analysed) ───────────► checks: a certified client of this site
 *                                                          creates its job (owner, name, copies…)
 *                     ◄───────────────────────────────── fetches the document (blob, by sha256)
 *   asks again while `adopting` ────────────────────────► analyses it again; held there
 *   `adopted` (its job there) ◄──────────────────────────
 *   releasing → deleted, bytes removed here
 *
 * Invariants:
 *   1. A job is either handed over or released at a printer, never both: the handover is a
 *      grant of the client (`held → releasing`), as any release is (JobService.grantHandOver).
 *   2. The site takes each client job at most once: its job records `handedOverFrom`, and a
 *      request for a job it already took answers with that job (JobService.handedOver), so a
 *      client that crashed before recording the answer asks again safely.
 *   3. Nothing acknowledged is lost: the client deletes its copy only after the site answered
 *      `adopted` (the site's job durably held); a refusal keeps the job held on the workstation.
 * The site answers at once (`adopting`) and the client asks again, so a large document never
 * holds a request open longer than the release protocol's handler timeout.
 */
import { createReadStream } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { PeerId, SiteId } from '../../crdt/names.ts'
import type { Spool } from '../spool.ts'
import type { JobService } from './service.ts'
import type { IntakeLimits } from './intake-limits.ts'
import { documentTooLarge } from './intake-limits.ts'
import { CorruptDocumentError, UnsupportedFormatError } from '../documents/errors.ts'
import { HANDOVER_PRINTER, JobError, type HandOverReply, type HandOverRequest, type JobRecord, type RoamingLink } from './types.ts'

/** The grant a client gives its site for a handover: long enough to move and analyse a 1 GB document on a slow link. */
export const HANDOVER_GRANT_TTL_MS = 10 * 60_000
/** A client asks its site about a handover under way this often, and looks for jobs to hand over. */
export const HANDOVER_POLL_MS = 1_000
/** A handover request that gets no answer within this is asked again on the next pass. */
const REQUEST_TIMEOUT_MS = 10_000
/** Handovers under way (and refusals not read yet) the site keeps at once: more is a flood, answered "busy, ask again". */
const MAX_REMEMBERED = 1_000
/** Takes under way from one client at once: as many transfers as a holder serves one peer (transports/blob.ts); more wait for a later ask. */
export const MAX_TAKES_PER_CLIENT = 4
/** A refusal not read by its client within this is forgotten (the client asks once a second while it waits for one). */
const REFUSAL_KEPT_MS = 10 * 60_000

export interface HandOverDeskComponents {
  jobs: JobService
  link: RoamingLink
  /** Where documents being taken are fetched to (a `tmp` folder emptied at start). */
  copies: Spool
  /** The site and role of a certified peer of the mesh, from its certificate. */
  memberOf: (peer: PeerId) => { role: string, site?: SiteId } | undefined
  /** Aborted when the site stops: a handover under way outlives the request that started it, not the site. */
  signal: () => AbortSignal
  logger: Logger
}

/** The site will not take a job (no queue, a document that is not what the client declared): told to the client. */
export class HandOverRefusedError extends JobError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'HandOverRefusedError' }
}

/** A site server's side: takes the jobs its workstations' clients hand over. */
export class HandOverDesk {
  /** Handovers under way, or refused with the refusal not read yet, by `peer/jobId` (a job taken is answered from its record). */
  private readonly pending = new Map<string, { peer: PeerId, done: boolean, at: number, reply?: HandOverReply }>()
  private readonly log: Logger

  /** `maxPending`: handovers kept in hand at once (default {@link MAX_REMEMBERED}; tests use fewer). */
  constructor (private readonly init: { site: SiteId, limits: IntakeLimits, maxPending?: number }, private readonly c: HandOverDeskComponents) {
    this.log = c.logger.child({ component: 'handover' })
  }

  /** Answers a client's handover request: starts taking the job, or says how far it got. */
  handOver (peer: PeerId, request: HandOverRequest): HandOverReply {
    const member = this.c.memberOf(peer)
    if (member?.role !== 'client' || member.site !== this.init.site) {
      return { ok: false, error: 'not-authorized', message: `only a workstation's client of site ${this.init.site} hands jobs over to it` }
    }
    const taken = this.c.jobs.handedOver(peer, request.jobId)
    if (taken !== undefined) return { ok: true, state: 'adopted', jobId: taken.id, ippId: taken.ippId }
    const key = `${peer}/${request.jobId}`
    this.forgetOldRefusals()
    const entry = this.pending.get(key)
    if (entry !== undefined) {
      if (!entry.done) return { ok: true, state: 'adopting' }
      this.pending.delete(key)
      if (entry.reply !== undefined) return entry.reply
    }
    if (this.pending.size >= (this.init.maxPending ?? MAX_REMEMBERED)) return { ok: false, error: 'invalid-state', message: 'the site is taking too many jobs at once; asked again later' }
    if ([...this.pending.values()].filter((p) => p.peer === peer && !p.done).length >= MAX_TAKES_PER_CLIENT) {
      return { ok: false, error: 'invalid-state', message: `the site takes ${MAX_TAKES_PER_CLIENT} jobs from a workstation at a time; asked again later` }
    }
    const work: { peer: PeerId, done: boolean, at: number, reply?: HandOverReply } = { peer, done: false, at: Date.now() }
    this.pending.set(key, work)
    void this.take(peer, request, this.c.signal()).then(
      // taken: its record answers from now on
      () => { this.pending.delete(key) },
      (err: unknown) => {
        if (err instanceof JobError || err instanceof CorruptDocumentError || err instanceof UnsupportedFormatError) {
          work.reply = { ok: false, error: 'refused', message: err.message }
          this.log.warn({ client: peer, job: request.jobId, err: err.message }, 'a job handed over was refused')
        } else {
          // the transfer broke off, the disk failed, the site is stopping: the client asks again and it is tried again
          this.pending.delete(key)
          this.log.info({ client: peer, job: request.jobId, err: (err as Error).message }, 'a handover broke off; the client asks again')
        }
      }
    ).finally(() => { work.done = true; work.at = Date.now() })
    return { ok: true, state: 'adopting' }
  }

  private forgetOldRefusals (): void {
    const before = Date.now() - REFUSAL_KEPT_MS
    for (const [key, entry] of this.pending) if (entry.done && entry.at < before) this.pending.delete(key)
  }

  /** Creates this site's job, fetches the document from the client and holds it (analysed here again). */
  private async take (peer: PeerId, request: HandOverRequest, signal: AbortSignal): Promise<JobRecord> {
    // the site's default queue: the job is then the site's as if printed to it (held, or printed on arrival)
    const queue = this.c.jobs.queues().find((q) => q.pinned !== true)
    if (queue === undefined) throw new HandOverRefusedError('this site has no queue to take jobs into')
    // refused from the size the client declares, before a byte moves; the fetch holds it to that size
    const maxBytes = this.init.limits.maxDocumentBytes
    if (request.size > maxBytes) throw documentTooLarge(maxBytes)
    const job = await this.c.jobs.createJob({
      queue: queue.name,
      owner: request.owner,
      name: request.name,
      copies: request.copies,
      sides: request.sides,
      ...(request.media !== undefined ? { media: request.media } : {}),
      // the site's limits per user apply; the "address" is the workstation's peer
      intake: { address: `peer:${peer}`, limits: this.init.limits },
      handedOverFrom: { peer, jobId: request.jobId }
    })
    // a file of its own: two jobs of one document may be taken at once
    const dest = join(this.c.copies.dir, 'tmp', `handover-${randomUUID()}`)
    const fetching = new AbortController()
    let oversized: Error | undefined
    const onProgress = (received: number, size: number): void => {
      if (size !== request.size || received > request.size) {
        oversized = new HandOverRefusedError(`the document is ${size} bytes, not the ${request.size} the workstation declared`)
        fetching.abort(oversized)
      }
    }
    try {
      try {
        await this.c.link.fetch(peer, request.sha256, dest, AbortSignal.any([signal, fetching.signal]), onProgress)
      } catch (err) {
        throw oversized ?? err
      }
      const held = await this.c.jobs.addDocument(job.ippId, { format: request.format, data: createReadStream(dest) })
      this.log.info({ client: peer, clientJob: request.jobId, job: held.ippId, owner: held.owner, pages: held.pages }, 'job handed over by a workstation')
      return held
    } catch (err) {
      // the job never got its document: failed here (not counted as taken), the client keeps its own
      if (this.c.jobs.getById(job.id)?.state === 'received') await this.c.jobs.cancel(job.id, { user: job.owner, admin: true }).catch(() => {})
      throw err
    } finally {
      await rm(dest, { force: true })
      await rm(`${dest}.partial`, { force: true })
    }
  }
}

export interface HandOverSenderComponents {
  jobs: JobService
  link: RoamingLink
  /** Whether the site wants its clients' jobs (client spooling off), read at each pass. */
  handingOver: () => boolean
  /** A server of this client's site that is connected now, if any. */
  siteServer: () => PeerId | undefined
  logger: Logger
}

/** A client's side: hands its held jobs to the site while the site wants them. */
export class HandOverSender {
  private readonly log: Logger
  /** Jobs the site refused: kept here, not offered again until the client restarts. */
  private readonly refused = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private readonly abort = new AbortController()

  constructor (private readonly init: { site: SiteId }, private readonly c: HandOverSenderComponents) {
    this.log = c.logger.child({ component: 'handover' })
  }

  start (): void {
    if (this.c.link.handOver === undefined) return
    const loop = (): void => {
      this.running = this.pass().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'handover pass failed; tried again') })
      void this.running.finally(() => { if (!this.abort.signal.aborted) this.timer = setTimeout(loop, HANDOVER_POLL_MS) })
    }
    loop()
  }

  async stop (): Promise<void> {
    this.abort.abort()
    clearTimeout(this.timer)
    await this.running
  }

  /** One pass: asks about handovers under way, and starts those of held jobs when the site wants them. */
  async pass (): Promise<void> {
    const underWay = this.c.jobs.listJobs({ which: 'not-completed' }).filter((j) => j.state === 'releasing' && j.grant?.printer === HANDOVER_PRINTER)
    for (const job of underWay) await this.ask(job)
    if (!this.c.handingOver()) return
    const site = this.c.siteServer()
    if (site === undefined) return // kept here (client spooling) until a server of the site is back
    const held = this.c.jobs.listJobs({ which: 'not-completed' }).filter((j) => j.state === 'held' && j.sha256 !== undefined && j.pinned !== true && !this.refused.has(j.id))
    for (const job of held) {
      if (this.abort.signal.aborted) return
      try {
        const granted = await this.c.jobs.grantHandOver(job.id, { peer: site, site: this.init.site }, HANDOVER_GRANT_TTL_MS)
        await this.ask(granted)
      } catch (err) {
        // released or deleted meanwhile: nothing to hand over
        this.log.debug({ job: job.id, err: (err as Error).message }, 'not handed over')
      }
    }
  }

  private async ask (job: JobRecord): Promise<void> {
    const grant = job.grant
    if (grant === undefined || this.c.link.handOver === undefined || job.sha256 === undefined || job.size === undefined) return
    const request: HandOverRequest = {
      jobId: job.id,
      grantId: grant.id,
      owner: job.owner,
      name: job.name,
      copies: job.copies,
      sides: job.sides,
      ...(job.media !== undefined ? { media: job.media } : {}),
      format: job.format ?? 'application/octet-stream',
      sha256: job.sha256,
      size: job.size
    }
    let reply: HandOverReply
    try {
      reply = await this.c.link.handOver(grant.peer, request, AbortSignal.any([this.abort.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]))
    } catch (err) {
      this.log.debug({ job: job.id, err: (err as Error).message }, 'the site did not answer a handover; asked again')
      return
    }
    if (reply.ok && reply.state === 'adopted') {
      await this.c.jobs.completeHandOver(job.id, grant.id, reply.ippId)
    } else if (!reply.ok && (reply.error === 'refused' || reply.error === 'not-authorized')) {
      // for good: kept here (client spooling) and not offered again until the client restarts
      this.refused.add(job.id)
      await this.c.jobs.refuseHandOver(job.id, grant.id, `site ${grant.site} refused it: ${reply.message}`)
      this.log.warn({ job: job.id, site: grant.site, error: reply.error, message: reply.message }, 'the site refused a job handed over; kept here')
    } else if (!reply.ok) {
      // busy, or a hiccup: asked again on a later pass, the job staying granted to the site
      this.log.debug({ job: job.id, site: grant.site, error: reply.error, message: reply.message }, 'the site cannot take the job now; asked again')
    }
  }
}
