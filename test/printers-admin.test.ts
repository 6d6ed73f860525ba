// Printers managed at run time and admin actions across sites (issue 16 item 4), below the
// processes. A site's printers over its own store and the console's HTTP routes (inject):
// added, edited and removed at once in the map the release engine reads, bad input a 400
// naming the field, a printer with a job printing a 409, the default never removed, all kept
// over a restart. Admin actions over the in-process mesh: site-b asks site-a for a printer,
// shown pending until site-a's outcome arrives; applied exactly once (replayed, restarted,
// asked while site-a was down and applied when it is back); forged ones (a terminal's, one
// naming another author, one injected past sync) never applied.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { EventEmitter } from 'node:events'
import { pino, type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { tempDir } from '../simulations/node-process.ts'
import { adminActionsDoc, jobsDoc, periodOf, siteConfigDoc, siteId, type PeerId, type SiteId } from '../crdt/names.ts'
import { appendAdminAction, countAdminActions, listAdminActions, type AdminAction } from '../crdt/admin-actions.ts'
import { actionOutcome, readSitePrinters, readSiteSettings, setHostname, setPrintPolicy, setRoaming, setSiteTimes, validatePrintPolicy, validateRoaming, validateSiteTimes } from '../crdt/site-config.ts'
import type * as Y from 'yjs'
import { putNewJob, transition, type JobRecord } from '../crdt/jobs.ts'
import { DocStore } from '../crdt/store.ts'
import type { Role } from '../crdt/license.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { generateIdentity } from '../transports/identity.ts'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import { SitePrinters, UnknownSiteError, createAdminConsole, storeChangeFeed, type SiteSettingsWriter } from '../node/printer-admin.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { rejects } from './helpers/assert.ts'
import { buildHttpApp } from '../ui/server.ts'
import type { MeshApi } from '../ui/api.ts'
import { eventsRoutes } from '../ui/routes/events.ts'
import { consoleRoutes, type ConsoleAction, type ConsoleApi, type ConsoleSite } from '../ui/routes/console.ts'

const ADMIN_TOKEN = 'printers-admin-token-8e9f0a1b'
const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` }
/** A printer address nobody answers at (loopback port 1): probes fail at once. */
const NOWHERE = 'ipp://127.0.0.1:1/ipp/print'
const ELSEWHERE = 'ipp://127.0.0.1:2/ipp/print'
const local = { kind: 'local', service: 'test' } as const
/** Replication in the in-process mesh is quick; this bounds a wait for it. */
const MESH_TIMEOUT_MS = 10_000

/** A logger whose lines the test reads (to count how often an action was applied). */
function capturingLogger (): { logger: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _enc, done) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); done() } })
  return { logger: pino({ level: 'info' }, stream), lines }
}

interface Site {
  store: DocStore
  self: PeerId
  printers: Map<string, OutputDevice>
  admin: SitePrinters
  dir: string
}

const SITE_A = siteId('site-a')

/** The site's settings as its roaming service writes them (roaming, policy and times are enough here). */
function settingsWriter (store: DocStore, site: SiteId): SiteSettingsWriter {
  const write = async (change: (d: Y.Doc) => void): Promise<void> => { await store.transact(siteConfigDoc(site), local, change) }
  const unsupported = async (): Promise<never> => { throw new Error('not in this test') }
  return {
    roaming: async (input: unknown) => { const r = validateRoaming(site, input); await write((d) => { setRoaming(d, r, Date.now()) }) },
    policy: async (input: unknown) => { const p = validatePrintPolicy(input); await write((d) => { setPrintPolicy(d, p, Date.now()) }) },
    times: async (input: unknown) => { const t = validateSiteTimes(input); await write((d) => { setSiteTimes(d, t, Date.now()) }); return readSiteSettings(store.get(siteConfigDoc(site)), site).times },
    clients: unsupported,
    terminals: unsupported
  }
}

async function sitePrinters (store: DocStore, self: PeerId, site: SiteId, dir: string, logger: Logger, roleOf: (peer: string) => Role | undefined = () => 'site', terminals?: () => Array<{ peer: string, up: boolean }>): Promise<{ printers: Map<string, OutputDevice>, admin: SitePrinters }> {
  const virtual = `file://${join(dir, 'virtual-printer')}`
  const printers = new Map<string, OutputDevice>([['virtual', createOutputDevice(virtual, { logger })]])
  const admin = new SitePrinters({ store, self, site, printers, startup: [{ name: 'virtual', uri: virtual }], defaultPrinter: 'virtual', roleOf, device: (uri) => createOutputDevice(uri, { logger }), logger, statusRefreshMs: 3_600_000, settings: settingsWriter(store, site), ...(terminals !== undefined ? { terminals, terminalRefreshMs: 50 } : {}) })
  await admin.start()
  return { printers, admin }
}

