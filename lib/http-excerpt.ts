/**
 * The one way an HTTP answer's body is shown in a message or a log line, for both HTTP clients (the Kubernetes API
 * client and the workload identity client): one line, bounded, with anything shaped like a JWT cut out.
 */

/** Longest body excerpt an error message carries. */
export const maxExcerptLength = 200

// An endpoint may echo the assertion back, so anything shaped like a JWT is cut out. Runs of base64url
// characters and dots are matched first and judged by splitting, which keeps the cost linear in the body size
// (a single backtracking pattern was quadratic on a long run without dots).
const tokenRun = /[A-Za-z0-9_.-]+/g
const looksLikeJwt = (run: string): boolean => {
  const parts = run.split('.')
  // Two long base64url parts followed by a dot: a JWT header and payload (or a longer run containing one).
  // `i + 2 < parts.length` guarantees that parts[i + 1] exists.
  return parts.some((p, i) => i + 2 < parts.length && p.length >= 8 && (parts[i + 1] as string).length >= 8)
}

/**
 * A short, single-line excerpt of an error response body for messages and logs: JWT-shaped strings redacted,
 * control characters and runs of whitespace collapsed to one space, at most {@link maxExcerptLength} characters.
 */
export const bodyExcerpt = (body: string): string => {
  const flat = body
    .replace(tokenRun, run => (looksLikeJwt(run) ? '[redacted]' : run))
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .trim()
  return flat.length > maxExcerptLength ? `${flat.slice(0, maxExcerptLength)}…` : flat
}
