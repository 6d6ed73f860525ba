// The admin page: sign in with an admin account (or the admin token); all jobs, printers, accounting, users and
// roaming partners (on a node with the print service) and the mesh: this node, its peers,
// document sync and, on central, join tokens, join requests and revocation; on sites and
// central the audit log of the whole mesh, filtered. /api/info says which services answer.
import {
  adminLoginForm, api, ApiError, formatCount, formatTime, h, jobLabel, jobNameCell, JobTable, poll, renderPrinterOptions,
  setChildren, setCsrfToken, showMessage, showSiteInfo, stateBadge
} from './common.js'

const $ = (id) => document.getElementById(id)
const views = { loading: $('loading'), login: $('login-view'), admin: $('admin-view') }
const status = $('status')
const loginError = $('login-error')
const printerSelect = $('printer')
let stopPolling = () => {}
let stopMeshPolling = () => {}
let stopRoamingPolling = () => {}
let stopLdapPolling = () => {}
let stopTerminalsPolling = () => {}
let stopAuditPolling = () => {}
/** What /api/info said; without it the page assumes a plain site (print service, no mesh). */
let nodeInfo
/** The mesh changes slowly and its status is larger than a job list: poll it less often. */
const MESH_POLL_MS = 5000
/** Partners' answers to the roaming settings arrive by sync and rarely change: poll them seldom. */
const ROAMING_POLL_MS = 10_000
/**
 * Statuses of a job action that are about the job, not the session: 403 when the holding
 * site is not a partner, 503 when it is unreachable. Shown; they must not sign the admin out.
 */
const JOB_REFUSALS = new Set([403, 503])

/** Whether this node runs a service (`print`, `mesh`), from /api/info. */
function hasService (name) {
  const services = nodeInfo?.services
  return services === undefined ? name === 'print' : services[name] === true
}

/** Shows only the sections and tabs of the services this node runs. */
function showServices () {
  for (const el of document.querySelectorAll('[data-service]')) el.hidden = !hasService(el.dataset.service)
  $('release-link').hidden = !hasService('print')
}

function show (name) {
  for (const [key, el] of Object.entries(views)) el.hidden = key !== name
}

/** The signed-in admin's role (`mesh-admin`, `site-admin`, `report-viewer`), from the session. */
let adminRole
/** The names the page shows for the roles. */
const ROLE_NAMES = { 'mesh-admin': 'mesh admin', 'site-admin': 'site admin', 'report-viewer': 'report viewer' }

function handleError (err, what) {
  // a role's refusal is about the action, not the session: shown, the admin stays signed in
  if (err instanceof ApiError && err.status === 403 && adminRole !== undefined && adminRole !== 'mesh-admin') {
    showMessage(status, `${what}: ${err.message}`, 'error')
    return
  }
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    loggedOut(err.status === 401 ? 'Your session has ended. Please sign in again.' : err.message)
    return
  }
  showMessage(status, `${what}: ${err.message}`, 'error')
}

// ---- jobs ----

/** A failed job action: refusals about the job are shown, anything else as usual. */
function jobActionFailed (err, what) {
  if (err instanceof ApiError && JOB_REFUSALS.has(err.status)) showMessage(status, `${what}: ${err.message}`, 'error')
  else handleError(err, what)
}

