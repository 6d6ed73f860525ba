// Login lockouts survive a restart: the guard's counted failures are kept in the data folder
// (node/login-state.ts), taken back at start, and a malformed file is reported and replaced
// without stopping the node. Checked on the guard itself and on a real site process that
// is stopped and started again on its data folder.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { LoginGuard, InvalidLoginSnapshotError, MAX_FAILURES_PER_PAIR } from '../ui/rate-limit.ts'
import { persistentLoginGuard, LOGIN_FAILURES_FILE } from '../node/login-state.ts'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const PIN = '2580'
const quiet = pino({ level: 'silent' })
const alice = async (pin: string): Promise<{ user: string, admin: boolean } | undefined> => pin === PIN ? { user: 'alice', admin: false } : undefined

/** How many failures the data folder's file holds for the pair whose key starts with `prefix` (0 with no file yet). */
async function storedPairFailures (dataDir: string, prefix: string): Promise<number> {
  const text = await readFile(join(dataDir, LOGIN_FAILURES_FILE), 'utf8').catch(() => undefined)
  if (text === undefined) return 0
  const { failures } = JSON.parse(text) as { failures: Array<[string, number[]]> }
  return failures.find(([key]) => key.startsWith(prefix))?.[1].length ?? 0
}

let dir = ''
const running: SiteProcess[] = []
test.before.each(async () => { dir = await tempDir('printmesh-logins-') })
test.after.each(async () => {
  for (const p of running.splice(0)) await p.stop()
  await rm(dir, { recursive: true, force: true })
})

test('a guard restored from a snapshot still refuses the locked-out pair, even the right PIN, and only that pair', async () => {
  const before = new LoginGuard()
  for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) assert.is((await before.pin('alice', '10.0.0.1', async () => await alice('0000'))).ok, false)
  const after = new LoginGuard()
  after.restore(JSON.parse(JSON.stringify(before.snapshot())))
  const locked = await after.pin('alice', '10.0.0.1', async () => await alice(PIN))
  assert.equal([locked.ok, locked.ok ? '' : locked.refusal], [false, 'throttled'])
  assert.is((await after.pin('alice', '10.0.0.2', async () => await alice(PIN))).ok, true, 'alice from another address is not locked out')
  assert.throws(() => { after.restore({ version: 2, failures: [] }) }, (e: unknown) => e instanceof InvalidLoginSnapshotError)
  assert.throws(() => { after.restore({ version: 1, failures: [['pair:x', ['soon']]] }) }, (e: unknown) => e instanceof InvalidLoginSnapshotError)
})

test('a persistent guard writes every failure to the data folder; a malformed file is replaced, not fatal', async () => {
  await writeFile(join(dir, LOGIN_FAILURES_FILE), '{ not json')
  const guard = await persistentLoginGuard(dir, {}, quiet)
  await guard.pin('bob', '10.0.0.9', async () => undefined)
  await until(async () => (await readFile(join(dir, LOGIN_FAILURES_FILE), 'utf8')).includes('pair:bob|10.0.0.9'), 5_000, 'the failure stored')
  const stored = JSON.parse(await readFile(join(dir, LOGIN_FAILURES_FILE), 'utf8')) as { version: number }
  assert.is(stored.version, 1)
  const again = await persistentLoginGuard(dir, {}, quiet)
  assert.equal(again.snapshot().failures.map(([k]) => k).sort(), ['ip:10.0.0.9', 'pair:bob|10.0.0.9', 'user:bob'])
})

test('a site restarted on its data folder keeps a PIN lockout: the right PIN from the locked-out address is still refused', async () => {
  const first = await startSite({ dataDir: dir, users: `alice,Alice,${PIN}\n` })
  running.push(first)
  const login = async (site: SiteProcess, pin: string): Promise<number> =>
    (await fetch(`${site.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', pin }) })).status
  for (let i = 0; i < MAX_FAILURES_PER_PAIR; i++) assert.is(await login(first, '0000'), 401)
  assert.is(await login(first, PIN), 429, 'locked out before the restart')
  // the whole lockout, not only its first failure: each failure is written after the answer, and a stop drops what is not yet written
  await until(async () => await storedPairFailures(dir, 'pair:alice|') >= MAX_FAILURES_PER_PAIR, 5_000, 'the lockout stored')
  await first.kill('SIGTERM')
  const second = await startSite({ dataDir: dir })
  running.push(second)
  assert.is(await login(second, PIN), 429, 'still locked out after the restart')
})

test.run()
