import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, ErrorCode, ValidationError, type ConfigIssue } from '../errors.js';
import { defaultConfig } from './defaults.js';
import { loadConfig } from './loader.js';
import { parseSetFlags } from './overrides.js';
import { configToYaml, redactSecrets, secretPaths } from './render.js';

async function withFile<T>(text: string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'novacron-config-'));
  const file = join(dir, 'novacron.yaml');
  await writeFile(file, text);
  try {
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected loading to fail');
}

const issueAt = (e: ConfigError, path: string): ConfigIssue => {
  const i = e.issues.find((x) => x.path === path);
  assert.ok(i, `no issue at ${path}; issues: ${e.issues.map((x) => x.path).join(', ')}`);
  return i;
};

test('no file at all: the defaults, a working single node', async () => {
  const l = await loadConfig({ env: {} });
  assert.equal(l.file, undefined);
  assert.deepEqual(l.config, defaultConfig());
  assert.equal(l.config.system.data_dir, './.novacron');
  assert.equal(l.config.database.type, 'sqlite');
  assert.equal(l.config.cache.type, 'memory');
  assert.equal(l.config.api.host, '127.0.0.1');
  assert.ok([...l.sources.values()].every((s) => s === 'default'));
  assert.equal(l.sources.get('api.rest_port'), 'default');
});

test('an empty file, or sections whose keys are all commented out, give the defaults too', async () => {
  await withFile('# nothing\n', async (file) => {
    const l = await loadConfig({ file, env: {} });
    assert.equal(l.file, file);
    assert.deepEqual(l.config, defaultConfig());
  });
  await withFile('system:\n  # node_id: x\napi:\n', async (file) => {
    assert.deepEqual((await loadConfig({ file, env: {} })).config, defaultConfig());
  });
});

test('precedence: default < file < env < flag, each recorded in sources', async () => {
  const yaml = 'api:\n  rest_port: 8081\n  grpc_port: 9091\n  host: 0.0.0.0\nsystem:\n  log_level: warn\n';
  await withFile(yaml, async (file) => {
    const l = await loadConfig({
      file,
      env: { NOVACRON_API__GRPC_PORT: '9092', NOVACRON_API__REST_PORT: '18080' },
      flags: { 'api.rest_port': '28080' },
    });
    assert.equal(l.config.api.rest_port, 28080);
    assert.equal(l.config.api.grpc_port, 9092);
    assert.equal(l.config.api.host, '0.0.0.0');
    assert.equal(l.config.system.log_level, 'warn');
    assert.equal(l.config.system.node_id, 'novacron-node-1');
    assert.equal(l.sources.get('api.rest_port'), 'flag');
    assert.equal(l.sources.get('api.grpc_port'), 'env');
    assert.equal(l.sources.get('api.host'), 'file');
    assert.equal(l.sources.get('system.node_id'), 'default');
    assert.equal(l.origins.get('api.grpc_port'), 'NOVACRON_API__GRPC_PORT');
    assert.equal(l.origins.get('api.host'), `${file}:4:9`);
  });
});

test('NOVACRON_CONFIG names the file when none is passed; relative paths resolve against cwd', async () => {
  await withFile('system:\n  node_id: from-env-file\n', async (file) => {
    const dir = join(file, '..');
    const l = await loadConfig({ env: { NOVACRON_CONFIG: 'novacron.yaml' }, cwd: dir });
    assert.equal(l.file, file);
    assert.equal(l.config.system.node_id, 'from-env-file');
  });
});

test('expansion: ${VAR:default} on an integer key becomes a number; ${VAR} is substituted', async () => {
  const yaml = 'database:\n  port: ${DB_PORT:5432}\n  pool_size: ${POOL}\n  host: "${DB_HOST:localhost}"\n';
  await withFile(yaml, async (file) => {
    const l = await loadConfig({ file, env: { POOL: '33' } });
    assert.equal(l.config.database.port, 5432);
    assert.equal(l.config.database.pool_size, 33);
    assert.equal(l.config.database.host, 'localhost');
    assert.equal(l.sources.get('database.port'), 'file');
  });
});

