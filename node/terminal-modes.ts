/**
 * The release modes a terminal offers for device spooling (issue 13), as its site's
 * configuration says: the site's admin sets them (`PUT /api/roaming/terminals`, the
 * `v1/site/<site>` document's terminal modes, crdt/site-config.ts), and each terminal of the
 * site applies them as they arrive, without a restart.
 *
 * Invariants:
 * 1. Until the site's document names modes, the terminal offers its own `--modes`
 *    ({@link TerminalModesInit.fallback}); once it does, the site's win, and the last ones
 *    received stay in force while the site is unreachable (they are in this peer's replica,
 *    persisted like every document, so a restart offline keeps them).
 * 2. A mode turned off stops taking jobs only: its queue answers `/printers/<mode>`
 *    Print-Job and Create-Job with `server-error-not-accepting-jobs` and a message naming the
 *    configuration, as CUPS answers for a rejecting destination (`cupsreject`). Every mode's
 *    queue stays in the job service, so a job already held in a mode turned off later is
 *    listed and released as before.
 * 3. `/ipp/print` (the IPP server's first queue) is the default mode; the DNS-SD
 *    advertisement and CUPS-Get-Printers list the offered modes only, default first.
 * 4. Where the site does not trust the `requesting-user-name` workstations send (its
 *    `trustUserName` false), every job taken is owned by nobody yet (`UNCLAIMED_OWNER`): held
 *    here, whatever its mode, until a user logged in at the panel claims it.
 */
import type { Logger } from 'pino'
import type { DocStore } from '../crdt/store.ts'
import { siteConfigDoc, type DocName, type SiteId } from '../crdt/names.ts'
import { readSiteSettings, type TerminalReleaseMode } from '../crdt/site-config.ts'
import type { JobService } from '../devices/jobs/service.ts'
import { UNCLAIMED_OWNER, type CreateJobRequest, type JobRecord, type QueueInfo } from '../devices/jobs/types.ts'
import { IppStatusError } from '../devices/ipp/errors.ts'
import { Status } from '../devices/ipp/wire.ts'

/** Where a terminal's offered modes come from. */
export type ModesSource = 'site' | 'option'

export interface OfferedModes {
  /** Offered modes, the default first (its queue also answers `/ipp/print`). */
  modes: TerminalReleaseMode[]
  source: ModesSource
  /** The job's owner is the `requesting-user-name` sent; false: nobody until a user claims it at the panel. */
  trustUserName: boolean
}

/** A job sent to the queue of a mode the site's configuration turned off. */
export class ModeNotOfferedError extends IppStatusError {
  constructor (readonly mode: string, terminal: string, site: SiteId, offered: readonly TerminalReleaseMode[]) {
    super(Status.serverErrorNotAcceptingJobs,
      `the ${mode} queue of ${terminal} is not accepting jobs: ${site}'s configuration turned it off; ` +
      `this terminal offers ${offered.join(', ')} (${offered[0]} at /ipp/print)`)
    this.name = 'ModeNotOfferedError'
  }
}

export interface TerminalModesInit {
  site: SiteId
  /** The terminal's name, in refusals. */
  name: string
  /** `--modes`: offered until the site's configuration names modes; the first is the default. */
  fallback: readonly TerminalReleaseMode[]
}

export interface TerminalModesComponents {
  store: DocStore
  logger: Logger
}

export class TerminalModes {
  private current: OfferedModes
  private readonly doc: DocName
  private readonly listeners = new Set<(now: OfferedModes) => void>()
  private readonly log: Logger
  private started = false
  private readonly onEntry = (name: DocName): void => { if (name === this.doc) this.refresh() }

  constructor (private readonly init: TerminalModesInit, private readonly c: TerminalModesComponents) {
    if (init.fallback.length === 0) throw new Error('a terminal offers at least one release mode')
    this.doc = siteConfigDoc(init.site)
    this.log = c.logger.child({ component: 'terminal-modes' })
    this.current = this.read()
  }

  /** Loads the site's document from this peer's store (the last configuration received) and follows its changes. */
  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    await this.c.store.open(this.doc)
    this.c.store.on('entry', this.onEntry)
    this.refresh()
    this.log.info({ modes: this.current.modes, source: this.current.source, trustUserName: this.current.trustUserName }, 'release modes offered')
  }

  stop (): void {
    if (!this.started) return
    this.started = false
    this.c.store.off('entry', this.onEntry)
  }

  offered (): OfferedModes { return this.current }

  /** Calls `listener` after each change of the offered modes; returns how to stop. */
  onChange (listener: (now: OfferedModes) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private read (): OfferedModes {
    const settings = readSiteSettings(this.c.store.get(this.doc), this.init.site)
    const configured = settings.terminals
    const trustUserName = settings.terminalsTrustUserName
    if (configured === undefined) return { modes: [...this.init.fallback], source: 'option', trustUserName }
    return { modes: [configured.defaultMode, ...configured.modes.filter((m) => m !== configured.defaultMode)], source: 'site', trustUserName }
  }

  private refresh (): void {
    const next = this.read()
    if (next.source === this.current.source && next.modes.join() === this.current.modes.join() && next.trustUserName === this.current.trustUserName) return
    this.log.info({ modes: next.modes, was: this.current.modes, source: next.source, trustUserName: next.trustUserName }, 'release modes changed by the site\'s configuration')
    this.current = next
    for (const listener of this.listeners) {
      try { listener(next) } catch (err) { this.log.error({ err }, 'applying the release modes failed') }
    }
  }

  /**
   * The job service as the IPP intake and DNS-SD see it: `queues()` lists the offered modes,
   * default first; `queue(name)` still finds every mode (so its path answers, with a clear
   * refusal), and creating a job in a mode not offered is refused ({@link ModeNotOfferedError});
   * where the name sent is not trusted, the job is nobody's until claimed.
   */
  intake (jobs: JobService): JobService {
    const queues = (): QueueInfo[] => this.current.modes.flatMap((m) => jobs.queue(m) ?? [])
    const createJob = async (req: CreateJobRequest): Promise<JobRecord> => {
      const { modes, trustUserName } = this.current
      if (!(modes as readonly string[]).includes(req.queue)) throw new ModeNotOfferedError(req.queue, this.init.name, this.init.site, modes)
      return await jobs.createJob(trustUserName ? req : { ...req, owner: UNCLAIMED_OWNER })
    }
    return new Proxy(jobs, {
      get (target, prop) {
        if (prop === 'queues') return queues
        if (prop === 'createJob') return createJob
        const value: unknown = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
}
