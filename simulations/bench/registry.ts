/**
 * Every benchmark `npm run bench` knows, in run order. Add a benchmark by writing a module
 * that exports a {@link Benchmark} and listing it here; `--only NAME` selects by its name.
 * {@link ON_DEMAND_BENCHMARKS} run only when named (`--only`): neither a plain `npm run bench`
 * nor its CI smoke (`--quick`) runs them.
 */
import type { Benchmark } from './common.ts'
import { ingestion } from './ingestion.ts'
import { convergence } from './convergence.ts'
import { footprint } from './footprint.ts'
import { roaming } from './roaming.ts'
import { intakeAbuse } from './intake-abuse.ts'
import { ldapSync } from './ldap-sync.ts'
import { clientSpooling } from './client-spooling.ts'
import { terminalLogin } from './terminal-login.ts'
import { creditAvailability } from './credit-availability.ts'
import { releaseBurst } from './release-burst.ts'

export const BENCHMARKS: readonly Benchmark[] = [
  ingestion,
  convergence,
  footprint,
  roaming,
  creditAvailability
]

/** Benchmark-like commands run only by name: intake-abuse sends hostile traffic for minutes; ldap-sync loads 10,000 users into a slapd; client-spooling moves 2 × 500 MB through four processes (minutes, not for CI); terminal-login builds a 10,000-user directory and two meshes; release-burst needs root for its private network namespace (ippeveprinter advertises by DNS-SD) and takes ~1 min. */
export const ON_DEMAND_BENCHMARKS: readonly Benchmark[] = [
  intakeAbuse,
  ldapSync,
  clientSpooling,
  terminalLogin,
  releaseBurst
]
