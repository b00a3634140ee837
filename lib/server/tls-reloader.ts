/**
 * Loads the serving certificate and key, refuses to start on a bad pair, and swaps in renewed pairs without a
 * restart. Renewals arrive two ways: the kubelet replaces a mounted Secret by atomically renaming a new `..data`
 * symlink over the old one (tls.crt → ..data/tls.crt), and tools such as cert-manager's CSI driver rewrite the
 * files in place. A pair that fails validation never replaces the one in service.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createSecureContext } from 'node:tls'
import { WebhookError, errorCode, isWebhookError } from '../errors.js'
import type { LogFields, Logger } from '../log.js'
import type { Registry } from '../metrics.js'

/** A validated certificate and key, ready for `tls.createSecureContext` / `server.setSecureContext`. */
export interface TlsPair {
  /** PEM certificate file contents (the leaf, possibly followed by its chain). */
  readonly cert: Buffer
  /** PEM private key file contents. Never log this. */
  readonly key: Buffer
  /** Serial number of the leaf certificate, hex as Node prints it. */
  readonly serial: string
  /** Start of the leaf certificate's validity. */
  readonly notBefore: Date
  /** End of the leaf certificate's validity. */
  readonly notAfter: Date
}

/** What {@link createTlsReloader} needs. */
export interface TlsReloaderOptions {
  /** Path of the PEM certificate (usually `<cert-dir>/tls.crt`; may be a symlink). */
  certFile: string
  /** Path of the PEM private key (usually `<cert-dir>/tls.key`; may be a symlink). */
  keyFile: string
  logger: Logger
  /** Registry for the reload counter and expiry gauge; one reloader per registry. */
  registry: Registry
  /** How often the files are re-read in case the directory watch missed an event; default 5000 ms. */
  pollIntervalMs?: number
  /** Quiet time after the last directory event before the files are read; default 200 ms. */
  debounceMs?: number
  /**
   * Called with each new valid pair before it becomes `current()`, typically to run `server.setSecureContext`.
   * If it throws, the new pair is treated as broken and the previous one stays in service.
   * Not called for the initial pair.
   */
  onReload?: (pair: TlsPair) => void
  /** Clock for the expiry warning; default the system clock. */
  currentDate?: () => Date
}

/** A running reloader. */
export interface TlsReloader {
  /** The pair in service: the initial one, or the last renewal that passed validation. */
  current(): TlsPair
  /** Stops watching and polling; no timer or watcher is left behind. */
  close(): void
}

// Five seconds of polling plus the read keeps rotation visible well within the 10 s the server promises even on
// filesystems where fs.watch reports nothing (some network and overlay mounts).
const defaultPollIntervalMs = 5000
// The kubelet's swap is a burst (new timestamped dir, ..data_tmp symlink, rename, old dir removed): read once after it.
const defaultDebounceMs = 200

const describeReadError = (what: string, file: string, e: unknown): WebhookError => {
  const code = errorCode(e) // fs/promises rejects with an ErrnoException
  if (code === 'ENOENT') {
    return new WebhookError('TLS', `TLS ${what} file ${file} does not exist (set --cert-dir or --tls-${what === 'certificate' ? 'cert' : 'key'}-file)`, { cause: e })
  }
  return new WebhookError('TLS', `TLS ${what} file ${file} cannot be read (${code})`, { cause: e })
}

const readOne = async (what: string, file: string): Promise<Buffer> => {
  try {
    return await readFile(file) // follows symlinks, so ..data swaps are read through
  } catch (e) {
    throw describeReadError(what, file, e)
  }
}

const beginCertificate = '-----BEGIN CERTIFICATE-----'

/** Validates raw file contents; the messages name the file and the problem but never quote its contents. */
const parsePair = (certFile: string, keyFile: string, cert: Buffer, key: Buffer): TlsPair => {
  if (!cert.includes(beginCertificate)) {
    throw new WebhookError('TLS', `TLS certificate file ${certFile} is not a PEM certificate (no "BEGIN CERTIFICATE" block)`)
  }
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (e) {
    throw new WebhookError('TLS', `TLS certificate file ${certFile} holds a PEM block that is not a valid X.509 certificate`, { cause: e })
  }
  // X509Certificate reads only the leaf, but the TLS server loads every block: a corrupt chain would only
  // surface when the server starts, or be handed to it on reload.
  const blocks = cert.toString('latin1').split(beginCertificate).slice(1)
  for (const [i, block] of blocks.entries()) {
    if (i === 0) continue // the leaf, parsed above
    try {
      new X509Certificate(beginCertificate + block)
    } catch (e) {
      const where = `after the leaf (PEM block ${i + 1} of ${blocks.length})`
      const message = `TLS certificate file ${certFile} holds a corrupt or truncated certificate ${where}`
      throw new WebhookError('TLS', `${message}; replace it with the complete chain as issued`, { cause: e })
    }
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new WebhookError('TLS', `TLS key file ${keyFile} is not a PEM private key (no "BEGIN … PRIVATE KEY" block)`)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(key)
  } catch (e) {
    // Encrypted keys land here too: the server has no passphrase to offer.
    throw new WebhookError('TLS', `TLS key file ${keyFile} is not a valid unencrypted private key`, { cause: e })
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new WebhookError(
      'TLS',
      `TLS key file ${keyFile} does not belong to the certificate in ${certFile} (serial ${x509.serialNumber}); both must come from the same issuance`,
    )
  }
  try {
    // The server's own loader is the final word (key size and signature strength, anything parsed differently).
    createSecureContext({ cert, key })
  } catch (e) {
    const code = errorCode(e) // OpenSSL's, e.g. ERR_SSL_EE_KEY_TOO_SMALL; never contents
    const message = `TLS certificate file ${certFile} with key file ${keyFile} is refused by the TLS server (${code})`
    const hint = 'the usual causes are a key that is too small or a weak signature algorithm'
    throw new WebhookError('TLS', `${message}; ${hint}`, { cause: e })
  }
  return { cert, key, serial: x509.serialNumber, notAfter: new Date(x509.validTo), notBefore: new Date(x509.validFrom) }
}

