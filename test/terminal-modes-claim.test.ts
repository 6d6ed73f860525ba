// A site whose terminals do not trust the requesting-user-name workstations send (issue 13
// item 3), with real processes: central, site-a and one terminal fronting its ippeveprinter.
// The admin turns trust off (PUT /api/roaming/terminals {"trustUserName": false}); a job sent by
// lp -U mallory is nobody's: held whatever its mode, listed to nobody's jobs, offered at the panel
// to claim. alice claims it in Chromium (it becomes her Hold job, she prints it) and a Direct job by
// the API (it prints at once); bob is told it was claimed; both are charged to alice, none to
// mallory. Trust back on, lp -U carol prints as carol.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { until } from '../simulations/wait.ts'
import type { SiteProcess } from '../simulations/node-process.ts'
import { startBrowser } from './helpers/browser.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type TerminalNode, type PanelSession
} from './helpers/terminal-mesh.ts'

const run = promisify(execFile)
const PINS = { alice: '246810', bob: '135790', carol: '112358' }
/** lp gives up on a silent server after this. */
const LP_TIMEOUT_MS = 30_000
/** A page action waits at most this (the panel polls its lists every few seconds). */
const BROWSER_TIMEOUT_MS = 20_000

let mesh: TerminalMesh | undefined
function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t1 = (): TerminalNode => m().terminals[0]

interface Claimable { id: string, name: string, state: string, queue: string, pages?: number, from?: string }

async function session (user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(t1().node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in (${status})`)
  return session
}

async function lp (mode: string, user: string, file: string, title: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${t1().node.ippPort}`, '-d', mode, '-U', user, '-t', title, file], { timeout: LP_TIMEOUT_MS })
}

