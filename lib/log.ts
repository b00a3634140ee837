/**
 * Structured JSON-line logging. The only module that writes diagnostics; everything else receives a Logger.
 * Callers pass identifiers (uid, namespace, names, outcome), never documents, tokens or env values.
 */

/** Severity levels, lowest first. */
const logLevels = ['debug', 'info', 'warn', 'error'] as const
/** One of {@link logLevels}. */
export type LogLevel = (typeof logLevels)[number]

/** Extra fields on a log line. Values must be identifiers or numbers, never user documents. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>

/** A logger bound to a minimum level and an output. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
}

/** True when `v` names a log level. */
export const isLogLevel = (v: string): v is LogLevel => (logLevels as readonly string[]).includes(v)

/** Longest string value a log line carries; longer values are cut so hostile input cannot bloat logs. */
const maxFieldLength = 256

/**
 * Creates a logger writing one JSON object per line through `write`.
 * `currentDate` is injected so tests get stable timestamps.
 */
export const createLogger = (options: {
  level: LogLevel
  write: (line: string) => void
  currentDate?: () => Date
}): Logger => {
  const min = logLevels.indexOf(options.level)
  const now = options.currentDate ?? (() => new Date())
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (logLevels.indexOf(level) < min) return
    const line: Record<string, unknown> = { time: now().toISOString(), level, msg }
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue
      line[k] = typeof v === 'string' && v.length > maxFieldLength ? `${v.slice(0, maxFieldLength)}…` : v
    }
    options.write(`${JSON.stringify(line)}\n`)
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  }
}

/** A logger that discards everything (tests, library use without logging). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** A writer that gathers the lines of one event-loop turn into a single write. */
export interface BatchedWriter {
  write(text: string): void
  /** Writes whatever is pending now (call it when the process exits). */
  flush(): void
}

/**
 * Batches the writes of one event-loop turn into one call of `write`: under load a server then makes one system
 * call per turn instead of one per log line (synchronous pipe writes cost about an eighth of a review).
 */
export const batchedWriter = (
  write: (text: string) => void,
  schedule: (fn: () => void) => void = setImmediate,
): BatchedWriter => {
  let pending: string[] = []
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    if (pending.length === 0) return
    const text = pending.join('')
    pending = []
    write(text)
  }
  return {
    write: text => {
      pending.push(text)
      if (!scheduled) {
        scheduled = true
        schedule(flush)
      }
    },
    flush,
  }
}
