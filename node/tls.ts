/**
 * TLS for the web console and `ipps://`: certificates from the mesh CA, or the admin's own.
 *
 * - The mesh CA is an X.509 root kept by central (and by a standalone site, its own
 *   authority) in `<data>/tls/ca/`. An admin imports it once (`GET /ca.pem` on any node) and
 *   then trusts every node's console and IPP port.
 * - Every node keeps its own TLS key in `<data>/tls/key.pem` (it never leaves the node) and
 *   asks the authority to certify it for its host names over `/printmesh/tls/1.0.0`
 *   (transports/PROTOCOL.md), as a certified member. Until the first answer arrives (central
 *   down at first start) the node presents a provisional certificate of its own CA, so TLS
 *   works from the first second; it is replaced as soon as central answers, and renewed past
 *   half its lifetime, without a restart.
 * - With `--tls-cert`/`--tls-key` the admin's certificate is presented as it is.
 *
 * X.509 is built with @peculiar/x509 (Node's crypto verifies certificates but cannot make them).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate as NodeX509, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { hostname as osHostname } from 'node:os'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type * as X509 from '@peculiar/x509'
import type { Logger } from 'pino'
import type { TlsMaterial } from '../transports/tls-port.ts'
import { callRpc, handleRpc } from '../transports/rpc.ts'
import { licenseDoc } from '../crdt/names.ts'
import { CERT_GRACE_MS, isRevoked, listCertificates } from '../crdt/license.ts'
import type { DocStore } from '../crdt/store.ts'
import type { Membership } from '../crdt/membership.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import { writeAtomically, type PeerComponents } from './peer.ts'

/**
 * @peculiar/x509, loaded the first time a certificate is made: it and its polyfills hold about
 * 15 MB of a process, which a node without TLS (or one only presenting its certificate) never needs.
 */
let x509Module: Promise<typeof X509> | undefined
async function x509 (): Promise<typeof X509> {
  x509Module ??= (async () => {
    await import('reflect-metadata') // @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata polyfill
    const lib = await import('@peculiar/x509')
    lib.cryptoProvider.set(webcrypto as unknown as Crypto)
    return lib
  })()
  return await x509Module
}

/** The protocol a member asks the authority for its TLS certificate on. */
export const TLS_PROTOCOL = '/printmesh/tls/1.0.0'
/** One certificate request takes longer than this only if something is wrong. */
const TLS_RPC_TIMEOUT_MS = 15_000
/** The folder of a node's TLS files inside its data folder. */
export const TLS_DIR = 'tls'
/** ECDSA P-256 with SHA-256: what every TLS client and CUPS' GnuTLS accept. */
const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
/** The mesh CA outlives every node certificate it signs many times over. */
const CA_LIFETIME_MS = 20 * 365 * 24 * 3600_000
/** Node certificates live as peer certificates do (crdt/license.ts CERT_LIFETIME_MS) and are renewed at half. */
export const NODE_CERT_LIFETIME_MS = 90 * 24 * 3600_000
/** Certificates start a little in the past, so a client whose clock is behind still accepts them. */
const BACKDATE_MS = 3600_000
/** How often a node checks whether its certificate is due (renewal at half its lifetime). */
const RENEW_CHECK_MS = 3600_000
/** After a failed request the next try comes this much later by default (central may be down): often enough that a node gets its certificate soon after central is back, rarely enough to cost nothing while it is not. */
export const DEFAULT_TLS_RETRY_MS = 30_000
/** A certificate names at most this many hosts: a node has a few names and addresses. */
const MAX_NAMES = 16
/** A DNS name as certificates carry them (RFC 1123 labels, optionally a leading wildcard is not allowed). */
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** A TLS setting that cannot work: unreadable files, a key that does not fit, bad host names. */
export class TlsConfigError extends Error {
  constructor (message: string, options?: ErrorOptions) { super(message, options); this.name = 'TlsConfigError' }
}

