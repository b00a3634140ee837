/**
 * Runs the example app (`dist/bin/stackit-workload-identity-example-app.js`) as its own process with a given
 * environment, as a container would start it, and collects its exit code and JSON log lines.
 */
import { readFile } from 'node:fs/promises'
import { distBin } from '../helpers/paths.js'
import { startProcess, stopProcess } from './processes.js'

/** The example app as built by `tsc -p .`. */
export const exampleAppBin = distBin('stackit-workload-identity-example-app')

/** How one run ended. */
export interface ExampleAppRun {
  readonly exitCode: number | null
  /** Every stdout line that is a JSON object (all the app writes), in order. */
  readonly lines: readonly Record<string, unknown>[]
  /** The whole output, stderr included (Node's own warnings), for failure diagnostics. */
  readonly output: string
}

/**
 * Starts the app with exactly `env` (plus PATH, which every image sets) and waits for its exit; SIGKILL after
 * `timeoutMs` (default 60 s). Its output goes to `logFile` first.
 */
export const runExampleAppProcess = async (
  env: Readonly<Record<string, string>>,
  logFile: string,
  timeoutMs = 60_000,
): Promise<ExampleAppRun> => {
  const child = startProcess(process.execPath, [exampleAppBin], logFile, env)
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const timer = setTimeout(() => void stopProcess(child, 1_000), timeoutMs)
  await exited
  clearTimeout(timer)
  const output = await readFile(logFile, 'utf8')
  const lines: Record<string, unknown>[] = []
  for (const line of output.split('\n')) {
    try {
      const parsed: unknown = JSON.parse(line)
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) lines.push({ ...parsed })
    } catch {
      // Not JSON: a Node warning on stderr, kept in `output` only.
    }
  }
  return { exitCode: child.exitCode, lines, output }
}