async function openSite (dir?: string): Promise<Site & { close: () => Promise<void> }> {
  const folder = dir ?? await tempDir('printmesh-printers-')
  const { signer } = await generateIdentity()
  const store = new DocStore(await LevelPersistence.open(join(folder, 'db')), signer)
  const self = signer.id as PeerId
  const { printers, admin } = await sitePrinters(store, self, SITE_A, folder, pino({ level: 'silent' }))
  return { store, self, printers, admin, dir: folder, close: async () => { await admin.stop(); await store.close() } }
}

function http (api: ConsoleApi): FastifyInstance {
  return buildHttpApp({ mesh: {} as MeshApi, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), plugins: [consoleRoutes(api), eventsRoutes({ subscribe: () => () => {} })] })
}

function job (self: PeerId, fields: Partial<JobRecord>): JobRecord {
  const now = Date.now()
  return { id: `job-${Math.random().toString(36).slice(2)}`, ippId: 1, site: SITE_A, queue: 'print', owner: 'alice', name: 'memo', state: 'held', copies: 1, sides: 'one-sided', createdAt: now, updatedAt: now, ...fields }
}

// ---- a site's printers, through the console's routes ----

test('the console\'s change feed: many open streams share one listener per emitter, each gets every family and peer change, and the last one gone leaves none', async () => {
  const store = new EventEmitter()
  const links = new EventEmitter()
  const feed = storeChangeFeed(store as unknown as DocStore, links as unknown as Parameters<typeof storeChangeFeed>[1])
  const got: string[][] = Array.from({ length: 20 }, () => [])
  const unsubscribe = got.map((g) => feed.subscribe((family) => { g.push(family) }))
  assert.equal([store.listenerCount('entry'), links.listenerCount('peer:connect'), links.listenerCount('peer:disconnect')], [1, 1, 1])
  store.emit('entry', jobsDoc('site-a' as PeerId, '2026-12'))
  links.emit('peer:connect', 'peer-x')
  for (const g of got) assert.equal(g, ['jobs', 'peers'])
  unsubscribe.slice(1).forEach((u) => u())
  links.emit('peer:disconnect', 'peer-x')
  assert.equal(got[0], ['jobs', 'peers', 'peers'])
  assert.equal(got[1], ['jobs', 'peers'], 'an ended stream hears nothing more')
  unsubscribe[0]()
  assert.equal([store.listenerCount('entry'), links.listenerCount('peer:connect'), links.listenerCount('peer:disconnect')], [0, 0, 0])
})

