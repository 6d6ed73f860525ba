/**
 * Share requests between peers of one process (node/credit.ts `EscrowLink`), for the credit
 * tests and the simulator: a peer reaches another while the memory network links them and no
 * partition separates them, as the libp2p link reaches the peers it is connected to.
 * `loseAnswers` drops the answer after the giver acted (a reply lost on the wire: the give is
 * written and arrives by sync anyway).
 *
 * With `faults` (the simulator), requests and answers travel on the network's clock
 * (`schedule`) with the link's faults as the simulator set them: a request or an answer may
 * be delayed (the link's latency), lost (the asker gives up after the product's own share request
 * timeout on that clock; a lost answer is lost after the giver wrote its give) or duplicated (a
 * duplicated request is answered twice: the giver gives twice, the asker hears the first
 * answer). Its choices come from its own seeded generator, so the network's own sequence of
 * decisions is unchanged.
 */
import type { LinkFaults, MemoryNetwork, Schedule } from '../transports/memory.ts'
import { shareRequestTimeout, type CreditService, type EscrowLink, type ShareAnswer, type ShareRequest } from '../node/credit.ts'

export interface EscrowHubFaults {
  /** The network's clock. */
  schedule: Schedule
  /** The faults of the link between two peers now (undefined: none). */
  faults: (a: string, b: string) => LinkFaults | undefined
  /** The hub's own seeded generator. */
  random: () => number
  /** Whether a peer is up (a crashed process answers nothing). */
  up?: (peer: string) => boolean
  /** Sees every request and answer (counts, traces). */
  onMessage?: (e: { from: string, to: string, kind: 'request' | 'answer', fate: 'delivered' | 'lost' | 'duplicated', given?: number }) => void
}

/** The request or answer did not arrive: the asker's wait ran out. */
export class ShareLostError extends Error {
  constructor (what: string) { super(what); this.name = 'ShareLostError' }
}

export class MemoryEscrowHub {
  private readonly services = new Map<string, CreditService>()
  /** Share requests on the wire, by asker: given up at once when its process goes (nothing on the virtual clock may hold up a teardown). */
  private readonly pending = new Map<string, Set<(err: Error) => void>>()
  /** While true, every answer is lost after the giver wrote its give. */
  loseAnswers = false

  constructor (private readonly network: MemoryNetwork, private readonly wire?: EscrowHubFaults) {}

  /** Gives `credit` (the service of peer `id`) its link to the others, and makes it reachable. */
  attach (id: string, credit: CreditService): void {
    this.services.set(id, credit)
    credit.useLink(this.linkOf(id))
  }

  /** Forgets a peer's service (its process is gone); attach the new one after a restart. */
  detach (id: string, credit?: CreditService): void {
    if (credit === undefined || this.services.get(id) === credit) this.services.delete(id)
    for (const giveUp of [...this.pending.get(id) ?? []]) giveUp(new ShareLostError(`${id} stopped while it waited for an answer`))
  }

  /** Gives up every share request still on the wire (the run ends). */
  close (): void {
    for (const [, asks] of this.pending) for (const giveUp of [...asks]) giveUp(new ShareLostError('the run ended'))
  }

  private reaches (a: string, b: string): boolean {
    return this.network.linked(a, b) && !this.network.partitioned(a, b) && (this.wire?.up?.(b) ?? true)
  }

  private linkOf (self: string): EscrowLink {
    return {
      reachable: () => [...this.services.keys()].filter((p) => p !== self && this.reaches(self, p)),
      ask: async (peer, request, signal) => {
        const target = this.services.get(peer)
        if (target === undefined || !this.reaches(self, peer)) throw new Error(`peer ${peer} is unreachable`)
        if (this.wire !== undefined) return await this.overWire(self, peer, request, signal)
        const answer = await target.answer(self, request)
        if (this.loseAnswers || signal.aborted) throw new Error('the answer was lost')
        return answer
      }
    }
  }

  /** One share request over the simulated wire: latency, loss and duplication of the link, both ways. */
  private async overWire (self: string, peer: string, request: ShareRequest, signal: AbortSignal): Promise<ShareAnswer> {
    const wire = this.wire as EscrowHubFaults
    const faults = wire.faults(self, peer) ?? {}
    const fate = (f: LinkFaults): 'lost' | 'duplicated' | 'delivered' =>
      (f.lossRate ?? 0) > 0 && wire.random() < (f.lossRate ?? 0) ? 'lost' : (f.duplicateRate ?? 0) > 0 && wire.random() < (f.duplicateRate ?? 0) ? 'duplicated' : 'delivered'
    const latency = (f: LinkFaults): number => {
      const l = f.latencyMs ?? 0
      return Array.isArray(l) ? l[0] + wire.random() * (l[1] - l[0]) : l
    }
    return await new Promise<ShareAnswer>((resolve, reject) => {
      let done = false
      const asks = this.pending.get(self) ?? new Set<(err: Error) => void>()
      this.pending.set(self, asks)
      const giveUp = (err: Error): void => finish(() => reject(err))
      asks.add(giveUp)
      const finish = (fn: () => void): void => { if (!done) { done = true; asks.delete(giveUp); signal.removeEventListener('abort', onAbort); fn() } }
      const onAbort = (): void => finish(() => reject(new ShareLostError('the share request was given up')))
      signal.addEventListener('abort', onAbort)
      // the asker's own wait, on the network's clock: a lost request or answer ends here
      const timeout = shareRequestTimeout(request.relays ?? 0)
      wire.schedule(() => finish(() => reject(new ShareLostError(`no answer from ${peer} within ${timeout} ms`))), timeout)
      const sent = this.loseAnswers ? 'delivered' : fate(faults)
      wire.onMessage?.({ from: self, to: peer, kind: 'request', fate: sent })
      if (sent === 'lost') return
      const deliver = (first: boolean): void => {
        wire.schedule(() => {
          const target = this.services.get(peer)
          // the giver may have crashed, or been cut off, while the request travelled
          if (target === undefined || !this.reaches(self, peer)) return
          target.answer(self, request).then((answer) => {
            const back = this.loseAnswers ? 'lost' : fate(wire.faults(peer, self) ?? {})
            wire.onMessage?.({ from: peer, to: self, kind: 'answer', fate: back, given: answer.given })
            if (back === 'lost' || !first) return
            wire.schedule(() => { if (this.reaches(peer, self)) finish(() => resolve(answer)) }, latency(faults))
          }, (err: unknown) => { if (first) wire.schedule(() => finish(() => reject(err as Error)), latency(faults)) })
        }, latency(faults))
      }
      deliver(true)
      if (sent === 'duplicated') deliver(false)
    })
  }
}
