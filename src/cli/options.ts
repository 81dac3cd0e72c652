// Turns `pipelines/<name>.yaml` defaults plus command-line flags into one
// validated options object. Unknown keys and wrong types are errors that
// name the key and the file (or the flag).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import { type Command, type OptionSpec, type Options, UsageError } from './command.js';

/** The casl checkout (where pipelines/ lives): the nearest package.json above this file, in src/ or dist/. */
export const PROJECT_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('casl: cannot find the checkout (no package.json above the code)');
    dir = up;
  }
  return dir;
})();

export function pipelineFile(name: string): string {
  return path.join(PROJECT_ROOT, 'pipelines', `${name}.yaml`);
}

function jsonType(spec: OptionSpec): object {
  switch (spec.type) {
    case 'string': return spec.choices ? { type: 'string', enum: spec.choices } : { type: 'string' };
    case 'number': return { type: 'number' };
    case 'integer': return { type: 'integer' };
    case 'boolean': return { type: 'boolean' };
    case 'string[]': return { type: 'array', items: { type: 'string' } };
  }
}

const ajv = new Ajv({ allErrors: true, strict: true });

/** Validates a defaults object (from YAML) against the command's options. */
export function validateConfig(cmd: Command, config: unknown, file: string): Options {
  const schema = {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(cmd.options).map(([k, s]) => [k, jsonType(s)])),
  };
  const validate = ajv.compile(schema);
  if (config === null || config === undefined) return {};
  if (!validate(config)) {
    const msgs = (validate.errors ?? []).map((e) => {
      if (e.keyword === 'additionalProperties') {
        const key = (e.params as { additionalProperty: string }).additionalProperty;
        return `unknown key '${key}' (known: ${Object.keys(cmd.options).join(', ')})`;
      }
      const key = e.instancePath.replace(/^\//, '') || '(top level)';
      return `key '${key}' ${e.message}`;
    });
    throw new UsageError(`${file}: ${msgs.join('; ')}`);
  }
  return config as Options;
}

export function loadConfig(cmd: Command, file: string): Options {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid YAML: ${(e as Error).message}`);
  }
  return validateConfig(cmd, data, file);
}

function coerce(name: string, spec: OptionSpec, raw: string): unknown {
  switch (spec.type) {
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new UsageError(`--${name} must be one of ${spec.choices.join('|')}, got '${raw}'`);
      }
      return raw;
    case 'number':
    case 'integer': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v) || (spec.type === 'integer' && !Number.isInteger(v))) {
        throw new UsageError(`--${name} takes ${spec.type === 'integer' ? 'an integer' : 'a number'}, got '${raw}'`);
      }
      return v;
    }
    case 'boolean':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new UsageError(`--${name} takes true or false, got '${raw}'`);
    case 'string[]':
      return [raw];
  }
}

/**
 * Parses argv for `cmd`: defaults from the spec, then from the YAML (the
 * command's pipeline, or `--config FILE`), then flags. Returns the options
 * and the positional arguments.
 */
export function parseArgs(cmd: Command, argv: string[]): { opts: Options; positionals: string[]; configFile?: string } {
  const byShort = new Map(Object.entries(cmd.options).filter(([, s]) => s.short).map(([k, s]) => [s.short!, k]));
  const flags: Options = {};
  const positionals: string[] = [];
  let configFile: string | undefined = cmd.pipeline ? pipelineFile(cmd.pipeline) : undefined;
  let explicitConfig = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      value = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      const long = byShort.get(arg.slice(1));
      if (!long) throw new UsageError(`unknown flag ${arg} for 'casl ${cmd.name}' (see 'casl help ${cmd.name}')`);
      name = long;
    }
    if (name === 'config') {
      configFile = value ?? argv[++i];
      explicitConfig = true;
      if (!configFile) throw new UsageError('--config needs a file');
      continue;
    }
    let spec = cmd.options[name];
    let negated = false;
    if (!spec && name.startsWith('no-') && cmd.options[name.slice(3)]?.type === 'boolean') {
      spec = cmd.options[name.slice(3)];
      name = name.slice(3);
      negated = true;
    }
    if (!spec) throw new UsageError(`unknown flag --${name} for 'casl ${cmd.name}' (see 'casl help ${cmd.name}')`);
    if (spec.type === 'boolean' && value === undefined) {
      flags[name] = !negated;
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
    }
    const v = coerce(name, spec, value);
    flags[name] = spec.type === 'string[]' ? [...((flags[name] as string[]) ?? []), ...(v as string[])] : v;
  }
  const opts: Options = {};
  for (const [k, s] of Object.entries(cmd.options)) if (s.default !== undefined) opts[k] = s.default;
  if (configFile && (explicitConfig || existsSync(configFile))) Object.assign(opts, loadConfig(cmd, configFile));
  Object.assign(opts, flags);
  return { opts, positionals, configFile: configFile && existsSync(configFile) ? configFile : undefined };
}

export function helpText(cmd: Command): string {
  const lines = [`${cmd.usage}`, '', cmd.summary, '', 'Options:'];
  for (const [k, s] of Object.entries(cmd.options)) {
    const flag = `  --${k}${s.short ? `, -${s.short}` : ''}${s.type === 'boolean' ? '' : ` <${s.choices ? s.choices.join('|') : s.type}>`}`;
    lines.push(`${flag.padEnd(34)} ${s.help}${s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : ''}`);
  }
  lines.push('  --config <file>'.padEnd(35) + `defaults from this YAML${cmd.pipeline ? ` instead of pipelines/${cmd.pipeline}.yaml` : ''}`);
  lines.push('', `Example:\n  ${cmd.example}`);
  return lines.join('\n') + '\n';
}
