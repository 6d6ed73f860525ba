/**
 * DNS-SD advertisement through the host's avahi-daemon, over the system D-Bus: publishes
 * the groups it is given (devices/ipp/dnssd.ts says what a site's queues look like) while
 * the site runs and withdraws them when it stops.
 *
 * Why avahi over D-Bus, and not:
 * - a pure-JS mDNS responder (@homebridge/ciao, bonjour-service): it would be a second
 *   responder beside the avahi-daemon that Debian hosts (and `npm test`'s namespace) already
 *   run, both on UDP 5353, both answering for the host's name. Avahi owns mDNS on the host;
 *   we ask it to publish.
 * - `avahi-publish` child processes: one process per service, avahi-utils needed at run
 *   time, no way to choose the interface, and a site killed with SIGKILL leaves them running,
 *   advertising a dead port until someone kills them. Avahi ties an entry group to the D-Bus
 *   connection that made it, so however this process ends, its services are withdrawn.
 * - The D-Bus client is @homebridge/dbus-native: pure JS, kept (HAP-NodeJS publishes to
 *   avahi with it). It neither times out a call nor fails the calls pending when the
 *   connection drops; {@link SystemBus} adds both.
 *
 * Invariants:
 * 1. One avahi entry group per {@link DnsSdGroup}: a name collision renames that group
 *    alone (avahi's alternative name, `print @ branch-a #2`), all its services together.
 * 2. Services are published only where the advertised server can be reached: a server
 *    bound to one address is advertised on that address's interface and IP family only
 *    (see {@link advertScope}), so a site on 127.0.0.1 is seen by this machine's clients
 *    and by no other machine.
 * 3. Avahi or the bus being absent never fails `start()`: one warning per outage, and
 *    advertising comes back by itself when avahi (re)appears (a D-Bus signal) or the bus
 *    does (retried every {@link BUS_RETRY_MS}).
 * 4. `stop()` withdraws every group, closes the connection and leaves no timer; starting
 *    twice and stopping without starting are safe. Every avahi call runs on one queue, so
 *    signals arriving mid-publication never interleave with it.
 */
import { isIP, type Socket } from 'node:net'
import { lookup } from 'node:dns/promises'
import type { EventEmitter } from 'node:events'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import type { Logger } from 'pino'
import type { MessageBus } from '@homebridge/dbus-native'
import { DnsSdRecordError, type DnsSdGroup } from '../devices/ipp/dnssd.ts'
import type { Startable } from './compose.ts'

/** avahi answers in well under a millisecond; a call unanswered this long means a wedged daemon or bus. */
const CALL_TIMEOUT_MS = 5_000
/** How often to try the system D-Bus again once it was unreachable (avahi's own comings and goings are signalled, not polled). */
const BUS_RETRY_MS = 30_000
/** More collision renames than this for one group means something keeps taking our names: give up on it and say so. */
const MAX_RENAMES = 16

const AVAHI = 'org.freedesktop.Avahi'
const AVAHI_SERVER = 'org.freedesktop.Avahi.Server'
const AVAHI_ENTRY_GROUP = 'org.freedesktop.Avahi.EntryGroup'
const DBUS = 'org.freedesktop.DBus'
const DBUS_PATH = '/org/freedesktop/DBus'
/** avahi's AVAHI_IF_UNSPEC: every interface. */
const IF_UNSPEC = -1
/** avahi's AvahiProtocol (avahi-common/address.h): the IP family records are published over. */
const PROTO_INET = 0
const PROTO_INET6 = 1
const PROTO_UNSPEC = -1
/** AvahiServerState AVAHI_SERVER_RUNNING (avahi-common/defs.h): only a running server publishes. */
const SERVER_RUNNING = 2
/** AvahiServerState AVAHI_SERVER_FAILURE: the daemon gave up (e.g. no usable interface). */
const SERVER_FAILURE = 4
/** AvahiEntryGroupState values (avahi-common/defs.h). */
const GROUP_ESTABLISHED = 2
const GROUP_COLLISION = 3
const GROUP_FAILURE = 4
/** D-Bus message type of a signal (D-Bus specification, "Message Format"). */
const DBUS_SIGNAL = 4
/** What avahi answers AddService when the name is taken on this host. */
const COLLISION_ERROR = 'org.freedesktop.Avahi.CollisionError'
/** What the bus answers for a call to a name nobody owns: avahi-daemon is not running. */
const NOT_RUNNING_ERRORS = new Set(['org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.NameHasNoOwner'])
/** Signals this module follows: avahi starting and stopping, and avahi's own state. Entry group signals are sent to us directly. */
const MATCH_RULES = [
  `type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${AVAHI}'`,
  `type='signal',interface='${AVAHI_SERVER}',member='StateChanged'`
]

