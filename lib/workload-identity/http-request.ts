/**
 * One outbound HTTP(S) request with a hard deadline and a bounded response body, on node:http/node:https.
 * Used by the workload identity client (token exchange) and the example app (SKE call). Errors are plain
 * `Error`s that never quote the request body (it may hold a credential); callers wrap them with context.
 */
import http from 'node:http'
import https from 'node:https'

/** What to send. `url.protocol` picks the transport; callers decide whether plain `http:` is allowed. */
export interface OutboundRequest {
  readonly url: URL
  readonly method: 'GET' | 'POST'
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
  /** Deadline for the whole exchange: connect, send, and the complete response body. */
  readonly timeoutMs: number
  /** Bytes of response body kept; the rest is discarded and `truncated` is set. */
  readonly maxResponseBytes: number
  /** Agent to use (custom CA, keep-alive); the transport's global agent otherwise. */
  readonly agent?: http.Agent | undefined
}

/** The response: status and (possibly truncated) body text. */
export interface OutboundResponse {
  readonly status: number
  readonly body: string
  /** True when the body was longer than `maxResponseBytes` and was cut. */
  readonly truncated: boolean
}

/** Sends `req`; rejects on network errors, TLS errors and the deadline. Any HTTP status resolves. */
export const sendRequest = (req: OutboundRequest): Promise<OutboundResponse> =>
  new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers }
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body))
    const transport = req.url.protocol === 'https:' ? https : http
    const options: https.RequestOptions = { method: req.method, headers }
    if (req.agent !== undefined) options.agent = req.agent
    let timer: NodeJS.Timeout | undefined
    const outgoing = transport.request(req.url, options, res => {
      const chunks: Buffer[] = []
      let size = 0
      const finish = (truncated: boolean): void => {
        clearTimeout(timer)
        resolve({ status: Number(res.statusCode), body: Buffer.concat(chunks).toString('utf8'), truncated })
      }
      res.on('data', (chunk: Buffer) => {
        const room = req.maxResponseBytes - size
        chunks.push(chunk.subarray(0, room))
        size += Math.min(chunk.length, room)
        if (chunk.length > room) {
          // Enough read: stop the transfer instead of buffering an unbounded (possibly hostile) body.
          finish(true)
          outgoing.destroy()
        }
      })
      res.on('end', () => finish(false))
      // The peer hung up mid-body: fail now rather than wait for the deadline.
      res.on('close', () => {
        if (!res.complete) fail(new Error('connection closed before the response was complete'))
      })
    })
    // A settled promise ignores later calls, so the close that follows a truncation or a deadline is harmless.
    const fail = (e: Error): void => {
      clearTimeout(timer)
      reject(e)
    }
    outgoing.on('error', fail)
    timer = setTimeout(
      () => outgoing.destroy(new Error(`no complete response within ${req.timeoutMs} ms`)),
      req.timeoutMs,
    )
    outgoing.end(req.body)
  })
