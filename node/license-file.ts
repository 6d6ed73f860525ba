/**
 * The product license: a JSON file stating the organisation, limits (sites, terminals,
 * clients, users) and an expiry, signed Ed25519 by the vendor. Central checks it with the
 * vendor's public key the project ships (node/license-vendor-key.pem; `--vendor-public-key`
 * names another, for tests and self-hosted vendors), records its fields (never a secret) in
 * the license document so every peer can show it, and refuses enrolments beyond a limit.
 *
 * Expiry never stops printing, release, login or accounting: from {@link LICENSE_WARNING_MS}
 * before it central warns (logs, /metrics, /api/license, the admin page); past it and a
 * {@link LICENSE_GRACE_MS} grace only new enrolments are refused. Certificate renewals of
 * peers already enrolled are never refused.
 *
 * File: `{ "license": { format, organisation, licenseId, limits, issuedAt, expiresAt },
 * "signature": "<base64>" }`; the signature covers the license's canonical JSON (the fields
 * in that order), so re-indenting the file does not break it.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type * as Y from 'yjs'
import { KindedError } from '../crdt/errors.ts'
import { CERT_GRACE_MS, isRevoked, listCertificates, readProductLicense, type ProductLicenseRecord, type Role } from '../crdt/license.ts'
import { listUsers } from '../crdt/directory.ts'
import { directoryDoc, licenseDoc } from '../crdt/names.ts'
import type { DocStore } from '../crdt/store.ts'

/** The format this code reads and writes; another is refused, not guessed at. */
export const LICENSE_FORMAT = 'printmesh-license/1'
/** Warnings start this long before expiry: a month to renew. */
export const LICENSE_WARNING_MS = 30 * 24 * 3600_000
/** After expiry new enrolments go on this long, so a late renewal stops nobody's roll-out. */
export const LICENSE_GRACE_MS = 30 * 24 * 3600_000
/** The vendor's public key the project ships (its private key is kept by the vendor, never in the repository). */
export const SHIPPED_VENDOR_PUBLIC_KEY = new URL('./license-vendor-key.pem', import.meta.url).pathname
/** Where central keeps its installed license, so it survives restarts without `--license`. */
export const LICENSE_FILE = 'license.json'
/** Names of a vendor key pair written by `printmesh license keygen`. */
export const VENDOR_PRIVATE_KEY_FILE = 'vendor-private-key.pem'
export const VENDOR_PUBLIC_KEY_FILE = 'vendor-public-key.pem'
/** A license file is a few hundred bytes; anything this big is not one. */
const MAX_LICENSE_BYTES = 64 * 1024
/** Organisation names and license ids are labels on a page, not documents. */
const MAX_LABEL_LENGTH = 200
const DAY_MS = 24 * 3600_000

export interface LicenseLimits { sites: number, terminals: number, clients: number, users: number }
export const LIMIT_NAMES = ['sites', 'terminals', 'clients', 'users'] as const satisfies ReadonlyArray<keyof LicenseLimits>

export interface ProductLicense {
  format: typeof LICENSE_FORMAT
  organisation: string
  licenseId: string
  limits: LicenseLimits
  /** ISO 8601 times. */
  issuedAt: string
  expiresAt: string
}

export interface LicenseFile { license: ProductLicense, signature: string }

/** A license file that is malformed, of another format, or not signed by the vendor key; the message names the problem. */
export class InvalidLicenseError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (problem: string) { super(`invalid license: ${problem}`); this.name = 'InvalidLicenseError' }
}

/** The vendor key file is missing or not an Ed25519 key of the expected kind. */
export class VendorKeyError extends Error {
  constructor (message: string) { super(message); this.name = 'VendorKeyError' }
}

/** An enrolment or a user import beyond the license, or an enrolment after expiry and grace. */
export class LicenseLimitError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (message: string) { super(message); this.name = 'LicenseLimitError' }
}

function canonical (l: ProductLicense): string {
  return JSON.stringify({
    format: l.format,
    organisation: l.organisation,
    licenseId: l.licenseId,
    limits: { sites: l.limits.sites, terminals: l.limits.terminals, clients: l.limits.clients, users: l.limits.users },
    issuedAt: l.issuedAt,
    expiresAt: l.expiresAt
  })
}

