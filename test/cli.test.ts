// The printmesh command: help for every option, clear errors for bad input.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, tempDir } from '../simulations/node-process.ts'

const ROOT = new URL('..', import.meta.url).pathname
const BIN = join(ROOT, 'node/bin/printmesh.js')

function printmesh (...args: string[]): { status: number | null, out: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

test('the package bin lists the roles and documents every site option', () => {
  const top = printmesh('--help')
  assert.is(top.status, 0)
  for (const role of ['site', 'central', 'terminal', 'client']) assert.match(top.out, new RegExp(`^\\s+${role} \\[options\\]`, 'm'), `--help lacks the ${role} role`)
  const help = printmesh('site', '--help')
  assert.is(help.status, 0)
  for (const opt of ['--data', '--site', '--host', '--ipp-port', '--http-port', '--printer', '--admin-token-file', '--queue', '--no-hold', '--hold-hours', '--retention-hours', '--log-level', '--listen', '--bootstrap', '--no-mdns', '--no-dnssd', '--join', '--anti-entropy-seconds', '--network-key']) {
    assert.match(help.out, opt, `site --help lacks ${opt}`)
  }
})

test('central, terminal, client and mesh administration are documented too', () => {
  for (const cmd of [['central', '--help'], ['terminal', '--help'], ['client', '--help'], ['mesh', '--help'], ['mesh', 'token', '--help']]) {
    const help = printmesh(...cmd)
    assert.is(help.status, 0, cmd.join(' '))
    assert.match(help.out, cmd[0] === 'mesh' ? /--url|join-string/ : /--network-key/)
  }
})

test('bad options fail with a clear message and a non-zero exit', () => {
  const badPort = printmesh('site', '--ipp-port', '70000')
  assert.is(badPort.status, 1)
  assert.match(badPort.out, /port number/)
  const badPrinter = printmesh('site', '--printer', 'lpt1=smb://x/y')
  assert.is(badPrinter.status, 1)
  assert.match(badPrinter.out, /NAME=URI with an ipp:\/\/, ipps:\/\/ or file:\/\/ URI/)
})

test('users import validates the CSV and reports the line at fault', async () => {
  const dir = await tempDir()
  try {
    const good = join(dir, 'good.csv')
    await writeFile(good, 'username,full name,PIN\nalice,Alice Liddell,1234\nbob,"Bob, Jr.",98765\n')
    const ok = printmesh('users', 'import', good, '--data', join(dir, 'data'))
    assert.is(ok.status, 0, ok.out)
    assert.match(ok.out, /imported 2 users/)
    assert.not.match(ok.out, /1234|98765/)
    const bad = join(dir, 'bad.csv')
    await writeFile(bad, 'carol,Carol,12\n')
    const failed = printmesh('users', 'import', bad, '--data', join(dir, 'data'))
    assert.is(failed.status, 1)
    assert.match(failed.out, /line 1: a PIN must be 4 to 12 digits/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the admin token is refused on the command line and read from a file, never showing in the process list', async () => {
  const refused = printmesh('site', '--admin-token', 'secret-on-the-command-line')
  assert.is(refused.status, 1)
  assert.match(refused.out, 'not taken on the command line')
  const mesh = printmesh('mesh', 'status', '--admin-token', 'x')
  assert.equal([mesh.status, mesh.out.includes('--admin-token-file')], [1, true])

  const dir = await tempDir()
  const file = join(dir, 'token')
  const token = 'from-a-file-' + String(process.pid)
  await writeFile(file, `${token}\n`, { mode: 0o600 })
  const site = await startSite({ args: ['--admin-token-file', file] })
  try {
    const cmdline = await readFile(`/proc/${site.pid}/cmdline`, 'utf8')
    assert.not.match(cmdline, token)
    assert.not.match(cmdline, site.adminToken, 'nor the token the harness put in the environment')
    const as = async (t: string): Promise<number> => (await fetch(`${site.httpUrl}/api/users`, { headers: { authorization: `Bearer ${t}` } })).status
    assert.equal([await as(token), await as(site.adminToken)], [200, 401], 'the file wins over the environment')
  } finally {
    await site.stop()
    await rm(dir, { recursive: true, force: true })
  }
  const missing = printmesh('site', '--admin-token-file', join(dir, 'nope'), '--data', join(dir, 'd'))
  assert.equal([missing.status, /admin token file .*nope: no such file/.test(missing.out)], [1, true])
})

test.run()
