/**
 * Named admin accounts and the mesh admin token, as a node keeps them (issue 16 item 5):
 * the authority (central; a standalone site) writes them, every node with an admin console
 * reads its replicated copy to log admins in (crdt/admin-accounts.ts says where they live).
 *
 * - Passwords: the directory's salted scrypt hash (crdt/directory.ts `slowHash`, N=2^15: one
 *   guess costs ~50-100 ms of CPU and 32 MiB), checked even for an unknown or disabled name
 *   so the answer's timing does not tell which names exist.
 * - TOTP (RFC 6238 through `otpauth`): 6 digits every 30 s, one step of drift accepted, a
 *   code used once per node. The secret is sealed (AES-256-GCM) under a key derived from the
 *   mesh's card key (itself from the network key every member has), so a copy of the
 *   documents alone does not give it. Enrolment answers the otpauth:// URI once and keeps
 *   the secret in memory until a valid code of it confirms it.
 * - The mesh token: 32 random bytes, answered once by {@link AdminAccounts.rotateToken}; only its
 *   slow hash is replicated. Once one exists, it is the only admin token every node that
 *   received it accepts (a node's own start-up token no longer works there). A presented
 *   token's slow check is remembered by its SHA-256 while the record is unchanged, so API
 *   calls after the first cost no slow hash.
 *
 * Adoption: accounts a joining site wrote while standalone that central could not add at the
 * join (a name it had; node/admin-handover.ts keeps them aside) are listed by {@link
 * AdminAccounts.adoptable} and adopted by {@link AdminAccounts.adopt}: written among the
 * authority's accounts with the same password hash (the person keeps their password), the role
 * the hand-over gives (narrowed to their site; a report viewer stays one), disabled if it was,
 * under the name the adopter gives; central's account of that name is never overwritten. A
 * second factor is not carried: its secret was sealed under the old network's key and was
 * never sent, so the account signs in with its password alone until it sets one up again (the
 * answer says so).
 *
 * On a node that is not the authority every write is refused with
 * {@link AccountsManagedElsewhereError}; reads and logins still answer.
 */
import type * as Y from 'yjs'
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import * as OTPAuth from 'otpauth'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc, licenseDoc, siteId } from '../crdt/names.ts'
import { slowHash, verifyPin as verifySlowHash } from '../crdt/directory.ts'
import { KindedError } from '../crdt/errors.ts'
import {
  ADMIN_ROLES, getAdminAccount, getAdoptable, getMeshToken, listAdminAccounts, listAdoptable, putAdminAccount, removeAdminAccount, removeAdoptable, setMeshToken, validAccountName,
  type AdminAccount, type AdminRole, type AdoptableAdminAccount
} from '../crdt/admin-accounts.ts'
import type { AdminAccountPatch, AdminAccountsApi, AdminAccountView, AdminPrincipal, AdoptableAccountView, AdoptedAccount, NewAdminAccount } from '../ui/admin-accounts-api.ts'

/** Shortest password accepted: 12 characters resist offline guessing of a leaked scrypt hash for years. */
export const MIN_PASSWORD_LENGTH = 12
/** Longest password accepted: scrypt takes any length, but a longer one is a paste accident or an attack on memory. */
export const MAX_PASSWORD_LENGTH = 256
/** The most site ids one site admin holds: more is a mesh admin's job. */
const MAX_SITES = 100
/** TOTP as every authenticator app does it: 6 digits, 30 s steps, HMAC-SHA1 (RFC 6238's default). */
const TOTP_DIGITS = 6
const TOTP_PERIOD_S = 30
const TOTP_ALGORITHM = 'SHA1'
/** Steps of clock drift accepted either side: a phone a few seconds off still works. */
const TOTP_WINDOW = 1
/** 160-bit secrets, as RFC 4226 recommends for HMAC-SHA1. */
const TOTP_SECRET_BYTES = 20
/** An enrolment not confirmed within this is forgotten: the admin scans and types the code at once. */
const TOTP_ENROL_MS = 10 * 60_000
/** What authenticator apps show above the code. */
const TOTP_ISSUER = 'printmesh'
/** Mesh tokens are 32 random bytes: unguessable; the slow hash is defence in depth only. */
const MESH_TOKEN_BYTES = 32
/** A mesh token's form (32 bytes as base64url): anything else is refused without a slow hash. */
const MESH_TOKEN_FORM = /^[A-Za-z0-9_-]{43}$/
/** AES-GCM's standard nonce and tag sizes for the sealed TOTP secret. */
const NONCE_BYTES = 12
const TAG_BYTES = 16
/** Not an account name: `/api/admin-accounts/adoptable` lists the accounts to adopt. */
export const RESERVED_ACCOUNT_NAME = 'adoptable'
/** Checked when a name is unknown, so a wrong name costs the same slow hash as a wrong password. */
const DUMMY_HASH_SECRET = 'printmesh: no such admin account'

