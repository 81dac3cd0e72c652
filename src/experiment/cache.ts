// Stage identity: a stage's directory is named by a hash of its kind, its
// config and its inputs' hashes, so a change anywhere upstream changes every
// key below it and nothing else. The fixtures, made outside the experiment,
// are keyed by their manifest (fixtures.json: generator, version, seed,
// split sizes), which changes whenever the generator's output would.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import type { StageSpec } from './plan.js';

/** Bump when the meaning of a stage's config or the layout of its outputs changes. */
export const CACHE_VERSION = 1;

/** JSON with object keys sorted, so equal values hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The key of a stage given its inputs' keys (role → key). */
export function stageKey(stage: Pick<StageSpec, 'kind' | 'config'>, depKeys: Record<string, string>): string {
  return sha256(canonicalJson({ v: CACHE_VERSION, kind: stage.kind, config: stage.config, deps: depKeys }));
}

/** The fixtures' key: their manifest's content. */
export function fixturesKey(fixturesDir: string, config: Record<string, unknown>): string {
  const manifest = path.join(fixturesDir, 'fixtures.json');
  return sha256(canonicalJson({ v: CACHE_VERSION, kind: 'fixtures', config, manifest: JSON.parse(readFileSync(manifest, 'utf8')) }));
}

/** Every stage's key, in plan order (inputs come before the stages that read them). */
export function planKeys(stages: readonly StageSpec[], fixtures: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const s of stages) {
    if (s.kind === 'fixtures') {
      keys.set(s.id, fixtures);
      continue;
    }
    const depKeys: Record<string, string> = {};
    for (const [role, id] of Object.entries(s.deps)) {
      const k = keys.get(id);
      if (!k) throw new Error(`plan: stage '${s.id}' reads '${id}' (${role}), which is not before it in the plan`);
      depKeys[role] = k;
    }
    keys.set(s.id, stageKey(s, depKeys));
  }
  return keys;
}

export function stageDir(runsDir: string, kind: string, key: string): string {
  return path.join(runsDir, 'stages', `${kind}-${key.slice(0, 16)}`);
}

export interface DoneMarker {
  id: string;
  kind: string;
  key: string;
  config: Record<string, unknown>;
  deps: Record<string, string>;
  seconds: number;
  finished: string;
}

export function readDone(dir: string): DoneMarker | null {
  const f = path.join(dir, 'done.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as DoneMarker) : null;
}

/** Written last, atomically: its presence is what makes a stage finished. */
export function writeDone(dir: string, m: DoneMarker): void {
  const f = path.join(dir, 'done.json');
  writeFileSync(`${f}.tmp`, JSON.stringify(m, null, 2) + '\n');
  renameSync(`${f}.tmp`, f);
}
