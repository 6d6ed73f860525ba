// The workstation client with real processes (issue 14): central, site-a, a terminal fronting
// its own ippeveprinter, and a client (alice's workstation "alice-pc") with an ippeveprinter
// as its fallback printer. `lp` prints to the client on loopback; the job stays on the
// workstation (client spooling), is listed at the site and on the terminal's panel with the
// workstation's name, and released at the panel: the terminal's printer gets identical bytes
// fetched from the client, the site's server sends none of them, and it is charged once.
// With the site killed, central and the terminal stopped (no peer left that could release
// its jobs), `lp` at the client prints at once on the fallback printer, charged once at the site and central when they are back, also after the
// client was killed -9 in between.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { until } from '../simulations/wait.ts'
import { startCentral, startClient, startSite, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { prepareSuites } from './helpers/conformance.ts'
import { startBrowser } from './helpers/browser.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS, type TerminalMesh, type PanelSession
} from './helpers/terminal-mesh.ts'

interface ReportRow { keys: string[], records: number, pages: number, colorPages: number }

const run = promisify(execFile)
/** lp has no timeout of its own against a silent server. */
const LP_TIMEOUT_MS = 30_000
const PINS = { alice: '246810', bob: '135790' }
/** A client notices its site is gone within this (libp2p's connection close on a killed peer). */
const OFFLINE_MS = 30_000
/** The terminal's device takes this long per job, so a client can be killed while it follows one. */
const PRINT_MS = 3_000
/** While the conformance suite runs, the page is looked at this often for jobs to release (nothing tells a user a job arrived). */
const SUITE_POLL_MS = 200
/** Page actions in Chromium wait at most this (the page polls the client every 2 s). */
const BROWSER_TIMEOUT_MS = 15_000

let mesh: TerminalMesh | undefined
let fallback: IppEvePrinter | undefined
let client: SiteProcess | undefined
/** The client as first started (restarts reuse its data folder, which it owns). */
let first: SiteProcess | undefined
const extra: SiteProcess[] = []

const m = (): TerminalMesh => { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const c = (): SiteProcess => { if (client === undefined) throw new Error('no client'); return client }

interface ClientStatus {
  siteReachable: boolean
  clientSpooling: boolean
  reachablePeers: Array<{ peer: string, role: string }>
  jobs: Array<{ id: string, name: string, owner: string, state: string, pages?: number, fallback?: { name: string, uri: string }, printedBy?: { printer: string, site: string }, handOver?: { site: string, done: boolean } }>
  fallbackPrinters: Array<{ name: string, uri: string, chosen: boolean, kind: string }>
}
const clientStatus = async (node: SiteProcess = c()): Promise<ClientStatus> => await (await fetch(`${node.httpUrl}/api/client`)).json() as ClientStatus

/** `lp` on the workstation: the OS's ordinary client, to the client's queue. */
async function lp (node: SiteProcess, file: string, title: string, user = 'alice'): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${node.ippPort}`, '-d', 'printmesh', '-U', user, '-t', title, file], { encoding: 'utf8', timeout: LP_TIMEOUT_MS })
}

/** The job's id once the client lists it. */
async function jobAtClient (name: string): Promise<string> {
  let id = ''
  await until(async () => {
    id = (await clientStatus()).jobs.find((j) => j.name === name)?.id ?? ''
    return id !== ''
  }, MESH_TIMEOUT_MS, `${name} listed on the workstation's page`)
  return id
}