/** DNS-SD cannot be used: no system D-Bus, or no avahi-daemon on it. */
export class DnsSdUnavailableError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DnsSdUnavailableError'
  }
}

/** An avahi (or bus) method call failed; `dbusName` is the D-Bus error name when there is one. */
export class AvahiCallError extends Error {
  constructor (readonly member: string, readonly dbusName: string | undefined, message: string, options?: { cause?: unknown }) {
    super(`${member}: ${message}${dbusName !== undefined ? ` (${dbusName})` : ''}`, options)
    this.name = 'AvahiCallError'
  }
}

/** A group's name was taken {@link MAX_RENAMES} times over: it is not advertised. */
export class DnsSdNameCollisionError extends Error {
  constructor (readonly original: string, readonly last: string) {
    super(`DNS-SD name ${JSON.stringify(original)} collided ${MAX_RENAMES} times (last tried ${JSON.stringify(last)}); not advertised`)
    this.name = 'DnsSdNameCollisionError'
  }
}

/** Where a server bound to an address can be reached, so where it is advertised. */
export interface AdvertScope {
  /** The one network interface, or undefined for every interface. */
  interfaceName?: string
  /** The IP family clients should resolve the host to. */
  family: 'IPv4' | 'IPv6' | 'any'
}

function isLoopbackV4 (address: string): boolean {
  return isIP(address) === 4 && address.startsWith('127.')
}

/**
 * The interface and family a server listening on `host` is reachable on: every interface
 * for a wildcard address (IPv4 only for `0.0.0.0`, which takes no IPv6 connections), the
 * interface holding the address otherwise (127.0.0.0/8 is the loopback interface's). A
 * host name is looked up as `listen()` looks it up.
 */
export async function advertScope (host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): Promise<AdvertScope> {
  if (host === '0.0.0.0') return { family: 'IPv4' }
  if (host === '::' || host === '') return { family: 'any' }
  let address = host
  if (isIP(address) === 0) {
    try {
      address = (await lookup(host)).address
    } catch {
      return { family: 'any' }
    }
  }
  const family = isIP(address) === 4 ? 'IPv4' : 'IPv6'
  const wanted = address.toLowerCase()
  for (const [name, addresses] of Object.entries(interfaces)) {
    for (const a of addresses ?? []) {
      if (a.address.toLowerCase() === wanted) return { interfaceName: name, family }
      if (isLoopbackV4(address) && a.internal && a.family === 'IPv4') return { interfaceName: name, family }
    }
  }
  return { family }
}

/** A D-Bus message as dbus-native hands it over. */
interface DBusMessage { type: number, path?: string, interface?: string, member?: string, body?: unknown[] }
/** A D-Bus error reply as dbus-native reports it (or an Error of its own, e.g. Hello refused). */
type DBusReplyError = Error | { name?: string, message?: unknown }

/** A connection to the system D-Bus with per-call timeouts and signal delivery. */
class SystemBus {
  private readonly pending = new Set<(err: Error) => void>()
  private closedBy: Error | undefined
  private opened = false
  private readonly connection: EventEmitter & { stream: Socket }

  private constructor (private readonly bus: MessageBus, private readonly onSignal: (msg: DBusMessage) => void, private readonly onLost: (err: Error) => void) {
    const conn = bus.connection as EventEmitter & { stream: Socket }
    this.connection = conn
    // listening from the first moment: an 'error' nobody listens to would crash the site
    conn.on('error', (err: Error) => this.lost(err))
    conn.stream.on('close', () => this.lost(new Error('the connection closed')))
    conn.on('message', (msg: DBusMessage) => { if (msg.type === DBUS_SIGNAL) this.onSignal(msg) })
  }

