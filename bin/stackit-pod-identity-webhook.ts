#!/usr/bin/env node
/** Entry point: wires the process edges into the CLI and exits with its code. */
import { readFile } from 'node:fs/promises'
import { main } from '../lib/cli.js'
import { batchedWriter } from '../lib/log.js'
import { readStream } from '../lib/read-stream.js'

// stdin for `mutate` is bounded like a request body, so a runaway pipe cannot exhaust memory.
const maxStdinBytes = 64 * 1024 * 1024

// Log lines are gathered per event-loop turn; whatever is pending is written when the process exits.
const stderr = batchedWriter(text => void process.stderr.write(text))
process.on('exit', stderr.flush)

const code = await main(process.argv.slice(2), {
  readStdin: () => readStream(process.stdin, maxStdinBytes, 'standard input', 'BAD_INPUT_FILE'),
  readFile: path => readFile(path, 'utf8'),
  stdout: text => void process.stdout.write(text),
  stderr: stderr.write,
  env: process.env,
  onSignal: handler => {
    process.on('SIGTERM', handler)
    process.on('SIGINT', handler)
  },
})
// Explicit exit: a cut-short drain may leave sockets or timers that would otherwise keep the process alive.
process.exit(code)
