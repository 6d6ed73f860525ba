/**
 * A real IPP Everywhere printer for tests: Debian's `ippeveprinter` (cups-ipp-utils) on a
 * free loopback port with a private spool folder.
 *
 * Needs DNS-SD (avahi over the system D-Bus); `npm test` provides both inside its private
 * network namespace, so nothing is advertised beyond this machine.
 *
 * Where the documents land: with `-k` ippeveprinter keeps every received document in
 * its spool folder (`-d`) as `<job-id>-<job-name>.<ext>`: the job name lowercased, each
 * run of characters other than `[a-z0-9-]` turned into one `_` (`untitled` without a
 * job-name), the extension from the document format (pdf, ps, pwg, urf, jpg, png, pcl,
 * else `dat`). It is written while the request is read and is complete once Print-Job
 * has been answered.
 *
 * Job processing: without a command ippeveprinter "prints" by sleeping 5–15 s. To keep
 * tests fast and steerable it runs a small generated script per job (`-c`), which
 * completes the job at once (or as {@link IppEvePrinterOptions.jobOutcome} says),
 * reports `job-impressions-completed` when asked, and records the job's IPP attributes
 * (ippeveprinter passes them as `IPP_*` environment variables) for {@link
 * IppEvePrinter.jobAttributes}. With a command, ippeveprinter also saves the command's
 * standard output as `<job-id>-<job-name>.prn`; {@link IppEvePrinter.jobFiles} skips those.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

/** How long ippeveprinter may take to answer its first Get-Printer-Attributes. */
const START_TIMEOUT_MS = 15_000
/** Pause between readiness checks while it starts. */
const START_POLL_MS = 100
/** How long it gets to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3_000
/** Timeout of one readiness check (ipptool's own connect/answer limit, in seconds). */
const IPPTOOL_TIMEOUT_S = 2
/** How many free-port picks to try when another process grabs the port first. */
const PORT_ATTEMPTS = 3

/** Formats a default test printer accepts. */
export const DEFAULT_FORMATS = ['application/pdf', 'image/pwg-raster', 'image/jpeg', 'text/plain', 'application/postscript']

/** How the printer finishes each job. */
export type JobOutcome =
  /** completed at once */
  | 'complete'
  /** aborted at once (the job command exits non-zero) → job-state aborted */
  | 'abort'
  /** stays processing until the printer is stopped (to test following and aborts) */
  | 'hold'

export interface IppEvePrinterOptions {
  /** printer-name / DNS-SD name; a unique suffix is added. Default `printmesh test printer`. */
  name?: string
  /** document-format-supported. Default {@link DEFAULT_FORMATS}. */
  formats?: string[]
  /** Two-sided printing support (`-2`). Default false. */
  duplex?: boolean
  /** Default `complete`. */
  jobOutcome?: JobOutcome
  /** job-impressions-completed the printer reports per job (not reported when omitted). */
  impressions?: number
  /**
   * How long each job takes to "print" before it ends as {@link jobOutcome} says; default 0.
   * ippeveprinter processes one job at a time and answers `server-error-busy` to Print-Job
   * meanwhile, as many real printers do.
   */
  processMs?: number
  /**
   * Also speak TLS on the same port (`-K`: ippeveprinter makes a self-signed certificate
   * for its host name); `ippsUri` is then set. Default false.
   */
  tls?: boolean
  /**
   * What each job's command reports of the printer afterwards, as ippeveprinter `ATTR:`
   * assignments (e.g. `marker-levels=80,45`: its supplies); none by default, so until a
   * job has run the printer reports no supplies.
   */
  reports?: string[]
}

export interface IppEvePrinter {
  /** `ipp://127.0.0.1:<port>/ipp/print` */
  uri: string
  /** `ipps://127.0.0.1:<port>/ipp/print` when started with `tls: true`. */
  ippsUri?: string
  port: number
  /** ippeveprinter's `-d` folder. */
  spoolDir: string
  /** Stops the printer (SIGTERM, then SIGKILL after a grace period) and removes its folders. Idempotent. */
  stop(): Promise<void>
  /** Paths of the received documents, in job-id order. */
  jobFiles(): Promise<string[]>
  /** IPP job attributes per processed job, in job-id order (`{ copies: '2', sides: '…' }`). */
  jobAttributes(): Promise<Array<Record<string, string>>>
}

/** ippeveprinter could not be started or never answered. */
export class IppEvePrinterStartError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'IppEvePrinterStartError'
  }
}

/** A free TCP port on loopback (closed again before returning, so it can be taken meanwhile). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port assigned'))
      })
    })
  })
}

/** The per-job command: records attributes, reports impressions, ends as told. */
function jobScript (attrsDir: string, outcome: JobOutcome, impressions: number | undefined, processMs: number, reports: string[] = []): string {
  const lines = [
    '#!/bin/sh',
    '# Generated by test/helpers/ippeveprinter.ts; $1 is the spooled document.',
    `env | grep -E '^(IPP_|CONTENT_TYPE=)' > "${attrsDir}/$(basename "$1").env"`
  ]
  if (processMs > 0) lines.push(`sleep ${(processMs / 1000).toFixed(3)}`)
  if (impressions !== undefined) lines.push(`echo "ATTR: job-impressions-completed=${impressions}" >&2`)
  for (const report of reports) lines.push(`echo 'ATTR: ${report}' >&2`)
  if (outcome === 'abort') lines.push('echo "ERROR: test printer aborts every job" >&2', 'exit 1')
  // Polls its parent: ends when ippeveprinter is gone, so no process outlives the printer.
  if (outcome === 'hold') lines.push('while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done', 'exit 1')
  lines.push('exit 0')
  return lines.join('\n') + '\n'
}

