/**
 * Drives Debian's `ipptool` (a real IPP client) from tests: print a file as a given user,
 * list jobs. Each call writes a small .test script into a temp folder and reads the values
 * ipptool DISPLAYs.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
/** ipptool gives up on a silent server after this. */
const IPPTOOL_TIMEOUT_S = 30

async function ipptool (uri: string, script: string, file?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ipptool-'))
  try {
    const path = join(dir, 'op.test')
    await writeFile(path, script)
    const args = ['-T', String(IPPTOOL_TIMEOUT_S), '-t', ...(file !== undefined ? ['-f', file] : []), uri, path]
    const { stdout } = await run('ipptool', args, { encoding: 'utf8' }).catch((err: { stdout?: string, message: string }) => {
      throw new Error(`ipptool failed: ${err.message}\n${err.stdout ?? ''}`)
    })
    return stdout
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function displayed (out: string, name: string): string[] {
  return [...out.matchAll(new RegExp(`^\\s*${name} \\([^)]*\\) = (.*)$`, 'gm'))].map((m) => m[1])
}

/** Print-Job as `user`; resolves with the job-id the server acknowledged. */
export async function printFile (uri: string, file: string, opts: { user: string, format: string, name?: string, copies?: number, sides?: string }): Promise<number> {
  const out = await ipptool(uri, `{
  NAME "Print-Job"
  OPERATION Print-Job
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR naturalLanguage attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name "${opts.user}"
  ATTR name job-name "${opts.name ?? 'test job'}"
  ATTR mimeMediaType document-format ${opts.format}
  GROUP job-attributes-tag
  ATTR integer copies ${opts.copies ?? 1}
  ATTR keyword sides ${opts.sides ?? 'one-sided'}
  FILE $filename
  STATUS successful-ok
  EXPECT job-id
  DISPLAY job-id
}
`, file)
  const ids = displayed(out, 'job-id')
  if (ids.length !== 1) throw new Error(`no job-id in ipptool output:\n${out}`)
  return Number(ids[0])
}

export interface ListedJob { id: number, state: string, user: string, name: string }

/** Get-Jobs (which-jobs=all) as ipptool sees it. */
export async function listJobs (uri: string): Promise<ListedJob[]> {
  const out = await ipptool(uri, `{
  NAME "Get-Jobs"
  OPERATION Get-Jobs
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR naturalLanguage attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR name requesting-user-name "admin"
  ATTR keyword which-jobs all
  ATTR keyword requested-attributes job-id,job-state,job-originating-user-name,job-name
  STATUS successful-ok
  DISPLAY job-id
  DISPLAY job-state
  DISPLAY job-originating-user-name
  DISPLAY job-name
}
`)
  const ids = displayed(out, 'job-id')
  const states = displayed(out, 'job-state')
  const users = displayed(out, 'job-originating-user-name')
  const names = displayed(out, 'job-name')
  return ids.map((id, i) => ({ id: Number(id), state: states[i], user: users[i], name: names[i] }))
}
