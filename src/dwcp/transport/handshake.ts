// DWCP stream handshake: hybrid X25519 + ML-KEM-768 key agreement deriving per-direction AES-256-GCM
// keys, authenticated by the cluster join token or by node certificates signed by the cluster CA.
// Pure message functions; the socket code (connection.ts) drives them.
//
//   client -> Hello      x25519 pub (32) | ML-KEM-768 pub (1184) | nonce (32) [| 0x02 | offers (1)]
//   server -> HelloReply x25519 pub (32) | ML-KEM ciphertext (1088) | nonce (32) [| method (1)] | method body
//   client -> Auth       method body
//   server -> Auth       ready (32)   [version 2 only]
//
// A client that offers only the token sends the short Hello and gets the short reply (version 1,
// byte-identical to what nodes without certificate support speak). Otherwise `offers` has bit 0
// (token) and/or bit 1 (ca) and the server picks one it accepts (ca first) into `method`.
//
// ikm = X25519 secret || ML-KEM secret; info = SHA-256(transcript); salt = SHA-256("dwcp-token" ||
// token) for the token method, SHA-256("dwcp-ca") for the ca method. The transcript is Hello, the
// reply head and (version 2) the method byte. HKDF-SHA256 gives c2s key, s2c key and a confirmation
// key; each proof is HMAC(confirm, role || th).
//   token body: proof (32). A wrong token gives different keys, so the proof fails before any data.
//   ca body:    chain | signature | proof. chain = count (1) then per certificate len (2) | DER,
//               leaf first; signature = len (2) | bytes, made with the leaf's key over
//               "DWCP v2 server signature\0" || SHA-256(Hello | reply head | method | server chain)
//               (server), and "DWCP v2 client signature\0" || SHA-256(Hello | whole reply | client
//               chain) (client). Both cover both ephemeral keys, the KEM ciphertext and both
//               nonces, so a signature cannot be replayed into another exchange or relayed.
// In version 2 the server answers a good Auth with ready = HMAC(confirm, "ready" || th), and the
// client waits for it: a sender refused after its Auth learns why instead of seeing a dropped stream.
// A side that refuses the other sends a reject (a Control frame, JSON {t:'auth-reject', reason,
// message}) before closing, so both ends report the same cause.
import {
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { ConfigError, ProtocolError } from '../../errors.js';
import {
  PEER_AUTH_REASONS,
  PeerAuthError,
  signTranscript,
  verifyPeerChain,
  verifyTranscript,
  type CertificateAuth,
  type PeerAuthReason,
} from '../../security/peer-certs.js';

const X_PUB = 32;
const KEM_PUB = 1184;
const KEM_CT = 1088;
const NONCE = 32;
const PROOF = 32;
const HELLO_V1 = X_PUB + KEM_PUB + NONCE;
const HEAD = X_PUB + KEM_CT + NONCE;
const V2 = 2;
const OFFER_TOKEN = 1;
const OFFER_CA = 2;
const MAX_CHAIN = 8;
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export type AuthMethod = 'token' | 'ca';
const METHOD_BYTE: Record<AuthMethod, number> = { token: 1, ca: 2 };

/** How this end authenticates itself and its peer. At least one of token and certificate. */
export interface HandshakeAuth {
  /** Shared secret both ends hold (config `cluster.join_token`); empty or absent: not offered. */
  readonly token?: string;
  /** This node's certificate, key and the cluster CA; absent: not offered. */
  readonly certificate?: CertificateAuth;
  /**
   * With certificates: the peer's certificate must name one of these (SAN DNS/IP or CN). A client
   * sets the receiver's node or host name; a server may list the senders it accepts.
   */
  readonly peerNames?: readonly string[];
  /** Validity is checked at this time (tests); default now. */
  readonly now?: Date;
}

export interface SessionKeys {
  /** Key for frames the client sends. */
  readonly c2s: Buffer;
  /** Key for frames the server sends. */
  readonly s2c: Buffer;
}

export interface ClientHelloState {
  readonly hello: Buffer;
  readonly xPrivate: KeyObject;
  readonly kemSecret: Uint8Array;
  /** False for the version-1 Hello (token only). */
  readonly v2: boolean;
}

function offersOf(auth: HandshakeAuth): number {
  let o = 0;
  if (auth.token) o |= OFFER_TOKEN;
  if (auth.certificate) o |= OFFER_CA;
  if (o === 0)
    throw new ConfigError(
      'DWCP has no authentication configured: set cluster.join_token or certificates',
      [],
      {
        key: 'dwcp.auth',
      },
    );
  return o;
}

function describeOffers(o: number): string {
  const m = [o & OFFER_TOKEN ? 'join token' : '', o & OFFER_CA ? 'CA certificate' : ''].filter(Boolean);
  return m.join(' or ');
}

function x25519Pair(): { priv: KeyObject; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { priv: privateKey, pub: der.subarray(der.length - X_PUB) };
}

function x25519Shared(priv: KeyObject, peerRaw: Buffer): Buffer {
  const pub = createPublicKey({
    key: Buffer.concat([SPKI_X25519_PREFIX, peerRaw]),
    format: 'der',
    type: 'spki',
  });
  return diffieHellman({ privateKey: priv, publicKey: pub });
}

function derive(
  ikm: Buffer,
  method: AuthMethod,
  token: string,
  transcript: Buffer,
): { keys: SessionKeys; confirm: Buffer; th: Buffer } {
  const salt =
    method === 'token'
      ? createHash('sha256').update('dwcp-token\0').update(token).digest()
      : createHash('sha256').update('dwcp-ca\0').digest();
  const th = createHash('sha256').update(transcript).digest();
  const okm = Buffer.from(
    hkdfSync('sha256', ikm, salt, Buffer.concat([Buffer.from('dwcp v1 keys'), th]), 96),
  );
  return { keys: { c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64) }, confirm: okm.subarray(64, 96), th };
}

