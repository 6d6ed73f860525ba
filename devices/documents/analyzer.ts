/**
 * Document analysis off the main thread, in a pool of worker threads. pdf.js parses on the
 * thread that calls it, so a large or hostile PDF would stall IPP intake and the web API;
 * and one slow document must not hold up the documents behind it.
 *
 * Each worker analyses one document at a time, under limits that count from the moment
 * that document's analysis starts in the worker (time spent queued does not count):
 *   - time: {@link ANALYSIS_TIMEOUT_MS} (or {@link ANALYSIS_TIMEOUT_ENV});
 *   - memory: V8's heap is capped by `resourceLimits` (old and young generation), and the
 *     heap in use plus ArrayBuffers (inflated streams, decoded images: memory
 *     `resourceLimits` does not bound) is sampled and capped at
 *     {@link WORKER_MEMORY_LIMIT_MB} beyond the document's own bytes.
 * A document over a limit is stopped: its worker is terminated (its memory goes back to the
 * system) and replaced, and `parse` rejects with {@link AnalysisStoppedError}, which the job
 * domain turns into a job held with its pages unknown. Documents in other workers are not
 * affected; queued ones start as workers free up.
 *
 * Workers are not kept bloated: one that holds more than {@link RECYCLE_ABOVE_MB} after a
 * document is replaced, and one idle for {@link IDLE_WORKER_MS} ends.
 */
import { stat } from 'node:fs/promises'
import { availableParallelism, totalmem } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { AnalysisStoppedError, CorruptDocumentError, UnsupportedFormatError, type AnalysisStop } from './errors.ts'
import type { AnalysisProgress, DocumentInfo } from './index.ts'
import type { AnalysisReply, AnalysisRequest } from './worker.ts'

/**
 * A document whose analysis has run this long is stopped and held with its pages unknown
 * (still printable): a 1,000-page PDF takes a few seconds, and a worker is not tied up for
 * longer than a minute by one document.
 */
export const ANALYSIS_TIMEOUT_MS = 60_000
/** Environment variable that overrides {@link ANALYSIS_TIMEOUT_MS}, in milliseconds (tests of a whole site use it). */
export const ANALYSIS_TIMEOUT_ENV = 'PRINTMESH_ANALYSIS_TIMEOUT_MS'
/** Fewest workers, whatever the machine: one slow document never holds up every other. */
export const MIN_ANALYSIS_WORKERS = 2
/** Most workers, however large the machine: each may hold {@link WORKER_MEMORY_LIMIT_MB} and a core. */
export const MAX_ANALYSIS_WORKERS = 8
/** Old-generation heap of a worker (pdf.js's parsed objects): a 50,000-page PDF's page tree takes ~250 MB. */
export const WORKER_OLD_GENERATION_MB = 384
/** Young generation (short-lived parser objects): V8's own size for a heap this large; more only delays scavenges. */
export const WORKER_YOUNG_GENERATION_MB = 32
/**
 * Heap in use plus ArrayBuffers a worker may hold beyond the document's own bytes: pdf.js's
 * heap for a 50,000-page document (~250 MB) and a few streams inflated to their 64 MiB bound.
 */
export const WORKER_MEMORY_LIMIT_MB = 512
/**
 * How often a busy worker's memory is sampled: pdf.js inflates 100-200 MB/s, so a bomb
 * overshoots by ~20 MB between samples (plus, at worst, one doubling of pdf.js's own buffer).
 */
const MEMORY_SAMPLE_MS = 100
/**
 * A worker holding more than this (committed heap plus ArrayBuffers) after a document is
 * replaced: analysing ordinary documents a worker settles at ~80 MB (measured over 1,000
 * PDFs, no growth), while a large document or a bomb leaves it holding more for good
 * (measured: 186 MB after a 1 GiB flate bomb).
 */
export const RECYCLE_ABOVE_MB = 160
/** A worker idle this long ends: it holds ~85 MB, and a fresh one answers within a second. */
export const IDLE_WORKER_MS = 15_000
/** Share of the machine's memory all workers may take at their limits, when the pool is sized. */
const MEMORY_SHARE = 0.5
const MiB = 1024 ** 2

/**
 * Workers of the default pool: one per core, as many as half the machine's memory holds at
 * their limit, between {@link MIN_ANALYSIS_WORKERS} and {@link MAX_ANALYSIS_WORKERS}.
 */
export function defaultAnalysisWorkers (): number {
  const byMemory = Math.floor(totalmem() * MEMORY_SHARE / (WORKER_MEMORY_LIMIT_MB * MiB))
  return Math.max(MIN_ANALYSIS_WORKERS, Math.min(MAX_ANALYSIS_WORKERS, availableParallelism(), byMemory))
}

