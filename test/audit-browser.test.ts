// The admin page's Audit log section in a real headless Chromium against a real central: after
// a few admin actions (by token, and the page's own sign-in and user edit), the section lists
// them newest first with where, who and what, folds each change's before and after away, and
// filters by action or target; at 1280 and 390 px wide (screenshots kept with the artefacts).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startCentral, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'

/** Longest wait for something to appear on the page (the section polls every 5 s). */
const UI_TIMEOUT_MS = 20_000

interface World { central: SiteProcess, browser: TestBrowser }
const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.central = await startCentral()
    await admin(world.central, '/api/users', { method: 'POST', body: { username: 'bob', fullName: 'Bob Builder', pin: '2468' } })
    await admin(world.central, '/api/users/bob', { method: 'PATCH', body: { fullName: 'Robert Builder' } })
    await admin(world.central, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })
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

function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

test('the Audit log section lists admin actions newest first, shows a change\'s before and after, and filters', async () => {
  const { central, browser } = ready()
  const { page } = browser
  await page.goto(`${central.httpUrl}/admin`)
  await signInAdmin(page, central.adminToken)
  await page.getByRole('heading', { name: 'Audit log', exact: true }).waitFor()
  const rows = page.locator('#audit tbody tr')
  // the page's own sign-in is the newest action
  await page.locator('#audit tbody tr', { hasText: 'POST /api/login/admin' }).first().waitFor()
  const actions = await rows.locator('td:nth-child(4)').allTextContents()
  assert.equal(actions, ['POST /api/login/admin', 'PUT /api/mesh/blocked', 'PATCH /api/users/:username', 'POST /api/users'])
  assert.equal(await rows.first().locator('td:nth-child(2)').textContent(), 'central')
  assert.equal(await rows.nth(1).locator('td:nth-child(3)').textContent(), 'admin (token)')

  const edit = rows.filter({ hasText: 'PATCH /api/users/:username' })
  await edit.getByText('before, after, request').click()
  await edit.getByText(/"fullName":"Bob Builder"/).waitFor()
  assert.match(await edit.locator('details').innerText(), /After: .*Robert Builder/)
  await browser.screenshot('audit-1280')

  await page.getByLabel('Action or target').fill('bob')
  await page.getByRole('button', { name: 'Show' }).click()
  await page.getByText('1 action.').waitFor()
  assert.equal(await rows.locator('td:nth-child(5)').allTextContents(), ['/api/users/bob'])

  await page.setViewportSize({ width: 390, height: 844 })
  await page.getByLabel('Action or target').fill('')
  await page.getByRole('button', { name: 'Show' }).click()
  await page.getByText(/^\d+ actions\.$/).waitFor()
  await browser.screenshot('audit-390')
  assert.equal(browser.pageErrors, [])
})

test.run()