function proof(confirm: Buffer, role: 'client' | 'server' | 'ready', th: Buffer): Buffer {
  return createHmac('sha256', confirm).update(role).update(th).digest();
}

function signedData(role: 'client' | 'server', parts: readonly Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return Buffer.concat([Buffer.from(`DWCP v2 ${role} signature\0`), h.digest()]);
}

function encodeChain(chain: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from([chain.length])];
  for (const der of chain) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(der.length);
    parts.push(len, der);
  }
  return Buffer.concat(parts);
}

function encodeSig(sig: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(sig.length);
  return Buffer.concat([len, sig]);
}

/** Parses chain | signature | proof; `what` names the message in errors. */
function parseCaBody(
  b: Buffer,
  what: string,
): { chain: Buffer[]; chainBytes: Buffer; sig: Buffer; proof: Buffer } {
  const bad = (m: string) => new ProtocolError(`bad ${what}: ${m}`);
  if (b.length < 1) throw bad('no certificate chain');
  const n = b[0]!;
  if (n > MAX_CHAIN) throw bad(`${n} certificates (at most ${MAX_CHAIN})`);
  let p = 1;
  const chain: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    if (p + 2 > b.length) throw bad('truncated certificate chain');
    const len = b.readUInt16BE(p);
    p += 2;
    if (p + len > b.length) throw bad('truncated certificate');
    chain.push(b.subarray(p, p + len));
    p += len;
  }
  const chainBytes = b.subarray(0, p);
  if (p + 2 > b.length) throw bad('no signature');
  const sigLen = b.readUInt16BE(p);
  p += 2;
  if (p + sigLen + PROOF !== b.length) throw bad(`length ${b.length} does not match its contents`);
  return { chain, chainBytes, sig: b.subarray(p, p + sigLen), proof: b.subarray(p + sigLen) };
}

/** Client step 1: fresh ephemeral keys and the Hello payload offering what `auth` holds. */
export function clientHello(auth: HandshakeAuth): ClientHelloState {
  const offers = offersOf(auth);
  const x = x25519Pair();
  const kem = ml_kem768.keygen();
  const v2 = offers !== OFFER_TOKEN;
  const parts = [x.pub, Buffer.from(kem.publicKey), randomBytes(NONCE)];
  if (v2) parts.push(Buffer.from([V2, offers]));
  return { hello: Buffer.concat(parts), xPrivate: x.priv, kemSecret: kem.secretKey, v2 };
}

/** What the server keeps between its reply and the client's Auth. */
export interface ServerPending {
  readonly method: AuthMethod;
  readonly keys: SessionKeys;
  readonly expectClientProof: Buffer;
  /** Hello and the whole reply (the client signs them with its chain). */
  readonly transcript: Buffer;
  /** Version 2: what the server sends once the Auth checked out (undefined: version 1, nothing). */
  readonly ready: Buffer | undefined;
}

/**
 * Server step: answers a Hello with the method it picks. Returns the reply payload, the keys and
 * what it needs to check the client's Auth. Throws PeerAuthError when no offered method is accepted.
 */
