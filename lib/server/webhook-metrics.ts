/**
 * The webhook's own metric series, registered once per process on the shared registry.
 */
import type { Counter, Gauge, Histogram, Registry } from '../metrics.js'

/** Series the admission path and the process update. */
export interface WebhookMetrics {
  /** Reviews by resource (pods, serviceaccounts) and outcome: mutated, allowed, skipped, denied, error. */
  readonly reviews: Counter
  /** Duration of well-formed reviews, seconds. */
  readonly duration: Histogram
  /** Requests being handled on the admission port. */
  readonly inFlight: Gauge
}

/** Registers the webhook's series and the process gauges (resident memory, start time). */
export const registerWebhookMetrics = (
  registry: Registry,
  startTimeSeconds: number,
  rss: () => number = () => process.memoryUsage.rss(),
): WebhookMetrics => {
  const metrics: WebhookMetrics = {
    reviews: registry.counter(
      'reviews_total',
      'Admission reviews by resource (pods, serviceaccounts) and outcome (mutated, allowed, skipped, denied, error).',
    ),
    duration: registry.histogram('review_duration_seconds', 'Time from request to response for well-formed reviews.'),
    inFlight: registry.gauge('in_flight_requests', 'Requests being handled on the admission port.'),
  }
  registry.gauge('process_resident_memory_bytes', 'Resident memory of this process.', rss)
  registry.gauge(
    'process_start_time_seconds',
    'Start time of this process since the Unix epoch.',
    () => startTimeSeconds,
  )
  return metrics
}
