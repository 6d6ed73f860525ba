/**
 * IPP intake as a service, for every role that accepts jobs over IPP: sites (their queues)
 * and terminals (device spooling: a queue per release mode); and the DNS-SD advertisement
 * of those queues, so driverless clients find them by themselves. Workstations print to it with
 * their ordinary driverless clients; users and admins authenticate with the same checks and
 * login limits as the web login (node/ipp-auth.ts).
 */
import { createIppServer, type IppServer } from '../devices/ipp/server.ts'
import type { AnonymousJobList, IppAuthenticator } from '../devices/ipp/auth.ts'
import type { IntakeLimits } from '../devices/jobs/intake-limits.ts'
import type { JobService } from '../devices/jobs/service.ts'
import type { DocStore } from '../crdt/store.ts'
import type { LoginGuard } from '../ui/rate-limit.ts'
import { adminTokenAuthenticator } from '../ui/sessions.ts'
import type { Logger } from 'pino'
import { ippAuthenticator, type IppAuthInit } from './ipp-auth.ts'
import { AdminAccounts } from './admin-accounts.ts'
import type { Membership } from '../crdt/membership.ts'
import { checkPin } from './users.ts'
import { serviceFactory, type ServiceFactory, type Startable } from './compose.ts'
import { ippDnsSdGroups } from '../devices/ipp/dnssd.ts'
import { createDnsSdAdvertiser } from './dnssd.ts'
import type { NodeMetrics } from '../ui/metrics.ts'
import type { TlsProvider } from './tls.ts'

export interface IppServiceInit {
  /** Address to listen on. */
  host: string
  /** TCP port; 0 picks a free one. */
  port: number
  /** Host name put in the URIs handed back to clients (default: what each client asked for). */
  uriHost?: string
  /** The Basic realm clients are asked to log in to. */
  realm: string
  /** What Get-Jobs shows clients that did not log in (default: the server's). */
  anonymousJobs?: AnonymousJobList
  /** What the intake takes (document size, decompression, pages per job, quotas per user and address), over the defaults. */
  limits?: Partial<IntakeLimits>
  /** Checks credentials instead of the directory's PINs and the admin token (a workstation's client: its own user). */
  authenticate?: IppAuthenticator
}

interface IppComponents {
  membership: Membership
  jobs: JobService
  metrics: Pick<NodeMetrics, 'ippAnswered' | 'intakeRefused'>
  logger: Logger
  store: DocStore
  adminToken: string
  logins: LoginGuard
  tls: TlsProvider
}

/** The IPP server on this peer's job service (`ipp`). */
export const ippService = (init: IppServiceInit) => (): ServiceFactory<IppServer> => serviceFactory<IppComponents, IppServer>(
  ['jobs', 'metrics', 'logger', 'store', 'adminToken', 'logins', 'tls', 'membership'], (c) => withTls(c.tls, createIppServer({
    domain: c.jobs,
    logger: c.logger,
    host: init.host,
    port: init.port,
    ...(init.uriHost !== undefined ? { uriHost: init.uriHost } : {}),
    onAnswered: c.metrics.ippAnswered,
    onRefused: c.metrics.intakeRefused,
    ...(init.limits !== undefined ? { limits: init.limits } : {}),
    // the web login's checks and limits (node/ipp-auth.ts)
    authenticate: init.authenticate ?? ippAuthenticator({
      logins: c.logins,
      checkPin: async (username, pin) => await checkPin(c.store, username, pin),
      ...meshTokenChecks(c)
    }),
    realm: init.realm,
    ...(init.anonymousJobs !== undefined ? { anonymousJobs: init.anonymousJobs } : {}),
    // ipps:// on the same port while the node has a certificate (node/tls.ts)
    ...(c.tls.material() !== undefined ? { tls: c.tls.material() } : {})
  })))

/**
 * The admin token at the IPP door as at the web's (ui/server.ts): this node's own start-up token
 * until the mesh has a mesh token (node/admin-accounts.ts), then only the mesh token; its slow
 * hash checked once per token, never for an address at its limit of wrong tokens.
 */
function meshTokenChecks (c: Pick<IppComponents, 'store' | 'membership' | 'adminToken' | 'logins'>): Pick<IppAuthInit, 'checkAdminToken' | 'verifyToken'> {
  const accounts = new AdminAccounts({ store: c.store, authority: () => c.membership.authority === c.membership.self, authorityId: () => c.membership.authority, tokenOnly: true })
  const own = adminTokenAuthenticator(c.adminToken)
  return {
    verifyToken: async (token, address) => {
      await accounts.ready() // the license document opened: whether the mesh has a token is known from here on
      if (accounts.meshTokenStamp() !== undefined && !c.logins.tokenThrottled(address)) await accounts.verifyMeshToken(token)
    },
    checkAdminToken: (token) => accounts.meshTokenStamp() === undefined ? own(token) : accounts.meshTokenKnown(token) ? { user: 'admin', admin: true } : undefined
  }
}

/** The IPP server presents every certificate the node's TLS provider gets (a renewal, the mesh CA's first answer). */
function withTls (tls: TlsProvider, server: IppServer): IppServer {
  tls.onChange((material) => { server.setTls(material) })
  return server
}

export interface DnsSdServiceInit {
  /** The address the IPP server listens on (advertised on that interface; loopback only for a loopback host). */
  host: string
  /** Host name in the advertised URIs. */
  uriHost: string
  /** Shown in each instance name: `<queue> @ <name>`. */
  name: string
}

/**
 * Every IPP queue of this peer advertised as `_ipp._tcp` with the IPP Everywhere TXT keys,
 * and as `_ipps._tcp` too while TLS is on, through avahi (`dnssd`); withdrawn on stop.
 */
export const dnssdService = (init: DnsSdServiceInit) => (): ServiceFactory => serviceFactory<{ jobs: JobService, ipp: IppServer, http: { port: number }, tls: TlsProvider, logger: Logger }, Startable>(
  ['jobs', 'ipp', 'http', 'tls', 'logger'], (c) => {
    const urlHost = init.uriHost.includes(':') ? `[${init.uriHost}]` : init.uriHost
    return createDnsSdAdvertiser({
      host: init.host,
      logger: c.logger,
      groups: () => {
        const tls = c.tls.material() !== undefined
        return ippDnsSdGroups({
          queues: c.jobs.queues(), formats: c.jobs.supportedFormats(), port: c.ipp.port, uriHost: init.uriHost, adminUrl: `${tls ? 'https' : 'http'}://${urlHost}:${c.http.port}/`, siteName: init.name, tls
        })
      }
    })
  })
