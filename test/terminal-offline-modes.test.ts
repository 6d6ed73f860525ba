// Device spooling with the site server killed and central stopped (issue 13 item 4): two
// terminals of site-a, each with its own ippeveprinter, reach each other directly. Direct prints
// on arrival at terminal-1; a Pull job sent to terminal-1 is released at terminal-2 through
// terminal-1's grant; a Delegated one is released there by alice's delegate bob; each prints
// once with identical bytes. When the site and central are back, each is charged once at the
// site with its exact pages.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { startCentral, startSite, type SiteProcess } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import { admin } from './helpers/node-api.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, usageAt, makeDocument, printedBy, reachedPeer, terminalOnline, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type TerminalNode
} from './helpers/terminal-mesh.ts'

const PINS = { alice: '246810', bob: '135790' }
/** A node cut off from its site notices within this (libp2p's connection close, then its own reconnect attempts). */
const OFFLINE_MS = 30_000

let mesh: TerminalMesh | undefined
const restarted: SiteProcess[] = []

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t1 = (): TerminalNode => m().terminals[0]
const t2 = (): TerminalNode => m().terminals[1]
const queueUri = (t: TerminalNode, mode: string): string => t.node.ippUri.replace('/ipp/print', `/printers/${mode}`)

async function session (t: TerminalNode, user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(t.node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in at ${t.node.peer} (${status})`)
  return session
}


test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-lobby'], ['--name', 'mfp-floor2']])
})

test.after(async () => {
  for (const p of restarted.reverse()) await p.stop()
  await mesh?.stop()
})

test('with the site killed and central stopped, Direct prints at terminal-1, Pull and Delegated jobs held there are released at terminal-2 (Delegated by alice\'s delegate bob); back, each is charged once at the site', async () => {
  const { central, site } = m()
  await admin(central, '/api/users/alice', { method: 'PATCH', body: { delegates: ['bob'] } })
  await reachedPeer(central, 'v1/directory', t2().node.peer)

  const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(site), portOf(central)]
  await site.kill('SIGKILL')
  await central.kill('SIGTERM')
  await until(async () => !await terminalOnline(t1().node) && !await terminalOnline(t2().node), OFFLINE_MS, 'both terminals working offline')

  // Direct: printed on arrival at terminal-1
  const direct = await makeDocument(m().docs, 'direct.pdf', 2, [0])
  await printFile(queueUri(t1(), 'direct'), direct.path, { user: 'alice', format: 'application/pdf', name: 'direct.pdf' })
  await until(async () => (await printedBy(t1().printer)).includes(direct.sha256), MESH_TIMEOUT_MS, 'Direct printed at terminal-1')

  // Pull and Delegated: held at terminal-1, listed at terminal-2 (replicated terminal to terminal), released there
  const pull = await makeDocument(m().docs, 'pull.pdf', 3, [1])
  const delegated = await makeDocument(m().docs, 'delegated.pdf', 1, [])
  await printFile(queueUri(t1(), 'pull'), pull.path, { user: 'alice', format: 'application/pdf', name: 'pull.pdf' })
  await printFile(queueUri(t1(), 'delegated'), delegated.path, { user: 'alice', format: 'application/pdf', name: 'delegated.pdf' })
  const alice = await session(t2(), 'alice')
  let pullId = ''
  await until(async () => { pullId = (await panelJobs(alice)).find((j) => j.name === 'pull.pdf')?.id ?? ''; return pullId !== '' }, MESH_TIMEOUT_MS, 'alice\'s Pull job listed at terminal-2')
  const listed = (await panelJobs(alice)).find((j) => j.id === pullId)
  assert.is(listed?.source, 'mfp-lobby', 'marked with the holding terminal\'s name')
  const released = await panel(alice, 'POST', `/api/panel/jobs/${pullId}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => (await printedBy(t2().printer)).includes(pull.sha256), MESH_TIMEOUT_MS, 'Pull printed at terminal-2')

  const bob = await session(t2(), 'bob')
  let delegatedId = ''
  await until(async () => { delegatedId = (await panelJobs(bob)).find((j) => j.name === 'delegated.pdf')?.id ?? ''; return delegatedId !== '' }, MESH_TIMEOUT_MS, 'alice\'s Delegated job listed to bob at terminal-2')
  const byBob = await panel(bob, 'POST', `/api/panel/jobs/${delegatedId}/release`)
  assert.is(byBob.status, 200, JSON.stringify(byBob.body))
  await until(async () => (await printedBy(t2().printer)).includes(delegated.sha256), MESH_TIMEOUT_MS, 'Delegated printed at terminal-2')

  for (const [printer, sha] of [[t1().printer, direct.sha256], [t2().printer, pull.sha256], [t2().printer, delegated.sha256]] as const) {
    assert.is((await printedBy(printer)).filter((s) => s === sha).length, 1, 'printed once, identical bytes')
  }
  assert.not.ok((await printedBy(t1().printer)).includes(pull.sha256), 'the Pull job did not print at its holder too')

  restarted.push(await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] }))
  restarted.push(await startSite({ dataDir: site.dataDir, adminToken: site.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] }))
  const back = restarted[1]
  const names = ['direct.pdf', 'pull.pdf', 'delegated.pdf']
  await until(async () => { const u = await usageAt(back); return names.every((n) => u.some((r) => (r as { jobName?: string }).jobName === n)) }, MESH_TIMEOUT_MS, 'the offline usage reached the site')
  const usage = (await usageAt(back)) as Array<{ jobName?: string, user: string, pages: number, colorPages: number }>
  assert.equal(names.map((n) => usage.filter((u) => u.jobName === n).map((u) => [u.user, u.pages, u.colorPages])),
    [[['alice', 2, 1]], [['alice', 3, 1]], [['alice', 1, 0]]], 'each charged once, to alice, with its exact pages')
})

test.run()
