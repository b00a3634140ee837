/**
 * The API bearer token, read from a file that the kubelet rotates. The token is kept in memory for at most
 * `maxAgeMs` (client-go re-reads about every minute) and dropped after a 401 so the next request reads it again.
 */
import { readFile } from 'node:fs/promises'
import { WebhookError, errorCode } from '../errors.js'

/** Options of {@link FileTokenSource}. */
export interface FileTokenSourceOptions {
  /** Milliseconds clock; injected so tests can age the token without waiting. */
  readonly epochMs?: () => number
  /** Longest time a read token is reused (default 60 s). */
  readonly maxAgeMs?: number
}

/** Reads and caches a bearer token file. The token itself is never logged or put into an error message. */
export class FileTokenSource {
  readonly #file: string
  readonly #epochMs: () => number
  readonly #maxAgeMs: number
  #cached: { token: string; readAt: number } | undefined
  #reading: Promise<string> | undefined

  constructor(file: string, options: FileTokenSourceOptions = {}) {
    this.#file = file
    this.#epochMs = options.epochMs ?? Date.now
    this.#maxAgeMs = options.maxAgeMs ?? 60_000
  }

  /** The current token, re-read from the file when older than the maximum age or invalidated. */
  token(): Promise<string> {
    const c = this.#cached
    if (c && this.#epochMs() - c.readAt < this.#maxAgeMs) return Promise.resolve(c.token)
    // Concurrent requests share one read.
    this.#reading ??= this.#read().finally(() => {
      this.#reading = undefined
    })
    return this.#reading
  }

  /** Forgets the cached token (after a 401), so the next {@link token} call reads the file. */
  invalidate(): void {
    this.#cached = undefined
  }

  async #read(): Promise<string> {
    let text: string
    try {
      text = await readFile(this.#file, 'utf8')
    } catch (e) {
      throw new WebhookError('KUBE_API', `cannot read the API token file ${this.#file}: ${errorCode(e)}`, { cause: e })
    }
    const token = text.trim()
    this.#cached = { token, readAt: this.#epochMs() }
    return token
  }
}
