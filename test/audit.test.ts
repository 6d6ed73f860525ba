// The audit log (issue 16 item 6) below the processes: the family (append-only, entries naming
// their node, retention by month), who may write and read it, the sync engine replicating a
// node's entries and rejecting forged ones at every hop, and the HTTP layer's one recording hook
// (driven with fastify's inject): admin writes recorded with before/after and secrets redacted,
// nothing recorded for users, reads or a route's own refusals; refused admin attempts (a wrong
// token, the admin check's 403) recorded as refused; and GET /api/audit's filters.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import { TestMesh, type MeshPeer } from '../simulations/mesh-harness.ts'
import { until } from '../simulations/wait.ts'
import { tempDir } from '../simulations/node-process.ts'
import { auditDoc, acctDoc, isRetained, parseDocName, peerId, periodOf, AUDIT_RETENTION_MONTHS, type DocName } from '../crdt/names.ts'
import { appendAudit, listAudit, AuditEntryExistsError, InvalidAuditEntryError, type AuditEntry } from '../crdt/audit.ts'
import { seal, KIND_UPDATE, type Signer } from '../crdt/envelope.ts'
import { DocStore } from '../crdt/store.ts'
import { InvalidRequestError } from '../crdt/errors.ts'
import { LevelPersistence } from '../crdt/persistence.ts'
import { generateIdentity } from '../transports/identity.ts'
import { createAuditLog } from '../node/audit.ts'
import { buildHttpApp } from '../ui/server.ts'
import type { MeshApi } from '../ui/api.ts'
import { auditRoutes, type AuditApi, type AuditPage } from '../ui/routes/audit.ts'
import type { HttpPlugin } from '../ui/routes/plugin.ts'

const PERIOD = '2026-11'
const T0 = Date.UTC(2026, 10, 22, 9, 0, 0)
const local = { kind: 'local', service: 'test' } as const

function entry (node: string, fields: Partial<AuditEntry> = {}): AuditEntry {
  return { id: `entry-${Math.random().toString(36).slice(2, 10)}`, at: T0, node, role: 'site', site: 'site-a', actor: 'admin', via: 'token', action: 'PUT /api/roaming', target: '/api/roaming', status: 200, ...fields }
}

// ---- the family ----

test('entries are appended once by id, never replaced; malformed ones are refused', () => {
  const doc = new Y.Doc()
  const first = entry('site-a-peer', { id: 'aaaaaaaa01', before: { partners: [] }, after: { partners: ['b'] } })
  appendAudit(doc, first)
  assert.throws(() => appendAudit(doc, { ...first, actor: 'mallory' }), (e: unknown) => e instanceof AuditEntryExistsError)
  assert.equal(listAudit(doc, 'site-a-peer'), [first], 'the first entry stays as written')
  assert.throws(() => appendAudit(doc, entry('site-a-peer', { id: 'x' })), (e: unknown) => e instanceof InvalidAuditEntryError && /bad id/.test(e.message))
  assert.throws(() => appendAudit(doc, entry('site-a-peer', { actor: '' })), (e: unknown) => e instanceof InvalidAuditEntryError && /actor/.test(e.message))
  assert.throws(() => appendAudit(doc, { ...entry('site-a-peer'), via: 'magic' as 'token' }), (e: unknown) => e instanceof InvalidAuditEntryError)
})

test('an entry naming another node than its document\'s is left out where it is read', () => {
  const doc = new Y.Doc()
  appendAudit(doc, entry('site-a-peer', { id: 'aaaaaaaa02' }))
  appendAudit(doc, entry('site-b-peer', { id: 'bbbbbbbb02' })) // as a buggy or lying site-a could write it
  assert.equal(listAudit(doc, 'site-a-peer').map((e) => e.id), ['aaaaaaaa02'])
})