/** Every job of this site, and jobs partner sites hold (marked with their host). */
const jobs = new JobTable($('jobs').tBodies[0], [
  { label: 'Name', value: (j) => jobNameCell(j) },
  { label: 'Owner', value: (j) => j.owner },
  { label: 'Pages', value: (j) => formatCount(j.pages), num: true },
  { label: 'Colour pages', value: (j) => formatCount(j.colorPages), num: true },
  { label: 'State', value: (j) => stateBadge(j) },
  { label: 'Printer', value: (j) => j.printer ?? '–' },
  { label: 'Submitted', value: (j) => formatTime(j.createdAt) }
], {
  async release (job, button) {
    const printer = printerSelect.value
    if (printer === '') {
      showMessage(status, 'Choose a printer first.', 'error')
      return
    }
    button.disabled = true
    try {
      await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/release`, { json: { printer } })
      showMessage(status, `Released “${jobLabel(job)}” of ${job.owner} to ${printer}.`)
      await refreshJobs()
    } catch (err) {
      jobActionFailed(err, `Could not release “${jobLabel(job)}”`)
    } finally {
      button.disabled = false
    }
  },
  async remove (job, button) {
    button.disabled = true
    try {
      await api('DELETE', `/api/jobs/${encodeURIComponent(job.id)}`)
      showMessage(status, `Deleted “${jobLabel(job)}” of ${job.owner}.`)
      await refreshJobs()
    } catch (err) {
      jobActionFailed(err, `Could not delete “${jobLabel(job)}”`)
    } finally {
      button.disabled = false
    }
  }
})

async function refreshJobs () {
  const { jobs: local, remote = [] } = await api('GET', '/api/jobs?scope=all')
  const list = [...local, ...remote]
  jobs.render(list)
  $('no-jobs').hidden = list.length > 0
  $('jobs').hidden = list.length === 0
}

// ---- printers ----

async function refreshPrinters () {
  const { printers } = await api('GET', '/api/printers')
  renderPrinterOptions(printerSelect, printers)
  setChildren($('printers').tBodies[0], printers.map((p) => h('tr', {},
    h('th', { scope: 'row' }, p.name),
    h('td', {}, h('span', { class: `printer-state printer-${p.state === 'idle' ? 'ok' : 'other'}` }, p.state)),
    h('td', {}, p.message),
    h('td', {}, h('code', {}, p.uri))
  )))
  $('no-printers').hidden = printers.length > 0
  $('printers').hidden = printers.length === 0
}

// ---- terminals (a site in a mesh: GET /api/terminals) ----

/** A supply's level as IPP gives it: a percentage, or one of its special values. */
function supplyLevel (level) {
  if (level >= 0) return `${level}%`
  return level === -3 ? 'some left' : 'unknown'
}

function renderSupplies (markers) {
  if (markers === undefined) return '–'
  if (markers.length === 0) return 'none reported'
  return h('ul', { class: 'supplies' }, ...markers.map((m) => h('li', { class: 'supply', 'data-marker': m.name, title: [m.type, m.color].filter(Boolean).join(' ') },
    h('span', { class: 'supply-name' }, m.name), ' ',
    h('meter', { min: '0', max: '100', low: '15', high: '50', optimum: '100', value: String(Math.max(0, m.level)), 'aria-label': `${m.name} ${supplyLevel(m.level)}` }), ' ',
    h('span', { class: 'supply-level' }, supplyLevel(m.level)))))
}

function terminalConnection (t) {
  if (t.online) return h('span', { class: 'printer-state printer-ok' }, t.error === undefined ? 'online' : `online, ${t.error}`)
  return h('span', { class: 'printer-state printer-other' }, t.lastSeen === undefined ? 'offline, never seen' : `offline, last seen ${formatTime(t.lastSeen)}`)
}

async function refreshTerminals () {
  const { terminals } = await api('GET', '/api/terminals')
  const rows = [...terminals].sort((a, b) => (a.status?.name ?? a.peer).localeCompare(b.status?.name ?? b.peer))
  renderRows($('terminals').tBodies[0], () => rows.map((t) => h('tr', { 'data-peer': t.peer, 'data-online': String(t.online) },
    h('th', { scope: 'row' }, t.status?.name ?? h('code', {}, shortPeer(t.peer))),
    h('td', { class: 'terminal-connection' }, terminalConnection(t)),
    h('td', { class: 'terminal-printer' }, t.status === undefined ? '–' : t.status.printer.state),
    h('td', { class: 'terminal-reasons' }, (t.status?.printer.reasons ?? []).join(', ') || 'none'),
    h('td', {}, renderSupplies(t.status?.printer.markers)),
    h('td', {}, t.status === undefined ? '–' : formatCount(t.status.users)),
    h('td', {}, t.status?.lastSync === undefined ? '–' : formatTime(t.status.lastSync))
  )), JSON.stringify(rows.map((t) => ({ ...t, lastSeen: t.online ? 0 : t.lastSeen, reportedAt: 0 }))))
  $('no-terminals').hidden = rows.length > 0
  $('terminals').hidden = rows.length === 0
}

// ---- accounting ----

/** `YYYY-MM-DD` of the day after a date input's value (the API's `to` is exclusive). */
function dayAfter (value) {
  const d = new Date(`${value}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + 1)
  return d.toISOString().slice(0, 10)
}

function usageParams () {
  const params = new URLSearchParams()
  const from = $('usage-from').value
  const to = $('usage-to').value
  if (from !== '') params.set('from', from)
  if (to !== '') params.set('to', dayAfter(to))
  return params
}

const USAGE_KEY_LABELS = { user: 'User', printer: 'Printer', day: 'Day (UTC)' }

async function refreshUsage () {
  const by = $('usage-by').value
  const params = usageParams()
  $('usage-csv').href = `/api/usage.csv${params.size > 0 ? `?${params}` : ''}`
  params.set('by', by)
  const { totals } = await api('GET', `/api/usage/totals?${params}`)
  $('usage-key').textContent = USAGE_KEY_LABELS[by] ?? by
  const sum = totals.reduce((acc, t) => ({
    jobs: acc.jobs + t.jobs, pages: acc.pages + t.pages, colorPages: acc.colorPages + t.colorPages, sheets: acc.sheets + t.sheets
  }), { jobs: 0, pages: 0, colorPages: 0, sheets: 0 })
  const row = (cell, t, cls) => h('tr', { class: cls }, cell,
    h('td', { class: 'num' }, String(t.jobs)), h('td', { class: 'num' }, String(t.pages)),
    h('td', { class: 'num' }, String(t.colorPages)), h('td', { class: 'num' }, String(t.sheets)))
  setChildren($('usage').tBodies[0],
    totals.map((t) => row(h('th', { scope: 'row' }, t.key), t)),
    totals.length > 1 ? row(h('th', { scope: 'row' }, 'Total'), sum, 'total') : undefined)
  $('no-usage').hidden = totals.length > 0
  $('usage').hidden = totals.length === 0
}

$('usage-form').addEventListener('submit', (event) => {
  event.preventDefault()
  refreshUsage().catch((err) => handleError(err, 'Could not load accounting'))
})
$('usage-by').addEventListener('change', () => {
  refreshUsage().catch((err) => handleError(err, 'Could not load accounting'))
})

// ---- users ----

/** Users shown per page: a screenful. */
const USERS_PAGE_SIZE = 25
const usersStatus = $('users-status')
/** The search and the first row of the page shown. */
const usersView = { q: '', offset: 0, total: 0 }

async function refreshUsers () {
  const params = new URLSearchParams({ offset: String(usersView.offset), limit: String(USERS_PAGE_SIZE) })
  if (usersView.q !== '') params.set('q', usersView.q)
  const page = await api('GET', `/api/users?${params}`)
  if (page.users.length === 0 && page.total > 0 && usersView.offset > 0) {
    // the last page emptied (users deleted elsewhere): show the one before
    usersView.offset = Math.max(0, usersView.offset - USERS_PAGE_SIZE)
    return await refreshUsers()
  }
  usersView.total = page.total
  setChildren($('users').tBodies[0], page.users.map((u) => h('tr', { 'data-user': u.username },
    h('th', { scope: 'row' }, u.username),
    h('td', {}, u.fullName),
    h('td', {}, u.email ?? ''),
    h('td', {}, u.groups.join(', ')),
    h('td', {}, u.homeSite ?? ''),
    h('td', {}, h('span', { class: `state ${u.disabled ? 'state-failed' : 'state-printed'}` }, u.disabled ? 'disabled' : 'active')),
    h('td', { class: 'num' }, String(u.cards.length)),
    h('td', { class: 'actions' },
      h('button', { type: 'button', onclick: (event) => setDisabled(u, !u.disabled, event.currentTarget) }, u.disabled ? 'Enable' : 'Disable'),
      h('button', { type: 'button', onclick: () => openPinDialog(u.username) }, 'Reset PIN'))
  )))
  const none = page.users.length === 0
  $('no-users').textContent = usersView.q === '' ? 'No users yet: add or import some below.' : `No user matches “${usersView.q}”.`
  $('no-users').hidden = !none
  $('users').hidden = none
  $('users-pager').hidden = none
  $('users-range').textContent = none ? '' : `${usersView.offset + 1}–${usersView.offset + page.users.length} of ${page.total}`
  const onePage = page.total <= USERS_PAGE_SIZE && usersView.offset === 0
  $('users-prev').hidden = onePage
  $('users-next').hidden = onePage
  $('users-prev').disabled = usersView.offset === 0
  $('users-next').disabled = usersView.offset + page.users.length >= page.total
}

const usersFailed = (what) => (err) => handleError(err, what)

// ---- card conflicts (central, issue 15): a card registered for two users while apart works for neither until assigned ----

async function refreshConflicts () {
  let conflicts
  try {
    ({ conflicts } = await api('GET', '/api/enrol/conflicts'))
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) { $('card-conflicts').hidden = true; return } // not central
    throw err
  }
  const open = conflicts.filter((c) => c.resolvedTo === undefined)
  $('card-conflicts').hidden = open.length === 0
  setChildren($('conflicts').tBodies[0], open.map((c) => h('tr', { 'data-conflict': c.id },
    h('td', {}, h('code', {}, c.id)),
    h('td', {}, c.claims.map((k) => `${k.user} (${formatTime(k.at)})`).join(', ')),
    h('td', { class: 'actions' }, [...new Set(c.claims.map((k) => k.user))].map((user) =>
      h('button', { type: 'button', onclick: () => assignCard(c.id, user) }, `Give to ${user}${user === c.suggested ? ' (first)' : ''}`)))
  )))
}

async function assignCard (id, user) {
  try {
    await api('POST', `/api/enrol/conflicts/${encodeURIComponent(id)}/assign`, { json: { user } })
    showMessage(usersStatus, `The card is ${user}'s now.`)
    await Promise.all([refreshConflicts(), refreshUsers()])
  } catch (err) {
    userActionFailed(usersStatus, err, 'Could not assign the card')
  }
}

$('users-search-form').addEventListener('submit', (event) => {
  event.preventDefault()
  usersView.q = $('users-search').value.trim()
  usersView.offset = 0
  refreshUsers().catch(usersFailed('Could not search users'))
})
$('users-prev').addEventListener('click', () => {
  usersView.offset = Math.max(0, usersView.offset - USERS_PAGE_SIZE)
  refreshUsers().catch(usersFailed('Could not load users'))
})
$('users-next').addEventListener('click', () => {
  usersView.offset += USERS_PAGE_SIZE
  refreshUsers().catch(usersFailed('Could not load users'))
})

/** A refusal about the request (400 bad value, 404 gone, 409 taken or managed elsewhere): shown in `el`, the session stays. */
function userActionFailed (el, err, what) {
  if (err instanceof ApiError && [400, 404, 409].includes(err.status)) showMessage(el, `${what}: ${err.message}`, 'error')
  else handleError(err, what)
}

async function setDisabled (user, disabled, button) {
  button.disabled = true
  try {
    await api('PATCH', `/api/users/${encodeURIComponent(user.username)}`, { json: { disabled } })
    showMessage(usersStatus, `${user.username} is ${disabled ? 'disabled: no login by PIN or card' : 'enabled again'}.`)
    await refreshUsers()
  } catch (err) {
    userActionFailed(usersStatus, err, `Could not ${disabled ? 'disable' : 'enable'} ${user.username}`)
  } finally {
    button.disabled = false
  }
}

$('add-user-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const addStatus = $('add-user-status')
  const username = $('new-username').value.trim()
  const fullName = $('new-fullname').value.trim()
  const pin = $('new-pin').value
  if (username === '' || fullName === '' || pin === '') {
    showMessage(addStatus, 'Enter a username, a full name and a PIN.', 'error')
    return
  }
  const email = $('new-email').value.trim()
  const groups = $('new-groups').value.split(';').map((g) => g.trim()).filter((g) => g !== '')
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    await api('POST', '/api/users', { json: { username, fullName, pin, ...(email !== '' ? { email } : {}), ...(groups.length > 0 ? { groups } : {}) } })
    showMessage(addStatus, `Added ${username}.`)
    event.target.reset()
    await refreshUsers()
  } catch (err) {
    userActionFailed(addStatus, err, 'Could not add the user')
  } finally {
    $('new-pin').value = ''
    button.disabled = false
  }
})

