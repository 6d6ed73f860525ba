/**
 * Copy sessions at a terminal: what a user copies at the MFP, charged through the device's
 * page counters (devices/counters). The logged-in user starts a session on the panel (the
 * counters are read), copies at the device, and ends it (Done, logging out, the panel's
 * idle logout, the next user's card); the counters are read again and the difference, less
 * what this terminal printed meanwhile, is charged to that user as one `copy` usage record
 * in this terminal's own accounting document — the document its prints are charged in, so
 * copies made offline reach the site and central the same way, once connected.
 *
 * Invariants:
 *   1. One session at a time (the device is one): a user starting one while another user's
 *      is open ends that one first, charged to its own user.
 *   2. Charged once: the record's id is `<session id>/copy`, the session id made at start
 *      and kept in the data folder; the record is written before the open session is
 *      cleared, and an existing record of that id is never written again.
 *   3. A terminal restarted with a session open closes it at start, with the counters read
 *      then (what the user copied before the restart, and anything copied while it was down,
 *      is charged to that user): a copy is never lost, at worst charged a little late.
 *   4. Prints are not charged twice: the impressions of every print this terminal charged on
 *      its printer between the two readings are subtracted. Prints are charged when the
 *      printer reports them done, so both readings wait (up to {@link PRINTS_SETTLE_MS}) until
 *      the prints this terminal has in hand are charged: a print is on one side of a reading.
 *   5. Never a guess: counters that cannot be read at the end, that went backwards, or that
 *      belong to another device (serial number) end the session as failed, with its start
 *      reading kept in the data folder (`copy-session.json`) and nothing charged. A start
 *      whose counters cannot be read opens no session.
 *   6. Credit (issue 20; devices/jobs/credit-gate.ts `CopyCredit`), when the mesh enforces it:
 *      a session starts only with some of the user's credit held here; the running count
 *      ends it (reason `credit`) once what was copied costs what is held here; its charge is
 *      paid from the share at its end, and anything copied beyond it (between two readings)
 *      is logged as unpaid, never taken from credit that is not there.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { DocStore } from '../crdt/store.ts'
import { acctDoc, periodOf, type PeerId, type SiteId } from '../crdt/names.ts'
import { hasUsage, listUsage, recordUsage, type UsageRecord } from '../crdt/accounting.ts'
import { pricedUsage } from '../crdt/prices.ts'
import { KindedError } from '../crdt/errors.ts'
import type { Actor } from '../devices/jobs/types.ts'
import type { CounterReading, DeviceCounters } from '../devices/counters/types.ts'
import type { CopyApi, CopyEndReason, CopyEndView, CopySessionView, FailedCopyView } from '../ui/api.ts'
import type { CopyCredit } from '../devices/jobs/credit-gate.ts'

/** The open session and the failed ones, in the terminal's data folder. */
export const COPY_SESSION_FILE = 'copy-session.json'
/** Failed sessions kept for an admin to settle by hand; the oldest go first past this (a device down for weeks). */
const FAILED_SESSIONS_KEPT = 200
/** The panel's running count reads the counters at most this often (SNMP is cheap, but not free for the device). */
export const COPY_PROGRESS_MS = 3_000
/** Longest wait for prints in hand to be charged before the counters are read: an MFP prints a job in seconds, and the user waits at the panel meanwhile. */
export const PRINTS_SETTLE_MS = 30_000
/** Longest a credit check or payment may take (asking other peers for shares): the user waits at the panel. */
const CREDIT_CHECK_MS = 10_000
/** How often the prints in hand are looked at while waiting. */
const PRINTS_POLL_MS = 100

/** Ending a session nobody has open (or another user's). */
export class NoCopySessionError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (user: string) { super(`${user} has no copy session open here`); this.name = 'NoCopySessionError' }
}

/** The counters could not be read at the start: no session is opened. */
export class CopyUnavailableError extends KindedError {
  readonly kind = 'unavailable'
  constructor (detail: string, options?: { cause?: unknown }) { super(`copying cannot be charged now, so it is not started: ${detail}`, options); this.name = 'CopyUnavailableError' }
}

/** The data folder's copy session file cannot be read: the terminal does not start rather than lose an open session. */
export class CopyStateFileError extends Error {
  constructor (file: string, detail: string) { super(`${file}: ${detail}`); this.name = 'CopyStateFileError' }
}

/** Two readings that cannot be subtracted: another device, or counters that went backwards. */
export class CountersMismatchError extends Error {
  constructor (message: string) { super(message); this.name = 'CountersMismatchError' }
}

interface OpenSession { id: string, user: string, startedAt: number, start: CounterReading }
interface FailedSession extends OpenSession { endedAt: number, reason: CopyEndReason, message: string }
interface StateFile { version: 1, open?: OpenSession, failed: FailedSession[] }

