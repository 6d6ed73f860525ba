// The release modes of a site's terminals as the site's configuration (issue 13), with real
// processes: central, site-a and one terminal (started with --modes direct,hold,pull) fronting
// its ippeveprinter. The site's admin sets the modes (PUT /api/roaming/terminals); the terminal
// applies them as they arrive, without a restart: a mode turned off refuses jobs with a clear
// message (ipptool and lp), /ipp/print takes the new default, a job held in a mode turned off
// stays releasable, DNS-SD advertises the modes offered; turned back on, a mode prints again;
// the last configuration received survives a restart of the terminal with site and central down.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { until } from '../simulations/wait.ts'
import { startTerminal, type SiteProcess } from '../simulations/node-process.ts'
import { printFile, runIpptool, ippTest } from './helpers/ipptool.ts'
import { browse } from './helpers/avahi.ts'
import { rejects } from './helpers/assert.ts'
import { admin } from './helpers/node-api.ts'
import { startBrowser, signInAdmin } from './helpers/browser.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type TerminalNode
} from './helpers/terminal-mesh.ts'

const run = promisify(execFile)
const PINS = { alice: '246810', carol: '112358' }
const NAME = 'mfp-modes'
const OWN_MODES = 'direct,hold,pull'
/** A page action waits at most this (the admin page polls its settings every 10 s). */
const BROWSER_TIMEOUT_MS = 20_000

let mesh: TerminalMesh | undefined
let restarted: SiteProcess | undefined

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t1 = (): TerminalNode => m().terminals[0]
const queueUri = (node: SiteProcess, mode: string): string => node.ippUri.replace('/ipp/print', `/printers/${mode}`)

