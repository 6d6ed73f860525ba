/**
 * Terminals' panels in the chaos simulator (issue 12, "the chaos simulator gets terminals that
 * log users in offline, release and copy"; `simulate({ panel: true })`, `npm run sim --
 * --panel`): users log in at terminals, whatever the terminal can reach, and copy; central's
 * admin changes PINs and disables users meanwhile. Releases at terminals are the simulator's
 * own (simulator.ts); this module adds the logins and copies, and their checks.
 *
 * - **Credentials**: every user gets a real PIN (scrypt at the PIN cost, with its keyed index
 *   for PIN-only login) and a card (keyed index and slow hash) in central's directory, as an
 *   import would write them. Now and then central's admin sets a user a new PIN or disables
 *   (enables again) a user; the directory replicates as any document, through the faults.
 * - **Logins** go through node/users.ts `panelLogins`, what a terminal's panel calls: username
 *   and PIN (the current one, or an old one), card, or the PIN alone. **Invariant 6**: each
 *   answer is what the directory the terminal holds at that moment says, read from its raw
 *   records (no index, no cache): accepted exactly when the user is there, enabled, with that
 *   PIN's hash (or that card's index); never another user. A cache of the directory that
 *   missed an update arriving from another peer fails it; a terminal cut off from everyone
 *   keeps logging users in from what it holds.
 * - **Copies**: a user who logged in starts a copy session (node/copy-sessions.ts
 *   `CopySessions`, the terminal's own, on its data folder) and copies some pages on the
 *   device; the session ends at once, or stays open (the user walks away) until the next user,
 *   an idle logout, a crash (closed at the restart) or the end of the run. The device's
 *   counters ({@link SimCounters}) count the copies and every page the terminal's printer
 *   completes, as a real MFP's life counters do, so the session must subtract its prints.
 *   **Invariant 3** gains the copies: after the final heal, every peer that reads every
 *   accounting document holds, per session that copied anything, exactly one `copy` record by
 *   the terminal, for the session's user, with exactly the pages and colour pages copied
 *   (sheets: one per page, the counters count no sheets), and no copy record of anything else.
 *   The product tells a print apart from a copy by its record's time (on the terminal's
 *   clock) between the session's two readings. Where that time falls on the other side of a
 *   reading than the print itself (the terminal's clock was hours off when it charged the
 *   print, or it charged it late, after a restart), the session is checked for user and count
 *   only, and counted as `misattributed`: seed 2 at 8 peers found such a print (a known limit,
 *   see the README). The simulator tells them exactly: every reading and every page the
 *   printer completes is numbered in one sequence per device.
 *
 * The restart's close of a session left open runs once the restarted terminal settled (its
 * print engine has followed up the prints it had in hand), as the terminal's own close waits
 * for the prints in hand; the simulator passes no print engine, whose wait is in real time.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { cardCredential, cardIndex, getUser, indexedPinHash, normalizeCard, pinKeyOf, putUser, type CardCredential, type DirectoryUser, type PinIndex } from '../crdt/directory.ts'
import { directoryDoc, siteId as toSiteId, type PeerId } from '../crdt/names.ts'
import type { DocStore } from '../crdt/store.ts'
import { panelLogins, PIN_ONLY_USERNAME } from '../node/users.ts'
import { CopySessions } from '../node/copy-sessions.ts'
import type { CounterReading, DeviceCounters } from '../devices/counters/types.ts'
import { seededRandom } from '../transports/memory.ts'
import type { Checker } from './invariants.ts'

/** Share of panel steps that are an admin's change at central (the rest: a login at a terminal). */
const ADMIN_CHANGE_SHARE = 0.3
/** Of the admin's changes, the share that set a new PIN (the rest disable or enable a user). */
const PIN_CHANGE_SHARE = 0.7
/** How users log in: username and current PIN, card, PIN alone, an old PIN (cumulative shares). */
const LOGIN_KINDS: ReadonlyArray<[LoginKind, number]> = [['pin', 0.3], ['card', 0.5], ['pin-only', 0.8], ['old-pin', 1]]
/** Share of copy sessions ended by the user at once (the rest stay open: the user walks away). */
const END_AT_ONCE_SHARE = 0.6
/** Share of panel steps that first log out an open session somewhere (the panel's idle logout). */
const IDLE_LOGOUT_SHARE = 0.3
/** Share of logins by a user whose PIN central changed lately (they come to try it): most errors of a stale directory show there. */
const RECENT_PIN_SHARE = 0.5
/** How many of the latest PIN changes count as recent. */
const RECENT_PIN_CHANGES = 3
/** Share of PIN changes that give the user another user's PIN (PIN-only login must then refuse it). */
const SHARED_PIN_SHARE = 0.2
/** Users who come to a terminal in one panel step: from 1 to this many. */
const MAX_VISITS = 3
/** Pages one session copies: from 1 to this many, some in colour. */
const MAX_COPY_PAGES = 6
/** PIN versions per user: a PIN is 6 digits, user and version in it, so every PIN in a run is distinct. */
const MAX_PIN_VERSIONS = 99
/** The printer a terminal fronts (simulator.ts names it so). */
const TERMINAL_PRINTER = 'mfp'

