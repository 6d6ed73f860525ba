/** Polling with a deadline: the only way tests wait for something asynchronous. */
import { setTimeout as delay } from 'node:timers/promises'

/** Default deadline for a condition to become true. */
const DEFAULT_TIMEOUT_MS = 20_000
/** Polling interval: short enough to be quick, long enough not to spin. */
const POLL_MS = 50

export async function until (check: () => boolean | Promise<boolean>, timeoutMs = DEFAULT_TIMEOUT_MS, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`)
    await delay(POLL_MS)
  }
}
