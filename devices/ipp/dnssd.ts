/**
 * What a site's IPP queues are advertised as by DNS-SD (RFC 6763), the way IPP Everywhere
 * (PWG 5100.14 §4.2) and CUPS advertise printers: one `_ipp._tcp` service per queue, with
 * the `_print` subtype and the TXT keys a driverless client reads before it sends a single
 * IPP request. Pure data: publishing it (avahi over D-Bus) is node/dnssd.ts.
 *
 * Invariants:
 * 1. `rp` is a path the IPP server really serves for that queue (server.ts `routeOf`:
 *    `/ipp/print` for the default queue, `/printers/<name>` for every queue), and `UUID` is
 *    the printer-uuid Get-Printer-Attributes answers on that path: both derive from the same
 *    printer URI the server builds (`ipp://<uriHost>:<port>/<rp>`).
 * 2. Every TXT string (`key=value`) fits DNS's 255 octets; long free text is cut, lists
 *    lose whole entries, and a value that cannot be cut fails with {@link DnsSdRecordError}.
 * 3. A queue's services share one instance name, so they are published and renamed together
 *    (RFC 6763 §4.1.1 and IPP Everywhere: `_ipp._tcp` and `_ipps._tcp` of one printer use
 *    the same name).
 *
 * TLS: while the IPP port speaks it (`tls`), {@link ippDnsSdGroups} adds an `_ipps._tcp`
 * service (subtype `_print._sub._ipps._tcp`, the same TXT plus `TLS=1.2`) to each queue's
 * group, on the same port.
 */
import type { QueueInfo } from '../jobs/types.ts'
import { MAKE_AND_MODEL, PRINT_COLOR_MODES, SIDES, printerUuid, supportedFormats } from './capabilities.ts'

/** The DNS-SD service type of IPP over plain HTTP (RFC 8011 §5.3 / PWG 5100.14). */
export const IPP_SERVICE_TYPE = '_ipp._tcp'
/** IPP Everywhere printers register this subtype, which driverless clients browse for. */
export const IPP_PRINT_SUBTYPE = '_print._sub._ipp._tcp'
/** The DNS-SD service type of IPP over TLS (`ipps://`, PWG 5100.14 §4.2). */
export const IPPS_SERVICE_TYPE = '_ipps._tcp'
/** IPP Everywhere's browse subtype under `_ipps._tcp`. */
export const IPPS_PRINT_SUBTYPE = '_print._sub._ipps._tcp'
/** The TLS version advertised in `_ipps._tcp` TXT records (PWG 5100.14 `TLS` key): Node's minimum. */
const TLS_VERSION = '1.2'
/** A DNS label (the instance name) is at most 63 octets (RFC 1035 §2.3.4). */
export const MAX_INSTANCE_NAME_OCTETS = 63
/** Each TXT string (`key=value`) is one length-prefixed string of at most 255 octets (RFC 6763 §6.1). */
export const MAX_TXT_STRING_OCTETS = 255
/** The `note` key carries printer-location, which the server cuts to 127 octets: the two agree. */
const NOTE_OCTETS = 127
/** The resource path of the default queue: the path `npm start` prints and CUPS clients expect. */
const DEFAULT_QUEUE_PATH = 'ipp/print'
/** TXT format version: IPP Everywhere's only one (and `txtvers` first, RFC 6763 §6.7). */
const TXT_VERSION = '1'

/** One DNS-SD service of a group: what avahi's AddService takes apart from name and scope. */
export interface DnsSdService {
  /** Service type, e.g. `_ipp._tcp`. */
  type: string
  /** Subtypes in the full form avahi's AddServiceSubtype takes (`_print._sub._ipp._tcp`). */
  subtypes: string[]
  port: number
  /** TXT key/value pairs in the order they are published. */
  txt: Array<[string, string]>
}

/** Services published under one instance name, together (one printer's `_ipp` and `_ipps`). */
export interface DnsSdGroup {
  /** Instance name, at most {@link MAX_INSTANCE_NAME_OCTETS} octets, e.g. `print @ branch-a`. */
  name: string
  services: DnsSdService[]
}

/** A record that cannot be advertised as it is (a value too long to cut). */
export class DnsSdRecordError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'DnsSdRecordError'
  }
}

