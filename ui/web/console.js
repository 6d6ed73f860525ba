// The admin console (issue 16 item 4): a page per hash route (#/dashboard, #/sites,
// #/printers, #/jobs) over /api/console/*, /api/reports and /api/mesh, refreshed live from
// the server-sent events of /api/events (no reload). A change of another site's printers is a
// signed admin action: shown pending until that site's outcome arrives.
import { api, ApiError, h, setChildren, setCsrfToken, showMessage, showSiteInfo, adminLoginForm, formatTime } from './common.js'
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

const ROUTES = { dashboard: renderDashboard, sites: renderSites, printers: renderPrinters, jobs: renderJobs }

let events
let refreshTimer
let lastRefresh = 0
let rendering = false
let again = false
/** The jobs page's filter and offset, kept across refreshes. */
const jobsView = { q: '', state: '', site: '', offset: 0 }
/** The printer being edited on the printers page (`site/name`), kept across refreshes. */
let editing
/** The printers page's last answer to a change (kept across refreshes): `{text, kind}`. */
let printerNotice = { text: '', kind: 'info' }

function route () {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0]
  return ROUTES[name] !== undefined ? name : 'dashboard'
}

function pageError (err) {
  if (err === undefined) { showMessage($('page-error'), ''); return }
  if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return }
  showMessage($('page-error'), err.message, 'error')
}

/** Renders the current route; a render asked while one runs runs once more after it. */
async function render () {
  if (rendering) { again = true; return }
  rendering = true
  lastRefresh = Date.now()
  try {
    const name = route()
    for (const a of document.querySelectorAll('#nav a[data-route]')) {
      if (a.dataset.route === name) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    }
    const view = await ROUTES[name]()
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
    pageError(err)
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
  : h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))

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
    settingsForms(s),
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
      h('td', {}, h('div', { class: 'row-actions' },
        h('button', { type: 'button', onclick: () => { editing = editing === key ? undefined : key; void render() } }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: async () => { if (await changePrinter('DELETE', path(p.site, p.name), undefined, `Remove ${p.name} at ${p.site}`)) void render() } }, 'Remove'))))
    if (editing !== key) return [row]
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
    h('div', { class: 'field' }, h('label', { for: 'add-site' }, 'Site'), h('select', { id: 'add-site', name: 'site' }, sites.map((s) => h('option', { value: s.site, selected: s.self }, s.site)))),
    h('div', { class: 'field' }, h('label', { for: 'add-name' }, 'Printer name'), h('input', { id: 'add-name', name: 'name', required: true, spellcheck: 'false', placeholder: 'lobby' })),
    h('div', { class: 'field' }, h('label', { for: 'add-uri' }, 'Printer address'), h('input', { id: 'add-uri', name: 'uri', required: true, spellcheck: 'false', placeholder: 'ipp://printer.example/ipp/print' })),
    h('div', { class: 'field' }, h('label', { for: 'add-description' }, 'Description'), h('input', { id: 'add-description', name: 'description', placeholder: 'Lobby, ground floor' }))),
  h('button', { type: 'submit', class: 'primary' }, 'Add printer'))
  return h('div', {},
    h('section', { class: 'card', 'aria-labelledby': 'printers-title' },
      h('h2', { id: 'printers-title' }, 'Printers of every site'),
      h('p', { id: 'printer-message', class: `message${printerNotice.kind === 'error' ? ' error' : ''}`, role: 'status', hidden: printerNotice.text === '' }, printerNotice.text),
      table(['Site', 'Printer', 'State', 'Reasons', 'Supplies', 'Address', ''], rows, 'No printers known yet.')),
    h('section', { class: 'card', 'aria-labelledby': 'add-printer-title' }, h('h2', { id: 'add-printer-title' }, 'Add a printer'), addForm),
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

// ---- session ----

function loggedIn (session) {
  setCsrfToken(session.csrfToken)
  $('user-name').textContent = session.user
  $('login-view').hidden = true
  $('whoami').hidden = false
  $('nav').hidden = false
  $('loading').hidden = true
  connectEvents()
  void render()
}

function loggedOut (message = '') {
  events?.close()
  events = undefined
  $('whoami').hidden = true
  $('nav').hidden = true
  $('loading').hidden = true
  setChildren($('page'))
  $('login-view').hidden = false
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

window.addEventListener('hashchange', () => { editing = undefined; printerNotice = { text: '', kind: 'info' }; void render() })
adminLoginForm($('login-form'), $('login-error'), loggedIn)

async function main () {
  await showSiteInfo($('site-info'))
  try {
    const session = await api('GET', '/api/session')
    if (!session.admin) { loggedOut('You are logged in as a user; sign in with the admin token.'); return }
    loggedIn(session)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
