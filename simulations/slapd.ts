/**
 * A real OpenLDAP server for tests and the benchmark: Debian's /usr/sbin/slapd started as
 * this process's own child on a free loopback port, with a configuration of its own
 * (slapd.conf: the core, cosine, inetorgperson and nis schemas from /etc/ldap/schema, one
 * mdb database in a temp folder, an admin bind DN and password, the memberof overlay),
 * loaded beforehand with `slapadd` from an LDIF of people and groups (groupOfNames). It
 * runs in the foreground (`-d 0`), so it is stopped by its pid; the temp folder is removed
 * on stop and on a failed start. No system slapd, systemd unit or AppArmor profile is used
 * or needed. Lives in simulations/ (not test/helpers/) because the benchmark uses it too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { Client } from 'ldapts'
import { MeshCa } from '../node/tls.ts'
import { until } from './wait.ts'

const SLAPD = '/usr/sbin/slapd'
const SLAPADD = '/usr/sbin/slapadd'
const SCHEMAS = ['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `/etc/ldap/schema/${s}.schema`)
/** slapd answers within a second on an idle machine; a loaded CI runner may take a few. */
const START_TIMEOUT_MS = 15_000
/** A slapd that has not exited this long after SIGTERM is killed. */
const STOP_TIMEOUT_MS = 5_000
/** mdb's map size: 1 GiB holds far more than the 10,000-user benchmark needs (the file grows as written). */
const MDB_MAXSIZE = 1024 ** 3

export const LDAP_SUFFIX = 'dc=example,dc=org'
export const LDAP_ADMIN_DN = `cn=admin,${LDAP_SUFFIX}`
export const PEOPLE_DN = `ou=people,${LDAP_SUFFIX}`
export const GROUPS_DN = `ou=groups,${LDAP_SUFFIX}`

/** One person of the generated LDIF (inetOrgPerson under {@link PEOPLE_DN}). */
export interface LdapPerson {
  uid: string
  cn: string
  sn?: string
  mail?: string
  /** Goes to `employeeNumber` (the tests map it as the card number). */
  employeeNumber?: string
  /** Goes to `departmentNumber` (the tests map it as the home site). */
  departmentNumber?: string
  /** Goes to `employeeType` (the tests map it as a PIN attribute). */
  employeeType?: string
}

/** One group (groupOfNames under {@link GROUPS_DN}) and its members' uids. */
export interface LdapGroup { cn: string, members: string[] }

export interface Slapd {
  pid: number
  /** `ldap://127.0.0.1:<port>` (StartTLS offered when started with `tls`). */
  url: string
  /** `ldaps://127.0.0.1:<port>`, when started with `tls`. */
  ldapsUrl?: string
  /** The CA (PEM file) that signed slapd's certificate, when started with `tls`. */
  caFile?: string
  adminDN: string
  adminPassword: string
  /** The folder of its configuration, database and LDIF files (removed on stop). */
  dir: string
  /** The DN of a person by uid. */
  personDN: (uid: string) => string
  /** Runs an ldap-utils tool (ldapmodify, ldapdelete, ldapsearch) as the admin; resolves its stdout, rejects with its stderr. */
  tool: (name: 'ldapmodify' | 'ldapdelete' | 'ldapsearch' | 'ldapadd', args: string[], stdin?: string) => Promise<string>
  stop: () => Promise<void>
}

export class SlapdError extends Error {
  constructor (message: string) { super(message); this.name = 'SlapdError' }
}

export const personDN = (uid: string): string => `uid=${uid},${PEOPLE_DN}`

/** The LDIF of the suffix, the two organisational units, the people and the groups. */
export function directoryLdif (people: readonly LdapPerson[], groups: readonly LdapGroup[] = []): string {
  const parts = [
    `dn: ${LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n`,
    `dn: ${PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ${GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups\n`,
    ...people.map(personLdif)
  ]
  return [...parts, groupsLdif(groups)].join('\n')
}

/** The LDIF of `groups` (groupOfNames under {@link GROUPS_DN}). */
export function groupsLdif (groups: readonly LdapGroup[]): string {
  const parts: string[] = []
  for (const g of groups) {
    // groupOfNames needs at least one member: an empty group names the admin, as OpenLDAP's docs do
    const members = g.members.length > 0 ? g.members.map(personDN) : [LDAP_ADMIN_DN]
    parts.push(`dn: cn=${g.cn},${GROUPS_DN}\nobjectClass: groupOfNames\ncn: ${g.cn}\n${members.map((m) => `member: ${m}\n`).join('')}`)
  }
  return parts.join('\n')
}

