/**
 * The usage counters of /metrics, kept from this peer's own accounting documents: summed
 * once at start (so they continue across restarts), then counted as records are added —
 * whoever charged them (a release here, a partner's roaming print here, a recovery after
 * a restart). A scrape walks nothing. Other peers' accounting is theirs to report.
 */
import { listUsage, observeUsage, type UsageRecord } from '../crdt/accounting.ts'
import { parseDocName, type DocName } from '../crdt/names.ts'
import type { DocStore } from '../crdt/store.ts'
import type { NodeMetrics } from '../ui/metrics.ts'

/** Starts counting; the returned function stops it. */
export async function countOwnUsage (store: DocStore, self: string, metrics: Pick<NodeMetrics, 'seedUsage' | 'charged'>): Promise<() => void> {
  const watched = new Map<DocName, () => void>()
  const own = (name: string): boolean => {
    const parsed = parseDocName(name)
    return parsed?.family === 'acct' && parsed.peer === self
  }
  const watch = async (name: DocName): Promise<UsageRecord[]> => {
    const doc = await store.open(name)
    watched.set(name, observeUsage(doc, metrics.charged))
    return listUsage(doc)
  }
  const stored = { jobs: 0, pages: 0, colorPages: 0, sheets: 0 }
  for (const name of await store.storedNames()) {
    if (!own(name) || watched.has(name)) continue
    for (const r of await watch(name)) {
      stored.jobs++
      stored.pages += r.pages
      stored.colorPages += r.colorPages
      stored.sheets += r.sheets
    }
  }
  metrics.seedUsage(stored)
  // a document this peer starts later (the next month's): its first records arrived before the watch
  const onEntry = (name: DocName): void => {
    if (!own(name) || watched.has(name)) return
    watched.set(name, () => {})
    watch(name).then((records) => { for (const r of records) metrics.charged(r) }, () => watched.delete(name))
  }
  store.on('entry', onEntry)
  return () => {
    store.off('entry', onEntry)
    for (const stop of watched.values()) stop()
    watched.clear()
  }
}
