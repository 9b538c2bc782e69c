// `novacron ml …`: run the ML service (`serve`), train and evaluate its bandwidth and lifetime models.
import type { Command } from 'commander';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, resolve, join } from 'node:path';
import { ValidationError } from '../errors.js';
import { loadTraceDir } from '../ml/eval/traces.js';
import {
  crossValidateBandwidth,
  evaluateBandwidthModel,
  trainBandwidthProfiles,
  DEFAULT_TRAIN_OPTIONS,
  type DatasetExtras,
  type DatasetReport,
} from '../ml/eval/bandwidth-eval.js';
import { loadAzureSplit, parseFlavorMap } from '../ml/eval/azure.js';
import { DB_PROFILE, loadDbDataset } from '../ml/eval/db-samples.js';
import { evaluateLifetime, lifetimeExamples, classifierMetrics } from '../ml/eval/lifetime-eval.js';
import { predictLifetime, trainLifetimeModel } from '../ml/models/lifetime-model.js';
import {
  DEFAULT_MODELS_DIR,
  makeModelFile,
  readModelFile,
  scanModelsDir,
  type BandwidthModelFile,
  type LifetimeModelFile,
} from '../ml/models/model-file.js';
import { startMlServer } from '../ml/service/server.js';
import { createNodeLogger } from '../observability/logger.js';
import { action, output, renderTable } from './run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function int(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new ValidationError(`${flag} expects a whole number, got ${v}`);
    return n;
  };
}
function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ValidationError(`${flag} expects a number, got ${v}`);
    return n;
  };
}