type LoginKind = 'pin' | 'card' | 'pin-only' | 'old-pin'

/** The simulator's view of one peer, as the panels need it. */
export interface PanelPeer {
  name: string
  role: string
  site?: string
  signer: { id: string }
  dir: string
  skewMs: number
  crashed: boolean
  /** Its disk is full (the simulator's `disk-full` fault): writes fail with ENOSPC. */
  diskFull?: boolean
  /** Its disk fails some writes (the simulator's `io-error` fault) with EIO. */
  failingWrites?: unknown
  mesh?: { store: DocStore }
}

export interface PanelSimInit {
  seed: number
  users: readonly string[]
  peers: readonly PanelPeer[]
  checker: Checker
  step: () => number
  event: (peer: string, kind: string, job?: string, detail?: string) => void
  /** A peer's clock (skewed as the peer's). */
  now: (p: PanelPeer) => number
  /** Runs work the step's settling must wait for. */
  track: <T>(work: () => Promise<T>) => Promise<T>
  logger: Logger
}

export interface PanelStats {
  logins: number
  /** Of the logins, those accepted (each as the terminal's directory said). */
  accepted: number
  /** Logins at a terminal that could reach no site and not central (answered from what it holds). */
  offline: number
  pinChanges: number
  disables: number
  sessions: number
  pagesCopied: number
  /** Sessions closed by a terminal's restart (left open when it crashed). */
  closedAtRestart: number
  /** Sessions a print's record time put on the wrong side of a reading (checked for user and count, not pages). */
  misattributed: number
}

/**
 * A device's life counters as the simulator moves them: copies made at the device and every
 * page its printer completes. Owned by the simulator, not the terminal: the device outlives
 * the terminal's crashes. Every move and every reading takes the next number of one
 * sequence, so the simulator knows which prints fell between two readings.
 */
export class SimCounters implements DeviceCounters {
  mono = 0
  color = 0
  /** Every reading served: its number in the sequence and the time the terminal was told. */
  readonly readings: Array<{ seq: number, at: number }> = []
  /** Every print completed on the device: its job (name) and number in the sequence. */
  readonly prints: Array<{ job: string, seq: number }> = []
  private seq = 0
  constructor (readonly address: string, private readonly now: () => number) {}
  add (pages: number, colorPages: number, printOf?: string): void {
    this.mono += pages - colorPages
    this.color += colorPages
    this.seq++
    if (printOf !== undefined) this.prints.push({ job: printOf, seq: this.seq })
  }

  async read (): Promise<CounterReading> {
    const at = this.now()
    this.readings.push({ seq: ++this.seq, at })
    return { total: this.mono + this.color, mono: this.mono, color: this.color, device: { address: this.address, serial: this.address }, at }
  }

  close (): void {} // nothing held: a terminal restarted on the same device reads it again
}

interface SimSession {
  id: string
  terminal: string
  user: string
  pages: number
  colorPages: number
  /** Its start and end readings (the end: undefined while open). */
  start: { seq: number, at: number }
  end?: { seq: number, at: number }
  open: boolean
}

/** The digest of one credential, for invariant messages (never the PIN or card). */
const short = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8)