const pinDialog = $('pin-dialog')

function openPinDialog (username) {
  $('pin-user').textContent = username
  $('pin-new').value = ''
  showMessage($('pin-error'), '')
  pinDialog.showModal()
  $('pin-new').focus()
}

$('pin-cancel').addEventListener('click', () => pinDialog.close())

$('pin-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const username = $('pin-user').textContent
  const pin = $('pin-new').value
  if (pin === '') {
    showMessage($('pin-error'), 'Enter the new PIN.', 'error')
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    await api('POST', `/api/users/${encodeURIComponent(username)}/pin`, { json: { pin } })
    pinDialog.close()
    showMessage(usersStatus, `New PIN set for ${username}.`)
  } catch (err) {
    if (err instanceof ApiError && [400, 404, 409].includes(err.status)) showMessage($('pin-error'), err.message, 'error')
    else {
      pinDialog.close()
      handleError(err, `Could not set the PIN of ${username}`)
    }
  } finally {
    $('pin-new').value = ''
    button.disabled = false
  }
})

$('import-file').addEventListener('change', async () => {
  const file = $('import-file').files[0]
  if (file !== undefined) $('import-csv').value = await file.text()
})

/** How the import report's field names read on the page. */
const FIELD_LABELS = { fullName: 'full name', homeSite: 'home site', pin: 'PIN', card: 'card', email: 'email', groups: 'groups' }

/** The import report as a list: who would be (or was) added and changed, and each line in error. */
function showImportReport (report) {
  const items = [
    ...(report.added.length > 0 ? [h('li', {}, `${report.dryRun ? 'Would add' : 'Added'}: ${report.added.join(', ')}`)] : []),
    ...report.changed.map((c) => h('li', {}, `${report.dryRun ? 'Would change' : 'Changed'} ${c.username}: ${c.fields.map((f) => FIELD_LABELS[f] ?? f).join(', ')}`)),
    ...report.errors.map((e) => h('li', { class: 'error' }, `Line ${e.line}: ${e.message}`))
  ]
  setChildren($('import-preview'), ...items)
  $('import-preview').hidden = items.length === 0
}

/** Sends the CSV, as a preview (`dryRun`) or for real; shows what it did. */
async function importUsers (dryRun, button) {
  const importStatus = $('import-status')
  const csv = $('import-csv').value
  if (csv.trim() === '') {
    showMessage(importStatus, 'Choose a CSV file or paste rows to import.', 'error')
    return
  }
  button.disabled = true
  try {
    const report = await api('POST', `/api/users/import${dryRun ? '?dryRun=1' : ''}`, { csv })
    showImportReport(report)
    if (dryRun) {
      const errors = report.errors.length
      showMessage(importStatus, `Preview, nothing written: would add ${report.added.length}, change ${report.changed.length}, leave ${report.unchanged.length} unchanged` +
        `${errors > 0 ? `; ${errors} line${errors === 1 ? '' : 's'} in error` : ''}.`, errors > 0 ? 'error' : 'info')
      return
    }
    showMessage(importStatus, `Imported ${report.imported} user${report.imported === 1 ? '' : 's'}. ${report.added.length} added, ${report.changed.length} changed, ${report.unchanged.length} unchanged.`)
    $('import-csv').value = ''
    $('import-file').value = ''
    await refreshUsers()
  } catch (err) {
    $('import-preview').hidden = true
    if (err instanceof ApiError && (err.status === 400 || err.status === 409)) showMessage(importStatus, `Import failed: ${err.message}`, 'error')
    else handleError(err, 'Import failed')
  } finally {
    button.disabled = false
  }
}

