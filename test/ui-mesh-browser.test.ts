// The admin page's mesh section in a real headless Chromium, against the HTTP layer of a
// central node (a MeshApi, no SiteApi) served in-process from an in-memory mesh: the admin
// signs in, sees no job sections, sees this node, the peers and the document sync state,
// creates a join token and copies its join string, approves a join request and revokes a
// peer. A hostile site name reported by the mesh shows as text.
//
// The screenshot goes to a temp folder that is removed afterwards; set
// PRINTMESH_SCREENSHOT_DIR to keep it (to look at the page).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import type { DocPeerState, JoinRequestView, MeshApi, MeshPeerView, MeshStatus } from '../ui/api.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'

/** Debian's chromium package. */
const CHROMIUM = '/usr/bin/chromium'
/** Headless, no sandbox (tests may run as root), and nothing that phones home. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
/** Longest wait for something to appear on the page. */
const UI_TIMEOUT_MS = 10_000
const ADMIN_TOKEN = 'adm-tok-browser-77aa88bb'
const CENTRAL = '12D3KooWCentralBrowser0000000000000000000000000000'
const SITE_A = '12D3KooWSiteABrowser000000000000000000000000000000'
const TERMINAL_A1 = '12D3KooWTerminalA1Browser0000000000000000000000000'
const CLIENT_B1 = '12D3KooWClientB1Browser00000000000000000000000000'
const NEWCOMER = '12D3KooWNewcomerBrowser00000000000000000000000000'
const JOIN_STRING = 'pmjoin1.eyJjZW50cmFsIjoiMTJEM0tvb1dDZW50cmFsIn0'
/** A site name a peer's certificate could carry: must show up as text, never run. */
const EVIL_SITE = '<img src=x onerror=window.__pwned=1>'

/** A central node's mesh: three peers, a few documents, one pending join request. */
class BrowserMesh implements MeshApi {
  readonly now = Date.now()
  readonly peers: MeshPeerView[] = [
    { peer: SITE_A, role: 'site', site: 'site-a', addresses: ['/ip4/127.0.0.1/tcp/4002'], connected: true, lastSeen: this.now, revoked: false },
    { peer: TERMINAL_A1, role: 'terminal', site: 'site-a', addresses: [], connected: true, lastSeen: this.now, revoked: false },
    { peer: CLIENT_B1, role: 'client', site: EVIL_SITE, addresses: [], connected: false, lastSeen: this.now - 3_600_000, revoked: false }
  ]

  readonly requests: JoinRequestView[] = [{ peer: NEWCOMER, role: 'site', site: 'site-b', requestedAt: this.now - 60_000 }]
  readonly tokens: Array<{ role: string, site: string }> = []

  status (): MeshStatus {
    const docs: Array<[string, DocPeerState, DocPeerState]> = [
      ['v1/license', 'in-sync', 'in-sync'],
      ['v1/directory', 'in-sync', 'behind'],
      ['v1/acct/site-a/2024-05', 'ahead', 'unknown']
    ]
    return {
      self: { peer: CENTRAL, role: 'central', authority: CENTRAL, addresses: ['/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/4001'] },
      peers: this.peers.map((p) => ({ ...p })),
      documents: docs.map(([doc, a, t]) => ({ doc, peers: { [SITE_A]: a, [TERMINAL_A1]: t } })),
      stats: { envelopesIn: 10, envelopesOut: 12, bytesIn: 2048, bytesOut: 4096, rejected: {} }
    }
  }

  blocked (): string[] { return [] }
  async setBlocked (): Promise<void> {}

  async createJoinToken (role: string, site: string): Promise<{ joinString: string, tokenId: string, expiresAt: number }> {
    this.tokens.push({ role, site })
    return { joinString: JOIN_STRING, tokenId: `tok-${this.tokens.length}`, expiresAt: this.now + 7 * 86_400_000 }
  }

  async approvalJoinString (): Promise<string> { return JOIN_STRING }

  joinRequests (): JoinRequestView[] { return this.requests.map((r) => ({ ...r })) }

  async approve (peer: string): Promise<void> {
    const r = this.requests.find((x) => x.peer === peer)
    if (r !== undefined) r.approvedAt = Date.now()
  }

  async revoke (peer: string): Promise<void> {
    const p = this.peers.find((x) => x.peer === peer)
    if (p !== undefined) Object.assign(p, { revoked: true, connected: false })
  }
}

interface World {
  mesh: BrowserMesh
  server: HttpServer
  browser: BrowserContext
  page: Page
  base: string
  profile: string
  shots: string
  keepShots: boolean
}

const world: Partial<World> = {}
let setupError: unknown
/** Uncaught errors of the page's scripts; there must be none. */
const pageErrors: string[] = []

