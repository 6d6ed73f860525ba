/**
 * CSV output (RFC 4180) for accounting exports.
 */

/** A cell value; numbers and booleans are written as-is, strings quoted when needed. */
export type CsvCell = string | number | boolean | undefined

/** Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection"). */
const FORMULA_TRIGGERS = new Set(['=', '+', '-', '@', '\t', '\r'])
/** RFC 4180 line break. */
const CRLF = '\r\n'

/**
 * One CSV field. Strings that start like a formula get a leading `'` so a job name such as
 * `=HYPERLINK(…)` stays text when an admin opens the export in a spreadsheet; fields with
 * a comma, quote or line break are quoted with inner quotes doubled.
 */
export function csvField (value: CsvCell): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') return String(value)
  let text = value
  if (text.length > 0 && FORMULA_TRIGGERS.has(text[0])) text = `'${text}`
  if (/[",\r\n]/.test(text)) return `"${text.replaceAll('"', '""')}"`
  return text
}

/** A whole CSV document: the header row, then one row per record, CRLF-terminated. */
export function toCsv (header: readonly string[], rows: Iterable<readonly CsvCell[]>): string {
  let out = header.map(csvField).join(',') + CRLF
  for (const row of rows) out += row.map(csvField).join(',') + CRLF
  return out
}
