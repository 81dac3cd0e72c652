// Runs a plan's stages, each once, up to `jobs` at a time: a stage starts
// when its inputs are finished (the earliest in plan order first), a stage whose
// directory holds a done.json is taken from the cache; one that was started
// and cut off is run again in the same directory (its command resumes); a
// stage whose input failed is skipped, the others go on, so one crash costs
// only what depends on it.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fixturesKey, planKeys, readDone, stageDir, writeDone } from './cache.js';
import { UsageError } from '../cli/command.js';
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
  /** Stages executing at once (default 1). */
  jobs?: number;
}

/**
 * At most n holders at once; places are handed out after the current turn
 * of the event loop, lowest rank first (plan order: the labelers' pseudo
 * labels before the baselines, so the long warmup chains start early, also
 * when everything before them comes from the cache).
 */
function slots(n: number): <T>(rank: number, f: () => Promise<T>) => Promise<T> {
  let free = n;
  let queued = false;
  const waiting: { rank: number; go: () => void }[] = [];
  const pump = () => {
    queued = false;
    while (free > 0 && waiting.length > 0) {
      free -= 1;
      waiting.shift()!.go();
    }
  };
  // Deferred, so that the stages a finished one unblocked have queued too.
  const later = () => {
    if (!queued) setImmediate(pump);
    queued = true;
  };
  return async (rank, f) => {
    await new Promise<void>((go) => {
      let at = waiting.findIndex((w) => w.rank > rank);
      if (at < 0) at = waiting.length;
      waiting.splice(at, 0, { rank, go });
      later();
    });
    try {
      return await f();
    } finally {
      free += 1;
      later();
    }
  };
}

export async function runPlan(plan: Plan, o: RunOptions): Promise<Map<string, Outcome>> {
  const log = o.log ?? (() => {});
  const fixtures = plan.stages.find((s) => s.kind === 'fixtures');
  if (fixtures && !existsSync(path.join(o.fixturesDir, 'fixtures.json'))) {
    if (o.dryRun) throw new UsageError(`${o.fixturesDir}/fixtures.json is missing: make the fixtures first (the same command without --dry-run makes them) to plan the rest`);
    log(`fixtures: making ${o.fixturesDir}`);
    await o.execute(fixtures, o.fixturesDir, {});
  }
  const keys = planKeys(plan.stages, fixtures ? fixturesKey(o.fixturesDir, fixtures.config) : '');
  const slot = slots(Math.max(1, o.jobs ?? 1));
  // Every stage's outcome as a promise, made in plan order: inputs come
  // before the stages that read them, so their promises already exist.
  const byKey = new Map<string, Promise<Outcome>>();
  const byId = new Map<string, Promise<Outcome>>();
  const total = plan.stages.length;

  const runOne = async (s: StageSpec, i: number, key: string): Promise<Outcome> => {
    const dir = stageDir(o.runsDir, s.kind, key);
    const inputs: Record<string, string> = {};
    let blocked: string | undefined;
    for (const [role, id] of Object.entries(s.deps)) {
      const d = await byId.get(id)!;
      if (d.status === 'failed' || d.status === 'skipped') blocked = id;
      inputs[role] = d.dir;
    }
    const done = readDone(dir);
    if (done) {
      log(`[${i}/${total}] ${s.id}: cached (${path.relative(o.runsDir, dir)})`);
      return { id: s.id, key, dir, status: 'cached', seconds: done.seconds };
    }
    if (o.dryRun) {
      log(`[${i}/${total}] ${s.id}: would run in ${path.relative(o.runsDir, dir)}${existsSync(dir) ? ' (resuming)' : ''}`);
      return { id: s.id, key, dir, status: 'skipped', seconds: 0, error: 'dry run' };
    }
    if (blocked) {
      const error = `its input ${blocked} did not finish`;
      log(`[${i}/${total}] ${s.id}: skipped, ${error}`);
      return { id: s.id, key, dir, status: 'skipped', seconds: 0, error };
    }
    return slot(i, async () => {
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
        log(`[${i}/${total}] ${s.id}: done in ${seconds.toFixed(0)} s`);
        return { id: s.id, key, dir, status: 'done', seconds };
      } catch (e) {
        const error = (e as Error).message;
        log(`[${i}/${total}] ${s.id}: FAILED: ${error}`);
        return { id: s.id, key, dir, status: 'failed', seconds: (performance.now() - t0) / 1000, error };
      }
    });
  };

  plan.stages.forEach((s, n) => {
    const i = n + 1;
    const key = keys.get(s.id)!;
    if (s.kind === 'fixtures') {
      byId.set(s.id, Promise.resolve({ id: s.id, key, dir: o.fixturesDir, status: 'cached', seconds: 0 }));
      return;
    }
    const same = byKey.get(key);
    if (same) {
      const first = plan.stages.find((x) => keys.get(x.id) === key)!.id;
      byId.set(s.id, same.then((r) => {
        log(`[${i}/${total}] ${s.id}: the same stage as ${first}`);
        return { ...r, id: s.id };
      }));
      return;
    }
    const p = runOne(s, i, key);
    byKey.set(key, p);
    byId.set(s.id, p);
  });
  const out = new Map<string, Outcome>();
  for (const s of plan.stages) out.set(s.id, await byId.get(s.id)!);
  return out;
}
