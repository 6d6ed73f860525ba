/**
 * The user directory for admins (ui/users-api.ts), on central and on a standalone site:
 *
 *   GET    /api/users?q=&offset=&limit=     a page of users matching q, with the total
 *   POST   /api/users                       add { username, fullName, pin, email?, groups?, homeSite?, delegates?, cards? }
 *   GET    /api/users/:username
 *   PATCH  /api/users/:username             { fullName?, email?, groups?, homeSite?, delegates?, disabled? } (null clears email, homeSite)
 *   DELETE /api/users/:username             the user's jobs and records stay
 *   POST   /api/users/:username/pin         { pin }
 *   POST   /api/users/:username/cards       { card }
 *   DELETE /api/users/:username/cards       { card } or { id }
 *   POST   /api/users/import[?dryRun=1]     text/csv; a dry run only reports
 *
 * Every route is for admins (bearer token, or an admin session with its CSRF token).
 * Errors: 400 for bad values, 404 for an unknown user or card, 409 for a taken username or
 * card and for writes on a site whose users central manages.
 */
import { InvalidRequestError } from '../../crdt/errors.ts'
import type { DirectoryApi, NewUser, UserPatch } from '../users-api.ts'
import { CSV_IMPORT_BODY_LIMIT, objectBody, type HttpPlugin } from './plugin.ts'

/** This family's service and the paths it owns. */
export const DIRECTORY_ROUTES = { service: 'users', prefixes: ['/api/users'] } as const satisfies Pick<HttpPlugin, 'service' | 'prefixes'>

/** Longest search text: more is not a search. */
const MAX_QUERY_LENGTH = 256

const NEW_USER_FIELDS = ['username', 'fullName', 'pin', 'email', 'groups', 'homeSite', 'delegates', 'cards'] as const
const PATCH_FIELDS = ['fullName', 'email', 'groups', 'homeSite', 'delegates', 'disabled'] as const

function onlyFields (body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k))
  if (unknown.length > 0) throw new InvalidRequestError(`unknown field${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}: allowed are ${allowed.join(', ')}`)
}

function text (body: Record<string, unknown>, field: string, required: true): string
function text (body: Record<string, unknown>, field: string, required?: false): string | undefined
function text (body: Record<string, unknown>, field: string, required = false): string | undefined {
  const value = body[field]
  if (value === undefined && !required) return undefined
  if (typeof value !== 'string') throw new InvalidRequestError(`${field} must be a string`)
  return value
}

function textList (body: Record<string, unknown>, field: string): string[] | undefined {
  const value = body[field]
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new InvalidRequestError(`${field} must be a list of strings`)
  return value as string[]
}

/** A string, `null` to clear, or absent. */
function clearable (body: Record<string, unknown>, field: string): string | null | undefined {
  return body[field] === null ? null : text(body, field)
}

function wholeNumber (value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidRequestError(`${name} must be a whole number`)
  return n
}

