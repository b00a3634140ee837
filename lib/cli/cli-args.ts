/**
 * Command-line flags through `node:util`'s `parseArgs` in strict mode: `--name value`, `--name=value`, repeatable
 * flags (`multiple`), boolean switches; a single-valued flag given twice takes its last value (as in Go's flag
 * package, so a deployment can override a default argument by appending to the list); `--` ends the flags.
 * Its refusals become USAGE errors that name the flag and point at --help.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { WebhookError } from '../errors.js'
import { quote } from '../json.js'

/** How each flag is read, keyed by its name without the leading `--`. */
export type Flags = NonNullable<ParseArgsConfig['options']>

/** What {@link parseFlags} returns: each flag's value typed by its spec, and the positional arguments. */
export type ParsedFlags<O extends Flags> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>
>

/** Why strict mode refuses this flag token, or undefined when it is fine. */
const misuse = (options: Flags, flag: { name: string; rawName: string; value?: string | undefined }) => {
  const spec = Object.hasOwn(options, flag.name) ? options[flag.name] : undefined
  if (spec === undefined) return `unknown flag ${quote(flag.rawName)}`
  if (spec.type === 'boolean') return flag.value === undefined ? undefined : `--${flag.name} takes no value`
  return flag.value === undefined ? `--${flag.name} needs a value` : undefined
}

/** Parses `argv` against `options`; every refusal is a USAGE error naming the flag. */
export const parseFlags = <const O extends Flags>(argv: readonly string[], options: O, cmd: string): ParsedFlags<O> => {
  // Strict mode refuses `--health-port -1` as ambiguous, but the argument after a flag that takes a value is that
  // value, whatever it starts with: the tokens (read without judging) are written back as `--name=value`.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true })
  const args = tokens.map(t =>
    t.kind === 'option-terminator'
      ? '--'
      : t.kind === 'positional'
        ? t.value
        : t.value === undefined
          ? t.rawName
          : `${t.rawName}=${t.value}`,
  )
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true })
  } catch (e) {
    // Node's own message echoes the argument unbounded: name the first flag it refuses (in order, as it does).
    for (const t of tokens) {
      const why = t.kind === 'option' ? misuse(options, t) : undefined
      if (why !== undefined) throw new WebhookError('USAGE', `${cmd}: ${why} (see ${cmd} --help)`, { cause: e })
    }
    /* c8 ignore next 2 -- strict mode refuses only what misuse() names; anything else is a bug to surface */
    throw e
  }
}