async function session (user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(m().terminals[0].node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in (${status})`)
  return session
}

/** The sha256 of every document the site's virtual (file) printer wrote. */
async function virtualPrints (site: SiteProcess): Promise<string[]> {
  const folder = join(site.dataDir, 'virtual-printer')
  const names = await readdir(folder).catch(() => [] as string[])
  return await Promise.all(names.map(async (n) => createHash('sha256').update(await readFile(join(folder, n))).digest('hex')))
}

/** The site's counter of job document bytes it sent to other peers. */
async function documentBytesSent (site: SiteProcess): Promise<number> {
  const text = await (await fetch(`${site.httpUrl}/metrics`, { headers: { authorization: `Bearer ${site.adminToken}` } })).text()
  const line = text.split('\n').find((l) => l.startsWith('printmesh_document_bytes_sent_total '))
  if (line === undefined) throw new Error(`no printmesh_document_bytes_sent_total in the site's metrics:\n${text.slice(0, 2000)}`)
  return Number(line.split(' ')[1])
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-lobby']], { processMs: PRINT_MS })
  fallback = await startIppEvePrinter({ name: 'backup printer' })
  const joinString = (await admin<{ joinString: string }>(m().central, '/api/mesh/tokens', { method: 'POST', body: { role: 'client', site: 'site-a' } })).joinString
  client = await startClient({ args: ['--join', joinString, '--user', 'alice', '--name', 'alice-pc', '--fallback-printer', `backup=${fallback.uri}`] })
  first = client
  await until(async () => (await clientStatus()).siteReachable, MESH_TIMEOUT_MS, 'the client reaches its site')
})

test.after(async () => {
  for (const node of extra) await node.stop()
  await client?.stop()
  // the first client owns the data folder the restarted ones reused: stopped last, it removes it
  await first?.stop()
  await fallback?.stop()
  await mesh?.stop()
})

test('lp at the workstation: the job stays there, is listed at the site and on the panel as alice-pc\'s, and released at the panel prints identical bytes sent by the client; the site sends none; charged once', async () => {
  const doc = await makeDocument(m().docs, 'report.pdf', 3, [1])
  const siteBytesBefore = await documentBytesSent(m().site)
  await lp(c(), doc.path, 'report.pdf')
  const id = await jobAtClient('report.pdf')
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'held', MESH_TIMEOUT_MS, 'held on the workstation')
  assert.is((await clientStatus()).jobs.find((j) => j.id === id)?.pages, 3, 'the client analysed the document itself')

  // listed at the site (its replica of the client's jobs document) and on the terminal's panel, marked with the workstation's name
  await until(async () => (await jobsAt(m().site)).some((j) => j.id === id), MESH_TIMEOUT_MS, 'listed at the site')
  const alice = await session('alice')
  await until(async () => (await panelJobs(alice)).some((j) => j.id === id), MESH_TIMEOUT_MS, 'listed on the panel')
  const listed = (await panelJobs(alice)).find((j) => j.id === id)
  assert.equal([listed?.name, listed?.state, listed?.pages, listed?.colorPages, listed?.source], ['report.pdf', 'held', 3, 1, 'alice-pc'])
  assert.not.ok((await panelJobs(await session('bob'))).some((j) => j.id === id), 'only its owner sees it')

  const released = await panel<{ job: { state: string } }>(alice, 'POST', `/api/panel/jobs/${id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  const device = m().terminals[0].printer
  await until(async () => (await printedBy(device)).includes(doc.sha256), MESH_TIMEOUT_MS, 'printed at the terminal\'s device')
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'the workstation follows: printed')
  assert.is((await printedBy(device)).filter((s) => s === doc.sha256).length, 1, 'printed once, identical bytes')
  assert.equal(await printedBy(fallback as IppEvePrinter), [], 'nothing went to the fallback printer')
  assert.is(await documentBytesSent(m().site) - siteBytesBefore, 0, 'the site\'s server sent none of the document\'s bytes')
  const sent = c().logs().filter((l) => l.includes('sending a held job to another peer\'s printer') && l.includes(id))
  assert.is(sent.length, 1, 'the client sent it to the device\'s printer itself (client → printer)')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === id).map((u) => [u.user, u.pages, u.colorPages, u.sheets, u.printer]), [['alice', 3, 1, 3, 'site-a:mfp-lobby']], 'charged once with the exact pages, at the terminal\'s device')
})

test('CUPS\' ipp-1.1 conformance suite passes against the workstation\'s printer, its user releasing each job it keeps to the fallback printer', async () => {
  const suites = await prepareSuites()
  // the suite waits for its jobs to complete: the user sends each to the fallback printer from the page as it arrives
  let suiteDone = false
  const refused: string[] = []
  const releasing = (async () => {
    const sent = new Set<string>()
    while (!suiteDone) {
      for (const job of (await clientStatus()).jobs) {
        if (job.state !== 'held' || sent.has(job.id)) continue
        sent.add(job.id)
        const res = await fetch(`${c().httpUrl}/api/client/jobs/${job.id}/fallback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
        // 409: the suite released the job itself meanwhile (its Release-Job test): on its way already
        if (!res.ok && res.status !== 409) refused.push(`${job.name}: ${res.status} ${await res.text()}`)
      }
      await new Promise((resolve) => setTimeout(resolve, SUITE_POLL_MS))
    }
    return sent.size
  })()
  try {
    const { code, out } = await suites.run('ipp-1.1.test', c().ippUri, 'alice', PINS.alice)
    assert.not.match(out, /\[FAIL\]/, out)
    assert.is(code, 0, out)
  } finally {
    suiteDone = true
    await suites.remove()
  }
  assert.ok(await releasing > 0, 'the suite printed jobs, released from the page')
  assert.equal(refused, [], 'the page sent every held job to the fallback printer')
})

