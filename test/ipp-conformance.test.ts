// CUPS' own IPP conformance suites (ipptool's ipp-1.1.test and ipp-2.0.test) against a real
// `printmesh site` process. The site runs with --no-hold so jobs print to its virtual
// printer and complete, as the suites wait for. The suites name sample documents
// (document-a4.pdf, color.jpg, ...) Debian does not ship, so they run from a temp copy
// next to generated ones. ipptool runs as a logged-in user (user:PIN in the URI, as the
// suites provide for with `uriuser`): the suites expect a client to see its own jobs' names,
// which a site shows only to the authenticated owner. ipptool sends the login once the site
// asks for it (HTTP 401, first at the suite's Get-Jobs with my-jobs) and from then on. The
// 1.1 suite runs once more against a site whose queue needs a login for printing
// (--ipp-auth intake: the suite's first Print-Job is answered 401 and sent again logged in).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { copyFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeJpeg, makePdf, makePostScript } from './fixtures/documents.ts'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'

const run = promisify(execFile)
/** Where Debian's cups-ipp-utils installs the suites. */
const SUITES = '/usr/share/cups/ipptool'
/** ipptool gives up on a silent server after this many seconds. */
const IPPTOOL_TIMEOUT_S = 30
/** A whole suite, including its waits for jobs to complete, must finish within this. */
const SUITE_TIMEOUT_MS = 120_000
/** The user ipptool prints and logs in as. */
const USER = 'alice'
const PIN = '2580'

let site: SiteProcess | undefined
/** Its queue needs a login for printing too. */
let intake: SiteProcess | undefined
let dir: string

test.before(async () => {
  dir = await tempDir('printmesh-ipptool-')
  for (const suite of ['ipp-1.1.test', 'ipp-2.0.test']) await copyFile(join(SUITES, suite), join(dir, suite))
  const put = async (made: Promise<string>, name: string): Promise<void> => { await rename(await made, join(dir, name)) }
  await put(makePdf(dir, { pages: 2, colorPages: [1], media: 'a4' }), 'document-a4.pdf')
  await put(makePdf(dir, { pages: 2, media: 'letter' }), 'document-letter.pdf')
  await put(makePostScript(dir, { pages: 2, media: 'a4' }), 'document-a4.ps')
  await put(makePostScript(dir, { pages: 2, media: 'letter' }), 'document-letter.ps')
  await put(makeJpeg(dir, { color: true }), 'color.jpg')
  await put(makeJpeg(dir, { color: false }), 'gray.jpg')
  ;[site, intake] = await Promise.all([
    startSite({ args: ['--no-hold'], users: `${USER},Alice,${PIN}\n` }),
    startSite({ args: ['--no-hold', '--ipp-auth', 'intake'], users: `${USER},Alice,${PIN}\n` })
  ])
})
test.after(async () => {
  await Promise.all([site?.stop(), intake?.stop()])
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** Runs a suite against `at` (default: the site that trusts requesting-user-name for printing); returns ipptool's exit code and report. */
async function suite (name: string, at = site): Promise<{ code: number, out: string }> {
  assert.ok(at !== undefined)
  const uri = new URL(at.ippUri)
  uri.username = USER
  uri.password = PIN
  const args = ['-T', String(IPPTOOL_TIMEOUT_S), '-t', '-f', join(dir, 'document-a4.pdf'), uri.toString(), join(dir, name)]
  try {
    // CUPS_USER: the suites' $user (requesting-user-name, the owner of what they print) is the one logging in
    const { stdout } = await run('ipptool', args, { cwd: dir, encoding: 'utf8', timeout: SUITE_TIMEOUT_MS, env: { ...process.env, CUPS_USER: USER } })
    return { code: 0, out: stdout }
  } catch (err) {
    const e = err as { code?: number, stdout?: string, stderr?: string, message: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` }
  }
}

function passed (out: string, name: string): boolean {
  return new RegExp(`^\\s+${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+\\[PASS\\]`, 'm').test(out)
}

test('ipptool ipp-1.1.test: no FAIL, exit 0', async () => {
  const { code, out } = await suite('ipp-1.1.test')
  assert.not.match(out, /\[FAIL\]/, out)
  assert.is(code, 0, out)
  for (const name of ['RFC 8011 section 4.2.1: Print-Job Operation', 'Get-Job-Attributes Until Job Complete',
    'RFC 8011 section 4.3.1: Send-Document Operation', 'Print-Job with A4 PostScript', 'Print-Job with Color JPEG on A4']) {
    assert.ok(passed(out, name), `${name} passed:\n${out}`)
  }
})

test('ipptool ipp-2.0.test: no FAIL, exit 0', async () => {
  const { code, out } = await suite('ipp-2.0.test')
  assert.not.match(out, /\[FAIL\]/, out)
  assert.is(code, 0, out)
  assert.ok(passed(out, 'PWG 5100.12 section 6.2 - Required Printer Description Attributes'), out)
})

test('ipptool ipp-1.1.test against a queue that needs a login for printing: no FAIL, exit 0', async () => {
  const { code, out } = await suite('ipp-1.1.test', intake)
  assert.not.match(out, /\[FAIL\]/, out)
  assert.is(code, 0, out)
  for (const name of ['RFC 8011 section 4.2.1: Print-Job Operation', 'RFC 8011 section 4.3.1: Send-Document Operation', 'Print-Job with Color JPEG on A4']) {
    assert.ok(passed(out, name), `${name} passed:\n${out}`)
  }
})

test.run()