test.before(async () => {
  try {
    world.profile = await mkdtemp(join(tmpdir(), 'printmesh-chromium-'))
    world.keepShots = process.env.PRINTMESH_SCREENSHOT_DIR !== undefined
    world.shots = process.env.PRINTMESH_SCREENSHOT_DIR ?? await mkdtemp(join(tmpdir(), 'printmesh-shots-'))
    await mkdir(world.shots, { recursive: true })
    world.mesh = new BrowserMesh()
    world.server = createHttpServer({
      mesh: world.mesh, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0
    })
    await world.server.start()
    world.base = `http://127.0.0.1:${world.server.port}`
    world.browser = await chromium.launchPersistentContext(world.profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1100, height: 800 }
    })
    world.browser.setDefaultTimeout(UI_TIMEOUT_MS)
    await world.browser.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: world.base })
    world.page = world.browser.pages()[0] ?? await world.browser.newPage()
    world.page.on('pageerror', (err) => pageErrors.push(err.message))
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  const steps: Array<[string, () => Promise<unknown>]> = [
    ['browser', async () => await world.browser?.close()],
    ['server', async () => await world.server?.stop()],
    ['profile', async () => world.profile !== undefined && await rm(world.profile, { recursive: true, force: true })],
    ['screenshots', async () => world.shots !== undefined && world.keepShots !== true && await rm(world.shots, { recursive: true, force: true })]
  ]
  const failures: string[] = []
  for (const [what, step] of steps) {
    try {
      await step()
    } catch (err) {
      failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`)
})

function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

test('on central, the admin page shows the mesh: peers, sync, join tokens, requests and revocation', async () => {
  const w = ready()
  const { page } = w
  // The release page sends central's visitors to the admin page.
  await page.goto(`${w.base}/`)
  await page.waitForURL(`${w.base}/admin`)
  await page.getByText('Central node · peer 12D3KooW…000000').waitFor()
  assert.is(await page.getByText('Release my jobs').isVisible(), false)
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Mesh', exact: true }).waitFor()
  for (const heading of ['All jobs', 'Printers', 'Accounting', 'Users']) {
    assert.is(await page.getByRole('heading', { name: heading, exact: true }).isVisible(), false, `${heading} is hidden on central`)
  }
  assert.is(await page.getByRole('link', { name: 'Jobs' }).isVisible(), false)

  // This node and the peers.
  await page.locator('#mesh-self').getByText('central', { exact: true }).waitFor()
  const peerRow = (peer: string): ReturnType<Page['locator']> => page.locator(`#mesh-peers tbody tr[data-peer="${peer}"]`)
  await peerRow(SITE_A).getByText('connected').waitFor()
  assert.equal((await peerRow(SITE_A).locator('td').allTextContents()).slice(0, 4), ['site', 'site-a', 'connected', 'valid'])
  assert.match(await peerRow(CLIENT_B1).locator('td').nth(2).textContent() ?? '', /^last seen /)
  // The hostile site name is text, and nothing ran.
  assert.is(await peerRow(CLIENT_B1).locator('td').nth(1).textContent(), EVIL_SITE)
  assert.is(await page.locator('#mesh-section img').count(), 0)
  assert.is(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined)

  // Document sync per connected peer: in sync / behind / ahead / unknown.
  assert.equal(await page.locator('#mesh-docs tbody tr').first().locator('td').allTextContents(), ['2', '0', '1', '0'])
  assert.equal(await page.locator('#mesh-docs tbody tr').nth(1).locator('td').allTextContents(), ['1', '1', '0', '1'])
  assert.match(await page.locator('#mesh-docs-summary').textContent() ?? '', /^3 documents held; 1 behind a connected peer/)

  // A join token: the join string is shown once, with a copy button.
  await page.getByLabel('Role').selectOption('terminal')
  await page.getByLabel('Site id').fill('site-a')
  await page.getByRole('button', { name: 'Create join token' }).click()
  await page.getByText('Shown only once').waitFor()
  assert.is(await page.getByLabel('Join string').inputValue(), JOIN_STRING)
  assert.equal(w.mesh.tokens, [{ role: 'terminal', site: 'site-a' }])
  await page.getByRole('button', { name: 'Copy' }).click()
  await page.getByRole('status').filter({ hasText: 'Join string copied.' }).waitFor()
  assert.is(await page.evaluate(async () => await navigator.clipboard.readText()), JOIN_STRING)
  await page.screenshot({ path: join(w.shots, 'mesh-central.png'), fullPage: true })
  await page.getByRole('button', { name: 'Done' }).click()
  assert.is(await page.getByLabel('Join string').isVisible(), false)
  assert.is(await page.getByLabel('Join string').inputValue(), '', 'the join string is gone from the page')

  // A pending join request is approved.
  await page.getByRole('button', { name: `Approve ${NEWCOMER}` }).click()
  await page.locator(`#mesh-requests tr[data-peer="${NEWCOMER}"]`).getByText(/^approved /).waitFor()
  assert.ok(w.mesh.requests[0].approvedAt !== undefined)

  // A peer is revoked, with a reason, through the dialog.
  await peerRow(TERMINAL_A1).getByRole('button', { name: `Revoke ${TERMINAL_A1}` }).click()
  const dialog = page.getByRole('dialog', { name: 'Revoke a peer' })
  await dialog.waitFor()
  await dialog.getByRole('button', { name: 'Revoke' }).click()
  await dialog.getByRole('alert').filter({ hasText: 'Give a reason' }).waitFor()
  await dialog.getByLabel('Reason').fill('terminal replaced')
  await dialog.getByRole('button', { name: 'Revoke' }).click()
  await peerRow(TERMINAL_A1).getByText('revoked', { exact: true }).waitFor()
  assert.is(await dialog.isVisible(), false)
  assert.is(await peerRow(TERMINAL_A1).getByRole('button').count(), 0, 'no revoke button on a revoked peer')
  await page.screenshot({ path: join(w.shots, 'mesh-central-after.png'), fullPage: true })
  assert.equal(pageErrors, [], 'no script errors on the page')
})

test.run()
