// Device counters over SNMP (devices/counters/snmp.ts) against a real snmpd on loopback
// (helpers/snmpd.ts) serving Printer MIB counters the test moves: the values read, the
// device's identity, a counter the device does not offer, a device that does not answer,
// and the addresses the reader refuses.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createSocket } from 'node:dgram'
import { snmpCounters, parseSnmpAddress, PRT_MARKER_LIFE_COUNT } from '../devices/counters/snmp.ts'
import { CounterMissingError, CountersUnreachableError, InvalidCountersConfigError, type DeviceCounters } from '../devices/counters/types.ts'
import { startSnmpd, TEST_OIDS, type TestSnmpd } from './helpers/snmpd.ts'
import { runCleanup } from './helpers/browser.ts'

/** A short timeout for the tests that expect none: the reader's default is 2 s × 2 tries. */
const TEST_TIMEOUT_MS = 300

let agent: TestSnmpd | undefined
const readers: DeviceCounters[] = []
const a = (): TestSnmpd => { if (agent === undefined) throw new Error('no snmpd'); return agent }
function reader (query: string, opts: { community?: string, port?: number } = {}): DeviceCounters {
  const config = parseSnmpAddress(`snmp://127.0.0.1:${opts.port ?? a().port}${query}`, opts.community ?? a().community)
  const r = snmpCounters({ ...config, timeoutMs: TEST_TIMEOUT_MS })
  readers.push(r)
  return r
}
const vendorOids = `?color=${TEST_OIDS.color}&mono=${TEST_OIDS.mono}&sheets=${TEST_OIDS.sheets}`

test.before(async () => {
  agent = await startSnmpd({ total: 120_345, color: 20_000, mono: 100_345, sheets: 90_000, serial: 'MFP-0042' })
})

test.after(async () => {
  await runCleanup([
    ['readers', async () => { for (const r of readers) r.close() }],
    ['snmpd', async () => await agent?.stop()]
  ])
})

test('the total is read from prtMarkerLifeCount by default, with the device\'s serial number and description', async () => {
  const r = reader('')
  const reading = await r.read()
  assert.is(reading.total, 120_345)
  assert.is(reading.color, undefined)
  assert.is(reading.mono, undefined)
  assert.equal(reading.device, { address: `snmp://127.0.0.1:${a().port}`, serial: 'MFP-0042', description: a().description })
})

test('colour, mono and sheet counters at the OIDs configured follow what the device counts', async () => {
  const r = reader(vendorOids)
  const before = await r.read()
  assert.equal([before.total, before.color, before.mono, before.sheets], [120_345, 20_000, 100_345, 90_000])
  await a().set({ total: 120_355, color: 20_003, mono: 100_352, sheets: 90_006 })
  const after = await r.read()
  assert.equal([after.total, after.color, after.mono, after.sheets], [120_355, 20_003, 100_352, 90_006])
})

test('color=none declares a monochrome device: colour reads 0', async () => {
  const reading = await reader('?color=none').read()
  assert.is(reading.color, 0)
  assert.is(reading.total, 120_355)
})

test('a counter the device does not offer is a CounterMissingError naming the counter and its OID', async () => {
  await a().remove('color')
  try {
    await reader(vendorOids).read()
    assert.unreachable('read a counter the device does not have')
  } catch (err) {
    assert.instance(err, CounterMissingError)
    assert.is((err as CounterMissingError).counter, 'color')
    assert.match((err as Error).message, TEST_OIDS.color)
  } finally {
    await a().set({ color: 20_003 })
  }
})

test('a port nobody answers on is a CountersUnreachableError after the timeout', async () => {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  const started = Date.now()
  try {
    await reader('', { port }).read()
    assert.unreachable('read from a closed port')
  } catch (err) {
    assert.instance(err, CountersUnreachableError)
    assert.match((err as Error).message, `127.0.0.1:${port}`)
  }
  assert.ok(Date.now() - started < 5_000, 'gave up within the timeout')
})

test('a wrong community is not answered (SNMP v2c), so it reads as unreachable without the community in the message', async () => {
  try {
    await reader('', { community: 'wrong-secret' }).read()
    assert.unreachable('read with a wrong community')
  } catch (err) {
    assert.instance(err, CountersUnreachableError)
    assert.not.match((err as Error).message, 'wrong-secret')
  }
})

test('addresses with a community, another scheme, an unknown counter or a non-numeric OID are refused with the reason', () => {
  assert.throws(() => parseSnmpAddress('snmp://secret@printer.example'), (e: Error) => e instanceof InvalidCountersConfigError && /community-file/.test(e.message) && !e.message.includes('secret@'))
  assert.throws(() => parseSnmpAddress('http://printer.example'), (e: Error) => e instanceof InvalidCountersConfigError && /only snmp/.test(e.message))
  assert.throws(() => parseSnmpAddress('snmp://printer.example?toner=1.3.6.1'), (e: Error) => e instanceof InvalidCountersConfigError && /unknown counter toner/.test(e.message))
  assert.throws(() => parseSnmpAddress('snmp://printer.example?color=black'), (e: Error) => e instanceof InvalidCountersConfigError && /not a numeric OID/.test(e.message))
  const config = parseSnmpAddress('snmp://printer.example')
  assert.equal([config.port, config.oids.total, config.community], [161, PRT_MARKER_LIFE_COUNT, 'public'])
})

test.run()
