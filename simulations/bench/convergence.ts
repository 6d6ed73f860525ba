/**
 * Convergence after a partition: in-process peers (simulations/mesh-harness.ts: real level stores
 * in temp folders, real signatures, the real sync engine over the in-memory transport),
 * split into two halves; jobs are created on the site peers of both halves during the
 * partition (one `putNewJob` transaction per job through the peer's own store), each half
 * settles, then the halves are reconnected and the clock runs from the heal until every
 * peer holds identical documents.
 *
 * "Identical" is checked cheaply while the clock runs (same document names and the same
 * signed-log vector per document on every peer: the same envelopes, hence the same Yjs
 * state) and confirmed once at the end by comparing every peer's full JSON snapshot.
 */
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { TestMesh, type MeshPeer } from '../mesh-harness.ts'
import { jobsDoc, siteId } from '../../crdt/names.ts'
import { putNewJob, type JobRecord } from '../../crdt/jobs.ts'
import { BenchmarkError, round, type BenchContext, type Benchmark, type Row, syntheticJob } from './common.ts'

/** Sizes from the issue: 20 peers (central + 19 sites), 5,000 jobs. */
const FULL = { peers: 20, jobs: 5_000 }
/** Quick mode: the same shape, small. */
const QUICK = { peers: 6, jobs: 300 }
/** Every peer links to its ring neighbour and to the peer this far along the ring (a sparse mesh with relays, as sites dial a few others). */
const CHORD = 5
/** The month every job falls in (one jobs document per peer). */
const PERIOD = '2026-11'
/** Poll interval while the clock runs: the resolution of the convergence time. */
const POLL_MS = 5
/** Give up waiting for convergence after this (bounded run). */
const CONVERGE_TIMEOUT_MS = 180_000

export class NotConvergedError extends BenchmarkError {
  constructor (what: string, ms: number) { super(`${what} did not converge within ${ms} ms`); this.name = 'NotConvergedError' }
}

/** What a peer holds: document names and their log vectors. Equal fingerprints mean equal documents. */
function fingerprint (peer: MeshPeer): string {
  return peer.store.openNames().sort().map((n) => `${n}=${[...peer.store.vector(n)].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([a, s]) => `${a}:${s}`).join(',')}`).join(';')
}

function sameFingerprint (peers: MeshPeer[]): boolean {
  const first = fingerprint(peers[0])
  return peers.every((p) => fingerprint(p) === first)
}

function sameSnapshot (peers: MeshPeer[]): boolean {
  const first = JSON.stringify(peers[0].snapshot())
  return peers.every((p) => JSON.stringify(p.snapshot()) === first)
}

async function waitUntil (check: () => boolean, what: string): Promise<number> {
  const start = performance.now()
  while (!check()) {
    if (performance.now() - start > CONVERGE_TIMEOUT_MS) throw new NotConvergedError(what, CONVERGE_TIMEOUT_MS)
    await delay(POLL_MS)
  }
  return performance.now() - start
}

function job (peer: MeshPeer, n: number, now: number): JobRecord {
  return syntheticJob(n, now, { id: `${peer.id.slice(-12)}-${n}`, site: siteId(peer.name), state: 'held', reason: 'job-hold-until-specified' })
}

