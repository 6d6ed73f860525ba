// A site that joined central starts with --tls mesh while central is down: it serves https and
// ipps at once with a provisional certificate of its own CA, and when central is back it
// switches to a certificate of central's mesh CA without a restart. Seen as an admin sees it:
// a TLS client that trusts only central's CA (GET /ca.pem) is refused before and served after,
// on the web port and on the IPP port, by the same process on the same ports.
//
// The site asks central again --tls-retry-seconds after each failed request (1 s here, 30 s by
// default); the test waits on the site's log line for the new certificate, with a deadline
// shorter than the default interval, then checks what the ports serve.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { call, json, tlsCheck } from './helpers/https.ts'
import { ippsGetPrinterAttributes } from './helpers/ipps.ts'
import { DEFAULT_TLS_RETRY_MS } from '../node/tls.ts'

/** The site's retry interval in this test (seconds): short, so the switch follows central's return closely. */
const RETRY_SECONDS = 1
/** Central is back and the site has its certificate within this: a few retries, well under the default interval. */
const SWITCH_TIMEOUT_MS = 20_000
/** What the site logs when central's mesh CA has certified it (node/tls.ts). */
const CERTIFIED_LOG = 'TLS certificate from the mesh CA'
const PROVISIONAL_LOG = 'presenting a provisional TLS certificate until central certifies this node'

let central: SiteProcess | undefined
let site: SiteProcess | undefined
let centralDir = ''
let siteDir = ''
/** Central's libp2p address without /p2p: the site's bootstrap address, where central comes back. */
let centralListen = ''
let centralCa = ''
let provisionalCa = ''

test.before(async () => {
  assert.ok(SWITCH_TIMEOUT_MS < DEFAULT_TLS_RETRY_MS, 'the deadline must catch a site that ignores --tls-retry-seconds')
  centralDir = await tempDir('printmesh-central-')
  siteDir = await tempDir('printmesh-site-')
  central = await startCentral({ dataDir: centralDir, args: ['--tls', 'mesh'] })
  centralCa = await readFile(join(centralDir, 'tls', 'ca', 'ca.pem'), 'utf8')
  const tcp = central.listen.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))
  assert.ok(tcp !== undefined, central.listen.join(' '))
  centralListen = tcp.replace(/\/p2p\/.*$/, '')
  const { joinString } = await json<{ joinString: string }>(`https://127.0.0.1:${central.httpPort}/api/mesh/tokens`,
    { ca: centralCa, method: 'POST', token: central.adminToken, body: { role: 'site', site: 'site-b' } })
  // joined (certified as a member) without TLS, so it holds no TLS certificate yet
  const joining = await startSite({ dataDir: siteDir, args: ['--site', 'site-b', '--join', joinString, '--no-dnssd'] })
  await joining.stop()
  await central.stop()
  central = undefined
  site = await startSite({ dataDir: siteDir, args: ['--site', 'site-b', '--tls', 'mesh', '--tls-retry-seconds', String(RETRY_SECONDS), '--no-dnssd'] })
  await site.waitForLog(PROVISIONAL_LOG)
  provisionalCa = await readFile(join(siteDir, 'tls', 'own-ca', 'ca.pem'), 'utf8')
})

test.after(async () => {
  await site?.stop()
  await central?.stop()
  await rm(siteDir, { recursive: true, force: true })
  await rm(centralDir, { recursive: true, force: true })
})

test('with central down, the site serves https and ipps at once with a provisional certificate that a client trusting central\'s CA refuses', async () => {
  assert.ok(site !== undefined)
  for (const port of [site.httpPort, site.ippPort]) {
    const seen = await tlsCheck(port, centralCa, 'localhost')
    assert.not.ok(seen.authorized, `port ${port} was trusted with central's CA before central certified the site`)
    assert.match(seen.issuer, 'provisional')
  }
  const refused = await ippsGetPrinterAttributes(site.ippPort, centralCa)
  assert.not.ok(refused.ok, 'ipps trusted with central\'s CA before central certified the site')
  await call(`https://localhost:${site.httpPort}/api/info`, { ca: centralCa }).then(
    () => assert.unreachable('https trusted with central\'s CA before central certified the site'),
    (err: NodeJS.ErrnoException) => assert.match(String(err.code), /CERT|ISSUER/))
  // TLS itself works: a client that trusts the provisional CA is served on both ports
  const provisional = await ippsGetPrinterAttributes(site.ippPort, provisionalCa)
  assert.ok(provisional.ok && provisional.status === 0, JSON.stringify(provisional))
  assert.is((await call(`https://localhost:${site.httpPort}/api/info`, { ca: provisionalCa })).status, 200)
})

test('when central is back, the same site process switches to a certificate of central\'s mesh CA on the web and the IPP port, without a restart', async () => {
  assert.ok(site !== undefined)
  const { pid, httpPort, ippPort } = site
  central = await startCentral({ dataDir: centralDir, args: ['--tls', 'mesh', '--listen', centralListen] })
  await site.waitForLog(CERTIFIED_LOG, SWITCH_TIMEOUT_MS)
  for (const port of [httpPort, ippPort]) {
    const seen = await tlsCheck(port, centralCa, 'localhost')
    assert.ok(seen.authorized, `port ${port}: ${seen.error ?? ''} (issuer ${seen.issuer})`)
  }
  const ipps = await ippsGetPrinterAttributes(ippPort, centralCa)
  assert.ok(ipps.ok, JSON.stringify(ipps))
  assert.is(ipps.ok && ipps.status, 0)
  assert.is(ipps.ok && ipps.uri, `ipps://127.0.0.1:${ippPort}/ipp/print`)
  const info = await json<{ site: string }>(`https://localhost:${httpPort}/api/info`, { ca: centralCa })
  assert.is(info.site, 'site-b')
  // the site now offers central's CA to import, no longer its provisional one
  assert.is((await call(`https://localhost:${httpPort}/ca.pem`, { ca: centralCa })).body, centralCa)
  // the provisional CA no longer vouches for the site
  assert.not.ok((await tlsCheck(ippPort, provisionalCa, 'localhost')).authorized)
  // one process all along: alive under the same pid, started once
  assert.not.throws(() => process.kill(pid, 0))
  assert.is(site.logs().filter((l) => l.includes('"msg":"site ready"')).length, 1)
})

test.run()
