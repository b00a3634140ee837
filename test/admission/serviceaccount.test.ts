import t from 'tap'
import { prefixedAnnotations, toServiceAccount } from '../../lib/admission/serviceaccount.js'

const P = 'workload-identity.stackit.cloud/'

t.test('only our-prefix string annotations are kept; unannotated ones share one empty map', async t => {
  const m = prefixedAnnotations({ [`${P}service-account-email`]: 'a@b.cd', 'other/x': 'y', [`${P}n`]: 5 })
  t.same([...m], [[`${P}service-account-email`, 'a@b.cd']])
  t.equal(prefixedAnnotations(undefined), prefixedAnnotations({ other: 'x' }))
  t.equal(prefixedAnnotations(['x']).size, 0)
})

t.test('toServiceAccount', async t => {
  const rows: [name: string, obj: unknown, expect: unknown][] = [
    [
      'full (resourceVersion not kept)',
      { metadata: { name: 'a', namespace: 'n', resourceVersion: '7', annotations: { [`${P}audience`]: 'x' } } },
      { namespace: 'n', name: 'a', annotations: new Map([[`${P}audience`, 'x']]) },
    ],
    [
      'without annotations',
      { metadata: { name: 'a', namespace: 'n' } },
      { namespace: 'n', name: 'a', annotations: new Map() },
    ],
    ['not an object', 'x', undefined],
    ['no metadata', {}, undefined],
    ['no name', { metadata: { namespace: 'n' } }, undefined],
    ['empty namespace', { metadata: { name: 'a', namespace: '' } }, undefined],
  ]
  for (const [name, obj, expect] of rows) t.same(toServiceAccount(obj), expect, name)
})
