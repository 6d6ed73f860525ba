// TLS on real processes: the web console over https and the IPP port over ipps:// (and
// ipp:// beside it, as CUPS does on 631), with certificates of the mesh CA.
// - A standalone site with --tls mesh is its own authority: its own mesh CA certifies it.
//   ipptool's conformance suites, CUPS' lp -E (an RFC 2817 upgrade to TLS on the IPP port),
//   Basic logins only over TLS, and DNS-SD's _ipps._tcp run against it.
// - Central with --tls mesh and a site that joined it with --tls mesh: the site's key stays on
//   the site, central's mesh CA certifies it over libp2p, and a client that trusts only that
//   CA (as an admin who imported GET /ca.pem once) reaches both consoles.
// - An admin's own certificate (--tls-cert/--tls-key) is presented as it is; a key that does
//   not fit the certificate stops the start with a clear error.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { MeshCa } from '../node/tls.ts'
import { call, json, tlsCheck } from './helpers/https.ts'
import { ippTest, runIpptool, withLogin } from './helpers/ipptool.ts'
import { prepareSuites, type ConformanceSuites } from './helpers/conformance.ts'
import { browse } from './helpers/avahi.ts'
import { makePdf } from './fixtures/documents.ts'

const CLI = new URL('../node/cli.ts', import.meta.url).pathname
/** Joining, first sync and a job held: each within this. */
const MESH_TIMEOUT_MS = 45_000
const PINS = { alice: '2580', bob: '1397' }
const USERS = Object.entries(PINS).map(([u, pin]) => `${u},${u},${pin}`).join('\n') + '\n'

let standalone: SiteProcess | undefined
let central: SiteProcess | undefined
let member: SiteProcess | undefined
let docs = ''
let suites: ConformanceSuites | undefined
/** The standalone site's own mesh CA, and central's (what an admin imports). */
let standaloneCa = ''
let centralCa = ''

test.before(async () => {
  docs = await tempDir('printmesh-tls-')
  suites = await prepareSuites()
  const centralDir = await tempDir('printmesh-central-')
  await writeFile(join(docs, 'users.csv'), USERS)
  const imported = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'users', 'import', join(docs, 'users.csv'), '--data', centralDir], { encoding: 'utf8' })
  assert.is(imported.status, 0, imported.stderr)
  ;[standalone, central] = await Promise.all([
    startSite({ args: ['--tls', 'mesh', '--no-hold'], users: USERS }),
    startCentral({ dataDir: centralDir, args: ['--tls', 'mesh'] })
  ])
  standaloneCa = await readFile(join(standalone.dataDir, 'tls', 'ca', 'ca.pem'), 'utf8')
  centralCa = await readFile(join(centralDir, 'tls', 'ca', 'ca.pem'), 'utf8')
  const https = `https://127.0.0.1:${central.httpPort}`
  const { joinString } = await json<{ joinString: string }>(`${https}/api/mesh/tokens`, { ca: centralCa, method: 'POST', token: central.adminToken, body: { role: 'site', site: 'site-b' } })
  member = await startSite({ args: ['--site', 'site-b', '--join', joinString, '--tls', 'mesh', '--no-dnssd'] })
})

test.after(async () => {
  await Promise.all([standalone?.stop(), member?.stop()])
  await central?.stop()
  await suites?.remove()
  await rm(central?.dataDir ?? '', { recursive: true, force: true })
  await rm(docs, { recursive: true, force: true })
})