export function directoryRoutes (api: DirectoryApi): HttpPlugin {
  return {
    ...DIRECTORY_ROUTES,
    register (app, { authenticate }) {
      const param = (request: { params: unknown }): string => (request.params as { username: string }).username

      app.get('/api/users', async (request) => {
        authenticate(request, 'admin')
        const query = request.query as Record<string, unknown>
        const q = query.q
        if (q !== undefined && (typeof q !== 'string' || q.length > MAX_QUERY_LENGTH)) throw new InvalidRequestError(`q must be a text of at most ${MAX_QUERY_LENGTH} characters`)
        const offset = wholeNumber(query.offset, 'offset')
        const limit = wholeNumber(query.limit, 'limit')
        return await api.list({ ...(q !== undefined ? { q } : {}), ...(offset !== undefined ? { offset } : {}), ...(limit !== undefined ? { limit } : {}) })
      })

      app.post('/api/users', async (request, reply) => {
        const caller = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"username": "alice", "fullName": "Alice Liddell", "pin": "2468"}')
        onlyFields(body, NEW_USER_FIELDS)
        const input: NewUser = { username: text(body, 'username', true), fullName: text(body, 'fullName', true), pin: text(body, 'pin', true) }
        const email = text(body, 'email')
        const homeSite = text(body, 'homeSite')
        const groups = textList(body, 'groups')
        const delegates = textList(body, 'delegates')
        const cards = textList(body, 'cards')
        const user = await api.add({
          ...input,
          ...(email !== undefined ? { email } : {}),
          ...(homeSite !== undefined ? { homeSite } : {}),
          ...(groups !== undefined ? { groups } : {}),
          ...(delegates !== undefined ? { delegates } : {}),
          ...(cards !== undefined ? { cards } : {})
        }, caller.actor.user)
        request.log.info({ by: caller.actor.user, user: user.username }, 'user added')
        return await reply.code(201).send({ user })
      })

      app.post('/api/users/import', { bodyLimit: CSV_IMPORT_BODY_LIMIT }, async (request) => {
        const caller = authenticate(request, 'admin')
        if (typeof request.body !== 'string') {
          throw new InvalidRequestError('send the users as a text/csv body: "username,full name,PIN[,card]" rows, or a header row naming the columns')
        }
        const dry = (request.query as Record<string, unknown>).dryRun
        const dryRun = dry === '1' || dry === 'true'
        const report = await api.importCsv(request.body, { dryRun }, caller.actor.user)
        if (!dryRun) request.log.info({ by: caller.actor.user, added: report.added.length, changed: report.changed.length }, 'users imported')
        return report
      })

      app.get('/api/users/:username', async (request) => {
        authenticate(request, 'admin')
        return { user: await api.get(param(request)) }
      })

      app.patch('/api/users/:username', async (request) => {
        const caller = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"fullName": "Alice L.", "groups": ["finance"], "disabled": true}')
        onlyFields(body, PATCH_FIELDS)
        if (body.disabled !== undefined && typeof body.disabled !== 'boolean') throw new InvalidRequestError('disabled must be true or false')
        const fullName = text(body, 'fullName')
        const email = clearable(body, 'email')
        const homeSite = clearable(body, 'homeSite')
        const groups = textList(body, 'groups')
        const delegates = textList(body, 'delegates')
        const patch: UserPatch = {
          ...(fullName !== undefined ? { fullName } : {}),
          ...(email !== undefined ? { email } : {}),
          ...(homeSite !== undefined ? { homeSite } : {}),
          ...(groups !== undefined ? { groups } : {}),
          ...(delegates !== undefined ? { delegates } : {}),
          ...(typeof body.disabled === 'boolean' ? { disabled: body.disabled } : {})
        }
        const user = await api.edit(param(request), patch, caller.actor.user)
        request.log.info({ by: caller.actor.user, user: user.username, fields: Object.keys(patch) }, 'user changed')
        return { user }
      })

      app.delete('/api/users/:username', async (request) => {
        const caller = authenticate(request, 'admin')
        await api.remove(param(request), caller.actor.user)
        request.log.info({ by: caller.actor.user, user: param(request) }, 'user deleted')
        return { deleted: param(request) }
      })

      app.post('/api/users/:username/pin', async (request) => {
        const caller = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"pin": "2468"}')
        onlyFields(body, ['pin'])
        await api.setPin(param(request), text(body, 'pin', true), caller.actor.user)
        request.log.info({ by: caller.actor.user, user: param(request) }, 'PIN reset')
        return { ok: true }
      })

      app.post('/api/users/:username/cards', async (request) => {
        const caller = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"card": "0004417223"}')
        onlyFields(body, ['card'])
        const user = await api.addCard(param(request), text(body, 'card', true), caller.actor.user)
        request.log.info({ by: caller.actor.user, user: user.username }, 'card added')
        return { user }
      })

      app.delete('/api/users/:username/cards', async (request) => {
        const caller = authenticate(request, 'admin')
        const body = objectBody(request.body, '{"card": "0004417223"} or {"id": "<card id>"}')
        onlyFields(body, ['card', 'id'])
        const card = text(body, 'card')
        const id = text(body, 'id')
        const user = await api.removeCard(param(request), { ...(card !== undefined ? { card } : {}), ...(id !== undefined ? { id } : {}) }, caller.actor.user)
        request.log.info({ by: caller.actor.user, user: user.username }, 'card removed')
        return { user }
      })
    }
  }
}
