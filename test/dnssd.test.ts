// DNS-SD advertisement of a site's IPP queues (devices/ipp/dnssd.ts, node/dnssd.ts), against
// the real parts: the job service and IPP server for what the records say, and real site
// processes seen by `avahi-browse` and `ippfind` through the test namespace's own
// avahi-daemon — found with the right port and TXT while running, the URI answering, gone
// after SIGTERM and after SIGKILL, absent with --no-dnssd, renamed on a name collision, and a
// site that finds no D-Bus or no avahi still starts and says so once.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import type { NetworkInterfaceInfo } from 'node:os'
import { pino, type Logger } from 'pino'
import { Op, Tag, findAttr, stringValue, stringValues } from '../devices/ipp/wire.ts'
import { MAKE_AND_MODEL, printerUuid } from '../devices/ipp/capabilities.ts'
import { SUPPORTED_FORMATS } from '../devices/documents/index.ts'
import { DnsSdRecordError, ippDnsSdGroups, MAX_INSTANCE_NAME_OCTETS, MAX_TXT_STRING_OCTETS, type DnsSdGroup } from '../devices/ipp/dnssd.ts'
import { advertScope, createDnsSdAdvertiser } from '../node/dnssd.ts'
import type { Startable } from '../node/compose.ts'
import { startIppRig, ippPost, ippRequest, type IppRig } from './helpers/ipp-client.ts'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'
import { browse, type Browsed } from './helpers/avahi.ts'

const run = promisify(execFile)
/** ippfind browses for this many seconds (its -T); our own services are in avahi's cache already. */
const IPPFIND_SECONDS = 3
/** A name avahi never saw appears in well under this (probing takes about a second). */
const APPEAR_MS = 20_000

const sites: SiteProcess[] = []
const advertisers: Startable[] = []
const daemons: ChildProcess[] = []
const dirs: string[] = []
let rig: IppRig | undefined