/** The time limit from {@link ANALYSIS_TIMEOUT_ENV}, when set. */
function timeoutFromEnv (): number | undefined {
  const value = process.env[ANALYSIS_TIMEOUT_ENV]
  if (value === undefined || value === '') return undefined
  const ms = Number(value)
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`${ANALYSIS_TIMEOUT_ENV} must be a positive number of milliseconds, not '${value}'`)
  return ms
}

/**
 * Node ≥ 22.18 strips the worker's types itself: without tsx's loader in each worker, pdf.js
 * is not recompiled there (measured: 26 MB of heap instead of 236 MB, first answer in 0.9 s
 * instead of 3.6 s). Older Nodes load the worker through tsx.
 */
const NODE_STRIPS_TYPES = process.features.typescript === 'strip' || process.features.typescript === 'transform'
const WORKER_EXEC_ARGV = NODE_STRIPS_TYPES ? [] : ['--import', import.meta.resolve('tsx')]

export interface DocumentAnalyzerOptions {
  /** Workers analysing at once (default {@link defaultAnalysisWorkers}). */
  workers?: number
  /** Time limit per document, from the start of its analysis (default: {@link ANALYSIS_TIMEOUT_ENV}, else {@link ANALYSIS_TIMEOUT_MS}). */
  timeoutMs?: number
  /** Heap in use plus ArrayBuffers per worker, beyond the document's bytes (default {@link WORKER_MEMORY_LIMIT_MB}). */
  memoryLimitMb?: number
  /** `resourceLimits.maxOldGenerationSizeMb` (default {@link WORKER_OLD_GENERATION_MB}). */
  oldGenerationMb?: number
  /** `resourceLimits.maxYoungGenerationSizeMb` (default {@link WORKER_YOUNG_GENERATION_MB}). */
  youngGenerationMb?: number
  /** Replace a worker holding more than this after a document (default {@link RECYCLE_ABOVE_MB}). */
  recycleAboveMb?: number
  /** End a worker idle this long (default {@link IDLE_WORKER_MS}). */
  idleMs?: number
}

/** A document waiting for, or in, a worker. */
interface Task {
  readonly id: number
  readonly path: string
  readonly format: string
  readonly timeoutMs: number
  /** The document's size (known a moment after it is queued): a PDF's bytes are held by its worker and do not count against the memory limit. */
  bytes: number
  /** What the analysis has learnt so far (worker progress messages). */
  readonly progress: AnalysisProgress
  readonly resolve: (info: DocumentInfo) => void
  readonly reject: (err: unknown) => void
  /** Removes the abort listener; set when the caller passed a signal. */
  unlisten?: () => void
  done: boolean
}

/** One worker of the pool and the document it analyses, if any. */
interface Slot {
  readonly worker: Worker
  /** Its modules are loaded (it said so): before that it has no heap worth sampling. */
  ready: boolean
  task?: Task
  startedAt: number
  /** The task's time limit. */
  deadline?: NodeJS.Timeout
  /** The task's memory sampling. */
  sampler?: NodeJS.Timeout
  sampling: boolean
  /** Ends the worker when idle too long. */
  idle?: NodeJS.Timeout
}

export class DocumentAnalyzer {
  /** Workers analysing at once. */
  readonly size: number
  private readonly timeoutMs: number
  private readonly memoryLimitBytes: number
  private readonly recycleAboveBytes: number
  private readonly idleMs: number
  private readonly resourceLimits: { maxOldGenerationSizeMb: number, maxYoungGenerationSizeMb: number }
  private readonly log: Logger
  private readonly slots = new Set<Slot>()
  private readonly queue: Task[] = []
  private nextId = 1
  private closed = false

  constructor (logger: Logger, options: DocumentAnalyzerOptions = {}) {
    this.log = logger.child({ service: 'analyzer' })
    this.size = options.workers ?? defaultAnalysisWorkers()
    if (!(this.size >= 1)) throw new Error(`an analyzer needs at least one worker, not ${this.size}`)
    this.timeoutMs = options.timeoutMs ?? timeoutFromEnv() ?? ANALYSIS_TIMEOUT_MS
    this.memoryLimitBytes = (options.memoryLimitMb ?? WORKER_MEMORY_LIMIT_MB) * MiB
    this.recycleAboveBytes = (options.recycleAboveMb ?? RECYCLE_ABOVE_MB) * MiB
    this.idleMs = options.idleMs ?? IDLE_WORKER_MS
    this.resourceLimits = {
      maxOldGenerationSizeMb: options.oldGenerationMb ?? WORKER_OLD_GENERATION_MB,
      maxYoungGenerationSizeMb: options.youngGenerationMb ?? WORKER_YOUNG_GENERATION_MB
    }
  }

