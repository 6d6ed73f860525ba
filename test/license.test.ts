// The product license: the signed file (sign, verify, tampering, another key, bad format), its
// states on an injected clock, the enrolment limits and expiry at central's enrollment
// authority (renewals never refused), the users limit, and central's record, view and warnings.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc, licenseDoc } from '../crdt/names.ts'
import { readProductLicense, decodeCertificate, CERT_LIFETIME_MS } from '../crdt/license.ts'
import { putUser } from '../crdt/directory.ts'
import {
  generateVendorKeyPair, issueLicense, verifyLicense, licenseState, assertUserCapacity, loadCentralLicense, InvalidLicenseError, LicenseLimitError,
  LICENSE_FILE, type LicenseLimits
} from '../node/license-file.ts'
import { CentralLicense } from '../node/central-license.ts'
import { importUsersCsv } from '../node/users.ts'
import { EnrollmentAuthority, type EnrollResponse } from '../node/enrollment.ts'
import { generateIdentity } from '../transports/identity.ts'
import { tempDir } from '../simulations/node-process.ts'
import { rejects } from './helpers/assert.ts'
import { DirectoryAdmin } from '../node/directory-admin.ts'

const DAY = 24 * 3600_000
const vendor = generateVendorKeyPair()
const vendorPrivate = createPrivateKey(vendor.privateKey)
const vendorPublic = createPublicKey(vendor.publicKey)
const LIMITS: LicenseLimits = { sites: 2, terminals: 1, clients: 1, users: 3 }
const NOW = Date.UTC(2026, 10, 22)

function licenseText (limits: Partial<LicenseLimits> = {}, expiresAt = NOW + 365 * DAY): string {
  return issueLicense({ organisation: 'Acme Ltd', licenseId: 'lic-test', limits: { ...LIMITS, ...limits }, expiresAt, issuedAt: NOW - DAY }, vendorPrivate)
}

function problem (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.instance(err, InvalidLicenseError)
    return (err as Error).message
  }
  assert.unreachable('expected an InvalidLicenseError')
  return ''
}

test('a license signed with the vendor key verifies and says what was issued', () => {
  const license = verifyLicense(licenseText(), vendorPublic)
  assert.equal([license.organisation, license.licenseId, license.limits, license.expiresAt], ['Acme Ltd', 'lic-test', LIMITS, new Date(NOW + 365 * DAY).toISOString()])
  // re-indenting the file keeps it valid: the signature covers the fields, not the layout
  assert.equal(verifyLicense(JSON.stringify(JSON.parse(licenseText())), vendorPublic), license, 'compact form')
})

test('a license with any field altered after signing is refused as altered', () => {
  for (const alter of [
    (l: Record<string, any>) => { l.limits.sites = 200 },
    (l: Record<string, any>) => { l.expiresAt = new Date(NOW + 3650 * DAY).toISOString() },
    (l: Record<string, any>) => { l.organisation = 'Other Corp' }
  ]) {
    const file = JSON.parse(licenseText()) as { license: Record<string, any> }
    alter(file.license)
    assert.match(problem(() => verifyLicense(JSON.stringify(file), vendorPublic)), /signature does not match the vendor key/)
  }
})

