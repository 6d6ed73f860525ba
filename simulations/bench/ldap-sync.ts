/**
 * LDAP synchronisation at directory scale (on demand: `npm run bench -- --only ldap-sync`):
 * Debian's slapd (simulations/slapd.ts) loaded by slapadd with 10,000 inetOrgPerson entries
 * (uid, cn, mail, a home site) and 20 groupOfNames of 500 members, then a real `printmesh
 * central --ldap-config` process syncing from it in pages of 500, groups from the group
 * entries. Cases:
 *   - first sync (every user added): the report's own duration, central's RSS before it
 *     (idle, ready) and after it, and its peak while it ran (sampled);
 *   - a second sync with nothing to change (every user compared and left unchanged);
 *   - a sync after 100 full names changed in LDAP (ldapmodify).
 * Anchor: `ldapsearch` paging through the same entries with the same page size and
 * attributes (-E pr=500/noprompt), output discarded: the ratio says what the sync adds
 * over merely reading the directory. Cards are not mapped: each new card costs a slow
 * scrypt hash (~50-100 ms), which would measure scrypt, not the sync.
 */
import { spawn } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { startCentral, tempDir, type SiteProcess } from '../node-process.ts'
import { directoryLdif, GROUPS_DN, PEOPLE_DN, startSlapd, type LdapGroup, type LdapPerson, type Slapd } from '../slapd.ts'
import type { SyncReport } from '../../node/ldap-sync.ts'
import { BenchmarkError, MB, round, rssOf, type BenchContext, type Benchmark, type Row } from './common.ts'

/** The figure, and the quick stand-in. */
const USERS = { full: 10_000, quick: 500 }
/** Groups of people (departments); each person is in one. */
const GROUPS = 20
/** The sync's and the anchor's page size: OpenLDAP's default size limit is 500 per page. */
const PAGE_SIZE = 500
/** Full names changed in LDAP before the third sync. */
const CHANGED = 100
/** One sync of 10,000 users takes seconds; past this it is stuck. */
const SYNC_TIMEOUT_MS = 10 * 60_000
/** Central's RSS is sampled this often while a sync runs (the peak). */
const RSS_SAMPLE_MS = 100
/** Status polls while waiting for the first sync. */
const POLL_MS = 100

interface Status { running: boolean, reports: SyncReport[] }

async function call<T> (node: SiteProcess, path: string, method = 'GET'): Promise<T> {
  const res = await fetch(node.httpUrl + path, { method, headers: { authorization: `Bearer ${node.adminToken}` }, signal: AbortSignal.timeout(SYNC_TIMEOUT_MS) })
  const text = await res.text()
  if (!res.ok) throw new BenchmarkError(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text) as T
}

/** Runs `fn` while sampling `pid`'s RSS; the highest sample. */
async function peakRss<T> (pid: number, fn: () => Promise<T>): Promise<{ value: T, peak: number }> {
  let peak = await rssOf(pid)
  let done = false
  const sampler = (async () => {
    while (!done) {
      peak = Math.max(peak, await rssOf(pid))
      await delay(RSS_SAMPLE_MS)
    }
  })()
  try {
    const value = await fn()
    done = true
    await sampler
    return { value, peak: Math.max(peak, await rssOf(pid)) }
  } finally {
    done = true
    await sampler
  }
}

/** ldapsearch paging through the people with the sync's attributes; its wall time in ms. */
async function ldapsearchMs (slapd: Slapd): Promise<{ ms: number, entries: number }> {
  const begun = performance.now()
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('ldapsearch', ['-x', '-LLL', '-H', slapd.url, '-D', slapd.adminDN, '-w', slapd.adminPassword, '-b', PEOPLE_DN,
      '-E', `pr=${PAGE_SIZE}/noprompt`, '(objectClass=inetOrgPerson)', 'uid', 'cn', 'mail', 'departmentNumber'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let count = 0
    let err = ''
    p.stdout.on('data', (b: Buffer) => { count += (b.toString().match(/^dn: /gm) ?? []).length })
    p.stderr.on('data', (b: Buffer) => { err += b.toString() })
    p.on('error', reject)
    p.on('close', (code) => { if (code === 0) resolve(String(count)); else reject(new BenchmarkError(`ldapsearch exited ${code}: ${err}`)) })
  })
  return { ms: performance.now() - begun, entries: Number(out) }
}

