// A user's own usage and cost on the release page (GET /api/usage/mine): their credit
// (GET /api/credit/mine, when credit is used), pages, colour pages, sheets, cost, and which
// peers' records may be missing.
import { api, ApiError, h, setChildren, formatTime } from './common.js'
import { costText, money } from './money.js'

/** Usage changes when a job prints: refreshing it this often is enough. */
const USAGE_REFRESH_MS = 10_000
let loadedAt = 0
/** Set when this node has no reports (404): the section stays hidden and is not asked for again. */
let absent = false

/** Shows the logged-in user's usage in `#my-usage`; at most every {@link USAGE_REFRESH_MS} unless `force`. */
export async function refreshMyUsage (force = false) {
  if (absent || (!force && Date.now() - loadedAt < USAGE_REFRESH_MS)) return
  let mine
  try {
    mine = await api('GET', '/api/usage/mine')
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) { absent = true; return }
    throw err
  }
  loadedAt = Date.now()
  const t = mine.totals
  const credit = await api('GET', '/api/credit/mine').catch(() => undefined)
  const balance = [
    ...(credit !== undefined && credit.currency !== undefined && (credit.enforced || credit.credited > 0) ? [['Credit', money(credit.balance, credit.currency)]] : []),
    ...(credit?.quotas ?? []).map((q) => [
      { pages: 'Pages left this month', colour: 'Colour pages left this month', cost: 'Spending left this month' }[q.measure],
      q.measure === 'cost' ? `${money(q.left, credit.currency ?? '')} of ${money(q.quota, credit.currency ?? '')}` : `${q.left} of ${q.quota}`
    ])
  ]
  setChildren(document.getElementById('my-usage-totals'), [
    ...balance,
    ['Jobs and copies', t.records], ['Pages', t.pages], ['Colour pages', t.colorPages], ['Sheets', t.sheets],
    ['Sheets saved by duplex', t.sheetsSaved], ['Cost', costText(t)]
  ].flatMap(([label, value]) => [h('dt', {}, label), h('dd', { 'data-usage': label }, String(value))]))
  const pending = document.getElementById('my-usage-pending')
  pending.textContent = mine.pending.map((p) => `Records from ${p.site ?? p.peer} since ${formatTime(p.pendingSince)} may be missing (not connected).`).join(' ')
  pending.hidden = mine.pending.length === 0
  document.getElementById('my-usage').hidden = false
}

/** Forgets the shown usage (log out). */
export function clearMyUsage () {
  loadedAt = 0
  document.getElementById('my-usage').hidden = true
  setChildren(document.getElementById('my-usage-totals'))
}
