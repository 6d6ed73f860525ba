// The admin console on a terminal and on a workstation's client (issue 16 item 4, "on every
// node"), with real processes and Chromium: central, site-a, a terminal of site-a (with its
// ippeveprinter) and alice's workstation. Each light peer serves /console read-only over what
// it holds: every site's printers and settings and its site's jobs, with a notice saying where
// changes are made, no write buttons, no users, accounts or audit pages (those documents live
// on sites and central only), and a change asked of its API refused with that reason. Pages are
// screenshotted at 1280 and 390 px and do not overflow a phone's width.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { startClient, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { startTerminalMesh, type TerminalMesh } from './helpers/terminal-mesh.ts'
import { visitConsolePages, WIDE } from './helpers/console.ts'
import type { ConsoleSite } from '../ui/routes/console.ts'

/** Replication waits at most this long: anti-entropy runs every second in tests. */
const MESH_TIMEOUT_MS = 30_000
const UI_TIMEOUT_MS = 30_000
const PAGES = ['dashboard', 'sites', 'printers', 'jobs', 'peers'] as const

let mesh: TerminalMesh | undefined
let client: SiteProcess | undefined
let browser: TestBrowser | undefined

const m = (): TerminalMesh => mesh as TerminalMesh
const br = (): TestBrowser => browser as TestBrowser

test.before(async () => {
  ;[mesh, browser] = await Promise.all([startTerminalMesh({ alice: '2468' }, [[]]), startBrowser({ timeoutMs: UI_TIMEOUT_MS })])
  const { joinString } = await admin<{ joinString: string }>(m().central, '/api/mesh/tokens', { method: 'POST', body: { role: 'client', site: 'site-a' } })
  client = await startClient({ args: ['--join', joinString, '--user', 'alice', '--name', 'alice-pc'] })
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['client', async () => await client?.stop()],
    ['mesh', async () => await mesh?.stop()]
  ])
})

/** A change of site-a's printers asked of `node`'s console API with its own admin token. */
async function addPrinterAt (node: SiteProcess): Promise<{ status: number, body: string }> {
  const res = await fetch(`${node.httpUrl}/api/console/sites/site-a/printers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'lobby', uri: 'ipp://127.0.0.1:9/ipp/print' })
  })
  return { status: res.status, body: await res.text() }
}

for (const [label, node, noun] of [['terminal', () => m().terminals[0].node, 'terminal'], ['workstation', () => client as SiteProcess, 'workstation']] as const) {
  test(`the ${label}'s console shows every site as it holds them, read-only: a notice, no write buttons, no users, accounts or audit pages; a change is refused with where to make it`, async () => {
    const at = node()
    // the API: site-a as site-a published it, and no change taken
    await until(async () => (await admin<{ sites: ConsoleSite[] }>(at, '/api/console/sites')).sites.some((s) => s.site === 'site-a'), MESH_TIMEOUT_MS, `site-a in the ${label}'s console`)
    const refused = await addPrinterAt(at)
    assert.is(refused.status, 409, refused.body)
    assert.match(refused.body, /console shows what it holds and changes nothing: make changes at a site's or central's console/)
    assert.equal((await admin<{ actions: unknown[] }>(at, '/api/console/actions')).actions, [], 'nothing asked of site-a')

    const page = br().page
    await page.setViewportSize(WIDE)
    await page.goto(`${at.httpUrl}/console`)
    await signInAdmin(page, at.adminToken)
    await page.locator('#read-only').waitFor({ state: 'visible' })
    assert.match(await page.locator('#read-only').innerText(), new RegExp(`^This ${noun}'s console shows what it holds: every site's printers and settings, and the jobs of site site-a\\. Changes are made at a site's or central's console\\.$`))
    for (const hidden of ['users', 'accounts', 'audit']) assert.is(await page.locator(`#nav a[data-route="${hidden}"]`).isVisible(), false, `no ${hidden} page on the ${label}`)
    // a hidden page asked for by its address shows the dashboard
    await page.evaluate(() => { location.hash = '#/audit' })
    await page.locator('#nav a[data-route="dashboard"][aria-current="page"]').waitFor()

    await visitConsolePages(br(), PAGES, label, async (name) => {
      assert.is(await page.locator('#page form').count(), name === 'jobs' ? 1 : 0, `${name}: no forms to change anything (the jobs page's filter only)`)
      assert.is(await page.locator('#page-error').isVisible(), false, `${name}: no error (${await page.locator('#page-error').innerText().catch(() => '')})`)
    })
    await page.evaluate(() => { location.hash = '#/sites' })
    await page.locator('#page[data-route="sites"]').getByText('site-a').first().waitFor()
    assert.equal(br().pageErrors, [], 'no script errors')
  })
}

test.run()
