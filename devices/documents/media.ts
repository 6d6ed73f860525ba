/**
 * Page sizes (in PostScript points) to PWG 5101.1 self-describing media names.
 *
 * Names are orientation independent: the short edge always comes first, so an A4
 * landscape page is still `iso_a4_210x297mm`.
 */

/** Points per millimetre (72 pt per inch, 25.4 mm per inch). */
const POINTS_PER_MM = 72 / 25.4
/**
 * How far (in points, each edge) a page may be from a standard size and still get its
 * name: 3 pt ≈ 1 mm covers rounding mm sizes to whole points (A4 as 595×842) and
 * drivers' 1/32 in tolerances, while staying far below the 17 pt between A4 and Letter.
 */
export const MEDIA_TOLERANCE_PT = 3

interface KnownMedia { name: string, short: number, long: number }

function mm (name: string, w: number, h: number): KnownMedia {
  return { name, short: w * POINTS_PER_MM, long: h * POINTS_PER_MM }
}
function inch (name: string, w: number, h: number): KnownMedia {
  return { name, short: w * 72, long: h * 72 }
}

/** Common office media (PWG 5101.1 table 5), short edge first. */
const KNOWN_MEDIA: readonly KnownMedia[] = [
  mm('iso_a3_297x420mm', 297, 420),
  mm('iso_a4_210x297mm', 210, 297),
  mm('iso_a5_148x210mm', 148, 210),
  mm('iso_a6_105x148mm', 105, 148),
  mm('iso_b4_250x353mm', 250, 353),
  mm('iso_b5_176x250mm', 176, 250),
  mm('jis_b4_257x364mm', 257, 364),
  mm('jis_b5_182x257mm', 182, 257),
  mm('iso_c5_162x229mm', 162, 229),
  mm('iso_c6_114x162mm', 114, 162),
  mm('iso_dl_110x220mm', 110, 220),
  inch('na_letter_8.5x11in', 8.5, 11),
  inch('na_legal_8.5x14in', 8.5, 14),
  inch('na_ledger_11x17in', 11, 17),
  inch('na_executive_7.25x10.5in', 7.25, 10.5),
  inch('na_invoice_5.5x8.5in', 5.5, 8.5),
  inch('na_foolscap_8.5x13in', 8.5, 13),
  inch('na_number-10_4.125x9.5in', 4.125, 9.5),
  inch('na_index-4x6_4x6in', 4, 6),
  inch('na_5x7_5x7in', 5, 7)
]

/** Formats a millimetre length with at most one decimal and no trailing zeros. */
function formatMm (points: number): string {
  return String(Math.round(points / POINTS_PER_MM * 10) / 10)
}

/**
 * The PWG self-describing name for a page of `width`×`height` points, in either
 * orientation: a known name when both edges are within {@link MEDIA_TOLERANCE_PT},
 * else `custom_<short>x<long>mm` (PWG 5101.1 custom size, one decimal at most).
 * Returns undefined for sizes that are not positive finite numbers.
 */
export function mediaName (width: number, height: number): string | undefined {
  if (!Number.isFinite(width) || !Number.isFinite(height) || width <= 0 || height <= 0) return undefined
  const short = Math.min(width, height)
  const long = Math.max(width, height)
  for (const m of KNOWN_MEDIA) {
    if (Math.abs(m.short - short) <= MEDIA_TOLERANCE_PT && Math.abs(m.long - long) <= MEDIA_TOLERANCE_PT) return m.name
  }
  return `custom_${formatMm(short)}x${formatMm(long)}mm`
}

/** DSC `%%DocumentPaperSizes` / PostScript paper names to their size in points. */
export function paperNameSize (name: string): { width: number, height: number } | undefined {
  const key = name.toLowerCase()
  const hit = KNOWN_MEDIA.find((m) => m.name.split('_')[1] === key)
  return hit ? { width: hit.short, height: hit.long } : undefined
}
