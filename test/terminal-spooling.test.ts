// Device spooling with real processes: workstations print with ipptool straight to a
// terminal (terminal-1 of site-a, fronting its own ippeveprinter), to the queue of a release
// mode. Direct prints on arrival; Hold is listed and released only at terminal-1; Pull is
// listed at terminal-2 (marked with terminal-1's name) and released there through
// terminal-1's grant, the document moving terminal-1 → terminal-2 → its printer. Each is
// printed once with identical bytes and charged once with its exact pages; the accounting
// reaches the site. CUPS' conformance suites pass against the Direct queue, and the three
// queues are advertised by DNS-SD.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { startCentral, startSite } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import { browse, type Browsed } from './helpers/avahi.ts'
import { prepareSuites } from './helpers/conformance.ts'
import { rejects } from './helpers/assert.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type TerminalNode
} from './helpers/terminal-mesh.ts'

const PINS = { alice: '246810', bob: '135790', carol: '112358' }
const ALICE_CARD = '0004417223'
/** terminal-2's intake takes at most this many pages × copies per job (its --max-job-pages). */
const FLOOR2_MAX_PAGES = 5
/** A node cut off from its site notices within this (libp2p's connection close, then its own reconnect attempts). */
const OFFLINE_MS = 30_000

let mesh: TerminalMesh | undefined

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t1 = (): TerminalNode => m().terminals[0]
const t2 = (): TerminalNode => m().terminals[1]
const queueUri = (t: TerminalNode, mode: string): string => t.node.ippUri.replace('/ipp/print', `/printers/${mode}`)

