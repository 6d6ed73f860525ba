// The test runner's promise: every test runs where only loopback exists, with DNS-SD up.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { networkInterfaces } from 'node:os'
import { spawnSync } from 'node:child_process'

test('only the loopback interface exists, so no test can reach another machine', () => {
  assert.equal(Object.keys(networkInterfaces()), ['lo'])
})

test('avahi answers on the private system bus (needed by ippeveprinter)', () => {
  assert.is(spawnSync('avahi-daemon', ['--check']).status, 0)
})

test.run()
