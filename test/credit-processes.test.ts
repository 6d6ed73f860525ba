// Credit as escrow with real processes (issue 20): central, site-a and two terminals of site-a,
// each with its own ippeveprinter. alice has 10.00 of credit (pages at 1.00 mono); logging in at
// each terminal takes a share from the site. With the site killed, central stopped and the two
// terminals cut off from each other, alice prints at both terminals: each print is paid from
// what that terminal holds, a job that no longer fits is refused with the message saying what
// is available there and what is held out of reach, and the total charged never exceeds the
// credit. Back online, the balance at central is exact, and a top-up at central reaches the
// terminals, where a refused job then prints.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { startCentral, startSite, type SiteProcess } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import { admin } from './helpers/node-api.ts'
import { signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, usageAt, makeDocument, printedBy, terminalOnline, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type TerminalNode
} from './helpers/terminal-mesh.ts'

const PINS = { alice: '246810' }
/** A node cut off from its site notices within this (libp2p's connection close, then its own reconnect attempts). */
const OFFLINE_MS = 30_000
/** alice's credit, in cents. */
const CREDIT = 1000
/** Every page costs 1.00, mono or colour: a 3-page job costs 3.00. */
const PAGE_PRICE = 100
/** What the panel in Chromium may take to show a change (its own refresh, then the page). */
const UI_TIMEOUT_MS = 20_000

interface Credit { balance: number, credited: number, spent: number, reserved: number, here: number, currency?: string }

let mesh: TerminalMesh | undefined
let browser: TestBrowser | undefined
const restarted: SiteProcess[] = []

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t = (i: number): TerminalNode => m().terminals[i]
const holdQueue = (node: TerminalNode): string => node.node.ippUri.replace('/ipp/print', '/printers/hold')
const creditAt = async (node: SiteProcess): Promise<Credit> => await admin<Credit>(node, '/api/credit/users/alice')

async function login (node: TerminalNode): Promise<PanelSession> {
  const { session, status } = await panelLogin(node.node, 'alice', PINS.alice)
  if (session === undefined) throw new Error(`alice could not log in at ${node.node.peer} (${status})`)
  return session
}

/** Sends a 3-page job to the terminal's Hold queue and returns its id as the panel lists it. */
async function holdJob (node: TerminalNode, s: PanelSession, name: string): Promise<{ id: string, sha256: string }> {
  const doc = await makeDocument(m().docs, name, 3, [])
  await printFile(holdQueue(node), doc.path, { user: 'alice', format: 'application/pdf', name })
  let id = ''
  await until(async () => { id = (await panelJobs(s)).find((j) => j.name === name && j.state === 'held')?.id ?? ''; return id !== '' }, MESH_TIMEOUT_MS, `${name} held at ${node.node.peer}`)
  return { id, sha256: doc.sha256 }
}

/** Releases a job at the panel and waits for its end: printed (true) or back to held with a message (false). */
async function release (node: TerminalNode, s: PanelSession, job: { id: string, sha256: string }): Promise<{ printed: boolean, message?: string }> {
  const res = await panel(s, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.ok(res.status < 300, JSON.stringify(res.body))
  let end: { printed: boolean, message?: string } | undefined
  let last = ''
  await until(async () => {
    if ((await printedBy(node.printer)).includes(job.sha256)) { end = { printed: true }; return true }
    const listed = (await panelJobs(s)).find((j) => j.id === job.id)
    last = JSON.stringify(listed)
    if (listed?.state === 'held' && listed.message !== undefined && listed.message !== '') { end = { printed: false, message: listed.message }; return true }
    return false
  }, MESH_TIMEOUT_MS, `the release of ${job.id} at ${node.node.peer} ended`).catch((err: Error) => { throw new Error(`${err.message}; the panel lists it as ${last}`) })
  if (end === undefined) throw new Error('unreachable')
  return end
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-1', '--modes', 'hold'], ['--name', 'mfp-2', '--modes', 'hold']])
})

test.after(async () => {
  await browser?.close()
  for (const p of restarted.reverse()) await p.stop()
  await mesh?.stop()
})

