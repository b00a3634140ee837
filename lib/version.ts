/** The package version, kept equal to package.json's by a test (no file read at start-up). */
export const version = '0.1.0'

/** The User-Agent this project sends to the Kubernetes API and STACKIT endpoints. */
export const userAgent = `stackit-pod-identity-webhook/${version}`
