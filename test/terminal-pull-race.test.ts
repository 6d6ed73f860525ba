// Device spooling's Pull mode under contention and crashes, with real processes (issue 13):
// central, site-a and three terminals of site-a, each fronting its own ippeveprinter.
// terminal-1 (mfp-lobby) holds the jobs; terminal-2 and terminal-3 release them through its grant.
// - Two terminals release one Pull job at the same moment: the holder grants it once, one
//   panel prints it, the other is told it is being released elsewhere; one print, one usage record.
// - terminal-1 is killed -9 while terminal-2 fetches a large document from it: the product prints
//   only a whole, sha256-checked document, so nothing prints while terminal-1 is down; once it is
//   back, the transfer resumes under the same grant and the job prints once, charged once.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { until } from '../simulations/wait.ts'
import { startTerminal, type SiteProcess } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import {
  startTerminalMesh, panelLogin, panel, panelJobs, jobsAt, usageAt, makeDocument, printedBy, MESH_TIMEOUT_MS,
  type TerminalMesh, type PanelSession, type TerminalNode
} from './helpers/terminal-mesh.ts'

const PINS = { bob: '135790' }
/** terminal-1 sends a held document at most this fast (its --roaming-rate), so a kill lands mid-transfer. */
const HOLDER_RATE_MB_S = 2
/** The large document: 6 MB of text, three seconds on the wire at that rate. */
const BIG_LINES = 140_000
/** A transfer interrupted by the holder's crash resumes within this once it is back (retries every 2 s, reconnection). */
const RESUME_TIMEOUT_MS = 60_000

let mesh: TerminalMesh | undefined
let restarted: SiteProcess | undefined

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const holder = (): SiteProcess => restarted ?? m().terminals[0].node
const t = (i: number): TerminalNode => m().terminals[i]
const pullUri = (node: SiteProcess): string => node.ippUri.replace('/ipp/print', '/printers/pull')

async function session (node: SiteProcess): Promise<PanelSession> {
  const { session, status } = await panelLogin(node, 'bob', PINS.bob)
  if (session === undefined) throw new Error(`bob could not log in (${status})`)
  return session
}

/** Prints `file` to terminal-1's Pull queue as bob; the job's mesh id once the site replicates it. */
async function pull (file: string, name: string, format: string): Promise<string> {
  await printFile(pullUri(holder()), file, { user: 'bob', format, name })
  let id = ''
  await until(async () => {
    id = (await jobsAt(m().site)).find((j) => j.name === name && j.state === 'held')?.id ?? ''
    return id !== ''
  }, MESH_TIMEOUT_MS, `${name} held and replicated to the site`)
  return id
}

/** Waits until `s`'s panel lists job `id` as held (the holder's record reached that terminal). */
async function listed (s: PanelSession, id: string): Promise<void> {
  await until(async () => (await panelJobs(s)).some((j) => j.id === id && j.state === 'held'), MESH_TIMEOUT_MS, `job listed at ${s.node.httpUrl}`)
}

