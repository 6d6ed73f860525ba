/**
 * A peer's identity as the rest of printmesh uses it: the libp2p Ed25519 key signs this
 * peer's envelopes and certificates, and any peer id (which embeds its Ed25519 public key)
 * verifies them. No key material leaves this module except through {@link Signer}.
 *
 * Ed25519 keys are imported into node:crypto once and kept: libp2p's own sign/verify
 * re-imports the key on every call, which cost about as much as the signature itself on
 * every envelope written or received.
 */
import type { PeerId } from '../crdt/names.ts'
import { KeyObject, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import type { Signer, Verifier } from '../crdt/envelope.ts'

/** Ed25519 seed and public key sizes in libp2p's raw private key (seed ‖ public key). */
const ED25519_SEED_BYTES = 32
/** Public keys of authors kept imported; beyond this the oldest is dropped (a mesh has far fewer peers). */
const VERIFY_KEY_CACHE = 4096

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')

export function signerFor (key: PrivateKey): Signer {
  const id = peerIdFromPrivateKey(key).toString() as PeerId // a libp2p peer id is one
  if (key.type !== 'Ed25519') return { id, sign: async (data) => await key.sign(data) }
  const keyObject = createPrivateKey({
    format: 'jwk',
    key: { kty: 'OKP', crv: 'Ed25519', d: b64url(key.raw.subarray(0, ED25519_SEED_BYTES)), x: b64url(key.publicKey.raw) }
  })
  return { id, sign: async (data) => sign(null, data, keyObject) }
}

/** An author's public key, imported once: a node KeyObject for Ed25519, libp2p's key otherwise, null if `author` is no peer id. */
const verifyKeys = new Map<string, KeyObject | PublicKey | null>()

function verifyKeyOf (author: string): KeyObject | PublicKey | null {
  const known = verifyKeys.get(author)
  if (known !== undefined) return known
  let key: KeyObject | PublicKey | null = null
  try {
    const publicKey = peerIdFromString(author).publicKey
    if (publicKey?.type === 'Ed25519') {
      key = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey.raw) } })
    } else if (publicKey !== undefined) {
      key = publicKey
    }
  } catch {
    key = null // not a peer id at all: nothing can be signed by it
  }
  if (verifyKeys.size >= VERIFY_KEY_CACHE) verifyKeys.delete(verifyKeys.keys().next().value as string)
  verifyKeys.set(author, key)
  return key
}

/** Verifies a signature against the public key inside `author`'s peer id; false for anything malformed. */
export const verifyPeerSignature: Verifier = async (author, data, signature) => {
  const key = verifyKeyOf(author)
  if (key === null) return false
  try {
    return key instanceof KeyObject ? verify(null, data, key, signature) : await key.verify(data, signature)
  } catch {
    return false // a signature of the wrong size or shape
  }
}

/** A fresh identity (tests and simulations). */
export async function generateIdentity (): Promise<{ key: PrivateKey, signer: Signer }> {
  const key = await generateKeyPair('Ed25519')
  return { key, signer: signerFor(key) }
}
