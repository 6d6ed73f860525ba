// Central's enrollment decisions: one-time tokens, approvals, renewal, revocation; join strings.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { decodeCertificate, encodeCertificate, CERT_GRACE_MS, CERT_LIFETIME_MS } from '../crdt/license.ts'
import { EnrollmentAuthority, encodeJoinString, decodeJoinString, InvalidJoinStringError, type EnrollResponse } from '../node/enrollment.ts'
import { generateIdentity, verifyPeerSignature } from '../transports/identity.ts'
import { Membership } from '../crdt/membership.ts'
import { acctDoc, jobsDoc, licenseDoc, periodOf, siteId, type PeerId } from '../crdt/names.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'

const central = await generateIdentity()
const siteA = (await generateIdentity()).signer.id
const siteB = (await generateIdentity()).signer.id
let dir = ''
let store: DocStore
const clock = { now: Date.UTC(2026, 10, 22) }
let authority: EnrollmentAuthority

test.before.each(async () => {
  dir = await tempDir()
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), central.signer)
  clock.now = Date.UTC(2026, 10, 22)
  authority = new EnrollmentAuthority(store, central.signer, () => clock.now)
})
test.after.each(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

function issued (r: EnrollResponse): ReturnType<typeof decodeCertificate> {
  if (r.status !== 'issued') throw new Error(`expected a certificate, got ${JSON.stringify(r)}`)
  return decodeCertificate(new TextEncoder().encode(r.certificate))
}

test('a one-time token gets a certificate for its role and site, once, and not after expiry', async () => {
  const { secret } = await authority.createToken('site', 'branch-a', 3600_000)
  const cert = issued(await authority.handle(siteA, { secret }))
  assert.equal([cert.peer, cert.role, cert.site, cert.issuer], [siteA, 'site', 'branch-a', central.signer.id])
  const membership = new Membership({ self: siteB, authority: central.signer.id, role: 'site' }, verifyPeerSignature)
  assert.ok((await membership.admit(siteA, new TextEncoder().encode(JSON.stringify({})))).ok === false, 'garbage credentials admitted')
  assert.equal(await authority.handle(siteB, { secret }), { status: 'refused', reason: 'enrollment token already used' })
  const late = await authority.createToken('terminal', 'branch-a', 3600_000)
  clock.now += 2 * 3600_000
  assert.equal(await authority.handle(siteB, { secret: late.secret }), { status: 'refused', reason: 'enrollment token expired' })
  assert.equal(await authority.handle(siteB, { secret: 'not-a-token' }), { status: 'refused', reason: 'unknown enrollment token' })
})

test('without a token a peer waits until an admin approves it', async () => {
  assert.equal(await authority.handle(siteB, { role: 'site', site: 'branch-b' }), { status: 'pending' })
  assert.equal(await authority.handle(siteB, { role: 'site', site: 'branch-b' }), { status: 'pending' })
  await authority.approve(siteB)
  assert.equal(issued(await authority.handle(siteB, {})).site, 'branch-b')
  await rejects(authority.approve(siteA), Error)
  assert.equal(await authority.handle(siteA, { role: 'central', site: 'x' }), { status: 'refused', reason: 'role must be site, terminal or client, not central' })
})

test('a certificate is renewed past half its lifetime, and a revoked peer gets nothing', async () => {
  const { secret } = await authority.createToken('site', 'branch-a')
  const first = issued(await authority.handle(siteA, { secret }))
  clock.now += CERT_LIFETIME_MS / 4
  assert.equal(issued(await authority.handle(siteA, {})).expiresAt, first.expiresAt, 'renewed too early')
  clock.now += CERT_LIFETIME_MS / 4
  assert.ok(EnrollmentAuthority.due(first, clock.now))
  const renewed = issued(await authority.handle(siteA, {}))
  assert.ok(renewed.expiresAt > first.expiresAt)
  await authority.revoke(siteA, 'laptop stolen')
  assert.equal(await authority.handle(siteA, {}), { status: 'refused', reason: 'this peer\'s certificate was revoked' })
  const membership = new Membership({ self: siteB, authority: central.signer.id, role: 'site' }, verifyPeerSignature)
  membership.useLicense(await store.open(licenseDoc()))
  assert.ok(membership.revoked(siteA))
})

test('a site cut off from central past its certificate\'s grace still writes its own jobs and accounting (it prints for its own users), while a peer that checks its certificate no longer admits it', async () => {
  const { secret } = await authority.createToken('site', 'branch-a', 3600_000)
  const cert = issued(await authority.handle(siteA, { secret }))
  const license = await store.open(licenseDoc())
  // far past the certificate's lifetime and grace: central was unreachable all along
  const later = () => cert.expiresAt + CERT_GRACE_MS + 30 * 24 * 3600_000
  const own = new Membership({ self: siteA, authority: central.signer.id, certificate: cert, role: 'site', site: siteId('branch-a'), now: later }, verifyPeerSignature)
  own.useLicense(license)
  const period = periodOf(later())
  assert.ok(own.canWrite(siteA, jobsDoc(siteA as PeerId, period)), 'its own jobs')
  assert.ok(own.canWrite(siteA, acctDoc(siteA as PeerId, period)), 'its own accounting')
  const other = new Membership({ self: siteB, authority: central.signer.id, role: 'site', now: later }, verifyPeerSignature)
  other.useLicense(license)
  assert.not.ok((await other.admit(siteA, encodeCertificate(cert))).ok, 'an expired certificate admitted')
  assert.not.ok(other.canWrite(siteA, jobsDoc(siteA as PeerId, period)))
})

test('join strings round-trip and bad ones are refused clearly', () => {
  const j = { central: central.signer.id, addrs: ['/ip4/127.0.0.1/tcp/1'], networkKey: '/key/swarm/psk/1.0.0/\n/base16/\nab', secret: 's' }
  assert.equal(decodeJoinString(encodeJoinString(j)), j)
  assert.throws(() => decodeJoinString('hello'), (e: unknown) => e instanceof InvalidJoinStringError)
  assert.throws(() => decodeJoinString('pmjoin1.!!!'), (e: unknown) => e instanceof InvalidJoinStringError)
})

test.run()
