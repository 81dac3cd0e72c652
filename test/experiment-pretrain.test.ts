// The pretrained start ('pretrain-steps'): a K-class detector on scenes of
// the shapes the experiment never uses, whose backbone starts every model
// that would otherwise start from scratch; the models that start from a
// warmup keep starting from it.
import t from 'tap';
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipelineFile } from '../src/cli/options.js';
import { buildPlan } from '../src/experiment/plan.js';
import { loadProfile } from '../src/experiment/profile.js';
import { caslExecutor } from '../src/experiment/stages.js';
import type { CocoDataset } from '../src/io/coco.js';
import { smokeProfilesWith } from './smoke-profile.js';
import { tempDirs } from './temp-dirs.js';

const SAMPLE = path.join(import.meta.dirname, '..', 'fixtures', 'sample');
const tempDir = tempDirs(t);

const profilesWith = (extra: Record<string, unknown>): string => smokeProfilesWith(tempDir('casl-pretrain-'), 'pre', extra);

t.test('the plan: one pretrain stage, and every from-scratch model starts from its backbone', async (t) => {
  const plan = buildPlan(loadProfile(profilesWith({ 'pretrain-steps': 7, 'pretrain-images': 40 }), 'pre'));
  const pre = plan.stages.filter((s) => s.kind === 'pretrain');
  t.equal(pre.length, 1);
  t.same(pre[0].deps, {}, 'it reads nothing of the experiment');
  t.same(pre[0].config.fixtures, { seed: 2, classes: 20, 'skip-classes': 6, labeled: 40, unlabeled: 0, val: 200 }, 'the fourteen other shapes');
  t.match(pre[0].config, { stage: 'finetune', steps: 7, 'init-parts': [] }, 'K classes, from scratch');
  const trains = plan.stages.filter((s) => s.kind === 'train');
  const fromWarmup = trains.filter((s) => s.deps.init !== 'pretrain');
  const fromPretrain = trains.filter((s) => s.deps.init === 'pretrain');
  t.same(fromPretrain.map((s) => s.id).sort(), ['baseline-long/seed-1', 'baseline/seed-1', 'baseline/seed-2', 'baseline/sweep', 'labeler', 'labeler-k',
    'warmup/ca-ssl/seed-1', 'warmup/ca-ssl/seed-2', 'warmup/cs-pseudo/seed-1', 'warmup/cs-pseudo/seed-2',
    'warmup/sweep/delta-0.05/fraction-0.5', 'warmup/sweep/delta-0.05/fraction-1', 'warmup/sweep/delta-0.1/fraction-1'].sort());
  for (const s of fromPretrain) t.same(s.config['init-parts'], ['backbone'], `${s.id}: the backbone only`);
  t.ok(fromWarmup.length > 0 && fromWarmup.every((s) => s.id.startsWith('finetune/') && s.deps.init !== undefined), 'the finetunes start from their warmups');
  t.match(plan.rows.find((r) => r.key === 'baseline')!.warmupData, /from a backbone pretrained on 14 other shapes/);

  const plain = buildPlan(loadProfile(pipelineFile('ca-ssl'), 'smoke'));
  t.notOk(plain.stages.some((s) => s.kind === 'pretrain' || s.deps.init === 'pretrain'), 'without pretrain-steps: from scratch, as before');
  t.match(plain.rows.find((r) => r.key === 'baseline')!.warmupData, /from scratch/);
  const novel = buildPlan(loadProfile(profilesWith({ 'pretrain-steps': 7, 'unlabeled-classes': 12 }), 'pre'));
  t.match(novel.stages.find((s) => s.kind === 'pretrain')!.config.fixtures, { 'skip-classes': 12 }, 'none of the unlabeled split\'s classes either');
  t.throws(() => loadProfile(profilesWith({ 'pretrain-steps': 7, classes: 20 }), 'pre'), /profile 'pre': pretrain-steps needs shapes the experiment does not use, but its fixtures use all 20/);
  t.throws(() => loadProfile(profilesWith({ 'pretrain-steps': -1 }), 'pre'), /key 'pretrain-steps' must be >= 0/);
});

t.test('the stages run: the pretrain makes its own scenes, and a labeler starts from its backbone', async (t) => {
  const plan = buildPlan(loadProfile(profilesWith({ 'pretrain-steps': 2, 'pretrain-images': 4 }), 'pre'));
  const root = tempDir('casl-pretrain-run-');
  const pre = plan.stages.find((s) => s.kind === 'pretrain')!;
  const preDir = path.join(root, 'pretrain');
  mkdirSync(preDir);
  // A smaller val split than the plan's (it is never scored: eval-every 0).
  await caslExecutor({ ...pre, config: { ...pre.config, fixtures: { ...(pre.config.fixtures as object), val: 2 } } }, preDir, {});
  const coco = JSON.parse(readFileSync(path.join(preDir, 'fixtures', 'annotations', 'labeled.json'), 'utf8')) as CocoDataset;
  t.equal(coco.images.length, 4);
  t.ok(coco.annotations.every((a) => a.category_id > 6), 'none of the six');
  const preLog = readFileSync(path.join(preDir, 'log.txt'), 'utf8');
  t.match(preLog, /K = 14/, 'a fourteen-class detector');
  const cores = os.availableParallelism();
  t.match(preLog, new RegExp(`native \\w+, ${cores} threads?\\)`), `on every core (${cores}): nothing else can run yet`);
  t.match(readFileSync(path.join(preDir, 'config.yaml'), 'utf8'), /\ninit: ""\n/, 'from scratch');

  const labeler = plan.stages.find((s) => s.id === 'labeler')!;
  const dir = path.join(root, 'labeler');
  mkdirSync(dir);
  await caslExecutor(labeler, dir, { fixtures: SAMPLE, init: preDir });
  const log = readFileSync(path.join(dir, 'log.txt'), 'utf8');
  t.match(log, new RegExp(`initialised backbone from ${path.join(preDir, 'run', 'model').replace(/[/.]/g, '\\$&')}`), log);
  t.match(log, /K = 1\b/, 'the class-agnostic labeler');
});
