// The admin console (issue 16 item 4): a page per hash route (#/dashboard, #/sites,
// #/printers, #/jobs, #/users, #/accounts, #/peers, #/audit) over /api/console/*, /api/reports,
// /api/users, /api/admin-accounts, /api/mesh, /api/license and /api/audit, refreshed live from
// the server-sent events of /api/events (no reload; a peer connecting or disconnecting is an
// event too, so the peers page follows connections without polling). A change of another site's printers is a
// signed admin action: shown pending until that site's outcome arrives. What the signed-in
// admin's role may not change (a report viewer nothing) has no button: the server refuses it anyway.
// The users page also deletes a user (after a confirmation), imports users from a CSV file (a dry
// run's preview first, then the import, with its report and the lines in error) and, on central,
// lists the cards claimed by two users with a button per claimant (GET /api/enrol/conflicts).
// The accounts page shows a mesh admin, on central, the accounts joined sites had while
// standalone that could not be added at the join (GET /api/admin-accounts/adoptable), to adopt
// under another name or dismiss.
import { api, ApiError, h, setChildren, setCsrfToken, showMessage, showSiteInfo, adminLoginForm, formatTime, roleText, ROLE_NAMES } from './common.js'
import { costText } from './money.js'

const $ = (id) => document.getElementById(id)

/** After a change event, the page is asked again at most this often: live, without re-reading a busy mesh's jobs many times a second. */
const REFRESH_MIN_MS = 1000
/** A reconnecting event stream is retried after this (EventSource also retries itself). */
const RECONNECT_MS = 3000
/** Jobs per page of the jobs list. */
const JOBS_PAGE = 25
/** A supply at or under this percent is a problem. */
const LOW_SUPPLY_PERCENT = 10
/** Printer states that are not problems. */
const OK_STATES = new Set(['idle', 'processing'])
/** Job states the filter offers. */
const JOB_STATES = ['received', 'held', 'releasing', 'printing', 'printed', 'failed', 'deleted', 'expired']

/** Users per page of the users list: a screenful. */
const USERS_PAGE = 25
/** Audit entries per page. */
const AUDIT_PAGE = 50
/** Roles a join token may be for (the mesh API's list). */
const JOIN_ROLES = ['site', 'terminal', 'client']

const ROUTES = { dashboard: renderDashboard, sites: renderSites, printers: renderPrinters, jobs: renderJobs, users: renderUsers, accounts: renderAccounts, peers: renderPeers, audit: renderAudit }

let events
let refreshTimer
/** GET /api/session's answer: the admin's name, role (`mesh-admin` for the token) and sites. */
let session
/** /api/info's answer: this node's role and site. */
let nodeInfo
let lastRefresh = 0
let rendering = false
let again = false
/** The jobs page's filter and offset, kept across refreshes. */
const jobsView = { q: '', state: '', site: '', offset: 0 }
/** The printer being edited on the printers page (`site/name`), kept across refreshes. */
let editing
/** The printers page's last answer to a change (kept across refreshes): `{text, kind}`. */
let printerNotice = { text: '', kind: 'info' }

/** A terminal or a workstation's client: its console shows what it holds (every site's printers and settings, its site's jobs) and changes nothing. */
const lightPeer = () => nodeInfo?.role === 'terminal' || nodeInfo?.role === 'client'
/** Pages a light peer has no data for: the directory's administration and the audit log live on sites and central. */
const SERVER_ONLY_ROUTES = ['users', 'accounts', 'audit']

function route () {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0]
  return ROUTES[name] !== undefined && !(lightPeer() && SERVER_ONLY_ROUTES.includes(name)) ? name : 'dashboard'
}

// ---- what the signed-in admin may change (the server's rule, ui/server.ts enforceRole; buttons only) ----

const role = () => session?.role ?? 'mesh-admin'
/** The mesh's own administration (users, accounts, peers, license): a mesh admin or the token only. */
const mayAdministerMesh = () => !lightPeer() && role() === 'mesh-admin'
/** A site's printers and settings: a mesh admin, or a site admin of that site working on a site node of its sites. */
function mayChangeSite (site) {
  if (lightPeer()) return false
  if (role() === 'mesh-admin') return true
  if (role() !== 'site-admin') return false
  const here = nodeInfo?.site
  return nodeInfo?.role === 'site' && here !== undefined && session.sites.includes(here) && session.sites.includes(site)
}

function pageError (err) {
  if (err === undefined) { showMessage($('page-error'), ''); return }
  if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return }
  showMessage($('page-error'), err.message, 'error')
}

/** Renders the current route; a render asked while one runs runs once more after it. */
async function render () {
  if (session === undefined) return // a refresh timed before a sign-out: nothing to show
  if (rendering) { again = true; return }
  rendering = true
  lastRefresh = Date.now()
  // the session this render asks for: answered after a sign-out (a 401) or a new sign-in, it is dropped
  const asked = session
  try {
    const name = route()
    for (const a of document.querySelectorAll('#nav a[data-route]')) {
      if (a.dataset.route === name) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    }
    const view = await ROUTES[name]()
    if (session !== asked) return // signed out (or in again) meanwhile
    // a form being typed in is not replaced by a refresh
    const page = $('page')
    if (page.dataset.route === name && page.contains(document.activeElement) && document.activeElement.matches('input, select, textarea')) {
      const keep = document.activeElement.closest('form')
      if (keep !== null && view.querySelector(`form[data-form="${keep.dataset.form}"]`) !== null) {
        view.querySelector(`form[data-form="${keep.dataset.form}"]`).replaceWith(keep)
      }
    }
    page.dataset.route = name
    setChildren(page, view)
    document.title = `printmesh · ${name[0].toUpperCase()}${name.slice(1)}`
    pageError()
  } catch (err) {
    if (session === asked) pageError(err)
  } finally {
    rendering = false
    if (again) { again = false; void render() }
  }
}

function scheduleRefresh () {
  if (refreshTimer !== undefined) return
  const wait = Math.max(0, REFRESH_MIN_MS - (Date.now() - lastRefresh))
  refreshTimer = setTimeout(() => { refreshTimer = undefined; void render() }, wait)
}

// ---- live updates ----

function connectEvents () {
  events?.close()
  events = new EventSource('/api/events')
  events.addEventListener('open', () => { $('live').textContent = 'live'; $('live').classList.add('on') })
  events.addEventListener('change', () => scheduleRefresh())
  events.addEventListener('error', () => {
    $('live').textContent = 'reconnecting'
    $('live').classList.remove('on')
    if (events.readyState === EventSource.CLOSED) setTimeout(() => { if (events !== undefined) connectEvents() }, RECONNECT_MS)
  })
}

// ---- pieces ----

