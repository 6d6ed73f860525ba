/**
 * The contract between a node and its HTTP layer: everything the JSON API and the web
 * pages may ask of a site. The node implements it; `ui/` routes call it and map its errors
 * (the classes in devices/jobs/types.ts and below) to HTTP statuses.
 */
import type { JobRecord, JobView, JobState, Actor } from '../devices/jobs/types.ts'
import type { RoamingMode, TerminalReleaseMode } from '../crdt/site-config.ts'
import type { UsageRecord } from '../crdt/accounting.ts'
import type { PrinterMarker } from '../devices/output/types.ts'

export interface PrinterView {
  name: string
  uri: string
  /** `idle`, `processing`, `stopped` (IPP `printer-state`), or `unreachable` when the probe fails. */
  state: string
  message: string
  /** IPP `printer-state-reasons` other than `none` (IPP printers only). */
  reasons?: string[]
  /** Supplies (IPP `marker-*`): empty for a printer that reports none; absent when unknown. */
  markers?: PrinterMarker[]
  /** When this view was probed (ms since the epoch). */
  probedAt?: number
}

/** A usage record as the API shows it: the accounting family's record. */
export type UsageRecordView = UsageRecord

export interface UsageTotal {
  /** The user name, printer name or day (`YYYY-MM-DD`, UTC) the row totals. */
  key: string
  jobs: number
  pages: number
  colorPages: number
  sheets: number
}

export interface UsageQuery {
  /** Inclusive lower bound, ms since epoch. */
  from?: number
  /** Exclusive upper bound, ms since epoch. */
  to?: number
  user?: string
}

export interface UserView {
  username: string
  fullName: string
}

export interface SiteInfo {
  site: string
  hostname: string
  /** IPP URI workstations print to. */
  ippUri: string
  version: string
}

/** Jobs as a user sees them at this site. */
export interface JobList {
  /** Local jobs, and in shared mode partners' jobs (each with its `source`). */
  jobs: JobView[]
  /** Separate mode: partners' jobs, listed apart. */
  remote: JobView[]
}

/** This site's roaming settings, and how each partner answers them. */
export interface RoamingView {
  site: string
  hostname: string
  mode: RoamingMode
  partners: Array<{
    site: string
    /** Known once the partner's settings reached this node. */
    hostname?: string
    /** Whether the partner names this site too (roaming works only then). */
    mutual: boolean
  }>
  /** What this site's workstation clients may do. */
  clients: { otherUsers: boolean, spooling: boolean }
  /**
   * The release modes this site's terminals offer (device spooling; not configured: each
   * terminal's own `--modes`), and whether they take the name a workstation sends as the owner
   * (false: the job waits for a user to claim it at the panel).
   */
  terminals: ({ configured: false } | { configured: true, modes: TerminalReleaseMode[], defaultMode: TerminalReleaseMode }) & { trustUserName: boolean }
  /** The site's print policy: applied by whichever of its peers prints (its server, its terminals, also offline). */
  policy: { forceDuplex: boolean, monoGroups: string[] }
  /**
   * How long the site holds and keeps jobs now (hours): an admin's times, else the start-up
   * flags; `set` names those an admin set, `startUp` the flags' values.
   */
  times: { holdHours: number, retentionHours: number, set: Array<'holdHours' | 'retentionHours'>, startUp: { holdHours: number, retentionHours: number } }
}

