/**
 * A small mesh of real processes for the terminal tests: central with users imported by the
 * CLI, site-a, and terminals of site-a each fronting its own ippeveprinter; with the panel's
 * API as a logged-in user sees it, and what the site knows of jobs and usage.
 */
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, startCentral, startTerminal, tempDir, type SiteProcess } from '../../simulations/node-process.ts'
import { until } from '../../simulations/wait.ts'
import { startIppEvePrinter, type IppEvePrinter, type IppEvePrinterOptions } from './ippeveprinter.ts'
import { admin } from './node-api.ts'
import { makePdf } from '../fixtures/documents.ts'
import { runCleanup, type CleanupStep } from './browser.ts'

/** Mesh operations wait at most this long (joining, first sync, a release across two peers). */
export const MESH_TIMEOUT_MS = 45_000
const CLI = new URL('../../node/cli.ts', import.meta.url).pathname

/** A terminal process and the printer it fronts. */
export interface TerminalNode { node: SiteProcess, printer: IppEvePrinter }

export interface TerminalMesh {
  central: SiteProcess
  site: SiteProcess
  terminals: TerminalNode[]
  /** Folder for the tests' documents. */
  docs: string
  /** Stops every process and removes every folder (also after a failed start). */
  stop (): Promise<void>
}

/**
 * Starts central (with `users`: name → PIN, or PIN and card number), site-a (`--hostname print.site-a.example`) and one
 * terminal per entry of `terminals` (its extra CLI arguments), each with its own ippeveprinter
 * (`printer`: how those printers behave, e.g. how long a job takes);
 * resolves once every terminal is online with the directory.
 */
export async function startTerminalMesh (users: Record<string, string | { pin: string, card: string }>, terminals: string[][], printer: Omit<IppEvePrinterOptions, 'name'> = {}): Promise<TerminalMesh> {
  const steps: CleanupStep[] = []
  const stop = async (): Promise<void> => { await runCleanup(steps.reverse()) }
  try {
    const docs = await tempDir('printmesh-docs-')
    const centralDir = await tempDir('printmesh-central-')
    steps.push(['folders', async () => { for (const d of [docs, centralDir]) await rm(d, { recursive: true, force: true }) }])
    // users come from central's directory, imported before its first start
    const csv = join(docs, 'users.csv')
    await writeFile(csv, Object.entries(users).map(([name, u]) => typeof u === 'string' ? `${name},${name},${u}\n` : `${name},${name},${u.pin},${u.card}\n`).join(''))
    const imported = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'users', 'import', csv, '--data', centralDir], { encoding: 'utf8' })
    if (imported.status !== 0) throw new Error(`users import failed: ${imported.stderr}`)
    const central = await startCentral({ dataDir: centralDir })
    steps.push(['central', async () => await central.stop()])
    const token = async (role: string): Promise<string> =>
      (await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role, site: 'site-a' } })).joinString
    const site = await startSite({ args: ['--site', 'site-a', '--hostname', 'print.site-a.example', '--join', await token('site')] })
    steps.push(['site', async () => await site.stop()])
    const started: TerminalNode[] = []
    for (const [i, args] of terminals.entries()) {
      const device = await startIppEvePrinter({ ...printer, name: `terminal mfp ${i + 1}` })
      steps.push([`printer ${i + 1}`, async () => await device.stop()])
      const node = await startTerminal({ args: ['--join', await token('terminal'), '--printer', device.uri, ...args] })
      steps.push([`terminal ${i + 1}`, async () => await node.stop()])
      started.push({ node, printer: device })
    }
    // a terminal logs users in from the directory replicated to it: wait until it has it
    for (const { node } of started) {
      await until(async () => {
        const status = await (await fetch(`${node.httpUrl}/api/panel/status`)).json() as { online: boolean }
        const mesh = await admin<{ documents: Array<{ doc: string, peers: Record<string, string> }> }>(node, '/api/mesh')
        return status.online && mesh.documents.some((d) => d.doc === 'v1/directory' && Object.values(d.peers).includes('in-sync'))
      }, MESH_TIMEOUT_MS, 'the terminal online with the directory')
    }
    return { central, site, terminals: started, docs, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** A logged-in panel user: the session cookie and CSRF token the panel page would hold. */
export interface PanelSession { node: SiteProcess, cookie: string, csrf: string }

/** POST /api/login at a terminal's panel. */
export async function panelLogin (node: SiteProcess, username: string, pin: string): Promise<{ status: number, session?: PanelSession, body: Record<string, unknown> }> {
  const res = await fetch(`${node.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  const body = await res.json() as Record<string, unknown>
  const cookie = res.headers.get('set-cookie')?.split(';')[0]
  return { status: res.status, body, ...(cookie !== undefined && res.ok ? { session: { node, cookie, csrf: String(body.csrfToken) } } : {}) }
}

/** A call of the panel's API as the session's user. */
export async function panel<T> (s: PanelSession, method: string, path: string): Promise<{ status: number, body: T }> {
  const res = await fetch(`${s.node.httpUrl}${path}`, { method, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })
  return { status: res.status, body: await res.json() as T }
}

export interface PanelJob { id: string, name: string, state: string, pages?: number, colorPages?: number, copies: number, sides: string, createdAt: number, source?: string, message?: string, unavailable?: true }
export const panelJobs = async (s: PanelSession): Promise<PanelJob[]> => (await panel<{ jobs: PanelJob[] }>(s, 'GET', '/api/panel/jobs')).body.jobs

export interface SiteJob { id: string, ippId: number, state: string, name: string, owner: string, printer?: string, queue: string }
/** Every job a node holds or replicates, as its admin sees them. */
export const jobsAt = async (node: SiteProcess): Promise<SiteJob[]> => (await admin<{ jobs: SiteJob[] }>(node, '/api/jobs?scope=all')).jobs
export interface Usage { id: string, kind: string, user: string, jobId: string, printer: string, site: string, pages: number, colorPages: number, sheets: number, copies: number }
/** The usage records a site knows (its own and every peer's it replicates), each id once. */
export const usageAt = async (site: SiteProcess): Promise<Usage[]> => (await admin<{ records: Usage[] }>(site, '/api/usage/records')).records

/** A PDF of `pages` pages (`color` of them in colour) with its own bytes (titled `name`), and its sha256. */
export async function makeDocument (docs: string, name: string, pages: number, color: number[]): Promise<{ path: string, sha256: string }> {
  const path = await makePdf(docs, { pages, colorPages: color, title: name })
  return { path, sha256: createHash('sha256').update(await readFile(path)).digest('hex') }
}

/** The sha256 of every document a printer received, in job order. */
export async function printedBy (printer: IppEvePrinter): Promise<string[]> {
  const files = await printer.jobFiles()
  return await Promise.all(files.map(async (f) => createHash('sha256').update(await readFile(f)).digest('hex')))
}

/** Until `writer` of `doc` sees `peer` holding all of it (the vector `peer` told back): a change `writer` made reached `peer`. */
export async function reachedPeer (writer: SiteProcess, doc: string, peer: string): Promise<void> {
  await until(async () => {
    const status = await admin<{ documents: Array<{ doc: string, peers: Record<string, string> }> }>(writer, '/api/mesh')
    return status.documents.find((d) => d.doc === doc)?.peers[peer] === 'in-sync'
  }, MESH_TIMEOUT_MS, `${doc} at ${peer}`)
}

/** Whether a terminal's panel says it reaches its site (false: working offline). */
export async function terminalOnline (node: SiteProcess): Promise<boolean> {
  return ((await (await fetch(`${node.httpUrl}/api/panel/status`)).json()) as { online: boolean }).online
}
