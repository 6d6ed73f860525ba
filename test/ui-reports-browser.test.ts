// The Reports page and a user's own usage in a real headless Chromium against a real site
// process (standalone, so it writes its own price list; --no-hold, so jobs print and are
// charged on arrival): totals, cost and the breakdown's total row as the API has them, the
// three uPlot charts drawn (served by the node itself), the CSV link's totals, and the page
// usable at 1280 and 390 px wide (no sideways scrolling), with screenshots of both.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { printFile } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'
import { logIn, runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import type { Report } from '../ui/reports-api.ts'

/** Longest wait for something on the page or a job's charge (each is a local call or a print to a folder). */
const UI_TIMEOUT_MS = 20_000
const WIDTHS = [1280, 390] as const

interface World { site: SiteProcess, browser: TestBrowser, docs: string }
const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.docs = await tempDir('printmesh-report-ui-')
    world.site = await startSite({ users: 'alice,Alice,1357\n', args: ['--site', 'site-r', '--no-hold'] })
    await admin(world.site, '/api/prices', { method: 'PUT', body: { currency: 'EUR', rules: [{ color: 'mono', perPage: 5 }, { color: 'colour', perPage: 20 }, { sides: 'duplex', color: 'mono', perPage: 4 }, { sides: 'duplex', color: 'colour', perPage: 18 }] } })
    // 3 pages (1 colour) × 2 copies duplex: mono 4 × 4 + colour 2 × 18 = 52; then 2 mono pages: 10
    await printFile(world.site.ippUri, await makePdf(world.docs, { pages: 3, colorPages: [0], name: 'a.pdf' }), { user: 'alice', format: 'application/pdf', copies: 2, sides: 'two-sided-long-edge' })
    await printFile(world.site.ippUri, await makePdf(world.docs, { pages: 2, name: 'b.pdf' }), { user: '=cmd', format: 'application/pdf' })
    const site = world.site
    await until(async () => (await admin<Report>(site, '/api/reports')).totals.records === 2, UI_TIMEOUT_MS, 'both jobs charged')
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['site', async () => await world.site?.stop()],
    ['documents', async () => { if (world.docs !== undefined) await rm(world.docs, { recursive: true, force: true }) }]
  ])
})

function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

