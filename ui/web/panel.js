// The MFP panel (/panel): log in with a card (a reader typing the card number as keystrokes
// ending in Enter, as MFP card readers do, on any screen) or user name and PIN (keyboard or
// the on-screen keypad) — or, on a terminal started with --pin-only-login, the PIN alone
// (keypad only; its Enter or the keyboard's logs in, as the pseudo-user `#pin`; logged in,
// Change PIN sets a new one, refused when another user holds it),
// see the jobs you can print here, print one or all, delete, log out — by the button, or
// after the idle time the terminal sets (counted from the last touch, or from when the
// last of the user's releases finished printing). Job states refresh while the list is open, so a
// release shows its progress until the printer reports it printed or why it failed.
import { h, setChildren, api, setCsrfToken, ApiError, showMessage, formatCount } from './common.js'
import { money } from './money.js'

/** How often the job list refreshes while someone is logged in. */
const JOBS_POLL_MS = 2000
/** How often the printer and connection state refresh. */
const STATUS_POLL_MS = 5000
/** A card reader types faster than any person: keys this close together belong to one card. */
const WEDGE_GAP_MS = 35
/** Shortest card number a reader sends (shorter bursts are typing). */
const WEDGE_MIN_CHARS = 4

const $ = (id) => document.getElementById(id)

let idleLogoutMs = 60_000
/** The terminal logs users in by PIN alone (`/api/panel/status` says so). */
let pinOnly = false
/** The user name `/api/login` takes for a PIN typed alone (node/users.ts PIN_ONLY_USERNAME). */
const PIN_ONLY_USERNAME = '#pin'
/** A login is on its way (the keypad's Enter and the keyboard's could both send it). */
let busyLogin = false
let idleTimer
let jobsTimer
let busy = false
/** Counts logins and logouts: an answer that arrives after the session it was asked for ended is dropped. */
let epoch = 0
/** A copy session is open for the logged-in user (the panel ends it before logging out). */
let copying = false
let copyTimer
/** Pages the last look at the copy session counted: more means the user is copying, so not idle. */
let copiedPages = 0

function setPill (el, text, kind) {
  el.textContent = text
  el.className = `pill ${kind}`
}

async function refreshStatus () {
  try {
    const status = await api('GET', '/api/panel/status')
    idleLogoutMs = status.idleLogoutMs
    setLoginMode(status.pinOnlyLogin === true)
    $('site').textContent = `site ${status.site}`
    const p = status.printer
    // the probe now gives IPP's own state: a printer busy printing is as fine as an idle one
    setPill($('printer-state'), p.state === 'idle' ? 'Printer ready' : p.state === 'processing' ? 'Printer printing' : `Printer ${p.state}`, p.state === 'idle' || p.state === 'processing' ? 'ok' : p.state === 'unknown' ? '' : 'bad')
    $('printer-state').title = p.message
    setPill($('online'), status.online ? 'Online' : 'Working offline', status.online ? 'ok' : 'warn')
  } catch (err) {
    setPill($('online'), 'Terminal not answering', 'bad')
  }
}

/** PIN-only login: the user name field goes, the keypad's Enter comes. */
function setLoginMode (on) {
  if (on === pinOnly && $('login-form').classList.contains('pin-only') === on) return
  pinOnly = on
  $('login-form').classList.toggle('pin-only', on)
  document.querySelector('.keypad-enter').hidden = !on
  $('change-pin').hidden = !on
  $('login-hint').textContent = on ? 'Hold your card to the reader, or enter your PIN.' : 'Hold your card to the reader, or enter your user name and PIN.'
  if (!$('login-view').hidden) $(on ? 'pin' : 'username').focus()
}

function showLogin (message = '') {
  epoch++
  clearTimeout(idleTimer)
  clearInterval(jobsTimer)
  leaveCopying()
  $('jobs-view').hidden = true
  $('login-view').hidden = false
  $('pin').value = ''
  showMessage($('login-error'), message, 'error')
  const field = pinOnly ? $('pin') : $('username')
  field.focus()
}

function showJobs (user) {
  epoch++
  $('enrol-panel').hidden = true
  closePinChange()
  $('login-view').hidden = true
  $('jobs-view').hidden = false
  $('user-name').textContent = user
  showMessage($('jobs-message'), '')
  setChildren($('jobs'))
  setChildren($('claim-list')) // the last user's view of them is not the next one's
  $('claims').hidden = true
  refreshJobs()
  clearInterval(jobsTimer)
  jobsTimer = setInterval(refreshJobs, JOBS_POLL_MS)
  touched()
  offerCopy()
}