export interface SiteApi {
  info (): SiteInfo
  /** Checks a user's PIN (slow hash); undefined when wrong or unknown. Never logs the PIN. */
  authenticateUser (username: string, pin: string): Promise<Actor | undefined>
  /** Checks an admin bearer token (constant-time); undefined when wrong. */
  authenticateAdmin (token: string): Actor | undefined
  /** `mine`: jobs owned by the actor (with partners' per the roaming mode); `all`: every job (admins only). */
  listJobs (actor: Actor, scope: 'mine' | 'all'): JobList
  /** Releases a local job, or a partner's job through its holder. */
  releaseJob (actor: Actor, jobId: string, printer?: string): Promise<JobView>
  deleteJob (actor: Actor, jobId: string): Promise<JobView>
  roaming (): RoamingView
  /** Sets partners and mode (`{partners: string[], mode}`); InvalidRequestError on bad input. */
  setRoaming (input: unknown): Promise<RoamingView>
  /** Sets what this site's workstation clients may do (`{otherUsers?: boolean, spooling?: boolean}`); InvalidRequestError on bad input. */
  setClientSettings (input: unknown): Promise<RoamingView>
  /** Sets the release modes of this site's terminals and whether they trust the name sent (`{modes?: string[], defaultMode?: string, trustUserName?: boolean}`); InvalidRequestError on bad input. */
  setTerminalModes (input: unknown): Promise<RoamingView>
  /** Sets the site's print policy (`{forceDuplex?: boolean, monoGroups?: string[]}`); InvalidRequestError on bad input. */
  setPrintPolicy (input: unknown): Promise<RoamingView>
  /** Sets how long the site holds and keeps jobs (`{holdHours?: number | null, retentionHours?: number | null}`, null: the start-up flag); InvalidRequestError on bad input. */
  setTimes (input: unknown): Promise<RoamingView>
  printers (): Promise<PrinterView[]>
  usageRecords (query: UsageQuery): UsageRecordView[]
  usageTotals (query: UsageQuery, by: 'user' | 'printer' | 'day'): UsageTotal[]
  /** How many jobs this site knows in each state: a tally kept as jobs change, for /metrics. */
  jobStates (): ReadonlyMap<JobState, number>
  users (): UserView[]
  /** Imports `username,full name,PIN` rows; returns how many were added or updated. */
  importUsers (csv: string): Promise<{ imported: number }>
}


// ---- mesh ---------------------------------------------------------------------------

export interface MeshPeerView {
  peer: string
  role?: string
  site?: string
  addresses: string[]
  connected: boolean
  /** ms since epoch of the last time it was connected (now, when connected). */
  lastSeen?: number
  revoked: boolean
}

export type DocPeerState = 'in-sync' | 'behind' | 'ahead' | 'unknown'

export interface MeshStatus {
  self: { peer: string, role: string, site?: string, authority: string, addresses: string[] }
  peers: MeshPeerView[]
  /** Per document, how this node compares with each connected peer, and how many changes of it this node holds (crdt/sync.ts DocSyncState). */
  documents: Array<{ doc: string, peers: Record<string, DocPeerState>, changes: number }>
  stats: {
    envelopesIn: number
    envelopesOut: number
    bytesIn: number
    bytesOut: number
    rejected: Record<string, number>
  }
}

export interface JoinRequestView { peer: string, role: string, site?: string, requestedAt: number, approvedAt?: number }

/** What every node's HTTP layer may ask of its mesh side; the admin calls marked central work only there. */
export interface MeshApi {
  status (): MeshStatus
  /** Peers this node refuses and disconnects (an operator's block list). */
  blocked (): string[]
  setBlocked (peers: string[]): Promise<void>
  /** central: a one-time join string for a new peer. */
  createJoinToken (role: string, site: string, ttlHours?: number): Promise<{ joinString: string, tokenId: string, expiresAt: number }>
  /** central: a join string without a token: peers using it wait for an admin's approval. */
  approvalJoinString (): Promise<string>
  /** central: pending and approved join requests. */
  joinRequests (): JoinRequestView[]
  /** central: approve a pending request (the peer gets its certificate on its next attempt). */
  approve (peer: string): Promise<void>
  /** central: revoke a peer's certificate; every node disconnects it. */
  revoke (peer: string, reason: string): Promise<void>
}


/** What a terminal's panel shows before anyone logs in. */
/** A card reader daemon's door into the panel (node/card-reader.ts): cards posted, held briefly, taken once by the panel page. */
export interface CardReaderDoor {
  /** Whether posting needs the daemon token (else: loopback only). */
  readonly needsToken: boolean
  tokenMatches (presented: string | undefined): boolean
  /** Holds a card for the panel; throws an invalid-request error for a malformed one. */
  post (card: string): { expiresAt: number }
  /** The card waiting, once; undefined when none or stale. */
  take (): string | undefined
}