$('import-preview-button').addEventListener('click', (event) => { void importUsers(true, event.currentTarget) })
$('import-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void importUsers(false, event.target.querySelector('button[type=submit]'))
})

// ---- roaming ----

/** What each mode means, as the settings show it. */
const ROAMING_MODE_LABELS = {
  shared: 'shared: partners\' jobs are listed in My jobs, marked with their host',
  separate: 'separate: partners\' jobs are listed apart'
}
/** Whether the form holds the settings already; polling fills it only once, not over an admin's edits. */
let roamingFormFilled = false

const roamingModeInputs = () => [...document.querySelectorAll('input[name="roaming-mode"]')]

function partnerStatus (partner) {
  if (partner.mutual) return h('span', { class: 'state state-printed' }, 'roaming')
  return h('span', { class: 'state state-held' }, `waiting for ${partner.site} to add this site`)
}

function renderRoaming (view) {
  $('roaming-site').textContent = view.site
  $('roaming-hostname').textContent = view.hostname
  $('roaming-mode-now').textContent = ROAMING_MODE_LABELS[view.mode] ?? view.mode
  renderRows($('roaming-partners').tBodies[0], () => view.partners.map((p) => h('tr', { 'data-site': p.site },
    h('th', { scope: 'row' }, p.site),
    h('td', {}, p.hostname ?? 'not known yet'),
    h('td', {}, partnerStatus(p))
  )), JSON.stringify(view.partners))
  $('no-partners').hidden = view.partners.length > 0
  $('roaming-partners').hidden = view.partners.length === 0
  if (!roamingFormFilled) fillRoamingForm(view)
}

function fillRoamingForm (view) {
  $('roaming-partners-input').value = view.partners.map((p) => p.site).join(', ')
  for (const radio of roamingModeInputs()) radio.checked = radio.value === view.mode
  roamingFormFilled = true
}

async function refreshRoaming () {
  const view = await api('GET', '/api/roaming')
  renderRoaming(view)
  renderTerminalModes(view.terminals)
  renderClients(view.clients)
  renderPolicy(view.policy)
}

// ---- print policy ----

/** Whether the policy form holds the settings already; polling fills it only once, not over an admin's edits. */
let policyFilled = false

function renderPolicy (policy) {
  if (policy === undefined) return
  const groups = policy.monoGroups.length === 0 ? 'no group prints in monochrome only' : `monochrome only for ${policy.monoGroups.map((g) => `“${g}”`).join(', ')}`
  $('policy-now').textContent = `${policy.forceDuplex ? 'Every job prints two-sided' : 'Jobs print as sent'}; ${groups}.`
  if (policyFilled) return
  $('policy-force-duplex').checked = policy.forceDuplex
  $('policy-mono-groups').value = policy.monoGroups.join('\n')
  policyFilled = true
}

$('policy-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('policy-status')
  // one per line: a group name may hold a comma ("Sales, EMEA")
  const monoGroups = $('policy-mono-groups').value.split('\n').map((g) => g.trim()).filter((g) => g !== '')
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const view = await api('PUT', '/api/roaming/policy', { json: { forceDuplex: $('policy-force-duplex').checked, monoGroups } })
    policyFilled = false
    renderPolicy(view.policy)
    showMessage(status, 'Print policy saved; the site\'s terminals apply it as they receive it.')
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(status, `Could not save the print policy: ${err.message}`, 'error')
    else handleError(err, 'Could not save the print policy')
  } finally {
    button.disabled = false
  }
})

// ---- workstation clients (client spooling) ----

/** Whether the client settings form holds the settings already; polling fills it only once, not over an admin's edits. */
let clientsFilled = false

function renderClients (clients) {
  if (clients === undefined) return
  $('clients-now').textContent = `${clients.spooling ? 'Client spooling on: jobs stay on the workstations' : 'Client spooling off: jobs are handed to this site\'s server'}; ` +
    (clients.otherUsers ? 'workstations take jobs for other users.' : 'each workstation prints for its own user only.')
  if (clientsFilled) return
  $('clients-spooling').checked = clients.spooling
  $('clients-other-users').checked = clients.otherUsers
  clientsFilled = true
}

$('clients-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('clients-status')
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const view = await api('PUT', '/api/roaming/clients', { json: { spooling: $('clients-spooling').checked, otherUsers: $('clients-other-users').checked } })
    clientsFilled = false
    renderClients(view.clients)
    showMessage(status, 'Client settings saved; the workstations apply them as they receive them.')
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(status, `Could not save the client settings: ${err.message}`, 'error')
    else handleError(err, 'Could not save the client settings')
  } finally {
    button.disabled = false
  }
})

// ---- terminals' release modes (device spooling) ----

/** Whether the release modes form holds the settings already; polling fills it only once, not over an admin's edits. */
let terminalModesFilled = false
const terminalModeInputs = () => [...document.querySelectorAll('input[name="terminal-mode"]')]

function renderTerminalModes (terminals) {
  if (terminals === undefined) return
  $('terminal-modes-now').textContent = (terminals.configured
    ? `Offered: ${terminals.modes.join(', ')}; default ${terminals.defaultMode}.`
    : 'Not set: each terminal offers the modes it was started with (--modes).') +
    (terminals.trustUserName ? '' : ' Jobs wait to be claimed at the panel.')
  if (terminalModesFilled) return
  const modes = terminals.configured ? terminals.modes : ['hold', 'pull', 'direct', 'delegated']
  for (const box of terminalModeInputs()) box.checked = modes.includes(box.value)
  $('terminal-default-mode').value = terminals.configured ? terminals.defaultMode : 'hold'
  $('terminal-trust-user-name').checked = terminals.trustUserName !== false
  terminalModesFilled = true
}

$('terminal-modes-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const status = $('terminal-modes-status')
  const modes = terminalModeInputs().filter((box) => box.checked).map((box) => box.value)
  const defaultMode = $('terminal-default-mode').value
  if (modes.length === 0) {
    showMessage(status, 'Choose at least one release mode.', 'error')
    return
  }
  if (!modes.includes(defaultMode)) {
    showMessage(status, `The default, ${defaultMode}, must be one of the modes offered.`, 'error')
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const view = await api('PUT', '/api/roaming/terminals', { json: { modes, defaultMode, trustUserName: $('terminal-trust-user-name').checked } })
    terminalModesFilled = false
    renderTerminalModes(view.terminals)
    showMessage(status, 'Release modes saved; the terminals apply them as they receive them.')
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(status, `Could not save the release modes: ${err.message}`, 'error')
    else handleError(err, 'Could not save the release modes')
  } finally {
    button.disabled = false
  }
})

/** Site ids from the partners field, separated by commas or white space; the server checks them. */
function parsePartners (text) {
  return text.split(/[\s,]+/).filter((id) => id !== '')
}