// ---- copy sessions: the device's counters are read at start and end; the difference is charged ----

/** Shows Copy when this terminal reads its device's counters (404 otherwise), and a session still open. */
async function offerCopy () {
  const asked = epoch
  try {
    const { session } = await api('GET', '/api/panel/copy')
    if (asked !== epoch) return
    $('copy').hidden = false
    if (session !== null) showCopying(session)
  } catch {
    if (asked === epoch) $('copy').hidden = true
  }
}

function showCopying (session) {
  copying = true
  copiedPages = session.copied?.pages ?? 0
  $('jobs-view').classList.add('copying')
  $('copy-panel').hidden = false
  showCopyCount(session)
  clearInterval(copyTimer)
  copyTimer = setInterval(refreshCopy, JOBS_POLL_MS)
}

function leaveCopying () {
  copying = false
  clearInterval(copyTimer)
  $('jobs-view').classList.remove('copying')
  $('copy-panel').hidden = true
}

function showCopyCount (session) {
  const c = session.copied
  $('copy-count').textContent = c === undefined
    ? `Counter not answering: ${session.countersError ?? 'no reading yet'}`
    : `${c.pages} page${c.pages === 1 ? '' : 's'} copied${c.colorPages > 0 ? ` (${c.colorPages} colour)` : ''}`
}

async function refreshCopy () {
  const asked = epoch
  try {
    const { session } = await api('GET', '/api/panel/copy')
    if (asked !== epoch || !copying) return
    if (session === null) { leaveCopying(); return }
    // copying at the device is use of the panel's session: pages moving keep the user logged in
    if ((session.copied?.pages ?? 0) > copiedPages) touched()
    copiedPages = session.copied?.pages ?? copiedPages
    showCopyCount(session)
  } catch (err) {
    if (asked === epoch && err instanceof ApiError && err.status === 401) showLogin('Your session ended. Please log in again.')
  }
}

async function startCopy () {
  touched()
  $('copy').disabled = true
  try {
    const { session } = await api('POST', '/api/panel/copy/start')
    showMessage($('jobs-message'), '')
    showCopying(session)
  } catch (err) {
    showMessage($('jobs-message'), err.message, 'error')
  } finally {
    $('copy').disabled = false
  }
}

/** What ending a session came to, in the user's words. */
function copyOutcome (end) {
  if (end.outcome === 'charged') return `Copies charged: ${end.pages} page${end.pages === 1 ? '' : 's'}${end.colorPages > 0 ? `, ${end.colorPages} in colour` : ''}.`
  if (end.outcome === 'nothing-copied') return 'No copies made; nothing charged.'
  return `Copies not charged: ${end.message}`
}

/** Ends the open copy session (`reason`: done, logout, idle, next-user); its outcome in words, or '' when none was open. */
async function endCopy (reason) {
  if (!copying) return ''
  leaveCopying()
  try {
    return copyOutcome(await api('POST', '/api/panel/copy/end', { json: { reason } }))
  } catch (err) {
    return `Copy session: ${err.message}`
  }
}

/** Any touch or key restarts the idle countdown while someone is logged in. */
function touched () {
  clearTimeout(idleTimer)
  if ($('jobs-view').hidden) return
  idleTimer = setTimeout(() => { logout(`Logged out after ${Math.round(idleLogoutMs / 1000)} s without use.`, 'idle') }, idleLogoutMs)
}

async function logout (message = '', reason = 'logout') {
  epoch++
  clearInterval(jobsTimer)
  const copied = await endCopy(reason)
  if (copied !== '') message = message === '' ? copied : `${message} ${copied}`
  try {
    await api('POST', '/api/logout')
  } catch {
    // the session may already be gone; the panel returns to login either way
  }
  setCsrfToken(undefined)
  $('username').value = ''
  showLogin(message)
}

const STATE_TEXT = {
  held: 'Waiting',
  releasing: 'Sending to the printer…',
  printing: 'Printing…',
  printed: 'Printed',
  failed: 'Not printed'
}

function facts (job) {
  const parts = [`${formatCount(job.pages)} page${job.pages === 1 ? '' : 's'}`]
  if (job.colorPages !== undefined && job.colorPages > 0) parts.push(`${job.colorPages} colour`)
  if (job.copies > 1) parts.push(`${job.copies} copies`)
  parts.push(job.sides === 'one-sided' ? 'one-sided' : 'two-sided')
  if (job.source !== undefined) parts.push(`from ${job.source}`)
  if (job.delegatedBy !== undefined) parts.push(`for ${job.delegatedBy} (delegate)`)
  parts.push(age(job.createdAt))
  return parts.join(' · ')
}