/** What a terminal says of itself (its `/api/info` `terminal` section, and to its site's admin page). */
export interface TerminalStatus {
  /** The name it is listed under (`--name`). */
  name: string
  site: string
  /** Connected to its site's server now (false: working offline). */
  online: boolean
  /** Its printer: state, reasons and supplies as last probed. */
  printer: PrinterView
  /** Users in its copy of the directory (whom it can log in offline). */
  users: number
  /** When a peer last changed one of its documents (ms since the epoch; absent: not since it started). */
  lastSync?: number
}

/** A terminal of this site as its admin page shows it. */
export interface TerminalView {
  peer: string
  /** Connected to this site now. */
  online: boolean
  /** When this site last saw it connected (now while online). */
  lastSeen?: number
  /** What it last said of itself, and when (kept while it is offline). */
  status?: TerminalStatus
  reportedAt?: number
  /** Why the last ask failed, while it is connected but does not answer. */
  error?: string
}

/** A site's view of its terminals (node/terminal-status.ts). */
export interface TerminalsApi {
  list (): Promise<TerminalView[]>
}

export interface PanelStatus {
  /** This terminal's site. */
  site: string
  /** The device it fronts: its URI and what the printer says of itself. */
  printer: PrinterView
  /** Whether the terminal reaches its site's server now (false: working offline). */
  online: boolean
  /** Idle time after which the panel logs the user out (ms). */
  idleLogoutMs: number
}

/** One job as the panel lists it: what the user needs to decide, nothing of other users. */
export interface PanelJob {
  id: string
  name: string
  state: JobState
  pages?: number
  colorPages?: number
  copies: number
  sides: string
  createdAt: number
  /** The host name of the peer holding the job (its site server, or a partner's). */
  source?: string
  /** Why a release failed or is waiting (the printer's reason), when it did. */
  message?: string
  /** The owner, when the logged-in user sees the job as their delegate. */
  delegatedBy?: string
  /** The terminal or workstation holding it is off or unreachable: it cannot be released until it is back. */
  unavailable?: true
}

/** The outcome of "release all": which jobs went to the printer and which were refused, with why. */
export interface ReleaseAllOutcome {
  released: PanelJob[]
  refused: Array<{ id: string, name: string, message: string }>
}

/**
 * The contract between a terminal and its panel routes (ui/routes/panel.ts). Logging in
 * is the core's `/api/login` with the terminal's {@link UserAuthenticator}.
 */
export interface PanelApi {
  status (): PanelStatus
  /** The user's jobs releasable at this device, newest first, with the ones released in the last minutes (to show their progress). */
  jobs (actor: Actor): PanelJob[]
  /** Releases one of the user's jobs to this terminal's printer. */
  release (actor: Actor, id: string): Promise<PanelJob>
  /** Releases every held job of the user, one after another. */
  releaseAll (actor: Actor): Promise<ReleaseAllOutcome>
  /** Deletes one of the user's held jobs at its holder. */
  remove (actor: Actor, id: string): Promise<void>
}

/** A job sent to a terminal that nobody owns yet (its site does not trust the name sent), as the panel lists it to claim. */
export interface ClaimableJob {
  id: string
  name: string
  state: JobState
  pages?: number
  createdAt: number
  /** The release mode it was sent to. */
  queue: string
  /** The address of the workstation that sent it. */
  from?: string
}

/** A terminal's unclaimed jobs (issue 13 item 3), for its panel routes. */
export interface ClaimApi {
  /** Held jobs here that nobody has claimed, oldest first. */
  claimable (): ClaimableJob[]
  /** Makes the job the caller's (a Direct one prints now); refused once claimed, and for an admin. */
  claim (actor: Actor, id: string): Promise<ClaimableJob>
}

/** Why a copy session ended: the user's Done, logging out, the panel's idle logout, the next user's login, a terminal restart. */
export type CopyEndReason = 'done' | 'logout' | 'idle' | 'next-user' | 'restart' | 'credit'

