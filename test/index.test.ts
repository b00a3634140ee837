// The package entry, imported by name as a Node app would (package.json "exports").
import t from 'tap'

t.test('the package entry exports the client, the errors and the pure core', async t => {
  // A variable specifier keeps tsc from resolving the package's own .d.ts, which a fresh clone has not built yet.
  const name = 'stackit-pod-identity-webhook'
  const pkg = (await import(name)) as typeof import('../lib/index.js')
  for (const name of ['WorkloadIdentityClient', 'WebhookError', 'isWebhookError', 'admit', 'decidePod', 'parseReview', 'reviewPod', 'resolveIdentity', 'mutatePod', 'StaticServiceAccountSource', 'serviceAccountsFromDocument']) {
    t.type((pkg as Record<string, unknown>)[name], 'function', name)
  }
  t.equal(pkg.annotationPrefix, 'workload-identity.stackit.cloud/')
  t.equal(pkg.volumeName, 'stackit-workload-identity')
  t.equal(pkg.keys.email, 'workload-identity.stackit.cloud/service-account-email')
  t.equal(pkg.envNames.email, 'STACKIT_SERVICE_ACCOUNT_EMAIL')
})
