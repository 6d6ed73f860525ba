/**
 * The admin bearer token of a node: from the environment (PRINTMESH_ADMIN_TOKEN), from a
 * file the admin names, or generated once into the data folder. Never from the command
 * line, which every user of the machine can read in the process list.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

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
