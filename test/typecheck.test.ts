// The whole project type-checks (strict), including the compile-time checks of
// test/fixtures/branded-ids.ts: a site id cannot be passed where a peer id is expected.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

test('tsc --noEmit passes: the code type-checks and a site id is refused where a peer id belongs', () => {
  const tsc = spawnSync(process.execPath, [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), '--noEmit', '-p', ROOT], { cwd: ROOT, encoding: 'utf8' })
  assert.is(tsc.status, 0, `tsc reported:\n${tsc.stdout}${tsc.stderr}`)
})

test.run()
