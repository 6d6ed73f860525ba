/**
 * The web pages a node serves and their files under `/web/`: the release page at `/` (a
 * site's), the admin page at `/admin` (every node), the multi-page admin console at
 * `/console` (sites and central: every site's printers and settings, live; read-only on terminals and clients), the MFP panel at `/panel` (a
 * terminal's); on a node without the release page `/` redirects to its first page. Only the files of the pages a role serves are answered; every page carries
 * a content security policy that lets it load only its own scripts and styles.
 */
import { readFile } from 'node:fs/promises'
import type { FastifyReply } from 'fastify'
import type { HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const PAGES_ROUTES = { service: 'pages', prefixes: ['/web/'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

const HTML = 'text/html; charset=utf-8'
const JS = 'text/javascript; charset=utf-8'
const CSS = 'text/css; charset=utf-8'

/** The pages, each with its path and the files it loads (by name in ui/web/, with their types). */
const PAGES = {
  release: { path: '/', html: 'index.html', files: { 'common.js': JS, 'user.js': JS, 'style.css': CSS, 'my-usage.js': JS, 'money.js': JS } },
  admin: { path: '/admin', html: 'admin.html', files: { 'common.js': JS, 'admin.js': JS, 'style.css': CSS } },
  panel: { path: '/panel', html: 'panel.html', files: { 'common.js': JS, 'panel.js': JS, 'money.js': JS, 'panel.css': CSS } },
  client: { path: '/', html: 'client.html', files: { 'common.js': JS, 'client.js': JS, 'money.js': JS, 'style.css': CSS } },
  console: { path: '/console', html: 'console.html', files: { 'common.js': JS, 'console.js': JS, 'money.js': JS, 'style.css': CSS, 'console.css': CSS } },
  reports: { path: '/reports', html: 'reports.html', files: { 'common.js': JS, 'reports.js': JS, 'credit.js': JS, 'money.js': JS, 'style.css': CSS, 'reports.css': CSS, 'uPlot.iife.min.js': JS, 'uPlot.min.css': CSS } }
} as const
export type PageName = keyof typeof PAGES

/** Pages may load only their own scripts and styles, so injected markup could not run anyway. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
const webDir = new URL('../web/', import.meta.url)
/** Files of kept libraries the pages load, served by the node itself from node_modules (no CDN): name under /web/ → file. */
const VENDOR_FILES: Record<string, URL> = {
  'uPlot.iife.min.js': new URL('../../node_modules/uplot/dist/uPlot.iife.min.js', import.meta.url),
  'uPlot.min.css': new URL('../../node_modules/uplot/dist/uPlot.min.css', import.meta.url)
}

export function pagesRoutes (pages: readonly PageName[]): HttpPlugin {
  const files = new Map<string, string>()
  for (const name of pages) {
    files.set(PAGES[name].html, HTML)
    for (const [file, type] of Object.entries(PAGES[name].files)) files.set(file, type)
  }
  async function send (reply: FastifyReply, name: string): Promise<FastifyReply> {
    const type = files.get(name)
    if (type === undefined) return await reply.code(404).send({ error: `no such file: ${name}` })
    const body = await readFile(VENDOR_FILES[name] ?? new URL(name, webDir))
    reply.type(type).header('cache-control', 'no-cache')
    if (type === HTML) reply.header('content-security-policy', CONTENT_SECURITY_POLICY)
    return await reply.send(body)
  }
  return {
    ...PAGES_ROUTES,
    register (app) {
      for (const name of pages) app.get(PAGES[name].path, async (_request, reply) => await send(reply, PAGES[name].html))
      // a node without the release page sends `/` to its first page (central: the admin console; a terminal: its panel)
      const home = pages[0]
      if (!pages.includes('release') && !pages.includes('client') && home !== undefined) app.get('/', async (_request, reply) => await reply.redirect(PAGES[home].path))
      app.get('/web/:file', async (request, reply) => await send(reply, (request.params as { file: string }).file))
    }
  }
}
