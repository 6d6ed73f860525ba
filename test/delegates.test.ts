// Delegates with real processes (issue 15 item 5, issue 13's Delegated mode): central, site-a
// and a terminal of site-a fronting an ippeveprinter. An admin names bob alice's delegate on
// central; the directory carries it to the site and the terminal. bob then sees alice's
// jobs held at the site and in the terminal's Delegated queue on the panel, marked as hers,
// and releases them: each prints once on the terminal's printer, charged to alice with her
// exact pages and recorded as released by bob. Her Pull job is not bob's to release, and
// carol, no delegate, sees and releases nothing of hers.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { printFile } from './helpers/ipptool.ts'
import { admin } from './helpers/node-api.ts'
import {
  startTerminalMesh, panelLogin, panel, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type TerminalNode
} from './helpers/terminal-mesh.ts'

const PINS = { alice: '246810', bob: '135790', carol: '112358' }

let mesh: TerminalMesh | undefined
function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const terminal = (): TerminalNode => m().terminals[0]
const queueUri = (t: TerminalNode, mode: string): string => t.node.ippUri.replace('/ipp/print', `/printers/${mode}`)

interface PanelJob { id: string, name: string, state: string, pages?: number, delegatedBy?: string }
interface Usage { user: string, jobId: string, pages: number, colorPages: number, sheets: number, copies: number, releasedBy?: string }

async function session (user: keyof typeof PINS): Promise<PanelSession> {
  const { session, status } = await panelLogin(terminal().node, user, PINS[user])
  if (session === undefined) throw new Error(`${user} could not log in (${status})`)
  return session
}
const listed = async (s: PanelSession): Promise<PanelJob[]> => (await panel<{ jobs: PanelJob[] }>(s, 'GET', '/api/panel/jobs')).body.jobs

/** Prints a PDF as alice to `uri`; resolves with the job's mesh id once the site lists it held. */
async function alicePrints (uri: string, name: string, pages: number, color: number[]): Promise<{ id: string, sha256: string }> {
  const doc = await makeDocument(m().docs, name, pages, color)
  await printFile(uri, doc.path, { user: 'alice', format: 'application/pdf', name })
  let id = ''
  await until(async () => {
    id = (await jobsAt(m().site)).find((j) => j.name === name && j.state === 'held')?.id ?? ''
    return id !== ''
  }, MESH_TIMEOUT_MS, `${name} held`)
  return { id, sha256: doc.sha256 }
}

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [['--name', 'mfp-d']])
  await admin(m().central, '/api/users/alice', { method: 'PATCH', body: { delegates: ['bob'] } })
})
test.after(async () => { await mesh?.stop() })

test('bob, named alice\'s delegate on central, sees her site and Delegated-queue jobs on the panel marked as hers, not her Pull job; carol sees none', async () => {
  const atSite = await alicePrints(m().site.ippUri, 'alice-at-site.pdf', 3, [2])
  const delegated = await alicePrints(queueUri(terminal(), 'delegated'), 'alice-delegated.pdf', 2, [])
  const pull = await alicePrints(queueUri(terminal(), 'pull'), 'alice-pull.pdf', 1, [])
  const bob = await session('bob')
  // the delegation reaches the terminal with the directory
  let seen: PanelJob[] = []
  await until(async () => { seen = await listed(bob); return seen.some((j) => j.id === atSite.id) && seen.some((j) => j.id === delegated.id) }, MESH_TIMEOUT_MS, 'alice\'s jobs listed for bob')
  for (const id of [atSite.id, delegated.id]) assert.is(seen.find((j) => j.id === id)?.delegatedBy, 'alice')
  assert.not.ok(seen.some((j) => j.id === pull.id), 'a Pull job is its owner\'s alone')
  const carol = await session('carol')
  assert.equal((await listed(carol)).filter((j) => [atSite.id, delegated.id, pull.id].includes(j.id)), [])
  // and what is not listed cannot be released by naming it
  for (const id of [atSite.id, delegated.id]) {
    const refused = await panel<{ error: string }>(carol, 'POST', `/api/panel/jobs/${id}/release`)
    assert.is(refused.status, 403, JSON.stringify(refused.body))
    assert.match(refused.body.error, 'who has not named carol a delegate')
  }
  const pullByBob = await panel<{ error: string }>(bob, 'POST', `/api/panel/jobs/${pull.id}/release`)
  assert.is(pullByBob.status, 403, JSON.stringify(pullByBob.body))
  assert.match(pullByBob.body.error, 'only its owner releases it, not a delegate')
})

test('bob releases alice\'s jobs at the panel: each prints once on the terminal\'s printer, charged to alice with her pages and recorded as released by bob', async () => {
  const bob = await session('bob')
  const jobs = (await jobsAt(m().site)).filter((j) => ['alice-at-site.pdf', 'alice-delegated.pdf'].includes(j.name))
  assert.is(jobs.length, 2)
  const printedBefore = (await printedBy(terminal().printer)).length
  for (const job of jobs) {
    const r = await panel<{ state: string }>(bob, 'POST', `/api/panel/jobs/${job.id}/release`)
    assert.is(r.status, 200, JSON.stringify(r.body))
  }
  let records: Usage[] = []
  await until(async () => {
    records = (await usageAt(m().site) as unknown as Usage[]).filter((u) => jobs.some((j) => j.id === u.jobId))
    return records.length === 2
  }, MESH_TIMEOUT_MS, 'both releases charged')
  const byJob = new Map(records.map((r) => [jobs.find((j) => j.id === r.jobId)?.name, r]))
  assert.equal(byJob.get('alice-at-site.pdf'), { ...byJob.get('alice-at-site.pdf'), user: 'alice', releasedBy: 'bob', pages: 3, colorPages: 1, sheets: 3, copies: 1 })
  assert.equal(byJob.get('alice-delegated.pdf'), { ...byJob.get('alice-delegated.pdf'), user: 'alice', releasedBy: 'bob', pages: 2, colorPages: 0, sheets: 2, copies: 1 })
  assert.is((await printedBy(terminal().printer)).length, printedBefore + 2, 'printed once each')
})

test('once alice removes bob as her delegate, the terminal refuses him her next job', async () => {
  await admin(m().central, '/api/users/alice', { method: 'PATCH', body: { delegates: [] } })
  const next = await alicePrints(m().site.ippUri, 'alice-after.pdf', 1, [])
  const bob = await session('bob')
  await until(async () => !(await listed(bob)).some((j) => j.delegatedBy === 'alice'), MESH_TIMEOUT_MS, 'the delegation withdrawn at the terminal')
  const refused = await panel<{ error: string }>(bob, 'POST', `/api/panel/jobs/${next.id}/release`)
  assert.is(refused.status, 403, JSON.stringify(refused.body))
  assert.match(refused.body.error, 'who has not named bob a delegate')
})

test.run()
