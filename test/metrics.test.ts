import t from 'tap'
import { Registry } from '../lib/metrics.js'

t.test('counter, gauge, histogram in the text format', async t => {
  const r = new Registry()
  const c = r.counter('reviews_total', 'Reviews by outcome.')
  c.inc({ outcome: 'mutated' })
  c.inc({ outcome: 'mutated' }, 2)
  c.inc({ outcome: 'denied' })
  const g = r.gauge('in_flight', 'In-flight reviews.')
  g.add(2)
  g.add(-1)
  const fixed = r.gauge('start_time_seconds', 'Start.', () => 42)
  const h = r.histogram('duration_seconds', 'Durations.', [0.1, 1])
  h.observe(0.05)
  h.observe(0.5, {})
  h.observe(5)
  r.counter('unused_total', 'Never incremented.')
  t.equal(c.get({ outcome: 'mutated' }), 3)
  t.equal(c.get(), 0)
  t.equal(g.get(), 1)
  t.equal(fixed.get(), 42)
  t.equal(h.count(), 3)
  t.equal(h.count({ x: 'y' }), 0)
  t.equal(
    r.render(),
    [
      '# HELP stackit_pod_identity_webhook_reviews_total Reviews by outcome.',
      '# TYPE stackit_pod_identity_webhook_reviews_total counter',
      'stackit_pod_identity_webhook_reviews_total{outcome="mutated"} 3',
      'stackit_pod_identity_webhook_reviews_total{outcome="denied"} 1',
      '# HELP stackit_pod_identity_webhook_in_flight In-flight reviews.',
      '# TYPE stackit_pod_identity_webhook_in_flight gauge',
      'stackit_pod_identity_webhook_in_flight 1',
      '# HELP stackit_pod_identity_webhook_start_time_seconds Start.',
      '# TYPE stackit_pod_identity_webhook_start_time_seconds gauge',
      'stackit_pod_identity_webhook_start_time_seconds 42',
      '# HELP stackit_pod_identity_webhook_duration_seconds Durations.',
      '# TYPE stackit_pod_identity_webhook_duration_seconds histogram',
      'stackit_pod_identity_webhook_duration_seconds_bucket{le="0.1"} 1',
      'stackit_pod_identity_webhook_duration_seconds_bucket{le="1"} 2',
      'stackit_pod_identity_webhook_duration_seconds_bucket{le="+Inf"} 3',
      'stackit_pod_identity_webhook_duration_seconds_sum 5.55',
      'stackit_pod_identity_webhook_duration_seconds_count 3',
      '# HELP stackit_pod_identity_webhook_unused_total Never incremented.',
      '# TYPE stackit_pod_identity_webhook_unused_total counter',
      '',
    ].join('\n'),
  )
})

t.test('labels are escaped, sorted keys identify a series, special numbers render', async t => {
  const r = new Registry()
  const c = r.counter('x_total', 'X.')
  c.inc({ a: '1', b: 'q"uo\\te\nnl' })
  c.inc({ b: 'q"uo\\te\nnl', a: '1' })
  const g = r.gauge('g', 'G.')
  g.set(Infinity, { k: 'inf' })
  g.set(-Infinity, { k: 'ninf' })
  g.set(NaN, { k: 'nan' })
  const h = r.histogram('h_seconds', 'H.')
  h.observe(0.0001, { route: '/mutate' })
  const text = r.render()
  t.match(text, 'stackit_pod_identity_webhook_x_total{a="1",b="q\\"uo\\\\te\\nnl"} 2')
  t.match(text, 'g{k="inf"} +Inf')
  t.match(text, 'g{k="ninf"} -Inf')
  t.match(text, 'g{k="nan"} NaN')
  t.match(text, 'h_seconds_bucket{route="/mutate",le="0.0005"} 1')
  t.throws(() => r.counter('x_total', 'again'), /registered twice/)
})
