// The card reader daemon's inbox (node/card-reader.ts) with a test clock: a posted card is
// handed to the panel once and goes stale after CARD_HOLD_MS; malformed cards and weak or
// missing token files are refused with named errors.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CardReaderInbox, CARD_HOLD_MS, MalformedCardError, CardReaderTokenFileError, readCardReaderToken } from '../node/card-reader.ts'

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('a posted card is taken once; a second take finds none', () => {
  const inbox = new CardReaderInbox({ now: clock().now })
  assert.equal(inbox.post('0004417223'), { expiresAt: 1_000_000 + CARD_HOLD_MS })
  assert.is(inbox.take(), '0004417223')
  assert.is(inbox.take(), undefined)
})

test('a card not taken within the hold time is stale and never handed out', () => {
  const c = clock()
  const inbox = new CardReaderInbox({ now: c.now })
  inbox.post('A1B2C3D4E5')
  c.advance(CARD_HOLD_MS - 1)
  inbox.post('0004417223') // a newer card replaces the older one
  c.advance(CARD_HOLD_MS)
  assert.is(inbox.take(), undefined)
})

test('malformed cards are refused with MalformedCardError and replace nothing', () => {
  const inbox = new CardReaderInbox({ now: clock().now })
  inbox.post('0004417223')
  for (const bad of ['', '123', '12;DROP', 'x'.repeat(65), '0004 4172']) {
    assert.throws(() => inbox.post(bad), (err: unknown) => err instanceof MalformedCardError)
  }
  assert.is(inbox.take(), '0004417223')
})

test('the daemon token matches only itself; without a token none matches', () => {
  const inbox = new CardReaderInbox({ token: 'reader-token-0123456789' })
  assert.is(inbox.needsToken, true)
  assert.is(inbox.tokenMatches('reader-token-0123456789'), true)
  assert.is(inbox.tokenMatches('reader-token-012345678'), false)
  assert.is(inbox.tokenMatches(undefined), false)
  const open = new CardReaderInbox()
  assert.is(open.needsToken, false)
  assert.is(open.tokenMatches('anything'), false)
})

test('a token file is read from its first line; a missing file or a short token is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'printmesh-reader-'))
  try {
    await writeFile(join(dir, 'good'), '  reader-token-0123456789  \nsecond line\n')
    assert.is(await readCardReaderToken(join(dir, 'good')), 'reader-token-0123456789')
    await writeFile(join(dir, 'short'), 'short\n')
    const short = await readCardReaderToken(join(dir, 'short')).then(() => undefined, (err: unknown) => err)
    assert.ok(short instanceof CardReaderTokenFileError && /at least 16 characters/.test(short.message), String(short))
    const missing = await readCardReaderToken(join(dir, 'missing')).then(() => undefined, (err: unknown) => err)
    assert.ok(missing instanceof CardReaderTokenFileError, String(missing))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
