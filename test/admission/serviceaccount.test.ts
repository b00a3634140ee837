import t from 'tap'
import { StaticServiceAccountSource, prefixedAnnotations, serviceAccountsFromDocument, toServiceAccount } from '../../lib/admission/serviceaccount.js'

const P = 'workload-identity.stackit.cloud/'

t.test('only our-prefix string annotations are kept; unannotated ones share one empty map', async t => {
  const m = prefixedAnnotations({ [`${P}service-account-email`]: 'a@b.cd', 'other/x': 'y', [`${P}n`]: 5 })
  t.same([...m], [[`${P}service-account-email`, 'a@b.cd']])
  t.equal(prefixedAnnotations(undefined), prefixedAnnotations({ other: 'x' }))
  t.equal(prefixedAnnotations(['x']).size, 0)
})

t.test('toServiceAccount', async t => {
  const rows: [name: string, obj: unknown, expect: unknown][] = [
    ['full (resourceVersion not kept)', { metadata: { name: 'a', namespace: 'n', resourceVersion: '7', annotations: { [`${P}audience`]: 'x' } } }, { namespace: 'n', name: 'a', annotations: new Map([[`${P}audience`, 'x']]) }],
    ['without annotations', { metadata: { name: 'a', namespace: 'n' } }, { namespace: 'n', name: 'a', annotations: new Map() }],
    ['not an object', 'x', undefined],
    ['no metadata', {}, undefined],
    ['no name', { metadata: { namespace: 'n' } }, undefined],
    ['empty namespace', { metadata: { name: 'a', namespace: '' } }, undefined],
  ]
  for (const [name, obj, expect] of rows) t.same(toServiceAccount(obj), expect, name)
})

t.test('documents: one ServiceAccount, a List, a ServiceAccountList', async t => {
  const sa = { kind: 'ServiceAccount', metadata: { name: 'a', namespace: 'n' } }
  t.same(serviceAccountsFromDocument(sa, 'f').map(s => `${s.namespace}/${s.name}`), ['n/a'])
  t.same(serviceAccountsFromDocument({ kind: 'List', items: [sa, { metadata: { name: 'b' } }] }, 'f').map(s => `${s.namespace}/${s.name}`), ['n/a', 'default/b'])
  t.same(serviceAccountsFromDocument({ kind: 'ServiceAccountList', items: [] }, 'f'), [])
  const rows: [doc: unknown, message: RegExp][] = [
    [[], /^f: not a JSON object; expected a ServiceAccount or a List/],
    [{ kind: 'Pod' }, /f: kind is "Pod"/],
    [{}, /f: kind is null/],
    [{ kind: 'List', items: [{ kind: 'Pod', metadata: { name: 'x' } }] }, /item 0 is not a ServiceAccount/],
    [{ kind: 'List', items: [7] }, /item 0 is not a ServiceAccount/],
    [{ kind: 'List', items: [{ metadata: { namespace: 'n' } }] }, /item 0 has no metadata.name/],
    [{ kind: 'List', items: [{}] }, /item 0 has no metadata.name/],
  ]
  for (const [doc, message] of rows) t.throws(() => serviceAccountsFromDocument(doc, 'f'), { code: 'BAD_INPUT_FILE', message }, JSON.stringify(doc))
})

t.test('static source', async t => {
  const src = new StaticServiceAccountSource(serviceAccountsFromDocument({ kind: 'ServiceAccount', metadata: { name: 'a', namespace: 'n' } }, 'f'))
  t.equal(src.ready(), true)
  t.equal((await src.get('n', 'a'))?.name, 'a')
  t.equal(await src.get('n', 'b'), undefined)
  t.equal(await src.get('x', 'a'), undefined)
})
