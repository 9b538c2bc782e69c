// YAML configuration files: parse with line/column tracking, so that syntax errors and bad keys
// are reported as file:line:col (see locate() in loader.ts).
import { LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, ErrorCode, type ConfigIssue } from '../errors.js';
import { isPlainObject } from './expand.js';

/** A parsed YAML file: its plain value plus what is needed to point at a key's line and column. */
export interface ParsedYaml {
  readonly file: string;
  readonly value: Record<string, unknown>;
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly warnings: string[];
}

/** Parses YAML text; a syntax error (or a non-mapping top level) is a ConfigError located file:line:col. */
export function parseYamlConfig(text: string, file: string): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const issues: ConfigIssue[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
      return { path: '', value: undefined, message: firstLine(e.message), source: where };
    });
    throw new ConfigError(
      `YAML syntax error in ${issues.map((i) => `${i.source}: ${i.message}`).join('\n  ')}`,
      issues,
      { key: file, hint: 'fix the YAML syntax at the line and column shown' },
      ErrorCode.ConfigParse,
    );
  }
  const value: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (value === null || value === undefined) {
    return { file, value: {}, doc, lines, warnings: doc.warnings.map((w) => w.message) };
  }
  if (!isPlainObject(value)) {
    const pos = doc.contents?.range ? lines.linePos(doc.contents.range[0]) : undefined;
    const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
    throw new ConfigError(
      `${where}: the top level of a configuration file must be a mapping of sections (system:, api:, …)`,
      [{ path: '', value, message: 'top level is not a mapping', source: where }],
      { key: file },
      ErrorCode.ConfigParse,
    );
  }
  return { file, value, doc, lines, warnings: doc.warnings.map((w) => w.message) };
}

function firstLine(s: string): string {
  return s
    .split('\n')[0]!
    .replace(/ at line \d+, column \d+:?$/, '')
    .trim();
}
