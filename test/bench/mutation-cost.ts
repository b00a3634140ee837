/**
 * Mutation cost against Pod size: the pure admission path (JSON.parse → parseReview → viewPod → decidePod, which
 * mutates and diffs → reviewResponse, which writes the answer text) per review, against JSON.parse +
 * JSON.stringify of the same review text (the floor). Floor and webhook batches alternate, so a slow moment on a
 * shared machine hits both.
 *
 * Run directly (node mutation-cost.js [quick]) it prints its rows as one JSON line; run.ts spawns it so the
 * measurement has a process to itself.
 */
import { pathToFileURL } from 'node:url'
import { parseReview, reviewResponse } from '../../lib/admission/admission-review.js'
import { decidePod, viewPod } from '../../lib/admission/pod-decision.js'
import { own, type JsonObject } from '../../lib/json.js'
import { median, reviewWithContainers, typicalReviewText, typicalServiceAccount } from './workloads.js'

/** One Pod size. Times in microseconds per review. */
export interface MutationRow {
  readonly pod: string
  readonly reviewBytes: number
  readonly floorUs: number
  readonly webhookUs: number
  readonly ratio: number
}

/** How long to measure. */
export interface MutationOptions {
  /** Target duration of one batch. */
  readonly batchMs: number
  /** Batches of each kind; the median is reported. */
  readonly rounds: number
}

/** The whole pure path for one review text; returns the response text. */
export const admitText = (text: string): string => {
  const review = parseReview(JSON.parse(text) as unknown)
  const pod = own(review.request, 'object') as JsonObject
  const decision = decidePod(viewPod(pod), own(review.request, 'namespace') as string, typicalServiceAccount)
  if (decision.outcome !== 'mutated') throw new Error(`benchmark review was not mutated: ${decision.outcome}`)
  return reviewResponse(review, decision)
}

const floorText = (text: string): string => JSON.stringify(JSON.parse(text))

/** Runs `fn` `n` times and returns microseconds per call; the output lengths are summed so nothing is elided. */
const timeBatch = (fn: (t: string) => string, text: string, n: number): number => {
  let sink = 0
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) sink += fn(text).length
  const us = Number(process.hrtime.bigint() - start) / 1000 / n
  if (sink === 0) throw new Error('no output')
  return us
}

const measure = (pod: string, text: string, options: MutationOptions): MutationRow => {
  // Calibrate on the slower path so one batch lasts about batchMs; warm both paths up meanwhile.
  timeBatch(floorText, text, 50)
  const perCall = timeBatch(admitText, text, 50)
  const n = Math.max(5, Math.round((options.batchMs * 1000) / perCall))
  const floor: number[] = []
  const webhook: number[] = []
  for (let r = 0; r < options.rounds; r++) {
    floor.push(timeBatch(floorText, text, n))
    webhook.push(timeBatch(admitText, text, n))
  }
  const floorUs = median(floor)
  const webhookUs = median(webhook)
  return { pod, reviewBytes: Buffer.byteLength(text), floorUs, webhookUs, ratio: webhookUs / floorUs }
}

/** Measures the typical review and Pods with 1, 10 and 100 containers. */
export const measureMutationCost = (options: MutationOptions): MutationRow[] => [
  measure('typical (2 containers + 1 init)', typicalReviewText(), options),
  ...[1, 10, 100].map(n => measure(`${n} container${n === 1 ? '' : 's'}`, reviewWithContainers(n), options)),
]

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv[2] === 'quick'
  process.stdout.write(
    `${JSON.stringify(measureMutationCost(quick ? { batchMs: 5, rounds: 3 } : { batchMs: 40, rounds: 15 }))}\n`,
  )
}
