/**
 * The printers of other peers a workstation's client sends its jobs to itself (client
 * spooling, issue 14: client → printer). A site or terminal releasing one of the client's
 * jobs names its printer's IPP URI; the client adds it to its own printers under the label
 * `<site>:<device or printer name>` (how its accounting names it) and keeps the list in its
 * data folder, so that after a restart (kill -9 while sending) the print engine can still
 * ask that printer what became of the job.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { createOutputDevice } from '../devices/output/registry.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import type { DirectPrinters } from '../devices/jobs/roaming.ts'

const FILE = 'direct-printers.json'
/** More printers than a branch has; a longer list is a peer misbehaving, and the oldest go. */
const MAX_PRINTERS = 500

/**
 * Loads the kept printers into `printers` and returns the registry that adds to it (the
 * same map the client's print engine reads).
 */
export async function openDirectPrinters (data: string, printers: Map<string, OutputDevice>, logger: Logger): Promise<DirectPrinters> {
  const file = join(data, FILE)
  let kept: Record<string, string> = {}
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown
    if (typeof parsed === 'object' && parsed !== null) kept = Object.fromEntries(Object.entries(parsed).filter(([, uri]) => typeof uri === 'string')) as Record<string, string>
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, file }, 'the list of printers this client sent jobs to is unreadable; starting a new one')
  }
  for (const [label, uri] of Object.entries(kept)) if (!printers.has(label)) printers.set(label, createOutputDevice(uri, { logger }))
  let saving = Promise.resolve()
  return {
    async add (label, uri) {
      if (kept[label] === uri && printers.has(label)) return label
      kept[label] = uri
      const labels = Object.keys(kept)
      for (const old of labels.slice(0, Math.max(0, labels.length - MAX_PRINTERS))) delete kept[old]
      printers.set(label, createOutputDevice(uri, { logger }))
      const snapshot = JSON.stringify(kept)
      saving = saving.then(async () => {
        await writeFile(`${file}.tmp`, snapshot)
        await rename(`${file}.tmp`, file)
      })
      await saving
      return label
    }
  }
}
