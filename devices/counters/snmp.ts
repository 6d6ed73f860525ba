/**
 * Device counters over SNMP v2c (net-snmp): the Printer MIB's life counter (RFC 3805
 * `prtMarkerLifeCount`) for the total, and colour, monochrome and sheet counters at the
 * OIDs the device's model offers (vendor MIBs; RFC 3805 has none of them).
 *
 * Address: `snmp://host[:port][?total=OID&color=OID&mono=OID&sheets=OID]`, or `?color=none`
 * for a monochrome device (no colour impressions ever). The community is handed in apart
 * (`--counters-community-file`), never in the address: an address shows in logs and in the
 * process list.
 */
import snmp from 'net-snmp'
import { CounterMissingError, CountersUnreachableError, InvalidCountersConfigError, type CounterReading, type DeviceCounters } from './types.ts'

/** RFC 3805 prtMarkerLifeCount for marker 1 of device 1: impressions since the device was built (what every MFP offers). */
export const PRT_MARKER_LIFE_COUNT = '1.3.6.1.2.1.43.10.2.1.4.1.1'
/** RFC 3805 prtGeneralSerialNumber of device 1: tells two devices behind one address apart. */
export const PRT_GENERAL_SERIAL_NUMBER = '1.3.6.1.2.1.43.5.1.1.17.1'
/** RFC 1213 sysDescr: the device's own description. */
export const SYS_DESCR = '1.3.6.1.2.1.1.1.0'
/** The SNMP port devices listen on. */
export const SNMP_PORT = 161
/** How long one request waits for an answer: a device on the LAN answers in milliseconds; a panel user waits on this. */
export const SNMP_TIMEOUT_MS = 2_000
/** Requests resent after a timeout (UDP may drop one). */
const SNMP_RETRIES = 1
/** The community when none is configured: what devices ship with. */
export const DEFAULT_COMMUNITY = 'public'

/** The OIDs read, by counter. */
export interface SnmpCounterOids {
  total: string
  color?: string
  mono?: string
  sheets?: string
  /** The device prints in black only: its colour impressions are always 0. */
  monochrome?: boolean
}

export interface SnmpCountersConfig {
  host: string
  port: number
  oids: SnmpCounterOids
  /** SNMP v2c community (a secret: never logged). */
  community: string
  timeoutMs?: number
}

const OID = /^\.?[0-9]+(\.[0-9]+)+$/
const COUNTERS = ['total', 'color', 'mono', 'sheets'] as const

/** Parses a `snmp://host[:port]?…` address into a config (the community handed in apart). */
export function parseSnmpAddress (address: string, community: string = DEFAULT_COMMUNITY): SnmpCountersConfig {
  let url: URL
  try {
    url = new URL(address)
  } catch {
    throw new InvalidCountersConfigError(`not a counters address: ${address} (expected snmp://host[:port])`)
  }
  if (url.protocol !== 'snmp:') throw new InvalidCountersConfigError(`unsupported counters address ${url.protocol}//…: only snmp://host[:port] is supported`)
  if (url.username !== '' || url.password !== '') throw new InvalidCountersConfigError('the SNMP community does not belong in the counters address (it would show in logs and the process list): put it in a file and pass --counters-community-file')
  if (url.hostname === '') throw new InvalidCountersConfigError(`no host in the counters address ${address}`)
  if (url.pathname !== '' && url.pathname !== '/') throw new InvalidCountersConfigError(`unexpected path ${url.pathname} in the counters address (expected snmp://host[:port]?total=OID&color=OID…)`)
  const oids: SnmpCounterOids = { total: PRT_MARKER_LIFE_COUNT }
  for (const [key, value] of url.searchParams) {
    if (key === 'color' && value === 'none') { oids.monochrome = true; continue }
    if (!(COUNTERS as readonly string[]).includes(key)) throw new InvalidCountersConfigError(`unknown counter ${key} in the counters address (known: ${COUNTERS.join(', ')})`)
    if (!OID.test(value)) throw new InvalidCountersConfigError(`${key}=${value} is not a numeric OID (e.g. 1.3.6.1.2.1.43.10.2.1.4.1.1)`)
    oids[key as typeof COUNTERS[number]] = value.replace(/^\./, '')
  }
  if (oids.monochrome === true && oids.color !== undefined) throw new InvalidCountersConfigError('color=none and a colour OID contradict each other')
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = url.port === '' ? SNMP_PORT : Number(url.port)
  return { host, port, oids, community }
}

