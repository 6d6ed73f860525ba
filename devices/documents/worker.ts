/**
 * Worker-thread entry: runs {@link parseDocument} off the main thread. Messages in:
 * `{ id, path, format }`; out: `{ id, info }` or `{ id, error: { name, message } }`.
 */
import { parentPort } from 'node:worker_threads'
import { parseDocument } from './index.ts'

interface Request { id: number, path: string, format: string }

if (parentPort === null) throw new Error('devices/documents/worker.ts must run in a worker thread')
const port = parentPort
port.on('message', (req: Request) => {
  parseDocument(req.path, req.format).then(
    (info) => port.postMessage({ id: req.id, info }),
    (err: unknown) => port.postMessage({
      id: req.id,
      error: { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) }
    })
  )
})
