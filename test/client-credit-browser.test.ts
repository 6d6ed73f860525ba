// The workstation's page shows its user's credit and quotas (issue 20), with real processes:
// central (users alice and bob), site-a, and alice's workstation "alice-pc" (a client of site-a
// with a fallback printer), its page in Debian's chromium. The line `#credit` says, exactly:
// with nothing enforced and no quota, nothing (hidden); with credit enforced and alice topped
// up at central, her balance and what the workstation holds (half of what it and the site hold,
// taken at its credit pass); with a monthly page quota, the pages left and what the
// workstation holds of them; and a top-up at central shows on the page as it refreshes itself.
// The site's release page (`/`, ui/web/my-usage.js) shows alice, logged in there, exactly her
// balance (after a deduction at the site: not what was credited) and her quota in "My usage";
// bob, logged in after her on the same page, sees only his own (empty) credit and no quota.
// The file takes about 20 s: the workstation takes its share when a policy arrives and when
// its user's credit or quota reaches its site, not only at its 30 s credit pass.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { startClient, type SiteProcess } from '../simulations/node-process.ts'
import { CREDIT_PASS_MS } from '../node/credit.ts'
import { admin } from './helpers/node-api.ts'
import type { Page } from 'playwright-core'
import { logIn, runCleanup, startBrowser, type TestBrowser } from './helpers/browser.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { startTerminalMesh, MESH_TIMEOUT_MS, type TerminalMesh } from './helpers/terminal-mesh.ts'

const PINS = { alice: '246810', bob: '135790' }
/** alice's first top-up and the later one, in cents. */
const CREDIT = 1000
const MORE = 500
/** Taken from alice's credit by an admin of site-a before her release page is looked at. */
const DEDUCTION = 250
/** Every page costs 1.00. */
const PAGE_PRICE = 100
/** alice's monthly page quota: the workstation takes half of it, rounded down (3). */
const PAGES = 7
/**
 * The workstation takes its share at its credit pass (every CREDIT_PASS_MS from its start);
 * a quota needs central's pass first (it mints the month's quotas and hands them to the
 * site), then the workstation's next: two passes, and a margin for sync.
 */
const PASS_WAIT_MS = 2 * CREDIT_PASS_MS + 15_000
/** The page polls its client every 2 s; a change at central reaches the workstation by sync. */
const UI_TIMEOUT_MS = 20_000

interface ClientCredit { enforced: boolean, currency?: string, balance: number, here: number, quotas: Array<{ measure: string, left: number, here: number }> }

let mesh: TerminalMesh | undefined
let fallback: IppEvePrinter | undefined
let client: SiteProcess | undefined
let browser: TestBrowser | undefined

