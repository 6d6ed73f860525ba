/**
 * Central's product license at run time: records the license's fields in the license
 * document (so every peer can show it), answers the enrolment policy (node/enrollment.ts),
 * warns in the logs once a day from 30 days before expiry (and about an unlicensed
 * evaluation), and feeds `/api/license` and the `printmesh_license_*` gauges. The file
 * format and the checks are node/license-file.ts's.
 */
import type { KeyObject } from 'node:crypto'
import type { Logger } from 'pino'
import type * as Y from 'yjs'
import type { DocStore } from '../crdt/store.ts'
import { directoryDoc, licenseDoc } from '../crdt/names.ts'
import { readProductLicense, recordProductLicense, type ProductLicenseRecord, type Role } from '../crdt/license.ts'
import type { Clock } from './peer.ts'
import type { EnrolmentPolicy } from './enrollment.ts'
import type { LicenseApi, LicenseView } from '../ui/routes/license.ts'
import type { LicenseMetrics } from '../ui/metrics.ts'
import {
  enrolmentRefusal, licenseRecord, licenseState, licenseUsage, storeLicense, verifyLicense, LICENSE_GRACE_MS, type LicenseState, type ProductLicense
} from './license-file.ts'

/** The logs repeat a license warning this often: daily, as the issue asks, not on every enrolment. */
export const LICENSE_WARN_EVERY_MS = 24 * 3600_000
const DAY_MS = 24 * 3600_000

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

/** The sentence the logs, the page and `/api/license` show for a state. */
export function licenseMessage (license: ProductLicenseRecord | undefined, state: LicenseState, now: number): string {
  if (license === undefined) return 'unlicensed evaluation: no license is installed, so no limits apply; install one with --license FILE or PUT /api/license'
  const ends = day(license.expiresAt)
  const days = Math.ceil(Math.abs(license.expiresAt - now) / DAY_MS)
  switch (state) {
    case 'expiring': return `the license ${license.licenseId} for ${license.organisation} expires on ${ends} (in ${days} day${days === 1 ? '' : 's'}): renew it; printing goes on after expiry, and new enrolments stop ${LICENSE_GRACE_MS / DAY_MS} days later`
    case 'expired-in-grace': return `the license ${license.licenseId} for ${license.organisation} expired on ${ends}: printing goes on; new enrolments stop on ${day(license.expiresAt + LICENSE_GRACE_MS)} unless it is renewed`
    case 'expired': return `the license ${license.licenseId} for ${license.organisation} expired on ${ends}: new enrolments are refused until it is renewed; printing, release, login and accounting go on`
    default: return `the license ${license.licenseId} for ${license.organisation} is valid until ${ends}`
  }
}

export interface CentralLicenseInit {
  store: DocStore
  dataDir: string
  vendorKey: KeyObject
  /** The license verified at start (node/license-file.ts `loadCentralLicense`); undefined: evaluation. */
  license: ProductLicense | undefined
  clock: Pick<Clock, 'now'>
  logger: Logger
}

export class CentralLicense implements LicenseApi {
  private license: ProductLicenseRecord | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly init: CentralLicenseInit) {
    this.license = init.license !== undefined ? licenseRecord(init.license) : undefined
  }

  /** The license in force; undefined: unlicensed evaluation. */
  current (): ProductLicenseRecord | undefined { return this.license }

  /** The enrolment policy the enrollment authority asks (renewals never reach it). */
  readonly policy: EnrolmentPolicy = (doc: Y.Doc, role: Role, site: string | undefined, now: number) => enrolmentRefusal(this.license, doc, role, site, now)

  /** Records the license in the license document, warns now, and again daily. */
  async start (): Promise<void> {
    if (this.timer !== undefined) return
    await this.record()
    this.warn()
    this.timer = setInterval(() => this.warn(), LICENSE_WARN_EVERY_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Logs the license's state: a warning unless it is valid and more than 30 days from expiry. */
  warn (): void {
    const now = this.init.clock.now()
    const state = licenseState(this.license, now)
    const fields = { licenseState: state, ...(this.license !== undefined ? { licenseId: this.license.licenseId, expiresAt: new Date(this.license.expiresAt).toISOString() } : {}) }
    const message = licenseMessage(this.license, state, now)
    if (state === 'valid') this.init.logger.info(fields, message)
    else this.init.logger.warn(fields, message)
  }

  view (): LicenseView {
    const now = this.init.clock.now()
    const state = licenseState(this.license, now)
    const l = this.license
    return {
      state,
      ...(l !== undefined
        ? { license: { organisation: l.organisation, licenseId: l.licenseId, limits: { ...l.limits }, issuedAt: new Date(l.issuedAt).toISOString(), expiresAt: new Date(l.expiresAt).toISOString() } }
        : {}),
      usage: licenseUsage(this.init.store.get(licenseDoc()), this.init.store.get(directoryDoc()), now),
      message: licenseMessage(l, state, now)
    }
  }

  /** The gauges' view. */
  metrics (): LicenseMetrics {
    const view = this.view()
    const l = this.license
    return {
      state: view.state,
      usage: { ...view.usage },
      ...(l !== undefined ? { expirySeconds: Math.round((l.expiresAt - this.init.clock.now()) / 1000), limits: { ...l.limits } } : {})
    }
  }

  /** Verifies a new license file's text, keeps it in the data folder, records it and says so in the logs. */
  async install (text: string): Promise<LicenseView> {
    const license = verifyLicense(text, this.init.vendorKey)
    await storeLicense(this.init.dataDir, text)
    this.license = licenseRecord(license)
    await this.record()
    this.warn()
    return this.view()
  }

  /** Writes the license's fields to the license document when they differ from what it holds. */
  private async record (): Promise<void> {
    const doc = await this.init.store.open(licenseDoc())
    if (JSON.stringify(readProductLicense(doc) ?? null) === JSON.stringify(this.license ?? null)) return
    await this.init.store.transact(licenseDoc(), { kind: 'local', service: 'license' }, (d) => recordProductLicense(d, this.license))
  }
}
