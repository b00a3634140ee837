import t, { type Test } from 'tap'
import { createPrivateKey } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { isWebhookError } from '../../lib/errors.js'
import { secureOptions } from '../../lib/server/listeners.js'
import { createLogger } from '../../lib/log.js'
import { Registry } from '../../lib/metrics.js'
import {
  createTlsReloader,
  judgeRenewal,
  loadTlsPair,
  type TlsPair,
  type TlsReloaderOptions,
} from '../../lib/server/tls-reloader.js'
import { runCli } from '../helpers/webhook-client.js'
import { makeCa, makeMismatchedPair, makeSelfSigned, makeServerCert, type CertFiles } from '../helpers/certs.js'
import { fixturePath } from '../helpers/paths.js'

// One store of real certificates for the whole file; each test copies what it needs into its own directory.
const store = await mkdtemp(join(tmpdir(), 'tls-reloader-certs-'))
t.teardown(() => rm(store, { recursive: true, force: true }))
const ca = await makeCa(store)
const [pairA, pairB, pairC] = await Promise.all(
  [0x0a01, 0x0b02, 0x0c03].map((serial, i) => makeServerCert(store, ca, { name: `pair-${i}`, serial })),
)
const mismatched = await makeMismatchedPair(store, ca, { serial: 0x0bad })
const expired = await makeServerCert(store, ca, {
  name: 'expired',
  serial: 0x0e,
  notBefore: new Date('2020-01-01T00:00:00Z'),
  notAfter: new Date('2021-01-01T00:00:00Z'),
})
const expiredToo = await makeServerCert(store, ca, {
  name: 'expired-too',
  serial: 0x0e2,
  notBefore: new Date('2019-01-01T00:00:00Z'),
  notAfter: new Date('2020-01-01T00:00:00Z'),
})
const day = 24 * 3_600_000
const startedAt = Date.now()
// Valid from two days after start for 40 days; pairA..C (30 days from start) are valid throughout that overlap.
const notYetValid = await makeServerCert(store, ca, {
  name: 'not-yet-valid',
  serial: 0x0f,
  notBefore: new Date(startedAt + 2 * day),
  notAfter: new Date(startedAt + 42 * day),
})
const selfSigned = await makeSelfSigned(store, { serial: 0x5e1f })
// OpenSSL parses it as X.509, but a TLS server refuses to load it (below security level 1).
const weakKey = await makeServerCert(store, ca, { name: 'rsa-512', serial: 0x0512, rsaBits: 512 })
if (!pairA || !pairB || !pairC) throw new Error('certificate setup failed')
const caPem = await readFile(ca.certFile)
const keyPems = await Promise.all([pairA, pairB, pairC, mismatched, weakKey].map(p => readFile(p.keyFile, 'utf8')))

/** A certificate file's PEM blocks as the issuer wrote them: the leaf of pairA, then the CA. */
const leafPem = await readFile(pairA.certFile, 'utf8')
const caBody = caPem
  .toString('utf8')
  .split('\n')
  .filter(l => l.length > 0 && !l.startsWith('-----'))
const pemBlock = (lines: readonly string[], end = true): string =>
  ['-----BEGIN CERTIFICATE-----', ...lines, ...(end ? ['-----END CERTIFICATE-----'] : []), ''].join('\n')
/**
 * Certificate files whose leaf is fine but whose second block is not: X509Certificate reads only the first block,
 * while the TLS server loads them all. `garbage` is the reported case (ERR_OSSL_ASN1_TOO_LONG in createServer).
 */
const brokenChains = {
  garbage: leafPem + pemBlock(['Zm9vYmFyU0VDUkVUTUFSS0VS']),
  truncated: leafPem + pemBlock(caBody.slice(0, Math.ceil(caBody.length / 2))),
  unterminated: leafPem + pemBlock(caBody, false),
}
/** pairC's key with a certificate file whose chain block is corrupt, for renewals that must fail. */
const corruptChain: CertFiles = { ...pairC, certFile: join(store, 'corrupt-chain.crt') }
await writeFile(corruptChain.certFile, (await readFile(pairC.certFile, 'utf8')) + pemBlock(['Zm9vYmFy']))

const metricName = (name: string): string => `stackit_pod_identity_webhook_${name}`

interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

