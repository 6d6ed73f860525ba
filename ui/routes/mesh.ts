/** The mesh for admins: status, block list, join tokens and strings, join requests, revocations. */
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { MeshApi } from '../api.ts'
import { objectBody, type HttpPlugin } from './plugin.ts'

/** Peer ids as libp2p prints them (base58btc / base32 multihashes): letters and digits only. */
const PEER_ID_PATTERN = /^[A-Za-z0-9]{1,128}$/
/** A block list longer than this is a mistake, not an operator's list. */
const MAX_BLOCKED_PEERS = 1000
/** Site ids as document names allow them (the same rule central's enrollment applies). */
const SITE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/
/** Roles a join token may be for; central is never enrolled, it is the authority. */
const JOIN_ROLES: readonly string[] = ['site', 'terminal', 'client']
/** A join token is for setting up a peer soon; one valid for longer than a month is a risk. */
const MAX_TOKEN_TTL_HOURS = 30 * 24
/** A revocation reason is a short note for the audit trail. */
const MAX_REASON_LENGTH = 500

/** This family's service and the paths it owns. */
export const MESH_ROUTES = { service: 'mesh', prefixes: ['/api/mesh'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

export function meshRoutes (mesh: MeshApi): HttpPlugin {
  return {
    ...MESH_ROUTES,
    register (app, { authenticate }) {
      app.get('/api/mesh', async (request) => {
        authenticate(request, 'admin')
        return mesh.status()
      })

      app.get('/api/mesh/blocked', async (request) => {
        authenticate(request, 'admin')
        return { peers: mesh.blocked() }
      })

      app.put('/api/mesh/blocked', async (request) => {
        const caller = authenticate(request, 'admin')
        const peers = blockedPeers(request.body)
        await mesh.setBlocked(peers)
        request.log.info({ by: caller.actor.user, blocked: peers.length }, 'block list replaced')
        return { peers: mesh.blocked() }
      })

      app.post('/api/mesh/tokens', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const { role, site: siteId, ttlHours } = joinTokenRequest(request.body)
        const created = await mesh.createJoinToken(role, siteId, ttlHours)
        // The join string is a secret: only its id goes to the log, and the reply is never logged.
        request.log.info({ by: caller.actor.user, role, site: siteId, tokenId: created.tokenId, expiresAt: created.expiresAt }, 'join token created')
        return await reply.code(201).send({ joinString: created.joinString, tokenId: created.tokenId, expiresAt: created.expiresAt })
      })

      app.get('/api/mesh/join-string', async (request) => {
        authenticate(request, 'admin')
        // a secret too (it carries the network key): the reply is never logged
        return { joinString: await mesh.approvalJoinString() }
      })

      app.get('/api/mesh/requests', async (request) => {
        authenticate(request, 'admin')
        return { requests: mesh.joinRequests() }
      })

      app.post('/api/mesh/requests/:peer/approve', async (request) => {
        const caller = authenticate(request, 'admin')
        const peer = peerParam(request.params)
        await mesh.approve(peer)
        request.log.info({ by: caller.actor.user, peer }, 'join request approved')
        return { ok: true }
      })

      app.post('/api/mesh/peers/:peer/revoke', async (request) => {
        const caller = authenticate(request, 'admin')
        const peer = peerParam(request.params)
        const reason = revokeReason(request.body)
        await mesh.revoke(peer, reason)
        request.log.info({ by: caller.actor.user, peer, reason }, 'peer revoked')
        return { ok: true }
      })
    }
  }
}

/** `{peers}` of a block list replacement: at most {@link MAX_BLOCKED_PEERS} peer ids, duplicates dropped. */
function blockedPeers (body: unknown): string[] {
  const { peers } = objectBody(body, '{"peers": ["12D3KooW…"]}')
  if (!Array.isArray(peers)) throw new InvalidRequestError('"peers" must be an array of peer ids')
  if (peers.length > MAX_BLOCKED_PEERS) throw new InvalidRequestError(`"peers" may list at most ${MAX_BLOCKED_PEERS} peer ids`)
  for (const peer of peers) {
    if (typeof peer !== 'string' || !PEER_ID_PATTERN.test(peer)) {
      throw new InvalidRequestError(`"peers" must hold peer ids (1–128 letters and digits), not ${JSON.stringify(peer).slice(0, 40)}`)
    }
  }
  return [...new Set(peers as string[])]
}

/** `{role, site, ttlHours?}` of a join token request. */
function joinTokenRequest (body: unknown): { role: string, site: string, ttlHours?: number } {
  const { role, site, ttlHours } = objectBody(body, '{"role": "site", "site": "branch-1"}')
  if (typeof role !== 'string' || !JOIN_ROLES.includes(role)) throw new InvalidRequestError(`"role" must be one of ${JOIN_ROLES.join(', ')}`)
  if (typeof site !== 'string' || !SITE_ID_PATTERN.test(site)) {
    throw new InvalidRequestError('"site" must be a site id: 1–128 letters, digits, ".", "_", ":" or "-"')
  }
  if (ttlHours === undefined || ttlHours === null) return { role, site }
  if (typeof ttlHours !== 'number' || !Number.isFinite(ttlHours) || ttlHours <= 0 || ttlHours > MAX_TOKEN_TTL_HOURS) {
    throw new InvalidRequestError(`"ttlHours" must be a number of hours above 0 and at most ${MAX_TOKEN_TTL_HOURS}`)
  }
  return { role, site, ttlHours }
}

/** The `:peer` path parameter. */
function peerParam (params: unknown): string {
  const peer = (params as { peer?: unknown }).peer
  if (typeof peer !== 'string' || !PEER_ID_PATTERN.test(peer)) throw new InvalidRequestError('the peer id in the path must be 1–128 letters and digits')
  return peer
}

/** `{reason}` of a revocation: a non-empty note of at most {@link MAX_REASON_LENGTH} characters. */
function revokeReason (body: unknown): string {
  const { reason } = objectBody(body, '{"reason": "laptop stolen"}')
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON_LENGTH) {
    throw new InvalidRequestError(`"reason" must be a note of 1–${MAX_REASON_LENGTH} characters`)
  }
  return reason.trim()
}