interface Terminals { configured: boolean, modes?: string[], defaultMode?: string, trustUserName: boolean }
const setModes = async (body: unknown): Promise<Response> => await fetch(`${m().site.httpUrl}/api/roaming/terminals`, {
  method: 'PUT', headers: { authorization: `Bearer ${m().site.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body)
})

/** Waits until `node` logged that it offers `modes` (default first) from its site's configuration. */
async function applied (node: SiteProcess, modes: string[]): Promise<void> {
  await until(async () => node.logs().some((line) => {
    if (!line.startsWith('{')) return false
    const entry = JSON.parse(line) as { msg?: string, modes?: string[], source?: string }
    return /^release modes (changed|offered)/.test(entry.msg ?? '') && entry.source === 'site' && entry.modes?.join() === modes.join()
  }), MESH_TIMEOUT_MS, `${modes.join(',')} applied at the terminal`)
}

/** Print-Job to `uri`, expecting IPP status `status`; the status-message and job-state ipptool saw (throws when the status differs). */
async function tryPrint (uri: string, user: string, file: string, name: string, status = 'successful-ok'): Promise<{ message: string, state: string }> {
  const { code, out } = await runIpptool(uri, ippTest('Print-Job', 'Print-Job', [
    `ATTR name requesting-user-name "${user}"`, `ATTR name job-name "${name}"`, 'ATTR mimeMediaType document-format application/pdf',
    'FILE $filename', `STATUS ${status}`, 'DISPLAY status-message', 'DISPLAY job-state'
  ]), { file })
  if (code !== 0) throw new Error(`Print-Job to ${uri} did not answer ${status}:\n${out}`)
  const value = (attr: string): string => new RegExp(`^\\s*${attr} \\([^)]*\\) = (.*)$`, 'm').exec(out)?.[1] ?? ''
  return { message: value('status-message'), state: value('job-state') }
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', NAME, '--modes', OWN_MODES]])
})

test.after(async () => {
  await restarted?.stop()
  await mesh?.stop()
})

test('bad terminal modes are refused with 400 naming the field; GET shows the terminals use their own --modes until set', async () => {
  const before = await admin<{ terminals: Terminals }>(m().site, '/api/roaming')
  assert.equal(before.terminals, { configured: false, trustUserName: true })
  const cases: Array<[unknown, RegExp]> = [
    [{ modes: ['direct', 'teleport'] }, /modes: "teleport" is not a release mode/],
    [{ modes: [] }, /modes must be a non-empty list/],
    [{}, /name modes \(and defaultMode\) or trustUserName/],
    [{ modes: 'pull' }, /modes must be a non-empty list/],
    [{ modes: ['hold', 'hold'] }, /modes: a release mode is named twice/],
    [{ modes: ['hold'], defaultMode: 'pull' }, /defaultMode: pull is not one of the modes offered/],
    [{ modes: ['hold'], defaultMode: 'fax' }, /defaultMode: "fax" is not a release mode/],
    [{ modes: ['hold'], colour: false }, /unknown terminal setting "colour"/]
  ]
  for (const [body, message] of cases) {
    const res = await setModes(body)
    const answer = await res.json() as { error?: string, message?: string }
    assert.is(res.status, 400, JSON.stringify(body))
    assert.match(answer.error ?? answer.message ?? '', message, JSON.stringify(answer))
  }
  const anonymous = await fetch(`${m().site.httpUrl}/api/roaming/terminals`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ modes: ['pull'] }) })
  assert.is(anonymous.status, 401, 'only an admin sets them')
  assert.equal((await admin<{ terminals: Terminals }>(m().site, '/api/roaming')).terminals, { configured: false, trustUserName: true }, 'nothing was written')
})

test('the admin turns Direct and Hold off and makes Pull the default: /printers/direct refuses ipptool and lp by name, /ipp/print holds as Pull, a job held in Hold before stays releasable, DNS-SD follows; Direct turned back on prints', async () => {
  const docs = m().docs
  const held = await makeDocument(docs, 'held-before.pdf', 1, [])
  await printFile(queueUri(t1().node, 'hold'), held.path, { user: 'alice', format: 'application/pdf', name: 'held-before.pdf' })

  const res = await setModes({ modes: ['pull'], defaultMode: 'pull' })
  assert.is(res.status, 200)
  assert.equal((await res.json() as { terminals: Terminals }).terminals, { configured: true, modes: ['pull'], defaultMode: 'pull', trustUserName: true })
  await applied(t1().node, ['pull'])

  const refusedDoc = await makeDocument(docs, 'refused.pdf', 1, [])
  const refused = await tryPrint(queueUri(t1().node, 'direct'), 'carol', refusedDoc.path, 'refused.pdf', 'server-error-not-accepting-jobs')
  assert.match(refused.message, /the direct queue of mfp-modes is not accepting jobs: site-a's configuration turned it off; this terminal offers pull \(pull at \/ipp\/print\)/)
  const lp = await rejects(run('lp', ['-h', `127.0.0.1:${t1().node.ippPort}`, '-d', 'direct', '-U', 'carol', '-t', 'refused-lp', refusedDoc.path], { timeout: 30_000 }), Error)
  assert.match(String((lp as { stderr?: string }).stderr ?? lp.message), /not accepting jobs: site-a's configuration turned it off/, 'lp tells the user why')

  const pulled = await makeDocument(docs, 'default-pull.pdf', 2, [])
  const answer = await tryPrint(t1().node.ippUri, 'carol', pulled.path, 'default-pull.pdf')
  assert.is(answer.state, 'pending-held', `/ipp/print holds the job: ${JSON.stringify(answer)}`)
  await until(async () => (await jobsAt(m().site)).some((j) => j.name === 'default-pull.pdf'), MESH_TIMEOUT_MS, 'the job replicated to the site')
  assert.equal((await jobsAt(m().site)).filter((j) => j.name === 'default-pull.pdf').map((j) => [j.queue, j.state]), [['pull', 'held']], 'held as Pull')
  assert.not.ok((await jobsAt(m().site)).some((j) => j.name === 'refused.pdf' || j.name === 'refused-lp'), 'no job was made by the refusals')

  // the Hold job from before the change: listed at the panel and released there, once
  const { session } = await panelLogin(t1().node, 'alice', PINS.alice)
  if (session === undefined) throw new Error('alice could not log in')
  const listed = (await panelJobs(session)).find((j) => j.name === 'held-before.pdf')
  assert.is(listed?.state, 'held', 'the Hold job is still listed')
  const released = await panel(session, 'POST', `/api/panel/jobs/${listed?.id ?? ''}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => (await printedBy(t1().printer)).includes(held.sha256), MESH_TIMEOUT_MS, 'the Hold job printed')

  await until(async () => {
    const seen = (await browse()).filter((b) => b.name.endsWith(`@ ${NAME}`))
    return seen.length === 1 && seen[0].name === `pull @ ${NAME}` && seen[0].txt.get('rp') === 'ipp/print'
  }, MESH_TIMEOUT_MS, 'DNS-SD advertises only pull, at /ipp/print')

  // turned back on from the site's admin page, in Chromium
  const browser = await startBrowser({ timeoutMs: BROWSER_TIMEOUT_MS })
  try {
    const { page } = browser
    await page.goto(`${m().site.httpUrl}/admin`)
    await signInAdmin(page, m().site.adminToken)
    const form = page.locator('#terminal-modes-form')
    await form.getByText('Offered: pull; default pull.').waitFor()
    assert.ok(await form.getByLabel('Pull: released at any terminal of the site').isChecked())
    assert.not.ok(await form.getByLabel('Hold: released only at the terminal it was sent to').isChecked())
    await form.getByLabel('Direct: printed on arrival').check()
    await form.getByLabel('Pull: released at any terminal of the site').uncheck()
    await form.getByRole('button', { name: 'Save release modes' }).click()
    await form.getByText('The default, pull, must be one of the modes offered.').waitFor()
    await form.getByLabel('Pull: released at any terminal of the site').check()
    await form.getByRole('button', { name: 'Save release modes' }).click()
    await form.getByText('Offered: direct, pull; default pull.').waitFor()
    assert.equal(browser.pageErrors, [])
  } finally {
    await browser.close()
  }
  await applied(t1().node, ['pull', 'direct'])
  const direct = await makeDocument(docs, 'direct-again.pdf', 1, [])
  await printFile(queueUri(t1().node, 'direct'), direct.path, { user: 'carol', format: 'application/pdf', name: 'direct-again.pdf' })
  await until(async () => (await printedBy(t1().printer)).includes(direct.sha256), MESH_TIMEOUT_MS, 'direct prints again')
  assert.not.ok((await printedBy(t1().printer)).includes(pulled.sha256), 'the Pull job waits for its release')
  assert.not.ok((await printedBy(t1().printer)).includes(refusedDoc.sha256), 'the refused job never printed')
})