export class PanelSim {
  readonly stats: PanelStats = { logins: 0, accepted: 0, offline: 0, pinChanges: 0, disables: 0, sessions: 0, pagesCopied: 0, closedAtRestart: 0, misattributed: 0 }
  /** Its own generator, so the simulator's other choices are those of a run without panels. */
  private readonly rng: () => number
  /** The directory's card key (a node derives it from the network key; any 32 bytes here). */
  private readonly cardKey = new Uint8Array(createHash('sha256').update('printmesh simulation card key').digest())
  /**
   * Per user, every PIN hash made, oldest first, with its PIN: `set` when central's change
   * went through (the last of those is the current PIN), else a change a crash struck, which
   * may still have reached some peers. What a terminal's record of the user may hold; its
   * length is the next PIN's version.
   */
  private readonly made = new Map<string, Array<{ pin: string, hash: string, index: PinIndex, set: boolean }>>()
  private readonly cards = new Map<string, { card: string, credential: CardCredential }>()
  private readonly counters = new Map<string, SimCounters>()
  /** Live copy sessions service per terminal, while it is up. */
  private readonly copiers = new Map<string, CopySessions>()
  private readonly sessions = new Map<string, SimSession>()
  /** Users whose PIN central changed, latest last. */
  private readonly changedPins: string[] = []

  constructor (private readonly init: PanelSimInit) {
    this.rng = seededRandom(init.seed ^ 0x9a7e1)
  }

  private int (min: number, max: number): number { return min + Math.floor(this.rng() * (max - min + 1)) }

  /** Makes every user's first PIN and card (slow hashes: once, before the run). */
  async setup (): Promise<void> {
    const pinKey = pinKeyOf(this.cardKey)
    for (const [i, user] of this.init.users.entries()) {
      const pin = pinFor(i, 0)
      const { pinHash, pinIndex } = await indexedPinHash(pin, pinKey)
      this.made.set(user, [{ pin, hash: pinHash, index: pinIndex, set: true }])
      const card = `SIMCARD${String(i + 1).padStart(4, '0')}`
      this.cards.set(user, { card, credential: await cardCredential(card, this.cardKey) })
    }
  }

  /** What central's directory record of `user` carries of credentials at the start. */
  credentials (user: string): Pick<DirectoryUser, 'pinHash' | 'pinIndex' | 'cards'> {
    const pin = this.current(user)
    const card = this.cards.get(user)
    if (card === undefined) throw new Error(`no credentials made for ${user}`)
    return { pinHash: pin.hash, pinIndex: pin.index, cards: [card.credential] }
  }

  /** The PINs central set for `user`, oldest first: the last is current. */
  private pinsSet (user: string): Array<{ pin: string, hash: string, index: PinIndex }> {
    return (this.made.get(user) ?? []).filter((p) => p.set)
  }

  private current (user: string): { pin: string, hash: string, index: PinIndex } {
    const list = this.pinsSet(user)
    if (list === undefined || list.length === 0) throw new Error(`no PIN made for ${user}`)
    return list[list.length - 1]
  }

  private countersOf (p: PanelPeer): SimCounters {
    let c = this.counters.get(p.name)
    if (c === undefined) {
      c = new SimCounters(`sim://${p.name}`, () => this.init.now(p))
      this.counters.set(p.name, c)
    }
    return c
  }

  /** A terminal (re)started: its copy sessions service, which closes a session its crash left open. */
  async attach (p: PanelPeer): Promise<void> {
    if (p.role !== 'terminal' || p.mesh === undefined) return
    const copier = new CopySessions(
      { peer: p.signer.id as PeerId, site: toSiteId(p.site ?? p.name), printer: TERMINAL_PRINTER, data: p.dir },
      { store: p.mesh.store, counters: this.countersOf(p), logger: this.init.logger, now: () => this.init.now(p) })
    // start() closes a session left open in the background; stop() waits for that (the sim's counters need no closing)
    await this.init.track(async () => { await copier.start(); await copier.stop() })
    this.copiers.set(p.name, copier)
    for (const s of this.sessions.values()) {
      if (s.terminal !== p.name || !s.open) continue
      s.open = false
      s.end = this.countersOf(p).readings.at(-1)
      this.stats.closedAtRestart++
      this.init.event(p.name, 'copy-closed-at-restart', undefined, `${s.user}, ${s.pages} pages`)
    }
  }