/** What a session copied: pages (impressions), colour pages, sheets, and the print impressions taken out. */
export interface CopyCharge { pages: number, colorPages: number, sheets: number, printPages: number }

const diff = (a: number | undefined, b: number | undefined): number | undefined => a !== undefined && b !== undefined ? b - a : undefined

/**
 * What a session copied, from its two readings and the prints charged between them. Colour
 * from the colour counter, else total less mono; a device that tells neither has every page
 * counted as colour (as a print whose colour was not analysed: an over-charge can be
 * refunded, an under-charge not recovered; `?color=none` declares a monochrome device).
 * Sheets from the sheet counter, else one per impression (copies taken as one-sided).
 * @throws CountersMismatchError for readings of two devices, or counters that went backwards
 */
export function copyCharge (start: CounterReading, end: CounterReading, prints: ReadonlyArray<Pick<UsageRecord, 'pages' | 'colorPages' | 'sheets'>>): CopyCharge {
  if (start.device.serial !== undefined && end.device.serial !== undefined && start.device.serial !== end.device.serial) {
    throw new CountersMismatchError(`the device answering is another one (serial ${end.device.serial}, the session started on ${start.device.serial})`)
  }
  const total = end.total - start.total
  const dColor = diff(start.color, end.color)
  const dMono = diff(start.mono, end.mono)
  const dSheets = diff(start.sheets, end.sheets)
  for (const [name, d] of [['total', total], ['colour', dColor], ['mono', dMono], ['sheets', dSheets]] as const) {
    if (d !== undefined && d < 0) throw new CountersMismatchError(`the device's ${name} counter went backwards by ${-d} (reset or replaced)`)
  }
  const color = dColor ?? (dMono !== undefined ? Math.max(0, total - dMono) : total)
  const mono = dMono ?? Math.max(0, total - color)
  const printPages = prints.reduce((n, p) => n + p.pages, 0)
  const printColor = prints.reduce((n, p) => n + p.colorPages, 0)
  const printSheets = prints.reduce((n, p) => n + p.sheets, 0)
  const colorPages = Math.max(0, color - printColor)
  const monoPages = Math.max(0, mono - (printPages - printColor))
  const pages = colorPages + monoPages
  const sheets = dSheets !== undefined ? Math.min(pages, Math.max(0, dSheets - printSheets)) : pages
  return { pages, colorPages, sheets, printPages }
}

export interface CopySessionsInit {
  peer: PeerId
  site: SiteId
  /** The terminal's printer's name (prints on it are subtracted; the copy record names it). */
  printer: string
  /** The data folder ({@link COPY_SESSION_FILE} lives there). */
  data: string
}

export interface CopySessionsComponents {
  store: DocStore
  counters: DeviceCounters
  logger: Logger
  now: () => number
  /** The terminal's print engine: the prints it has in hand are charged before the counters are read (invariant 4). */
  prints?: { inHand: () => number }
  /** Users' credit (node/credit.ts); none: copying needs no credit. */
  credit?: CopyCredit
  metrics?: { copySessionStarted: () => void, copySessionEnded: (outcome: CopyEndView['outcome'], charge?: { pages: number, colorPages: number }) => void }
}

export class CopySessions implements CopyApi {
  private state: StateFile = { version: 1, failed: [] }
  /** One operation at a time: starts, ends and the restart's close never interleave. */
  private queue: Promise<unknown> = Promise.resolve()
  private progressCache: { at: number, view: Pick<CopySessionView, 'copied' | 'countersError'> } | undefined
  private readonly log: Logger
  private readonly file: string

  constructor (private readonly init: CopySessionsInit, private readonly c: CopySessionsComponents) {
    this.log = c.logger.child({ service: 'copy' })
    this.file = join(init.data, COPY_SESSION_FILE)
  }

  /** Loads the session state; a session left open by the last run is closed now (invariant 3). */
  async start (): Promise<void> {
    let text: string | undefined
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (text !== undefined) {
      let parsed: StateFile
      try {
        parsed = JSON.parse(text) as StateFile
      } catch (err) {
        throw new CopyStateFileError(this.file, `not JSON (${(err as Error).message}); it holds the open copy session and failed ones: repair it, or move it away to start without them`)
      }
      if (parsed?.version !== 1 || !Array.isArray(parsed.failed)) throw new CopyStateFileError(this.file, `unknown layout (version ${String(parsed?.version)})`)
      this.state = { version: 1, failed: parsed.failed, ...(parsed.open !== undefined ? { open: parsed.open } : {}) }
    }
    const left = this.state.open
    if (left !== undefined) {
      this.log.info({ session: left.id, user: left.user, startedAt: new Date(left.startedAt).toISOString() }, 'a copy session was open when the terminal stopped: closing it with the counters now')
      void this.serial(async () => await this.close('restart')).catch((err: Error) => this.log.error({ err }, 'closing the copy session left open failed'))
    }
  }

