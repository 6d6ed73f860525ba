// The release page: log in with username + PIN, list my jobs (with those partner sites hold,
// marked with their host or listed apart, per the site's roaming mode), release or delete them.
import {
  api, ApiError, formatCount, formatTime, jobLabel, jobName, jobNameCell, JobTable, poll,
  renderPrinterOptions, setCsrfToken, showMessage, showSiteInfo, stateBadge
} from './common.js'
import { refreshMyUsage, clearMyUsage } from './my-usage.js'

/** Printers change state rarely; refresh them less often than jobs. */
const PRINTER_REFRESH_MS = 10_000

const $ = (id) => document.getElementById(id)
const views = { loading: $('loading'), login: $('login-view'), jobs: $('jobs-view') }
const loginForm = $('login-form')
const loginError = $('login-error')
const status = $('status')
const printerSelect = $('printer')
let stopPolling = () => {}
let printersLoadedAt = 0
let siteInfo

function show (name) {
  for (const [key, el] of Object.entries(views)) el.hidden = key !== name
}

/** Release and delete, the same for jobs held here and at partner sites (the server routes them). */
const jobActions = {
  async release (job, button) {
    const printer = printerSelect.value
    if (printer === '') {
      showMessage(status, 'Choose a printer first.', 'error')
      printerSelect.focus()
      return
    }
    button.disabled = true
    try {
      await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/release`, { json: { printer } })
      showMessage(status, `Released “${jobLabel(job)}” to ${printer}.`)
      await refreshJobs()
    } catch (err) {
      handleError(err, `Could not release “${jobLabel(job)}”`)
    } finally {
      button.disabled = false
    }
  },
  async remove (job, button) {
    button.disabled = true
    try {
      await api('DELETE', `/api/jobs/${encodeURIComponent(job.id)}`)
      showMessage(status, `Deleted “${jobLabel(job)}”.`)
      await refreshJobs()
    } catch (err) {
      handleError(err, `Could not delete “${jobLabel(job)}”`)
    } finally {
      button.disabled = false
    }
  }
}

/** Jobs held here and, in shared roaming mode, partners' jobs marked with their host. */
const table = new JobTable($('jobs').tBodies[0], [
  { label: 'Name', value: (j) => jobNameCell(j) },
  { label: 'Pages', value: (j) => formatCount(j.pages), num: true },
  { label: 'Colour pages', value: (j) => formatCount(j.colorPages), num: true },
  { label: 'State', value: (j) => stateBadge(j) },
  { label: 'Submitted', value: (j) => formatTime(j.createdAt) }
], jobActions)

/** Separate roaming mode: partners' jobs, listed apart. */
const remoteTable = new JobTable($('remote-jobs').tBodies[0], [
  { label: 'Name', value: (j) => jobName(j) },
  { label: 'Held at', value: (j) => j.source?.hostname ?? '–' },
  { label: 'Pages', value: (j) => formatCount(j.pages), num: true },
  { label: 'State', value: (j) => stateBadge(j) },
  { label: 'Submitted', value: (j) => formatTime(j.createdAt) }
], jobActions)

function handleError (err, what) {
  if (err instanceof ApiError && err.status === 401) {
    loggedOut('Your session has ended. Please log in again.')
    return
  }
  showMessage(status, `${what}: ${err.message}`, 'error')
}

/** Shows the job lists; `remote` is empty unless partners' jobs are listed apart. */
function renderJobs (jobs, remote) {
  table.render(jobs)
  remoteTable.render(remote)
  $('jobs').hidden = jobs.length === 0
  $('no-jobs').hidden = jobs.length > 0 || remote.length > 0
  $('no-local-jobs').hidden = jobs.length > 0 || remote.length === 0
  $('remote-section').hidden = remote.length === 0
}

async function refreshJobs () {
  const { jobs, remote = [] } = await api('GET', '/api/jobs?scope=mine')
  renderJobs(jobs, remote)
}

async function refreshPrinters () {
  const { printers } = await api('GET', '/api/printers')
  renderPrinterOptions(printerSelect, printers)
  printersLoadedAt = Date.now()
}

function loggedIn (session) {
  setCsrfToken(session.csrfToken)
  $('user-name').textContent = session.user
  $('whoami').hidden = false
  showPinForm(true)
  showMessage(status, '')
  show('jobs')
  stopPolling()
  stopPolling = poll(async () => {
    if (Date.now() - printersLoadedAt >= PRINTER_REFRESH_MS) await refreshPrinters()
    await refreshJobs()
    await refreshMyUsage()
  }, (err) => handleError(err, 'Could not refresh the job list'))
}

function loggedOut (message = '') {
  stopPolling()
  stopPolling = () => {}
  setCsrfToken(undefined)
  printersLoadedAt = 0
  renderJobs([], [])
  clearMyUsage()
  $('whoami').hidden = true
  showPinForm(false)
  showMessage(loginError, message, 'error')
  show('login')
  $('username').focus()
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const username = $('username').value.trim()
  const pin = $('pin').value
  if (username === '' || pin === '') {
    showMessage(loginError, 'Enter your username and PIN.', 'error')
    return
  }
  const button = loginForm.querySelector('button[type=submit]')
  button.disabled = true
  try {
    const session = await api('POST', '/api/login', { json: { username, pin } })
    $('pin').value = ''
    showMessage(loginError, '')
    loggedIn(session)
  } catch (err) {
    $('pin').value = ''
    const text = err instanceof ApiError && err.status === 401 ? 'Wrong username or PIN.' : err.message
    showMessage(loginError, text, 'error')
    $('pin').focus()
  } finally {
    button.disabled = false
  }
})

// a new PIN (issue 15): written to this site's enrolments, it works here at once. The form is
// in the page only while someone is logged in.
function showPinForm (on) {
  if (!on) { $('my-pin')?.remove(); return }
  if ($('my-pin') !== null) return
  $('jobs-view').append($('my-pin-template').content.cloneNode(true))
  $('pin-form').addEventListener('submit', async (event) => {
    event.preventDefault()
    const fields = ['old-pin', 'new-pin', 'repeat-pin'].map($)
    const [oldPin, newPin, repeat] = fields.map((f) => f.value)
    try {
      await api('POST', '/api/enrol/pin', { json: { oldPin, newPin, repeat } })
      showMessage($('pin-message'), 'Your PIN is changed: use the new one from now on.')
    } catch (err) {
      showMessage($('pin-message'), err.message, 'error')
    } finally {
      for (const f of fields) f.value = ''
    }
  })
}

$('logout').addEventListener('click', async () => {
  try {
    await api('POST', '/api/logout')
    loggedOut()
  } catch (err) {
    handleError(err, 'Could not log out')
  }
})

async function main () {
  siteInfo = await showSiteInfo($('site-info'))
  if (siteInfo?.services?.print === false) {
    // Central (or another node without the print service): no jobs to release here.
    window.location.replace('/admin')
    return
  }
  if (siteInfo !== undefined) $('ipp-uri').textContent = siteInfo.ippUri
  try {
    const session = await api('GET', '/api/session')
    loggedIn(session)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
