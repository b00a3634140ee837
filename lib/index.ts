/**
 * The package entry for Node apps (`import … from 'stackit-pod-identity-webhook'`).
 */

// Workload identity client: exchange the injected Kubernetes token for a STACKIT access token.
export { WorkloadIdentityClient, refreshMarginMs, workloadJwtAssertionType } from './workload-identity/workload-identity-client.js'
export type { WorkloadIdentityClientOptions } from './workload-identity/workload-identity-client.js'
export { defaultFederatedTokenFile, resolveWorkloadIdentityConfig } from './workload-identity/workload-identity-config.js'
export type { Env } from './env.js'
export type { WorkloadIdentityConfig, WorkloadIdentityOptions } from './workload-identity/workload-identity-config.js'

// Errors: every failure carries one code from a closed set.
export { WebhookError, isWebhookError } from './errors.js'
export type { ErrorCode } from './errors.js'

// The webhook's pure core, for tools that want to mutate Pods the way the webhook does.
export { admit, parseReview } from './admission/admission-review.js'
export { decidePod, reviewPod, viewPod } from './admission/pod-decision.js'
export type { Admission, ReviewSummary } from './admission/admission-review.js'
export type { PodDecision } from './admission/pod-decision.js'
export { resolveIdentity } from './admission/identity-config.js'
export type { IdentityConfig, IdentityDecision } from './admission/identity-config.js'
export { mutatePod } from './admission/mutate-pod.js'
export { StaticServiceAccountSource, serviceAccountsFromDocument } from './admission/offline-source.js'
export type { ServiceAccount, ServiceAccountSource } from './admission/serviceaccount.js'
export { annotationPrefix, envNames, keys, volumeName } from './names.js'
