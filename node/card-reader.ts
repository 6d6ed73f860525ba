/**
 * A card reader daemon's door into the panel (issue 12 item 2): a USB or serial reader
 * process on the MFP posts each card it reads (`POST /api/panel/card`); the card is held
 * here for a short time and handed once to the panel page, which logs it in exactly as a
 * card typed by a keyboard-wedge reader (`/api/login/card`: the same card check, the same
 * login limits, the logged-in user logged out first).
 *
 * Who may post: with `--card-reader-token-file`, whoever presents that token (the daemon
 * may run elsewhere); without one, only the device itself (loopback). The admin token is
 * never accepted here: a reader daemon must not hold it.
 */
import { readFile } from 'node:fs/promises'
import { createHash, timingSafeEqual } from 'node:crypto'
import { InvalidRequestError } from '../crdt/errors.ts'
import type { CardReaderDoor } from '../ui/api.ts'

/** A posted card waits this long for the panel page to take it: the user is standing at the reader now, later it is stale. */
export const CARD_HOLD_MS = 10_000
/** What a card reader sends: letters and digits (decimal or hex badge numbers), as long as a wedge's card at least. */
export const CARD_PATTERN = /^[A-Za-z0-9]{4,64}$/
/** A token shorter than this is guessable: refused at start. */
const MIN_TOKEN_LENGTH = 16

/** The card posted is not one a reader sends. */
export class MalformedCardError extends InvalidRequestError {
  constructor () { super('card must be 4 to 64 letters or digits, as the reader reads it'); this.name = 'MalformedCardError' }
}

/** The token file is missing, empty or too short. */
export class CardReaderTokenFileError extends Error {
  constructor (file: string, why: string) { super(`card reader token file ${file}: ${why}`); this.name = 'CardReaderTokenFileError' }
}

/** Reads the daemon token: the file's first line, trimmed. @throws CardReaderTokenFileError */
export async function readCardReaderToken (file: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new CardReaderTokenFileError(file, (err as Error).message)
  }
  const token = text.split('\n')[0].trim()
  if (token.length < MIN_TOKEN_LENGTH) throw new CardReaderTokenFileError(file, `the token on its first line must be at least ${MIN_TOKEN_LENGTH} characters`)
  return token
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** The last card a reader daemon posted, until the panel takes it or it goes stale. */
export class CardReaderInbox implements CardReaderDoor {
  private pending: { card: string, expiresAt: number } | undefined
  private readonly tokenDigest: Buffer | undefined

  constructor (private readonly init: { token?: string, now?: () => number, holdMs?: number } = {}) {
    this.tokenDigest = init.token === undefined ? undefined : digest(init.token)
  }

  private now (): number { return (this.init.now ?? Date.now)() }

  /** Whether a daemon token is configured (then it is required, from anywhere). */
  get needsToken (): boolean { return this.tokenDigest !== undefined }

  /** Whether `presented` is the daemon token (constant time). */
  tokenMatches (presented: string | undefined): boolean {
    if (this.tokenDigest === undefined || presented === undefined) return false
    return timingSafeEqual(digest(presented), this.tokenDigest)
  }

  /** Holds `card` for the panel (a newer card replaces an older one not yet taken). @throws MalformedCardError */
  post (card: string): { expiresAt: number } {
    if (!CARD_PATTERN.test(card)) throw new MalformedCardError()
    const expiresAt = this.now() + (this.init.holdMs ?? CARD_HOLD_MS)
    this.pending = { card, expiresAt }
    return { expiresAt }
  }

  /** The card waiting, taken out (so handed once), or undefined when none or stale. */
  take (): string | undefined {
    const p = this.pending
    this.pending = undefined
    return p !== undefined && p.expiresAt > this.now() ? p.card : undefined
  }
}