  /** A terminal crashed: its service is gone (its data folder keeps an open session). */
  detach (p: PanelPeer): void { this.copiers.delete(p.name) }

  /** A printer completed job `job` (its name): the device's counters move (a terminal's own printer only). */
  printed (printer: string, job: string, pages: number, colorPages: number): void {
    const name = printer.endsWith(`/${TERMINAL_PRINTER}`) ? printer.slice(0, -TERMINAL_PRINTER.length - 1) : undefined
    const peer = this.init.peers.find((p) => p.name === name && p.role === 'terminal')
    if (peer !== undefined) this.countersOf(peer).add(pages, colorPages, job)
  }

  /**
   * Whether a print's record time put it on the other side of one of the session's readings
   * than the print itself: the product subtracts the prints charged at this terminal with a
   * time between the two readings (inclusive); the device counted those completed between
   * them. `prints`: the terminal's print records (job name, time).
   */
  private misattributed (s: SimSession, prints: ReadonlyArray<{ job: string, time: number }>): boolean {
    const end = s.end
    if (end === undefined) return false // never closed: nothing excuses a missing or wrong charge
    const device = this.counters.get(s.terminal)?.prints ?? []
    // as multisets of job names: a job the device printed twice is two prints
    const counted = device.filter((p) => p.seq > s.start.seq && p.seq < end.seq).map((p) => p.job).sort()
    const subtracted = prints.filter((p) => p.time >= s.start.at && p.time <= end.at).map((p) => p.job).sort()
    return counted.join('\n') !== subtracted.join('\n')
  }

  /** One panel step: an admin's change at central, or a login (and a copy) at a terminal. */
  async step (reachable: (p: PanelPeer) => boolean): Promise<void> {
    if (this.rng() < IDLE_LOGOUT_SHARE) await this.idleLogout()
    if (this.rng() < ADMIN_CHANGE_SHARE) {
      await this.adminChange()
      return
    }
    const up = this.init.peers.filter((p) => p.role === 'terminal' && p.mesh !== undefined && !p.crashed && this.copiers.has(p.name))
    if (up.length === 0) return
    const terminal = up[Math.floor(this.rng() * up.length)]
    // a few users come to the printer one after the other (the next user's login ends the last one's session)
    for (let visits = this.int(1, MAX_VISITS); visits > 0; visits--) {
      if (terminal.crashed || !this.copiers.has(terminal.name)) return
      const recent = this.changedPins.slice(-RECENT_PIN_CHANGES)
      const user = recent.length > 0 && this.rng() < RECENT_PIN_SHARE
        ? recent[Math.floor(this.rng() * recent.length)]
        : this.init.users[Math.floor(this.rng() * this.init.users.length)]
      const roll = this.rng()
      let kind = LOGIN_KINDS.find(([, upTo]) => roll < upTo)?.[0] ?? 'pin'
      if (kind === 'old-pin' && this.pinsSet(user).length < 2) kind = 'pin'
      const who = await this.login(terminal, user, kind, !reachable(terminal))
      if (who !== undefined) await this.copy(terminal, who)
    }
  }

