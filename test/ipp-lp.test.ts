// CUPS' `lp` printing to a real `printmesh site` the way workstations do
// (`lp -h host:port -d NAME`): PDF, PostScript and text jobs end up held for their owner.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import { makePdf, makePostScript, makeText, textLines } from './fixtures/documents.ts'
import { listJobs } from './helpers/ipptool.ts'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'

const run = promisify(execFile)
/** lp has no timeout of its own against a silent server. */
const LP_TIMEOUT_MS = 30_000

let site: SiteProcess | undefined
let dir: string

test.before(async () => {
  dir = await tempDir('printmesh-lp-')
  site = await startSite()
})
test.after(async () => {
  await site?.stop()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function lp (file: string, user: string, title: string): Promise<string> {
  assert.ok(site !== undefined)
  const { stdout } = await run('lp', ['-h', `127.0.0.1:${site.ippPort}`, '-d', 'print', '-U', user, '-t', title, file], { encoding: 'utf8', timeout: LP_TIMEOUT_MS })
  return stdout
}

test('lp prints PDF, PostScript and text; each job is held for its owner', async () => {
  const files: Array<[string, string]> = [
    [await makePdf(dir, { pages: 2 }), 'pdf job'],
    [await makePostScript(dir, { pages: 1 }), 'ps job'],
    [await makeText(dir, textLines(10)), 'text job']
  ]
  for (const [file, title] of files) {
    const out = await lp(file, 'alice', title)
    assert.match(out, /request id is print-\d+ \(1 file\(s\)\)/)
  }
  const jobs = await listJobs(site!.ippUri, { user: 'admin', password: site!.adminToken }) // names and owners need a login
  assert.equal(jobs.map((j) => j.name).sort(), ['pdf job', 'ps job', 'text job'])
  for (const job of jobs) {
    assert.is(job.state, 'pending-held', `${job.name} is held`)
    assert.is(job.user, 'alice', `${job.name} belongs to alice`)
  }
})

test('lp to a queue that does not exist fails cleanly', async () => {
  const file = await makeText(dir, 'x\n')
  await run('lp', ['-h', `127.0.0.1:${site!.ippPort}`, '-d', 'nope', file], { encoding: 'utf8', timeout: LP_TIMEOUT_MS }).then(
    () => assert.unreachable('lp must fail'),
    (err: { code?: number, stderr?: string }) => {
      assert.is(err.code, 1)
      assert.match(err.stderr ?? '', /does not exist/)
    })
})

test.run()
