// Service composition (node/compose.ts): dependency order, named boot errors, reverse stop,
// and the Startable guarantees every factory-made service gets.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pino } from 'pino'
import {
  createNode, serviceFactory, startableOnce, startOrder,
  MissingServiceError, DependencyCycleError, UnknownServiceError, type Startable
} from '../node/compose.ts'
import { servicesOf, ROLES } from '../node/roles.ts'

const logger = pino({ level: 'silent' })

/** A service that records its starts and stops in `log`, and refuses to stop before it started. */
function recorder (name: string, log: string[], opts: { failStart?: boolean } = {}): Startable {
  let running = false
  return {
    async start () {
      if (running) throw new Error(`${name} started twice`)
      if (opts.failStart === true) throw new Error(`${name} cannot start`)
      running = true
      log.push(`start ${name}`)
    },
    async stop () {
      if (!running) throw new Error(`${name} stopped while not running`)
      running = false
      log.push(`stop ${name}`)
    }
  }
}

test('services start after what they depend on and stop in reverse; each sees only its declared components', async () => {
  const log: string[] = []
  const seen: Record<string, string[]> = {}
  const make = (name: string, deps: string[]) => serviceFactory<Record<string, unknown>, Startable>(deps, (c) => {
    seen[name] = Object.keys(c).sort()
    return recorder(name, log)
  })
  // listed out of order: http needs jobs, jobs needs store (a component) and analyzer
  const node = createNode({
    components: { store: {}, logger },
    services: { http: make('http', ['jobs']), jobs: make('jobs', ['store', 'analyzer']), analyzer: make('analyzer', ['logger']) },
    logger
  })
  assert.equal(node.order, ['analyzer', 'jobs', 'http'])
  assert.equal(seen, { analyzer: ['logger'], jobs: ['analyzer', 'store'], http: ['jobs'] })
  await node.start()
  await node.stop()
  assert.equal(log, ['start analyzer', 'start jobs', 'start http', 'stop http', 'stop jobs', 'stop analyzer'])
})

test('a missing dependency fails before anything is built, naming every missing component and who needs it', () => {
  let built = 0
  const make = (deps: string[]) => serviceFactory<Record<string, unknown>, Startable>(deps, () => { built++; return recorder('x', []) })
  try {
    createNode({ components: { logger }, services: { ipp: make(['jobs', 'logger']), http: make(['jobs', 'printers']) }, logger })
    assert.unreachable('must fail at boot')
  } catch (err) {
    assert.instance(err, MissingServiceError)
    assert.equal([...(err as MissingServiceError).missing], [['jobs', ['ipp', 'http']], ['printers', ['http']]])
    assert.match((err as Error).message, 'jobs (needed by ipp, http); printers (needed by http)')
  }
  assert.is(built, 0, 'no service is built when the role is wrong')
})

test('services depending on each other in a circle are refused with the cycle named', () => {
  try {
    startOrder([], [['a', { dependencies: ['b'] }], ['b', { dependencies: ['c'] }], ['c', { dependencies: ['a'] }]])
    assert.unreachable('a cycle cannot be ordered')
  } catch (err) {
    assert.instance(err, DependencyCycleError)
    assert.equal((err as DependencyCycleError).cycle, ['a', 'b', 'c', 'a'])
  }
})

test('a role list naming an unknown service fails with every unknown name', () => {
  try {
    servicesOf('site', [...ROLES.site, 'fax', 'scanner'], { documents: () => serviceFactory([], () => recorder('d', [])) })
    assert.unreachable('unknown services must be refused')
  } catch (err) {
    assert.instance(err, UnknownServiceError)
    assert.ok((err as UnknownServiceError).unknown.includes('fax') && (err as UnknownServiceError).unknown.includes('scanner'))
    assert.not.ok((err as UnknownServiceError).unknown.includes('documents'), 'a known service is not reported')
  }
})

test('a service that fails to start stops those started before it, in reverse, and the error reaches the caller', async () => {
  const log: string[] = []
  const node = createNode({
    components: {},
    services: {
      a: serviceFactory([], () => recorder('a', log)),
      b: serviceFactory(['a'], () => recorder('b', log)),
      c: serviceFactory(['b'], () => recorder('c', log, { failStart: true }))
    },
    logger
  })
  try {
    await node.start()
    assert.unreachable('start must fail')
  } catch (err) {
    assert.match((err as Error).message, 'c cannot start')
  }
  assert.equal(log, ['start a', 'start b', 'stop b', 'stop a'])
})

test('a factory-made service starts once however often start is called, even concurrently, and stop without start does nothing', async () => {
  const log: string[] = []
  const s = startableOnce(recorder('s', log))
  await s.stop() // never started: the recorder would throw
  await Promise.all([s.start(), s.start()])
  await s.start()
  assert.equal(log, ['start s'])
  await Promise.all([s.stop(), s.stop()])
  await s.stop()
  assert.equal(log, ['start s', 'stop s'])
  await s.start() // a stopped service starts again
  assert.equal(log, ['start s', 'stop s', 'start s'])
})

test('a service whose start failed is stopped and may be started again', async () => {
  let fail = true
  let starts = 0
  const s = startableOnce({ async start () { starts++; if (fail) throw new Error('port in use') }, async stop () { throw new Error('must not stop what did not start') } })
  try { await s.start(); assert.unreachable() } catch (err) { assert.match((err as Error).message, 'port in use') }
  await s.stop()
  fail = false
  await s.start()
  assert.is(starts, 2)
})

test.run()