/** A logger that keeps parsed lines and the raw text (to prove no key material is ever written). */
const capture = (): { logger: ReturnType<typeof createLogger>; lines: LogLine[]; raw: () => string } => {
  const text: string[] = []
  const lines: LogLine[] = []
  const logger = createLogger({
    level: 'debug',
    write: line => {
      text.push(line)
      lines.push(JSON.parse(line))
    },
  })
  return { logger, lines, raw: () => text.join('') }
}

/** Fails the test when a private key, or any line of one, shows up in the log output. */
const noKeyMaterial = (t: Test, raw: string): void => {
  t.notMatch(raw, /PRIVATE KEY/, 'no PEM key header in logs')
  for (const pem of keyPems) {
    const body = pem.split('\n').filter(l => l.length > 0 && !l.startsWith('-----'))
    for (const l of body) if (raw.includes(l)) t.fail('a line of a private key was logged')
  }
}

/** Waits for a condition by polling, bounded so a missed reload fails the test instead of hanging it. */
const waitFor = async (what: string, cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 400; i++) {
    if (cond()) return
    await sleep(25)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Plain files, as cert-manager's CSI driver or a hand-made cert dir has them. */
const writePlain = async (dir: string, pair: CertFiles): Promise<void> => {
  await copyFile(pair.certFile, join(dir, 'tls.crt'))
  await copyFile(pair.keyFile, join(dir, 'tls.key'))
}

/**
 * A Secret volume laid out the way the kubelet's atomic writer does it: a timestamped data directory, a `..data`
 * symlink to it, and tls.crt / tls.key symlinks through `..data`. `swap` installs a new pair the same way the
 * kubelet does: new data directory, `..data_tmp` symlink, rename over `..data`, old directory removed.
 */
const kubeletVolume = async (dir: string, first: CertFiles): Promise<{ swap: (pair: CertFiles) => Promise<void> }> => {
  let generation = 0
  let live = ''
  const install = async (pair: CertFiles): Promise<void> => {
    const next = `..2026_11_28_22_00_00.${++generation}`
    await mkdir(join(dir, next))
    await copyFile(pair.certFile, join(dir, next, 'tls.crt'))
    await copyFile(pair.keyFile, join(dir, next, 'tls.key'))
    await symlink(next, join(dir, '..data_tmp'))
    await rename(join(dir, '..data_tmp'), join(dir, '..data'))
    if (live) await rm(join(dir, live), { recursive: true })
    live = next
  }
  await install(first)
  await symlink('..data/tls.crt', join(dir, 'tls.crt'))
  await symlink('..data/tls.key', join(dir, 'tls.key'))
  return { swap: install }
}

/**
 * Options for a reloader on `dir`, with a capturing logger, a fresh registry and a record of onReload calls.
 * Polling and debounce are fast unless `timing` is 'default' (the production values).
 */
const setup = (dir: string, extra: Partial<TlsReloaderOptions> = {}, timing: 'fast' | 'default' = 'fast') => {
  const log = capture()
  const metrics = new Registry()
  const reloaded: TlsPair[] = []
  const options: TlsReloaderOptions = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    logger: log.logger,
    registry: metrics,
    ...(timing === 'fast' ? { pollIntervalMs: 25, debounceMs: 10 } : {}),
    onReload: pair => void reloaded.push(pair),
    ...extra,
  }
  const counts = () => {
    const text = metrics.render()
    const value = (result: string): number => {
      const m = new RegExp(`^${metricName('certificate_reloads_total')}\\{result="${result}"\\} (\\S+)$`, 'm').exec(
        text,
      )
      return Number(m?.[1])
    }
    return { success: value('success'), failure: value('failure') }
  }
  const expirySeconds = (): number => {
    const m = new RegExp(`^${metricName('certificate_expiry_timestamp_seconds')} (\\S+)$`, 'm').exec(metrics.render())
    return Number(m?.[1])
  }
  return { options, log, metrics, reloaded, counts, expirySeconds }
}

