/**
 * The inputs every benchmark part shares: the typical review, reviews with N containers, realistic
 * ServiceAccounts at scale, and small statistics helpers. No timing happens here.
 */
import { readFileSync } from 'node:fs'
import type { FakeServiceAccount } from '../helpers/fake-api-server.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'
import { fixturePath } from '../helpers/paths.js'

const emailAnnotation = 'workload-identity.stackit.cloud/service-account-email'

/** The typical review (a Deployment-made Pod) as the API server sends it: compact JSON. */
export const typicalReviewText = (): string =>
  JSON.stringify(JSON.parse(readFileSync(fixturePath('admission-review-deployment-pod.json'), 'utf8')))

/** The ServiceAccount the typical review runs as, annotated like the fixture file. */
export const typicalServiceAccount: ServiceAccount = {
  namespace: 'team-a',
  name: 'app-sa',
  annotations: new Map([[emailAnnotation, 'app-1a2b3c@sa.stackit.cloud']]),
}

/** Path of the ServiceAccount fixture that `serve --service-account` reads in offline mode. */
export const serviceAccountFixture = fixturePath('serviceaccounts.json')

/**
 * The typical review with `count` copies of its main container (named c0, c1, …) and no init container, so
 * the size of the Pod is the only thing that changes between rows.
 */
export const reviewWithContainers = (count: number): string => {
  const review = JSON.parse(typicalReviewText()) as { request: { object: { spec: Record<string, unknown> } } }
  const spec = review.request.object.spec
  const template = (spec['containers'] as Record<string, unknown>[])[0]!
  spec['containers'] = Array.from({ length: count }, (_, i) => ({ ...structuredClone(template), name: `c${i}` }))
  delete spec['initContainers']
  return JSON.stringify(review)
}

/**
 * `count` ServiceAccounts shaped like a busy cluster's: ten per namespace, each with labels and a token Secret
 * reference, every third one annotated for workload identity, a Helm annotation on the others.
 */
export function* clusterServiceAccounts(count: number): Generator<FakeServiceAccount> {
  for (let i = 0; i < count; i++) {
    const namespace = `team-${String(Math.floor(i / 10)).padStart(5, '0')}`
    const name = `app-${i}`
    yield {
      namespace,
      name,
      labels: {
        'app.kubernetes.io/name': name,
        'app.kubernetes.io/part-of': namespace,
        'app.kubernetes.io/managed-by': 'Helm',
      },
      annotations:
        i % 3 === 0
          ? { [emailAnnotation]: `${name}-${i.toString(36)}@sa.stackit.cloud` }
          : { 'meta.helm.sh/release-name': name, 'meta.helm.sh/release-namespace': namespace },
      secrets: [`${name}-token-${(i * 7919).toString(36).padStart(5, 'x')}`],
    }
  }
}

/** The value at quantile q (0…1) of an ascending-sorted array; nearest rank. */
export const quantile = (sorted: ArrayLike<number>, q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

/** The median of some numbers. */
export const median = (values: readonly number[]): number => quantile(Float64Array.from(values).sort(), 0.5)