test('an admin adds, edits and removes printers at run time; bad input is a 400 naming the field; a busy printer a 409; kept over a restart', async () => {
  let site = await openSite()
  try {
    const api = createAdminConsole({ store: site.store, self: site.self, site: SITE_A, local: site.admin, peers: () => [] })
    const app = http(api)
    const add = await app.inject({ method: 'POST', url: '/api/console/sites/site-a/printers', headers: bearer, payload: { name: 'lobby', uri: NOWHERE, description: 'Lobby, ground floor' } })
    assert.is(add.statusCode, 200, add.body)
    assert.equal(add.json(), { status: 'applied', printer: { name: 'lobby', uri: NOWHERE, description: 'Lobby, ground floor', source: 'admin' } })
    assert.is(site.printers.get('lobby')?.uri, NOWHERE, 'in the release engine\'s printers at once')
    const shown = await app.inject({ url: '/api/console/sites/site-a/printers/lobby', headers: bearer })
    assert.equal([shown.statusCode, (shown.json() as { uri: string }).uri], [200, NOWHERE])

    const refused = async (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown): Promise<[number, string]> => {
      const res = await app.inject({ method, url, headers: bearer, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) })
      return [res.statusCode, (res.json() as { error: string }).error]
    }
    const post = async (payload: unknown): Promise<[number, string]> => await refused('POST', '/api/console/sites/site-a/printers', payload)
    const [s1, m1] = await post({ name: 'bad name', uri: NOWHERE })
    assert.is(s1, 400); assert.match(m1, /^name must be/)
    const [s2, m2] = await post({ name: 'hall', uri: 'file:///tmp/x' })
    assert.is(s2, 400); assert.match(m2, /^uri must start with ipp:\/\/ or ipps:\/\//)
    const [s3, m3] = await post({ name: 'hall' })
    assert.is(s3, 400); assert.match(m3, /^uri must be/)
    const [s4, m4] = await post({ name: 'hall', uri: NOWHERE, colour: true })
    assert.is(s4, 400); assert.match(m4, /unknown printer field "colour"/)
    const [s5, m5] = await post({ name: 'hall', uri: NOWHERE, description: 'x'.repeat(201) })
    assert.is(s5, 400); assert.match(m5, /^description must be/)
    const [s6, m6] = await post({ name: 'hall', uri: 'ipp://' })
    assert.is(s6, 400); assert.match(m6, /^uri/)
    assert.equal(await post({ name: 'lobby', uri: ELSEWHERE }), [409, 'a printer named lobby is already configured'])
    assert.equal(await refused('PATCH', '/api/console/sites/site-a/printers/nope', { description: 'x' }), [404, 'no printer named nope here'])
    assert.equal(await refused('PATCH', '/api/console/sites/site-a/printers/lobby', {}), [400, 'name uri or description to change'])
    assert.equal(await refused('DELETE', '/api/console/sites/site-a/printers/virtual'), [409, 'printer virtual is the queue\'s default printer and cannot be removed'])
    assert.is(site.printers.has('hall'), false, 'nothing refused was added')

    // a job printing on lobby: it is neither removed nor moved; its description may change
    const printing = job(site.self, { state: 'printing', printer: 'lobby' })
    const jobs = jobsDoc(site.self, periodOf(Date.now()))
    await site.store.transact(jobs, local, (d) => { putNewJob(d, printing) })
    assert.equal(await refused('DELETE', '/api/console/sites/site-a/printers/lobby'), [409, 'printer lobby has 1 job releasing or printing: wait until it ends'])
    assert.equal(await refused('PATCH', '/api/console/sites/site-a/printers/lobby', { uri: ELSEWHERE }), [409, 'printer lobby has 1 job releasing or printing: wait until it ends'])
    const edit = await app.inject({ method: 'PATCH', url: '/api/console/sites/site-a/printers/lobby', headers: bearer, payload: { description: 'Lobby (west)' } })
    assert.is(edit.statusCode, 200, edit.body)
    assert.is(site.printers.get('lobby')?.uri, NOWHERE)
    await site.store.transact(jobs, local, (d) => { transition(d, printing.id, 'printed', Date.now()) })
    assert.is((await app.inject({ method: 'PATCH', url: '/api/console/sites/site-a/printers/lobby', headers: bearer, payload: { uri: ELSEWHERE } })).statusCode, 200)
    assert.is(site.printers.get('lobby')?.uri, ELSEWHERE, 'moved once nothing prints there')
    assert.is((await app.inject({ method: 'POST', url: '/api/console/sites/site-a/printers', headers: bearer, payload: { name: 'hall', uri: NOWHERE } })).statusCode, 200)
    assert.is((await app.inject({ method: 'DELETE', url: '/api/console/sites/site-a/printers/hall', headers: bearer })).statusCode, 200)
    assert.is(site.printers.has('hall'), false)
    assert.equal(readSitePrinters(site.store.get(siteConfigDoc(SITE_A))).removed, ['hall'])
    // jobs mesh-wide: filtered and paged, bad parameters named
    await site.store.transact(jobs, local, (d) => { for (let i = 0; i < 5; i++) putNewJob(d, job(site.self, { name: `report-${i}`, owner: i % 2 === 0 ? 'alice' : 'bob', createdAt: 1000 + i })) })
    const page = async (query: string): Promise<{ jobs: Array<{ name: string }>, total: number, offset: number, limit: number }> => (await app.inject({ url: `/api/console/jobs${query}`, headers: bearer })).json()
    assert.equal(await page('?q=report&limit=2&offset=2').then((p) => [p.jobs.map((j) => j.name), p.total, p.offset, p.limit]), [['report-2', 'report-1'], 5, 2, 2])
    assert.equal((await page('?q=BOB&state=held')).jobs.map((j) => j.name), ['report-3', 'report-1'])
    assert.equal((await page('?state=printed')).jobs.map((j) => j.name), ['memo'])
    for (const [query, message] of [['?limit=0', 'limit must be a whole number from 1 to 200'], ['?state=lost', 'state must be one of'], ['?colour=red', 'unknown parameter colour']]) {
      const res = await app.inject({ url: `/api/console/jobs${query}`, headers: bearer })
      assert.is(res.statusCode, 400)
      assert.match((res.json() as { error: string }).error, message)
    }
    assert.is((await app.inject({ url: '/api/console/sites' })).statusCode, 401, 'admins only')
    assert.is((await app.inject({ url: '/api/events' })).statusCode, 401, 'live events too')
    await app.close()

    // a restart builds the printers from the start-up set and the site's document
    const dir = site.dir
    await site.close()
    site = await openSite(dir)
    assert.equal(site.admin.list().map((p) => [p.name, p.uri, p.description, p.source]), [['lobby', ELSEWHERE, 'Lobby (west)', 'admin'], ['virtual', `file://${join(dir, 'virtual-printer')}`, '', 'start-up']])
  } finally {
    await site.close()
    await rm(site.dir, { recursive: true, force: true })
  }
})