/** A copy session open at a terminal, as its user's panel shows it. */
export interface CopySessionView {
  id: string
  startedAt: number
  /** Where the device's counters are read (no secret in it). */
  device: string
  /** Pages copied so far, by the counters now (less prints); absent when they could not be read. */
  copied?: { pages: number, colorPages: number }
  /** Why the counters could not be read just now. */
  countersError?: string
}

/** How a copy session ended: charged as one `copy` usage record, nothing copied, or failed (counters unreadable: nothing charged). */
export type CopyEndView =
  | { outcome: 'charged', id: string, pages: number, colorPages: number, sheets: number, printPages: number }
  | { outcome: 'nothing-copied', id: string }
  | { outcome: 'failed', id: string, message: string }

/** A terminal's copy sessions (node/copy-sessions.ts), for its panel routes; absent without device counters. */
export interface CopyApi {
  /** The caller's open session, with its running count. */
  current (actor: Actor): Promise<CopySessionView | undefined>
  /** Opens a session for the caller (reads the counters); the caller's open one if there is one. */
  begin (actor: Actor): Promise<CopySessionView>
  /** Ends the caller's session: reads the counters and charges the difference. */
  end (actor: Actor, reason: CopyEndReason): Promise<CopyEndView>
  /** Sessions that could not be charged (counters unreadable at the end), oldest first, for an admin to settle. */
  failed (): readonly FailedCopyView[]
}

/** A copy session that ended uncharged: who, when, why, and the counters at its start. */
export interface FailedCopyView {
  id: string
  user: string
  startedAt: number
  endedAt: number
  reason: CopyEndReason
  message: string
  start: { total: number, mono?: number, color?: number, sheets?: number, device: { address: string, serial?: string } }
}

/** Checks a user's PIN (slow hash) on a node without a SiteApi (a terminal); undefined when wrong or unknown. */
export interface UserAuthenticator {
  authenticateUser (username: string, pin: string): Promise<Actor | undefined>
  /** The user holding this card (keyed index, then one slow hash); undefined when unknown. Where absent, card login answers 404. */
  authenticateCard?: (card: string) => Promise<Actor | undefined>
}

/** A job of this workstation, as its local page shows it (node/client.ts). */
export interface ClientJobView {
  id: string
  name: string
  owner: string
  state: JobState
  createdAt: number
  updatedAt: number
  pages?: number
  colorPages?: number
  message?: string
  /** Where it printed, when another peer released it (a terminal, the site): that peer, its site and printer. */
  printedBy?: { peer: string, site: string, printer: string }
  /** The printer it was sent to from this workstation (`<site>:<device>` for a device of the site, or a fallback printer's name). */
  printer?: string
  /** The fallback printer it went to, when it did. */
  fallback?: { name: string, uri: string }
  /** Client spooling off: the site it is being handed over to (`releasing`) or was handed over to (`deleted`). */
  handOver?: { site: string, done: boolean }
}

/** What a workstation's local page shows and does (loopback only). */
export interface ClientApi {
  status (): {
    workstation: string
    user: string
    site: string
    queue: string
    ippUri: string
    /** A peer of the site that could release its jobs (its server, a terminal) is connected. */
    siteReachable: boolean
    reachablePeers: Array<{ peer: string, role: string }>
    /** The site's setting: jobs stay on this workstation (true) or are handed over to the site's server (false). */
    clientSpooling: boolean
    jobs: ClientJobView[]
    /** The printers the user may pick: configured for this workstation, or printed to before (the site's devices it sent jobs to itself). */
    fallbackPrinters: Array<{ name: string, uri: string, chosen: boolean, kind: 'configured' | 'printed-before' }>
    /** The user's credit and this month's quotas as this workstation knows them (issue 20): what it holds is what a fallback print can spend. */
    credit: { enforced: boolean, currency?: string, balance: number, here: number, quotas: Array<{ measure: 'pages' | 'colour' | 'cost', left: number, here: number }> }
  }
  /** The fallback printer tried first from now on. */
  chooseFallback (printer: string): Promise<void>
  /** Sends a held job to a fallback printer now (the chosen one, or `printer`). */
  printOnFallback (jobId: string, printer?: string): Promise<void>
  cancel (jobId: string): Promise<void>
}
