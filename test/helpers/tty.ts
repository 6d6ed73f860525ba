/**
 * Runs a CUPS command (`cancel`, `lp`, `lpq`) the way a user at a terminal does: on a
 * pseudo-terminal (util-linux `script`), typing the password when it asks. CUPS tools read
 * a password only from /dev/tty, and only once the server asked for a login (HTTP 401
 * with a Basic challenge); what they print then is what the user sees.
 */
import { spawn } from 'node:child_process'

/** CUPS's prompt: "Password for alice on 127.0.0.1? ". */
const PROMPT = /Password for [^\n?]*\?/g
/** A CUPS tool against a local site finishes well within this. */
const TOOL_TIMEOUT_MS = 60_000

export interface TerminalRun {
  /** The tool's exit code. */
  code: number
  /** Everything it showed on the terminal (prompts, `****`, messages), with \r\n line ends. */
  out: string
  /** How many times it asked for the password. */
  prompts: number
}

/** Single-quotes `arg` for the shell `script` runs the command with. */
function quoted (arg: string): string {
  return `'${arg.replace(/'/g, "'\\''")}'`
}

/** Runs `command args…` on a terminal and types `password` (then Enter) at every password prompt (`prompt`, a global RegExp; CUPS's by default). */
export async function onTerminal (command: string, args: string[], password: string, prompt: RegExp = PROMPT): Promise<TerminalRun> {
  const line = [command, ...args].map(quoted).join(' ')
  // -q: no "Script started" banner; -e: exit with the command's code; /dev/null: keep no typescript file
  const child = spawn('script', ['-q', '-e', '-c', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let answered = 0
  const onOutput = (chunk: Buffer): void => {
    out += chunk.toString('utf8')
    const prompts = out.match(prompt)?.length ?? 0
    // typed only after the prompt is shown: CUPS flushes the terminal's input before asking
    for (; answered < prompts; answered++) child.stdin.write(`${password}\r`)
  }
  child.stdout.on('data', onOutput)
  child.stderr.on('data', onOutput)
  return await new Promise<TerminalRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${line} did not finish within ${TOOL_TIMEOUT_MS} ms; it showed:\n${out}`))
    }, TOOL_TIMEOUT_MS)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, out, prompts: answered })
    })
  })
}
