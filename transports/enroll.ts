/**
 * The enrollment protocol `/printmesh/enroll/1.0.0` (see PROTOCOL.md): a peer that passed
 * the private-network handshake but has no certificate yet sends one JSON request; central
 * answers with one JSON response (the exchange of rpc.ts). What the request means is
 * decided by the node (node/enrollment.ts).
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import { callRpc, handleRpc } from './rpc.ts'

export const ENROLL_PROTOCOL = '/printmesh/enroll/1.0.0'
/** One enrollment exchange takes longer than this only if something is wrong. */
export const ENROLL_TIMEOUT_MS = 15_000

/** Central's side: answers each enrollment request with `decide(peer, request)`. */
export async function handleEnrollment (
  host: Libp2p, decide: (peer: string, request: unknown) => Promise<unknown>, logger: Logger
): Promise<() => Promise<void>> {
  return await handleRpc(host, ENROLL_PROTOCOL, decide, logger.child({ component: 'enroll' }), ENROLL_TIMEOUT_MS)
}

/** The joining side: dials central at `addrs` and exchanges one request for one response. */
export async function requestEnrollment (host: Libp2p, central: string, addrs: string[], request: unknown, signal = AbortSignal.timeout(ENROLL_TIMEOUT_MS)): Promise<unknown> {
  return await callRpc(host, ENROLL_PROTOCOL, central, addrs, request, signal)
}
