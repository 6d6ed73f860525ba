/**
 * The terminal's `--counters` option: which device counters its copy sessions read. Today
 * SNMP (`snmp://host[:port]?…`, devices/counters/snmp.ts); the community comes from a file
 * (`--counters-community-file`), never the command line, where every user of the machine
 * can read it.
 */
import { readFile } from 'node:fs/promises'
import { DEFAULT_COMMUNITY, parseSnmpAddress, snmpCounters } from '../devices/counters/snmp.ts'
import { InvalidCountersConfigError, type DeviceCounters } from '../devices/counters/types.ts'

/** Longest community accepted from the file (RFC 3584 allows 255 octets; a longer file is not a community). */
const MAX_COMMUNITY_LENGTH = 255

/** The SNMP community in `file` (its first line), or {@link DEFAULT_COMMUNITY} without a file. */
export async function readCommunity (file: string | undefined): Promise<string> {
  if (file === undefined) return DEFAULT_COMMUNITY
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InvalidCountersConfigError(`cannot read the SNMP community file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const community = text.split(/\r?\n/)[0]
  if (community === '' || community.length > MAX_COMMUNITY_LENGTH) throw new InvalidCountersConfigError(`the SNMP community file ${file} must hold the community on its first line (1 to ${MAX_COMMUNITY_LENGTH} characters)`)
  return community
}

/** Opens the device counters `address` names. @throws InvalidCountersConfigError naming what is wrong */
export async function openDeviceCounters (address: string, communityFile?: string): Promise<DeviceCounters> {
  return snmpCounters(parseSnmpAddress(address, await readCommunity(communityFile)))
}
