// The audit log's retention option (issue 16 item 6): how many months of audit documents a
// site or central keeps (--audit-retention-months, default 13), the rule its documents service
// and sync engine apply, and the CLI's answer to a bad value.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { AUDIT_RETENTION_MONTHS, acctDoc, auditDoc, jobsDoc, peerId } from '../crdt/names.ts'
import { checkAuditRetention, InvalidAuditRetentionError, retentionRule } from '../node/audit.ts'

const ROOT = new URL('..', import.meta.url).pathname
const BIN = join(ROOT, 'node/bin/printmesh.js')
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0)
const peer = peerId('site-a-peer')

test('audit months older than the retention are dropped; jobs follow their own rule; other families stay', () => {
  const two = retentionRule(3, 2, () => NOW)
  assert.ok(two(auditDoc(peer, '2026-12')), 'this month')
  assert.ok(two(auditDoc(peer, '2026-10')), 'two months back')
  assert.not.ok(two(auditDoc(peer, '2026-09')), 'three months back: dropped')
  assert.ok(two(jobsDoc(peer, '2026-09')), 'jobs: three months kept as before')
  assert.not.ok(two(jobsDoc(peer, '2026-08')))
  assert.ok(two(acctDoc(peer, '2019-01')), 'accounting is never dropped by age')
  const byDefault = retentionRule(3, undefined, () => NOW)
  assert.is(AUDIT_RETENTION_MONTHS, 13)
  assert.ok(byDefault(auditDoc(peer, '2025-11')))
  assert.not.ok(byDefault(auditDoc(peer, '2025-10')))
  const decade = retentionRule(3, 120, () => NOW)
  assert.ok(decade(auditDoc(peer, '2016-12')))
  for (const bad of [0, -1, 1.5, 121, Number.NaN, '6']) {
    assert.throws(() => checkAuditRetention(bad), (e: unknown) => e instanceof InvalidAuditRetentionError && /whole number of months from 1 to 120/.test((e as Error).message), String(bad))
  }
})

test('a bad --audit-retention-months stops the command with the reason', () => {
  const bad = spawnSync(process.execPath, [BIN, 'central', '--audit-retention-months', '0', '--data', join(ROOT, 'never-created')], { cwd: ROOT, encoding: 'utf8' })
  assert.is.not(bad.status, 0)
  assert.match(bad.stderr, /--audit-retention-months.*audit retention must be a whole number of months from 1 to 120, got 0/)
})

test.run()
