/**
 * The package entry for Node apps (`import … from 'stackit-pod-identity-webhook'`): the workload identity client,
 * its configuration and its error, nothing else. The webhook is run as its binary; its modules are not an API.
 */
export { WorkloadIdentityClient } from './workload-identity/workload-identity-client.js'
export type { WorkloadIdentityClientOptions } from './workload-identity/workload-identity-client.js'
export { resolveWorkloadIdentityConfig } from './workload-identity/workload-identity-config.js'
export type { WorkloadIdentityConfig, WorkloadIdentityOptions } from './workload-identity/workload-identity-config.js'
export { WorkloadIdentityError, isWorkloadIdentityError } from './workload-identity/workload-identity-error.js'
export type { WorkloadIdentityErrorCode } from './workload-identity/workload-identity-error.js'
export type { Env } from './env.js'