/** Every document file in a node's spool folder, by name (their sha256). */
async function spooled (node: SiteProcess): Promise<string[]> {
  const root = join(node.dataDir, 'spool')
  const out: string[] = []
  for (const dir of await readdir(root)) {
    if (dir === 'tmp') continue
    out.push(...await readdir(join(root, dir)).catch(() => [] as string[]))
  }
  return out
}

test('with client spooling turned off at the site, lp at the workstation hands the job to the site\'s server: held there as alice\'s with its pages, no copy left on the workstation; released at the panel it prints once from the site, charged once', async () => {
  const off = await admin<{ clients: { otherUsers: boolean, spooling: boolean } }>(m().site, '/api/roaming/clients', { method: 'PUT', body: { spooling: false } })
  assert.equal(off.clients, { otherUsers: false, spooling: false })
  await until(async () => !(await clientStatus()).clientSpooling, MESH_TIMEOUT_MS, 'the setting reaches the workstation')
  try {
    const doc = await makeDocument(m().docs, 'handed.pdf', 2, [1])
    const siteBytesBefore = await documentBytesSent(m().site)
    await lp(c(), doc.path, 'handed.pdf')
    const clientJob = await jobAtClient('handed.pdf')
    await until(async () => (await clientStatus()).jobs.find((j) => j.id === clientJob)?.handOver?.done === true, MESH_TIMEOUT_MS, 'the workstation says it was handed over')
    const atClient = (await clientStatus()).jobs.find((j) => j.id === clientJob)
    assert.equal([atClient?.state, atClient?.handOver], ['deleted', { site: 'site-a', done: true }], 'the workstation\'s page names the site')
    // the bytes leave right after the job is recorded deleted (devices/jobs/service.ts completeHandOver): the page can show it between the two
    await until(async () => !(await spooled(c())).includes(doc.sha256), MESH_TIMEOUT_MS, 'no copy of the document stays on the workstation')
    assert.ok((await spooled(m().site)).includes(doc.sha256), 'the site\'s spool holds it')

    // the site's own job, owned by alice, analysed there
    const siteJobs = (await jobsAt(m().site)).filter((j) => j.name === 'handed.pdf' && j.id !== clientJob)
    assert.equal(siteJobs.map((j) => [j.owner, j.state]), [['alice', 'held']], 'one job at the site, held for alice')
    const siteJob = siteJobs[0].id
    const alice = await session('alice')
    await until(async () => (await panelJobs(alice)).some((j) => j.id === siteJob), MESH_TIMEOUT_MS, 'listed on the panel')
    const listed = (await panelJobs(alice)).filter((j) => j.name === 'handed.pdf')
    assert.equal(listed.map((j) => [j.id, j.pages, j.colorPages]), [[siteJob, 2, 1]], 'listed once, as the site\'s job, with its pages')

    const released = await panel<{ job: { state: string } }>(alice, 'POST', `/api/panel/jobs/${siteJob}/release`)
    assert.is(released.status, 200, JSON.stringify(released.body))
    const device = m().terminals[0].printer
    await until(async () => (await printedBy(device)).includes(doc.sha256), MESH_TIMEOUT_MS, 'printed at the terminal\'s device')
    assert.is((await printedBy(device)).filter((s) => s === doc.sha256).length, 1, 'printed once, identical bytes')
    assert.ok(await documentBytesSent(m().site) - siteBytesBefore >= (await stat(doc.path)).size, 'the site sent the document to the terminal (it holds it now)')
    await until(async () => (await usageAt(m().site)).some((u) => u.jobId === siteJob), MESH_TIMEOUT_MS, 'usage reaches the site')
    assert.equal((await usageAt(m().site)).filter((u) => u.jobId === siteJob || u.jobId === clientJob).map((u) => [u.jobId, u.user, u.pages, u.colorPages, u.printer]), [[siteJob, 'alice', 2, 1, 'device']], 'charged once, to alice, with the exact pages, at the terminal\'s printer')
  } finally {
    await admin(m().site, '/api/roaming/clients', { method: 'PUT', body: { spooling: true } })
    await until(async () => (await clientStatus()).clientSpooling, MESH_TIMEOUT_MS, 'client spooling back on at the workstation')
  }
})