export class InvalidAdminAccountFieldError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'InvalidAdminAccountFieldError' }
}

export class AdminAccountExistsError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (username: string) { super(`admin account ${username} already exists`); this.name = 'AdminAccountExistsError' }
}

export class UnknownAdminAccountError extends KindedError {
  readonly kind = 'not-found'
  constructor (username: string) { super(`no admin account ${username}`); this.name = 'UnknownAdminAccountError' }
}

/** No adoptable account of this id (adopted or dismissed already, or never handed over). */
export class UnknownAdoptableAccountError extends KindedError {
  readonly kind = 'not-found'
  constructor (id: string) { super(`no account ${id} waits to be adopted (adopted or dismissed already?)`); this.name = 'UnknownAdoptableAccountError' }
}

/** Adopting under a name the authority already has: refused, nothing changed. */
export class AdoptedNameTakenError extends KindedError {
  readonly kind = 'invalid-state'
  constructor (username: string, from: AdoptableAdminAccount) {
    super(`central already has an admin account ${username}, which is not overwritten: adopt ${from.username} of ${from.site} under another name`)
    this.name = 'AdoptedNameTakenError'
  }
}

/** A write on a node that is not the mesh's authority. */
export class AccountsManagedElsewhereError extends KindedError {
  readonly kind = 'invalid-state'
  constructor () { super('admin accounts and the mesh token are managed on central (this node is not the mesh\'s authority)'); this.name = 'AccountsManagedElsewhereError' }
}

/** A wrongly assembled node: accounts without the card key. */
export class AdminAccountsConfigError extends Error {
  constructor (message: string) { super(message); this.name = 'AdminAccountsConfigError' }
}

/** A TOTP confirmation without a pending enrolment, or with a wrong code. */
export class TotpEnrolmentError extends KindedError {
  readonly kind = 'invalid-request'
  constructor (message: string) { super(message); this.name = 'TotpEnrolmentError' }
}

export interface AdminAccountsInit {
  store: DocStore
  /** The directory's card key (node/users.ts `cardKeyOf`): the TOTP sealing key is derived from it. Not needed with `tokenOnly`. */
  cardKey?: Uint8Array
  /** Whether this node writes accounts and the mesh token now (central; a site while standalone). */
  authority: () => boolean
  /** The mesh's authority's peer id now (crdt/membership.ts): accounts and the token are read under it. */
  authorityId: () => string
  /**
   * Only the mesh token, no accounts: a workstation's client, which is not given the directory
   * (its password hashes), still takes the mesh token from the license document.
   */
  tokenOnly?: boolean
  /** Told each new mesh token after it is written (the authority keeps its own token file current); must not throw. */
  onRotated?: (token: string) => Promise<void>
  now?: () => number
}