  /** Workers running now (busy or idle). */
  get workers (): number {
    return this.slots.size
  }

  /**
   * Same contract as `parseDocument`, in a worker, within limits; `timeoutMs` overrides the
   * analyzer's time limit for this document.
   *
   * @throws AnalysisStoppedError when the analysis exceeded its time or memory limit, or its worker died
   * @throws UnsupportedFormatError, CorruptDocumentError as `parseDocument`
   * @throws the signal's reason when `signal` aborts (a running analysis is stopped)
   */
  async parse (path: string, format: string, signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<DocumentInfo> {
    signal?.throwIfAborted()
    if (this.closed) throw new Error('the document analyzer is closed')
    return await new Promise<DocumentInfo>((resolve, reject) => {
      // queued at once, so documents are analysed in the order they were handed in; the file's
      // size (subtracted from the worker's memory, which holds the file) follows in a moment,
      // and a missing file is the worker's to report, as parseDocument would
      const task: Task = { id: this.nextId++, path, format, timeoutMs, bytes: 0, progress: {}, resolve, reject, done: false }
      stat(path).then((s) => { task.bytes = s.size }, () => {})
      if (signal !== undefined) {
        const onAbort = (): void => this.abortTask(task, signal.reason)
        signal.addEventListener('abort', onAbort, { once: true })
        task.unlisten = () => signal.removeEventListener('abort', onAbort)
      }
      this.queue.push(task)
      this.dispatch()
    })
  }

  /** Stops every worker; documents queued or in analysis reject. */
  async close (): Promise<void> {
    this.closed = true
    const closed = new Error('the document analyzer is closed')
    for (const task of this.queue.splice(0)) this.finish(task, closed)
    const ending: Array<Promise<unknown>> = []
    for (const slot of [...this.slots]) {
      if (slot.task !== undefined) this.finish(slot.task, closed)
      ending.push(this.retire(slot))
    }
    await Promise.all(ending)
  }

  // ---- the pool ---------------------------------------------------------------

  /** Starts queued documents on idle workers, spawning workers up to the pool's size. */
  private dispatch (): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = [...this.slots].find((s) => s.task === undefined)
      if (slot === undefined) {
        if (this.slots.size >= this.size) return
        slot = this.spawn()
      }
      this.start(slot, this.queue.shift() as Task)
    }
  }

  private spawn (): Slot {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { execArgv: WORKER_EXEC_ARGV, resourceLimits: this.resourceLimits })
    const slot: Slot = { worker, ready: false, startedAt: 0, sampling: false }
    worker.on('message', (msg: AnalysisReply) => this.answered(slot, msg))
    worker.on('error', (err: Error & { code?: string }) => {
      const outOfMemory = err.code === 'ERR_WORKER_OUT_OF_MEMORY'
      this.lost(slot, outOfMemory ? 'memory-limit' : 'worker-failed', outOfMemory
        ? `its heap outgrew the worker's limit (${this.resourceLimits.maxOldGenerationSizeMb} MB)`
        : `its worker failed: ${err.message}`)
    })
    worker.on('exit', (code) => this.lost(slot, 'worker-failed', `its worker exited with code ${code}`))
    this.slots.add(slot)
    return slot
  }

  private start (slot: Slot, task: Task): void {
    clearTimeout(slot.idle)
    slot.task = task
    slot.worker.ref()
    this.startClock(slot, task)
    slot.sampler = setInterval(() => this.sample(slot, task), MEMORY_SAMPLE_MS)
    const request: AnalysisRequest = { id: task.id, path: task.path, format: task.format }
    slot.worker.postMessage(request) // a worker still loading reads it once loaded
  }

  /**
   * Starts the task's time limit, again when its worker becomes ready: loading a fresh
   * worker's modules is not the document's time (but a worker that never loads is stopped).
   */
  private startClock (slot: Slot, task: Task): void {
    clearTimeout(slot.deadline)
    slot.startedAt = Date.now()
    slot.deadline = setTimeout(() => {
      this.stopped(slot, 'time-limit', `it took longer than ${task.timeoutMs} ms`)
    }, task.timeoutMs)
  }

  /** Stops the slot's document when its worker holds more than the memory limit. */
  private sample (slot: Slot, task: Task): void {
    // Node < 22.16 cannot tell a worker's heap: there, resourceLimits alone bound it
    if (!slot.ready || slot.sampling || typeof slot.worker.getHeapStatistics !== 'function') return
    slot.sampling = true
    slot.worker.getHeapStatistics().then((heap) => {
      slot.sampling = false
      if (slot.task !== task) return
      const used = heap.used_heap_size + heap.external_memory - task.bytes
      if (used > this.memoryLimitBytes) {
        this.stopped(slot, 'memory-limit', `its worker held ${Math.round(used / MiB)} MB, over the limit of ${Math.round(this.memoryLimitBytes / MiB)} MB`)
      }
    }, (err: unknown) => {
      // the worker is ending: its 'exit' settles the task
      slot.sampling = false
      this.log.debug({ err }, 'could not sample an analysis worker\'s memory')
    })
  }

  private answered (slot: Slot, msg: AnalysisReply): void {
    const task = slot.task
    if ('ready' in msg) {
      // its modules are loaded: the time of a document handed to it while loading runs from now
      slot.ready = true
      if (task !== undefined) this.startClock(slot, task)
      return
    }
    if (task === undefined || msg.id !== task.id) return
    if ('progress' in msg) {
      Object.assign(task.progress, msg.progress)
      return
    }
    this.clearTask(slot)
    if ('info' in msg) this.finish(task, undefined, msg.info)
    else this.finish(task, errorFrom(msg.error))
    if (msg.memoryBytes > this.recycleAboveBytes) {
      this.log.info({ path: task.path, heldMb: Math.round(msg.memoryBytes / MiB) }, 'analysis worker grew: replaced')
      void this.retire(slot)
    } else {
      slot.worker.unref()
      slot.idle = setTimeout(() => { void this.retire(slot) }, this.idleMs)
      slot.idle.unref()
    }
    this.dispatch()
  }

  /** A document over a limit: its worker is terminated and replaced, the document rejects with {@link AnalysisStoppedError}. */
  private stopped (slot: Slot, stop: AnalysisStop, why: string): void {
    const task = slot.task
    if (task === undefined || !this.slots.has(slot)) return
    const ms = Date.now() - slot.startedAt
    void this.retire(slot)
    const { format, declaredPages } = task.progress
    // a limit is the document's doing; a worker failing by itself is this program's
    this.log[stop === 'worker-failed' ? 'error' : 'warn']({ path: task.path, format: format ?? task.format, stop, ms, declaredPages }, `document analysis stopped: ${why}`)
    this.finish(task, new AnalysisStoppedError(`${format ?? task.format}: analysis stopped after ${ms} ms, ${why}; pages unknown`, stop, { ...task.progress }))
    this.dispatch()
  }

  /** A worker that failed or exited by itself. */
  private lost (slot: Slot, stop: AnalysisStop, why: string): void {
    if (!this.slots.has(slot)) return // retired: its end was asked for
    if (slot.task === undefined) {
      this.slots.delete(slot)
      this.clearTask(slot)
      clearTimeout(slot.idle)
      this.log.warn({ why }, 'an idle analysis worker ended')
      this.dispatch()
      return
    }
    this.stopped(slot, stop, why)
  }

  /** The caller gave up: a queued document leaves the queue, a running one's worker is stopped. */
  private abortTask (task: Task, reason: unknown): void {
    const queued = this.queue.indexOf(task)
    if (queued >= 0) this.queue.splice(queued, 1)
    const slot = [...this.slots].find((s) => s.task === task)
    if (slot !== undefined) void this.retire(slot)
    this.finish(task, reason)
    this.dispatch()
  }

  /** Takes a worker out of the pool and terminates it. */
  private async retire (slot: Slot): Promise<void> {
    this.slots.delete(slot)
    this.clearTask(slot)
    clearTimeout(slot.idle)
    try {
      await slot.worker.terminate()
    } catch (err) {
      this.log.warn({ err }, 'could not terminate an analysis worker')
    }
    this.log.info({ workers: this.slots.size }, 'analysis worker ended')
  }

  private clearTask (slot: Slot): void {
    clearTimeout(slot.deadline)
    clearInterval(slot.sampler)
    slot.task = undefined
  }

  private finish (task: Task, err: unknown, info?: DocumentInfo): void {
    if (task.done) return
    task.done = true
    task.unlisten?.()
    if (err === undefined && info !== undefined) task.resolve(info)
    else task.reject(err)
  }
}

/** The worker's error, as the class `parseDocument` would have thrown. */
function errorFrom ({ name, message }: { name: string, message: string }): Error {
  if (name === 'CorruptDocumentError') return new CorruptDocumentError(message)
  if (name === 'UnsupportedFormatError') return new UnsupportedFormatError(message)
  return new Error(message)
}
