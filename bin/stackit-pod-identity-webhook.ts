#!/usr/bin/env node
/** Entry point: wires the process edges into the CLI and exits with its code. */
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { main } from '../lib/cli/cli.js'
import { batchedWriter } from '../lib/log.js'
import { readStream } from '../lib/read-stream.js'

// stdin for `mutate` and `validate` is bounded like a request body, so a runaway pipe cannot exhaust memory.
const maxStdinBytes = 64 * 1024 * 1024

// A stuck log pipe must not hold a stopping serve: 5 s fits in the 15 s the 30 s grace leaves after preStop and drain.
const serveOutputDrainMs = 5000

/** Resolves once all written to `stream` so far is handed to the OS, or when writing fails (the reader left). */
const flushed = (stream: NodeJS.WriteStream): Promise<void> =>
  new Promise(resolve => {
    stream.once('error', () => resolve())
    stream.write('', () => resolve())
  })

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
// stdout and stderr on a pipe are asynchronous: exiting before they drain cuts what the reader has not taken yet.
// mutate waits as long as its reader takes (a pager may be slow); serve at most serveOutputDrainMs.
process.exitCode = code
stderr.flush()
const drained = Promise.all([flushed(process.stdout), flushed(process.stderr)])
await (process.argv[2] === 'serve' ? Promise.race([drained, sleep(serveOutputDrainMs)]) : drained)
// Explicit exit: a cut-short drain may leave sockets or timers that would otherwise keep the process alive.
process.exit(code)
