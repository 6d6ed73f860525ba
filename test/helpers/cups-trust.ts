/**
 * CUPS 2.4 (GnuTLS) set up to trust one CA for `ipps://` printers, as an admin would, for the
 * TLS tests: client.conf turns trust on first use off, and `site.crt` in the credential store
 * holds the CA. test/tls-lp-ca.test.ts says which CUPS programs read these and which do not.
 *
 * - A cupsd's backends read `<ServerRoot>/client.conf` (CUPS_SERVERROOT; /etc/cups on a real
 *   server) and, running as the `lp` user, keep credentials in `$HOME/.cups/ssl`, where cupsd
 *   sets HOME to its TempDir (/var/spool/cups/tmp on a real server; scheduler/env.c).
 * - A user's own programs read `~/.cups/client.conf` and `~/.cups/ssl`.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { PrivateCups } from '../../simulations/bench/cups.ts'
import { runIpptool, ippTest } from './ipptool.ts'

/**
 * The strict settings (cups/usersys.c): no trust on first use (a server is trusted only
 * when its chain ends with `site.crt`), names checked, no self-signed or leaf-only chains,
 * no expired certificates.
 */
export const STRICT_CLIENT_CONF = [
  '# trust an ipps:// server only through the CA in ssl/site.crt',
  'TrustOnFirstUse No',
  'ValidateCerts Yes',
  'AllowAnyRoot No',
  'AllowExpiredCerts No',
  ''
].join('\n')

/** Everyone may read, only root may write: the `lp` user reads the CA but saves no server's certificate beside it. */
const READ_ONLY_DIR = 0o755
const READ_ONLY_FILE = 0o644

/**
 * Makes `cups`' backends trust `caPem` alone. The credential store stays read-only to them:
 * a backend saves the first certificate it accepted under the server's host name and, with
 * trust on first use off, refuses any other certificate for that name later, even one the
 * CA signed (a renewal) (cups/tls-gnutls.c httpCredentialsGetTrust).
 */
export async function trustOnlyCa (cups: PrivateCups, caPem: string): Promise<void> {
  await writeFile(join(cups.dir, 'etc', 'client.conf'), STRICT_CLIENT_CONF, { mode: READ_ONLY_FILE })
  await writeCredentialStore(join(cups.dir, 'spool', 'tmp'), caPem)
}

/** A HOME for a user's own CUPS programs (lp, ipptool) with the strict client.conf and `caPem` as site.crt. */
export async function strictHome (home: string, caPem: string): Promise<void> {
  await writeCredentialStore(home, caPem)
  await writeFile(join(home, '.cups', 'client.conf'), STRICT_CLIENT_CONF, { mode: READ_ONLY_FILE })
}

async function writeCredentialStore (home: string, caPem: string): Promise<void> {
  const ssl = join(home, '.cups', 'ssl')
  await mkdir(ssl, { recursive: true, mode: READ_ONLY_DIR })
  await chmod(join(home, '.cups'), READ_ONLY_DIR)
  await chmod(ssl, READ_ONLY_DIR)
  await writeFile(join(ssl, 'site.crt'), caPem, { mode: READ_ONLY_FILE })
}

/** printer-state and printer-state-reasons of a queue of a cupsd, as its IPP answers them. */
export async function queueState (cupsPort: number, queue: string): Promise<{ state: string, reasons: string[] }> {
  const { code, out } = await runIpptool(`ipp://127.0.0.1:${cupsPort}/printers/${queue}`, ippTest('Get-Printer-Attributes', 'Get-Printer-Attributes', [
    'ATTR keyword requested-attributes printer-state,printer-state-reasons', 'STATUS successful-ok', 'DISPLAY printer-state', 'DISPLAY printer-state-reasons'
  ]))
  if (code !== 0) throw new Error(`Get-Printer-Attributes of ${queue} failed:\n${out}`)
  const state = /printer-state \(enum\) = (\S+)/.exec(out)?.[1] ?? ''
  const reasons = /printer-state-reasons \([^)]*\) = (.*)$/m.exec(out)?.[1]?.split(',') ?? []
  return { state, reasons }
}
