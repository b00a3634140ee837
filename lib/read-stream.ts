/**
 * Reads a whole stream as UTF-8 text, up to a byte limit. Used for stdin and request bodies alike.
 */
import type { Readable } from 'node:stream'
import { WebhookError, type ErrorCode } from './errors.js'

// First capacity of the body buffer; it doubles as needed, never past the limit.
const initialCapacity = 64 * 1024

/**
 * Resolves to the stream's text. Past `limit` bytes it stops reading and rejects with BODY_TOO_LARGE (the caller
 * decides whether to destroy the stream), so an endless input cannot fill memory. Chunks are copied into one
 * growing buffer and let go at once: holding them would cost hundreds of bytes of bookkeeping per chunk, which a
 * client sending one byte at a time could turn into gigabytes under the byte limit. A stream error rejects with
 * `failureCode`.
 */
export const readStream = (stream: Readable, limit: number, what: string, failureCode: ErrorCode): Promise<string> =>
  new Promise((resolve, reject) => {
    let buffer = Buffer.allocUnsafe(Math.min(limit, initialCapacity))
    let size = 0
    const cleanup = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
    }
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      if (size + bytes.length > limit) {
        cleanup()
        stream.pause()
        reject(new WebhookError('BODY_TOO_LARGE', `${what} is larger than ${limit} bytes`))
        return
      }
      if (size + bytes.length > buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(2 * buffer.length, size + bytes.length)))
        buffer.copy(grown, 0, 0, size)
        buffer = grown
      }
      bytes.copy(buffer, size)
      size += bytes.length
    }
    const onEnd = (): void => {
      cleanup()
      resolve(buffer.toString('utf8', 0, size))
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(new WebhookError(failureCode, `${what} could not be read`, { cause: e }))
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
