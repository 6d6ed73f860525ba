// The admin page: sign in with the admin token; all jobs, printers, accounting, users.
import {
  api, ApiError, formatCount, formatTime, h, JobTable, poll, renderPrinterOptions, setChildren,
  setCsrfToken, showMessage, showSiteInfo, stateBadge
} from './common.js'

const $ = (id) => document.getElementById(id)
const views = { loading: $('loading'), login: $('login-view'), admin: $('admin-view') }
const status = $('status')
const loginError = $('login-error')
const printerSelect = $('printer')
let stopPolling = () => {}

function show (name) {
  for (const [key, el] of Object.entries(views)) el.hidden = key !== name
}

function handleError (err, what) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    loggedOut(err.status === 401 ? 'Your session has ended. Please sign in again.' : err.message)
    return
  }
  showMessage(status, `${what}: ${err.message}`, 'error')
}

// ---- jobs ----

const jobs = new JobTable($('jobs').tBodies[0], [
  { label: 'Name', value: (j) => j.name === '' ? '(untitled)' : j.name },
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
      showMessage(status, `Released “${job.name}” of ${job.owner} to ${printer}.`)
      await refreshJobs()
    } catch (err) {
      handleError(err, `Could not release “${job.name}”`)
    } finally {
      button.disabled = false
    }
  },
  async remove (job, button) {
    button.disabled = true
    try {
      await api('DELETE', `/api/jobs/${encodeURIComponent(job.id)}`)
      showMessage(status, `Deleted “${job.name}” of ${job.owner}.`)
      await refreshJobs()
    } catch (err) {
      handleError(err, `Could not delete “${job.name}”`)
    } finally {
      button.disabled = false
    }
  }
})

async function refreshJobs () {
  const { jobs: list } = await api('GET', '/api/jobs?scope=all')
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

async function refreshUsers () {
  const { users } = await api('GET', '/api/users')
  users.sort((a, b) => a.username.localeCompare(b.username))
  setChildren($('users').tBodies[0], users.map((u) => h('tr', {},
    h('th', { scope: 'row' }, u.username), h('td', {}, u.fullName))))
  $('no-users').hidden = users.length > 0
  $('users').hidden = users.length === 0
}

$('import-file').addEventListener('change', async () => {
  const file = $('import-file').files[0]
  if (file !== undefined) $('import-csv').value = await file.text()
})

$('import-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const importStatus = $('import-status')
  const csv = $('import-csv').value
  if (csv.trim() === '') {
    showMessage(importStatus, 'Choose a CSV file or paste rows to import.', 'error')
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const { imported } = await api('POST', '/api/users/import', { csv })
    showMessage(importStatus, `Imported ${imported} user${imported === 1 ? '' : 's'}.`)
    $('import-csv').value = ''
    $('import-file').value = ''
    await refreshUsers()
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) showMessage(importStatus, `Import failed: ${err.message}`, 'error')
    else handleError(err, 'Import failed')
  } finally {
    button.disabled = false
  }
})

// ---- session ----

function loggedIn (session) {
  setCsrfToken(session.csrfToken)
  $('user-name').textContent = session.user
  $('whoami').hidden = false
  showMessage(status, '')
  show('admin')
  const failed = (what) => (err) => handleError(err, what)
  refreshUsers().catch(failed('Could not load users'))
  refreshUsage().catch(failed('Could not load accounting'))
  stopPolling()
  stopPolling = poll(async () => {
    await Promise.all([refreshJobs(), refreshPrinters()])
  }, failed('Could not refresh jobs and printers'))
}

function loggedOut (message = '') {
  stopPolling()
  stopPolling = () => {}
  setCsrfToken(undefined)
  jobs.render([])
  $('whoami').hidden = true
  showMessage(loginError, message, 'error')
  show('login')
  $('token').focus()
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const token = $('token').value.trim()
  if (token === '') {
    showMessage(loginError, 'Enter the admin token.', 'error')
    return
  }
  const button = event.target.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const session = await api('POST', '/api/login/admin', { json: { token } })
    $('token').value = ''
    showMessage(loginError, '')
    loggedIn(session)
  } catch (err) {
    $('token').value = ''
    showMessage(loginError, err instanceof ApiError && err.status === 401 ? 'Wrong admin token.' : err.message, 'error')
  } finally {
    button.disabled = false
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
  await showSiteInfo($('site-info'))
  try {
    const session = await api('GET', '/api/session')
    if (!session.admin) {
      loggedOut('You are logged in as a user; sign in with the admin token to administer the site.')
      return
    }
    loggedIn(session)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
