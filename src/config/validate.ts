// Validation of a merged configuration tree against the schema (Ajv, precompiled from the TypeBox
// definitions into validator.generated.ts): fills defaults and reports every bad key at once, each
// with its dotted path, the bad value and what the key allows, plus cross-key rules Ajv cannot express.
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigIssue } from '../errors.js';
import type { NovaCronConfig } from './schema.js';
import { describeAllowed, enumValues, suggestKey, type JsonSchema } from './schema-walk.js';
import { etcdSecurityProblems, type EtcdConfig } from '../cluster/etcd-rules.js';
import { isLoopbackHost } from '../security/tls.js';
// Compiled ahead of time by `npm run schema` (see generate.ts): no schema compile at boot.
import { validate as generatedValidate } from './validator.generated.js';

const validator = (): ValidateFunction => generatedValidate as unknown as ValidateFunction;

/** Tells where the value at a dotted path came from (file location, env variable, flag). */
export type SourceOf = (path: string) => string | undefined;

export type ValidationResult =
  | { readonly ok: true; readonly config: NovaCronConfig; readonly issues: readonly [] }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Validates `tree` (not modified) and returns the complete config with defaults filled in, or
 * every issue found. Issues are sorted by path.
 */
export function validateConfig(tree: unknown, sourceOf: SourceOf = () => undefined): ValidationResult {
  const data: unknown = structuredClone(tree ?? {});
  const validate = validator();
  const issues: ConfigIssue[] = [];
  if (!validate(data)) issues.push(...ajvIssues(validate.errors ?? [], data, sourceOf));
  // A cross-key rule adds nothing about a key that already breaks its own schema.
  const bad = new Set(issues.map((i) => i.path));
  issues.push(...crossKeyIssues(data, sourceOf).filter((i) => !bad.has(i.path)));
  if (issues.length) {
    return { ok: false, issues: dedupe(issues).sort((a, b) => a.path.localeCompare(b.path)) };
  }
  return { ok: true, config: data as NovaCronConfig, issues: [] };
}