  /** Central's admin sets a user a new PIN, or disables (enables) one. */
  private async adminChange (): Promise<void> {
    const central = this.init.peers.find((p) => p.role === 'central')
    if (central?.mesh === undefined || central.crashed) return
    const index = Math.floor(this.rng() * this.init.users.length)
    const user = this.init.users[index]
    const tries = this.made.get(user)?.length ?? 0
    if (this.rng() < PIN_CHANGE_SHARE && tries < MAX_PIN_VERSIONS) {
      // a new PIN for every try, failed ones too (a change a crash struck may still have reached some peers);
      // now and then another user's PIN: two users holding one PIN, as an import from before PIN-only login can leave them
      const other = this.init.users[Math.floor(this.rng() * this.init.users.length)]
      const pin = other !== user && this.rng() < SHARED_PIN_SHARE ? this.current(other).pin : pinFor(index, tries)
      const made = await this.init.track(async () => await indexedPinHash(pin, pinKeyOf(this.cardKey)))
      // every hash made, set or not: a terminal may hold one whose change failed at central
      const entry = { pin, hash: made.pinHash, index: made.pinIndex, set: false }
      this.made.set(user, [...this.made.get(user) ?? [], entry])
      const store = central.mesh.store
      try {
        await this.init.track(async () => await store.transact(directoryDoc(), { kind: 'admin', user: 'admin' }, (d) => {
          const rec = getUser(d, user)
          if (rec !== undefined) putUser(d, { ...rec, pinHash: made.pinHash, pinIndex: made.pinIndex, pinSetAt: this.init.now(central), updatedAt: this.init.now(central) })
        }))
      } catch (err) {
        // a crash striking inside the change: the admin sees an error; the PIN may or may not have been set (logins are checked against what each terminal holds)
        this.init.event('central', 'pin-change-failed', undefined, `${user}: ${(err as Error).message}`)
        return
      }
      entry.set = true
      this.changedPins.push(user)
      this.stats.pinChanges++
      this.init.event('central', 'pin-changed', undefined, user)
      return
    }
    const store = central.mesh.store
    let disabled = false
    try {
      await this.init.track(async () => await store.transact(directoryDoc(), { kind: 'admin', user: 'admin' }, (d) => {
        const rec = getUser(d, user)
        if (rec === undefined) return
        disabled = rec.disabled !== true
        putUser(d, { ...rec, disabled, updatedAt: this.init.now(central) })
      }))
    } catch (err) {
      this.init.event('central', 'user-change-failed', undefined, `${user}: ${(err as Error).message}`)
      return
    }
    this.stats.disables++
    this.init.event('central', disabled ? 'user-disabled' : 'user-enabled', undefined, user)
  }

