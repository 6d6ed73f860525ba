/**
 * Service lifecycle, the libp2p way: every service is {@link Startable}; a node starts its
 * services in order and stops them in reverse, best effort, logging each step's failure
 * instead of abandoning the rest.
 */
import type { Logger } from 'pino'

export interface Startable {
  start (): Promise<void>
  stop (): Promise<void>
}

export class ServiceGroup {
  private readonly services: Array<{ name: string, service: Startable }> = []
  private readonly started: Array<{ name: string, service: Startable }> = []

  constructor (private readonly logger: Logger) {}

  add<T extends Startable> (name: string, service: T): T {
    if (this.services.some((s) => s.name === name)) throw new Error(`service ${name} added twice`)
    this.services.push({ name, service })
    return service
  }

  /** Starts every service in order; if one fails, stops those already started and rethrows. */
  async start (): Promise<void> {
    for (const entry of this.services) {
      if (this.started.includes(entry)) continue
      try {
        await entry.service.start()
      } catch (err) {
        this.logger.error({ err, service: entry.name }, 'service failed to start')
        await this.stop()
        throw err
      }
      this.started.push(entry)
    }
  }

  /** Stops started services in reverse order; each failure is logged, none stops the rest. */
  async stop (): Promise<void> {
    while (this.started.length > 0) {
      const { name, service } = this.started.pop() as { name: string, service: Startable }
      try {
        await service.stop()
      } catch (err) {
        this.logger.error({ err, service: name }, 'service failed to stop cleanly')
      }
    }
  }
}
