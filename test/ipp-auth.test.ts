// IPP authentication and private job lists, with real CUPS clients (ipptool with user:PIN in
// the URI, lp typing the password on a terminal, lpstat) against real site
// processes: one as shipped (job control needs a login, printing trusts the name the client
// sends) and one whose queue needs a login for printing too and lists no jobs to clients
// that did not log in. Peers are alice, bob and carol; the admin logs in as `admin` with the
// admin token. (cancel typing the password: test/ipp-cups-clients.test.ts; ipptool's
// conformance suites logged in, on both kinds of queue: test/ipp-conformance.test.ts.)
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import { Op, Status, Tag, attr, findAttr, groupsOf, statusName, stringValue } from '../devices/ipp/wire.ts'
import { makePdf } from './fixtures/documents.ts'
import { httpProbe, ippRequest } from './helpers/ipp-client.ts'
import { ippTest, listJobs, runIpptool, withLogin, type IppLogin } from './helpers/ipptool.ts'
import { onTerminal } from './helpers/tty.ts'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { until } from '../simulations/wait.ts'

const exec = promisify(execFile)
/** The directory of both sites: username → PIN. */
const PINS = { alice: '1111', bob: '2222', carol: '3333' }
/** A released job reaches the virtual printer within this. */
const PRINT_MS = 20_000

/** Job control needs a login; printing trusts requesting-user-name (the default). */
let site: SiteProcess
/** --ipp-auth intake --ipp-job-list none --no-hold */
let strict: SiteProcess
let docs = ''
let pdf = ''

interface ApiJob { id: string, ippId: number, name: string, owner: string, state: string }

const login = (user: keyof typeof PINS): IppLogin => ({ user, password: PINS[user] })
const admin = (s: SiteProcess): IppLogin => ({ user: 'admin', password: s.adminToken })
const host = (s: SiteProcess): string => `127.0.0.1:${s.ippPort}`

async function apiJobs (s: SiteProcess): Promise<ApiJob[]> {
  const res = await fetch(`${s.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${s.adminToken}` } })
  return ((await res.json()) as { jobs: ApiJob[] }).jobs
}
async function job (s: SiteProcess, ippId: number): Promise<ApiJob | undefined> {
  return (await apiJobs(s)).find((j) => j.ippId === ippId)
}

/** `lp -U user` on the site that trusts the name: resolves with the job id. */
async function lp (s: SiteProcess, user: string, title: string): Promise<number> {
  const { stdout } = await exec('setsid', ['-w', 'lp', '-h', host(s), '-d', 'print', '-U', user, '-t', title, pdf], { encoding: 'utf8' })
  const m = /request id is print-(\d+)/.exec(stdout)
  assert.ok(m !== null, stdout)
  return Number(m[1])
}

/** An ipptool test of `operation` on job `$job`, claiming to be `claim`, expecting `status`. */
function jobOperation (operation: string, status: string, claim?: string): string {
  return ippTest(operation, operation, ['ATTR integer job-id $job', ...(claim !== undefined ? [`ATTR name requesting-user-name ${claim}`] : []), `STATUS ${status}`])
}

/** Runs `script` with ipptool against `s`'s queue, logged in as `as` (or not). */
async function ipptoolAt (s: SiteProcess, script: string, as?: IppLogin, vars: Record<string, string> = {}): Promise<{ code: number, out: string }> {
  return await runIpptool(withLogin(s.ippUri, as), script, { vars })
}

/** printmesh_login_failures_total{method="pin"} of a site. */
async function pinFailures (s: SiteProcess): Promise<number> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text()
  return Number(/^printmesh_login_failures_total\{method="pin"\} (\d+)/m.exec(text)?.[1] ?? 0)
}

test.before(async () => {
  docs = await tempDir('printmesh-ipp-auth-')
  pdf = await makePdf(docs, { pages: 1 })
  const users = Object.entries(PINS).map(([user, pin]) => `${user},${user},${pin}`).join('\n')
  ;[site, strict] = await Promise.all([
    startSite({ users }),
    startSite({ users, args: ['--ipp-auth', 'intake', '--ipp-job-list', 'none', '--no-hold'] })
  ])
})