/** The address of a config as logs and the panel show it (no community). */
export function snmpAddressOf (config: Pick<SnmpCountersConfig, 'host' | 'port'>): string {
  return `snmp://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`
}

/** A counter value as net-snmp hands it (Counter32/Gauge32/Integer as number, Counter64 as bigint or bytes). */
function toCount (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  if (typeof value === 'bigint') return value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined
  if (Buffer.isBuffer(value) && value.length > 0 && value.length <= 8) {
    let n = 0n
    for (const byte of value) n = (n << 8n) | BigInt(byte)
    return toCount(n)
  }
  return undefined
}

const text = (value: unknown): string | undefined => {
  const s = Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : undefined
  const trimmed = s?.replace(/\0+$/, '').trim()
  return trimmed === undefined || trimmed === '' ? undefined : trimmed
}

/** Reads a device's counters over SNMP v2c; one UDP session, kept until {@link DeviceCounters.close}. */
export function snmpCounters (config: SnmpCountersConfig): DeviceCounters {
  const address = snmpAddressOf(config)
  const session = snmp.createSession(config.host, config.community, {
    port: config.port,
    version: snmp.Version2c,
    timeout: config.timeoutMs ?? SNMP_TIMEOUT_MS,
    retries: SNMP_RETRIES,
    transport: config.host.includes(':') ? 'udp6' : 'udp4'
  })
  // a socket error must not become an uncaught 'error' event; the request that suffers it rejects
  session.on('error', () => {})
  let closed = false
  const asked: Array<[typeof COUNTERS[number], string]> = COUNTERS.flatMap((c) => config.oids[c] !== undefined ? [[c, config.oids[c]] as [typeof COUNTERS[number], string]] : [])
  const get = async (oids: string[], signal?: AbortSignal): Promise<snmp.Varbind[]> => await new Promise((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const onAbort = (): void => { reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
    session.get(oids, (err, varbinds) => {
      signal?.removeEventListener('abort', onAbort)
      if (err !== null) {
        const timedOut = (err as Error).name === 'RequestTimedOutError'
        reject(new CountersUnreachableError(address, timedOut ? `no answer within ${(config.timeoutMs ?? SNMP_TIMEOUT_MS) * (SNMP_RETRIES + 1)} ms (device off, wrong address, or a community it refuses)` : err.message, { cause: err }))
        return
      }
      resolve(varbinds ?? [])
    })
  })

  return {
    address,
    async read (signal) {
      if (closed) throw new CountersUnreachableError(address, 'the reader is closed')
      const counters = await get(asked.map(([, oid]) => oid), signal)
      const reading: Partial<Record<typeof COUNTERS[number], number>> = {}
      for (const [i, [name, oid]] of asked.entries()) {
        const vb = counters[i]
        if (vb === undefined || snmp.isVarbindError(vb)) throw new CounterMissingError(address, name, oid, vb === undefined ? 'no value in the answer' : snmp.varbindError(vb))
        const n = toCount(vb.value)
        if (n === undefined) throw new CounterMissingError(address, name, oid, `not a counter: ${String(vb.value)}`)
        reading[name] = n
      }
      // identity: optional objects, so one request of their own (a missing one is no error)
      const [descr, serial] = await get([SYS_DESCR, PRT_GENERAL_SERIAL_NUMBER], signal)
      const description = descr !== undefined && !snmp.isVarbindError(descr) ? text(descr.value) : undefined
      const serialNumber = serial !== undefined && !snmp.isVarbindError(serial) ? text(serial.value) : undefined
      return {
        total: reading.total ?? 0,
        ...(reading.mono !== undefined ? { mono: reading.mono } : {}),
        ...(config.oids.monochrome === true ? { color: 0 } : reading.color !== undefined ? { color: reading.color } : {}),
        ...(reading.sheets !== undefined ? { sheets: reading.sheets } : {}),
        device: { address, ...(serialNumber !== undefined ? { serial: serialNumber } : {}), ...(description !== undefined ? { description } : {}) },
        at: Date.now()
      } satisfies CounterReading
    },
    close () {
      if (closed) return
      closed = true
      session.close()
    }
  }
}