export function serverReply(hello: Buffer, auth: HandshakeAuth): ServerPending & { reply: Buffer } {
  const accepts = offersOf(auth);
  let offers: number;
  if (hello.length === HELLO_V1) offers = OFFER_TOKEN;
  else if (hello.length === HELLO_V1 + 2 && hello[HELLO_V1] === V2) offers = hello[HELLO_V1 + 1]!;
  else throw new ProtocolError(`bad Hello length ${hello.length}`);
  const v2 = hello.length !== HELLO_V1;
  if ((offers & ~(OFFER_TOKEN | OFFER_CA)) !== 0 || offers === 0)
    throw new ProtocolError(`bad Hello: unknown authentication offers ${offers}`);
  const both = offers & accepts;
  if (both === 0) {
    if (accepts & OFFER_CA)
      throw new PeerAuthError(
        'missing_certificate',
        `DWCP sender offered only the ${describeOffers(offers)}; this receiver requires a certificate signed by the cluster CA`,
      );
    throw new PeerAuthError(
      'auth_mode_mismatch',
      `DWCP sender offered only a ${describeOffers(offers)}; this receiver accepts only the join token`,
    );
  }
  const method: AuthMethod = both & OFFER_CA ? 'ca' : 'token';

  const clientX = hello.subarray(0, X_PUB);
  const clientKem = hello.subarray(X_PUB, X_PUB + KEM_PUB);
  const x = x25519Pair();
  let enc: { cipherText: Uint8Array; sharedSecret: Uint8Array };
  try {
    enc = ml_kem768.encapsulate(clientKem);
  } catch (err) {
    throw new ProtocolError('bad ML-KEM public key in Hello', { cause: err });
  }
  const ikm = Buffer.concat([x25519Shared(x.priv, clientX), Buffer.from(enc.sharedSecret)]);
  const head = Buffer.concat([x.pub, Buffer.from(enc.cipherText), randomBytes(NONCE)]);
  const methodByte = v2 ? Buffer.from([METHOD_BYTE[method]]) : Buffer.alloc(0);
  const { keys, confirm, th } = derive(
    ikm,
    method,
    auth.token ?? '',
    Buffer.concat([hello, head, methodByte]),
  );
  let body: Buffer;
  if (method === 'token') body = proof(confirm, 'server', th);
  else {
    const cert = auth.certificate!;
    const chain = encodeChain(cert.chain);
    const sig = signTranscript(cert.key, signedData('server', [hello, head, methodByte, chain]));
    body = Buffer.concat([chain, encodeSig(sig), proof(confirm, 'server', th)]);
  }
  const reply = Buffer.concat([head, methodByte, body]);
  return {
    reply,
    method,
    keys,
    expectClientProof: proof(confirm, 'client', th),
    transcript: Buffer.concat([hello, reply]),
    ready: v2 ? proof(confirm, 'ready', th) : undefined,
  };
}

/**
 * Client step 2: authenticates the server (a wrong token, an untrusted or expired certificate, a
 * wrong name or a bad signature fails here) and returns the keys and the Auth payload.
 */
