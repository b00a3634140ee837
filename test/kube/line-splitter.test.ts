import t from 'tap'
import { LineSplitter } from '../../lib/kube/line-splitter.js'

const cases: [name: string, chunks: string[], lines: string[], pending: number][] = [
  ['one line per chunk', ['{"a":1}\n', '{"b":2}\n'], ['{"a":1}', '{"b":2}'], 0],
  ['two lines in one chunk', ['{"a":1}\n{"b":2}\n'], ['{"a":1}', '{"b":2}'], 0],
  ['a line split over three chunks', ['{"a"', ':', '1}\n'], ['{"a":1}'], 0],
  ['blank lines and CRLF are skipped', ['\n\r\n{"a":1}\r\n'], ['{"a":1}'], 0],
  ['an unfinished line stays pending', ['{"a":1}\n{"b"'], ['{"a":1}'], 4],
  ['a multi-byte character split between chunks', ['"\xc3', '\xa9"\n'], ['"é"'], 0],
]
for (const [name, chunks, lines, pending] of cases) {
  t.test(name, async t => {
    const seen: string[] = []
    const splitter = new LineSplitter(64, line => seen.push(line))
    for (const c of chunks) splitter.push(Buffer.from(c, 'latin1'))
    t.same(seen, lines)
    t.equal(splitter.pendingBytes, pending)
  })
}

t.test('a line longer than the limit throws, also when it arrives in pieces', async t => {
  const splitter = new LineSplitter(8, () => {})
  splitter.push(Buffer.from('12345'))
  t.throws(() => splitter.push(Buffer.from('6789')), new RangeError('a line exceeds 8 bytes'))
  t.equal(splitter.pendingBytes, 0, 'the partial line is dropped')
})