const table = (head, rows, empty) => rows.length === 0
  ? h('p', { class: 'muted' }, empty)
  : h('div', { class: 'table-wrap' }, h('table', { class: 'data' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))

const upDown = (up) => h('span', { class: up ? 'up' : 'down' }, up ? 'up' : 'down')

const printerProblem = (p) => {
  if (p.state === undefined) return 'no status yet'
  if (!OK_STATES.has(p.state)) return p.message !== '' && p.message !== undefined ? `${p.state}: ${p.message}` : p.state
  const reasons = (p.reasons ?? []).filter((r) => r !== 'none' && !r.endsWith('-report'))
  if (reasons.length > 0) return reasons.join(', ')
  const low = (p.markers ?? []).filter((m) => m.level >= 0 && m.level <= LOW_SUPPLY_PERCENT)
  if (low.length > 0) return `low: ${low.map((m) => `${m.name} ${m.level}%`).join(', ')}`
  return undefined
}

const stateBadge = (p) => h('span', { class: `printer-state ${p.state !== undefined && OK_STATES.has(p.state) ? 'printer-ok' : 'printer-other'}` }, p.state ?? 'unknown')

const supplies = (markers) => (markers ?? []).length === 0
  ? h('span', { class: 'muted' }, '–')
  : h('ul', { class: 'supplies' }, markers.map((m) => h('li', { class: 'supply' },
      h('meter', { min: 0, max: 100, low: LOW_SUPPLY_PERCENT + 1, value: Math.max(0, m.level), title: `${m.name}: ${m.level >= 0 ? `${m.level}%` : 'unknown'}` }), ' ', `${m.name} ${m.level >= 0 ? `${m.level}%` : '?'}`)))

const actionBadge = (a) => h('span', { class: a.status, title: a.reason ?? '' }, a.status === 'refused' ? `refused: ${a.reason ?? ''}` : a.status)

const OP_TEXT = { 'add-printer': 'add printer', 'edit-printer': 'edit printer', 'remove-printer': 'remove printer', 'set-roaming': 'change roaming', 'set-clients': 'change client settings', 'set-terminals': 'change terminal modes', 'set-policy': 'change print policy', 'set-times': 'change hold and retention times' }
/** What an action does, in words: `add printer lobby`, `change roaming`. */
const actionText = (a) => a.printer === undefined ? OP_TEXT[a.op] : `${OP_TEXT[a.op]} ${a.printer.name}`

/** `172800000` → `2 days`, `3600000` → `1 hour`. */
function duration (ms) {
  const minutes = Math.round(ms / 60_000)
  if (minutes < 60) return minutes === 1 ? '1 minute' : `${minutes} minutes`
  const hours = Math.round(ms / 3_600_000)
  if (hours >= 48 && hours % 24 === 0) return `${hours / 24} days`
  return hours === 1 ? '1 hour' : `${hours} hours`
}

function startOfToday () {
  const d = new Date()
  d.setHours(0, 0, 0, 0)
  return d.getTime()
}

// ---- dashboard ----

async function renderDashboard () {
  const [{ sites }, held, report, { actions }] = await Promise.all([
    api('GET', '/api/console/sites'),
    api('GET', '/api/console/jobs?state=held&limit=1'),
    api('GET', `/api/reports?from=${startOfToday()}`).catch(() => undefined),
    api('GET', '/api/console/actions')
  ])
  const terminals = sites.flatMap((s) => s.terminals.map((t) => ({ ...t, site: s.site })))
  const printers = sites.flatMap((s) => s.printers)
  const problems = printers.map((p) => ({ p, problem: printerProblem(p) })).filter((x) => x.problem !== undefined)
  const sitesDown = sites.filter((s) => !s.up)
  const terminalsDown = terminals.filter((t) => !t.up)
  const alerts = [
    ...sitesDown.map((s) => `Site ${s.site} is unreachable${s.lastSeen !== undefined ? ` (last seen ${formatTime(s.lastSeen)})` : ''}`),
    ...terminalsDown.map((t) => `Terminal ${t.peer.slice(0, 12)}… of ${t.site} is unreachable`),
    ...problems.map(({ p, problem }) => `Printer ${p.name} at ${p.site}: ${problem}`),
    ...actions.filter((a) => a.status === 'refused').slice(0, 5).map((a) => `${actionText(a)} at ${a.site} was refused: ${a.reason}`)
  ]
  const pending = actions.filter((a) => a.status === 'pending')
  const tile = (title, figure, bad, ...lines) => h('section', { class: 'tile', 'data-tile': title }, h('h2', {}, title), h('p', { class: `figure${bad ? ' bad' : ''}` }, String(figure)), ...lines.map((l) => h('p', { class: 'muted' }, l)))
  return h('div', {},
    h('div', { class: 'tiles' },
      tile('Sites up', `${sites.length - sitesDown.length} / ${sites.length}`, sitesDown.length > 0, sitesDown.length > 0 ? `down: ${sitesDown.map((s) => s.site).join(', ')}` : 'all reachable'),
      tile('Terminals up', `${terminals.length - terminalsDown.length} / ${terminals.length}`, terminalsDown.length > 0),
      tile('Printers with problems', problems.length, problems.length > 0, `${printers.length} printers`),
      tile('Held jobs', held.total, false),
      tile('Pages today', report?.totals.pages ?? '–', false, `${report?.totals.records ?? 0} jobs and copies`),
      tile('Cost today', report === undefined ? '–' : costText(report.totals), false),
      tile('Pending actions', pending.length, false)
    ),
    h('section', { class: 'card', 'aria-labelledby': 'alerts-title' },
      h('h2', { id: 'alerts-title' }, 'Alerts'),
      alerts.length === 0 ? h('p', { class: 'muted' }, 'Nothing needs attention.') : h('ul', { class: 'alerts' }, alerts.map((a) => h('li', {}, a)))),
    h('section', { class: 'card', 'aria-labelledby': 'problem-printers-title' },
      h('h2', { id: 'problem-printers-title' }, 'Printers with problems'),
      table(['Site', 'Printer', 'State', 'Problem', 'Supplies'], problems.map(({ p, problem }) => h('tr', {}, h('td', {}, p.site), h('td', {}, p.name), h('td', {}, stateBadge(p)), h('td', {}, problem), h('td', {}, supplies(p.markers)))), 'None.'))
  )
}

// ---- sites ----

async function renderSites () {
  const { sites } = await api('GET', '/api/console/sites')
  const facts = (pairs) => h('dl', { class: 'facts' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))
  return h('div', {}, sites.length === 0 ? h('p', { class: 'muted' }, 'No site is known here yet.') : sites.map((s) => h('section', { class: 'card site-card', 'data-site': s.site },
    h('h2', {}, s.site, upDown(s.up), s.self ? h('span', { class: 'muted' }, '(this site)') : null),
    facts([
      ['Host name', s.hostname],
      ['Queues', s.queues === undefined ? 'not announced yet' : s.queues.queues.map((q) => `${q.name} (${q.hold ? 'held for release' : 'prints at once'})`).join(', ')],
      ['Hold and retention', timesText(s)],
      ['Printers', s.printers.length === 0 ? '–' : s.printers.map((p) => p.name).join(', ')],
      ['Terminals', s.terminals.length === 0 ? '–' : `${s.terminals.filter((t) => t.up).length} up of ${s.terminals.length}`],
      ['Roaming', `${s.roaming.mode}; partners: ${s.roaming.partners.length === 0 ? 'none' : s.roaming.partners.join(', ')}`],
      ['Clients', `client spooling ${s.clients.spooling ? 'on' : 'off'}; other users ${s.clients.otherUsers ? 'allowed' : 'not allowed'}`],
      ['Terminal modes', s.terminalModes === undefined ? 'each terminal\'s own' : `${s.terminalModes.modes.join(', ')} (default ${s.terminalModes.defaultMode})`],
      ['Print policy', `${s.policy.forceDuplex ? 'two-sided' : 'as sent'}${s.policy.monoGroups.length > 0 ? `; monochrome for ${s.policy.monoGroups.join(', ')}` : ''}`]
    ]),
    mayChangeSite(s.site) ? settingsForms(s) : null,
    h('h3', {}, 'Recent admin actions'),
    table(['When', 'Action', 'By', 'Status'], s.actions.map((a) => h('tr', { 'data-action': a.id }, h('td', {}, formatTime(a.at)), h('td', {}, actionText(a)), h('td', {}, a.admin), h('td', {}, actionBadge(a)))), 'None.')
  )))
}

const HOUR_MS = 3_600_000

/** How long a site holds and keeps jobs: an admin's times, else the start-up flags it announced. */
function timesText (s) {
  const set = s.times ?? {}
  const one = (hours, startUpMs, what) => {
    const ms = hours !== undefined ? hours * HOUR_MS : startUpMs
    return ms === undefined ? `${what} as the site started` : `${what} ${duration(ms)}${hours !== undefined ? ' (set by an admin)' : ''}`
  }
  return `${one(set.holdHours, s.queues?.holdMs, 'held jobs kept')}; ${one(set.retentionHours, s.queues?.retentionMs, 'finished jobs kept')}`
}

/** The last answer to a settings change, per site (kept across refreshes). */
const settingsNotice = new Map()
/** Sites whose settings forms are open (kept across refreshes). */
const openSettings = new Set()

/** A site's roaming, print policy and hold and retention forms: applied at once here, a pending admin action for another site. */
function settingsForms (s) {
  const send = async (kind, body, what) => {
    try {
      const result = await api('PUT', `/api/console/sites/${encodeURIComponent(s.site)}/settings/${kind}`, { json: body })
      settingsNotice.set(s.site, { text: result.status === 'pending' ? `${what}: pending until ${s.site} applies it.` : `${what}: applied.`, kind: 'info' })
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return }
      settingsNotice.set(s.site, { text: err.message, kind: 'error' })
    }
    void render()
  }
  const id = (name) => `${name}-${s.site}`
  const notice = settingsNotice.get(s.site) ?? { text: '', kind: 'info' }
  const roaming = h('form', { 'data-form': `roaming-${s.site}`, onsubmit: (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    const partners = String(data.get('partners')).split(/[\s,]+/).map((p) => p.trim()).filter((p) => p !== '')
    void send('roaming', { partners, mode: String(data.get('mode')) }, 'Roaming')
  } },
  h('div', { class: 'form-grid' },
    h('div', { class: 'field' }, h('label', { for: id('mode') }, 'Roaming mode'), h('select', { id: id('mode'), name: 'mode' }, ['separate', 'shared'].map((m) => h('option', { value: m, selected: s.roaming.mode === m }, m)))),
    h('div', { class: 'field' }, h('label', { for: id('partners') }, 'Partner sites'), h('input', { id: id('partners'), name: 'partners', value: s.roaming.partners.join(', '), spellcheck: 'false' }))),
  h('button', { type: 'submit' }, 'Save roaming'))
  const policy = h('form', { 'data-form': `policy-${s.site}`, onsubmit: (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    const monoGroups = String(data.get('monoGroups')).split('\n').map((g) => g.trim()).filter((g) => g !== '')
    void send('policy', { forceDuplex: data.get('forceDuplex') === 'on', monoGroups }, 'Print policy')
  } },
  h('div', { class: 'form-grid' },
    h('div', { class: 'field inline' }, h('input', { id: id('duplex'), name: 'forceDuplex', type: 'checkbox', checked: s.policy.forceDuplex }), h('label', { for: id('duplex') }, 'Print every job two-sided')),
    h('div', { class: 'field' }, h('label', { for: id('mono') }, 'Monochrome groups (one per line)'), h('textarea', { id: id('mono'), name: 'monoGroups', rows: 2 }, s.policy.monoGroups.join('\n')))),
  h('button', { type: 'submit' }, 'Save print policy'))
  // empty: the site's start-up flag (shown as the placeholder)
  const hoursField = (name, label, startUpMs) => h('div', { class: 'field' },
    h('label', { for: id(name) }, label),
    h('input', { id: id(name), name, type: 'number', min: '0.0167', step: 'any', inputmode: 'decimal', value: s.times?.[name] ?? '', placeholder: startUpMs === undefined ? 'start-up flag' : `${startUpMs / HOUR_MS} (start-up flag)` }))
  const times = h('form', { 'data-form': `times-${s.site}`, onsubmit: (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    const hours = (name) => String(data.get(name)).trim() === '' ? null : Number(data.get(name))
    void send('times', { holdHours: hours('holdHours'), retentionHours: hours('retentionHours') }, 'Hold and retention')
  } },
  h('div', { class: 'form-grid' },
    hoursField('holdHours', 'Hold held jobs (hours)', s.queues?.holdMs),
    hoursField('retentionHours', 'Keep finished jobs (hours)', s.queues?.retentionMs)),
  h('button', { type: 'submit' }, 'Save hold and retention'))
  return h('details', { class: 'site-settings', open: openSettings.has(s.site), ontoggle: (event) => { if (event.target.open) openSettings.add(s.site); else openSettings.delete(s.site) } },
    h('summary', {}, `Change ${s.site}'s settings`),
    h('p', { class: `message${notice.kind === 'error' ? ' error' : ''}`, role: 'status', hidden: notice.text === '' }, notice.text),
    roaming, policy, times)
}