test('expansion: every missing required variable is named with the key that uses it and its location', async () => {
  const yaml = 'database:\n  password: ${DB_PASSWORD}\ncache:\n  address: "${REDIS_HOST}:6379"\n';
  await withFile(yaml, async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    assert.equal(e.code, ErrorCode.ConfigEnvMissing);
    assert.match(e.message, /DB_PASSWORD/);
    assert.match(e.message, /database\.password/);
    assert.match(e.message, /REDIS_HOST/);
    assert.match(e.message, /cache\.address/);
    assert.equal(issueAt(e, 'database.password').source, `${file}:2:13`);
  });
});

test('env overrides: nested keys, JSON arrays, comma lists, records, booleans', async () => {
  const l = await loadConfig({
    env: {
      NOVACRON_API__REST_PORT: '18080',
      NOVACRON_DATABASE__TYPE: 'postgresql',
      NOVACRON_SYSTEM__DATA_DIR: '/var/lib/novacron',
      NOVACRON_NODE__CAPACITY__CPUS: '4096',
      NOVACRON_NODE__OVERCOMMIT__CPU_RATIO: '2.5',
      NOVACRON_CLUSTER__PEERS: '[{"name":"n2","url":"http://127.0.0.1:18081"}]',
      NOVACRON_CLUSTER__ETCD__ENDPOINTS: 'http://127.0.0.1:2379, http://127.0.0.1:22379',
      NOVACRON_INITIALIZATION__PARALLEL_EXECUTION: 'off',
      NOVACRON_NODE__LABELS__ZONE: 'eu-1',
      NOVACRON_SCHEDULER__WEIGHTS: 'binpack=2,spread=0.5',
      NOVACRON_DEBUG: '1',
      NOVACRON_CONFIG: '',
    },
  });
  const c = l.config;
  assert.equal(c.api.rest_port, 18080);
  assert.equal(c.database.type, 'postgresql');
  assert.equal(c.system.data_dir, '/var/lib/novacron');
  assert.equal(c.node.capacity.cpus, 4096);
  assert.equal(c.node.overcommit.cpu_ratio, 2.5);
  assert.deepEqual(c.cluster.peers, [{ name: 'n2', url: 'http://127.0.0.1:18081' }]);
  assert.deepEqual(c.cluster.etcd.endpoints, ['http://127.0.0.1:2379', 'http://127.0.0.1:22379']);
  assert.equal(c.initialization.parallel_execution, false);
  assert.deepEqual(c.node.labels, { zone: 'eu-1' });
  assert.deepEqual(c.scheduler.weights, { binpack: 2, spread: 0.5 });
  assert.equal(l.sources.get('node.labels'), 'env');
  assert.equal(l.sources.get('cluster.peers'), 'env');
  const json = await loadConfig({ env: { NOVACRON_CLUSTER__ETCD__ENDPOINTS: '["http://a:1"]' } });
  assert.deepEqual(json.config.cluster.etcd.endpoints, ['http://a:1']);
});

test('env overrides: unknown variables and bad values are errors naming the variable', async () => {
  const e = await configError(
    loadConfig({
      env: {
        NOVACRON_API__RESTPORT: '1',
        NOVACRON_API_REST_PORT: '2',
        NOVACRON_API__REST_PORT: 'http',
        NOVACRON_CLUSTER__PEERS: '[{"name": }',
        NOVACRON_DATABASE__TYPE: 'mysql',
        NOVACRON_SOMETHING_ELSE: 'ignored: no double underscore',
      },
    }),
  );
  assert.equal(e.code, ErrorCode.ConfigInvalid);
  const unknown = issueAt(e, 'api.restport');
  assert.match(unknown.message, /NOVACRON_API__RESTPORT.*did you mean NOVACRON_API__REST_PORT/);
  assert.ok(
    e.issues.some((i) => /NOVACRON_API_REST_PORT.*did you mean NOVACRON_API__REST_PORT/.test(i.message)),
  );
  const port = e.issues.find((i) => i.path === 'api.rest_port' && i.value === 'http');
  assert.ok(port);
  assert.equal(port.source, 'env NOVACRON_API__REST_PORT');
  assert.equal(port.allowed, 'an integer from 0 to 65535');
  assert.match(issueAt(e, 'cluster.peers').message, /not valid JSON/);
  assert.match(issueAt(e, 'database.type').allowed ?? '', /sqlite, postgresql/);
  assert.equal(e.issues.length, 5);
});

