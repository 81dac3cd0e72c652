// The experiment's stage cache: a stage's key (and so its directory) changes
// when its config or one of its inputs changes, and only then; the runner
// runs a stage once, takes finished ones from the cache, re-runs unfinished
// ones, and skips only what depends on a failure.
import t from 'tap';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildPlan, type BaseYaml, type StageSpec } from '../src/experiment/plan.js';
import { planKeys, canonicalJson } from '../src/experiment/cache.js';
import { runPlan } from '../src/experiment/runner.js';
import { loadProfile, type Profile } from '../src/experiment/profile.js';
import { pipelineFile } from '../src/cli/options.js';
import { DEFAULT_MIX } from '../src/fixtures/scene.js';

const profile: Profile = {
  name: 'test', seeds: [1, 2], size: 64, batchSize: 2, labelerSteps: 5, warmupSteps: 4, finetuneSteps: 3, delta: 0.5,
  unlabeledShards: 1, baselineLongSeeds: [1], sweepSteps: 2, sweepDeltas: [0.3, 0.5], sweepFractions: [0.5], galleryDeltas: [0.3], mix: DEFAULT_MIX, pretrainSteps: 0, pretrainImages: 2000,
};

const bases = (lr: Record<string, number> = {}): BaseYaml => (name) => ({ stage: name, lr: lr[name] ?? 0.01, aug: 'weak', out: `runs/${name}` });

function changed(a: Map<string, string>, b: Map<string, string>): string[] {
  return [...a.keys()].filter((id) => a.get(id) !== b.get(id)).sort();
}

/** A temporary runs directory with a fixtures manifest in it, removed after the test. */
function runsDir(t: Tap.Test): { runs: string; fixtures: string } {
  const runs = mkdtempSync(path.join(tmpdir(), 'casl-exp-'));
  const fixtures = path.join(runs, 'fx');
  mkdirSync(fixtures);
  writeFileSync(path.join(fixtures, 'fixtures.json'), JSON.stringify({ seed: 1, labeled: 3 }));
  t.teardown(() => rmSync(runs, { recursive: true, force: true }));
  return { runs, fixtures };
}

t.test('canonical JSON ignores key order', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] }), canonicalJson({ a: [{ x: 1, y: 2 }], b: 1 }));
  t.not(canonicalJson({ a: 1 }), canonicalJson({ a: 2 }));
});

t.test('a key changes with its config or an input, and only then', async (t) => {
  const plan = buildPlan(profile, bases());
  const k0 = planKeys(plan.stages, 'fixtures-A');
  t.same(changed(k0, planKeys(buildPlan(profile, bases()).stages, 'fixtures-A')), [], 'the same plan, the same keys');

  // The labeler's settings: everything downstream of the class-agnostic
  // labeler changes, nothing else. (labeler-k shares the labeler's YAML.)
  const k1 = planKeys(buildPlan(profile, bases({ labeler: 0.02 })).stages, 'fixtures-A');
  const downstream = new Set<string>(['labeler', 'labeler-k']);
  for (const s of plan.stages) if (Object.values(s.deps).some((d) => downstream.has(d))) downstream.add(s.id);
  // A second pass: plan order puts inputs first, so one pass already closes it; check anyway.
  for (const s of plan.stages) if (Object.values(s.deps).some((d) => downstream.has(d))) downstream.add(s.id);
  t.same(changed(k0, k1), [...downstream].sort());
  t.ok(downstream.has('finetune/ca-ssl/seed-2') && downstream.has('finetune/cs-pseudo/seed-1') && downstream.has('finetune/ca-gt/seed-1'));
  t.notOk(downstream.has('baseline/seed-2') || downstream.has('baseline-long/seed-1'), 'the baselines do not read the labelers');
  t.equal(k1.get('baseline/seed-2'), k0.get('baseline/seed-2'));

  // The finetune settings: every finetune and baseline (they all start from pipelines/finetune.yaml).
  const k2 = planKeys(buildPlan(profile, bases({ finetune: 0.05 })).stages, 'fixtures-A');
  const ft = changed(k0, k2);
  t.ok(ft.length > 0);
  for (const id of ft) t.match(id, /^(finetune|baseline)/, `${id} is a finetune`);
  t.equal(k2.get('warmup/ca-ssl/seed-1'), k0.get('warmup/ca-ssl/seed-1'));

  // A profile change that touches one stage: δ of the sweep only.
  const k3 = planKeys(buildPlan({ ...profile, sweepDeltas: [0.3, 0.6] }, bases()).stages, 'fixtures-A');
  t.equal(k3.get('labeler'), k0.get('labeler'));
  t.equal(k3.get('warmup/ca-ssl/seed-1'), k0.get('warmup/ca-ssl/seed-1'));

  // Throughput knobs (images in flight, checkpoint spacing): nothing.
  const fast: BaseYaml = (name) => ({ ...bases()(name), concurrency: 24, prefetch: 6, 'checkpoint-every': 10 });
  t.same(changed(k0, planKeys(buildPlan(profile, fast).stages, 'fixtures-A')), [], 'throughput settings are not identity');

  // New fixtures: everything.
  const k4 = planKeys(plan.stages, 'fixtures-B');
  t.same(changed(k0, k4), [...k0.keys()].sort());
});

