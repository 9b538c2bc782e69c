// Node certificates signed by the cluster CA, for peer authentication outside TLS (the DWCP
// handshake): load a node's chain and key, verify a peer's chain to the trusted CA (signatures,
// issuer names, validity dates, basic constraints, key usage, extended key usage, expected name),
// and sign / verify handshake transcripts with the certificate's key (RSA-PSS, ECDSA or EdDSA).
// Every failure is a PeerAuthError whose `reason` names the cause.
import {
  X509Certificate,
  constants,
  createPrivateKey,
  sign,
  verify,
  type KeyObject,
  type SignKeyObjectInput,
  type VerifyKeyObjectInput,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ConfigError, ErrorCode, NovaCronError } from '../errors.js';

/** Why a peer was not authenticated. */
export type PeerAuthReason =
  | 'token_mismatch'
  | 'missing_certificate'
  | 'bad_certificate'
  | 'unknown_ca'
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'certificate_usage'
  | 'wrong_peer_name'
  | 'bad_signature'
  | 'auth_mode_mismatch';

export const PEER_AUTH_REASONS: ReadonlySet<string> = new Set<PeerAuthReason>([
  'token_mismatch',
  'missing_certificate',
  'bad_certificate',
  'unknown_ca',
  'certificate_expired',
  'certificate_not_yet_valid',
  'certificate_usage',
  'wrong_peer_name',
  'bad_signature',
  'auth_mode_mismatch',
]);

const HINTS: Record<PeerAuthReason, string> = {
  token_mismatch: 'both ends must use the same cluster.join_token',
  missing_certificate:
    'the peer must present a certificate signed by the cluster CA (security.tls.cert_file/key_file, or --cert/--key)',
  bad_certificate: 'the certificate could not be parsed or its chain is malformed',
  unknown_ca: 'both ends must trust the CA that signed the other (security.tls.ca_file, or --ca)',
  certificate_expired: 'renew the expired certificate',
  certificate_not_yet_valid: 'check the clocks of both hosts, or wait until the certificate becomes valid',
  certificate_usage:
    'the leaf needs keyUsage digitalSignature (when present) and extKeyUsage serverAuth or clientAuth (when present); CAs need cA:true',
  wrong_peer_name: 'the certificate must name the peer (SAN DNS/IP, or CN without DNS SANs)',
  bad_signature: 'the handshake was tampered with or replayed, or the key does not match the certificate',
  auth_mode_mismatch: 'set dwcp.auth so both ends share a method (token, ca or token_or_ca)',
};

/** A peer failed authentication; `reason` says why (also in `details.reason`). */
export class PeerAuthError extends NovaCronError {
  readonly reason: PeerAuthReason;
  /** True when the peer reported the failure (it refused us), false when we refused the peer. */
  readonly byPeer: boolean;
  constructor(
    reason: PeerAuthReason,
    message: string,
    options: { hint?: string; cause?: unknown; byPeer?: boolean } = {},
  ) {
    super(ErrorCode.Unauthenticated, message, {
      hint: options.hint ?? HINTS[reason],
      details: { reason },
      cause: options.cause,
    });
    this.reason = reason;
    this.byPeer = options.byPeer ?? false;
  }
}

/** What this end presents and trusts for certificate authentication. */
export interface CertificateAuth {
  /** This node's certificate first, then any intermediates (DER). */
  readonly chain: readonly Buffer[];
  /** Private key of chain[0]. */
  readonly key: KeyObject;
  /** CA certificates whose signature on a peer chain is accepted (the cluster CA). */
  readonly trusted: readonly X509Certificate[];
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Parses PEM text holding one or more certificates; `what` names the source in errors. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = splitPem(pem);
  if (blocks.length === 0) throw new ConfigError(`${what} holds no PEM certificate`, [], { key: what });
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new ConfigError(`${what}: certificate ${i + 1} cannot be parsed: ${(err as Error).message}`, [], {
        key: what,
        cause: err,
      });
    }
  });
}