/** True when clients accept the pair's validity at `t` (ms); the bounds match the warnings at load. */
const validAt = (pair: TlsPair, t: number): boolean => pair.notBefore.getTime() <= t && t < pair.notAfter.getTime()

/** Why a pair cannot be installed at `t` over one that is valid then; names the file and the window, not contents. */
const notValidNow = (certFile: string, pair: TlsPair, t: number): WebhookError => {
  const window = `valid from ${pair.notBefore.toISOString()} to ${pair.notAfter.toISOString()}`
  const what = `TLS certificate file ${certFile} (serial ${pair.serial})`
  return pair.notAfter.getTime() <= t
    ? new WebhookError('TLS', `${what} has expired (${window}); install a renewed certificate`)
    : new WebhookError('TLS', `${what} is not valid yet (${window}); it goes into service then if still in place`)
}

/**
 * Reads and validates a certificate/key pair once. Rejects with a `TLS` WebhookError that names the file and what
 * is wrong: missing, unreadable, not PEM, not parseable (the leaf or any chain certificate after it), key and
 * certificate not a pair, or refused by the TLS server's loader. Expiry is not checked here (see
 * {@link createTlsReloader}, which warns).
 */
export const loadTlsPair = async (certFile: string, keyFile: string): Promise<TlsPair> => {
  const { cert, key } = await readBoth(certFile, keyFile)
  return parsePair(certFile, keyFile, cert, key)
}

