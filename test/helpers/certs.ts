/**
 * Real PEM certificates for tests, made with the `openssl` CLI into a directory the caller owns (a tap testdir
 * or an mkdtemp folder). Keys are EC P-256 because they are generated in milliseconds (RSA on request). Validity
 * is set with exact dates (`openssl ca -startdate/-enddate`), so tests can make certificates that are already
 * expired or not yet valid. openssl's bookkeeping (CSR, index, serial file) lives in a scratch folder that is
 * removed again, so the directory holds only `<name>.crt` and `<name>.key`.
 */
import { execFile } from 'node:child_process'
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Where the tests expect openssl; an absolute path so a PATH lookup cannot pick up something else. */
export const opensslPath = '/usr/bin/openssl'

/** A certificate and its key on disk, plus what a TLS client will see of the certificate. */
export interface CertFiles {
  /** Absolute path of the PEM certificate. */
  certFile: string
  /** Absolute path of the PEM (PKCS#8, unencrypted) private key. */
  keyFile: string
  /** Serial number as Node prints it (`X509Certificate#serialNumber`, `getPeerCertificate().serialNumber`). */
  serial: string
  /** Start of validity as written into the certificate. */
  notBefore: Date
  /** End of validity as written into the certificate. */
  notAfter: Date
}

/** Options every maker accepts. */
export interface CertOptions {
  /** File stem: writes `<name>.crt` and `<name>.key` (each maker has its own default). */
  name?: string
  /** Serial number; random 63-bit when omitted. Must be positive. */
  serial?: bigint | number
  /** Start of validity; default one hour ago (tolerates clock skew between test steps). */
  notBefore?: Date
  /** End of validity; default 30 days from now. Put it in the past to get an expired certificate. */
  notAfter?: Date
  /** An RSA key of this many bits instead of EC P-256; 512 makes a key that TLS servers refuse as too small. */
  rsaBits?: number
}

/** Options for certificates that a TLS server presents. */
export interface ServerCertOptions extends CertOptions {
  /** subjectAltName DNS entries; default `['localhost']`. The first one is also the subject CN. */
  dnsNames?: readonly string[]
  /** subjectAltName IP entries; default `['127.0.0.1', '::1']`. */
  ips?: readonly string[]
}

const hour = 3_600_000
const day = 24 * hour

/** `YYYYMMDDHHMMSSZ`, the GeneralizedTime form `openssl ca -startdate/-enddate` accepts. */
const asn1Time = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')

const serialHex = (serial: bigint | number | undefined): string => {
  // Random default: 1 … 2^62, so it is positive and fits the 20-byte limit on certificate serials.
  const n = serial === undefined ? (randomBytes(8).readBigUInt64BE() >> 2n) + 1n : BigInt(serial)
  if (n <= 0n) throw new RangeError(`certificate serial must be positive, got ${n}`)
  const hex = n.toString(16)
  return hex.length % 2 === 0 ? hex : `0${hex}` // openssl's serial file wants whole bytes
}

const extensions = (kind: 'ca' | 'server', options: ServerCertOptions): string[] => {
  if (kind === 'ca') {
    return [
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
    ]
  }
  const san = [
    ...(options.dnsNames ?? ['localhost']).map(n => `DNS:${n}`),
    ...(options.ips ?? ['127.0.0.1', '::1']).map(ip => `IP:${ip}`),
  ]
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    'subjectKeyIdentifier = hash',
    ...(san.length > 0 ? [`subjectAltName = ${san.join(', ')}`] : []),
  ]
}

/** Runs openssl; on failure the error carries openssl's stderr, which names the bad option or value. */
const openssl = (args: readonly string[]): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile(opensslPath, args, (error, _stdout, stderr) => {
      if (error) reject(new Error(`openssl ${args.join(' ')} failed: ${stderr.trim()}`, { cause: error }))
      else resolve()
    })
  })

