/**
 * Type guards for untrusted JSON. Request data stays `unknown` until one of these has proved its shape.
 */

/** A JSON object (not null, not an array). */
export type JsonObject = { [key: string]: unknown }

/** True for a plain JSON object. */
export const isObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** True for a string. */
export const isString = (v: unknown): v is string => typeof v === 'string'

/** Reads an own property; never walks the prototype chain (so `__proto__` or `constructor` are plain keys). */
export const own = (o: JsonObject, key: string): unknown =>
  Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined

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