// One after the other, so that when both files are bad the certificate is always the one reported.
const readBoth = async (certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> => ({
  cert: await readOne('certificate', certFile),
  key: await readOne('key', keyFile),
})

/**
 * Loads the pair (rejecting like {@link loadTlsPair} when it is unusable), then watches the files' directories
 * and polls them, swapping in each new valid pair. Registers `certificate_reloads_total{result}` and
 * `certificate_expiry_timestamp_seconds` on `registry`. An expired or not-yet-valid certificate is served with a
 * warning, because refusing would turn a late renewal into an outage of every Pod creation. A renewal that is not
 * valid now never replaces a certificate that is: it counts as a failed reload, and a pair not valid yet is
 * installed by the first check after its notBefore if it is still on disk.
 */
export const createTlsReloader = async (options: TlsReloaderOptions): Promise<TlsReloader> => {
  const { certFile, keyFile, logger } = options
  const now = options.currentDate ?? (() => new Date())
  const reloads = options.registry.counter('certificate_reloads_total', 'Certificate reload attempts after start, by result.')
  const expiry = options.registry.gauge('certificate_expiry_timestamp_seconds', 'Expiry (notAfter) of the serving certificate, Unix seconds.')

  const fingerprint = (cert: Buffer, key: Buffer): string =>
    createHash('sha256').update(cert).update('\0').update(key).digest('hex')

  const announce = (pair: TlsPair, msg: string): void => {
    const fields = { serial: pair.serial, notAfter: pair.notAfter.toISOString(), certFile }
    logger.info(msg, fields)
    const t = now().getTime()
    if (pair.notAfter.getTime() <= t) logger.warn('TLS certificate has expired; clients will reject it until it is renewed', fields)
    else if (pair.notBefore.getTime() > t) logger.warn('TLS certificate is not valid yet; clients will reject it until then', { ...fields, notBefore: pair.notBefore.toISOString() })
    expiry.set(pair.notAfter.getTime() / 1000)
  }

  let current = await loadTlsPair(certFile, keyFile)
  // Content of the last pair looked at, good or bad, so a broken pair is reported once rather than on every poll;
  // one refused only for not being valid yet is looked at again from `recheckAt` (its notBefore) on.
  let seen = fingerprint(current.cert, current.key)
  let recheckAt = Infinity
  const see = (state: string, until = Infinity): void => {
    seen = state
    recheckAt = until
  }
  const judged = (state: string): boolean => state === seen && now().getTime() < recheckAt
  // Both series exist from the start so rate() and alerts work before the first renewal.
  reloads.inc({ result: 'success' }, 0)
  reloads.inc({ result: 'failure' }, 0)
  announce(current, 'TLS certificate loaded')

  let closed = false
  // Only our own messages are logged: they name files and problems, never key or certificate contents.
  const reasonOf = (e: unknown): string => (isWebhookError(e) ? e.message : 'the new certificate was rejected by the server')
  const fail = (e: unknown, fields: LogFields = {}): void => {
    reloads.inc({ result: 'failure' })
    const line = { reason: reasonOf(e), serial: current.serial, ...fields }
    logger.error('TLS certificate reload failed; keeping the certificate in service', line)
  }

  // A writer that replaces the two files one after the other, or a half-written file, can be caught mid-update.
  // A new broken state is therefore only judged when a later check (after the debounce period, or the next poll)
  // still finds it, so that ordinary renewals do not count spurious failures.
  let suspect: string | undefined
  // `refused` describes a pair that parsed but is not valid now: its window is logged, and it is looked at again
  // from its notBefore on.
  const reject = (state: string, e: unknown, refused?: TlsPair): void => {
    if (suspect !== state) {
      suspect = state
      logger.debug('TLS files changed but are not a valid pair yet; checking again', { reason: reasonOf(e) })
      onEvent() // look again after the debounce period, even when polling is slow
      return
    }
    // A pair not valid yet becomes valid at its notBefore and should then go into service; an expired one never does.
    const notBefore = refused?.notBefore.getTime() ?? Infinity
    see(state, notBefore > now().getTime() ? notBefore : Infinity)
    fail(e, refused ? {
      certFile,
      newSerial: refused.serial,
      newNotBefore: refused.notBefore.toISOString(),
      newNotAfter: refused.notAfter.toISOString(),
    } : {})
  }

  const checkOnce = async (): Promise<void> => {
    let files: { cert: Buffer; key: Buffer }
    try {
      files = await readBoth(certFile, keyFile)
    } catch (e) {
      // Keyed by the error, so a file that stays missing is reported once, not on every poll.
      const state = `unreadable: ${String(e)}`
      if (judged(state) || closed) return
      reject(state, e)
      return
    }
    const state = fingerprint(files.cert, files.key)
    // Checked after the await: close() may have run while the files were read.
    if (judged(state) || closed) return
    let next: TlsPair
    try {
      next = parsePair(certFile, keyFile, files.cert, files.key)
    } catch (e) {
      reject(state, e)
      return
    }
    const t = now().getTime()
    // Every verifying client (the API server) would refuse the new pair, so it must not replace one they accept.
    // When the pair in service is not valid now either, the new one cannot make things worse and is installed
    // (announce() warns): it may be the fix the operator is rolling out, and clocks can be wrong on either side.
    if (validAt(current, t) && !validAt(next, t)) {
      reject(state, notValidNow(certFile, next, t), next)
      return
    }
    see(state)
    try {
      options.onReload?.(next)
    } catch (e) {
      fail(e)
      return
    }
    current = next
    reloads.inc({ result: 'success' })
    announce(current, 'TLS certificate reloaded')
  }

  // Checks run one after another, so two triggers can never swap pairs out of order.
  let queue = Promise.resolve()
  const check = (): void => {
    queue = queue.then(checkOnce)
  }

  const debounceMs = options.debounceMs ?? defaultDebounceMs
  let debounce: NodeJS.Timeout | undefined
  const onEvent = (): void => {
    clearTimeout(debounce)
    debounce = setTimeout(check, debounceMs).unref()
  }

  // Watch the directories, not the files: a watch on tls.crt follows the symlink to an inode that the kubelet's
  // ..data swap abandons, so it would go quiet after the first rotation.
  const watchers: FSWatcher[] = []
  for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
    try {
      const w = watch(dir, { persistent: false }, onEvent)
      /* c8 ignore next 4: watch errors (inotify limits, vanished mounts) cannot be provoked reliably; polling covers them */
      w.on('error', e => {
        logger.warn('TLS certificate directory watch failed; relying on polling', { dir, reason: e.message })
        w.close()
      })
      watchers.push(w)
      /* c8 ignore next 3: same as above, for a watch that cannot even start; polling covers it */
    } catch (e) {
      logger.warn('TLS certificate directory cannot be watched; relying on polling', { dir, reason: String(e) })
    }
  }
  const poll = setInterval(check, options.pollIntervalMs ?? defaultPollIntervalMs).unref()

  return {
    current: () => current,
    close: () => {
      closed = true
      clearInterval(poll)
      clearTimeout(debounce)
      for (const w of watchers) w.close()
    },
  }
}
