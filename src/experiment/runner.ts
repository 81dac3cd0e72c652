// Runs a plan's stages in order, each once: a stage whose directory holds a
// done.json is taken from the cache; one that was started and cut off is
// run again in the same directory (its command resumes); a stage whose input
// failed is skipped, the others go on, so one crash costs only what depends
// on it.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fixturesKey, planKeys, readDone, stageDir, writeDone } from './cache.js';
import type { Plan, StageSpec } from './plan.js';

/** Makes one stage's outputs in `dir` from its inputs (role → directory). */
export type Executor = (stage: StageSpec, dir: string, inputs: Record<string, string>) => Promise<void>;

export interface Outcome {
  id: string;
  key: string;
  dir: string;
  status: 'cached' | 'done' | 'failed' | 'skipped';
  /** Wall time of the run that made it (from done.json when cached). */
  seconds: number;
  error?: string;
}

export interface RunOptions {
  runsDir: string;
  fixturesDir: string;
  execute: Executor;
  log?: (line: string) => void;
  /** Only report what would run. */
  dryRun?: boolean;
}

export async function runPlan(plan: Plan, o: RunOptions): Promise<Map<string, Outcome>> {
  const log = o.log ?? (() => {});
  const fixtures = plan.stages.find((s) => s.kind === 'fixtures');
  if (fixtures && !existsSync(path.join(o.fixturesDir, 'fixtures.json'))) {
    if (o.dryRun) throw new Error(`${o.fixturesDir}/fixtures.json is missing: make the fixtures first (make fixtures) to plan the rest`);
    log(`fixtures: making ${o.fixturesDir}`);
    await o.execute(fixtures, o.fixturesDir, {});
  }
  const keys = planKeys(plan.stages, fixtures ? fixturesKey(o.fixturesDir, fixtures.config) : '');
  const byKey = new Map<string, Outcome>();
  const out = new Map<string, Outcome>();
  const total = plan.stages.length;
  let i = 0;
  for (const s of plan.stages) {
    i += 1;
    const key = keys.get(s.id)!;
    if (s.kind === 'fixtures') {
      out.set(s.id, { id: s.id, key, dir: o.fixturesDir, status: 'cached', seconds: 0 });
      continue;
    }
    const same = byKey.get(key);
    if (same) {
      out.set(s.id, { ...same, id: s.id });
      log(`[${i}/${total}] ${s.id}: the same stage as ${same.id}`);
      continue;
    }
    const dir = stageDir(o.runsDir, s.kind, key);
    const inputs: Record<string, string> = {};
    let blocked: string | undefined;
    for (const [role, id] of Object.entries(s.deps)) {
      const d = out.get(id)!;
      if (d.status === 'failed' || d.status === 'skipped') blocked = id;
      inputs[role] = d.dir;
    }
    let r: Outcome;
    const done = readDone(dir);
    if (done) {
      r = { id: s.id, key, dir, status: 'cached', seconds: done.seconds };
      log(`[${i}/${total}] ${s.id}: cached (${path.relative(o.runsDir, dir)})`);
    } else if (o.dryRun) {
      r = { id: s.id, key, dir, status: 'skipped', seconds: 0, error: 'dry run' };
      log(`[${i}/${total}] ${s.id}: would run in ${path.relative(o.runsDir, dir)}${existsSync(dir) ? ' (resuming)' : ''}`);
    } else if (blocked) {
      r = { id: s.id, key, dir, status: 'skipped', seconds: 0, error: `its input ${blocked} did not finish` };
      log(`[${i}/${total}] ${s.id}: skipped, ${r.error}`);
    } else {
      const resuming = existsSync(dir);
      mkdirSync(dir, { recursive: true });
      const depKeys = Object.fromEntries(Object.entries(s.deps).map(([role, id]) => [role, keys.get(id)!]));
      writeFileSync(path.join(dir, 'stage.json'), JSON.stringify({ id: s.id, kind: s.kind, key, config: s.config, deps: depKeys, inputs }, null, 2) + '\n');
      log(`[${i}/${total}] ${s.id}: ${resuming ? 'resuming' : 'running'} in ${path.relative(o.runsDir, dir)}`);
      const t0 = performance.now();
      try {
        await o.execute(s, dir, inputs);
        const seconds = (performance.now() - t0) / 1000;
        writeDone(dir, { id: s.id, kind: s.kind, key, config: s.config, deps: depKeys, seconds, finished: new Date().toISOString() });
        r = { id: s.id, key, dir, status: 'done', seconds };
        log(`[${i}/${total}] ${s.id}: done in ${seconds.toFixed(0)} s`);
      } catch (e) {
        r = { id: s.id, key, dir, status: 'failed', seconds: (performance.now() - t0) / 1000, error: (e as Error).message };
        log(`[${i}/${total}] ${s.id}: FAILED: ${r.error}`);
      }
    }
    byKey.set(key, r);
    out.set(s.id, r);
  }
  return out;
}