test('validation reports every bad key at once with path, value and what is allowed', async () => {
  const yaml = [
    'system:',
    '  mode: fast',
    '  node_id: ""',
    'api:',
    '  rest_port: 70000',
    '  grpc_port: "abc"',
    'dwcp:',
    '  profiles:',
    '    internet:',
    '      streams: 0',
    '      compression: gzip',
    'monitoring:',
    '  tracing:',
    '    sample_ratio: 1.5',
    'cluster:',
    '  peers:',
    '    - name: n2',
    '',
  ].join('\n');
  await withFile(yaml, async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    const expect: [string, unknown, RegExp, string][] = [
      ['system.mode', 'fast', /not one of the allowed values/, 'one of: auto, datacenter, internet, hybrid'],
      ['system.node_id', '', /must not be empty/, 'a non-empty string'],
      ['api.rest_port', 70000, /above the maximum 65535/, 'an integer from 0 to 65535'],
      ['api.grpc_port', 'abc', /is not an integer/, 'an integer from 0 to 65535'],
      ['dwcp.profiles.internet.streams', 0, /below the minimum 1/, 'an integer from 1 to 256'],
      ['dwcp.profiles.internet.compression', 'gzip', /not one of/, 'one of: none, lz4, zstd'],
      ['monitoring.tracing.sample_ratio', 1.5, /above the maximum 1/, 'a number from 0 to 1'],
      ['cluster.peers[0].url', undefined, /is required/, 'a non-empty string'],
    ];
    for (const [path, value, message, allowed] of expect) {
      const i = issueAt(e, path);
      assert.deepEqual(i.value, value, path);
      assert.match(i.message, message, path);
      assert.equal(i.allowed, allowed, path);
      assert.match(
        i.source ?? '',
        new RegExp(`^file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+$`),
        path,
      );
    }
    assert.equal(e.issues.length, expect.length, e.message);
    assert.equal(issueAt(e, 'api.rest_port').source, `file ${file}:5:14`);
    for (const [path] of expect) assert.ok(e.message.includes(path), `message lists ${path}`);
  });
});

test('unknown keys are named with their path and a "did you mean"', async () => {
  const yaml = 'system:\n  node_idd: x\ndatabase:\n  tpye: sqlite\nrest_port: 1\nfoo:\n  bar: 1\n';
  await withFile(yaml, async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    assert.match(
      issueAt(e, 'system.node_idd').message,
      /unknown key "node_idd"; did you mean system\.node_id\?/,
    );
    assert.match(issueAt(e, 'database.tpye').message, /did you mean database\.type\?/);
    assert.match(issueAt(e, 'rest_port').message, /did you mean api\.rest_port\?/);
    assert.doesNotMatch(issueAt(e, 'foo').message, /did you mean/);
    assert.equal(issueAt(e, 'database.tpye').source, `file ${file}:4:9`);
    assert.equal(e.issues.length, 4);
  });
});

test('flags: --set pairs parse; unknown flag keys are errors; section values are rejected', async () => {
  assert.deepEqual(parseSetFlags(['api.rest_port=18080', 'node.labels=a=b']), {
    'api.rest_port': '18080',
    'node.labels': 'a=b',
  });
  assert.throws(() => parseSetFlags(['api.rest_port']), ValidationError);
  const ok = await loadConfig({
    env: {},
    flags: parseSetFlags(['node.labels=zone=eu,rack=r1', 'dwcp.enabled=no']),
  });
  assert.deepEqual(ok.config.node.labels, { zone: 'eu', rack: 'r1' });
  assert.equal(ok.config.dwcp.enabled, false);
  const e = await configError(loadConfig({ env: {}, flags: { 'system.dta_dir': '/x', api: 'x' } }));
  assert.match(issueAt(e, 'system.dta_dir').message, /did you mean system\.data_dir/);
  assert.match(issueAt(e, 'api').message, /section/);
});

test('cross-key rules: stream bounds, port clashes, TLS pairs', async () => {
  const e = await configError(
    loadConfig({
      env: {},
      flags: {
        'dwcp.profiles.datacenter.min_streams': 10,
        'dwcp.profiles.datacenter.max_streams': 4,
        'api.grpc_port': 8080,
        'security.tls.cert_file': '/etc/cert.pem',
      },
    }),
  );
  assert.match(issueAt(e, 'dwcp.profiles.datacenter.min_streams').message, /exceeds max_streams/);
  assert.match(issueAt(e, 'api.grpc_port').message, /also used by api\.rest_port/);
  assert.match(issueAt(e, 'security.tls.key_file').message, /set together/);
});

