// DWCP stream handshake: hybrid X25519 + ML-KEM-768 key agreement, authenticated by the cluster join
// token, deriving per-direction AES-256-GCM keys. Pure message functions; the socket code drives them.
//
//   client -> Hello      x25519 pub (32) | ML-KEM-768 pub (1184) | nonce (32)
//   server -> HelloReply x25519 pub (32) | ML-KEM ciphertext (1088) | nonce (32) | server proof (32)
//   client -> Auth       client proof (32)
//
// ikm = X25519 secret || ML-KEM secret; salt = SHA-256("dwcp-token" || token); info = SHA-256(transcript).
// HKDF-SHA256 gives c2s key, s2c key and a confirmation key; each proof is HMAC(confirm, role || th).
// A wrong token gives different keys, so the proof check fails before any data flows.
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
import { ErrorCode, NovaCronError, ProtocolError } from '../../errors.js';

const X_PUB = 32;
const KEM_PUB = 1184;
const KEM_CT = 1088;
const NONCE = 32;
const PROOF = 32;
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

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
  token: string,
  transcript: Buffer,
): { keys: SessionKeys; confirm: Buffer; th: Buffer } {
  const salt = createHash('sha256').update('dwcp-token\0').update(token).digest();
  const th = createHash('sha256').update(transcript).digest();
  const okm = Buffer.from(
    hkdfSync('sha256', ikm, salt, Buffer.concat([Buffer.from('dwcp v1 keys'), th]), 96),
  );
  return { keys: { c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64) }, confirm: okm.subarray(64, 96), th };
}

function proof(confirm: Buffer, role: 'client' | 'server', th: Buffer): Buffer {
  return createHmac('sha256', confirm).update(role).update(th).digest();
}

function unauthenticated(message: string): NovaCronError {
  return new NovaCronError(ErrorCode.Unauthenticated, message, {
    hint: 'both ends must use the same cluster.join_token',
  });
}

/** Client step 1: fresh ephemeral keys and the Hello payload. */
export function clientHello(): ClientHelloState {
  const x = x25519Pair();
  const kem = ml_kem768.keygen();
  return {
    hello: Buffer.concat([x.pub, Buffer.from(kem.publicKey), randomBytes(NONCE)]),
    xPrivate: x.priv,
    kemSecret: kem.secretKey,
  };
}

/** Server step: answers a Hello. Returns the reply payload, the keys, and the proof the client must send. */
export function serverReply(
  hello: Buffer,
  token: string,
): { reply: Buffer; keys: SessionKeys; expectClientProof: Buffer } {
  if (hello.length !== X_PUB + KEM_PUB + NONCE) throw new ProtocolError(`bad Hello length ${hello.length}`);
  const clientX = hello.subarray(0, X_PUB);
  const clientKem = hello.subarray(X_PUB, X_PUB + KEM_PUB);
  const x = x25519Pair();
  let enc: { cipherText: Uint8Array; sharedSecret: Uint8Array };
  try {
    enc = ml_kem768.encapsulate(clientKem);
  } catch (err) {
    throw new ProtocolError('bad ML-KEM public key in Hello', { cause: err });
  }
  const ct = Buffer.from(enc.cipherText);
  const ikm = Buffer.concat([x25519Shared(x.priv, clientX), Buffer.from(enc.sharedSecret)]);
  const head = Buffer.concat([x.pub, ct, randomBytes(NONCE)]);
  const { keys, confirm, th } = derive(ikm, token, Buffer.concat([hello, head]));
  return {
    reply: Buffer.concat([head, proof(confirm, 'server', th)]),
    keys,
    expectClientProof: proof(confirm, 'client', th),
  };
}

/** Client step 2: checks the server's proof (a wrong token fails here) and returns keys and the Auth payload. */
export function clientFinish(
  state: ClientHelloState,
  reply: Buffer,
  token: string,
): { keys: SessionKeys; auth: Buffer } {
  if (reply.length !== X_PUB + KEM_CT + NONCE + PROOF)
    throw new ProtocolError(`bad HelloReply length ${reply.length}`);
  const serverX = reply.subarray(0, X_PUB);
  const ct = reply.subarray(X_PUB, X_PUB + KEM_CT);
  const head = reply.subarray(0, X_PUB + KEM_CT + NONCE);
  const serverProof = reply.subarray(X_PUB + KEM_CT + NONCE);
  const kemShared = Buffer.from(ml_kem768.decapsulate(ct, state.kemSecret));
  const ikm = Buffer.concat([x25519Shared(state.xPrivate, serverX), kemShared]);
  const { keys, confirm, th } = derive(ikm, token, Buffer.concat([state.hello, head]));
  if (!timingSafeEqual(proof(confirm, 'server', th), serverProof)) {
    throw unauthenticated(
      'DWCP peer failed to prove the shared token (wrong join token or tampered handshake)',
    );
  }
  return { keys, auth: proof(confirm, 'client', th) };
}

/** Server step 2: checks the client's proof. */
export function serverVerify(expected: Buffer, auth: Buffer): void {
  if (auth.length !== PROOF || !timingSafeEqual(expected, auth)) {
    throw unauthenticated('DWCP client failed to prove the shared token');
  }
}
