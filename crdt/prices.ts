/**
 * Prices: what a page costs, so every usage record is priced when it is written (the price
 * in force then stays with the record; a later change prices new records only).
 *
 * Where the price lists live (replicated configuration, no family of their own):
 * - the mesh's list, in the `prices` map of the license document `v1/license`, written by
 *   the mesh's authority (central; a standalone site is its own): currency, default rules,
 *   per-site and per-printer overrides. Every peer reads the license document.
 * - a site's own overrides, in the `prices` map of its site document `v1/site/<site>`,
 *   written by that site's admin (or central): rules for the site and for its printers.
 *   Its terminals read it too.
 *
 * A rule prices one page (a side printed) in integer minor units of the mesh's currency
 * and may name what it applies to: `kind` (print, copy), `color` (mono, colour), `sides`
 * (simplex, duplex), `media` (PWG name, e.g. `iso_a4_210x297mm`). A record's mono and
 * colour rates are each looked up through the layers, the first layer with a matching
 * rule winning: the printer's rules (the site's list, then the mesh's), the site's (the
 * site's list, then the mesh's), the mesh's defaults; within a layer the rule naming the
 * most fields wins, the first listed on a tie. A record for which a rate it needs is
 * found nowhere (or with no mesh list) stays unpriced, and reports say so.
 */
import type * as Y from 'yjs'
import type { UsageCost, UsageRecord } from './accounting.ts'
import type { DocStore } from './store.ts'
import { licenseDoc, siteConfigDoc, siteId } from './names.ts'

/** ISO 4217 codes are three capital letters. */
const CURRENCY = /^[A-Z]{3}$/
/** PWG media names: lower-case letters, digits, `_ . -` (`iso_a4_210x297mm`, `na_letter_8.5x11in`). */
const MEDIA = /^[a-z0-9_.-]{1,64}$/
/** Site ids and printer names as document names and the command line allow them. */
const NAME = /^[A-Za-z0-9._:-]{1,128}$/
/** More rules than this in one list is a mistake, not a tariff. */
export const MAX_PRICE_RULES = 1000
/** More overridden sites or printers than this in one list is a mistake. */
export const MAX_PRICE_OVERRIDES = 10_000
/** Dearest page accepted, in minor units (a million: far above any real page, far below float trouble). */
export const MAX_PAGE_PRICE = 1_000_000

export interface PriceRule {
  kind?: 'print' | 'copy'
  color?: 'mono' | 'colour'
  sides?: 'simplex' | 'duplex'
  media?: string
  /** Minor units (cents) per page, an integer. */
  perPage: number
}

/** The mesh's price list (central's). */
export interface PriceList {
  currency: string
  /** Rules for every site and printer not overridden. */
  rules: PriceRule[]
  /** Per-site overrides, by site id. */
  sites: Record<string, PriceRule[]>
  /** Per-printer overrides, by `<site>/<printer>`. */
  printers: Record<string, PriceRule[]>
  updatedAt: number
  updatedBy: string
}

/** A site's own overrides (its admin's), in its site document; priced in the mesh's currency. */
export interface SitePrices {
  rules: PriceRule[]
  /** By printer name (the site's own printers). */
  printers: Record<string, PriceRule[]>
  updatedAt: number
  updatedBy: string
}

