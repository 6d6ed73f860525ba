/**
 * Plain text (`text/plain`, UTF-8): paginated the way a text filter (CUPS `texttopdf`)
 * lays it out, in a fixed-pitch font.
 */
import { createReadStream } from 'node:fs'
import { CorruptDocumentError, corruptDocument } from './errors.ts'
import type { DocumentInfo } from './index.ts'

const FORMAT = 'text/plain'
/**
 * Lines per page: 12 pt leading (6 lines per inch, texttopdf's default) on an 11 in
 * Letter page less two 0.5 in margins is 60 lines; A4 fits a few more, so 60 never
 * under-counts on either.
 */
export const TEXT_LINES_PER_PAGE = 60
/** Columns per line: 10 characters per inch over 8 in of printable width; longer lines wrap. */
export const TEXT_COLUMNS_PER_LINE = 80
/** Tab stops every this many columns (the usual terminal and lpr convention). */
const TAB_WIDTH = 8

function corrupt (message: string): CorruptDocumentError {
  return corruptDocument(FORMAT, message)
}

/**
 * Counts pages: a form feed ends a page, otherwise every {@link TEXT_LINES_PER_PAGE}
 * lines (after wrapping at {@link TEXT_COLUMNS_PER_LINE}) do. A form feed at the very
 * end does not add a blank page; two in a row do (a printer ejects it). Each code point
 * is one column. Text is always mono and has no media of its own.
 */
export async function parseText (path: string, signal?: AbortSignal): Promise<DocumentInfo> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let pages = 0
  let segmentLines = 0 // wrapped lines finished since the last form feed
  let segmentUsed = false // anything since the last form feed
  let column = 0
  let lastWasCR = false
  let bytes = 0

  const endLine = (): void => {
    segmentLines += Math.max(1, Math.ceil(column / TEXT_COLUMNS_PER_LINE))
    column = 0
  }
  const endSegment = (): void => {
    if (column > 0) endLine()
    pages += Math.max(1, Math.ceil(segmentLines / TEXT_LINES_PER_PAGE))
    segmentLines = 0
    segmentUsed = false
  }
  const consume = (text: string): void => {
    for (const ch of text) {
      const cp = ch.codePointAt(0) ?? 0
      if (cp === 0) throw corrupt('NUL byte: binary data, not text')
      if (ch === '\n' && lastWasCR) { lastWasCR = false; continue }
      lastWasCR = ch === '\r'
      segmentUsed = true
      if (ch === '\n' || ch === '\r') endLine()
      else if (ch === '\f') endSegment()
      else if (ch === '\t') column = (Math.floor(column / TAB_WIDTH) + 1) * TAB_WIDTH
      else if (cp >= 0x20 && cp !== 0x7f) column++
    }
  }

  const stream = createReadStream(path, { signal })
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length
    let text: string
    try {
      text = decoder.decode(chunk, { stream: true })
    } catch (err) {
      throw corruptDocument(FORMAT, `not valid UTF-8 near byte ${bytes}`, err)
    }
    consume(text)
  }
  try {
    consume(decoder.decode())
  } catch (err) {
    if (err instanceof CorruptDocumentError) throw err
    throw corruptDocument(FORMAT, 'ends inside a UTF-8 sequence', err)
  }
  if (bytes === 0) throw corrupt('empty document')
  if (segmentUsed) endSegment()
  return { format: FORMAT, pages, colorPages: 0 }
}