test('with the site\'s setting, the workstation takes jobs for another user, owned by that user', async () => {
  const view = await admin<{ clients: { otherUsers: boolean } }>(m().site, '/api/roaming/clients', { method: 'PUT', body: { otherUsers: true } })
  assert.equal(view.clients, { otherUsers: true, spooling: true })
  const doc = await makeDocument(m().docs, 'for-bob.pdf', 1, [])
  // the setting reaches the client with the site's config document
  await until(async () => await lp(c(), doc.path, 'for-bob.pdf', 'bob').then(() => true, () => false), MESH_TIMEOUT_MS, 'lp -U bob accepted')
  await until(async () => (await clientStatus()).jobs.some((j) => j.name === 'for-bob.pdf'), MESH_TIMEOUT_MS, 'kept on the workstation')
  assert.equal((await clientStatus()).jobs.filter((j) => j.name === 'for-bob.pdf').map((j) => j.owner), ['bob'], 'owned by bob')
  await admin(m().site, '/api/roaming/clients', { method: 'PUT', body: { otherUsers: false } })
})

test('released at the same time at the terminal\'s panel and on the site\'s page: the workstation grants one, printed once, charged once', async () => {
  const doc = await makeDocument(m().docs, 'contested.pdf', 2, [])
  await lp(c(), doc.path, 'contested.pdf')
  const id = await jobAtClient('contested.pdf')
  const atPanel = await session('alice')
  const atSite = await panelLogin(m().site, 'alice', PINS.alice)
  if (atSite.session === undefined) throw new Error(`alice could not log in at the site (${atSite.status})`)
  const siteSession = atSite.session
  await until(async () => (await panelJobs(atPanel)).some((j) => j.id === id && j.state === 'held'), MESH_TIMEOUT_MS, 'held, listed on the panel')
  await until(async () => (await panel<{ jobs: Array<{ id: string }>, remote: Array<{ id: string }> }>(siteSession, 'GET', '/api/jobs')).body.remote.some((j) => j.id === id), MESH_TIMEOUT_MS, 'listed on the site\'s page')
  const answers = await Promise.all([
    panel<unknown>(atPanel, 'POST', `/api/panel/jobs/${id}/release`),
    panel<unknown>(siteSession, 'POST', `/api/jobs/${id}/release`)
  ])
  assert.is(answers.filter((a) => a.status === 200).length, 1, `one release wins: ${JSON.stringify(answers)}`)
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'printed')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'usage reaches the site')
  const atDevice = (await printedBy(m().terminals[0].printer)).filter((sha) => sha === doc.sha256).length
  const atSitePrinter = (await virtualPrints(m().site)).filter((sha) => sha === doc.sha256).length
  assert.is(atDevice + atSitePrinter, 1, `printed once (terminal's device ${atDevice}, site's printer ${atSitePrinter})`)
  assert.is((await usageAt(m().site)).filter((u) => u.jobId === id).length, 1, 'charged once')
})

