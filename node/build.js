// @ts-check
/**
 * The production build: what `printmesh` (node/bin/printmesh.js, `npm start`, `npx printmesh`)
 * runs is plain JavaScript bundled from the TypeScript sources by esbuild into node/dist/
 * (git-ignored), not the sources through tsx. tsx cost every process ~21 MB of RSS and a
 * second of start-up (its loader, and esbuild transforming each module at run time); the
 * tests keep running the sources through tsx.
 *
 *   node node/build.js            build (npm's `prepare` runs it at `npm install`; `npm run build`)
 *   node node/build.js --if-stale build only when node/dist is missing or older than its sources
 *
 * Two entry points: node/cli.ts (dist/cli.js) and the document-analysis worker
 * devices/documents/worker.ts (dist/worker.js). Packages stay external (loaded from
 * node_modules as they are), project modules are bundled, split into chunks so that a
 * module imported with `await import()` is still loaded only when asked for. Every output
 * file sits in node/dist/ itself, so each source's `import.meta.url` is rewritten to where
 * that source lives (its `new URL('../web/', import.meta.url)` still finds the file beside
 * the source), except `new URL('./worker.ts', import.meta.url)`, which names an entry point
 * and becomes `./worker.js` beside the chunk.
 *
 * A stale build is never run: node/dist/build-info.json lists every input with its size and
 * modification time, and {@link buildState} says whether any differs (a changed, restored or
 * deleted file) or an output is missing. The bin checks it at each start and rebuilds first
 * (node/bin/printmesh.js says why the bin and not `npm start`); dist/cli.js run by hand
 * refuses to start on a stale build (the banner below). Builds take a lock, so processes
 * started together build once; files are written under a temporary name and renamed, the
 * stamp last.
 *
 * This file is plain JavaScript (checked with @ts-check in editors): it must run before
 * anything is built and without tsx.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** The built JavaScript (git-ignored). */
export const OUT_DIR = join(ROOT, 'node', 'dist')
/** What the last build read and wrote; written last, so its presence means a complete build. */
export const BUILD_INFO = join(OUT_DIR, 'build-info.json')
/** The CLI's built entry. */
export const BUILT_CLI = join(OUT_DIR, 'cli.js')
const ENTRY_POINTS = ['node/cli.ts', 'devices/documents/worker.ts']
/** Files the output depends on besides the bundled sources (esbuild's metafile lists those). */
const BUILD_CONFIG = ['node/build.js', 'tsconfig.json']
/** A lock older than this was left by a build that died; a build takes ~1 s. */
const STALE_LOCK_MS = 60_000
const LOCK_POLL_MS = 100
/**
 * Chunks an older build wrote and this one no longer does are deleted once they are this
 * old: a process started from the older build may still import one of them lazily.
 */
const OLD_CHUNK_MS = 24 * 3600_000

/**
 * @typedef {{ path: string, size: number, mtimeMs: number }} InputStamp
 * @typedef {{ startedMs: number, esbuild: string, inputs: InputStamp[], outputs: string[] }} BuildInfo
 */

/** @returns {BuildInfo | undefined} */
function readInfo () {
  try { return JSON.parse(readFileSync(BUILD_INFO, 'utf8')) } catch { return undefined }
}

/**
 * Whether node/dist matches the sources: the reason it does not, or undefined when fresh.
 * Stats the ~300 inputs (a few milliseconds).
 * @returns {string | undefined}
 */
export function staleReason () {
  const info = readInfo()
  if (info === undefined) return 'no build yet'
  for (const input of info.inputs) {
    let st
    try { st = statSync(join(ROOT, input.path)) } catch { return `${input.path} is gone` }
    if (st.size !== input.size || st.mtimeMs !== input.mtimeMs) return `${input.path} changed`
  }
  for (const output of info.outputs) if (!existsSync(join(OUT_DIR, output))) return `node/dist/${output} is missing`
  return undefined
}

