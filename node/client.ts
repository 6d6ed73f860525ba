/**
 * The client role: a light peer on a workstation (node/light-peer.ts). For now it joins
 * its site's mesh with a join string, keeps its own documents in sync, and serves
 * `/api/info` and the mesh status; client spooling and fallback printing build on this.
 */
import type { Logger } from 'pino'
import { startLightPeer, type LightPeerConfig, type RunningLightPeer } from './light-peer.ts'

export type ClientConfig = LightPeerConfig
export type RunningClient = RunningLightPeer

export async function startClient (config: ClientConfig, logger: Logger, services?: readonly string[]): Promise<RunningClient> {
  return await startLightPeer('client', config, logger, services)
}
