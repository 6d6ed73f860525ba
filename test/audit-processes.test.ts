// The audit log with real processes on loopback (issue 16: "each admin action appears at every
// node with the right author"): central and two sites joined to it. An admin action at site-a
// (roaming settings, by bearer token and by an admin session) appears at central and at site-b
// with site-a as its node and the admin as its actor, with the settings before and after; an
// admin action at central (a user added with a PIN and a card, then edited) appears at both
// sites with central as its node, and neither its PIN nor its card number reaches any audit
// entry or data folder.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startSite, startCentral, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'
import { containsBytes } from './helpers/files.ts'
import type { AuditPage } from '../ui/routes/audit.ts'
import type { AuditEntry } from '../crdt/audit.ts'

/** Replication runs at once or at the next anti-entropy round (a second in tests): well within this. */
const MESH_TIMEOUT_MS = 30_000
const PIN = '86420'
const CARD = 'A5D17C0FFEE42'

let central: SiteProcess
let site: SiteProcess
let siteB: SiteProcess

test.before(async () => {
  central = await startCentral()
  const { joinString } = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-a' } })
  site = await startSite({ args: ['--site', 'site-a', '--join', joinString] })
  const second = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-b' } })
  siteB = await startSite({ args: ['--site', 'site-b', '--join', second.joinString] })
})

test.after(async () => {
  await runCleanup([
    ['site-b', async () => await siteB?.stop()],
    ['site', async () => await site?.stop()],
    ['central', async () => await central?.stop()]
  ])
})

/** The entries `at` holds that match `query`, newest first. */
async function audit (at: SiteProcess, query = ''): Promise<AuditEntry[]> {
  return (await admin<AuditPage>(at, `/api/audit${query}`)).entries
}

/** Waits until `at` holds an entry matching `match`, and returns it. */
async function entryAt (at: SiteProcess, what: string, match: (e: AuditEntry) => boolean): Promise<AuditEntry> {
  let found: AuditEntry | undefined
  await until(async () => { found = (await audit(at)).find(match); return found !== undefined }, MESH_TIMEOUT_MS, what)
  return found as AuditEntry
}

test('an admin action at a site appears at central and the other site with that site as its node and the admin as its actor, before and after', async () => {
  await admin(site, '/api/roaming', { method: 'PUT', body: { partners: ['site-b'], mode: 'shared' } })
  // the same change again, from an admin session of the site's page (CSRF token and all)
  const login = await fetch(`${site.httpUrl}/api/login/admin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: site.adminToken }) })
  assert.is(login.status, 200)
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]
  const { csrfToken } = await login.json() as { csrfToken: string }
  const put = await fetch(`${site.httpUrl}/api/roaming`, { method: 'PUT', headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: JSON.stringify({ partners: ['site-b', 'site-c'], mode: 'separate' }) })
  assert.is(put.status, 200, await put.text())

  const byToken = await entryAt(central, 'the site\'s roaming change at central', (e) => e.action === 'PUT /api/roaming' && e.via === 'token')
  assert.equal([byToken.node, byToken.role, byToken.site, byToken.actor, byToken.target, byToken.status], [site.peer, 'site', 'site-a', 'admin', '/api/roaming', 200])
  assert.equal((byToken.after as { partners: Array<{ site: string }> | string[] }).partners.length, 1)
  assert.equal(byToken.request, { partners: ['site-b'], mode: 'shared' })
  const bySession = await entryAt(central, 'the session\'s change at central', (e) => e.action === 'PUT /api/roaming' && e.via === 'session')
  assert.equal([bySession.node, bySession.actor], [site.peer, 'admin'])
  assert.match(JSON.stringify(bySession.before), /"shared"/, 'before: the settings as the first change left them')
  assert.match(JSON.stringify(bySession.after), /"separate"/, 'after: as the second made them')
  await entryAt(central, 'the admin sign-in at central', (e) => e.action === 'POST /api/login/admin' && e.node === site.peer)
  const atB = await entryAt(siteB, 'the session\'s change at site-b', (e) => e.action === 'PUT /api/roaming' && e.via === 'session')
  assert.equal(atB, bySession, 'site-b holds the same entry')
  assert.equal((await audit(siteB, `?node=${site.peer}&action=roaming`)).length, 2)
  // the site itself shows them the same, and the filters find them by node and action
  assert.equal((await audit(site, '?action=roaming')).map((e) => e.via), ['session', 'token'])
  assert.ok((await audit(central, '?node=site-a')).every((e) => e.node === site.peer))
})

test('an admin action at central appears at every site with central as its node; no PIN or card number is kept', async () => {
  await admin(central, '/api/users', { method: 'POST', body: { username: 'audrey', fullName: 'Audrey Audit', pin: PIN, cards: [CARD] } })
  await admin(central, '/api/users/audrey', { method: 'PATCH', body: { fullName: 'Audrey Auditor' } })
  await admin(central, '/api/users/audrey/pin', { method: 'POST', body: { pin: '97531' } })

  const edit = await entryAt(site, 'central\'s user edit at the site', (e) => e.action === 'PATCH /api/users/:username' && e.target === '/api/users/audrey')
  assert.equal([edit.node, edit.role, edit.site, edit.actor, edit.via], [central.peer, 'central', undefined, 'admin', 'token'])
  assert.match(JSON.stringify(edit.before), /Audrey Audit"/)
  assert.match(JSON.stringify(edit.after), /Audrey Auditor/)
  const added = await entryAt(site, 'central\'s new user at the site', (e) => e.action === 'POST /api/users' && e.node === central.peer)
  assert.equal((added.request as { pin: string, cards: string[] }).pin, '[redacted]')
  assert.equal((added.request as { pin: string, cards: string[] }).cards, ['[redacted]'])
  await entryAt(site, 'the PIN reset at the site', (e) => e.action === 'POST /api/users/:username/pin' && e.node === central.peer)
  assert.equal(await entryAt(siteB, 'central\'s user edit at site-b', (e) => e.id === edit.id), edit, 'site-b holds the same entry')

  const everything = JSON.stringify([...await audit(site, '?limit=1000'), ...await audit(central, '?limit=1000'), ...await audit(siteB, '?limit=1000')])
  for (const secret of [PIN, CARD, '97531', site.adminToken, central.adminToken]) assert.not.ok(everything.includes(secret), 'a secret in an audit entry')
  for (const [name, node] of [['central', central], ['site-a', site], ['site-b', siteB]] as const) {
    assert.not.ok(await containsBytes(node.dataDir, CARD), `the card number in ${name}'s data folder`)
  }
  // filters: central's actions only, by its peer id; none by a name nobody used
  assert.ok((await audit(site, `?node=${central.peer}`)).length >= 3)
  assert.equal(await audit(site, '?actor=nobody'), [])
})

test.run()