export function personLdif (p: LdapPerson): string {
  return `dn: ${personDN(p.uid)}\nobjectClass: inetOrgPerson\nuid: ${p.uid}\ncn: ${p.cn}\nsn: ${p.sn ?? p.cn.split(' ').at(-1) ?? p.uid}\n` +
    (p.mail !== undefined ? `mail: ${p.mail}\n` : '') +
    (p.employeeNumber !== undefined ? `employeeNumber: ${p.employeeNumber}\n` : '') +
    (p.departmentNumber !== undefined ? `departmentNumber: ${p.departmentNumber}\n` : '') +
    (p.employeeType !== undefined ? `employeeType: ${p.employeeType}\n` : '')
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

async function exited (child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs)
    child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

/** Whether the admin can bind at `url` (slapd is up and its database loaded). */
async function answers (url: string, password: string): Promise<boolean> {
  const client = new Client({ url, connectTimeout: 1000, timeout: 2000 })
  try {
    await client.bind(LDAP_ADMIN_DN, password)
    return true
  } catch {
    return false // not listening yet: the caller polls until its deadline
  } finally {
    await client.unbind().catch(() => {})
  }
}

/**
 * Starts slapd loaded with `ldif` (default: {@link directoryLdif} of nobody) by slapadd,
 * then adds `online` (LDIF) with ldapadd: entries added so pass through the memberof
 * overlay (slapadd bypasses overlays), so put groups there to have `memberOf` filled in.
 * With `tls`, slapd also serves ldaps:// and StartTLS with a certificate for 127.0.0.1 from a
 * CA of its own (node/tls.ts's MeshCa; `caFile`). Resolves once the admin can bind. Stop it
 * with `stop()`.
 */
export async function startSlapd (ldif: string = directoryLdif([]), options: { online?: string, tls?: boolean } = {}): Promise<Slapd> {
  const dir = await mkdtemp(join(tmpdir(), 'printmesh-slapd-'))
  const adminPassword = 'admin-secret'
  let child: ChildProcess | undefined
  const output: string[] = []
  const stop = async (): Promise<void> => {
    if (child !== undefined && !await exited(child, 0)) {
      child.kill('SIGTERM')
      if (!await exited(child, STOP_TIMEOUT_MS)) {
        child.kill('SIGKILL')
        await exited(child, STOP_TIMEOUT_MS)
      }
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await mkdir(join(dir, 'db'))
    const tlsLines: string[] = []
    let caFile: string | undefined
    if (options.tls === true) {
      const ca = await MeshCa.open(join(dir, 'ca'), 'printmesh test LDAP CA')
      caFile = join(dir, 'ca', 'ca.pem')
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      await writeFile(join(dir, 'server.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
      await writeFile(join(dir, 'server.pem'), await ca.issue(publicKey.export({ type: 'spki', format: 'pem' }) as string, ['127.0.0.1', 'localhost']))
      tlsLines.push(`TLSCACertificateFile ${caFile}`, `TLSCertificateFile ${join(dir, 'server.pem')}`, `TLSCertificateKeyFile ${join(dir, 'server.key')}`)
    }
    const conf = join(dir, 'slapd.conf')
    await writeFile(conf, [
      ...SCHEMAS.map((s) => `include ${s}`),
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload memberof',
      `pidfile ${join(dir, 'slapd.pid')}`,
      `argsfile ${join(dir, 'slapd.args')}`,
      'sizelimit unlimited',
      ...tlsLines,
      'database mdb',
      `suffix "${LDAP_SUFFIX}"`,
      `rootdn "${LDAP_ADMIN_DN}"`,
      `rootpw ${adminPassword}`,
      `directory ${join(dir, 'db')}`,
      `maxsize ${MDB_MAXSIZE}`,
      'index objectClass eq',
      'index uid eq',
      'index member eq',
      'overlay memberof',
      ''
    ].join('\n'))
    await writeFile(join(dir, 'data.ldif'), ldif)
    const loaded = spawnSync(SLAPADD, ['-q', '-f', conf, '-l', join(dir, 'data.ldif')], { encoding: 'utf8' })
    if (loaded.status !== 0) throw new SlapdError(`slapadd failed (${loaded.status ?? loaded.signal}): ${loaded.stderr}`)
    const port = await freePort()
    const url = `ldap://127.0.0.1:${port}`
    const ldapsUrl = options.tls === true ? `ldaps://127.0.0.1:${await freePort()}` : undefined
    child = spawn(SLAPD, ['-d', '0', '-h', [url, ldapsUrl].filter((u) => u !== undefined).map((u) => `${u}/`).join(' '), '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (b: Buffer) => output.push(b.toString()))
    child.stderr?.on('data', (b: Buffer) => output.push(b.toString()))
    const running = child
    await until(async () => {
      if (running.exitCode !== null || running.signalCode !== null) throw new SlapdError(`slapd exited (${running.exitCode ?? running.signalCode}): ${output.join('')}`)
      return await answers(url, adminPassword)
    }, START_TIMEOUT_MS, 'slapd answering')
    const tool: Slapd['tool'] = async (name, args, stdin) => await new Promise((resolve, reject) => {
      const p = spawn(name, ['-x', '-H', url, '-D', LDAP_ADMIN_DN, '-w', adminPassword, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      p.stdout.on('data', (b: Buffer) => { out += b.toString() })
      p.stderr.on('data', (b: Buffer) => { err += b.toString() })
      p.on('error', reject)
      p.on('close', (code) => { if (code === 0) resolve(out); else reject(new SlapdError(`${name} ${args.join(' ')} exited ${code}: ${err}`)) })
      p.stdin.end(stdin ?? '')
    })
    if (options.online !== undefined) await tool('ldapadd', [], options.online)
    return { pid: running.pid as number, url, ...(ldapsUrl !== undefined ? { ldapsUrl } : {}), ...(caFile !== undefined ? { caFile } : {}), adminDN: LDAP_ADMIN_DN, adminPassword, dir, personDN, tool, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
