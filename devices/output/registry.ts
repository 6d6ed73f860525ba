/**
 * Output devices by URI scheme, as PAPPL registers them: `ipp:` and `ipps:` release to an
 * IPP printer ({@link IppOutputDevice}), `file:` writes into a folder
 * ({@link FileOutputDevice}). Anything else, or a URI that does not parse, is an
 * {@link UnsupportedDeviceUriError}.
 */
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { FileOutputDevice } from './file.ts'
import { IppOutputDevice, IppUriError, type IppOutputDeviceOptions } from './ipp.ts'
import { UnsupportedDeviceUriError, type OutputDevice } from './types.ts'

/** Options for {@link createOutputDevice}. */
export interface CreateOutputDeviceOptions {
  logger: Logger
  /** Tuning of `ipp:` / `ipps:` devices (timeouts, retry, TLS); ignored for `file:`. */
  ipp?: Omit<IppOutputDeviceOptions, 'logger'>
}

/** Hosts a `file:` URI may name: none, or the local machine. */
const LOCAL_FILE_HOSTS: ReadonlySet<string> = new Set(['', 'localhost'])

/**
 * Builds the output device for `uri`.
 *
 * @throws {UnsupportedDeviceUriError} unknown scheme or malformed URI (no host for ipp,
 *   a remote host or relative path for file, …)
 */
export function createOutputDevice (uri: string, opts: CreateOutputDeviceOptions): OutputDevice {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new UnsupportedDeviceUriError(uri)
  }
  switch (url.protocol) {
    case 'ipp:':
    case 'ipps:':
      try {
        return new IppOutputDevice(uri, { ...opts.ipp, logger: opts.logger })
      } catch (err) {
        if (err instanceof IppUriError) throw withCause(new UnsupportedDeviceUriError(uri), err)
        throw err
      }
    case 'file:': {
      if (!/^file:\//i.test(uri)) throw withCause(new UnsupportedDeviceUriError(uri), new Error('file: URIs need an absolute path (file:///dir)'))
      if (!LOCAL_FILE_HOSTS.has(url.hostname)) throw withCause(new UnsupportedDeviceUriError(uri), new Error('file: URIs must name a local folder'))
      if (url.search !== '' || url.hash !== '') throw withCause(new UnsupportedDeviceUriError(uri), new Error('file: URIs take no query or fragment'))
      let dir: string
      try {
        dir = fileURLToPath(url)
      } catch (err) {
        throw withCause(new UnsupportedDeviceUriError(uri), err)
      }
      if (dir === '/') throw withCause(new UnsupportedDeviceUriError(uri), new Error('refusing to write into /'))
      return new FileOutputDevice(uri, dir, { logger: opts.logger })
    }
    default:
      throw new UnsupportedDeviceUriError(uri)
  }
}

function withCause<E extends Error> (err: E, cause: unknown): E {
  err.cause = cause
  return err
}
