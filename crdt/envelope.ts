/**
 * Signed envelopes: the unit that is persisted and replicated. Yjs has no access control
 * and its updates say nothing verifiable about who made them, so every update a peer makes
 * is wrapped with the document name, the author's peer id, a per-(document, author)
 * sequence number and the author's signature. Relays forward envelopes unchanged, so every
 * hop can check the original author's right to write the document (DESIGN.md: "a forged
 * update must be rejected at every hop").
 *
 * A snapshot envelope (kind 1) carries a whole document state; it subsumes every earlier
 * envelope of its author, which lets a writer compact and relays drop what it replaces.
 *
 * Wire layout (lib0 encoding): varUint version, varString doc, varString author,
 * varUint seq, varUint kind, varUint8Array update, varUint8Array signature.
 * The signature covers everything before it.
 */
import type { PeerId } from './names.ts'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

/** Envelope layout version; bumped if fields change. */
export const ENVELOPE_VERSION = 1
export const KIND_UPDATE = 0
export const KIND_SNAPSHOT = 1
/** Longest document name or peer id an envelope may carry. */
const MAX_NAME_CHARS = 512

export interface Envelope {
  doc: string
  author: string
  /** 1, 2, 3 … per (doc, author). */
  seq: number
  kind: typeof KIND_UPDATE | typeof KIND_SNAPSHOT
  update: Uint8Array
  signature: Uint8Array
}

/** Signs with this peer's private key. */
export interface Signer {
  readonly id: PeerId
  sign (data: Uint8Array): Promise<Uint8Array>
}

/** Checks `signature` over `data` against the public key of `author` (a peer id). */
export type Verifier = (author: string, data: Uint8Array, signature: Uint8Array) => Promise<boolean>

export class MalformedEnvelopeError extends Error {
  constructor (message: string) { super(`malformed envelope: ${message}`); this.name = 'MalformedEnvelopeError' }
}

function encodeSigned (e: Omit<Envelope, 'signature'>): Uint8Array {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, ENVELOPE_VERSION)
  encoding.writeVarString(enc, e.doc)
  encoding.writeVarString(enc, e.author)
  encoding.writeVarUint(enc, e.seq)
  encoding.writeVarUint(enc, e.kind)
  encoding.writeVarUint8Array(enc, e.update)
  return encoding.toUint8Array(enc)
}

/** Builds and signs an envelope; returns it with its encoded bytes. */
export async function seal (signer: Signer, fields: Omit<Envelope, 'signature' | 'author'>): Promise<{ envelope: Envelope, bytes: Uint8Array }> {
  const signed = encodeSigned({ ...fields, author: signer.id })
  const signature = await signer.sign(signed)
  const enc = encoding.createEncoder()
  encoding.writeUint8Array(enc, signed)
  encoding.writeVarUint8Array(enc, signature)
  return { envelope: { ...fields, author: signer.id, signature }, bytes: encoding.toUint8Array(enc) }
}

/** Decodes envelope bytes; throws {@link MalformedEnvelopeError}. Does not check the signature. */
export function open (bytes: Uint8Array): { envelope: Envelope, signed: Uint8Array } {
  try {
    const dec = decoding.createDecoder(bytes)
    const version = decoding.readVarUint(dec)
    if (version !== ENVELOPE_VERSION) throw new MalformedEnvelopeError(`unknown version ${version}`)
    const doc = decoding.readVarString(dec)
    const author = decoding.readVarString(dec)
    if (doc.length > MAX_NAME_CHARS || author.length > MAX_NAME_CHARS) throw new MalformedEnvelopeError('name too long')
    const seq = decoding.readVarUint(dec)
    const kind = decoding.readVarUint(dec)
    if (kind !== KIND_UPDATE && kind !== KIND_SNAPSHOT) throw new MalformedEnvelopeError(`unknown kind ${kind}`)
    if (seq < 1) throw new MalformedEnvelopeError('sequence numbers start at 1')
    const update = decoding.readVarUint8Array(dec)
    const signedLength = dec.pos
    const signature = decoding.readVarUint8Array(dec)
    if (decoding.hasContent(dec)) throw new MalformedEnvelopeError('trailing bytes')
    return { envelope: { doc, author, seq, kind, update, signature }, signed: bytes.subarray(0, signedLength) }
  } catch (err) {
    if (err instanceof MalformedEnvelopeError) throw err
    throw new MalformedEnvelopeError((err as Error).message)
  }
}
