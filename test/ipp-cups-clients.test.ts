// CUPS's own tools and a CUPS server, pointed at a site as users and desktops do:
// lpstat (CUPS-Get-Printers, CUPS-Get-Default, CUPS-Get-Classes, Get-Jobs on `/`), lpq,
// cancel by job id (which asks for the owner's password: job control needs a login), and
// a private cupsd that adds the site as an IPP Everywhere queue (`lpadmin -m everywhere`)
// and prints through it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { rm } from 'node:fs/promises'
import { startSite, tempDir, type SiteProcess } from '../simulations/node-process.ts'
import { makePdf } from './fixtures/documents.ts'
import { until } from '../simulations/wait.ts'
import { startPrivateCups, type PrivateCups } from '../simulations/bench/cups.ts'
import { onTerminal } from './helpers/tty.ts'

const exec = promisify(execFile)
/** A private cupsd has printed a job through its filters and IPP backend within this. */
const CUPS_PRINT_MS = 60_000
/** The users who print here and their PINs (the site's directory). */
const PINS = { alice: '1111', bob: '2222' }

let site: SiteProcess
let cups: PrivateCups | undefined
let docs = ''
let host = ''

interface ApiJob { ippId: number, name: string, owner: string, state: string, pages: number, colorPages: number }

async function jobs (): Promise<ApiJob[]> {
  const res = await fetch(`${site.httpUrl}/api/jobs?scope=all`, { headers: { authorization: `Bearer ${site.adminToken}` } })
  return ((await res.json()) as { jobs: ApiJob[] }).jobs
}

/** Runs a CUPS tool (without a terminal: it cannot ask for a password); resolves with its exit code and all it wrote. */
async function tool (cmd: string, ...args: string[]): Promise<{ code: number, out: string }> {
  try {
    // setsid: a session of its own, no controlling terminal, even when the tests run in one (-w: its exit code)
    const r = await exec('setsid', ['-w', cmd, ...args], { encoding: 'utf8' })
    return { code: 0, out: r.stdout + r.stderr }
  } catch (err) {
    const e = err as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

test.before(async () => {
  docs = await tempDir('printmesh-cups-clients-')
  site = await startSite({ users: Object.entries(PINS).map(([user, pin]) => `${user},${user},${pin}`).join('\n') })
  host = `127.0.0.1:${site.ippPort}`
  const pdf = await makePdf(docs, { pages: 2, colorPages: [] })
  for (const [user, title] of [['alice', 'alice-notes'], ['bob', 'bob-salary-review']]) {
    const r = await tool('lp', '-h', host, '-d', 'print', '-U', user, '-t', title, pdf)
    assert.is(r.code, 0, r.out)
  }
  await until(async () => (await jobs()).filter((j) => j.state === 'held').length === 2, 20_000, 'both jobs held')
})

test.after(async () => {
  await cups?.stop()
  await site?.stop()
  await rm(docs, { recursive: true, force: true })
})

test('lpstat -p, -a, -v and -d describe the site\'s queue (CUPS-Get-Printers, CUPS-Get-Default)', async () => {
  const p = await tool('lpstat', '-h', host, '-p')
  assert.is(p.code, 0, p.out)
  assert.match(p.out, /^printer print is idle\. {2}enabled since /m)
  const a = await tool('lpstat', '-h', host, '-a')
  assert.match(a.out, /^print accepting requests since /m)
  const v = await tool('lpstat', '-h', host, '-v')
  assert.match(v.out, `device for print: ipp://${host}/printers/print`)
  const d = await tool('lpstat', '-h', host, '-d')
  assert.match(d.out, 'system default destination: print')
})

test('lpstat -t runs every query without an error (CUPS-Get-Classes: a site has none)', async () => {
  const t = await tool('lpstat', '-h', host, '-t')
  assert.is(t.code, 0, t.out)
  assert.not.match(t.out, /not supported|no queue|lpstat:/)
  assert.match(t.out, 'scheduler is running')
})

test('lpstat -o (Get-Jobs on /) and lpq list the held jobs, owners and titles private', async () => {
  // Neither tool logs in for a listing, so other users' names stay private: CUPS shows
  // "unknown" where the server left job-originating-user-name and job-name out.
  const o = await tool('lpstat', '-h', host, '-o')
  assert.is(o.code, 0, o.out)
  const held = (await jobs()).sort((x, y) => x.ippId - y.ippId)
  const lines = o.out.trim().split('\n').map((l) => l.split(/\s+/).slice(0, 2))
  assert.equal(lines, held.map((j) => [`print-${j.ippId}`, 'unknown']))
  const q = await tool('lpq', '-h', host, '-P', 'print')
  assert.is(q.code, 0, q.out)
  for (const j of held) assert.match(q.out, new RegExp(`\\bunknown\\s+${j.ippId}\\s+unknown\\b`))
  for (const j of held) {
    assert.not.match(o.out + q.out, j.owner)
    assert.not.match(o.out + q.out, j.name)
  }
})

test('cancel by job id asks for the password and acts for the owner only: alice cannot cancel bob\'s job, bob can', async () => {
  const bobs = (await jobs()).find((j) => j.owner === 'bob')
  assert.ok(bobs !== undefined)
  // without a terminal to ask on, cancel cannot log in, and nothing happens
  const noTerminal = await tool('cancel', '-h', host, '-U', 'bob', String(bobs.ippId))
  assert.is(noTerminal.code, 1, noTerminal.out)
  assert.is((await jobs()).find((j) => j.ippId === bobs.ippId)?.state, 'held')
  const refused = await onTerminal('cancel', ['-h', host, '-U', 'alice', String(bobs.ippId)], PINS.alice)
  assert.is(refused.code, 1, refused.out)
  assert.match(refused.out, 'Password for alice on 127.0.0.1?')
  assert.match(refused.out, 'belongs to another user')
  assert.is((await jobs()).find((j) => j.ippId === bobs.ippId)?.state, 'held')
  const done = await onTerminal('cancel', ['-h', host, '-U', 'bob', `print-${bobs.ippId}`], PINS.bob)
  assert.is(done.code, 0, done.out)
  assert.is(done.prompts, 1, done.out)
  assert.is((await jobs()).find((j) => j.ippId === bobs.ippId)?.state, 'deleted')
  const o = await tool('lpstat', '-h', host, '-o')
  assert.not.match(o.out, `print-${bobs.ippId} `)
})

test('a CUPS server adds the site as an IPP Everywhere queue and prints through it: user, title and pages right', async () => {
  const siteQueue = `ipp://${host}/printers/print`
  cups = await startPrivateCups(() => {}, [['-p', 'pm', '-E', '-v', siteQueue, '-m', 'everywhere']])
  const before = new Set((await jobs()).map((j) => j.ippId))
  const pdf = await makePdf(docs, { pages: 3, colorPages: [2] })
  const lp = await tool('lp', '-h', `127.0.0.1:${cups.port}`, '-d', 'pm', '-U', 'carol', '-t', 'quarterly-report', pdf)
  assert.is(lp.code, 0, lp.out)
  let arrived: ApiJob | undefined
  await until(async () => {
    arrived = (await jobs()).find((j) => !before.has(j.ippId) && j.state === 'held')
    return arrived !== undefined
  }, CUPS_PRINT_MS, 'the job printed by cupsd is held at the site')
  assert.equal([arrived?.owner, arrived?.name, arrived?.pages, arrived?.colorPages], ['carol', 'quarterly-report', 3, 1])
})

test.run()
