/**
 * An IPP client over `ipps://` that trusts one CA only (the mesh CA an admin imported), for the
 * TLS tests: CUPS' own tools (ipptool, lp) do not check a server's certificate at all in
 * CUPS 2.4 with GnuTLS (see test/tls-lp-ca.test.ts), so a test that must see a certificate
 * refused sends its IPP request through node:https, which verifies the chain and the name.
 */
import { request } from 'node:https'
import { Op, Tag, attr, decodeMessage, encodeMessage, stringValue } from '../../devices/ipp/wire.ts'

/** A request within this long, or the test fails. */
const REQUEST_TIMEOUT_MS = 15_000

/** What a Get-Printer-Attributes over TLS came to: the IPP status and printer-uri-supported, or why the TLS client refused the server. */
export type IppsAnswer =
  | { ok: true, status: number, uri: string | undefined }
  | { ok: false, error: string }

/**
 * Get-Printer-Attributes on `https://127.0.0.1:port/ipp/print` (`ipps://`), verifying the
 * server's certificate against `ca` alone, for the name `servername`. A certificate the CA did
 * not sign, or for another name, resolves `{ ok: false }` with Node's reason (it never throws
 * for that); an IPP answer resolves `{ ok: true }` with its status code.
 */
export async function ippsGetPrinterAttributes (port: number, ca: string, servername = 'localhost'): Promise<IppsAnswer> {
  const body = encodeMessage({
    version: { major: 2, minor: 0 },
    code: Op.GetPrinterAttributes,
    requestId: 1,
    groups: [{
      tag: Tag.operationAttributes,
      attributes: [
        attr('attributes-charset', Tag.charset, 'utf-8'),
        attr('attributes-natural-language', Tag.naturalLanguage, 'en'),
        attr('printer-uri', Tag.uri, `ipps://${servername}:${port}/ipp/print`),
        attr('requested-attributes', Tag.keyword, 'printer-uri-supported')
      ]
    }]
  })
  return await new Promise<IppsAnswer>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, path: '/ipp/print', method: 'POST', ca, servername, agent: false, timeout: REQUEST_TIMEOUT_MS,
      headers: { 'content-type': 'application/ipp', 'content-length': String(body.length) }
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        if (res.headers['content-type'] !== 'application/ipp') { reject(new Error(`port ${port}: HTTP ${res.statusCode ?? 0} without an IPP answer`)); return }
        const { message } = decodeMessage(Buffer.concat(chunks))
        const uri = message.groups.find((g) => g.tag === Tag.printerAttributes)?.attributes.find((a) => a.name === 'printer-uri-supported')
        resolve({ ok: true, status: message.code, uri: stringValue(uri) })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`ipps to port ${port}: no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      // a refused certificate is an answer of this client, not a failure of the test's plumbing
      if (typeof err.code === 'string' && /CERT|SIGNATURE|ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/.test(err.code)) resolve({ ok: false, error: `${err.code}: ${err.message}` })
      else reject(err)
    })
    req.end(body)
  })
}