test.after(async () => {
  for (const a of advertisers) await a.stop()
  for (const s of sites) await s.stop()
  await rig?.stop()
  for (const d of daemons) {
    if (d.exitCode !== null || d.signalCode !== null) continue
    const exited = new Promise((resolve) => d.once('exit', resolve))
    d.kill('SIGTERM')
    await exited
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const unique = (what: string): string => `dnssd-${what}-${randomBytes(3).toString('hex')}`

async function site (siteId: string, args: string[] = [], env?: Record<string, string>): Promise<SiteProcess> {
  const s = await startSite({ args: ['--site', siteId, ...args], ...(env !== undefined ? { env } : {}) })
  sites.push(s)
  return s
}

function capturedLogger (): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, lines }
}

async function found (name: string, type?: string): Promise<Browsed[]> {
  return (await browse(type)).filter((b) => b.name === name)
}

async function waitFound (name: string, type?: string): Promise<Browsed[]> {
  let hits: Browsed[] = []
  await until(async () => { hits = await found(name, type); return hits.length > 0 }, APPEAR_MS, `${name} advertised`)
  return hits
}

async function waitGone (name: string): Promise<void> {
  await until(async () => (await found(name)).length === 0, APPEAR_MS, `${name} withdrawn`)
}

const instance = (siteId: string): string => `print @ ${siteId}`

// ---------------------------------------------------------------- what the records say

test('every queue\'s record: rp is a path the IPP server serves, UUID its printer-uuid, TXT what Get-Printer-Attributes says', async () => {
  rig = await startIppRig({
    queues: [
      { name: 'print', hold: true, info: 'Secure print', location: 'Floor 2' },
      { name: 'front desk', hold: false, info: 'Prints on arrival', location: 'Lobby' }
    ]
  })
  const groups = ippDnsSdGroups({
    queues: rig.jobs.queues(), formats: rig.jobs.supportedFormats(), port: rig.port, uriHost: '127.0.0.1', adminUrl: 'http://127.0.0.1:8632/', siteName: 'site-a'
  })
  assert.equal(groups.map((g) => g.name), ['print @ site-a', 'front desk @ site-a'])
  const rps: string[] = []
  for (const [i, g] of groups.entries()) {
    assert.is(g.services.length, 1, 'no TLS yet: _ipp._tcp only')
    const [s] = g.services
    assert.is(s.type, '_ipp._tcp')
    assert.equal(s.subtypes, ['_print._sub._ipp._tcp'])
    assert.is(s.port, rig.port)
    assert.equal(s.txt[0], ['txtvers', '1'], 'txtvers first (RFC 6763 §6.7)')
    const txt = new Map(s.txt)
    assert.is(txt.get('qtotal'), '2')
    assert.is(txt.get('adminurl'), 'http://127.0.0.1:8632/')
    assert.is(txt.get('Color'), 'T')
    assert.is(txt.get('Duplex'), 'T')
    for (const [k, v] of s.txt) assert.ok(Buffer.byteLength(`${k}=${v}`) <= MAX_TXT_STRING_OCTETS, k)
    const rp = txt.get('rp') as string
    rps.push(rp)
    // the server answers on that path, for that queue, with the same UUID, formats, model and location
    const uri = `ipp://127.0.0.1:${rig.port}/${rp}`
    const reply = await ippPost(uri, ippRequest(Op.GetPrinterAttributes, uri, { user: 'alice' }))
    assert.is(reply.httpStatus, 200)
    const m = reply.message!
    const p = (name: string) => findAttr(m, Tag.printerAttributes, name)
    assert.is(stringValue(p('printer-name')), rig.jobs.queues()[i].name)
    assert.is(stringValue(p('printer-uuid')), `urn:uuid:${txt.get('UUID')}`)
    assert.is(stringValue(p('printer-location')), txt.get('note'))
    assert.is(stringValue(p('printer-make-and-model')), txt.get('ty'))
    assert.equal(stringValues(p('document-format-supported')), txt.get('pdl')?.split(','))
  }
  assert.equal(rps, ['ipp/print', 'printers/front%20desk'])
  await rig.stop()
  rig = undefined
})

test('long values are cut to DNS\'s limits; a queue path that cannot be cut is refused', () => {
  const queues = [{ name: 'print', hold: true, info: 'x', location: 'ü'.repeat(300) }]
  const formats = Array.from({ length: 40 }, (_, i) => `application/x-format-number-${i}`)
  const [g] = ippDnsSdGroups({ queues, formats, port: 631, uriHost: 'h', adminUrl: 'http://h:8632/', siteName: 'ß'.repeat(100) })
  assert.ok(Buffer.byteLength(g.name) <= MAX_INSTANCE_NAME_OCTETS)
  assert.ok(g.name.startsWith('print @ ß'))
  const txt = new Map(g.services[0].txt)
  const note = txt.get('note') as string
  assert.ok(Buffer.byteLength(note) <= 127 && /^ü+$/.test(note), 'cut on a character boundary')
  const pdl = (txt.get('pdl') as string).split(',')
  assert.ok(pdl.length > 1 && pdl.length < 41, 'whole entries only')
  assert.ok(pdl.every((f) => f === 'application/octet-stream' || formats.includes(f)))
  for (const [k, v] of g.services[0].txt) assert.ok(Buffer.byteLength(`${k}=${v}`) <= MAX_TXT_STRING_OCTETS, k)
  assert.throws(() => ippDnsSdGroups({
    queues: [...queues, { name: 'q'.repeat(300), hold: true, info: '', location: '' }], formats, port: 631, uriHost: 'h', adminUrl: 'http://h/', siteName: 's'
  }), (err: unknown) => err instanceof DnsSdRecordError)
})

test('advertised where the server listens: every interface for a wildcard, the address\'s own interface otherwise', async () => {
  const info = (address: string, family: 'IPv4' | 'IPv6', internal: boolean): NetworkInterfaceInfo => family === 'IPv4'
    ? { address, family, internal, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: `${address}/8` }
    : { address, family, internal, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: `${address}/64`, scopeid: 0 }
  const interfaces = {
    lo: [info('127.0.0.1', 'IPv4', true), info('::1', 'IPv6', true)],
    eth0: [info('192.0.2.10', 'IPv4', false), info('2001:db8::10', 'IPv6', false)]
  }
  assert.equal(await advertScope('0.0.0.0', interfaces), { family: 'IPv4' })
  assert.equal(await advertScope('::', interfaces), { family: 'any' })
  assert.equal(await advertScope('127.0.0.1', interfaces), { interfaceName: 'lo', family: 'IPv4' })
  assert.equal(await advertScope('127.0.0.53', interfaces), { interfaceName: 'lo', family: 'IPv4' })
  assert.equal(await advertScope('::1', interfaces), { interfaceName: 'lo', family: 'IPv6' })
  assert.equal(await advertScope('192.0.2.10', interfaces), { interfaceName: 'eth0', family: 'IPv4' })
  assert.equal(await advertScope('2001:DB8::10', interfaces), { interfaceName: 'eth0', family: 'IPv6' })
  assert.equal(await advertScope('198.51.100.7', interfaces), { family: 'IPv4' })
})

// ---------------------------------------------------------------- real sites, real avahi

test('a running site is found by avahi-browse and ippfind with its port, rp and TXT; its URI answers; SIGTERM withdraws it', async () => {
  const id = unique('run')
  const s = await site(id)
  const name = instance(id)
  const hits = await waitFound(name)
  assert.is(hits.length, 1, 'a site on 127.0.0.1: the loopback interface, IPv4, once')
  const [b] = hits
  assert.is(b.iface, 'lo')
  assert.is(b.protocol, 'IPv4')
  assert.is(b.address, '127.0.0.1')
  assert.is(b.port, s.ippPort)
  const uuid = printerUuid(`ipp://127.0.0.1:${s.ippPort}/ipp/print`).replace('urn:uuid:', '')
  const expected: Record<string, string> = {
    txtvers: '1', qtotal: '1', rp: 'ipp/print', ty: MAKE_AND_MODEL, adminurl: `${s.httpUrl}/`, note: id,
    pdl: ['application/octet-stream', ...SUPPORTED_FORMATS].join(','), Color: 'T', Duplex: 'T', UUID: uuid
  }
  assert.equal(Object.fromEntries(b.txt), expected)
  assert.equal((await found(name, '_print._sub._ipp._tcp')).map((x) => x.port), [s.ippPort], 'the IPP Everywhere _print subtype')
  assert.is((await fetch(expected.adminurl)).status, 200, 'adminurl is the web console')

  // ippfind, as a driverless client finds it: the _print subtype, this site's name and port, TXT by key
  const keys = Object.keys(expected)
  const { stdout } = await run('ippfind', ['_ipp._tcp,_print', '-T', String(IPPFIND_SECONDS), '--literal-name', name, '--port', String(s.ippPort),
    '--txt-rp', '^ipp/print$', '-x', 'printf', '%s\\n', '{}', ...keys.map((k) => `{txt_${k}}`), ';'], { encoding: 'utf8' })
  const [uri, ...values] = stdout.trimEnd().split('\n')
  assert.equal(Object.fromEntries(keys.map((k, i) => [k, values[i]])), expected)
  const u = new URL(uri)
  assert.is(u.protocol, 'ipp:')
  assert.is(u.host, `${b.host}:${s.ippPort}`)
  assert.is(u.pathname, '/ipp/print')

  // the URI works: its .local host resolved by mDNS, as nss-mdns would, then Get-Printer-Attributes
  const resolved = (await run('avahi-resolve-host-name', ['-4', u.hostname], { encoding: 'utf8' })).stdout.trim().split(/\s+/)[1]
  assert.is(resolved, '127.0.0.1')
  const gpa = (await run('ipptool', ['-T', '30', '-tv', `ipp://${resolved}:${u.port}${u.pathname}`, 'get-printer-attributes.test'], { encoding: 'utf8' })).stdout
  assert.match(gpa, /\[PASS\]/)
  assert.match(gpa, `printer-uuid (uri) = urn:uuid:${uuid}`)
  assert.match(gpa, `printer-uri-supported (uri) = ipp://127.0.0.1:${s.ippPort}/ipp/print`)

  await s.stop()
  assert.ok(s.logs().some((l) => l.includes('DNS-SD services withdrawn')), 'withdrawn by the stop path, not by a dropped connection')
  await waitGone(name)
})

test('a site killed with SIGKILL is withdrawn too: avahi drops what its D-Bus connection held', async () => {
  const id = unique('kill')
  const s = await site(id)
  await waitFound(instance(id))
  await s.kill('SIGKILL')
  await waitGone(instance(id))
})

test('--no-dnssd advertises nothing (while a site started after it without the flag is found)', async () => {
  const quietId = unique('quiet')
  const quiet = await site(quietId, ['--no-dnssd'])
  const controlId = unique('control')
  const control = await site(controlId)
  await waitFound(instance(controlId))
  assert.equal(await found(instance(quietId)), [])
  const ippfind = await run('ippfind', ['_ipp._tcp', '-T', String(IPPFIND_SECONDS), '--port', String(quiet.ippPort)], { encoding: 'utf8' })
    .then(({ stdout }) => stdout, (err: { code?: number, stdout?: string }) => { assert.is(err.code, 1, 'ippfind: 1 is "nothing found"'); return err.stdout ?? '' })
  assert.is(ippfind, '')
  assert.not.ok(quiet.logs().some((l) => l.includes('"component":"dnssd"')))
  await quiet.stop()
  await control.stop()
})

test('two advertisers of one name: avahi renames the second, both are found; start twice and stop twice are safe', async () => {
  const name = unique('twin')
  const group = (port: number): DnsSdGroup => ({ name, services: [{ type: '_ipp._tcp', subtypes: [], port, txt: [['txtvers', '1'], ['rp', 'ipp/print']] }] })
  const first = capturedLogger()
  const second = capturedLogger()
  const a = createDnsSdAdvertiser({ groups: () => [group(40001)], host: '127.0.0.1', logger: first.logger })
  const b = createDnsSdAdvertiser({ groups: () => [group(40002)], host: '127.0.0.1', logger: second.logger })
  advertisers.push(a, b)
  await a.start()
  await a.start()
  assert.equal((await waitFound(name)).map((x) => x.port), [40001])
  await b.start()
  assert.equal((await waitFound(`${name} #2`)).map((x) => x.port), [40002])
  assert.ok(second.lines.some((l) => l.msg === 'DNS-SD name taken on the network; renamed' && l.renamed === `${name} #2`))
  await b.stop()
  await b.stop()
  await waitGone(`${name} #2`)
  assert.equal((await found(name)).map((x) => x.port), [40001], 'the first stays')
  await a.stop()
  await waitGone(name)
  assert.not.ok([...first.lines, ...second.lines].some((l) => Number(l.level) >= 40), 'no warning or error')
})

test('with no system D-Bus a site still starts, serves IPP and warns once', async () => {
  const dir = await tempDir('printmesh-nobus-')
  dirs.push(dir)
  const s = await site(unique('nobus'), [], { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir, 'no-bus-here')}` })
  const warnings = s.logs().filter((l) => l.includes('DNS-SD unavailable'))
  assert.is(warnings.length, 1, s.logs().join('\n'))
  assert.match(warnings[0], 'cannot connect to the system D-Bus')
  const reply = await ippPost(s.ippUri, ippRequest(Op.GetPrinterAttributes, s.ippUri, { user: 'alice' }))
  assert.is(reply.httpStatus, 200)
  await s.stop()
})

test('with a D-Bus but no avahi-daemon on it a site still starts, serves IPP and warns once', async () => {
  const dir = await tempDir('printmesh-noavahi-')
  dirs.push(dir)
  const socket = join(dir, 'bus')
  const bus = spawn('dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=unix:path=${socket}`], { stdio: 'ignore' })
  daemons.push(bus)
  await until(() => existsSync(socket), 10_000, 'private dbus-daemon')
  const s = await site(unique('noavahi'), [], { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` })
  const warnings = s.logs().filter((l) => l.includes('DNS-SD unavailable'))
  assert.is(warnings.length, 1, s.logs().join('\n'))
  assert.match(warnings[0], 'avahi-daemon is not running')
  const reply = await ippPost(s.ippUri, ippRequest(Op.GetPrinterAttributes, s.ippUri, { user: 'alice' }))
  assert.is(reply.httpStatus, 200)
  await s.stop()
})

test.run()