const setTerminals = async (body: unknown): Promise<{ status: number, body: { error?: string, terminals?: { trustUserName: boolean } } }> => {
  const res = await fetch(`${m().site.httpUrl}/api/roaming/terminals`, {
    method: 'PUT', headers: { authorization: `Bearer ${m().site.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() as { error?: string, terminals?: { trustUserName: boolean } } }
}

/** Waits until the terminal logged that it applies `trust` from its site's configuration. */
async function trusting (node: SiteProcess, trust: boolean): Promise<void> {
  await until(async () => node.logs().some((line) => {
    if (!line.startsWith('{')) return false
    const entry = JSON.parse(line) as { msg?: string, trustUserName?: boolean, source?: string }
    return /^release modes (changed|offered)/.test(entry.msg ?? '') && entry.trustUserName === trust
  }), MESH_TIMEOUT_MS, `trustUserName ${String(trust)} applied at the terminal`)
}

/** The job `title` in the terminal's claim list, once it is there. */
async function claimableAs (s: PanelSession, title: string): Promise<Claimable> {
  let found: Claimable | undefined
  await until(async () => {
    found = (await panel<{ jobs: Claimable[] }>(s, 'GET', '/api/claims')).body.jobs.find((j) => j.name === title)
    return found !== undefined
  }, MESH_TIMEOUT_MS, `${title} offered to claim`)
  return found as Claimable
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-claim']])
})

test.after(async () => { await mesh?.stop() })

test('trustUserName: bad values are refused with 400 naming the field; false is shown and reaches the terminal', async () => {
  const bad = await setTerminals({ trustUserName: 'no' })
  assert.is(bad.status, 400)
  assert.match(bad.body.error ?? '', /trustUserName must be true or false/)
  const alone = await setTerminals({ defaultMode: 'pull' })
  assert.is(alone.status, 400)
  assert.match(alone.body.error ?? '', /defaultMode: name the modes offered with it/)
  const off = await setTerminals({ trustUserName: false })
  assert.is(off.status, 200, JSON.stringify(off.body))
  assert.equal(off.body.terminals, { configured: false, trustUserName: false }, 'the modes stay the terminal\'s own')
  await trusting(t1().node, false)
})

test('untrusted: lp -U mallory\'s jobs are held for nobody; alice claims the Hold one on the panel in Chromium and prints it, the Direct one by the API prints at once; bob is told it was claimed; charged to alice only', async () => {
  const held = await makeDocument(m().docs, 'whose-report.pdf', 2, [])
  const direct = await makeDocument(m().docs, 'whose-direct.pdf', 1, [0])
  await lp('hold', 'mallory', held.path, 'whose-report.pdf')
  await lp('direct', 'mallory', direct.path, 'whose-direct.pdf')
  const alice = await session('alice')
  const toClaim = await claimableAs(alice, 'whose-report.pdf')
  const directJob = await claimableAs(alice, 'whose-direct.pdf')
  assert.equal([toClaim.state, toClaim.queue, toClaim.pages, directJob.state, directJob.queue], ['held', 'hold', 2, 'held', 'direct'], 'both held, Direct too')
  assert.is(toClaim.from, '127.0.0.1', 'with the sending address')
  assert.not.ok((await printedBy(t1().printer)).includes(direct.sha256), 'the Direct job waits for its owner')
  assert.equal((await jobsAt(m().site)).filter((j) => j.name.startsWith('whose-')).map((j) => j.owner).sort(), ['#unclaimed', '#unclaimed'], 'mallory owns nothing')
  assert.not.ok((await panelJobs(alice)).some((j) => j.name.startsWith('whose-')), 'nobody\'s jobs are in no one\'s list')

  // alice at the panel, in Chromium: the claim list, the Claim button, then the job is hers and she prints it
  const browser = await startBrowser({ timeoutMs: BROWSER_TIMEOUT_MS })
  try {
    const { page } = browser
    await page.goto(`${t1().node.httpUrl}/panel`)
    await page.getByLabel('User name').fill('alice')
    await page.getByLabel('PIN', { exact: true }).fill(PINS.alice)
    await page.getByRole('button', { name: 'Log in' }).click()
    const claims = page.locator('#claims')
    await claims.getByRole('heading', { name: 'Sent here without a login' }).waitFor()
    await claims.getByRole('button', { name: 'Claim whose-report.pdf' }).click()
    const mine = page.locator(`#jobs li[data-job="${toClaim.id}"]`)
    await mine.getByRole('button', { name: 'Print' }).click()
    await until(async () => (await printedBy(t1().printer)).includes(held.sha256), MESH_TIMEOUT_MS, 'the claimed Hold job printed')
    assert.equal(browser.pageErrors, [])
    await page.getByRole('button', { name: 'Log out' }).click()
  } finally {
    await browser.close()
  }

  const bob = await session('bob')
  const late = await panel<{ error: string }>(bob, 'POST', `/api/claims/${toClaim.id}`)
  assert.is(late.status, 409, JSON.stringify(late.body))
  assert.is(late.body.error, 'this job was already claimed')
  assert.not.ok((await panelJobs(bob)).some((j) => j.id === toClaim.id), 'not in bob\'s list')

  const claimed = await panel<{ job: Claimable }>(alice, 'POST', `/api/claims/${directJob.id}`)
  assert.is(claimed.status, 200, JSON.stringify(claimed.body))
  await until(async () => (await printedBy(t1().printer)).includes(direct.sha256), MESH_TIMEOUT_MS, 'the claimed Direct job prints at once')
  assert.equal((await panel<{ jobs: Claimable[] }>(bob, 'GET', '/api/claims')).body.jobs.filter((j) => j.name.startsWith('whose-')), [], 'nothing left to claim')

  await until(async () => (await usageAt(m().site)).filter((u) => u.jobId === toClaim.id || u.jobId === directJob.id).length === 2, MESH_TIMEOUT_MS, 'usage reaches the site')
  const usage = (await usageAt(m().site)).filter((u) => u.jobId === toClaim.id || u.jobId === directJob.id).map((u) => [u.user, u.pages]).sort()
  assert.equal(usage, [['alice', 1], ['alice', 2]], 'charged once each, to alice')
  assert.equal([await printedBy(t1().printer)].flat().filter((s) => s === held.sha256 || s === direct.sha256).length, 2, 'each printed once')
})

test('trust turned back on: lp -U carol to Direct prints at once as carol', async () => {
  const on = await setTerminals({ trustUserName: true })
  assert.is(on.status, 200)
  await until(async () => t1().node.logs().filter((l) => l.includes('"trustUserName":true') && l.includes('release modes changed')).length > 0, MESH_TIMEOUT_MS, 'trust applied')
  const doc = await makeDocument(m().docs, 'carols.pdf', 1, [])
  await lp('direct', 'carol', doc.path, 'carols.pdf')
  await until(async () => (await printedBy(t1().printer)).includes(doc.sha256), MESH_TIMEOUT_MS, 'printed on arrival')
  await until(async () => (await jobsAt(m().site)).some((j) => j.name === 'carols.pdf'), MESH_TIMEOUT_MS, 'replicated')
  assert.equal((await jobsAt(m().site)).filter((j) => j.name === 'carols.pdf').map((j) => j.owner), ['carol'])
})

test.run()
