/**
 * Smoke test of the benchmark's pure part (test/bench/mutation-cost.ts) with tiny batches: it runs, mutates
 * every benchmark review, and reports rows of the documented shape. No timing is judged here: benchmarks are not
 * tests.
 */
import t from 'tap'
import { admitText, measureMutationCost } from './bench/mutation-cost.js'
import { reviewWithContainers, typicalReviewText } from './bench/workloads.js'

const decodedPatch = (responseText: string): Array<{ op: string; path: string }> => {
  const review = JSON.parse(responseText) as { response: { allowed: boolean; patch: string } }
  t.equal(review.response.allowed, true)
  return JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')) as Array<{
    op: string
    path: string
  }>
}

const reviews: ReadonlyArray<readonly [name: string, text: string, containers: number]> = [
  ['typical review (2 containers + 1 init)', typicalReviewText(), 3],
  ['1 container', reviewWithContainers(1), 1],
  ['10 containers', reviewWithContainers(10), 10],
  ['100 containers', reviewWithContainers(100), 100],
]

for (const [name, text, containers] of reviews) {
  t.test(`${name} → mutated: one volume plus a mount and env for each of ${containers} containers`, async t => {
    const patch = decodedPatch(admitText(text))
    t.equal(patch.filter(op => op.path.startsWith('/spec/volumes')).length, 1)
    t.equal(patch.filter(op => /volumeMounts/.test(op.path)).length, containers)
    t.equal(patch.filter(op => /\/env/.test(op.path)).length, containers)
  })
}

t.test('measureMutationCost with tiny batches → four rows with positive times for real reviews', async t => {
  const rows = measureMutationCost({ batchMs: 0.1, rounds: 1 })
  t.same(
    rows.map(r => r.pod),
    ['typical (2 containers + 1 init)', '1 container', '10 containers', '100 containers'],
  )
  for (const r of rows) {
    t.ok(r.floorUs > 0 && r.webhookUs > 0, `${r.pod}: positive times`)
    t.ok(r.reviewBytes > 1000, `${r.pod}: a real review`)
  }
  t.ok(
    rows[3]!.reviewBytes > rows[2]!.reviewBytes && rows[2]!.reviewBytes > rows[1]!.reviewBytes,
    'review size grows with containers',
  )
})
