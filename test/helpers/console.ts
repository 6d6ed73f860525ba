// The admin console's pages in Chromium, as the console tests visit them.
import * as assert from 'uvu/assert'
import type { TestBrowser } from './browser.ts'

/**
 * What a console test adds to its failure: what the page showed (its address, its error line
 * and the start of its main text), and `more` (e.g. its requests still unanswered); a
 * screenshot `failed-<name>` is taken too. Rethrows `err`.
 */
export async function explainConsoleFailure (browser: TestBrowser, name: string, err: unknown, more?: () => string): Promise<never> {
  const shown = await browser.page.evaluate(() => `${location.href} | error: ${document.getElementById('page-error')?.textContent ?? ''} | ${(document.querySelector('main') as HTMLElement | null)?.innerText.slice(0, 1500) ?? ''}`).catch((e: Error) => `(page not readable: ${e.message})`)
  await browser.screenshot(`failed-${name.slice(0, 20).replace(/\W+/g, '-')}`).catch(() => {})
  if (err instanceof Error) err.message += `\n  the page showed: ${shown}${more !== undefined ? `\n  ${more()}` : ''}`
  throw err
}

/** A desktop's and a phone's viewport: every console page is checked at both. */
export const WIDE = { width: 1280, height: 900 }
export const PHONE = { width: 390, height: 844 }

/**
 * Visits each console page (its hash route) at both widths: waits until it is shown and
 * marked current, screenshots it as `console-<page>-<width>-<tag>`, runs `check` on it, and
 * asserts nothing on it is wider than the screen. Leaves the wide viewport set.
 */
export async function visitConsolePages (browser: TestBrowser, pages: readonly string[], tag: string, check?: (name: string) => Promise<void>): Promise<void> {
  const page = browser.page
  for (const size of [WIDE, PHONE]) {
    await page.setViewportSize(size)
    for (const name of pages) {
      await page.evaluate((route) => { location.hash = `#/${route}` }, name)
      await page.locator(`#page[data-route="${name}"]`).waitFor()
      await page.locator(`#nav a[data-route="${name}"][aria-current="page"]`).waitFor()
      await check?.(name)
      await browser.screenshot(`console-${name}-${size.width}${tag === '' ? '' : `-${tag}`}`)
      const width = await page.evaluate(() => document.documentElement.scrollWidth)
      assert.ok(width <= size.width, `${name} at ${size.width} px is ${width} px wide`)
    }
  }
  await page.setViewportSize(WIDE)
}

/** A node's live updates as an admin's console receives them (GET /api/events), read as they arrive. */
export interface EventStream {
  /** The families of each `change` event so far, oldest first. */
  changes: () => string[][]
  /** Ends the stream (and its reading). */
  close: () => Promise<void>
}

/** Opens `node`'s event stream with its admin token; resolves once the node answered 200. */
export async function openEventStream (node: { httpUrl: string, adminToken: string }): Promise<EventStream> {
  const abort = new AbortController()
  const res = await fetch(`${node.httpUrl}/api/events`, { headers: { authorization: `Bearer ${node.adminToken}` }, signal: abort.signal })
  assert.is(res.status, 200, 'GET /api/events')
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let text = ''
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      text += decoder.decode(value, { stream: true })
    }
  })().catch(() => {}) // aborted by close()
  return {
    changes: () => [...text.matchAll(/event: change\ndata: (.*)\n\n/g)].map((m) => (JSON.parse(m[1]) as { families: string[] }).families),
    async close () {
      abort.abort()
      await reading
    }
  }
}