/** A price list (or site overrides) that cannot be used; the message says which field and why. */
export class InvalidPriceListError extends Error {
  constructor (message: string) { super(message); this.name = 'InvalidPriceListError' }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function parseRule (raw: unknown, where: string): PriceRule {
  if (!isObject(raw)) throw new InvalidPriceListError(`${where} must be an object like {"color":"colour","perPage":15}`)
  for (const key of Object.keys(raw)) {
    if (!['kind', 'color', 'sides', 'media', 'perPage'].includes(key)) throw new InvalidPriceListError(`${where}: unknown field "${key}" (kind, color, sides, media, perPage)`)
  }
  const { kind, color, sides, media, perPage } = raw
  if (!Number.isSafeInteger(perPage) || (perPage as number) < 0 || (perPage as number) > MAX_PAGE_PRICE) {
    throw new InvalidPriceListError(`${where}: perPage must be a whole number of minor units (cents) from 0 to ${MAX_PAGE_PRICE}, not ${JSON.stringify(perPage)}`)
  }
  const rule: PriceRule = { perPage: perPage as number }
  if (kind !== undefined) {
    if (kind !== 'print' && kind !== 'copy') throw new InvalidPriceListError(`${where}: kind must be print or copy`)
    rule.kind = kind
  }
  if (color !== undefined) {
    if (color !== 'mono' && color !== 'colour') throw new InvalidPriceListError(`${where}: color must be mono or colour`)
    rule.color = color
  }
  if (sides !== undefined) {
    if (sides !== 'simplex' && sides !== 'duplex') throw new InvalidPriceListError(`${where}: sides must be simplex or duplex`)
    rule.sides = sides
  }
  if (media !== undefined) {
    if (typeof media !== 'string' || !MEDIA.test(media)) throw new InvalidPriceListError(`${where}: media must be a PWG media name like iso_a4_210x297mm`)
    rule.media = media
  }
  return rule
}

function parseRules (raw: unknown, where: string): PriceRule[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) throw new InvalidPriceListError(`${where} must be a list of rules`)
  if (raw.length > MAX_PRICE_RULES) throw new InvalidPriceListError(`${where}: at most ${MAX_PRICE_RULES} rules`)
  return raw.map((r, i) => parseRule(r, `${where}[${i}]`))
}

function parseOverrides (raw: unknown, where: string, keyOk: (key: string) => boolean, keyHelp: string): Record<string, PriceRule[]> {
  if (raw === undefined) return {}
  if (!isObject(raw)) throw new InvalidPriceListError(`${where} must be an object of rule lists by ${keyHelp}`)
  const keys = Object.keys(raw)
  if (keys.length > MAX_PRICE_OVERRIDES) throw new InvalidPriceListError(`${where}: at most ${MAX_PRICE_OVERRIDES} overrides`)
  const out: Record<string, PriceRule[]> = {}
  for (const key of keys.sort()) {
    if (!keyOk(key)) throw new InvalidPriceListError(`${where}: "${key}" is not a ${keyHelp}`)
    out[key] = parseRules(raw[key], `${where}.${key}`)
  }
  return out
}

/** Checks a mesh price list from an admin; @throws InvalidPriceListError naming the field. */
export function parsePriceList (raw: unknown, by: string, now: number): PriceList {
  if (!isObject(raw)) throw new InvalidPriceListError('the price list must be a JSON object like {"currency":"EUR","rules":[{"perPage":5}]}')
  for (const key of Object.keys(raw)) {
    if (!['currency', 'rules', 'sites', 'printers'].includes(key)) throw new InvalidPriceListError(`unknown field "${key}" (currency, rules, sites, printers)`)
  }
  if (typeof raw.currency !== 'string' || !CURRENCY.test(raw.currency)) throw new InvalidPriceListError('currency must be an ISO 4217 code like EUR')
  return {
    currency: raw.currency,
    rules: parseRules(raw.rules, 'rules'),
    sites: parseOverrides(raw.sites, 'sites', (k) => NAME.test(k), 'site id'),
    printers: parseOverrides(raw.printers, 'printers', (k) => { const [s, p, ...rest] = k.split('/'); return rest.length === 0 && NAME.test(s ?? '') && NAME.test(p ?? '') }, '"<site>/<printer>"'),
    updatedAt: now,
    updatedBy: by
  }
}

/** Checks a site's overrides from its admin; @throws InvalidPriceListError naming the field. */
export function parseSitePrices (raw: unknown, by: string, now: number): SitePrices {
  if (!isObject(raw)) throw new InvalidPriceListError('the site\'s prices must be a JSON object like {"rules":[{"color":"colour","perPage":12}],"printers":{}}')
  for (const key of Object.keys(raw)) {
    if (!['rules', 'printers'].includes(key)) throw new InvalidPriceListError(`unknown field "${key}" (rules, printers; the currency is the mesh's)`)
  }
  return {
    rules: parseRules(raw.rules, 'rules'),
    printers: parseOverrides(raw.printers, 'printers', (k) => NAME.test(k), 'printer name'),
    updatedAt: now,
    updatedBy: by
  }
}

const pricesMap = (doc: Y.Doc): Y.Map<unknown> => doc.getMap('prices')

/** The mesh price list in the license document, undefined when none was set. */
export function readPriceList (license: Y.Doc | undefined): PriceList | undefined {
  const raw = license === undefined ? undefined : pricesMap(license).get('list')
  return raw === undefined ? undefined : raw as PriceList
}