test('the client killed -9 while the device prints its job: after its restart the printer\'s word settles it, printed once and charged once', async () => {
  const doc = await makeDocument(m().docs, 'interrupted.pdf', 1, [])
  await lp(c(), doc.path, 'interrupted.pdf')
  const id = await jobAtClient('interrupted.pdf')
  const alice = await session('alice')
  await until(async () => (await panelJobs(alice)).some((j) => j.id === id && j.state === 'held'), MESH_TIMEOUT_MS, 'held, listed on the panel')
  assert.is((await panel<unknown>(alice, 'POST', `/api/panel/jobs/${id}/release`)).status, 200)
  // the device takes PRINT_MS per job: it has accepted the document, and the client is following it, when the client is killed
  await until(async () => (await printedBy(m().terminals[0].printer)).includes(doc.sha256), MESH_TIMEOUT_MS, 'the device has it')
  assert.is((await clientStatus()).jobs.find((j) => j.id === id)?.state, 'printing', 'the client is still following it')
  const data = c().dataDir
  await c().kill('SIGKILL')
  client = await startClient({ dataDir: data, args: ['--user', 'alice', '--name', 'alice-pc', '--fallback-printer', `backup=${(fallback as IppEvePrinter).uri}`] })
  extra.push(client)
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'settled as printed after the restart')
  assert.is((await printedBy(m().terminals[0].printer)).filter((sha) => sha === doc.sha256).length, 1, 'printed once')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === id).map((u) => [u.pages, u.printer]), [[1, 'site-a:mfp-lobby']], 'charged once')
})

test('the workstation prints for its user only: lp -U mallory is refused and nothing is kept', async () => {
  const doc = await makeDocument(m().docs, 'not-mine.pdf', 1, [])
  const refused = await run('lp', ['-h', `127.0.0.1:${c().ippPort}`, '-d', 'printmesh', '-U', 'mallory', '-t', 'not-mine.pdf', doc.path], { encoding: 'utf8', timeout: LP_TIMEOUT_MS }).then(() => undefined, (err: Error & { stderr?: string }) => err)
  assert.ok(refused !== undefined, 'lp fails')
  assert.match(String(refused.stderr), /prints for alice only/, 'lp shows why')
  assert.not.ok((await clientStatus()).jobs.some((j) => j.name === 'not-mine.pdf'), 'no job kept')
})

test('a workstation that is off: its job is listed on the panel as unavailable, a release says the workstation is off; back on, it releases', async () => {
  const doc = await makeDocument(m().docs, 'asleep.pdf', 1, [])
  await lp(c(), doc.path, 'asleep.pdf')
  const id = await jobAtClient('asleep.pdf')
  const alice = await session('alice')
  await until(async () => (await panelJobs(alice)).some((j) => j.id === id && j.state === 'held'), MESH_TIMEOUT_MS, 'held, listed on the panel')
  const data = c().dataDir
  await c().kill('SIGTERM')
  await until(async () => (await panelJobs(alice)).find((j) => j.id === id)?.unavailable === true, OFFLINE_MS, 'listed as unavailable')
  const refused = await panel<{ error: string }>(alice, 'POST', `/api/panel/jobs/${id}/release`)
  assert.is(refused.status, 503, JSON.stringify(refused.body))
  assert.match(refused.body.error, /^alice-pc, which holds this job, is off or unreachable .*release it when alice-pc is back on the network$/)
  client = await startClient({ dataDir: data, args: ['--user', 'alice', '--name', 'alice-pc', '--fallback-printer', `backup=${(fallback as IppEvePrinter).uri}`] })
  extra.push(client)
  await until(async () => (await panelJobs(alice)).find((j) => j.id === id)?.unavailable === undefined, MESH_TIMEOUT_MS, 'available again')
  assert.is((await panel<unknown>(alice, 'POST', `/api/panel/jobs/${id}/release`)).status, 200)
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'printed')
  assert.is((await printedBy(m().terminals[0].printer)).filter((sha) => sha === doc.sha256).length, 1, 'printed once')
})