test.after(async () => {
  await Promise.all([site?.stop(), strict?.stop()])
  if (docs !== '') await rm(docs, { recursive: true, force: true })
})

test('the queue says it takes HTTP Basic logins, without TLS: uri-authentication-supported basic, uri-security-supported none', async () => {
  const { code, out } = await ipptoolAt(site, ippTest('Get-Printer-Attributes', 'Get-Printer-Attributes', [
    'ATTR keyword requested-attributes uri-authentication-supported,uri-security-supported,printer-uri-supported',
    'STATUS successful-ok',
    'EXPECT uri-authentication-supported OF-TYPE keyword COUNT 1 WITH-VALUE basic',
    'EXPECT uri-security-supported OF-TYPE keyword COUNT 1 WITH-VALUE none'
  ]))
  assert.is(code, 0, out)
})

test('Release-Job without a login: HTTP 401 with a Basic challenge and client-error-not-authenticated, even naming the owner; the job stays held', async () => {
  const id = await lp(site, 'bob', 'bob-payslips')
  const asked = await httpProbe(site.ippUri, ippRequest(Op.ReleaseJob, site.ippUri, { user: 'bob', operation: [attr('job-id', Tag.integer, id)] }))
  assert.is(asked.httpStatus, 401)
  assert.match(String(asked.headers?.['www-authenticate']), /^Basic realm="printmesh [^"]+"/)
  assert.is(asked.message?.code, Status.clientErrorNotAuthenticated)
  // what ipptool, given no password, reports
  const { code, out } = await ipptoolAt(site, jobOperation('Release-Job', 'successful-ok', 'bob'), undefined, { job: String(id) })
  assert.is(code, 1, out)
  assert.match(out, 'client-error-not-authenticated')
  assert.is((await job(site, id))?.state, 'held')
})

test('alice, logged in, can neither release, cancel nor hold bob\'s job, claiming to be bob or not', async () => {
  const id = await lp(site, 'bob', 'bob-salary-review')
  for (const operation of ['Release-Job', 'Cancel-Job', 'Hold-Job']) {
    for (const claim of ['bob', 'alice', undefined]) {
      const { code, out } = await ipptoolAt(site, jobOperation(operation, 'client-error-not-authorized', claim), login('alice'), { job: String(id) })
      assert.is(code, 0, `${operation} claiming ${String(claim)}:\n${out}`)
    }
  }
  assert.is((await job(site, id))?.state, 'held')
})

test('alice, logged in, releases her own job and it prints; she cancels another', async () => {
  const first = await lp(site, 'alice', 'alice-slides')
  const second = await lp(site, 'alice', 'alice-draft')
  const released = await ipptoolAt(site, jobOperation('Release-Job', 'successful-ok'), login('alice'), { job: String(first) })
  assert.is(released.code, 0, released.out)
  await until(async () => (await job(site, first))?.state === 'printed', PRINT_MS, 'alice\'s released job printed')
  const canceled = await ipptoolAt(site, jobOperation('Cancel-Job', 'successful-ok'), login('alice'), { job: String(second) })
  assert.is(canceled.code, 0, canceled.out)
  assert.is((await job(site, second))?.state, 'deleted')
})

test('an admin acts on anyone\'s job: admin and the admin token with ipptool, or Bearer; a wrong token is refused', async () => {
  const bobs = await lp(site, 'bob', 'bob-contract')
  const carols = await lp(site, 'carol', 'carol-notes')
  const wrong = await ipptoolAt(site, jobOperation('Cancel-Job', 'successful-ok'), { user: 'admin', password: 'not-the-token' }, { job: String(bobs) })
  assert.is(wrong.code, 1, wrong.out)
  assert.is((await job(site, bobs))?.state, 'held')
  const canceled = await ipptoolAt(site, jobOperation('Cancel-Job', 'successful-ok'), admin(site), { job: String(bobs) })
  assert.is(canceled.code, 0, canceled.out)
  assert.is((await job(site, bobs))?.state, 'deleted')
  const bearer = await httpProbe(site.ippUri, ippRequest(Op.ReleaseJob, site.ippUri, { operation: [attr('job-id', Tag.integer, carols)] }), undefined, { headers: { Authorization: `Bearer ${site.adminToken}` } })
  assert.is(statusName(bearer.message?.code ?? -1), 'successful-ok')
  await until(async () => (await job(site, carols))?.state === 'printed', PRINT_MS, 'carol\'s job released by the admin printed')
})

