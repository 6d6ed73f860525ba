// The product license with real processes over libp2p/TCP on loopback: the `printmesh license`
// CLI round trip, central refusing to start on a license it cannot trust, a second site refused
// by a one-site license while the first keeps printing, and a license expired 40 days ago
// installed over the API: printing and release go on, a new enrolment is refused naming the
// expiry, /metrics and /api/license say expired, and the license survives a restart.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, startCentral, startTerminal, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { printFile } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'
import { admin } from './helpers/node-api.ts'
import { signInAdmin, startBrowser } from './helpers/browser.ts'

/** Mesh operations here wait at most this long: anti-entropy runs every second. */
const MESH_TIMEOUT_MS = 30_000
const DAY_MS = 24 * 3600_000
/** Longest wait for something to appear on the admin page (it polls the mesh every 5 s). */
const UI_TIMEOUT_MS = 15_000

let dir = ''
let keys = ''
const running: SiteProcess[] = []

/** `printmesh ARGS`; its exit code and output. */
function cli (...args: string[]): { code: number, out: string, err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'node/cli.ts', ...args], { encoding: 'utf8' })
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr }
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

/** Issues a license with the test vendor key through the CLI; returns its file. */
function issue (name: string, sites: number, expires: number): string {
  const file = join(dir, name)
  const r = cli('license', 'issue', '--vendor-key', join(keys, 'vendor-private-key.pem'), '--org', 'Acme Ltd', '--id', name,
    '--sites', String(sites), '--terminals', '5', '--clients', '5', '--users', '100', '--expires', day(expires), '--out', file)
  assert.is(r.code, 0, r.err)
  return file
}

async function joinString (central: SiteProcess, role: string, site: string): Promise<string> {
  return (await admin<{ joinString: string }>(central, '/api/mesh/tokens', { method: 'POST', body: { role, site } })).joinString
}

/** Prints a one-page PDF to `site`, releases it as admin and waits until it is printed. */
async function printAndRelease (site: SiteProcess, name: string): Promise<void> {
  const pdf = await makePdf(dir, { pages: 1, colorPages: [] })
  const ippId = await printFile(site.ippUri, pdf, { user: 'alice', format: 'application/pdf', name })
  const jobs = async (): Promise<Array<{ id: string, ippId: number, state: string }>> => (await admin<{ jobs: Array<{ id: string, ippId: number, state: string }> }>(site, '/api/jobs?scope=all')).jobs
  let job: { id: string } | undefined
  await until(async () => { job = (await jobs()).find((j) => j.ippId === ippId && j.state === 'held'); return job !== undefined }, MESH_TIMEOUT_MS, `${name} held`)
  await admin(site, `/api/jobs/${(job as { id: string }).id}/release`, { method: 'POST', body: {} })
  await until(async () => (await jobs()).some((j) => j.ippId === ippId && j.state === 'printed'), MESH_TIMEOUT_MS, `${name} printed`)
}

interface LicenseView { state: string, license?: { licenseId: string, expiresAt: string }, usage: Record<string, number>, message: string }

async function started (p: Promise<SiteProcess>): Promise<SiteProcess> {
  const node = await p
  running.push(node)
  return node
}

test.before(async () => {
  dir = await tempDir('printmesh-license-')
  keys = join(dir, 'vendor')
})

test.after(async () => {
  for (const p of running.reverse()) await p.stop()
  await rm(dir, { recursive: true, force: true })
})

test('printmesh license keygen, issue and show: a key pair, a signed license, its fields checked', async () => {
  const made = cli('license', 'keygen', '--out', keys)
  assert.is(made.code, 0, made.err)
  assert.is((await stat(join(keys, 'vendor-private-key.pem'))).mode & 0o777, 0o600)
  assert.match(cli('license', 'keygen', '--out', keys).err, /exists already: a vendor key is never overwritten/)
  const file = issue('lic-round-trip', 3, Date.now() + 365 * DAY_MS)
  const shown = cli('license', 'show', file, '--vendor-public-key', join(keys, 'vendor-public-key.pem'))
  assert.is(shown.code, 0, shown.err)
  assert.match(shown.out, /license lic-round-trip: signature valid/)
  assert.match(shown.out, /organisation: Acme Ltd/)
  assert.match(shown.out, /limits: +3 sites, 5 terminals, 5 clients, 100 users/)
  assert.match(shown.out, /state: +valid/)
  // the shipped vendor key did not sign it
  const shipped = cli('license', 'show', file)
  assert.is(shipped.code, 1)
  assert.match(shipped.err, /invalid license: .*lic-round-trip: the signature does not match the vendor key/)
})