// ---- printers ----

async function changePrinter (method, path, body, message) {
  try {
    const result = await api(method, path, body === undefined ? {} : { json: body })
    printerNotice = { text: result.status === 'pending' ? `${message}: pending until the site applies it.` : `${message}: applied.`, kind: 'info' }
    return true
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return false }
    printerNotice = { text: err.message, kind: 'error' }
    void render()
    return false
  } finally {
    const el = $('printer-message')
    if (el !== null) showMessage(el, printerNotice.text, printerNotice.kind)
  }
}

async function renderPrinters () {
  const [{ sites }, { actions }] = await Promise.all([api('GET', '/api/console/sites'), api('GET', '/api/console/actions')])
  const printers = sites.flatMap((s) => s.printers)
  const path = (site, name) => `/api/console/sites/${encodeURIComponent(site)}/printers${name === undefined ? '' : `/${encodeURIComponent(name)}`}`
  const rows = printers.flatMap((p) => {
    const key = `${p.site}/${p.name}`
    const row = h('tr', { 'data-printer': key },
      h('td', {}, p.site),
      h('td', {}, h('strong', {}, p.name), p.description !== '' ? h('div', { class: 'muted' }, p.description) : null),
      h('td', {}, stateBadge(p), p.pending.length > 0 ? [' ', h('span', { class: 'pending' }, `pending ${p.pending.map((a) => OP_TEXT[a.op]).join(', ')}`)] : null),
      h('td', {}, (p.reasons ?? []).filter((r) => r !== 'none').join(', ') || '–'),
      h('td', {}, supplies(p.markers)),
      h('td', {}, h('code', {}, p.uri || '–')),
      h('td', {}, mayChangeSite(p.site) ? h('div', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => { editing = editing === key ? undefined : key; void render() } }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: async () => { if (await changePrinter('DELETE', path(p.site, p.name), undefined, `Remove ${p.name} at ${p.site}`)) void render() } }, 'Remove')) : null))
    if (editing !== key || !mayChangeSite(p.site)) return [row]
    const form = h('form', { 'data-form': `edit-${key}`, class: 'form-grid', onsubmit: async (event) => {
      event.preventDefault()
      const data = new FormData(event.target)
      const body = {}
      if (data.get('uri') !== p.uri) body.uri = data.get('uri')
      if (data.get('description') !== p.description) body.description = data.get('description')
      if (await changePrinter('PATCH', path(p.site, p.name), body, `Change ${p.name} at ${p.site}`)) { editing = undefined; void render() }
    } },
    h('div', { class: 'field' }, h('label', { for: 'edit-uri' }, 'Address'), h('input', { id: 'edit-uri', name: 'uri', value: p.uri, spellcheck: 'false' })),
    h('div', { class: 'field' }, h('label', { for: 'edit-description' }, 'Description'), h('input', { id: 'edit-description', name: 'description', value: p.description })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: () => { editing = undefined; void render() } }, 'Cancel')))
    return [row, h('tr', { class: 'edit-row' }, h('td', { colspan: 7 }, form))]
  })
  const writable = sites.filter((s) => mayChangeSite(s.site))
  const addForm = h('form', { 'data-form': 'add-printer', id: 'add-printer', onsubmit: async (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    const site = String(data.get('site'))
    const body = { name: String(data.get('name')).trim(), uri: String(data.get('uri')).trim() }
    const description = String(data.get('description')).trim()
    if (description !== '') body.description = description
    if (await changePrinter('POST', path(site), body, `Add ${body.name} at ${site}`)) { event.target.reset(); void render() }
  } },
  h('div', { class: 'form-grid' },
    h('div', { class: 'field' }, h('label', { for: 'add-site' }, 'Site'), h('select', { id: 'add-site', name: 'site' }, writable.map((s) => h('option', { value: s.site, selected: s.self }, s.site)))),
    h('div', { class: 'field' }, h('label', { for: 'add-name' }, 'Printer name'), h('input', { id: 'add-name', name: 'name', required: true, spellcheck: 'false', placeholder: 'lobby' })),
    h('div', { class: 'field' }, h('label', { for: 'add-uri' }, 'Printer address'), h('input', { id: 'add-uri', name: 'uri', required: true, spellcheck: 'false', placeholder: 'ipp://printer.example/ipp/print' })),
    h('div', { class: 'field' }, h('label', { for: 'add-description' }, 'Description'), h('input', { id: 'add-description', name: 'description', placeholder: 'Lobby, ground floor' }))),
  h('button', { type: 'submit', class: 'primary' }, 'Add printer'))
  return h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'printers-title' },
      h('h2', { id: 'printers-title' }, 'Printers of every site'),
      h('p', { id: 'printer-message', class: `message${printerNotice.kind === 'error' ? ' error' : ''}`, role: 'status', hidden: printerNotice.text === '' }, printerNotice.text),
      table(['Site', 'Printer', 'State', 'Reasons', 'Supplies', 'Address', ''], rows, 'No printers known yet.')),
    writable.length === 0 ? null : h('section', { class: 'card', 'aria-labelledby': 'add-printer-title' }, h('h2', { id: 'add-printer-title' }, 'Add a printer'), addForm),
    h('section', { class: 'card', 'aria-labelledby': 'actions-title' },
      h('h2', { id: 'actions-title' }, 'Changes asked from here'),
      table(['When', 'Site', 'Action', 'By', 'Status'], actions.slice(0, 50).map((a) => h('tr', { 'data-action': a.id }, h('td', {}, formatTime(a.at)), h('td', {}, a.site), h('td', {}, actionText(a)), h('td', {}, a.admin), h('td', {}, actionBadge(a)))), 'None yet: changes of this node\'s own printers apply at once; other sites\' are listed here until they apply them.'))
  )
}

// ---- jobs ----

async function renderJobs () {
  const params = new URLSearchParams({ offset: String(jobsView.offset), limit: String(JOBS_PAGE) })
  for (const k of ['q', 'state', 'site']) if (jobsView[k] !== '') params.set(k, jobsView[k])
  const [page, { sites }] = await Promise.all([api('GET', `/api/console/jobs?${params}`), api('GET', '/api/console/sites')])
  const filter = h('form', { class: 'filters', 'data-form': 'job-filter', onsubmit: (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    jobsView.q = String(data.get('q')).trim()
    jobsView.state = String(data.get('state'))
    jobsView.site = String(data.get('site'))
    jobsView.offset = 0
    void render()
  } },
  h('div', { class: 'field inline' }, h('label', { for: 'job-q' }, 'Search'), h('input', { id: 'job-q', name: 'q', value: jobsView.q, placeholder: 'name, user or printer' })),
  h('div', { class: 'field inline' }, h('label', { for: 'job-state' }, 'State'), h('select', { id: 'job-state', name: 'state' }, h('option', { value: '' }, 'any'), JOB_STATES.map((s) => h('option', { value: s, selected: jobsView.state === s }, s)))),
  h('div', { class: 'field inline' }, h('label', { for: 'job-site' }, 'Site'), h('select', { id: 'job-site', name: 'site' }, h('option', { value: '' }, 'any'), sites.map((s) => h('option', { value: s.site, selected: jobsView.site === s.site }, s.site)))),
  h('button', { type: 'submit' }, 'Filter'))
  const from = page.total === 0 ? 0 : page.offset + 1
  const to = Math.min(page.offset + page.jobs.length, page.total)
  const move = (offset) => () => { jobsView.offset = Math.max(0, offset); void render() }
  return h('section', { class: 'card', 'aria-labelledby': 'jobs-title' },
    h('h2', { id: 'jobs-title' }, 'Jobs of the whole mesh'),
    filter,
    table(['Created', 'Job', 'Owner', 'State', 'Site', 'Printer', 'Pages'], page.jobs.map((j) => h('tr', { 'data-job-id': j.id },
      h('td', {}, formatTime(j.createdAt)), h('td', {}, j.name), h('td', {}, j.owner), h('td', {}, h('span', { class: `state state-${j.state}` }, j.state)),
      h('td', {}, j.site, j.printedAt !== undefined && j.printedAt !== j.site ? h('div', { class: 'muted' }, `printed at ${j.printedAt}`) : null),
      h('td', {}, j.printer ?? '–'), h('td', {}, j.pages === undefined ? '–' : String(j.pages * j.copies)))), 'No jobs match.'),
    h('div', { class: 'pager' },
      h('button', { type: 'button', disabled: page.offset === 0, onclick: move(page.offset - JOBS_PAGE) }, 'Previous'),
      h('span', { id: 'jobs-range' }, `${from}–${to} of ${page.total}`),
      h('button', { type: 'button', disabled: to >= page.total, onclick: move(page.offset + JOBS_PAGE) }, 'Next')))
}

