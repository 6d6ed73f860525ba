/**
 * CUPS' own IPP conformance suites (ipptool's ipp-1.1.test and ipp-2.0.test) against a
 * printmesh queue. The suites name sample documents (document-a4.pdf, color.jpg, ...)
 * Debian does not ship, so they run from a temp copy next to generated ones. ipptool runs as
 * a logged-in user (user:PIN in the URI, as the suites provide for with `uriuser`): the
 * suites expect a client to see its own jobs' names, which printmesh shows only to the
 * authenticated owner; ipptool sends the login once asked (HTTP 401) and from then on.
 */
import { execFile } from 'node:child_process'
import { copyFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeJpeg, makePdf, makePostScript } from '../fixtures/documents.ts'
import { tempDir } from '../../simulations/node-process.ts'

const run = promisify(execFile)
/** Where Debian's cups-ipp-utils installs the suites. */
const SUITES = '/usr/share/cups/ipptool'
/** ipptool gives up on a silent server after this many seconds. */
const IPPTOOL_TIMEOUT_S = 30
/** A whole suite, including its waits for jobs to complete, must finish within this. */
const SUITE_TIMEOUT_MS = 120_000

export interface ConformanceSuites {
  /** Runs `name` (ipp-1.1.test or ipp-2.0.test) against the queue at `ippUri` as `user` with `pin`; ipptool's exit code and report. */
  run (name: string, ippUri: string, user: string, pin: string): Promise<{ code: number, out: string }>
  /** Removes the folder of suites and documents. */
  remove (): Promise<void>
}

/** Copies the suites into a temp folder beside the sample documents they print. */
export async function prepareSuites (): Promise<ConformanceSuites> {
  const dir = await tempDir('printmesh-ipptool-')
  for (const suite of ['ipp-1.1.test', 'ipp-2.0.test']) await copyFile(join(SUITES, suite), join(dir, suite))
  const put = async (made: Promise<string>, name: string): Promise<void> => { await rename(await made, join(dir, name)) }
  await put(makePdf(dir, { pages: 2, colorPages: [1], media: 'a4' }), 'document-a4.pdf')
  await put(makePdf(dir, { pages: 2, media: 'letter' }), 'document-letter.pdf')
  await put(makePostScript(dir, { pages: 2, media: 'a4' }), 'document-a4.ps')
  await put(makePostScript(dir, { pages: 2, media: 'letter' }), 'document-letter.ps')
  await put(makeJpeg(dir, { color: true }), 'color.jpg')
  await put(makeJpeg(dir, { color: false }), 'gray.jpg')
  return {
    async run (name, ippUri, user, pin) {
      const uri = new URL(ippUri)
      uri.username = user
      uri.password = pin
      const args = ['-T', String(IPPTOOL_TIMEOUT_S), '-t', '-f', join(dir, 'document-a4.pdf'), uri.toString(), join(dir, name)]
      try {
        // CUPS_USER: the suites' $user (requesting-user-name, the owner of what they print) is the one logging in
        const { stdout } = await run('ipptool', args, { cwd: dir, encoding: 'utf8', timeout: SUITE_TIMEOUT_MS, env: { ...process.env, CUPS_USER: user } })
        return { code: 0, out: stdout }
      } catch (err) {
        const e = err as { code?: number, stdout?: string, stderr?: string, message: string }
        return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` }
      }
    },
    remove: async () => { await rm(dir, { recursive: true, force: true }) }
  }
}

/** Whether the report says test `name` passed. */
export function passed (out: string, name: string): boolean {
  return new RegExp(`^\\s+${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+\\[PASS\\]`, 'm').test(out)
}