/** Everything the records of a site's queues are built from. */
export interface IppDnsSdInit {
  /** The queues, default (the first) first, as `JobDomain.queues()` lists them. */
  queues: readonly QueueInfo[]
  /** Formats the domain parses (`JobDomain.supportedFormats()`); auto-detection is added. */
  formats: readonly string[]
  /** The bound IPP port. */
  port: number
  /** The host the IPP server puts into printer URIs (`IppServerInit.uriHost`). */
  uriHost: string
  /** The site's web console (the `adminurl` key). */
  adminUrl: string
  /** The site's name, shown after the queue name in the instance name. */
  siteName: string
  /** The port also speaks TLS: each queue is advertised as `_ipps._tcp` too. */
  tls?: boolean
}

function octets (s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/** Cuts `s` to at most `max` UTF-8 octets without splitting a character. */
export function cutToOctets (s: string, max: number): string {
  let out = s
  while (octets(out) > max) out = out.slice(0, -1)
  return out
}

/** The resource path (`rp`, no leading slash) clients use for a queue. */
export function resourcePath (queue: string, defaultQueue: string): string {
  return queue === defaultQueue ? DEFAULT_QUEUE_PATH : `printers/${encodeURIComponent(queue)}`
}

function bracketed (host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/** A TXT pair that must fit whole. */
function whole (key: string, value: string): [string, string] {
  if (octets(`${key}=${value}`) > MAX_TXT_STRING_OCTETS) {
    throw new DnsSdRecordError(`TXT ${key} is longer than ${MAX_TXT_STRING_OCTETS} octets: ${value.slice(0, 40)}…`)
  }
  return [key, value]
}

/** A comma-separated TXT list: as many leading entries as fit. */
function list (key: string, values: readonly string[]): [string, string] {
  const kept: string[] = []
  for (const v of values) {
    if (octets(`${key}=${[...kept, v].join(',')}`) > MAX_TXT_STRING_OCTETS) break
    kept.push(v)
  }
  return [key, kept.join(',')]
}

/** `T` or `F`, the booleans of the Bonjour Printing TXT keys. */
function flag (b: boolean): string {
  return b ? 'T' : 'F'
}

/**
 * The DNS-SD groups of a site's queues: one per queue, each with its `_ipp._tcp` service.
 * @throws DnsSdRecordError when a queue's path or the admin URL cannot fit a TXT string
 */
export function ippDnsSdGroups (init: IppDnsSdInit): DnsSdGroup[] {
  const defaultQueue = init.queues[0]?.name
  if (defaultQueue === undefined) return []
  const formats = supportedFormats(init.formats)
  const color = PRINT_COLOR_MODES.includes('color')
  const duplex = SIDES.some((s) => s.startsWith('two-sided'))
  return init.queues.map((queue) => {
    const rp = resourcePath(queue.name, defaultQueue)
    const printerUri = `ipp://${bracketed(init.uriHost)}:${init.port}/${rp}`
    const txt: Array<[string, string]> = [
      ['txtvers', TXT_VERSION],
      ['qtotal', String(init.queues.length)],
      whole('rp', rp),
      ['ty', MAKE_AND_MODEL],
      whole('adminurl', init.adminUrl),
      ['note', cutToOctets(queue.location, NOTE_OCTETS)],
      list('pdl', formats),
      ['Color', flag(color)],
      ['Duplex', flag(duplex)],
      ['UUID', printerUuid(printerUri).replace(/^urn:uuid:/, '')]
    ]
    return {
      name: cutToOctets(`${queue.name} @ ${init.siteName}`, MAX_INSTANCE_NAME_OCTETS),
      services: [
        { type: IPP_SERVICE_TYPE, subtypes: [IPP_PRINT_SUBTYPE], port: init.port, txt },
        // the same queue over TLS on the same port: same name, same TXT plus its TLS version
        ...(init.tls === true ? [{ type: IPPS_SERVICE_TYPE, subtypes: [IPPS_PRINT_SUBTYPE], port: init.port, txt: [...txt, ['TLS', TLS_VERSION] as [string, string]] }] : [])
      ]
    }
  })
}
