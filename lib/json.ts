/**
 * Type guards for untrusted JSON. Request data stays `unknown` until one of these has proved its shape.
 */

/** A JSON object (not null, not an array). */
export type JsonObject = { [key: string]: unknown }

/** True for a plain JSON object. */
export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** True for a string. */
export const isString = (v: unknown): v is string => typeof v === 'string'

/** Reads an own property; never walks the prototype chain (so `__proto__` or `constructor` are plain keys). */
export const own = (o: JsonObject, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined)

/**
 * Parses JSON text; on failure throws `onError()` instead of the parser's own error, whose message quotes the
 * input (a Pod or a file can hold secrets in env values).
 */
export const parseJson = (text: string, onError: () => Error): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw onError()
  }
}

/** Longest part of a value {@link quote} shows. */
const maxQuoted = 80

/**
 * A value as shown in an error, warning or log message: a string JSON-quoted (so spaces and control characters are
 * visible), cut to `max` characters before quoting so an escape is never cut in half, with DEL and the C1 controls
 * (which JSON leaves raw) escaped too; anything else by its type, so no document is ever echoed.
 */
export const quote = (v: unknown, max = maxQuoted): string => {
  if (!isString(v)) {
    if (typeof v === 'number' || typeof v === 'boolean') return String(v)
    return v === null || v === undefined
      ? 'null'
      : Array.isArray(v)
        ? 'an array'
        : `a ${typeof v === 'object' ? 'JSON object' : typeof v}`
  }
  return JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v).replace(
    /[\u007f-\u009f]/g,
    c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