function age (ms) {
  const minutes = Math.max(0, Math.round((Date.now() - ms) / 60_000))
  if (minutes < 1) return 'just now'
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.round(minutes / 60)
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`
}

function stateClass (state) {
  return state === 'printed' ? 'printed' : state === 'failed' ? 'failed' : state === 'held' ? '' : 'busy'
}

function renderJob (job) {
  const state = h('span', { class: `job-state ${stateClass(job.state)}` }, STATE_TEXT[job.state] ?? job.state)
  const buttons = job.state === 'held'
    ? [
        h('button', { type: 'button', class: 'primary', 'data-action': 'release', onclick: () => act(() => api('POST', `/api/panel/jobs/${encodeURIComponent(job.id)}/release`)) }, 'Print'),
        h('button', { type: 'button', class: 'danger', 'data-action': 'delete', 'aria-label': `Delete ${job.name}`, onclick: () => act(() => api('DELETE', `/api/panel/jobs/${encodeURIComponent(job.id)}`)) }, 'Delete')
      ]
    : []
  return h('li', { class: 'job', 'data-job': job.id, 'data-state': job.state },
    h('div', { class: 'job-main' },
      h('div', { class: 'job-name' }, job.name === '' ? '(untitled)' : job.name),
      h('div', { class: 'job-facts' }, facts(job)),
      job.message !== undefined && job.state !== 'held' ? h('div', { class: 'job-facts' }, job.message) : null,
      job.unavailable === true ? h('div', { class: 'job-facts unavailable' }, `${job.source ?? 'The computer holding it'} is off or not reachable: release it when it is back`) : null),
    state,
    h('div', { class: 'job-buttons' }, buttons))
}

/** A job nobody owns yet (the site does not trust the name workstations send), with its Claim button. */
function renderClaimable (job) {
  const parts = [`${formatCount(job.pages)} page${job.pages === 1 ? '' : 's'}`, job.queue]
  if (job.from !== undefined) parts.push(`from ${job.from}`)
  parts.push(age(job.createdAt))
  return h('li', { class: 'job', 'data-job': job.id, 'data-state': 'unclaimed' },
    h('div', { class: 'job-main' },
      h('div', { class: 'job-name' }, job.name === '' ? '(untitled)' : job.name),
      h('div', { class: 'job-facts' }, parts.join(' · '))),
    h('span', { class: 'job-state' }, 'Not claimed'),
    h('div', { class: 'job-buttons' },
      h('button', { type: 'button', class: 'primary', 'data-action': 'claim', 'aria-label': `Claim ${job.name}`, onclick: () => act(() => api('POST', `/api/claims/${encodeURIComponent(job.id)}`)) }, 'Claim')))
}

/** Jobs to claim, where this terminal has any (a terminal of an older version answers 404: none). */
async function claimable () {
  try {
    return (await api('GET', '/api/claims')).jobs
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return []
    throw err
  }
}

/** The user's credit (issue 20), or undefined where this node has none to tell. */
async function myCredit () {
  try {
    return await api('GET', '/api/credit/mine')
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined
    throw err
  }
}

/** Beside the user's name: their credit (and what this terminal holds of it) while credit is enforced, and what is left of this month's quotas. */
function showCredit (credit) {
  const el = $('credit')
  const parts = []
  if (credit?.enforced && credit.currency !== undefined) {
    parts.push(credit.here === credit.balance
      ? `credit ${money(credit.balance, credit.currency)}`
      : `credit ${money(credit.balance, credit.currency)} (${money(credit.here, credit.currency)} here)`)
  }
  for (const q of credit?.quotas ?? []) {
    parts.push(q.measure === 'cost' ? `${money(q.left, credit.currency ?? '')} left this month` : `${q.left} ${q.measure === 'colour' ? 'colour pages' : 'pages'} left this month`)
  }
  el.hidden = parts.length === 0
  el.textContent = parts.join(' · ')
}

async function refreshJobs () {
  if ($('jobs-view').hidden) return
  const asked = epoch
  try {
    const [{ jobs }, claims, credit] = await Promise.all([api('GET', '/api/panel/jobs'), claimable(), myCredit()])
    if (asked !== epoch) return
    showCredit(credit)
    setChildren($('claim-list'), claims.map(renderClaimable))
    $('claims').hidden = claims.length === 0
    setChildren($('jobs'), jobs.map(renderJob))
    $('no-jobs').hidden = jobs.length > 0
    $('release-all').disabled = busy || !jobs.some((j) => j.state === 'held')
    // a user waiting for their printout is not logged out under their feet
    if (jobs.some((j) => j.state === 'releasing' || j.state === 'printing')) touched()
  } catch (err) {
    if (asked !== epoch) return
    if (err instanceof ApiError && err.status === 401) showLogin('Your session ended. Please log in again.')
    else showMessage($('jobs-message'), err.message, 'error')
  }
}

/** Runs one action of the job list (one at a time), then shows the list as it now is. */
async function act (action) {
  if (busy) return
  busy = true
  touched()
  try {
    const result = await action()
    if (result !== undefined && Array.isArray(result.refused) && result.refused.length > 0) {
      showMessage($('jobs-message'), `Sent ${result.released.length} to the printer; not sent: ${result.refused.map((r) => `${r.name} (${r.message})`).join('; ')}`)
    } else if (result !== undefined && Array.isArray(result.released)) {
      showMessage($('jobs-message'), `Sent ${result.released.length} job${result.released.length === 1 ? '' : 's'} to the printer.`)
    } else {
      showMessage($('jobs-message'), '')
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { showLogin('Your session ended. Please log in again.'); return }
    showMessage($('jobs-message'), err.message, 'error')
  } finally {
    busy = false
    await refreshJobs()
  }
}

/**
 * Keyboard-wedge card readers: a burst of fast keystrokes ending in Enter is a card, wherever
 * the focus is; what the burst typed into a field is taken back out. A card presented while
 * someone is logged in logs them out first.
 */
const wedge = { chars: '', last: 0, field: undefined, before: '' }

function onKey (event) {
  const now = performance.now()
  const fast = now - wedge.last <= WEDGE_GAP_MS
  wedge.last = now
  if (event.key === 'Enter') {
    const card = fast ? wedge.chars : ''
    wedge.chars = ''
    if (card.length < WEDGE_MIN_CHARS) return
    event.preventDefault()
    event.stopPropagation()
    if (wedge.field !== undefined) wedge.field.value = wedge.before
    cardLogin(card)
    return
  }
  if (event.key.length !== 1) { wedge.chars = ''; return }
  if (!fast || wedge.chars === '') {
    const field = document.activeElement instanceof HTMLInputElement ? document.activeElement : undefined
    wedge.chars = ''
    wedge.field = field
    wedge.before = field?.value ?? ''
  }
  wedge.chars += event.key
}

// ---- card registration (issue 15): a logged-in user presents a new card; it is written to this terminal's enrolments ----

/** Opens the form: the next card the reader sends (or one typed) is registered for the logged-in user. */
function openEnrol () {
  closePinChange()
  showMessage($('enrol-error'), '', 'error')
  $('enrol-card').value = ''
  $('enrol-panel').hidden = false
  $('enrol-card').focus()
}

async function registerCard (card) {
  try {
    const { registered } = await api('POST', '/api/enrol/card', { json: { card } })
    $('enrol-panel').hidden = true
    showMessage($('jobs-message'), registered ? 'Your card is registered: hold it to the reader to log in.' : 'This card is already yours.')
  } catch (err) {
    showMessage($('enrol-error'), err.message, 'error')
  } finally {
    $('enrol-card').value = ''
  }
}

// ---- a user's PIN change (issue 15's enrolment): written to this terminal's enrolments; refused when another user holds the PIN ----

/** The PIN field the change form's keypad types into (the last one touched). */
let pinField = 'old-pin'

function openPinChange () {
  $('enrol-panel').hidden = true
  for (const id of ['old-pin', 'new-pin', 'repeat-pin']) $(id).value = ''
  showMessage($('pin-error'), '', 'error')
  $('jobs-view').classList.add('changing-pin')
  $('pin-panel').hidden = false
  pinField = 'old-pin'
  $('old-pin').focus()
}

function closePinChange () {
  $('pin-panel').hidden = true
  $('jobs-view').classList.remove('changing-pin')
}

async function changePin (event) {
  event.preventDefault()
  const [oldPin, newPin, repeat] = ['old-pin', 'new-pin', 'repeat-pin'].map((id) => $(id).value)
  if (oldPin === '' || newPin === '' || repeat === '') { showMessage($('pin-error'), 'Enter your current PIN and the new one twice.', 'error'); return }
  $('pin-submit').disabled = true
  try {
    await api('POST', '/api/enrol/pin', { json: { oldPin, newPin, repeat } })
    closePinChange()
    showMessage($('jobs-message'), 'Your PIN is changed: log in with the new one from now on.')
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { showLogin('Your session ended. Please log in again.'); return }
    for (const id of ['new-pin', 'repeat-pin']) $(id).value = ''
    showMessage($('pin-error'), err.message, 'error')
  } finally {
    $('pin-submit').disabled = false
  }
}

function pinKeypad (event) {
  const key = event.target.closest('button')?.dataset.key
  if (key === undefined) return
  const field = $(pinField)
  if (key === 'clear') field.value = ''
  else if (key === 'back') field.value = field.value.slice(0, -1)
  else field.value += key
}

async function cardLogin (card) {
  if (!$('jobs-view').hidden && !$('enrol-panel').hidden) { await registerCard(card); return } // registering, not a next user
  if (!$('jobs-view').hidden) {
    await endCopy('next-user')
    try { await api('POST', '/api/logout') } catch { /* the session may be gone already */ }
    setCsrfToken(undefined)
  }
  try {
    const session = await api('POST', '/api/login/card', { json: { card } })
    setCsrfToken(session.csrfToken)
    showJobs(session.user)
  } catch (err) {
    showLogin(err.message)
  }
}

/** How often the panel asks for a card posted by a reader daemon (POST /api/panel/card): the user is waiting at the reader. */
const READER_POLL_MS = 1000
let readerTimer

/** A card a reader daemon posted is logged in as a card typed by a wedge reader (the terminal hands it to this page once). */
async function claimReaderCard () {
  try {
    const { card } = await api('POST', '/api/panel/card/claim')
    if (typeof card === 'string') await cardLogin(card)
  } catch (err) {
    // 403: this page is not on the device itself, so no daemon card is ever handed to it (the wedge still works);
    // anything else (the terminal restarting) is retried at the next poll
    if (err instanceof ApiError && err.status === 403) clearInterval(readerTimer)
  }
}

async function login (event) {
  event.preventDefault()
  const username = pinOnly ? PIN_ONLY_USERNAME : $('username').value.trim()
  const pin = $('pin').value
  if (username === '' || pin === '') {
    showMessage($('login-error'), pinOnly ? 'Enter your PIN.' : 'Enter your user name and PIN.', 'error')
    return
  }
  if (busyLogin) return
  busyLogin = true
  $('login-button').disabled = true
  try {
    const session = await api('POST', '/api/login', { json: { username, pin } })
    setCsrfToken(session.csrfToken)
    showJobs(session.user)
  } catch (err) {
    $('pin').value = ''
    // the server's 401 names the username too; with the PIN alone there was none
    showMessage($('login-error'), pinOnly && err instanceof ApiError && err.status === 401 ? 'Wrong PIN.' : err.message, 'error')
  } finally {
    busyLogin = false
    $('login-button').disabled = false
  }
}

function keypad (event) {
  const key = event.target.closest('button')?.dataset.key
  if (key === undefined) return
  const pin = $('pin')
  if (key === 'enter') $('login-form').requestSubmit()
  else if (key === 'clear') pin.value = ''
  else if (key === 'back') pin.value = pin.value.slice(0, -1)
  else pin.value += key
}

async function boot () {
  $('login-form').addEventListener('submit', login)
  $('login-keypad').addEventListener('click', keypad)
  $('pin-keypad').addEventListener('click', pinKeypad)
  for (const id of ['old-pin', 'new-pin', 'repeat-pin']) $(id).addEventListener('focus', () => { pinField = id })
  $('change-pin').addEventListener('click', openPinChange)
  $('pin-cancel').addEventListener('click', closePinChange)
  $('pin-panel').addEventListener('submit', changePin)
  $('logout').addEventListener('click', () => logout())
  $('release-all').addEventListener('click', () => act(() => api('POST', '/api/panel/release-all')))
  $('copy').addEventListener('click', () => startCopy())
  $('register-card').addEventListener('click', openEnrol)
  $('enrol-cancel').addEventListener('click', () => { $('enrol-panel').hidden = true })
  $('enrol-panel').addEventListener('submit', (event) => { event.preventDefault(); registerCard($('enrol-card').value.trim()) })
  $('copy-done').addEventListener('click', async () => {
    $('copy-done').disabled = true
    try { showMessage($('jobs-message'), await endCopy('done')) } finally { $('copy-done').disabled = false; await refreshJobs() }
  })
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, touched, { capture: true })
  document.addEventListener('keydown', onKey, { capture: true })
  await refreshStatus()
  setInterval(refreshStatus, STATUS_POLL_MS)
  readerTimer = setInterval(claimReaderCard, READER_POLL_MS)
  try {
    const session = await api('GET', '/api/session')
    if (session.admin) showLogin()
    else { setCsrfToken(session.csrfToken); showJobs(session.user) }
  } catch {
    showLogin()
  }
}

boot()
