// `printmesh users …` against a running central process: PINs and card numbers piped on
// standard input (never on the command line), each subcommand's effect seen through the
// API, refusals as the node words them with exit 1, CSV import with --dry-run; and the
// offline import's preview on a stopped node's data folder. Each call starts a CLI process
// (seconds of CPU), so checks the API tests make already are not repeated here.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCentral, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { runCleanup } from './helpers/browser.ts'
import { onTerminal } from './helpers/tty.ts'
import type { DirectoryUserView, ImportReport, UserPage } from '../ui/users-api.ts'

const ROOT = new URL('..', import.meta.url).pathname
/** One CLI call (a Node start with tsx, one HTTP request) ends well within this. */
const CLI_TIMEOUT_MS = 30_000

let central: SiteProcess
let dir = ''

interface Run { code: number | null, out: string, err: string }

/** Runs `printmesh users …` against central with `input` on standard input and the token in the environment (unless `env` says otherwise). */
async function users (args: string[], input = '', env: Record<string, string | undefined> = { PRINTMESH_ADMIN_TOKEN: central.adminToken }): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'node/cli.ts', 'users', ...args], {
    cwd: ROOT, env: { ...process.env, PRINTMESH_ADMIN_TOKEN: undefined, ...env }, stdio: ['pipe', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  child.stdin.end(input)
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`printmesh users ${args.join(' ')} did not end within ${CLI_TIMEOUT_MS} ms`)) }, CLI_TIMEOUT_MS)
    child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
  })
  return { code, out, err }
}

const at = (): string[] => ['--url', central.httpUrl]
async function ok (args: string[], input = ''): Promise<string> {
  const run = await users([...args, ...at()], input)
  assert.is(run.code, 0, `printmesh users ${args.join(' ')}: ${run.err}`)
  return run.out
}
async function fails (args: string[], input: string, message: RegExp): Promise<void> {
  const run = await users([...args, ...at()], input)
  assert.is(run.code, 1, `printmesh users ${args.join(' ')} should fail: ${run.out}`)
  assert.match(run.err, message)
}
const user = async (name: string): Promise<DirectoryUserView> => (await admin<{ user: DirectoryUserView }>(central, `/api/users/${name}`)).user

/** Whether `pin` is the user's PIN, as the import preview tells it (unchanged when it matches the stored hash). */
async function pinIs (name: string, fullName: string, pin: string): Promise<boolean> {
  const res = await fetch(`${central.httpUrl}/api/users/import?dryRun=1`, {
    method: 'POST', headers: { authorization: `Bearer ${central.adminToken}`, 'content-type': 'text/csv' }, body: `username,full name,PIN\n${name},${fullName},${pin}\n`
  })
  const report = await res.json() as ImportReport
  return report.unchanged.includes(name)
}

test.before(async () => {
  dir = await tempDir('printmesh-users-cli-')
  central = await startCentral()
})

test.after(async () => {
  await runCleanup([
    ['central', async () => await central?.stop()],
    ['temp folder', async () => await rm(dir, { recursive: true, force: true })]
  ])
})

test('users add takes the PIN on standard input; list, edit, disable and enable act on the running central', async () => {
  const added = await ok(['add', 'alice', '--full-name', 'Alice Liddell', '--email', 'alice@example.org', '--groups', 'finance;board', '--home-site', 'site-a'], '2468\n')
  assert.match(added, /added alice/)
  assert.not.match(added, /2468/)
  assert.ok(await pinIs('alice', 'Alice Liddell', '2468'), 'the piped PIN is alice\'s')
  assert.not.ok(await pinIs('alice', 'Alice Liddell', '2469'), 'and no other')
  await ok(['add', 'bob', '--full-name', 'Bob Builder', '--delegates', 'alice'], '1357\n')
  assert.equal((await user('bob')).delegates, ['alice'])

  const list = await ok(['list'])
  assert.match(list, /alice\s+Alice Liddell\s+alice@example.org\s+finance;board\s+site-a\s+active\s+0/)
  assert.match(list, /users 1-2 of 2/)
  // the token from a file instead of the environment
  const tokenFile = join(dir, 'token')
  await writeFile(tokenFile, central.adminToken + '\n', { mode: 0o600 })
  const search = await users(['list', '--search', 'FINANCE', '--json', ...at(), '--admin-token-file', tokenFile], '', {})
  assert.is(search.code, 0, search.err)
  const page = JSON.parse(search.out) as UserPage
  assert.equal([page.users.map((u) => u.username), page.total], [['alice'], 1])

  await ok(['edit', 'alice', '--full-name', 'Alice L.', '--no-email', '--groups', 'ops'])
  const alice = await user('alice')
  assert.equal([alice.fullName, alice.email, alice.groups, alice.homeSite], ['Alice L.', undefined, ['ops'], 'site-a'])
  assert.match(await ok(['disable', 'alice']), /disabled alice/)
  assert.is((await user('alice')).disabled, true)
  assert.match(await ok(['enable', 'alice']), /enabled alice/)
  assert.is((await user('alice')).disabled, false)
})

