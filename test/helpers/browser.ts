/**
 * A real headless Chromium for the web-page tests (`ui-*-browser`): Debian's `chromium`
 * driven by playwright-core, with a private profile folder, one page that records its
 * scripts' uncaught errors, and a screenshot folder.
 *
 * Screenshots go to a temp folder that {@link TestBrowser.close} removes; set
 * `PRINTMESH_SCREENSHOT_DIR` to keep them (to look at the pages).
 *
 * Call {@link TestBrowser.close} from the test file's `after` hook through
 * {@link runCleanup}, so the browser process is closed also when a test fails.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

/** Debian's chromium package (`npm test` installs it). */
const CHROMIUM = '/usr/bin/chromium'
/** Headless, no sandbox (tests may run as root), and nothing that phones home. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
/** Wide enough for the pages' tables without wrapping, so screenshots are comparable. */
const VIEWPORT = { width: 1100, height: 800 }
/** Where to keep screenshots instead of a temp folder removed afterwards. */
const SCREENSHOT_DIR_ENV = 'PRINTMESH_SCREENSHOT_DIR'

/** A named step of a test file's `after` hook. */
export type CleanupStep = [what: string, step: () => Promise<unknown>]

/**
 * Runs every step, each on its own so one failing does not leave the others running, then
 * throws one error naming every step that failed.
 */
export async function runCleanup (steps: CleanupStep[]): Promise<void> {
  const errors: Error[] = []
  for (const [what, step] of steps) {
    try {
      await step()
    } catch (err) {
      errors.push(new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }))
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => e.message).join('; ')}`)
}

export interface BrowserOptions {
  /** Default timeout of every page action and wait, in ms (the test file says why its value). */
  timeoutMs: number
}

export interface TestBrowser {
  readonly context: BrowserContext
  /** The one page the tests drive. */
  readonly page: Page
  /** Where {@link screenshot} writes. */
  readonly shots: string
  /** Uncaught errors of the page's scripts, in order; tests assert there are none. */
  readonly pageErrors: readonly string[]
  /** Saves a full-page screenshot as `<shots>/<name>.png`. */
  screenshot: (name: string) => Promise<void>
  /** Closes the browser, then removes the profile and (unless kept) the screenshots. */
  close: () => Promise<void>
}

/**
 * Launches Chromium with a fresh profile. If launching fails, whatever was already made is
 * undone before the error is thrown, so the caller has nothing to clean up.
 */
export async function startBrowser (opts: BrowserOptions): Promise<TestBrowser> {
  const undo: CleanupStep[] = []
  const close = async (): Promise<void> => await runCleanup(undo)
  try {
    const profile = await mkdtemp(join(tmpdir(), 'printmesh-chromium-'))
    undo.push(['profile', async () => await rm(profile, { recursive: true, force: true })])
    const keptShots = process.env[SCREENSHOT_DIR_ENV]
    const shots = keptShots ?? await mkdtemp(join(tmpdir(), 'printmesh-shots-'))
    if (keptShots === undefined) undo.push(['screenshots', async () => await rm(shots, { recursive: true, force: true })])
    await mkdir(shots, { recursive: true })
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: VIEWPORT
    })
    // The browser closes first: the profile is in use until it has.
    undo.unshift(['browser', async () => await context.close()])
    context.setDefaultTimeout(opts.timeoutMs)
    const page = context.pages()[0] ?? await context.newPage()
    const pageErrors: string[] = []
    page.on('pageerror', (err) => pageErrors.push(err.message))
    return {
      context,
      page,
      shots,
      pageErrors,
      screenshot: async (name) => { await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true }) },
      close
    }
  } catch (err) {
    try {
      await close()
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], `starting the browser failed, and so did its cleanup: ${String(cleanupErr)}`)
    }
    throw err
  }
}

/** Fills the release page's login form at `url` and submits it; the caller waits for the outcome. */
export async function logIn (page: Page, url: string, username: string, pin: string): Promise<void> {
  await page.goto(url)
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('PIN').fill(pin)
  await page.getByRole('button', { name: 'Log in' }).click()
}

/** Fills the admin page's sign-in form (already shown) and submits it; the caller waits for the outcome. */
export async function signInAdmin (page: Page, token: string): Promise<void> {
  await page.getByLabel('Admin token').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
}
