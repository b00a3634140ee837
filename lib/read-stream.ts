/**
 * Reads a whole stream as UTF-8 text, up to a byte limit. Used for stdin and request bodies alike.
 */
import type { Readable } from 'node:stream'
import { WebhookError, type ErrorCode } from './errors.js'

// Capacity of the body buffer once a second chunk arrives; it doubles as needed, never past the limit.
const initialCapacity = 16 * 1024

/**
 * Resolves to the stream's text. Past `limit` bytes it stops reading and rejects with BODY_TOO_LARGE (the caller
 * decides whether to destroy the stream), so an endless input cannot fill memory. A body in one chunk (the usual
 * case) is decoded as it is; from the second chunk on, chunks are copied into one growing buffer and let go at
 * once: holding them would cost hundreds of bytes of bookkeeping per chunk, which a client sending one byte at a
 * time could turn into gigabytes under the byte limit. A stream error rejects with `failureCode`.
 */
export const readStream = (stream: Readable, limit: number, what: string, failureCode: ErrorCode): Promise<string> =>
  new Promise((resolve, reject) => {
    let first: Buffer | undefined
    let buffer: Buffer | undefined
    let size = 0
    const cleanup = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
    }
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      const needed = size + bytes.length
      if (needed > limit) {
        cleanup()
        stream.pause()
        reject(new WebhookError('BODY_TOO_LARGE', `${what} is larger than ${limit} bytes`))
        return
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
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
