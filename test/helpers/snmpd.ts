/**
 * A real SNMP agent for tests: Debian's `/usr/sbin/snmpd` in the foreground on a free
 * loopback UDP port, serving a printer's page counters the test moves.
 *
 * The counters are served by a `pass` script (snmpd runs it per request): each counter's
 * value is a file of the agent's folder, so {@link TestSnmpd.set} changes what the next
 * request reads, and {@link TestSnmpd.remove} makes the agent answer "no such instance",
 * as a model without that counter does. `-C` keeps snmpd from reading any system
 * configuration; its persistent state goes to the temp folder too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { until } from '../../simulations/wait.ts'

/** How long snmpd may take to answer its first request. */
const START_TIMEOUT_MS = 15_000
/** How long it gets to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 3_000
const SNMPD = '/usr/sbin/snmpd'

/** The counters the agent serves, and their OIDs (a vendor-like private enterprise for colour, mono and sheets). */
export const TEST_OIDS = {
  total: '1.3.6.1.2.1.43.10.2.1.4.1.1',
  color: '1.3.6.1.4.1.64999.1.1.1',
  mono: '1.3.6.1.4.1.64999.1.1.2',
  sheets: '1.3.6.1.4.1.64999.1.1.3',
  serial: '1.3.6.1.2.1.43.5.1.1.17.1'
} as const
export type TestCounter = keyof typeof TEST_OIDS

export interface TestSnmpd {
  host: string
  port: number
  community: string
  /** The agent's description (`sysDescr`). */
  description: string
  /** Sets counters (and the serial number); the next request reads them. */
  set (values: Partial<Record<TestCounter, number | string>>): Promise<void>
  /** The agent stops offering this counter. */
  remove (counter: TestCounter): Promise<void>
  /** Stops snmpd (the agent stops answering); its folder stays for {@link start}. */
  halt (): Promise<void>
  /** Starts snmpd again on the same port. */
  start (): Promise<void>
  /** Stops snmpd and removes its folder. */
  stop (): Promise<void>
}

async function freeUdpPort (): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(0, '127.0.0.1', resolve) })
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

/** Starts snmpd with `community`, serving `values` (set later with {@link TestSnmpd.set}). */
export async function startSnmpd (values: Partial<Record<TestCounter, number | string>> = {}, community = 'printmesh-test'): Promise<TestSnmpd> {
  const dir = await mkdtemp(join(tmpdir(), 'printmesh-snmpd-'))
  const description = 'printmesh test MFP (snmpd)'
  let child: ChildProcess | undefined
  let output = ''
  try {
    const script = join(dir, 'counters.sh')
    const cases = Object.entries(TEST_OIDS).map(([name, oid]) => `  .${oid}) f="${dir}/${name}"; t=${name === 'serial' ? 'string' : 'counter'} ;;`).join('\n')
    await writeFile(script, `#!/bin/sh\n# snmpd pass: "-g OID" asks for one value; answer OID, type, value, or NONE\n[ "$1" = "-g" ] || { echo NONE; exit 0; }\ncase "$2" in\n${cases}\n  *) echo NONE; exit 0 ;;\nesac\n[ -f "$f" ] || { echo NONE; exit 0; }\necho "$2"; echo "$t"; cat "$f"\n`, { mode: 0o700 })
    const port = await freeUdpPort()
    const conf = join(dir, 'snmpd.conf')
    await writeFile(conf, [
      `rocommunity ${community} 127.0.0.1`,
      `sysDescr ${description}`,
      ...Object.values(TEST_OIDS).map((oid) => `pass .${oid} /bin/sh ${script}`)
    ].join('\n') + '\n')
    const set = async (v: Partial<Record<TestCounter, number | string>>): Promise<void> => {
      for (const [name, value] of Object.entries(v)) await writeFile(join(dir, name), `${value}\n`)
    }
    await set(values)
    const answers = (): boolean => spawnSync('snmpget', ['-v2c', '-c', community, '-t', '1', '-r', '0', `127.0.0.1:${port}`, '1.3.6.1.2.1.1.1.0'], { encoding: 'utf8' }).status === 0
    const start = async (): Promise<void> => {
      output = ''
      const c = spawn(SNMPD, ['-f', '-Lo', '-C', '-c', conf, `udp:127.0.0.1:${port}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SNMP_PERSISTENT_DIR: join(dir, 'persist'), MIBS: '', MIBDIRS: join(dir, 'no-mibs') }
      })
      child = c
      c.stdout?.on('data', (d: Buffer) => { output += d.toString() })
      c.stderr?.on('data', (d: Buffer) => { output += d.toString() })
      await until(() => { if (c.exitCode !== null) throw new Error(`snmpd exited with ${c.exitCode}: ${output.slice(-2000)}`); return answers() }, START_TIMEOUT_MS, `snmpd answering on 127.0.0.1:${port}`)
    }
    const halt = async (): Promise<void> => {
      const c = child
      child = undefined
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(timer)
    }
    await start()
    return {
      host: '127.0.0.1',
      port,
      community,
      description,
      set,
      remove: async (counter) => { await unlink(join(dir, counter)).catch(() => {}) },
      halt,
      start,
      stop: async () => { await halt(); await rm(dir, { recursive: true, force: true }) }
    }
  } catch (err) {
    child?.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
