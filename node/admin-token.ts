/**
 * The admin bearer token of a node: from the environment (PRINTMESH_ADMIN_TOKEN), from a
 * file the admin names, or generated once into the data folder. Never from the command
 * line, which every user of the machine can read in the process list.
 *
 * This start-up token is the node's own and works only until the mesh has a mesh token:
 * `POST /api/admin-token/rotate` on the mesh's authority (central, a standalone site) makes
 * one (node/admin-accounts.ts), and from when that change arrives every node accepts only
 * it. The authority then writes the new token into its own `<data>/admin-token` when that
 * file held its start-up token ({@link replaceOwnTokenFile}), so the CLI there keeps working.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Logger } from 'pino'

/** Admin tokens are 32 random bytes: unguessable. */
const TOKEN_BYTES = 32
const TOKEN_FILE = 'admin-token'

/** The named token file cannot be used. */
export class AdminTokenFileError extends Error {
  constructor (file: string, why: string) {
    super(`admin token file ${file}: ${why}`)
    this.name = 'AdminTokenFileError'
  }
}

/** Reads a token from `file` (surrounding white space trimmed); it must exist and not be empty. */
export async function readAdminTokenFile (file: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new AdminTokenFileError(file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message)
  }
  const token = text.trim()
  if (token === '') throw new AdminTokenFileError(file, 'the file is empty')
  return token
}

export async function resolveAdminToken (data: string, given?: string): Promise<{ token: string, file?: string }> {
  if (given !== undefined && given !== '') return { token: given }
  const file = join(data, TOKEN_FILE)
  try {
    return { token: (await readFile(file, 'utf8')).trim(), file }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    await writeFile(file, token + '\n', { mode: 0o600, flag: 'wx' })
    return { token, file }
  }
}

/**
 * After a rotation at the authority: writes `token` into `<data>/admin-token` when that file
 * holds `previous` (the token this node started with came from it), so the CLI on this
 * machine keeps working; a token the admin gave (environment, their own file) is theirs to
 * replace. Written to a temporary file and renamed, so the file is never half written.
 * Returns the file written, if any.
 */
export async function replaceOwnTokenFile (data: string, previous: string, token: string): Promise<string | undefined> {
  const file = join(data, TOKEN_FILE)
  let current: string
  try {
    current = (await readFile(file, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (current !== previous) return undefined
  const temporary = `${file}.new`
  await writeFile(temporary, token + '\n', { mode: 0o600 })
  await rename(temporary, file)
  return file
}

/** After a rotation, the new mesh token into `<data>/admin-token` when that held this node's last token (node/admin-token.ts). */
export function ownTokenFileKeeper (dataDir: string, startToken: string, logger: Logger): (token: string) => Promise<void> {
  let last = startToken
  return async (token) => {
    try {
      const file = await replaceOwnTokenFile(dataDir, last, token)
      if (file !== undefined) {
        last = token
        logger.info({ file }, 'the new mesh admin token is in the admin token file')
      }
    } catch (err) {
      logger.error({ err }, 'could not write the new mesh admin token into the admin token file')
    }
  }
}
