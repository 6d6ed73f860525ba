// Central's LDAP synchronisation against a real OpenLDAP (Debian's slapd, started by the test
// on loopback with its own configuration): users, groups, cards and home sites imported, entries
// it cannot take reported, a dry run, a refused bind, reports kept across a restart, and the
// scheduled sync carrying an LDAP change and a removal to a site joined to central.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { directoryLdif, groupsLdif, GROUPS_DN, LDAP_SUFFIX, PEOPLE_DN, personLdif, startSlapd, type LdapPerson, type Slapd } from '../simulations/slapd.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { LdapSync, planSync, readLdap, type SyncReport } from '../node/ldap-sync.ts'
import { parseLdapConfig, readCa } from '../node/ldap-config.ts'
import { DocStore } from '../crdt/store.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { directoryDoc, licenseDoc } from '../crdt/names.ts'
import { recordProductLicense } from '../crdt/license.ts'
import { cardIndex, listUsers, type DirectoryUser } from '../crdt/directory.ts'
import { generateIdentity } from '../transports/identity.ts'
import { pino } from 'pino'

/** Syncs and mesh replication in this file finish within seconds; this bounds a stuck one. */
const WAIT_MS = 30_000

const PEOPLE: LdapPerson[] = [
  { uid: 'alice', cn: 'Alice Liddell', mail: 'alice@example.org', employeeNumber: 'a1b2c3d4', departmentNumber: 'site-a' },
  { uid: 'bob', cn: 'Bob Builder', mail: 'bob@example.org', departmentNumber: 'site-a', employeeType: '4321' },
  { uid: 'carol', cn: 'Carol Danvers', employeeType: '8642' },
  { uid: 'dave smith', cn: 'Dave Smith' }, // a space: not a printmesh username
  { uid: 'erin', cn: 'Erin from LDAP' }, // erin is already a user not from LDAP
  { uid: 'frank', cn: 'Frank Castle', employeeNumber: 'A1B2C3D4' } // alice's card (card numbers ignore case)
]
const GROUPS = [{ cn: 'staff', members: ['alice', 'bob'] }, { cn: 'finance', members: ['carol'] }]

let slapd: Slapd
let central: SiteProcess | undefined
let site: SiteProcess | undefined
let work = ''
let centralData = ''
let passwordFile = ''

interface UserView { username: string, fullName: string, email?: string, groups: string[], homeSite?: string, delegates: string[], disabled: boolean, source?: string, cards: Array<{ id: string }>, updatedAt: number }
interface Status { configured: boolean, config: Record<string, unknown>, running: boolean, nextRunAt?: number, reports: SyncReport[] }

async function writeConfig (name: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const file = join(work, name)
  await writeFile(file, JSON.stringify({
    url: slapd.url,
    bindDN: slapd.adminDN,
    bindPasswordFile: passwordFile,
    baseDN: PEOPLE_DN,
    userFilter: '(objectClass=inetOrgPerson)',
    attributes: { username: 'uid', fullName: 'cn', email: 'mail', card: 'employeeNumber', homeSite: 'departmentNumber', pin: 'employeeType' },
    groups: { from: 'entries', baseDN: GROUPS_DN, filter: '(objectClass=groupOfNames)', memberAttribute: 'member', nameAttribute: 'cn' },
    pageSize: 2, // several pages even for this small directory
    intervalMinutes: 60,
    ...overrides
  }, null, 2))
  return file
}

const status = async (node: SiteProcess): Promise<Status> => await admin<Status>(node, '/api/ldap/status')
const user = async (node: SiteProcess, name: string): Promise<UserView> => (await admin<{ user: UserView }>(node, `/api/users/${encodeURIComponent(name)}`)).user
const syncNow = async (node: SiteProcess, query = ''): Promise<Response> => await fetch(`${node.httpUrl}/api/ldap/sync${query}`, { method: 'POST', headers: { authorization: `Bearer ${node.adminToken}` } })
const login = async (node: SiteProcess, username: string, pin: string): Promise<number> => (await fetch(`${node.httpUrl}/api/login`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin })
})).status