test('a license signed by another vendor key is refused', () => {
  const other = generateVendorKeyPair()
  const forged = issueLicense({ organisation: 'Acme Ltd', limits: LIMITS, expiresAt: NOW + DAY }, createPrivateKey(other.privateKey))
  assert.match(problem(() => verifyLicense(forged, vendorPublic)), /signature does not match the vendor key \(signed by another key/)
})

test('malformed files and other formats are refused naming the problem', () => {
  assert.match(problem(() => verifyLicense('not json {', vendorPublic)), /invalid license: not JSON/)
  assert.match(problem(() => verifyLicense('[]', vendorPublic)), /expected \{"license": \{…\}, "signature": "…"\}/)
  const file = JSON.parse(licenseText()) as { license: Record<string, unknown>, signature: string }
  assert.match(problem(() => verifyLicense(JSON.stringify({ ...file, license: { ...file.license, format: 'printmesh-license/9' } }), vendorPublic)), /wrong format "printmesh-license\/9"/)
  assert.match(problem(() => verifyLicense(JSON.stringify({ ...file, license: { ...file.license, limits: { sites: 1 } } }), vendorPublic)), /"limits.terminals" must be a whole number/)
  assert.match(problem(() => verifyLicense(JSON.stringify({ ...file, license: { ...file.license, expiresAt: 'soon' } }), vendorPublic)), /"expiresAt" must be an ISO 8601 time/)
})

test('the state goes valid, expiring 30 days ahead, expired in a 30-day grace, then expired', () => {
  const l = { expiresAt: NOW }
  assert.equal(licenseState(undefined, NOW), 'unlicensed')
  assert.equal(licenseState(l, NOW - 31 * DAY), 'valid')
  assert.equal(licenseState(l, NOW - 29 * DAY), 'expiring')
  assert.equal(licenseState(l, NOW + DAY), 'expired-in-grace')
  assert.equal(licenseState(l, NOW + 31 * DAY), 'expired')
})

// ---- central: enrolment limits, renewal, users, record, warnings ----

const central = await generateIdentity()
let dir = ''
let store: DocStore
const clock = { now: NOW }
let lines: Array<Record<string, unknown>> = []
const logger = pino({ level: 'info' }, new Writable({ write (chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } }))

async function centralWith (text: string | undefined): Promise<{ license: CentralLicense, authority: EnrollmentAuthority }> {
  const license = new CentralLicense({ store, dataDir: dir, vendorKey: vendorPublic, license: text !== undefined ? verifyLicense(text, vendorPublic) : undefined, clock: { now: () => clock.now }, logger })
  await license.start()
  return { license, authority: new EnrollmentAuthority(store, central.signer, () => clock.now, license.policy) }
}
const peer = async (): Promise<string> => (await generateIdentity()).signer.id
const refusal = (r: EnrollResponse): string => r.status === 'refused' ? r.reason : `not refused: ${r.status}`

test.before.each(async () => {
  dir = await tempDir('printmesh-license-')
  store = new DocStore(await LevelPersistence.open(join(dir, 'db')), central.signer)
  clock.now = NOW
  lines = []
})
test.after.each(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

test('enrolment past the licensed sites, terminals or clients is refused naming the limit; more peers of an enrolled site are not new sites', async () => {
  const { authority, license } = await centralWith(licenseText())
  const join = async (role: 'site' | 'terminal' | 'client', site: string, who?: string): Promise<EnrollResponse> =>
    await authority.handle(who ?? await peer(), { secret: (await authority.createToken(role, site)).secret })
  assert.is((await join('site', 'branch-a')).status, 'issued')
  assert.is((await join('site', 'branch-b')).status, 'issued')
  assert.is(refusal(await join('site', 'branch-c')), 'license allows 2 sites; 2 are enrolled')
  assert.is((await join('site', 'branch-a')).status, 'issued', 'a second server of an enrolled site')
  assert.is((await join('terminal', 'branch-a')).status, 'issued')
  assert.is(refusal(await join('terminal', 'branch-b')), 'license allows 1 terminal; 1 is enrolled')
  assert.is((await join('client', 'branch-a')).status, 'issued')
  assert.is(refusal(await join('client', 'branch-a')), 'license allows 1 client; 1 is enrolled')
  // approval-based joins are refused too, when asking and when an admin approves
  assert.is(refusal(await authority.handle(await peer(), { role: 'site', site: 'branch-d' })), 'license allows 2 sites; 2 are enrolled')
  assert.equal(license.view().usage, { sites: 2, terminals: 1, clients: 1, users: 0 })
})

test('two sites joining at once for the last licensed place: one is enrolled, the other refused', async () => {
  const { authority, license } = await centralWith(licenseText({ sites: 1 }))
  const tokens = await Promise.all(['branch-a', 'branch-b'].map(async (site) => (await authority.createToken('site', site)).secret))
  const answers = await Promise.all(tokens.map(async (secret) => await authority.handle(await peer(), { secret })))
  assert.equal(answers.map((a) => a.status).sort(), ['issued', 'refused'])
  assert.is(license.view().usage.sites, 1)
})

test('a refused token stays usable: once a larger license is installed the same join string enrols', async () => {
  const { authority, license } = await centralWith(licenseText({ sites: 0 }))
  const { secret } = await authority.createToken('site', 'branch-a')
  const who = await peer()
  assert.is(refusal(await authority.handle(who, { secret })), 'license allows 0 sites; 0 are enrolled')
  await license.install(licenseText({ sites: 1 }))
  assert.is((await authority.handle(who, { secret })).status, 'issued')
})

test('an approved request past a limit is refused to the admin with the limit', async () => {
  const { authority, license } = await centralWith(undefined)
  const asking = await peer()
  assert.is((await authority.handle(asking, { role: 'terminal', site: 'branch-a' })).status, 'pending')
  await license.install(licenseText({ terminals: 0 }))
  const err = await rejects(authority.approve(asking), Error)
  assert.is(err.message, 'license allows 0 terminals; 0 are enrolled')
})

test('after expiry and a 30-day grace new enrolments are refused naming the date, renewals of enrolled peers are not', async () => {
  const { authority, license } = await centralWith(licenseText({}, NOW + 10 * DAY))
  const member = await peer()
  const first = await authority.handle(member, { secret: (await authority.createToken('site', 'branch-a')).secret })
  assert.is(first.status, 'issued')
  clock.now = NOW + 20 * DAY // expired 10 days ago: in grace, still enrolling
  assert.is(license.view().state, 'expired-in-grace')
  assert.is((await authority.handle(await peer(), { secret: (await authority.createToken('site', 'branch-b')).secret })).status, 'issued')
  clock.now = NOW + CERT_LIFETIME_MS / 2 + DAY // past the grace, and past half the member's certificate lifetime: renewal due
  assert.is(license.view().state, 'expired')
  assert.match(refusal(await authority.handle(await peer(), { secret: (await authority.createToken('site', 'branch-c')).secret })), /expired on 2026-12-02/)
  const renewed = await authority.handle(member, {})
  assert.is(renewed.status, 'issued', 'renewal refused')
  const cert = decodeCertificate(new TextEncoder().encode((renewed as { certificate: string }).certificate))
  assert.is(cert.issuedAt, clock.now, 'a new certificate, not the old one')
})

test('without a license there are no limits, and the logs and view say it is an unlicensed evaluation', async () => {
  const { authority, license } = await centralWith(undefined)
  for (const site of ['a', 'b', 'c', 'd']) assert.is((await authority.handle(await peer(), { secret: (await authority.createToken('site', site)).secret })).status, 'issued')
  assert.is(license.view().state, 'unlicensed')
  assert.ok(lines.some((l) => l.level === 40 && /unlicensed evaluation/.test(String(l.msg))), 'no warning logged')
  await assertUserCapacity(store, ['u1', 'u2', 'u3', 'u4', 'u5'])
})

test('central records the license\'s fields in the license document, and nothing of the signature', async () => {
  const { license } = await centralWith(licenseText())
  const recorded = readProductLicense(await store.open(licenseDoc()))
  assert.equal(recorded, { organisation: 'Acme Ltd', licenseId: 'lic-test', limits: LIMITS, issuedAt: NOW - DAY, expiresAt: NOW + 365 * DAY })
  const doc = await store.open(licenseDoc())
  let updates = 0
  const counted = (): void => { updates++ }
  doc.on('update', counted)
  license.stop()
  await license.start() // a restart with the same license writes nothing new
  doc.off('update', counted)
  assert.is(updates, 0)
  assert.not.ok(JSON.stringify(doc.toJSON()).includes(JSON.parse(licenseText()).signature as string), 'signature recorded')
})

test('from 30 days before expiry the logs warn and the view says expiring; the gauges count down', async () => {
  const { license } = await centralWith(licenseText({}, NOW + 40 * DAY))
  assert.ok(lines.every((l) => l.level !== 40), 'warned 40 days ahead')
  clock.now = NOW + 15 * DAY
  license.warn()
  const warning = lines.find((l) => l.level === 40)
  assert.match(String(warning?.msg), /expires on 2027-01-01 \(in 25 days\)/)
  assert.is(license.view().state, 'expiring')
  assert.is(license.metrics().expirySeconds, 25 * 24 * 3600)
})

test('users beyond the licensed count are refused; updating users already there is not', async () => {
  await centralWith(licenseText({ users: 2 }))
  await store.transact(directoryDoc(), { kind: 'admin', user: 'admin' }, (d) => {
    putUser(d, { username: 'alice', fullName: 'Alice', pinHash: 'x', updatedAt: NOW })
    putUser(d, { username: 'bob', fullName: 'Bob', pinHash: 'x', updatedAt: NOW, disabled: true })
  })
  await assertUserCapacity(store, ['alice', 'carol']) // bob is disabled: 1 active + carol
  const err = await rejects(assertUserCapacity(store, ['alice', 'carol', 'dave']), LicenseLimitError)
  assert.is(err.message, 'license allows 2 users; 1 is in the directory, and this would add 2')
})

test('a CSV import that would pass the users limit imports nobody and names the limit; re-importing the same users does not count them twice', async () => {
  await centralWith(licenseText({ users: 2 }))
  const err = await rejects(importUsersCsv(store, 'alice,Alice,1234\nbob,Bob,1234\ncarol,Carol,1234\n', undefined, 'admin'), LicenseLimitError)
  assert.is(err.message, 'license allows 2 users; 0 are in the directory, and this would add 3')
  assert.is((await importUsersCsv(store, 'alice,Alice,1234\nbob,Bob,1234\n', undefined, 'admin')).imported, 2)
  assert.is((await importUsersCsv(store, 'alice,Alice Smith,1234\nbob,Bob,1234\n', undefined, 'admin')).imported, 1)
})

test('the users limit holds for users added or enabled by an admin (the users API): the one past it is refused naming the limit', async () => {
  await centralWith(licenseText({ users: 2 }))
  const directory = new DirectoryAdmin({ store, cardKey: new Uint8Array(32), authority: () => true })
  for (const u of ['erin', 'frank']) await directory.add({ username: u, fullName: u, pin: '1234' }, 'admin')
  const err = await rejects(directory.add({ username: 'gina', fullName: 'Gina', pin: '1234' }, 'admin'), LicenseLimitError)
  assert.match(err.message, 'license allows 2 users')
  await directory.edit('frank', { disabled: true }, 'admin')
  await directory.add({ username: 'gina', fullName: 'Gina', pin: '1234' }, 'admin') // frank's place
  await rejects(directory.edit('frank', { disabled: false }, 'admin'), LicenseLimitError)
  assert.is((await directory.get('frank')).disabled, true, 'still disabled')
})

test('central keeps an installed license in its data folder for the next start, and refuses a bad one there at start', async () => {
  const file = join(dir, 'given.json')
  await writeFile(file, licenseText())
  assert.is((await loadCentralLicense(dir, vendorPublic, file))?.licenseId, 'lic-test')
  assert.is((await loadCentralLicense(dir, vendorPublic))?.licenseId, 'lic-test', 'not kept')
  await writeFile(join(dir, LICENSE_FILE), '{"license": {"format": "printmesh-license/1"}, "signature": ""}')
  const err = await rejects(loadCentralLicense(dir, vendorPublic), InvalidLicenseError)
  assert.match(err.message, new RegExp(`${LICENSE_FILE}: "organisation" must be`))
})

test.run()
