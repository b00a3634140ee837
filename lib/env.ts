/**
 * The process environment as modules receive it: passed in (`process.env` from a binary, a plain object in tests);
 * only the public workload identity client falls back to `process.env` when its caller gives none.
 */

/** An environment to read from (`process.env` or a test's plain object). */
export type Env = Readonly<Record<string, string | undefined>>
