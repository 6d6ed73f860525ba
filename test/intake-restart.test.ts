// The intake's per-address quota survives a restart: the jobs an address sent are counted
// from their records (job-originating-host-name) when the site starts again, so a sender
// cannot pass the quota by waiting for a restart. A real site process, stopped and started
// again on its data folder; ipptool sends from 127.0.0.1.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { ippTest, runIpptool } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'

/** The most unfinished jobs one address may have here. */
const ADDRESS_JOBS = 2
const ARGS = ['--max-address-jobs', String(ADDRESS_JOBS), '--no-dnssd']

let site: SiteProcess | undefined
let data = ''
let docs = ''

test.before(async () => {
  data = await tempDir('printmesh-intake-restart-')
  docs = await tempDir('printmesh-intake-restart-docs-')
})
test.after(async () => {
  await site?.stop()
  await rm(data, { recursive: true, force: true })
  await rm(docs, { recursive: true, force: true })
})

/** Print-Job as `user` from 127.0.0.1: ipptool's exit code and report. */
async function print (user: string): Promise<{ code: number, out: string }> {
  assert.ok(site !== undefined)
  return await runIpptool(site.ippUri, ippTest('Print-Job', 'Print-Job', [
    `ATTR name requesting-user-name ${user}`, 'ATTR mimeMediaType document-format application/pdf', 'FILE $filename', 'STATUS successful-ok'
  ]), { file: await makePdf(docs, { pages: 1 }) })
}

test('an address that holds its most jobs is still refused after the site restarts', async () => {
  site = await startSite({ dataDir: data, args: ARGS })
  for (let i = 1; i <= ADDRESS_JOBS; i++) {
    const r = await print(`user${i}`) // other users each time: only the address's quota is reached
    assert.is(r.code, 0, r.out)
  }
  const before = await print('user9')
  assert.is.not(before.code, 0, before.out)
  assert.match(before.out, /client-error-not-possible/)
  await site.stop()
  site = await startSite({ dataDir: data, args: ARGS })
  const after = await print('user10')
  assert.is.not(after.code, 0, after.out)
  assert.match(after.out, /client-error-not-possible/)
  assert.match(after.out, new RegExp(`${ADDRESS_JOBS} unfinished jobs here were sent from 127\\.0\\.0\\.1`))
})

test.run()
