/**
 * Document analysis off the main thread. pdf.js parses on the thread that calls it, so a
 * large or hostile PDF would stall IPP intake and the web API; the analyzer runs
 * {@link parseDocument} in one worker thread, bounded in time and memory. A document that
 * exceeds either is refused as corrupt and the worker is replaced; the site keeps serving.
 */
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { CorruptDocumentError, UnsupportedFormatError } from './errors.ts'
import type { DocumentInfo } from './index.ts'

/** A document whose analysis takes longer than this is refused (a 1,000-page PDF takes a few seconds). */
export const ANALYSIS_TIMEOUT_MS = 120_000
/** Old-generation heap of the worker: bounds what one hostile document can take. */
const WORKER_HEAP_MB = 1024

interface Pending {
  resolve: (info: DocumentInfo) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
  path: string
  format: string
}

export class DocumentAnalyzer {
  private worker?: Worker
  private nextId = 1
  private readonly pending = new Map<number, Pending>()

  constructor (private readonly logger: Logger, private readonly timeoutMs = ANALYSIS_TIMEOUT_MS) {}

  private spawn (): Worker {
    // workers do not inherit tsx's hooks when the CLI registered them in-process
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      execArgv: ['--import', import.meta.resolve('tsx')],
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB }
    })
    worker.unref()
    worker.on('message', (msg: { id: number, info?: DocumentInfo, error?: { name: string, message: string } }) => {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.info !== undefined) { p.resolve(msg.info); return }
      const { name, message } = msg.error ?? { name: 'Error', message: 'no answer' }
      p.reject(name === 'CorruptDocumentError'
        ? new CorruptDocumentError(message)
        : name === 'UnsupportedFormatError' ? new UnsupportedFormatError(message) : new Error(message))
    })
    worker.on('error', (err) => this.failAll(worker, new CorruptDocumentError(`document analysis failed: ${err.message}`)))
    worker.on('exit', (code) => this.failAll(worker, new Error(`document analyzer exited with code ${code}`)))
    return worker
  }

  private failAll (worker: Worker, err: Error): void {
    if (this.worker !== worker) return
    this.worker = undefined
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      p.reject(err)
      this.pending.delete(id)
    }
  }

  /** Refuses the document that ran out of time, replaces the worker, re-sends the rest. */
  private timedOut (id: number, timeoutMs: number): void {
    const culprit = this.pending.get(id)
    const worker = this.worker
    if (culprit === undefined || worker === undefined) return
    this.pending.delete(id)
    this.logger.warn({ path: culprit.path, format: culprit.format, timeoutMs }, 'document analysis timed out; restarting the analyzer')
    culprit.reject(new CorruptDocumentError(`${culprit.format}: analysis took longer than ${timeoutMs} ms`))
    this.worker = undefined
    void worker.terminate()
    if (this.pending.size === 0) return
    const fresh = this.worker = this.spawn()
    for (const [otherId, p] of this.pending) fresh.postMessage({ id: otherId, path: p.path, format: p.format })
  }

  /** Same contract as `parseDocument`, plus a time limit. */
  async parse (path: string, format: string, signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<DocumentInfo> {
    signal?.throwIfAborted()
    this.worker ??= this.spawn()
    this.worker.ref()
    const id = this.nextId++
    try {
      return await new Promise<DocumentInfo>((resolve, reject) => {
        const timer = setTimeout(() => this.timedOut(id, timeoutMs), timeoutMs)
        this.pending.set(id, { resolve, reject, timer, path, format })
        this.worker?.postMessage({ id, path, format })
      })
    } finally {
      if (this.pending.size === 0) this.worker?.unref()
    }
  }

  async close (): Promise<void> {
    const worker = this.worker
    this.worker = undefined
    if (worker !== undefined) await worker.terminate()
  }
}