test('audit documents are named per writing peer and month, and leave retention whole after a year', () => {
  const name = auditDoc(peerId('site-a'), periodOf(T0))
  assert.is(name, 'v1/audit/site-a/2026-11')
  assert.equal(parseDocName(name), { family: 'audit', peer: 'site-a', period: '2026-11' })
  assert.is(parseDocName('v1/audit/site-a'), undefined)
  const now = Date.UTC(2027, 11, 5)
  assert.is(AUDIT_RETENTION_MONTHS, 13)
  assert.ok(isRetained(auditDoc(peerId('p'), '2026-11'), now, 3), '13 months old: kept')
  assert.not.ok(isRetained(auditDoc(peerId('p'), '2026-10'), now, 3), '14 months old: dropped')
  assert.ok(isRetained(acctDoc(peerId('p'), '2020-01'), now, 3), 'accounting is kept whatever its age')
})

// ---- who writes and reads, and the sync engine ----

let mesh: TestMesh
test.before.each(() => { mesh = new TestMesh() })
test.after.each(async () => { await mesh.teardown() })

async function writeAudit (peer: MeshPeer, doc: DocName, e: AuditEntry): Promise<void> {
  await peer.store.transact(doc, local, (d) => { appendAudit(d, e) })
}
const entriesAt = (peer: MeshPeer, of: MeshPeer | string): AuditEntry[] => {
  const id = typeof of === 'string' ? of : of.id
  const doc = peer.store.get(auditDoc(peerId(id), PERIOD))
  return doc === undefined ? [] : listAudit(doc, id)
}
/** Raw records of a document (what listAudit would filter), to see a forged one was never applied. */
const rawCount = (peer: MeshPeer, doc: DocName): number => peer.store.get(doc)?.getMap('audit').size ?? 0

test('only a site or central writes its own audit document; only central and sites read audit documents', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  const t = await mesh.addPeer('terminal-a1', 'terminal', 'a')
  const c = await mesh.addPeer('client-a1', 'client', 'a')
  await mesh.connect(central, a) // site-a learns the others' certificates from central's license document
  await until(() => a.membership.info(t.id) !== undefined && a.membership.info(c.id) !== undefined && a.membership.info(b.id) !== undefined, 10_000, 'certificates at site-a')
  const m = a.membership
  assert.ok(m.canWrite(a.id, auditDoc(a.id, PERIOD)), 'a site its own')
  assert.ok(m.canWrite(central.id, auditDoc(central.id, PERIOD)), 'central its own')
  assert.not.ok(m.canWrite(b.id, auditDoc(a.id, PERIOD)), 'a site another site\'s')
  assert.not.ok(m.canWrite(central.id, auditDoc(a.id, PERIOD)), 'central a site\'s')
  assert.not.ok(m.canWrite(t.id, auditDoc(t.id, PERIOD)), 'a terminal (no admins log in there)')
  assert.not.ok(m.canWrite(c.id, auditDoc(c.id, PERIOD)), 'a client')
  const stranger = (await generateIdentity()).signer.id
  assert.not.ok(m.canWrite(stranger, auditDoc(peerId(stranger), PERIOD)), 'a key without a certificate')
  assert.ok(m.canRead(central.id, auditDoc(a.id, PERIOD)))
  assert.ok(m.canRead(b.id, auditDoc(a.id, PERIOD)))
  assert.not.ok(m.canRead(t.id, auditDoc(a.id, PERIOD)), 'not the site\'s own terminal')
  assert.not.ok(m.canRead(c.id, auditDoc(a.id, PERIOD)))
})

