/**
 * Who is who in the mesh, and what each may write and read: the one place authorization
 * rules live. crdt/sync.ts asks {@link Membership.canWrite} for every envelope that enters
 * from a peer, before it is applied, persisted or relayed.
 *
 * Write rules (DESIGN.md, "Replicated state"):
 *   v1/license, v1/directory         only the authority (central; a standalone site is its own)
 *   v1/site/<id>                     the authority, or a site peer certified for site <id>
 *   v1/jobs/<peer>/…, v1/acct/<peer>/…   only <peer> itself
 *   v1/enrol/<peer>                  only <peer> itself, and only a site or terminal (where users log in)
 *   v1/audit/<peer>/…                only <peer> itself, and only a site or central (where admins log in)
 * and every author other than the authority needs a valid, unrevoked certificate.
 *
 * Read rules: central and sites read everything (they relay); terminals and clients read
 * the license, the directory, every site's config (nothing secret in it: a terminal holding a
 * job needs its partners' settings to know whom its site roams with) and the jobs and
 * accounting of peers of their own site; terminals also the enrolments of peers of their own site (clients none);
 * the audit log only central and sites (admins' actions are theirs to read).
 */
import type * as Y from 'yjs'
import type { Verifier } from './envelope.ts'
import { parseDocName, type SiteId } from './names.ts'
import { ADMIN_ISSUER_ROLES } from './capability.ts'
import { decodeCertificate, certificateProblem, isRevoked, listCertificates, encodeCertificate, CERT_GRACE_MS, type Certificate, type Role } from './license.ts'

export interface MembershipInit {
  /** This peer's id. */
  self: string
  /** The mesh authority's peer id: central's, or `self` for a standalone site. */
  authority: string
  /** This peer's own certificate (absent for the authority itself and standalone sites). */
  certificate?: Certificate
  /** This peer's role, for the authority and standalone peers that have no certificate. */
  role: Role
  site?: SiteId
  now?: () => number
}

export interface PeerInfo { peer: string, role: Role, site?: SiteId, expiresAt?: number }

export class Membership {
  /** Certificates learnt at admission (peers not yet in the license document). */
  private readonly presented = new Map<string, Certificate>()
  private license?: Y.Doc
  /** Certificates recorded in the license document, by peer (rebuilt after it changes). */
  private recorded?: Map<string, Certificate>
  private readonly now: () => number

  constructor (private readonly init: MembershipInit, private readonly verify: Verifier) {
    this.now = init.now ?? Date.now
  }

  get self (): string { return this.init.self }
  get authority (): string { return this.init.authority }

  /** The license document to read certificates and revocations from, once open. */
  useLicense (doc: Y.Doc): void {
    this.license = doc
    this.recorded = undefined
    // certificates are decoded once per change of the license document, not per question
    doc.on('update', () => { this.recorded = undefined })
  }

  /** Replaces this peer's own certificate (after renewal). */
  renew (certificate: Certificate): void {
    this.init.certificate = certificate
  }

  /** This peer's own certificate, if it has one. */
  certificate (): Certificate | undefined {
    return this.init.certificate
  }

  /** The bytes this peer presents at admission. */
  credentials (): Uint8Array {
    return this.init.certificate === undefined ? new Uint8Array() : encodeCertificate(this.init.certificate)
  }

  /** Decides admission of `peer` presenting `credentials`; records its certificate. */
  async admit (peer: string, credentials: Uint8Array): Promise<{ ok: boolean, reason?: string }> {
    if (peer === this.init.authority) return { ok: !this.revoked(peer) }
    if (credentials.length === 0) return { ok: false, reason: 'no certificate' }
    let cert: Certificate
    try {
      cert = decodeCertificate(credentials)
    } catch (err) {
      return { ok: false, reason: (err as Error).message }
    }
    const problem = await certificateProblem(cert, { peer, authority: this.init.authority, now: this.now(), revoked: (p) => this.revoked(p) }, this.verify)
    if (problem !== undefined) return { ok: false, reason: problem }
    this.presented.set(peer, cert)
    return { ok: true }
  }

  revoked (peer: string): boolean {
    return isRevoked(this.license, peer)
  }

  /** Role and site of a peer, from its certificate (presented or recorded by central). */
  info (peer: string): PeerInfo | undefined {
    if (peer === this.init.self || peer === this.init.authority) {
      if (peer === this.init.self) return { peer, role: this.init.role, ...(this.init.site !== undefined ? { site: this.init.site } : {}) }
      return { peer, role: 'central' }
    }
    const cert = this.certificateOf(peer)
    if (cert === undefined) return undefined
    if (this.now() > cert.expiresAt + CERT_GRACE_MS || this.revoked(peer)) return undefined
    // a certificate central signed names a valid site id
    return { peer, role: cert.role, ...(cert.site !== undefined ? { site: cert.site as SiteId } : {}), expiresAt: cert.expiresAt }
  }

  private certificateOf (peer: string): Certificate | undefined {
    const presented = this.presented.get(peer)
    if (presented !== undefined) return presented
    if (this.license === undefined) return undefined
    // certificates in the license document were written by the authority, whose envelopes
    // were verified on the way in
    this.recorded ??= new Map(listCertificates(this.license).filter((c) => c.issuer === this.init.authority).map((c) => [c.peer, c]))
    return this.recorded.get(peer)
  }

  /** Whether `author` may write document `doc`. */
  canWrite (author: string, doc: string): boolean {
    const name = parseDocName(doc)
    if (name === undefined) return false
    const isAuthority = author === this.init.authority
    if (this.revoked(author)) return false
    if (!isAuthority && this.info(author) === undefined) return false
    switch (name.family) {
      case 'license':
      case 'directory':
        return isAuthority
      case 'site': {
        if (isAuthority) return true
        const info = this.info(author)
        return info?.role === 'site' && info.site === name.site
      }
      case 'jobs':
      case 'acct':
      case 'escrow':
        return author === name.peer
      case 'enrol': {
        // users register cards and PINs where they log in: a workstation's client cannot
        const role = this.info(author)?.role
        return author === name.peer && (role === 'site' || role === 'terminal')
      }
      case 'audit':
      case 'admin-actions': {
        // admins' actions are recorded (audit) and asked of other sites (admin-actions) where admins log in: a terminal or a client has no admin
        const role = this.info(author)?.role
        return author === name.peer && role !== undefined && ADMIN_ISSUER_ROLES.includes(role)
      }
    }
  }

  /** Whether `peer` may receive document `doc`. */
  canRead (peer: string, doc: string): boolean {
    const name = parseDocName(doc)
    const info = this.info(peer)
    if (name === undefined || info === undefined) return false
    if (info.role === 'central' || info.role === 'site') return true
    switch (name.family) {
      case 'license':
        return true
      case 'directory':
        // users' PIN and card hashes go only to peers that log users in: sites and terminals, not workstations' clients
        return info.role === 'terminal'
      case 'enrol':
        // as the directory (hashes), and to the terminals of the enrolling peer's own site, where it works at once
        return info.role === 'terminal' && info.site !== undefined && this.info(name.peer ?? '')?.site === info.site
      case 'site':
        // every site's: roaming partnership is mutual, read from both sites' settings (devices/jobs/roaming.ts)
        return true
      case 'escrow':
        // every peer's: a share given to a terminal or a client is in the giver's document, and it must see it to spend it
        return true
      case 'jobs':
      case 'acct':
        return name.peer === peer || (info.site !== undefined && this.info(name.peer ?? '')?.site === info.site)
      case 'audit':
      case 'admin-actions':
        // central and sites only (above): who changed what is the admins' business
        return false
    }
  }
}
