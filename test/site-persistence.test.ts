// A job acknowledged over IPP is never lost: graceful restart, and kill -9 right after the ack.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { printFile, listJobs } from './helpers/ipptool.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'

let dir = ''
let docs = ''
const running: SiteProcess[] = []
test.before.each(async () => {
  dir = await tempDir()
  docs = await tempDir('printmesh-docs-')
})
test.after.each(async () => {
  for (const s of running.splice(0)) await s.stop()
  await rm(dir, { recursive: true, force: true })
  await rm(docs, { recursive: true, force: true })
})

async function site (): Promise<SiteProcess> {
  const s = await startSite({ dataDir: dir })
  running.push(s)
  return s
}

test('held jobs survive a graceful restart with their ids, owners and page counts', async () => {
  const pdf = await makePdf(docs, { pages: 3, colorPages: [1] })
  let s = await site()
  const a = await printFile(s.ippUri, pdf, { user: 'alice', format: 'application/pdf', name: 'report' })
  const b = await printFile(s.ippUri, pdf, { user: 'bob', format: 'application/pdf', name: 'slides' })
  await s.stop()
  running.length = 0
  s = await site()
  const jobs = await listJobs(s.ippUri, { user: 'admin', password: s.adminToken })
  assert.equal(jobs.map((j) => [j.id, j.user, j.name, j.state]), [
    [a, 'alice', 'report', 'pending-held'],
    [b, 'bob', 'slides', 'pending-held']
  ])
  const api = await fetch(`${s.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${s.adminToken}` } })
  const listed = await api.json() as { jobs: Array<{ ippId: number, pages: number, colorPages: number }> }
  const report = listed.jobs.find((j) => j.ippId === a)
  assert.equal([report?.pages, report?.colorPages], [3, 1])
})

test('kill -9 right after the acknowledgement loses nothing', async () => {
  const pdf = await makePdf(docs, { pages: 2, colorPages: [] })
  let s = await site()
  const acknowledged: number[] = []
  for (let i = 0; i < 3; i++) acknowledged.push(await printFile(s.ippUri, pdf, { user: 'carol', format: 'application/pdf', name: `job ${i}` }))
  await s.kill('SIGKILL') // no chance to flush anything after the last successful-ok
  running.length = 0
  s = await site()
  const jobs = await listJobs(s.ippUri, { user: 'admin', password: s.adminToken })
  assert.equal(jobs.map((j) => j.id), acknowledged)
  assert.ok(jobs.every((j) => j.state === 'pending-held'), JSON.stringify(jobs))
  // the spooled bytes are there and intact: releasing the first job prints exactly them
  const job = await jobByIppId(s, acknowledged[0])
  const res = await fetch(`${s.httpUrl}/api/jobs/${job.id}/release`, {
    method: 'POST', headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' }, body: '{}'
  })
  assert.is(res.status, 200, await res.text())
  await until(async () => (await jobByIppId(s, acknowledged[0])).state === 'printed')
  const out = join(s.dataDir, 'virtual-printer')
  const printed = (await readdir(out)).filter((f) => !f.endsWith('.json'))
  assert.is(printed.length, 1)
  assert.ok((await readFile(join(out, printed[0]))).equals(await readFile(pdf)), 'printed bytes differ from the submitted PDF')
  const next = await printFile(s.ippUri, pdf, { user: 'carol', format: 'application/pdf' })
  assert.ok(next > Math.max(...acknowledged), 'job ids are not reused after a crash')
})

async function jobByIppId (s: SiteProcess, ippId: number): Promise<{ id: string, state: string }> {
  const res = await fetch(`${s.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${s.adminToken}` } })
  const { jobs } = await res.json() as { jobs: Array<{ id: string, ippId: number, state: string }> }
  const job = jobs.find((j) => j.ippId === ippId)
  if (job === undefined) throw new Error(`job ${ippId} not listed`)
  return job
}

test.run()