/**
 * Builds the certificate material from PEM texts. `names` label the sources in errors (config
 * keys or CLI flags). The key must belong to the first certificate.
 */
export function certificateAuthFromPem(
  pem: { cert: string; key: string; ca: string },
  names: { cert: string; key: string; ca: string } = {
    cert: 'security.tls.cert_file',
    key: 'security.tls.key_file',
    ca: 'security.tls.ca_file',
  },
): CertificateAuth {
  const chain = parseCertificates(pem.cert, names.cert);
  const trusted = parseCertificates(pem.ca, names.ca);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem.key);
  } catch (err) {
    throw new ConfigError(`${names.key} is not a readable private key: ${(err as Error).message}`, [], {
      key: names.key,
      cause: err,
    });
  }
  // The DWCP handshake carries at most 8 certificates of at most 64 KiB (DER) each.
  if (chain.length > 8 || chain.some((c) => c.raw.length > 0xffff))
    throw new ConfigError(`${names.cert}: at most 8 certificates of at most 64 KiB each`, [], {
      key: names.cert,
    });
  if (!chain[0]!.checkPrivateKey(key)) {
    throw new ConfigError(`${names.key} is not the private key of the certificate in ${names.cert}`, [], {
      key: names.key,
    });
  }
  return { chain: chain.map((c) => c.raw), key, trusted };
}

/** Reads the certificate, key and CA files (PEM). */
export async function loadCertificateAuth(
  files: { cert: string; key: string; ca: string },
  names?: { cert: string; key: string; ca: string },
): Promise<CertificateAuth> {
  const label = names ?? {
    cert: 'security.tls.cert_file',
    key: 'security.tls.key_file',
    ca: 'security.tls.ca_file',
  };
  const read = async (path: string, what: string) => {
    if (path === '')
      throw new ConfigError(`${what} is empty: certificate authentication needs it`, [], { key: what });
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        [],
        { key: what, cause: err },
      );
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(files.cert, label.cert),
    read(files.key, label.key),
    read(files.ca, label.ca),
  ]);
  return certificateAuthFromPem({ cert, key, ca }, label);
}

// ------------------------------------------------------------------ X.509 extensions

interface Extensions {
  /** keyUsage bits (bit 0 digitalSignature … bit 5 keyCertSign), undefined when absent. */
  keyUsage?: (bit: number) => boolean;
  /** extKeyUsage OIDs, undefined when absent. */
  extKeyUsage?: string[];
}

// DER of the OIDs involved (tag and length stripped).
const OID_KEY_USAGE = '551d0f'; // 2.5.29.15
const OID_EXT_KEY_USAGE = '551d25'; // 2.5.29.37
const EKU_SERVER = '2b06010505070301'; // 1.3.6.1.5.5.7.3.1
const EKU_CLIENT = '2b06010505070302'; // 1.3.6.1.5.5.7.3.2
const EKU_ANY = '551d2500'; // 2.5.29.37.0

interface Tlv {
  readonly tag: number;
  readonly body: Buffer;
}

/** Splits DER bytes into their top-level TLVs (single-byte tags, definite lengths). */
function tlvs(der: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < der.length) {
    const tag = der[p++]!;
    let len = der[p++];
    if (len === undefined) throw new Error('truncated DER');
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || p + n > der.length) throw new Error('bad DER length');
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + der[p++]!;
    }
    if (p + len > der.length) throw new Error('truncated DER');
    out.push({ tag, body: der.subarray(p, p + len) });
    p += len;
  }
  return out;
}

