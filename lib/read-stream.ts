/**
 * Reads a whole stream as UTF-8 text, up to a byte limit. Used for stdin and request bodies alike.
 */
import type { Readable } from 'node:stream'
import { WebhookError } from './errors.js'

/**
 * Resolves to the stream's text. Past `limit` bytes it stops reading and rejects with BODY_TOO_LARGE
 * (the caller decides whether to destroy the stream), so an endless input cannot fill memory.
 */
export const readStream = (stream: Readable, limit: number, what: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
    }
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      size += buf.length
      if (size > limit) {
        cleanup()
        stream.pause()
        reject(new WebhookError('BODY_TOO_LARGE', `${what} is larger than ${limit} bytes`))
        return
      }
      chunks.push(buf)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(Buffer.concat(chunks, size).toString('utf8'))
    }
    const onError = (e: Error): void => {
      cleanup()
      reject(new WebhookError('BAD_INPUT_FILE', `${what} could not be read`, { cause: e }))
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