t.test('initial load refuses a bad pair with a message naming the file and the problem', async t => {
  const marker = 'Zm9vYmFyU0VDUkVUTUFSS0VS' // must never be echoed back
  type Case = [name: string, arrange: (dir: string) => Promise<void>, file: 'tls.crt' | 'tls.key', message: RegExp]
  const cases: Case[] = [
    [
      'missing certificate',
      d => copyFile(pairA.keyFile, join(d, 'tls.key')),
      'tls.crt',
      /^TLS certificate file \S+ does not exist \(set --cert-dir or --tls-cert-file\)$/,
    ],
    [
      'missing key',
      d => copyFile(pairA.certFile, join(d, 'tls.crt')),
      'tls.key',
      /^TLS key file \S+ does not exist \(set --cert-dir or --tls-key-file\)$/,
    ],
    [
      'dangling kubelet symlinks (..data missing)',
      async d => {
        await symlink('..data/tls.crt', join(d, 'tls.crt'))
        await symlink('..data/tls.key', join(d, 'tls.key'))
      },
      'tls.crt',
      /does not exist/,
    ],
    [
      'certificate path is a directory (unreadable)',
      async d => {
        await mkdir(join(d, 'tls.crt'))
        await copyFile(pairA.keyFile, join(d, 'tls.key'))
      },
      'tls.crt',
      /^TLS certificate file \S+ cannot be read \(EISDIR\)$/,
    ],
    [
      'key path is a directory (unreadable)',
      async d => {
        await copyFile(pairA.certFile, join(d, 'tls.crt'))
        await mkdir(join(d, 'tls.key'))
      },
      'tls.key',
      /^TLS key file \S+ cannot be read \(EISDIR\)$/,
    ],
    [
      'empty certificate',
      async d => {
        await writeFile(join(d, 'tls.crt'), '')
        await copyFile(pairA.keyFile, join(d, 'tls.key'))
      },
      'tls.crt',
      /is not a PEM certificate/,
    ],
    [
      'certificate is garbage, not PEM',
      async d => {
        await writeFile(join(d, 'tls.crt'), marker)
        await copyFile(pairA.keyFile, join(d, 'tls.key'))
      },
      'tls.crt',
      /is not a PEM certificate/,
    ],
    [
      'certificate PEM block with garbage inside',
      async d => {
        await writeFile(join(d, 'tls.crt'), `-----BEGIN CERTIFICATE-----\n${marker}\n-----END CERTIFICATE-----\n`)
        await copyFile(pairA.keyFile, join(d, 'tls.key'))
      },
      'tls.crt',
      /holds a PEM block that is not a valid X\.509 certificate/,
    ],
    [
      'key file holds a certificate',
      async d => {
        await copyFile(pairA.certFile, join(d, 'tls.crt'))
        await copyFile(pairA.certFile, join(d, 'tls.key'))
      },
      'tls.key',
      /is not a PEM private key/,
    ],
    [
      'key PEM block with garbage inside',
      async d => {
        await copyFile(pairA.certFile, join(d, 'tls.crt'))
        await writeFile(join(d, 'tls.key'), `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----\n`)
      },
      'tls.key',
      /is not a valid unencrypted private key/,
    ],
    [
      'encrypted key (no passphrase available)',
      async d => {
        await copyFile(pairA.certFile, join(d, 'tls.crt'))
        const pem = createPrivateKey(await readFile(pairA.keyFile)).export({
          type: 'pkcs8',
          format: 'pem',
          cipher: 'aes-256-cbc',
          passphrase: 'x',
        })
        await writeFile(join(d, 'tls.key'), pem)
      },
      'tls.key',
      /is not a valid unencrypted private key/,
    ],
    [
      'key does not belong to the certificate',
      d => writePlain(d, mismatched),
      'tls.key',
      new RegExp(`does not belong to the certificate in \\S+tls\\.crt \\(serial ${mismatched.serial}\\)`),
    ],
    [
      'key of another certificate from the same CA',
      async d => {
        await copyFile(pairA.certFile, join(d, 'tls.crt'))
        await copyFile(pairB.keyFile, join(d, 'tls.key'))
      },
      'tls.key',
      /does not belong to the certificate/,
    ],
    ...Object.entries(brokenChains).map(
      ([how, pem]): Case => [
        `chain block after the leaf ${how}`,
        async d => {
          await writeFile(join(d, 'tls.crt'), pem)
          await copyFile(pairA.keyFile, join(d, 'tls.key'))
        },
        'tls.crt',
        /^TLS certificate file \S+ holds a corrupt or truncated certificate after the leaf \(PEM block 2 of 2\);/,
      ],
    ),
    [
      'RSA key too small for TLS (parses as X.509)',
      d => writePlain(d, weakKey),
      'tls.crt',
      /^TLS certificate file \S+ with key file \S+ is refused by the TLS server \(ERR_SSL_EE_KEY_TOO_SMALL\); /,
    ],
  ]
  for (const [name, arrange, file, message] of cases) {
    t.test(`${name} → refused`, async t => {
      const dir = t.testdir()
      await arrange(dir)
      const { options, log } = setup(dir)
      const err: unknown = await createTlsReloader(options).then(
        r => (r.close(), undefined),
        (e: unknown) => e,
      )
      if (!isWebhookError(err, 'TLS')) throw new Error(`expected a TLS WebhookError, got ${String(err)}`)
      t.match(err.message, message)
      t.ok(err.message.includes(join(dir, file)), `message names ${file} by its full path`)
      t.notOk(err.message.includes(marker), 'file contents are not echoed')
      t.equal(log.lines.length, 0, 'nothing logged: the caller reports the refusal')
    })
  }
})