/** JSON pointer (`/cluster/peers/0/url`) -> dotted path with indices (`cluster.peers[0].url`). */
function pointerToPath(pointer: string, data: unknown): string {
  if (!pointer) return '';
  let node: unknown = data;
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      out += `[${seg}]`;
      node = node[Number(seg)];
    } else {
      out = out ? `${out}.${seg}` : seg;
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

function withSource(issue: ConfigIssue, sourceOf: SourceOf): ConfigIssue {
  const source = sourceOf(issue.path);
  return source === undefined ? issue : { ...issue, source };
}

function ajvIssues(errors: readonly ErrorObject[], data: unknown, sourceOf: SourceOf): ConfigIssue[] {
  // An enum is a union of constants: keep its one `anyOf` error and drop the per-branch noise.
  const unionPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath);
  const out: ConfigIssue[] = [];
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && unionPaths.some((p) => e.schemaPath.startsWith(p + '/'))) continue;
    const parent = pointerToPath(e.instancePath, data);
    const schema = (e.parentSchema ?? {}) as JsonSchema;
    let issue: ConfigIssue;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        const path = parent ? `${parent}.${key}` : key;
        const value = (e.data as Record<string, unknown>)[key];
        const guess = suggestKey(parent, key);
        issue = {
          path,
          value,
          message: `unknown key "${key}"${guess ? `; did you mean ${guess}?` : ''}`,
          allowed: `keys of ${parent || 'the top level'}: ${Object.keys(schema.properties ?? {}).join(', ')}`,
        };
        break;
      }
      case 'required': {
        const key = (e.params as { missingProperty: string }).missingProperty;
        const path = parent ? `${parent}.${key}` : key;
        const child = schema.properties?.[key];
        issue = {
          path,
          value: undefined,
          message: 'is required',
          ...(child ? { allowed: describeAllowed(child) } : {}),
        };
        break;
      }
      case 'anyOf': {
        const values = enumValues(schema);
        issue = {
          path: parent,
          value: e.data,
          message: values
            ? `${JSON.stringify(e.data)} is not one of the allowed values`
            : (e.message ?? 'invalid'),
          allowed: describeAllowed(schema),
        };
        break;
      }
      case 'type':
        issue = {
          path: parent,
          value: e.data,
          message: `${JSON.stringify(e.data)} is not ${article((e.params as { type: string }).type)}`,
          allowed: describeAllowed(schema),
        };
        break;
      case 'minimum':
      case 'maximum': {
        const p = e.params as { limit: number; comparison: string };
        issue = {
          path: parent,
          value: e.data,
          message: `${String(e.data)} is ${e.keyword === 'minimum' ? 'below the minimum' : 'above the maximum'} ${p.limit}`,
          allowed: describeAllowed(schema),
        };
        break;
      }
      case 'minLength':
        issue = {
          path: parent,
          value: e.data,
          message: 'must not be empty',
          allowed: describeAllowed(schema),
        };
        break;
      default:
        issue = {
          path: parent,
          value: e.data,
          message: e.message ?? `fails ${e.keyword}`,
          allowed: describeAllowed(schema),
        };
    }
    out.push(withSource(issue, sourceOf));
  }
  return out;
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\u0000${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const get = (obj: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>(
    (o, k) => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined),
    obj,
  );

/**
 * Rules across keys: stream bounds of each DWCP profile, distinct ports, TLS files in pairs, TLS
 * off only on loopback, and (cluster.mode etcd) the etcd endpoint/TLS/auth rules a node checks at boot.
 */
function crossKeyIssues(data: unknown, sourceOf: SourceOf): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const mode of ['datacenter', 'internet', 'hybrid']) {
    const p = `dwcp.profiles.${mode}`;
    const min = get(data, 'dwcp', 'profiles', mode, 'min_streams');
    const max = get(data, 'dwcp', 'profiles', mode, 'max_streams');
    const streams = get(data, 'dwcp', 'profiles', mode, 'streams');
    if (num(min) && num(max) && min > max) {
      out.push({
        path: `${p}.min_streams`,
        value: min,
        message: `min_streams ${min} exceeds max_streams ${max}`,
        allowed: `an integer <= ${p}.max_streams`,
      });
    } else if (num(min) && num(max) && num(streams) && (streams < min || streams > max)) {
      out.push({
        path: `${p}.streams`,
        value: streams,
        message: `streams ${streams} is outside min_streams..max_streams (${min}..${max})`,
        allowed: `an integer from ${min} to ${max}`,
      });
    }
  }
  const ports: [string, unknown][] = [
    ['api.rest_port', get(data, 'api', 'rest_port')],
    ['api.grpc_port', get(data, 'api', 'grpc_port')],
    ['dwcp.listen_port', get(data, 'dwcp', 'listen_port')],
  ];
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      const [pa, a] = ports[i]!;
      const [pb, b] = ports[j]!;
      if (num(a) && a !== 0 && a === b) {
        out.push({
          path: pb,
          value: b,
          message: `port ${b} is also used by ${pa}`,
          allowed: `a port other than ${a}`,
        });
      }
    }
  }
  const cert = get(data, 'security', 'tls', 'cert_file');
  const key = get(data, 'security', 'tls', 'key_file');
  if (typeof cert === 'string' && typeof key === 'string' && (cert === '') !== (key === '')) {
    const missing = cert === '' ? 'security.tls.cert_file' : 'security.tls.key_file';
    out.push({
      path: missing,
      value: '',
      message: 'cert_file and key_file must be set together (or both left empty to generate them)',
      allowed: 'a PEM file path',
    });
  }
  const tlsEnabled = get(data, 'security', 'tls', 'enabled');
  const host = get(data, 'api', 'host');
  if (tlsEnabled === 'off' && typeof host === 'string' && !isLoopbackHost(host)) {
    out.push({
      path: 'security.tls.enabled',
      value: 'off',
      message: `TLS is off but api.host ${host} is not loopback: serving beyond this host requires TLS`,
      allowed: 'auto or on (or bind api.host to 127.0.0.1)',
    });
  }
  const etcd = get(data, 'cluster', 'etcd') as EtcdConfig | undefined;
  if (get(data, 'cluster', 'mode') === 'etcd' && etcd && Array.isArray(etcd.endpoints) && etcd.tls) {
    for (const p of etcdSecurityProblems(etcd)) {
      out.push({
        path: p.key,
        value: get(data, ...p.key.split('.')),
        message: p.message,
        ...(p.hint ? { allowed: p.hint } : {}),
      });
    }
  }
  return out.map((i) => withSource(i, sourceOf));
}

/** One line per issue, for terminals: `api.rest_port: 70000 is above the maximum 65535 (allowed: …) [file x:3:14]`. */
export function formatIssue(i: ConfigIssue): string {
  const allowed = i.allowed ? ` (allowed: ${i.allowed})` : '';
  const source = i.source ? ` [${i.source}]` : '';
  return `${i.path || '(top level)'}: ${i.message}${allowed}${source}`;
}
