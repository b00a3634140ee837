/**
 * A loopback fake kube-apiserver that speaks the real list/watch/get protocol for ServiceAccounts, with knobs to
 * inject faults. Protocol shapes follow the Kubernetes documentation, page "Kubernetes API Concepts"
 * (https://kubernetes.io/docs/reference/using-api/api-concepts/), cited per section below.
 * Built for scale too (the benchmark seeds 100,000 ServiceAccounts): objects are rendered per request and lists
 * are streamed in batches, never held as one big string.
 */
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fixturePath } from './paths.js'

/** A ServiceAccount as tests describe it. */
export interface FakeServiceAccount {
  namespace: string
  name: string
  annotations?: Record<string, string>
  labels?: Record<string, string>
  /** Token Secret references: what metadata-only responses spare us from transferring. */
  secrets?: string[]
}

/** The three request kinds the fake serves. */
export type RequestKind = 'list' | 'watch' | 'get'
/**
 * How an accepted WATCH misbehaves: `close` answers 200 and ends the stream at once without an event (a proxy that
 * drops long requests); `silent` answers 200 and then never writes nor ends it, whatever its timeoutSeconds (a
 * half-open path: a dead NAT entry or load balancer, a lost node without RST).
 */
export type WatchFault = 'close' | 'silent'
/** How the fake answers a metadata-only Accept header. */
export type MetadataSupport = 'supported' | 'reject-406' | 'reject-415' | 'ignore'
/** One request as the fake saw it. */
export interface RecordedRequest {
  kind: RequestKind
  url: URL
  accept: string
  authorization: string | undefined
  userAgent: string | undefined
}

interface Stored extends FakeServiceAccount {
  rv: number
}
interface Change {
  rv: number
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  sa: Stored
}
interface Watcher {
  res: ServerResponse
  meta: boolean
  bookmarks: boolean
}

const tlsDir = fixturePath('kube-api-tls')

const status = (code: number, reason: string, message: string): string =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })

const metadataOf = (sa: Stored): Record<string, unknown> => ({
  name: sa.name,
  namespace: sa.namespace,
  uid: `uid-${sa.namespace}-${sa.name}`,
  resourceVersion: String(sa.rv),
  creationTimestamp: '2025-01-01T00:00:00Z',
  ...(sa.labels ? { labels: sa.labels } : {}),
  ...(sa.annotations ? { annotations: sa.annotations } : {}),
})

// PartialObjectMetadata (meta.k8s.io/v1) carries only metadata; the full object also carries the secrets list.
const render = (sa: Stored, meta: boolean): string =>
  JSON.stringify(
    meta
      ? { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: metadataOf(sa) }
      : {
          kind: 'ServiceAccount',
          apiVersion: 'v1',
          metadata: metadataOf(sa),
          secrets: (sa.secrets ?? []).map(name => ({ name })),
        },
  )

/** The fake server. Start with {@link FakeApiServer.start}, end with {@link FakeApiServer.close}. */
export class FakeApiServer {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url = ''
  /** When set, every request needs `Authorization: Bearer <requiredToken>` (else 401). */
  requiredToken: string | undefined
  /** Answer to `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`. */
  metadata: MetadataSupport = 'supported'
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = []

  readonly #server: http.Server
  readonly #objects = new Map<string, Stored>()
  #sorted: string[] | undefined
  #rv = 1000
  /** Changes after this resourceVersion are kept; older ones are "compacted" (etcd keeps about 5 minutes). */
  #historyFrom = 1000
  #history: Change[] = []
  readonly #watchers = new Set<Watcher>()
  readonly #faults: { kind: RequestKind; status: number }[] = []
  readonly #delays: { kind: RequestKind; ms: number }[] = []
  readonly #hangs: { kind: RequestKind }[] = []
  readonly #watchFaults: { kind: 'watch'; fault: WatchFault }[] = []
  #dropNextEvent = false
  #expireNextContinue = false