  /**
   * A login at `terminal`'s panel, checked against what its directory holds (invariant 6);
   * the user logged in, if any.
   */
  private async login (terminal: PanelPeer, user: string, kind: LoginKind, offline: boolean): Promise<string | undefined> {
    const store = terminal.mesh?.store
    if (store === undefined) return undefined
    const pins = this.pinsSet(user)
    const secret = kind === 'card' ? this.cards.get(user)?.card ?? '' : kind === 'old-pin' ? pins[this.int(0, pins.length - 2)].pin : this.current(user).pin
    const logins = panelLogins(store, this.cardKey, { pinOnlyLogin: true })
    const byCard = logins.authenticateCard
    if (byCard === undefined) throw new Error('panelLogins offers no card login')
    const got = await this.init.track(async () => kind === 'card'
      ? (await byCard(secret))?.user
      : (await logins.authenticateUser(kind === 'pin-only' ? PIN_ONLY_USERNAME : user, secret))?.user)
    const want = this.expected(store, user, kind, secret)
    this.stats.logins++
    if (offline) this.stats.offline++
    if (got !== undefined) this.stats.accepted++
    this.init.event(terminal.name, got !== undefined ? 'login' : 'login-refused', undefined, `${user} by ${kind}${offline ? ', offline' : ''}`)
    if (got !== want) {
      const rec = directoryUsers(store).find((u) => u.username === user)
      this.init.checker.violation(6, this.init.step(), `${terminal.name} answered a ${kind} login of ${user} with ${got ?? 'refused'}, its directory says ${want ?? 'refused'} (its record: ${rec === undefined ? 'none' : `${rec.disabled === true ? 'disabled, ' : ''}PIN hash ${short(rec.pinHash)}, central's PINs ${pins.map((p) => short(p.hash)).join(' → ')}`})`, undefined, terminal.name)
    }
    return got
  }

  /**
   * Who the terminal's directory says a login is, from its raw records: the user whose
   * current PIN hash is the one central wrote for that PIN (whose card index is that card's),
   * enabled; for the PIN alone, its only holder.
   */
  private expected (store: DocStore, user: string, kind: LoginKind, secret: string): string | undefined {
    const users = directoryUsers(store)
    // whether `u`'s record holds a hash of PIN `pin` (each user's PINs are hashed apart: two users with one PIN hold two hashes)
    const holds = (u: DirectoryUser, pin: string): boolean => (this.made.get(u.username) ?? []).some((h) => h.pin === pin && h.hash === u.pinHash)
    if (kind === 'card') {
      const index = cardIndex(normalizeCard(secret), this.cardKey)
      const holder = users.find((u) => u.cards?.some((c) => c.index === index) === true)
      return holder !== undefined && holder.disabled !== true ? holder.username : undefined
    }
    if (kind === 'pin-only') {
      // two holders of one PIN: it logs in neither by PIN alone
      const holders = users.filter((u) => holds(u, secret))
      return holders.length === 1 && holders[0].disabled !== true ? holders[0].username : undefined
    }
    const rec = users.find((u) => u.username === user)
    return rec !== undefined && rec.disabled !== true && holds(rec, secret) ? user : undefined
  }

  /** `user` starts a copy session at `terminal`, copies some pages, and ends it at once or leaves it open. */
  private async copy (terminal: PanelPeer, user: string): Promise<void> {
    const copier = this.copiers.get(terminal.name)
    if (copier === undefined) return
    const before = [...this.sessions.values()].find((s) => s.terminal === terminal.name && s.open)
    const readings = this.countersOf(terminal).readings
    const n = readings.length
    let id: string
    try {
      id = (await this.init.track(async () => await copier.begin({ user, admin: false }))).id
    } catch (err) {
      this.init.event(terminal.name, 'copy-not-started', undefined, `${user}: ${(err as Error).message}`)
      // only a crash or a full or failing disk striking inside it (closing the last user's session) may stop a start: the counters never fail here
      if (!terminal.crashed && !this.diskFailing(terminal)) this.init.checker.violation(3, this.init.step(), `${terminal.name} did not start ${user}'s copy session: ${(err as Error).message}`, undefined, terminal.name)
      return
    }
    // a session of another user open here was ended by this one (charged to its own user): its end reading came first
    if (before !== undefined && before.id !== id) this.ended(before, 'next-user', readings[n])
    let session = this.sessions.get(id)
    if (session === undefined) {
      session = { id, terminal: terminal.name, user, pages: 0, colorPages: 0, start: readings[readings.length - 1], open: true }
      this.sessions.set(id, session)
      this.stats.sessions++
    }
    const pages = this.int(1, MAX_COPY_PAGES)
    const colorPages = this.int(0, pages)
    this.countersOf(terminal).add(pages, colorPages)
    session.pages += pages
    session.colorPages += colorPages
    this.stats.pagesCopied += pages
    this.init.event(terminal.name, 'copied', undefined, `${user}, ${pages} pages (${colorPages} colour)`)
    if (this.rng() < END_AT_ONCE_SHARE) await this.end(terminal, session, 'done')
  }

  private async end (terminal: PanelPeer, session: SimSession, reason: 'done' | 'idle'): Promise<void> {
    const copier = this.copiers.get(terminal.name)
    if (copier === undefined) return
    try {
      await this.init.track(async () => await copier.end({ user: session.user, admin: false }, reason))
      this.ended(session, reason, this.countersOf(terminal).readings.at(-1))
    } catch (err) {
      // a crash or a full or failing disk striking inside the close: the session stays open in the data folder, closed later; anything else is a bug
      this.init.event(terminal.name, 'copy-end-failed', undefined, `${session.user}: ${(err as Error).message}`)
      if (!terminal.crashed && !this.diskFailing(terminal)) this.init.checker.violation(3, this.init.step(), `${terminal.name} did not end ${session.user}'s copy session: ${(err as Error).message}`, undefined, terminal.name)
    }
  }

  /** Whether the terminal's disk fails writes now (full, or an I/O error fault). */
  private diskFailing (terminal: PanelPeer): boolean {
    return terminal.diskFull === true || terminal.failingWrites !== undefined
  }

    private ended (session: SimSession, reason: string, reading: { seq: number, at: number } | undefined): void {
    session.open = false
    if (reading !== undefined) session.end = reading
    this.init.event(session.terminal, 'copy-ended', undefined, `${session.user}, ${reason}`)
  }

  /** The panel's idle logout somewhere: one open session at a live terminal ends. */
  private async idleLogout (): Promise<void> {
    const open = [...this.sessions.values()].filter((s) => s.open && this.copiers.has(s.terminal))
    if (open.length === 0) return
    const session = open[Math.floor(this.rng() * open.length)]
    const terminal = this.init.peers.find((p) => p.name === session.terminal)
    if (terminal === undefined || terminal.crashed || terminal.mesh === undefined) return
    await this.end(terminal, session, 'idle')
  }

  /** The run ends: every user still at a panel logs out (terminals are all up after the final heal). */
  async logoutAll (): Promise<void> {
    for (const s of [...this.sessions.values()].filter((x) => x.open)) {
      const terminal = this.init.peers.find((p) => p.name === s.terminal)
      if (terminal !== undefined) await this.end(terminal, s, 'done')
    }
  }

  /**
   * Invariant 3 for copies at one peer holding `records` (every usage record of every
   * accounting document it holds, with the writer's name): each copy record is a session's,
   * by its terminal, for its user, with exactly what was copied; with `complete` (the peer
   * reads every writer's accounting), every session that copied has its record.
   */
  checkCopies (holder: string, records: ReadonlyArray<{ writer: string, id: string, kind: string, user: string, pages: number, colorPages: number, sheets: number, jobName: string, printer: string, time: number }>, complete: boolean): void {
    const seen = new Map<string, number>()
    for (const r of records) {
      if (r.kind !== 'copy') continue
      const session = this.sessions.get(r.id.replace(/\/copy$/, ''))
      if (session === undefined || r.id !== `${session.id}/copy`) {
        this.init.checker.violation(3, this.init.step(), `${holder} holds a copy record ${r.id} by ${r.writer} of no session`, undefined, r.writer)
        continue
      }
      seen.set(session.id, (seen.get(session.id) ?? 0) + 1)
      const exact = !this.misattributed(session, printsOf(records, session.terminal))
      const got = { writer: r.writer, user: r.user, ...(exact ? { pages: r.pages, colorPages: r.colorPages, sheets: r.sheets } : {}) }
      const want = { writer: session.terminal, user: session.user, ...(exact ? { pages: session.pages, colorPages: session.colorPages, sheets: session.pages } : {}) }
      if (JSON.stringify(got) !== JSON.stringify(want)) this.init.checker.violation(3, this.init.step(), `${holder} holds copy session ${session.id} charged ${JSON.stringify(got)}, the device copied ${JSON.stringify(want)}`, undefined, session.terminal)
    }
    for (const [id, n] of seen) if (n > 1) this.init.checker.violation(3, this.init.step(), `${holder} holds ${n} records of copy session ${id}`)
    if (!complete) return
    for (const s of this.sessions.values()) {
      // a misattributed print may take all the session's pages: then nothing is charged
      if (s.pages > 0 && !seen.has(s.id) && !this.misattributed(s, printsOf(records, s.terminal))) this.init.checker.violation(3, this.init.step(), `copy session ${s.id} of ${s.user} at ${s.terminal} copied ${s.pages} pages, ${holder} holds no record of it${s.open ? ' (still open)' : ''}`, undefined, s.terminal)
    }
  }

  /** Counts the misattributed sessions (once, at the end), from `holder`'s records (a peer reading every accounting document). */
  finish (records: ReadonlyArray<{ writer: string, kind: string, jobName: string, printer: string, time: number }>): void {
    this.stats.misattributed = [...this.sessions.values()].filter((s) => this.misattributed(s, printsOf(records, s.terminal))).length
  }
}

/**
 * The prints `terminal` charged, among `records` (with their writers): job name and record
 * time. Whatever printer a record names: the device printed what the simulator saw it print
 * (a record naming another printer is invariant 3's to report, and the product would then
 * fail to subtract it, which the exact check shows).
 */
function printsOf (records: ReadonlyArray<{ writer: string, kind: string, jobName: string, time: number }>, terminal: string): Array<{ job: string, time: number }> {
  return records.filter((r) => r.kind === 'print' && r.writer === terminal).map((r) => ({ job: r.jobName, time: r.time }))
}

/** PIN `version` of user number `index`: 6 digits, distinct for every user and version. */
function pinFor (index: number, version: number): string {
  return String(100_000 + index * 100 + version)
}

/** The directory's users as the terminal's document holds them, read from the raw map. */
function directoryUsers (store: DocStore): DirectoryUser[] {
  const doc = store.get(directoryDoc())
  return doc === undefined ? [] : [...doc.getMap<DirectoryUser>('users').values()]
}
