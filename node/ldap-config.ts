/**
 * Central's LDAP synchronisation settings: a JSON file given with `printmesh central
 * --ldap-config FILE`, checked whole at start (every bad field named), so a wrong file
 * stops central with a clear error instead of failing at the first scheduled sync. The bind
 * password is read from its own file (`bindPasswordFile`), never from the JSON, the command
 * line or a log; {@link ldapConfigSummary} is what the API and logs show.
 *
 * ```json
 * {
 *   "url": "ldaps://ldap.example.org",          // ldap:// or ldaps://
 *   "startTls": false,                          // upgrade an ldap:// connection with StartTLS
 *   "caFile": "/etc/ssl/certs/corp-ca.pem",     // CA to trust for ldaps:// and StartTLS (default: the system's)
 *   "bindDN": "cn=printmesh,ou=services,dc=example,dc=org",
 *   "bindPasswordFile": "/etc/printmesh/ldap-password",
 *   "baseDN": "ou=people,dc=example,dc=org",
 *   "userFilter": "(objectClass=inetOrgPerson)",
 *   "attributes": { "username": "uid", "fullName": "cn", "email": "mail", "card": "employeeNumber", "homeSite": "departmentNumber", "pin": "…" },
 *   "groups": { "from": "memberOf" }            // or { "from": "entries", "baseDN": "ou=groups,…", "filter": "(objectClass=groupOfNames)", "memberAttribute": "member", "nameAttribute": "cn" }
 *   "pageSize": 500,
 *   "intervalMinutes": 60
 * }
 * ```
 */
import { readFile } from 'node:fs/promises'

/** Which LDAP attribute gives each field of a directory user; absent optional ones are not synchronised. */
export interface LdapAttributeMap {
  username: string
  fullName: string
  email?: string
  /** The badge number readers type (stored only as a keyed index and a slow hash). */
  card?: string
  homeSite?: string
  /**
   * A PIN attribute, for directories that keep one: it only seeds the PIN of a user who has
   * none yet (a PIN set on central, by an admin or the user, is never overwritten).
   */
  pin?: string
}

/** Where group memberships come from. */
export type LdapGroupSource =
  | { from: 'none' }
  /** The user entry's `memberOf` (or another attribute of group DNs): the group's name is the first RDN's value. */
  | { from: 'memberOf', attribute: string }
  /** Group entries found under `baseDN` by `filter`; members by DN (member, uniqueMember) or by username (memberUid). */
  | { from: 'entries', baseDN: string, filter: string, memberAttribute: string, nameAttribute: string }

export interface LdapConfig {
  url: string
  startTls: boolean
  caFile?: string
  bindDN: string
  bindPasswordFile: string
  baseDN: string
  userFilter: string
  attributes: LdapAttributeMap
  groups: LdapGroupSource
  pageSize: number
  intervalMinutes: number
  /** Each LDAP operation (connect, bind, one page) must answer within this many seconds. */
  timeoutSeconds: number
}

