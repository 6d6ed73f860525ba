/**
 * The terminal's implementation of the panel contract (ui/api.ts `PanelApi`): the jobs a
 * logged-in user can release at this device, released through the one release engine.
 *
 * It lists the user's jobs held here (device spooling: Hold and Pull queues) and those held
 * by other peers of its site (the site server, other terminals' Pull jobs) or of a partner
 * site. A job held here is released by the job service directly; any other through the
 * roaming path: a grant from its holder (at most once), the document fetched over the blob
 * protocol, printed on this terminal's printer, followed and charged once by this terminal
 * (its own accounting document).
 */
import type { Logger } from 'pino'
import type { JobView, Actor, Delegation } from '../devices/jobs/types.ts'
import { TERMINAL_STATES } from '../devices/jobs/types.ts'
import type { RoamingService } from '../devices/jobs/roaming.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { PanelApi, PanelJob, PanelStatus, PrinterView, ReleaseAllOutcome } from '../ui/api.ts'
import { probePrinter } from './site-api.ts'
import type { SyncTransport } from '../transports/types.ts'
import type { Membership } from '../crdt/membership.ts'
import type { SiteId } from '../crdt/names.ts'

/** A finished job stays on the panel this long, so the user sees it printed (or why it failed). */
export const FINISHED_SHOWN_MS = 5 * 60_000
/** Default idle logout of the panel: an MFP is shared, so a walked-away session must end soon. */
export const DEFAULT_IDLE_LOGOUT_MS = 60_000

export interface PanelInit {
  site: SiteId
  /** Name of the printer the panel releases to (the terminal's one device). */
  printer: string
  idleLogoutMs?: number
}

export interface PanelComponents {
  jobs: JobService
  roaming: RoamingService
  printers: ReadonlyMap<string, OutputDevice>
  transport: SyncTransport
  membership: Membership
  logger: Logger
  now: () => number
  /** Whose jobs a user may release as their delegate (the directory); without it, only their own. */
  delegation?: Delegation
}

export function createPanelApi (init: PanelInit, c: PanelComponents): PanelApi & { refreshPrinter: () => Promise<void> } {
  const device = c.printers.get(init.printer)
  if (device === undefined) throw new Error(`the panel's printer ${init.printer} is not configured`)
  /** What the printer last said of itself (probed every few seconds by the terminal). */
  let printer: PrinterView = { name: init.printer, uri: device.uri, state: 'unknown', message: 'not asked yet' }

  const shown = (j: JobView): boolean => !TERMINAL_STATES.has(j.state) || c.now() - j.updatedAt < FINISHED_SHOWN_MS
  const view = (j: JobView, actor: Actor): PanelJob => ({
    id: j.id,
    ...(j.owner !== actor.user ? { delegatedBy: j.owner } : {}),
    name: j.name,
    state: j.state,
    ...(j.pages !== undefined ? { pages: j.pages } : {}),
    ...(j.colorPages !== undefined ? { colorPages: j.colorPages } : {}),
    copies: j.copies,
    sides: j.sides,
    createdAt: j.createdAt,
    ...(j.source?.hostname !== undefined ? { source: j.source.hostname } : {}),
    ...(j.unavailable === true ? { unavailable: true as const } : {}),
    // a held job shows why it is held only when it is not the usual wait for release (a release refused, e.g. for credit)
    ...(j.message !== undefined && (j.state !== 'held' || (j.reason !== undefined && j.reason !== 'job-hold-until-specified')) ? { message: j.message } : {})
  })
  /** The jobs of `owner` here and at partners; `delegated`: only those its delegates may release. */
  const ownedBy = (owner: string, delegated: boolean): JobView[] => [...c.jobs.listJobs({ which: 'all', owner }), ...c.roaming.listPartnerJobs(owner)]
    .filter((j) => !delegated || j.delegable === true)
  /** The user's own jobs and those they may release as a delegate, newest first. */
  const mine = (actor: Actor): JobView[] => [
    ...ownedBy(actor.user, false),
    ...(c.delegation?.delegatorsOf(actor.user) ?? []).flatMap((owner) => ownedBy(owner, true))
  ]
    .filter((j) => j.state !== 'deleted' && j.state !== 'expired' && j.state !== 'received' && shown(j))
    .sort((a, b) => b.createdAt - a.createdAt)
  /** Whether this terminal holds the job itself (device spooling). */
  const local = (id: string): boolean => c.jobs.getById(id) !== undefined
  const release = async (actor: Actor, id: string): Promise<JobView> =>
    local(id) ? await c.jobs.release(id, actor, init.printer) : await c.roaming.releaseRemote(actor, id, init.printer)

  return {
    status (): PanelStatus {
      // online: connected to its site's server (other terminals of the site do not count)
      const online = c.transport.peers().some((p) => { const who = c.membership.info(p); return who?.role === 'site' && who.site === init.site })
      return {
        site: init.site,
        printer,
        online,
        idleLogoutMs: init.idleLogoutMs ?? DEFAULT_IDLE_LOGOUT_MS
      }
    },

    jobs: (actor) => mine(actor).map((j) => view(j, actor)),

    async release (actor, id) {
      return view(await release(actor, id), actor)
    },

    async releaseAll (actor): Promise<ReleaseAllOutcome> {
      const out: ReleaseAllOutcome = { released: [], refused: [] }
      for (const job of mine(actor).filter((j) => j.state === 'held').reverse()) {
        try {
          out.released.push(view(await release(actor, job.id), actor))
        } catch (err) {
          c.logger.info({ job: job.id, err: (err as Error).message }, 'release all: a job was refused')
          out.refused.push({ id: job.id, name: job.name, message: (err as Error).message })
        }
      }
      return out
    },

    async remove (actor, id) {
      if (local(id)) await c.jobs.cancel(id, actor)
      else await c.roaming.deleteRemote(actor, id)
    },

    async refreshPrinter () {
      printer = await probePrinter(init.printer, device)
    }
  }
}
