/**
 * Service composition, the js-libp2p way. A capability of a node is a service with four
 * pieces: its public interface, an `Init` (options), the `Components` it needs, and a
 * factory `service(init)` that returns a {@link ServiceFactory}: `(components) => instance`,
 * carrying the names of the components it depends on. {@link createNode} takes the
 * components a role is given (logger, store, host, …) and the role's factories by name,
 * checks that every dependency is met before anything is built (a wrongly assembled role
 * fails at boot, with every missing name listed), builds the services in dependency order,
 * each seeing the components and the services built before it under their names, starts
 * them in that order and stops them in reverse, logging each step.
 *
 * Every instance a factory returns is made {@link Startable}-safe here, in one place:
 * starting twice starts once, stopping without starting (or twice) does nothing, and a
 * start that failed can be retried.
 */
import type { Logger } from 'pino'

/** What a service does when its node starts and stops. */
export interface Startable {
  /** Registers handlers, opens ports, starts timers. */
  start (): Promise<void>
  /** Undoes everything `start` did. */
  stop (): Promise<void>
}

/** Builds one service from the components it declared. */
export interface ServiceFactory<T extends Startable = Startable> {
  (components: Record<string, unknown>): T
  /** Names of the components (or other services) the service needs. */
  readonly dependencies: readonly string[]
}

/**
 * Makes a factory: `build(components)` gets exactly the declared components, typed as `C`.
 * Every instance is wrapped by {@link startableOnce}.
 */
export function serviceFactory<C, T extends Startable> (dependencies: ReadonlyArray<keyof C & string>, build: (components: C) => T): ServiceFactory<T> {
  const factory = (components: Record<string, unknown>): T => startableOnce(build(components as C))
  return Object.assign(factory, { dependencies: Object.freeze([...dependencies]) })
}

/** A role names services the node does not know. */
export class UnknownServiceError extends Error {
  override readonly name = 'UnknownServiceError'
  constructor (readonly role: string, readonly unknown: readonly string[], known: readonly string[]) {
    super(`role ${role} names unknown service${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${known.join(', ')})`)
  }
}

/** Services need components (or services) the node was not given. */
export class MissingServiceError extends Error {
  override readonly name = 'MissingServiceError'
  /** Each missing name, with the services that need it. */
  readonly missing: ReadonlyMap<string, readonly string[]>
  constructor (missing: Map<string, string[]>) {
    super(`missing component${missing.size > 1 ? 's' : ''}: ${[...missing].map(([name, by]) => `${name} (needed by ${by.join(', ')})`).join('; ')}`)
    this.missing = missing
  }
}

/** Services that need each other in a circle cannot be ordered. */
export class DependencyCycleError extends Error {
  override readonly name = 'DependencyCycleError'
  constructor (readonly cycle: readonly string[]) {
    super(`services depend on each other in a cycle: ${cycle.join(' → ')}`)
  }
}

/**
 * The order services are built and started in: each after what it depends on; otherwise in
 * the order given (so a role list reads as the start order).
 * @throws MissingServiceError, DependencyCycleError
 */
export function startOrder (components: readonly string[], services: ReadonlyArray<[string, { dependencies: readonly string[] }]>): string[] {
  const given = new Set(components)
  const byName = new Map(services)
  const missing = new Map<string, string[]>()
  for (const [name, { dependencies }] of services) {
    for (const dep of dependencies) {
      if (given.has(dep) || byName.has(dep)) continue
      missing.set(dep, [...(missing.get(dep) ?? []), name])
    }
  }
  if (missing.size > 0) throw new MissingServiceError(missing)
  const order: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return
    if (state.get(name) === 'visiting') throw new DependencyCycleError([...path.slice(path.indexOf(name)), name])
    state.set(name, 'visiting')
    for (const dep of byName.get(name)?.dependencies ?? []) if (byName.has(dep)) visit(dep, [...path, name])
    state.set(name, 'done')
    order.push(name)
  }
  for (const [name] of services) visit(name, [])
  return order
}

/** A node: its components and services, started in dependency order, stopped in reverse. */
export interface Node<S extends Record<string, Startable> = Record<string, Startable>> extends Startable {
  /** The given components and every built service, by name. */
  readonly components: Record<string, unknown>
  /** The built services by name, in start order. */
  readonly services: S
  /** Names in start order. */
  readonly order: readonly string[]
}

export interface CreateNodeOptions {
  /** What the node is given (logger, store, host, …); services see these by name. */
  components: Record<string, unknown>
  /** The role's service factories by name; a name must not clash with a component's. */
  services: Record<string, ServiceFactory>
  logger: Logger
}

/**
 * Builds a node: checks dependencies (before building anything), builds each service in
 * dependency order. Nothing starts until `start()`.
 * @throws MissingServiceError, DependencyCycleError, or an Error when a service's name is also a component's
 */
export function createNode<S extends Record<string, Startable> = Record<string, Startable>> (options: CreateNodeOptions): Node<S> {
  const { logger } = options
  const clash = Object.keys(options.services).filter((name) => name in options.components)
  if (clash.length > 0) throw new Error(`service names also given as components: ${clash.join(', ')}`)
  const order = startOrder(Object.keys(options.components), Object.entries(options.services))
  const components: Record<string, unknown> = { ...options.components }
  const services: Record<string, Startable> = {}
  for (const name of order) {
    const factory = options.services[name]
    const visible = Object.fromEntries(factory.dependencies.map((dep) => [dep, components[dep]]))
    services[name] = components[name] = factory(visible)
  }
  const started: string[] = []
  const stop = async (): Promise<void> => {
    while (started.length > 0) {
      const name = started.pop() as string
      const begun = Date.now()
      try {
        await services[name].stop()
        logger.debug({ service: name, ms: Date.now() - begun }, 'service stopped')
      } catch (err) {
        logger.error({ err, service: name }, 'service failed to stop cleanly')
      }
    }
  }
  return {
    components,
    services: services as S,
    order,
    async start () {
      for (const name of order) {
        if (started.includes(name)) continue
        const begun = Date.now()
        try {
          await services[name].start()
        } catch (err) {
          logger.error({ err, service: name }, 'service failed to start')
          await stop()
          throw err
        }
        started.push(name)
        logger.debug({ service: name, ms: Date.now() - begun }, 'service started')
      }
    },
    stop
  }
}

/**
 * The same instance with `start` and `stop` made safe: a second `start` while started (or
 * starting) waits for the first, `stop` without a start does nothing, a stop during a start
 * waits for it first. A failed start leaves the service stopped.
 */
export function startableOnce<T extends Startable> (service: T): T {
  const start = service.start.bind(service)
  const stop = service.stop.bind(service)
  let state: 'stopped' | 'started' = 'stopped'
  let pending: Promise<void> = Promise.resolve()
  const after = (step: () => Promise<void>): Promise<void> => {
    const next = pending.then(step)
    pending = next.catch(() => {})
    return next
  }
  service.start = async () => await after(async () => {
    if (state === 'started') return
    await start()
    state = 'started'
  })
  service.stop = async () => await after(async () => {
    if (state === 'stopped') return
    state = 'stopped'
    await stop()
  })
  return service
}