// ---- vendor keys -------------------------------------------------------------------

/** A new vendor key pair (PEM: PKCS#8 private, SPKI public). */
export function generateVendorKeyPair (): { privateKey: string, publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

/** Writes a vendor key pair into `dir` (the private key 0600); refuses to overwrite one. */
export async function writeVendorKeyPair (dir: string): Promise<{ privateKeyFile: string, publicKeyFile: string }> {
  await mkdir(dir, { recursive: true })
  const pair = generateVendorKeyPair()
  const privateKeyFile = join(dir, VENDOR_PRIVATE_KEY_FILE)
  const publicKeyFile = join(dir, VENDOR_PUBLIC_KEY_FILE)
  try {
    await writeFile(privateKeyFile, pair.privateKey, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VendorKeyError(`${privateKeyFile} exists already: a vendor key is never overwritten`)
    throw err
  }
  await writeFile(publicKeyFile, pair.publicKey, { mode: 0o644 })
  return { privateKeyFile, publicKeyFile }
}

async function readKey (file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new VendorKeyError(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** The vendor public key in `file` (default: the shipped one). */
export async function loadVendorPublicKey (file = SHIPPED_VENDOR_PUBLIC_KEY): Promise<KeyObject> {
  const pem = await readKey(file, 'vendor public key')
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (err) {
    throw new VendorKeyError(`${file} is not a public key in PEM: ${(err as Error).message}`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new VendorKeyError(`${file} is a ${String(key.asymmetricKeyType)} key; a vendor key is Ed25519`)
  return key
}

/** The vendor private key in `file`. */
export async function loadVendorPrivateKey (file: string): Promise<KeyObject> {
  const pem = await readKey(file, 'vendor private key')
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new VendorKeyError(`${file} is not a private key in PEM: ${(err as Error).message}`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new VendorKeyError(`${file} is a ${String(key.asymmetricKeyType)} key; a vendor key is Ed25519`)
  return key
}

// ---- issuing and checking ----------------------------------------------------------

/** What the vendor states when issuing a license. */
export interface LicenseTerms { organisation: string, limits: LicenseLimits, expiresAt: number, licenseId?: string, issuedAt?: number }

/** Signs a license with the vendor's private key; returns the file's text. */
export function issueLicense (terms: LicenseTerms, vendorPrivateKey: KeyObject): string {
  const license: ProductLicense = {
    format: LICENSE_FORMAT,
    organisation: terms.organisation,
    licenseId: terms.licenseId ?? `lic-${randomBytes(6).toString('hex')}`,
    limits: { ...terms.limits },
    issuedAt: new Date(terms.issuedAt ?? Date.now()).toISOString(),
    expiresAt: new Date(terms.expiresAt).toISOString()
  }
  checkFields(license as unknown as Record<string, unknown>)
  const signature = sign(null, Buffer.from(canonical(license)), vendorPrivateKey).toString('base64')
  return JSON.stringify({ license, signature } satisfies LicenseFile, null, 2) + '\n'
}

/** Throws {@link InvalidLicenseError} naming the first field missing or of the wrong type. */
function checkFields (l: Record<string, unknown>): void {
  const label = (name: string): void => {
    const v = l[name]
    if (typeof v !== 'string' || v.trim() === '' || v.length > MAX_LABEL_LENGTH) throw new InvalidLicenseError(`"${name}" must be a text of 1–${MAX_LABEL_LENGTH} characters`)
  }
  label('organisation')
  label('licenseId')
  const limits = l.limits as Record<string, unknown> | undefined
  if (typeof limits !== 'object' || limits === null) throw new InvalidLicenseError('"limits" is missing')
  for (const name of LIMIT_NAMES) {
    const n = limits[name]
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new InvalidLicenseError(`"limits.${name}" must be a whole number of 0 or more`)
  }
  for (const name of ['issuedAt', 'expiresAt']) {
    const v = l[name]
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw new InvalidLicenseError(`"${name}" must be an ISO 8601 time`)
  }
}

/**
 * Parses and verifies a license file's text against the vendor's public key; throws
 * {@link InvalidLicenseError} for malformed text, another format, or a signature that is
 * not the vendor key's over these fields (another key, or an altered field).
 */
export function verifyLicense (text: string, vendorPublicKey: KeyObject): ProductLicense {
  if (Buffer.byteLength(text) > MAX_LICENSE_BYTES) throw new InvalidLicenseError(`larger than ${MAX_LICENSE_BYTES} bytes: not a license file`)
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new InvalidLicenseError(`not JSON (${(err as Error).message})`)
  }
  const file = parsed as Partial<Record<keyof LicenseFile, unknown>> | null
  if (typeof file !== 'object' || file === null || typeof file.license !== 'object' || file.license === null || typeof file.signature !== 'string') {
    throw new InvalidLicenseError('expected {"license": {…}, "signature": "…"}')
  }
  const license = file.license as Record<string, unknown>
  if (license.format !== LICENSE_FORMAT) throw new InvalidLicenseError(`wrong format ${JSON.stringify(license.format)}: this version reads ${LICENSE_FORMAT}`)
  checkFields(license)
  const checked = license as unknown as ProductLicense
  const signature = Buffer.from(file.signature, 'base64')
  if (!verify(null, Buffer.from(canonical(checked)), vendorPublicKey, signature)) {
    throw new InvalidLicenseError('the signature does not match the vendor key (signed by another key, or altered after signing)')
  }
  return { ...checked, limits: { ...checked.limits } }
}

/** Reads and verifies a license file; {@link InvalidLicenseError} names the file. */
export async function readLicenseFile (file: string, vendorPublicKey: KeyObject): Promise<ProductLicense> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InvalidLicenseError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    return verifyLicense(text, vendorPublicKey)
  } catch (err) {
    if (err instanceof InvalidLicenseError) throw new InvalidLicenseError(`${file}: ${err.message.replace(/^invalid license: /, '')}`)
    throw err
  }
}

/** Copies a verified license's text into central's data folder (atomically). */
export async function storeLicense (dataDir: string, text: string): Promise<void> {
  const path = join(dataDir, LICENSE_FILE)
  await writeFile(path + '.tmp', text, { mode: 0o644 })
  await rename(path + '.tmp', path)
}

/**
 * Central's license at start: `licenseFile` when given (verified, then copied into the data
 * folder), else the one installed there before, else none (evaluation). A bad one throws
 * {@link InvalidLicenseError}: central does not start on a license it cannot trust.
 */
export async function loadCentralLicense (dataDir: string, vendorPublicKey: KeyObject, licenseFile?: string): Promise<ProductLicense | undefined> {
  if (licenseFile !== undefined) {
    const license = await readLicenseFile(licenseFile, vendorPublicKey)
    await mkdir(dataDir, { recursive: true })
    await storeLicense(dataDir, await readFile(licenseFile, 'utf8'))
    return license
  }
  const installed = join(dataDir, LICENSE_FILE)
  try {
    await readFile(installed)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return await readLicenseFile(installed, vendorPublicKey)
}

// ---- state and limits --------------------------------------------------------------

/**
 * `unlicensed`: no license (evaluation, no limits); `valid`; `expiring`: within
 * {@link LICENSE_WARNING_MS} of expiry; `expired-in-grace`: expired, enrolments go on for
 * {@link LICENSE_GRACE_MS}; `expired`: new enrolments are refused.
 */
export type LicenseState = 'unlicensed' | 'valid' | 'expiring' | 'expired-in-grace' | 'expired'

export function licenseState (license: Pick<ProductLicenseRecord, 'expiresAt'> | undefined, now: number): LicenseState {
  if (license === undefined) return 'unlicensed'
  if (now < license.expiresAt - LICENSE_WARNING_MS) return 'valid'
  if (now < license.expiresAt) return 'expiring'
  if (now < license.expiresAt + LICENSE_GRACE_MS) return 'expired-in-grace'
  return 'expired'
}

/** The record of a license in the license document (crdt/license.ts): its fields, times in ms. */
export function licenseRecord (l: ProductLicense): ProductLicenseRecord {
  return { organisation: l.organisation, licenseId: l.licenseId, limits: { ...l.limits }, issuedAt: Date.parse(l.issuedAt), expiresAt: Date.parse(l.expiresAt) }
}

/** What is in use against the limits. */
export interface LicenseUsage { sites: number, terminals: number, clients: number, users: number }

/** Enrolled peers, counted from the certificates not revoked nor expired past their grace; sites by site id. */
export function enrolledPeers (license: Y.Doc, now: number): { sites: Set<string>, terminals: number, clients: number } {
  const sites = new Set<string>()
  let terminals = 0
  let clients = 0
  for (const cert of listCertificates(license)) {
    if (isRevoked(license, cert.peer) || now > cert.expiresAt + CERT_GRACE_MS) continue
    if (cert.role === 'site' && cert.site !== undefined) sites.add(cert.site)
    else if (cert.role === 'terminal') terminals++
    else if (cert.role === 'client') clients++
  }
  return { sites, terminals, clients }
}

/** Users counted against the license: every user not disabled. */
function activeUsers (directory: Y.Doc): Set<string> {
  return new Set(listUsers(directory).filter((u) => u.disabled !== true).map((u) => u.username))
}

/** The usage counts of the license and directory documents (absent ones count nothing). */
export function licenseUsage (license: Y.Doc | undefined, directory: Y.Doc | undefined, now: number): LicenseUsage {
  const peers = license !== undefined ? enrolledPeers(license, now) : { sites: new Set(), terminals: 0, clients: 0 }
  return { sites: peers.sites.size, terminals: peers.terminals, clients: peers.clients, users: directory !== undefined ? activeUsers(directory).size : 0 }
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10)
/** `license allows 2 sites; 2 are enrolled` */
const limitMessage = (allowed: number, one: string, many: string, inUse: number, where = 'enrolled'): string =>
  `license allows ${allowed} ${allowed === 1 ? one : many}; ${inUse} ${inUse === 1 ? 'is' : 'are'} ${where}`

/**
 * Why a new enrolment of a `role` at `site` is refused under `license`, or undefined when it
 * is allowed (no license: evaluation, no limits). Renewals never come here.
 */
export function enrolmentRefusal (license: ProductLicenseRecord | undefined, doc: Y.Doc, role: Role, site: string | undefined, now: number): string | undefined {
  if (license === undefined) return undefined
  if (licenseState(license, now) === 'expired') {
    return `the license (${license.licenseId}) expired on ${day(license.expiresAt)} and its ${LICENSE_GRACE_MS / DAY_MS}-day grace is over: ` +
      'new peers cannot enrol until central has a renewed license (enrolled peers keep working)'
  }
  const peers = enrolledPeers(doc, now)
  const { limits } = license
  if (role === 'site' && site !== undefined && !peers.sites.has(site) && peers.sites.size >= limits.sites) {
    return limitMessage(limits.sites, 'site', 'sites', peers.sites.size)
  }
  if (role === 'terminal' && peers.terminals >= limits.terminals) return limitMessage(limits.terminals, 'terminal', 'terminals', peers.terminals)
  if (role === 'client' && peers.clients >= limits.clients) return limitMessage(limits.clients, 'client', 'clients', peers.clients)
  return undefined
}

/**
 * Throws {@link LicenseLimitError} when adding `usernames` to the directory would take the
 * active users past the license's limit (users already in the directory are updates and
 * never count twice). Without a license recorded: no limit. Expiry does not stop imports:
 * logins and accounting never stop, and neither does keeping the directory current.
 */
export async function assertUserCapacity (store: DocStore, usernames: readonly string[]): Promise<void> {
  const license = readProductLicense(await store.open(licenseDoc()))
  if (license === undefined) return
  const active = activeUsers(await store.open(directoryDoc()))
  const added = new Set(usernames.filter((u) => !active.has(u))).size
  if (added === 0 || active.size + added <= license.limits.users) return
  throw new LicenseLimitError(`${limitMessage(license.limits.users, 'user', 'users', active.size, 'in the directory')}, and this would add ${added}`)
}
