/**
 * `printmesh users …`: the directory of a running node (central, or a standalone site)
 * through its admin API (ui/routes/directory.ts), and `users import FILE --data DIR` into a
 * stopped node's data folder. The admin token comes from `--admin-token-file` or
 * PRINTMESH_ADMIN_TOKEN; PINs and card numbers from standard input or a prompt that does
 * not echo, never from the command line (every user of the machine can read it).
 */
import { Command, InvalidArgumentError } from 'commander'
import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { DirectoryUserView, ImportReport, UserPage } from '../ui/users-api.ts'

/** What node/cli.ts lends these commands: its admin-token options and where the token comes from. */
export interface UsersCliContext {
  /** Adds `--admin-token-file` (and refuses `--admin-token` with the reason). */
  withAdminTokenOptions: (cmd: Command, help: string) => Command
  /** The token from `--admin-token-file` or the environment, if given. */
  adminToken: (opts: { adminTokenFile?: string }) => Promise<string | undefined>
  /** The environment variable that may carry the token, for messages. */
  adminTokenEnv: string
  /** Central's web address on this host, the default `--url`. */
  defaultUrl: string
}

interface CallOptions { url: string, adminTokenFile?: string }

/** Nothing came on standard input where a PIN or card number was expected. */
export class NoSecretGivenError extends Error {
  constructor (what: string) { super(`no ${what} on standard input: pipe it in (e.g. from a file) or run the command on a terminal to be asked`); this.name = 'NoSecretGivenError' }
}

/** The first line of standard input, or (on a terminal) what the user types at a prompt that does not echo. */
async function readSecret (what: string): Promise<string> {
  const stdin = process.stdin
  if (stdin.isTTY !== true) {
    let text = ''
    for await (const chunk of stdin) text += String(chunk)
    const line = text.split(/\r?\n/)[0].trim()
    if (line === '') throw new NoSecretGivenError(what)
    return line
  }
  // echo off before the prompt shows: what is typed after it must never appear
  stdin.setRawMode(true)
  process.stderr.write(`${what}: `)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = ''
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') { stdin.off('data', onData); process.stderr.write('\n'); resolve(typed.trim()); return }
          if (ch === '\u0003') { stdin.off('data', onData); process.stderr.write('\n'); reject(new Error('cancelled')); return }
          if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1)
          else typed += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

const print = (text: string): void => { process.stdout.write(text + '\n') }

/** `a;b` as a list (empty: none). */
const semicolonList = (value: string): string[] => value.split(';').map((s) => s.trim()).filter((s) => s !== '')
/** `a,b` as a list (empty: none). */
const commaList = (value: string): string[] => value.split(',').map((s) => s.trim()).filter((s) => s !== '')

function nonNegative (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number, 0 or more')
  return n
}

/** One user as a line of the list. */
function userLine (u: DirectoryUserView): string[] {
  return [u.username, u.fullName, u.email ?? '', u.groups.join(';'), u.homeSite ?? '', u.disabled ? 'disabled' : 'active', String(u.cards.length), u.delegates.join(',')]
}

/** Rows as columns padded to their widest cell. */
function table (rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}

/** The import report as people read it. */
function importSummary (r: ImportReport): string {
  const lines: string[] = []
  if (r.dryRun) {
    lines.push(`dry run: nothing written. Would add ${r.added.length}, change ${r.changed.length}, leave ${r.unchanged.length} unchanged; ${r.errors.length} line${r.errors.length === 1 ? '' : 's'} in error`)
  } else {
    lines.push(`imported ${r.imported} users: added ${r.added.length}, changed ${r.changed.length}, unchanged ${r.unchanged.length}`)
  }
  if (r.added.length > 0) lines.push(`  add: ${r.added.join(', ')}`)
  for (const c of r.changed) lines.push(`  change: ${c.username} (${c.fields.join(', ')})`)
  for (const e of r.errors) lines.push(`  line ${e.line}: ${e.message}`)
  return lines.join('\n')
}