/** `IPP_JOB_NAME` → `job-name`; `CONTENT_TYPE` (how ippeveprinter passes the format) → `document-format`. */
function attributeName (envName: string): string {
  if (envName === 'CONTENT_TYPE') return 'document-format'
  return envName.replace(/^IPP_/, '').toLowerCase().replace(/_/g, '-')
}

/** Printers still running: killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>()
let exitHookInstalled = false
function track (child: ChildProcess): void {
  live.add(child)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => { for (const c of live) c.kill('SIGKILL') })
}

/** Job id of a spool file name `<id>-<name>.<ext>`. */
function jobIdOf (file: string): number {
  return Number(file.slice(0, file.indexOf('-')))
}

/** Whether ippeveprinter answers Get-Printer-Attributes (checked with ipptool, independent of our IPP code). */
function answers (uri: string): boolean {
  const r = spawnSync('ipptool', ['-q', '-T', String(IPPTOOL_TIMEOUT_S), uri, 'get-printer-attributes.test'], { stdio: 'ignore' })
  return r.status === 0
}

async function waitForExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  const exited = new Promise<true>((resolve) => child.once('exit', () => resolve(true)))
  const ac = new AbortController()
  const timedOut = delay(ms, false, { signal: ac.signal }).catch(() => false)
  const result = await Promise.race([exited, timedOut])
  ac.abort()
  return result
}

/**
 * Starts ippeveprinter and resolves once it answers Get-Printer-Attributes.
 * Always `stop()` it (in `finally` / `after`); it is also killed if the test process exits.
 */
export async function startIppEvePrinter (opts: IppEvePrinterOptions = {}): Promise<IppEvePrinter> {
  const root = mkdtempSync(join(tmpdir(), 'printmesh-ippeve-'))
  const spoolDir = join(root, 'spool')
  const attrsDir = join(root, 'attrs')
  mkdirSync(spoolDir)
  mkdirSync(attrsDir)
  const keysDir = join(root, 'keys')
  if (opts.tls === true) mkdirSync(keysDir)
  const script = join(root, 'job.sh')
  writeFileSync(script, jobScript(attrsDir, opts.jobOutcome ?? 'complete', opts.impressions, opts.processMs ?? 0, opts.reports))
  chmodSync(script, 0o755)
  const name = `${opts.name ?? 'printmesh test printer'} ${process.pid}-${Math.random().toString(36).slice(2, 8)}`
  const formats = opts.formats ?? DEFAULT_FORMATS

  let lastError: Error | undefined
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    const port = await freePort()
    const args = ['-k', '-d', spoolDir, '-p', String(port), '-f', formats.join(','), '-c', script, ...(opts.duplex === true ? ['-2'] : []), ...(opts.tls === true ? ['-K', keysDir] : []), name]
    const child = spawn('ippeveprinter', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
    track(child)
    const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve))
    let spawnError: Error | undefined
    void spawnFailed.then((e) => { spawnError = e })

    const uri = `ipp://127.0.0.1:${port}/ipp/print`
    const deadline = Date.now() + START_TIMEOUT_MS
    let ready = false
    while (Date.now() < deadline && spawnError === undefined && child.exitCode === null && child.signalCode === null) {
      if (answers(uri)) { ready = true; break }
      await delay(START_POLL_MS)
    }
    if (ready) {
      let stopped = false
      return {
        uri,
        ...(opts.tls === true ? { ippsUri: `ipps://127.0.0.1:${port}/ipp/print` } : {}),
        port,
        spoolDir,
        async stop () {
          if (stopped) return
          stopped = true
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            if (!await waitForExit(child, STOP_GRACE_MS)) {
              child.kill('SIGKILL')
              await waitForExit(child, STOP_GRACE_MS)
            }
          }
          live.delete(child)
          rmSync(root, { recursive: true, force: true })
        },
        async jobFiles () {
          const names = (await readdir(spoolDir)).filter((f) => /^\d+-.+\.[a-z0-9]+$/.test(f) && !f.endsWith('.prn'))
          return names.sort((a, b) => jobIdOf(a) - jobIdOf(b)).map((f) => join(spoolDir, f))
        },
        async jobAttributes () {
          const names = (await readdir(attrsDir)).filter((f) => f.endsWith('.env')).sort((a, b) => jobIdOf(a) - jobIdOf(b))
          const out: Array<Record<string, string>> = []
          for (const f of names) {
            const record: Record<string, string> = {}
            for (const line of (await readFile(join(attrsDir, f), 'utf8')).split('\n')) {
              const eq = line.indexOf('=')
              if (eq > 0) record[attributeName(line.slice(0, eq))] = line.slice(eq + 1)
            }
            out.push(record)
          }
          return out
        }
      }
    }
    // Not ready: end this attempt's process before trying another port or giving up.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await waitForExit(child, STOP_GRACE_MS)
    }
    live.delete(child)
    lastError = new IppEvePrinterStartError(
      spawnError !== undefined
        ? `cannot run ippeveprinter: ${spawnError.message}`
        : `ippeveprinter on port ${port} did not answer within ${START_TIMEOUT_MS} ms (exit ${child.exitCode ?? child.signalCode ?? 'none'}): ${stderr.trim()}`
    )
    // A taken port shows as an early exit; anything else will not get better on retry.
    if (spawnError !== undefined || !/listen|bind|address/i.test(stderr)) break
  }
  rmSync(root, { recursive: true, force: true })
  throw lastError ?? new IppEvePrinterStartError('ippeveprinter did not start')
}
