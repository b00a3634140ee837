/**
 * Where the workload identity client gets its three inputs: an explicit option wins, else the environment
 * variable the webhook injects, else the STACKIT SDK's default. Pure: the environment is an argument.
 * An empty value counts as unset, as in the STACKIT Go SDK.
 */
import { quote } from '../json.js'
import type { Env } from '../env.js'
import { defaults, envNames } from '../names.js'
import { endpointUrl } from '../url.js'
import { WorkloadIdentityError } from './workload-identity-error.js'

/** Explicit settings; each one overrides its environment variable. */
export interface WorkloadIdentityOptions {
  /** STACKIT service account e-mail, sent as `client_id`. Else `STACKIT_SERVICE_ACCOUNT_EMAIL` (required). */
  readonly serviceAccountEmail?: string
  /** Path of the projected Kubernetes token. Else `STACKIT_FEDERATED_TOKEN_FILE`, else the injected default path. */
  readonly federatedTokenFile?: string
  /**
   * Token endpoint URL. Else `STACKIT_IDP_TOKEN_ENDPOINT`, else `https://accounts.stackit.cloud/oauth/v2/token`.
   * Must be `https:`; only this option may name an `http:` URL (loopback tests), never the environment.
   */
  readonly tokenEndpoint?: string
}

/** The resolved configuration, each value with where it came from (for error messages). */
export interface WorkloadIdentityConfig {
  readonly serviceAccountEmail: string
  readonly federatedTokenFile: string
  /** `option federatedTokenFile`, the variable name, or `default`. */
  readonly federatedTokenFileSource: string
  readonly tokenEndpoint: URL
}

/** The SDK's default token path: the webhook's default mount path plus its default file name. */
export const defaultFederatedTokenFile = `${defaults.mountPath}/${defaults.tokenPath}`

interface Picked {
  readonly value: string
  readonly source: string
  readonly fromOption: boolean
}

const pick = (option: string | undefined, optionName: string, env: Env, envName: string): Picked | undefined => {
  if (option !== undefined && option !== '') return { value: option, source: `option ${optionName}`, fromOption: true }
  const fromEnv = env[envName]
  return fromEnv === undefined || fromEnv === '' ? undefined : { value: fromEnv, source: envName, fromOption: false }
}

/**
 * The token endpoint's URL by the project's one rule set (lib/url.ts): it receives a credential (the assertion), so
 * plain HTTP only when a program chose it by option, never from the environment. A user name or password is not shown.
 */
const parseEndpoint = (picked: Picked): URL => {
  const url = endpointUrl(picked.value, picked.fromOption)
  if (url instanceof URL) return url
  const why = {
    'not a URL': () => `is not a URL: ${quote(picked.value)}`,
    credentials: () => 'must not contain user name or password',
    scheme: () => `must be an https: URL, got ${quote(new URL(picked.value).protocol)}`,
  }[url]()
  throw new WorkloadIdentityError('CONFIG', `token endpoint from ${picked.source} ${why}`)
}

/** Resolves options and environment into a configuration; throws a CONFIG error naming the missing or bad input. */
export const resolveWorkloadIdentityConfig = (options: WorkloadIdentityOptions, env: Env): WorkloadIdentityConfig => {
  const email = pick(options.serviceAccountEmail, 'serviceAccountEmail', env, envNames.email)
  if (email === undefined) {
    throw new WorkloadIdentityError(
      'CONFIG',
      `${envNames.email} is not set: the STACKIT service account e-mail is required (is the Pod's ServiceAccount ` +
        'annotated, and was the Pod created after the webhook was installed?)',
    )
  }
  const file = pick(options.federatedTokenFile, 'federatedTokenFile', env, envNames.federatedTokenFile)
  const endpoint = pick(options.tokenEndpoint, 'tokenEndpoint', env, envNames.idpTokenEndpoint)
  return {
    serviceAccountEmail: email.value,
    federatedTokenFile: file?.value ?? defaultFederatedTokenFile,
    federatedTokenFileSource: file?.source ?? 'default',
    tokenEndpoint: endpoint === undefined ? new URL(defaults.idpTokenEndpoint) : parseEndpoint(endpoint),
  }
}
