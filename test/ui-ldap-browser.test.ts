// Central's admin page, LDAP section, in a real headless Chromium against a real central
// process syncing from a real slapd: the settings and the first sync's report with the entries
// it left out, a dry run that shows a change without making it, Sync now that makes it, and a
// failed sync's reason. What the page did is checked through the API.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { directoryLdif, PEOPLE_DN, startSlapd, type Slapd } from '../simulations/slapd.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import type { DirectoryUserView } from '../ui/users-api.ts'

/** Longest wait for something to appear on the page (each action is one API call to a local central). */
const UI_TIMEOUT_MS = 20_000

interface World { central: SiteProcess, browser: TestBrowser, slapd: Slapd, work: string, passwordFile: string }
const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.work = await tempDir('printmesh-ldap-ui-')
    world.slapd = await startSlapd(directoryLdif([{ uid: 'alice', cn: 'Alice Liddell' }, { uid: 'bob', cn: 'Bob Builder' }, { uid: 'dave smith', cn: 'Dave Smith' }]))
    world.passwordFile = join(world.work, 'bind-password')
    await writeFile(world.passwordFile, world.slapd.adminPassword)
    const config = join(world.work, 'ldap.json')
    await writeFile(config, JSON.stringify({ url: world.slapd.url, bindDN: world.slapd.adminDN, bindPasswordFile: world.passwordFile, baseDN: PEOPLE_DN, intervalMinutes: 60 }))
    world.central = await startCentral({ args: ['--ldap-config', config] })
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['central', async () => await world.central?.stop()],
    ['slapd', async () => await world.slapd?.stop()],
    ['temp folder', async () => { if (world.work !== undefined) await rm(world.work, { recursive: true, force: true }) }]
  ])
})

/** The world, or the setup's own error (uvu would otherwise hide it). */
function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

const user = async (name: string): Promise<DirectoryUserView> => (await admin<{ user: DirectoryUserView }>(ready().central, `/api/users/${name}`)).user

test('on central the LDAP section shows the settings, the first sync\'s report and the entries it left out', async () => {
  const { central, browser, slapd } = ready()
  const { page } = browser
  await page.goto(`${central.httpUrl}/admin`)
  await signInAdmin(page, central.adminToken)
  await page.getByRole('heading', { name: 'LDAP sync', exact: true }).waitFor()
  assert.match(await page.locator('#ldap-config').textContent() ?? '', slapd.url)
  assert.match(await page.locator('#ldap-config').textContent() ?? '', PEOPLE_DN)
  const first = page.locator('#ldap-reports tbody tr').first()
  await first.getByText('ok').waitFor()
  assert.equal(await first.locator('td.num').allTextContents(), ['2', '0', '0', '0', '1'], 'added, changed, disabled, unchanged, errors')
  await page.locator('#ldap-errors').getByText('invalid username "dave smith"').waitFor()
  await browser.screenshot('ldap-first-sync')
})

test('Dry run shows what an LDAP change would do without doing it; Sync now does it; a refused bind shows why', async () => {
  const { central, browser, slapd, passwordFile } = ready()
  const { page } = browser
  await slapd.tool('ldapmodify', [], `dn: uid=alice,${PEOPLE_DN}\nchangetype: modify\nreplace: cn\ncn: Alice Pleasance Liddell\n`)
  await page.getByRole('button', { name: 'Dry run' }).click()
  await page.getByText('Dry run: 0 would be added, 1 changed, 0 disabled, 1 left out. Nothing was changed.').waitFor()
  await page.locator('#ldap-details').getByText('alice (fullName)').waitFor()
  assert.is((await user('alice')).fullName, 'Alice Liddell', 'a dry run changes nothing')
  await browser.screenshot('ldap-dry-run')

  await page.getByRole('button', { name: 'Sync now' }).click()
  await page.getByText('Synced: 0 added, 1 changed, 0 disabled, 1 left out.').waitFor()
  assert.is((await user('alice')).fullName, 'Alice Pleasance Liddell')
  await page.locator('#ldap-reports tbody tr').nth(1).waitFor() // the manual sync above the first one
  assert.equal(await page.locator('#ldap-reports tbody tr').first().locator('td.num').allTextContents(), ['0', '1', '0', '1', '1'])

  await writeFile(passwordFile, 'wrong-password')
  await page.getByRole('button', { name: 'Sync now' }).click()
  await page.getByText(/LDAP sync failed, nothing was changed: cannot bind as cn=admin,dc=example,dc=org .*invalid credentials/).waitFor()
  await page.locator('#ldap-reports tbody tr').first().getByText('failed').waitFor()
  await browser.screenshot('ldap-failed')
})

test.run()