test('central refuses to start on a license signed by another key, or malformed, naming the problem', async () => {
  const file = issue('lic-other-key', 1, Date.now() + 365 * DAY_MS)
  // checked against the shipped vendor key, which did not sign it
  const err = await startCentral({ args: ['--license', file] }).then(() => 'started', (e: Error) => e.message)
  assert.match(err, /exited \(1\)/)
  assert.match(err, /printmesh: invalid license: .*lic-other-key: the signature does not match the vendor key \(signed by another key, or altered after signing\)/)
  const broken = join(dir, 'broken.json')
  await writeFile(broken, '{"license": ')
  const malformed = await startCentral({ args: ['--license', broken, '--vendor-public-key', join(keys, 'vendor-public-key.pem')] }).then(() => 'started', (e: Error) => e.message)
  assert.match(malformed, /printmesh: invalid license: .*broken.json: not JSON/)
})

let central: SiteProcess
let siteA: SiteProcess

test('a one-site license: a second site\'s join is refused with the limit, the first keeps printing', async () => {
  const file = issue('lic-one-site', 1, Date.now() + 365 * DAY_MS)
  central = await started(startCentral({ args: ['--license', file, '--vendor-public-key', join(keys, 'vendor-public-key.pem')] }))
  siteA = await started(startSite({ args: ['--site', 'site-a', '--join', await joinString(central, 'site', 'site-a')] }))
  await printAndRelease(siteA, 'before')
  const refused = await startSite({ args: ['--site', 'site-b', '--join', await joinString(central, 'site', 'site-b')] }).then((s) => { running.push(s); return 'joined' }, (e: Error) => e.message)
  assert.match(refused, /central refused to enroll this peer: license allows 1 site; 1 is enrolled/)
  await printAndRelease(siteA, 'after')
  const view = await admin<LicenseView>(central, '/api/license')
  assert.equal([view.state, view.license?.licenseId, view.usage.sites], ['valid', 'lic-one-site', 1])
})

test('a license expired 40 days ago: the site prints and releases, a new enrolment is refused naming the expiry, /metrics and /api/license say expired', async () => {
  const expiredOn = Date.now() - 40 * DAY_MS
  const file = issue('lic-expired', 5, expiredOn)
  const installed = await admin<LicenseView>(central, '/api/license', { method: 'PUT', body: JSON.parse(await readFile(file, 'utf8')) })
  assert.is(installed.state, 'expired')
  await printAndRelease(siteA, 'expired')
  const refused = await startTerminal({ args: ['--join', await joinString(central, 'terminal', 'site-a')] }).then((t) => { running.push(t); return 'joined' }, (e: Error) => e.message)
  assert.match(refused, new RegExp(`central refused to enroll this peer: the license \\(lic-expired\\) expired on ${day(expiredOn)}`))
  const metrics = await (await fetch(`${central.httpUrl}/metrics`)).text()
  assert.match(metrics, /printmesh_license_state\{state="expired"\} 1/)
  const expiry = Number(/^printmesh_license_expiry_seconds (-?\d+)/m.exec(metrics)?.[1])
  assert.ok(expiry < -39 * 24 * 3600, `expiry ${expiry} s`)
  assert.ok(central.logs().some((l) => l.includes('"level":40') && l.includes('expired on')), 'no warning logged')
  // a bad license over the API is refused and the installed one stays
  const forged = await fetch(`${central.httpUrl}/api/license`, { method: 'PUT', headers: { authorization: `Bearer ${central.adminToken}`, 'content-type': 'application/json' }, body: '{"license": {"format": "printmesh-license/1"}, "signature": ""}' })
  assert.is(forged.status, 400)
  assert.match(((await forged.json()) as { error: string }).error, /invalid license: "organisation" must be/)
  // the installed license is kept in the data folder: a restart without --license still has it
  const { dataDir, listen } = central
  await central.kill('SIGTERM')
  // on the same address, which the site knows
  const port = /\/tcp\/(\d+)/.exec(listen[0])?.[1] as string
  central = await started(startCentral({ dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`, '--vendor-public-key', join(keys, 'vendor-public-key.pem')] }))
  const after = await admin<LicenseView>(central, '/api/license')
  assert.equal([after.state, after.license?.licenseId], ['expired', 'lic-expired'])
  await until(async () => (await admin<{ peers: Array<{ peer: string, connected: boolean }> }>(central, '/api/mesh')).peers.some((p) => p.peer === siteA.peer && p.connected), MESH_TIMEOUT_MS, 'site-a reconnected to central')
  await printAndRelease(siteA, 'after restart')
})

test('central\'s admin page shows a banner saying the license expired', async () => {
  const browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  try {
    const { page } = browser
    await page.goto(`${central.httpUrl}/admin`)
    await signInAdmin(page, central.adminToken)
    const banner = page.locator('#license-banner')
    await banner.getByText(/^License: the license lic-expired for Acme Ltd expired on \d{4}-\d{2}-\d{2}: new enrolments are refused/).waitFor()
    assert.ok(await banner.evaluate((el) => el.classList.contains('error')), 'shown as an error')
    assert.equal(browser.pageErrors, [])
  } finally {
    await browser.close()
  }
})

test.run()
