/**
 * Reads a whole stream as UTF-8 text, up to a byte limit. Used for stdin and request bodies alike.
 */
import type { Readable } from 'node:stream'
import { WebhookError, type ErrorCode } from './errors.js'

// Capacity of the body buffer once a second chunk arrives; it doubles as needed, never past the limit.
const initialCapacity = 16 * 1024

/** Bounds of one read besides its byte limit (the admission handler's; stdin has none). */
export interface ReadBounds {
  /**
   * Called with each chunk's size in bytes before the chunk is kept; an error it throws ends the read with that
   * error, the stream paused (a budget shared by several reads counts here).
   */
  readonly count?: (bytes: number) => void
  /** The stream must end within this many ms of the call; otherwise the read ends with BODY_TIMEOUT, paused. */
  readonly timeoutMs?: number
  /**
   * Given, once, at the start of the read, the function that ends it early with a reason, the stream paused (a
   * shared budget reclaiming bytes); calling it after the read has settled does nothing.
   */
  readonly onStart?: (stop: (reason: unknown) => void) => void
}

const noBounds: ReadBounds = {}

/**
 * Resolves to the stream's text. Past `limit` bytes it stops reading and rejects with BODY_TOO_LARGE (the caller
 * decides whether to destroy the stream), so an endless input cannot fill memory. A body in one chunk (the usual
 * case) is decoded as it is; from the second chunk on, chunks are copied into one growing buffer and let go at
 * once: holding them would cost hundreds of bytes of bookkeeping per chunk, which a client sending one byte at a
 * time could turn into gigabytes under the byte limit. A stream error, or a stream destroyed before its end,
 * rejects with `failureCode`. At most one timer per read, cleared when the read ends.
 */
export const readStream = (
  stream: Readable,
  limit: number,
  what: string,
  failureCode: ErrorCode,
  bounds = noBounds,
): Promise<string> =>
  new Promise((resolve, reject) => {
    const { count, timeoutMs, onStart } = bounds
    let first: Buffer | undefined
    let buffer: Buffer | undefined
    let size = 0
    let timer: NodeJS.Timeout | undefined
    let settled = false
    const cleanup = (): void => {
      settled = true
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      stream.off('close', onClose)
    }
    const stop = (e: unknown): void => {
      if (settled) return
      cleanup()
      stream.pause()
      reject(e)
    }
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      const needed = size + bytes.length
      if (needed > limit) return stop(new WebhookError('BODY_TOO_LARGE', `${what} is larger than ${limit} bytes`))
      if (count !== undefined) {
        try {
          count(bytes.length)
        } catch (e) {
          return stop(e)
        }
      }
      if (first === undefined && buffer === undefined) {
        first = bytes
      } else {
        if (buffer === undefined || needed > buffer.length) {
          const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(initialCapacity, 2 * needed)))
          ;(buffer ?? first)?.copy(grown, 0, 0, size)
          buffer = grown
          first = undefined
        }
        bytes.copy(buffer, size)
      }
      size = needed
    }
    const onEnd = (): void => {
      cleanup()
      resolve((buffer ?? first)?.toString('utf8', 0, size) ?? '')
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(new WebhookError(failureCode, `${what} could not be read`, { cause: e }))
    }
    // Destroyed without an error (no 'end' will come): without this the read, and what it holds, would never end.
    const onClose = (): void => {
      cleanup()
      reject(new WebhookError(failureCode, `${what} could not be read`))
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
    stream.on('close', onClose)
    onStart?.(stop)
    if (timeoutMs !== undefined) {
      const why = `${what} did not arrive in full within ${timeoutMs} ms`
      const late = (): void => stop(new WebhookError('BODY_TIMEOUT', why))
      timer = setTimeout(late, timeoutMs)
    }
  })
