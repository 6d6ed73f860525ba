#!/usr/bin/env node
// The `printmesh` command (the package's bin, `npx printmesh`, `npm start`, the processes the
// benchmarks start). It runs the JavaScript node/build.js bundles into node/dist, not the
// TypeScript sources through tsx (issue 19: tsx cost ~21 MB of RSS per process and a
// second of start-up); the tests run the sources through tsx.
//
// Stale builds: this file checks node/dist against its sources at every start and rebuilds
// first when any source changed (a few milliseconds when fresh, ~0.5 s to rebuild). The
// check is here rather than in `npm start` (which could simply always rebuild) because every
// way of starting printmesh comes through here, `npx printmesh` and the installed bin
// included, and a start on an unchanged checkout should not rebuild. A failed build stops
// here: an older build is never run in its place. (node/dist/cli.js itself refuses to start
// on a stale build, for whoever runs it by hand.)
import { spawnSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BUILT_CLI, CHECKED, staleReason } from '../build.js'

/**
 * V8 flags printmesh runs with; the process re-executes itself with them (process.execve, same
 * pid, before anything is loaded) unless they, or the same options, are already given.
 *
 * --max-semi-space-size=2 (MB): V8 grows each of the young generation's two semi-spaces up
 * to 16 MB on a 64-bit machine; start-up allocates enough to grow them, and once scavenges
 * have touched both they stay resident: ~30 MB of an idle node's RSS for a few MB of live
 * young objects. Capped at 2 MB, idle RSS measured 20–25 MB less for every role (issue 19,
 * simulations/bench/README.md). The price, measured on a built site under Print-Job load
 * (--trace-gc): scavenges ~8× as many, each as short (a scavenge costs what survives, and a
 * node's young objects are small and short-lived), GC pauses +0.3 ms per 100 KB job (about 4 %
 * of the CPU a job takes), job rates equal within this machine's noise; 5 MB documents are
 * dominated by mark-compacts either way. The analysis workers are not affected: they set their
 * own young generation (resourceLimits).
 */
const V8_FLAGS = ['--max-semi-space-size=2']

const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
const missing = V8_FLAGS.filter((flag) => !given.some((g) => g.split('=')[0] === flag.split('=')[0]))
if (missing.length > 0 && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...missing, ...process.argv.slice(1)], process.env)
}

const reason = staleReason()
if (reason !== undefined) {
  // in a child process: esbuild is not loaded into a node that runs for months. Quiet when it
  // works (~0.5 s), so a command's output is the same whether it rebuilt or not.
  const built = spawnSync(process.execPath, [fileURLToPath(new URL('../build.js', import.meta.url)), '--if-stale'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  if (built.status !== 0) {
    process.stderr.write(`${built.stdout}${built.stderr}printmesh: node/dist is out of date (${reason}) and rebuilding it failed (above); not starting an out-of-date build\n`)
    process.exit(1)
  }
}

globalThis[CHECKED] = true
await import(pathToFileURL(BUILT_CLI).href)
