/**
 * A replica's whole content, for the convergence check (invariant 4): every root type of
 * every open document, whatever its kind (map, array, text, or one no code here has typed
 * yet), read from Yjs's own structure without typing it, and the document's signed log
 * vector (writer → last sequence number). Two peers agree only when both are equal.
 */
import * as Y from 'yjs'
import type { DocStore } from '../crdt/store.ts'

/** One document as compared: its roots' content, and its log vector (writers sorted). */
export interface DocDigest {
  roots: Record<string, unknown>
  log: Record<string, number>
}

/** Every open document of `store`, by name. */
export function storeDigest (store: DocStore): Record<string, DocDigest> {
  const out: Record<string, DocDigest> = {}
  for (const name of store.openNames().sort()) {
    const doc = store.get(name)
    if (doc === undefined) continue
    const roots: Record<string, unknown> = {}
    for (const key of [...doc.share.keys()].sort()) {
      const value = typeContent(doc.share.get(key) as Y.AbstractType<unknown>)
      if (!isEmpty(value)) roots[key] = value
    }
    const log = Object.fromEntries([...store.vector(name)].sort(([a], [b]) => a.localeCompare(b)))
    if (Object.keys(roots).length > 0 || Object.keys(log).length > 0) out[name] = { roots, log }
  }
  return out
}

function isEmpty (v: unknown): boolean {
  if (v === undefined) return true
  if (typeof v !== 'object' || v === null) return false
  const o = v as { map?: object, seq?: unknown[] }
  return Object.keys(o.map ?? {}).length === 0 && (o.seq ?? []).length === 0
}

/** A shared type's keyed entries and its sequence, live items only, nested types read the same way. */
function typeContent (type: Y.AbstractType<unknown>): { map: Record<string, unknown>, seq: unknown[] } {
  const map: Record<string, unknown> = {}
  for (const [key, item] of [...type._map].sort(([a], [b]) => a.localeCompare(b))) {
    if (item.deleted) continue
    const content = item.content.getContent()
    map[key] = valueOf(content[content.length - 1])
  }
  const seq: unknown[] = []
  for (let item = type._start; item !== null; item = item.right) {
    if (!item.deleted) for (const c of item.content.getContent()) seq.push(valueOf(c))
  }
  return { map, seq }
}

function valueOf (v: unknown): unknown {
  return v instanceof Y.AbstractType ? typeContent(v as Y.AbstractType<unknown>) : v
}