test('set-pin, add-card and remove-card read the secret from standard input or a prompt that does not echo; refusals fail with the node\'s message and exit 1', async () => {
  // on a terminal the PIN is asked for, and what is typed is not shown
  const typed = await onTerminal(process.execPath, ['--import', 'tsx', join(ROOT, 'node/cli.ts'), 'users', 'set-pin', 'alice', ...at(), '--admin-token-file', join(dir, 'token')], '4242', /new PIN for alice: /g)
  assert.equal([typed.code, typed.prompts], [0, 1], typed.out)
  assert.match(typed.out, /PIN set for alice/)
  assert.not.match(typed.out, /4242/)
  assert.ok(await pinIs('alice', 'Alice L.', '4242'))

  assert.match(await ok(['set-pin', 'alice'], '8080\n'), /PIN set for alice/)
  assert.ok(await pinIs('alice', 'Alice L.', '8080'))
  assert.not.ok(await pinIs('alice', 'Alice L.', '2468') || await pinIs('alice', 'Alice L.', '4242'), 'the older ones are gone')
  assert.match(await ok(['add-card', 'alice'], '0004417223\n'), /alice has 1 card/)
  await fails(['add-card', 'bob'], '0004417223\n', /the card of bob already belongs to alice \(HTTP 409\)/)
  await fails(['set-pin', 'alice'], '', /no new PIN for alice on standard input/)
  assert.ok(await pinIs('alice', 'Alice L.', '8080'), 'refusals changed nothing')
  assert.match(await ok(['remove-card', 'alice'], '0004417223\n'), /alice has 0 cards/)
  assert.match(await ok(['delete', 'bob']), /deleted bob/)
  assert.is((await admin<UserPage>(central, '/api/users')).total, 1)

  const tokenless = await users(['list', ...at()], '', {})
  assert.equal([tokenless.code, /an admin token is needed: --admin-token-file FILE or PRINTMESH_ADMIN_TOKEN/.test(tokenless.err)], [1, true])
  const wrong = await users(['list', ...at()], '', { PRINTMESH_ADMIN_TOKEN: 'not-the-token' })
  assert.equal([wrong.code, /HTTP 401/.test(wrong.err)], [1, true])
})

test('users import --dry-run shows what would change and writes nothing; the import then applies it; --data works on a stopped node', async () => {
  const csv = join(dir, 'users.csv')
  await writeFile(csv, 'username,full name,PIN,email,groups\nalice,Alice L.,8080,alice@example.org,ops\ndave,Dave,4444,,night;ops\nerin,Erin,1\n')
  const preview = await ok(['import', csv, '--dry-run'])
  assert.match(preview, /dry run: nothing written\. Would add 1, change 1, leave 0 unchanged; 1 line in error/)
  assert.match(preview, /change: alice \(email\)/)
  assert.match(preview, /line 4: a PIN must be 4 to 12 digits/)
  assert.not.match(preview, /8080|4444/)
  assert.is((await admin<UserPage>(central, '/api/users?q=dave')).total, 0, 'a dry run writes nothing')
  await fails(['import', csv], '', /nothing imported: 1 line cannot be: line 4/)
  await writeFile(csv, 'username,full name,PIN,email,groups\nalice,Alice L.,8080,alice@example.org,ops\ndave,Dave,4444,,night;ops\n')
  assert.match(await ok(['import', csv]), /imported 2 users: added 1, changed 1, unchanged 0/)
  assert.equal((await user('dave')).groups, ['night', 'ops'])
  assert.is((await user('alice')).email, 'alice@example.org')

  const offline = await users(['import', csv, '--data', join(dir, 'stopped-site'), '--dry-run'], '', {})
  assert.is(offline.code, 0, offline.err)
  assert.match(offline.out, /Would add 2/)
})

test.run()
