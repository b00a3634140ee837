/**
 * `stackit-pod-identity-webhook validate`: the workload-identity annotations of ServiceAccount files judged offline,
 * with the rules and the messages of admission (annotation-rules.ts), for CI pipelines and pre-commit hooks.
 * All I/O goes through the {@link CommandIO} passed in.
 */
import { isWebhookError, resolveWebhookError } from '../errors.js'
import { readInputFile, serviceAccountsFromText } from '../admission/offline-source.js'
import { judgeServiceAccount } from '../admission/serviceaccount-review.js'
import { parseFlags } from './cli-args.js'
import type { CommandIO } from './mutate-command.js'

/** Exit codes of `validate`. */
export const validateExitCodes = { clean: 0, broken: 1, unusable: 2 } as const

const validateHelp = `Usage: stackit-pod-identity-webhook validate [FILE]...

Checks the workload-identity annotations of ServiceAccounts offline, with the rules the webhook applies when a
ServiceAccount or a Pod is admitted. Reads each FILE, or standard input when no FILE is given.

Input: JSON, a ServiceAccount or a List of them, or several such documents one after another:
  kubectl get serviceaccounts -A -o json
  kubectl create --dry-run=client -o json -f serviceaccounts.yaml
Objects of other kinds (in a List, or among several documents) are skipped with a warning. A ServiceAccount
without metadata.namespace is named as in "default" (where kubectl puts it unless the context names another).

Output: a line "error: ..." for each broken annotation and "warning: ..." for each warning on stdout, naming
the ServiceAccount as namespace/name (after the FILE it is in); then a summary line on stderr.

Options:
  --help  show this help

Exit codes:
  0  no annotation is broken (warnings allowed)
  1  an annotation is broken
  2  unusable input or usage: a FILE cannot be read, is not JSON, or holds neither a ServiceAccount nor a List
     (the reason on stderr, nothing on stdout)
`

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** `validate` itself: every input is read before anything is printed; unusable input is thrown as a WebhookError. */
const validate = async (argv: readonly string[], io: CommandIO): Promise<number> => {
  const { values: args, positionals: files } = parseFlags(
    argv,
    { help: { type: 'boolean', default: false } },
    'validate',
  )
  if (args.help) {
    io.stdout(validateHelp)
    return validateExitCodes.clean
  }
  const lines: string[] = []
  let checked = 0
  let broken = 0
  let warnings = 0
  const warn = (text: string): void => {
    warnings++
    lines.push(`warning: ${text}\n`)
  }
  const inputs = files.length === 0 ? [undefined] : files
  for (const file of inputs) {
    const text = file === undefined ? await io.readStdin() : await readInputFile(file, file, io.readFile)
    // A file's findings start with its name; the object's namespace/name follows in each message.
    const at = file === undefined ? '' : `${file}: `
    for (const sa of serviceAccountsFromText(text, file ?? 'standard input', warn)) {
      const judged = judgeServiceAccount(sa)
      checked++
      if (judged.problems.length > 0) broken++
      for (const p of judged.problems) lines.push(`error: ${at}${p.text}\n`)
      for (const w of judged.warnings) warn(`${at}${w}`)
    }
  }
  for (const line of lines) io.stdout(line)
  const summary = `${plural(checked, 'ServiceAccount')} checked: ${broken} with broken annotations`
  io.stderr(`${summary}, ${plural(warnings, 'warning')}\n`)
  return broken > 0 ? validateExitCodes.broken : validateExitCodes.clean
}

/** Runs `validate` with its arguments (after the subcommand name); resolves to the exit code. */
export const runValidate = async (argv: readonly string[], io: CommandIO): Promise<number> => {
  const code = await resolveWebhookError(validate(argv, io))
  if (!isWebhookError(code)) return code
  io.stderr(`error: ${code.message}\n`)
  return validateExitCodes.unusable
}