t.test('loadTlsPair returns the validated pair', async t => {
  const pair = await loadTlsPair(pairA.certFile, pairA.keyFile)
  t.equal(pair.serial, pairA.serial)
  t.equal(pair.notAfter.getTime(), pairA.notAfter.getTime())
  t.ok(pair.notBefore.getTime() < Date.now())
  t.same(pair.cert, await readFile(pairA.certFile))
  t.same(pair.key, await readFile(pairA.keyFile))
})

t.test('a renewal is judged at the bounds of its validity: installed, or kept out until when', async t => {
  const files = async ({ certFile, keyFile }: CertFiles) => ({
    certFile,
    keyFile,
    cert: await readFile(certFile),
    key: await readFile(keyFile),
  })
  const valid = await loadTlsPair(pairA.certFile, pairA.keyFile)
  const validLonger = await loadTlsPair(notYetValid.certFile, notYetValid.keyFile)
  const [from, until] = [notYetValid.notBefore.getTime(), pairA.notAfter.getTime()]
  type KeptOut = { reason: RegExp; recheckAt: number; refused: string | undefined }
  type Case = [name: string, current: TlsPair, renewal: CertFiles, at: number, expected: 'install' | KeptOut]
  const cases: Case[] = [
    [
      '1 ms before its notBefore → kept out until then',
      valid,
      notYetValid,
      from - 1,
      { reason: /is not valid yet/, recheckAt: from, refused: notYetValid.serial },
    ],
    ['at its notBefore → installed', valid, notYetValid, from, 'install'],
    ['1 ms before its notAfter → installed', validLonger, pairA, until - 1, 'install'],
    [
      'at its notAfter → kept out for good',
      validLonger,
      pairA,
      until,
      { reason: /has expired/, recheckAt: Infinity, refused: pairA.serial },
    ],
    [
      'not a pair → kept out for good',
      valid,
      mismatched,
      startedAt,
      { reason: /does not belong/, recheckAt: Infinity, refused: undefined },
    ],
  ]
  for (const [name, current, renewal, at, expected] of cases) {
    const verdict = judgeRenewal(await files(renewal), current, at)
    if (expected === 'install') {
      t.equal('install' in verdict && verdict.install.serial, renewal.serial, name)
    } else if ('install' in verdict) {
      t.fail(`${name}: installed`)
    } else {
      t.ok(isWebhookError(verdict.reason, 'TLS'), `${name}: a TLS error`)
      t.match(String(verdict.reason), expected.reason, name)
      t.equal(verdict.recheckAt, expected.recheckAt, `${name}: looked at again at ${expected.recheckAt}`)
      t.equal(verdict.refused?.serial, expected.refused, `${name}: the refused pair`)
    }
  }
})

t.test('what start-up accepts, the TLS server serves (blocks it ignores included)', async t => {
  const keyPem = await readFile(pairA.keyFile, 'utf8')
  const junkKey = '-----BEGIN PRIVATE KEY-----\nZm9vYmFy\n-----END PRIVATE KEY-----\n'
  type Case = [name: string, cert: string, key: string]
  const cases: Case[] = [
    ['leaf followed by its CA', leafPem + caPem.toString('utf8'), keyPem],
    ['leaf and CA, CRLF line ends, text between', `${leafPem}issuer: CA\n${caPem}`.replace(/\n/g, '\r\n'), keyPem],
    // OpenSSL takes the first key that decodes, in the check and in the server alike.
    ['key file with a junk key block after the key', leafPem, keyPem + junkKey],
    ['key file with a junk key block before the key', leafPem, junkKey + keyPem],
    ['key file with a junk certificate block after the key', leafPem, keyPem + pemBlock(['Zm9vYmFy'])],
  ]
  for (const [name, cert, key] of cases) {
    t.test(name, async t => {
      const dir = t.testdir({ 'tls.crt': cert, 'tls.key': key })
      const pair = await loadTlsPair(join(dir, 'tls.crt'), join(dir, 'tls.key'))
      // The options production uses (lib/server/listeners.ts); createServer throws on what the check missed.
      const server = https.createServer(secureOptions(pair, 'TLSv1.2'), (_req, res) => res.end('ok'))
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      t.teardown(() => new Promise(resolve => server.close(resolve)))
      const { port } = server.address() as AddressInfo // a listening TCP server always has an AddressInfo
      const serial = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem }, () => {
          resolve(socket.getPeerCertificate().serialNumber)
          socket.end()
        })
        socket.on('error', reject)
      })
      t.equal(serial, pairA.serial)
    })
  }
})

