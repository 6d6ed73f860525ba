/**
 * What each role is made of: one list of services per role, in start order (dependencies
 * may reorder; node/compose.ts). The role files (site.ts, central.ts, terminal.ts,
 * client.ts) hold the factories of their own services and start a node through
 * {@link startRoleNode}; the peer core every role shares is node/peer.ts.
 */
import type { Logger } from 'pino'
import type { Role } from '../crdt/license.ts'
import { createNode, UnknownServiceError, type Node, type ServiceFactory, type Startable } from './compose.ts'
import { CORE_SERVICES, type PeerComponents } from './peer.ts'

/** The peer core, in start order: every role has it. */
const CORE = Object.keys(CORE_SERVICES) as Array<keyof typeof CORE_SERVICES>

/** The services of each role, in start order. */
export const ROLES = {
  /** License authority, directory (with its LDAP sync), enrollment and the mesh's admin pages; never a print server. */
  central: [...CORE, 'credit', 'escrow-server', 'enrollment', 'ldap', 'tls', 'http'],
  /** A branch print server: intake, analysis, holding, release, roaming, accounting. */
  site: [...CORE, 'credit', 'escrow-server', 'analyzer', 'print-engine', 'delegation', 'jobs', 'roaming', 'release-server', 'usage-metrics', 'printer-admin', 'tls', 'ipp', 'http', 'dnssd'],
  /** The embedded peer at one MFP: releases its site's (and partners') jobs to its one printer through the release engine; serves the panel. */
  terminal: [...CORE, 'credit', 'escrow-server', 'analyzer', 'print-engine', 'delegation', 'jobs', 'roaming', 'release-server', 'tls', 'ipp', 'http', 'dnssd'],
  /** A workstation's peer: its own IPP printer, client spooling (it holds and arbitrates its jobs) or handing jobs to its site, fallback printing, its local page. */
  client: [...CORE, 'credit', 'escrow-server', 'analyzer', 'print-engine', 'delegation', 'jobs', 'roaming', 'release-server', 'fallback', 'handover', 'tls', 'ipp', 'http']
} as const satisfies Record<Role, readonly string[]>

/**
 * Services a node in one process of the simulator or the tests runs without: the libp2p
 * host and what needs it (its sync transport is a MemoryNetwork peer instead), and the
 * front ends and exporters (IPP, HTTP, DNS-SD, metrics) — the simulator drives the
 * release engine's services directly. A client's `handover` (client spooling off) too: only
 * the libp2p roaming link carries handovers; the simulator's clients keep client spooling on.
 */
export const OUT_OF_PROCESS: ReadonlySet<string> = new Set(['libp2p', 'peer-exchange', 'renewal', 'release-server', 'usage-metrics', 'printer-admin', 'ipp', 'http', 'dnssd', 'enrollment', 'ldap', 'tls', 'handover', 'escrow-server'])

/** The peer core of an in-process node: documents, a memory transport, sync, revocations. */
export const IN_PROCESS_CORE: readonly string[] = CORE.filter((n) => !OUT_OF_PROCESS.has(n))

/** What `role` runs in process (simulator, tests): its list less {@link OUT_OF_PROCESS}. */
export function inProcessServices (role: Role): string[] {
  return ROLES[role].filter((n) => !OUT_OF_PROCESS.has(n))
}

/** A role's factories by service name: `() => factory`, so a role builds only what its list names. */
export type ServiceRegistry = Record<string, () => ServiceFactory>

/** The factories of `names`, from `registry`; @throws UnknownServiceError naming every unknown one. */
export function servicesOf (role: string, names: readonly string[], registry: ServiceRegistry): Record<string, ServiceFactory> {
  const unknown = names.filter((n) => !Object.hasOwn(registry, n))
  if (unknown.length > 0) throw new UnknownServiceError(role, unknown, Object.keys(registry))
  return Object.fromEntries(names.map((n) => [n, registry[n]()]))
}

/**
 * Builds and starts the node of `role` from the prepared peer components and its
 * services (`names`, default the role's list). If anything fails (an unknown service, a
 * missing dependency, a service that will not start) what was prepared is closed and the
 * error rethrown.
 */
export async function startRoleNode<S extends Record<string, Startable>, C extends PeerComponents = PeerComponents> (
  role: Role, registry: ServiceRegistry, components: C, logger: Logger, names: readonly string[] = ROLES[role]
): Promise<Node<S>> {
  let node: Node<S> | undefined
  try {
    node = createNode<S>({ components: { ...components } as Record<string, unknown>, services: servicesOf(role, names, registry), logger })
    await node.start()
    return node
  } catch (err) {
    await node?.stop()
    await closePrepared(components)
    throw err
  }
}

/** Stops the host and closes the store a failed start prepared (both safe when already done). */
async function closePrepared ({ host, store, logger }: PeerComponents): Promise<void> {
  for (const [what, close] of [['libp2p host', async () => { await host.stop() }], ['store', async () => { await store.close() }]] as const) {
    try {
      await close()
    } catch (err) {
      logger.warn({ err }, `could not close the ${what} after a failed start`)
    }
  }
}