t.test("the finetunes take pipelines/finetune.yaml's parts, classifier-init and lr-scale; the baselines take nothing", async (t) => {
  const withInit = (init: Record<string, unknown>): BaseYaml => (name) => ({ ...bases()(name), ...(name === 'finetune' ? init : {}) });
  const plan = buildPlan(profile, withInit({ 'init-parts': ['backbone', 'neck'], 'classifier-init': 'random', 'lr-scale': ['backbone=0.1'] }));
  const cfg = (id: string) => plan.stages.find((s) => s.id === id)!.config;
  for (const id of ['finetune/ca-ssl/seed-1', 'finetune/cs-pseudo/seed-2', 'finetune/ca-gt/seed-1', 'finetune/sweep/delta-0.3/fraction-1']) {
    t.same(cfg(id)['init-parts'], ['backbone', 'neck'], id);
    t.equal(cfg(id)['classifier-init'], 'random', id);
    t.same(cfg(id)['lr-scale'], ['backbone=0.1'], id);
  }
  for (const id of ['baseline/seed-1', 'baseline/sweep', 'baseline-long/seed-1', 'labeler-k']) {
    t.same(cfg(id)['init-parts'], [], `${id} starts from scratch`);
    t.notOk('lr-scale' in cfg(id), `${id} trains every part at the full rate`);
  }
  // Without lr-scale in finetune.yaml the finetunes' configs (and cache keys) are as before it existed.
  t.notOk('lr-scale' in buildPlan(profile, bases()).stages.find((s) => s.id === 'finetune/ca-ssl/seed-1')!.config);
  const copy = buildPlan(profile, withInit({ 'classifier-init': 'copy' }));
  t.equal(copy.stages.find((s) => s.id === 'finetune/ca-ssl/seed-1')!.config['classifier-init'], 'copy');
  t.same(copy.stages.find((s) => s.id === 'finetune/ca-ssl/seed-1')!.config['init-parts'], ['backbone', 'neck', 'head', 'classifier'], 'all parts by default');
});

t.test('equal stages share one key: the K-class labeler is the seed-1 baseline at equal budgets', async (t) => {
  const p = { ...profile, labelerSteps: 3 };
  const plan = buildPlan(p, (name) => ({ lr: 0.01, aug: 'weak', ...(name === 'labeler' || name === 'finetune' ? {} : { aug: 'strong' }) }));
  const k = planKeys(plan.stages, 'f');
  t.equal(k.get('labeler-k'), k.get('baseline/seed-1'));
  t.not(k.get('labeler-k'), k.get('baseline/seed-2'));
});