test('a node\'s entries reach every site and central with their author; forged entries are rejected at every hop, never applied, persisted or relayed', async () => {
  const central = await mesh.addCentral()
  const a = await mesh.addPeer('site-a', 'site', 'a')
  const b = await mesh.addPeer('site-b', 'site', 'b')
  const t = await mesh.addPeer('terminal-a1', 'terminal', 'a')
  await mesh.connect(t, a)
  await mesh.connect(a, b)
  await mesh.connect(b, central)
  await until(() => a.membership.info(t.id) !== undefined && b.membership.info(a.id) !== undefined, 10_000, 'certificates known')

  const real = entry(a.id, { id: 'realentry01', actor: 'admin', action: 'PATCH /api/users/:username', target: '/api/users/bob' })
  await writeAudit(a, auditDoc(a.id, PERIOD), real)
  const fromCentral = entry(central.id, { id: 'centralent1', role: 'central', site: undefined, actor: 'admin', via: 'session' })
  delete fromCentral.site
  await writeAudit(central, auditDoc(central.id, PERIOD), fromCentral)
  await until(() => entriesAt(central, a).length === 1 && entriesAt(b, a).length === 1 && entriesAt(a, central).length === 1, 10_000, 'entries at every site and central')
  assert.equal(entriesAt(central, a), [real], 'site-a\'s entry at central as written')
  assert.equal(entriesAt(a, central), [fromCentral])
  assert.equal(entriesAt(t, a), [], 'a terminal gets no audit document')
  assert.is(t.store.get(auditDoc(a.id, PERIOD)), undefined)

  // 1. site-a writes an entry into site-b's log (signed by site-a, in site-b's document)
  await writeAudit(a, auditDoc(b.id, PERIOD), entry(b.id, { id: 'forgedbya01', actor: 'innocent-admin' }))
  // 2. site-a forges an envelope of site-b's log: site-b named as author, signed with site-a's key
  const forged = new Y.Doc()
  appendAudit(forged, entry(b.id, { id: 'forgedsig01', actor: 'framed' }))
  const badSignature = await seal({ id: b.id, sign: a.signer.sign.bind(a.signer) }, { doc: auditDoc(b.id, PERIOD), seq: 99, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(forged) })
  await a.transport.send(b.id, envelopeMessage(badSignature.bytes))
  // 3. a key the mesh never certified, writing its own log, relayed by site-a
  const stranger: Signer = (await generateIdentity()).signer
  const unknown = new Y.Doc()
  appendAudit(unknown, entry(stranger.id, { id: 'strangerent' }))
  const unknownKey = await seal(stranger, { doc: auditDoc(peerId(stranger.id), PERIOD), seq: 1, kind: KIND_UPDATE, update: Y.encodeStateAsUpdate(unknown) })
  await a.transport.send(b.id, envelopeMessage(unknownKey.bytes))
  // 4. a terminal writing an audit log of its own (no admins log in there)
  await writeAudit(t, auditDoc(t.id, PERIOD), entry(t.id, { id: 'terminalen1', role: 'terminal' }))
  // a legitimate entry behind them all, so everything before it was processed
  await writeAudit(a, auditDoc(a.id, PERIOD), entry(a.id, { id: 'markerent01' }))
  await until(() => entriesAt(central, a).length === 2 && entriesAt(b, a).length === 2, 10_000, 'the marker at site-b and central')

  assert.is(rawCount(b, auditDoc(b.id, PERIOD)), 0, 'site-b applied no forged entry of its own log')
  assert.is(rawCount(central, auditDoc(b.id, PERIOD)), 0, 'nor central')
  assert.is(b.store.get(auditDoc(peerId(stranger.id), PERIOD))?.getMap('audit').size ?? 0, 0, 'the unknown key\'s log was not taken')
  assert.is(rawCount(a, auditDoc(t.id, PERIOD)), 0, 'the terminal\'s log was not taken by its site')
  assert.is(rawCount(central, auditDoc(t.id, PERIOD)), 0, 'nor relayed to central')
  assert.ok(b.sync.getStats().rejected['not-authorized'] >= 2, 'site-b: site-a\'s write of its log, the unknown key')
  assert.is(b.sync.getStats().rejected['bad-signature'], 1, 'site-b: the envelope signed with another key')
  assert.ok(a.sync.getStats().rejected['not-authorized'] >= 1, 'site-a: the terminal\'s log')
  // not persisted either: a restarted site-b still lacks them
  await b.stop()
  const b2 = await mesh.restart(b, 'site', 'b')
  assert.is(rawCount(b2, auditDoc(b.id, PERIOD)), 0)
  assert.equal(entriesAt(b2, a).map((e) => e.id).sort(), ['markerent01', 'realentry01'])
})

