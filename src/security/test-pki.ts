// Test helper: a throw-away PKI built with node-forge (RSA 2048 keys from node:crypto). Makes CAs,
// intermediates and node certificates with chosen names, validity and extensions, as PEM.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface TestCa {
  readonly cert: string;
  readonly key: string;
}

export interface TestCert {
  /** Leaf PEM (with `chain` appended when issued by an intermediate: use `chainPem`). */
  readonly cert: string;
  readonly key: string;
  /** Leaf then intermediates, PEM, what a node puts in its cert_file. */
  readonly chainPem: string;
}

export interface CertOptions {
  readonly cn: string;
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** keyUsage of the leaf; default digitalSignature + keyEncipherment. */
  readonly keyUsage?: { digitalSignature?: boolean; keyEncipherment?: boolean };
  /** extKeyUsage of the leaf; default serverAuth + clientAuth. */
  readonly extKeyUsage?: { serverAuth?: boolean; clientAuth?: boolean; codeSigning?: boolean };
  /** Make an intermediate CA instead of a leaf. */
  readonly ca?: boolean;
}

function rsa(): { publicKey: string; privateKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

const DAY = 86400_000;

/** A self-signed root CA. */
export function makeCa(name: string, opts: { notBefore?: Date; notAfter?: Date } = {}): TestCa {
  const pki = forge.pki;
  const pair = rsa();
  const c = pki.createCertificate();
  c.publicKey = pki.publicKeyFromPem(pair.publicKey);
  c.serialNumber = '01' + randomBytes(8).toString('hex');
  c.validity.notBefore = opts.notBefore ?? new Date(Date.now() - DAY);
  c.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * DAY);
  const subject = [
    { name: 'commonName', value: name },
    { name: 'organizationName', value: 'NovaCron test' },
  ];
  c.setSubject(subject);
  c.setIssuer(subject);
  c.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  c.sign(pki.privateKeyFromPem(pair.privateKey), forge.md.sha256.create());
  return { cert: pki.certificateToPem(c), key: pair.privateKey };
}

/** A certificate signed by `issuer` (a root, or an intermediate made with `ca: true`). */
export function issueCert(issuer: TestCa & { chainPem?: string }, o: CertOptions): TestCert {
  const pki = forge.pki;
  const pair = rsa();
  const c = pki.createCertificate();
  c.publicKey = pki.publicKeyFromPem(pair.publicKey);
  c.serialNumber = '01' + randomBytes(8).toString('hex');
  c.validity.notBefore = o.notBefore ?? new Date(Date.now() - DAY);
  c.validity.notAfter = o.notAfter ?? new Date(Date.now() + 30 * DAY);
  c.setSubject([{ name: 'commonName', value: o.cn }]);
  c.setIssuer(pki.certificateFromPem(issuer.cert).subject.attributes);
  const alt = [
    ...(o.dns ?? []).map((value) => ({ type: 2, value })),
    ...(o.ips ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (o.ca) {
    c.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ]);
  } else {
    c.setExtensions([
      { name: 'basicConstraints', cA: false },
      {
        name: 'keyUsage',
        ...(o.keyUsage ?? { digitalSignature: true, keyEncipherment: true }),
        critical: true,
      },
      { name: 'extKeyUsage', ...(o.extKeyUsage ?? { serverAuth: true, clientAuth: true }) },
      ...(alt.length > 0 ? [{ name: 'subjectAltName', altNames: alt }] : []),
    ]);
  }
  c.sign(pki.privateKeyFromPem(issuer.key), forge.md.sha256.create());
  const cert = pki.certificateToPem(c);
  const upper = issuer.chainPem ?? '';
  return { cert, key: pair.privateKey, chainPem: cert + upper };
}
