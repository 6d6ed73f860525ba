/**
 * The directory family: `v1/directory`, users with their PIN hashes. Written by central;
 * a standalone site is its own authority until it joins a mesh. PINs are stored only as
 * salted scrypt hashes; no PIN ever enters a document, a log or an API answer.
 */
import type * as Y from 'yjs'
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

export interface DirectoryUser {
  username: string
  fullName: string
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` */
  pinHash: string
  homeSite?: string
  updatedAt: number
}

/** scrypt cost: 2^15 makes one PIN guess cost ~50-100 ms of CPU and 32 MiB of memory. */
const SCRYPT_N = 2 ** 15
const SCRYPT_R = 8
const SCRYPT_P = 1
/** scrypt needs 128·N·r bytes; leave headroom over the default 32 MiB limit. */
const SCRYPT_MAXMEM = 64 * 1024 * 1024
const SALT_BYTES = 16
const HASH_BYTES = 32
/** Usernames as most directories allow them. */
const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/
/** PINs: digits, 4 to 12 of them, as MFP panels accept. */
const PIN = /^\d{4,12}$/

export class InvalidUserError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidUserError' }
}

function scrypt (pin: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const opts: ScryptOptions = { N: n, r, p, maxmem: SCRYPT_MAXMEM }
  return new Promise((resolve, reject) => {
    scryptCb(pin, salt, HASH_BYTES, opts, (err, key) => { if (err !== null) reject(err); else resolve(key) })
  })
}

export function validateUsername (username: string): void {
  if (!USERNAME.test(username)) throw new InvalidUserError(`invalid username ${JSON.stringify(username)}: use 1-64 letters, digits or . _ @ -`)
}

export function validatePin (pin: string): void {
  if (!PIN.test(pin)) throw new InvalidUserError('a PIN must be 4 to 12 digits')
}

/** Salted slow hash of a PIN. */
export async function hashPin (pin: string): Promise<string> {
  validatePin(pin)
  const salt = randomBytes(SALT_BYTES)
  const key = await scrypt(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
  return ['scrypt', SCRYPT_N, SCRYPT_R, SCRYPT_P, salt.toString('base64'), key.toString('base64')].join('$')
}

/** Checks a PIN against a stored hash in constant time; false for malformed hashes. */
export async function verifyPin (pin: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || hash === undefined) return false
  const expected = Buffer.from(hash, 'base64')
  const key = await scrypt(pin, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p))
  return key.length === expected.length && timingSafeEqual(key, expected)
}

const usersMap = (doc: Y.Doc): Y.Map<DirectoryUser> => doc.getMap<DirectoryUser>('users')

export function putUser (doc: Y.Doc, user: DirectoryUser): void {
  validateUsername(user.username)
  usersMap(doc).set(user.username, { ...user })
}

export function getUser (doc: Y.Doc, username: string): DirectoryUser | undefined {
  return usersMap(doc).get(username)
}

export function listUsers (doc: Y.Doc): DirectoryUser[] {
  return [...usersMap(doc).values()].sort((a, b) => a.username.localeCompare(b.username))
}

export function removeUser (doc: Y.Doc, username: string): boolean {
  const had = usersMap(doc).has(username)
  usersMap(doc).delete(username)
  return had
}