const m = (): TerminalMesh => { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const c = (): SiteProcess => { if (client === undefined) throw new Error('no client'); return client }
const b = (): TestBrowser => { if (browser === undefined) throw new Error('no browser'); return browser }
const clientCredit = async (): Promise<ClientCredit> => ((await (await fetch(`${c().httpUrl}/api/client`)).json()) as { credit: ClientCredit }).credit

/** Waits until the workstation's API says `check`, naming what it said last on timeout. */
async function creditUntil (check: (credit: ClientCredit) => boolean, timeoutMs: number, what: string): Promise<ClientCredit> {
  let last: ClientCredit | undefined
  await until(async () => { last = await clientCredit(); return check(last) }, timeoutMs, what)
    .catch((err: Error) => { throw new Error(`${err.message}; /api/client said credit ${JSON.stringify(last)}`) })
  return last as ClientCredit
}

/** Waits until the page's credit line reads exactly one of `texts` (visible), naming what it read last on timeout. */
async function creditLine (texts: string[], what: string): Promise<string> {
  const line = b().page.locator('#credit')
  let last = ''
  await until(async () => {
    last = await line.isVisible() ? await line.innerText() : '(hidden)'
    return texts.includes(last)
  }, UI_TIMEOUT_MS, what).catch((err: Error) => { throw new Error(`${err.message}; the page showed ${JSON.stringify(last)}`) })
  return last
}

/** The release page's "My usage" list as [label, value] pairs, in order. */
async function usageRows (page: Page): Promise<Array<[string, string]>> {
  if (!await page.locator('#my-usage').isVisible()) return []
  const dl = page.locator('#my-usage-totals')
  const [labels, values] = [await dl.locator('dt').allInnerTexts(), await dl.locator('dd').allInnerTexts()]
  return labels.map((label, i) => [label, values[i] ?? '(no value)'])
}

/** Waits until the release page's "My usage" list is exactly `rows`, naming what it showed last on timeout. */
async function usageUntil (page: Page, rows: Array<[string, string]>, what: string): Promise<void> {
  let last: Array<[string, string]> = []
  await until(async () => {
    last = await usageRows(page)
    return JSON.stringify(last) === JSON.stringify(rows)
  }, UI_TIMEOUT_MS, what).catch((err: Error) => { throw new Error(`${err.message}; the page showed ${JSON.stringify(last)}`) })
}

test.before(async () => {
  try {
    mesh = await startTerminalMesh(PINS, [])
    fallback = await startIppEvePrinter({ name: 'backup printer' })
    const joinString = (await admin<{ joinString: string }>(m().central, '/api/mesh/tokens', { method: 'POST', body: { role: 'client', site: 'site-a' } })).joinString
    client = await startClient({ args: ['--join', joinString, '--user', 'alice', '--name', 'alice-pc', '--fallback-printer', `backup=${fallback.uri}`] })
    await until(async () => ((await (await fetch(`${c().httpUrl}/api/client`)).json()) as { siteReachable: boolean }).siteReachable, MESH_TIMEOUT_MS, 'the client reaches its site')
    browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    await teardown()
    throw err
  }
})

async function teardown (): Promise<void> {
  await runCleanup([
    ['browser', async () => await browser?.close()],
    ['client', async () => await client?.stop()],
    ['fallback printer', async () => await fallback?.stop()],
    ['mesh', async () => await mesh?.stop()]
  ])
}

test.after(teardown)

test('with no credit enforced and no quota, the workstation\'s page shows no credit line', async () => {
  const page = b().page
  await page.goto(`${c().httpUrl}/`)
  await page.locator('#workstation').filter({ hasText: 'Workstation alice-pc · alice · site site-a' }).waitFor()
  assert.equal(await clientCredit(), { enforced: false, balance: 0, here: 0, quotas: [] })
  assert.is(await page.locator('#credit').isHidden(), true, 'no credit line')
})

test('with credit enforced and 10.00 at central, the page shows alice\'s balance and the 5.00 the workstation took (half of what it and the site hold)', async () => {
  const { central, site } = m()
  await admin(central, '/api/users/alice', { method: 'PATCH', body: { homeSite: 'site-a' } })
  await admin(central, '/api/prices', { method: 'PUT', body: { currency: 'EUR', rules: [{ perPage: PAGE_PRICE }] } })
  await admin(central, '/api/credit/policy', { method: 'PUT', body: { enforced: true, atZero: 'refuse' } })
  await admin(central, '/api/credit/users/alice/top-up', { method: 'POST', body: { amount: CREDIT, reason: 'term' } })
  await until(async () => (await admin<{ here: number }>(site, '/api/credit/users/alice')).here === CREDIT, MESH_TIMEOUT_MS, 'central passed the credit on to site-a')
  const credit = await creditUntil((cr) => cr.here > 0, PASS_WAIT_MS, 'the workstation took its share at its credit pass')
  assert.equal(credit, { enforced: true, currency: 'EUR', balance: CREDIT, here: CREDIT / 2, quotas: [] }, 'half of what it and the site held')
  await creditLine(['Credit 10.00 EUR (5.00 EUR on this workstation)'], 'the page shows the credit')
  await b().screenshot('client-credit')
})

test('with a monthly quota of 7 pages, the page shows 7 pages left and the 3 the workstation holds', async () => {
  await admin(m().central, '/api/credit/policy', { method: 'PUT', body: { enforced: true, atZero: 'refuse', quotas: [{ user: 'alice', pages: PAGES }] } })
  const credit = await creditUntil((cr) => cr.quotas.some((q) => q.here > 0), PASS_WAIT_MS, 'the workstation took its share of the quota at its credit pass')
  assert.equal(credit, { enforced: true, currency: 'EUR', balance: CREDIT, here: CREDIT / 2, quotas: [{ measure: 'pages', left: PAGES, here: Math.floor(PAGES / 2) }] })
  await creditLine(['Credit 10.00 EUR (5.00 EUR on this workstation) · 7 pages left this month (3 on this workstation)'], 'the page shows the quota')
  await b().screenshot('client-credit-quota')
})

test('a top-up of 5.00 at central shows on the page as it refreshes: 15.00', async () => {
  await admin(m().central, '/api/credit/users/alice/top-up', { method: 'POST', body: { amount: MORE, reason: 'refund' } })
  // the workstation may take its part of the new credit at a pass meanwhile: 7.50 of the 15.00
  await creditLine([
    'Credit 15.00 EUR (5.00 EUR on this workstation) · 7 pages left this month (3 on this workstation)',
    'Credit 15.00 EUR (7.50 EUR on this workstation) · 7 pages left this month (3 on this workstation)'
  ], 'the page shows the new balance')
  assert.equal(b().pageErrors, [], 'no script errors')
})

test('on the site\'s release page, alice\'s "My usage" shows her balance (12.50 after a 2.50 deduction at the site, of 15.00 credited) and 7 of 7 pages left; bob, logged in after her, sees none of it', async () => {
  const { site } = m()
  // a correction at the site (from its own share: no gathering), so the balance is not what was credited
  const deducted = await admin<{ balance: number, credited: number }>(site, '/api/credit/users/alice/deduct', { method: 'POST', body: { amount: DEDUCTION, reason: 'correction' } })
  assert.equal([deducted.balance, deducted.credited], [CREDIT + MORE - DEDUCTION, CREDIT + MORE], 'the site\'s answer to the deduction')
  // the usage of someone who printed nothing yet (ui/web/my-usage.js), after the credit rows
  const noUsage: Array<[string, string]> = [['Jobs and copies', '0'], ['Pages', '0'], ['Colour pages', '0'], ['Sheets', '0'], ['Sheets saved by duplex', '0'], ['Cost', '–']]
  const page = await b().context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  try {
    await logIn(page, `${site.httpUrl}/`, 'alice', PINS.alice)
    await page.locator('#user-name').filter({ hasText: 'alice' }).waitFor()
    await usageUntil(page, [['Credit', '12.50 EUR'], ['Pages left this month', '7 of 7'], ...noUsage], 'alice\'s balance and quota on the release page')
    await page.screenshot({ path: `${b().shots}/release-page-credit.png`, fullPage: true })
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.locator('#login-view').waitFor()
    assert.is(await page.locator('#my-usage').isHidden(), true, 'the usage hidden once logged out')
    assert.equal(await page.locator('#my-usage-totals > *').count(), 0, 'alice\'s rows gone once logged out')
    await logIn(page, `${site.httpUrl}/`, 'bob', PINS.bob)
    await page.locator('#user-name').filter({ hasText: 'bob' }).waitFor()
    // credit is enforced for everyone: bob has a Credit row, of his own nothing; the quota is alice's only
    await usageUntil(page, [['Credit', '0.00 EUR'], ...noUsage], 'bob\'s own (empty) credit, no quota')
    assert.equal(errors, [], 'no script errors')
  } finally {
    await page.close()
  }
})

test('with credit no longer enforced and the quota removed, the credit line is hidden again', async () => {
  await admin(m().central, '/api/credit/policy', { method: 'PUT', body: { enforced: false, atZero: 'refuse' } })
  await creditLine(['(hidden)'], 'the credit line hidden')
  assert.equal(b().pageErrors, [], 'no script errors')
})

test.run()