test('the terminal keeps the last configuration it received: restarted with site and central down, it offers pull (default) and direct, not hold', async () => {
  const { site, central } = m()
  await site.kill('SIGTERM')
  await central.kill('SIGTERM')
  const old = t1().node
  await old.kill('SIGTERM')
  restarted = await startTerminal({ dataDir: old.dataDir, args: ['--printer', t1().printer.uri, '--name', NAME, '--modes', OWN_MODES] })
  await applied(restarted, ['pull', 'direct'])
  const doc = await makeDocument(m().docs, 'offline-default.pdf', 1, [])
  assert.is((await tryPrint(restarted.ippUri, 'carol', doc.path, 'offline-default.pdf')).state, 'pending-held', '/ipp/print still holds as Pull')
  const hold = await tryPrint(queueUri(restarted, 'hold'), 'carol', doc.path, 'offline-hold.pdf', 'server-error-not-accepting-jobs')
  assert.match(hold.message, /the hold queue of mfp-modes is not accepting jobs/)
  const direct = await makeDocument(m().docs, 'offline-direct.pdf', 1, [])
  await printFile(queueUri(restarted, 'direct'), direct.path, { user: 'carol', format: 'application/pdf', name: 'offline-direct.pdf' })
  await until(async () => (await printedBy(t1().printer)).includes(direct.sha256), MESH_TIMEOUT_MS, 'direct prints offline')
})

test.run()