/** Writes the mesh price list (already checked) into the license document. */
export function writePriceList (license: Y.Doc, list: PriceList): void {
  pricesMap(license).set('list', structuredClone(list))
}

/** A site's overrides in its site document, undefined when none were set. */
export function readSitePrices (site: Y.Doc | undefined): SitePrices | undefined {
  const raw = site === undefined ? undefined : pricesMap(site).get('site')
  return raw === undefined ? undefined : raw as SitePrices
}

/** Writes a site's overrides (already checked) into its site document. */
export function writeSitePrices (site: Y.Doc, prices: SitePrices): void {
  pricesMap(site).set('site', structuredClone(prices))
}

/** What prices a record: the mesh's list and the site's overrides. */
export interface Prices { list?: PriceList, site?: SitePrices }

/** What a page is, for the rules. */
interface PageKind { kind: 'print' | 'copy', color: 'mono' | 'colour', sides: 'simplex' | 'duplex', media?: string }

function matches (rule: PriceRule, page: PageKind): boolean {
  return (rule.kind === undefined || rule.kind === page.kind) &&
    (rule.color === undefined || rule.color === page.color) &&
    (rule.sides === undefined || rule.sides === page.sides) &&
    (rule.media === undefined || rule.media === page.media)
}

const specificity = (r: PriceRule): number => Number(r.kind !== undefined) + Number(r.color !== undefined) + Number(r.sides !== undefined) + Number(r.media !== undefined)

/** The most specific matching rule of one layer (the first on a tie), or undefined. */
function bestOf (rules: readonly PriceRule[] | undefined, page: PageKind): PriceRule | undefined {
  let best: PriceRule | undefined
  for (const r of rules ?? []) if (matches(r, page) && (best === undefined || specificity(r) > specificity(best))) best = r
  return best
}

/** Minor units per page for `page` at `site`/`printer`, or undefined when no rule applies. */
export function pagePrice (prices: Prices, site: string, printer: string, page: PageKind): number | undefined {
  const { list, site: own } = prices
  if (list === undefined) return undefined
  const layers = [own?.printers[printer], list.printers[`${site}/${printer}`], own?.rules, list.sites[site], list.rules]
  for (const layer of layers) {
    const rule = bestOf(layer, page)
    if (rule !== undefined) return rule.perPage
  }
  return undefined
}

/** The cost of a record at `prices`, or undefined (unpriced) when a rate it needs is missing. */
export function priceUsage (prices: Prices, r: Pick<UsageRecord, 'kind' | 'site' | 'printer' | 'duplex' | 'pages' | 'colorPages' | 'media'>): UsageCost | undefined {
  if (prices.list === undefined) return undefined
  const base = { kind: r.kind, sides: r.duplex ? 'duplex' as const : 'simplex' as const, ...(r.media !== undefined ? { media: r.media } : {}) }
  const monoPages = r.pages - r.colorPages
  const mono = pagePrice(prices, r.site, r.printer, { ...base, color: 'mono' })
  const colour = pagePrice(prices, r.site, r.printer, { ...base, color: 'colour' })
  if ((monoPages > 0 && mono === undefined) || (r.colorPages > 0 && colour === undefined)) return undefined
  return { currency: prices.list.currency, amount: monoPages * (mono ?? 0) + r.colorPages * (colour ?? 0), mono: mono ?? 0, colour: colour ?? 0 }
}

/** The prices in force for records written at `site` (as this peer holds them now). */
export async function pricesAt (store: DocStore, site: string): Promise<Prices> {
  const list = readPriceList(await store.open(licenseDoc()))
  const own = readSitePrices(await store.open(siteConfigDoc(siteId(site))))
  return { ...(list !== undefined ? { list } : {}), ...(own !== undefined ? { site: own } : {}) }
}

/** `record` with its cost at `prices` (unchanged when unpriced). */
export function withCost (prices: Prices, record: UsageRecord): UsageRecord {
  const cost = priceUsage(prices, record)
  return cost === undefined ? record : { ...record, cost }
}

/**
 * `record` with its cost at the prices in force now (unchanged when unpriced): what every
 * writer of usage (a site's prints, a terminal's copies) calls right before `recordUsage`.
 */
export async function pricedUsage (store: DocStore, record: UsageRecord): Promise<UsageRecord> {
  return withCost(await pricesAt(store, record.site), record)
}