test('the Reports page shows the totals, cost and breakdown the API has, and draws its three charts, at 1280 and 390 px', async () => {
  const { site, browser } = ready()
  const { page } = browser
  const api = await admin<Report>(site, '/api/reports?groupBy=site')
  assert.equal([api.totals.pages, api.totals.colorPages, api.totals.sheets, api.totals.sheetsSaved, api.totals.cost], [8, 2, 6, 2, { EUR: 62 }])
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 })
    await page.goto(`${site.httpUrl}/reports`)
    if (width === WIDTHS[0]) await signInAdmin(page, site.adminToken)
    const total = (label: string): Promise<string> => page.locator(`[data-total="${label}"]`).innerText()
    await page.locator('[data-total="Pages"]').waitFor()
    // the page starts at this month; cleared, it reports everything (the test may not cross a month's end)
    assert.is(await page.locator('#from').inputValue(), `${new Date().toISOString().slice(0, 7)}-01`)
    const shown = await page.evaluate(() => document.body.dataset.reportAt)
    await page.locator('#from').fill('')
    await page.getByRole('button', { name: 'Show' }).click()
    await until(async () => await page.evaluate(() => document.body.dataset.reportAt) !== shown, UI_TIMEOUT_MS, 'the report without a start drawn')
    assert.is(await page.locator('#csv-link').getAttribute('href'), '/api/reports.csv?groupBy=site')
    assert.is(await total('Pages'), '8')
    assert.is(await total('Colour pages'), '2 (25 %)')
    assert.is(await total('Sheets saved by duplex'), '2')
    assert.is(await total('Cost'), '0.62 EUR')
    const totalRow = page.locator('#breakdown tr.total')
    assert.equal(await totalRow.locator('td').allInnerTexts(), ['2', '8', '2', '6', '2', '0.62 EUR', '0'])
    assert.equal(await page.locator('#breakdown tbody tr:not(.total) th').allInnerTexts(), ['site-r'])
    assert.match(await page.locator('#freshness-summary').innerText(), /^Complete: every peer that records usage \(1\) is connected\.$/)

    // three charts, each a uPlot canvas with something drawn on it; the series are named
    await page.locator('#chart-printers canvas').waitFor()
    const drawn = await page.evaluate(() => Array.from(document.querySelectorAll('.chart canvas')).map((el) => {
      const c = el as HTMLCanvasElement
      const pixels = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? new Uint8ClampedArray()
      let inked = 0
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked++
      return { width: c.getBoundingClientRect().width, inked }
    }))
    assert.is(drawn.length, 3)
    for (const c of drawn) {
      assert.ok(c.inked > 100, `a chart has ink: ${JSON.stringify(drawn)}`)
      assert.ok(c.width <= width, `a chart fits ${width} px: ${JSON.stringify(drawn)}`)
    }
    assert.ok((await page.locator('#chart-pages .u-legend').innerText()).includes('site-r'))
    const overflowing = await page.evaluate(() => Array.from(document.querySelectorAll('body *'))
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && el.closest('.scroll') === null)
      .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`))
    assert.equal(overflowing, [], `no sideways scrolling at ${width} px`)
    assert.equal(browser.pageErrors, [])
    await browser.screenshot(`reports-${width}`)
  }
})

test('the CSV the page links to has the totals, with the = of a user name escaped', async () => {
  const { page } = ready().browser
  await page.selectOption('#groupBy', 'user')
  await page.getByRole('button', { name: 'Show' }).click()
  await page.locator('#breakdown tbody th', { hasText: 'alice' }).waitFor()
  const href = await page.locator('#csv-link').getAttribute('href')
  assert.is(href, '/api/reports.csv?groupBy=user')
  const csv = await page.evaluate(async (url) => await (await fetch(url)).text(), href as string)
  const lines = csv.trim().split('\r\n')
  assert.ok(lines.includes('\'=cmd,1,2,0,2,2,1,0,0,0.10,0'), csv)
  assert.ok(lines.includes('total,2,8,2,6,6,3,6,2,0.62,0'), csv)
})

test('a user sees their own usage and cost on the release page', async () => {
  const { site, browser } = ready()
  const { page } = browser
  await browser.context.clearCookies() // the admin session of the tests before
  await page.setViewportSize({ width: 1280, height: 900 })
  await logIn(page, `${site.httpUrl}/`, 'alice', '1357')
  await page.locator('[data-usage="Pages"]').waitFor()
  assert.equal(await page.locator('#my-usage dd').allInnerTexts(), ['1', '6', '2', '4', '2', '0.52 EUR'])
  await browser.screenshot('my-usage-1280')
})

test('prices are edited on the Reports page: a bad list is refused naming the field; a site price saved there prices the next job only', async () => {
  const { site, browser, docs } = ready()
  const { page } = browser
  await browser.context.clearCookies()
  await page.setViewportSize({ width: 390, height: 900 })
  await page.goto(`${site.httpUrl}/reports`)
  await signInAdmin(page, site.adminToken)
  await page.locator('#price-list').waitFor()
  await until(async () => (await page.locator('#price-list').inputValue()).includes('"EUR"'), UI_TIMEOUT_MS, 'the price list in the editor')
  await page.locator('#price-list').fill('{"currency": "EUR", "rules": [{"color": "mono", "perPage": 1.5}]}')
  await page.getByRole('button', { name: 'Save price list' }).click()
  await page.locator('#prices-status.error').waitFor()
  assert.is(await page.locator('#prices-status').innerText(), 'The price list not saved: bad price list: rules[0]: perPage must be a whole number of minor units (cents) from 0 to 1000000, not 1.5')
  assert.is((await admin<{ list: { rules: Array<{ perPage: number }> } }>(site, '/api/prices')).list.rules[0].perPage, 5, 'nothing written')

  await page.locator('#site-prices').fill('{"printers": {"virtual": [{"color": "mono", "perPage": 1}]}}')
  await page.getByRole('button', { name: 'Save site prices' }).click()
  await page.locator('#prices-status:not(.error)', { hasText: 'saved' }).waitFor()
  await printFile(site.ippUri, await makePdf(docs, { pages: 3, name: 'c.pdf' }), { user: 'alice', format: 'application/pdf' })
  await until(async () => (await admin<Report>(site, '/api/reports')).totals.records === 3, UI_TIMEOUT_MS, 'the third job charged')
  const byUser = await admin<Report>(site, '/api/reports?groupBy=user')
  assert.equal(byUser.rows.map((r) => [r.keys[0], r.records, r.cost.EUR]), [['=cmd', 1, 10], ['alice', 2, 52 + 3]])
  await browser.screenshot('reports-prices-390')
})

test.run()
