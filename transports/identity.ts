/**
 * A peer's identity as the rest of printmesh uses it: the libp2p Ed25519 key signs this
 * peer's envelopes and certificates, and any peer id (which embeds its Ed25519 public key)
 * verifies them. No key material leaves this module except through {@link Signer}.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { Signer, Verifier } from '../crdt/envelope.ts'

export function signerFor (key: PrivateKey): Signer {
  const id = peerIdFromPrivateKey(key).toString()
  return { id, sign: async (data) => await key.sign(data) }
}

/** Verifies a signature against the public key inside `author`'s peer id; false for anything malformed. */
export const verifyPeerSignature: Verifier = async (author, data, signature) => {
  let publicKey
  try {
    publicKey = peerIdFromString(author).publicKey
  } catch {
    return false // not a peer id at all: nothing can be signed by it
  }
  if (publicKey === undefined) return false
  return await publicKey.verify(data, signature)
}

/** A fresh identity (tests and simulations). */
export async function generateIdentity (): Promise<{ key: PrivateKey, signer: Signer }> {
  const key = await generateKeyPair('Ed25519')
  return { key, signer: signerFor(key) }
}
