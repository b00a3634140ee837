/**
 * A small, strict command-line flag parser: `--name value`, `--name=value`, repeatable flags, boolean switches.
 * A single-valued flag given twice takes its last value.
 * Unknown flags and missing values are USAGE errors that name the flag and point at --help.
 */
import { WebhookError } from '../errors.js'

/** How one flag is read. */
export interface FlagSpec {
  readonly kind: 'string' | 'list' | 'boolean'
}

/** Parsed flags: strings, lists (repeatable) and booleans, keyed by flag name without dashes. */
export interface ParsedArgs {
  readonly strings: ReadonlyMap<string, string>
  readonly lists: ReadonlyMap<string, readonly string[]>
  readonly booleans: ReadonlySet<string>
  readonly positional: readonly string[]
}

/** Parses `argv` against `specs` (keys are flag names without the leading `--`). */
export const parseArgs = (argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>, command: string): ParsedArgs => {
  const strings = new Map<string, string>()
  const lists = new Map<string, string[]>()
  const booleans = new Set<string>()
  const positional: string[] = []
  const usage = (why: string): never => {
    throw new WebhookError('USAGE', `${command}: ${why} (see ${command} --help)`)
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') {
      positional.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('--')) {
      positional.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    const spec = Object.prototype.hasOwnProperty.call(specs, name) ? specs[name] : undefined
    if (!spec) return usage(`unknown flag --${name}`)
    if (spec.kind === 'boolean') {
      if (eq >= 0) return usage(`--${name} takes no value`)
      booleans.add(name)
      continue
    }
    let value: string
    if (eq >= 0) value = arg.slice(eq + 1)
    else {
      const next = argv[i + 1]
      if (next === undefined) return usage(`--${name} needs a value`)
      value = next
      i++
    }
    // A repeated single-valued flag takes its last value (as Go's flag package does), so a deployment can
    // override a default argument by appending to the list.
    if (spec.kind === 'list') lists.set(name, [...(lists.get(name) ?? []), value])
    else strings.set(name, value)
  }
  return { strings, lists, booleans, positional }
}
