// The reports page's credit and quotas (issue 20; GET /api/credit/users, /api/credit/policy,
// POST /api/credit/users/:user/top-up and /deduct): every user's balance and this month's quotas
// as this node knows them (central: the whole mesh), and a form to top up or deduct.
import { api, ApiError, h, setChildren, showMessage } from './common.js'
import { money } from './money.js'

const $ = (id) => document.getElementById(id)
/** Users shown at once: an admin looking for one types a name. */
const LIST_LIMIT = 200
/** Digits of a currency's minor unit, as Intl knows them (cents when it does not). */
function digitsOf (currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits
  } catch {
    return 2
  }
}
let currency = 'EUR'

/** `"10.5"` → 1050 minor units (integer arithmetic); undefined when it is not an amount. */
export function minorUnits (text, cur) {
  const digits = digitsOf(cur)
  const m = /^\s*(\d{1,9})(?:[.,](\d*))?\s*$/.exec(text)
  if (m === null || (m[2] ?? '').length > digits) return undefined
  return Number(m[1]) * 10 ** digits + Number((m[2] ?? '').padEnd(digits, '0') || '0')
}

function quotaText (q) {
  if (q.measure === 'cost') return `${money(q.left, currency)} of ${money(q.quota, currency)}`
  return `${q.left} of ${q.quota} ${q.measure === 'colour' ? 'colour pages' : 'pages'}`
}

/** Shows the policy and every user's credit. */
export async function refreshCredit () {
  const [policy, list] = await Promise.all([api('GET', '/api/credit/policy'), api('GET', `/api/credit/users?limit=${LIST_LIMIT}`)])
  currency = list.users.find((u) => u.currency !== undefined)?.currency ?? currency
  const quotas = policy.quotas?.length ?? 0
  $('credit-policy').textContent = `${policy.enforced ? `Prints and copies need credit; when it runs short a job is ${policy.atZero === 'mono-only' ? 'printed in monochrome if that fits, else refused' : 'refused'}.` : 'Credit is not enforced.'}${quotas > 0 ? ` ${quotas} monthly quota rule${quotas === 1 ? '' : 's'}.` : ''}`
  setChildren($('credit-rows'), list.users.map((u) => h('tr', { 'data-user': u.user },
    h('th', { scope: 'row' }, u.user),
    h('td', { class: 'num', 'data-col': 'balance' }, u.currency !== undefined ? money(u.balance, u.currency) : String(u.balance)),
    h('td', { class: 'num' }, u.currency !== undefined ? money(u.spent, u.currency) : String(u.spent)),
    h('td', { class: 'num' }, u.currency !== undefined ? money(u.reserved, u.currency) : String(u.reserved)),
    h('td', {}, u.quotas.map(quotaText).join(', ') || '–'))))
  $('credit-empty').hidden = list.users.length > 0
}

async function change (action) {
  const out = $('credit-status')
  const user = $('credit-user').value.trim()
  const amount = minorUnits($('credit-amount').value, currency)
  if (user === '') { showMessage(out, 'Name the user.', 'error'); return }
  if (amount === undefined || amount <= 0) { showMessage(out, `The amount must be like 10.00 (${currency}).`, 'error'); return }
  try {
    const status = await api('POST', `/api/credit/users/${encodeURIComponent(user)}/${action}`, { json: { amount, reason: $('credit-reason').value } })
    showMessage(out, `${action === 'top-up' ? 'Topped up' : 'Deducted'} ${money(amount, status.currency ?? currency)} ${action === 'top-up' ? 'for' : 'from'} ${user}: the balance is ${money(status.balance, status.currency ?? currency)}.`)
    $('credit-amount').value = ''
    await refreshCredit()
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err
    showMessage(out, `Not done: ${err.message}`, 'error')
  }
}

$('credit-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void change('top-up')
})
$('credit-deduct').addEventListener('click', () => { void change('deduct') })
