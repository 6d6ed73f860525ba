// The site's print policy (issue 13 item 5) with real processes: central, site-a and a terminal
// fronting its own ippeveprinter. The admin forces duplex and makes the group `students`
// (alice's, set on central) monochrome-only; with the site killed and central stopped the
// terminal still applies both from its replicas: the printer is told two-sided and, for alice,
// monochrome (its job attributes), and the usage the site receives when it is back charges
// alice no colour pages and both users duplex sheets; bob keeps his colour.
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
const holdQueue = (): string => t1().node.ippUri.replace('/ipp/print', '/printers/hold')

async function session (user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(t1().node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in (${status})`)
  return session
}

const reachedTerminal = async (writer: SiteProcess, doc: string): Promise<void> => { await reachedPeer(writer, doc, t1().node.peer) }

/** `user` prints a one-sided PDF to the terminal's Hold queue and releases it at its panel; what the printer was told. */
async function printAndRelease (user: keyof typeof PINS, name: string, pages: number, color: number[]): Promise<{ id: string, attributes: Record<string, string> }> {
  const doc = await makeDocument(m().docs, name, pages, color)
  await printFile(holdQueue(), doc.path, { user, format: 'application/pdf', name, sides: 'one-sided' })
  const s = await session(user)
  let id = ''
  await until(async () => { id = (await panelJobs(s)).find((j) => j.name === name)?.id ?? ''; return id !== '' }, MESH_TIMEOUT_MS, `${name} on the panel`)
  const released = await panel(s, 'POST', `/api/panel/jobs/${id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => (await printedBy(t1().printer)).includes(doc.sha256), MESH_TIMEOUT_MS, `${name} printed`)
  const index = (await printedBy(t1().printer)).lastIndexOf(doc.sha256)
  // ippeveprinter writes a job's attributes when it processes the job, after the document lands
  let attributes: Record<string, string> | undefined
  await until(async () => { attributes = (await t1().printer.jobAttributes())[index]; return attributes !== undefined }, MESH_TIMEOUT_MS, `${name}'s job attributes at the printer`)
  return { id, attributes: attributes ?? {} }
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-lobby']], { duplex: true })
})

test.after(async () => {
  for (const p of restarted.reverse()) await p.stop()
  await mesh?.stop()
})

test('bad print policies are refused with the field named, nothing changed', async () => {
  for (const [body, message] of [
    [{ forceDuplex: 'yes' }, 'forceDuplex must be true or false'],
    [{ monoGroups: 'students' }, 'monoGroups must be a list of group names'],
    [{ monoGroups: ['ok', 'a;b'] }, 'monoGroups: not a group name: "a;b"'],
    [{ colour: false }, 'unknown print policy setting "colour"'],
    [{}, 'name forceDuplex']
  ] as const) {
    const res = await fetch(`${m().site.httpUrl}/api/roaming/policy`, { method: 'PUT', headers: { authorization: `Bearer ${m().site.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.is(res.status, 400, JSON.stringify(body))
    assert.match(((await res.json()) as { error: string }).error, message)
  }
  assert.equal((await admin<{ policy: unknown }>(m().site, '/api/roaming')).policy, { forceDuplex: false, monoGroups: [] })
})

test('with the site killed and central stopped, the terminal applies the site\'s policy: two-sided for all, monochrome for the students group (alice), charged so once the site is back', async () => {
  const { central, site } = m()
  await admin(central, '/api/users/alice', { method: 'PATCH', body: { groups: ['students'] } })
  const view = await admin<{ policy: unknown }>(site, '/api/roaming/policy', { method: 'PUT', body: { forceDuplex: true, monoGroups: ['students'] } })
  assert.equal(view.policy, { forceDuplex: true, monoGroups: ['students'] })
  await reachedTerminal(site, 'v1/site/site-a')
  await reachedTerminal(central, 'v1/directory')

  const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'
  const [sitePort, centralPort] = [portOf(site), portOf(central)]
  await site.kill('SIGKILL')
  await central.kill('SIGTERM')
  await until(async () => !await terminalOnline(t1().node), OFFLINE_MS, 'the terminal working offline')

  const alice = await printAndRelease('alice', 'alice-colour.pdf', 3, [0, 1])
  assert.equal([alice.attributes.sides, alice.attributes['print-color-mode']], ['two-sided-long-edge', 'monochrome'], 'alice\'s job: told two-sided and monochrome')
  const bob = await printAndRelease('bob', 'bob-colour.pdf', 3, [0, 1])
  assert.is(bob.attributes.sides, 'two-sided-long-edge', 'bob\'s job: told two-sided')
  assert.is.not(bob.attributes['print-color-mode'], 'monochrome', 'bob is not in the group: colour allowed')

  restarted.push(await startCentral({ dataDir: central.dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${centralPort}`] }))
  restarted.push(await startSite({ dataDir: site.dataDir, adminToken: site.adminToken, args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--listen', `/ip4/127.0.0.1/tcp/${sitePort}`] }))
  const back = restarted[1]
  await until(async () => { const u = await usageAt(back); return [alice.id, bob.id].every((id) => u.some((r) => r.jobId === id)) }, MESH_TIMEOUT_MS, 'the offline usage reached the site')
  const usage = await usageAt(back)
  const row = (id: string): unknown[] => usage.filter((u) => u.jobId === id).map((u) => [u.user, u.pages, u.colorPages, u.sheets])
  assert.equal(row(alice.id), [['alice', 3, 0, 2]], 'alice: 3 pages, no colour, 2 sheets (duplex)')
  assert.equal(row(bob.id), [['bob', 3, 2, 2]], 'bob: 3 pages, 2 in colour, 2 sheets (duplex)')
})

test.run()
