/**
 * The login guard's counted failures kept in the data folder (`login-failures.json`), so a
 * restart does not wipe a lockout: loaded at start, written after every change (one write
 * at a time, the latest state last). The file names usernames and addresses, never a PIN,
 * card or token, and is readable by the node's user only.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { LoginGuard, InvalidLoginSnapshotError, type LoginGuardInit } from '../ui/rate-limit.ts'

/** The file in the data folder. */
export const LOGIN_FAILURES_FILE = 'login-failures.json'

/**
 * A login guard whose failures survive restarts. A missing file starts empty; an unreadable
 * or malformed one is reported and replaced (a lockout is lost, the node still starts).
 */
export async function persistentLoginGuard (dataDir: string, init: Omit<LoginGuardInit, 'onChange'>, logger: Logger): Promise<LoginGuard> {
  const path = join(dataDir, LOGIN_FAILURES_FILE)
  let writing: Promise<void> | undefined
  let again = false
  const write = async (): Promise<void> => {
    do {
      again = false
      await writeFile(`${path}.tmp`, JSON.stringify(guard.snapshot()), { mode: 0o600 })
      await rename(`${path}.tmp`, path)
    } while (again)
  }
  const onChange = (): void => {
    if (writing !== undefined) { again = true; return }
    writing = write()
      .catch((err: unknown) => { logger.error({ err }, 'could not store the login failures; a restart would forget them') })
      .finally(() => { writing = undefined })
  }
  const guard = new LoginGuard({ ...init, onChange })
  let stored: string | undefined
  try {
    stored = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, path }, 'could not read the stored login failures; starting without them')
  }
  if (stored !== undefined) {
    try {
      guard.restore(JSON.parse(stored))
    } catch (err) {
      if (!(err instanceof SyntaxError) && !(err instanceof InvalidLoginSnapshotError)) throw err
      logger.warn({ path, reason: (err as Error).message }, 'the stored login failures are malformed; starting without them')
    }
  }
  return guard
}