/** Adds the `users` subcommands to `users`. */
export function usersCommands (users: Command, ctx: UsersCliContext): void {
  /** Calls the node's admin API; the parsed answer, or an Error with the node's message. */
  async function call<T> (opts: CallOptions, method: string, path: string, body?: { json: unknown } | { csv: string }): Promise<T> {
    const token = await ctx.adminToken(opts)
    if (token === undefined) throw new InvalidArgumentError(`an admin token is needed: --admin-token-file FILE or ${ctx.adminTokenEnv}`)
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    let payload: string | undefined
    if (body !== undefined && 'json' in body) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body.json) }
    if (body !== undefined && 'csv' in body) { headers['content-type'] = 'text/csv'; payload = body.csv }
    let res: Response
    try {
      res = await fetch(new URL(path, opts.url), { method, headers, ...(payload !== undefined ? { body: payload } : {}) })
    } catch (err) {
      throw new Error(`cannot reach ${opts.url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
    }
    const answer = await res.json() as T & { error?: string }
    if (!res.ok) throw new Error(`${answer.error ?? res.statusText} (HTTP ${res.status})`)
    return answer
  }
  const user = (name: string): string => `/api/users/${encodeURIComponent(name)}`
  const command = (name: string, description: string): Command => {
    const cmd = users.command(name).description(description)
      .option('--url <url>', 'the node\'s web address (central\'s on this host by default)', ctx.defaultUrl)
    return ctx.withAdminTokenOptions(cmd, `file holding the node's admin token (or ${ctx.adminTokenEnv})`)
  }

  command('list', 'list users, a page at a time, optionally matching a search')
    .option('--search <text>', 'only users whose username, full name, email or group contains this')
    .option('--offset <n>', 'skip this many matching users', nonNegative)
    .option('--limit <n>', 'show at most this many (default 50, at most 1000)', nonNegative)
    .option('--json', 'print the answer as JSON')
    .action(async (opts: CallOptions & { search?: string, offset?: number, limit?: number, json?: boolean }) => {
      const query = new URLSearchParams({
        ...(opts.search !== undefined ? { q: opts.search } : {}),
        ...(opts.offset !== undefined ? { offset: String(opts.offset) } : {}),
        ...(opts.limit !== undefined ? { limit: String(opts.limit) } : {})
      })
      const page = await call<UserPage>(opts, 'GET', `/api/users?${query.toString()}`)
      if (opts.json === true) { print(JSON.stringify(page, null, 2)); return }
      if (page.users.length > 0) print(table([['USERNAME', 'FULL NAME', 'EMAIL', 'GROUPS', 'HOME SITE', 'STATE', 'CARDS', 'DELEGATES'], ...page.users.map(userLine)]))
      print(`${page.users.length === 0 ? 'no users' : `users ${page.offset + 1}-${page.offset + page.users.length}`} of ${page.total}`)
    })

  command('show', 'one user, as JSON').argument('<username>').action(async (name: string, opts: CallOptions) => {
    print(JSON.stringify((await call<{ user: DirectoryUserView }>(opts, 'GET', user(name))).user, null, 2))
  })

  const fieldOptions = (cmd: Command): Command => cmd
    .option('--email <address>', 'email address')
    .option('--groups <list>', 'groups, separated by ; (an empty list removes all)')
    .option('--home-site <site>', 'the user\'s home site')
    .option('--delegates <list>', 'users who may release this user\'s jobs, separated by , (an empty list removes all)')
  interface FieldOptions { email?: string, groups?: string, homeSite?: string, delegates?: string }
  const fields = (opts: FieldOptions): Record<string, unknown> => ({
    ...(opts.email !== undefined ? { email: opts.email } : {}),
    ...(opts.groups !== undefined ? { groups: semicolonList(opts.groups) } : {}),
    ...(opts.homeSite !== undefined ? { homeSite: opts.homeSite } : {}),
    ...(opts.delegates !== undefined ? { delegates: commaList(opts.delegates) } : {})
  })

  fieldOptions(command('add', 'add a user; the PIN is read from standard input (or asked for on a terminal)').argument('<username>')
    .requiredOption('--full-name <name>', 'the user\'s full name'))
    .action(async (name: string, opts: CallOptions & FieldOptions & { fullName: string }) => {
      const pin = await readSecret(`PIN for ${name}`)
      const added = await call<{ user: DirectoryUserView }>(opts, 'POST', '/api/users', { json: { username: name, fullName: opts.fullName, pin, ...fields(opts) } })
      print(`added ${added.user.username}`)
    })

  fieldOptions(command('edit', 'change a user\'s full name, email, groups, home site or delegates').argument('<username>')
    .option('--full-name <name>', 'the user\'s full name'))
    .option('--no-email', 'remove the email address')
    .option('--no-home-site', 'remove the home site')
    .action(async (name: string, opts: CallOptions & Omit<FieldOptions, 'email' | 'homeSite'> & { fullName?: string, email?: string | false, homeSite?: string | false }) => {
      const patch = {
        ...fields({ ...opts, email: typeof opts.email === 'string' ? opts.email : undefined, homeSite: typeof opts.homeSite === 'string' ? opts.homeSite : undefined }),
        ...(opts.fullName !== undefined ? { fullName: opts.fullName } : {}),
        ...(opts.email === false ? { email: null } : {}),
        ...(opts.homeSite === false ? { homeSite: null } : {})
      }
      if (Object.keys(patch).length === 0) throw new InvalidArgumentError('nothing to change: give --full-name, --email, --groups, --home-site or --delegates')
      await call(opts, 'PATCH', user(name), { json: patch })
      print(`changed ${name}`)
    })

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    command(verb, disabled ? 'disable a user: no login by PIN or card; jobs and records are kept' : 'enable a disabled user').argument('<username>')
      .action(async (name: string, opts: CallOptions) => {
        await call(opts, 'PATCH', user(name), { json: { disabled } })
        print(`${verb}d ${name}`)
      })
  }

  command('delete', 'delete a user (their jobs and accounting records are kept)').argument('<username>')
    .action(async (name: string, opts: CallOptions) => {
      await call(opts, 'DELETE', user(name))
      print(`deleted ${name}`)
    })

  command('set-pin', 'set a user\'s PIN, read from standard input (or asked for on a terminal)').argument('<username>')
    .action(async (name: string, opts: CallOptions) => {
      const pin = await readSecret(`new PIN for ${name}`)
      await call(opts, 'POST', `${user(name)}/pin`, { json: { pin } })
      print(`PIN set for ${name}`)
    })

  command('add-card', 'give a user a card; its number is read from standard input (or asked for on a terminal)').argument('<username>')
    .action(async (name: string, opts: CallOptions) => {
      const card = await readSecret(`card number for ${name}`)
      const changed = await call<{ user: DirectoryUserView }>(opts, 'POST', `${user(name)}/cards`, { json: { card } })
      print(`${name} has ${changed.user.cards.length} card${changed.user.cards.length === 1 ? '' : 's'}`)
    })

  command('remove-card', 'take a card from a user: by --id (as `users show` lists it), or by its number from standard input').argument('<username>')
    .option('--id <id>', 'the card\'s id')
    .action(async (name: string, opts: CallOptions & { id?: string }) => {
      const which = opts.id !== undefined ? { id: opts.id } : { card: await readSecret(`card number to remove from ${name}`) }
      const changed = await call<{ user: DirectoryUserView }>(opts, 'DELETE', `${user(name)}/cards`, { json: which })
      print(`${name} has ${changed.user.cards.length} card${changed.user.cards.length === 1 ? '' : 's'}`)
    })

  const importCmd = users.command('import <file>')
    .description('import users from CSV: username,full name,PIN[,card] rows, or a header row naming the columns ' +
      '(username, full name, PIN, card, email, groups separated by ;, home site); into a running node with --url, ' +
      'or into a stopped standalone site or central with --data')
    .option('--url <url>', 'import into the running node at this web address (central\'s is http://127.0.0.1:8642)')
    .option('--data <dir>', 'import into the stopped node with this data folder (when no --url)', './data')
    .option('--site <id>', 'home site of new users whose row names none (--data only)')
    .option('--dry-run', 'only show what would be added, changed and unchanged, and the lines in error')
  ctx.withAdminTokenOptions(importCmd, `file holding the node's admin token (or ${ctx.adminTokenEnv}; with --url)`)
    .action(async (file: string, opts: { url?: string, data: string, site?: string, dryRun?: boolean, adminTokenFile?: string }) => {
      const csv = await readFile(file, 'utf8')
      const dryRun = opts.dryRun === true
      if (opts.url !== undefined) {
        print(importSummary(await call<ImportReport>({ ...opts, url: opts.url }, 'POST', `/api/users/import${dryRun ? '?dryRun=1' : ''}`, { csv })))
        return
      }
      // the offline import opens the node's store: loaded only here, the API commands need none of it
      const [{ isMeshMember, NETWORK_KEY_FILE }, { signerFor }, { loadOrCreatePeerKey, loadOrCreateNetworkKey, PEER_KEY_FILE }, { DocStore }, { LevelPersistence }, { importUsersCsv, cardKeyOf }] = await Promise.all([
        import('./peer.ts'), import('../transports/identity.ts'), import('../transports/host.ts'), import('../crdt/store.ts'), import('../crdt/persistence.ts'), import('./users.ts')
      ])
      const data = resolve(opts.data)
      await mkdir(data, { recursive: true })
      const signer = signerFor(await loadOrCreatePeerKey(join(data, PEER_KEY_FILE)))
      if (await isMeshMember(data, signer.id)) throw new Error('this site is part of a mesh: users are managed on central')
      const store = new DocStore(await LevelPersistence.open(join(data, 'db')), signer)
      try {
        // the card index is keyed by the network key: the one this node will use when it starts
        const cardKey = cardKeyOf(await loadOrCreateNetworkKey(join(data, NETWORK_KEY_FILE)))
        print(importSummary(await importUsersCsv(store, csv, opts.site ?? 'local', 'cli', cardKey, { dryRun })))
      } finally {
        await store.close()
      }
    })
}
