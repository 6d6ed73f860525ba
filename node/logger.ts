/**
 * Structured logs (pino, JSON lines on stdout). Secrets are redacted by path wherever
 * they could appear, so a PIN or token never reaches a log line.
 */
import { pino, type Logger } from 'pino'

/** Fields that may carry secrets, wherever they are logged. */
const REDACT = [
  'pin', '*.pin', 'card', '*.card', 'token', '*.token', 'adminToken', '*.adminToken',
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'
]

export function createLogger (level: string = process.env.PRINTMESH_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } })
}
