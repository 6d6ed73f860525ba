/**
 * Terminals' status for their site's admin page (issue 12 item 6): a terminal answers what
 * it is doing — online, its directory copy's size, when its documents last changed from a
 * peer, its printer's state, reasons and supplies — and its site asks each of its terminals
 * over libp2p when the admin page does, one JSON request per terminal
 * ({@link TERMINAL_STATUS_PROTOCOL}, transports/rpc.ts; PROTOCOL.md).
 *
 * Why asked rather than replicated: the status is ephemeral (a toner level every probe, a
 * reason that comes and goes); written into a replicated document it would grow that
 * document's history with every probe on every peer that reads it, for a value only the
 * site's admin page shows. Asked, it costs nothing while no admin looks, it is always as
 * fresh as the printer's last probe, and "offline" is simply "not connected": the site
 * keeps the last answer to show beside when it last saw the terminal (the mesh's
 * `lastSeen`).
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { DocStore, Origin } from '../crdt/store.ts'
import type { Membership } from '../crdt/membership.ts'
import { directoryDoc, type DocName } from '../crdt/names.ts'
import { listUsers } from '../crdt/directory.ts'
import { callRpc, handleRpc } from '../transports/rpc.ts'
import type { MeshApi, PanelStatus, TerminalStatus, TerminalView, TerminalsApi } from '../ui/api.ts'

/** The terminal-status request: `{}` → a {@link TerminalStatus}. */
export const TERMINAL_STATUS_PROTOCOL = '/printmesh/terminal-status/1.0.0'
/** A terminal answers from memory; one that takes longer than this is shown as not answering (the admin page must not hang). */
const STATUS_RPC_TIMEOUT_MS = 3_000

/** The terminal side: what it says of itself, and when a peer last changed its documents. */
export class TerminalSelf {
  private lastSync: number | undefined
  private stopHandler: (() => Promise<void>) | undefined

  constructor (private readonly init: { name: string, site: string }, private readonly c: {
    store: DocStore
    host: Libp2p
    membership: Membership
    panel: { status: () => PanelStatus }
    logger: Logger
    now: () => number
  }) {}

  private readonly onEntry = (_name: DocName, _bytes: Uint8Array, _e: unknown, origin: Origin): void => {
    if (origin.kind === 'peer') this.lastSync = this.c.now()
  }

  status (): TerminalStatus {
    const panel = this.c.panel.status()
    const directory = this.c.store.get(directoryDoc())
    return {
      name: this.init.name,
      site: this.init.site,
      online: panel.online,
      printer: panel.printer,
      users: directory === undefined ? 0 : listUsers(directory).length,
      ...(this.lastSync !== undefined ? { lastSync: this.lastSync } : {})
    }
  }

  /** Answers its site's servers (and central); nobody else learns its state. */
  async start (): Promise<void> {
    if (this.stopHandler !== undefined) return
    this.c.store.on('entry', this.onEntry)
    this.stopHandler = await handleRpc(this.c.host, TERMINAL_STATUS_PROTOCOL, async (peer) => {
      const who = this.c.membership.info(peer)
      if (who === undefined || !(who.role === 'central' || (who.role === 'site' && who.site === this.init.site))) {
        return { error: 'only this terminal\'s site and central may ask its status' }
      }
      return this.status()
    }, this.c.logger, STATUS_RPC_TIMEOUT_MS)
  }

  async stop (): Promise<void> {
    this.c.store.off('entry', this.onEntry)
    const stop = this.stopHandler
    this.stopHandler = undefined
    await stop?.()
  }
}

/** Whether an answer looks like a terminal's status (a peer's bytes are checked at the boundary). */
function isTerminalStatus (v: unknown): v is TerminalStatus {
  if (v === null || typeof v !== 'object') return false
  const s = v as Record<string, unknown>
  const printer = s.printer as Record<string, unknown> | null
  return typeof s.name === 'string' && typeof s.site === 'string' && typeof s.online === 'boolean' && typeof s.users === 'number' &&
    printer !== null && typeof printer === 'object' && typeof printer.state === 'string' && typeof printer.uri === 'string' &&
    (printer.markers === undefined || Array.isArray(printer.markers))
}

/** The site side: its terminals (known from the mesh), asked when an admin looks; the last answers kept for terminals gone offline. */
export function siteTerminals (site: string, c: { host: Libp2p, mesh: MeshApi, logger: Logger, now: () => number }): TerminalsApi {
  const last = new Map<string, { status: TerminalStatus, at: number }>()
  const ask = async (peer: string): Promise<TerminalView> => {
    try {
      const answer = await callRpc(c.host, TERMINAL_STATUS_PROTOCOL, peer, [], {}, AbortSignal.timeout(STATUS_RPC_TIMEOUT_MS))
      if (!isTerminalStatus(answer)) throw new Error(typeof (answer as { error?: unknown })?.error === 'string' ? (answer as { error: string }).error : 'its answer is not a terminal status')
      const at = c.now()
      last.set(peer, { status: answer, at })
      return { peer, online: true, lastSeen: at, status: answer, reportedAt: at }
    } catch (err) {
      c.logger.debug({ peer, err: (err as Error).message }, 'a terminal did not say its status')
      const kept = last.get(peer)
      return { peer, online: true, lastSeen: c.now(), ...(kept !== undefined ? { status: kept.status, reportedAt: kept.at } : {}), error: `did not answer: ${(err as Error).message}` }
    }
  }
  return {
    async list () {
      const terminals = c.mesh.status().peers.filter((p) => p.role === 'terminal' && p.site === site && !p.revoked)
      return await Promise.all(terminals.map(async (p): Promise<TerminalView> => {
        if (p.connected) return await ask(p.peer)
        const kept = last.get(p.peer)
        return { peer: p.peer, online: false, ...(p.lastSeen !== undefined ? { lastSeen: p.lastSeen } : {}), ...(kept !== undefined ? { status: kept.status, reportedAt: kept.at } : {}) }
      }))
    }
  }
}