t.test('a valid pair is loaded, logged and exported as metrics', async t => {
  const dir = t.testdir()
  await writePlain(dir, pairA)
  const { options, log, counts, expirySeconds, reloaded } = setup(dir)
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())
  t.equal(r.current().serial, pairA.serial)
  t.same(counts(), { success: 0, failure: 0 }, 'both result series exist before any reload')
  t.equal(expirySeconds(), pairA.notAfter.getTime() / 1000)
  t.same(reloaded, [], 'onReload is not called for the initial pair')
  t.match(log.lines, [
    { level: 'info', msg: 'TLS certificate loaded', serial: pairA.serial, notAfter: pairA.notAfter.toISOString() },
  ])
  noKeyMaterial(t, log.raw())
})

t.test('a self-signed pair is accepted', async t => {
  const dir = t.testdir()
  await writePlain(dir, selfSigned)
  const { options } = setup(dir)
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())
  t.equal(r.current().serial, selfSigned.serial)
})

t.test('validity outside now is served with a warning, not refused', async t => {
  type Case = [name: string, pair: CertFiles, now: (() => Date) | undefined, warning: RegExp]
  const cases: Case[] = [
    ['expired certificate', expired, undefined, /has expired/],
    ['certificate not valid yet', pairA, () => new Date('2000-01-01T00:00:00Z'), /not valid yet/],
  ]
  for (const [name, pair, now, warning] of cases) {
    t.test(`${name} → loaded with a warning`, async t => {
      const dir = t.testdir()
      await writePlain(dir, pair)
      const { options, log } = setup(dir, now ? { currentDate: now } : {})
      const r = await createTlsReloader(options)
      t.teardown(() => r.close())
      t.equal(r.current().serial, pair.serial)
      const warnings = log.lines.filter(l => l.level === 'warn')
      t.equal(warnings.length, 1)
      t.match(warnings[0], { msg: warning, serial: pair.serial })
    })
  }
})

t.test('a renewed pair is swapped in without restart', async t => {
  type Case = [name: string, layout: 'plain' | 'kubelet', trigger: Partial<TlsReloaderOptions>]
  // Each trigger is tested alone by making the other one too slow to matter within the test.
  const watchOnly = { pollIntervalMs: 3_600_000, debounceMs: 50 }
  const pollOnly = { pollIntervalMs: 25, debounceMs: 3_600_000 }
  const cases: Case[] = [
    ['in-place rewrite (cert-manager style), seen by the directory watch', 'plain', watchOnly],
    ['kubelet ..data symlink swap, seen by the directory watch', 'kubelet', watchOnly],
    ['kubelet ..data symlink swap, seen by polling', 'kubelet', pollOnly],
  ]
  for (const [name, layout, trigger] of cases) {
    t.test(name, async t => {
      const dir = t.testdir()
      const swap =
        layout === 'plain' ? async (p: CertFiles) => writePlain(dir, p) : (await kubeletVolume(dir, pairA)).swap
      if (layout === 'plain') await writePlain(dir, pairA)
      const { options, log, counts, expirySeconds, reloaded } = setup(dir, trigger)
      const r = await createTlsReloader(options)
      t.teardown(() => r.close())
      t.equal(r.current().serial, pairA.serial)

      await swap(pairB)
      await waitFor('the first renewal', () => r.current().serial === pairB.serial)
      await swap(pairC)
      await waitFor('the second renewal', () => r.current().serial === pairC.serial)

      t.same(
        reloaded.map(p => p.serial),
        [pairB.serial, pairC.serial],
        'onReload saw each renewal once, in order',
      )
      t.same(r.current().cert, await readFile(pairC.certFile))
      t.same(r.current().key, await readFile(pairC.keyFile))
      t.equal(counts().success, 2)
      t.equal(expirySeconds(), pairC.notAfter.getTime() / 1000)
      t.match(
        log.lines.filter(l => l.msg === 'TLS certificate reloaded'),
        [
          { level: 'info', serial: pairB.serial },
          { level: 'info', serial: pairC.serial },
        ],
      )
      noKeyMaterial(t, log.raw())
    })
  }
})

