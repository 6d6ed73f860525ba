/**
 * Decompression the IPP server does (the `compression` operation attribute, HTTP
 * Content-Encoding), bounded by ratio: a body that inflates to more than
 * `maxRatio` times the bytes received, once past {@link DECOMPRESSION_RATIO_FLOOR_BYTES},
 * is stopped there with an `IntakeTooLargeError` (`decompression-ratio`), so a gzip bomb
 * (~1,000:1) ends after a few MB instead of filling the spool. The decompressed size itself
 * is bounded where the document is spooled (the job's `maxDocumentBytes`).
 */
import { pipeline, Transform, type Readable } from 'node:stream'
import { DECOMPRESSION_RATIO_FLOOR_BYTES, IntakeTooLargeError } from '../jobs/intake-limits.ts'

/**
 * `source` through `inflater`, stopped with an error once the output passes `maxRatio` times
 * the input. Errors of any stage end the returned stream and are told to `onError` first
 * (the source's too: a client that went away). An error after the source is not passed back
 * to it: the source (the HTTP request) stays open, so the server can still answer.
 */
export function boundedInflate (source: Readable, inflater: Transform, maxRatio: number, onError: (err: Error) => void = () => {}): Readable {
  let received = 0
  let inflated = 0
  const counted = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      received += chunk.length
      cb(null, chunk)
    }
  })
  const bounded = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      inflated += chunk.length
      if (inflated > DECOMPRESSION_RATIO_FLOOR_BYTES && inflated > received * maxRatio) {
        cb(new IntakeTooLargeError('decompression-ratio',
          `document refused: it decompresses to more than ${maxRatio} times its compressed size (${inflated} bytes from ${received}), the most this printer accepts`))
        return
      }
      cb(null, chunk)
    }
  })
  source.once('error', (err) => counted.destroy(err))
  source.pipe(counted) // unpiped, not destroyed, when a later stage fails
  return pipeline(counted, inflater, bounded, (err) => {
    if (err !== null && err !== undefined) onError(err)
  })
}
