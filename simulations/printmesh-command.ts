/**
 * How harnesses start a `printmesh` process: the arguments before its subcommand.
 *
 * Tests run the TypeScript sources through tsx (`node --import tsx node/cli.ts`), so a test
 * sees an edit without a build. Benchmarks measure what production runs: with
 * {@link RUN_BUILT_ENV}=1 (simulations/bench/run.ts sets it) the process is
 * `node node/bin/printmesh.js`, the built JavaScript in node/dist, rebuilt first when stale
 * (node/build.js). The same variable runs any process test against the build.
 */
import { join } from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname
/** Set to 1 to start printmesh processes from the build (node/bin/printmesh.js) instead of the sources. */
export const RUN_BUILT_ENV = 'PRINTMESH_RUN_BUILT'
/** The package's bin: checks the build, rebuilds it when stale, runs node/dist/cli.js. */
export const PRINTMESH_BIN = join(ROOT, 'node/bin/printmesh.js')
/** The CLI's TypeScript source. */
export const PRINTMESH_SOURCE = join(ROOT, 'node/cli.ts')

/** Whether processes started now run the build. */
export function runsBuilt (): boolean {
  return process.env[RUN_BUILT_ENV] === '1'
}

/** `node` arguments before printmesh's own: the bin (built) or tsx and the CLI's source. */
export function printmeshArgs (): string[] {
  return runsBuilt() ? [PRINTMESH_BIN] : ['--import', 'tsx', PRINTMESH_SOURCE]
}