/** Makes a fresh key in PKCS#8 PEM: EC P-256, or RSA with `rsaBits` bits. */
const newKey = (keyFile: string, rsaBits?: number): Promise<void> =>
  openssl(
    rsaBits === undefined
      ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]
      : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${rsaBits}`, '-out', keyFile],
  )

/**
 * The one signing path: new key, CSR, then `openssl ca` (self-signed when `issuer` is undefined) with exact
 * validity dates and the chosen serial.
 */
const issue = async (
  dir: string,
  kind: 'ca' | 'server',
  issuer: CertFiles | undefined,
  options: ServerCertOptions,
  defaultName: string,
): Promise<CertFiles> => {
  const name = options.name ?? defaultName
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  const now = Date.now()
  const notBefore = options.notBefore ?? new Date(now - hour)
  const notAfter = options.notAfter ?? new Date(now + 30 * day)
  const commonName = options.dnsNames?.[0] ?? (kind === 'ca' ? `${name} test CA` : 'localhost')
  const work = await mkdtemp(join(dir, `.openssl-${name}-`))
  try {
    const config = join(work, 'openssl.cnf')
    await writeFile(join(work, 'index.txt'), '')
    await writeFile(join(work, 'serial'), `${serialHex(options.serial)}\n`)
    await writeFile(
      config,
      [
        '[ca]',
        'default_ca = ca_default',
        '[ca_default]',
        `database = ${join(work, 'index.txt')}`,
        `serial = ${join(work, 'serial')}`,
        `new_certs_dir = ${work}`,
        'default_md = sha256',
        'policy = policy_any',
        'unique_subject = no',
        'x509_extensions = ext',
        '[policy_any]',
        'commonName = supplied',
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        `CN = ${commonName}`,
        '[ext]',
        ...extensions(kind, options),
        '',
      ].join('\n'),
    )
    const csr = join(work, 'request.csr')
    await newKey(keyFile, options.rsaBits)
    await openssl(['req', '-new', '-config', config, '-key', keyFile, '-out', csr])
    await openssl([
      'ca',
      '-batch',
      '-notext',
      '-config',
      config,
      '-in',
      csr,
      '-out',
      certFile,
      '-startdate',
      asn1Time(notBefore),
      '-enddate',
      asn1Time(notAfter),
      ...(issuer ? ['-cert', issuer.certFile, '-keyfile', issuer.keyFile] : ['-selfsign', '-keyfile', keyFile]),
    ])
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  const x509 = new X509Certificate(await readFile(certFile))
  const validity = { notBefore: new Date(x509.validFrom), notAfter: new Date(x509.validTo) }
  return { certFile, keyFile, serial: x509.serialNumber, ...validity }
}

/**
 * Makes a self-signed certificate authority (`ca.crt`, `ca.key` by default) for signing server certificates
 * with {@link makeServerCert}. Pass its `certFile` as a TLS client's `ca` to verify those certificates.
 */
export const makeCa = (dir: string, options: CertOptions = {}): Promise<CertFiles> =>
  issue(dir, 'ca', undefined, options, 'ca')

/**
 * Makes a server certificate signed by `ca` (`server.crt`, `server.key` by default), valid for `localhost`,
 * `127.0.0.1` and `::1` unless `dnsNames`/`ips` say otherwise. Choose `serial` to tell rotations apart.
 */
export const makeServerCert = (dir: string, ca: CertFiles, options: ServerCertOptions = {}): Promise<CertFiles> =>
  issue(dir, 'server', ca, options, 'server')

/**
 * Makes a self-signed server certificate (`self-signed.crt`, `self-signed.key` by default), the kind a
 * developer uses without a CA. Clients trust it by passing the certificate itself as their `ca`.
 */
export const makeSelfSigned = (dir: string, options: ServerCertOptions = {}): Promise<CertFiles> =>
  issue(dir, 'server', undefined, options, 'self-signed')

/**
 * Makes a pair that does NOT belong together (`mismatched.crt`, `mismatched.key` by default): a valid
 * certificate signed by `ca`, and a freshly generated key that is not the certificate's. `serial` and
 * `notAfter` describe the certificate.
 */
export const makeMismatchedPair = async (
  dir: string,
  ca: CertFiles,
  options: ServerCertOptions = {},
): Promise<CertFiles> => {
  const pair = await issue(dir, 'server', ca, options, 'mismatched')
  await newKey(pair.keyFile, options.rsaBits) // overwrite the certificate's key with an unrelated one
  return pair
}