  /** Waits for the operation in flight; closes the counters' reader. */
  async stop (): Promise<void> {
    await this.queue.catch(() => {})
    this.c.counters.close()
  }

  /** The failed sessions kept (start reading, why), newest last. */
  failed (): readonly FailedCopyView[] {
    return this.state.failed.map((f) => ({ id: f.id, user: f.user, startedAt: f.startedAt, endedAt: f.endedAt, reason: f.reason, message: f.message, start: f.start }))
  }

  async current (actor: Actor): Promise<CopySessionView | undefined> {
    const open = this.state.open
    if (open?.user !== actor.user) return undefined
    const now = this.c.now()
    if (this.progressCache === undefined || now - this.progressCache.at >= COPY_PROGRESS_MS) {
      try {
        const reading = await this.c.counters.read()
        const charge = copyCharge(open.start, reading, await this.printsBetween(open.start.at, reading.at))
        this.progressCache = { at: now, view: { copied: { pages: charge.pages, colorPages: charge.colorPages } } }
        if (await this.creditUsedUp(open, charge)) {
          await this.serial(async () => { if (this.state.open?.id === open.id) await this.close('credit') })
          return undefined
        }
      } catch (err) {
        this.progressCache = { at: now, view: { countersError: (err as Error).message } }
      }
    }
    return this.state.open?.id === open.id ? { ...this.view(open), ...this.progressCache.view } : undefined
  }

  async begin (actor: Actor): Promise<CopySessionView> {
    return await this.serial(async () => {
      const open = this.state.open
      if (open?.user === actor.user) return this.view(open)
      if (open !== undefined) await this.close('next-user')
      await this.c.credit?.allowCopy(actor.user, AbortSignal.timeout(CREDIT_CHECK_MS))
      let start: CounterReading
      try {
        await this.printsSettled()
        start = await this.c.counters.read()
      } catch (err) {
        this.log.warn({ user: actor.user, device: this.c.counters.address, err: (err as Error).message }, 'copy session not started: the device counters cannot be read')
        throw new CopyUnavailableError((err as Error).message, { cause: err })
      }
      const session: OpenSession = { id: `copy-${randomUUID()}`, user: actor.user, startedAt: this.c.now(), start }
      await this.save({ ...this.state, open: session })
      this.progressCache = undefined
      this.c.metrics?.copySessionStarted()
      this.log.info({ session: session.id, user: actor.user, total: start.total, color: start.color, mono: start.mono }, 'copy session started')
      return this.view(session)
    })
  }

  async end (actor: Actor, reason: CopyEndReason): Promise<CopyEndView> {
    return await this.serial(async () => {
      if (this.state.open?.user !== actor.user) throw new NoCopySessionError(actor.user)
      return await this.close(reason)
    })
  }

  private view (s: OpenSession): CopySessionView {
    return { id: s.id, startedAt: s.startedAt, device: s.start.device.address }
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return await run
  }

