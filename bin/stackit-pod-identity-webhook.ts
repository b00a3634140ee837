#!/usr/bin/env node
/** Entry point: wires the process edges into the CLI and sets the exit code. */
import { readFile } from 'node:fs/promises'
import { main } from '../lib/cli.js'
import { readStream } from '../lib/read-stream.js'

process.exitCode = await main(process.argv.slice(2), {
  readStdin: () => readStream(process.stdin, 64 * 1024 * 1024, 'standard input'),
  readFile: path => readFile(path, 'utf8'),
  stdout: text => void process.stdout.write(text),
  stderr: text => void process.stderr.write(text),
})