// ---- pieces of the administration pages ----

/** The last answer to a change, per page (kept across refreshes, cleared on a page change): `{text, kind}`. */
const notices = {}

/** A page's notice line: what the last change did, or why it was refused. */
const noticeLine = (key) => {
  const n = notices[key] ?? { text: '', kind: 'info' }
  return h('p', { id: `${key}-message`, class: `message${n.kind === 'error' ? ' error' : ''}`, role: 'status', hidden: n.text === '' }, n.text)
}

/**
 * Runs one change (`fn`, which also closes the form it came from once it worked), then says how
 * it went on the page's notice line (`done` is the text, or made from the answer) and renders
 * again; a refusal is shown there (the form stays open), an ended session signs out. Resolves
 * with whether it worked.
 */
async function change (key, fn, done) {
  try {
    const result = await fn()
    notices[key] = { text: typeof done === 'function' ? done(result) : done, kind: 'info' }
    return true
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return false }
    notices[key] = { text: err.message, kind: 'error' }
    return false
  } finally {
    const el = $(`${key}-message`)
    if (el !== null && notices[key] !== undefined) showMessage(el, notices[key].text, notices[key].kind)
    if (session !== undefined) void render()
  }
}

/** A labelled input (or `select`, `textarea` with `tag`). */
const field = (id, label, props = {}, tag = 'input', ...children) => h('div', { class: 'field' }, h('label', { for: id }, label), h(tag, { id, name: id, ...props }, ...children))

/** `a; b, c` → `['a', 'b', 'c']`. */
const list = (text) => String(text ?? '').split(/[;,]/).map((g) => g.trim()).filter((g) => g !== '')

/** Previous / next buttons and the range shown, for a page of `shown` rows from `offset` of `total`. */
function pager (id, offset, shown, total, size, move, last = total) {
  const from = total === 0 ? 0 : offset + 1
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: offset === 0, onclick: () => move(Math.max(0, offset - size)) }, 'Previous'),
    h('span', { id }, `${from}–${offset + shown} of ${total}`),
    h('button', { type: 'button', disabled: offset + size >= Math.min(total, last), onclick: () => move(offset + size) }, 'Next'))
}

const shortPeer = (peer) => peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer

// ---- users ----

/** The users page's search and first row shown, and the user whose edit or PIN form is open. */
const usersView = { q: '', offset: 0 }
let userPanel

const userPath = (username, more) => `/api/users/${encodeURIComponent(username)}${more === undefined ? '' : `/${more}`}`

async function renderUsers () {
  const params = new URLSearchParams({ offset: String(usersView.offset), limit: String(USERS_PAGE) })
  if (usersView.q !== '') params.set('q', usersView.q)
  const [page, sites, conflicts] = await Promise.all([
    api('GET', `/api/users?${params}`),
    api('GET', '/api/console/sites').then((r) => r.sites.map((s) => s.site), () => []),
    cardConflicts()
  ])
  if (page.users.length === 0 && page.total > 0 && usersView.offset > 0) {
    // the last page emptied (users deleted elsewhere): show the one before
    usersView.offset = Math.max(0, usersView.offset - USERS_PAGE)
    return await renderUsers()
  }
  const may = mayAdministerMesh()
  const siteList = h('datalist', { id: 'known-sites' }, sites.map((s) => h('option', { value: s })))
  const rows = page.users.flatMap((u) => {
    const row = h('tr', { 'data-user': u.username },
      h('th', { scope: 'row' }, u.username),
      h('td', {}, u.fullName, u.email !== undefined ? h('div', { class: 'muted' }, u.email) : null),
      h('td', {}, u.homeSite ?? '–'),
      h('td', {}, u.groups.length === 0 ? '–' : u.groups.join(', ')),
      h('td', {}, h('span', { class: `state ${u.disabled ? 'state-failed' : 'state-printed'}` }, u.disabled ? 'disabled' : 'active')),
      h('td', {}, u.cards.length === 0 ? 'none' : u.cards.length === 1 ? 'set' : `${u.cards.length} set`),
      h('td', {}, may ? h('div', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => { userPanel = userPanel?.username === u.username && userPanel.kind === 'edit' ? undefined : { username: u.username, kind: 'edit' }; void render() } }, 'Edit'),
        h('button', { type: 'button', onclick: () => { void change('users', async () => await api('PATCH', userPath(u.username), { json: { disabled: !u.disabled } }), `${u.username} is ${u.disabled ? 'enabled again' : 'disabled: no login by PIN or card'}.`) } }, u.disabled ? 'Enable' : 'Disable'),
        h('button', { type: 'button', onclick: () => { userPanel = userPanel?.username === u.username && userPanel.kind === 'pin' ? undefined : { username: u.username, kind: 'pin' }; void render() } }, 'Reset PIN'),
        h('button', { type: 'button', class: 'danger', onclick: () => { userPanel = userPanel?.username === u.username && userPanel.kind === 'delete' ? undefined : { username: u.username, kind: 'delete' }; void render() } }, 'Delete')) : null))
    if (!may || userPanel?.username !== u.username) return [row]
    return [row, h('tr', { class: 'edit-row' }, h('td', { colspan: 7 }, userPanel.kind === 'edit' ? editUserForm(u) : userPanel.kind === 'delete' ? deleteUserForm(u) : pinForm(u)))]
  })
  const search = h('form', { class: 'filters', 'data-form': 'user-search', onsubmit: (event) => {
    event.preventDefault()
    usersView.q = String(new FormData(event.target).get('q')).trim()
    usersView.offset = 0
    void render()
  } },
  h('div', { class: 'field inline' }, h('label', { for: 'user-q' }, 'Search'), h('input', { id: 'user-q', name: 'q', type: 'search', value: usersView.q, placeholder: 'name, username or group' })),
  h('button', { type: 'submit' }, 'Search'))
  return h('div', {}, siteList,
    h('section', { class: 'card', 'aria-labelledby': 'users-title' },
      h('h2', { id: 'users-title' }, 'Users of the directory'),
      noticeLine('users'),
      search,
      table(['Username', 'Full name', 'Home site', 'Groups', 'State', 'Card', ''], rows, usersView.q === '' ? 'No users yet.' : `No user matches “${usersView.q}”.`),
      pager('users-range', page.offset, page.users.length, page.total, USERS_PAGE, (offset) => { usersView.offset = offset; void render() })),
    conflicts === undefined ? null : conflictsSection(conflicts, may),
    may ? h('section', { class: 'card', 'aria-labelledby': 'add-user-title' }, h('h2', { id: 'add-user-title' }, 'Add a user'), addUserForm()) : null,
    may ? importSection() : null)
}

/** The confirmation of a user's deletion: nothing is deleted until it is confirmed. */
function deleteUserForm (u) {
  return h('form', { 'data-form': `delete-user-${u.username}`, class: 'confirm', onsubmit: async (event) => {
    event.preventDefault()
    await change('users', async () => { await api('DELETE', userPath(u.username)); userPanel = undefined }, `Deleted ${u.username}.`)
  } },
  h('p', {}, h('strong', {}, `Delete ${u.username} (${u.fullName})?`), ' They can no longer log in or print, at any site; their jobs and usage records stay. This cannot be undone.'),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'danger' }, `Delete ${u.username}`), h('button', { type: 'button', onclick: () => { userPanel = undefined; void render() } }, 'Cancel')))
}

// ---- card conflicts (central): a card registered for two users while their terminals could not reach central ----

/** Central's card conflicts, undecided first, each with the peers its claims came from; undefined where the node has none to give (404: not central). */
async function cardConflicts () {
  let conflicts
  try {
    ({ conflicts } = await api('GET', '/api/enrol/conflicts'))
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined
    throw err
  }
  if (conflicts.length === 0) return conflicts
  // which peer each claim came from, in words (a peer the mesh no longer lists keeps its id)
  const peers = await api('GET', '/api/mesh').then((m) => new Map(m.peers.map((p) => [p.peer, p])), () => new Map())
  return conflicts.map((c) => ({ ...c, claims: c.claims.map((k) => ({ ...k, peer: peers.get(k.by) })) }))
}

/** Where a claim was made: a terminal of a site, or the directory itself (a card an admin or an import gave). */
function claimText (k) {
  if (k.by === 'directory') return 'held in the directory before (added by an admin or an import)'
  const where = k.peer === undefined ? 'at peer ' : `at ${k.peer.role ?? 'peer'}${k.peer.site !== undefined ? ` of ${k.peer.site}` : ''} `
  return [`registered ${formatTime(k.at)} ${where}`, h('code', { title: k.by }, shortPeer(k.by))]
}