$('roaming-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const roamingStatus = $('roaming-status')
  const mode = roamingModeInputs().find((radio) => radio.checked)?.value
  if (mode === undefined) {
    showMessage(roamingStatus, 'Choose how users see partners\' jobs.', 'error')
    return
  }
  const partners = parsePartners($('roaming-partners-input').value)
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const view = await api('PUT', '/api/roaming', { json: { partners, mode } })
    roamingFormFilled = false // show the settings as the site normalized them
    renderRoaming(view)
    const waiting = view.partners.filter((p) => !p.mutual).length
    showMessage(roamingStatus, waiting === 0
      ? 'Roaming settings saved.'
      : `Roaming settings saved; ${waiting} partner${waiting === 1 ? '' : 's'} still to add this site.`)
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(roamingStatus, `Could not save roaming: ${err.message}`, 'error')
    else handleError(err, 'Could not save roaming')
  } finally {
    button.disabled = false
  }
})

// ---- mesh ----

/** A peer id as text, with a shorter form for sentences. */
const shortPeer = (peer) => peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer

/** Re-renders a table body only when its content changed, so polling does not steal focus. */
function renderRows (tbody, rows, signature) {
  if (tbody.dataset.signature === signature) return
  tbody.dataset.signature = signature
  setChildren(tbody, rows())
}

function renderSelf (self) {
  const facts = [['Peer id', h('code', {}, self.peer)], ['Role', self.role]]
  if (self.site !== undefined) facts.push(['Site', self.site])
  facts.push(['Authority (central)', self.authority === self.peer ? 'this node' : h('code', {}, self.authority)])
  facts.push(['Listening on', self.addresses.length === 0 ? '–' : self.addresses.map((a) => h('code', { class: 'addr' }, a))])
  const signature = JSON.stringify(self)
  const dl = $('mesh-self')
  if (dl.dataset.signature === signature) return
  dl.dataset.signature = signature
  setChildren(dl, facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]))
}

function connection (p) {
  if (p.connected) return h('span', { class: 'printer-state printer-ok' }, 'connected')
  return p.lastSeen === undefined ? 'never seen' : `last seen ${formatTime(p.lastSeen)}`
}