  private constructor(server: http.Server) {
    this.#server = server
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res))
  }

  /** Listens on an ephemeral loopback port, over TLS (fixture certificate for 127.0.0.1) when `tls` is true. */
  static async start(options: { tls?: boolean } = {}): Promise<FakeApiServer> {
    const server = options.tls
      ? https.createServer({
          key: readFileSync(join(tlsDir, 'server.key')),
          cert: readFileSync(join(tlsDir, 'server.crt')),
        })
      : http.createServer()
    const fake = new FakeApiServer(server)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    fake.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
    return fake
  }

  /** Path of a fixture file under test/fixtures/kube-api-tls (`ca.crt`, `other-ca.crt`). */
  static tlsFile(name: string): string {
    return join(tlsDir, name)
  }

  /** The current resourceVersion. */
  get resourceVersion(): number {
    return this.#rv
  }

  /** Number of requests of one kind received so far. */
  count(kind: RequestKind): number {
    return this.requests.filter(r => r.kind === kind).length
  }

  /** Loads objects without recording watch history (as if it had been compacted): cheap at 100,000 objects. */
  seed(accounts: Iterable<FakeServiceAccount>): void {
    for (const sa of accounts) this.#objects.set(`${sa.namespace}/${sa.name}`, { ...sa, rv: ++this.#rv })
    this.#sorted = undefined
    this.#historyFrom = this.#rv
  }

  /** Creates or replaces a ServiceAccount; live watches get ADDED or MODIFIED. */
  upsert(sa: FakeServiceAccount): void {
    const key = `${sa.namespace}/${sa.name}`
    const existed = this.#objects.has(key)
    const stored = { ...sa, rv: ++this.#rv }
    this.#objects.set(key, stored)
    if (!existed) this.#sorted = undefined
    this.#publish({ rv: stored.rv, type: existed ? 'MODIFIED' : 'ADDED', sa: stored })
  }

  /** Deletes a ServiceAccount; live watches get DELETED with its last state. */
  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`
    const old = this.#objects.get(key)
    if (!old) return
    this.#objects.delete(key)
    this.#sorted = undefined
    this.#publish({ rv: ++this.#rv, type: 'DELETED', sa: { ...old, rv: this.#rv } })
  }

  /**
   * Sends a BOOKMARK to watches that asked for them ("Watch bookmarks": an object of the requested type with only
   * metadata.resourceVersion set). The resourceVersion first moves on, as it does in a cluster where other kinds
   * of objects change: a client that resumes from the bookmark skips history it does not need.
   */
  bookmark(): void {
    this.#historyFrom = ++this.#rv
    this.#history = []
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue
      const object = {
        kind: w.meta ? 'PartialObjectMetadata' : 'ServiceAccount',
        apiVersion: w.meta ? 'meta.k8s.io/v1' : 'v1',
        metadata: { resourceVersion: String(this.#rv) },
      }
      this.#write(w, JSON.stringify({ type: 'BOOKMARK', object }))
    }
  }

  /** Drops the change history: a watch from an older resourceVersion now gets an ERROR event with 410 Gone. */
  compact(): void {
    this.#history = []
    this.#historyFrom = this.#rv
  }

  /** Ends every open watch cleanly, as the server does when a watch's timeoutSeconds runs out. */
  endWatches(): void {
    for (const w of this.#watchers) w.res.end()
  }

  /** The next request of `kind` gets HTTP `status` (a 410 on a list is an expired continue token). */
  failNext(kind: RequestKind, status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.#faults.push({ kind, status })
  }

  /** Drops every injected failure, hang and watch fault not yet served. */
  clearFaults(): void {
    this.#faults.length = 0
    this.#hangs.length = 0
    this.#watchFaults.length = 0
  }

  /** The next `times` requests of `kind` are never answered (until the client gives up or the fake closes). */
  hangNext(kind: RequestKind, times = 1): void {
    for (let i = 0; i < times; i++) this.#hangs.push({ kind })
  }

  /** The next `times` WATCH requests that would be accepted misbehave as `fault` says (see {@link WatchFault}). */
  watchNext(fault: WatchFault, times = 1): void {
    for (let i = 0; i < times; i++) this.#watchFaults.push({ kind: 'watch', fault })
  }

  /** The next request of `kind` is answered only after `ms` milliseconds. */
  delayNext(kind: RequestKind, ms: number): void {
    this.#delays.push({ kind, ms })
  }

  /** The next watch event is cut in half and its connection destroyed. */
  dropNextWatchEvent(): void {
    this.#dropNextEvent = true
  }

  /** The next list request that carries a continue token gets 410 Gone ("Retrieving large results sets in chunks"). */
  expireNextContinue(): void {
    this.#expireNextContinue = true
  }

  /** Stops listening and cuts every connection. */
  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise(resolve => this.#server.close(resolve))
  }

  #publish(change: Change): void {
    this.#history.push(change)
    for (const w of this.#watchers) this.#sendChange(w, change)
  }

  #sendChange(w: Watcher, c: Change): void {
    this.#write(w, `{"type":"${c.type}","object":${render(c.sa, w.meta)}}`)
  }

  // "Efficient detection of changes": a watch answers 200 with Transfer-Encoding: chunked, one JSON event per line.
  #write(w: Watcher, event: string): void {
    if (w.res.destroyed) return
    if (this.#dropNextEvent) {
      this.#dropNextEvent = false
      w.res.write(event.slice(0, event.length >> 1), () => w.res.destroy())
      return
    }
    w.res.write(`${event}\n`)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake')
    const getMatch = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)$/.exec(url.pathname)
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1'
    const kind: RequestKind = getMatch ? 'get' : watch ? 'watch' : 'list'
    const accept = req.headers.accept ?? ''
    this.requests.push({
      kind,
      url,
      accept,
      authorization: req.headers.authorization,
      userAgent: req.headers['user-agent'],
    })
    const reply = (code: number, body: string): void =>
      void res.writeHead(code, { 'Content-Type': 'application/json' }).end(body)
    if (this.requiredToken !== undefined && req.headers.authorization !== `Bearer ${this.requiredToken}`)
      return reply(401, status(401, 'Unauthorized', 'Unauthorized'))
    const fault = this.#take(this.#faults, kind)
    if (fault)
      return reply(
        fault.status,
        status(fault.status, fault.status === 410 ? 'Expired' : 'InternalError', `injected ${fault.status}`),
      )
    if (this.#take(this.#hangs, kind)) return
    const delay = this.#take(this.#delays, kind)
    if (delay) await new Promise(resolve => setTimeout(resolve, delay.ms))
    if (!getMatch && url.pathname !== '/api/v1/serviceaccounts')
      return reply(404, status(404, 'NotFound', 'the server could not find the requested resource'))
    // "Alternate representations of resources": an unsupported Accept gets 406 Not Acceptable.
    const wantsMeta = accept.includes(';as=PartialObjectMetadata')
    if (wantsMeta && this.metadata === 'reject-406')
      return reply(406, status(406, 'NotAcceptable', 'only the following media types are accepted: application/json'))
    if (wantsMeta && this.metadata === 'reject-415')
      return reply(415, status(415, 'UnsupportedMediaType', 'unsupported media type'))
    const meta = wantsMeta && this.metadata === 'supported'
    if (getMatch) {
      const sa = this.#objects.get(`${decodeURIComponent(getMatch[1]!)}/${decodeURIComponent(getMatch[2]!)}`)
      return sa
        ? reply(200, render(sa, meta))
        : reply(404, status(404, 'NotFound', `serviceaccounts "${getMatch[2]}" not found`))
    }
    return watch ? this.#watch(url, res, meta) : this.#list(url, res, meta)
  }

  #take<T extends { kind: RequestKind }>(queue: T[], kind: RequestKind): T | undefined {
    const i = queue.findIndex(f => f.kind === kind)
    return i === -1 ? undefined : queue.splice(i, 1)[0]
  }

  // "Retrieving large results sets in chunks": `limit` caps a page, `metadata.continue` names the next one (empty at
  // the end), and every page reports the first page's resourceVersion. An expired token answers 410 Gone.
  #list(url: URL, res: ServerResponse, meta: boolean): void {
    const limit = Number(url.searchParams.get('limit') ?? '0')
    const token = url.searchParams.get('continue')
    let listRv = this.#rv
    let start = 0
    const keys = (this.#sorted ??= [...this.#objects.keys()].sort())
    if (token) {
      if (this.#expireNextContinue) {
        this.#expireNextContinue = false
        return void res
          .writeHead(410, { 'Content-Type': 'application/json' })
          .end(
            status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'),
          )
      }
      const parsed = JSON.parse(Buffer.from(token, 'base64url').toString()) as { rv: number; after: string }
      listRv = parsed.rv
      // Simplification: later pages come from the current state, not a snapshot; the watch from listRv replays
      // anything that changed meanwhile, so a client still converges.
      start = keys.findIndex(k => k > parsed.after)
      if (start === -1) start = keys.length
    }
    const end = limit > 0 ? Math.min(keys.length, start + limit) : keys.length
    const next =
      end < keys.length ? Buffer.from(JSON.stringify({ rv: listRv, after: keys[end - 1] })).toString('base64url') : ''
    const listMeta = JSON.stringify({ resourceVersion: String(listRv), ...(next ? { continue: next } : {}) })
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.write(
      `{"kind":"${meta ? 'PartialObjectMetadataList' : 'ServiceAccountList'}",` +
        `"apiVersion":"${meta ? 'meta.k8s.io/v1' : 'v1'}","metadata":${listMeta},"items":[`,
    )
    for (let i = start; i < end; i += 256) {
      const batch: string[] = []
      for (let j = i; j < Math.min(end, i + 256); j++) batch.push(render(this.#objects.get(keys[j]!)!, meta))
      res.write((i > start ? ',' : '') + batch.join(','))
    }
    res.end(']}')
  }

  // "Efficient detection of changes" and "Resource versions": a watch from resourceVersion R sends every change
  // after R. When R is older than the kept history the server sends an ERROR event whose object is a Status with
  // code 410 (reason Expired), then ends the stream. `timeoutSeconds` ends the stream server-side.
  #watch(url: URL, res: ServerResponse, meta: boolean): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0')
    const w: Watcher = { res, meta, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' })
    const fault = this.#take(this.#watchFaults, 'watch')?.fault
    if (fault === 'close') return void res.end()
    if (fault === 'silent') return void res.flushHeaders()
    if (from < this.#historyFrom) {
      const gone = status(410, 'Expired', `too old resource version: ${from} (${this.#historyFrom})`)
      res.end(`${JSON.stringify({ type: 'ERROR', object: JSON.parse(gone) })}\n`)
      return
    }
    res.flushHeaders()
    this.#watchers.add(w)
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0')
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined
    res.on('close', () => {
      clearTimeout(timer)
      this.#watchers.delete(w)
    })
    for (const c of this.#history) if (c.rv > from) this.#sendChange(w, c)
  }
}