/** What a node does about TLS. */
export type TlsMode =
  | { kind: 'off' }
  /**
   * A certificate from the mesh CA (central's, or the node's own when it is the authority);
   * `retryMs`: how long after a failed request to ask central again (default {@link DEFAULT_TLS_RETRY_MS}).
   */
  | { kind: 'mesh', names: string[], retryMs?: number }
  /** The admin's certificate and key (PEM files). */
  | { kind: 'files', certFile: string, keyFile: string }

/** Checks host names for a certificate; @throws TlsConfigError naming the bad one. */
export function validateNames (names: readonly string[]): string[] {
  const unique = [...new Set(names.map((n) => n.trim().replace(/^\[|\]$/g, '')).filter((n) => n !== ''))]
  if (unique.length === 0) throw new TlsConfigError('a certificate needs at least one host name or address')
  if (unique.length > MAX_NAMES) throw new TlsConfigError(`a certificate names at most ${MAX_NAMES} hosts, got ${unique.length}`)
  for (const n of unique) {
    if (isIP(n) === 0 && !DNS_NAME.test(n)) throw new TlsConfigError(`${JSON.stringify(n)} is neither a host name nor an IP address`)
  }
  return unique
}

async function importSpki (pem: string): Promise<CryptoKey> {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (err) {
    throw new TlsConfigError('the public key is not a PEM public key', { cause: err })
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new TlsConfigError('the public key must be ECDSA P-256')
  return await webcrypto.subtle.importKey('spki', key.export({ type: 'spki', format: 'der' }), EC_ALGORITHM, true, ['verify']) as CryptoKey
}

/** A random positive serial number (RFC 5280 §4.1.2.2: at most 20 octets). */
function serial (): string {
  const b = randomBytes(16)
  b[0] &= 0x7f
  return b.toString('hex')
}

/** An X.509 root that certifies the mesh's nodes, kept in `dir` (key 0600). */
export class MeshCa {
  private constructor (readonly certPem: string, private readonly cert: X509.X509Certificate, private readonly key: CryptoKey) {}

  /** Opens the CA in `dir`, creating it (named `name`) the first time. */
  static async open (dir: string, name: string): Promise<MeshCa> {
    const x = await x509()
    const keyFile = join(dir, 'ca.key.pem')
    const certFile = join(dir, 'ca.pem')
    let keyPem: string | undefined
    try {
      keyPem = await readFile(keyFile, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (keyPem !== undefined) {
      const certPem = await readFile(certFile, 'utf8')
      const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' })
      const key = await webcrypto.subtle.importKey('pkcs8', der, EC_ALGORITHM, false, ['sign']) as CryptoKey
      return new MeshCa(certPem, new x.X509Certificate(certPem), key)
    }
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const keys = await webcrypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify']) as CryptoKeyPair
    const now = Date.now()
    const cert = await x.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: [{ CN: [name] }, { O: ['printmesh'] }],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_LIFETIME_MS),
      signingAlgorithm: EC_ALGORITHM,
      keys,
      extensions: [
        new x.BasicConstraintsExtension(true, 0, true),
        new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true),
        await x.SubjectKeyIdentifierExtension.create(keys.publicKey)
      ]
    })
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
    const pem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`
    await writeAtomically(keyFile, pem) // 0600
    const certPem = cert.toString('pem') + '\n'
    await writeAtomically(certFile, certPem)
    return new MeshCa(certPem, cert, keys.privateKey)
  }

  /** Certifies `publicKeyPem` (SPKI, P-256) for serving TLS as `names`. */
  async issue (publicKeyPem: string, names: readonly string[], now = Date.now()): Promise<string> {
    const hosts = validateNames(names)
    const publicKey = await importSpki(publicKeyPem)
    const x = await x509()
    const cert = await x.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: [{ CN: [hosts[0]] }, { O: ['printmesh'] }],
      issuer: this.cert.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + NODE_CERT_LIFETIME_MS),
      signingAlgorithm: EC_ALGORITHM,
      publicKey,
      signingKey: this.key,
      extensions: [
        new x.BasicConstraintsExtension(false, undefined, true),
        new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
        new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
        new x.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIP(h) !== 0 ? 'ip' as const : 'dns' as const, value: h }))),
        await x.AuthorityKeyIdentifierExtension.create(this.cert),
        await x.SubjectKeyIdentifierExtension.create(publicKey)
      ]
    })
    return cert.toString('pem') + '\n'
  }
}

/** A node's TLS key: created once, 0600, never sent anywhere. */
async function nodeKey (dir: string): Promise<{ keyPem: string, publicKeyPem: string }> {
  const file = join(dir, 'key.pem')
  let keyPem: string
  try {
    keyPem = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    await writeAtomically(file, keyPem) // 0600
  }
  const publicKeyPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }) as string
  return { keyPem, publicKeyPem }
}

/** What a node stores next to its certificate: who signed it, for which names. */
interface CertRecord { issuer: string, names: string[], cert: string, ca: string }

/** Whether a stored certificate should be replaced: another issuer, other names, or past half its life. */
function stale (record: CertRecord | undefined, issuer: string, names: readonly string[], now: number): boolean {
  if (record === undefined || record.issuer !== issuer) return true
  if ([...record.names].sort().join(',') !== [...names].sort().join(',')) return true
  const c = new NodeX509(record.cert)
  const from = Date.parse(c.validFrom)
  const to = Date.parse(c.validTo)
  return now >= from + (to - from) / 2
}

/** A certificate request, as sent over {@link TLS_PROTOCOL}. */
export interface TlsCertRequest { publicKey: string, names: string[] }
export type TlsCertResponse = { status: 'issued', certificate: string, ca: string } | { status: 'refused', reason: string }

/** Whether `peer` holds a certificate of the authority `authority`, unrevoked and within its grace. */
async function certifiedMember (store: DocStore, peer: string, authority: string, now: number): Promise<boolean> {
  const license = await store.open(licenseDoc())
  if (isRevoked(license, peer)) return false
  return listCertificates(license).some((c) => c.peer === peer && c.issuer === authority && now <= c.expiresAt + CERT_GRACE_MS)
}

/** The TLS side of a node, for the HTTP and IPP servers. */
export interface TlsProvider extends Startable {
  /** The certificate and key to present; undefined while TLS is off. */
  material (): TlsMaterial | undefined
  /** The CA certificate (PEM) that signed {@link material}'s certificate, for `GET /ca.pem`; undefined for an admin's own certificate. */
  ca (): string | undefined
  /** Called with new material after a renewal or the mesh CA's first answer. */
  onChange (listener: (material: TlsMaterial) => void): void
}

type TlsComponents = Pick<PeerComponents, 'self' | 'store' | 'membership' | 'host' | 'logger'> & { libp2p: Startable, documents: Startable }

/**
 * The `tls` service. On the authority (central, a standalone site) it opens the mesh CA and
 * answers members' certificate requests — always on central, whatever its own console does;
 * on every node it provides the certificate `mode` asks for.
 */
export const tlsService = (mode: TlsMode) => (): ServiceFactory<TlsProvider> => serviceFactory<TlsComponents, TlsProvider>(
  ['self', 'store', 'documents', 'membership', 'host', 'libp2p', 'logger'], (c) => createTlsProvider(mode, c))

function createTlsProvider (mode: TlsMode, c: TlsComponents): TlsProvider {
  const dir = join(c.self.dataDir, TLS_DIR)
  const log = c.logger.child({ component: 'tls' })
  const listeners: Array<(m: TlsMaterial) => void> = []
  let material: TlsMaterial | undefined
  let caPem: string | undefined
  let timer: NodeJS.Timeout | undefined
  let unhandle: (() => Promise<void>) | undefined
  let stopped = false
  const isAuthority = (): boolean => c.membership.authority === c.self.id

  const present = (m: TlsMaterial, ca: string | undefined): void => {
    material = m
    caPem = ca
    for (const l of listeners) l(m)
  }
  /**
   * The key with its certificate and the CA that signed it, leaf first. The CA goes in the
   * chain (RFC 8446 §4.4.2 allows the root) because CUPS 2.4 checks a server against the CA
   * an admin gave it (`~/.cups/ssl/site.crt`, with `TrustOnFirstUse No`) by comparing the
   * certificates after the leaf with that file, not by verifying a signature: a leaf alone
   * is refused there (cups/tls-gnutls.c httpCredentialsGetTrust).
   */
  const withChain = (key: string, cert: string, ca: string): TlsMaterial => ({ key, cert: `${cert.trimEnd()}\n${ca.trimEnd()}\n` })

  async function readRecord (): Promise<CertRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(dir, 'cert.json'), 'utf8')) as CertRecord
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      log.warn({ err: (err as Error).message }, 'the stored TLS certificate is unreadable; asking for a new one')
      return undefined
    }
  }

  /** Gets (or renews) the mesh certificate; true when the one presented is the authority's. */
  async function refresh (names: string[], ownCa: () => Promise<MeshCa>): Promise<boolean> {
    const { keyPem, publicKeyPem } = await nodeKey(dir)
    const authority = c.membership.authority
    const record = await readRecord()
    if (!stale(record, authority, names, Date.now()) && record !== undefined) {
      const stored = withChain(keyPem, record.cert, record.ca)
      if (material?.cert !== stored.cert) present(stored, record.ca)
      return true
    }
    let issued: { certificate: string, ca: string }
    if (isAuthority()) {
      const ca = await ownCa()
      issued = { certificate: await ca.issue(publicKeyPem, names), ca: ca.certPem }
    } else {
      const request: TlsCertRequest = { publicKey: publicKeyPem, names }
      let response: TlsCertResponse
      try {
        response = await callRpc(c.host, TLS_PROTOCOL, authority, c.self.bootstrap, request, AbortSignal.timeout(TLS_RPC_TIMEOUT_MS)) as TlsCertResponse
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not reach central for a TLS certificate; will retry')
        if (material === undefined) {
          // a provisional certificate of this node's own CA, so https and ipps work before central answers
          const own = await MeshCa.open(join(dir, 'own-ca'), `printmesh provisional CA ${c.self.id.slice(-8)}`)
          present(withChain(keyPem, await own.issue(publicKeyPem, names), own.certPem), own.certPem)
          log.warn('presenting a provisional TLS certificate until central certifies this node')
        }
        return false
      }
      if (response.status !== 'issued') {
        log.error({ reason: response.reason }, 'central refused a TLS certificate')
        return false
      }
      checkIssued(response.certificate, response.ca, publicKeyPem)
      issued = response
    }
    const next: CertRecord = { issuer: authority, names, cert: issued.certificate, ca: issued.ca }
    await writeAtomically(join(dir, 'cert.json'), JSON.stringify(next, null, 2))
    present(withChain(keyPem, issued.certificate, issued.ca), issued.ca)
    log.info({ names, validTo: new NodeX509(issued.certificate).validTo }, 'TLS certificate from the mesh CA')
    return true
  }

  return {
    material: () => material,
    ca: () => caPem,
    onChange: (l) => { listeners.push(l) },
    async start () {
      let meshCa: Promise<MeshCa> | undefined
      const ownCa = async (): Promise<MeshCa> => await (meshCa ??= MeshCa.open(join(dir, 'ca'), `printmesh mesh CA ${c.self.id.slice(-8)}`))
      if (isAuthority()) {
        // the authority certifies members whatever its own console does
        const ca = await ownCa()
        caPem = ca.certPem
        unhandle = await handleRpc(c.host, TLS_PROTOCOL, async (peer, req) => await answer(ca, peer, req), log, TLS_RPC_TIMEOUT_MS)
      }
      if (mode.kind === 'off') { caPem = undefined; return }
      if (mode.kind === 'files') {
        present(await adminMaterial(mode.certFile, mode.keyFile), undefined)
        return
      }
      const names = validateNames(mode.names)
      const retryMs = mode.retryMs ?? DEFAULT_TLS_RETRY_MS
      if (!Number.isFinite(retryMs) || retryMs <= 0) throw new TlsConfigError(`the TLS retry interval must be a positive number of milliseconds, got ${retryMs}`)
      const tick = (): void => {
        if (stopped) return
        refresh(names, ownCa).then((ok) => {
          if (stopped) return
          timer = setTimeout(tick, ok ? RENEW_CHECK_MS : retryMs)
          timer.unref()
        }, (err: unknown) => {
          log.error({ err }, 'TLS certificate refresh failed')
          timer = setTimeout(tick, retryMs)
          timer.unref()
        })
      }
      // the first certificate (or the provisional one) before the servers start
      const ok = await refresh(names, ownCa)
      timer = setTimeout(tick, ok ? RENEW_CHECK_MS : retryMs)
      timer.unref()
    },
    async stop () {
      stopped = true
      clearTimeout(timer)
      await unhandle?.()
    }
  }

  /** The authority's answer to a member's certificate request. */
  async function answer (ca: MeshCa, peer: string, req: unknown): Promise<TlsCertResponse> {
    if (!await certifiedMember(c.store, peer, c.self.id, Date.now())) return { status: 'refused', reason: 'only certified members of this mesh get TLS certificates' }
    const r = req as Partial<TlsCertRequest>
    if (typeof r?.publicKey !== 'string' || !Array.isArray(r.names) || !r.names.every((n) => typeof n === 'string')) return { status: 'refused', reason: 'a request carries publicKey (PEM) and names' }
    try {
      const certificate = await ca.issue(r.publicKey, r.names)
      log.info({ peer, names: r.names }, 'TLS certificate issued')
      return { status: 'issued', certificate, ca: ca.certPem }
    } catch (err) {
      if (err instanceof TlsConfigError) return { status: 'refused', reason: err.message }
      throw err
    }
  }
}

/** Checks that a certificate the authority sent is for this node's key and signed by the CA sent with it. */
function checkIssued (certificate: string, ca: string, publicKeyPem: string): void {
  const cert = new NodeX509(certificate)
  if (!cert.publicKey.equals(createPublicKey(publicKeyPem))) throw new TlsConfigError('central sent a certificate for another key')
  if (!cert.verify(new NodeX509(ca).publicKey)) throw new TlsConfigError('central sent a certificate its CA did not sign')
}

/** Reads the admin's certificate and key; @throws TlsConfigError when unreadable or not a pair. */
export async function adminMaterial (certFile: string, keyFile: string): Promise<TlsMaterial> {
  let cert: string
  let key: string
  try {
    cert = await readFile(certFile, 'utf8')
    key = await readFile(keyFile, 'utf8')
  } catch (err) {
    throw new TlsConfigError(`cannot read the TLS certificate or key: ${(err as Error).message}`, { cause: err })
  }
  let x: NodeX509
  try {
    x = new NodeX509(cert)
  } catch (err) {
    throw new TlsConfigError(`${certFile} is not a PEM certificate`, { cause: err })
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new TlsConfigError(`${keyFile} is not a PEM private key`, { cause: err })
  }
  if (!x.checkPrivateKey(privateKey)) throw new TlsConfigError(`the key in ${keyFile} does not belong to the certificate in ${certFile}`)
  return { cert, key }
}

/** The names a node's mesh certificate carries by default: what users type to reach it on this machine and the network. */
export function defaultTlsNames (host: string): string[] {
  const wildcard = host === '0.0.0.0' || host === '::' || host === ''
  return [osHostname(), 'localhost', '127.0.0.1', '::1', ...(!wildcard ? [host] : [])]
}
