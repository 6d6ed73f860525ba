/**
 * Joining a mesh. Central's side decides enrollment requests: a valid one-time token gets a
 * certificate at once; a request without a token waits for an admin's approval. Every
 * issued certificate and revocation is recorded in the license document, so every peer
 * learns it by sync. The joining side's join string carries what it needs before it can
 * even complete a handshake: central's peer id and addresses, the private-network key, and
 * (optionally) the token secret.
 */
import type { DocStore } from '../crdt/store.ts'
import { licenseDoc } from '../crdt/names.ts'
import {
  issueCertificate, recordCertificate, redeemToken, createToken, putJoinRequest, getJoinRequest, revoke, encodeCertificate,
  listCertificates, isRevoked, EnrollmentError, CERT_LIFETIME_MS, ROLES, type Role, type EnrollmentToken, listTokens, hashSecret
} from '../crdt/license.ts'
import type * as Y from 'yjs'
import type { Signer } from '../crdt/envelope.ts'
import { mergeHandover, HANDOVER_WINDOW_MS, type HandoverReport } from './directory-handover.ts'
import { mergeAdminHandover, type AdminHandoverReport } from './admin-handover.ts'

/** Tokens expire after a week unless told otherwise: long enough to set up a branch. */
export const DEFAULT_TOKEN_TTL_MS = 7 * 24 * 3600_000
/** Prefix of join strings, versioned. */
const JOIN_PREFIX = 'pmjoin1.'
/** Site ids as document names allow them. */
const SITE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** `users`, `admins`: a site that just joined hands over its standalone directory's users (node/directory-handover.ts) and admin accounts (node/admin-handover.ts). */
export interface EnrollRequest { secret?: string, role?: Role, site?: string, users?: unknown, admins?: unknown }
export type EnrollResponse =
  | { status: 'issued', certificate: string, authority: string, handover?: HandoverReport, adminHandover?: AdminHandoverReport }
  | { status: 'pending' }
  | { status: 'refused', reason: string }

export interface JoinString {
  /** Central's peer id. */
  central: string
  /** Central's multiaddrs. */
  addrs: string[]
  /** Private-network key (hex). */
  networkKey: string
  /** One-time token secret; absent for approval-based joins. */
  secret?: string
}

export class InvalidJoinStringError extends Error {
  constructor (detail: string) { super(`invalid join string: ${detail}`); this.name = 'InvalidJoinStringError' }
}

export function encodeJoinString (j: JoinString): string {
  return JOIN_PREFIX + Buffer.from(JSON.stringify(j)).toString('base64url')
}

export function decodeJoinString (text: string): JoinString {
  if (!text.startsWith(JOIN_PREFIX)) throw new InvalidJoinStringError(`it must start with ${JOIN_PREFIX}`)
  let j: Partial<JoinString>
  try {
    j = JSON.parse(Buffer.from(text.slice(JOIN_PREFIX.length), 'base64url').toString('utf8')) as Partial<JoinString>
  } catch (err) {
    throw new InvalidJoinStringError((err as Error).message)
  }
  if (typeof j.central !== 'string' || !Array.isArray(j.addrs) || typeof j.networkKey !== 'string') throw new InvalidJoinStringError('fields missing')
  return { central: j.central, addrs: j.addrs.map(String), networkKey: j.networkKey, ...(typeof j.secret === 'string' ? { secret: j.secret } : {}) }
}

/**
 * Why a new enrolment of a `role` at `site` is refused (central's product license:
 * node/license-file.ts `enrolmentRefusal`), or undefined. Renewals never ask it.
 */
export type EnrolmentPolicy = (license: Y.Doc, role: Role, site: string | undefined, now: number) => string | undefined

/** Central's enrollment decisions, over its store. */
export class EnrollmentAuthority {
  constructor (private readonly store: DocStore, private readonly signer: Signer, private readonly now: () => number = Date.now, private readonly policy?: EnrolmentPolicy) {}

  /** The policy's refusal of a new enrolment, if any. */
  private refusal (license: Y.Doc, role: Role, site: string | undefined): string | undefined {
    return this.policy?.(license, role, site, this.now())
  }

  /** Whether a certificate issued at `issuedAt` until `expiresAt` should be renewed at `now`. */
  static due (cert: { issuedAt: number, expiresAt: number }, now: number): boolean {
    return now >= cert.issuedAt + (cert.expiresAt - cert.issuedAt) / 2
  }