/** Reads keyUsage and extKeyUsage from the DER (Node's X509Certificate exposes only the latter). */
function extensionsOf(cert: X509Certificate): Extensions {
  const [root] = tlvs(cert.raw);
  const [tbs] = tlvs(root!.body);
  const out: Extensions = {};
  const exts = tlvs(tbs!.body).find((t) => t.tag === 0xa3); // [3] EXPLICIT Extensions
  if (!exts) return out;
  const [list] = tlvs(exts.body);
  for (const ext of tlvs(list!.body)) {
    const fields = tlvs(ext.body);
    const oid = fields[0]!.body.toString('hex');
    const value = fields[fields.length - 1]!.body;
    if (oid === OID_KEY_USAGE) {
      // BIT STRING: a byte counting unused bits, then the bits, most significant first.
      const bytes = tlvs(value)[0]!.body.subarray(1);
      out.keyUsage = (bit) => ((bytes[bit >> 3] ?? 0) & (0x80 >> (bit & 7))) !== 0;
    } else if (oid === OID_EXT_KEY_USAGE) {
      out.extKeyUsage = tlvs(tlvs(value)[0]!.body).map((o) => o.body.toString('hex'));
    }
  }
  return out;
}

function readExtensions(cert: X509Certificate, who: string): Extensions {
  try {
    return extensionsOf(cert);
  } catch (err) {
    throw new PeerAuthError('bad_certificate', `${who} certificate extensions cannot be parsed`, {
      cause: err,
    });
  }
}

function describeCert(c: X509Certificate): string {
  return c.subject.replace(/\n/g, ', ') || '(empty subject)';
}

function checkDates(c: X509Certificate, now: Date, which: string): void {
  const from = new Date(c.validFrom).getTime();
  const to = new Date(c.validTo).getTime();
  if (now.getTime() > to)
    throw new PeerAuthError(
      'certificate_expired',
      `${which} certificate ${describeCert(c)} expired on ${c.validTo}`,
    );
  if (now.getTime() < from)
    throw new PeerAuthError(
      'certificate_not_yet_valid',
      `${which} certificate ${describeCert(c)} is not valid before ${c.validFrom}`,
    );
}

/** True when the certificate names `name` (SAN IP for addresses; SAN DNS, or CN without DNS SANs, for names). */
export function certificateNames(cert: X509Certificate, name: string): boolean {
  const n = name.replace(/^\[|\]$/g, '');
  if (isIP(n)) return cert.checkIP(n) !== undefined;
  return cert.checkHost(n, { subject: 'default', wildcards: true }) !== undefined;
}

export interface VerifyPeerOptions {
  /** Time to check validity at (default now). */
  readonly now?: Date;
  /** When set, the leaf must name one of these (node name, host name or address). */
  readonly peerNames?: readonly string[];
  /** What the peer is, for messages ("DWCP receiver", "DWCP sender"). */
  readonly peer?: string;
}

/**
 * Verifies a peer's chain (leaf first, then intermediates, DER) against the trusted CAs and returns
 * the leaf. Checks each link's issuer name and signature, validity dates of every certificate
 * (the CA's too), cA:true and keyCertSign on issuers, digitalSignature and serverAuth/clientAuth on
 * the leaf when those extensions are present, and the expected peer name.
 */
