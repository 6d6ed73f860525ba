// The web pages in a real headless Chromium against a real site process: a job printed
// over IPP (ipptool) is held, alice logs in with her PIN, releases it to a real IPP printer
// (ippeveprinter) and watches it become printed; a wrong PIN shows an error; an admin sees
// the accounting totals.
//
// Screenshots of every page: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { PDFDocument, rgb } from 'pdf-lib'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { printFile } from './helpers/ipptool.ts'
import { logIn, runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'

/** Longest wait for something to appear on a page (release → printed goes through a real printer). */
const UI_TIMEOUT_MS = 20_000
const ALICE_PIN = '482193'
const BOB_PIN = '573046'
const REPORT = 'Quarterly report'
/** An attacker-chosen job name: must show up as text, never run. */
const EVIL_NAME = '<img src=x onerror=window.__pwned=1>'

interface World {
  printer: IppEvePrinter
  site: SiteProcess
  browser: TestBrowser
  docs: string
}

const world: Partial<World> = {}
let setupError: unknown

/** A 2-page PDF, the first page with a red box (colour), the second black text only. */
async function makeTestPdf (dir: string): Promise<string> {
  const pdf = await PDFDocument.create()
  const first = pdf.addPage([595, 842])
  first.drawRectangle({ x: 100, y: 600, width: 200, height: 100, color: rgb(0.9, 0.1, 0.1) })
  const second = pdf.addPage([595, 842])
  second.drawText('page two', { x: 100, y: 700, size: 24, color: rgb(0, 0, 0) })
  const path = join(dir, 'report.pdf')
  await writeFile(path, await pdf.save())
  return path
}

test.before(async () => {
  try {
    world.docs = await tempDir('printmesh-ui-docs-')
    world.printer = await startIppEvePrinter({ name: 'lobby' })
    world.site = await startSite({
      printers: [`lobby=${world.printer.uri}`],
      users: `alice,Alice Liddell,${ALICE_PIN}\nbob,Bob Builder,${BOB_PIN}\n`
    })
    const pdf = await makeTestPdf(world.docs)
    await printFile(world.site.ippUri, pdf, { user: 'alice', format: 'application/pdf', name: REPORT })
    await printFile(world.site.ippUri, pdf, { user: 'alice', format: 'application/pdf', name: EVIL_NAME })
    await printFile(world.site.ippUri, pdf, { user: 'bob', format: 'application/pdf', name: 'Bob slides' })
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['site', async () => await world.site?.stop()],
    ['printer', async () => await world.printer?.stop()],
    ['documents', async () => world.docs !== undefined && await rm(world.docs, { recursive: true, force: true })]
  ])
})

/** The world, or the setup's own error (uvu would otherwise hide it). */
function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

function jobRow (page: Page, name: string): ReturnType<Page['locator']> {
  return page.locator('#jobs tbody tr').filter({ has: page.getByRole('rowheader', { name, exact: true }) })
}

test('a wrong PIN shows an error and no jobs', async () => {
  const w = ready()
  const { page } = w.browser
  await logIn(page, `${w.site.httpUrl}/`, 'alice', '000000')
  await page.getByRole('alert').filter({ hasText: 'Wrong username or PIN.' }).waitFor()
  assert.is(await page.getByRole('heading', { name: 'My jobs' }).isVisible(), false)
  assert.is(await page.getByLabel('PIN').inputValue(), '', 'the wrong PIN is cleared')
  await w.browser.screenshot('1-login-wrong-pin')
})

test('alice logs in with her PIN, sees her held job, releases it and sees it printed', async () => {
  const w = ready()
  const { page } = w.browser
  await logIn(page, `${w.site.httpUrl}/`, 'alice', ALICE_PIN)
  await page.getByRole('heading', { name: 'My jobs' }).waitFor()
  assert.is(await page.locator('#user-name').textContent(), 'alice')

  const report = jobRow(page, REPORT)
  await report.getByText('held', { exact: true }).waitFor()
  assert.equal(await report.locator('td').allTextContents().then((cells) => cells.slice(0, 3)), ['2', '1', 'held'])
  // Her other job shows its hostile name as plain text, and it did not run.
  await jobRow(page, EVIL_NAME).waitFor()
  assert.is(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined)
  assert.is(await page.locator('#jobs img').count(), 0)
  // Bob's job is not hers.
  assert.is(await jobRow(page, 'Bob slides').count(), 0)

  await page.getByLabel('Release to printer').selectOption('lobby')
  await w.browser.screenshot('2-my-jobs-held')
  await report.getByRole('button', { name: `Release ${REPORT}` }).click()
  await page.getByRole('status').filter({ hasText: `Released “${REPORT}” to lobby.` }).waitFor()
  // The page polls; the job goes through releasing/printing to printed on the real printer.
  await report.getByText('printed', { exact: true }).waitFor()
  assert.is(await report.getByRole('button', { name: `Release ${REPORT}` }).isVisible(), false)
  const received = await w.printer.jobFiles()
  assert.is(received.length, 1, `the printer received exactly one document: ${received.join(', ')}`)
  assert.match(received[0], /quarterly_report\.pdf$/)
  await w.browser.screenshot('3-my-jobs-printed')
})