test('hold and retention times through the console: this site\'s applied at once, another site\'s a pending set-times action; bad values a 400 naming the field', async () => {
  const site = await openSite()
  try {
    // site-b known here by its document
    await site.store.transact(siteConfigDoc(siteId('site-b')), local, (d) => { setHostname(d, 'site-b.example', Date.now()) })
    const api = createAdminConsole({ store: site.store, self: site.self, site: SITE_A, local: site.admin, localSettings: settingsWriter(site.store, SITE_A), peers: () => [] })
    const app = http(api)
    const put = async (target: string, payload: unknown): Promise<{ status: number, body: Record<string, unknown> }> => {
      const res = await app.inject({ method: 'PUT', url: `/api/console/sites/${target}/settings/times`, headers: bearer, payload: payload as Record<string, unknown> })
      return { status: res.statusCode, body: res.json() }
    }
    for (const target of ['site-a', 'site-b']) {
      for (const [payload, message] of [
        [{ holdHours: 0 }, /^holdHours must be a number of hours from/],
        [{ holdHours: -2 }, /^holdHours must be/],
        [{ retentionHours: 'a week' }, /^retentionHours must be a number of hours/],
        [{ retentionHours: 24 * 367 }, /^retentionHours must be .* to 8784/],
        [{ holdHours: 24 * 32 }, /^holdHours must be .* to 744/],
        [{ holdHours: 24, hours: 1 }, /unknown time setting "hours"/],
        [{}, /^name holdHours or retentionHours/],
        [[24], /^time settings must be an object/]
      ] as Array<[unknown, RegExp]>) {
        const res = await put(target, payload)
        assert.is(res.status, 400, `${target} ${JSON.stringify(payload)}: ${JSON.stringify(res.body)}`)
        assert.match(String(res.body.error), message)
      }
    }
    assert.equal(readSiteSettings(site.store.get(siteConfigDoc(SITE_A)), SITE_A).times, {}, 'nothing refused was written')
    const here = await put('site-a', { holdHours: 12, retentionHours: 72 })
    assert.equal([here.status, here.body], [200, { status: 'applied', settings: { holdHours: 12, retentionHours: 72 } }])
    const back = await put('site-a', { holdHours: null })
    assert.equal(back.body.settings, { retentionHours: 72 }, 'null: the start-up hold again')
    const sites = (await app.inject({ url: '/api/console/sites', headers: bearer })).json() as { sites: ConsoleSite[] }
    assert.equal(sites.sites.find((s) => s.site === 'site-a')?.times, { retentionHours: 72 })
    const there = await put('site-b', { holdHours: 0.5 })
    assert.equal([there.status, there.body.status, there.body.op, there.body.settings], [202, 'pending', 'set-times', { holdHours: 0.5 }])
    await app.close()
  } finally {
    await site.close()
    await rm(site.dir, { recursive: true, force: true })
  }
})