async function measure (ctx: BenchContext): Promise<{ params: Record<string, unknown>, rows: Row[], notes: string[] }> {
  const users = ctx.quick ? USERS.quick : USERS.full
  const people: LdapPerson[] = Array.from({ length: users }, (_, i) => {
    const uid = `user${String(i + 1).padStart(5, '0')}`
    return { uid, cn: `User ${i + 1}`, mail: `${uid}@example.org`, departmentNumber: `site-${(i % 10) + 1}` }
  })
  const groups: LdapGroup[] = Array.from({ length: GROUPS }, (_, g) => ({ cn: `dept-${g + 1}`, members: people.filter((_, i) => i % GROUPS === g).map((p) => p.uid) }))
  const work = await tempDir('printmesh-bench-ldap-')
  let slapd: Slapd | undefined
  let central: SiteProcess | undefined
  try {
    ctx.log(`ldap-sync: slapd with ${users} users`)
    slapd = await startSlapd(directoryLdif(people, groups))
    const passwordFile = join(work, 'bind-password')
    await writeFile(passwordFile, slapd.adminPassword)
    const configFile = join(work, 'ldap.json')
    await writeFile(configFile, JSON.stringify({
      url: slapd.url, bindDN: slapd.adminDN, bindPasswordFile: passwordFile, baseDN: PEOPLE_DN,
      attributes: { username: 'uid', fullName: 'cn', email: 'mail', homeSite: 'departmentNumber' },
      groups: { from: 'entries', baseDN: GROUPS_DN },
      pageSize: PAGE_SIZE,
      intervalMinutes: 7 * 24 * 60 // only the first sync at start runs by schedule; the others are asked for
    }))
    const anchor = await ldapsearchMs(slapd)
    if (anchor.entries !== users) throw new BenchmarkError(`ldapsearch found ${anchor.entries} entries, expected ${users}`)

    central = await startCentral({ args: ['--ldap-config', configFile] })
    const c = central
    const idleRss = await rssOf(c.pid)
    const rows: Row[] = []
    const row = async (name: string, report: SyncReport, peak: number): Promise<Row> => {
      const ms = report.finishedAt - report.startedAt
      return {
        case: name, users, added: report.counts.added, changed: report.counts.changed, unchanged: report.counts.unchanged, errors: report.counts.errors,
        sync_ms: ms, ldapsearch_ms: round(anchor.ms), ratio: round(ms / anchor.ms, 1),
        rss_mb: round(await rssOf(c.pid) / MB), peak_rss_mb: round(peak / MB)
      }
    }
    const first = await peakRss(c.pid, async () => {
      const deadline = performance.now() + SYNC_TIMEOUT_MS
      for (;;) {
        const found = (await call<Status>(c, '/api/ldap/status')).reports.find((r) => r.trigger === 'schedule')
        if (found !== undefined) return found
        if (performance.now() > deadline) throw new BenchmarkError(`the first sync did not finish within ${SYNC_TIMEOUT_MS} ms`)
        await delay(POLL_MS)
      }
    })
    if (first.value.result !== 'ok') throw new BenchmarkError(`the first sync failed: ${first.value.error ?? ''}`)
    rows.push(await row('first sync (all added)', first.value, first.peak))
    ctx.log(`ldap-sync: first sync ${first.value.finishedAt - first.value.startedAt} ms`)

    const again = await peakRss(c.pid, async () => (await call<{ report: SyncReport }>(c, '/api/ldap/sync', 'POST')).report)
    rows.push(await row('second sync (nothing changed)', again.value, again.peak))

    const changes = people.slice(0, CHANGED).map((p) => `dn: uid=${p.uid},${PEOPLE_DN}\nchangetype: modify\nreplace: cn\ncn: ${p.cn} (renamed)\n`).join('\n')
    await slapd.tool('ldapmodify', [], changes)
    const third = await peakRss(c.pid, async () => (await call<{ report: SyncReport }>(c, '/api/ldap/sync', 'POST')).report)
    rows.push(await row(`after ${CHANGED} renames`, third.value, third.peak))

    return {
      params: { users, groups: GROUPS, pageSize: PAGE_SIZE, renamed: CHANGED, idleRssMb: round(idleRss / MB) },
      rows,
      notes: [
        `central's RSS right after start (the first sync starts at once): ${round(idleRss / MB)} MB; rss_mb is after each sync, peak_rss_mb the highest sample (every ${RSS_SAMPLE_MS} ms) while it ran`,
        `sync_ms is the sync's own report (bind, paged search of users and groups, plan, one directory transaction); ldapsearch_ms pages through the same ${users.toLocaleString('en-US')} entries and attributes with ldapsearch -E pr=${PAGE_SIZE}, output discarded`,
        'cards are not mapped: a new card costs one scrypt hash (~50-100 ms) each, which would measure scrypt'
      ]
    }
  } finally {
    await central?.stop()
    await slapd?.stop()
    await rm(work, { recursive: true, force: true })
  }
}

export const ldapSync: Benchmark = {
  name: 'ldap-sync',
  description: 'central syncing 10,000 LDAP users from a real slapd in pages: sync time (vs ldapsearch of the same entries) and central RSS',
  run: measure
}