export function verifyPeerChain(
  chainDer: readonly Buffer[],
  trusted: readonly X509Certificate[],
  options: VerifyPeerOptions = {},
): X509Certificate {
  const peer = options.peer ?? 'peer';
  const now = options.now ?? new Date();
  if (chainDer.length === 0)
    throw new PeerAuthError('missing_certificate', `${peer} presented no certificate`);
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((d) => new X509Certificate(d));
  } catch (err) {
    throw new PeerAuthError('bad_certificate', `${peer} sent a certificate that cannot be parsed`, {
      cause: err,
    });
  }
  const leaf = chain[0]!;
  const usage = readExtensions(leaf, peer);
  if (usage.keyUsage && !usage.keyUsage(0))
    throw new PeerAuthError(
      'certificate_usage',
      `${peer} certificate ${describeCert(leaf)} does not allow digitalSignature (keyUsage)`,
    );
  if (
    usage.extKeyUsage &&
    !usage.extKeyUsage.some((o) => o === EKU_SERVER || o === EKU_CLIENT || o === EKU_ANY)
  )
    throw new PeerAuthError(
      'certificate_usage',
      `${peer} certificate ${describeCert(leaf)} allows neither serverAuth nor clientAuth (extKeyUsage)`,
    );

  // Walk up: each certificate must be signed by the next one, until one is signed by a trusted CA.
  // (Names and signatures here; whether each issuer may issue is checked below, with its own reason.)
  let anchor: X509Certificate | undefined;
  let i = 0;
  for (; i < chain.length; i++) {
    const c = chain[i]!;
    anchor = trusted.find((t) => c.issuer === t.subject && c.verify(t.publicKey));
    if (anchor) break;
    const next = chain[i + 1];
    if (!next) break;
    if (c.issuer !== next.subject || !c.verify(next.publicKey))
      throw new PeerAuthError(
        'bad_certificate',
        `${peer} chain is broken: ${describeCert(c)} is not signed by the next certificate ${describeCert(next)}`,
      );
  }
  if (!anchor)
    throw new PeerAuthError(
      'unknown_ca',
      `${peer} certificate ${describeCert(leaf)} is not signed by the cluster CA (issuer: ${chain[chain.length - 1]!.issuer.replace(/\n/g, ', ')})`,
    );
  // Everything used up to the anchor, and the anchor itself, must be valid now; issuers must be CAs.
  const used = [...chain.slice(0, i + 1), anchor];
  for (const [k, c] of used.entries()) {
    const which = k === 0 ? peer : k === used.length - 1 ? `${peer}'s CA` : `${peer}'s intermediate`;
    checkDates(c, now, which);
    if (k === 0) continue;
    if (!c.ca)
      throw new PeerAuthError(
        'certificate_usage',
        `${which} certificate ${describeCert(c)} is not a CA (basicConstraints)`,
      );
    const ext = readExtensions(c, which);
    if (ext.keyUsage && !ext.keyUsage(5))
      throw new PeerAuthError(
        'certificate_usage',
        `${which} certificate ${describeCert(c)} does not allow keyCertSign (keyUsage)`,
      );
  }
  if (options.peerNames && options.peerNames.length > 0) {
    if (!options.peerNames.some((n) => certificateNames(leaf, n)))
      throw new PeerAuthError(
        'wrong_peer_name',
        `${peer} certificate names ${leaf.subjectAltName ?? describeCert(leaf)}, not ${options.peerNames.join(' or ')}`,
      );
  }
  return leaf;
}

// ------------------------------------------------------------------ transcript signatures

function signParams(key: KeyObject): { alg: string | null; rsa: boolean } {
  const t = key.asymmetricKeyType;
  if (t === 'ed25519' || t === 'ed448') return { alg: null, rsa: false };
  if (t === 'rsa' || t === 'rsa-pss') return { alg: 'sha256', rsa: true };
  if (t === 'ec') return { alg: 'sha256', rsa: false };
  throw new PeerAuthError('bad_certificate', `certificate key type ${t ?? '?'} cannot sign handshakes`);
}

/** Signs `data` with a certificate key: RSA-PSS/SHA-256, ECDSA/SHA-256 or EdDSA. */
export function signTranscript(key: KeyObject, data: Buffer): Buffer {
  const p = signParams(key);
  const k: SignKeyObjectInput = p.rsa
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
    : { key };
  return sign(p.alg, data, k);
}

/** Checks a transcript signature against the certificate's public key; false on mismatch. */
export function verifyTranscript(cert: X509Certificate, data: Buffer, signature: Buffer): boolean {
  const key = cert.publicKey;
  const p = signParams(key);
  const k: VerifyKeyObjectInput = p.rsa
    ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
    : { key };
  try {
    return verify(p.alg, data, k, signature);
  } catch {
    return false;
  }
}
