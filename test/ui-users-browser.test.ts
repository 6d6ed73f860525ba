// Central's admin page, Users section, in a real headless Chromium against a real central
// process: the list a page at a time with search, adding a user (and the error for a taken
// name), disabling and enabling, resetting a PIN in a dialog, and the CSV import's preview
// before the import. What the page did is checked through the API.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Locator } from 'playwright-core'
import { startCentral, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import type { DirectoryUserView, ImportReport } from '../ui/users-api.ts'

/** Longest wait for something to appear on the page (each action is one API call to a local central). */
const UI_TIMEOUT_MS = 20_000
/** More users than one page shows (25), so the pager is needed. */
const USERS = 30

interface World { central: SiteProcess, browser: TestBrowser }
const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.central = await startCentral()
    const rows = Array.from({ length: USERS }, (_, i) => `user${String(i).padStart(2, '0')},User ${i},${1000 + i},${i % 10 === 0 ? 'finance' : 'staff'}`)
    const res = await fetch(`${world.central.httpUrl}/api/users/import`, {
      method: 'POST', headers: { authorization: `Bearer ${world.central.adminToken}`, 'content-type': 'text/csv' }, body: `username,full name,PIN,groups\n${rows.join('\n')}\n`
    })
    assert.is(res.status, 200, await res.text())
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['central', async () => await world.central?.stop()]
  ])
})

/** The world, or the setup's own error (uvu would otherwise hide it). */
function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

const user = async (name: string): Promise<DirectoryUserView> => (await admin<{ user: DirectoryUserView }>(ready().central, `/api/users/${name}`)).user
/** Whether `pin` is the user's PIN: the import preview calls a row unchanged only when it matches the stored hash. */
async function pinIs (name: string, fullName: string, pin: string): Promise<boolean> {
  const { central } = ready()
  const res = await fetch(`${central.httpUrl}/api/users/import?dryRun=1`, {
    method: 'POST', headers: { authorization: `Bearer ${central.adminToken}`, 'content-type': 'text/csv' }, body: `username,full name,PIN\n${name},${fullName},${pin}\n`
  })
  return (await res.json() as ImportReport).unchanged.includes(name)
}

test('on central the Users section lists users a page at a time and finds them by search', async () => {
  const { central, browser } = ready()
  const { page } = browser
  await page.goto(`${central.httpUrl}/admin`)
  await signInAdmin(page, central.adminToken)
  await page.getByRole('heading', { name: 'Users', exact: true }).waitFor()
  assert.is(await page.getByRole('heading', { name: 'All jobs', exact: true }).isVisible(), false, 'central has no jobs section')
  const rows = page.locator('#users tbody tr')
  await page.getByText(`1–25 of ${USERS}`).waitFor()
  assert.is(await rows.count(), 25)
  await page.getByRole('button', { name: 'Next' }).click()
  await page.getByText(`26–30 of ${USERS}`).waitFor()
  assert.equal(await rows.locator('th').allTextContents(), ['user25', 'user26', 'user27', 'user28', 'user29'])
  assert.is(await page.getByRole('button', { name: 'Next' }).isDisabled(), true)

  await page.getByLabel('Search users').fill('finance')
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByText('1–3 of 3').waitFor()
  assert.equal(await rows.locator('th').allTextContents(), ['user00', 'user10', 'user20'])
  await browser.screenshot('users-search')
})

test('an admin adds a user, is told when the name is taken, disables and enables them, and resets their PIN', async () => {
  const { browser } = ready()
  const { page } = browser
  const add = async (username: string, fullName: string, pin: string): Promise<void> => {
    await page.getByLabel('Username').fill(username)
    await page.getByLabel('Full name').fill(fullName)
    await page.getByLabel('Groups (optional, separated by ;)').fill('finance; night')
    await page.getByLabel('PIN', { exact: true }).fill(pin)
    await page.getByRole('button', { name: 'Add user' }).click()
  }
  await add('zoe', 'Zoe Quinn', '2468')
  await page.getByRole('status').filter({ hasText: 'Added zoe.' }).waitFor()
  assert.equal((await user('zoe')).groups, ['finance', 'night'])
  assert.ok(await pinIs('zoe', 'Zoe Quinn', '2468'))
  await add('zoe', 'Another Zoe', '1357')
  await page.getByRole('status').filter({ hasText: 'Could not add the user: user zoe already exists' }).waitFor()

  const zoe: Locator = page.locator('#users tbody tr[data-user="zoe"]')
  await zoe.waitFor() // the search for finance still applies, and zoe is in finance
  await zoe.getByRole('button', { name: 'Disable' }).click()
  await zoe.getByText('disabled', { exact: true }).waitFor()
  assert.is((await user('zoe')).disabled, true)
  await zoe.getByRole('button', { name: 'Enable' }).click()
  await zoe.getByText('active', { exact: true }).waitFor()
  assert.is((await user('zoe')).disabled, false)

  await zoe.getByRole('button', { name: 'Reset PIN' }).click()
  const dialog = page.getByRole('dialog', { name: 'Reset a PIN' })
  await dialog.getByLabel('New PIN').fill('12')
  await dialog.getByRole('button', { name: 'Set PIN' }).click()
  await dialog.getByRole('alert').filter({ hasText: 'a PIN must be 4 to 12 digits' }).waitFor()
  await dialog.getByLabel('New PIN').fill('97531')
  await dialog.getByRole('button', { name: 'Set PIN' }).click()
  await page.getByRole('status').filter({ hasText: 'New PIN set for zoe.' }).waitFor()
  assert.ok(await pinIs('zoe', 'Zoe Quinn', '97531'), 'the new PIN is zoe\'s')
  assert.not.ok(await pinIs('zoe', 'Zoe Quinn', '2468'), 'the old one is gone')
  await browser.screenshot('users-added')
})

test('the CSV import shows a preview of what would change and the lines in error, writes nothing, then imports', async () => {
  const { browser } = ready()
  const { page } = browser
  await page.getByLabel('Or paste CSV rows').fill('username,full name,PIN,email\nuser01,User 1,,one@example.org\nyuki,Yuki,4321,\nbad name,X,1234,\n')
  await page.getByRole('button', { name: 'Preview' }).click()
  await page.getByRole('status').filter({ hasText: 'Preview, nothing written: would add 1, change 1, leave 0 unchanged; 1 line in error.' }).waitFor()
  const preview = page.locator('#import-preview')
  await preview.getByText('Would add: yuki').waitFor()
  await preview.getByText('Would change user01: email').waitFor()
  await preview.getByText(/Line 4: invalid username "bad name"/).waitFor()
  assert.is((await admin<{ total: number }>(ready().central, '/api/users?q=yuki')).total, 0, 'the preview wrote nothing')

  await page.getByLabel('Or paste CSV rows').fill('username,full name,PIN,email\nuser01,User 1,,one@example.org\nyuki,Yuki,4321,\n')
  await page.getByRole('button', { name: 'Import', exact: true }).click()
  await page.getByRole('status').filter({ hasText: 'Imported 2 users. 1 added, 1 changed, 0 unchanged.' }).waitFor()
  assert.is((await user('user01')).email, 'one@example.org')
  assert.ok(await pinIs('yuki', 'Yuki', '4321'))
  assert.equal(browser.pageErrors, [])
  await browser.screenshot('users-imported')
})

test.run()