test('with the site killed, central and the terminal stopped, lp prints at once on the fallback printer, then on a printer it printed to before once the user picks it on the page; back, each is charged once at the site and central, also after the client was killed -9 in between', async () => {
  const { site, central } = m()
  const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(site), portOf(central)]
  // central's row of the fallback printer before: every fallback print so far (the conformance suite's) has reached it
  const fallbackAtSite = (await usageAt(site)).filter((u) => u.printer === 'backup')
  const backupRowAt = async (node: SiteProcess): Promise<ReportRow | undefined> => (await admin<{ rows: ReportRow[] }>(node, '/api/reports?groupBy=printer,user')).rows.find((r) => r.keys[0].endsWith('backup') && r.keys[1] === 'alice')
  await until(async () => (await backupRowAt(central))?.records === fallbackAtSite.length, MESH_TIMEOUT_MS, 'central has the fallback prints so far')
  const before = await backupRowAt(central)
  await until(async () => (await clientStatus()).reachablePeers.map((p) => p.role).sort().join() === 'site,terminal', MESH_TIMEOUT_MS, 'the client connected to the site and the terminal')
  await site.kill('SIGKILL')
  await central.kill('SIGTERM')
  // the terminal still releases the workstation's jobs: no fallback while it is reachable
  await until(async () => (await clientStatus()).reachablePeers.map((p) => p.role).join() === 'terminal', OFFLINE_MS, 'the client sees only the terminal')
  assert.ok((await clientStatus()).siteReachable, 'a terminal of the site is a peer that can release its jobs')
  await m().terminals[0].node.stop()
  await until(async () => !(await clientStatus()).siteReachable, OFFLINE_MS, 'the client sees no peer of its site')

  const doc = await makeDocument(m().docs, 'urgent.pdf', 2, [0])
  await lp(c(), doc.path, 'urgent.pdf')
  const id = await jobAtClient('urgent.pdf')
  await until(async () => (await printedBy(fallback as IppEvePrinter)).includes(doc.sha256), MESH_TIMEOUT_MS, 'printed on the fallback printer')
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'printed, as the page shows')
  const shown = (await clientStatus()).jobs.find((j) => j.id === id)
  assert.equal(shown?.fallback, { name: 'backup', uri: (fallback as IppEvePrinter).uri }, 'the page says which fallback printer, and where')
  // the workstation's page in Chromium: the site cannot be reached, and where the job went
  const browser = await startBrowser({ timeoutMs: BROWSER_TIMEOUT_MS })
  try {
    await browser.page.goto(`${c().httpUrl}/`)
    await browser.page.locator('#connection').filter({ hasText: 'Site site-a cannot be reached: new jobs print at once on the fallback printer.' }).waitFor()
    const row = browser.page.locator(`tr[data-job="${id}"]`)
    await row.filter({ hasText: `fallback printer backup (${(fallback as IppEvePrinter).uri})` }).waitFor()
    assert.match(await row.innerText(), /urgent\.pdf\s+2\s/, 'its name and pages')
    await browser.screenshot('client-page-fallback')
    // the user picks the lobby MFP, which this workstation printed to before (test 1) and which still answers
    const select = browser.page.locator('#fallback-printer')
    await select.locator('optgroup[label="Printers you printed to before"] option', { hasText: 'site-a:mfp-lobby' }).waitFor({ state: 'attached' })
    await select.selectOption('site-a:mfp-lobby')
    await browser.page.getByRole('button', { name: 'Use this printer' }).click()
    await browser.page.locator('#status').filter({ hasText: 'New jobs fall back to site-a:mfp-lobby' }).waitFor()
    assert.equal(browser.pageErrors, [], 'no script errors')
  } finally {
    await browser.close()
  }
  const lobby = m().terminals[0].printer
  assert.equal((await clientStatus()).fallbackPrinters.filter((p) => p.chosen).map((p) => [p.name, p.uri, p.kind]), [['site-a:mfp-lobby', lobby.uri, 'printed-before']], 'the choice is kept')
  const second = await makeDocument(m().docs, 'urgent-2.pdf', 3, [])
  await lp(c(), second.path, 'urgent-2.pdf')
  const secondId = await jobAtClient('urgent-2.pdf')
  await until(async () => (await printedBy(lobby)).includes(second.sha256), MESH_TIMEOUT_MS, 'printed at once on the chosen printer, the lobby MFP')
  await until(async () => (await clientStatus()).jobs.find((j) => j.id === secondId)?.state === 'printed', MESH_TIMEOUT_MS, 'printed, as the page shows')
  assert.equal((await clientStatus()).jobs.find((j) => j.id === secondId)?.fallback, { name: 'site-a:mfp-lobby', uri: lobby.uri }, 'the page says it went to that fallback printer')
  assert.not.ok((await printedBy(fallback as IppEvePrinter)).includes(second.sha256), 'not on the configured fallback printer')

  // the client is killed -9 and restarted on its data before the site is back
  const data = c().dataDir
  await c().kill('SIGKILL')
  client = await startClient({ dataDir: data, args: ['--user', 'alice', '--name', 'alice-pc', '--fallback-printer', `backup=${(fallback as IppEvePrinter).uri}`] })
  extra.push(client)
  assert.is((await clientStatus()).jobs.find((j) => j.id === id)?.state, 'printed', 'still printed after the restart')

  const back = [
    await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] }),
    await startSite({ dataDir: site.dataDir, adminToken: site.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] })
  ]
  extra.push(...back)
  const [centralBack, siteBack] = back
  await until(async () => (await usageAt(siteBack)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'the fallback usage reached the site')
  assert.equal((await usageAt(siteBack)).filter((u) => u.jobId === id).map((u) => [u.user, u.pages, u.colorPages, u.printer]), [['alice', 2, 1, 'backup']], 'charged once at the site, with the exact pages, at the fallback printer')
  // central's report: the fallback printer's row grew by this one record
  await until(async () => ((await backupRowAt(centralBack))?.records ?? 0) > (before?.records ?? 0), MESH_TIMEOUT_MS, 'the fallback usage reached central')
  const row = await backupRowAt(centralBack)
  const grew = [(row?.records ?? 0) - (before?.records ?? 0), (row?.pages ?? 0) - (before?.pages ?? 0), (row?.colorPages ?? 0) - (before?.colorPages ?? 0)]
  assert.equal(grew, [1, 2, 1], 'charged once at central, with the exact pages')
  assert.is((await printedBy(fallback as IppEvePrinter)).filter((s) => s === doc.sha256).length, 1, 'printed once')
  await until(async () => (await usageAt(siteBack)).some((u) => u.jobId === secondId), MESH_TIMEOUT_MS, 'the second fallback usage reached the site')
  assert.equal((await usageAt(siteBack)).filter((u) => u.jobId === secondId).map((u) => [u.user, u.pages, u.colorPages, u.printer]), [['alice', 3, 0, 'site-a:mfp-lobby']], 'charged once, at the printer it went to')
  assert.is((await printedBy(lobby)).filter((s) => s === second.sha256).length, 1, 'printed once')
})

test.run()
