// The production build (node/build.js): `printmesh` runs the bundled JavaScript in node/dist,
// and a build older than its sources is rebuilt by the bin, refused when run by hand.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname
const BIN = join(ROOT, 'node/bin/printmesh.js')
const BUILT_CLI = join(ROOT, 'node/dist/cli.js')
const BUILD_INFO = join(ROOT, 'node/dist/build-info.json')

interface BuildInfo { inputs: Array<{ path: string, size: number, mtimeMs: number }>, outputs: string[] }

function run (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function info (): BuildInfo {
  return JSON.parse(readFileSync(BUILD_INFO, 'utf8')) as BuildInfo
}

test('the bin runs the built CLI: --help lists the roles', () => {
  const help = run(BIN, '--help')
  assert.is(help.status, 0, help.stderr)
  for (const role of ['site', 'central', 'terminal', 'client']) assert.match(help.stdout, new RegExp(`^\\s+${role} \\[options\\]`, 'm'))
  // what ran is the bundle: it exists, and its build lists the CLI's source and the analysis worker as inputs
  assert.ok(statSync(BUILT_CLI).isFile())
  const inputs = info().inputs.map((i) => i.path)
  for (const source of ['node/cli.ts', 'devices/documents/worker.ts', 'node/build.js']) assert.ok(inputs.includes(source), `build-info lacks ${source}`)
  assert.ok(info().outputs.includes('worker.js'), 'the analysis worker is built beside the CLI')
})

test('a stale build is refused when run by hand, and rebuilt by the bin', () => {
  assert.is(run(BIN, '--version').status, 0) // fresh to start with
  // as if node/cli.ts had changed since the build (the file itself is not touched)
  const stale = info()
  const cli = stale.inputs.find((i) => i.path === 'node/cli.ts')
  assert.ok(cli !== undefined)
  if (cli !== undefined) cli.mtimeMs -= 1000
  writeFileSync(BUILD_INFO, JSON.stringify(stale))

  const byHand = run(BUILT_CLI, '--version')
  assert.is(byHand.status, 1)
  // (another source may be named, when one was edited since the build)
  assert.match(byHand.stderr, /node\/dist is older than the sources \(\S+ changed\)/)
  assert.is(byHand.stdout, '')

  const viaBin = run(BIN, '--version')
  assert.is(viaBin.status, 0, viaBin.stderr)
  assert.is(viaBin.stderr, '', 'a rebuild that works is quiet')
  assert.match(viaBin.stdout, /^\d+\.\d+\.\d+\n$/)
  // the new build records node/cli.ts as it is now (unless someone edited it meanwhile: then -1, still not the fake stamp)
  const now = info().inputs.find((i) => i.path === 'node/cli.ts')
  assert.ok(now !== undefined && now.mtimeMs !== cli?.mtimeMs, 'the build was not redone')
})

test.run()