test('a site that joined with --tls mesh presents a certificate of central\'s mesh CA for its names, on the web and the IPP port', async () => {
  assert.ok(member !== undefined && central !== undefined)
  for (const port of [member.httpPort, member.ippPort]) {
    for (const name of ['localhost', undefined]) { // undefined: reached as 127.0.0.1, checked against the certificate's IP names
      const seen = await tlsCheck(port, centralCa, name)
      assert.ok(seen.authorized, `port ${port} as ${name ?? '127.0.0.1'}: ${seen.error ?? ''} (${seen.names}, issuer ${seen.issuer})`)
      assert.match(seen.names, 'IP Address:127.0.0.1')
    }
  }
  // the site's key never left it: the certificate holds the public half of the key in its data folder
  const key = createPublicKey(await readFile(join(member.dataDir, 'tls', 'key.pem'), 'utf8')).export({ type: 'spki', format: 'pem' })
  const record = JSON.parse(await readFile(join(member.dataDir, 'tls', 'cert.json'), 'utf8')) as { cert: string }
  assert.is(createPublicKey(record.cert).export({ type: 'spki', format: 'pem' }), key)
  // every node offers the CA to import, and it is central's
  assert.is((await call(`https://127.0.0.1:${member.httpPort}/ca.pem`, { ca: centralCa })).body, centralCa)
  assert.is((await call(`https://127.0.0.1:${central.httpPort}/ca.pem`, { ca: centralCa })).body, centralCa)
  // a client trusting another CA (the standalone site's) is not fooled
  const other = await tlsCheck(member.httpPort, standaloneCa, 'localhost')
  assert.not.ok(other.authorized)
  // the JSON API answers over https to a client that trusts the mesh CA
  const info = await json<{ site: string, ippUri: string }>(`https://localhost:${member.httpPort}/api/info`, { ca: centralCa })
  assert.is(info.site, 'site-b')
  assert.match(info.ippUri, /^ipps:\/\//)
})

test('plain HTTP on a TLS console redirects pages to https and serves nothing else in the clear', async () => {
  assert.ok(standalone !== undefined)
  const page = await call(`http://127.0.0.1:${standalone.httpPort}/api/info?x=1`)
  assert.is(page.status, 308)
  assert.is(page.headers.location, `https://127.0.0.1:${standalone.httpPort}/api/info?x=1`)
  const login = await call(`http://127.0.0.1:${standalone.httpPort}/api/login`, { method: 'POST', body: { username: 'alice', pin: PINS.alice } })
  assert.is(login.status, 403)
  assert.match(login.body, 'https only')
  const sessionCookie = await call(`https://localhost:${standalone.httpPort}/api/login`, { ca: standaloneCa, method: 'POST', body: { username: 'alice', pin: PINS.alice } })
  assert.is(sessionCookie.status, 200, sessionCookie.body)
  // behind TLS the session cookie is Secure, with the __Host- prefix
  assert.match(String(sessionCookie.headers['set-cookie']), /^__Host-printmesh-session=.*; Secure/)
})

test('Get-Printer-Attributes names the ipps URI with tls security and Basic logins over TLS; over plain ipp the ipp URI, taking no password', async () => {
  assert.ok(standalone !== undefined)
  const script = ippTest('Get-Printer-Attributes', 'Get-Printer-Attributes', [
    'ATTR keyword requested-attributes printer-uri-supported,uri-security-supported,uri-authentication-supported', 'STATUS successful-ok',
    'DISPLAY printer-uri-supported', 'DISPLAY uri-security-supported', 'DISPLAY uri-authentication-supported'
  ])
  const secure = await runIpptool(`ipps://127.0.0.1:${standalone.ippPort}/ipp/print`, script)
  assert.is(secure.code, 0, secure.out)
  assert.match(secure.out, `printer-uri-supported (uri) = ipps://127.0.0.1:${standalone.ippPort}/ipp/print`)
  assert.match(secure.out, 'uri-security-supported (keyword) = tls')
  assert.match(secure.out, 'uri-authentication-supported (keyword) = basic')
  const plain = await runIpptool(`ipp://127.0.0.1:${standalone.ippPort}/ipp/print`, script)
  assert.is(plain.code, 0, plain.out)
  assert.match(plain.out, `printer-uri-supported (uri) = ipp://127.0.0.1:${standalone.ippPort}/ipp/print`)
  assert.match(plain.out, 'uri-security-supported (keyword) = none')
  assert.match(plain.out, 'uri-authentication-supported (keyword) = requesting-user-name')
})

test('a PIN sent over plain ipp:// while TLS is on is refused unchecked; over ipps:// bob cannot cancel alice\'s held job and alice can', async () => {
  assert.ok(member !== undefined)
  const site = member
  // the site logs users in from central's directory, replicated to it
  await until(async () => (await call(`https://localhost:${site.httpPort}/api/login`, { ca: centralCa, method: 'POST', body: { username: 'bob', pin: PINS.bob } })).status === 200,
    MESH_TIMEOUT_MS, 'the directory at the site')
  const pdf = await makePdf(docs, { pages: 2, colorPages: [] })
  const ipps = `ipps://127.0.0.1:${site.ippPort}/ipp/print`
  const ipp = `ipp://127.0.0.1:${site.ippPort}/ipp/print`
  const printed = await runIpptool(ipps, ippTest('Print-Job', 'Print-Job', [
    'ATTR name requesting-user-name alice', 'ATTR name job-name alice-over-tls', 'ATTR mimeMediaType document-format application/pdf',
    'FILE $filename', 'STATUS successful-ok', 'DISPLAY job-id'
  ]), { file: pdf })
  assert.is(printed.code, 0, printed.out)
  const id = /job-id \(integer\) = (\d+)/.exec(printed.out)?.[1]
  assert.ok(id !== undefined, printed.out)
  const state = async (): Promise<string | undefined> => (await json<{ jobs: Array<{ ippId: number, state: string }> }>(`https://localhost:${site.httpPort}/api/jobs?scope=all`, { ca: centralCa, token: site.adminToken })).jobs.find((j) => j.ippId === Number(id))?.state
  await until(async () => await state() === 'held', MESH_TIMEOUT_MS, 'the job held')
  const cancel = async (uri: string, user: keyof typeof PINS): Promise<{ code: number, out: string }> => await runIpptool(withLogin(uri, { user, password: PINS[user] }), ippTest('Cancel-Job', 'Cancel-Job', [
    `ATTR integer job-id ${id}`, `ATTR name requesting-user-name ${user}`, 'STATUS successful-ok'
  ]))
  const clear = await cancel(ipp, 'alice')
  assert.is.not(clear.code, 0, clear.out)
  assert.match(clear.out, /client-error-not-authenticated/)
  assert.is(await state(), 'held')
  const bob = await cancel(ipps, 'bob')
  assert.is.not(bob.code, 0, bob.out)
  assert.match(bob.out, /client-error-(forbidden|not-authorized|not-possible)/)
  assert.is(await state(), 'held')
  const alice = await cancel(ipps, 'alice')
  assert.is(alice.code, 0, alice.out)
  assert.is.not(await state(), 'held')
  // the PIN refused in the clear was never checked, so it counted as no failed login: alice still logs in
  const again = await call(`https://localhost:${site.httpPort}/api/login`, { ca: centralCa, method: 'POST', body: { username: 'alice', pin: PINS.alice } })
  assert.is(again.status, 200, again.body)
})

test('lp -E prints to the site over TLS (an RFC 2817 upgrade on the IPP port)', async () => {
  assert.ok(standalone !== undefined)
  const pdf = await makePdf(docs, { pages: 3, colorPages: [] })
  const r = spawnSync('setsid', ['-w', 'lp', '-E', '-h', `127.0.0.1:${standalone.ippPort}`, '-d', 'print', '-U', 'alice', '-t', 'over-tls', pdf], { encoding: 'utf8', timeout: 30_000 })
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`)
  assert.match(r.stdout, /request id is print-\d+/)
  await until(async () => {
    const jobs = await json<{ jobs: Array<{ name: string, owner: string, pages?: number, state: string }> }>(`https://localhost:${standalone!.httpPort}/api/jobs?scope=all`, { ca: standaloneCa, token: standalone!.adminToken })
    return jobs.jobs.some((j) => j.name === 'over-tls' && j.owner === 'alice' && j.pages === 3 && j.state === 'printed')
  }, MESH_TIMEOUT_MS, 'the job sent over TLS printed with its 3 pages')
})

