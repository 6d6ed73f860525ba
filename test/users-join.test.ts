// A standalone site with users joins a mesh (real processes on loopback): its users are
// merged into central's directory, none lost; a user central already has keeps central's
// record (a conflict the site reports); cards are listed to be registered again; the
// handed-over users log in at the site with their old PINs afterwards.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { startSite, startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'
import type { DirectoryUserView, UserPage } from '../ui/users-api.ts'

/** The directory comes back from central by sync within this. */
const MESH_TIMEOUT_MS = 30_000

let central: SiteProcess | undefined
let site: SiteProcess | undefined
let dataDir = ''

async function login (node: SiteProcess, username: string, pin: string): Promise<number> {
  const res = await fetch(`${node.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  return res.status
}

test.after(async () => {
  await runCleanup([
    ['site', async () => await site?.stop()],
    ['central', async () => await central?.stop()],
    ['site data', async () => await rm(dataDir, { recursive: true, force: true })]
  ])
})

test('a standalone site\'s users are merged into central\'s directory when it joins; central keeps its own record of a user both have', async () => {
  central = await startCentral()
  await admin(central, '/api/users', { method: 'POST', body: { username: 'alice', fullName: 'Alice at central', pin: '1111' } })

  // the site runs standalone first: users imported by CSV with a card, and one added through its API
  dataDir = await tempDir('printmesh-joining-site-')
  const standalone = await startSite({ dataDir, args: ['--site', 'site-j'], users: 'alice,Alice at the site,2222\nbob,Bob,3333,CAFE0001\ncarol,Carol,4444\n' })
  await admin(standalone, '/api/users', { method: 'POST', body: { username: 'dave', fullName: 'Dave', pin: '5555', email: 'dave@example.org', groups: ['night'], delegates: ['carol'] } })
  await standalone.stop()

  const { joinString } = await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role: 'site', site: 'site-j' } })
  site = await startSite({ dataDir, args: ['--join', joinString] })
  const handed = await site.waitForLog('standalone users handed to central')
  assert.equal([handed.added, handed.conflicts, handed.cardsDropped], [3, 1, 1])
  assert.match(site.logs().find((l) => l.includes('user not handed over')) ?? '', /"user":"alice".*central already has this user: kept central's record/)
  assert.match(site.logs().find((l) => l.includes('must be registered again')) ?? '', /"users":\["bob"\]/)

  const users = (await admin<UserPage>(central, '/api/users')).users
  assert.equal(users.map((u) => u.username), ['alice', 'bob', 'carol', 'dave'], 'none lost')
  const byName = new Map(users.map((u) => [u.username, u]))
  assert.is(byName.get('alice')?.fullName, 'Alice at central')
  assert.equal({ ...byName.get('dave'), updatedAt: 0 } as DirectoryUserView, {
    username: 'dave', fullName: 'Dave', email: 'dave@example.org', groups: ['night'], homeSite: 'site-j', delegates: ['carol'], disabled: false, source: 'local', cards: [], updatedAt: 0
  })
  assert.equal(byName.get('bob')?.cards, [], 'the card is to be registered again')

  // the directory the site now holds is central's: the handed-over users log in with their PINs
  await until(async () => (await admin<UserPage>(site as SiteProcess, '/api/users')).total === 4, MESH_TIMEOUT_MS, 'central\'s directory at the site')
  assert.is(await login(site, 'bob', '3333'), 200)
  assert.is(await login(site, 'dave', '5555'), 200)
  assert.is(await login(site, 'alice', '1111'), 200, 'alice is central\'s alice')
  assert.is(await login(site, 'alice', '2222'), 401)
})

test.run()
