/**
 * `stackit-pod-identity-webhook mutate`: the admission logic on stdin/stdout, for fixtures and debugging.
 * All I/O goes through the {@link CommandIO} passed in.
 */
import { WebhookError, isWebhookError, resolveWebhookError } from '../errors.js'
import { isObject, isString, own, parseJson, quote } from '../json.js'
import { admit, parseReview } from '../admission/admission-review.js'
import { reviewPod, viewPod } from '../admission/pod-decision.js'
import { parseFlags } from './cli-args.js'
import { StaticServiceAccountSource, loadServiceAccountFiles } from '../admission/offline-source.js'
import { judgeServiceAccount } from '../admission/serviceaccount-review.js'

/** The process edges a command uses; tests pass in-memory versions. */
export interface CommandIO {
  /** All of standard input as text. */
  readStdin(): Promise<string>
  /** A file's text; rejects when it cannot be read. */
  readFile(path: string): Promise<string>
  stdout(text: string): void
  stderr(text: string): void
}

/** Exit codes of the CLI. */
export const exitCodes = { allowed: 0, denied: 1, usage: 2 } as const

const mutateHelp = `Usage: stackit-pod-identity-webhook mutate [--service-account FILE]... [--namespace NS] < INPUT

Runs the webhook's admission logic once, offline, on standard input.

INPUT is either
  an AdmissionReview (JSON)  → prints the AdmissionReview with its response (patch base64-encoded)
  a Pod (JSON)               → prints the mutated Pod (unchanged when skipped)

Options:
  --service-account FILE  JSON file with a ServiceAccount or a List of them (kubectl get sa -A -o json).
                          Repeatable. A ServiceAccount without metadata.namespace is in "default".
                          Their annotations are checked as "validate" checks them; findings are warnings.
  --namespace NS          namespace of a bare Pod without metadata.namespace (default: "default")
  --help                  show this help

Exit codes:
  0  allowed (mutated or skipped)
  1  denied (the reason is printed on stderr; an AdmissionReview also carries it in response.status)
  2  unusable input or usage (message on stderr, nothing on stdout)
`

/** The flags `mutate` accepts, with their defaults. */
const mutateFlags = {
  'service-account': { type: 'string', multiple: true },
  namespace: { type: 'string', default: 'default' },
  help: { type: 'boolean', default: false },
} as const

/** Prints a document; one nested deeper than the serialiser's stack allows is unusable input, not a crash. */
const printJson = (io: CommandIO, doc: unknown): void => {
  let text: string
  try {
    text = JSON.stringify(doc, null, 2)
  } catch {
    throw new WebhookError('BAD_INPUT_FILE', 'standard input is nested too deeply to be printed back')
  }
  io.stdout(`${text}\n`)
}

/** Prints each warning not in `shown` (then adds it there). */
const printWarnings = (io: CommandIO, warnings: readonly string[], shown: Set<string>): void => {
  for (const w of warnings) {
    if (!shown.has(w)) io.stderr(`warning: ${w}\n`)
    shown.add(w)
  }
}

/** `mutate` itself: resolves to the exit code of a decision; unusable input is thrown as a WebhookError. */
const mutate = async (argv: readonly string[], io: CommandIO): Promise<number> => {
  const { values: args, positionals } = parseFlags(argv, mutateFlags, 'mutate')
  if (args.help) {
    io.stdout(mutateHelp)
    return exitCodes.allowed
  }
  if (positionals.length > 0) {
    const why = `unexpected argument ${quote(positionals[0])}; the input is read from stdin`
    throw new WebhookError('USAGE', `mutate: ${why} (see mutate --help)`)
  }
  const files = await loadServiceAccountFiles(args['service-account'] ?? [], io.readFile)
  const source = new StaticServiceAccountSource(files)
  // The files' ServiceAccounts judged as `validate` judges them, broken annotations too: only warnings here, since
  // the Pod's decision denies when its own ServiceAccount is broken. A Pod's warning that repeats one is not printed.
  const shown = new Set<string>()
  for (const sa of files) {
    const { problems, warnings } = judgeServiceAccount(sa)
    printWarnings(io, [...problems.map(p => p.text), ...warnings], shown)
  }
  const input = parseJson(
    await io.readStdin(),
    () => new WebhookError('BAD_INPUT_FILE', 'standard input is not valid JSON'),
  )
  const kind = isObject(input) ? own(input, 'kind') : undefined

  if (kind === 'AdmissionReview') {
    const { response, decision } = await admit(parseReview(input), source)
    printWarnings(io, decision.warnings, shown)
    printJson(io, JSON.parse(response))
    if (decision.outcome !== 'denied') return exitCodes.allowed
    io.stderr(`denied: ${decision.error.message}\n`)
    return exitCodes.denied
  }
  if (kind === 'Pod' && isObject(input)) {
    const meta = own(input, 'metadata')
    const podNamespace = isObject(meta) ? own(meta, 'namespace') : undefined
    const namespace = isString(podNamespace) && podNamespace !== '' ? podNamespace : args.namespace
    const decision = await reviewPod(viewPod(input), namespace, source)
    printWarnings(io, decision.warnings, shown)
    if (decision.outcome === 'denied') {
      // A Pod that is not Pod-shaped is unusable input, not a policy decision.
      if (decision.error.code === 'BAD_POD') throw decision.error
      io.stderr(`denied: ${decision.error.message}\n`)
      return exitCodes.denied
    }
    printJson(io, decision.outcome === 'mutated' ? decision.pod : input)
    return exitCodes.allowed
  }
  throw new WebhookError(
    'BAD_INPUT_FILE',
    `standard input must hold an AdmissionReview or a Pod, found kind ${quote(kind)}`,
  )
}

/** Runs `mutate` with its arguments (after the subcommand name); resolves to the exit code. */
export const runMutate = async (argv: readonly string[], io: CommandIO): Promise<number> => {
  const code = await resolveWebhookError(mutate(argv, io))
  if (!isWebhookError(code)) return code
  io.stderr(`error: ${code.message}\n`)
  return exitCodes.usage
}
