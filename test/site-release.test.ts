// End to end: lp → held at the site → user logs in with PIN → release to a real IPP printer
// (ippeveprinter) → byte-identical output → charged once, in totals and CSV.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readFile, rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { startIppEvePrinter, type IppEvePrinter } from './helpers/ippeveprinter.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'

const run = promisify(execFile)
let site: SiteProcess
let office: IppEvePrinter
let broken: IppEvePrinter
let docs = ''

test.before(async () => {
  docs = await tempDir('printmesh-docs-')
  office = await startIppEvePrinter({ name: 'office' })
  broken = await startIppEvePrinter({ name: 'broken', jobOutcome: 'abort' })
  site = await startSite({
    printers: [`office=${office.uri}`, `broken=${broken.uri}`],
    users: 'username,full name,PIN\nalice,Alice Liddell,1234\nbob,Bob,5678\n'
  })
})
test.after(async () => {
  await site?.stop()
  await office?.stop()
  await broken?.stop()
  await rm(docs, { recursive: true, force: true })
})

interface ApiJob { id: string, ippId: number, owner: string, state: string, pages: number, colorPages: number, reason?: string, printer?: string }

async function api<T> (path: string, init: RequestInit & { session?: Session } = {}): Promise<{ status: number, body: T }> {
  const headers = new Headers(init.headers)
  if (init.session !== undefined) {
    headers.set('cookie', init.session.cookie)
    headers.set('x-csrf-token', init.session.csrf)
  } else if (!headers.has('authorization')) {
    headers.set('authorization', `Bearer ${site.adminToken}`)
  }
  if (init.body !== undefined) headers.set('content-type', 'application/json')
  const res = await fetch(site.httpUrl + path, { ...init, headers })
  const text = await res.text()
  return { status: res.status, body: (res.headers.get('content-type')?.includes('json') === true ? JSON.parse(text) : text) as T }
}

interface Session { cookie: string, csrf: string }
async function login (username: string, pin: string): Promise<{ status: number, session?: Session }> {
  const res = await fetch(`${site.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, pin }) })
  if (res.status !== 200) return { status: res.status }
  const { csrfToken } = await res.json() as { csrfToken: string }
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]
  return { status: 200, session: { cookie, csrf: csrfToken } }
}

async function lp (file: string, user: string, title: string): Promise<void> {
  await run('lp', ['-h', `127.0.0.1:${site.ippPort}`, '-d', 'print', '-U', user, '-t', title, file])
}

async function heldJob (title: string): Promise<ApiJob> {
  let found: ApiJob | undefined
  await until(async () => {
    const { body } = await api<{ jobs: Array<ApiJob & { name: string }> }>('/api/jobs?scope=all')
    found = body.jobs.find((j) => j.name === title && j.state === 'held')
    return found !== undefined
  }, 20_000, `job ${title} held`)
  return found as ApiJob
}

test('a PDF printed with lp is held, released with a PIN, printed byte for byte and charged once', async () => {
  const pdf = await makePdf(docs, { pages: 3, colorPages: [1] })
  await lp(pdf, 'alice', 'quarterly')
  const job = await heldJob('quarterly')
  assert.equal([job.owner, job.pages, job.colorPages], ['alice', 3, 1])
  assert.equal(await office.jobFiles(), [], 'held jobs must not print before release')

  assert.is((await login('alice', '9999')).status, 401)
  const { session } = await login('alice', '1234')
  assert.ok(session)
  const mine = await api<{ jobs: ApiJob[] }>('/api/jobs?scope=mine', { session })
  assert.equal(mine.body.jobs.map((j) => j.id), [job.id])
  const bobs = await login('bob', '5678')
  const stolen = await api(`/api/jobs/${job.id}/release`, { method: 'POST', session: bobs.session, body: JSON.stringify({ printer: 'office' }) })
  assert.is(stolen.status, 403, 'bob may not release alice\'s job')

  const released = await api<{ job: ApiJob }>(`/api/jobs/${job.id}/release`, { method: 'POST', session, body: JSON.stringify({ printer: 'office' }) })
  assert.is(released.status, 200, JSON.stringify(released.body))
  await until(async () => (await api<{ jobs: ApiJob[] }>('/api/jobs?scope=mine', { session })).body.jobs[0].state === 'printed', 30_000, 'printed')

  const files = await office.jobFiles()
  assert.is(files.length, 1)
  assert.ok((await readFile(files[0])).equals(await readFile(pdf)), 'the printer received different bytes')

  const again = await api(`/api/jobs/${job.id}/release`, { method: 'POST', session, body: JSON.stringify({ printer: 'office' }) })
  assert.is(again.status, 409, 'a printed job cannot be released again')

  const byUser = await api<{ totals: Array<{ key: string, jobs: number, pages: number, colorPages: number, sheets: number }> }>('/api/usage/totals?by=user')
  assert.equal(byUser.body.totals, [{ key: 'alice', jobs: 1, pages: 3, colorPages: 1, sheets: 3 }])
  const byPrinter = await api<{ totals: Array<{ key: string, pages: number }> }>('/api/usage/totals?by=printer')
  assert.equal(byPrinter.body.totals.map((t) => [t.key, t.pages]), [['office', 3]])
  const byDay = await api<{ totals: Array<{ key: string, jobs: number }> }>('/api/usage/totals?by=day')
  assert.equal(byDay.body.totals.map((t) => [t.key, t.jobs]), [[new Date().toISOString().slice(0, 10), 1]])
  const csv = await api<string>('/api/usage.csv')
  const rows = csv.body.trim().split(/\r?\n/)
  assert.is(rows.length, 2, csv.body)
  assert.match(rows[1], /alice/)
  assert.match(rows[1], /office/)
})

test('a job the printer aborts ends failed with the printer\'s reason and is not charged', async () => {
  const pdf = await makePdf(docs, { pages: 2, colorPages: [] })
  await lp(pdf, 'bob', 'doomed')
  const job = await heldJob('doomed')
  const res = await api(`/api/jobs/${job.id}/release`, { method: 'POST', body: JSON.stringify({ printer: 'broken' }) })
  assert.is(res.status, 200)
  let final: ApiJob | undefined
  await until(async () => {
    final = (await api<{ jobs: ApiJob[] }>('/api/jobs?scope=all')).body.jobs.find((j) => j.id === job.id)
    return final?.state === 'failed'
  }, 30_000, 'failed')
  assert.ok(final?.reason !== undefined && final.reason !== '', 'a failed job says why')
  const byUser = await api<{ totals: Array<{ key: string }> }>('/api/usage/totals?by=user')
  assert.not.ok(byUser.body.totals.some((t) => t.key === 'bob'), 'bob was charged for a job that did not print')
})

test.run()
