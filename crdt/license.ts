/**
 * The license family (`v1/license`, written by central) and the certificates it carries.
 *
 * A certificate binds a peer id to a role and a site until an expiry, signed by the mesh
 * authority (central). Peers present it when a connection opens (transports/types.ts
 * Admission), and central also records every issued certificate and every revocation in
 * the license document, so a peer can check authors it never met directly.
 *
 * Certificate bytes: UTF-8 JSON of the fields in a fixed order, then a separator line,
 * then the base64 signature. The signature covers the JSON bytes exactly.
 */
import { KindedError } from './errors.ts'
import type * as Y from 'yjs'
import { createHash, randomBytes } from 'node:crypto'
import type { Signer, Verifier } from './envelope.ts'

export type Role = 'central' | 'site' | 'terminal' | 'client'
export const ROLES: readonly Role[] = ['central', 'site', 'terminal', 'client']

export interface CertificateFields {
  peer: string
  role: Role
  /** Site the peer belongs to (sites, terminals, clients). */
  site?: string
  issuer: string
  issuedAt: number
  expiresAt: number
}

export interface Certificate extends CertificateFields {
  signature: string
}

/** After expiry a certificate stays valid this long, so a site keeps printing while central is down for days. */
export const CERT_GRACE_MS = 14 * 24 * 3600_000
/** Default certificate lifetime. */
export const CERT_LIFETIME_MS = 90 * 24 * 3600_000
/** Separates the signed JSON from the signature. */
const SEPARATOR = '\n--\n'

export class InvalidCertificateError extends Error {
  constructor (message: string) { super(`invalid certificate: ${message}`); this.name = 'InvalidCertificateError' }
}

function canonical (f: CertificateFields): string {
  return JSON.stringify({ peer: f.peer, role: f.role, site: f.site ?? null, issuer: f.issuer, issuedAt: f.issuedAt, expiresAt: f.expiresAt })
}

export async function issueCertificate (issuer: Signer, fields: Omit<CertificateFields, 'issuer'>): Promise<Certificate> {
  const full: CertificateFields = { ...fields, issuer: issuer.id }
  const signature = Buffer.from(await issuer.sign(new TextEncoder().encode(canonical(full)))).toString('base64')
  return { ...full, signature }
}

export function encodeCertificate (cert: Certificate): Uint8Array {
  return new TextEncoder().encode(canonical(cert) + SEPARATOR + cert.signature)
}

/** Parses certificate bytes; throws {@link InvalidCertificateError}. Does not check the signature. */
export function decodeCertificate (bytes: Uint8Array): Certificate {
  const text = new TextDecoder().decode(bytes)
  const at = text.lastIndexOf(SEPARATOR)
  if (at < 0) throw new InvalidCertificateError('no signature')
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(text.slice(0, at)) as Record<string, unknown>
  } catch (err) {
    throw new InvalidCertificateError(`not JSON: ${(err as Error).message}`)
  }
  const { peer, role, site, issuer, issuedAt, expiresAt } = parsed
  if (typeof peer !== 'string' || typeof issuer !== 'string' || !ROLES.includes(role as Role) ||
    (site !== null && typeof site !== 'string') || typeof issuedAt !== 'number' || typeof expiresAt !== 'number') {
    throw new InvalidCertificateError('fields missing or of the wrong type')
  }
  return { peer, role: role as Role, ...(site !== null ? { site: site as string } : {}), issuer, issuedAt, expiresAt, signature: text.slice(at + SEPARATOR.length) }
}

/** Why a certificate is not acceptable, or undefined when it is. */
export async function certificateProblem (
  cert: Certificate, expected: { peer: string, authority: string, now: number, revoked: (peer: string) => boolean }, verify: Verifier
): Promise<string | undefined> {
  if (cert.peer !== expected.peer) return 'issued to another peer'
  if (cert.issuer !== expected.authority) return 'not issued by this mesh\'s central'
  if (expected.now > cert.expiresAt + CERT_GRACE_MS) return 'expired'
  if (expected.revoked(cert.peer)) return 'revoked'
  const ok = await verify(cert.issuer, new TextEncoder().encode(canonical(cert)), Buffer.from(cert.signature, 'base64'))
  return ok ? undefined : 'bad signature'
}

export interface Revocation { peer: string, at: number, reason: string }

const certsMap = (doc: Y.Doc): Y.Map<string> => doc.getMap<string>('certificates')
const revokedMap = (doc: Y.Doc): Y.Map<Revocation> => doc.getMap<Revocation>('revoked')

