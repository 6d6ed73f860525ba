/**
 * Named admin accounts and the mesh token, on central and a standalone site (the mesh's
 * authority; elsewhere writes are 409):
 *
 *   GET    /api/admin-accounts                          → { accounts }
 *   POST   /api/admin-accounts                          { username, role, sites?, password } → 201 { account }
 *   GET    /api/admin-accounts/:username                → { account }
 *   PATCH  /api/admin-accounts/:username                { role?, sites?, disabled? } → { account }
 *   DELETE /api/admin-accounts/:username
 *   POST   /api/admin-accounts/:username/password       { password } → { account }
 *   POST   /api/admin-accounts/:username/totp           → { otpauthUri } (answered this once)
 *   POST   /api/admin-accounts/:username/totp/confirm   { code } → { account } (the second factor is on from now)
 *   DELETE /api/admin-accounts/:username/totp           → { account }
 *   POST   /api/admin-token/rotate                      → { token, rotatedAt } (answered this once)
 *
 * Accounts a joined site wrote while standalone that central could not add at the join (it had
 * the name; node/admin-handover.ts), to adopt or dismiss; a mesh admin (or the token) only, to
 * list them too (a site admin or report viewer: 403):
 *
 *   GET    /api/admin-accounts/adoptable                → { adoptable: [{ id, site, sitePeer, username,
 *            standaloneRole, standaloneSites, role, sites, totp, disabled, by?, createdAt?, updatedAt?,
 *            handedAt, reason, taken }] }
 *   GET    /api/admin-accounts/adoptable/:id            → { adoptable }
 *   POST   /api/admin-accounts/adoptable/:id/adopt      { username? } → 201 { account, adoptedFrom,
 *            totpDropped, notice } (409 when the name is taken: nothing changes)
 *   DELETE /api/admin-accounts/adoptable/:id            → { ok }
 *
 * Who may call them is the server core's one decision (ui/server.ts `authenticate`): these
 * routes only ask for an admin; the core lets only a mesh admin (or the mesh token) write them.
 * Errors: 400 naming the field, 404 for an unknown account, 409 for a taken name and on a
 * node that is not the authority.
 */
import { InvalidRequestError, KindedError } from '../../crdt/errors.ts'
import type { AdminAccountsApi, AdminAccountPatch, AdminRole } from '../admin-accounts-api.ts'
import { ForbiddenError } from '../errors.ts'
import { objectBody, type Caller, type HttpPlugin } from './plugin.ts'

/** This family's paths (the directory's service: central and sites run it). */
export const ADMIN_ACCOUNTS_ROUTES = { service: 'users', prefixes: ['/api/admin-accounts', '/api/admin-token'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

const NEW_FIELDS = ['username', 'role', 'sites', 'password'] as const
const PATCH_FIELDS = ['role', 'sites', 'disabled'] as const

function onlyFields (body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k))
  if (unknown.length > 0) throw new InvalidRequestError(`unknown field${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}: allowed are ${allowed.join(', ')}`)
}

function text (body: Record<string, unknown>, field: string): string {
  const value = body[field]
  if (typeof value !== 'string') throw new InvalidRequestError(`${field} must be a string`)
  return value
}

function sitesOf (body: Record<string, unknown>): string[] | undefined {
  const value = body.sites
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new InvalidRequestError('sites must be a list of site ids')
  return value as string[]
}

class UnknownAdoptableError extends KindedError {
  readonly kind = 'not-found'
  constructor (id: string) { super(`no account ${id} waits to be adopted`); this.name = 'UnknownAdoptableError' }
}

/** The adoptable accounts are the mesh's administration, read or written: a mesh admin or the token. */
function meshAdminOnly (caller: Caller): void {
  const role = caller.session?.account?.role
  if (role !== undefined && role !== 'mesh-admin') throw new ForbiddenError(`only a mesh admin may list or adopt the accounts of joined sites (a ${role} may not)`)
}

