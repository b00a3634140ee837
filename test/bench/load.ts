/**
 * The load generator, run as its own process so that it never shares an event loop with what it measures.
 * autocannon keeps `connections` HTTPS connections alive and sends one request at a time on each. Its own
 * latency histogram counts whole milliseconds, so every response time is recorded here at full resolution.
 *
 * Usage: node load.js '{"url":…,"connections":16,"seconds":5,"bodyFile":…}'   → one JSON line on stdout.
 */
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { quantile } from './workloads.js'

/** What the parent asks for. */
export interface LoadRequest {
  readonly url: string
  readonly connections: number
  readonly seconds: number
  readonly bodyFile: string
}

/** What the parent gets back; latencies in milliseconds. */
export interface LoadResult {
  readonly requests: number
  readonly requestsPerSecond: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** Responses other than 200, connection errors and timeouts: any of these makes the row suspect. */
  readonly failures: number
}

const request = JSON.parse(process.argv[2] ?? '') as LoadRequest
const body = readFileSync(request.bodyFile)
const latencies: number[] = []
let failures = 0
const instance = autocannon(
  {
    url: request.url,
    connections: request.connections,
    duration: request.seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    timeout: 10,
  },
  (err, result) => {
    if (err) throw err
    const sorted = Float64Array.from(latencies).sort()
    const out: LoadResult = {
      requests: sorted.length,
      // autocannon's duration: seconds from start to stop, to the hundredth.
      requestsPerSecond: sorted.length / result.duration,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1) ?? NaN,
      failures: failures + result.errors + result.timeouts,
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
  },
)
instance.on('response', (_client, statusCode, _bytes, ms) => {
  if (statusCode === 200) latencies.push(ms)
  else failures++
})