t.test('runner: once, then cached; an unfinished stage re-runs; a failure skips only its dependents', async (t) => {
  const { runs, fixtures } = runsDir(t);
  let ran: string[] = [];
  let fail = '';
  const execute = async (s: StageSpec, dir: string, inputs: Record<string, string>) => {
    ran.push(s.id);
    for (const d of Object.values(inputs)) t.ok(d, `${s.id} gets its inputs' directories`);
    if (s.id === fail) throw new Error('boom');
    writeFileSync(path.join(dir, 'out.txt'), s.id);
  };
  const plan = buildPlan(profile, bases());
  const unique = new Set(planKeys(plan.stages, 'x').values()).size - 1; // fixtures are not run
  const first = await runPlan(plan, { runsDir: runs, fixturesDir: fixtures, execute });
  t.equal(ran.length, unique, 'every distinct stage once');
  t.ok([...first.values()].every((o) => o.status === 'done' || o.status === 'cached'));

  ran = [];
  await runPlan(plan, { runsDir: runs, fixturesDir: fixtures, execute });
  t.same(ran, [], 'all from the cache');

  // A stage cut off before done.json: run again in its directory.
  rmSync(path.join(first.get('warmup/ca-ssl/seed-2')!.dir, 'done.json'));
  ran = [];
  await runPlan(plan, { runsDir: runs, fixturesDir: fixtures, execute });
  t.same(ran, ['warmup/ca-ssl/seed-2']);

  // Another labeler: its dependents run, one fails; its dependents are skipped, the rest finish.
  const plan2 = buildPlan(profile, bases({ labeler: 0.03 }));
  ran = [];
  fail = 'warmup/ca-ssl/seed-1';
  const out = await runPlan(plan2, { runsDir: runs, fixturesDir: fixtures, execute });
  t.notOk(ran.includes('baseline/seed-1'), 'the baselines are cached');
  t.equal(out.get('warmup/ca-ssl/seed-1')!.status, 'failed');
  t.equal(out.get('finetune/ca-ssl/seed-1')!.status, 'skipped');
  t.equal(out.get('finetune/ca-ssl/seed-2')!.status, 'done');
  t.equal(out.get('finetune/ca-gt/seed-1')!.status, 'done');
});

t.test('runner with jobs: never more than that many at once, inputs always first, each stage once', async (t) => {
  const { runs, fixtures } = runsDir(t);
  const plan = buildPlan(profile, bases());
  const keys = planKeys(plan.stages, 'x');
  const finished = new Set<string>();
  const ran: string[] = [];
  let running = 0;
  let peak = 0;
  const execute = async (s: StageSpec, dir: string) => {
    running += 1;
    peak = Math.max(peak, running);
    for (const id of Object.values(s.deps)) if (id !== 'fixtures') t.ok(finished.has(id), `${s.id} starts after its input ${id}`);
    ran.push(s.id);
    await new Promise((r) => setTimeout(r, 2 + (ran.length % 3)));
    writeFileSync(path.join(dir, 'out.txt'), s.id);
    finished.add(s.id);
    // A stage sharing another's key finishes with it.
    for (const x of plan.stages) if (keys.get(x.id) === keys.get(s.id)) finished.add(x.id);
    running -= 1;
  };
  const out = await runPlan(plan, { runsDir: runs, fixturesDir: fixtures, execute, jobs: 2 });
  t.equal(peak, 2, 'two at once, never three');
  t.ok(ran.indexOf('pseudo/agnostic') < ran.indexOf('baseline/seed-1'), 'the pseudo labels (the long chain) before the baselines, which were ready first');
  t.equal(ran.length, new Set(keys.values()).size - 1, 'every distinct stage once');
  t.same([...out.keys()], plan.stages.map((s) => s.id), 'outcomes in plan order');
  t.ok([...out.values()].every((o) => o.status === 'done' || o.status === 'cached'));

  // Restarted with the labelers cached: the pseudo labels still go first.
  for (const id of ['pseudo/agnostic', 'baseline/seed-1']) rmSync(path.join(out.get(id)!.dir, 'done.json'));
  ran.length = 0;
  await runPlan(plan, { runsDir: runs, fixturesDir: fixtures, execute, jobs: 1 });
  t.same(ran.slice(0, 2), ['pseudo/agnostic', 'baseline/seed-1'], 'plan order, though the baseline was ready first');
});

t.test('the profiles in pipelines/ca-ssl.yaml load; bad keys are named', async (t) => {
  for (const name of ['quick', 'full', 'smoke']) t.equal(loadProfile(pipelineFile('ca-ssl'), name).name, name);
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-prof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'p.yaml');
  writeFileSync(f, 'profiles:\n  a:\n    seeds: [1]\n    sise: 64\n');
  t.throws(() => loadProfile(f, 'a'), /p\.yaml: profile 'a': .*key 'size' is missing.*unknown key 'sise'/);
  t.throws(() => loadProfile(f, 'b'), /no profile 'b' \(profiles: a\)/);
});