/** A conflict: its claims, oldest first, and a button per claimant (the first claimant's marked as central's suggestion) while undecided. */
function conflictItem (c, may) {
  const users = [...new Set(c.claims.map((k) => k.user))]
  return h('li', { class: 'conflict', 'data-conflict': c.id, 'data-resolved-to': c.resolvedTo },
    h('p', {}, 'Card ', h('code', {}, c.id), ` flagged ${formatTime(c.at)}`),
    h('ul', { class: 'claims' }, c.claims.map((k) => h('li', { 'data-claim': k.user }, h('strong', {}, k.user), k.user === c.suggested ? ' (first claim)' : '', ': ', claimText(k)))),
    c.resolvedTo !== undefined
      ? h('p', {}, h('span', { class: 'state state-printed' }, `given to ${c.resolvedTo}`), c.resolvedBy !== undefined ? ` by ${c.resolvedBy}` : '')
      : may ? h('div', { class: 'buttons' }, users.map((user) => h('button', { type: 'button', class: user === c.suggested ? 'primary' : undefined, onclick: () => {
        void change('users', async () => await api('POST', `/api/enrol/conflicts/${encodeURIComponent(c.id)}/assign`, { json: { user } }), `The card is ${user}'s now: it logs them in wherever the directory has arrived.`)
      } }, `Give to ${user}`, user === c.suggested ? ' (suggested)' : ''))) : null)
}

/** Whether the decided conflicts are unfolded (kept across refreshes). */
let decidedOpen = false

function conflictsSection (conflicts, may) {
  const open = conflicts.filter((c) => c.resolvedTo === undefined)
  const decided = conflicts.filter((c) => c.resolvedTo !== undefined).sort((a, b) => b.at - a.at)
  return h('section', { class: 'card', id: 'card-conflicts', 'aria-labelledby': 'conflicts-title' },
    h('h2', { id: 'conflicts-title' }, 'Cards claimed by two users'),
    h('p', { class: 'muted' }, 'A card claimed by two users (registered at a terminal that could not reach central while it was another user\'s) logs in neither of them until it is given to one.'),
    open.length === 0 ? h('p', { class: 'muted', id: 'no-conflicts' }, 'No card waits for a decision.') : h('ul', { class: 'conflicts', id: 'open-conflicts' }, open.map((c) => conflictItem(c, may))),
    decided.length === 0 ? null : h('details', { class: 'decided-conflicts', open: decidedOpen, ontoggle: (event) => { decidedOpen = event.target.open } }, h('summary', {}, `Decided (${decided.length})`), h('ul', { class: 'conflicts', id: 'decided-conflicts' }, decided.map((c) => conflictItem(c, may)))))
}

// ---- CSV import ----

/**
 * The users page's import (kept across refreshes, forgotten when the page changes): the file's
 * `name` and text, then `busy` (`checking` or `importing`) while the API works, then the dry
 * run's report (`preview`), the import's (`result`) or why it was refused (`error`).
 */
let importState

/** How the import report's field names read on the page. */
const FIELD_LABELS = { fullName: 'full name', homeSite: 'home site', pin: 'PIN', card: 'card', email: 'email', groups: 'groups' }

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

function importSection () {
  return h('section', { class: 'card', id: 'import-section', 'aria-labelledby': 'import-title' },
    h('h2', { id: 'import-title' }, 'Import users from a CSV file'),
    h('p', { class: 'muted' }, 'One user per line: ', h('code', {}, 'username,full name,PIN[,card]'), ', or a first line naming the columns: ',
      h('code', {}, 'username,full name,PIN,card,email,groups,home site'), ' (groups separated by ;, an empty cell keeps the current value). Existing users are updated. A file with a line in error imports nothing; you see what would change, and each line in error, before anything is written.'),
    h('form', { 'data-form': 'import-users', onsubmit: (event) => event.preventDefault() },
      field('import-file', importState === undefined ? 'CSV file' : 'Another CSV file', { type: 'file', accept: '.csv,text/csv', disabled: importState?.busy !== undefined, onchange: (event) => { void chooseImportFile(event.target) } })),
    h('div', { id: 'import-panel' }, importPanel()))
}

/** Shows the import's state at once (a render also builds it from the state). */
function showImport () {
  const el = $('import-panel')
  if (el !== null) setChildren(el, importPanel())
  const input = $('import-file')
  if (input !== null) input.disabled = importState?.busy !== undefined
}

async function chooseImportFile (input) {
  const file = input.files[0]
  if (file === undefined) return
  const csv = await file.text()
  input.value = '' // the same file may be chosen again after a change to it
  if (csv.trim() === '') { importState = { name: file.name, csv, error: 'the file is empty.' }; showImport(); return }
  await runImport({ name: file.name, csv }, true)
}

/** Sends the file as a dry run (the preview) or for real, showing progress meanwhile, then what it did or would do. */
async function runImport (source, dryRun) {
  const run = { ...source, busy: dryRun ? 'checking' : 'importing' }
  importState = run
  showImport()
  let next
  try {
    const report = await api('POST', `/api/users/import${dryRun ? '?dryRun=1' : ''}`, { csv: source.csv })
    next = { ...source, [dryRun ? 'preview' : 'result']: report }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return }
    next = { ...source, error: `${dryRun ? 'the preview' : 'the import'} failed: ${err.message}` }
  }
  if (importState !== run) return // the admin left the page meanwhile
  importState = next
  showImport()
  if (!dryRun) void render() // the list shows the imported users
}

function importReportList (report) {
  const would = report.dryRun
  const items = [
    ...(report.added.length > 0 ? [h('li', {}, `${would ? 'Would add' : 'Added'}: ${report.added.join(', ')}`)] : []),
    ...report.changed.map((c) => h('li', {}, `${would ? 'Would change' : 'Changed'} ${c.username}: ${c.fields.map((f) => FIELD_LABELS[f] ?? f).join(', ')}`)),
    ...report.errors.map((e) => h('li', { class: 'error', 'data-line': e.line }, `Line ${e.line}: ${e.message}`))
  ]
  return items.length === 0 ? null : h('ul', { class: 'preview', id: 'import-report' }, items)
}

function importPanel () {
  const s = importState
  if (s === undefined) return null
  const done = () => { importState = undefined; void render() }
  if (s.busy !== undefined) {
    const what = s.busy === 'checking' ? `Checking ${s.name}: nothing is written yet…` : `Importing ${s.name}…`
    return h('div', { id: 'import-progress', class: 'import-progress', role: 'status' }, h('progress', { 'aria-label': what }), h('span', {}, what))
  }
  if (s.error !== undefined) {
    return [h('p', { id: 'import-status', class: 'message error', role: 'alert' }, `${s.name}: ${s.error}`), h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: done }, 'Dismiss'))]
  }
  const report = s.result ?? s.preview
  // the import is all or nothing: a file with a line in error writes nothing (the API refuses it)
  const errors = report.errors.length === 0 ? '' : `; ${plural(report.errors.length, 'line')} in error${s.result === undefined ? ': nothing can be imported until they are corrected (choose the corrected file)' : ''}`
  if (s.result !== undefined) {
    return [
      h('p', { id: 'import-status', class: `message${report.errors.length > 0 ? ' error' : ''}`, role: 'status' },
        `Imported ${plural(report.imported, 'user')} from ${s.name}: ${report.added.length} added, ${report.changed.length} changed, ${report.unchanged.length} unchanged${errors}.`),
      importReportList(report),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: done }, 'Done'))]
  }
  const count = report.added.length + report.changed.length
  return [
    h('p', { id: 'import-status', class: `message${report.errors.length > 0 ? ' error' : ''}`, role: 'status' },
      `Preview of ${s.name}, nothing written yet: would add ${report.added.length}, change ${report.changed.length}, leave ${report.unchanged.length} unchanged${errors}.`),
    importReportList(report),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'primary', disabled: count === 0 || report.errors.length > 0, onclick: () => { void runImport({ name: s.name, csv: s.csv }, false) } },
        report.errors.length > 0 ? 'Correct the lines in error first' : count === 0 ? 'Nothing to import' : `Import ${plural(count, 'user')}`),
      h('button', { type: 'button', onclick: done }, 'Cancel'))]
}

function addUserForm () {
  return h('form', { 'data-form': 'add-user', onsubmit: async (event) => {
    event.preventDefault()
    const form = event.target
    const data = new FormData(form)
    const get = (name) => String(data.get(name)).trim()
    const body = { username: get('new-username'), fullName: get('new-fullname'), pin: String(data.get('new-pin')) }
    if (get('new-email') !== '') body.email = get('new-email')
    if (list(get('new-groups')).length > 0) body.groups = list(get('new-groups'))
    if (get('new-homesite') !== '') body.homeSite = get('new-homesite')
    form.elements['new-pin'].value = '' // a PIN never stays in the form
    if (await change('users', async () => await api('POST', '/api/users', { json: body }), `Added ${body.username}.`)) form.reset()
  } },
  h('div', { class: 'form-grid' },
    field('new-username', 'Username', { required: true, spellcheck: 'false', autocapitalize: 'none', autocomplete: 'off' }),
    field('new-fullname', 'Full name', { required: true, autocomplete: 'off' }),
    field('new-pin', 'PIN (4 to 12 digits)', { required: true, type: 'password', inputmode: 'numeric', autocomplete: 'new-password' }),
    field('new-email', 'Email', { type: 'email', autocomplete: 'off' }),
    field('new-groups', 'Groups (a; b)', { autocomplete: 'off' }),
    field('new-homesite', 'Home site', { list: 'known-sites', autocomplete: 'off' })),
  h('button', { type: 'submit', class: 'primary' }, 'Add user'))
}