export class AdminAccounts implements AdminAccountsApi {
  private readonly init: AdminAccountsInit
  private readonly now: () => number
  /** The TOTP secrets' sealing key; absent with `tokenOnly` (no accounts, no secrets). */
  private readonly sealKey?: Buffer
  private directory?: Y.Doc
  private license?: Y.Doc
  private opening?: Promise<void>
  private queue: Promise<unknown> = Promise.resolve()
  /** TOTP secrets shown but not yet confirmed, by account. */
  private readonly pending = new Map<string, { secret: string, expiresAt: number }>()
  /** The last TOTP step used per account at this node: a code works once. */
  private readonly usedStep = new Map<string, number>()
  /** SHA-256 of the token verified against `verifiedHash` (the record it was checked with). */
  private verified?: { digest: string, hash: string }
  private dummyHash?: Promise<string>

  constructor (init: AdminAccountsInit) {
    this.init = init
    this.now = init.now ?? Date.now
    if (init.cardKey !== undefined) this.sealKey = Buffer.from(hkdfSync('sha256', init.cardKey, 'printmesh', 'admin TOTP secret v1', 32))
    else if (init.tokenOnly !== true) throw new AdminAccountsConfigError('admin accounts need the card key (their TOTP secrets are sealed under it) unless tokenOnly')
  }

  async ready (): Promise<void> {
    this.opening ??= (async () => {
      if (this.init.tokenOnly !== true) this.directory = await this.init.store.open(directoryDoc())
      this.license = await this.init.store.open(licenseDoc())
    })()
    await this.opening
  }

  async list (): Promise<AdminAccountView[]> {
    return listAdminAccounts(await this.dir(), this.authorityId()).map(view)
  }

  async get (username: string): Promise<AdminAccountView> {
    return view(this.existing(await this.dir(), username))
  }

  async add (input: NewAdminAccount, by: string): Promise<AdminAccountView> {
    return await this.write(by, async (doc) => {
      checkName(input.username)
      if (getAdminAccount(doc, this.authorityId(), input.username) !== undefined) throw new AdminAccountExistsError(input.username)
      const role = checkRole(input.role)
      const sites = checkSites(role, input.sites ?? [])
      checkPassword(input.password)
      const t = this.now()
      return { username: input.username, role, sites, passwordHash: await slowHash(input.password), version: 0, createdAt: t, updatedAt: t, by }
    })
  }

  async update (username: string, patch: AdminAccountPatch, by: string): Promise<AdminAccountView> {
    return await this.write(by, async (doc) => {
      const account = { ...this.existing(doc, username) }
      const role = patch.role !== undefined ? checkRole(patch.role) : account.role
      const sites = patch.sites !== undefined ? patch.sites : (role === 'site-admin' ? account.sites : [])
      account.sites = checkSites(role, sites)
      account.role = role
      if (patch.disabled !== undefined) {
        if (patch.disabled) account.disabled = true
        else delete account.disabled
      }
      return account
    })
  }

