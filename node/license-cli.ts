/**
 * `printmesh license keygen|issue|show`: the vendor's side of product licenses (a key
 * pair, signing a license) and checking a license file (node/license-file.ts).
 */
import { InvalidArgumentError, type Command } from 'commander'
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { issueLicense, licenseRecord, licenseState, loadVendorPrivateKey, loadVendorPublicKey, readLicenseFile, writeVendorKeyPair } from './license-file.ts'
import { licenseMessage } from './central-license.ts'

/** `YYYY-MM-DD`: the day a license expires (00:00 UTC). */
function isoDay (value: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN
  if (Number.isNaN(ms)) throw new InvalidArgumentError('must be a date as YYYY-MM-DD')
  return ms
}

/** A limit: 0 or more. */
function count (value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number of 0 or more')
  return n
}

const print = (text: string): void => { process.stdout.write(text + '\n') }

/** Adds keygen, issue and show to the `license` command. */
export function licenseCommands (license: Command): Command {
  license.command('keygen')
    .description('write a new vendor key pair (vendor-private-key.pem, 0600, and vendor-public-key.pem) into DIR; keep the private key away from every central')
    .requiredOption('--out <dir>', 'folder for the key pair (a key there is never overwritten)')
    .action(async (opts: { out: string }) => {
      const { privateKeyFile, publicKeyFile } = await writeVendorKeyPair(resolve(opts.out))
      print(`private key: ${privateKeyFile}\npublic key:  ${publicKeyFile}`)
    })
  license.command('issue')
    .description('sign a license with the vendor\'s private key')
    .requiredOption('--vendor-key <file>', 'the vendor\'s private key (PEM, from license keygen)')
    .requiredOption('--org <name>', 'the organisation licensed')
    .requiredOption('--sites <n>', 'most sites that may enrol', count)
    .requiredOption('--terminals <n>', 'most terminals that may enrol', count)
    .requiredOption('--clients <n>', 'most workstation clients that may enrol', count)
    .requiredOption('--users <n>', 'most active users in the directory', count)
    .requiredOption('--expires <YYYY-MM-DD>', 'the day the license expires (UTC)', isoDay)
    .option('--id <id>', 'the license id (default: a random lic-…)')
    .requiredOption('--out <file>', 'where to write the license file (an existing file is not overwritten)')
    .action(async (opts: { vendorKey: string, org: string, sites: number, terminals: number, clients: number, users: number, expires: number, id?: string, out: string }) => {
      const text = issueLicense({
        organisation: opts.org,
        limits: { sites: opts.sites, terminals: opts.terminals, clients: opts.clients, users: opts.users },
        expiresAt: opts.expires,
        ...(opts.id !== undefined ? { licenseId: opts.id } : {})
      }, await loadVendorPrivateKey(opts.vendorKey))
      await writeFile(opts.out, text, { flag: 'wx' })
      if (opts.expires < Date.now()) process.stderr.write(`printmesh: note: this license expired on ${new Date(opts.expires).toISOString().slice(0, 10)} already\n`)
      print(`wrote ${opts.out}`)
    })
  license.command('show <file>')
    .description('check a license file\'s signature and print what it states')
    .option('--vendor-public-key <file>', 'check with this vendor public key instead of the shipped one (tests, self-hosted vendors)')
    .action(async (file: string, opts: { vendorPublicKey?: string }) => {
      const checked = await readLicenseFile(file, await loadVendorPublicKey(opts.vendorPublicKey))
      const record = licenseRecord(checked)
      const now = Date.now()
      const state = licenseState(record, now)
      print(`license ${checked.licenseId}: signature valid\n` +
        `organisation: ${checked.organisation}\n` +
        `limits:       ${checked.limits.sites} sites, ${checked.limits.terminals} terminals, ${checked.limits.clients} clients, ${checked.limits.users} users\n` +
        `issued:       ${checked.issuedAt}\n` +
        `expires:      ${checked.expiresAt}\n` +
        `state:        ${state}: ${licenseMessage(record, state, now)}`)
    })
  return license
}