/** Pages of 500 stay under Active Directory's default MaxPageSize (1000) and OpenLDAP's size limit (500). */
export const DEFAULT_PAGE_SIZE = 500
/** Hourly, as the products we replace sync by default. */
export const DEFAULT_INTERVAL_MINUTES = 60
/** An LDAP server that has not answered one operation in 30 s is down for this sync. */
export const DEFAULT_TIMEOUT_SECONDS = 30
/** inetOrgPerson is what OpenLDAP and most LDIF exports use for people. */
const DEFAULT_USER_FILTER = '(objectClass=inetOrgPerson)'
const DEFAULT_GROUP_FILTER = '(objectClass=groupOfNames)'
/** Largest page size servers accept (Active Directory's hard limit is far lower; larger is a typo). */
const MAX_PAGE_SIZE = 10_000
const MAX_INTERVAL_MINUTES = 7 * 24 * 60
const FIELDS = new Set(['url', 'startTls', 'caFile', 'bindDN', 'bindPasswordFile', 'baseDN', 'userFilter', 'attributes', 'groups', 'pageSize', 'intervalMinutes', 'timeoutSeconds'])
const ATTRIBUTE_FIELDS = new Set(['username', 'fullName', 'email', 'card', 'homeSite', 'pin'])
/** LDAP attribute descriptions (RFC 4512): a name or an OID, with options. */
const ATTRIBUTE = /^([A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+)(;[A-Za-z0-9-]+)*$/

/** The LDAP configuration file is missing, unreadable or has a bad field (the message names it). */
export class LdapConfigError extends Error {
  constructor (message: string) { super(message); this.name = 'LdapConfigError' }
}

/** Reads and checks the configuration file, and that the password (and CA) files can be read. */
export async function loadLdapConfig (file: string): Promise<LdapConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new LdapConfigError(`LDAP config ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new LdapConfigError(`LDAP config ${file}: not valid JSON (${(err as Error).message})`)
  }
  const config = parseLdapConfig(json, `LDAP config ${file}`)
  await readBindPassword(config, `LDAP config ${file}`)
  if (config.caFile !== undefined) await readCa(config, `LDAP config ${file}`)
  return config
}

/** The bind password: the first line of `bindPasswordFile` (a trailing newline is not part of it). */
export async function readBindPassword (config: Pick<LdapConfig, 'bindPasswordFile'>, where = 'LDAP'): Promise<string> {
  let text: string
  try {
    text = await readFile(config.bindPasswordFile, 'utf8')
  } catch (err) {
    throw new LdapConfigError(`${where}: bindPasswordFile ${config.bindPasswordFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const password = text.replace(/\r?\n$/, '')
  if (password === '') throw new LdapConfigError(`${where}: bindPasswordFile ${config.bindPasswordFile} is empty (an empty password is an anonymous bind)`)
  return password
}

/** The CA certificates of `caFile`, for ldaps:// and StartTLS. */
export async function readCa (config: Pick<LdapConfig, 'caFile'>, where = 'LDAP'): Promise<string | undefined> {
  if (config.caFile === undefined) return undefined
  try {
    return await readFile(config.caFile, 'utf8')
  } catch (err) {
    throw new LdapConfigError(`${where}: caFile ${config.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
}

/** Checks a parsed configuration; @throws LdapConfigError naming the first bad field. */
export function parseLdapConfig (json: unknown, where = 'LDAP config'): LdapConfig {
  const bad = (field: string, why: string): LdapConfigError => new LdapConfigError(`${where}: ${field} ${why}`)
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new LdapConfigError(`${where}: must be a JSON object`)
  const o = json as Record<string, unknown>
  for (const key of Object.keys(o)) if (!FIELDS.has(key)) throw bad(key, `is not a known field (known: ${[...FIELDS].join(', ')})`)
  const str = (obj: Record<string, unknown>, field: string, path: string, fallback?: string): string => {
    const v = obj[field] ?? fallback
    if (typeof v !== 'string' || v.trim() === '') throw bad(path, v === undefined ? 'is required' : 'must be a non-empty string')
    return v
  }
  const optStr = (obj: Record<string, unknown>, field: string, path: string): string | undefined => obj[field] === undefined ? undefined : str(obj, field, path)
  const num = (field: string, fallback: number, min: number, max: number, integer: boolean): number => {
    const v = o[field] ?? fallback
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) throw bad(field, `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`)
    return v
  }
  const filter = (v: string, path: string): string => {
    if (!/^\(.*\)$/s.test(v.trim())) throw bad(path, `must be an LDAP filter in parentheses, e.g. ${DEFAULT_USER_FILTER}`)
    return v.trim()
  }
  const attribute = (v: string, path: string): string => {
    if (!ATTRIBUTE.test(v)) throw bad(path, `must be an LDAP attribute name, got ${JSON.stringify(v)}`)
    return v
  }

  const url = str(o, 'url', 'url')
  if (!/^ldaps?:\/\/[^/?#\s]+\/?$/i.test(url)) throw bad('url', `must be ldap://host[:port] or ldaps://host[:port], got ${JSON.stringify(url)}`)
  const startTls = o.startTls ?? false
  if (typeof startTls !== 'boolean') throw bad('startTls', 'must be true or false')
  if (startTls && /^ldaps:/i.test(url)) throw bad('startTls', 'cannot be used with ldaps:// (the connection is TLS already)')
  const caFile = optStr(o, 'caFile', 'caFile')

  const a = o.attributes ?? {}
  if (typeof a !== 'object' || a === null || Array.isArray(a)) throw bad('attributes', 'must be an object like {"username": "uid", "fullName": "cn"}')
  const ao = a as Record<string, unknown>
  for (const key of Object.keys(ao)) if (!ATTRIBUTE_FIELDS.has(key)) throw bad(`attributes.${key}`, `is not a known field (known: ${[...ATTRIBUTE_FIELDS].join(', ')})`)
  const mapped = (field: string): string | undefined => {
    const v = optStr(ao, field, `attributes.${field}`)
    return v === undefined ? undefined : attribute(v, `attributes.${field}`)
  }
  const attributes: LdapAttributeMap = {
    username: attribute(str(ao, 'username', 'attributes.username', 'uid'), 'attributes.username'),
    fullName: attribute(str(ao, 'fullName', 'attributes.fullName', 'cn'), 'attributes.fullName')
  }
  for (const field of ['email', 'card', 'homeSite', 'pin'] as const) {
    const v = mapped(field)
    if (v !== undefined) attributes[field] = v
  }

  const g = o.groups ?? { from: 'none' }
  if (typeof g !== 'object' || g === null || Array.isArray(g)) throw bad('groups', 'must be an object like {"from": "memberOf"} or {"from": "entries", "baseDN": "…"}')
  const go = g as Record<string, unknown>
  let groups: LdapGroupSource
  switch (go.from) {
    case 'none':
      groups = { from: 'none' }
      break
    case 'memberOf':
      groups = { from: 'memberOf', attribute: attribute(str(go, 'attribute', 'groups.attribute', 'memberOf'), 'groups.attribute') }
      break
    case 'entries':
      groups = {
        from: 'entries',
        baseDN: str(go, 'baseDN', 'groups.baseDN'),
        filter: filter(str(go, 'filter', 'groups.filter', DEFAULT_GROUP_FILTER), 'groups.filter'),
        memberAttribute: attribute(str(go, 'memberAttribute', 'groups.memberAttribute', 'member'), 'groups.memberAttribute'),
        nameAttribute: attribute(str(go, 'nameAttribute', 'groups.nameAttribute', 'cn'), 'groups.nameAttribute')
      }
      break
    default:
      throw bad('groups.from', `must be "none", "memberOf" or "entries", got ${JSON.stringify(go.from)}`)
  }

  return {
    url: url.replace(/\/$/, ''),
    startTls,
    ...(caFile !== undefined ? { caFile } : {}),
    bindDN: str(o, 'bindDN', 'bindDN'),
    bindPasswordFile: str(o, 'bindPasswordFile', 'bindPasswordFile'),
    baseDN: str(o, 'baseDN', 'baseDN'),
    userFilter: filter(str(o, 'userFilter', 'userFilter', DEFAULT_USER_FILTER), 'userFilter'),
    attributes,
    groups,
    pageSize: num('pageSize', DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, true),
    intervalMinutes: num('intervalMinutes', DEFAULT_INTERVAL_MINUTES, 0.01, MAX_INTERVAL_MINUTES, false),
    timeoutSeconds: num('timeoutSeconds', DEFAULT_TIMEOUT_SECONDS, 1, 3600, false)
  }
}

/** What the status API and logs show: everything but the secret's location is harmless, and the secret itself is never read here. */
export function ldapConfigSummary (config: LdapConfig): Omit<LdapConfig, 'bindPasswordFile'> {
  const { bindPasswordFile: _secret, ...rest } = config
  return rest
}
