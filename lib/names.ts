/**
 * Names and defaults shared by the mutation, the CLI, the server and the manifests' tests.
 */

/** Prefix of every annotation and label this webhook reads. */
export const annotationPrefix = 'workload-identity.stackit.cloud/'

/** Annotation and label keys (full, with prefix). */
export const keys = {
  email: `${annotationPrefix}service-account-email`,
  audience: `${annotationPrefix}audience`,
  tokenExpiration: `${annotationPrefix}service-account-token-expiration-seconds`,
  idpTokenExpiration: `${annotationPrefix}idp-token-expiration-seconds`,
  idpTokenEndpoint: `${annotationPrefix}idp-token-endpoint`,
  federatedTokenFile: `${annotationPrefix}federated-token-file`,
  skip: `${annotationPrefix}skip-pod-identity-webhook`,
  skipContainers: `${annotationPrefix}skip-containers`,
} as const

/** Defaults (parity with the reference webhook and the STACKIT SDK). */
export const defaults = {
  audience: 'sts.accounts.stackit.cloud',
  tokenExpirationSeconds: 600,
  mountPath: '/var/run/secrets/stackit.cloud/serviceaccount',
  tokenPath: 'token',
  idpTokenEndpoint: 'https://accounts.stackit.cloud/oauth/v2/token',
} as const

/** Kubernetes' bounds on a projected serviceAccountToken's expirationSeconds. */
export const tokenExpirationBounds = { min: 600, max: 4294967296 } as const

/** The reserved name of the injected volume. */
export const volumeName = 'stackit-workload-identity'

/** Environment variables the STACKIT SDKs read. */
export const envNames = {
  email: 'STACKIT_SERVICE_ACCOUNT_EMAIL',
  federatedTokenFile: 'STACKIT_FEDERATED_TOKEN_FILE',
  idpTokenEndpoint: 'STACKIT_IDP_TOKEN_ENDPOINT',
  idpTokenExpiration: 'STACKIT_IDP_TOKEN_EXPIRATION_SECONDS',
} as const

/** auditAnnotations key (no `/`: the API server prefixes it with the webhook name). */
export const auditKey = 'injected-service-account-email'