  async remove (username: string, by: string): Promise<void> {
    await this.serial(async () => {
      this.writable()
      this.existing(await this.dir(), username)
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (doc) => { removeAdminAccount(doc, this.authorityId(), username) })
      this.pending.delete(username)
    })
  }

  async setPassword (username: string, password: string, by: string): Promise<AdminAccountView> {
    return await this.write(by, async (doc) => {
      const account = { ...this.existing(doc, username) }
      checkPassword(password)
      account.passwordHash = await slowHash(password)
      return account
    })
  }

  async startTotp (username: string, by: string): Promise<{ otpauthUri: string }> {
    return await this.serial(async () => {
      this.writable()
      this.existing(await this.dir(), username)
      const secret = new OTPAuth.Secret({ size: TOTP_SECRET_BYTES }).base32
      this.pending.set(username, { secret, expiresAt: this.now() + TOTP_ENROL_MS })
      void by
      return { otpauthUri: totpOf(username, secret).toString() }
    })
  }

  async confirmTotp (username: string, code: string, by: string): Promise<AdminAccountView> {
    return await this.write(by, async (doc) => {
      const account = { ...this.existing(doc, username) }
      const pending = this.pending.get(username)
      if (pending === undefined || pending.expiresAt <= this.now()) {
        this.pending.delete(username)
        throw new TotpEnrolmentError(`no TOTP enrolment of ${username} is waiting for its code (start one again)`)
      }
      const step = this.totpStep(username, pending.secret, code)
      if (step === undefined) throw new TotpEnrolmentError('code is not a valid code of the new TOTP secret')
      this.usedStep.set(username, step)
      this.pending.delete(username)
      account.totpSealed = this.seal(pending.secret)
      return account
    })
  }

  async removeTotp (username: string, by: string): Promise<AdminAccountView> {
    return await this.write(by, async (doc) => {
      const account = { ...this.existing(doc, username) }
      delete account.totpSealed
      return account
    })
  }

  async rotateToken (by: string): Promise<{ token: string, rotatedAt: number }> {
    return await this.serial(async () => {
      this.writable()
      const token = randomBytes(MESH_TOKEN_BYTES).toString('base64url')
      const rotatedAt = this.now()
      const hash = await slowHash(token)
      await this.init.store.transact(licenseDoc(), { kind: 'admin', user: by }, (doc) => { setMeshToken(doc, this.authorityId(), { hash, rotatedAt, by }) })
      this.verified = { digest: digestOf(token), hash }
      await this.init.onRotated?.(token)
      return { token, rotatedAt }
    })
  }

  async adoptable (): Promise<AdoptableAccountView[]> {
    const doc = await this.dir()
    return listAdoptable(doc, this.authorityId()).map(({ id, account }) => adoptableView(id, account, getAdminAccount(doc, this.authorityId(), account.username) !== undefined))
  }

  async adopt (id: string, options: { username?: string }, by: string): Promise<AdoptedAccount> {
    return await this.serial(async () => {
      this.writable()
      const doc = await this.dir()
      const from = getAdoptable(doc, this.authorityId(), id)
      if (from === undefined) throw new UnknownAdoptableAccountError(id)
      const username = options.username ?? from.username
      checkName(username)
      if (getAdminAccount(doc, this.authorityId(), username) !== undefined) throw new AdoptedNameTakenError(username, from)
      const t = this.now()
      const account: AdminAccount = {
        username,
        role: from.role,
        sites: checkSites(from.role, from.sites),
        passwordHash: from.passwordHash,
        ...(from.disabled === true ? { disabled: true } : {}),
        version: 1,
        createdAt: t,
        updatedAt: t,
        by
      }
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (d) => {
        putAdminAccount(d, this.authorityId(), account)
        removeAdoptable(d, this.authorityId(), id)
      })
      const renamed = username !== from.username ? ` as ${username}` : ''
      const notice = `Adopted ${from.username} of ${from.site}${renamed}: it signs in with the password it had there, as ${account.role}${account.sites.length > 0 ? ` of ${account.sites.join(', ')}` : ''}` +
        (from.hadTotp ? '. Its authenticator could not be carried over (it was sealed with the site\'s old network key): it signs in without a code until one is set up again.' : '.')
      return {
        account: view(account),
        adoptedFrom: { id, site: from.site, sitePeer: from.sitePeer, username: from.username, ...(from.by !== undefined ? { by: from.by } : {}), ...(from.updatedAt !== undefined ? { updatedAt: from.updatedAt } : {}) },
        totpDropped: from.hadTotp,
        notice
      }
    })
  }

  async dismissAdoptable (id: string, by: string): Promise<void> {
    await this.serial(async () => {
      this.writable()
      if (getAdoptable(await this.dir(), this.authorityId(), id) === undefined) throw new UnknownAdoptableAccountError(id)
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (d) => { removeAdoptable(d, this.authorityId(), id) })
    })
  }

  async login (username: string, password: string, totp?: string): Promise<AdminPrincipal | undefined> {
    if (this.init.tokenOnly === true) return undefined // the ui's login says to use the token
    const doc = await this.dir()
    const account = validAccountName(username) ? getAdminAccount(doc, this.authorityId(), username) : undefined
    if (account === undefined) {
      // the same slow hash as a real check: a wrong name is not told apart by time
      this.dummyHash ??= slowHash(DUMMY_HASH_SECRET)
      await verifySlowHash(password, await this.dummyHash)
      return undefined
    }
    if (!await verifySlowHash(password, account.passwordHash)) return undefined
    if (account.disabled === true) return undefined
    if (account.totpSealed !== undefined) {
      const secret = this.unseal(account.totpSealed)
      if (secret === undefined || totp === undefined) return undefined
      const step = this.totpStep(username, secret, totp)
      if (step === undefined) return undefined
      this.usedStep.set(username, step)
    }
    return principal(account)
  }

  current (username: string, version: number): AdminPrincipal | undefined {
    if (this.directory === undefined) return undefined
    const account = getAdminAccount(this.directory, this.authorityId(), username)
    if (account === undefined || account.disabled === true || account.version !== version) return undefined
    return principal(account)
  }

  meshTokenStamp (): string | undefined {
    const record = this.license !== undefined ? getMeshToken(this.license, this.authorityId()) : undefined
    return record === undefined ? undefined : `mesh:${record.rotatedAt}:${digestOf(record.hash).slice(0, 16)}`
  }

  async verifyMeshToken (token: string): Promise<boolean> {
    await this.ready()
    const record = getMeshToken(this.license as Y.Doc, this.authorityId())
    if (record === undefined) return false
    if (this.meshTokenKnown(token)) return true
    if (!MESH_TOKEN_FORM.test(token)) return false
    if (!await verifySlowHash(token, record.hash)) return false
    this.verified = { digest: digestOf(token), hash: record.hash }
    return true
  }

  meshTokenKnown (token: string): boolean {
    const record = this.license !== undefined ? getMeshToken(this.license, this.authorityId()) : undefined
    return record !== undefined && this.verified !== undefined && this.verified.hash === record.hash && this.verified.digest === digestOf(token)
  }

  any (): boolean {
    return this.directory !== undefined && listAdminAccounts(this.directory, this.authorityId()).length > 0
  }

  /** The TOTP step `code` is valid for (not used before here), else undefined. */
  private totpStep (username: string, secret: string, code: string): number | undefined {
    if (!/^\d{6}$/.test(code)) return undefined
    const t = this.now()
    const delta = totpOf(username, secret).validate({ token: code, timestamp: t, window: TOTP_WINDOW })
    if (delta === null) return undefined
    const step = Math.floor(t / 1000 / TOTP_PERIOD_S) + delta
    if (step <= (this.usedStep.get(username) ?? -1)) return undefined // replayed
    return step
  }

  private seal (secret: string): string {
    if (this.sealKey === undefined) throw new AccountsManagedElsewhereError()
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.sealKey, nonce)
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
    return Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64')
  }

  /** The sealed secret, or undefined when it does not open (another mesh's key, tampered): no code then works. */
  private unseal (sealed: string): string | undefined {
    const bytes = Buffer.from(sealed, 'base64')
    if (this.sealKey === undefined || bytes.length <= NONCE_BYTES + TAG_BYTES) return undefined
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.sealKey, bytes.subarray(0, NONCE_BYTES))
      decipher.setAuthTag(bytes.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES))
      return Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch {
      return undefined // authentication failed: treated as no valid secret, the login is refused
    }
  }

  private async dir (): Promise<Y.Doc> {
    await this.ready()
    if (this.directory === undefined) throw new AccountsManagedElsewhereError()
    return this.directory
  }

  private authorityId (): string {
    return this.init.authorityId()
  }

  private writable (): void {
    if (!this.init.authority()) throw new AccountsManagedElsewhereError()
  }

  private existing (doc: Y.Doc, username: string): AdminAccount {
    const account = getAdminAccount(doc, this.authorityId(), username)
    if (account === undefined) throw new UnknownAdminAccountError(username)
    return account
  }

  private async serial<T> (work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work)
    this.queue = run.catch(() => undefined) // the caller gets the failure; the queue goes on
    return await run
  }

  /** Builds the changed account (from the current one) and writes it with a new version: sessions opened before end. */
  private async write (by: string, build: (doc: Y.Doc) => Promise<AdminAccount>): Promise<AdminAccountView> {
    return await this.serial(async () => {
      this.writable()
      const account = await build(await this.dir())
      const changed: AdminAccount = { ...account, version: account.version + 1, updatedAt: this.now(), by }
      await this.init.store.transact(directoryDoc(), { kind: 'admin', user: by }, (d) => { putAdminAccount(d, this.authorityId(), changed) })
      return view(changed)
    })
  }
}