/** The newest kept report once one matches `check` (polls the status API; syncs run on their own schedule). */
async function reportWhere (node: SiteProcess, check: (r: SyncReport) => boolean, what: string): Promise<SyncReport> {
  let found: SyncReport | undefined
  await until(async () => {
    found = (await status(node)).reports.find(check)
    return found !== undefined
  }, WAIT_MS, what)
  return found as SyncReport
}

test.before(async () => {
  work = await tempDir('printmesh-ldap-test-')
  passwordFile = join(work, 'bind-password')
  slapd = await startSlapd(directoryLdif(PEOPLE), { online: groupsLdif(GROUPS), tls: true })
  await writeFile(passwordFile, `${slapd.adminPassword}\n`)
  centralData = join(work, 'central')
  // erin is a user of central's own (CSV) before LDAP is configured
  await writeFile(join(work, 'erin.csv'), 'erin,Erin Csv,2468\n')
  const imported = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'users', 'import', join(work, 'erin.csv'), '--data', centralData], { encoding: 'utf8' })
  if (imported.status !== 0) throw new Error(`users import: ${imported.stderr}`)
  central = await startCentral({ dataDir: centralData, args: ['--ldap-config', await writeConfig('ldap.json')] })
})

test.after(async () => {
  await site?.stop()
  await central?.stop()
  await slapd?.stop()
  await rm(work, { recursive: true, force: true })
})

test('the first sync imports LDAP users with their exact names, emails, cards, home sites and groups, and reports the entries it cannot take', async () => {
  const c = central as SiteProcess
  const first = await reportWhere(c, (r) => r.result === 'ok', 'the first sync at start')
  assert.equal({ trigger: first.trigger, dryRun: first.dryRun, entries: first.entries, added: [...first.added].sort(), disabled: first.disabled, changed: first.changed },
    { trigger: 'schedule', dryRun: false, entries: 6, added: ['alice', 'bob', 'carol'], disabled: [], changed: [] })
  const errors = Object.fromEntries(first.errors.map((e) => [e.username, e.message]))
  assert.equal(Object.keys(errors).sort(), ['dave smith', 'erin', 'frank'])
  assert.match(errors['dave smith'], /invalid username/)
  assert.match(errors.erin, /not from LDAP/)
  assert.match(errors.frank, /same card number as alice/)
  assert.equal(first.counts, { added: 3, changed: 0, disabled: 0, unchanged: 0, errors: 3 })

  const alice = await user(c, 'alice')
  assert.equal({ ...alice, cards: alice.cards.length }, {
    username: 'alice', fullName: 'Alice Liddell', email: 'alice@example.org', groups: ['staff'], homeSite: 'site-a',
    delegates: [], disabled: false, source: 'ldap', cards: 1, updatedAt: alice.updatedAt
  })
  const bob = await user(c, 'bob')
  assert.equal({ fullName: bob.fullName, email: bob.email, groups: bob.groups, homeSite: bob.homeSite, cards: bob.cards, source: bob.source }, { fullName: 'Bob Builder', email: 'bob@example.org', groups: ['staff'], homeSite: 'site-a', cards: [], source: 'ldap' })
  const carol = await user(c, 'carol')
  assert.equal({ groups: carol.groups, email: carol.email, homeSite: carol.homeSite }, { groups: ['finance'], email: undefined, homeSite: undefined })
  // a user not from LDAP is never overwritten by it
  const erin = await user(c, 'erin')
  assert.is(erin.fullName, 'Erin Csv')
  assert.is.not(erin.source, 'ldap')
  const missing = await fetch(`${c.httpUrl}/api/users/frank`, { headers: { authorization: `Bearer ${c.adminToken}` } })
  assert.is(missing.status, 404, 'an entry in error is not added')
})

