// Peer identity: signatures made with the kept node:crypto key are libp2p Ed25519 signatures, and verification rejects anything forged or malformed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { generateIdentity, signerFor, verifyPeerSignature } from '../transports/identity.ts'

const data = new TextEncoder().encode('job 42 released at branch B')

test('a signature is the one libp2p makes with the same key, and libp2p verifies it', async () => {
  const { key, signer } = await generateIdentity()
  const signature = await signer.sign(data)
  assert.equal([...signature], [...await key.sign(data)])
  assert.ok(await key.publicKey.verify(data, signature))
  assert.ok(await verifyPeerSignature(signer.id, data, signature))
})

test('a signature by libp2p\'s own signer verifies (envelopes signed before keys were kept)', async () => {
  const { key, signer } = await generateIdentity()
  assert.ok(await verifyPeerSignature(signer.id, data, await key.sign(data)))
})

test('changed data, another peer\'s signature, a cut signature and a non-peer author are all rejected', async () => {
  const alice = await generateIdentity()
  const mallory = await generateIdentity()
  const signature = await alice.signer.sign(data)
  const changed = Uint8Array.from(data)
  changed[0] ^= 1
  assert.not.ok(await verifyPeerSignature(alice.signer.id, changed, signature))
  assert.not.ok(await verifyPeerSignature(alice.signer.id, data, await mallory.signer.sign(data)))
  assert.not.ok(await verifyPeerSignature(alice.signer.id, data, signature.subarray(0, 63)))
  assert.not.ok(await verifyPeerSignature('not-a-peer-id', data, signature))
  // still accepted afterwards: a rejection caches nothing wrong
  assert.ok(await verifyPeerSignature(alice.signer.id, data, signature))
})

test('a secp256k1 peer signs and verifies through libp2p', async () => {
  const key = await generateKeyPair('secp256k1')
  const signer = signerFor(key)
  const signature = await signer.sign(data)
  assert.ok(await verifyPeerSignature(signer.id, data, signature))
  assert.not.ok(await verifyPeerSignature(signer.id, data.subarray(1), signature))
})

test.run()