/** Records an issued certificate (central only). */
export function recordCertificate (doc: Y.Doc, cert: Certificate): void {
  certsMap(doc).set(cert.peer, new TextDecoder().decode(encodeCertificate(cert)))
}

export function listCertificates (doc: Y.Doc): Certificate[] {
  return [...certsMap(doc).values()].map((text) => decodeCertificate(new TextEncoder().encode(text)))
}

export function revoke (doc: Y.Doc, r: Revocation): void {
  revokedMap(doc).set(r.peer, { ...r })
}

export function isRevoked (doc: Y.Doc | undefined, peer: string): boolean {
  return doc !== undefined && revokedMap(doc).has(peer)
}

export function listRevocations (doc: Y.Doc): Revocation[] {
  return [...revokedMap(doc).values()]
}

// ---- enrollment ------------------------------------------------------------------

/** A one-time enrollment token: its secret is shown once to the admin; only a hash is kept. */
export interface EnrollmentToken {
  id: string
  secretHash: string
  role: Role
  site?: string
  createdAt: number
  expiresAt: number
  usedBy?: string
  usedAt?: number
}

/** A peer that asked to join without a token, waiting for an admin's approval. */
export interface JoinRequest {
  peer: string
  role: Role
  site?: string
  requestedAt: number
  /** Set once an admin approved it and central issued the certificate. */
  approvedAt?: number
}

export class EnrollmentError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'EnrollmentError' }
}

const tokensMap = (doc: Y.Doc): Y.Map<EnrollmentToken> => doc.getMap<EnrollmentToken>('tokens')
const requestsMap = (doc: Y.Doc): Y.Map<JoinRequest> => doc.getMap<JoinRequest>('requests')

export function hashSecret (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

/** Creates a token; returns the secret to show the admin once. */
export function createToken (doc: Y.Doc, t: Omit<EnrollmentToken, 'id' | 'secretHash'>): { token: EnrollmentToken, secret: string } {
  const secret = randomBytes(32).toString('base64url')
  const token: EnrollmentToken = { ...t, id: randomBytes(8).toString('hex'), secretHash: hashSecret(secret) }
  tokensMap(doc).set(token.id, token)
  return { token, secret }
}

/** Marks a token used by `peer`; throws {@link EnrollmentError} if unknown, used or expired. */
export function redeemToken (doc: Y.Doc, secret: string, peer: string, now: number): EnrollmentToken {
  const hash = hashSecret(secret)
  const token = [...tokensMap(doc).values()].find((t) => t.secretHash === hash)
  if (token === undefined) throw new EnrollmentError('unknown enrollment token')
  if (token.usedBy !== undefined && token.usedBy !== peer) throw new EnrollmentError('enrollment token already used')
  if (now > token.expiresAt) throw new EnrollmentError('enrollment token expired')
  const used = { ...token, usedBy: peer, usedAt: token.usedAt ?? now }
  tokensMap(doc).set(token.id, used)
  return used
}

export function listTokens (doc: Y.Doc): EnrollmentToken[] {
  return [...tokensMap(doc).values()]
}

export function putJoinRequest (doc: Y.Doc, r: JoinRequest): void {
  requestsMap(doc).set(r.peer, { ...r })
}

export function getJoinRequest (doc: Y.Doc, peer: string): JoinRequest | undefined {
  return requestsMap(doc).get(peer)
}

export function listJoinRequests (doc: Y.Doc): JoinRequest[] {
  return [...requestsMap(doc).values()]
}

// ---- the product license (node/license-file.ts checks the signed file) ------------

/** The product license's fields as central records them, so every peer can show them; the signed file stays on central. */
export interface ProductLicenseRecord {
  organisation: string
  licenseId: string
  limits: { sites: number, terminals: number, clients: number, users: number }
  issuedAt: number
  expiresAt: number
}

const productMap = (doc: Y.Doc): Y.Map<ProductLicenseRecord> => doc.getMap<ProductLicenseRecord>('product')

/** Records central's product license (central only); undefined: none (evaluation). */
export function recordProductLicense (doc: Y.Doc, license: ProductLicenseRecord | undefined): void {
  if (license === undefined) productMap(doc).delete('license')
  else productMap(doc).set('license', { ...license, limits: { ...license.limits } })
}

/** The product license central recorded, if any. */
export function readProductLicense (doc: Y.Doc | undefined): ProductLicenseRecord | undefined {
  return doc === undefined ? undefined : productMap(doc).get('license')
}