test('deleting a held job removes its buttons and leaves the printer alone', async () => {
  const w = ready()
  const { page } = w.browser
  const evil = jobRow(page, EVIL_NAME)
  await evil.getByRole('button', { name: `Delete ${EVIL_NAME}` }).click()
  await evil.getByText('deleted', { exact: true }).waitFor()
  assert.is(await evil.getByRole('button').filter({ visible: true }).count(), 0)
  assert.is((await w.printer.jobFiles()).length, 1)
})

test('an admin signs in with the token and sees all jobs, printers and accounting totals', async () => {
  const w = ready()
  const { page } = w.browser
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('heading', { name: /Log in to release/ }).waitFor()
  await page.goto(`${w.site.httpUrl}/admin`)
  await signInAdmin(page, 'not-the-token')
  await page.getByRole('alert').filter({ hasText: 'Wrong admin token.' }).waitFor()
  await signInAdmin(page, w.site.adminToken)
  await page.getByRole('heading', { name: 'All jobs' }).waitFor()

  await jobRow(page, 'Bob slides').getByText('held', { exact: true }).waitFor()
  await jobRow(page, REPORT).getByText('printed', { exact: true }).waitFor()
  const printerRow = page.locator('#printers tbody tr').filter({ has: page.getByRole('rowheader', { name: 'lobby' }) })
  await printerRow.getByText('idle', { exact: true }).waitFor()

  // Accounting by user: alice printed 2 pages, 1 in colour; bob nothing yet.
  const usage = page.locator('#usage tbody tr')
  const alice = usage.filter({ has: page.getByRole('rowheader', { name: 'alice', exact: true }) })
  await alice.waitFor()
  assert.equal(await alice.locator('td').allTextContents(), ['1', '2', '1', '2'])
  assert.is(await usage.filter({ has: page.getByRole('rowheader', { name: 'bob', exact: true }) }).count(), 0)
  await w.browser.screenshot('4-admin')

  await page.getByLabel('Totals by').selectOption('printer')
  const lobby = usage.filter({ has: page.getByRole('rowheader', { name: 'lobby', exact: true }) })
  await lobby.waitFor()
  assert.equal(await lobby.locator('td').allTextContents(), ['1', '2', '1', '2'])

  // The export link downloads the records with the admin session.
  const href = await page.getByRole('link', { name: 'Export records (CSV)' }).getAttribute('href')
  assert.ok(href !== null)
  const csv = await page.request.get(new URL(href, w.site.httpUrl).toString())
  assert.is(csv.status(), 200)
  assert.match(csv.headers()['content-disposition'] ?? '', /^attachment/)
  const lines = (await csv.text()).trimEnd().split('\r\n')
  assert.is(lines.length, 2, 'header and one record')
  assert.match(lines[1], /,alice,.*,Quarterly report,lobby,/)
})

test('an admin imports a user from CSV, who can then log in', async () => {
  const w = ready()
  const { page } = w.browser
  await page.getByLabel('Or paste CSV rows').fill('dave,only two columns\n')
  await page.getByRole('button', { name: 'Import' }).click()
  await page.getByRole('status').filter({ hasText: /^Import failed: / }).waitFor()
  await page.getByLabel('Or paste CSV rows').fill('carol,"Danvers, Carol",246810\n')
  await page.getByRole('button', { name: 'Import' }).click()
  await page.getByRole('status').filter({ hasText: 'Imported 1 user.' }).waitFor()
  await page.locator('#users tbody tr').filter({ hasText: 'Danvers, Carol' }).waitFor()
  await w.browser.screenshot('5-admin-users')

  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByLabel('Admin token').waitFor()
  await logIn(page, `${w.site.httpUrl}/`, 'carol', '246810')
  await page.getByText('You have no print jobs.').waitFor()
  assert.is(await page.locator('#user-name').textContent(), 'carol')
  assert.ok((await readdir(w.browser.shots)).length >= 5)
})

test.run()
