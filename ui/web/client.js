// A workstation's local page (node/client.ts): its jobs, whether the site is reachable,
// where a job printed (a device of the site, or a fallback printer), the fallback choice.
import { h, setChildren, api, showMessage, formatTime, formatCount, jobName, stateBadge, poll } from './common.js'
import { money } from './money.js'

const $ = (id) => document.getElementById(id)
const statusEl = $('status')

/** Where a job is, or went, in words. */
function where (job) {
  if (job.handOver !== undefined) {
    return job.handOver.done
      ? `handed over to site ${job.handOver.site}: release it at any printer of the site`
      : `being handed over to site ${job.handOver.site}`
  }
  if (job.fallback !== undefined) return `fallback printer ${job.fallback.name} (${job.fallback.uri})`
  if (job.printedBy !== undefined) return `printer ${job.printedBy.printer} of site ${job.printedBy.site}`
  if (job.printer !== undefined) return `sent from this workstation to ${job.printer}`
  if (job.state === 'held') return job.message ?? 'kept on this workstation until you release it at a printer'
  return ''
}

function actions (job, fallbackPrinters) {
  if (job.state !== 'held') return ''
  const buttons = [h('button', { type: 'button', onclick: () => act(() => api('DELETE', `/api/client/jobs/${encodeURIComponent(job.id)}`), `Deleted ${jobName(job)}`) }, 'Delete')]
  if (fallbackPrinters.length > 0) {
    buttons.unshift(h('button', { type: 'button', onclick: () => act(() => api('POST', `/api/client/jobs/${encodeURIComponent(job.id)}/fallback`, { json: {} }), `Sent ${jobName(job)} to the fallback printer`) }, 'Print on fallback printer'))
  }
  return h('span', { class: 'actions' }, buttons)
}

async function act (call, done) {
  try {
    render(await call())
    showMessage(statusEl, done)
  } catch (err) {
    showMessage(statusEl, err.message, 'error')
  }
}

/** The user's credit and quotas left, and what this workstation holds of them (a fallback print spends only that); empty when none applies. */
function creditText (c) {
  const parts = []
  if (c.enforced && c.currency !== undefined) parts.push(`Credit ${money(c.balance, c.currency)} (${money(c.here, c.currency)} on this workstation)`)
  for (const q of c.quotas) {
    const unit = q.measure === 'pages' ? 'pages' : q.measure === 'colour' ? 'colour pages' : c.currency ?? ''
    parts.push(q.measure === 'cost' ? `${money(q.left, unit)} left this month` : `${q.left} ${unit} left this month (${q.here} on this workstation)`)
  }
  return parts.join(' · ')
}

function render (s) {
  $('workstation').textContent = `Workstation ${s.workstation} · ${s.user} · site ${s.site}`
  $('how-to-print').textContent = `Print to queue ${s.queue} (${s.ippUri}).`
  $('credit').textContent = creditText(s.credit)
  $('credit').hidden = $('credit').textContent === ''
  const connection = $('connection')
  if (s.siteReachable) {
    showMessage(connection, s.clientSpooling
      ? `Site ${s.site} is reachable: your jobs wait here until you release them at a printer.`
      : `Site ${s.site} is reachable: your jobs are handed over to it and wait there until you release them at a printer.`)
  } else {
    showMessage(connection, s.fallbackPrinters.length > 0
      ? `Site ${s.site} cannot be reached: new jobs print at once on the fallback printer.`
      : `Site ${s.site} cannot be reached, and this workstation has no fallback printer: jobs wait here.`, 'error')
  }
  $('no-jobs').hidden = s.jobs.length > 0
  setChildren($('jobs'), s.jobs.map((job) => h('tr', { 'data-job': job.id },
    h('td', {}, jobName(job)),
    h('td', { class: 'num' }, formatCount(job.pages)),
    h('td', {}, formatTime(job.createdAt)),
    h('td', {}, stateBadge(job)),
    h('td', { class: 'where' }, where(job)),
    h('td', {}, actions(job, s.fallbackPrinters)))))
  const select = $('fallback-printer')
  $('no-fallback').hidden = s.fallbackPrinters.length > 0
  $('fallback-form').hidden = s.fallbackPrinters.length === 0
  // not while the user is choosing; a printer picked but not saved yet stays picked as the list refreshes
  if (document.activeElement !== select) {
    const picked = select.value
    const option = (p) => h('option', { value: p.name, selected: p.chosen }, `${p.name} (${p.uri})`)
    const groups = [['configured', 'Fallback printers of this workstation'], ['printed-before', 'Printers you printed to before']]
      .map(([kind, label]) => [label, s.fallbackPrinters.filter((p) => p.kind === kind)])
      .filter(([, printers]) => printers.length > 0)
      .map(([label, printers]) => h('optgroup', { label }, printers.map(option)))
    setChildren(select, groups)
    if (picked !== '' && s.fallbackPrinters.some((p) => p.name === picked)) select.value = picked
  }
}

$('fallback-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const printer = $('fallback-printer').value
  void act(() => api('PUT', '/api/client/fallback', { json: { printer } }), `New jobs fall back to ${printer}`)
})

poll(async () => render(await api('GET', '/api/client')), (err) => showMessage($('connection'), `This page cannot reach the printmesh client: ${err.message}`, 'error'))