test('a wrong PIN is refused and counted once however often the client resends it; after too many, the right PIN waits, at the web login too', async () => {
  const id = await lp(site, 'carol', 'carol-budget')
  const before = await pinFailures(site)
  const typo = await ipptoolAt(site, jobOperation('Release-Job', 'successful-ok'), { user: 'carol', password: '3334' }, { job: String(id) })
  assert.is(typo.code, 1, typo.out)
  assert.match(typo.out, 'client-error-not-authenticated')
  assert.is(await pinFailures(site) - before, 1, 'ipptool sends the PIN of its URI several times: one wrong PIN, one failure')
  for (const pin of ['3335', '3336', '3337', '3338']) {
    const guess = await ipptoolAt(site, jobOperation('Release-Job', 'successful-ok'), { user: 'carol', password: pin }, { job: String(id) })
    assert.is(guess.code, 1, guess.out)
  }
  assert.is(await pinFailures(site) - before, 5)
  const waits = await ipptoolAt(site, jobOperation('Release-Job', 'successful-ok'), login('carol'), { job: String(id) })
  assert.is(waits.code, 1, waits.out)
  assert.match(waits.out, /client-error-forbidden \(too many failed logins; try again in \d+ seconds\)/)
  assert.is((await job(site, id))?.state, 'held')
  const web = await fetch(`${site.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', pin: PINS.carol }) })
  assert.is(web.status, 429, 'the web login counts the same failures')
  // nobody else is locked out: bob still logs in from the same address
  const bobs = await lp(site, 'bob', 'bob-memo')
  const other = await ipptoolAt(site, jobOperation('Hold-Job', 'successful-ok'), login('bob'), { job: String(bobs) })
  assert.is(other.code, 0, other.out)
})

test('job lists keep names and owners private: hidden without a login or claiming to be the owner, and from other users; the owner and the admin see them', async () => {
  const bobs = await lp(site, 'bob', 'bob-medical-form')
  const alices = await lp(site, 'alice', 'alice-expenses')
  const anonymous = await listJobs(site.ippUri)
  assert.ok(anonymous.some((j) => j.id === bobs), 'the job is listed')
  assert.ok(anonymous.every((j) => j.user === undefined && j.name === undefined), JSON.stringify(anonymous))
  const asAlice = await listJobs(site.ippUri, login('alice'))
  assert.equal([asAlice.find((j) => j.id === alices)?.user, asAlice.find((j) => j.id === alices)?.name], ['alice', 'alice-expenses'])
  assert.equal([asAlice.find((j) => j.id === bobs)?.user, asAlice.find((j) => j.id === bobs)?.name], [undefined, undefined])
  const asAdmin = await listJobs(site.ippUri, admin(site))
  assert.equal([asAdmin.find((j) => j.id === bobs)?.user, asAdmin.find((j) => j.id === bobs)?.name], ['bob', 'bob-medical-form'])
  // Get-Job-Attributes of bob's job, claiming to be bob without a login: no name, no owner
  const claimed = await httpProbe(site.ippUri, ippRequest(Op.GetJobAttributes, site.ippUri, { user: 'bob', operation: [attr('job-id', Tag.integer, bobs)] }))
  assert.is(statusName(claimed.message?.code ?? -1), 'successful-ok')
  const names = groupsOf(claimed.message!, Tag.jobAttributes)[0].attributes.map((a) => a.name)
  assert.ok(names.includes('job-state'))
  assert.not.ok(names.includes('job-name') || names.includes('job-originating-user-name'), names.join(', '))
  const asBob = await httpProbe(site.ippUri, ippRequest(Op.GetJobAttributes, site.ippUri, { operation: [attr('job-id', Tag.integer, bobs)] }), undefined, { auth: ['bob', PINS.bob] })
  assert.is(stringValue(findAttr(asBob.message!, Tag.jobAttributes, 'job-name')), 'bob-medical-form')
  // lpstat, which never logs in for a listing, shows neither
  const { stdout } = await exec('setsid', ['-w', 'lpstat', '-h', host(site), '-o'], { encoding: 'utf8' })
  assert.match(stdout, `print-${bobs} `)
  assert.not.match(stdout, 'bob')
})

test('Get-Jobs with my-jobs needs a login: a claimed name would tell whose jobs are whose', async () => {
  const claimed = await httpProbe(site.ippUri, ippRequest(Op.GetJobs, site.ippUri, { user: 'bob', operation: [attr('my-jobs', Tag.boolean, true)] }))
  assert.is(claimed.httpStatus, 401)
  assert.is(claimed.message?.code, Status.clientErrorNotAuthenticated)
})

test('a queue that needs a login for printing: without one, no job; the job belongs to whoever logged in, whatever requesting-user-name says', async () => {
  const before = (await apiJobs(strict)).length
  for (const op of [Op.PrintJob, Op.ValidateJob, Op.CreateJob]) {
    const r = await httpProbe(strict.ippUri, ippRequest(op, strict.ippUri, { user: 'bob', operation: [attr('document-format', Tag.mimeMediaType, 'application/pdf')] }))
    assert.is(r.httpStatus, 401)
    assert.is(r.message?.code, Status.clientErrorNotAuthenticated)
  }
  assert.is((await apiJobs(strict)).length, before)
  const { code, out } = await runIpptool(withLogin(strict.ippUri, login('alice')), ippTest('Print-Job as alice, claiming to be bob', 'Print-Job', [
    'ATTR name requesting-user-name bob',
    'ATTR name job-name alice-not-bob',
    'ATTR mimeMediaType document-format application/pdf',
    'FILE $filename',
    'STATUS successful-ok',
    'DISPLAY job-id'
  ]), { file: pdf })
  assert.is(code, 0, out)
  const id = Number(/job-id \(integer\) = (\d+)/.exec(out)?.[1])
  assert.is((await job(strict, id))?.owner, 'alice')
})

test('lp to that queue asks for the password on a terminal; the job is the user\'s who typed it', async () => {
  const run = await onTerminal('lp', ['-h', host(strict), '-d', 'print', '-U', 'carol', '-t', 'carol-typed-her-pin', pdf], PINS.carol)
  assert.is(run.code, 0, run.out)
  assert.match(run.out, 'Password for carol on 127.0.0.1?')
  const id = Number(/request id is print-(\d+)/.exec(run.out)?.[1])
  await until(async () => (await job(strict, id))?.state === 'printed', PRINT_MS, 'carol\'s job printed on arrival')
  assert.equal([(await job(strict, id))?.owner, (await job(strict, id))?.name], ['carol', 'carol-typed-her-pin'])
})

test('--ipp-job-list none: Get-Jobs lists nothing to a client that did not log in; alice, logged in, lists her jobs', async () => {
  const mine = (await apiJobs(strict)).filter((j) => j.owner === 'alice').map((j) => j.ippId)
  assert.ok(mine.length > 0)
  const anonymous = await httpProbe(strict.ippUri, ippRequest(Op.GetJobs, strict.ippUri, { user: 'alice', operation: [attr('which-jobs', Tag.keyword, 'all')] }))
  assert.is(statusName(anonymous.message?.code ?? -1), 'successful-ok')
  assert.is(groupsOf(anonymous.message!, Tag.jobAttributes).length, 0)
  const { stdout } = await exec('setsid', ['-w', 'lpstat', '-h', host(strict), '-W', 'all', '-o'], { encoding: 'utf8' })
  assert.is(stdout.trim(), '')
  const asAlice = await listJobs(strict.ippUri, login('alice'))
  assert.equal(asAlice.filter((j) => j.user === 'alice').map((j) => j.id).sort(), mine.sort())
})

test.run()