export function adminAccountsRoutes (api: AdminAccountsApi): HttpPlugin {
  return {
    ...ADMIN_ACCOUNTS_ROUTES,
    register (app, { authenticate }) {
      const param = (request: { params: unknown }): string => (request.params as { username: string }).username

      app.get('/api/admin-accounts', async (request) => {
        authenticate(request, 'admin')
        return { accounts: await api.list() }
      })

      app.post('/api/admin-accounts', async (request, reply) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"username": "ann", "role": "report-viewer", "password": "…"}')
        onlyFields(body, NEW_FIELDS)
        const sites = sitesOf(body)
        const account = await api.add({ username: text(body, 'username'), role: text(body, 'role') as AdminRole, password: text(body, 'password'), ...(sites !== undefined ? { sites } : {}) }, actor.user)
        return await reply.code(201).send({ account })
      })

      const adoptableId = (request: { params: unknown }): string => (request.params as { id: string }).id

      app.get('/api/admin-accounts/adoptable', async (request) => {
        meshAdminOnly(authenticate(request, 'admin'))
        return { adoptable: await api.adoptable() }
      })

      app.get('/api/admin-accounts/adoptable/:id', async (request) => {
        meshAdminOnly(authenticate(request, 'admin'))
        const id = adoptableId(request)
        const found = (await api.adoptable()).find((a) => a.id === id)
        if (found === undefined) throw new UnknownAdoptableError(id)
        return { adoptable: found }
      })

      app.post('/api/admin-accounts/adoptable/:id/adopt', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        meshAdminOnly(caller)
        const body = request.body === undefined || request.body === null ? {} : objectBody(request.body, '{"username": "ann-lab"}')
        onlyFields(body, ['username'])
        const username = body.username !== undefined ? text(body, 'username') : undefined
        const adopted = await api.adopt(adoptableId(request), username !== undefined ? { username } : {}, caller.actor.user)
        return await reply.code(201).send(adopted)
      })

      app.delete('/api/admin-accounts/adoptable/:id', async (request) => {
        const caller = authenticate(request, 'admin')
        meshAdminOnly(caller)
        await api.dismissAdoptable(adoptableId(request), caller.actor.user)
        return { ok: true }
      })

      app.get('/api/admin-accounts/:username', async (request) => {
        authenticate(request, 'admin')
        return { account: await api.get(param(request)) }
      })

      app.patch('/api/admin-accounts/:username', async (request) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"role": "site-admin", "sites": ["lab"]}')
        onlyFields(body, PATCH_FIELDS)
        const patch: AdminAccountPatch = {}
        if (body.role !== undefined) patch.role = text(body, 'role') as AdminRole
        const sites = sitesOf(body)
        if (sites !== undefined) patch.sites = sites
        if (body.disabled !== undefined) {
          if (typeof body.disabled !== 'boolean') throw new InvalidRequestError('disabled must be true or false')
          patch.disabled = body.disabled
        }
        return { account: await api.update(param(request), patch, actor.user) }
      })

      app.delete('/api/admin-accounts/:username', async (request) => {
        const { actor } = authenticate(request, 'admin')
        await api.remove(param(request), actor.user)
        return { ok: true }
      })

      app.post('/api/admin-accounts/:username/password', async (request) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"password": "…"}')
        onlyFields(body, ['password'])
        return { account: await api.setPassword(param(request), text(body, 'password'), actor.user) }
      })

      app.post('/api/admin-accounts/:username/totp', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return await api.startTotp(param(request), actor.user)
      })

      app.post('/api/admin-accounts/:username/totp/confirm', async (request) => {
        const { actor } = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"code": "123456"}')
        onlyFields(body, ['code'])
        const code = text(body, 'code')
        if (!/^\d{6}$/.test(code)) throw new InvalidRequestError('code must be the 6 digits the authenticator app shows')
        return { account: await api.confirmTotp(param(request), code, actor.user) }
      })

      app.delete('/api/admin-accounts/:username/totp', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return { account: await api.removeTotp(param(request), actor.user) }
      })

      app.post('/api/admin-token/rotate', async (request) => {
        const { actor } = authenticate(request, 'admin')
        return await api.rotateToken(actor.user)
      })
    }
  }
}
