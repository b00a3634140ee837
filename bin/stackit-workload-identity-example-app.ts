#!/usr/bin/env node
/**
 * Entry point of the example app: reads the process environment, runs the example once, sets the exit code.
 * All log lines (JSON, one per line) go to stdout, errors included: it is the Job's only output, and one stream
 * keeps the lines in order for `kubectl logs` and `| jq`.
 */
import { runExampleApp } from '../lib/workload-identity/example-app.js'

process.exitCode = await runExampleApp({ env: process.env, write: line => void process.stdout.write(line) })
