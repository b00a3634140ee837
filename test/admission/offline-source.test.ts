import t from 'tap'
import { StaticServiceAccountSource, serviceAccountsFromDocument } from '../../lib/admission/offline-source.js'

t.test('documents: one ServiceAccount, a List, a ServiceAccountList', async t => {
  const sa = { kind: 'ServiceAccount', metadata: { name: 'a', namespace: 'n' } }
  t.same(
    serviceAccountsFromDocument(sa, 'f').map(s => `${s.namespace}/${s.name}`),
    ['n/a'],
  )
  t.same(
    serviceAccountsFromDocument({ kind: 'List', items: [sa, { metadata: { name: 'b' } }] }, 'f').map(
      s => `${s.namespace}/${s.name}`,
    ),
    ['n/a', 'default/b'],
  )
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
  for (const [doc, message] of rows)
    t.throws(() => serviceAccountsFromDocument(doc, 'f'), { code: 'BAD_INPUT_FILE', message }, JSON.stringify(doc))
})

t.test('static source', async t => {
  const src = new StaticServiceAccountSource(
    serviceAccountsFromDocument({ kind: 'ServiceAccount', metadata: { name: 'a', namespace: 'n' } }, 'f'),
  )
  t.equal(src.ready(), true)
  t.equal((await src.get('n', 'a'))?.name, 'a')
  t.equal(await src.get('n', 'b'), undefined)
  t.equal(await src.get('x', 'a'), undefined)
})
