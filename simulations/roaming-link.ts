/**
 * The in-memory {@link RoamingLink}: roaming between peers of one process, for the roaming
 * unit tests and the simulator. Holders register by peer id; a request reaches one only
 * while `reachable(from, to)` says so (the simulator ties it to its partitions and crashes),
 * otherwise it fails with {@link HolderUnreachableError}, as the libp2p link does. Documents
 * are copied file to file and checked against their sha256, like the blob protocol.
 */
import { createHash } from 'node:crypto'
import { copyFile, rename, rm } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import type { PeerId } from '../crdt/names.ts'
import { HolderUnreachableError, type RoamingHolder, type RoamingLink } from '../devices/jobs/types.ts'

export class MemoryRoamingHub {
  private readonly holders = new Map<PeerId, RoamingHolder>()
  /** While set, document fetches wait for it (or for their signal) before copying: a test holds a release in `fetching`. */
  fetchGate?: Promise<void>

  /**
   * @param reachable whether `from` can reach `to` right now
   * @param wrap runs every call (the simulator tracks them, so it knows when all work settled)
   */
  constructor (
    private readonly reachable: (from: PeerId, to: PeerId) => boolean = () => true,
    private readonly wrap: <T>(work: () => Promise<T>) => Promise<T> = async (work) => await work()
  ) {}

  /** Makes `peer`'s holder side answer (call again after a restart). */
  register (peer: PeerId, holder: RoamingHolder): void { this.holders.set(peer, holder) }
  unregister (peer: PeerId): void { this.holders.delete(peer) }

  /** The link `from` uses. */
  linkFor (from: PeerId): RoamingLink {
    const reach = (to: PeerId): RoamingHolder => {
      const holder = this.holders.get(to)
      if (holder === undefined || !this.reachable(from, to)) throw new HolderUnreachableError(to, 'no route to the holding peer')
      return holder
    }
    const w = this.wrap
    return {
      requestGrant: async (to, request) => await w(async () => await reach(to).grant(from, request)),
      commit: async (to, jobId, grantId) => await w(async () => await reach(to).commit(from, jobId, grantId)),
      deleteJob: async (to, jobId, user, _signal, adminCapability) => await w(async () => await reach(to).deleteJob(from, jobId, user, adminCapability)),
      settle: async (to, report) => await w(async () => await reach(to).settle(from, report)),
      fetch: async (to, sha256, dest, signal) => await w(async () => {
        if (this.fetchGate !== undefined) await untilOrAborted(this.fetchGate, signal)
        const holder = reach(to)
        const path = holder.mayFetch(from, sha256) ? holder.blobPath(sha256) : undefined
        if (path === undefined) throw new Error(`holder ${to} refused or lacks ${sha256}`)
        const partial = `${dest}.partial`
        await copyFile(path, partial)
        const hash = createHash('sha256')
        for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer)
        if (hash.digest('hex') !== sha256) {
          await rm(partial, { force: true })
          throw new Error(`copy of ${sha256} does not match its hash`)
        }
        await rename(partial, dest)
      })
    }
  }
}

/** Waits for `gate`; rejects with the signal's reason if it aborts first. */
async function untilOrAborted (gate: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  try {
    await Promise.race([gate, new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
    })])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
