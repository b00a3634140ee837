/**
 * Splits a byte stream into newline-terminated lines with a hard cap on line length, so a server that never
 * sends a newline cannot make us buffer without limit. Used for watch streams (one JSON event per line).
 */

const newline = 0x0a

/** Incremental splitter: feed chunks with {@link LineSplitter.push}; complete lines go to `onLine`. */
export class LineSplitter {
  readonly #maxLineBytes: number
  readonly #onLine: (line: string) => void
  #pending: Buffer[] = []
  #pendingBytes = 0

  constructor(maxLineBytes: number, onLine: (line: string) => void) {
    this.#maxLineBytes = maxLineBytes
    this.#onLine = onLine
  }

  /** Bytes of the unfinished line held right now. */
  get pendingBytes(): number {
    return this.#pendingBytes
  }

  /** Consumes one chunk. Throws a RangeError when a line grows past the limit (the caller drops the stream). */
  push(chunk: Buffer): void {
    let start = 0
    for (let nl = chunk.indexOf(newline); nl !== -1; nl = chunk.indexOf(newline, start)) {
      this.#take(chunk.subarray(start, nl))
      const line =
        this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending, this.#pendingBytes)
      this.#pending = []
      this.#pendingBytes = 0
      start = nl + 1
      const text = line.toString('utf8').trim()
      if (text !== '') this.#onLine(text)
    }
    if (start < chunk.length) this.#take(chunk.subarray(start))
  }

  #take(part: Buffer): void {
    this.#pendingBytes += part.length
    if (this.#pendingBytes > this.#maxLineBytes) {
      this.#pending = []
      this.#pendingBytes = 0
      throw new RangeError(`a line exceeds ${this.#maxLineBytes} bytes`)
    }
    this.#pending.push(part)
  }
}
