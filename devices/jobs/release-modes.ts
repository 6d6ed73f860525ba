/**
 * Device spooling's release modes (issue 13) as queues: what a terminal offers at
 * `/printers/<mode>` (node/terminal.ts) and the chaos simulator builds the same way. One table,
 * so the two cannot drift.
 */
import type { TerminalReleaseMode } from '../../crdt/site-config.ts'

/** How a mode's queue holds, lists and lets others release its jobs (QueueInfo's fields), and how it is described. */
export interface ReleaseModeQueue { hold: boolean, pinned: boolean, delegable: boolean, info: string }

/**
 * Direct prints on arrival; Hold is held and pinned (released only at its terminal, listed and
 * granted nowhere else); Pull is held and released anywhere through the terminal's grant;
 * Delegated as Pull, and the owner's delegates may release it.
 */
export const RELEASE_MODE_QUEUES: Readonly<Record<TerminalReleaseMode, ReleaseModeQueue>> = {
  direct: { hold: false, pinned: false, delegable: false, info: 'prints on arrival' },
  hold: { hold: true, pinned: true, delegable: false, info: 'held for release at this device' },
  pull: { hold: true, pinned: false, delegable: false, info: 'held for release at any printer of the site' },
  delegated: { hold: true, pinned: false, delegable: true, info: 'held for release at any printer of the site, by its owner or the owner\'s delegates' }
}
