/**
 * Child processes and temporary folders of the end-to-end tier that must not outlive the test process: etcd,
 * kube-apiserver and the webhook are started here with their output in log files, stopped with SIGTERM then
 * SIGKILL, and killed (folders removed) on any exit, including a crash, a tap timeout or Ctrl-C.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'

// Everything started here is tracked so that an exit of any kind (crash, tap timeout, Ctrl-C) ends it.
const liveProcesses = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let exitHooked = false

const killEverything = (): void => {
  for (const child of liveProcesses) child.kill('SIGKILL')
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true })
}

/** Removes `dir` on any exit of this process unless {@link untrackDir} was called first. */
export const trackDir = (dir: string): void => {
  hookExit()
  liveDirs.add(dir)
}

/** Forgets a folder that its owner removed itself. */
export const untrackDir = (dir: string): void => {
  liveDirs.delete(dir)
}

const hookExit = (): void => {
  if (exitHooked) return
  exitHooked = true
  process.once('exit', killEverything)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killEverything()
      // Leave the signal's meaning to whoever else listens (tap does); alone, die of it as if unhandled.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    })
  }
}

// util-linux's setpriv makes the kernel SIGKILL the child when this process dies, even by SIGKILL, where no
// exit handler runs. Without it (non-Linux), the exit and signal handlers above are the only safety net.
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find(p => existsSync(p))

/**
 * Starts a program with its output appended to `logFile`, tracked so that it dies with this process. `env` is
 * added to a minimal environment (PATH only).
 */
export const startProcess = (
  program: string,
  args: readonly string[],
  logFile: string,
  env: Readonly<Record<string, string>> = {},
): ChildProcess => {
  hookExit()
  const fd = openSync(logFile, 'a', 0o600)
  try {
    const [command, argv] =
      setpriv === undefined ? [program, args] : [setpriv, ['--pdeathsig', 'KILL', '--', program, ...args]]
    // A minimal environment: etcd reads ETCD_* variables as flags, and proxy variables would divert the API
    // server's calls to the webhook on 127.0.0.1.
    const child = spawn(command, argv, {
      stdio: ['ignore', fd, fd],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    })
    liveProcesses.add(child)
    child.once('exit', () => liveProcesses.delete(child))
    return child
  } finally {
    closeSync(fd)
  }
}

/** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
export const stopProcess = async (child: ChildProcess, graceMs: number): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * Ports the kernel hands out for port 0, held open together so they are distinct. Another process may still take
 * one between here and the program's bind; TLS with the run's CA makes such a mix-up fail loudly, not silently.
 */
export const freePorts = async (count: number): Promise<number[]> => {
  const servers: Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', () => resolve())
      })
    }
    return servers.map(s => (s.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map(s => new Promise(resolve => s.close(resolve))))
  }
}

/** The last `lines` lines of a log file (or a note that there is none), for failure diagnostics. */
export const logTail = async (file: string, lines: number): Promise<string> => {
  try {
    return (await readFile(file, 'utf8'))
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
  } catch {
    return `(no log at ${file})`
  }
}