/** Set by node/bin/printmesh.js once it checked (and if need be rebuilt) node/dist, so dist/cli.js does not check again. */
export const CHECKED = Symbol.for('printmesh.build-checked')

/** Stops a process started from a stale build (dist/cli.js calls it first), unless the bin has just checked. */
export function refuseStale () {
  if (/** @type {Record<symbol, unknown>} */ (globalThis)[CHECKED] === true) return
  const reason = staleReason()
  if (reason === undefined) return
  process.stderr.write(`printmesh: node/dist is older than the sources (${reason}); run node/bin/printmesh.js (it rebuilds) or npm run build\n`)
  process.exit(1)
}

/** @param {string} file */
function posix (file) { return file.split(sep).join('/') }

/** Stands for the output file's own `import.meta.url` while the others are rewritten. */
const OWN_URL = '__printmesh_output_url__'

/**
 * esbuild plugin: each project source's `import.meta.url` becomes the URL of the source
 * itself (relative to the output file, so a moved checkout still works), and a
 * `new URL('./x.ts', import.meta.url)` naming an entry point becomes `./x.js` beside the chunk.
 * @param {string[]} entries absolute paths of the entry points
 * @returns {import('esbuild').Plugin}
 */
function importMetaUrlPlugin (entries) {
  return {
    name: 'printmesh-import-meta-url',
    setup (build) {
      build.onLoad({ filter: /\.ts$/ }, (args) => {
        if (args.path.includes(`${sep}node_modules${sep}`)) return undefined
        let source = readFileSync(args.path, 'utf8')
        if (source.includes('import.meta.url')) {
          source = source.replace(/new URL\(\s*(['"])(\.{1,2}\/[^'"]+)\.ts\1\s*,\s*import\.meta\.url\s*\)/g, (whole, _q, rel) => {
            const target = resolve(dirname(args.path), `${rel}.ts`)
            if (!entries.includes(target)) return whole
            return `new URL(${JSON.stringify(`./${rel.split('/').pop()}.js`)}, ${OWN_URL})`
          })
          const fromOut = posix(relative(OUT_DIR, args.path))
          source = source.replace(/\bimport\.meta\.url\b/g, `new URL(${JSON.stringify(fromOut)}, import.meta.url).href`).replaceAll(OWN_URL, 'import.meta.url')
        }
        return { contents: source, loader: 'ts' }
      })
    }
  }
}

/** @param {number} pid */
function alive (pid) {
  try { process.kill(pid, 0); return true } catch (err) { return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM' }
}

/**
 * The build lock: a folder holding the builder's pid. A lock whose builder is gone (killed
 * mid-build) or that is older than {@link STALE_LOCK_MS} is taken over.
 * @param {string} lock
 */
function takeLock (lock) {
  try {
    mkdirSync(lock)
    writeFileSync(join(lock, 'pid'), String(process.pid))
    return true
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'EEXIST') throw err
    try {
      let pid = 0
      try { pid = Number(readFileSync(join(lock, 'pid'), 'utf8')) } catch { /* being written: judge by age */ }
      if ((pid > 0 && !alive(pid)) || Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) { rmSync(lock, { recursive: true, force: true }); return takeLock(lock) }
    } catch { /* released meanwhile: try again on the next poll */ }
    return false
  }
}

/**
 * Builds node/dist (always, or only when stale). Resolves once a fresh build is there,
 * whether this process or another one built it.
 * @param {{ ifStale?: boolean, log?: (line: string) => void }} [opts]
 * @returns {Promise<{ built: boolean, ms: number }>}
 */
export async function build (opts = {}) {
  const t0 = Date.now()
  mkdirSync(OUT_DIR, { recursive: true })
  const lock = join(OUT_DIR, '.lock')
  while (!takeLock(lock)) await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
  try {
    if (opts.ifStale === true && staleReason() === undefined) return { built: false, ms: Date.now() - t0 }
    const esbuild = await import('esbuild')
    const startedMs = Date.now()
    const entries = ENTRY_POINTS.map((e) => join(ROOT, e))
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: entries,
      outdir: OUT_DIR,
      entryNames: '[name]',
      chunkNames: '[name]-[hash]',
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      packages: 'external',
      // source positions for stack traces with `node --enable-source-maps` (maps are not loaded otherwise)
      sourcemap: 'linked',
      sourcesContent: false,
      metafile: true,
      write: false,
      logLevel: 'warning',
      plugins: [importMetaUrlPlugin(entries)]
    })
    /** @type {string[]} */
    const outputs = []
    const files = [...result.outputFiles].sort((a, b) => rank(a.path) - rank(b.path))
    for (const file of files) {
      let text = file.text
      // dist/cli.js run by hand refuses a stale build (run through the bin, it was rebuilt first);
      // only the CLI: a chunk imported lazily must not stop a running node because a source changed since
      if (file.path === BUILT_CLI) text = GUARD + text
      else if (file.path === `${BUILT_CLI}.map`) text = shiftMap(text, GUARD.split('\n').length - 1)
      const tmp = `${file.path}.tmp-${process.pid}`
      writeFileSync(tmp, text)
      renameSync(tmp, file.path)
      outputs.push(posix(relative(OUT_DIR, file.path)))
    }
    const inputs = [...Object.keys(result.metafile.inputs), ...BUILD_CONFIG].map((path) => {
      const st = statSync(join(ROOT, path))
      // a file edited while esbuild read it: recorded as changed, so the next start builds again
      return { path: posix(path), size: st.size, mtimeMs: st.mtimeMs >= startedMs ? -1 : st.mtimeMs }
    })
    /** @type {BuildInfo} */
    const info = { startedMs, esbuild: esbuild.version, inputs, outputs }
    writeFileSync(`${BUILD_INFO}.tmp-${process.pid}`, JSON.stringify(info, null, 1) + '\n')
    renameSync(`${BUILD_INFO}.tmp-${process.pid}`, BUILD_INFO)
    pruneOldChunks(new Set(outputs))
    opts.log?.(`built node/dist (${outputs.filter((o) => o.endsWith('.js')).length} files) in ${Date.now() - t0} ms`)
    return { built: true, ms: Date.now() - t0 }
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/** Put before dist/cli.js's own code: ES modules run their imports first, in order, so this runs before anything else. */
const GUARD = "import { refuseStale as printmeshRefuseStale } from '../build.js'\nprintmeshRefuseStale()\n"

/**
 * A source map whose generated file got `lines` lines in front.
 * @param {string} json
 * @param {number} lines
 */
function shiftMap (json, lines) {
  const map = JSON.parse(json)
  map.mappings = ';'.repeat(lines) + map.mappings
  return JSON.stringify(map)
}

/**
 * Write order: chunks, then the worker and the CLI (which import them), so a process
 * starting meanwhile never finds an entry whose chunks are not written yet.
 * @param {string} path
 */
function rank (path) {
  return path.endsWith('cli.js') ? 2 : path.endsWith('worker.js') ? 1 : 0
}

/** @param {Set<string>} current */
function pruneOldChunks (current) {
  for (const name of readdirSync(OUT_DIR)) {
    if (current.has(name) || name === 'build-info.json' || name === '.lock') continue
    const file = join(OUT_DIR, name)
    try {
      if (name.includes('.tmp-') || Date.now() - statSync(file).mtimeMs > OLD_CHUNK_MS) unlinkSync(file)
    } catch { /* another build removed it */ }
  }
}

/** Removes node/dist (`--clean`). */
function clean () {
  rmSync(OUT_DIR, { recursive: true, force: true })
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  if (args.includes('--clean')) clean()
  build({ ifStale: args.includes('--if-stale'), log: (line) => process.stderr.write(`printmesh: ${line}\n`) }).catch((err) => {
    process.stderr.write(`printmesh: build failed: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
