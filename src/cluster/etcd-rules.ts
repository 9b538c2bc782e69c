// The rules tying cluster.etcd.endpoints to cluster.etcd.tls.* and cluster.etcd.username/password
// (pure, no etcd client loaded): used at boot by etcd-security.ts and by config validation, so
// `novacron config validate` reports the same problems a node would refuse to start with.
import { ErrorCode, NovaCronError } from '../errors.js';
import type { NovaCronConfig } from '../config/schema.js';

export type EtcdConfig = NovaCronConfig['cluster']['etcd'];

/** Which files to read and which credentials to send, after the rules were checked. */
export interface EtcdSecurityPlan {
  readonly tls: { readonly caFile: string; readonly certFile?: string; readonly keyFile?: string } | null;
  readonly auth: { readonly username: string; readonly password: string } | null;
}

/** One broken rule: the key to fix, what is wrong, and what to do. */
export interface EtcdRuleProblem {
  readonly key: string;
  readonly message: string;
  readonly hint?: string;
}

export function configError(key: string, message: string, hint?: string): NovaCronError {
  return new NovaCronError(ErrorCode.ConfigInvalid, message, { key, ...(hint ? { hint } : {}) });
}

function schemeOf(endpoint: string): 'http' | 'https' | { readonly bad: string } {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(endpoint);
  if (!m) return 'http';
  const scheme = m[1]!.toLowerCase();
  return scheme === 'http' || scheme === 'https' ? scheme : { bad: scheme };
}

/** `https`, `http`, or `http` for a bare `host:port` (the etcd3 client treats it as plain). */
export function endpointScheme(endpoint: string): 'http' | 'https' {
  const s = schemeOf(endpoint);
  if (typeof s === 'string') return s;
  throw configError('cluster.etcd.endpoints', badSchemeMessage(endpoint, s.bad));
}

const badSchemeMessage = (endpoint: string, scheme: string): string =>
  `cluster.etcd.endpoints: ${endpoint} has scheme ${scheme}://; etcd endpoints are http://host:port or https://host:port`;

/**
 * Every broken rule, in a fixed order (pure). https endpoints need cluster.etcd.tls.ca_file (the
 * system roots are not used: etcd is nearly always served with a private CA, and trusting every
 * public CA for the region's control data is not a default we want); http endpoints must have no
 * TLS files; all endpoints use one scheme; a client certificate and its key go together; a
 * username needs a password and the other way round.
 */
export function etcdSecurityProblems(cfg: EtcdConfig): EtcdRuleProblem[] {
  const out: EtcdRuleProblem[] = [];
  const schemes = new Set<string>();
  for (const e of cfg.endpoints) {
    const s = schemeOf(e);
    if (typeof s === 'string') schemes.add(s);
    else out.push({ key: 'cluster.etcd.endpoints', message: badSchemeMessage(e, s.bad) });
  }
  if (schemes.size > 1) {
    out.push({
      key: 'cluster.etcd.endpoints',
      message: `cluster.etcd.endpoints mixes http:// and https:// (${cfg.endpoints.join(', ')}): all members are reached the same way`,
    });
  }
  const tlsWanted = schemes.has('https');
  const { ca_file, cert_file, key_file } = cfg.tls;
  if (!tlsWanted) {
    const set = (
      [
        ['cluster.etcd.tls.ca_file', ca_file],
        ['cluster.etcd.tls.cert_file', cert_file],
        ['cluster.etcd.tls.key_file', key_file],
      ] as const
    ).find(([, v]) => v !== '');
    if (set && schemes.size > 0) {
      out.push({
        key: set[0],
        message: `${set[0]} is set but cluster.etcd.endpoints are not https:// (${cfg.endpoints.join(', ')}): TLS files would be ignored`,
        hint: 'write the endpoints as https://host:port, or leave cluster.etcd.tls.* empty',
      });
    }
  } else if (ca_file === '') {
    out.push({
      key: 'cluster.etcd.tls.ca_file',
      message: `cluster.etcd.endpoints are https:// (${cfg.endpoints.join(', ')}) but cluster.etcd.tls.ca_file is empty`,
      hint: "set cluster.etcd.tls.ca_file to the CA certificate (PEM) that signed etcd's server certificates",
    });
  }
  if ((cert_file === '') !== (key_file === '')) {
    const missing = cert_file === '' ? 'cluster.etcd.tls.cert_file' : 'cluster.etcd.tls.key_file';
    out.push({
      key: missing,
      message: `cluster.etcd.tls.cert_file and cluster.etcd.tls.key_file must be set together (${missing} is empty)`,
    });
  }
  if ((cfg.username === '') !== (cfg.password === '')) {
    const missing = cfg.username === '' ? 'cluster.etcd.username' : 'cluster.etcd.password';
    out.push({
      key: missing,
      message: `cluster.etcd.username and cluster.etcd.password must be set together (${missing} is empty)`,
    });
  }
  return out;
}

/** Checks the rules (throwing the first broken one as a config error) and says what to load. */
export function planEtcdSecurity(cfg: EtcdConfig): EtcdSecurityPlan {
  const first = etcdSecurityProblems(cfg)[0];
  if (first) throw configError(first.key, first.message, first.hint);
  const tlsWanted = cfg.endpoints.some((e) => endpointScheme(e) === 'https');
  const { ca_file, cert_file, key_file } = cfg.tls;
  return {
    tls: tlsWanted
      ? { caFile: ca_file, ...(cert_file !== '' ? { certFile: cert_file, keyFile: key_file } : {}) }
      : null,
    auth: cfg.username !== '' ? { username: cfg.username, password: cfg.password } : null,
  };
}
