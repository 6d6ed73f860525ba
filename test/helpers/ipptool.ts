/**
 * Drives Debian's `ipptool` (a real IPP client) from tests: print a file as a given user,
 * list jobs. Each call writes a small .test script into a temp folder and reads the values
 * ipptool DISPLAYs. A login goes where ipptool takes it, in the URI
 * (`ipp://user:password@host…`): ipptool sends it after the server answers 401, and keeps
 * sending it on that connection for the rest of the script.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
/** ipptool gives up on a silent server after this. */
const IPPTOOL_TIMEOUT_S = 30

/** A login: a user and PIN, or `admin` and the admin token. */
export interface IppLogin { user: string, password: string }

/** `uri` with `login` in it, as ipptool reads credentials. */
export function withLogin (uri: string, login: IppLogin | undefined): string {
  if (login === undefined) return uri
  const u = new URL(uri)
  u.username = encodeURIComponent(login.user)
  u.password = encodeURIComponent(login.password)
  return u.toString()
}

/** What ipptool printed (its test report) and its exit code (0: every test passed). */
export interface IpptoolRun { code: number, out: string }

/**
 * Runs one ipptool script against `uri`, with `-d name=value` variables; resolves whether its
 * tests passed or not. ipptool runs in a session of its own, without a terminal: when the
 * server asks for a login the URI does not carry, it cannot stop at a password prompt.
 */
export async function runIpptool (uri: string, script: string, opts: { file?: string, vars?: Record<string, string> } = {}): Promise<IpptoolRun> {
  const dir = await mkdtemp(join(tmpdir(), 'ipptool-'))
  try {
    const path = join(dir, 'op.test')
    await writeFile(path, script)
    const vars = Object.entries(opts.vars ?? {}).flatMap(([name, value]) => ['-d', `${name}=${value}`])
    const args = ['-T', String(IPPTOOL_TIMEOUT_S), '-t', ...vars, ...(opts.file !== undefined ? ['-f', opts.file] : []), uri, path]
    try {
      // setsid: a session of its own, so no controlling terminal (-w: wait, and pass on ipptool's exit code)
      const { stdout } = await run('setsid', ['-w', 'ipptool', ...args], { encoding: 'utf8' })
      return { code: 0, out: stdout }
    } catch (err) {
      const e = err as { code?: unknown, stdout?: string, stderr?: string, message: string }
      if (typeof e.code !== 'number') throw err // ipptool did not run
      return { code: e.code, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs one ipptool script against `uri`; resolves with what it printed, rejects when a test failed. */
export async function ipptool (uri: string, script: string, file?: string): Promise<string> {
  const { code, out } = await runIpptool(uri, script, file !== undefined ? { file } : {})
  if (code !== 0) throw new Error(`ipptool failed (exit ${code}):\n${out}`)
  return out
}

/**
 * One ipptool test of `operation`: the attributes every request starts with (charset,
 * language, printer-uri), then `lines` (more attributes, STATUS, EXPECT, DISPLAY…).
 */
export function ippTest (name: string, operation: string, lines: string[]): string {
  return [
    '{', `  NAME "${name}"`, `  OPERATION ${operation}`, '  GROUP operation-attributes-tag',
    '  ATTR charset attributes-charset utf-8', '  ATTR naturalLanguage attributes-natural-language en', '  ATTR uri printer-uri $uri',
    ...lines.map((l) => `  ${l}`), '}', ''
  ].join('\n')
}

function displayed (out: string, name: string): string[] {
  return [...out.matchAll(new RegExp(`^\\s*${name} \\([^)]*\\) = (.*)$`, 'gm'))].map((m) => m[1])
}

/** Print-Job as `user` (logged in as `login` when the queue asks); resolves with the job-id the server acknowledged. */
export async function printFile (uri: string, file: string, opts: { user: string, format: string, name?: string, copies?: number, sides?: string, login?: IppLogin }): Promise<number> {
  const out = await ipptool(withLogin(uri, opts.login), ippTest('Print-Job', 'Print-Job', [
    `ATTR name requesting-user-name "${opts.user}"`,
    `ATTR name job-name "${opts.name ?? 'test job'}"`,
    `ATTR mimeMediaType document-format ${opts.format}`,
    'GROUP job-attributes-tag',
    `ATTR integer copies ${opts.copies ?? 1}`,
    `ATTR keyword sides ${opts.sides ?? 'one-sided'}`,
    'FILE $filename',
    'STATUS successful-ok',
    'EXPECT job-id',
    'DISPLAY job-id'
  ]), file)
  const ids = displayed(out, 'job-id')
  if (ids.length !== 1) throw new Error(`no job-id in ipptool output:\n${out}`)
  return Number(ids[0])
}

/** A listed job; `user` and `name` are undefined where they are private to the one asking. */
export interface ListedJob { id: number, state: string, user?: string, name?: string }

/**
 * Logs in: Get-Jobs with my-jobs needs a login, so the server answers 401 and ipptool sends
 * the credentials of its URI, then keeps them for the script's later requests.
 */
export const LOG_IN = ippTest('Log in (Get-Jobs my-jobs)', 'Get-Jobs', ['ATTR boolean my-jobs true', 'STATUS successful-ok'])

/**
 * Get-Jobs (which-jobs=all) as ipptool sees it, logged in as `login` (the admin sees every
 * job's name and owner, a user their own; without a login, names and owners are private:
 * empty here).
 */
export async function listJobs (uri: string, login?: IppLogin): Promise<ListedJob[]> {
  const out = await ipptool(withLogin(uri, login), (login !== undefined ? LOG_IN : '') + ippTest('Get-Jobs', 'Get-Jobs', [
    'ATTR keyword which-jobs all',
    'ATTR keyword requested-attributes job-id,job-state,job-originating-user-name,job-name',
    'STATUS successful-ok',
    'DISPLAY job-id',
    'DISPLAY job-state',
    'DISPLAY job-originating-user-name',
    'DISPLAY job-name'
  ]))
  return displayedJobs(out).map((j) => ({ id: Number(j['job-id']), state: j['job-state'], user: j['job-originating-user-name'], name: j['job-name'] }))
}

/**
 * The DISPLAYed attributes of each job in ipptool's report, which lists a job's attributes
 * together, job-id first (a job whose private attributes were left out simply lacks them).
 */
function displayedJobs (out: string): Array<Record<string, string>> {
  const jobs: Array<Record<string, string>> = []
  for (const m of out.matchAll(/^\s*([a-z0-9-]+) \([^)]*\) = (.*)$/gm)) {
    if (m[1] === 'job-id') jobs.push({})
    const job = jobs[jobs.length - 1]
    if (job !== undefined) job[m[1]] = m[2]
  }
  return jobs
}