t.test('a pair rewritten file by file is judged only once complete (no spurious failure)', async t => {
  const dir = t.testdir()
  await writePlain(dir, pairA)
  // Only the watch triggers checks here, and the debounce leaves the test ample time to finish the update.
  const { options, log, counts, reloaded } = setup(dir, { pollIntervalMs: 3_600_000, debounceMs: 300 })
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())

  await copyFile(pairB.certFile, join(dir, 'tls.crt')) // new certificate, old key: not a pair yet
  await waitFor('the half-written update to be noticed', () => log.lines.some(l => l.level === 'debug'))
  t.match(
    log.lines.filter(l => l.level === 'debug'),
    [{ msg: /not a valid pair yet/, reason: /does not belong to the certificate/ }],
  )
  t.equal(r.current().serial, pairA.serial)
  await copyFile(pairB.keyFile, join(dir, 'tls.key'))
  await waitFor('the completed update', () => r.current().serial === pairB.serial)
  t.same(counts(), { success: 1, failure: 0 })
  t.same(
    reloaded.map(p => p.serial),
    [pairB.serial],
  )
  t.equal(log.lines.filter(l => l.level === 'error').length, 0)
})

t.test('a broken renewal keeps the pair in service, is logged once and counted', async t => {
  type Case = [name: string, broken: CertFiles, reason: RegExp]
  const cases: Case[] = [
    ['key of another certificate', mismatched, /does not belong to the certificate/],
    ['corrupt chain block after the leaf', corruptChain, /tls\.crt holds a corrupt or truncated certificate after/],
  ]
  for (const [name, broken, reason] of cases) {
    t.test(name, async t => {
      const dir = t.testdir()
      const volume = await kubeletVolume(dir, pairA)
      const { options, log, counts, reloaded } = setup(dir)
      const r = await createTlsReloader(options)
      t.teardown(() => r.close())

      await volume.swap(broken)
      await waitFor('the failure to be counted', () => counts().failure === 1)
      t.equal(r.current().serial, pairA.serial, 'old pair still in service')
      t.same(reloaded, [], 'the server was not handed the broken pair')
      const errors = log.lines.filter(l => l.level === 'error')
      t.match(errors, [{ msg: /keeping the certificate in service/, reason, serial: pairA.serial }])

      // Many polls see the same broken files meanwhile; they must not count again.
      await sleep(10 * 25)
      await volume.swap(pairB)
      await waitFor('recovery', () => r.current().serial === pairB.serial)
      t.same(counts(), { success: 1, failure: 1 })
      t.equal(log.lines.filter(l => l.level === 'error').length, 1, 'one error line for one broken pair')
      noKeyMaterial(t, log.raw())
    })
  }
})

/** A clock the test moves by hand, handed to the reloader as `now`. */
const manualClock = (start: number): { now: () => Date; set: (ms: number) => void } => {
  let ms = start
  return { now: () => new Date(ms), set: next => void (ms = next) }
}

t.test('a renewal not valid now never replaces a certificate valid now', async t => {
  type Case = [name: string, renewal: CertFiles, problem: string]
  const cases: Case[] = [
    ['expired renewal', expired, 'has expired'],
    ['renewal not valid yet', notYetValid, 'is not valid yet'],
  ]
  for (const [name, renewal, problem] of cases) {
    t.test(`${name} → kept out, logged once with its validity window, counted as a failure`, async t => {
      // A short path, so the whole reason fits in a log field (the logger cuts values at 256 characters).
      const dir = await mkdtemp(join(tmpdir(), 'tls-window-'))
      t.teardown(() => rm(dir, { recursive: true, force: true }))
      const volume = await kubeletVolume(dir, pairA)
      const { options, log, counts, reloaded, expirySeconds } = setup(dir, { currentDate: manualClock(startedAt).now })
      const r = await createTlsReloader(options)
      t.teardown(() => r.close())

      await volume.swap(renewal)
      await waitFor('the renewal to be judged', () => counts().failure + counts().success > 0)
      t.equal(r.current().serial, pairA.serial, 'the valid pair stays in service')
      t.same(reloaded, [], 'the server was not handed the pair')
      t.same(counts(), { success: 0, failure: 1 })
      t.equal(expirySeconds(), pairA.notAfter.getTime() / 1000, 'the expiry gauge still describes the pair in service')
      const errors = log.lines.filter(l => l.level === 'error')
      const window = { newNotBefore: renewal.notBefore.toISOString(), newNotAfter: renewal.notAfter.toISOString() }
      t.match(errors, [
        {
          msg: /keeping the certificate in service/,
          serial: pairA.serial,
          certFile: join(dir, 'tls.crt'),
          newSerial: renewal.serial,
          ...window,
        },
      ])
      const reason = String(errors[0]?.['reason'])
      const start = `TLS certificate file ${join(dir, 'tls.crt')} (serial ${renewal.serial}) ${problem}`
      t.ok(reason.startsWith(start), `reason starts with "${start}"`)
      t.match(reason, `(valid from ${window.newNotBefore} to ${window.newNotAfter})`)

      await sleep(10 * 25) // many polls of the same files: not counted or logged again
      t.same(counts(), { success: 0, failure: 1 })
      t.equal(log.lines.filter(l => l.level === 'error').length, 1)
      await volume.swap(pairB)
      await waitFor('the next valid renewal', () => r.current().serial === pairB.serial)
      t.same(counts(), { success: 1, failure: 1 })
      noKeyMaterial(t, log.raw())
    })
  }
})

