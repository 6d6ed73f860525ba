/**
 * Device counters: the page counters a printing device keeps of everything it ever put on
 * paper (prints and copies alike). A terminal reads them when a copy session starts and
 * ends; the difference, less what it printed itself meanwhile, is what the user copied.
 *
 * This is the contract another vendor's integration implements (an MFP's own SDK, a web
 * service): {@link DeviceCounters}. The implementation over SNMP (Printer MIB, RFC 3805)
 * is `snmp.ts`.
 */

/** What the device says it has put on paper, since it was built (its life counters). */
export interface CounterReading {
  /** Impressions (one side of a sheet) of every kind. */
  total: number
  /** Monochrome impressions, where the device counts them apart. */
  mono?: number
  /** Colour impressions, where the device counts them apart. */
  color?: number
  /** Sheets, where the device counts them. */
  sheets?: number
  /** Which device answered: readings of two different devices are never subtracted. */
  device: DeviceIdentity
  /** When the reading was taken (ms since the epoch, this machine's clock). */
  at: number
}

/** Who a device says it is. */
export interface DeviceIdentity {
  /** Where it was read (e.g. `snmp://10.0.0.7:161`), never with a secret in it. */
  address: string
  /** Its serial number, where it tells it (Printer MIB `prtGeneralSerialNumber`). */
  serial?: string
  /** Its own description (`sysDescr`). */
  description?: string
}

/** A device's page counters, as a terminal reads them. */
export interface DeviceCounters {
  /** Where the counters are read, without secrets (for logs and the panel). */
  readonly address: string
  /**
   * Reads the counters now.
   * @throws CountersUnreachableError when the device does not answer in time
   * @throws CounterMissingError when it answers without a counter it was asked for
   */
  read (signal?: AbortSignal): Promise<CounterReading>
  /** Frees what the reader holds (sockets); reading after it is an error. */
  close (): void
}

/** The device did not answer (off, unplugged, wrong address or community: SNMP v2c answers a wrong community with silence). */
export class CountersUnreachableError extends Error {
  constructor (readonly address: string, detail: string, options?: { cause?: unknown }) {
    super(`the device counters at ${address} did not answer: ${detail}`, options)
    this.name = 'CountersUnreachableError'
  }
}

/** The device answered, but without a counter it was asked for (not offered by this model, or a wrong OID). */
export class CounterMissingError extends Error {
  constructor (readonly address: string, readonly counter: string, readonly oid: string, detail: string) {
    super(`the device at ${address} has no ${counter} counter at ${oid} (${detail}); configure the OID this model offers`)
    this.name = 'CounterMissingError'
  }
}

/** A counters address or option that cannot be used. */
export class InvalidCountersConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'InvalidCountersConfigError'
  }
}