function totpOf (username: string, secret: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ issuer: TOTP_ISSUER, label: username, algorithm: TOTP_ALGORITHM, digits: TOTP_DIGITS, period: TOTP_PERIOD_S, secret: OTPAuth.Secret.fromBase32(secret) })
}

function digestOf (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

function principal (a: AdminAccount): AdminPrincipal {
  return { username: a.username, role: a.role, sites: [...a.sites], version: a.version }
}

function view (a: AdminAccount): AdminAccountView {
  return { username: a.username, role: a.role, sites: [...a.sites], totp: a.totpSealed !== undefined, disabled: a.disabled === true, createdAt: a.createdAt, updatedAt: a.updatedAt, by: a.by }
}

function adoptableView (id: string, a: AdoptableAdminAccount, taken: boolean): AdoptableAccountView {
  return {
    id,
    site: a.site,
    sitePeer: a.sitePeer,
    username: a.username,
    standaloneRole: a.standaloneRole,
    standaloneSites: [...a.standaloneSites],
    role: a.role,
    sites: [...a.sites],
    totp: a.hadTotp,
    disabled: a.disabled === true,
    ...(a.by !== undefined ? { by: a.by } : {}),
    ...(a.createdAt !== undefined ? { createdAt: a.createdAt } : {}),
    ...(a.updatedAt !== undefined ? { updatedAt: a.updatedAt } : {}),
    handedAt: a.handedAt,
    reason: a.reason,
    taken
  }
}

function checkName (username: string): void {
  if (typeof username !== 'string' || !validAccountName(username)) throw new InvalidAdminAccountFieldError('username must be 1-64 letters, digits or . _ @ -')
  if (username === RESERVED_ACCOUNT_NAME) throw new InvalidAdminAccountFieldError(`${RESERVED_ACCOUNT_NAME} is not an account name (it names the accounts to adopt)`)
}

function checkRole (role: unknown): AdminRole {
  if (typeof role !== 'string' || !ADMIN_ROLES.includes(role as AdminRole)) throw new InvalidAdminAccountFieldError(`role must be one of ${ADMIN_ROLES.join(', ')}`)
  return role as AdminRole
}

function checkSites (role: AdminRole, sites: readonly string[]): string[] {
  if (role !== 'site-admin') {
    if (sites.length > 0) throw new InvalidAdminAccountFieldError(`sites are only for a site-admin (a ${role} has none)`)
    return []
  }
  if (sites.length === 0) throw new InvalidAdminAccountFieldError('sites must name at least one site id for a site-admin')
  if (sites.length > MAX_SITES) throw new InvalidAdminAccountFieldError(`sites may name at most ${MAX_SITES} site ids`)
  for (const s of sites) {
    try {
      siteId(s)
    } catch {
      throw new InvalidAdminAccountFieldError(`sites: ${JSON.stringify(s)} is not a site id`)
    }
  }
  return [...new Set(sites)].sort()
}

function checkPassword (password: string): void {
  if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH || password.length > MAX_PASSWORD_LENGTH) {
    throw new InvalidAdminAccountFieldError(`password must be ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`)
  }
}