t.test('a renewal not valid yet that stays on disk is installed once it is valid', async t => {
  const dir = t.testdir()
  const volume = await kubeletVolume(dir, pairA)
  const clock = manualClock(startedAt)
  const { options, log, counts, reloaded } = setup(dir, { currentDate: clock.now })
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())

  await volume.swap(notYetValid)
  await waitFor('the renewal to be judged', () => counts().failure + counts().success > 0)
  t.equal(r.current().serial, pairA.serial)
  clock.set(notYetValid.notBefore.getTime() - 1)
  await sleep(10 * 25) // polls just before notBefore leave it out, without counting again
  t.equal(r.current().serial, pairA.serial)
  t.same(counts(), { success: 0, failure: 1 })
  clock.set(notYetValid.notBefore.getTime())
  await waitFor('a poll to install it', () => r.current().serial === notYetValid.serial)
  t.same(
    reloaded.map(p => p.serial),
    [notYetValid.serial],
  )
  t.same(counts(), { success: 1, failure: 1 })
  t.match(
    log.lines.filter(l => l.msg === 'TLS certificate reloaded'),
    [{ level: 'info', serial: notYetValid.serial }],
  )
  t.equal(log.lines.filter(l => l.level === 'warn').length, 0, 'valid when installed: no warning')
})

t.test('when the certificate in service is not valid now, any renewal that is a pair is installed', async t => {
  type Case = [name: string, first: CertFiles, renewal: CertFiles, at: number, warning: RegExp | undefined]
  const cases: Case[] = [
    ['expired → valid', expired, pairB, startedAt, undefined],
    ['expired → not valid yet (cannot make things worse)', expired, notYetValid, startedAt, /not valid yet/],
    ['expired → expired (cannot make things worse)', expired, expiredToo, startedAt, /has expired/],
    ['not valid yet → not valid yet (clock behind)', pairA, pairB, Date.parse('2000-01-01'), /not valid yet/],
  ]
  for (const [name, first, renewal, at, warning] of cases) {
    t.test(name, async t => {
      const dir = t.testdir()
      const volume = await kubeletVolume(dir, first)
      const { options, log, counts, reloaded, expirySeconds } = setup(dir, { currentDate: manualClock(at).now })
      const r = await createTlsReloader(options)
      t.teardown(() => r.close())
      const warnedAtStart = log.lines.filter(l => l.level === 'warn').length
      t.equal(warnedAtStart, 1, 'the pair in service was loaded with a warning')

      await volume.swap(renewal)
      await waitFor('the renewal', () => r.current().serial === renewal.serial)
      t.same(
        reloaded.map(p => p.serial),
        [renewal.serial],
      )
      t.same(counts(), { success: 1, failure: 0 })
      t.equal(expirySeconds(), renewal.notAfter.getTime() / 1000)
      const warnings = log.lines.filter(l => l.level === 'warn').slice(warnedAtStart)
      t.match(warnings, warning ? [{ msg: warning, serial: renewal.serial }] : [])
      t.equal(warnings.length, warning ? 1 : 0)
    })
  }
})