  async createToken (role: Role, site: string | undefined, ttlMs = DEFAULT_TOKEN_TTL_MS): Promise<{ token: EnrollmentToken, secret: string }> {
    validateRoleSite(role, site)
    const now = this.now()
    return await this.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) =>
      createToken(d, { role, ...(site !== undefined ? { site } : {}), createdAt: now, expiresAt: now + ttlMs }))
  }

  /** Answers one enrollment request from `peer` (already through the private-network handshake). */
  async handle (peer: string, req: EnrollRequest): Promise<EnrollResponse> {
    return await this.oneAtATime(async () => await this.decide(peer, req))
  }

  /** Decisions run one at a time, so two joins cannot both take the last place the license allows. */
  private queue: Promise<unknown> = Promise.resolve()
  private async oneAtATime<T> (decide: () => Promise<T>): Promise<T> {
    const run = this.queue.then(decide, decide)
    this.queue = run.catch(() => undefined)
    return await run
  }

  private async decide (peer: string, req: EnrollRequest): Promise<EnrollResponse> {
    const license = await this.store.open(licenseDoc())
    if (isRevoked(license, peer)) return { status: 'refused', reason: 'this peer\'s certificate was revoked' }
    const existing = listCertificates(license).find((c) => c.peer === peer && c.issuer === this.signer.id)
    if (existing !== undefined) {
      if (req.users !== undefined) {
        // a site that just joined hands over its standalone users; later, users are managed on central
        if (existing.role !== 'site' || this.now() - existing.issuedAt > HANDOVER_WINDOW_MS) return { status: 'refused', reason: 'users are handed over only by a site that has just joined' }
        const handover = await mergeHandover(this.store, existing, req.users, this.now())
        return { status: 'issued', certificate: new TextDecoder().decode(encodeCertificate(existing)), authority: this.signer.id, handover }
      }
      if (req.admins !== undefined) {
        // and its admin accounts, narrowed to that site
        if (existing.role !== 'site' || this.now() - existing.issuedAt > HANDOVER_WINDOW_MS) return { status: 'refused', reason: 'admin accounts are handed over only by a site that has just joined' }
        const adminHandover = await mergeAdminHandover(this.store, existing, this.signer.id, req.admins, this.now())
        return { status: 'issued', certificate: new TextDecoder().decode(encodeCertificate(existing)), authority: this.signer.id, adminHandover }
      }
      // past half its lifetime a certificate is renewed, so members never run into its expiry
      if (EnrollmentAuthority.due(existing, this.now())) return await this.issue(peer, existing.role, existing.site)
      return { status: 'issued', certificate: new TextDecoder().decode(encodeCertificate(existing)), authority: this.signer.id }
    }
    if (req.secret !== undefined) {
      // checked before the token is used, so it still works once the license allows more
      const offered = listTokens(license).find((t) => t.secretHash === hashSecret(req.secret as string) && (t.usedBy === undefined || t.usedBy === peer))
      const refused = offered !== undefined ? this.refusal(license, offered.role, offered.site) : undefined
      if (refused !== undefined) return { status: 'refused', reason: refused }
      let token: EnrollmentToken
      try {
        token = await this.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) => redeemToken(d, req.secret as string, peer, this.now()))
      } catch (err) {
        if (err instanceof EnrollmentError) return { status: 'refused', reason: err.message }
        throw err
      }
      return await this.issue(peer, token.role, token.site)
    }
    const role = req.role ?? 'site'
    try {
      validateRoleSite(role, req.site)
    } catch (err) {
      return { status: 'refused', reason: (err as Error).message }
    }
    const refused = this.refusal(license, role, req.site)
    if (refused !== undefined) return { status: 'refused', reason: refused }
    if (getJoinRequest(license, peer) === undefined) {
      await this.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) =>
        putJoinRequest(d, { peer, role, ...(req.site !== undefined ? { site: req.site } : {}), requestedAt: this.now() }))
    }
    return { status: 'pending' }
  }

  /** An admin approves a pending join request: its certificate is issued and recorded. */
  async approve (peer: string): Promise<void> {
    await this.oneAtATime(async () => await this.approveNow(peer))
  }

  private async approveNow (peer: string): Promise<void> {
    const request = getJoinRequest(await this.store.open(licenseDoc()), peer)
    if (request === undefined) throw new EnrollmentError(`no join request from ${peer}`)
    const refused = this.refusal(await this.store.open(licenseDoc()), request.role, request.site)
    if (refused !== undefined) throw new EnrollmentError(refused)
    await this.issue(peer, request.role, request.site)
    await this.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => putJoinRequest(d, { ...request, approvedAt: this.now() }))
  }

  async revoke (peer: string, reason: string): Promise<void> {
    await this.store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => revoke(d, { peer, at: this.now(), reason }))
  }

  private async issue (peer: string, role: Role, site: string | undefined): Promise<EnrollResponse> {
    const now = this.now()
    const cert = await issueCertificate(this.signer, { peer, role, ...(site !== undefined ? { site } : {}), issuedAt: now, expiresAt: now + CERT_LIFETIME_MS })
    await this.store.transact(licenseDoc(), { kind: 'local', service: 'enrollment' }, (d) => recordCertificate(d, cert))
    return { status: 'issued', certificate: new TextDecoder().decode(encodeCertificate(cert)), authority: this.signer.id }
  }
}

function validateRoleSite (role: Role, site: string | undefined): void {
  if (!ROLES.includes(role) || role === 'central') throw new EnrollmentError(`role must be site, terminal or client, not ${String(role)}`)
  if (site === undefined) throw new EnrollmentError(`a ${role} needs a site id`)
  if (!SITE_ID.test(site)) throw new EnrollmentError(`invalid site id ${JSON.stringify(site)}`)
}
