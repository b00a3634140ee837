import t from 'tap'
import {
  StaticServiceAccountSource,
  serviceAccountsFromDocument,
  serviceAccountsFromText,
} from '../../lib/admission/offline-source.js'

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

t.test('documents one after another (kubectl create -o json, yq): each a ServiceAccount or a List', async t => {
  const sa = (name: string): string => JSON.stringify({ kind: 'ServiceAccount', metadata: { name, namespace: 'n' } })
  const list = JSON.stringify({ kind: 'List', items: [JSON.parse(sa('l1')), JSON.parse(sa('l2'))] })
  const tricky = JSON.stringify({
    kind: 'ServiceAccount',
    metadata: { name: 't', namespace: 'n', annotations: { x: '}{ "\\" ] [' } },
  })
  type Row = [name: string, text: string, names: string[]]
  const rows: Row[] = [
    ['one document', sa('a'), ['n/a']],
    ['two, no space between', `${sa('a')}${sa('b')}`, ['n/a', 'n/b']],
    [
      'two, pretty-printed with space around',
      `\n ${JSON.stringify(JSON.parse(sa('a')), null, 2)}\r\n\t${sa('b')}\n`,
      ['n/a', 'n/b'],
    ],
    ['a List among them', `${sa('a')}\n${list}`, ['n/a', 'n/l1', 'n/l2']],
    ['brackets and quotes inside strings', `${tricky}${sa('b')}`, ['n/t', 'n/b']],
  ]
  for (const [name, text, names] of rows) {
    t.same(
      serviceAccountsFromText(text, 'f').map(s => `${s.namespace}/${s.name}`),
      names,
      name,
    )
  }
})

t.test('text that is not JSON documents one after another: unusable, the text never quoted', async t => {
  const rows: [name: string, text: string][] = [
    ['empty', ''],
    ['only space', ' \n'],
    ['garbage between', '{"kind":"List","items":[]} secret {"kind":"List","items":[]}'],
    ['a number after', '{"kind":"List","items":[]} 1'],
    ['a string after', '{"kind":"List","items":[]} "secret"'],
    ['unterminated', '{"kind":"List","items":[]} {"kind":"List"'],
    ['unterminated string', '{"kind":"List","items":[]} {"kind":"secret'],
    ['a broken one', '{"kind":"List","items":[]} {"kind":"secret",}'],
    ['closed with the wrong bracket', '{"kind":"List","items":[]} {"kind":"secret"]'],
  ]
  for (const [name, text] of rows) {
    t.throws(
      () => serviceAccountsFromText(text, 'f'),
      { code: 'BAD_INPUT_FILE', message: /^f is not valid JSON$/ },
      name,
    )
  }
})

t.test('objects of other kinds: refused, or skipped and named to onOtherKind', async t => {
  const sa = { kind: 'ServiceAccount', metadata: { name: 'a', namespace: 'n' } }
  const cm = { kind: 'ConfigMap', metadata: { name: 'c' } }
  const list = JSON.stringify({ kind: 'List', items: [cm, sa, { kind: 'Secret', data: { k: 's3cr3t' } }] })
  const stream = `${JSON.stringify(cm)}${JSON.stringify({ kind: 'List', items: [cm, sa] })}`
  type Row = [name: string, text: string, names: string[], skipped: string[]]
  const rows: Row[] = [
    [
      'in a List',
      list,
      ['n/a'],
      [
        'f: item 0 (kind "ConfigMap") is not a ServiceAccount: skipped',
        'f: item 2 (kind "Secret") is not a ServiceAccount: skipped',
      ],
    ],
    [
      'among documents, and in a List among them',
      stream,
      ['n/a'],
      [
        'f: document 1 (kind "ConfigMap") is not a ServiceAccount: skipped',
        'f: document 2: item 0 (kind "ConfigMap") is not a ServiceAccount: skipped',
      ],
    ],
  ]
  for (const [name, text, names, skipped] of rows) {
    const told: string[] = []
    t.same(
      serviceAccountsFromText(text, 'f', m => told.push(m)).map(s => `${s.namespace}/${s.name}`),
      names,
      name,
    )
    t.same(told, skipped, `${name}: skipped`)
    t.throws(() => serviceAccountsFromText(text, 'f'), { message: /is not a ServiceAccount|kind is "ConfigMap"/ }, name)
  }
  // What is not an object of a kind stays unusable, skipping or not.
  const unusable: [name: string, text: string, message: RegExp][] = [
    ['a single document of another kind', JSON.stringify(cm), /^f: kind is "ConfigMap"; expected/],
    ['a document without kind', `${JSON.stringify(sa)}{}`, /^f: document 2: kind is null/],
    ['an array document', `${JSON.stringify(sa)}[]`, /^f: document 2: not a JSON object/],
    ['an item that is no object', '{"kind":"List","items":[7]}', /^f: item 0 is not a ServiceAccount/],
    ['an item whose kind is no string', '{"kind":"List","items":[{"kind":5}]}', /^f: item 0 is not a ServiceAccount/],
  ]
  for (const [name, text, message] of unusable) {
    t.throws(() => serviceAccountsFromText(text, 'f', () => t.fail(name)), { code: 'BAD_INPUT_FILE', message }, name)
  }
})
