/** Calls to a node process's JSON API as its admin (bearer token), for the process tests. */
import type { SiteProcess } from '../../simulations/node-process.ts'

/** `method path` with an optional JSON body as the node's admin; the parsed answer, or an Error naming the status and body. */
export async function admin<T> (node: SiteProcess, path: string, init: { method?: string, body?: unknown } = {}): Promise<T> {
  const res = await fetch(node.httpUrl + path, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${node.adminToken}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {})
  })
  const body = await res.json() as T
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${JSON.stringify(body)}`)
  return body
}
