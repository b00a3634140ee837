/**
 * The objects of `manifests/base` as `kubectl apply -k` would send them (in the kustomization's resource order),
 * and the one change a test run needs: the webhook configurations (mutating and validating) pointed at a webhook on
 * 127.0.0.1 instead of the in-cluster Service, with the run's CA bundle. Everything else (rules, selectors, match
 * conditions, policies, timeouts and the paths) is exactly what users deploy.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import { isObject, isString, own } from '../../lib/json.js'
import type { JsonObject } from '../../lib/json.js'
import { manifestsDir, parseYamlFile } from '../helpers/manifests.js'

/** Every object of the base kustomization, in its `resources` order. */
export const loadBaseManifests = async (): Promise<JsonObject[]> => {
  const baseDir = join(manifestsDir, 'base')
  const kustomization: unknown = parse(await readFile(join(baseDir, 'kustomization.yaml'), 'utf8'))
  const resources = isObject(kustomization) ? own(kustomization, 'resources') : undefined
  if (!Array.isArray(resources)) throw new Error('manifests/base/kustomization.yaml lists no resources')
  const objects: JsonObject[] = []
  for (const resource of resources) {
    if (!isString(resource)) throw new Error('manifests/base/kustomization.yaml: a resource is not a file name')
    for (const { doc } of await parseYamlFile(join(baseDir, resource))) if (isObject(doc)) objects.push(doc)
  }
  return objects
}

/** The kinds that register a webhook with the API server: apply them only once the run's webhook listens. */
export const webhookConfigurationKinds: readonly string[] = [
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
]

/**
 * Whether `object` registers a webhook. Applied as it is, such an object would send reviews to the in-cluster
 * Service, which no test cluster serves: filter these out, then apply them through {@link pointAtLoopback}.
 */
export const isWebhookConfiguration = (object: JsonObject): boolean => {
  const kind = own(object, 'kind')
  return isString(kind) && webhookConfigurationKinds.includes(kind)
}

/**
 * A copy of a Mutating- or ValidatingWebhookConfiguration whose every webhook calls `https://127.0.0.1:PORT<path>`
 * (the path taken from the manifest's service reference) and trusts `caBundle` (base64 PEM).
 */
export const pointAtLoopback = (config: JsonObject, port: number, caBundle: string): JsonObject => {
  const webhooks = own(config, 'webhooks')
  if (!Array.isArray(webhooks)) throw new Error(`${String(own(config, 'kind'))} without webhooks`)
  return {
    ...config,
    webhooks: webhooks.map(webhook => {
      if (!isObject(webhook)) throw new Error('a webhook entry is not an object')
      const clientConfig = own(webhook, 'clientConfig')
      const service = isObject(clientConfig) ? own(clientConfig, 'service') : undefined
      const path = isObject(service) ? own(service, 'path') : undefined
      return { ...webhook, clientConfig: { url: `https://127.0.0.1:${port}${isString(path) ? path : '/'}`, caBundle } }
    }),
  }
}
