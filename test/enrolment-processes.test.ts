// Enrolment anywhere (issue 15 item 4) with real processes: central, site-a with two
// terminals (each fronting an ippeveprinter), and site-b with one terminal. A user registers
// a card at a terminal's panel while central is stopped: it logs them in there at once and at
// the other terminal of their site; once central is back it is merged into central's
// directory and works at site-b's terminal too. The same card registered for two users at
// terminals of two sites while central is down is flagged at central and logs in neither
// until an admin assigns it on central's admin page. A new PIN set at the site's user page works at once at the site
// and its terminal, and at site-b's terminal once central merged it; the old PIN no longer does.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../simulations/wait.ts'
import { startCentral, startSite, startTerminal, type SiteProcess } from '../simulations/node-process.ts'
import { admin } from './helpers/node-api.ts'
import { containsBytes } from './helpers/files.ts'
import { startTerminalMesh, panelLogin, MESH_TIMEOUT_MS, type TerminalMesh, type PanelSession } from './helpers/terminal-mesh.ts'
import { runCleanup, signInAdmin, startBrowser, type CleanupStep } from './helpers/browser.ts'

const PINS = { alice: '246810', bob: '135790', carol: '112358' }
/** Longest wait for central's admin page to show something. */
const UI_TIMEOUT_MS = 20_000
/** Cards as keyboard-wedge readers type them. */
const ALICE_CARD = '04A1B2C3D4'
const DISPUTED_CARD = '0099887766'

let mesh: TerminalMesh | undefined
let siteB: SiteProcess | undefined
let t3: SiteProcess | undefined
/** Central restarted by a test (the mesh's own central process is then stopped). */
let centralNow: SiteProcess | undefined
const cleanup: CleanupStep[] = []

function m (): TerminalMesh { if (mesh === undefined) throw new Error('no mesh'); return mesh }
const t1 = (): SiteProcess => m().terminals[0].node
const t2 = (): SiteProcess => m().terminals[1].node
const b3 = (): SiteProcess => { if (t3 === undefined) throw new Error('no site-b terminal'); return t3 }
const central = (): SiteProcess => centralNow ?? m().central
const portOf = (node: SiteProcess): string => /\/tcp\/(\d+)/.exec(node.listen[0] ?? '')?.[1] ?? '0'

/** A terminal online with the directory (as startTerminalMesh waits for its own). */
async function online (node: SiteProcess): Promise<void> {
  await until(async () => {
    const status = await (await fetch(`${node.httpUrl}/api/panel/status`)).json() as { online: boolean }
    const docs = await admin<{ documents: Array<{ doc: string, peers: Record<string, string> }> }>(node, '/api/mesh')
    return status.online && docs.documents.some((d) => d.doc === 'v1/directory' && Object.values(d.peers).includes('in-sync'))
  }, MESH_TIMEOUT_MS, 'the terminal online with the directory')
}

test.before(async () => {
  mesh = await startTerminalMesh({ ...PINS }, [['--name', 'mfp-lobby'], ['--name', 'mfp-floor2']])
  const token = async (role: string, site: string): Promise<string> =>
    (await admin<{ joinString: string }>(m().central, '/api/mesh/tokens', { method: 'POST', body: { role, site } })).joinString
  siteB = await startSite({ args: ['--site', 'site-b', '--join', await token('site', 'site-b')] })
  cleanup.push(['site-b', async () => await siteB?.stop()])
  t3 = await startTerminal({ args: ['--join', await token('terminal', 'site-b'), '--name', 'mfp-b'] })
  cleanup.push(['terminal of site-b', async () => await t3?.stop()])
  await online(t3)
})

test.after(async () => {
  await runCleanup(cleanup.reverse())
  await mesh?.stop()
})

async function session (node: SiteProcess, user: keyof typeof PINS, pin: string = PINS[user]): Promise<PanelSession> {
  const { session, status, body } = await panelLogin(node, user, pin)
  if (session === undefined) throw new Error(`${user} could not log in at ${node.httpUrl} (${status} ${JSON.stringify(body)})`)
  return session
}

/** POST a JSON body as the session's user. */
async function post<T = Record<string, unknown>> (s: PanelSession, path: string, body: unknown): Promise<{ status: number, body: T }> {
  const res = await fetch(`${s.node.httpUrl}${path}`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as T }
}

/** A card login at a terminal's panel: its status and the user it logged in. */
async function cardLogin (node: SiteProcess, card: string): Promise<{ status: number, user?: string }> {
  const res = await fetch(`${node.httpUrl}/api/login/card`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card }) })
  const body = await res.json() as { user?: string }
  return { status: res.status, ...(body.user !== undefined ? { user: body.user } : {}) }
}

/** A PIN login's status (at a site's page or a terminal's panel). */
const pinLogin = async (node: SiteProcess, user: string, pin: string): Promise<number> => (await panelLogin(node, user, pin)).status

