// The reports page: a report from /api/reports with the admin's filters, how complete it is
// (per peer: connected, last record, pending since), totals, charts drawn with uPlot (served
// by the node from node_modules), the breakdown and top lists, CSV download and printing.
import { api, ApiError, h, setChildren, showMessage, showSiteInfo, setCsrfToken, formatTime, adminLoginForm, roleText } from './common.js'
import { costText } from './money.js'
import { refreshCredit } from './credit.js'

/* global uPlot */

const $ = (id) => document.getElementById(id)
const views = { loading: $('loading'), login: $('login-view'), report: $('report-view') }
const status = $('status')
const loginError = $('login-error')
/** Height of each chart in CSS pixels: readable on a phone, three fit a laptop screen. */
const CHART_HEIGHT = 220
/** One day in ms (the "to" date is inclusive on the page, exclusive in the API). */
const DAY_MS = 86_400_000
/** Series colours of the charts, one per site (repeating past eight). */
const PALETTE = ['#0b5cad', '#b42318', '#17663a', '#8a5a00', '#6941c6', '#0e7490', '#be185d', '#4d5761']
/** Labels of the breakdown's dimensions (the API's names → column headers). */
const DIMENSION_LABELS = { site: 'Site', user: 'User', group: 'Group', printer: 'Printer', peer: 'Peer', day: 'Day', week: 'Week', month: 'Month', kind: 'Kind', color: 'Colour', sides: 'Sides', media: 'Paper size' }

let charts = []
/** /api/info's answer: whether this node is a site (it has prices of its own). */
let nodeInfo

function show (name) {
  for (const [key, el] of Object.entries(views)) el.hidden = key !== name
}