/** Writes a file atomically (temp file + rename), so a watching service never reads half a model. */
function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${Date.now()}-${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const f4 = (x: number) => Number(x.toPrecision(4));

/** The text table of bandwidth evaluation rows: model and each baseline, per data set. */
export function renderBandwidthTable(
  rows: readonly { report: DatasetReport; extras: DatasetExtras }[],
): string {
  const out: Record<string, unknown>[] = [];
  for (const { report: r, extras: x } of rows) {
    const best = Math.min(r.baselines.last.mae, r.baselines.harmonic.mae, r.baselines.ewma.mae);
    const bar = r.model.mae < best && r.model.overRate <= r.baselines.harmonic.overRate ? 'met' : 'MISSED';
    for (const [name, m, nm] of [
      ['model', r.model, x.normalizedMae.model],
      ['last', r.baselines.last, x.normalizedMae.last],
      ['harmonic', r.baselines.harmonic, x.normalizedMae.harmonic],
      ['ewma', r.baselines.ewma, x.normalizedMae.ewma],
    ] as const) {
      out.push({
        dataset: name === 'model' ? r.name : '',
        predictor: name === 'model' ? `model (${x.profile})` : name,
        mae: f4(m.mae),
        rmse: f4(m.rmse),
        'mape%': f4(m.mape),
        'over%': pct(m.overRate),
        nmae: f4(nm),
        'mae/best': f4(m.mae / best),
        bar: name === 'model' ? bar : '',
      });
    }
  }
  return renderTable(out, [
    'dataset',
    'predictor',
    'mae',
    'rmse',
    'mape%',
    'over%',
    'nmae',
    'mae/best',
    'bar',
  ]);
}

interface TrainBandwidthFlags {
  traces?: string[];
  fromDb?: boolean;
  config?: string;
  out: string;
  bins: number;
  margin: number;
}

export function registerMlCommand(program: Command): void {
  const ml = program
    .command('ml')
    .description('ML service (bandwidth prediction, placement hints) and its models');

  ml.command('serve')
    .description('Run the ML gRPC service (BandwidthPredictor, TaskPlacer, grpc.health.v1)')
    .option('--port <n>', 'gRPC port', int('--port'), 50051)
    .option('--host <addr>', 'bind address', '127.0.0.1')
    .option('--models <dir>', 'directory of model files (newest of each kind wins; reloaded on change)')
    .option(
      '--metrics-port <n>',
      'Prometheus /metrics HTTP port (0: any free port)',
      int('--metrics-port'),
      9464,
    )
    .option('--no-metrics', 'do not serve /metrics over HTTP')
    .option('--no-watch', 'do not watch the models directory (reload with SIGHUP)')
    .option(
      '--server <impl>',
      'gRPC server implementation: http2 (lean, node:http2) or grpc-js',
      (v: string) => {
        if (v !== 'http2' && v !== 'grpc-js') throw new Error(`--server ${v}: expected http2 or grpc-js`);
        return v;
      },
      'http2',
    )
    .action(
      action(
        async (flags: {
          port: number;
          host: string;
          models?: string;
          metricsPort: number;
          metrics: boolean;
          watch: boolean;
          server: 'http2' | 'grpc-js';
        }) => {
          const { logger } = createNodeLogger({
            log_level: 'info',
            log_format: 'auto',
            node_id: 'novacron-ml',
          });
          const server = await startMlServer({
            port: flags.port,
            host: flags.host,
            ...(flags.models === undefined ? {} : { modelsDir: resolve(flags.models) }),
            ...(flags.metrics ? { metricsPort: flags.metricsPort } : {}),
            watch: flags.watch,
            server: flags.server,
            serviceVersion: pkg.version,
            logger,
          });
          process.stdout.write(
            `ml service listening on ${flags.host}:${server.port}` +
              (server.metricsPort === undefined
                ? ''
                : `, metrics on http://${flags.host}:${server.metricsPort}/metrics`) +
              '\n',
          );
          process.on('SIGHUP', () => {
            server.reload();
          });
          await new Promise<void>((done) => {
            const stop = () => {
              void server.close().then(done);
            };
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
          });
        },
      ),
    );

  const train = ml.command('train').description('Train a model file');
  train
    .command('bandwidth')
    .description('Train the PBA model: one profile per trace directory plus a generic one')
    .option('--traces <dirs...>', 'trace directories (Pensieve two-column files or driving-test CSVs)')
    .option(
      '--from-db',
      `also train a profile "${DB_PROFILE}" on the bandwidth_samples table of the configured database`,
    )
    .option(
      '-c, --config <file>',
      'configuration file for --from-db (default: $NOVACRON_CONFIG, else defaults)',
    )
    .requiredOption('--out <file>', 'model file to write (JSON)')
    .option('--bins <n>', 'volatility regimes', int('--bins'), DEFAULT_TRAIN_OPTIONS.bins)
    .option(
      '--margin <x>',
      'quantile margin below the harmonic mean over-rate',
      num('--margin'),
      DEFAULT_TRAIN_OPTIONS.margin,
    )
    .action(
      action(async (flags: TrainBandwidthFlags) => {
        const traces = flags.traces ?? [];
        const datasets = traces.map((d) => loadTraceDir(d));
        const sources = traces.map((d) => resolve(d));
        if (flags.fromDb) {
          const { loadConfig } = await import('../config/loader.js');
          const { openStore, storeConfigFrom } = await import('../store/index.js');
          const { config } = await loadConfig({ file: flags.config });
          const store = await openStore(storeConfigFrom(config));
          try {
            const ds = await loadDbDataset(store.bandwidth);
            const n = ds.series.reduce((a, x) => a + x.samples.length, 0);
            if (n < 100)
              throw new ValidationError(
                `bandwidth_samples holds ${n} usable samples; at least 100 are needed`,
              );
            datasets.push(ds);
            sources.push(
              `bandwidth_samples (${config.database.type}, ${n} samples, ${ds.series.length} series)`,
            );
          } finally {
            await store.close();
          }
        }
        if (datasets.length === 0) throw new ValidationError('give --traces DIR… and/or --from-db');
        const profiles = trainBandwidthProfiles(datasets, { bins: flags.bins, margin: flags.margin });
        const file = makeModelFile('bandwidth', profiles, {
          trainedOn: sources,
          notes: `profiles: ${Object.keys(profiles.profiles).join(', ')}; bins ${flags.bins}, margin ${flags.margin}`,
        });
        writeAtomically(flags.out, JSON.stringify(file) + '\n');
        process.stdout.write(
          `wrote ${flags.out}: ${file.version} (${Object.keys(profiles.profiles).join(', ')})\n`,
        );
      }),
    );
  train
    .command('lifetime')
    .description('Train the VM lifetime model from an Azure V1 flavor trace directory')
    .requiredOption(
      '--traces <dir>',
      'directory with v1.<split>.txt, v1.<split>.c<T>.txt, flav_map.txt, v1.interval_map.txt',
    )
    .option('--split <name>', 'split with a duration file', 'dev')
    .requiredOption('--out <file>', 'model file to write (JSON)')
    .action(
      action((flags: { traces: string; split: string; out: string }) => {
        const { vms, intervals } = loadAzureSplit(flags.traces, flags.split);
        const sizes = flavorSizes(flags.traces);
        const { examples, dropped } = lifetimeExamples(vms, intervals);
        const params = trainLifetimeModel(examples, sizes);
        const evaluation = evaluateLifetime(examples, sizes, 14, dropped);
        const file = makeModelFile('lifetime', params, {
          trainedOn: [
            `${resolve(flags.traces)} (${flags.split}, ${examples.length} VMs, ${dropped} censored dropped)`,
          ],
          evaluation,
        });
        writeAtomically(flags.out, JSON.stringify(file) + '\n');
        process.stdout.write(
          `wrote ${flags.out}: ${file.version}; blocked-split accuracy ${pct(evaluation.model.accuracy)} (majority ${pct(evaluation.baselines.majority.accuracy)})\n`,
        );
      }),
    );

  const evalCmd = ml.command('eval').description('Evaluate a model against its baselines');
  evalCmd
    .command('bandwidth')
    .description(
      'Per data set: MAE, RMSE, MAPE and over-estimation rate of the model and of last value, harmonic mean (5) and EWMA (0.3)',
    )
    .requiredOption('--traces <dirs...>', 'trace directories, one data set each')
    .option('--model <file>', 'model file (default: the newest in the shipped models/)')
    .option(
      '--cv <k>',
      'instead of a model file: k-fold cross-validation by series (train on k-1 folds)',
      int('--cv'),
    )
    .option(
      '--profile <name>',
      'model profile to use for every data set (default: the data set name, else generic)',
    )
    .option('--json', 'print JSON')
    .action(
      action((flags: { traces: string[]; model?: string; cv?: number; profile?: string; json?: boolean }) => {
        let model: BandwidthModelFile | undefined;
        if (flags.cv === undefined) {
          const f = flags.model
            ? readModelFile(flags.model)
            : scanModelsDir(DEFAULT_MODELS_DIR).bandwidth?.file;
          if (!f || f.kind !== 'bandwidth')
            throw new ValidationError(`${flags.model ?? DEFAULT_MODELS_DIR}: no bandwidth model`);
          model = f;
        } else if (flags.cv < 2) throw new ValidationError('--cv needs at least 2 folds');
        const rows = flags.traces.map((dir) => {
          const ds = loadTraceDir(dir);
          if (model) {
            if (model.trainedOn.some((t) => resolve(t) === resolve(dir))) {
              process.stderr.write(
                `note: ${ds.name} is in the model's training data (in-sample figures); use --cv for held-out ones\n`,
              );
            }
            return evaluateBandwidthModel(ds, model.params, flags.profile);
          }
          return crossValidateBandwidth(ds, flags.cv);
        });
        output({ datasets: rows.map((r) => r.report) }, flags.json === true, () =>
          renderBandwidthTable(rows),
        );
      }),
    );
  evalCmd
    .command('lifetime')
    .description(
      'Lifetime classes (short < 1 h, medium < 1 day, long) against majority class and the batch-size rule',
    )
    .requiredOption('--traces <dir>', 'Azure V1 flavor trace directory')
    .option('--split <name>', 'split with a duration file', 'dev')
    .option(
      '--model <file>',
      'evaluate this model file on the whole split (default: train/test on a blocked time split)',
    )
    .option('--json', 'print JSON')
    .action(
      action((flags: { traces: string; split: string; model?: string; json?: boolean }) => {
        const { vms, intervals } = loadAzureSplit(flags.traces, flags.split);
        const sizes = flavorSizes(flags.traces);
        const { examples, dropped } = lifetimeExamples(vms, intervals);
        let result: unknown;
        if (flags.model) {
          const f = readModelFile(flags.model);
          if (f.kind !== 'lifetime') throw new ValidationError(`${flags.model} is not a lifetime model`);
          const lf = f as LifetimeModelFile;
          if (lf.trainedOn.some((t) => t.startsWith(`${resolve(flags.traces)} (${flags.split},`))) {
            process.stderr.write(
              `note: the model was trained on this split (in-sample figures); omit --model for the blocked split\n`,
            );
          }
          const labels = examples.map((e) => e.cls);
          const majority = lf.params.prior.indexOf(Math.max(...lf.params.prior));
          result = {
            split: flags.split,
            testVms: examples.length,
            droppedCensored: dropped,
            model: classifierMetrics(
              labels,
              examples.map((e) => predictLifetime(lf.params, e.vm).probabilities),
            ),
            baselines: {
              majority: classifierMetrics(
                labels,
                examples.map(() => majority),
              ),
              batchRule: classifierMetrics(
                labels,
                examples.map((e) => (e.vm.batchSize > 10 ? 0 : 2)),
              ),
              prior: classifierMetrics(
                labels,
                examples.map(() => lf.params.prior),
              ),
            },
          };
        } else {
          result = { split: flags.split, ...evaluateLifetime(examples, sizes, 14, dropped) };
        }
        output(result, flags.json === true, () => renderLifetimeTable(result as LifetimeTableInput));
      }),
    );
}

interface LifetimeTableInput {
  model: ReturnType<typeof classifierMetrics>;
  baselines: Record<string, ReturnType<typeof classifierMetrics>>;
}

function renderLifetimeTable(r: LifetimeTableInput): string {
  const rows = [['model', r.model] as const, ...Object.entries(r.baselines)].map(([name, m]) => ({
    predictor: name,
    accuracy: pct(m.accuracy),
    'macro-F1': f4(m.macroF1),
    'log-loss': m.logLoss === undefined ? '-' : f4(m.logLoss),
    'short-vs-rest': pct(m.shortAccuracy),
  }));
  return renderTable(rows, ['predictor', 'accuracy', 'macro-F1', 'log-loss', 'short-vs-rest']);
}

function flavorSizes(dir: string): Record<string, readonly [number, number]> {
  const fm = parseFlavorMap(readFileSync(join(dir, 'flav_map.txt'), 'utf8'));
  return Object.fromEntries([...fm].map(([k, v]) => [k, [v.vcpus, v.memoryGb] as const]));
}
