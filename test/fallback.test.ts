// Fallback printing (node/fallback.ts) against a job service whose fallback printer refuses
// a job before accepting it (busy, an error after the probe answered): the job comes back
// held, and must be sent again (the next fallback printer first) instead of staying held
// for good while the site is unreachable; found by the chaos simulator with clients
// (seeds 1, 4 and 8 of `--clients 3`: a fallback print refused once was never retried).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { EventEmitter } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { FallbackPrinting, MAX_FALLBACK_SENDS } from '../node/fallback.ts'
import { jobsDoc, type PeerId, type SiteId } from '../crdt/names.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { DocStore } from '../crdt/store.ts'
import type { Membership } from '../crdt/membership.ts'
import type { OutputDevice } from '../devices/output/types.ts'
import { InvalidJobStateError, type JobRecord } from '../devices/jobs/types.ts'
import { until } from '../simulations/wait.ts'

const SELF = 'client-peer' as PeerId
const SITE = 'branch' as SiteId
const DOC = jobsDoc(SELF, '2026-12')

/**
 * The job service as fallback printing sees it: `release` moves a held job to releasing,
 * then its printer prints it or refuses it before accepting it (the job is held again),
 * as the next entry of `outcomes` says (default: printed). Each change is an entry of the
 * client's jobs document, as the store emits it.
 */
class FakeClient {
  readonly store = new EventEmitter()
  readonly jobs = new Map<string, JobRecord>()
  readonly releases: string[] = []
  outcomes: Array<'refused' | 'printed'> = []

  add (id: string): void {
    this.jobs.set(id, { id, ippId: this.jobs.size + 1, site: SITE, queue: 'printmesh', owner: 'alice', name: id, state: 'held', copies: 1, sides: 'one-sided', createdAt: 0, updatedAt: 0 } as JobRecord)
    this.changed()
  }

  state (id: string): string | undefined { return this.jobs.get(id)?.state }

  private changed (): void { this.store.emit('entry', DOC, new Uint8Array(), undefined, { kind: 'local', service: 'jobs' }) }

  private set (id: string, patch: Partial<JobRecord>): JobRecord {
    const job = { ...(this.jobs.get(id) as JobRecord), ...patch }
    this.jobs.set(id, job)
    this.changed()
    return job
  }

  readonly service = {
    listJobs: () => [...this.jobs.values()].filter((j) => j.state !== 'printed'),
    getById: (id: string) => this.jobs.get(id),
    release: async (id: string, _by: unknown, printer: string): Promise<JobRecord> => {
      if (this.state(id) !== 'held') throw new InvalidJobStateError(`job ${id} is ${this.state(id) ?? 'gone'}, not held`)
      this.releases.push(printer)
      const releasing = this.set(id, { state: 'releasing', printer })
      setImmediate(() => {
        if (this.outcomes.shift() === 'refused') this.set(id, { state: 'held', reason: 'printer-busy', message: `${printer} is busy` })
        else this.set(id, { state: 'printed' })
      })
      return releasing
    }
  }
}

function printer (name: string): OutputDevice {
  return { uri: `ipp://${name}.example/ipp/print`, probe: async () => ({ ok: true, message: 'idle' }) } as unknown as OutputDevice
}

async function fallbackFor (client: FakeClient, names: string[]): Promise<FallbackPrinting> {
  const fallback = new FallbackPrinting(
    { data: join(tmpdir(), 'printmesh-fallback-test-no-choice'), site: SITE, self: SELF, printers: new Map(names.map((n) => [n, printer(n)])) },
    {
      jobs: client.service as unknown as JobService,
      store: client.store as unknown as DocStore,
      membership: { info: () => undefined } as unknown as Membership,
      connectedPeers: () => [], // the site is unreachable
      logger: pino({ level: 'silent' })
    })
  await fallback.start()
  return fallback
}

/** Lets every release and printer outcome of the fake run. */
async function quiet (): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
}

test('a job the fallback printer refused before accepting it is sent again and printed', async () => {
  const client = new FakeClient()
  const fallback = await fallbackFor(client, ['backup'])
  client.outcomes = ['refused', 'printed']
  client.add('j1')
  await until(() => client.state('j1') === 'printed', 5_000, 'j1 printed on the fallback printer')
  assert.equal(client.releases, ['backup', 'backup'])
  await fallback.stop()
})

test('the fallback printer that refused a job goes last: the next one is tried first', async () => {
  const client = new FakeClient()
  const fallback = await fallbackFor(client, ['first', 'second'])
  client.outcomes = ['refused', 'printed']
  client.add('j1')
  await until(() => client.state('j1') === 'printed', 5_000, 'j1 printed on a fallback printer')
  assert.equal(client.releases, ['first', 'second'])
  await fallback.stop()
})

test(`a job refused ${MAX_FALLBACK_SENDS} times stays held, and the user can still send it from the page`, async () => {
  const client = new FakeClient()
  const fallback = await fallbackFor(client, ['backup'])
  client.outcomes = Array.from({ length: MAX_FALLBACK_SENDS }, () => 'refused' as const)
  client.add('j1')
  await until(() => client.releases.length === MAX_FALLBACK_SENDS && client.state('j1') === 'held', 5_000, `j1 refused ${MAX_FALLBACK_SENDS} times`)
  await quiet()
  assert.is(client.releases.length, MAX_FALLBACK_SENDS, 'no further send by itself')
  assert.is(client.state('j1'), 'held')
  // another job arriving does not send it again either, and is sent itself
  client.add('j2')
  await until(() => client.state('j2') === 'printed', 5_000, 'j2 printed')
  assert.is(client.state('j1'), 'held')
  // the user asks on the local page
  const sent = await fallback.printNow('j1')
  assert.is(sent.state, 'releasing')
  await until(() => client.state('j1') === 'printed', 5_000, 'j1 printed once the user asked')
  await fallback.stop()
})

test.run()
