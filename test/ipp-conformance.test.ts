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
import { startSite, type SiteProcess } from '../simulations/node-process.ts'
import { prepareSuites, passed, type ConformanceSuites } from './helpers/conformance.ts'

/** The user ipptool prints and logs in as. */
const USER = 'alice'
const PIN = '2580'

let site: SiteProcess | undefined
/** Its queue needs a login for printing too. */
let intake: SiteProcess | undefined
let suites: ConformanceSuites | undefined

test.before(async () => {
  suites = await prepareSuites()
  ;[site, intake] = await Promise.all([
    startSite({ args: ['--no-hold'], users: `${USER},Alice,${PIN}\n` }),
    startSite({ args: ['--no-hold', '--ipp-auth', 'intake'], users: `${USER},Alice,${PIN}\n` })
  ])
})
test.after(async () => {
  await Promise.all([site?.stop(), intake?.stop()])
  await suites?.remove()
})

/** Runs a suite against `at` (default: the site that trusts requesting-user-name for printing); returns ipptool's exit code and report. */
async function suite (name: string, at = site): Promise<{ code: number, out: string }> {
  assert.ok(at !== undefined && suites !== undefined)
  return await suites.run(name, at.ippUri, USER, PIN)
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
