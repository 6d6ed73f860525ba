// Shared browser code of the printmesh pages: DOM building (text only, never HTML),
// the JSON API client with the CSRF token, the live job table and how a job held by a
// partner site (roaming) is marked.

/** How often job lists refresh while a page is open. */
export const POLL_INTERVAL_MS = 2000

/**
 * Creates an element. `props`: `class`, `on<event>` handlers, other keys as attributes.
 * Children: nodes or strings; strings always become text nodes, so data never becomes markup.
 */
export function h (tag, props = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value)
    else if (key === 'class') el.className = value
    else el.setAttribute(key, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

/** Replaces an element's content with the given children (text-safe). */
export function setChildren (el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false)
    .map((c) => c instanceof Node ? c : document.createTextNode(String(c))))
}

/** An API error carrying the HTTP status and the server's message. */
export class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
  }
}

let csrfToken

/** Remembers the session's CSRF token (from login or GET /api/session). */
export function setCsrfToken (token) {
  csrfToken = token
}

/**
 * Calls the JSON API. `options.json` sends a JSON body, `options.csv` a text/csv body.
 * Resolves with the parsed response; rejects with {@link ApiError}.
 */
export async function api (method, path, options = {}) {
  const headers = { accept: 'application/json' }
  let body
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.json)
  } else if (options.csv !== undefined) {
    headers['content-type'] = 'text/csv'
    body = options.csv
  }
  if (method !== 'GET' && csrfToken !== undefined) headers['x-csrf-token'] = csrfToken
  let response
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin' })
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`)
  }
  const text = await response.text()
  let data
  try {
    data = text === '' ? {} : JSON.parse(text)
  } catch {
    throw new ApiError(response.status, `unexpected answer from the server (HTTP ${response.status})`)
  }
  if (!response.ok) throw new ApiError(response.status, data.error ?? data.message ?? `HTTP ${response.status}`)
  return data
}

/** Shows a message in a status element; `kind` is `info` or `error`. */
export function showMessage (el, text, kind = 'info') {
  el.textContent = text
  el.hidden = text === ''
  el.classList.toggle('error', kind === 'error')
}

/** Local date and time of a ms timestamp. */
export function formatTime (ms) {
  return ms === undefined ? '–' : new Date(ms).toLocaleString()
}

/** A count, or a dash while unknown (the document is not parsed yet). */
export function formatCount (n) {
  return n === undefined || n === null ? '–' : String(n)
}

/** A job's name as shown: `(untitled)` when it has none. */
export function jobName (job) {
  return job.name === '' ? '(untitled)' : job.name
}

/** A job's name for button labels: with the host holding it when a partner site does. */
export function jobLabel (job) {
  return job.source === undefined ? jobName(job) : `${jobName(job)} from ${job.source.hostname}`
}

/** The `from <host>` badge of a job a partner site holds (roaming). */
export function sourceBadge (job) {
  const { site, hostname } = job.source
  const title = job.prefetched === true ? `Held at site ${site}; a copy is ready here` : `Held at site ${site}`
  if (job.unavailable === true) return h('span', { class: 'source-host unavailable', title: `${hostname} is off or not reachable: release this job when it is back` }, `from ${hostname} (off)`)
  return h('span', { class: 'source-host', title }, `from ${hostname}`)
}

/** A job table's name cell: the name, and the source badge when a partner site holds the job. */
export function jobNameCell (job) {
  return job.source === undefined ? jobName(job) : h('span', {}, jobName(job), ' ', sourceBadge(job))
}

/** States in which a job can still be released / deleted. */
const RELEASABLE = new Set(['held'])
const FINAL = new Set(['printed', 'failed', 'deleted', 'expired'])

/** Fills a printer <select> from /api/printers, keeping the current choice. */
export function renderPrinterOptions (select, printers) {
  const previous = select.value
  setChildren(select, printers.map((p) => h('option', { value: p.name }, `${p.name} (${p.state})`)))
  if (printers.some((p) => p.name === previous)) select.value = previous
  select.disabled = printers.length === 0
}

/**
 * A job table that updates rows in place (keyed by job id), so polling does not steal
 * focus from a button the user is on.
 *
 * columns: array of { label, value(job) => string | Node, num?: true (right-aligned count) }.
 * actions: { release(job), remove(job) } called from the row buttons.
 */
export class JobTable {
  constructor (tbody, columns, actions) {
    this.tbody = tbody
    this.columns = columns
    this.actions = actions
    this.rows = new Map()
  }

  render (jobs) {
    const sorted = [...jobs].sort((a, b) => b.createdAt - a.createdAt)
    const seen = new Set()
    let previous = null
    for (const job of sorted) {
      seen.add(job.id)
      let row = this.rows.get(job.id)
      if (row === undefined) {
        row = this.createRow(job)
        this.rows.set(job.id, row)
      }
      this.updateRow(row, job)
      const wanted = previous === null ? this.tbody.firstChild : previous.nextSibling
      if (wanted !== row) this.tbody.insertBefore(row, wanted)
      previous = row
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove()
        this.rows.delete(id)
      }
    }
  }

  createRow (job) {
    const cells = this.columns.map((c, i) => i === 0 ? h('th', { scope: 'row' }) : h('td', { class: c.num ? 'num' : undefined }))
    const release = h('button', { type: 'button', class: 'primary', 'data-action': 'release' }, 'Release')
    const remove = h('button', { type: 'button', class: 'danger', 'data-action': 'delete' }, 'Delete')
    const row = h('tr', { 'data-job-id': job.id }, cells, h('td', { class: 'actions' }, release, remove))
    row.job = job
    release.addEventListener('click', () => this.actions.release(row.job, release))
    remove.addEventListener('click', () => this.actions.remove(row.job, remove))
    return row
  }

  updateRow (row, job) {
    row.job = job
    this.columns.forEach((column, i) => {
      const value = column.value(job)
      const cell = row.cells[i]
      if (value instanceof Node) setChildren(cell, value)
      else if (cell.textContent !== value) cell.textContent = value
    })
    const [release, remove] = row.querySelectorAll('button')
    release.hidden = !RELEASABLE.has(job.state)
    remove.hidden = FINAL.has(job.state)
    release.setAttribute('aria-label', `Release ${jobLabel(job)}`)
    remove.setAttribute('aria-label', `Delete ${jobLabel(job)}`)
  }
}

/** A state badge; the class names come from a fixed list, the text is the state keyword. */
export function stateBadge (job) {
  const known = ['received', 'held', 'releasing', 'printing', 'printed', 'failed', 'deleted', 'expired']
  const cls = known.includes(job.state) ? `state state-${job.state}` : 'state'
  const title = job.message ?? job.reason
  return h('span', { class: cls, title }, job.state, job.state === 'failed' && title ? `: ${title}` : '')
}

/**
 * Runs `task` now and then every `intervalMs` after it finishes, until the returned stop().
 * A failing run is handed to `onError` and polling goes on.
 */
export function poll (task, onError, intervalMs = POLL_INTERVAL_MS) {
  let timer
  let stopped = false
  const tick = async () => {
    try {
      await task()
    } catch (err) {
      if (!stopped) onError(err)
    }
    if (!stopped) timer = setTimeout(tick, intervalMs)
  }
  void tick()
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}

/**
 * Shows what this node is in the header (`Site x · host`, or `Central node · peer …` on
 * central, which has no site); resolves with /api/info's answer, or undefined on an error.
 */
export async function showSiteInfo (el) {
  try {
    const info = await api('GET', '/api/info')
    const peer = typeof info.peer === 'string' ? `peer ${info.peer.slice(0, 8)}…${info.peer.slice(-6)}` : undefined
    if (info.site !== undefined && info.hostname !== undefined) el.textContent = `Site ${info.site} · ${info.hostname}`
    else if (info.role === 'central') el.textContent = ['Central node', peer].filter(Boolean).join(' · ')
    else el.textContent = [`${info.role ?? 'Unknown'} node`, info.site, peer].filter(Boolean).join(' · ')
    return info
  } catch (err) {
    el.textContent = `Site information unavailable: ${err.message}`
    return undefined
  }
}

/**
 * The administrator sign-in of the admin, console and reports pages (the one copy), built
 * into `form` (an empty `<form>`): a named admin account (username, password, authenticator
 * code) or the admin token, chosen with a checkbox; `POST /api/login/admin`. Secrets are
 * cleared from the form whatever happens; what went wrong is said in `loginError` (moved into
 * the form, above its button); `loggedIn(session)` on success. Returns `preferToken(useToken)`:
 * which way is shown first (the token where no account exists yet, /api/info's
 * `adminAccounts`), and `focus()`: the first field of the way shown.
 */
export function adminLoginForm (form, loginError, loggedIn) {
  const input = (id, props) => h('input', { id, spellcheck: 'false', ...props })
  const field = (id, label, props) => h('div', { class: 'field' }, h('label', { for: id }, label), input(id, props))
  const username = field('login-username', 'Your account', { name: 'username', autocomplete: 'username', autocapitalize: 'none', maxlength: 64 })
  const password = field('login-password', 'Your password', { name: 'password', type: 'password', autocomplete: 'current-password', maxlength: 256 })
  const totp = field('login-totp', 'Authenticator code (if set up)', { name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6 })
  const accountFields = h('div', { id: 'account-fields' }, username, password, totp)
  const tokenFields = field('token', 'Admin token', { name: 'token', type: 'password', autocomplete: 'current-password' })
  tokenFields.id = 'token-fields'
  const useToken = h('input', { id: 'use-token', type: 'checkbox' })
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in')
  setChildren(form, accountFields, tokenFields, h('div', { class: 'field' }, h('label', { class: 'choice' }, useToken, ' Sign in with the token instead (automation, first sign-in)')), button)
  form.insertBefore(loginError, button) // what went wrong, just above the button
  const value = (el) => el.querySelector('input').value
  const showMethod = () => {
    accountFields.hidden = useToken.checked
    tokenFields.hidden = !useToken.checked
  }
  showMethod()
  useToken.addEventListener('change', () => {
    showMethod()
    showMessage(loginError, '')
    ;(useToken.checked ? tokenFields : username).querySelector('input').focus()
  })
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    showMessage(loginError, '') // a new attempt: the last one's answer no longer holds
    const byToken = useToken.checked
    const secrets = (byToken ? [tokenFields] : [password, totp]).map((f) => f.querySelector('input'))
    let body
    if (byToken) {
      const token = value(tokenFields).trim()
      if (token === '') { showMessage(loginError, 'Enter the admin token.', 'error'); return }
      body = { token }
    } else {
      const name = value(username).trim()
      const code = value(totp).trim()
      if (name === '' || value(password) === '') { showMessage(loginError, 'Enter your username and password.', 'error'); return }
      body = { username: name, password: value(password), ...(code !== '' ? { totp: code } : {}) }
    }
    button.disabled = true
    try {
      const session = await api('POST', '/api/login/admin', { json: body })
      showMessage(loginError, '')
      loggedIn(session)
    } catch (err) {
      const wrong = byToken ? 'Wrong admin token.' : 'Wrong username, password or authenticator code.'
      showMessage(loginError, err instanceof ApiError && err.status === 401 ? wrong : err.message, 'error')
    } finally {
      for (const el of secrets) el.value = '' // secrets never stay in the form
      button.disabled = false
    }
  })
  return {
    preferToken (token) {
      useToken.checked = token
      showMethod()
    },
    focus () {
      (useToken.checked ? tokenFields : username).querySelector('input').focus()
    }
  }
}

/** The names the pages show for the admin roles. */
export const ROLE_NAMES = { 'mesh-admin': 'mesh admin', 'site-admin': 'site admin', 'report-viewer': 'report viewer' }

/** A session's role in words, `(report viewer)`, `(site admin of a, b)`; empty for the admin token. */
export function roleText (session) {
  if (session.account !== true || ROLE_NAMES[session.role] === undefined) return ''
  return `(${ROLE_NAMES[session.role]}${session.sites?.length > 0 ? ` of ${session.sites.join(', ')}` : ''})`
}
