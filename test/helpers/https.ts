/**
 * HTTPS and TLS as a client that trusts one CA (the mesh CA an admin imported), for the TLS
 * tests: Node's fetch cannot be given a CA per call, so these use node:https and node:tls.
 */
import { request } from 'node:https'
import { request as plainRequest } from 'node:http'
import { connect } from 'node:tls'

/** A request within this long, or the test fails. */
const REQUEST_TIMEOUT_MS = 15_000

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** `method url` (https:// trusting only `ca`, or http://), with an optional bearer token and JSON body. */
export async function call (url: string, opts: { ca?: string, method?: string, token?: string, body?: unknown } = {}): Promise<Answer> {
  const u = new URL(url)
  const body = opts.body !== undefined ? JSON.stringify(opts.body) : undefined
  const headers: Record<string, string> = {
    ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
    ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {})
  }
  return await new Promise<Answer>((resolve, reject) => {
    const send = u.protocol === 'https:' ? request : plainRequest
    const req = send(u, { method: opts.method ?? 'GET', headers, ...(opts.ca !== undefined ? { ca: opts.ca } : {}), timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** `call` that expects 2xx and parses JSON. */
export async function json<T> (url: string, opts: Parameters<typeof call>[1] = {}): Promise<T> {
  const a = await call(url, opts)
  if (a.status < 200 || a.status > 299) throw new Error(`${opts.method ?? 'GET'} ${url}: ${a.status} ${a.body}`)
  return JSON.parse(a.body) as T
}

/** What a TLS client trusting only `ca` makes of the certificate at host:port, asking for `servername`. */
export async function tlsCheck (port: number, ca: string, servername?: string): Promise<{ authorized: boolean, error?: string, names: string, issuer: string }> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false, timeout: REQUEST_TIMEOUT_MS }, () => {
      const cert = socket.getPeerCertificate()
      resolve({
        authorized: socket.authorized,
        ...(socket.authorizationError !== undefined && socket.authorizationError !== null ? { error: String(socket.authorizationError) } : {}),
        names: cert.subjectaltname ?? '',
        issuer: String(cert.issuer?.CN ?? '')
      })
      socket.end()
    })
    socket.on('timeout', () => socket.destroy(new Error(`TLS to port ${port}: no handshake within ${REQUEST_TIMEOUT_MS} ms`)))
    socket.on('error', reject)
  })
}
