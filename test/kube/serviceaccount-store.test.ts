import t from 'tap'
import { ServiceAccountStore } from '../../lib/kube/serviceaccount-store.js'
import type { ServiceAccount } from '../../lib/admission/serviceaccount.js'

const email = 'workload-identity.stackit.cloud/service-account-email'
const audience = 'workload-identity.stackit.cloud/audience'
const sa = (namespace: string, name: string, annotations: [string, string][] = []): ServiceAccount => ({
  namespace,
  name,
  annotations: new Map(annotations),
})

const roundTrips: [name: string, input: ServiceAccount, expected: ServiceAccount][] = [
  ['unannotated: stored as the sentinel', sa('a', 'x'), sa('a', 'x')],
  ['the e-mail alone: stored as the string', sa('a', 'x', [[email, 'e@x']]), sa('a', 'x', [[email, 'e@x']])],
  [
    'several annotations: stored as pairs',
    sa('a', 'x', [
      [email, 'e@x'],
      [audience, 'aud'],
    ]),
    sa('a', 'x', [
      [email, 'e@x'],
      [audience, 'aud'],
    ]),
  ],
  [
    'one annotation that is not the e-mail: stored as a pair',
    sa('a', 'x', [[audience, 'aud']]),
    sa('a', 'x', [[audience, 'aud']]),
  ],
]
for (const [name, input, expected] of roundTrips) {
  t.test(name, async t => {
    const store = new ServiceAccountStore()
    store.set(input)
    t.same(store.get('a', 'x'), expected)
    t.equal(store.size, 1)
  })
}

t.test('unannotated entries share one empty annotations map', async t => {
  const store = new ServiceAccountStore()
  store.set(sa('a', 'x'))
  store.set(sa('b', 'y'))
  t.equal(store.get('a', 'x')?.annotations, store.get('b', 'y')?.annotations)
})

t.test('replace, delete and size', async t => {
  const store = new ServiceAccountStore()
  store.set(sa('a', 'x'))
  store.set(sa('a', 'x', [[email, 'e@x']]))
  store.set(sa('a', 'y'))
  t.equal(store.size, 2, 'a replacement does not count twice')
  t.equal(store.get('a', 'x')?.annotations.get(email), 'e@x')
  store.delete('a', 'nope')
  store.delete('nope', 'x')
  t.equal(store.size, 2, 'deleting what is absent changes nothing')
  store.delete('a', 'x')
  store.delete('a', 'y')
  t.equal(store.size, 0)
  t.equal(store.get('a', 'x'), undefined)
})