/** terminal-1's count of job document bytes it sent to other peers (/metrics). */
async function bytesSent (node: SiteProcess): Promise<number> {
  const text = await (await fetch(`${node.httpUrl}/metrics`, { headers: { authorization: `Bearer ${node.adminToken}` } })).text()
  const line = text.split('\n').find((l) => l.startsWith('printmesh_document_bytes_sent_total '))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const count = (list: string[], hash: string): number => list.filter((s) => s === hash).length

test.before(async () => {
  mesh = await startTerminalMesh(PINS, [
    ['--name', 'mfp-lobby', '--roaming-rate', String(HOLDER_RATE_MB_S)],
    ['--name', 'mfp-floor2'],
    ['--name', 'mfp-floor3']
  ])
})

test.after(async () => {
  await restarted?.stop()
  await mesh?.stop()
})

test('one Pull job released at two terminals at once: one prints it, the other is told it is released elsewhere; one print, one usage record', async () => {
  const doc = await makeDocument(m().docs, 'contested.pdf', 2, [1])
  const id = await pull(doc.path, 'contested.pdf', 'application/pdf')
  const [at2, at3] = [await session(t(1).node), await session(t(2).node)]
  await listed(at2, id)
  await listed(at3, id)
  const answers = await Promise.all([at2, at3].map(async (s) => await panel<{ error?: string }>(s, 'POST', `/api/panel/jobs/${id}/release`)))
  assert.equal(answers.map((a) => a.status).sort(), [200, 409], JSON.stringify(answers))
  const refused = answers.find((a) => a.status === 409)
  assert.match(refused?.body.error ?? '', /already being released (at|elsewhere)/, `the other panel says why: ${JSON.stringify(refused?.body)}`)

  await until(async () => (await jobsAt(m().site)).find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'printed, as the holder records it')
  const prints = [await printedBy(t(0).printer), await printedBy(t(1).printer), await printedBy(t(2).printer)].map((l) => count(l, doc.sha256))
  assert.equal(prints.reduce((a, b) => a + b, 0), 1, `printed exactly once (lobby, floor2, floor3: ${prints.join(', ')})`)
  assert.is(prints[0], 0, 'not at the holder')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.equal((await usageAt(m().site)).filter((u) => u.jobId === id).map((u) => [u.user, u.pages, u.colorPages]), [['bob', 2, 1]], 'one usage record')
})

test('the holding terminal killed -9 mid-transfer: nothing prints while it is down; restarted, the release completes once, byte for byte, charged once', async () => {
  const text = join(m().docs, 'big.txt')
  await writeFile(text, Array.from({ length: BIG_LINES }, (_, i) => `line ${i} of a long pulled document.......`).join('\n'))
  const whole = await readFile(text)
  const id = await pull(text, 'big.txt', 'text/plain')
  const at2 = await session(t(1).node)
  await listed(at2, id)
  const before = await bytesSent(holder())
  const printsBefore = (await t(1).printer.jobFiles()).length

  const released = await panel<unknown>(at2, 'POST', `/api/panel/jobs/${id}/release`)
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => await bytesSent(holder()) > before, MESH_TIMEOUT_MS, 'the document under way from terminal-1')
  const port = /\/tcp\/(\d+)/.exec(holder().listen[0] ?? '')?.[1] ?? '0'
  const data = holder().dataDir
  const printer = t(0).printer.uri
  await holder().kill('SIGKILL')
  assert.is((await t(1).printer.jobFiles()).length, printsBefore, 'nothing printed from a partial document')
  assert.not.ok((await printedBy(t(1).printer)).includes(sha(whole)), 'not the document')

  restarted = await startTerminal({ dataDir: data, args: ['--printer', printer, '--name', 'mfp-lobby', '--roaming-rate', String(HOLDER_RATE_MB_S), '--listen', `/ip4/127.0.0.1/tcp/${port}`] })
  // ippeveprinter writes a job's file as the document arrives: wait for the whole document by content
  await until(async () => (await printedBy(t(1).printer)).includes(sha(whole)), RESUME_TIMEOUT_MS, 'printed at terminal-2 after terminal-1 came back')
  assert.is((await t(1).printer.jobFiles()).length, printsBefore + 1, 'one print at terminal-2')
  assert.is(count(await printedBy(t(1).printer), sha(whole)), 1, 'the whole document, byte for byte, once')
  assert.is(count(await printedBy(t(0).printer), sha(whole)) + count(await printedBy(t(2).printer), sha(whole)), 0, 'nowhere else')
  await until(async () => (await jobsAt(m().site)).find((j) => j.id === id)?.state === 'printed', MESH_TIMEOUT_MS, 'the holder records it printed')
  await until(async () => (await usageAt(m().site)).some((u) => u.jobId === id), MESH_TIMEOUT_MS, 'usage reaches the site')
  assert.is((await usageAt(m().site)).filter((u) => u.jobId === id).length, 1, 'charged once')
})

test.run()
