/** Searching a node's data folder for bytes that must never be stored (PINs, card numbers). */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Whether any file below `dir` contains `text` (as UTF-8 bytes), in any case of its ASCII letters. */
export async function containsBytes (dir: string, text: string): Promise<boolean> {
  const needles = [...new Set([text, text.toUpperCase(), text.toLowerCase()])].map((t) => Buffer.from(t, 'utf8'))
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const bytes = await readFile(join(entry.parentPath, entry.name))
    if (needles.some((n) => bytes.includes(n))) return true
  }
  return false
}