function editUserForm (u) {
  return h('form', { 'data-form': `edit-user-${u.username}`, class: 'form-grid', onsubmit: async (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    const get = (name) => String(data.get(name)).trim()
    const patch = {}
    if (get('edit-fullname') !== u.fullName) patch.fullName = get('edit-fullname')
    if (get('edit-email') !== (u.email ?? '')) patch.email = get('edit-email') === '' ? null : get('edit-email')
    if (get('edit-homesite') !== (u.homeSite ?? '')) patch.homeSite = get('edit-homesite') === '' ? null : get('edit-homesite')
    if (list(get('edit-groups')).join(';') !== u.groups.join(';')) patch.groups = list(get('edit-groups'))
    if (Object.keys(patch).length === 0) { userPanel = undefined; void render(); return }
    await change('users', async () => { await api('PATCH', userPath(u.username), { json: patch }); userPanel = undefined }, `Saved ${u.username}.`)
  } },
  field('edit-fullname', 'Full name', { value: u.fullName, required: true }),
  field('edit-email', 'Email', { type: 'email', value: u.email ?? '' }),
  field('edit-groups', 'Groups (a; b)', { value: u.groups.join('; ') }),
  field('edit-homesite', 'Home site', { value: u.homeSite ?? '', list: 'known-sites' }),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: () => { userPanel = undefined; void render() } }, 'Cancel')))
}

function pinForm (u) {
  return h('form', { 'data-form': `pin-${u.username}`, class: 'form-grid', onsubmit: async (event) => {
    event.preventDefault()
    const input = event.target.elements['reset-pin']
    const pin = input.value
    input.value = '' // a PIN never stays in the form
    await change('users', async () => { await api('POST', userPath(u.username, 'pin'), { json: { pin } }); userPanel = undefined }, `New PIN set for ${u.username}.`)
  } },
  field('reset-pin', `New PIN for ${u.username}`, { type: 'password', inputmode: 'numeric', autocomplete: 'new-password', required: true }),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Set PIN'), h('button', { type: 'button', onclick: () => { userPanel = undefined; void render() } }, 'Cancel')))
}

// ---- admin accounts ----

/** The account whose password form is open; the authenticator being set up (`{username, uri}`); the rotated token, shown once. */
let passwordFor
let totpEnrol
let rotatedToken

const accountPath = (username, more) => `/api/admin-accounts/${encodeURIComponent(username)}${more === undefined ? '' : `/${more}`}`

async function renderAccounts () {
  const may = mayAdministerMesh()
  const [{ accounts }, adoptable] = await Promise.all([api('GET', '/api/admin-accounts'), may ? api('GET', '/api/admin-accounts/adoptable').then((r) => r.adoptable) : []])
  const rows = accounts.flatMap((a) => {
    const row = h('tr', { 'data-account': a.username },
      h('th', { scope: 'row' }, a.username),
      h('td', {}, ROLE_NAMES[a.role] ?? a.role),
      h('td', {}, a.sites.length === 0 ? '–' : a.sites.join(', ')),
      h('td', {}, a.totp ? 'set up' : 'none'),
      h('td', {}, h('span', { class: `state ${a.disabled ? 'state-failed' : 'state-printed'}` }, a.disabled ? 'disabled' : 'enabled')),
      h('td', {}, formatTime(a.updatedAt), a.by !== undefined ? h('div', { class: 'muted' }, `by ${a.by}`) : null),
      h('td', {}, may ? h('div', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => { void change('accounts', async () => await api('PATCH', accountPath(a.username), { json: { disabled: !a.disabled } }), `${a.username} is ${a.disabled ? 'enabled again' : 'disabled'}.`) } }, a.disabled ? 'Enable' : 'Disable'),
        h('button', { type: 'button', onclick: () => { passwordFor = passwordFor === a.username ? undefined : a.username; void render() } }, 'Set password'),
        a.totp
          ? h('button', { type: 'button', onclick: () => { void change('accounts', async () => await api('DELETE', accountPath(a.username, 'totp')), `${a.username} signs in without an authenticator code now.`) } }, 'Remove authenticator')
          : h('button', { type: 'button', onclick: () => { void change('accounts', async () => { totpEnrol = { username: a.username, uri: (await api('POST', accountPath(a.username, 'totp'))).otpauthUri } }, `Add ${a.username}'s authenticator with the key below, then confirm a code.`) } }, 'Set up authenticator'),
        h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm(`Delete the admin account ${a.username}?`)) void change('accounts', async () => await api('DELETE', accountPath(a.username)), `Deleted ${a.username}.`) } }, 'Delete')) : null))
    if (!may || passwordFor !== a.username) return [row]
    return [row, h('tr', { class: 'edit-row' }, h('td', { colspan: 7 }, h('form', { 'data-form': `password-${a.username}`, class: 'form-grid', onsubmit: async (event) => {
      event.preventDefault()
      const input = event.target.elements['account-new-password']
      const password = input.value
      input.value = ''
      await change('accounts', async () => { await api('POST', accountPath(a.username, 'password'), { json: { password } }); passwordFor = undefined }, `New password set for ${a.username}.`)
    } },
    field('account-new-password', `New password for ${a.username} (12 characters or more)`, { type: 'password', autocomplete: 'new-password', minlength: 12, maxlength: 256, required: true }),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Save password'), h('button', { type: 'button', onclick: () => { passwordFor = undefined; void render() } }, 'Cancel')))))]
  })
  return h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'accounts-title' },
      h('h2', { id: 'accounts-title' }, 'Admin accounts'),
      noticeLine('accounts'),
      may && totpEnrol !== undefined ? totpForm() : null,
      may && rotatedToken !== undefined ? h('div', { class: 'secret', id: 'rotated-token' },
        h('p', {}, 'The new mesh admin token: store it now, it is not shown again.'),
        h('textarea', { readonly: true, rows: 2, 'aria-label': 'New mesh admin token', spellcheck: 'false' }, rotatedToken),
        h('button', { type: 'button', onclick: () => { rotatedToken = undefined; void render() } }, 'Done')) : null,
      table(['Account', 'Role', 'Sites', 'Authenticator', 'State', 'Changed', ''], rows, 'No admin accounts yet: everyone signs in with the admin token.')),
    may && adoptable.length > 0 ? adoptableSection(adoptable) : null,
    may ? h('section', { class: 'card', 'aria-labelledby': 'add-account-title' }, h('h2', { id: 'add-account-title' }, 'Add an admin account'), addAccountForm(),
      h('h3', {}, 'The mesh admin token'),
      h('p', { class: 'muted' }, 'Rotating it stops the current token, and each node\'s own start-up token, at every node.'),
      h('button', { type: 'button', class: 'danger', onclick: () => {
        if (!confirm('Rotate the mesh admin token? The current token stops working at every node.')) return
        void change('accounts', async () => { rotatedToken = (await api('POST', '/api/admin-token/rotate')).token }, 'The mesh admin token was rotated.')
      } }, 'Rotate the mesh admin token')) : null)
}

const adoptPath = (id, more) => `/api/admin-accounts/adoptable/${encodeURIComponent(id)}${more === undefined ? '' : `/${more}`}`
const roleAndSites = (role, sites) => `${ROLE_NAMES[role] ?? role}${sites.length > 0 ? ` of ${sites.join(', ')}` : ''}`

/**
 * Accounts joined sites wrote while standalone that central could not add at the join (it had
 * the name): who wrote them and when, what they become; adopted (under another name when
 * central has theirs) with the password they had, or dismissed.
 */
function adoptableSection (adoptable) {
  const rows = adoptable.map((a) => h('tr', { 'data-adoptable': a.id },
    h('th', { scope: 'row' }, a.username, a.disabled ? h('div', { class: 'muted' }, 'disabled') : null),
    h('td', {}, a.site, h('div', { class: 'muted', title: a.sitePeer }, shortPeer(a.sitePeer))),
    h('td', {}, roleAndSites(a.standaloneRole, a.standaloneSites), h('div', { class: 'muted' }, `becomes ${roleAndSites(a.role, a.sites)}`)),
    h('td', {}, a.updatedAt !== undefined ? formatTime(a.updatedAt) : '–', a.by !== undefined ? h('div', { class: 'muted' }, `by ${a.by}`) : null,
      h('div', { class: 'muted' }, `received ${formatTime(a.handedAt)}`)),
    h('td', {}, a.totp ? 'set up there: not carried over, to set up again' : 'none'),
    h('td', {}, h('form', { 'data-form': `adopt-${a.id}`, class: 'filters', onsubmit: async (event) => {
      event.preventDefault()
      const username = event.target.elements['adopt-as'].value.trim()
      await change('accounts', async () => await api('POST', adoptPath(a.id, 'adopt'), { json: username === '' ? {} : { username } }), (r) => r.notice)
    } },
    h('div', { class: 'field inline' }, h('label', {}, 'Adopt as', h('input', { name: 'adopt-as', value: a.taken ? '' : a.username, placeholder: a.taken ? `not ${a.username}: central has it` : a.username, required: a.taken, spellcheck: 'false', autocapitalize: 'none', autocomplete: 'off' }))),
    h('button', { type: 'submit', class: 'primary' }, 'Adopt'),
    h('button', { type: 'button', onclick: () => { if (confirm(`Forget ${a.username} of ${a.site} without adopting it?`)) void change('accounts', async () => await api('DELETE', adoptPath(a.id)), `Dismissed ${a.username} of ${a.site}.`) } }, 'Dismiss')))))
  return h('section', { class: 'card', 'aria-labelledby': 'adoptable-title', id: 'adoptable' },
    h('h2', { id: 'adoptable-title' }, 'Accounts from joined sites'),
    h('p', { class: 'muted' }, 'Admin accounts these sites had while standalone that were not added when they joined, because the mesh already has an account of that name (that account is never overwritten). Adopting one under another name lets its owner sign in everywhere with the password they had; an authenticator is not carried over.'),
    table(['Account', 'Site', 'Role', 'Last changed there', 'Authenticator', ''], rows, ''))
}