type DocStates = Array<{ doc: string, peers: Record<string, string>, changes: number }>
const changesOf = async (node: SiteProcess, doc: string): Promise<number> =>
  (await admin<{ documents: DocStates }>(node, '/api/mesh')).documents.find((x) => x.doc === doc)?.changes ?? 0
/**
 * Whether `node` received all of `doc` that its writer `from` holds. A comparison with the
 * peers' last announcements would not do: before the write reached the site, both could
 * announce the document empty, and read as in sync.
 */
async function received (node: SiteProcess, doc: string, from: SiteProcess): Promise<boolean> {
  const written = await changesOf(from, doc)
  return written > 0 && await changesOf(node, doc) >= written
}

/** Waits until central saw each node announce central's current directory (a failed card login before would count against the login limits). */
async function directoryReached (nodes: SiteProcess[], what: string): Promise<void> {
  await until(async () => {
    const d = (await admin<{ documents: DocStates }>(central(), '/api/mesh')).documents.find((x) => x.doc === 'v1/directory')
    return nodes.every((n) => d?.peers[n.peer] === 'in-sync')
  }, MESH_TIMEOUT_MS, what)
}

async function stopCentral (): Promise<string> {
  const port = portOf(central())
  await central().kill('SIGTERM')
  return port
}

async function restartCentral (port: string): Promise<void> {
  const dataDir = central().dataDir
  centralNow = await startCentral({ dataDir, args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`] })
  const restarted = centralNow
  cleanup.push(['restarted central', async () => await restarted.kill('SIGTERM')])
}

interface Conflict { id: string, claims: Array<{ user: string, at: number, by: string }>, suggested: string, resolvedTo?: string }
const conflicts = async (): Promise<Conflict[]> => (await admin<{ conflicts: Conflict[] }>(central(), '/api/enrol/conflicts')).conflicts
const cardsOf = async (user: string): Promise<number> => (await admin<{ user: { cards: unknown[] } }>(central(), `/api/users/${user}`)).user.cards.length

test('with central stopped, alice registers a card at terminal-1: it logs her in there at once and at terminal-2 of her site; back, central merges it and it logs her in at site-b\'s terminal', async () => {
  assert.is((await cardLogin(t1(), ALICE_CARD)).status, 401, 'an unknown card logs nobody in')
  const port = await stopCentral()
  const alice = await session(t1(), 'alice')
  const enrolled = await post<{ registered: boolean }>(alice, '/api/enrol/card', { card: ALICE_CARD.toLowerCase() })
  assert.equal(enrolled, { status: 200, body: { registered: true } }, 'registered while central is down')
  assert.equal(await cardLogin(t1(), ALICE_CARD), { status: 200, user: 'alice' }, 'the card logs her in at once at terminal-1')
  await until(async () => await received(t2(), `v1/enrol/${t1().peer}`, t1()), MESH_TIMEOUT_MS, 'terminal-1\'s enrolments at terminal-2 through the site')
  assert.equal(await cardLogin(t2(), ALICE_CARD), { status: 200, user: 'alice' }, 'and at terminal-2 of her site, central still down')
  for (const node of [m().central, t1(), t2(), m().site]) {
    assert.not.ok(node.logs().some((l) => l.includes(ALICE_CARD) || l.includes(ALICE_CARD.toLowerCase())), 'the card number is in no log')
    for (const card of [ALICE_CARD, ALICE_CARD.toLowerCase()]) assert.not.ok(await containsBytes(node.dataDir, card), `the card number is stored nowhere (${node.dataDir})`)
  }
  await restartCentral(port)
  await until(async () => await cardsOf('alice') === 1, MESH_TIMEOUT_MS, 'central merged the card into alice\'s record')
  await directoryReached([b3()], 'the merged directory at site-b\'s terminal')
  assert.equal(await cardLogin(b3(), ALICE_CARD), { status: 200, user: 'alice' }, 'the card logs her in at a terminal of another site')
})

test('a card registered for alice at terminal-1 and for bob at site-b\'s terminal while central is down is flagged at central and logs in neither until an admin assigns it to alice on the admin page', async () => {
  const port = await stopCentral()
  const alice = await session(t1(), 'alice')
  assert.is((await post(alice, '/api/enrol/card', { card: DISPUTED_CARD })).status, 200)
  // terminal-2 can tell the card is alice's (its site relays terminal-1's enrolments): bob is refused at once
  await until(async () => await received(t2(), `v1/enrol/${t1().peer}`, t1()), MESH_TIMEOUT_MS, 'the enrolment at terminal-2')
  const refused = await post<{ error: string }>(await session(t2(), 'bob'), '/api/enrol/card', { card: DISPUTED_CARD })
  assert.is(refused.status, 409, JSON.stringify(refused.body))
  assert.match(refused.body.error, /registered to another user/, 'the refusal says it is someone else\'s')
  assert.not.match(refused.body.error, /alice/, 'without naming whose (a user could learn who holds any card number)')
  // site-b's terminal cannot tell: it takes bob's claim, and the card works for him there meanwhile
  const bob = await session(b3(), 'bob')
  assert.equal(await post(bob, '/api/enrol/card', { card: DISPUTED_CARD }), { status: 200, body: { registered: true } })
  assert.equal(await cardLogin(b3(), DISPUTED_CARD), { status: 200, user: 'bob' })
  await restartCentral(port)
  await until(async () => (await conflicts()).some((c) => c.resolvedTo === undefined), MESH_TIMEOUT_MS, 'the conflict flagged at central')
  const [conflict] = (await conflicts()).filter((c) => c.resolvedTo === undefined)
  assert.equal(conflict.claims.map((c) => [c.user, c.by]), [['alice', t1().peer], ['bob', b3().peer]], 'both claims, the first first')
  assert.is(conflict.suggested, 'alice', 'the first enrolment is central\'s suggestion')
  assert.equal([await cardsOf('alice'), await cardsOf('bob')], [1, 0], 'the card is in neither record (alice keeps her first card)')
  await directoryReached([t1(), t2(), b3()], 'the conflict at every terminal')
  for (const node of [t1(), t2(), b3()]) assert.is((await cardLogin(node, DISPUTED_CARD)).status, 401, `the disputed card logs nobody in at ${node.httpUrl}`)
  const wrong = await fetch(`${central().httpUrl}/api/enrol/conflicts/${conflict.id}/assign`, { method: 'POST', headers: { authorization: `Bearer ${central().adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ user: 'carol' }) })
  assert.is(wrong.status, 400, 'a user who did not claim it cannot get it')
  // the admin decides on central's admin page (Users: cards claimed by two users)
  const browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
  try {
    const page = browser.page
    await page.goto(`${central().httpUrl}/admin`)
    await signInAdmin(page, central().adminToken)
    const row = page.locator(`tr[data-conflict="${conflict.id}"]`)
    await row.getByRole('button', { name: 'Give to alice (first)' }).click()
    await page.getByText('The card is alice\'s now.').waitFor()
    await row.waitFor({ state: 'detached' })
    assert.equal(browser.pageErrors, [], 'no script errors')
  } finally {
    await browser.close()
  }
  assert.equal([await cardsOf('alice'), await cardsOf('bob')], [2, 0], 'the admin gave it to alice')
  await directoryReached([t1(), b3()], 'the decision at the terminals')
  assert.equal(await cardLogin(b3(), DISPUTED_CARD), { status: 200, user: 'alice' }, 'it logs alice in, at site-b\'s terminal too')
  assert.equal(await cardLogin(t1(), DISPUTED_CARD), { status: 200, user: 'alice' })
})