test('alice\'s 10.00 of credit is split between the site and two terminals; cut off from the site, central and each other, each terminal prints only what its own share covers, refuses the rest with the amount available, and the balance is exact once all are back', async () => {
  const { central, site } = m()
  await admin(central, '/api/users/alice', { method: 'PATCH', body: { homeSite: 'site-a' } })
  await admin(central, '/api/prices', { method: 'PUT', body: { currency: 'EUR', rules: [{ perPage: PAGE_PRICE }] } })
  await admin(central, '/api/credit/policy', { method: 'PUT', body: { enforced: true, atZero: 'refuse' } })
  const topped = await admin<Credit>(central, '/api/credit/users/alice/top-up', { method: 'POST', body: { amount: CREDIT, reason: 'term' } })
  assert.is(topped.credited, CREDIT)

  // central passes the credit on to alice's home site; a login at a terminal tops its share up to half of what it and the site hold
  await until(async () => (await creditAt(site)).here === CREDIT, MESH_TIMEOUT_MS, 'the credit at site-a')
  // alice logs in at terminal 1's panel in Chromium (800×480): her credit shows beside her name
  browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  const page = browser.page
  await page.setViewportSize({ width: 800, height: 480 })
  await page.goto(`${t(0).node.httpUrl}/panel`)
  await page.getByLabel('User name').fill('alice')
  for (const digit of PINS.alice) await page.locator(`.keypad button[data-key="${digit}"]`).click()
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.getByText('credit 10.00 EUR (5.00 EUR here)').waitFor()
  await browser.screenshot('panel-credit')
  assert.is((await creditAt(t(0).node)).here, CREDIT / 2, 'half of it at terminal 1')
  const s1 = await login(t(0))
  const s2 = await login(t(1))
  await until(async () => (await creditAt(t(1).node)).here === CREDIT / 4, MESH_TIMEOUT_MS, 'a quarter at terminal 2')
  const jobs1 = [await holdJob(t(0), s1, 'one.pdf'), await holdJob(t(0), s1, 'two.pdf')]
  const jobs2 = [await holdJob(t(1), s2, 'three.pdf'), await holdJob(t(1), s2, 'four.pdf')]

  const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(site), portOf(central)]
  await site.kill('SIGKILL')
  await central.kill('SIGTERM')
  // and the terminals from each other: neither can ask the other for its share
  await admin(t(0).node, '/api/mesh/blocked', { method: 'PUT', body: { peers: [t(1).node.peer] } })
  await admin(t(1).node, '/api/mesh/blocked', { method: 'PUT', body: { peers: [t(0).node.peer] } })
  await until(async () => !await terminalOnline(t(0).node) && !await terminalOnline(t(1).node), OFFLINE_MS, 'both terminals working offline')

  // terminal 1 holds 5.00: one 3.00 job fits, the second does not; terminal 2 holds 2.50: neither fits
  const ends = [
    await release(t(0), s1, jobs1[0]),
    await release(t(0), s1, jobs1[1]),
    await release(t(1), s2, jobs2[0]),
    await release(t(1), s2, jobs2[1])
  ]
  assert.equal(ends.map((e) => e.printed), [true, false, false, false], `only what each terminal holds is spent there: ${JSON.stringify(ends)}`)
  // terminal 1 sees 2.50 at the site and 2.50 at terminal 2; terminal 2 sees the site's 2.50 and terminal 1's 5.00 as they were when cut off
  assert.match(ends[1].message ?? '', /^not enough credit: this job costs 3\.00 EUR, alice has 2\.00 EUR available here; 5\.00 EUR more is held by peers that cannot be reached from here now/)
  for (const refused of ends.slice(2)) assert.match(refused.message ?? '', /^not enough credit: this job costs 3\.00 EUR, alice has 2\.50 EUR available here; 7\.50 EUR more is held by peers that cannot be reached from here now/)
  const offline = [await creditAt(t(0).node), await creditAt(t(1).node)]
  assert.equal([offline[0].here, offline[1].here], [CREDIT / 2 - 3 * PAGE_PRICE, CREDIT / 4], 'each terminal\'s share dropped by exactly what it printed')
  await admin(t(0).node, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })
  await admin(t(1).node, '/api/mesh/blocked', { method: 'PUT', body: { peers: [] } })

  restarted.push(await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] }))
  restarted.push(await startSite({ dataDir: site.dataDir, adminToken: site.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] }))
  const [centralBack, siteBack] = restarted
  await until(async () => (await usageAt(siteBack)).filter((u) => u.user === 'alice').length === 1, MESH_TIMEOUT_MS, 'the print charged at the site')
  await until(async () => { const c = await creditAt(centralBack); return c.spent === 3 * PAGE_PRICE && c.reserved === 0 }, MESH_TIMEOUT_MS, 'central sees what was spent')
  const final = await creditAt(centralBack)
  assert.equal({ credited: final.credited, spent: final.spent, balance: final.balance }, { credited: CREDIT, spent: 300, balance: 700 }, 'the balance is exact: credited less what was printed')
  const usage = (await usageAt(siteBack)).filter((u) => u.user === 'alice') as Array<{ pages: number, cost?: { amount: number } }>
  assert.equal(usage.map((u) => [u.pages, u.cost?.amount]), [[3, 300]], 'the print charged once at its price')
  // central's reports page lists alice's balance; a top-up there reaches the terminals as they reconnect, and the refused job then prints
  await page.setViewportSize({ width: 1280, height: 900 })
  await page.goto(`${centralBack.httpUrl}/reports`)
  await signInAdmin(page, centralBack.adminToken).catch(async (err: Error) => {
    throw new Error(`${err.message}\nthe page at ${page.url()} said: ${await page.locator('body').innerText()}`)
  })
  await page.locator('#credit-rows tr[data-user="alice"] td[data-col="balance"]', { hasText: '7.00 EUR' }).waitFor()
  const credit = page.locator('#credit')
  await credit.getByLabel('User').fill('alice')
  await credit.getByLabel('Amount').fill('5.00')
  await credit.getByLabel('Reason').fill('refund')
  await credit.getByRole('button', { name: 'Top up' }).click()
  await page.getByText('Topped up 5.00 EUR for alice: the balance is 12.00 EUR.').waitFor()
  await browser.screenshot('reports-credit')
  await until(async () => (await creditAt(t(1).node)).balance === 1200, MESH_TIMEOUT_MS, 'the top-up seen at terminal 2')
  assert.is((await release(t(1), s2, jobs2[0])).printed, true, 'the refused job prints once the credit is there')
})

test.run()