  /** Connects (authentication included) or fails with {@link DnsSdUnavailableError}. */
  static async open (onSignal: (msg: DBusMessage) => void, onLost: (err: Error) => void): Promise<SystemBus> {
    let bus: MessageBus
    // loaded on the first connection: a client (no DNS-SD) or a --no-dnssd node never loads the D-Bus client (issue 19)
    const { systemBus } = await import('@homebridge/dbus-native')
    try {
      bus = systemBus()
    } catch (err) {
      throw new DnsSdUnavailableError(`the system D-Bus address is unusable: ${(err as Error).message}`, { cause: err })
    }
    const self = new SystemBus(bus, onSignal, onLost)
    const conn = self.connection
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS)
      const done = (): void => { clearTimeout(timer); conn.off('connect', ok); conn.off('error', fail); conn.stream.off('close', closed) }
      const ok = (): void => { done(); resolve() }
      const closed = (): void => fail(new Error('the bus closed the connection'))
      const fail = (err: Error): void => {
        done()
        self.close()
        reject(new DnsSdUnavailableError(`cannot connect to the system D-Bus: ${err.message}`, { cause: err }))
      }
      conn.on('connect', ok)
      conn.on('error', fail)
      conn.stream.on('close', closed)
    })
    self.opened = true
    return self
  }

  /** Calls a method; rejects with {@link AvahiCallError} on an error reply or a timeout. */
  async call<T> (path: string, iface: string, member: string, signature?: string, body?: unknown[], destination = AVAHI): Promise<T> {
    if (this.closedBy !== undefined) throw this.closedBy
    return await new Promise<T>((resolve, reject) => {
      let settled = false
      const settle = (err: Error | undefined, value?: unknown): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.pending.delete(abort)
        if (err !== undefined) reject(err)
        else resolve(value as T)
      }
      const abort = (err: Error): void => settle(err)
      const timer = setTimeout(() => settle(new AvahiCallError(member, undefined, `no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS)
      this.pending.add(abort)
      this.bus.invoke({ destination, path, interface: iface, member, ...(signature !== undefined ? { signature, body } : {}) },
        (err: DBusReplyError | undefined | null, value: unknown) => {
          if (err === undefined || err === null) { settle(undefined, value); return }
          settle(err instanceof Error
            ? new AvahiCallError(member, undefined, err.message, { cause: err })
            : new AvahiCallError(member, err.name, String(err.message ?? '')))
        })
    })
  }

  /** Calls the bus itself (AddMatch). */
  async callBus (member: string, signature: string, body: unknown[]): Promise<void> {
    await this.call(DBUS_PATH, DBUS, member, signature, body, DBUS)
  }

  /** Closes the connection; pending calls fail. */
  close (): void {
    if (this.closedBy !== undefined) return
    this.closedBy = new DnsSdUnavailableError('the D-Bus connection was closed')
    this.failPending(this.closedBy)
    this.connection.stream.destroy()
  }

  /** The connection failed or closed under us; told to the owner only once it had been open. */
  private lost (err: Error): void {
    if (this.closedBy !== undefined) return
    this.closedBy = new DnsSdUnavailableError(`the system D-Bus connection was lost: ${err.message}`, { cause: err })
    this.failPending(this.closedBy)
    this.connection.stream.destroy()
    if (this.opened) this.onLost(this.closedBy)
  }

  private failPending (err: Error): void {
    for (const abort of [...this.pending]) abort(err)
  }
}

export interface DnsSdAdvertiserInit {
  /** What to publish; read when first published, after the servers it describes are bound. */
  groups: () => DnsSdGroup[]
  /** The address the advertised servers listen on: decides interface and IP family ({@link advertScope}). */
  host: string
  logger: Logger
}

/** A group and what avahi knows of it. */
interface Entry {
  group: DnsSdGroup
  /** The name published (the group's, or avahi's alternative after a collision). */
  name: string
  /** The avahi entry group's object path, while one exists. */
  path?: string
  renames: number
}

/** avahi's interface index and protocol for an {@link AdvertScope}. */
interface AvahiScope { iface: number, protocol: number, label: string }

/** The DNS-SD advertiser: a {@link Startable} that publishes `groups()` through avahi. */
export function createDnsSdAdvertiser (init: DnsSdAdvertiserInit): Startable {
  const log = init.logger.child({ component: 'dnssd' })
  let running = false
  let bus: SystemBus | undefined
  let entries: Entry[] | undefined
  let scope: AvahiScope | undefined
  let retry: NodeJS.Timeout | undefined
  /** Why DNS-SD is down, once warned about; cleared when a service is established again. */
  let outage: string | undefined
  let queue: Promise<void> = Promise.resolve()

  /** Runs `step` after every step before it, while running; its failure is logged here. */
  async function serialize (what: string, step: () => Promise<void>): Promise<void> {
    const next = queue.then(async () => { if (running) await step() }).catch((err: unknown) => { trouble(what, err) })
    queue = next
    await next
  }

  function trouble (what: string, err: unknown): void {
    if (err instanceof DnsSdUnavailableError) unavailable(err.message)
    else if (err instanceof AvahiCallError || err instanceof DnsSdNameCollisionError || err instanceof DnsSdRecordError) {
      log.warn({ err, step: what }, 'DNS-SD: could not advertise; the IPP queues may not be advertised')
    } else log.error({ err, step: what }, 'DNS-SD: advertising failed unexpectedly; the IPP queues may not be advertised')
  }

  function unavailable (reason: string): void {
    if (outage !== undefined) { log.debug({ reason }, 'DNS-SD still unavailable'); return }
    outage = reason
    log.warn({ reason }, 'DNS-SD unavailable: the IPP queues are not advertised (clients can still print to them by address); ' +
      'start avahi-daemon to advertise them, or run with --no-dnssd')
  }

  function scheduleRetry (): void {
    if (!running || retry !== undefined) return
    retry = setTimeout(() => {
      retry = undefined
      void serialize('reconnect', connect)
    }, BUS_RETRY_MS)
    retry.unref()
  }

  function forgetGroups (): void {
    for (const e of entries ?? []) e.path = undefined
  }

  async function connect (): Promise<void> {
    let opened: SystemBus
    try {
      opened = await SystemBus.open(onSignal, onLost)
    } catch (err) {
      scheduleRetry()
      throw err
    }
    bus = opened
    for (const rule of MATCH_RULES) await opened.callBus('AddMatch', 's', [rule])
    await publishAll()
  }

  function onLost (err: Error): void {
    bus = undefined
    forgetGroups()
    unavailable(err.message)
    scheduleRetry()
  }

  async function avahiScope (b: SystemBus): Promise<AvahiScope> {
    const where = await advertScope(init.host)
    const protocol = where.family === 'IPv4' ? PROTO_INET : where.family === 'IPv6' ? PROTO_INET6 : PROTO_UNSPEC
    if (where.interfaceName === undefined) return { iface: IF_UNSPEC, protocol, label: `all interfaces, ${where.family}` }
    const iface = await b.call<number>('/', AVAHI_SERVER, 'GetNetworkInterfaceIndexByName', 's', [where.interfaceName])
    return { iface, protocol, label: `${where.interfaceName}, ${where.family}` }
  }

  async function publishAll (): Promise<void> {
    const b = bus
    if (b === undefined) return
    let state: number
    try {
      state = await b.call<number>('/', AVAHI_SERVER, 'GetState')
    } catch (err) {
      if (err instanceof AvahiCallError && err.dbusName !== undefined && NOT_RUNNING_ERRORS.has(err.dbusName)) {
        throw new DnsSdUnavailableError(`avahi-daemon is not running (no ${AVAHI} on the system D-Bus)`, { cause: err })
      }
      throw err
    }
    if (state !== SERVER_RUNNING) {
      log.debug({ state }, 'avahi is not running yet; publishing when it is')
      return
    }
    scope = await avahiScope(b)
    entries ??= init.groups().map((group) => ({ group, name: group.name, renames: 0 }))
    for (const entry of entries) {
      try {
        await publish(b, entry, scope)
      } catch (err) {
        if (!(err instanceof DnsSdNameCollisionError)) throw err
        trouble('publish', err)
      }
    }
  }

  /** (Re)publishes one group: a new entry group when it has none, else reset and refilled. */
  async function publish (b: SystemBus, entry: Entry, where: AvahiScope): Promise<void> {
    if (entry.path === undefined) {
      entry.name = entry.group.name
      entry.renames = 0
      entry.path = await b.call<string>('/', AVAHI_SERVER, 'EntryGroupNew')
    } else {
      await b.call(entry.path, AVAHI_ENTRY_GROUP, 'Reset')
    }
    const path = entry.path
    for (;;) {
      try {
        for (const s of entry.group.services) {
          const txt = s.txt.map(([key, value]) => Buffer.from(`${key}=${value}`, 'utf8'))
          await b.call(path, AVAHI_ENTRY_GROUP, 'AddService', 'iiussssqaay', [where.iface, where.protocol, 0, entry.name, s.type, '', '', s.port, txt])
          for (const subtype of s.subtypes) {
            await b.call(path, AVAHI_ENTRY_GROUP, 'AddServiceSubtype', 'iiussss', [where.iface, where.protocol, 0, entry.name, s.type, '', subtype])
          }
        }
        await b.call(path, AVAHI_ENTRY_GROUP, 'Commit')
        log.info({ name: entry.name, types: entry.group.services.map((s) => s.type), port: entry.group.services[0]?.port, where: where.label }, 'DNS-SD service registering')
        return
      } catch (err) {
        if (!(err instanceof AvahiCallError && err.dbusName === COLLISION_ERROR)) throw err
        await rename(b, entry)
        await b.call(path, AVAHI_ENTRY_GROUP, 'Reset')
      }
    }
  }

  async function rename (b: SystemBus, entry: Entry): Promise<void> {
    if (entry.renames >= MAX_RENAMES) throw new DnsSdNameCollisionError(entry.group.name, entry.name)
    entry.renames++
    const before = entry.name
    entry.name = await b.call<string>('/', AVAHI_SERVER, 'GetAlternativeServiceName', 's', [entry.name])
    log.info({ name: before, renamed: entry.name }, 'DNS-SD name taken on the network; renamed')
  }

  function onSignal (msg: DBusMessage): void {
    const body = msg.body ?? []
    if (msg.interface === DBUS && msg.member === 'NameOwnerChanged') {
      if (body[0] !== AVAHI) return
      forgetGroups() // the daemon that held them is gone, or a new one never knew them
      if (body[2] === '') unavailable('avahi-daemon stopped')
      else void serialize('avahi started', publishAll)
    } else if (msg.interface === AVAHI_SERVER && msg.member === 'StateChanged') {
      // after a host name collision avahi re-registers and empties every entry group: refill them
      if (body[0] === SERVER_RUNNING) void serialize('avahi running', publishAll)
      else if (body[0] === SERVER_FAILURE) unavailable(`avahi-daemon failed: ${String(body[1])}`)
    } else if (msg.interface === AVAHI_ENTRY_GROUP && msg.member === 'StateChanged') {
      const entry = entries?.find((e) => e.path !== undefined && e.path === msg.path)
      if (entry === undefined) return
      if (body[0] === GROUP_ESTABLISHED) {
        log.info({ name: entry.name }, 'DNS-SD service established')
        if (outage !== undefined) log.info({ after: outage }, 'DNS-SD advertising resumed')
        outage = undefined
      } else if (body[0] === GROUP_COLLISION) {
        void serialize('collision', async () => {
          const b = bus
          if (b === undefined || scope === undefined || entry.path === undefined) return
          await rename(b, entry)
          await publish(b, entry, scope)
        })
      } else if (body[0] === GROUP_FAILURE) {
        log.warn({ name: entry.name, reason: String(body[1]) }, 'DNS-SD: avahi could not publish the service')
      }
    }
  }

  return {
    async start () {
      if (running) return
      running = true
      await serialize('start', connect)
    },

    async stop () {
      if (!running) return
      running = false
      clearTimeout(retry)
      retry = undefined
      await queue
      const b = bus
      bus = undefined
      if (b !== undefined) {
        const published = (entries ?? []).filter((e) => e.path !== undefined)
        for (const e of published) {
          try {
            await b.call(e.path as string, AVAHI_ENTRY_GROUP, 'Free')
          } catch (err) {
            log.warn({ err, name: e.name }, 'DNS-SD: could not withdraw a service; avahi drops it when the connection closes')
          }
        }
        b.close()
        if (published.length > 0) log.info({ names: published.map((e) => e.name) }, 'DNS-SD services withdrawn')
      }
      forgetGroups()
      entries = undefined
      scope = undefined
      outage = undefined
    }
  }
}
