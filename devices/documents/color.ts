/**
 * Deciding whether a colour (as 0..255 RGB, the way renderers hand colours over) is gray.
 */

/**
 * Largest channel spread (max − min, 0..255) still counted as gray: absorbs rounding in
 * colour conversions and JPEG decoding (±1–2), while a 2 % cyan tint (spread 6) is colour.
 */
export const GRAY_TOLERANCE = 4

// pdf.js converts DeviceCMYK to RGB with a fitted polynomial (DeviceCmykCS in its
// worker). For pure black tints (c = m = y = 0) it reduces to
// channel = 255 + k·(a·k + b) with these coefficients; 100 % K comes out as #2c2e35,
// whose spread of 9 would otherwise read as colour.
const K_RED = { a: -21.86122147463605, b: -189.48180835922747 }
const K_GREEN = { a: -20.737325471181034, b: -187.80453709719578 }
const K_BLUE = { a: -22.33816807309886, b: -180.12613974708367 }
/** Rounding slack (per channel, 0..255) when matching a colour to the pure-K curve. */
const K_CURVE_SLACK = 2

function kChannel (c: { a: number, b: number }, k: number): number {
  return 255 + k * (c.a * k + c.b)
}

/**
 * Whether r,g,b (0..255) is what pdf.js makes of a CMYK colour with only black ink, by
 * solving the green channel for k and comparing the predicted red and blue.
 */
export function isPdfjsBlackTint (r: number, g: number, b: number): boolean {
  // green = 255 + b·k + a·k²  ⇒  a·k² + b·k + (255 − green) = 0, a < 0, k ∈ [0, 1]
  const { a, b: lin } = K_GREEN
  const disc = lin * lin - 4 * a * (255 - g)
  if (disc < 0) return false
  const k = (-lin - Math.sqrt(disc)) / (2 * a)
  if (!(k >= -0.01 && k <= 1.01)) return false
  return Math.abs(kChannel(K_RED, k) - r) <= K_CURVE_SLACK && Math.abs(kChannel(K_BLUE, k) - b) <= K_CURVE_SLACK
}

/** Whether an RGB colour (0..255 per channel) is neutral within {@link GRAY_TOLERANCE}. */
export function isGrayRgb (r: number, g: number, b: number): boolean {
  return Math.max(r, g, b) - Math.min(r, g, b) <= GRAY_TOLERANCE
}

/** Gray by {@link isGrayRgb}, or a pdf.js rendering of a black-only CMYK colour. */
export function isNeutralRendered (r: number, g: number, b: number): boolean {
  return isGrayRgb(r, g, b) || isPdfjsBlackTint(r, g, b)
}

/** Parses pdf.js' `#rrggbb` colours; undefined when the string is not one. */
export function parseHexColor (hex: unknown): [number, number, number] | undefined {
  if (typeof hex !== 'string' || !/^#[0-9a-f]{6}$/i.test(hex)) return undefined
  const n = Number.parseInt(hex.slice(1), 16)
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
}

/** CMYK (0..1 each) is mono when no cyan, magenta or yellow ink is used beyond rounding. */
export function isGrayCmyk (c: number, m: number, y: number): boolean {
  const limit = GRAY_TOLERANCE / 255
  return c <= limit && m <= limit && y <= limit
}
