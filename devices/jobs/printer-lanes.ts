/**
 * One submission at a time per printer, first come first served.
 *
 * Many printers take one job at a time and answer `server-error-busy` to every other
 * Print-Job meanwhile (ippeveprinter does; so do small office printers). Releasing eight
 * jobs at once would make all eight poll the printer and give up after the device's
 * retries, in no particular order. Instead a release enters its printer's lane and waits
 * there — still `releasing`, nothing sent — until the job ahead of it has been accepted
 * by the printer (or has failed); only then is it handed to the printer. A printer that
 * queues jobs itself accepts at once, so the lane costs it nothing.
 */

/** Leaves the lane; calling it more than once is harmless. */
export type LeaveLane = () => void

export class LaneAbortedError extends Error {
  constructor (printer: string, options?: { cause?: unknown }) {
    super(`stopped while waiting for printer ${printer}`, options)
    this.name = 'LaneAbortedError'
  }
}

export class PrinterLanes {
  /** Per printer: resolves when everyone who entered so far has left. */
  private readonly tails = new Map<string, Promise<void>>()

  /**
   * Waits until every earlier entrant of `printer`'s lane has left, then resolves with
   * this entrant's {@link LeaveLane}. Rejects with {@link LaneAbortedError} when `signal`
   * aborts first; the entrant then leaves by itself as soon as it is its turn.
   */
  async enter (printer: string, signal: AbortSignal): Promise<LeaveLane> {
    const ahead = this.tails.get(printer) ?? Promise.resolve()
    let leave!: LeaveLane
    const left = new Promise<void>((resolve) => { leave = resolve })
    const tail = ahead.then(async () => await left)
    this.tails.set(printer, tail)
    void tail.then(() => { if (this.tails.get(printer) === tail) this.tails.delete(printer) })
    if (signal.aborted) {
      void ahead.then(leave)
      throw new LaneAbortedError(printer, { cause: signal.reason })
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        void ahead.then(leave)
        reject(new LaneAbortedError(printer, { cause: signal.reason }))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      void ahead.then(() => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      })
    })
    return leave
  }
}