test('carol sets a new PIN on site-a\'s user page: it works at once at the site and its terminal, and at site-b\'s terminal once central merged it; the old PIN no longer works', async () => {
  const NEW_PIN = '97531246'
  const updatedAt = async (): Promise<number> => (await admin<{ user: { updatedAt: number } }>(central(), '/api/users/carol')).user.updatedAt
  const before = await updatedAt()
  const carol = await session(m().site, 'carol')
  const mismatch = await post<{ error: string }>(carol, '/api/enrol/pin', { oldPin: PINS.carol, newPin: NEW_PIN, repeat: '97531240' })
  assert.is(mismatch.status, 400, 'a mistyped repetition is refused')
  const wrongOld = await post<{ error: string }>(carol, '/api/enrol/pin', { oldPin: '000000', newPin: NEW_PIN, repeat: NEW_PIN })
  assert.is(wrongOld.status, 403, 'the current PIN must be right')
  assert.equal(await post(carol, '/api/enrol/pin', { oldPin: PINS.carol, newPin: NEW_PIN, repeat: NEW_PIN }), { status: 200, body: { ok: true } })
  assert.is(await pinLogin(m().site, 'carol', NEW_PIN), 200, 'the new PIN at once at the site')
  assert.is(await pinLogin(m().site, 'carol', PINS.carol), 401, 'the old one no longer')
  await until(async () => await received(t1(), `v1/enrol/${m().site.peer}`, m().site), MESH_TIMEOUT_MS, 'the site\'s enrolments at terminal-1')
  assert.is(await pinLogin(t1(), 'carol', NEW_PIN), 200, 'the new PIN at the site\'s terminal')
  assert.is(await pinLogin(t1(), 'carol', PINS.carol), 401)
  // site-b's terminal reads no enrolment of site-a: only central's merge brings the PIN there
  await until(async () => await updatedAt() > before, MESH_TIMEOUT_MS, 'central merged the new PIN into carol\'s record')
  await directoryReached([b3()], 'the merged directory at site-b\'s terminal')
  assert.is(await pinLogin(b3(), 'carol', NEW_PIN), 200, 'the merged PIN at site-b\'s terminal')
  assert.is(await pinLogin(b3(), 'carol', PINS.carol), 401, 'the old PIN no longer works there either')
})

test.run()