test('GET /api/events streams one change event per burst of document changes, and ends when the server closes', async () => {
  let notify: ((family: string) => void) | undefined
  const app = buildHttpApp({ mesh: {} as MeshApi, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), plugins: [eventsRoutes({ subscribe: (fn) => { notify = fn; return () => { notify = undefined } } })] })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  let closed = false
  try {
    const res = await fetch(`${address}/api/events`, { headers: bearer })
    assert.is(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    let text = ''
    const events = (): string[] => [...text.matchAll(/event: change\ndata: (.*)\n\n/g)].map((m) => m[1])
    const read = async (count: number): Promise<void> => {
      while (events().length < count) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`stream ended after ${events().length} events: ${text}`)
        text += new TextDecoder().decode(value)
      }
    }
    // a burst of three changes in two families: one event naming both; a later change: the next event
    notify?.('jobs'); notify?.('acct'); notify?.('jobs')
    await read(1)
    notify?.('site')
    await read(2)
    assert.match(text, /^: printmesh live updates\n\n/)
    assert.equal(events().map((e) => JSON.parse(e) as unknown), [{ families: ['acct', 'jobs'] }, { families: ['site'] }])
    await app.close() // ends the stream rather than waiting for it
    closed = true
    assert.is(notify, undefined, 'unsubscribed')
    assert.is((await reader.read()).done, true)
  } finally {
    if (!closed) await app.close()
  }
})

// ---- admin actions across sites ----

let mesh: TestMesh
test.before.each(() => { mesh = new TestMesh() })
test.after.each(async () => { await mesh.teardown() })

const consoleOf = (peer: MeshPeer): ConsoleApi => createAdminConsole({ store: peer.store, self: peer.id, ...(peer.site !== undefined ? { site: peer.site } : {}), peers: () => [] })
const statusOf = (peer: MeshPeer, id: string): string | undefined => consoleOf(peer).actions().find((a) => a.id === id)?.status