test('ipptool ipp-1.1.test and ipp-2.0.test pass over ipps://', async () => {
  assert.ok(standalone !== undefined && suites !== undefined)
  for (const suite of ['ipp-1.1.test', 'ipp-2.0.test']) {
    const { code, out } = await suites.run(suite, `ipps://127.0.0.1:${standalone.ippPort}/ipp/print`, 'alice', PINS.alice)
    assert.not.match(out, /\[FAIL\]/, out)
    assert.is(code, 0, out)
  }
})

test('DNS-SD advertises each queue as _ipps._tcp too, on the same port, with TLS=1.2 and an https admin URL', async () => {
  assert.ok(standalone !== undefined)
  const port = standalone.ippPort
  let found: Awaited<ReturnType<typeof browse>> = []
  await until(async () => {
    found = (await browse('_ipps._tcp')).filter((s) => s.port === port)
    return found.length > 0
  }, MESH_TIMEOUT_MS, '_ipps._tcp resolved')
  const s = found[0]
  assert.is(s.txt.get('TLS'), '1.2')
  assert.is(s.txt.get('rp'), 'ipp/print')
  assert.match(s.txt.get('adminurl') ?? '', /^https:\/\//)
  const plain = (await browse('_ipp._tcp')).filter((p) => p.port === port)
  assert.ok(plain.length > 0, 'the plain _ipp._tcp service stays')
  assert.is(plain[0].txt.get('UUID'), s.txt.get('UUID'))
})

test('an admin\'s own certificate (--tls-cert/--tls-key) is presented; a key of another pair stops the start with a clear error', async () => {
  const dir = await tempDir('printmesh-tls-files-')
  try {
    const ca = await MeshCa.open(join(dir, 'ca'), 'admin test CA')
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const cert = await ca.issue(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string, ['localhost', '127.0.0.1'])
    await writeFile(join(dir, 'cert.pem'), cert)
    await writeFile(join(dir, 'key.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
    await writeFile(join(dir, 'other.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
    const site = await startSite({ args: ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem'), '--no-dnssd'] })
    try {
      const seen = await tlsCheck(site.httpPort, ca.certPem, 'localhost')
      assert.ok(seen.authorized, seen.error)
      assert.is(seen.issuer, 'admin test CA')
      // the admin's CA is not this node's to hand out
      assert.is((await call(`https://localhost:${site.httpPort}/ca.pem`, { ca: ca.certPem })).status, 404)
    } finally {
      await site.stop()
    }
    const wrong = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'site', '--data', join(dir, 'data'), '--host', '127.0.0.1', '--ipp-port', '0', '--http-port', '0',
      '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-dnssd', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'other.pem')], { encoding: 'utf8', timeout: 30_000 })
    assert.is.not(wrong.status, 0)
    assert.match(wrong.stderr, /does not belong to the certificate/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
