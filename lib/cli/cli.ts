/**
 * Subcommand dispatch for the `stackit-pod-identity-webhook` binary. The binary itself only wires process
 * edges (stdin, files, stdout, stderr) into {@link main}.
 */
import { exitCodes, runMutate, type CommandIO } from './mutate-command.js'
import { runServe, type ServeIO } from './serve-command.js'
import { runValidate } from './validate-command.js'
import { version } from '../version.js'
import { quote } from '../json.js'

const mainHelp = `Usage: stackit-pod-identity-webhook <command> [flags]

Mutating admission webhook that injects STACKIT workload identity into Pods.

Commands:
  serve    serve the admission webhook over HTTPS, with probes and metrics; see "serve --help"
  mutate   run the admission logic once on stdin (AdmissionReview or Pod JSON); see "mutate --help"
  validate check the annotations of ServiceAccount JSON files (or stdin), for CI; see "validate --help"

Flags:
  --help     show this help
  --version  print the version
`

/** Runs the CLI; resolves to the process exit code. */
export const main = async (argv: readonly string[], io: CommandIO & ServeIO): Promise<number> => {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve':
      return runServe(rest, io)
    case 'mutate':
      return runMutate(rest, io)
    case 'validate':
      return runValidate(rest, io)
    case '--version':
      io.stdout(`${version}\n`)
      return exitCodes.allowed
    case '--help':
    case 'help':
      io.stdout(mainHelp)
      return exitCodes.allowed
    default:
      io.stderr(command === undefined ? mainHelp : `error: unknown command ${quote(command)} (see --help)\n`)
      return exitCodes.usage
  }
}
