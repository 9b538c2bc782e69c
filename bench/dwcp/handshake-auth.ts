// CPU cost of one DWCP stream handshake (client and server together, in one process, no sockets) by
// authentication method, in the same run: token (the baseline), CA with RSA-2048 node
// certificates (what security/tls.ts generates), and CA with ECDSA P-256 certificates (made with
// openssl when it is installed). Measures process.cpuUsage() over N handshakes after a warm-up.
//   npx tsx bench/dwcp/handshake-auth.ts [N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  clientFinish,
  clientHello,
  clientReady,
  serverReply,
  serverVerify,
  type HandshakeAuth,
} from '../../src/dwcp/transport/handshake.js';
import { certificateAuthFromPem } from '../../src/security/peer-certs.js';
import { issueCert, makeCa } from '../../src/security/test-pki.js';

const N = Number(process.argv[2] ?? 200);

function handshake(client: HandshakeAuth, server: HandshakeAuth): number {
  const c = clientHello(client);
  const s = serverReply(c.hello, server);
  const f = clientFinish(c, s.reply, client);
  serverVerify(s, f.auth, server);
  if (f.ready) clientReady(f.ready, s.ready!);
  // Bytes on the wire for the three (four) messages, without frame headers.
  return c.hello.length + s.reply.length + f.auth.length + (s.ready?.length ?? 0);
}

function measure(name: string, client: HandshakeAuth, server: HandshakeAuth) {
  for (let i = 0; i < 20; i++) handshake(client, server);
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < N; i++) bytes = handshake(client, server);
  const cpu = process.cpuUsage(t0);
  const wall = performance.now() - w0;
  const cpuMs = (cpu.user + cpu.system) / 1000 / N;
  return { name, cpuMsPerHandshake: Number(cpuMs.toFixed(3)), wallMs: Number((wall / N).toFixed(3)), bytes };
}

function opensslEc(dir: string): HandshakeAuth[] | undefined {
  try {
    const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    o(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
    o([
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=EC bench CA',
      '-days',
      '30',
      '-out',
      'ca.pem',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const out: HandshakeAuth[] = [];
    for (const n of ['a', 'b']) {
      o(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${n}.key`]);
      o(['req', '-new', '-key', `${n}.key`, '-subj', `/CN=node-${n}`, '-out', `${n}.csr`]);
      o([
        'x509',
        '-req',
        '-in',
        `${n}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '30',
        '-out',
        `${n}.pem`,
      ]);
      const f = (p: string) => readFileSync(join(dir, p), 'utf8');
      out.push({
        certificate: certificateAuthFromPem({ cert: f(`${n}.pem`), key: f(`${n}.key`), ca: f('ca.pem') }),
      });
    }
    return out;
  } catch (err) {
    console.error(`# ECDSA row skipped: openssl failed (${(err as Error).message.split('\n')[0]})`);
    return undefined;
  }
}

const ca = makeCa('bench CA');
const [a, b] = [
  issueCert(ca, { cn: 'node-a', dns: ['node-a'] }),
  issueCert(ca, { cn: 'node-b', dns: ['node-b'] }),
];
const rsa = (n: typeof a): HandshakeAuth => ({
  certificate: certificateAuthFromPem({ cert: n.chainPem, key: n.key, ca: ca.cert }),
});
const token: HandshakeAuth = { token: 'bench-token' };
const rows = [
  measure('token', token, token),
  measure('ca-rsa2048', { ...rsa(a), peerNames: ['node-b'] }, rsa(b)),
];
const dir = mkdtempSync(join(tmpdir(), 'hs-bench-'));
try {
  const ec = opensslEc(dir);
  if (ec) rows.push(measure('ca-ecdsa-p256', ec[0]!, ec[1]!));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const base = rows[0]!.cpuMsPerHandshake;
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      loadavg: loadavg().map((x) => Number(x.toFixed(2))),
      handshakes: N,
      rows: rows.map((r) => ({ ...r, vsToken: Number((r.cpuMsPerHandshake / base).toFixed(2)) })),
    },
    null,
    1,
  ),
);
