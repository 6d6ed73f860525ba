/**
 * Share requests between peers of one process (node/credit.ts `EscrowLink`), for the credit
 * tests and the simulator: a peer reaches another while the memory network links them and no
 * partition separates them, as the libp2p link reaches the peers it is connected to.
 * `loseAnswers` drops the answer after the giver acted (a reply lost on the wire: the give is
 * written and arrives by sync anyway).
 */
import type { MemoryNetwork } from '../transports/memory.ts'
import type { CreditService, EscrowLink } from '../node/credit.ts'

export class MemoryEscrowHub {
  private readonly services = new Map<string, CreditService>()
  /** While true, every answer is lost after the giver wrote its give. */
  loseAnswers = false

  constructor (private readonly network: MemoryNetwork) {}

  /** Gives `credit` (the service of peer `id`) its link to the others, and makes it reachable. */
  attach (id: string, credit: CreditService): void {
    this.services.set(id, credit)
    credit.useLink(this.linkOf(id))
  }

  private reaches (a: string, b: string): boolean {
    return this.network.linked(a, b) && !this.network.partitioned(a, b)
  }

  private linkOf (self: string): EscrowLink {
    return {
      reachable: () => [...this.services.keys()].filter((p) => p !== self && this.reaches(self, p)),
      ask: async (peer, request, signal) => {
        const target = this.services.get(peer)
        if (target === undefined || !this.reaches(self, peer)) throw new Error(`peer ${peer} is unreachable`)
        const answer = await target.answer(self, request)
        if (this.loseAnswers || signal.aborted) throw new Error('the answer was lost')
        return answer
      }
    }
  }
}
