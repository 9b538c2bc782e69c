// `novacron config validate|print|migrate`: check a file, show the effective configuration with
// where each value came from and the detected mode, and merge legacy per-mode files into one.
import type { Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadConfig, type LoadedConfig } from '../config/loader.js';
import { parseYamlConfig } from '../config/yaml-file.js';
import { migrateToYaml, type LegacyFile } from '../config/migrate.js';
import { detectMode } from '../config/mode-detector.js';
import type { ModeDecision } from '../config/mode-detect.js';
import { parseSetFlags } from '../config/overrides.js';
import { configToYaml, redactSecrets } from '../config/render.js';
import { ConfigError, ValidationError } from '../errors.js';
import { action } from './run.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('Validate, inspect and migrate configuration');

  config
    .command('validate')
    .description(
      'Check a configuration file: YAML syntax, ${VAR} references and every key against the schema',
    )
    .argument('<file>', 'configuration file (YAML)')
    .action(
      action(async (file: string) => {
        // NOVACRON_ overrides are not the file's business: only ${VAR} expansion reads the environment.
        const loaded = await loadConfig({ file, envOverrides: false });
        for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`);
        process.stdout.write(`${loaded.file ?? file} is valid\n`);
      }),
    );

  config
    .command('print')
    .description(
      'Print the effective configuration (defaults < file < environment < flags), secrets redacted',
    )
    .option('-c, --config <file>', 'configuration file (default: $NOVACRON_CONFIG, else built-in defaults)')
    .option('--explain', 'annotate every key with where its value came from')
    .option('-o, --output <format>', 'yaml or json', 'yaml')
    .option('--set <key=value>', 'override a key (repeatable), as a command-line flag would', collect, [])
    .option('--no-detect', 'do not probe the network for the mode')
    .action(
      action(
        async (opts: {
          config?: string;
          explain?: boolean;
          output: string;
          set: string[];
          detect: boolean;
        }) => {
          if (opts.output !== 'yaml' && opts.output !== 'json') {
            throw new ValidationError(`--output must be yaml or json, not "${opts.output}"`);
          }
          let flags: Record<string, string>;
          try {
            flags = parseSetFlags(opts.set);
          } catch (err) {
            throw new ValidationError((err as Error).message);
          }
          const loaded = await loadConfig({ file: opts.config, flags });
          for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`);
          const mode = opts.detect ? await detectMode(loaded.config) : undefined;
          process.stdout.write(
            opts.output === 'json'
              ? printJson(loaded, mode, opts.explain === true)
              : printYaml(loaded, mode, opts.explain === true),
          );
        },
      ),
    );

  config
    .command('migrate')
    .description(
      'Merge legacy per-mode files (dwcp-v3-*.yaml) into one unified file; lists every key not migrated',
    )
    .argument('<files...>', 'legacy files, e.g. config/dwcp-v3-datacenter.yaml config/dwcp-v3-internet.yaml')
    .option('-o, --out <file>', 'write the unified file here (default: stdout)')
    .action(
      action(async (files: string[], opts: { out?: string }) => {
        const legacy: LegacyFile[] = [];
        for (const f of files) {
          const text = await readFile(resolve(f), 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new ConfigError(`cannot read ${f}: ${err.message}`, [], { key: f, cause: err });
          });
          legacy.push({ file: f, value: parseYamlConfig(text, f).value });
        }
        const { yaml, report } = migrateToYaml(legacy, process.env);
        if (opts.out) {
          await writeFile(opts.out, yaml);
          process.stderr.write(`wrote ${opts.out}\n`);
        } else {
          process.stdout.write(yaml);
        }
        for (const line of report) process.stderr.write(`${line}\n`);
      }),
    );
}

function modeLine(mode: ModeDecision | undefined): string {
  if (!mode) return 'mode: not detected (--no-detect)';
  if (mode.explicit) return `mode: ${mode.mode} (${mode.reason})`;
  return `mode: ${mode.mode} (detected, confidence ${mode.confidence.toFixed(2)}: ${mode.reason})`;
}

function printYaml(loaded: LoadedConfig, mode: ModeDecision | undefined, explain: boolean): string {
  const comments = new Map<string, string>();
  if (explain) {
    for (const [path, source] of loaded.sources) {
      const origin = loaded.origins.get(path);
      comments.set(path, source === 'default' || !origin ? source : `${source}: ${origin}`);
    }
  }
  const header = [
    ` effective NovaCron configuration (secrets redacted)`,
    ` file: ${loaded.file ?? 'none (built-in defaults)'}`,
    ` ${modeLine(mode)}`,
  ].join('\n');
  return configToYaml(redactSecrets(loaded.config), { header, comments });
}

function printJson(loaded: LoadedConfig, mode: ModeDecision | undefined, explain: boolean): string {
  const body: Record<string, unknown> = {
    file: loaded.file ?? null,
    mode: mode ?? null,
    config: redactSecrets(loaded.config),
  };
  if (explain) {
    body.sources = Object.fromEntries(
      [...loaded.sources].map(([p, s]) => [p, { source: s, origin: loaded.origins.get(p) ?? s }]),
    );
  }
  return JSON.stringify(body, null, 2) + '\n';
}
