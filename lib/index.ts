/**
 * The package entry for Node apps (`import … from 'stackit-pod-identity-webhook'`).
 */

// Workload identity client: exchange the injected Kubernetes token for a STACKIT access token.
export { WorkloadIdentityClient, refreshMarginMs, workloadJwtAssertionType } from './workload-identity-client.js'
export type { WorkloadIdentityClientOptions } from './workload-identity-client.js'
export { defaultFederatedTokenFile, resolveWorkloadIdentityConfig } from './workload-identity-config.js'
export type { Env, WorkloadIdentityConfig, WorkloadIdentityOptions } from './workload-identity-config.js'
