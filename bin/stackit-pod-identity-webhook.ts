#!/usr/bin/env node
/** Entry point: wires the process edges into the CLI and exits with its code. */
import { readFile } from 'node:fs/promises'
import { main } from '../lib/cli.js'
import { readStream } from '../lib/read-stream.js'

// stdin for `mutate` is bounded like a request body, so a runaway pipe cannot exhaust memory.
const maxStdinBytes = 64 * 1024 * 1024

const code = await main(process.argv.slice(2), {
  readStdin: () => readStream(process.stdin, maxStdinBytes, 'standard input'),
  readFile: path => readFile(path, 'utf8'),
  stdout: text => void process.stdout.write(text),
  stderr: text => void process.stderr.write(text),
  env: process.env,
  onSignal: handler => {
    process.on('SIGTERM', handler)
    process.on('SIGINT', handler)
  },
})
// Explicit exit: a cut-short drain may leave sockets or timers that would otherwise keep the process alive.
process.exit(code)