/** An ENVELOPES message (crdt/PROTOCOL.md) carrying one envelope. */
function envelopeMessage (envelope: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = envelope.length
  while (n > 0x7f) { len.push((n & 0x7f) | 0x80); n >>>= 7 }
  len.push(n)
  return Uint8Array.from([1, 1, 1, ...len, ...envelope])
}

// ---- the node's log over a store, and the HTTP layer's hook ----

const ADMIN_TOKEN = 'audit-admin-token-5a6b7c8d'

/** A store of its own for the HTTP tests, and its folder to remove. */
async function openStore (): Promise<{ store: DocStore, self: string, close: () => Promise<void> }> {
  const dir = await tempDir('printmesh-audit-')
  const { signer } = await generateIdentity()
  const store = new DocStore(await LevelPersistence.open(join(dir, 'db')), signer)
  return { store, self: signer.id, close: async () => { await store.close(); await rm(dir, { recursive: true, force: true }) } }
}

/** A route family standing for any admin routes: things an admin reads and changes, and a user route. */
function thingsRoutes (): HttpPlugin {
  const things = new Map<string, Record<string, unknown>>([['printer-1', { name: 'printer-1', location: 'hall' }]])
  return {
    service: 'mesh',
    prefixes: ['/api/things'],
    register (app, { authenticate }) {
      app.get('/api/things/:id', async (request, reply) => {
        authenticate(request, 'admin')
        const thing = things.get((request.params as { id: string }).id)
        return thing === undefined ? await reply.code(404).send({ error: 'no such thing' }) : thing
      })
      app.put('/api/things/:id', async (request) => {
        authenticate(request, 'admin')
        const body = request.body as Record<string, unknown>
        if (body.location === 'nowhere') throw new InvalidRequestError('bad location')
        things.set((request.params as { id: string }).id, body)
        return body
      })
      app.delete('/api/things/:id', async (request) => {
        authenticate(request, 'admin')
        things.delete((request.params as { id: string }).id)
        return { ok: true }
      })
      app.post('/api/things/:id/pin', async (request) => {
        authenticate(request, 'admin')
        return { ok: true, joinString: 'pmjoin1.secret-join-string' }
      })
      app.post('/api/things/csv', async (request) => {
        authenticate(request, 'admin')
        return { imported: 1 }
      })
      app.post('/api/things/mine', async (request) => {
        authenticate(request, 'user')
        return { ok: true }
      })
    }
  }
}