function totpForm () {
  const { username, uri } = totpEnrol
  return h('div', { class: 'secret', id: 'totp-enrol' },
    h('p', {}, `Add this key to ${username}'s authenticator app (it is shown this once), then enter a code it shows.`),
    h('code', {}, uri),
    h('form', { 'data-form': 'totp-confirm', class: 'filters', onsubmit: async (event) => {
      event.preventDefault()
      const input = event.target.elements['totp-code']
      const code = input.value.trim()
      input.value = ''
      await change('accounts', async () => { await api('POST', accountPath(username, 'totp/confirm'), { json: { code } }); totpEnrol = undefined }, `${username} signs in with an authenticator code from now on.`)
    } },
    h('div', { class: 'field inline' }, h('label', { for: 'totp-code' }, 'Code'), h('input', { id: 'totp-code', name: 'totp-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, required: true })),
    h('button', { type: 'submit', class: 'primary' }, 'Confirm'),
    h('button', { type: 'button', onclick: () => { totpEnrol = undefined; void render() } }, 'Cancel')))
}

function addAccountForm () {
  return h('form', { 'data-form': 'add-account', onsubmit: async (event) => {
    event.preventDefault()
    const form = event.target
    const data = new FormData(form)
    const body = { username: String(data.get('account-username')).trim(), role: String(data.get('account-role')), password: String(data.get('account-password')) }
    if (body.role === 'site-admin') body.sites = list(data.get('account-sites'))
    form.elements['account-password'].value = ''
    if (await change('accounts', async () => await api('POST', '/api/admin-accounts', { json: body }), `Added ${body.username} (${ROLE_NAMES[body.role]}).`)) form.reset()
  } },
  h('div', { class: 'form-grid' },
    field('account-username', 'Account name', { required: true, spellcheck: 'false', autocapitalize: 'none', autocomplete: 'off' }),
    field('account-role', 'Role', {}, 'select', Object.entries(ROLE_NAMES).map(([value, name]) => h('option', { value }, name))),
    field('account-sites', 'Sites (a site admin\'s, separated by ,)', { spellcheck: 'false', autocomplete: 'off' }),
    field('account-password', 'Password (12 characters or more)', { type: 'password', autocomplete: 'new-password', minlength: 12, maxlength: 256, required: true })),
  h('button', { type: 'submit', class: 'primary' }, 'Add account'))
}

// ---- peers and license ----

/** The peer whose revoke form is open; the join string just created (a secret, shown until dismissed or the page changes). */
let revoking
let joinResult

const facts = (pairs) => h('dl', { class: 'facts' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))

/** A peer's connection in words: connected, last seen when, never seen. */
const connection = (p) => p.connected
  ? h('span', { class: 'printer-state printer-ok' }, 'connected')
  : h('span', { class: 'printer-state printer-other' }, p.lastSeen === undefined ? 'never seen' : `not connected, last seen ${formatTime(p.lastSeen)}`)

async function renderPeers () {
  const mesh = await api('GET', '/api/mesh')
  const central = mesh.self.role === 'central'
  const [requests, license] = await Promise.all([
    central ? api('GET', '/api/mesh/requests').then((r) => r.requests) : [],
    api('GET', '/api/license').catch((err) => { if (err instanceof ApiError && err.status === 404) return undefined; throw err })
  ])
  const may = mayAdministerMesh() && central
  const peers = [...mesh.peers].sort((a, b) => Number(b.connected) - Number(a.connected) || (a.site ?? '').localeCompare(b.site ?? '') || a.peer.localeCompare(b.peer))
  const rows = peers.flatMap((p) => {
    const row = h('tr', { 'data-peer': p.peer, 'data-role': p.role ?? '', 'data-connected': String(p.connected) },
      h('th', { scope: 'row' }, h('code', { title: p.peer }, shortPeer(p.peer))),
      h('td', {}, p.role ?? '–'),
      h('td', {}, p.site ?? '–'),
      h('td', {}, connection(p)),
      h('td', {}, p.revoked ? h('span', { class: 'state state-failed' }, 'revoked') : 'valid'),
      h('td', {}, may && !p.revoked ? h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${p.peer}`, onclick: () => { revoking = revoking === p.peer ? undefined : p.peer; void render() } }, 'Revoke') : null))
    if (!may || revoking !== p.peer || p.revoked) return [row]
    return [row, h('tr', { class: 'edit-row' }, h('td', { colspan: 6 }, h('form', { 'data-form': `revoke-${p.peer}`, class: 'form-grid', onsubmit: async (event) => {
      event.preventDefault()
      const reason = String(new FormData(event.target).get('revoke-reason')).trim()
      await change('peers', async () => { await api('POST', `/api/mesh/peers/${encodeURIComponent(p.peer)}/revoke`, { json: { reason } }); revoking = undefined }, `Revoked ${shortPeer(p.peer)}: every node disconnects it.`)
    } },
    field('revoke-reason', `Why revoke ${shortPeer(p.peer)}? (kept with the revocation)`, { required: true, maxlength: 500 }),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'danger' }, 'Revoke'), h('button', { type: 'button', onclick: () => { revoking = undefined; void render() } }, 'Cancel')))))]
  })
  const behind = mesh.documents.filter((d) => Object.values(d.peers).includes('behind')).length
  const self = mesh.self
  return h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'peers-title' },
      h('h2', { id: 'peers-title' }, 'Peers'),
      noticeLine('peers'),
      facts([
        ['This node', `${self.role}${self.site !== undefined ? ` of ${self.site}` : ''}`],
        ['Peer id', h('code', {}, self.peer)],
        ['Authority (central)', self.authority === self.peer ? 'this node' : h('code', {}, self.authority)],
        ['Connected', `${peers.filter((p) => p.connected).length} of ${peers.length} peers`],
        ['Documents', `${mesh.documents.length} held; ${behind === 0 ? 'none behind a connected peer' : `${behind} behind a connected peer (catching up)`}`]
      ]),
      table(['Peer', 'Role', 'Site', 'Connection', 'Certificate', ''], rows, 'No other peer is known yet.')),
    central ? joinRequests(requests, may) : null,
    may ? addPeer() : null,
    licenseSection(license, may))
}

function joinRequests (requests, may) {
  const sorted = [...requests].sort((a, b) => Number(a.approvedAt !== undefined) - Number(b.approvedAt !== undefined) || b.requestedAt - a.requestedAt)
  return h('section', { class: 'card', 'aria-labelledby': 'requests-title' },
    h('h2', { id: 'requests-title' }, 'Join requests'),
    table(['Peer', 'Role', 'Site', 'Asked', ''], sorted.map((r) => h('tr', { 'data-request': r.peer },
      h('th', { scope: 'row' }, h('code', { title: r.peer }, shortPeer(r.peer))),
      h('td', {}, r.role), h('td', {}, r.site ?? '–'), h('td', {}, formatTime(r.requestedAt)),
      h('td', {}, r.approvedAt !== undefined
        ? h('span', { class: 'state state-printed' }, `approved ${formatTime(r.approvedAt)}`)
        : may ? h('button', { type: 'button', class: 'primary', 'aria-label': `Approve ${r.peer}`, onclick: () => { void change('peers', async () => await api('POST', `/api/mesh/requests/${encodeURIComponent(r.peer)}/approve`), `Approved ${shortPeer(r.peer)}: it gets its certificate on its next attempt.`) } }, 'Approve') : 'waiting'))),
    'No peer is waiting for approval.'))
}

function addPeer () {
  return h('section', { class: 'card', 'aria-labelledby': 'add-peer-title' },
    h('h2', { id: 'add-peer-title' }, 'Add a peer'),
    h('form', { 'data-form': 'join-token', onsubmit: async (event) => {
      event.preventDefault()
      const data = new FormData(event.target)
      const body = { role: String(data.get('join-role')), site: String(data.get('join-site')).trim() }
      joinResult = undefined
      await change('peers', async () => {
        const created = await api('POST', '/api/mesh/tokens', { json: body })
        joinResult = { ...body, joinString: created.joinString, expiresAt: created.expiresAt }
      }, `Join string for a ${body.role} at ${body.site} created: start that peer with it as --join.`)
    } },
    h('div', { class: 'form-grid' },
      field('join-role', 'Role', {}, 'select', JOIN_ROLES.map((r) => h('option', { value: r }, r))),
      field('join-site', 'Site id', { required: true, spellcheck: 'false', autocomplete: 'off' })),
    h('button', { type: 'submit', class: 'primary' }, 'Create a join string')),
    joinResult === undefined ? null : h('div', { class: 'secret', id: 'join-result' },
      h('p', {}, `For a ${joinResult.role} at ${joinResult.site}; valid once, until ${formatTime(joinResult.expiresAt)}. It is a secret: it is not shown again.`),
      h('textarea', { readonly: true, rows: 3, 'aria-label': 'Join string', spellcheck: 'false' }, joinResult.joinString),
      h('button', { type: 'button', onclick: () => { joinResult = undefined; void render() } }, 'Done')))
}

const LICENSE_STATES = { unlicensed: 'unlicensed (evaluation)', valid: 'valid', expiring: 'expiring soon', 'expired-in-grace': 'expired (grace period)', expired: 'expired' }

function licenseSection (license, may) {
  if (license === undefined) {
    return h('section', { class: 'card', 'aria-labelledby': 'license-title' }, h('h2', { id: 'license-title' }, 'License'), h('p', { class: 'muted' }, 'The license is held by central: see it on central\'s console.'))
  }
  const l = license.license
  const limits = ['sites', 'terminals', 'clients', 'users'].map((k) => h('tr', { 'data-limit': k }, h('th', { scope: 'row' }, k), h('td', {}, String(license.usage[k] ?? 0)), h('td', {}, l === undefined ? 'no limit' : String(l.limits[k]))))
  return h('section', { class: 'card', 'aria-labelledby': 'license-title' },
    h('h2', { id: 'license-title' }, 'License'),
    h('p', { id: 'license-state', 'data-state': license.state, class: `message${license.state === 'expired' || license.state === 'expired-in-grace' ? ' error' : ''}` }, h('strong', {}, `${LICENSE_STATES[license.state] ?? license.state}. `), license.message),
    l === undefined ? null : facts([['Organisation', l.organisation], ['License id', h('code', {}, l.licenseId)], ['Issued', formatTime(Date.parse(l.issuedAt))], ['Expires', formatTime(Date.parse(l.expiresAt))]]),
    table(['In use', 'Now', 'Limit'], limits, ''),
    may ? h('form', { 'data-form': 'license', onsubmit: async (event) => {
      event.preventDefault()
      const form = event.target
      const file = form.elements['license-file'].files[0]
      const text = file !== undefined ? await file.text() : form.elements['license-text'].value
      let json
      try {
        json = JSON.parse(text)
      } catch (err) {
        notices.peers = { text: `The license file is not JSON: ${err.message}`, kind: 'error' }
        void render()
        return
      }
      if (await change('peers', async () => await api('PUT', '/api/license', { json }), (view) => `License installed: ${view.message}`)) form.reset()
    } },
    h('h3', {}, 'Install a license'),
    field('license-file', 'License file', { type: 'file', accept: '.json,application/json' }),
    field('license-text', 'or paste it', { rows: 3, spellcheck: 'false' }, 'textarea'),
    h('button', { type: 'submit' }, 'Install license')) : null)
}

// ---- audit log ----

/** The audit page's filters and first entry shown; the entries whose change is unfolded (kept across refreshes). */
const auditView = { actor: '', action: '', outcome: '', node: '', from: '', to: '', offset: 0 }
const auditOpen = new Set()

/** A `yyyy-mm-dd` date input's local midnight in ms; `next` the day after (the API's `until` is exclusive). */
const localDay = (value, next = false) => {
  const [y, m, d] = value.split('-').map(Number)
  return new Date(y, m - 1, d + (next ? 1 : 0)).getTime()
}

/** The node an entry was written at, in words: its site, or central. */
const auditWhere = (e) => e.site !== undefined ? `${e.site} (${e.role})` : e.role

/** Before, after and the request of an entry, folded away (JSON as text); a refused attempt's reason. */
function auditChange (e) {
  if (e.refused !== undefined) return h('span', { class: 'state state-failed' }, `refused (${e.status}): ${e.refused}`)
  const parts = [['Before', e.before], ['After', e.after], ['Request', e.request]].filter(([, v]) => v !== undefined)
  if (parts.length === 0) return h('span', { class: 'state state-printed' }, 'done')
  return h('details', { open: auditOpen.has(e.id), ontoggle: (event) => { if (event.target.open) auditOpen.add(e.id); else auditOpen.delete(e.id) } },
    h('summary', {}, `done: ${parts.map(([label]) => label.toLowerCase()).join(', ')}`),
    ...parts.map(([label, v]) => h('p', {}, h('strong', {}, `${label}: `), h('code', {}, JSON.stringify(v)))))
}

async function renderAudit () {
  const params = new URLSearchParams({ offset: String(auditView.offset), limit: String(AUDIT_PAGE) })
  for (const k of ['actor', 'action', 'outcome', 'node']) if (auditView[k] !== '') params.set(k, auditView[k])
  if (auditView.from !== '') params.set('since', String(localDay(auditView.from)))
  if (auditView.to !== '') params.set('until', String(localDay(auditView.to, true)))
  const page = await api('GET', `/api/audit?${params}`)
  const entries = page.entries
  const filter = h('form', { class: 'filters', 'data-form': 'audit-filter', onsubmit: (event) => {
    event.preventDefault()
    const data = new FormData(event.target)
    for (const k of ['actor', 'action', 'outcome', 'node', 'from', 'to']) auditView[k] = String(data.get(`audit-${k}`) ?? '').trim()
    auditView.offset = 0
    void render()
  } },
  h('div', { class: 'field inline' }, h('label', { for: 'audit-actor' }, 'Who'), h('input', { id: 'audit-actor', name: 'audit-actor', value: auditView.actor, placeholder: 'admin name', spellcheck: 'false', autocapitalize: 'none' })),
  h('div', { class: 'field inline' }, h('label', { for: 'audit-action' }, 'What'), h('input', { id: 'audit-action', name: 'audit-action', value: auditView.action, placeholder: 'e.g. /api/users', spellcheck: 'false' })),
  h('div', { class: 'field inline' }, h('label', { for: 'audit-outcome' }, 'Outcome'), h('select', { id: 'audit-outcome', name: 'audit-outcome' },
    [['', 'any'], ['done', 'done'], ['refused', 'refused']].map(([value, text]) => h('option', { value, selected: auditView.outcome === value }, text)))),
  h('div', { class: 'field inline' }, h('label', { for: 'audit-node' }, 'Where'), h('input', { id: 'audit-node', name: 'audit-node', value: auditView.node, placeholder: 'site or peer id', spellcheck: 'false' })),
  h('div', { class: 'field inline' }, h('label', { for: 'audit-from' }, 'From'), h('input', { id: 'audit-from', name: 'audit-from', type: 'date', value: auditView.from })),
  h('div', { class: 'field inline' }, h('label', { for: 'audit-to' }, 'To'), h('input', { id: 'audit-to', name: 'audit-to', type: 'date', value: auditView.to })),
  h('button', { type: 'submit' }, 'Filter'))
  const who = (e) => e.via === 'token' ? `${e.actor} (token)` : e.via === 'password' ? `${e.actor} (password)` : e.actor
  return h('section', { class: 'card', 'aria-labelledby': 'audit-title' },
    h('h2', { id: 'audit-title' }, 'Audit log'),
    h('p', { class: 'muted' }, 'Every change an administrator made, and every refused attempt, at every node; newest first.'),
    filter,
    table(['When', 'Where', 'Who', 'What', 'On', 'Outcome'], entries.map((e) => h('tr', { 'data-audit': e.id, 'data-outcome': e.refused === undefined ? 'done' : 'refused' },
      h('td', {}, formatTime(e.at)),
      h('td', { title: e.node }, auditWhere(e)),
      h('td', { class: 'audit-actor' }, who(e)),
      h('td', {}, h('code', {}, e.action)),
      h('td', {}, h('code', {}, e.target)),
      h('td', {}, auditChange(e)))), 'No entry matches.'),
    pager('audit-range', auditView.offset, entries.length, page.total, AUDIT_PAGE, (offset) => { auditView.offset = offset; void render() }))
}

// ---- session ----

function loggedIn (s) {
  session = s
  setCsrfToken(s.csrfToken)
  $('user-name').textContent = s.user
  $('user-role').textContent = roleText(s)
  $('login-view').hidden = true
  $('whoami').hidden = false
  $('nav').hidden = false
  for (const a of document.querySelectorAll('#nav a[data-route]')) a.hidden = lightPeer() && SERVER_ONLY_ROUTES.includes(a.dataset.route)
  $('read-only').hidden = !lightPeer()
  $('read-only').textContent = lightPeer() ? `This ${nodeInfo.role === 'client' ? 'workstation' : 'terminal'}'s console shows what it holds: every site's printers and settings, and the jobs of site ${nodeInfo.site ?? ''}. Changes are made at a site's or central's console.` : ''
  $('loading').hidden = true
  connectEvents()
  void render()
}

function loggedOut (message = '') {
  session = undefined
  setCsrfToken(undefined)
  clearTimeout(refreshTimer)
  refreshTimer = undefined
  forgetPageState()
  events?.close()
  events = undefined
  $('whoami').hidden = true
  $('nav').hidden = true
  $('read-only').hidden = true
  $('loading').hidden = true
  setChildren($('page'))
  $('login-view').hidden = false
  login.focus()
  showMessage($('login-error'), message, 'error')
  showMessage($('page-error'), '')
}

$('logout').addEventListener('click', async () => {
  try {
    await api('POST', '/api/logout')
  } finally {
    loggedOut()
  }
})

/** What a page shows only until the admin leaves it: open forms, answers to changes, secrets shown once. */
function forgetPageState () {
  editing = undefined
  printerNotice = { text: '', kind: 'info' }
  userPanel = undefined
  importState = undefined
  passwordFor = undefined
  totpEnrol = undefined
  rotatedToken = undefined
  revoking = undefined
  joinResult = undefined
  for (const key of Object.keys(notices)) delete notices[key]
}

window.addEventListener('hashchange', () => { forgetPageState(); if (session !== undefined) void render() })
const login = adminLoginForm($('login-form'), $('login-error'), loggedIn)

async function main () {
  nodeInfo = await showSiteInfo($('site-info'))
  // an admin account first where accounts exist; the token where none do yet
  login.preferToken(nodeInfo?.adminAccounts !== true)
  try {
    const s = await api('GET', '/api/session')
    if (!s.admin) { loggedOut('You are logged in as a user; sign in as an administrator.'); return }
    loggedIn(s)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
