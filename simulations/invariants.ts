/**
 * The invariants of DESIGN.md ("Jobs" 1–4, and 5: credit) and 6 (terminals' logins) as the simulator checks them, and the record of
 * a violation: which invariant, the seed and step to replay it, and a minimal trace (the
 * last events touching the offending job, or peer).
 */

export type InvariantId = 1 | 2 | 3 | 4 | 5 | 6

export const INVARIANTS: ReadonlyArray<{ id: InvariantId, name: string }> = [
  { id: 1, name: 'no acknowledged job lost' },
  { id: 2, name: 'no job printed twice' },
  { id: 3, name: 'usage charged exactly once' },
  { id: 4, name: 'identical documents after heal' },
  { id: 5, name: 'no user spends more than credited; no credit lost' },
  { id: 6, name: 'a terminal logs users in as the directory it holds says' }
]

export interface Violation {
  invariant: InvariantId
  seed: number
  step: number
  message: string
  job?: string
  peer?: string
  trace: string[]
}

/** Most violations kept per run: the first ones say enough. */
const MAX_VIOLATIONS = 50

/** Collects violations; `trace` supplies the events around a job or peer. */
export class Checker {
  readonly violations: Violation[] = []

  constructor (
    private readonly seed: number,
    private readonly trace: (job?: string, peer?: string) => string[]
  ) {}

  violation (invariant: InvariantId, step: number, message: string, job?: string, peer?: string): void {
    if (this.violations.length >= MAX_VIOLATIONS) return
    this.violations.push({
      invariant, seed: this.seed, step, message,
      ...(job !== undefined ? { job } : {}),
      ...(peer !== undefined ? { peer } : {}),
      trace: this.trace(job, peer)
    })
  }
}

/** A violation as the lines the CLI prints. */
export function formatViolation (v: Violation): string {
  const name = INVARIANTS.find((i) => i.id === v.invariant)?.name ?? ''
  return [
    `VIOLATION of invariant ${v.invariant} (${name}) — seed ${v.seed}, step ${v.step}`,
    `  ${v.message}`,
    ...(v.trace.length > 0 ? ['  trace:', ...v.trace.map((t) => `    ${t}`)] : [])
  ].join('\n')
}
