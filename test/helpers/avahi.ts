/** What avahi resolves on this machine (inside the test's network namespace), as `avahi-browse -rpt` prints it. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)
/** avahi-browse dumps its cache and quits well within this; more means avahi is wedged. */
const BROWSE_TIMEOUT_MS = 15_000
/** Browses made before a timeout counts as avahi wedged. */
const BROWSE_ATTEMPTS = 2

/** What avahi-browse prints for a service it saw but could not resolve (avahi-utils' avahi-browse.c). */
const RESOLVE_FAILURE = /^Failed to resolve service /

/** A resolved service as `avahi-browse -rpt` prints it. */
export interface Browsed { iface: string, protocol: string, name: string, host: string, address: string, port: number, txt: Map<string, string> }

/** avahi-browse -p escapes bytes as \DDD (decimal). */
function unescapeBrowse (s: string): string {
  const bytes: number[] = []
  for (let i = 0; i < s.length; i++) {
    const m = /^\\(\d{3})/.exec(s.slice(i))
    if (m !== null) { bytes.push(Number(m[1])); i += 3 } else bytes.push(...Buffer.from(s[i]))
  }
  return Buffer.from(bytes).toString('utf8')
}

/** The services of `type` avahi resolves now, less those it saw leave (goodbye packets). */
export async function browse (type = '_ipp._tcp', attempts = BROWSE_ATTEMPTS): Promise<Browsed[]> {
  let stdout: string
  try {
    ({ stdout } = await run('avahi-browse', ['-rpt', type], { encoding: 'utf8', timeout: BROWSE_TIMEOUT_MS }))
  } catch (err) {
    // killed at the timeout: on a loaded machine a resolution can outlast it once (a clean-clone run
    // failed so, with load from other work beside it); twice in a row, avahi is wedged
    if ((err as { killed?: boolean }).killed === true && attempts > 1) return await browse(type, attempts - 1)
    // a service that leaves while it is being resolved (another test file's printer stopping) makes
    // avahi-browse exit non-zero after printing the rest (a clean-clone run failed so): take what it
    // printed, callers poll on. Anything else (killed at the timeout: avahi wedged; no daemon; no
    // binary) is an error, so that a wait for a service to leave never passes on an empty listing.
    const failed = err as { stdout?: unknown, stderr?: unknown, killed?: boolean }
    const complaints = typeof failed.stderr === 'string' ? failed.stderr.trim().split('\n').filter((l) => l !== '') : []
    const onlyResolveFailures = complaints.length > 0 && complaints.every((l) => RESOLVE_FAILURE.test(l))
    if (failed.killed === true || typeof failed.stdout !== 'string' || !onlyResolveFailures) throw err
    stdout = failed.stdout
  }
  const resolved = new Map<string, Browsed>()
  for (const line of stdout.split('\n')) {
    const f = line.split(';')
    const key = f.slice(1, 4).join(';')
    if (f[0] === '-') resolved.delete(key)
    if (f[0] !== '=' || f.length < 10) continue
    const txt = new Map<string, string>()
    for (const m of f.slice(9).join(';').matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      const eq = m[1].indexOf('=')
      txt.set(m[1].slice(0, eq), m[1].slice(eq + 1))
    }
    resolved.set(key, { iface: f[1], protocol: f[2], name: unescapeBrowse(f[3]), host: f[6], address: f[7], port: Number(f[8]), txt })
  }
  return [...resolved.values()]
}

