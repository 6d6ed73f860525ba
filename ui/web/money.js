// Money as the API gives it: integer minor units (cents) of a currency, shown exactly by
// integer arithmetic (never floats), with the currency's digits as Intl knows them.

/** `235` EUR → `2.35 EUR`, `1234` JPY → `1234 JPY`. */
export function money (amount, currency) {
  let digits = 2
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits
  } catch {} // a code Intl does not know: cents
  if (digits === 0) return `${amount} ${currency}`
  const abs = String(Math.abs(amount)).padStart(digits + 1, '0')
  return `${amount < 0 ? '-' : ''}${abs.slice(0, -digits)}.${abs.slice(-digits)} ${currency}`
}

/** The cost of report totals, one amount per currency; `–` when nothing was priced. */
export function costText (totals) {
  const parts = Object.entries(totals.cost).sort(([a], [b]) => a.localeCompare(b)).map(([c, amount]) => money(amount, c))
  return parts.length === 0 ? '–' : parts.join(' + ')
}