function app (audit: AuditApi, now: () => number): FastifyInstance {
  return buildHttpApp({ mesh: {} as MeshApi, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), now, audit, plugins: [thingsRoutes(), auditRoutes(audit)] })
}
const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` }

test('every successful admin write is recorded once, with who, where, what, before and after; secrets never', async () => {
  const { store, self, close } = await openStore()
  try {
    let clock = T0
    const audit = createAuditLog({ store, self: { peer: self, role: 'site', site: 'site-a' }, now: () => clock })
    const http = app(audit, () => clock)
    assert.is((await http.inject({ method: 'PUT', url: '/api/things/printer-1', headers: bearer, payload: { name: 'printer-1', location: 'floor 2' } })).statusCode, 200)
    clock += 1000
    // an admin session (the sign-in is recorded too), with its CSRF token
    const login = await http.inject({ method: 'POST', url: '/api/login/admin', payload: { token: ADMIN_TOKEN } })
    const cookie = String(login.headers['set-cookie']).split(';')[0]
    const csrf = (login.json() as { csrfToken: string }).csrfToken
    clock += 1000
    assert.is((await http.inject({ method: 'POST', url: '/api/things/printer-1/pin', headers: { cookie, 'x-csrf-token': csrf }, payload: { pin: '2468', card: 'CAFE0001', cards: ['BEEF0002', { id: 'c1' }], note: 'reset' } })).statusCode, 200)
    clock += 1000
    assert.is((await http.inject({ method: 'DELETE', url: '/api/things/printer-1', headers: bearer })).statusCode, 200)
    clock += 1000
    assert.is((await http.inject({ method: 'POST', url: '/api/things/csv', headers: { ...bearer, 'content-type': 'text/csv' }, payload: 'username,full name,PIN\nbob,Bob,97531\n' })).statusCode, 200)
    // not recorded: a route's refusal of a write, a read, a write without credentials; a wrong token is recorded as refused (below)
    assert.is((await http.inject({ method: 'PUT', url: '/api/things/printer-2', headers: bearer, payload: { location: 'nowhere' } })).statusCode, 400)
    assert.is((await http.inject({ method: 'PUT', url: '/api/things/printer-2', headers: { authorization: 'Bearer wrong-token' }, payload: { location: 'x' } })).statusCode, 401)
    assert.is((await http.inject({ method: 'GET', url: '/api/things/printer-1', headers: bearer })).statusCode, 404)
    assert.is((await http.inject({ method: 'POST', url: '/api/things/mine' })).statusCode, 401)

    const page = (await http.inject({ url: '/api/audit?outcome=done', headers: bearer })).json() as AuditPage
    assert.equal(page.entries.map((e) => [e.action, e.target, e.actor, e.via]), [
      ['POST /api/things/csv', '/api/things/csv', 'admin', 'token'],
      ['DELETE /api/things/:id', '/api/things/printer-1', 'admin', 'token'],
      ['POST /api/things/:id/pin', '/api/things/printer-1/pin', 'admin', 'session'],
      ['POST /api/login/admin', '/api/login/admin', 'admin', 'token'],
      ['PUT /api/things/:id', '/api/things/printer-1', 'admin', 'token']
    ], 'newest first, one entry per successful admin write')
    assert.is(page.total, 5)
    const [csv, del, pin, signIn, put] = page.entries
    assert.equal([put.node, put.role, put.site, put.at, put.status], [self, 'site', 'site-a', T0, 200])
    assert.equal(put.before, { name: 'printer-1', location: 'hall' }, 'before: the resource as GET answered it')
    assert.equal(put.after, { name: 'printer-1', location: 'floor 2' }, 'after: as GET answers it afterwards')
    assert.equal(put.request, { name: 'printer-1', location: 'floor 2' })
    assert.equal(del.before, { name: 'printer-1', location: 'floor 2' })
    assert.is(del.after, undefined)
    assert.equal(pin.request, { pin: '[redacted]', card: '[redacted]', cards: ['[redacted]', { id: 'c1' }], note: 'reset' })
    assert.equal(pin.after, { ok: true, joinString: '[redacted]' }, 'a POST\'s answer, its secret replaced')
    assert.equal(signIn.request, { token: '[redacted]' })
    assert.is(csv.request, undefined, 'a CSV body (PINs, cards) is not kept')
    // refused attempts: the wrong token, and a user session at an admin route
    const user = buildHttpApp({ mesh: {} as MeshApi, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), now: () => clock, audit, plugins: [thingsRoutes(), auditRoutes(audit)], users: { authenticateUser: async (u: string, pin: string) => pin === '1357' ? { user: u, admin: false } : undefined } as never })
    const userLogin = await user.inject({ method: 'POST', url: '/api/login', payload: { username: 'dave', pin: '1357' } })
    const userCookie = String(userLogin.headers['set-cookie']).split(';')[0]
    assert.is((await user.inject({ method: 'GET', url: '/api/things/printer-1', headers: { cookie: userCookie } })).statusCode, 403)
    const refused = ((await http.inject({ url: '/api/audit?outcome=refused', headers: bearer })).json() as AuditPage).entries
    assert.equal(refused.map((e) => [e.action, e.target, e.actor, e.via, e.status, e.refused]), [
      ['GET /api/things/:id', '/api/things/printer-1', 'dave', 'session', 403, 'administrators only'],
      ['PUT /api/things/:id', '/api/things/printer-2', '(wrong token)', 'token', 401, 'invalid bearer token']
    ], 'who tried what, and why it was refused')
    const stored = JSON.stringify(listAudit(store.get(auditDoc(peerId(self), periodOf(T0))) as Y.Doc, self))
    for (const secret of ['2468', 'CAFE0001', 'BEEF0002', 'secret-join-string', ADMIN_TOKEN, '97531', csrf]) assert.not.ok(stored.includes(secret), `${secret} in the log`)
  } finally {
    await close()
  }
})

test('GET /api/audit is for admins, filters by actor, action or target, node and time, and pages newest first (limit and offset)', async () => {
  const { store, self, close } = await openStore()
  try {
    // its own entry a second after the others: entries at the same moment come in no particular order
    const audit = createAuditLog({ store, self: { peer: self, role: 'central' }, now: () => T0 + 1000 })
    // entries of other nodes, as replication brings them, over two months
    const siteA = (await generateIdentity()).signer.id
    const other = (at: number, fields: Partial<AuditEntry>): AuditEntry => entry(siteA, { at, ...fields })
    const mine = async (at: number, action: string, target: string, actor = 'admin'): Promise<void> => {
      await store.transact(auditDoc(peerId(self), periodOf(at)), local, (d) => { appendAudit(d, entry(self, { at, action, target, actor, role: 'central', site: undefined })) })
    }
    await mine(T0 - 40 * 86_400_000, 'PUT /api/prices', '/api/prices')
    await mine(T0, 'PATCH /api/users/:username', '/api/users/bob', 'carol')
    const october = T0 - 30 * 86_400_000
    // (written locally here: this store checks no author, the sync engine does)
    await store.transact(auditDoc(peerId(siteA), periodOf(october)), local, (d) => { appendAudit(d, other(october, { id: 'siteaoct01', action: 'PUT /api/roaming', target: '/api/roaming' })) })
    await audit.record({ actor: 'admin', via: 'token', action: 'DELETE /api/users/:username', target: '/api/users/Bob', status: 200 })

    const http = app(audit, () => T0)
    assert.is((await http.inject({ url: '/api/audit' })).statusCode, 401)
    const q = async (query: string): Promise<AuditPage> => {
      const res = await http.inject({ url: `/api/audit${query}`, headers: bearer })
      assert.is(res.statusCode, 200, res.body)
      return res.json() as AuditPage
    }
    const targets = (p: AuditPage): string[] => p.entries.map((e) => e.target)
    assert.equal(targets(await q('')), ['/api/users/Bob', '/api/users/bob', '/api/roaming', '/api/prices'])
    assert.equal(targets(await q('?actor=carol')), ['/api/users/bob'])
    assert.equal(targets(await q('?action=users')), ['/api/users/Bob', '/api/users/bob'], 'a part of the action or target, any case')
    assert.equal(targets(await q('?action=BOB')), ['/api/users/Bob', '/api/users/bob'])
    assert.equal(targets(await q(`?node=${siteA}`)), ['/api/roaming'])
    assert.equal(targets(await q('?node=site-a')), ['/api/roaming'], 'a site id names its nodes')
    assert.equal(targets(await q(`?since=${october}&until=${T0}`)), ['/api/roaming'], 'until exclusive')
    const one = await q('?limit=1')
    assert.equal([targets(one), one.total, one.limit], [['/api/users/Bob'], 4, 1])
    const second = await q('?limit=2&offset=2')
    assert.equal([targets(second), second.total, second.offset], [['/api/roaming', '/api/prices'], 4, 2], 'the next page')
    assert.equal(targets(await q('?offset=4')), [], 'past the last')
    assert.equal(targets(await q('?outcome=refused')), [])
    assert.equal(targets(await q('?outcome=done')).length, 4)
    for (const [query, message] of [['?outcome=maybe', /outcome/], ['?limit=0', /limit/], ['?offset=-1', /offset/], ['?offset=x', /offset/], ['?since=yesterday', /since/], ['?since=2026-12-01&until=2026-11-01', /before/], ['?who=x', /unknown query parameter/]] as const) {
      const res = await http.inject({ url: `/api/audit${query}`, headers: bearer })
      assert.is(res.statusCode, 400, query)
      assert.match(String((res.json() as { error: string }).error), message)
    }
  } finally {
    await close()
  }
})

test.run()