test('the status shows the configuration without the password file, the next run, and is for admins only', async () => {
  const c = central as SiteProcess
  const s = await status(c)
  assert.is(s.configured, true)
  assert.is(s.config.url, slapd.url)
  assert.is(s.config.bindDN, slapd.adminDN)
  assert.not.ok('bindPasswordFile' in s.config, 'no secret location in the status')
  assert.not.ok(JSON.stringify(s).includes(slapd.adminPassword), 'no password in the status')
  assert.ok(typeof s.nextRunAt === 'number' && s.nextRunAt > Date.now(), 'the next scheduled run is ahead')
  assert.is((await fetch(`${c.httpUrl}/api/ldap/status`)).status, 401)
  assert.is((await fetch(`${c.httpUrl}/api/ldap/sync`, { method: 'POST' })).status, 401)
  assert.not.ok(c.logs().some((l) => l.includes(slapd.adminPassword)), 'the bind password is never logged')
})

test('a dry run (API and printmesh ldap sync --dry-run) reports an LDAP change without writing it', async () => {
  const c = central as SiteProcess
  await slapd.tool('ldapmodify', [], `dn: uid=alice,${PEOPLE_DN}\nchangetype: modify\nreplace: cn\ncn: Alice Pleasance Liddell\n`)
  const before = (await status(c)).reports.length
  const res = await syncNow(c, '?dryRun=1')
  assert.is(res.status, 200)
  const { report } = await res.json() as { report: SyncReport }
  assert.equal({ dryRun: report.dryRun, changed: report.changed, added: report.added, disabled: report.disabled }, { dryRun: true, changed: [{ username: 'alice', fields: ['fullName'] }], added: [], disabled: [] })
  assert.is((await user(c, 'alice')).fullName, 'Alice Liddell', 'nothing written')
  assert.is((await status(c)).reports.length, before, 'a dry run is not kept as a sync')
  // the same from a shell
  const cli = (...args: string[]): string => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'ldap', ...args, '--url', c.httpUrl], { encoding: 'utf8', env: { ...process.env, PRINTMESH_ADMIN_TOKEN: c.adminToken } })
    if (r.status !== 0) throw new Error(`printmesh ldap ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const dry = cli('sync', '--dry-run')
  assert.match(dry, /dry run by admin: 0 added, 1 changed, 0 disabled, 2 unchanged, 3 left out \(nothing was changed\)/)
  assert.match(dry, /^ {2}changed alice: fullName$/m)
  assert.match(dry, /^ {2}left out uid=dave smith,ou=people,dc=example,dc=org: invalid username/m)
  assert.match(cli('status'), /schedule: every 60 min; next /)
  assert.is((await user(c, 'alice')).fullName, 'Alice Liddell', 'nothing written from the shell either')
})

test('a refused bind records a failed sync and changes nothing', async () => {
  const c = central as SiteProcess
  await writeFile(passwordFile, 'wrong-password\n')
  try {
    const res = await syncNow(c)
    assert.is(res.status, 503)
    assert.match((await res.json() as { error: string }).error, /LDAP sync failed, nothing was changed: cannot bind as cn=admin,dc=example,dc=org/)
    const [last] = (await status(c)).reports
    assert.equal({ result: last.result, trigger: last.trigger, counts: last.counts }, { result: 'failed', trigger: 'manual', counts: { added: 0, changed: 0, disabled: 0, unchanged: 0, errors: 0 } })
    assert.match(last.error ?? '', /invalid credentials \(LDAP result 49\)/)
    assert.is((await user(c, 'alice')).fullName, 'Alice Liddell', 'the directory is unchanged')
    const metrics = await (await fetch(`${c.httpUrl}/metrics`)).text()
    assert.match(metrics, /printmesh_ldap_sync_total\{result="failed"\} 1/)
    assert.match(metrics, /printmesh_ldap_sync_total\{result="ok"\} 1/)
    assert.match(metrics, /printmesh_ldap_sync_last_users\{change="added"\} 3/, 'the last sync that succeeded')
  } finally {
    await writeFile(passwordFile, `${slapd.adminPassword}\n`)
  }
})

test('a configuration with a bad field stops central at start with an error naming the field', async () => {
  const file = await writeConfig('bad.json', { pageSize: 0 })
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'central', '--data', join(work, 'never-started'), '--http-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--ldap-config', file], { encoding: 'utf8' })
  assert.is(r.status, 1)
  assert.match(r.stderr, /LDAP config .*bad\.json: pageSize must be an integer from 1 to 10000/)
  // the other checks, without a process each
  const bad = (config: Record<string, unknown>): string => {
    try {
      parseLdapConfig({ url: slapd.url, bindDN: 'cn=x', bindPasswordFile: passwordFile, baseDN: PEOPLE_DN, ...config })
    } catch (err) {
      assert.is((err as Error).name, 'LdapConfigError')
      return (err as Error).message
    }
    return assert.unreachable('accepted') as never
  }
  assert.match(bad({ attributes: { username: 'uid', fullname: 'cn' } }), /attributes\.fullname is not a known field/)
  assert.match(bad({ url: 'http://ldap.example.org' }), /url must be ldap:\/\/host\[:port\] or ldaps:\/\/host\[:port\]/)
  assert.match(bad({ url: 'ldaps://x', startTls: true }), /startTls cannot be used with ldaps:\/\//)
  assert.match(bad({ groups: { from: 'ad' } }), /groups\.from must be "none", "memberOf" or "entries"/)
  assert.match(bad({ userFilter: 'uid=*' }), /userFilter must be an LDAP filter in parentheses/)
  assert.match(bad({ bindDN: undefined }), /bindDN is required/)
})

test('after a restart the reports are still there, and scheduled syncs carry an LDAP change and a removal to a site: the removed user is disabled there', async () => {
  await (central as SiteProcess).stop()
  const kept = await startCentral({ dataDir: centralData, args: ['--ldap-config', await writeConfig('fast.json', { intervalMinutes: 0.02 })] })
  central = kept
  const failed = (await status(kept)).reports.find((r) => r.result === 'failed')
  assert.ok(failed !== undefined, 'the failed sync before the restart is still reported')
  // the change made before the restart (the dry run's) is applied by the first sync
  await until(async () => (await user(kept, 'alice')).fullName === 'Alice Pleasance Liddell', WAIT_MS, 'pending change applied')

  const token = (await admin<{ joinString: string }>(kept, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-a' } })).joinString
  site = await startSite({ args: ['--site', 'site-a', '--join', token] })
  const s = site
  await until(async () => (await fetch(`${s.httpUrl}/api/users/bob`, { headers: { authorization: `Bearer ${s.adminToken}` } })).ok, WAIT_MS, 'directory at the site')
  assert.is(await login(s, 'bob', '4321'), 200, 'bob logs in with the PIN LDAP seeded')
  assert.is(await login(s, 'alice', '0000'), 401, 'alice has no PIN: no PIN logs her in')

  const changedAt = Date.now()
  await slapd.tool('ldapmodify', [], `dn: uid=bob,${PEOPLE_DN}\nchangetype: modify\nreplace: cn\ncn: Robert Builder\n`)
  await slapd.tool('ldapdelete', [`uid=carol,${PEOPLE_DN}`])
  const after = await reportWhere(kept, (r) => r.result === 'ok' && r.startedAt >= changedAt && r.disabled.includes('carol'), 'a scheduled sync after the change')
  assert.is(after.trigger, 'schedule')
  assert.equal(after.changed, [{ username: 'bob', fields: ['fullName'] }])
  assert.equal(after.disabled, ['carol'])
  await until(async () => (await user(s, 'bob')).fullName === 'Robert Builder' && (await user(s, 'carol')).disabled, WAIT_MS, 'the change and the removal at the site')
  assert.is((await user(s, 'carol')).source, 'ldap', 'disabled, not deleted')
  assert.is(await login(s, 'carol', '8642'), 401, 'a disabled user cannot log in at the site')

  // carol comes back: enabled again, her PIN kept
  const backAt = Date.now()
  await slapd.tool('ldapadd', [], personLdif(PEOPLE[2]))
  const back = await reportWhere(kept, (r) => r.result === 'ok' && r.startedAt >= backAt && r.changed.some((c) => c.username === 'carol'), 'carol back')
  assert.equal(back.changed.find((c) => c.username === 'carol')?.fields, ['enabled'])
  await until(async () => !(await user(s, 'carol')).disabled, WAIT_MS, 'carol enabled at the site')
  assert.is(await login(s, 'carol', '8642'), 200)
})

test('groups can come from memberOf (the memberof overlay) as well as from group entries', async () => {
  const config = parseLdapConfig({ url: slapd.url, bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: LDAP_SUFFIX, groups: { from: 'memberOf' }, pageSize: 1 })
  const users = await readLdap(config, slapd.adminPassword, undefined)
  const groupsOf = Object.fromEntries(users.map((u) => [u.username, u.groups]))
  assert.equal(groupsOf.alice, ['staff'])
  assert.equal(groupsOf.bob, ['staff'])
  assert.equal(groupsOf.frank, [])
})

test('ldaps:// and StartTLS work with the CA of caFile, and a server certificate from an unknown CA is refused with a clear error', async () => {
  const base = { bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: PEOPLE_DN, caFile: slapd.caFile }
  for (const config of [parseLdapConfig({ ...base, url: slapd.ldapsUrl }), parseLdapConfig({ ...base, url: slapd.url, startTls: true })]) {
    const users = await readLdap(config, slapd.adminPassword, await readCa(config))
    assert.ok(users.some((u) => u.username === 'alice'), `${config.url}${config.startTls ? ' with StartTLS' : ''}: alice read`)
  }
  const untrusted = parseLdapConfig({ ...base, caFile: undefined, url: slapd.ldapsUrl })
  try {
    await readLdap(untrusted, slapd.adminPassword, undefined)
    assert.unreachable('a certificate from an unknown CA must be refused')
  } catch (err) {
    assert.is((err as Error).name, 'LdapSyncError')
    assert.match((err as Error).message, new RegExp(`cannot bind as cn=admin,dc=example,dc=org at ${slapd.ldapsUrl ?? ''}: .*certificate`))
  }
})

const CARD_KEY = new Uint8Array(32).fill(7)
const planConfig = (): ReturnType<typeof parseLdapConfig> => parseLdapConfig({
  url: 'ldap://127.0.0.1', bindDN: 'cn=x', bindPasswordFile: '/dev/null', baseDN: 'dc=x', attributes: { username: 'uid', fullName: 'cn', card: 'employeeNumber' }
})

test('when LDAP changes a user\'s card, only the card LDAP gave is replaced: a card and a PIN an admin set are kept', () => {
  const ldapCard = { index: cardIndex('AAAA1111', CARD_KEY), hash: 'h1' }
  const adminCard = { index: cardIndex('BBBB2222', CARD_KEY), hash: 'h2' }
  const directory: DirectoryUser[] = [{ username: 'alice', fullName: 'Alice', pinHash: 'scrypt$admin-set', cards: [ldapCard, adminCard], source: 'ldap', updatedAt: 1 }]
  const { plan, writes, state } = planSync(planConfig(), directory, [{ dn: 'uid=alice', username: 'alice', fullName: 'Alice', card: 'cccc3333' }], CARD_KEY, { cards: { alice: ldapCard.index }, disabledBySync: [] }, 2)
  assert.equal(plan.changed, [{ username: 'alice', fields: ['card'] }])
  assert.equal(writes[0].user.cards, [adminCard], 'the old LDAP card is gone, the admin\'s stays')
  assert.is(writes[0].newCard, 'CCCC3333', 'the new LDAP card is added (hashed when applied)')
  assert.is(writes[0].user.pinHash, 'scrypt$admin-set')
  assert.is(state.cards.alice, cardIndex('CCCC3333', CARD_KEY))
})

test('a user an admin disabled stays disabled while LDAP lists them; one the sync disabled is enabled again when back', () => {
  const directory: DirectoryUser[] = [
    { username: 'alice', fullName: 'Alice', pinHash: '', source: 'ldap', disabled: true, updatedAt: 1 },
    { username: 'bob', fullName: 'Bob', pinHash: '', source: 'ldap', disabled: true, updatedAt: 1 }
  ]
  const entries = [{ dn: 'uid=alice', username: 'alice', fullName: 'Alice' }, { dn: 'uid=bob', username: 'bob', fullName: 'Bob' }]
  const { plan, writes } = planSync(planConfig(), directory, entries, CARD_KEY, { cards: {}, disabledBySync: ['bob'] }, 2)
  assert.equal(plan.changed, [{ username: 'bob', fields: ['enabled'] }])
  assert.is(plan.unchanged, 1)
  assert.is(writes[0].user.disabled, undefined)
})

test('a sync that finds no users at all while LDAP users are active, or cannot reach LDAP, disables nobody and is reported as failed', async () => {
  const dir = await tempDir('printmesh-ldap-store-')
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
  const logger = pino({ level: 'silent' })
  try {
    const good = parseLdapConfig({ url: slapd.url, bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: PEOPLE_DN })
    const first = await new LdapSync({ config: good, store, dataDir: dir, cardKey: CARD_KEY, logger }).sync()
    assert.is(first.result, 'ok')
    const before = listUsers(await store.open(directoryDoc()))
    assert.ok(before.length >= 3)
    const empty = parseLdapConfig({ url: slapd.url, bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: GROUPS_DN })
    const report = await new LdapSync({ config: empty, store, dataDir: dir, cardKey: CARD_KEY, logger }).sync()
    assert.is(report.result, 'failed')
    assert.match(report.error ?? '', /LDAP returned no users under ou=groups,dc=example,dc=org .*nothing disabled/)
    assert.equal(listUsers(await store.open(directoryDoc())), before)

    // an LDAP server that is down: nothing listens on loopback port 1
    const down = parseLdapConfig({ url: 'ldap://127.0.0.1:1', bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: PEOPLE_DN, timeoutSeconds: 5 })
    const refused = await new LdapSync({ config: down, store, dataDir: dir, cardKey: CARD_KEY, logger }).sync()
    assert.is(refused.result, 'failed')
    assert.match(refused.error ?? '', /cannot bind as cn=admin,dc=example,dc=org at ldap:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/)
    assert.equal(listUsers(await store.open(directoryDoc())), before, 'nothing disabled while LDAP is down')
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test('a sync that would take the directory past the license\'s users limit changes nothing and says which limit', async () => {
  const dir = await tempDir('printmesh-ldap-license-')
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), (await generateIdentity()).signer)
  const logger = pino({ level: 'silent' })
  try {
    await store.transact(licenseDoc(), { kind: 'admin', user: 'admin' }, (d) => recordProductLicense(d, {
      organisation: 'Acme', licenseId: 'lic-small', limits: { sites: 5, terminals: 5, clients: 5, users: 2 }, issuedAt: Date.now(), expiresAt: Date.now() + 365 * 24 * 3600_000
    }))
    const config = parseLdapConfig({ url: slapd.url, bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: PEOPLE_DN })
    const report = await new LdapSync({ config, store, dataDir: dir, cardKey: CARD_KEY, logger }).sync()
    assert.is(report.result, 'failed')
    assert.match(report.error ?? '', /license allows 2 users; 0 are in the directory, and this would add \d+/)
    assert.equal(listUsers(await store.open(directoryDoc())), [], 'nobody added')
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
