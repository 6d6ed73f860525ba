// The admin page's mesh section in a real headless Chromium, against the HTTP layer of a
// central node (a MeshApi, no SiteApi) served in-process from an in-memory mesh: the admin
// signs in, sees no job sections, sees this node, the peers and the document sync state,
// creates a join token and copies its join string, approves a join request and revokes a
// peer. A hostile site name reported by the mesh shows as text.
//
// Screenshots: see helpers/browser.ts (PRINTMESH_SCREENSHOT_DIR keeps them).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import type { Page } from 'playwright-core'
import type { DocPeerState, JoinRequestView, MeshApi, MeshPeerView, MeshStatus } from '../ui/api.ts'
import { createHttpServer, type HttpServer } from '../ui/server.ts'
import { runCleanup, signInAdmin, startBrowser, type TestBrowser } from './helpers/browser.ts'

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
      documents: docs.map(([doc, a, t]) => ({ doc, peers: { [SITE_A]: a, [TERMINAL_A1]: t }, changes: 1 })),
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
  browser: TestBrowser
  base: string
}

const world: Partial<World> = {}
let setupError: unknown

test.before(async () => {
  try {
    world.mesh = new BrowserMesh()
    world.server = createHttpServer({
      mesh: world.mesh, adminToken: ADMIN_TOKEN, logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0
    })
    await world.server.start()
    world.base = `http://127.0.0.1:${world.server.port}`
    world.browser = await startBrowser({ timeoutMs: UI_TIMEOUT_MS })
    await world.browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: world.base })
  } catch (err) {
    setupError = err
  }
})

test.after(async () => {
  await runCleanup([
    ['browser', async () => await world.browser?.close()],
    ['server', async () => await world.server?.stop()]
  ])
})

/** The world, or the setup's own error (uvu would otherwise hide it). */
function ready (): World {
  if (setupError !== undefined) throw setupError
  return world as World
}

test('on central, the admin page shows the mesh: peers, sync, join tokens, requests and revocation', async () => {
  const w = ready()
  const { page } = w.browser
  // The release page sends central's visitors to the admin page.
  await page.goto(`${w.base}/`)
  await page.waitForURL(`${w.base}/admin`)
  await page.getByText('Central node · peer 12D3KooW…000000').waitFor()
  assert.is(await page.getByText('Release my jobs').isVisible(), false)
  await signInAdmin(page, ADMIN_TOKEN)
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
  await w.browser.screenshot('mesh-central')
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
  await w.browser.screenshot('mesh-central-after')
  assert.equal(w.browser.pageErrors, [], 'no script errors on the page')
})

test.run()