test('cross-key rules: TLS off only on loopback; etcd endpoint, TLS and auth rules in etcd mode, located', async () => {
  const yaml = [
    'api:',
    '  host: 0.0.0.0',
    'security:',
    '  tls:',
    '    enabled: "off"',
    'cluster:',
    '  mode: etcd',
    '  etcd:',
    '    endpoints: ["https://10.0.0.1:2379", "http://10.0.0.2:2379"]',
    '    tls:',
    '      cert_file: /etc/novacron/etcd-client.pem',
    '    username: novacron',
    '',
  ].join('\n');
  await withFile(yaml, async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    const tls = issueAt(e, 'security.tls.enabled');
    assert.match(tls.message, /api\.host 0\.0\.0\.0 is not loopback/);
    assert.match(tls.source ?? '', /novacron\.yaml:5:/);
    assert.match(issueAt(e, 'cluster.etcd.endpoints').message, /mixes http:\/\/ and https:\/\//);
    assert.match(issueAt(e, 'cluster.etcd.tls.ca_file').message, /ca_file is empty/);
    assert.match(issueAt(e, 'cluster.etcd.tls.key_file').message, /must be set together/);
    const pw = issueAt(e, 'cluster.etcd.password');
    assert.match(pw.message, /username and cluster\.etcd\.password must be set together/);
  });
  // The same etcd keys are not judged in single mode (they are unused there), and loopback may run without TLS.
  const ok = await loadConfig({
    env: {},
    flags: { 'security.tls.enabled': 'off', 'cluster.etcd.tls.ca_file': '/etc/ca.pem' },
  });
  assert.equal(ok.config.cluster.mode, 'single');
});

test('YAML syntax errors are located file:line:col', async () => {
  await withFile('system:\n  node_id: a\n  mode: [datacenter\napi:\n  rest_port: 1\n', async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    assert.equal(e.code, ErrorCode.ConfigParse);
    assert.match(e.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+`));
    assert.match(e.issues[0]!.source ?? '', /:(3|4):\d+$/);
  });
  await withFile('system:\n  node_id: a\n  node_id: b\n', async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    assert.match(e.message, /:3:3: Map keys must be unique/);
  });
  await withFile('- just\n- a list\n', async (file) => {
    const e = await configError(loadConfig({ file, env: {} }));
    assert.match(e.message, /must be a mapping/);
  });
});

test('a missing file is a clear error', async () => {
  const e = await configError(loadConfig({ file: '/nonexistent/novacron.yaml', env: {} }));
  assert.match(e.message, /configuration file not found: \/nonexistent\/novacron\.yaml/);
});

test('redactSecrets hides non-empty secrets only; secretPaths lists them', async () => {
  assert.deepEqual(secretPaths().sort(), [
    'cache.password',
    'cluster.etcd.password',
    'cluster.join_token',
    'database.password',
    'security.jwt_secret',
    'security.vault_token',
  ]);
  const l = await loadConfig({
    env: { NOVACRON_DATABASE__PASSWORD: 'hunter2', NOVACRON_CLUSTER__JOIN_TOKEN: 't0k' },
  });
  const r = redactSecrets(l.config);
  assert.equal(r.database.password, '***');
  assert.equal(r.cluster.join_token, '***');
  assert.equal(r.cache.password, '', 'empty secrets stay empty');
  assert.equal(l.config.database.password, 'hunter2', 'the original is untouched');
  assert.doesNotMatch(configToYaml(r), /hunter2|t0k/);
});

test('configToYaml round-trips and annotates keys', async () => {
  const l = await loadConfig({
    env: { NOVACRON_CLUSTER__PEERS: '[{"name":"n2","url":"http://127.0.0.1:1"}]' },
  });
  const text = configToYaml(l.config, {
    comments: new Map([
      ['api.rest_port', 'default'],
      ['cluster.peers', 'env'],
    ]),
    header: ' top',
  });
  assert.deepEqual(parse(text), l.config);
  assert.match(text, /^# top/);
  assert.match(text, /rest_port: 8080 # default/);
  assert.match(text, /peers: # env/);
  assert.ok(text.indexOf('system:') < text.indexOf('api:'), 'schema order');
});