async function measure (ctx: BenchContext): ReturnType<Benchmark['run']> {
  const size = ctx.quick ? QUICK : FULL
  const mesh = new TestMesh()
  try {
    ctx.log(`convergence: starting ${size.peers} peers`)
    const peers: MeshPeer[] = [await mesh.addCentral('central')]
    for (let i = 1; i < size.peers; i++) peers.push(await mesh.addPeer(`site-${i}`, 'site', `s${i}`))
    const edges: Array<[number, number]> = []
    for (let i = 0; i < size.peers; i++) {
      edges.push([i, (i + 1) % size.peers])
      if (size.peers > 2 * CHORD) edges.push([i, (i + CHORD) % size.peers])
    }
    for (const [a, b] of edges) await mesh.connect(peers[a], peers[b])
    await waitUntil(() => sameFingerprint(peers), 'the mesh before the partition')

    const half = Math.ceil(size.peers / 2)
    const inA = (i: number): boolean => i < half
    const groupA = peers.filter((_, i) => inA(i))
    const groupB = peers.filter((_, i) => !inA(i))
    const crossing = edges.filter(([a, b]) => inA(a) !== inA(b))
    mesh.network.partition(groupA.map((p) => p.id), groupB.map((p) => p.id))

    ctx.log(`convergence: ${size.jobs} jobs on ${size.peers - 1} site peers during the partition`)
    const sites = peers.slice(1)
    const now = Date.now()
    const t0 = performance.now()
    await Promise.all(sites.map(async (peer, k) => {
      for (let n = k; n < size.jobs; n += sites.length) {
        await peer.store.transact(jobsDoc(peer.id, PERIOD), { kind: 'local', service: 'bench' }, (d) => putNewJob(d, job(peer, n, now)))
      }
    }))
    const createMs = performance.now() - t0
    const settleMs = Math.max(await waitUntil(() => sameFingerprint(groupA), 'half A'), await waitUntil(() => sameFingerprint(groupB), 'half B'))
    const statsBefore = peers.map((p) => p.sync.getStats())

    ctx.log(`convergence: healing (${crossing.length} links across the halves)`)
    const heal = performance.now()
    mesh.network.heal()
    await Promise.all(crossing.map(async ([a, b]) => await mesh.connect(peers[a], peers[b])))
    await waitUntil(() => sameFingerprint(peers), 'the healed mesh')
    const fingerprintAt = performance.now() - heal
    // confirm on the documents themselves (outside the timed part when it already holds)
    const confirmed = sameSnapshot(peers)
    const convergedMs = confirmed ? fingerprintAt : (await waitUntil(() => sameSnapshot(peers), 'the healed mesh (snapshots)'), performance.now() - heal)
    const statsAfter = peers.map((p) => p.sync.getStats())
    const envelopes = statsAfter.reduce((n, s, i) => n + s.envelopesIn - statsBefore[i].envelopesIn, 0)
    const bytes = statsAfter.reduce((n, s, i) => n + s.bytesIn - statsBefore[i].bytesIn, 0)
    const jobsHeld = peers.map((p) => Object.values(p.snapshot()).reduce<number>((n, d) => n + Object.keys((d as { jobs?: object }).jobs ?? {}).length, 0))
    if (jobsHeld.some((n) => n !== size.jobs)) throw new BenchmarkError(`after convergence peers hold ${[...new Set(jobsHeld)].join('/')} jobs, expected ${size.jobs}`)

    const rows: Row[] = [{
      peers: size.peers,
      halves: `${groupA.length}+${groupB.length}`,
      jobs: size.jobs,
      'links cut': crossing.length,
      'create jobs/s': round(size.jobs / (createMs / 1000), 0),
      'half settle ms': round(settleMs, 0),
      'heal→identical ms': round(convergedMs, 0),
      'envelopes after heal': envelopes,
      'MB after heal': round(bytes / 1024 / 1024, 2)
    }]
    return {
      params: { ...size, chord: CHORD, pollMs: POLL_MS, topology: `ring + chord i→i+${CHORD}`, central: 'peer 0, in half A; holds no jobs' },
      rows,
      notes: [
        `Jobs are ${size.jobs} held-job records written with crdt/jobs.ts putNewJob, one signed transaction per job, spread round-robin over the ${size.peers - 1} site peers; each half converged internally before the heal.`,
        `heal→identical is measured from lifting the partition (and re-dialling the ${crossing.length} cut links) until every peer holds the same documents with the same signed-log vectors, polled every ${POLL_MS} ms; every peer's full JSON snapshot was then compared${confirmed ? ' and matched' : ' and matched later (the time includes that wait)'}.`,
        'envelopes/MB after heal: summed over all peers (received, including duplicates dropped by a relay).'
      ]
    }
  } finally {
    await mesh.teardown()
  }
}

export const convergence: Benchmark = {
  name: 'convergence',
  description: 'time from healing a partition to identical documents: 20 in-process peers (memory transport, level stores), 5,000 jobs created while split',
  run: measure
}