export function clientFinish(
  state: ClientHelloState,
  reply: Buffer,
  auth: HandshakeAuth,
): { keys: SessionKeys; auth: Buffer; method: AuthMethod; ready: Buffer | undefined } {
  if (reply.length < HEAD + (state.v2 ? 1 : 0) + PROOF)
    throw new ProtocolError(`bad HelloReply length ${reply.length}`);
  const head = reply.subarray(0, HEAD);
  let method: AuthMethod = 'token';
  let methodByte: Buffer = Buffer.alloc(0);
  if (state.v2) {
    methodByte = reply.subarray(HEAD, HEAD + 1);
    const m = methodByte[0];
    if (m === METHOD_BYTE.token) method = 'token';
    else if (m === METHOD_BYTE.ca) method = 'ca';
    else throw new ProtocolError(`bad HelloReply: unknown authentication method ${m}`);
    const offers = offersOf(auth);
    if (!(offers & (method === 'ca' ? OFFER_CA : OFFER_TOKEN)))
      throw new PeerAuthError(
        'auth_mode_mismatch',
        `DWCP receiver chose the ${method === 'ca' ? 'CA certificate' : 'join token'}, which this sender did not offer`,
      );
  }
  const body = reply.subarray(HEAD + methodByte.length);
  const serverX = head.subarray(0, X_PUB);
  const ct = head.subarray(X_PUB, X_PUB + KEM_CT);
  const kemShared = Buffer.from(ml_kem768.decapsulate(ct, state.kemSecret));
  const ikm = Buffer.concat([x25519Shared(state.xPrivate, serverX), kemShared]);
  const { keys, confirm, th } = derive(
    ikm,
    method,
    auth.token ?? '',
    Buffer.concat([state.hello, head, methodByte]),
  );
  if (method === 'token') {
    if (body.length !== PROOF) throw new ProtocolError(`bad HelloReply length ${reply.length}`);
    if (!timingSafeEqual(proof(confirm, 'server', th), body))
      throw new PeerAuthError(
        'token_mismatch',
        'DWCP receiver failed to prove the shared join token (wrong cluster.join_token or tampered handshake)',
      );
    const ready = state.v2 ? proof(confirm, 'ready', th) : undefined;
    return { keys, auth: proof(confirm, 'client', th), method, ready };
  }
  const cert = auth.certificate!;
  const s = parseCaBody(body, 'HelloReply');
  const leaf = verifyPeerChain(s.chain, cert.trusted, {
    peer: 'DWCP receiver',
    ...(auth.peerNames ? { peerNames: auth.peerNames } : {}),
    ...(auth.now ? { now: auth.now } : {}),
  });
  if (!verifyTranscript(leaf, signedData('server', [state.hello, head, methodByte, s.chainBytes]), s.sig))
    throw new PeerAuthError(
      'bad_signature',
      'DWCP receiver signature over this handshake does not verify (tampered, replayed or relayed handshake)',
    );
  if (!timingSafeEqual(proof(confirm, 'server', th), s.proof))
    throw new PeerAuthError('bad_signature', 'DWCP receiver key confirmation failed (tampered handshake)');
  const chain = encodeChain(cert.chain);
  const sig = signTranscript(cert.key, signedData('client', [state.hello, reply, chain]));
  return {
    keys,
    auth: Buffer.concat([chain, encodeSig(sig), proof(confirm, 'client', th)]),
    method,
    ready: proof(confirm, 'ready', th),
  };
}

/** Client step 3 (version 2): the server's ready must match what the client derived. */
export function clientReady(expected: Buffer, got: Buffer): void {
  if (got.length !== PROOF || !timingSafeEqual(expected, got))
    throw new PeerAuthError(
      'bad_signature',
      'DWCP receiver confirmation does not match (tampered handshake)',
    );
}

/** Server step 2: checks the client's Auth for the method the server picked. */
export function serverVerify(pending: ServerPending, authPayload: Buffer, auth: HandshakeAuth): void {
  if (pending.method === 'token') {
    if (authPayload.length !== PROOF || !timingSafeEqual(pending.expectClientProof, authPayload))
      throw new PeerAuthError('token_mismatch', 'DWCP sender failed to prove the shared join token');
    return;
  }
  const cert = auth.certificate!;
  const s = parseCaBody(authPayload, 'Auth');
  const leaf = verifyPeerChain(s.chain, cert.trusted, {
    peer: 'DWCP sender',
    ...(auth.peerNames ? { peerNames: auth.peerNames } : {}),
    ...(auth.now ? { now: auth.now } : {}),
  });
  if (!verifyTranscript(leaf, signedData('client', [pending.transcript, s.chainBytes]), s.sig))
    throw new PeerAuthError(
      'bad_signature',
      'DWCP sender signature over this handshake does not verify (tampered, replayed or relayed handshake)',
    );
  if (!timingSafeEqual(pending.expectClientProof, s.proof))
    throw new PeerAuthError('bad_signature', 'DWCP sender key confirmation failed (tampered handshake)');
}

// ------------------------------------------------------------------ rejects

/** The Control payload a side sends before closing when it refuses the other. */
export function encodeReject(err: PeerAuthError): Buffer {
  return Buffer.from(JSON.stringify({ t: 'auth-reject', reason: err.reason, message: err.message }));
}

/**
 * Reads a reject received during the handshake; `peer` names the side that sent it. Anything that
 * is not a well-formed reject is a ProtocolError.
 */
export function decodeReject(payload: Buffer, peer: string): PeerAuthError {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`unexpected control frame during the DWCP handshake from the ${peer}`);
  }
  const m = v as { t?: unknown; reason?: unknown; message?: unknown } | null;
  if (
    m === null ||
    typeof m !== 'object' ||
    m.t !== 'auth-reject' ||
    typeof m.reason !== 'string' ||
    !PEER_AUTH_REASONS.has(m.reason) ||
    typeof m.message !== 'string'
  )
    throw new ProtocolError(`unexpected control frame during the DWCP handshake from the ${peer}`);
  return new PeerAuthError(
    m.reason as PeerAuthReason,
    `${peer} refused the handshake: ${m.message.slice(0, 500)}`,
    { byPeer: true },
  );
}
