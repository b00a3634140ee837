/**
 * The example app's logic: prove that the injected workload identity works by getting a STACKIT access token
 * and calling SKE's `GET /v2/regions/{region}/provider-options` (which needs no role on the service account).
 * It uses only what your app can: the package's exports and Node (its `fetch`); with `'../index.js'` read as
 * `'stackit-pod-identity-webhook'` it runs as your own code. Everything from outside comes in as an argument
 * (environment, output, clock, endpoints), so the binary is a thin wrapper and tests run the whole flow in-process.
 */
import { WorkloadIdentityClient, isWorkloadIdentityError } from '../index.js'
import type { Env, WorkloadIdentityClientOptions } from '../index.js'

/** Environment variables the example app reads besides the client's `STACKIT_*` ones. */
const exampleEnvNames = { region: 'STACKIT_REGION', skeEndpoint: 'STACKIT_SKE_ENDPOINT' } as const

/** Defaults of the example app. */
export const exampleDefaults = { region: 'eu01', skeEndpoint: 'https://ske.api.stackit.cloud' } as const

/** Inputs of {@link runExampleApp}. */
export interface ExampleAppOptions {
  /** Where all variables are read (the binary passes `process.env`). */
  readonly env: Env
  /** Receives the log: one JSON object per call, ending in a newline. */
  readonly write: (line: string) => void
  /** The clock of the lines' `time`; default the current date. */
  readonly currentDate?: () => Date
  /** Overrides `STACKIT_SKE_ENDPOINT`; may be `http:` (loopback tests), which the environment may not. */
  readonly skeEndpoint?: string
  /** Passed to the client (token endpoint override, clock, timeout, agent); `env` is set from here. */
  readonly client?: Omit<WorkloadIdentityClientOptions, 'env'>
  /** Deadline for the SKE call; default 30 000 ms. */
  readonly timeoutMs?: number
}

/** Exit codes of the example app. */
const exampleExitCodes = { ok: 0, failed: 1 } as const

// STACKIT region names are short lower-case identifiers (eu01); anything else would be spliced into a URL path.
const regionPattern = /^[a-z0-9-]{1,32}$/
// A provider-options answer is tens of kilobytes; the cap only stops a runaway body.
const maxSkeResponseBytes = 4 * 1024 * 1024

/** The provider-options URL, or a reason why the configured endpoint or region is unusable (never its value). */
export const providerOptionsUrl = (endpoint: { value: string; fromOption: boolean }, region: string): URL | string => {
  if (!regionPattern.test(region)) return `${exampleEnvNames.region} must be a region name such as "eu01"`
  const source = endpoint.fromOption ? 'option skeEndpoint' : exampleEnvNames.skeEndpoint
  if (!URL.canParse(endpoint.value)) return `${source} is not a URL`
  const base = new URL(endpoint.value)
  // The access token goes there: credentials in the URL would be sent along too, plain HTTP only by a program's choice.
  if (base.username !== '' || base.password !== '') return `${source} must not contain user name or password`
  if (base.protocol !== 'https:' && (base.protocol !== 'http:' || !endpoint.fromOption)) {
    return `${source} must be an https: URL`
  }
  return new URL(`${base.pathname.replace(/\/+$/, '')}/v2/regions/${region}/provider-options`, base)
}

/** The `version` of every well-formed `kubernetesVersions` entry, in the order SKE sent them. */
export const kubernetesVersions = (body: unknown): string[] => {
  const list = field(body, 'kubernetesVersions')
  return Array.isArray(list) ? list.map(v => field(v, 'version')).filter(v => typeof v === 'string') : []
}

/** An own property of a JSON object; undefined for anything else (a key from the prototype is not data). */
const field = (v: unknown, key: string): unknown =>
  typeof v === 'object' && v !== null && Object.hasOwn(v, key) ? Reflect.get(v, key) : undefined

/** The body's first `max` bytes as text, and whether that was all (else the rest is not read). */
const readBody = async (res: Response, max: number): Promise<{ text: string; complete: boolean }> => {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of res.body ?? []) {
    chunks.push(chunk)
    size += chunk.byteLength
    // Enough read: leaving the loop cancels the transfer instead of buffering a runaway body.
    if (size > max) return { text: Buffer.concat(chunks).subarray(0, max).toString('utf8'), complete: false }
  }
  return { text: Buffer.concat(chunks).toString('utf8'), complete: true }
}

// fetch rejects with "fetch failed" and puts what happened (ECONNREFUSED, a certificate error) in `cause`.
const failure = (e: unknown): string =>
  e instanceof Error && e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : String(e)

/** Runs the example once; resolves to the exit code. Never throws for expected failures: it logs one error line. */
export const runExampleApp = async (options: ExampleAppOptions): Promise<number> => {
  const { env } = options
  const log = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, string | number>): void => {
    const time = (options.currentDate?.() ?? new Date()).toISOString()
    options.write(`${JSON.stringify({ time, level, msg, ...fields })}\n`)
  }
  const fail = (msg: string, fields: Record<string, string | number>): number => {
    log('error', msg, fields)
    return exampleExitCodes.failed
  }
  // An empty variable counts as unset, as for the client's.
  const region = env[exampleEnvNames.region] || exampleDefaults.region
  const url = providerOptionsUrl(
    options.skeEndpoint !== undefined
      ? { value: options.skeEndpoint, fromOption: true }
      : { value: env[exampleEnvNames.skeEndpoint] || exampleDefaults.skeEndpoint, fromOption: false },
    region,
  )
  if (typeof url === 'string') return fail('configuration error', { code: 'CONFIG', error: url })

  let accessToken: string
  try {
    const client = new WorkloadIdentityClient({ ...options.client, env })
    log('info', 'fetching SKE provider options', { region, endpoint: url.origin })
    accessToken = await client.getAccessToken()
  } catch (e) {
    /* c8 ignore next -- anything but a WorkloadIdentityError is a bug: let it crash with its stack */
    if (!isWorkloadIdentityError(e)) throw e
    const msg = e.code === 'CONFIG' ? 'configuration error' : 'authentication failed'
    return fail(msg, { code: e.code, error: e.message })
  }

  let res: Response
  let body: { text: string; complete: boolean }
  try {
    const headers = { authorization: `Bearer ${accessToken}`, accept: 'application/json' }
    res = await fetch(url, { headers, signal: AbortSignal.timeout(options.timeoutMs ?? 30_000) })
    body = await readBody(res, maxSkeResponseBytes)
  } catch (e) {
    return fail('SKE request failed', { url: url.href, error: failure(e) })
  }
  if (res.status !== 200) {
    const excerpt = body.text.replace(/\s+/g, ' ').trim().slice(0, 200)
    return fail('SKE request failed', { url: url.href, status: res.status, error: excerpt || '(empty body)' })
  }
  let parsed: unknown
  try {
    if (body.complete) parsed = JSON.parse(body.text)
  } catch {
    // Not JSON: parsed stays undefined.
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return fail('SKE answered HTTP 200 without a JSON object', { url: url.href })
  }

  const versions = kubernetesVersions(parsed)
  log('info', 'authenticated; SKE provider options received', {
    region,
    kubernetesVersionCount: versions.length,
    kubernetesVersions: versions.join(','),
  })
  if (versions.length === 0) log('warn', 'SKE offers no Kubernetes versions in this region', { region })
  return exampleExitCodes.ok
}