test('site-b asks site-a for a printer: pending, then applied once at site-a (replayed, restarted); asked while site-a is down, applied when it is back', async () => {
  const central = await mesh.addCentral()
  let a = await mesh.addPeer('site-a', 'site', 'site-a')
  const b = await mesh.addPeer('site-b', 'site', 'site-b')
  await mesh.connect(central, a)
  await mesh.connect(central, b)
  await mesh.connect(a, b)
  await until(() => a.membership.info(b.id)?.role === 'site' && b.membership.info(a.id)?.role === 'site', MESH_TIMEOUT_MS, 'certificates known')
  const logs = capturingLogger()
  // site-a's terminal: connected to site-a, not to site-b
  const terminalUp = { value: true }
  let atA = await sitePrinters(a.store, a.id, SITE_A, a.dir, logs.logger, (p) => a.membership.info(p)?.role, () => [{ peer: 'terminal-a1-peer', up: terminalUp.value }])
  // site-b knows site-a once its site document arrived, with its printers and terminals as site-a sees them
  await atA.admin.refreshStatus()
  const siteAatB = (): ConsoleSite | undefined => consoleOf(b).sites().find((s) => s.site === 'site-a')
  await until(() => siteAatB()?.printers.some((p) => p.name === 'virtual' && p.state !== undefined) === true, MESH_TIMEOUT_MS, 'site-a known at site-b')
  await until(() => siteAatB()?.terminals[0]?.up === true, MESH_TIMEOUT_MS, 'site-a\'s terminal up, at site-b')
  assert.equal(siteAatB()?.queues, undefined, 'no queues announced by this test\'s site')
  terminalUp.value = false
  await until(() => siteAatB()?.terminals[0]?.up === false, MESH_TIMEOUT_MS, 'site-a\'s terminal down, at site-b')

  const asked = await consoleOf(b).changePrinter('site-a', { op: 'add-printer', fields: { name: 'lobby', uri: NOWHERE, description: 'Lobby' } }, 'bob') as ConsoleAction
  assert.is(asked.status, 'pending')
  assert.equal([asked.by, asked.site, asked.op, asked.printer], [b.id, 'site-a', 'add-printer', { name: 'lobby', uri: NOWHERE, description: 'Lobby' }])
  await until(() => atA.printers.has('lobby'), MESH_TIMEOUT_MS, 'applied at site-a')
  await until(() => statusOf(b, asked.id) === 'applied', MESH_TIMEOUT_MS, 'the outcome back at site-b')
  assert.is(consoleOf(b).printers().find((p) => p.site === 'site-a' && p.name === 'lobby')?.pending.length, 0)
  const outcome = actionOutcome(a.store.get(siteConfigDoc(SITE_A)), asked.id)
  assert.equal([outcome?.status, outcome?.by], ['applied', b.id])

  // site-a's own admin removes it; the action read again (another action arrives, site-a restarts) never adds it back
  await atA.admin.remove('lobby', 'admin')
  const refusedEdit = await consoleOf(b).changePrinter('site-a', { op: 'edit-printer', name: 'lobby', fields: { description: 'gone' } }, 'bob') as ConsoleAction
  await until(() => statusOf(b, refusedEdit.id) === 'refused', MESH_TIMEOUT_MS, 'the edit of a removed printer refused')
  assert.is(consoleOf(b).actions().find((a) => a.id === refusedEdit.id)?.reason, 'no printer named lobby here')
  await atA.admin.stop()
  atA = await sitePrinters(a.store, a.id, SITE_A, a.dir, logs.logger, (p) => a.membership.info(p)?.role)
  assert.is(atA.printers.has('lobby'), false, 'not added again after a restart')
  assert.is(logs.lines.filter((l) => l.msg === 'admin action applied' && l.action === asked.id).length, 1, 'applied once')

  // site-a goes down; site-b asks for a printer meanwhile: pending until site-a is back
  await atA.admin.stop()
  await a.stop()
  const whileDown = await consoleOf(b).changePrinter('site-a', { op: 'add-printer', fields: { name: 'hall', uri: NOWHERE } }, 'bob') as ConsoleAction
  assert.is(statusOf(b, whileDown.id), 'pending')
  a = await mesh.restart(a, 'site', 'site-a')
  atA = await sitePrinters(a.store, a.id, SITE_A, a.dir, logs.logger, (p) => a.membership.info(p)?.role)
  assert.is(atA.printers.has('hall'), false, 'not known before it reconnects')
  await mesh.connect(a, b)
  await until(() => atA.printers.has('hall'), MESH_TIMEOUT_MS, 'applied on reconnect')
  await until(() => statusOf(b, whileDown.id) === 'applied', MESH_TIMEOUT_MS, 'applied, at site-b')
  assert.is(logs.lines.filter((l) => l.msg === 'admin action applied' && l.action === asked.id).length, 1, 'the first action still applied once')

  // central's admins ask too
  await mesh.connect(central, a)
  const fromCentral = await consoleOf(central).changePrinter('site-a', { op: 'edit-printer', name: 'hall', fields: { description: 'Main hall' } }, 'carol') as ConsoleAction
  assert.is(fromCentral.by, central.id)
  await until(() => statusOf(central, fromCentral.id) === 'applied', MESH_TIMEOUT_MS, 'central\'s action applied')
  assert.is(atA.admin.list().find((p) => p.name === 'hall')?.description, 'Main hall')
  // settings too: site-b asks site-a to roam with it, and for a print policy
  const roam = await consoleOf(b).changeSettings('site-a', 'roaming', { partners: ['site-b'], mode: 'shared' }, 'bob') as ConsoleAction
  const policy = await consoleOf(b).changeSettings('site-a', 'policy', { forceDuplex: true }, 'bob') as ConsoleAction
  assert.equal([roam.status, roam.op, roam.settings], ['pending', 'set-roaming', { partners: ['site-b'], mode: 'shared' }])
  await until(() => statusOf(b, roam.id) === 'applied' && statusOf(b, policy.id) === 'applied', MESH_TIMEOUT_MS, 'the settings applied at site-a')
  const settingsAtA = readSiteSettings(a.store.get(siteConfigDoc(SITE_A)), SITE_A)
  assert.equal([settingsAtA.roaming, settingsAtA.policy.forceDuplex], [{ partners: ['site-b'], mode: 'shared' }, true])
  // and its hold and retention times: applied once, also when read again after a restart
  const times = await consoleOf(b).changeSettings('site-a', 'times', { holdHours: 6, retentionHours: 24 }, 'bob') as ConsoleAction
  assert.equal([times.status, times.op], ['pending', 'set-times'])
  await until(() => statusOf(b, times.id) === 'applied', MESH_TIMEOUT_MS, 'the times applied at site-a')
  assert.equal(readSiteSettings(a.store.get(siteConfigDoc(SITE_A)), SITE_A).times, { holdHours: 6, retentionHours: 24 })
  await until(() => consoleOf(b).sites().find((s) => s.site === 'site-a')?.times.holdHours === 6, MESH_TIMEOUT_MS, 'site-b shows site-a\'s new times')
  await atA.admin.stop()
  atA = await sitePrinters(a.store, a.id, SITE_A, a.dir, logs.logger, (p) => a.membership.info(p)?.role)
  assert.is(logs.lines.filter((l) => l.msg === 'admin action applied' && l.action === times.id).length, 1, 'set-times applied once')
  assert.match((await rejects(consoleOf(b).changeSettings('site-a', 'roaming', { partners: 'site-b', mode: 'shared' }, 'bob'), InvalidRequestError)).message, 'partners must be a list of site ids')
  assert.match((await rejects(consoleOf(b).changeSettings('site-a', 'colours', {}, 'bob'), InvalidRequestError)).message, 'settings kind must be one of roaming, clients, terminals, policy, times')
  // an unknown site, bad fields: refused where asked
  assert.match((await rejects(consoleOf(b).changePrinter('site-z', { op: 'remove-printer', name: 'hall' }, 'bob'), UnknownSiteError)).message, 'no site named site-z is known here')
  assert.match((await rejects(consoleOf(b).changePrinter('site-a', { op: 'add-printer', fields: { name: 'x', uri: 'smb://printer' } }, 'bob'), InvalidRequestError)).message, 'uri must start with ipp')
  await atA.admin.stop()
})