async function session (t: TerminalNode, user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(t.node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in (${status})`)
  return session
}

/** Prints a PDF to `t`'s queue `mode` as `user`; the job's mesh id (found in the site's replica of `t`'s jobs) and the document's sha256. */
async function printTo (t: TerminalNode, mode: string, user: string, name: string, pages: number, color: number[]): Promise<{ id: string, sha256: string }> {
  const doc = await makeDocument(m().docs, name, pages, color)
  await printFile(queueUri(t, mode), doc.path, { user, format: 'application/pdf', name })
  let id = ''
  await until(async () => {
    id = (await jobsAt(m().site)).find((j) => j.name === name && j.queue === mode)?.id ?? ''
    return id !== ''
  }, MESH_TIMEOUT_MS, `${name} replicated to the site`)
  return { id, sha256: doc.sha256 }
}

/** The state of a job as the site's replica shows it. */
const stateAtSite = async (id: string): Promise<string | undefined> => (await jobsAt(m().site)).find((j) => j.id === id)?.state

test.before(async () => {
  mesh = await startTerminalMesh({ ...PINS, alice: { pin: PINS.alice, card: ALICE_CARD } }, [['--name', 'mfp-lobby'], ['--name', 'mfp-floor2', '--max-job-pages', String(FLOOR2_MAX_PAGES)]])
})

test.after(async () => { await mesh?.stop() })

test('Direct: a job sent to the terminal\'s direct queue prints on arrival on its printer, charged once to its owner', async () => {
  const job = await printTo(t1(), 'direct', 'carol', 'arrival.pdf', 2, [1])
  await until(async () => await stateAtSite(job.id) === 'printed', MESH_TIMEOUT_MS, 'printed on arrival')
  assert.equal(await printedBy(t1().printer), [job.sha256], 'identical bytes, once, on the terminal\'s own printer')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === job.id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === job.id).map((u) => [u.user, u.pages, u.colorPages, u.sheets, u.site]), [['carol', 2, 1, 2, 'site-a']])
})

test('Hold: listed and released only at the terminal that holds it, never at another terminal or the site', async () => {
  const job = await printTo(t1(), 'hold', 'alice', 'private.pdf', 1, [])
  const here = await session(t1(), 'alice')
  const there = await session(t2(), 'alice')
  assert.equal((await panelJobs(here)).filter((j) => j.id === job.id).map((j) => [j.name, j.state, j.pages]), [['private.pdf', 'held', 1]])
  // the job's record replicates to the site and terminal-2, but neither offers it
  assert.not.ok((await panelJobs(there)).some((j) => j.id === job.id), 'not listed at terminal-2')
  const elsewhere = await panel<{ error: string }>(there, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(elsewhere.status, 404, 'terminal-2 cannot release it')
  const released = await panel<{ job: { state: string } }>(here, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => await stateAtSite(job.id) === 'printed', MESH_TIMEOUT_MS, 'printed at terminal-1')
  assert.is((await printedBy(t1().printer)).filter((s) => s === job.sha256).length, 1, 'printed once at terminal-1')
  assert.not.ok((await printedBy(t2().printer)).includes(job.sha256), 'never at terminal-2')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === job.id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === job.id).map((u) => [u.user, u.pages, u.printer]), [['alice', 1, 'device']])
})

test('Pull: held at terminal-1, listed at terminal-2 with terminal-1\'s name, released there once through terminal-1\'s grant', async () => {
  const job = await printTo(t1(), 'pull', 'bob', 'pulled.pdf', 3, [0, 2])
  const there = await session(t2(), 'bob')
  await until(async () => (await panelJobs(there)).some((j) => j.id === job.id), MESH_TIMEOUT_MS, 'listed at terminal-2')
  const listed = (await panelJobs(there)).find((j) => j.id === job.id)
  assert.equal([listed?.name, listed?.state, listed?.pages, listed?.colorPages, listed?.source], ['pulled.pdf', 'held', 3, 2, 'mfp-lobby'])
  const alice = await session(t2(), 'alice')
  assert.not.ok((await panelJobs(alice)).some((j) => j.id === job.id), 'only its owner sees it')

  const released = await panel<{ job: { state: string } }>(there, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => await stateAtSite(job.id) === 'printed', MESH_TIMEOUT_MS, 'the holder follows: printed')
  assert.is((await printedBy(t2().printer)).filter((s) => s === job.sha256).length, 1, 'printed once, at terminal-2, with identical bytes')
  assert.not.ok((await printedBy(t1().printer)).includes(job.sha256), 'not at terminal-1')
  const again = await panel<{ error: string }>(there, 'POST', `/api/panel/jobs/${job.id}/release`)
  assert.ok(again.status >= 400, 'a printed job is not released again')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === job.id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === job.id).map((u) => [u.user, u.pages, u.colorPages, u.sheets]), [['bob', 3, 2, 3]], 'charged once with the exact pages')
})

test('a terminal\'s intake limits are its own options: terminal-2 refuses a job over its page limit, nothing held or printed', async () => {
  const doc = await makeDocument(m().docs, 'too-long.pdf', 3, [])
  const refused = await rejects(printFile(queueUri(t2(), 'direct'), doc.path, { user: 'carol', format: 'application/pdf', name: 'too-long.pdf', copies: 2 }), Error)
  assert.match(refused.message, /client-error-request-entity-too-large/, 'ipptool saw the page limit refused')
  const fits = await printTo(t2(), 'direct', 'carol', 'fits.pdf', 2, [])
  await until(async () => await stateAtSite(fits.id) === 'printed', MESH_TIMEOUT_MS, 'a job within the limit prints')
  assert.not.ok((await printedBy(t2().printer)).includes(doc.sha256), 'the refused job never reached the printer')
  assert.equal((await jobsAt(m().site)).filter((j) => j.name === 'too-long.pdf').map((j) => j.state), ['failed'], 'the refused job ended failed, never held')
})

test('with the site killed and central stopped, alice logs in at terminal-1 by PIN and by card and releases her Hold job; once both are back it is charged once at the site', async () => {
  const job = await printTo(t1(), 'hold', 'alice', 'offline.pdf', 2, [0])
  const { site, central } = m()
  const portOf = (node: typeof site): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(site), portOf(central)]
  await site.kill('SIGKILL')
  await central.kill('SIGTERM')
  const restarted: Array<Awaited<ReturnType<typeof startSite>>> = []
  try {
    await until(async () => ((await (await fetch(`${t1().node.httpUrl}/api/panel/status`)).json()) as { online: boolean }).online === false, OFFLINE_MS, 'terminal-1 working offline')
    const byPin = await session(t1(), 'alice')
    assert.equal((await panelJobs(byPin)).filter((j) => j.id === job.id).map((j) => j.state), ['held'], 'her job is listed while offline')
    const card = await fetch(`${t1().node.httpUrl}/api/login/card`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card: ALICE_CARD }) })
    assert.is(card.status, 200, 'the card logs her in offline too')
    const released = await panel<{ job: { state: string } }>(byPin, 'POST', `/api/panel/jobs/${job.id}/release`)
    assert.is(released.status, 200, JSON.stringify(released.body))
    await until(async () => (await printedBy(t1().printer)).includes(job.sha256), MESH_TIMEOUT_MS, 'printed offline at terminal-1')
    // central and the site come back on their data and ports; the usage recorded offline reaches the site once
    restarted.push(await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] }))
    restarted.push(await startSite({ dataDir: site.dataDir, adminToken: site.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] }))
    const back = restarted[1]
    await until(async () => (await usageAt(back)).some((u) => u.jobId === job.id), MESH_TIMEOUT_MS, 'the offline usage reached the site')
    assert.equal((await usageAt(back)).filter((u) => u.jobId === job.id).map((u) => [u.user, u.pages, u.colorPages, u.printer]), [['alice', 2, 1, 'device']], 'charged once, with the exact pages')
    assert.is((await printedBy(t1().printer)).filter((s) => s === job.sha256).length, 1, 'printed once')
  } finally {
    for (const p of restarted.reverse()) await p.kill('SIGTERM')
  }
})

test('ipptool\'s ipp-1.1 and ipp-2.0 suites pass against the terminal\'s Direct queue: no FAIL, exit 0', async () => {
  const suites = await prepareSuites()
  try {
    for (const name of ['ipp-1.1.test', 'ipp-2.0.test']) {
      const { code, out } = await suites.run(name, queueUri(t1(), 'direct'), 'carol', PINS.carol)
      assert.not.match(out, /\[FAIL\]/, out)
      assert.is(code, 0, out)
    }
  } finally {
    await suites.remove()
  }
})

test('the terminal\'s queues are advertised by DNS-SD, one per release mode, each at the path its IPP server answers', async () => {
  const names = ['hold @ mfp-lobby', 'pull @ mfp-lobby', 'direct @ mfp-lobby']
  let seen: Browsed[] = []
  await until(async () => { seen = (await browse()).filter((b) => names.includes(b.name)); return new Set(seen.map((b) => b.name)).size === names.length }, MESH_TIMEOUT_MS, 'the three queues advertised')
  const port = t1().node.ippPort
  for (const b of seen) assert.is(b.port, port, `${b.name} on the terminal's IPP port`)
  const rp = new Map(seen.map((b) => [b.name, b.txt.get('rp')]))
  assert.equal([rp.get('hold @ mfp-lobby'), rp.get('pull @ mfp-lobby'), rp.get('direct @ mfp-lobby')], ['ipp/print', 'printers/pull', 'printers/direct'], 'the default mode (hold) at /ipp/print')
})

test.run()
