/**
 * Admin capabilities: how a peer proves, over the release protocol, that an admin asked
 * for an action, instead of claiming `admin: true`. The node where the admin logged in
 * (and so authenticated them) signs a capability naming the admin, the one action (`op`
 * on `jobId`), the peer that may present it and a short expiry. The holder of the job
 * accepts it only when ({@link checkAdminCapability}):
 *   1. the signature is the issuer's (its peer key);
 *   2. the issuer is a peer admins log in at, by its certificate: a site or central
 *      ({@link ADMIN_ISSUER_ROLES}), not revoked, not expired (Membership decides);
 *   3. it is presented by the peer it was issued to, for the action it names, before it
 *      expires, and was not issued for longer than {@link MAX_CAPABILITY_TTL_MS}.
 * So a terminal or a client cannot make itself admin, a site cannot present another
 * site's capability, and a captured capability is good for one job for a minute.
 */
import type { Role } from './license.ts'
import type { Signer, Verifier } from './envelope.ts'

/** Roles whose peers authenticate admins (they run an admin console); terminals and clients log in users only. */
export const ADMIN_ISSUER_ROLES: readonly Role[] = ['site', 'central']
/** Longest life of a capability: one release request and its retries; anything longer is refused. */
export const MAX_CAPABILITY_TTL_MS = 60_000
/** Clocks of peers may differ this much: a capability issued "in the future" by up to this is accepted. */
const CLOCK_SKEW_MS = 30_000
const MAX_FIELD_CHARS = 256
/** An Ed25519 signature is 64 bytes: 88 base64 characters. */
const MAX_SIGNATURE_CHARS = 128

/** What an admin may do on a job of another peer. */
export type CapabilityOp = 'grant' | 'delete'

export interface AdminCapability {
  /** Peer that authenticated the admin and signed this. */
  issuer: string
  /** Peer allowed to present it (the one sending the request). */
  holder: string
  /** The admin's name (for logs and the job's history). */
  admin: string
  op: CapabilityOp
  jobId: string
  issuedAt: number
  expiresAt: number
  /** base64 Ed25519 signature by `issuer` over {@link signedBytes}. */
  signature: string
}

/** Why a capability was refused. */
export class InvalidCapabilityError extends Error {
  override readonly name = 'InvalidCapabilityError'
}

/** The bytes signed: every field but the signature, in a fixed order. */
function signedBytes (c: Omit<AdminCapability, 'signature'>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(['printmesh-admin-capability-v1', c.issuer, c.holder, c.admin, c.op, c.jobId, c.issuedAt, c.expiresAt]))
}

/** Signs a capability for `holder` to do `op` on `jobId` on behalf of `admin`, valid `ttlMs` from `now`. */
export async function issueAdminCapability (
  signer: Signer, fields: { holder: string, admin: string, op: CapabilityOp, jobId: string }, now: number, ttlMs = MAX_CAPABILITY_TTL_MS
): Promise<AdminCapability> {
  const unsigned = { issuer: signer.id, ...fields, issuedAt: now, expiresAt: now + Math.min(ttlMs, MAX_CAPABILITY_TTL_MS) }
  const signature = Buffer.from(await signer.sign(signedBytes(unsigned))).toString('base64')
  return { ...unsigned, signature }
}

const isField = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD_CHARS

/** A capability from the wire, or a string saying what is malformed. */
export function parseAdminCapability (raw: unknown): AdminCapability | string {
  if (typeof raw !== 'object' || raw === null) return 'capability must be an object'
  const c = raw as Record<string, unknown>
  if (!isField(c.issuer) || !isField(c.holder) || !isField(c.admin) || !isField(c.jobId)) return 'capability needs issuer, holder, admin and jobId'
  if (c.op !== 'grant' && c.op !== 'delete') return 'capability op must be grant or delete'
  if (!Number.isSafeInteger(c.issuedAt) || !Number.isSafeInteger(c.expiresAt)) return 'capability needs issuedAt and expiresAt (ms)'
  if (typeof c.signature !== 'string' || c.signature.length > MAX_SIGNATURE_CHARS) return 'capability needs a signature'
  return { issuer: c.issuer, holder: c.holder, admin: c.admin, op: c.op, jobId: c.jobId, issuedAt: c.issuedAt as number, expiresAt: c.expiresAt as number, signature: c.signature }
}

/** What the check needs to know of the mesh: a peer's role from its certificate (undefined: unknown, expired or revoked). */
export interface CapabilityContext {
  roleOf: (peer: string) => Role | undefined
  verify: Verifier
  now: number
}

/**
 * Checks a capability presented by `presenter` for `op` on `jobId`; returns the admin's name.
 * @throws InvalidCapabilityError saying which rule it breaks
 */
export async function checkAdminCapability (c: AdminCapability, presenter: string, op: CapabilityOp, jobId: string, ctx: CapabilityContext): Promise<string> {
  if (c.holder !== presenter) throw new InvalidCapabilityError('the admin capability was issued to another peer')
  if (c.op !== op || c.jobId !== jobId) throw new InvalidCapabilityError(`the admin capability is for ${c.op} of job ${c.jobId}, not ${op} of job ${jobId}`)
  if (c.expiresAt - c.issuedAt > MAX_CAPABILITY_TTL_MS) throw new InvalidCapabilityError('the admin capability is valid for longer than allowed')
  if (ctx.now > c.expiresAt || c.issuedAt > ctx.now + CLOCK_SKEW_MS) throw new InvalidCapabilityError('the admin capability has expired')
  const role = ctx.roleOf(c.issuer)
  if (role === undefined) throw new InvalidCapabilityError('the admin capability was signed by a peer that is not a member (unknown, expired or revoked)')
  if (!ADMIN_ISSUER_ROLES.includes(role)) throw new InvalidCapabilityError(`a ${role} does not authenticate admins: its admin capability is refused`)
  let signature: Uint8Array
  try {
    signature = Buffer.from(c.signature, 'base64')
  } catch {
    throw new InvalidCapabilityError('the admin capability\'s signature is not base64')
  }
  const { signature: _, ...unsigned } = c
  if (!await ctx.verify(c.issuer, signedBytes(unsigned), signature)) throw new InvalidCapabilityError('the admin capability\'s signature does not verify')
  return c.admin
}

/** Issuing and checking admin capabilities as one peer (its key, its view of the mesh). */
export interface AdminCapabilities {
  /** Signs a capability for `holder` (usually this peer) to do `op` on `jobId` for `admin`. */
  issue (fields: { holder: string, admin: string, op: CapabilityOp, jobId: string }): Promise<AdminCapability>
  /** The admin's name when `presenter` may do `op` on `jobId` with `c`; @throws InvalidCapabilityError */
  check (c: AdminCapability, presenter: string, op: CapabilityOp, jobId: string): Promise<string>
}

/** {@link AdminCapabilities} of the peer whose key is `signer`; `roleOf` is its Membership's view of other peers. */
export function adminCapabilities (signer: Signer, roleOf: (peer: string) => Role | undefined, verify: Verifier, now: () => number = Date.now): AdminCapabilities {
  return {
    issue: async (fields) => await issueAdminCapability(signer, fields, now()),
    check: async (c, presenter, op, jobId) => await checkAdminCapability(c, presenter, op, jobId, { roleOf, verify, now: now() })
  }
}
