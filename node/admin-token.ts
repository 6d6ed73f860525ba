/** The admin bearer token of a node: given on the command line, or generated once into the data folder. */
import { readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

/** Admin tokens are 32 random bytes: unguessable. */
const TOKEN_BYTES = 32
const TOKEN_FILE = 'admin-token'

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
