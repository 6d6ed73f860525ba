/**
 * A bound on what one compressed stream may inflate to. pdf.js inflates FlateDecode
 * content streams and images through the global `DecompressionStream`, collecting every
 * chunk before it concatenates them: a 1 MB flate bomb becomes gigabytes, in small
 * buffers the C library keeps for the process even after the worker that made them is
 * gone (measured: 1.2 GB of a 2.4 GB peak stayed after the worker ended).
 *
 * {@link installInflateLimit} replaces that global with one that ends a stream after
 * {@link MAX_INFLATED_STREAM_BYTES} and counts the cut ({@link inflateLimitHits},
 * {@link onNextInflateCut}), so a parser can tell that what it analyses is incomplete.
 * Analysis workers install it; nothing else does (it changes a global). Streams pdf.js
 * inflates by itself, in JavaScript (where it does not use `DecompressionStream`), are
 * bounded only by the worker's memory limit (analyzer.ts).
 */

/**
 * The most one stream may inflate to: a 300 dpi A4 colour scan is 26 MiB of pixels, a 600
 * dpi gray one 33 MiB. What lies beyond is not analysed (its page is counted colour).
 * Measured with a 1 GiB bomb: a worker peaks at ~300 MB and the process keeps ~130 MB after
 * it (128 MiB: ~470 and ~220 MB; unbounded: 2.4 GB and 1.2 GB).
 */
export const MAX_INFLATED_STREAM_BYTES = 64 * 1024 ** 2

let hits = 0
let installed = false
const cutListeners = new Set<() => void>()

/** How many streams were cut at the limit since the process (or worker) started. */
export function inflateLimitHits (): number {
  return hits
}

/** Calls `listener` once, at the next cut; returns a function that forgets it. */
export function onNextInflateCut (listener: () => void): () => void {
  const once = (): void => { cutListeners.delete(once); listener() }
  cutListeners.add(once)
  return () => { cutListeners.delete(once) }
}

/**
 * Makes every `DecompressionStream` created from now on in this thread end its output after
 * `maxBytes` (the input is then left unread). Installing twice keeps the first bound.
 */
export function installInflateLimit (maxBytes = MAX_INFLATED_STREAM_BYTES): void {
  if (installed) return
  installed = true
  const Native = globalThis.DecompressionStream

  class BoundedDecompressionStream implements GenericTransformStream {
    readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>
    readonly writable: WritableStream<BufferSource>

    constructor (format: CompressionFormat) {
      const inner = new Native(format)
      let total = 0
      this.writable = inner.writable
      this.readable = inner.readable.pipeThrough(new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>({
        transform (chunk, controller) {
          if (total + chunk.byteLength <= maxBytes) {
            total += chunk.byteLength
            controller.enqueue(chunk)
            return
          }
          controller.enqueue(chunk.subarray(0, maxBytes - total))
          total = maxBytes
          hits++
          // closes this side and cancels the inflater: no more output is made
          controller.terminate()
          for (const listener of [...cutListeners]) listener()
        }
      }))
    }
  }

  globalThis.DecompressionStream = BoundedDecompressionStream
}
