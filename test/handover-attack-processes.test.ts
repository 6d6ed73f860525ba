// Handover (client spooling off) with real processes: central, site-a and alice's workstation
// client. The same file printed three times at once with `lp` (same bytes, same sha256): the
// site's desk fetches each into one temporary file named by the sha256, and the real blob
// protocol refuses a second transfer into the same file (transports/blob.ts fetchBlob).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { until } from '../simulations/wait.ts'
import { startClient, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { startTerminalMesh, jobsAt, makeDocument, MESH_TIMEOUT_MS, type TerminalMesh } from './helpers/terminal-mesh.ts'

const run = promisify(execFile)
const LP_TIMEOUT_MS = 30_000

let mesh: TerminalMesh | undefined
let client: SiteProcess | undefined
const m = (): TerminalMesh => { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const c = (): SiteProcess => { if (client === undefined) throw new Error('no client'); return client }

interface ClientStatus { siteReachable: boolean, clientSpooling: boolean, jobs: Array<{ id: string, name: string, state: string, message?: string, handOver?: { site: string, done: boolean } }> }
const clientStatus = async (): Promise<ClientStatus> => await (await fetch(`${c().httpUrl}/api/client`)).json() as ClientStatus

async function lp (file: string, title: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${c().ippPort}`, '-d', 'printmesh', '-U', 'alice', '-t', title, file], { encoding: 'utf8', timeout: LP_TIMEOUT_MS })
}

async function spooled (node: SiteProcess): Promise<string[]> {
  const root = join(node.dataDir, 'spool')
  const out: string[] = []
  for (const dir of await readdir(root)) if (dir !== 'tmp') out.push(...await readdir(join(root, dir)).catch(() => [] as string[]))
  return out
}

test.before(async () => {
  mesh = await startTerminalMesh({ alice: '246810' }, [])
  const joinString = (await admin<{ joinString: string }>(m().central, '/api/mesh/tokens', { method: 'POST', body: { role: 'client', site: 'site-a' } })).joinString
  client = await startClient({ args: ['--join', joinString, '--user', 'alice', '--name', 'alice-pc'] })
  await until(async () => (await clientStatus()).siteReachable, MESH_TIMEOUT_MS, 'the client reaches its site')
  await admin(m().site, '/api/roaming/clients', { method: 'PUT', body: { spooling: false } })
  await until(async () => !(await clientStatus()).clientSpooling, MESH_TIMEOUT_MS, 'the setting reaches the workstation')
})

test.after(async () => {
  await client?.stop()
  await mesh?.stop()
})

test('the same file printed three times at once with spooling off: three jobs held at the site for alice, none lost, no copy left on the workstation', async () => {
  const doc = await makeDocument(m().docs, 'memo.pdf', 40, [1, 2])
  const names = ['memo-1', 'memo-2', 'memo-3']
  await Promise.all(names.map(async (n) => { await lp(doc.path, n) }))
  await until(async () => {
    const jobs = (await clientStatus()).jobs.filter((j) => names.includes(j.name))
    return jobs.length === 3 && jobs.every((j) => j.state === 'deleted' || (j.state === 'held' && j.message !== undefined))
  }, MESH_TIMEOUT_MS, 'the three handovers settled at the workstation')
  const atClient = (await clientStatus()).jobs.filter((j) => names.includes(j.name))
  const atSite = (await jobsAt(m().site)).filter((j) => names.includes(j.name) && !atClient.some((k) => k.id === j.id))
  const lost = atClient.filter((j) => j.state === 'deleted' && !atSite.some((s) => s.name === j.name && s.state === 'held')).map((j) => j.name)
  assert.equal(lost, [], `deleted on the workstation as handed over, yet not held at the site: site jobs ${JSON.stringify(atSite.map((j) => [j.name, j.state]))}; site log: ${m().site.logs().filter((l) => l.includes('handed over')).join('\n').slice(0, 2000)}`)
  assert.equal(atSite.filter((j) => j.state === 'held').map((j) => j.name).sort(), names, 'three jobs held at the site')
  assert.not.ok((await spooled(c())).includes(doc.sha256), 'no copy of the document left on the workstation')
})

test.run()
