/**
 * `printmesh ldap status|sync [--dry-run]`: central's LDAP synchronisation through its admin
 * API (ui/routes/ldap.ts), for scripts and shells: what `GET /api/ldap/status` and
 * `POST /api/ldap/sync` answer, one line per fact. A failed sync exits 1 with its reason.
 */
import { Command, InvalidArgumentError } from 'commander'
import type { LdapStatus, SyncReport } from '../ui/ldap-api.ts'
import type { UsersCliContext } from './users-cli.ts'

interface CallOptions { url: string, adminTokenFile?: string }

const print = (text: string): void => { process.stdout.write(text + '\n') }

/** A report in lines: the counts, then each change, disabled user and entry left out. */
export function reportLines (r: SyncReport): string[] {
  const when = new Date(r.startedAt).toISOString()
  const what = r.dryRun ? 'dry run' : 'sync'
  if (r.result === 'failed') return [`${when} ${what} by ${r.by} failed, nothing was changed: ${r.error ?? ''}`]
  const n = r.counts
  return [
    `${when} ${what} by ${r.by}: ${n.added} added, ${n.changed} changed, ${n.disabled} disabled, ${n.unchanged} unchanged, ${n.errors} left out${r.dryRun ? ' (nothing was changed)' : ''}`,
    ...r.added.map((u) => `  added ${u}`),
    ...r.changed.map((c) => `  changed ${c.username}: ${c.fields.join(', ')}`),
    ...r.disabled.map((u) => `  disabled ${u}`),
    ...r.errors.map((e) => `  left out ${e.entry}: ${e.message}`),
    ...(r.truncated ? ['  (lists cut short; the counts are whole)'] : [])
  ]
}

/** Registers `status` and `sync` under `ldap` (node/cli.ts lends its admin-token options). */
export function ldapCommands (ldap: Command, ctx: UsersCliContext): void {
  async function call<T> (opts: CallOptions, method: string, path: string): Promise<T> {
    const token = await ctx.adminToken(opts)
    if (token === undefined) throw new InvalidArgumentError(`an admin token is needed: --admin-token-file FILE or ${ctx.adminTokenEnv}`)
    let res: Response
    try {
      res = await fetch(new URL(path, opts.url), { method, headers: { authorization: `Bearer ${token}` } })
    } catch (err) {
      throw new Error(`cannot reach ${opts.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
    }
    const answer = await res.json() as T & { error?: string }
    if (!res.ok) throw new Error(`${answer.error ?? res.statusText} (HTTP ${res.status})`)
    return answer
  }
  const command = (name: string, description: string): Command => {
    const cmd = ldap.command(name).description(description)
      .option('--url <url>', 'central\'s web address', ctx.defaultUrl)
    return ctx.withAdminTokenOptions(cmd, `file holding central's admin token (or ${ctx.adminTokenEnv})`)
  }

  command('status', 'the LDAP settings (never the password), the next scheduled sync and the last reports')
    .action(async (opts: CallOptions) => {
      const s = await call<LdapStatus>(opts, 'GET', '/api/ldap/status')
      print(`server:   ${s.config.url}${s.config.startTls ? ' (StartTLS)' : ''}, bind as ${s.config.bindDN}`)
      print(`users:    ${s.config.userFilter} under ${s.config.baseDN}, pages of ${s.config.pageSize}`)
      print(`schedule: every ${s.config.intervalMinutes} min; ${s.running ? 'a sync is running now' : s.nextRunAt !== undefined ? `next ${new Date(s.nextRunAt).toISOString()}` : 'not scheduled'}`)
      if (s.reports.length === 0) print('no sync has run yet')
      for (const r of s.reports) print(reportLines(r)[0])
    })

  command('sync', 'sync now (after one in progress); --dry-run only says what would change')
    .option('--dry-run', 'report what would be added, changed and disabled without changing anything')
    .action(async (opts: CallOptions & { dryRun?: boolean }) => {
      const { report } = await call<{ report: SyncReport }>(opts, 'POST', `/api/ldap/sync${opts.dryRun === true ? '?dryRun=1' : ''}`)
      for (const line of reportLines(report)) print(line)
    })
}
