/**
 * Test helpers for the admission server: an HTTPS request helper; the CLI run in this process through `main` and
 * the webhook started through its composition root; and, where a process boundary is under test, the built binary
 * spawned (a `serve` process's bound ports are read from its "listening" log line).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import https from 'node:https'
import http from 'node:http'
import tls from 'node:tls'
import { main } from '../../lib/cli/cli.js'
import { parseServeArgs } from '../../lib/cli/serve-config.js'
import type { Env } from '../../lib/env.js'
import { createLogger } from '../../lib/log.js'
import { startWebhook, type Webhook } from '../../lib/server/webhook.js'
import { distBin } from './paths.js'

/** The built CLI. */
export const binPath = distBin('stackit-pod-identity-webhook')

/** A response as tests look at it. */
export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** Options of {@link request}. */
export interface RequestOptions {
  port: number
  ca?: Buffer | string
  method?: string
  path?: string
  headers?: Record<string, string | number>
  body?: string | Buffer
  agent?: https.Agent | http.Agent
  plain?: boolean
}

/** One HTTP(S) request to 127.0.0.1; resolves with status, headers and body. */
export const request = (o: RequestOptions): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const lib = o.plain ? http : https
    const req = lib.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: o.port,
        method: o.method ?? 'POST',
        path: o.path ?? '/mutate',
        headers: { 'Content-Type': 'application/json', ...o.headers },
        ...(o.ca ? { ca: o.ca } : {}),
        ...(o.agent ? { agent: o.agent } : {}),
      },
      res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(o.body)
  })

/** A raw TLS connection to the admission port, for requests a well-behaved client would not send. */
export interface RawConnection {
  readonly socket: tls.TLSSocket
  /** Everything the server has sent so far. */
  reply(): string
  /** True once the connection has closed. */
  isClosed(): boolean
  /** Resolves when the connection has closed (by the server or the test). */
  readonly closed: Promise<void>
}

/** Opens a TLS connection to 127.0.0.1 and resolves once the handshake is done. */
export const connectRaw = (port: number, ca: Buffer | string): Promise<RawConnection> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' })
    let reply = ''
    let closed = false
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => (reply += d))
    const done = new Promise<void>(r =>
      socket.on('close', () => {
        closed = true
        r()
      }),
    )
    // Before the handshake an error fails the call; later (a server cutting the connection resets it while the
    // test still writes) the promise is settled already, and `closed` reports the end.
    socket.on('error', reject)
    socket.once('secureConnect', () => resolve({ socket, reply: () => reply, isClosed: () => closed, closed: done }))
  })

/** The head of a `POST /mutate` with JSON content: with a declared length, or chunked when `length` is omitted. */
export const postHead = (length?: number): string =>
  'POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
  `${length === undefined ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`

/** One chunk of a chunked body. */
export const chunk = (data: string | Buffer): string => `${Buffer.byteLength(data).toString(16)}\r\n${String(data)}\r\n`

/** What a finished CLI run printed and how it exited. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * In-memory process edges for `main`: stdin from a string, files from disk; what it prints and its signal handler
 * are kept (`out`, `err`, `signal`), and `onStderr` sees each write to stderr.
 */
const memoryIO = (stdin: string, env: Env, onStderr: (text: string) => void = () => {}) => {
  const io = {
    out: '',
    err: '',
    signal: (_name: string): void => {},
    readStdin: () => Promise.resolve(stdin),
    readFile: (path: string) => readFile(path, 'utf8'),
    stdout: (text: string) => void (io.out += text),
    stderr: (text: string) => {
      io.err += text
      onStderr(text)
    },
    env,
    onSignal: (handler: (signal: string) => void) => void (io.signal = handler),
  }
  return io
}

/** Runs the CLI in this process through `main` with `args`, feeding `stdin`: {@link runCli} without a process. */
export const runMain = async (args: readonly string[], stdin = '', env: Env = {}): Promise<CliRun> => {
  const io = memoryIO(stdin, env)
  const code = await main(args, io)
  return { code, stdout: io.out, stderr: io.err }
}

/** The loopback address and system-chosen ports every test webhook starts with. */
const loopback = ['--bind-address', '127.0.0.1', '--port', '0', '--health-port', '0', '--metrics-port', '0']

/** The bound ports a "listening" log line names. */
const listeningPorts = (line: string): { admission: number; health: number; metrics: number } => {
  const l = JSON.parse(line) as { admissionPort: number; healthPort: number; metricsPort: number }
  return { admission: l.admissionPort, health: l.healthPort, metrics: l.metricsPort }
}

/** `serve` run in this process through `main`; signals are delivered by hand. */
export interface InProcessServe {
  readonly ports: { readonly admission: number; readonly health: number; readonly metrics: number }
  /** Every log line so far. */
  readonly lines: string[]
  /** Delivers a signal to the handler `serve` registered. */
  signal(name: string): void
  /** Resolves with the exit code `main` returns. */
  readonly exited: Promise<number>
}

/** Runs `serve` with `args` through `main` in this process; resolves once it logs "listening", rejects if it ends. */
export const serveInProcess = (args: readonly string[], env: Env = {}): Promise<InProcessServe> =>
  new Promise((resolve, reject) => {
    const lines: string[] = []
    const io = memoryIO('', env, text => {
      const line = text.trimEnd()
      lines.push(line)
      if (!line.includes('"msg":"listening"')) return
      resolve({ ports: listeningPorts(line), lines, signal: name => io.signal(name), exited })
    })
    const exited = main(['serve', ...loopback, ...args], io)
    void exited.then(code => reject(new Error(`serve ended with ${code} before listening: ${lines.join('\n')}`)))
  })

/** A webhook started in this process through the composition root, and its log lines. */
export interface InProcessWebhook extends Webhook {
  readonly lines: string[]
}

/** Starts the webhook in this process from `serve` flags, on 127.0.0.1 with system-chosen ports. */
export const startInProcess = async (flags: readonly string[], env: Env = {}): Promise<InProcessWebhook> => {
  const lines: string[] = []
  const logger = createLogger({ level: 'info', write: line => lines.push(line.trimEnd()) })
  return { ...(await startWebhook(parseServeArgs([...loopback, ...flags]).config, env, logger)), lines }
}

/** Runs the built CLI to completion with `args`, feeding `stdin`. */
export const runCli = (args: readonly string[], stdin: string | Buffer = ''): Promise<CliRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
    child.stdin.on('error', () => {}) // the child may exit before reading everything
    child.stdin.end(stdin)
  })

/** A spawned `serve` process. */
export interface ServeProcess {
  child: ChildProcessWithoutNullStreams
  ports: { admission: number; health: number; metrics: number }
  /** Every stderr line so far (JSON log lines). */
  lines: string[]
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

/** Spawns `serve` with `args`; resolves once it logs "listening", rejects if it exits first. */
export const startServe = (args: readonly string[]): Promise<ServeProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, 'serve', ...loopback, ...args])
    const lines: string[] = []
    let buffered = ''
    const exited = new Promise<number | null>(r => child.on('exit', code => r(code)))
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d: string) => {
      buffered += d
      const parts = buffered.split('\n')
      buffered = parts.pop() ?? ''
      for (const line of parts) {
        lines.push(line)
        if (line.includes('"msg":"listening"')) resolve({ child, ports: listeningPorts(line), lines, exited })
      }
    })
    void exited.then(code =>
      reject(new Error(`serve exited with ${String(code)} before listening: ${lines.join('\n')}${buffered}`)),
    )
  })
