/**
 * The terminal role: a light peer at one MFP (node/light-peer.ts). For now it joins the
 * mesh, keeps the documents its site's peers share with it in sync, and serves the mesh
 * status; the panel, offline login and device spooling build on this.
 */
import type { Logger } from 'pino'
import { startLightPeer, type LightPeerConfig, type RunningLightPeer } from './light-peer.ts'

export type TerminalConfig = LightPeerConfig
export type RunningTerminal = RunningLightPeer

export async function startTerminal (config: TerminalConfig, logger: Logger, services?: readonly string[]): Promise<RunningTerminal> {
  return await startLightPeer('terminal', config, logger, services)
}
