/**
 * `stackit-pod-identity-webhook serve`: parses the flags, starts the webhook (lib/server/webhook.ts) and drains it
 * on SIGTERM/SIGINT.
 */
import { isWebhookError, resolveWebhookError, returnWebhookError } from '../errors.js'
import { createLogger } from '../log.js'
import type { Env } from '../env.js'
import { startWebhook } from '../server/webhook.js'
import { parseServeArgs, serveHelp } from './serve-config.js'

/** The process edges `serve` uses; the binary passes the real ones. */
export interface ServeIO {
  readonly env: Env
  stdout(text: string): void
  stderr(text: string): void
  /** Registers a handler for SIGTERM and SIGINT. */
  onSignal(handler: (signal: string) => void): void
}

/** Exit codes of `serve`: stopped cleanly; could not start, drain cut or a second signal; unusable flags. */
const serveExitCodes = { stopped: 0, failed: 1, usage: 2 } as const

/** Runs `serve` until a signal; resolves to the exit code. */
export const runServe = async (argv: readonly string[], io: ServeIO): Promise<number> => {
  const parsed = returnWebhookError(() => parseServeArgs(argv))
  if (isWebhookError(parsed)) {
    io.stderr(`error: ${parsed.message}\n`)
    return serveExitCodes.usage
  }
  if (parsed.help) {
    io.stdout(serveHelp)
    return serveExitCodes.stopped
  }
  const { config } = parsed
  const logger = createLogger({ level: config.logLevel, write: line => io.stderr(line) })
  const webhook = await resolveWebhookError(startWebhook(config, io.env, logger))
  if (isWebhookError(webhook)) {
    logger.error('cannot start', { code: webhook.code, reason: webhook.message })
    return serveExitCodes.failed
  }
  return new Promise<number>(resolve => {
    let signals = 0
    io.onSignal(signal => {
      signals++
      if (signals > 1) {
        logger.warn('second signal, exiting at once', { signal })
        resolve(serveExitCodes.failed)
        return
      }
      logger.info('shutting down', { signal, timeoutMs: config.shutdownTimeoutMs })
      void webhook.shutdown().then(clean => {
        if (clean) logger.info('shut down cleanly')
        else
          logger.warn('shutdown timeout reached, remaining connections were cut', {
            timeoutMs: config.shutdownTimeoutMs,
          })
        resolve(clean ? serveExitCodes.stopped : serveExitCodes.failed)
      })
    })
  })
}