function renderPeers (mesh, central) {
  const peers = [...mesh.peers].sort((a, b) => Number(b.connected) - Number(a.connected) || (a.site ?? '').localeCompare(b.site ?? '') || a.peer.localeCompare(b.peer))
  const signature = JSON.stringify([central, peers.map((p) => [p.peer, p.role, p.site, p.connected, p.connected ? 0 : p.lastSeen, p.revoked])])
  renderRows($('mesh-peers').tBodies[0], () => peers.map((p) => h('tr', { 'data-peer': p.peer },
    h('th', { scope: 'row' }, h('code', {}, p.peer)),
    h('td', {}, p.role ?? '–'),
    h('td', {}, p.site ?? '–'),
    h('td', {}, connection(p)),
    h('td', {}, p.revoked ? h('span', { class: 'state state-failed' }, 'revoked') : 'valid'),
    h('td', { class: 'actions' }, central && !p.revoked
      ? h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${p.peer}`, onclick: () => openRevoke(p.peer) }, 'Revoke')
      : undefined)
  )), signature)
  $('no-peers').hidden = peers.length > 0
  $('mesh-peers').hidden = peers.length === 0
}

/** Per connected peer: how many documents are in sync, behind, ahead or unknown. */
function renderDocs (mesh) {
  const connected = mesh.peers.filter((p) => p.connected).map((p) => p.peer)
  const counts = new Map(connected.map((peer) => [peer, { 'in-sync': 0, behind: 0, ahead: 0, unknown: 0 }]))
  let lagging = 0
  for (const d of mesh.documents) {
    let behind = false
    for (const [peer, state] of Object.entries(d.peers)) {
      const c = counts.get(peer)
      if (c === undefined) continue
      c[state in c ? state : 'unknown']++
      if (state === 'behind') behind = true
    }
    if (behind) lagging++
  }
  const n = mesh.documents.length
  $('mesh-docs-summary').textContent = `${n} document${n === 1 ? '' : 's'} held; ` +
    (lagging === 0 ? 'none behind a connected peer.' : `${lagging} behind a connected peer (catching up).`)
  const peerName = (peer) => {
    const p = mesh.peers.find((x) => x.peer === peer)
    return p?.site !== undefined ? `${p.site} ${p.role ?? ''} · ${shortPeer(peer)}` : shortPeer(peer)
  }
  const rows = [...counts]
  renderRows($('mesh-docs').tBodies[0], () => rows.map(([peer, c]) => h('tr', {},
    h('th', { scope: 'row', title: peer }, peerName(peer)),
    h('td', { class: 'num' }, String(c['in-sync'])),
    h('td', { class: 'num' }, String(c.behind)),
    h('td', { class: 'num' }, String(c.ahead)),
    h('td', { class: 'num' }, String(c.unknown))
  )), JSON.stringify(rows))
  $('mesh-docs').hidden = rows.length === 0
}

function renderRequests (requests) {
  const sorted = [...requests].sort((a, b) => Number(a.approvedAt !== undefined) - Number(b.approvedAt !== undefined) || b.requestedAt - a.requestedAt)
  renderRows($('mesh-requests').tBodies[0], () => sorted.map((r) => h('tr', { 'data-peer': r.peer },
    h('th', { scope: 'row' }, h('code', {}, r.peer)),
    h('td', {}, r.role),
    h('td', {}, r.site ?? '–'),
    h('td', {}, formatTime(r.requestedAt)),
    h('td', { class: 'actions' }, r.approvedAt !== undefined
      ? h('span', { class: 'state state-printed' }, `approved ${formatTime(r.approvedAt)}`)
      : h('button', { type: 'button', class: 'primary', 'aria-label': `Approve ${r.peer}`, onclick: (event) => approve(r.peer, event.currentTarget) }, 'Approve'))
  )), JSON.stringify(sorted))
  $('no-requests').hidden = sorted.length > 0
  $('mesh-requests').hidden = sorted.length === 0
}

/** Central's product license: a banner unless it is valid and more than 30 days from expiry (an unlicensed evaluation says so too). */
function renderLicense (view) {
  const banner = $('license-banner')
  banner.hidden = view.state === 'valid'
  banner.textContent = view.state === 'valid' ? '' : `License: ${view.message}`
  banner.classList.toggle('error', view.state === 'expired' || view.state === 'expired-in-grace')
}

/** Central's license; a central without the license service (404) shows no banner. */
async function refreshLicense () {
  try {
    renderLicense(await api('GET', '/api/license'))
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err
    $('license-banner').hidden = true
  }
}

// ---- LDAP sync (central with --ldap-config) ----

/** A sync report's sections in words, newest report or a dry run's plan. */
function renderLdapDetails (report) {
  const items = []
  const list = (label, names) => { if (names.length > 0) items.push(h('p', {}, h('strong', {}, `${label}: `), names.join(', '))) }
  if (report.dryRun) items.push(h('p', { class: 'muted' }, 'Dry run: nothing was changed.'))
  if (report.result === 'failed') items.push(h('p', { class: 'error' }, `Failed, nothing was changed: ${report.error ?? ''}`))
  list('Added', report.added)
  list('Changed', report.changed.map((c) => `${c.username} (${c.fields.join(', ')})`))
  list('Disabled', report.disabled)
  if (report.errors.length > 0) {
    items.push(h('p', {}, h('strong', {}, 'Left out:')))
    items.push(h('ul', { id: 'ldap-errors' }, report.errors.map((e) => h('li', {}, h('code', {}, e.entry), ` ${e.message}`))))
  }
  if (report.truncated) items.push(h('p', { class: 'muted' }, 'Lists are cut short; the counts are whole.'))
  if (items.length === 0) items.push(h('p', { class: 'muted' }, 'Nothing to change.'))
  setChildren($('ldap-details'), items)
}

function renderLdap (view) {
  const c = view.config
  const facts = [['Server', h('code', {}, c.url + (c.startTls ? ' (StartTLS)' : ''))], ['Base DN', h('code', {}, c.baseDN)], ['Filter', h('code', {}, c.userFilter)],
    ['Every', `${c.intervalMinutes} min`], ['Next run', view.running ? 'running now' : formatTime(view.nextRunAt)]]
  setChildren($('ldap-config'), facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]))
  setChildren($('ldap-reports').tBodies[0], view.reports.map((r) => h('tr', {},
    h('td', {}, formatTime(r.startedAt)),
    h('td', {}, r.trigger === 'schedule' ? 'schedule' : r.by),
    h('td', {}, h('span', { class: `state ${r.result === 'ok' ? 'state-printed' : 'state-failed'}`, title: r.error ?? '' }, r.result === 'ok' ? 'ok' : 'failed')),
    ...['added', 'changed', 'disabled', 'unchanged', 'errors'].map((k) => h('td', { class: 'num' }, formatCount(r.counts[k])))
  )))
  $('no-ldap-reports').hidden = view.reports.length > 0
  $('ldap-reports').hidden = view.reports.length === 0
  if ($('ldap-details').dataset.dryRun !== 'shown' && view.reports.length > 0) renderLdapDetails(view.reports[0])
}

/** The LDAP section, on a central with --ldap-config; elsewhere (404, 409) it stays hidden. */
async function refreshLdap () {
  try {
    const view = await api('GET', '/api/ldap/status')
    $('ldap-section').hidden = false
    $('ldap-link').hidden = false
    renderLdap(view)
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 404 || err.status === 409))) throw err
    $('ldap-section').hidden = true
    $('ldap-link').hidden = true
    stopLdapPolling()
  }
}

async function runLdapSync (dryRun, button) {
  const ldapStatus = $('ldap-status')
  button.disabled = true
  showMessage(ldapStatus, dryRun ? 'Asking LDAP what would change…' : 'Syncing…')
  try {
    const { report } = await api('POST', `/api/ldap/sync${dryRun ? '?dryRun=1' : ''}`)
    $('ldap-details').dataset.dryRun = dryRun ? 'shown' : ''
    renderLdapDetails(report)
    const n = report.counts
    showMessage(ldapStatus, dryRun
      ? `Dry run: ${n.added} would be added, ${n.changed} changed, ${n.disabled} disabled, ${n.errors} left out. Nothing was changed.`
      : `Synced: ${n.added} added, ${n.changed} changed, ${n.disabled} disabled, ${n.errors} left out.`)
    await refreshLdap()
  } catch (err) {
    if (err instanceof ApiError && err.status === 503) {
      showMessage(ldapStatus, err.message, 'error')
      $('ldap-details').dataset.dryRun = ''
      await refreshLdap().catch(() => {})
    } else {
      showMessage(ldapStatus, '')
      handleError(err, 'Could not sync with LDAP')
    }
  } finally {
    button.disabled = false
  }
}

$('ldap-sync').addEventListener('click', (event) => { void runLdapSync(false, event.currentTarget) })
$('ldap-dry-run').addEventListener('click', (event) => { void runLdapSync(true, event.currentTarget) })

// ---- audit log (sites and central) ----

/** Entries an audit answer lists: a few screens. */
const AUDIT_LIMIT = 200

/** The node an entry was written at, in words: its site, or central. */
const auditWhere = (e) => e.site !== undefined ? `${e.site} (${e.role})` : e.role

/** Before, after and the request of an entry, folded away: JSON as text. */
function auditChange (e) {
  // a refused attempt: why, as the node answered it
  if (e.refused !== undefined) return h('span', { class: 'state state-failed' }, `refused (${e.status}): ${e.refused}`)
  const parts = [['Before', e.before], ['After', e.after], ['Request', e.request]].filter(([, v]) => v !== undefined)
  if (parts.length === 0) return '–'
  return h('details', {}, h('summary', {}, parts.map(([label]) => label.toLowerCase()).join(', ')),
    ...parts.map(([label, v]) => h('p', {}, h('strong', {}, `${label}: `), h('code', {}, JSON.stringify(v)))))
}

function auditParams () {
  const params = new URLSearchParams({ limit: String(AUDIT_LIMIT) })
  for (const [id, name] of [['audit-filter', 'action'], ['audit-actor', 'actor'], ['audit-node', 'node']]) {
    const value = $(id).value.trim()
    if (value !== '') params.set(name, value)
  }
  if ($('audit-since').value !== '') params.set('since', $('audit-since').value)
  if ($('audit-outcome').value !== '') params.set('outcome', $('audit-outcome').value)
  return params
}

/** The audit section, on sites and central; elsewhere (404) it stays hidden. */
async function refreshAudit () {
  let page
  try {
    page = await api('GET', `/api/audit?${auditParams()}`)
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err
    $('audit-section').hidden = true
    $('audit-link').hidden = true
    stopAuditPolling()
    return
  }
  $('audit-section').hidden = false
  $('audit-link').hidden = false
  // unchanged entries are not redrawn, so an opened change stays open while the page polls
  renderRows($('audit').tBodies[0], () => page.entries.map((e) => h('tr', {},
    h('td', {}, formatTime(e.at)),
    h('td', { title: e.node }, auditWhere(e)),
    h('td', {}, e.via === 'token' ? `${e.actor} (token)` : e.via === 'password' ? `${e.actor} (password)` : e.actor),
    h('td', {}, h('code', {}, e.action)),
    h('td', {}, h('code', {}, e.target)),
    h('td', {}, auditChange(e))
  )), page.entries.map((e) => e.id).join(','))
  $('audit-summary').textContent = page.total > page.entries.length ? `The newest ${page.entries.length} of ${page.total}.` : `${page.total} ${page.total === 1 ? 'action' : 'actions'}.`
  $('no-audit').hidden = page.entries.length > 0
  $('audit').hidden = page.entries.length === 0
}

$('audit-form').addEventListener('submit', (event) => {
  event.preventDefault()
  refreshAudit().catch((err) => handleError(err, 'Could not load the audit log'))
})

async function refreshMesh () {
  const mesh = await api('GET', '/api/mesh')
  const central = mesh.self.role === 'central'
  renderSelf(mesh.self)
  renderPeers(mesh, central)
  renderDocs(mesh)
  $('mesh-central').hidden = !central
  if (central) renderRequests((await api('GET', '/api/mesh/requests')).requests)
  if (central) await refreshLicense()
}

async function approve (peer, button) {
  button.disabled = true
  try {
    await api('POST', `/api/mesh/requests/${encodeURIComponent(peer)}/approve`)
    showMessage(status, `Approved ${shortPeer(peer)}: it gets its certificate on its next attempt.`)
    await refreshMesh()
  } catch (err) {
    button.disabled = false
    handleError(err, `Could not approve ${shortPeer(peer)}`)
  }
}

function clearJoinString () {
  $('join-string').value = ''
  $('join-meta').textContent = ''
  $('join-result').hidden = true
}

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const tokenStatus = $('token-status')
  const role = $('token-role').value
  const site = $('token-site').value.trim()
  if (site === '') {
    showMessage(tokenStatus, 'Enter the site id the new peer belongs to.', 'error')
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  clearJoinString()
  try {
    const created = await api('POST', '/api/mesh/tokens', { json: { role, site } })
    showMessage(tokenStatus, '')
    $('join-meta').textContent = `For a ${role} at ${site}; valid once, until ${formatTime(created.expiresAt)}.`
    $('join-string').value = created.joinString
    $('join-result').hidden = false
    $('join-string').focus()
    $('join-string').select()
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(tokenStatus, `Could not create a join token: ${err.message}`, 'error')
    else handleError(err, 'Could not create a join token')
  } finally {
    button.disabled = false
  }
})

$('copy-join').addEventListener('click', async () => {
  const field = $('join-string')
  const tokenStatus = $('token-status')
  try {
    // The clipboard API needs a secure context (HTTPS or localhost); fall back to the selection.
    if (navigator.clipboard !== undefined) await navigator.clipboard.writeText(field.value)
    else {
      field.select()
      if (!document.execCommand('copy')) throw new Error('the browser refused')
    }
    showMessage(tokenStatus, 'Join string copied.')
  } catch (err) {
    field.select()
    showMessage(tokenStatus, `Could not copy (${err.message}): the join string is selected, press Ctrl+C.`, 'error')
  }
})

$('dismiss-join').addEventListener('click', () => {
  clearJoinString()
  showMessage($('token-status'), '')
})

const revokeDialog = $('revoke-dialog')

function openRevoke (peer) {
  revokeDialog.dataset.peer = peer
  $('revoke-peer').textContent = peer
  $('revoke-reason').value = ''
  showMessage($('revoke-error'), '')
  revokeDialog.showModal()
  $('revoke-reason').focus()
}

$('revoke-cancel').addEventListener('click', () => revokeDialog.close())

$('revoke-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const peer = revokeDialog.dataset.peer
  const reason = $('revoke-reason').value.trim()
  if (reason === '') {
    showMessage($('revoke-error'), 'Give a reason; it is kept with the revocation.', 'error')
    $('revoke-reason').focus()
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    await api('POST', `/api/mesh/peers/${encodeURIComponent(peer)}/revoke`, { json: { reason } })
    revokeDialog.close()
    showMessage(status, `Revoked ${shortPeer(peer)}.`)
    await refreshMesh()
  } catch (err) {
    if (err instanceof ApiError && (err.status === 400 || err.status === 409)) showMessage($('revoke-error'), err.message, 'error')
    else {
      revokeDialog.close()
      handleError(err, `Could not revoke ${shortPeer(peer)}`)
    }
  } finally {
    button.disabled = false
  }
})

// ---- session ----

function loggedIn (session) {
  setCsrfToken(session.csrfToken)
  adminRole = session.role
  $('user-name').textContent = session.user
  $('user-role').textContent = session.account === true && ROLE_NAMES[session.role] !== undefined ? `(${ROLE_NAMES[session.role]}${session.sites?.length > 0 ? ` of ${session.sites.join(', ')}` : ''})` : ''
  $('whoami').hidden = false
  showMessage(status, '')
  showServices()
  show('admin')
  const failed = (what) => (err) => handleError(err, what)
  stopPolling()
  stopPolling = () => {}
  if (hasService('users')) refreshUsers().catch(failed('Could not load users'))
  if (hasService('users')) refreshConflicts().catch(failed('Could not load card conflicts'))
  if (hasService('users')) refreshAccounts().catch(failed('Could not load the admin accounts'))
  if (hasService('print')) {
    refreshUsage().catch(failed('Could not load accounting'))
    stopPolling = poll(async () => {
      await Promise.all([refreshJobs(), refreshPrinters()])
    }, failed('Could not refresh jobs and printers'))
  }
  stopRoamingPolling()
  stopRoamingPolling = hasService('print') ? poll(refreshRoaming, failed('Could not load roaming'), ROAMING_POLL_MS) : () => {}
  stopMeshPolling()
  stopMeshPolling = hasService('mesh') ? poll(refreshMesh, failed('Could not refresh the mesh'), MESH_POLL_MS) : () => {}
  stopLdapPolling()
  stopLdapPolling = hasService('mesh') ? poll(refreshLdap, failed('Could not load the LDAP sync'), MESH_POLL_MS) : () => {}
  // a site in a mesh has terminals: their printers and supplies
  const terminalsShown = hasService('print') && hasService('mesh')
  $('terminals-section').hidden = !terminalsShown
  stopTerminalsPolling()
  stopTerminalsPolling = terminalsShown ? poll(refreshTerminals, failed('Could not load the terminals'), MESH_POLL_MS) : () => {}
  stopAuditPolling()
  stopAuditPolling = hasService('mesh') ? poll(refreshAudit, failed('Could not load the audit log'), MESH_POLL_MS) : () => {}
}

function loggedOut (message = '') {
  stopPolling()
  stopPolling = () => {}
  stopMeshPolling()
  stopMeshPolling = () => {}
  stopRoamingPolling()
  stopRoamingPolling = () => {}
  stopLdapPolling()
  stopLdapPolling = () => {}
  stopTerminalsPolling()
  stopTerminalsPolling = () => {}
  stopAuditPolling()
  stopAuditPolling = () => {}
  roamingFormFilled = false
  terminalModesFilled = false
  clientsFilled = false
  policyFilled = false
  showMessage($('roaming-status'), '')
  showMessage($('clients-status'), '')
  showMessage($('policy-status'), '')
  showMessage($('terminal-modes-status'), '')
  if (revokeDialog.open) revokeDialog.close()
  if (pinDialog.open) pinDialog.close()
  clearJoinString()
  setCsrfToken(undefined)
  adminRole = undefined
  closeTotpEnrol()
  $('new-mesh-token').hidden = true
  $('new-mesh-token-value').textContent = ''
  jobs.render([])
  $('whoami').hidden = true
  showMessage(loginError, message, 'error')
  show('login')
  login.focus()
}

// ---- sign-in: an admin account (username, password, authenticator code) or the admin token, common.js's form ----

const login = adminLoginForm($('login-form'), loginError, loggedIn)

// ---- admin accounts (central, a standalone site; read everywhere the directory is) ----

const accountsStatus = $('accounts-status')

/** A refusal about the request (400, 404, 409 managed elsewhere) shown in the section; anything else as usual. */
function accountActionFailed (err, what) {
  if (err instanceof ApiError && [400, 404, 409].includes(err.status)) showMessage(accountsStatus, `${what}: ${err.message}`, 'error')
  else handleError(err, what)
}

async function refreshAccounts () {
  const { accounts } = await api('GET', '/api/admin-accounts')
  $('no-accounts').hidden = accounts.length > 0
  setChildren($('accounts').tBodies[0], accounts.map((a) => h('tr', {},
    h('th', { scope: 'row' }, a.username),
    h('td', {}, ROLE_NAMES[a.role] ?? a.role),
    h('td', {}, a.sites.join(', ')),
    h('td', {}, a.totp ? 'set up' : 'none'),
    h('td', {}, a.disabled ? 'disabled' : 'enabled'),
    h('td', { class: 'actions' },
      h('button', { type: 'button', onclick: () => accountAction(`${a.disabled ? 'Enable' : 'Disable'} ${a.username}`, 'PATCH', accountUrl(a.username), { disabled: !a.disabled }) }, a.disabled ? 'Enable' : 'Disable'),
      h('button', { type: 'button', onclick: () => setAccountPassword(a.username) }, 'Set password'),
      a.totp
        ? h('button', { type: 'button', onclick: () => accountAction(`Remove the authenticator of ${a.username}`, 'DELETE', accountUrl(a.username, 'totp')) }, 'Remove authenticator')
        : h('button', { type: 'button', onclick: () => startTotpEnrol(a.username) }, 'Set up authenticator'),
      h('button', { type: 'button', onclick: () => { if (confirm(`Delete the admin account ${a.username}?`)) void accountAction(`Delete ${a.username}`, 'DELETE', accountUrl(a.username)) } }, 'Delete')
    ))))
}

/** An account's own URL, and `more` under it (`totp`, `password`). */
const accountUrl = (username, more) => `/api/admin-accounts/${encodeURIComponent(username)}${more !== undefined ? `/${more}` : ''}`

async function accountAction (what, method, url, json) {
  try {
    await api(method, url, json !== undefined ? { json } : {})
    showMessage(accountsStatus, `${what}: done.`)
    await refreshAccounts()
  } catch (err) {
    accountActionFailed(err, `Could not ${what.charAt(0).toLowerCase()}${what.slice(1)}`)
  }
}

async function setAccountPassword (username) {
  const password = prompt(`New password for ${username} (12 characters or more)`)
  if (password === null || password === '') return
  await accountAction(`Set the password of ${username}`, 'POST', accountUrl(username, 'password'), { password })
}

let totpAccount
function closeTotpEnrol () {
  totpAccount = undefined
  $('totp-enrol').hidden = true
  $('totp-uri').textContent = ''
  $('totp-code').value = ''
}

async function startTotpEnrol (username) {
  try {
    const { otpauthUri } = await api('POST', accountUrl(username, 'totp'))
    totpAccount = username
    $('totp-account').textContent = username
    $('totp-uri').textContent = otpauthUri
    $('totp-enrol').hidden = false
    $('totp-code').focus()
  } catch (err) {
    accountActionFailed(err, `Could not set up an authenticator for ${username}`)
  }
}

$('totp-cancel').addEventListener('click', closeTotpEnrol)
$('totp-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const username = totpAccount
  if (username === undefined) return
  try {
    await api('POST', accountUrl(username, 'totp/confirm'), { json: { code: $('totp-code').value.trim() } })
    closeTotpEnrol()
    showMessage(accountsStatus, `${username} signs in with an authenticator code from now on.`)
    await refreshAccounts()
  } catch (err) {
    $('totp-code').value = ''
    accountActionFailed(err, 'Could not confirm the authenticator')
  }
})

$('add-account-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const role = $('account-role').value
  const sites = $('account-sites').value.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const body = { username: $('account-username').value.trim(), role, password: $('account-password').value, ...(role === 'site-admin' ? { sites } : {}) }
  try {
    const { account } = await api('POST', '/api/admin-accounts', { json: body })
    event.target.reset()
    showMessage(accountsStatus, `Added ${account.username} (${ROLE_NAMES[account.role]}).`)
    await refreshAccounts()
  } catch (err) {
    $('account-password').value = ''
    accountActionFailed(err, 'Could not add the account')
  }
})

$('rotate-token').addEventListener('click', async () => {
  if (!confirm('Rotate the mesh admin token? The current token (and each node\'s own start-up token) stops working at every node.')) return
  try {
    const { token } = await api('POST', '/api/admin-token/rotate')
    $('new-mesh-token-value').textContent = token
    $('new-mesh-token').hidden = false
    showMessage(accountsStatus, 'The mesh admin token was rotated: store the new one now, it is not shown again.')
  } catch (err) {
    accountActionFailed(err, 'Could not rotate the mesh admin token')
  }
})

$('logout').addEventListener('click', async () => {
  try {
    await api('POST', '/api/logout')
    loggedOut()
  } catch (err) {
    handleError(err, 'Could not log out')
  }
})

async function main () {
  nodeInfo = await showSiteInfo($('site-info'))
  // the account login first where accounts exist; the token where none do yet
  login.preferToken(nodeInfo?.adminAccounts !== true)
  showServices()
  try {
    const session = await api('GET', '/api/session')
    if (!session.admin) {
      loggedOut('You are logged in as a user; sign in as an administrator to administer the site.')
      return
    }
    loggedIn(session)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