test('forged admin actions are never applied: a terminal\'s (rejected by sync), one naming another author, one from a terminal\'s document injected past sync', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'site-a')
  const b = await mesh.addPeer('site-b', 'site', 'site-b')
  const c = await mesh.addPeer('site-c', 'site', 'site-c')
  const t = await mesh.addPeer('terminal-a1', 'terminal', 'site-a')
  await mesh.connect(central, a)
  await mesh.connect(t, a)
  await mesh.connect(a, b)
  await until(() => a.membership.info(t.id) !== undefined && a.membership.info(b.id) !== undefined && a.membership.info(c.id) !== undefined, MESH_TIMEOUT_MS, 'certificates known')
  assert.ok(a.membership.canWrite(b.id, adminActionsDoc(b.id)), 'a site its own')
  assert.ok(a.membership.canWrite(central.id, adminActionsDoc(central.id)), 'central its own')
  assert.not.ok(a.membership.canWrite(b.id, adminActionsDoc(c.id)), 'a site another\'s')
  assert.not.ok(a.membership.canWrite(t.id, adminActionsDoc(t.id)), 'a terminal')
  assert.not.ok(a.membership.canRead(t.id, adminActionsDoc(b.id)), 'a terminal reads none')
  const atA = await sitePrinters(a.store, a.id, SITE_A, a.dir, pino({ level: 'silent' }), (p) => a.membership.info(p)?.role)
  const action = (by: string, name: string, id: string): AdminAction => ({ id, by, admin: 'mallory', site: 'site-a', op: 'add-printer', printer: { name, uri: NOWHERE }, at: Date.now() })

  // 1. the terminal writes an action of its own: its site refuses the envelope
  await t.store.transact(adminActionsDoc(t.id), local, (d) => { appendAdminAction(d, action(t.id, 'from-terminal', 'terminal-action-1')) })
  // 2. site-b writes an action naming site-c as its author, in its own document
  await b.store.transact(adminActionsDoc(b.id), local, (d) => { d.getMap('actions').set('framed-action-1', action(c.id, 'framed', 'framed-action-1')) })
  // a genuine action behind them, so everything before it was processed
  const genuine = action(b.id, 'genuine', 'genuine-action-1')
  await b.store.transact(adminActionsDoc(b.id), local, (d) => { appendAdminAction(d, genuine) })
  await until(() => atA.printers.has('genuine'), MESH_TIMEOUT_MS, 'the genuine action applied')
  assert.is(a.store.get(adminActionsDoc(t.id)) === undefined ? 0 : countAdminActions(a.store.get(adminActionsDoc(t.id)) as never), 0, 'the terminal\'s action never entered site-a')
  assert.ok(a.sync.getStats().rejected['not-authorized'] >= 1)
  assert.equal(listAdminActions(a.store.get(adminActionsDoc(b.id)) as never, b.id).map((x) => x.id), ['genuine-action-1'], 'the framed action is left out where read')
  assert.is(atA.printers.has('framed'), false)
  assert.is(atA.printers.has('from-terminal'), false)

  // 3. an action in a terminal's document that got past sync (a bug, a copied database): refused by its author's role
  await a.store.transact(adminActionsDoc(t.id), local, (d) => { appendAdminAction(d, action(t.id, 'injected', 'injected-action-1')) })
  await until(() => actionOutcome(a.store.get(siteConfigDoc(SITE_A)), 'injected-action-1') !== undefined, MESH_TIMEOUT_MS, 'the injected action settled')
  assert.equal(actionOutcome(a.store.get(siteConfigDoc(SITE_A)), 'injected-action-1')?.reason, 'a terminal may not ask for admin actions')
  assert.is(atA.printers.has('injected'), false)
  await atA.admin.stop()
})

test.run()
