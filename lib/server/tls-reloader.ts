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
import type { Logger } from '../log.js'
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
    return new WebhookError(
      'TLS',
      `TLS ${what} file ${file} does not exist (set --cert-dir or ` +
        `--tls-${what === 'certificate' ? 'cert' : 'key'}-file)`,
      { cause: e },
    )
  }
  return new WebhookError('TLS', `TLS ${what} file ${file} cannot be read (${code})`, { cause: e })
}

/** The certificate and key files: their paths, and their contents when read. */
export interface Files {
  readonly certFile: string
  readonly keyFile: string
  readonly cert: Buffer
  readonly key: Buffer
}

// readFile follows symlinks, so ..data swaps are read through.
const readOne = (what: string, file: string): Promise<Buffer> =>
  readFile(file).catch((e: unknown) => {
    throw describeReadError(what, file, e)
  })

const beginCertificate = '-----BEGIN CERTIFICATE-----'

/** Validates raw file contents; the messages name the file and the problem but never quote its contents. */
const parsePair = ({ certFile, keyFile, cert, key }: Files): TlsPair => {
  if (!cert.includes(beginCertificate)) {
    throw new WebhookError(
      'TLS',
      `TLS certificate file ${certFile} is not a PEM certificate (no "BEGIN CERTIFICATE" block)`,
    )
  }
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (e) {
    throw new WebhookError(
      'TLS',
      `TLS certificate file ${certFile} holds a PEM block that is not a valid X.509 certificate`,
      { cause: e },
    )
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
      `TLS key file ${keyFile} does not belong to the certificate in ${certFile} (serial ${x509.serialNumber}); both ` +
        `must come from the same issuance`,
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

/** Where a pair's validity stands at `t` (ms); the warnings at load and the judgement of renewals share its bounds. */
const validity = (pair: TlsPair, t: number): 'valid' | 'expired' | 'not valid yet' =>
  pair.notAfter.getTime() <= t ? 'expired' : pair.notBefore.getTime() > t ? 'not valid yet' : 'valid'

/** A pair to install, or why the files stay out (naming the file, never contents) and when to look at them again. */
export type Verdict =
  | { readonly install: TlsPair }
  | { readonly reason: unknown; readonly refused?: TlsPair; readonly recheckAt: number }

/**
 * Judges renewed file contents read at `t` against the pair in service. Every verifying client (the API server)
 * would refuse a pair not valid now, so it must not replace one they accept; one not valid yet is looked at again
 * from its notBefore, to go into service then (an expired one never is). When the pair in service is not valid now
 * either, the new one cannot make things worse and is installed (with a warning): it may be the fix the operator is
 * rolling out, and clocks can be wrong on either side.
 */
export const judgeRenewal = (files: Files, current: TlsPair, t: number): Verdict => {
  let next: TlsPair
  try {
    next = parsePair(files)
  } catch (reason) {
    return { reason, recheckAt: Infinity }
  }
  const problem = validity(next, t)
  if (problem === 'valid' || validity(current, t) !== 'valid') return { install: next }
  const what = `TLS certificate file ${files.certFile} (serial ${next.serial})`
  const window = `valid from ${next.notBefore.toISOString()} to ${next.notAfter.toISOString()}`
  const message =
    problem === 'expired'
      ? `${what} has expired (${window}); install a renewed certificate`
      : `${what} is not valid yet (${window}); it goes into service then if still in place`
  const recheckAt = problem === 'expired' ? Infinity : next.notBefore.getTime()
  return { reason: new WebhookError('TLS', message), refused: next, recheckAt }
}

/**
 * Reads and validates a certificate/key pair once. Rejects with a `TLS` WebhookError that names the file and what
 * is wrong: missing, unreadable, not PEM, not parseable (the leaf or any chain certificate after it), key and
 * certificate not a pair, or refused by the TLS server's loader. Expiry is not checked here (see
 * {@link createTlsReloader}, which warns).
 */
export const loadTlsPair = async (certFile: string, keyFile: string): Promise<TlsPair> =>
  parsePair(await readBoth(certFile, keyFile))

// One after the other, so that when both files are bad the certificate is always the one reported.
const readBoth = async (certFile: string, keyFile: string): Promise<Files> => ({
  certFile,
  keyFile,
  cert: await readOne('certificate', certFile),
  key: await readOne('key', keyFile),
})

/** Identifies the files' contents without keeping them around. */
const fingerprint = ({ cert, key }: Pick<Files, 'cert' | 'key'>): string =>
  createHash('sha256').update(cert).update('\0').update(key).digest('hex')

/**
 * Watches the files' directories, not the files: a watch on tls.crt follows the symlink to an inode that the
 * kubelet's ..data swap abandons, so it would go quiet after the first rotation. Polling covers a watch that fails.
 */
const watchDirectories = (files: readonly string[], onEvent: () => void, logger: Logger): FSWatcher[] => {
  const watchers: FSWatcher[] = []
  for (const dir of new Set(files.map(file => dirname(file)))) {
    try {
      const w = watch(dir, { persistent: false }, onEvent)
      // Watch errors (inotify limits, vanished mounts) cannot be provoked reliably; polling covers them.
      /* c8 ignore next 4 */
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
  return watchers
}

/**
 * Loads the pair (rejecting like {@link loadTlsPair} when it is unusable), then watches the files' directories
 * and polls them, swapping in each new valid pair. Registers `certificate_reloads_total{result}` and
 * `certificate_expiry_timestamp_seconds` on `registry`. An expired or not-yet-valid certificate is served with a
 * warning, because refusing would turn a late renewal into an outage of every Pod creation. A renewal that is not
 * valid now never replaces a certificate that is: it counts as a failed reload, and a pair not valid yet is
 * installed by the first check after its notBefore if it is still on disk.
 */
export const createTlsReloader = async (options: TlsReloaderOptions): Promise<TlsReloader> => {
  const { certFile, keyFile, logger, debounceMs = defaultDebounceMs } = options
  const now = options.currentDate ?? (() => new Date())
  const reloads = options.registry.counter(
    'certificate_reloads_total',
    'Certificate reload attempts after start, by result.',
  )
  const expiry = options.registry.gauge(
    'certificate_expiry_timestamp_seconds',
    'Expiry (notAfter) of the serving certificate, Unix seconds.',
  )

  const announce = (pair: TlsPair, msg: string): void => {
    const fields = { serial: pair.serial, notAfter: pair.notAfter.toISOString(), certFile }
    logger.info(msg, fields)
    const problem = validity(pair, now().getTime())
    if (problem === 'expired') {
      logger.warn('TLS certificate has expired; clients will reject it until it is renewed', fields)
    } else if (problem === 'not valid yet') {
      const notBefore = pair.notBefore.toISOString()
      logger.warn('TLS certificate is not valid yet; clients will reject it until then', { ...fields, notBefore })
    }
    expiry.set(pair.notAfter.getTime() / 1000)
  }

  const first = await loadTlsPair(certFile, keyFile)
  const state = {
    current: first,
    // The contents (or read error) last judged, good or bad, so a broken pair is reported once rather than on every
    // poll; the judgement holds until `recheckAt` (see Verdict).
    judged: fingerprint(first),
    recheckAt: Infinity,
    // New broken contents seen once and not judged yet ('' for none; see checkOnce).
    suspect: '',
    closed: false,
    // Checks run one after another, so two triggers can never swap pairs out of order.
    queue: Promise.resolve(),
    debounce: undefined as NodeJS.Timeout | undefined,
  }
  // Both series exist from the start so rate() and alerts work before the first renewal.
  for (const result of ['success', 'failure']) reloads.inc({ result }, 0)
  announce(first, 'TLS certificate loaded')

  // Only our own messages are logged: they name files and problems, never key or certificate contents.
  const reasonOf = (e: unknown): string =>
    isWebhookError(e) ? e.message : 'the new certificate was rejected by the server'
  const fail = (e: unknown, refused?: TlsPair): void => {
    reloads.inc({ result: 'failure' })
    const renewal = refused && {
      certFile,
      newSerial: refused.serial,
      newNotBefore: refused.notBefore.toISOString(),
      newNotAfter: refused.notAfter.toISOString(),
    }
    const line = { reason: reasonOf(e), serial: state.current.serial, ...renewal }
    logger.error('TLS certificate reload failed; keeping the certificate in service', line)
  }

  const checkOnce = async (): Promise<void> => {
    const read = await readBoth(certFile, keyFile).then(
      files => ({ files, contents: fingerprint(files) }),
      // Keyed by the error, so a file that stays missing is reported once, not on every poll.
      (reason: unknown) => ({ contents: `unreadable: ${String(reason)}`, verdict: { reason, recheckAt: Infinity } }),
    )
    const t = now().getTime()
    // Checked after the await: close() may have run while the files were read.
    if (state.closed || (read.contents === state.judged && t < state.recheckAt)) return
    const verdict: Verdict = 'files' in read ? judgeRenewal(read.files, state.current, t) : read.verdict
    if ('install' in verdict) {
      Object.assign(state, { judged: read.contents, recheckAt: Infinity })
      try {
        options.onReload?.(verdict.install)
      } catch (e) {
        return fail(e)
      }
      state.current = verdict.install
      reloads.inc({ result: 'success' })
      announce(state.current, 'TLS certificate reloaded')
    } else if (state.suspect !== read.contents) {
      // A writer that replaces the two files one after the other, or a half-written file, can be caught mid-update.
      // New broken contents are therefore only judged when a later check (after the debounce period, or the next
      // poll) still finds them, so that ordinary renewals do not count spurious failures.
      state.suspect = read.contents
      const reason = reasonOf(verdict.reason)
      logger.debug('TLS files changed but are not a valid pair yet; checking again', { reason })
      onEvent() // look again after the debounce period, even when polling is slow
    } else {
      Object.assign(state, { judged: read.contents, recheckAt: verdict.recheckAt })
      fail(verdict.reason, verdict.refused)
    }
  }
  const check = (): void => void (state.queue = state.queue.then(checkOnce))
  const onEvent = (): void => {
    clearTimeout(state.debounce)
    state.debounce = setTimeout(check, debounceMs).unref()
  }

  const watchers = watchDirectories([certFile, keyFile], onEvent, logger)
  const poll = setInterval(check, options.pollIntervalMs ?? defaultPollIntervalMs).unref()

  return {
    current: () => state.current,
    close: () => {
      state.closed = true
      clearInterval(poll)
      clearTimeout(state.debounce)
      for (const w of watchers) w.close()
    },
  }
}
