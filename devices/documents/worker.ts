/**
 * Worker-thread entry: runs {@link parseDocument} off the main thread, one document at a
 * time, with the inflate limit installed. Says `{ ready: true }` once its modules are
 * loaded. Messages in: `{ id, path, format }`; out, any number of `{ id, progress }` (what
 * the analysis has learnt so far), then `{ id, info, memoryBytes }` or
 * `{ id, error: { name, message }, memoryBytes }`, where `memoryBytes` is this worker's
 * committed heap plus ArrayBuffers once the document is done (the analyzer replaces a
 * worker that grew too much).
 *
 * Loaded with Node's own type stripping when it has it (analyzer.ts): every module it
 * imports keeps to erasable TypeScript (no parameter properties, enums or namespaces).
 */
import { getHeapStatistics } from 'node:v8'
import { parentPort } from 'node:worker_threads'
import { parseDocument, type AnalysisProgress, type DocumentInfo } from './index.ts'
import { installInflateLimit } from './inflate-limit.ts'

/** A document to analyse. */
export interface AnalysisRequest { id: number, path: string, format: string }

/** What the worker says about a request. */
export type AnalysisReply =
  | { ready: true }
  | { id: number, progress: AnalysisProgress }
  | { id: number, info: DocumentInfo, memoryBytes: number }
  | { id: number, error: { name: string, message: string }, memoryBytes: number }

if (parentPort === null) throw new Error('devices/documents/worker.ts must run in a worker thread')
const port = parentPort
installInflateLimit()

function memoryBytes (): number {
  const heap = getHeapStatistics()
  return heap.total_heap_size + heap.external_memory
}

function reply (message: AnalysisReply): void {
  port.postMessage(message)
}

port.on('message', (req: AnalysisRequest) => {
  parseDocument(req.path, req.format, undefined, (progress) => reply({ id: req.id, progress })).then(
    (info) => reply({ id: req.id, info, memoryBytes: memoryBytes() }),
    (err: unknown) => reply({
      id: req.id,
      error: { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) },
      memoryBytes: memoryBytes()
    })
  )
})
// modules (pdf.js above all) are loaded: the analyzer starts counting a document's time now
reply({ ready: true })
