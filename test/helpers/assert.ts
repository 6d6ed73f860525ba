/** Assertions uvu lacks. */
import * as assert from 'uvu/assert'

/** Awaits `promise` and asserts it rejects with an instance of `type`; returns the error. */
export async function rejects<E extends Error> (promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await promise
  } catch (err) {
    assert.instance(err, type)
    return err as E
  }
  assert.unreachable(`expected a ${type.name}`)
  throw new Error('unreachable')
}
