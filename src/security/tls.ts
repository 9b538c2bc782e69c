// TLS for the REST and gRPC servers. The rule (pure): serving on anything but loopback requires
// TLS. The material (I/O): cert and key from config, or a CA and a server certificate generated
// into `<data_dir>/tls/` on first start (RSA 2048 keys from node:crypto, X.509 built with
// node-forge, loaded only when a certificate has to be made). TLS 1.3 is the minimum everywhere.
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { NovaCronConfig } from '../config/schema.js';
import { writeSecretFile } from './key-store.js';

export const MIN_TLS_VERSION = 'TLSv1.3';
/** Generated server certificates are renewed at start when they expire within this many days. */
export const RENEW_WITHIN_DAYS = 30;

export type TlsSetting = NovaCronConfig['security']['tls']['enabled'];

/** True for addresses only this host can reach: localhost, 127.0.0.0/8, ::1 (and v4-mapped 127.x). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/**
 * Whether the API must serve TLS for `setting` on `host`: `on` always, `auto` whenever the host
 * is not loopback, `off` never — and `off` on a non-loopback host is refused (a config error).
 */
export function tlsRequired(setting: TlsSetting, host: string): boolean {
  const loopback = isLoopbackHost(host);
  if (setting === 'on') return true;
  if (setting === 'auto') return !loopback;
  if (!loopback) {
    throw new NovaCronError(
      ErrorCode.ConfigInvalid,
      `security.tls.enabled is off but api.host ${host} is not loopback: serving beyond this host requires TLS`,
      {
        key: 'security.tls.enabled',
        hint: 'set security.tls.enabled to auto or on, or bind api.host to 127.0.0.1',
      },
    );
  }
  return false;
}

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** CA that signed `cert`; clients trust this (the generated CA, or security.tls.ca_file). */
  readonly ca: string | null;
  readonly certFile: string;
  readonly caFile: string | null;
  /** True when a certificate was generated on this start. */
  readonly generated: boolean;
}

export function generatedTlsDir(dataDir: string): string {
  return join(dataDir, 'tls');
}

async function readConfigured(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new NovaCronError(
      ErrorCode.ConfigInvalid,
      `cannot read ${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { key, cause: err },
    );
  }
}

async function readOptional(path: string): Promise<string | null> {
  return readFile(path, 'utf8').catch(() => null);
}

/** Loads the configured certificate and key, or the generated ones (made now when missing or expiring). */
export async function loadTlsMaterial(
  tls: NovaCronConfig['security']['tls'],
  dataDir: string,
  apiHost: string,
  now: Date = new Date(),
): Promise<TlsMaterial> {
  if (tls.cert_file !== '' || tls.key_file !== '') {
    if (tls.cert_file === '' || tls.key_file === '') {
      throw new NovaCronError(
        ErrorCode.ConfigInvalid,
        'security.tls.cert_file and key_file must be set together',
        {
          key: tls.cert_file === '' ? 'security.tls.cert_file' : 'security.tls.key_file',
        },
      );
    }
    const cert = await readConfigured(tls.cert_file, 'security.tls.cert_file');
    const key = await readConfigured(tls.key_file, 'security.tls.key_file');
    const ca = tls.ca_file === '' ? null : await readConfigured(tls.ca_file, 'security.tls.ca_file');
    return { cert, key, ca, certFile: tls.cert_file, caFile: tls.ca_file || null, generated: false };
  }
  const dir = generatedTlsDir(dataDir);
  const files = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
  };
  const [caCert, caKey, cert, key] = await Promise.all([
    readOptional(files.caCert),
    readOptional(files.caKey),
    readOptional(files.cert),
    readOptional(files.key),
  ]);
  const names = serverNames(apiHost);
  if (caCert && caKey && cert && key && certStillGood(cert, names, now)) {
    return { cert, key, ca: caCert, certFile: files.cert, caFile: files.caCert, generated: false };
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const made = await generateCertificates(names, now, caCert && caKey ? { cert: caCert, key: caKey } : null);
  await writeSecretFile(files.caKey, made.caKey);
  await writeSecretFile(files.caCert, made.caCert);
  await writeSecretFile(files.key, made.key);
  await writeSecretFile(files.cert, made.cert);
  return {
    cert: made.cert,
    key: made.key,
    ca: made.caCert,
    certFile: files.cert,
    caFile: files.caCert,
    generated: true,
  };
}

/** DNS names and IPs the generated server certificate covers. */
export function serverNames(apiHost: string): { dns: string[]; ips: string[] } {
  const dns = new Set(['localhost', hostname()]);
  const ips = new Set(['127.0.0.1', '::1']);
  const h = apiHost.replace(/^\[|\]$/g, '');
  if (isIP(h) && h !== '0.0.0.0' && h !== '::') ips.add(h);
  else if (!isIP(h) && h !== '') dns.add(h);
  return { dns: [...dns], ips: [...ips] };
}

function certStillGood(pem: string, names: { dns: string[]; ips: string[] }, now: Date): boolean {
  try {
    const c = new X509Certificate(pem);
    if (new Date(c.validTo).getTime() - now.getTime() < RENEW_WITHIN_DAYS * 86400_000) return false;
    const san = c.subjectAltName ?? '';
    return (
      names.ips.every((ip) => c.checkIP(ip) !== undefined) && names.dns.every((d) => san.includes(`DNS:${d}`))
    );
  } catch {
    return false;
  }
}

interface GeneratedPems {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

/** Makes a CA (10 years; reused when given) and a server certificate (1 year) signed by it. */
export async function generateCertificates(
  names: { dns: string[]; ips: string[] },
  now: Date,
  existingCa: { cert: string; key: string } | null,
): Promise<GeneratedPems> {
  const { default: forge } = await import('node-forge');
  const pki = forge.pki;
  const rsa = () =>
    generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    });
  const serial = () => '01' + randomBytes(15).toString('hex');
  const years = (n: number) => new Date(now.getTime() + n * 365 * 86400_000);

  let caCertPem: string;
  let caKeyPem: string;
  if (existingCa) {
    caCertPem = existingCa.cert;
    caKeyPem = existingCa.key;
  } else {
    const caPair = rsa();
    const ca = pki.createCertificate();
    ca.publicKey = pki.publicKeyFromPem(caPair.publicKey);
    ca.serialNumber = serial();
    ca.validity.notBefore = new Date(now.getTime() - 60_000);
    ca.validity.notAfter = years(10);
    const caName = [
      { name: 'commonName', value: `NovaCron CA ${hostname()}` },
      { name: 'organizationName', value: 'NovaCron' },
    ];
    ca.setSubject(caName);
    ca.setIssuer(caName);
    ca.setExtensions([
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    ca.sign(pki.privateKeyFromPem(caPair.privateKey), forge.md.sha256.create());
    caCertPem = pki.certificateToPem(ca);
    caKeyPem = caPair.privateKey;
  }
  const caCert = pki.certificateFromPem(caCertPem);
  const serverPair = rsa();
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(serverPair.publicKey);
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = years(1);
  cert.setSubject([{ name: 'commonName', value: names.dns[1] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...names.dns.map((value) => ({ type: 2, value })),
        ...names.ips.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  cert.sign(pki.privateKeyFromPem(caKeyPem), forge.md.sha256.create());
  return { caCert: caCertPem, caKey: caKeyPem, cert: pki.certificateToPem(cert), key: serverPair.privateKey };
}
