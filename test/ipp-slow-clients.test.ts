// Slow clients on the IPP port: headers that trickle in and bodies sent a few bytes at a
// time are cut off within the configured limits, while a client sending at a modest but
// honest pace prints; the server serves others throughout.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { connect, type Socket } from 'node:net'
import { rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { Op, statusName, encodeMessage, attr, Tag } from '../devices/ipp/wire.ts'
import { makePdf } from './fixtures/documents.ts'
import { startIppRig, ippPost, ippRequest, type IppRig } from './helpers/ipp-client.ts'
import { tempDir } from '../simulations/node-process.ts'
import { readFile } from 'node:fs/promises'

/** Limits small enough for a test to see them act (the defaults are 10 s, 1 KiB/s over 30 s). */
const LIMITS = { headersTimeoutMs: 1_000, minBytesPerSecond: 2_000, rateWindowMs: 1_200 }
/** A trickling client is cut within its limit plus a sampling step and Node's check period; this is ample. */
const CUT_WITHIN_MS = 6_000
/** Pause between the trickling client's writes. */
const TRICKLE_MS = 200

let rig: IppRig
let docs = ''
const sockets: Socket[] = []
const timers: NodeJS.Timeout[] = []

test.before(async () => {
  rig = await startIppRig({ clientLimits: LIMITS })
  docs = await tempDir('printmesh-slow-')
})
test.after(async () => {
  for (const t of timers) clearInterval(t)
  for (const s of sockets) s.destroy()
  await rig?.stop()
  await rm(docs, { recursive: true, force: true })
})
test.after.each(async () => {
  const r = await ippPost(rig.uri, ippRequest(Op.GetPrinterAttributes, rig.uri, { operation: [attr('requested-attributes', Tag.keyword, 'printer-state')] }))
  assert.is(statusName(r.message?.code ?? -1), 'successful-ok', 'the server still serves')
})

/** Opens a raw connection that writes `first`, then `next()` every {@link TRICKLE_MS}; resolves when the server closes it, with how long that took. */
async function trickle (first: string | Buffer, next: () => string | Buffer): Promise<number> {
  const socket = connect(rig.port, '127.0.0.1')
  sockets.push(socket)
  socket.on('error', () => {}) // the cut may surface as a reset
  socket.on('data', () => {}) // a 408/400 answer, if any, before the close
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const opened = Date.now()
  socket.write(first)
  const timer = setInterval(() => { if (socket.writable) socket.write(next()) }, TRICKLE_MS)
  timers.push(timer)
  return await new Promise<number>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`the server kept the trickling connection open for ${CUT_WITHIN_MS} ms`)), CUT_WITHIN_MS)
    socket.once('close', () => {
      clearTimeout(deadline)
      clearInterval(timer)
      resolve(Date.now() - opened)
    })
  })
}

test('headers sent a byte at a time are cut off after the headers timeout', async () => {
  let n = 0
  const took = await trickle('POST /ipp/print HTTP/1.1\r\nHost: 127.0.0.1\r\n', () => `X-Slow-${n++}: a\r\n`.slice(0, 1))
  assert.ok(took >= LIMITS.headersTimeoutMs - 100, `cut after ${took} ms, before the timeout`)
})

test('a body sent a few bytes at a time is cut off once its rate stays under the minimum for a window', async () => {
  const head = encodeMessage(ippRequest(Op.PrintJob, rig.uri, { user: 'mallory' }))
  const took = await trickle(
    `POST /ipp/print HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ipp\r\nContent-Length: ${head.length + 1_000_000}\r\n\r\n`,
    () => Buffer.alloc(20) // 100 bytes/s, far under the minimum
  )
  assert.ok(took >= LIMITS.rateWindowMs, `cut after ${took} ms, within its first window`)
})

test('a client sending steadily above the minimum rate prints', async () => {
  const pdf = await readFile(await makePdf(docs, { pages: 2, colorPages: [] }))
  // about 4× the minimum rate, for about two windows
  const chunk = Math.ceil(LIMITS.minBytesPerSecond * 4 * TRICKLE_MS / 1000)
  const padded = Buffer.concat([pdf, Buffer.alloc(Math.max(0, chunk * 12 - pdf.length), '\n')])
  let offset = 0
  const slowBody = new Readable({
    read () {
      if (offset >= padded.length) { this.push(null); return }
      const part = padded.subarray(offset, offset + chunk)
      offset += chunk
      setTimeout(() => this.push(part), TRICKLE_MS)
    }
  })
  const r = await ippPost(rig.uri, ippRequest(Op.PrintJob, rig.uri, { user: 'alice', operation: [attr('document-format', Tag.mimeMediaType, 'application/pdf')] }), slowBody)
  assert.is(statusName(r.message?.code ?? -1), 'successful-ok')
})

test.run()