t.test('files vanishing mid-update are a failure, and their return a success', async t => {
  const dir = t.testdir()
  await writePlain(dir, pairA)
  const { options, log, counts } = setup(dir)
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())

  await rm(join(dir, 'tls.crt'))
  await waitFor('the failure to be counted', () => counts().failure === 1)
  t.match(
    log.lines.filter(l => l.level === 'error'),
    [{ reason: /tls\.crt does not exist/ }],
  )
  t.equal(r.current().serial, pairA.serial)
  await sleep(10 * 25)
  t.equal(counts().failure, 1, 'still missing is not counted again')

  // Key first, then the certificate renamed into place: no state in between is a new kind of broken, so the
  // failure count below is exact.
  await copyFile(pairB.keyFile, join(dir, 'tls.key'))
  await copyFile(pairB.certFile, join(dir, 'tls.crt.tmp'))
  await rename(join(dir, 'tls.crt.tmp'), join(dir, 'tls.crt'))
  await waitFor('recovery', () => r.current().serial === pairB.serial)
  t.same(counts(), { success: 1, failure: 1 })
})

t.test('a pair the server rejects in onReload stays out of service', async t => {
  const dir = t.testdir()
  const volume = await kubeletVolume(dir, pairA)
  const { options, log, counts } = setup(dir, {
    onReload: pair => {
      if (pair.serial === pairB.serial) throw new Error('setSecureContext refused it')
    },
  })
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())

  await volume.swap(pairB)
  await waitFor('the failure to be counted', () => counts().failure === 1)
  t.equal(r.current().serial, pairA.serial)
  t.match(
    log.lines.filter(l => l.level === 'error'),
    [{ reason: 'the new certificate was rejected by the server', serial: pairA.serial }],
  )

  await volume.swap(pairC)
  await waitFor('the next renewal', () => r.current().serial === pairC.serial)
})

t.test('close() stops watching and polling', async t => {
  const dir = t.testdir()
  const volume = await kubeletVolume(dir, pairA)
  const { options, counts, reloaded } = setup(dir)
  const r = await createTlsReloader(options)
  r.close()
  await volume.swap(pairB)
  await writeFile(join(dir, 'unrelated'), 'x') // one more directory event for a watcher that should be gone
  // Absence can only be shown by waiting: many poll intervals and debounce periods pass here.
  await sleep(20 * 25)
  t.equal(r.current().serial, pairA.serial)
  t.same(reloaded, [])
  t.same(counts(), { success: 0, failure: 0 })
  r.close() // idempotent
})

t.test('an https server hands new connections the renewed certificate (production timings)', async t => {
  const dir = t.testdir()
  const volume = await kubeletVolume(dir, pairA)
  let server: https.Server | undefined
  const { options } = setup(
    dir,
    { onReload: pair => server?.setSecureContext({ cert: pair.cert, key: pair.key }) },
    'default',
  )
  const r = await createTlsReloader(options)
  t.teardown(() => r.close())
  const initial = r.current()
  server = https.createServer({ cert: initial.cert, key: initial.key }, (_req, res) => res.end('ok'))
  await new Promise<void>(resolve => server?.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server?.close(resolve)))
  const { port } = server.address() as AddressInfo // a listening TCP server always has an AddressInfo

  const peerSerial = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem }, () => {
        resolve(socket.getPeerCertificate().serialNumber)
        socket.end()
      })
      socket.on('error', reject)
    })

  t.equal(await peerSerial(), pairA.serial, 'first connection sees the initial certificate')
  await volume.swap(pairB)
  await waitFor('the reloader to pick up the swap', () => r.current().serial === pairB.serial)
  t.equal(await peerSerial(), pairB.serial, 'a new connection sees the renewed certificate')
})

t.test('serve refuses a corrupt chain as a certificate problem before it listens', async t => {
  const dir = t.testdir({ 'tls.crt': brokenChains.garbage, 'tls.key': await readFile(pairA.keyFile, 'utf8') })
  const saFile = fixturePath('serviceaccounts.json')
  const ports = ['--bind-address', '127.0.0.1', '--port', '0', '--health-port', '0', '--metrics-port', '0']
  const r = await runCli(['serve', '--cert-dir', dir, '--service-account', saFile, ...ports])
  t.equal(r.code, 1)
  t.match(r.stderr, `"code":"TLS"`)
  t.match(r.stderr, `TLS certificate file ${join(dir, 'tls.crt')} holds a corrupt or truncated certificate after`)
  t.notMatch(r.stderr, /cannot listen/)
  t.notMatch(r.stderr, /Zm9vYmFy/, 'file contents are not echoed')
})
