// A profiles file for experiment tests: the smoke profile of
// pipelines/ca-ssl.yaml with some keys on top, under another name.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { pipelineFile } from '../src/cli/options.js';

/** Writes DIR/ca-ssl.yaml whose profile `name` is smoke with `extra` on top; returns its path. */
export function smokeProfilesWith(dir: string, name: string, extra: Record<string, unknown>): string {
  const smoke = (parseYaml(readFileSync(pipelineFile('ca-ssl'), 'utf8')) as { profiles: Record<string, object> }).profiles.smoke;
  const file = path.join(dir, 'ca-ssl.yaml');
  writeFileSync(file, stringify({ profiles: { [name]: { ...smoke, ...extra } } }));
  return file;
}