  /** Ends the open session: charged once, or failed with its start reading kept (invariants 2, 5). */
  private async close (reason: CopyEndReason): Promise<CopyEndView> {
    const open = this.state.open
    if (open === undefined) throw new Error('no copy session to close')
    this.progressCache = undefined
    let charge: CopyCharge
    try {
      await this.printsSettled()
      const end = await this.c.counters.read()
      charge = copyCharge(open.start, end, await this.printsBetween(open.start.at, end.at))
    } catch (err) {
      const message = `the device counters could not be read at the end of the session, so nothing was charged: ${(err as Error).message}`
      const failed: FailedSession = { ...open, endedAt: this.c.now(), reason, message }
      await this.save({ version: 1, failed: [...this.state.failed, failed].slice(-FAILED_SESSIONS_KEPT) })
      this.c.metrics?.copySessionEnded('failed')
      this.log.error({ session: open.id, user: open.user, reason, startTotal: open.start.total, err: (err as Error).message }, 'copy session failed: not charged; its start reading is kept in copy-session.json')
      return { outcome: 'failed', id: open.id, message }
    }
    if (charge.pages === 0) {
      await this.save({ version: 1, failed: this.state.failed })
      this.c.metrics?.copySessionEnded('nothing-copied')
      this.log.info({ session: open.id, user: open.user, reason, printPages: charge.printPages }, 'copy session ended: nothing copied')
      return { outcome: 'nothing-copied', id: open.id }
    }
    const now = this.c.now()
    const id = `${open.id}/copy`
    const charged = await this.alreadyCharged(id, open.startedAt, now)
    if (!charged) {
      // priced as it is written, at the prices in force now, as prints are (crdt/prices.ts)
      const record = await pricedUsage(this.c.store, {
        id,
        kind: 'copy',
        user: open.user,
        jobId: open.id,
        jobName: 'Copy',
        printer: this.init.printer,
        site: this.init.site,
        pages: charge.pages,
        colorPages: charge.colorPages,
        sheets: charge.sheets,
        duplex: false,
        copies: 1,
        time: now
      })
      await this.c.store.transact(acctDoc(this.init.peer, periodOf(now)), { kind: 'local', service: 'accounting' }, (d) => recordUsage(d, record))
    }
    if (this.c.credit !== undefined) {
      const cost = listUsage(await this.c.store.open(acctDoc(this.init.peer, periodOf(now)))).find((r) => r.id === id)?.cost
      const unpaid = await this.c.credit.payCopy(id, open.user, { pages: charge.pages, colorPages: charge.colorPages, ...(cost !== undefined ? { cost } : {}), at: open.startedAt }, AbortSignal.timeout(CREDIT_CHECK_MS))
      if (Object.keys(unpaid).length > 0) this.log.warn({ session: open.id, user: open.user, cost: cost?.amount, unpaid }, 'copied beyond the user\'s credit or quota between two readings of the counters: the rest is unpaid')
    }
    await this.save({ version: 1, failed: this.state.failed })
    this.c.metrics?.copySessionEnded('charged', charge)
    this.log.info({ session: open.id, user: open.user, reason, pages: charge.pages, colorPages: charge.colorPages, sheets: charge.sheets, printPages: charge.printPages, alreadyCharged: charged }, 'copy session charged')
    return { outcome: 'charged', id: open.id, pages: charge.pages, colorPages: charge.colorPages, sheets: charge.sheets, printPages: charge.printPages }
  }

  /** Whether what the open session copied so far reaches what is held here of any limit on the user: credit, pages or colour pages of the month's quota. */
  private async creditUsedUp (open: OpenSession, charge: CopyCharge): Promise<boolean> {
    const allowance = this.c.credit?.copyAllowance(open.user)
    if (allowance === undefined || charge.pages === 0) return false
    if (allowance.pages !== undefined && charge.pages >= allowance.pages) return true
    if (allowance.colorPages !== undefined && charge.colorPages > 0 && charge.colorPages >= allowance.colorPages) return true
    if (allowance.cost === undefined) return false
    const priced = await pricedUsage(this.c.store, { id: `${open.id}/copy`, kind: 'copy', user: open.user, jobId: open.id, jobName: 'Copy', printer: this.init.printer, site: this.init.site, pages: charge.pages, colorPages: charge.colorPages, sheets: charge.sheets, duplex: false, copies: 1, time: this.c.now() })
    return (priced.cost?.amount ?? 0) >= allowance.cost
  }

  /** Waits until the print engine has no print in hand (charged, or ended uncharged), at most {@link PRINTS_SETTLE_MS}. */
  private async printsSettled (): Promise<void> {
    const prints = this.c.prints
    if (prints === undefined || prints.inHand() === 0) return
    const deadline = Date.now() + PRINTS_SETTLE_MS
    while (prints.inHand() > 0 && Date.now() < deadline) await sleep(PRINTS_POLL_MS)
    if (prints.inHand() > 0) this.log.warn({ inHand: prints.inHand(), waitedMs: PRINTS_SETTLE_MS }, 'prints still in hand when the counters were read: their pages may count as copies')
  }

  /** The prints this terminal charged on its printer between two moments (its own accounting, both months). */
  private async printsBetween (from: number, to: number): Promise<UsageRecord[]> {
    const out: UsageRecord[] = []
    for (const period of new Set([periodOf(from), periodOf(to)])) {
      for (const r of listUsage(await this.c.store.open(acctDoc(this.init.peer, period)))) {
        if (r.kind === 'print' && r.printer === this.init.printer && r.time >= from && r.time <= to) out.push(r)
      }
    }
    return out
  }

  private async alreadyCharged (id: string, from: number, to: number): Promise<boolean> {
    for (const period of new Set([periodOf(from), periodOf(to)])) {
      if (hasUsage(await this.c.store.open(acctDoc(this.init.peer, period)), id)) return true
    }
    return false
  }

  /** Writes the state durably (a temp file renamed over the old: never half a file). */
  private async save (state: StateFile): Promise<void> {
    const tmp = `${this.file}.tmp`
    await writeFile(tmp, JSON.stringify(state), { mode: 0o600 })
    await rename(tmp, this.file)
    this.state = state
  }
}
