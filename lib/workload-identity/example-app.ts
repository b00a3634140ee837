/**
 * The example app's logic: prove that the injected workload identity works by getting a STACKIT access token
 * and calling SKE's `GET /v2/regions/{region}/provider-options` (which needs no role on the service account).
 * Everything from outside comes in as an argument (environment, logger, clock, endpoints, agent), so the
 * binary is a thin wrapper and tests run the whole flow in-process against loopback fakes.
 */
import type { Agent } from 'node:http'
import { errorMessage } from '../errors.js'
import { isObject, isString, own, quote } from '../json.js'
import type { Logger } from '../log.js'
import { bodyExcerpt } from '../http-excerpt.js'
import { sendRequest, type OutboundResponse } from './http-request.js'
import { userAgent } from '../version.js'
import { WorkloadIdentityClient, type WorkloadIdentityClientOptions } from './workload-identity-client.js'
import type { Env } from '../env.js'
import { credentialEndpoint, envValue } from './workload-identity-config.js'
import { isWorkloadIdentityError } from './workload-identity-error.js'

/** Environment variables the example app reads besides the client's `STACKIT_*` ones. */
const exampleEnvNames = { region: 'STACKIT_REGION', skeEndpoint: 'STACKIT_SKE_ENDPOINT' } as const

/** Defaults of the example app. */
export const exampleDefaults = { region: 'eu01', skeEndpoint: 'https://ske.api.stackit.cloud' } as const

/** Inputs of {@link runExampleApp}. */
export interface ExampleAppOptions {
  /** Where all variables are read (the binary passes `process.env`). */
  readonly env: Env
  /** Receives the JSON log lines. */
  readonly logger: Logger
  /** Overrides `STACKIT_SKE_ENDPOINT`; may be `http:` (loopback tests), which the environment may not. */
  readonly skeEndpoint?: string
  /** Passed to the client (token endpoint override, clock, timeout); `env` and `agent` are set from here. */
  readonly client?: Omit<WorkloadIdentityClientOptions, 'env' | 'agent'>
  /** Agent for both the token endpoint and SKE (e.g. trusting a test CA). */
  readonly agent?: Agent
  /** Deadline for the SKE call; default 30 000 ms. */
  readonly timeoutMs?: number
}

/** Exit codes of the example app. */
const exampleExitCodes = { ok: 0, failed: 1 } as const

// STACKIT region names are short lower-case identifiers (eu01); anything else would be spliced into a URL path.
const regionPattern = /^[a-z0-9-]{1,32}$/
// A provider-options answer is tens of kilobytes; the cap only stops a runaway body.
const maxSkeResponseBytes = 4 * 1024 * 1024

/** The provider-options URL, or a reason why the configured endpoint or region is unusable. */
export const providerOptionsUrl = (
  endpoint: { value: string; fromOption: boolean },
  region: string,
): URL | string => {
  if (!regionPattern.test(region)) return `${exampleEnvNames.region} must be a region name such as "eu01", got ${quote(region)}`
  const source = endpoint.fromOption ? 'option skeEndpoint' : exampleEnvNames.skeEndpoint
  const base = credentialEndpoint(endpoint.value, endpoint.fromOption)
  if (typeof base === 'string') return `${source} ${base}`
  return new URL(`${base.pathname.replace(/\/+$/, '')}/v2/regions/${region}/provider-options`, base)
}

/** The `version` of every well-formed `kubernetesVersions` entry, in the order SKE sent them. */
export const kubernetesVersions = (body: unknown): string[] => {
  const list = isObject(body) ? own(body, 'kubernetesVersions') : undefined
  if (!Array.isArray(list)) return []
  return list.filter(isObject).map(v => own(v, 'version')).filter(isString)
}

/** Runs the example once; resolves to the exit code. Never throws for expected failures: it logs one error line. */
export const runExampleApp = async (options: ExampleAppOptions): Promise<number> => {
  const { env, logger } = options
  const fail = (msg: string, fields: Record<string, string | number>): number => {
    logger.error(msg, fields)
    return exampleExitCodes.failed
  }
  const region = envValue(env, exampleEnvNames.region) ?? exampleDefaults.region
  const url = providerOptionsUrl(
    options.skeEndpoint !== undefined
      ? { value: options.skeEndpoint, fromOption: true }
      : { value: envValue(env, exampleEnvNames.skeEndpoint) ?? exampleDefaults.skeEndpoint, fromOption: false },
    region,
  )
  if (typeof url === 'string') return fail('configuration error', { code: 'CONFIG', error: url })

  let accessToken: string
  try {
    const clientOptions: WorkloadIdentityClientOptions = { ...options.client, env }
    const client = new WorkloadIdentityClient(options.agent === undefined ? clientOptions : { ...clientOptions, agent: options.agent })
    logger.info('fetching SKE provider options', { region, endpoint: url.origin })
    accessToken = await client.getAccessToken()
  } catch (e) {
    /* c8 ignore next -- anything but a WorkloadIdentityError is a bug: let it crash with its stack */
    if (!isWorkloadIdentityError(e)) throw e
    return fail(e.code === 'CONFIG' ? 'configuration error' : 'authentication failed', { code: e.code, error: e.message })
  }

  let res: OutboundResponse
  try {
    res = await sendRequest({
      url,
      method: 'GET',
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json', 'user-agent': userAgent },
      timeoutMs: options.timeoutMs ?? 30_000,
      maxResponseBytes: maxSkeResponseBytes,
      agent: options.agent,
    })
  } catch (e) {
    return fail('SKE request failed', { url: url.href, error: errorMessage(e) })
  }
  if (res.status !== 200) {
    return fail('SKE request failed', { url: url.href, status: res.status, error: bodyExcerpt(res.body) || '(empty body)' })
  }
  let body: unknown
  try {
    body = res.truncated ? undefined : JSON.parse(res.body)
  } catch {
    body = undefined
  }
  if (!isObject(body)) return fail('SKE answered HTTP 200 without a JSON object', { url: url.href })

  const versions = kubernetesVersions(body)
  logger.info('authenticated; SKE provider options received', {
    region,
    kubernetesVersionCount: versions.length,
    kubernetesVersions: versions.join(','),
  })
  if (versions.length === 0) logger.warn('SKE offers no Kubernetes versions in this region', { region })
  return exampleExitCodes.ok
}