/** The filters of the form as API query parameters (without groupBy). */
function filterParams () {
  const form = $('filters')
  const params = new URLSearchParams()
  for (const name of ['site', 'user', 'group', 'printer', 'kind']) {
    const value = form.elements[name].value.trim()
    if (value !== '') params.set(name, value)
  }
  if ($('from').value !== '') params.set('from', $('from').value)
  if ($('to').value !== '') params.set('to', new Date(Date.parse(`${$('to').value}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10))
  return params
}

const withGroupBy = (params, groupBy) => {
  const p = new URLSearchParams(params)
  p.set('groupBy', groupBy)
  return p.toString()
}

function renderFreshness (report) {
  const summary = $('freshness-summary')
  if (report.pending.length === 0) {
    summary.textContent = `Complete: every peer that records usage (${report.peers.length}) is connected.`
    summary.classList.remove('warning')
  } else {
    summary.textContent = report.pending.map((p) => `Pending from ${p.site ?? p.peer}${p.pendingSince !== undefined ? ` since ${formatTime(p.pendingSince)}` : ''}`).join('; ') +
      ': not connected, so its records since then may be missing from these totals.'
    summary.classList.add('warning')
  }
  setChildren($('peers').tBodies[0], report.peers.map((p) => h('tr', { 'data-peer': p.peer },
    h('th', { scope: 'row' }, p.site ?? p.role ?? '', ' ', h('code', { title: p.peer }, `${p.peer.slice(0, 8)}…`)),
    h('td', {}, p.connected ? 'yes' : p.revoked === true ? 'no (revoked)' : 'no'),
    h('td', { class: 'num' }, String(p.records)),
    h('td', {}, formatTime(p.lastRecordAt)),
    h('td', {}, p.pendingSince !== undefined ? formatTime(p.pendingSince) : '')
  )))
}

function renderTotals (report) {
  const t = report.totals
  const share = t.pages === 0 ? 0 : Math.round(t.colorPages * 100 / t.pages)
  const facts = [
    ['Records', t.records], ['Pages', t.pages], ['Colour pages', `${t.colorPages} (${share} %)`], ['Mono pages', t.monoPages],
    ['Sheets', t.sheets], ['Sheets saved by duplex', t.sheetsSaved], ['Copies', t.copies], ['Cost', costText(t)],
    ['Unpriced records', t.unpriced]
  ]
  setChildren($('totals'), facts.flatMap(([label, value]) => [h('dt', {}, label), h('dd', { 'data-total': label }, String(value))]))
}

function renderBreakdown (report) {
  const dims = report.groupBy
  const head = [...dims.map((d) => DIMENSION_LABELS[d] ?? d), 'Records', 'Pages', 'Colour pages', 'Sheets', 'Sheets saved', 'Cost', 'Unpriced']
  setChildren($('breakdown').tHead, h('tr', {}, head.map((label, i) => h('th', { scope: 'col', class: i >= dims.length ? 'num' : undefined }, label))))
  const cells = (t) => [t.records, t.pages, t.colorPages, t.sheets, t.sheetsSaved].map((n) => h('td', { class: 'num' }, String(n)))
    .concat([h('td', { class: 'num' }, costText(t)), h('td', { class: 'num' }, String(t.unpriced))])
  const rows = report.rows.map((r) => h('tr', {}, r.keys.map((k, i) => i === 0 ? h('th', { scope: 'row' }, k) : h('td', {}, k)), cells(r)))
  rows.push(h('tr', { class: 'total' }, h('th', { scope: 'row' }, 'Total'), dims.slice(1).map(() => h('td', {})), cells(report.totals)))
  setChildren($('breakdown').tBodies[0], rows)
}

function renderTop (report) {
  const row = (r) => h('tr', {}, h('th', { scope: 'row' }, r.keys[0]), h('td', { class: 'num' }, String(r.pages)), h('td', { class: 'num' }, costText(r)))
  setChildren($('top-users').tBodies[0], report.top.users.map(row))
  setChildren($('top-printers').tBodies[0], report.top.printers.map(row))
}

const dayToSeconds = (day) => Date.parse(`${day}T00:00:00Z`) / 1000
/**
 * The time axis over `xs` (seconds) with a day either side, so one day's point sits in a
 * readable few days (uPlot widens a single point's range to 1000 days when x is in seconds).
 */
const daysAround = (xs) => () => xs.length === 0 ? [Date.now() / 1000 - DAY_MS / 1000, Date.now() / 1000] : [xs[0] - DAY_MS / 1000, xs[xs.length - 1] + DAY_MS / 1000]

/** Draws the three charts afresh (uPlot instances of the last report are destroyed). */
function renderCharts (bySiteDay, byDay, report) {
  for (const c of charts) c.destroy()
  charts = []
  const width = (el) => Math.max(el.clientWidth, 200)

  const days = [...new Set(bySiteDay.rows.map((r) => r.keys[0]))].sort()
  const sites = [...new Set(bySiteDay.rows.map((r) => r.keys[1]))].sort()
  const pages = new Map(bySiteDay.rows.map((r) => [`${r.keys[0]}|${r.keys[1]}`, r.pages]))
  const pagesEl = $('chart-pages')
  charts.push(new uPlot({
    width: width(pagesEl),
    height: CHART_HEIGHT,
    series: [{}, ...sites.map((s, i) => ({ label: s, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: true, size: 7 } }))],
    axes: [{}, { label: 'pages' }],
    scales: { x: { time: true, range: daysAround(days.map(dayToSeconds)) } }
  }, [days.map(dayToSeconds), ...sites.map((s) => days.map((d) => pages.get(`${d}|${s}`) ?? 0))], pagesEl))

  const colourEl = $('chart-colour')
  charts.push(new uPlot({
    width: width(colourEl),
    height: CHART_HEIGHT,
    series: [{}, { label: 'colour %', stroke: PALETTE[1], fill: 'rgba(180, 35, 24, 0.12)', width: 2, points: { show: true, size: 7 } }],
    axes: [{}, { label: '% colour' }],
    scales: { x: { time: true, range: daysAround(byDay.rows.map((r) => dayToSeconds(r.keys[0]))) }, y: { range: [0, 100] } }
  }, [byDay.rows.map((r) => dayToSeconds(r.keys[0])), byDay.rows.map((r) => r.pages === 0 ? 0 : Math.round(r.colorPages * 1000 / r.pages) / 10)], colourEl))

  const printers = report.top.printers
  const printersEl = $('chart-printers')
  charts.push(new uPlot({
    width: width(printersEl),
    height: CHART_HEIGHT,
    series: [{ label: 'printer', value: (_u, v) => v === null ? '' : (printers[v]?.keys[0] ?? '') }, { label: 'pages', fill: PALETTE[0], stroke: PALETTE[0], paths: uPlot.paths.bars({ size: [0.6, 64] }), points: { show: false } }],
    axes: [{ values: (_u, splits) => splits.map((v) => Number.isInteger(v) ? (printers[v]?.keys[0] ?? '') : ''), space: 40 }, { label: 'pages' }],
    scales: { x: { time: false, range: [-0.5, Math.max(printers.length - 0.5, 0.5)] }, y: { range: (_u, _min, max) => [0, Math.max(max, 1)] } }
  }, [printers.map((_p, i) => i), printers.map((p) => p.pages)], printersEl))
}

async function refresh () {
  const params = filterParams()
  const groupBy = $('groupBy').value
  $('csv-link').href = `/api/reports.csv?${withGroupBy(params, groupBy)}`
  const [report, bySiteDay, byDay] = await Promise.all([
    api('GET', `/api/reports?${withGroupBy(params, groupBy)}`),
    api('GET', `/api/reports?${withGroupBy(params, 'day,site')}`),
    api('GET', `/api/reports?${withGroupBy(params, 'day')}`)
  ])
  renderFreshness(report)
  renderTotals(report)
  renderBreakdown(report)
  renderTop(report)
  renderCharts(bySiteDay, byDay, report)
  document.body.dataset.reportAt = String(report.generatedAt)
}

/** Fills the price editors from /api/prices (without the bookkeeping fields). */
async function refreshPrices () {
  const { list, site } = await api('GET', '/api/prices')
  const strip = (value, fields) => value === undefined ? undefined : Object.fromEntries(fields.filter((f) => value[f] !== undefined).map((f) => [f, value[f]]))
  $('price-list').value = JSON.stringify(strip(list, ['currency', 'rules', 'sites', 'printers']) ?? { currency: 'EUR', rules: [] }, null, 2)
  $('site-prices').value = JSON.stringify(strip(site, ['rules', 'printers']) ?? { rules: [], printers: {} }, null, 2)
  $('site-prices-form').hidden = nodeInfo?.site === undefined || nodeInfo?.role === 'central'
}

/** Saves one price editor with PUT `path`; a bad list is refused by the node with the field named. */
async function savePrices (path, textarea, what) {
  const out = $('prices-status')
  let json
  try {
    json = JSON.parse(textarea.value)
  } catch (err) {
    showMessage(out, `${what} is not valid JSON: ${err.message}`, 'error')
    return
  }
  try {
    await api('PUT', path, { json })
    showMessage(out, `${what} saved: new records are priced with it.`)
    await refreshPrices()
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { failed(err); return }
    showMessage(out, `${what} not saved: ${err.message}`, 'error')
  }
}

$('price-list-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void savePrices('/api/prices', $('price-list'), 'The price list')
})
$('site-prices-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void savePrices('/api/prices/site', $('site-prices'), 'The site\'s prices')
})

function failed (err) {
  if (err instanceof ApiError && err.status === 401) { loggedOut('Your session has ended. Please sign in again.'); return }
  showMessage(status, `Could not load the report: ${err.message}`, 'error')
}

/** Which price lists the signed-in admin may save: a report viewer none, a site admin only its site's own. */
function showPriceForms (session) {
  const viewer = session.role === 'report-viewer'
  const meshWide = !viewer && session.role !== 'site-admin'
  for (const [form, may] of [[$('price-list-form'), meshWide], [$('site-prices-form'), !viewer]]) {
    for (const button of form.querySelectorAll('button')) button.hidden = !may
    for (const area of form.querySelectorAll('textarea')) area.readOnly = !may
  }
}

function loggedIn (session) {
  setCsrfToken(session.csrfToken)
  $('user-name').textContent = session.user
  $('user-role').textContent = roleText(session)
  showPriceForms(session)
  $('whoami').hidden = false
  show('report')
  refresh().catch(failed)
  refreshPrices().catch(failed)
  refreshCredit().catch(failed)
}

function loggedOut (message = '') {
  setCsrfToken(undefined)
  $('whoami').hidden = true
  showMessage(loginError, message, 'error')
  show('login')
  login.focus()
}

$('filters').addEventListener('submit', (event) => {
  event.preventDefault()
  showMessage(status, '')
  refresh().catch(failed)
})

$('print-button').addEventListener('click', () => window.print())

const login = adminLoginForm($('login-form'), loginError, loggedIn)

$('logout').addEventListener('click', async () => {
  try {
    await api('POST', '/api/logout')
  } finally {
    loggedOut()
  }
})

let resizeTimer
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer)
  resizeTimer = setTimeout(() => { for (const c of charts) c.setSize({ width: Math.max(c.root.parentElement.clientWidth, 200), height: CHART_HEIGHT }) }, 100)
})

async function main () {
  // this month by default: a report reads only the months it covers (an admin clears it for everything)
  $('from').value = `${new Date().toISOString().slice(0, 7)}-01`
  nodeInfo = await showSiteInfo($('site-info'))
  // an admin account first where accounts exist; the token where none do yet
  login.preferToken(nodeInfo?.adminAccounts !== true)
  try {
    const session = await api('GET', '/api/session')
    if (!session.admin) { loggedOut('You are logged in as a user; sign in as an administrator to see reports.'); return }
    loggedIn(session)
  } catch (err) {
    loggedOut(err instanceof ApiError && err.status === 401 ? '' : err.message)
  }
}

void main()
