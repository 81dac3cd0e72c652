// The results table: mean ± sample std over every seed (never the best),
// unfinished seeds named and left out, the verdict on the claims.
import t from 'tap';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { meanStd, formatStat, collectResults, formatTable, verdict } from '../src/experiment/table.js';
import { buildPlan } from '../src/experiment/plan.js';
import type { Outcome } from '../src/experiment/runner.js';
import { DEFAULT_MIX } from '../src/fixtures/scene.js';
import type { Profile } from '../src/experiment/profile.js';

t.test('mean and sample std', async (t) => {
  const s = meanStd([0.1, 0.2, 0.3, 0.4]);
  t.equal(s.n, 4);
  t.ok(Math.abs(s.mean - 0.25) < 1e-12);
  t.ok(Math.abs(s.std - Math.sqrt(((0.15 ** 2) * 2 + (0.05 ** 2) * 2) / 3)) < 1e-12, 'divides by n - 1');
  t.equal(formatStat(s), '25.0 ± 12.9');
  t.equal(formatStat(meanStd([0.123])), '12.3', 'one seed: no ± at all');
  t.equal(formatStat(meanStd([])), '—');
});

t.test('the table from stage outputs', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-table-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const profile: Profile = {
    name: 'test', seeds: [1, 2, 3], size: 64, batchSize: 2, labelerSteps: 5, warmupSteps: 4, finetuneSteps: 3, delta: 0.5,
    unlabeledShards: 1, baselineLongSeeds: [], sweepSteps: 0, sweepDeltas: [], sweepFractions: [], galleryDeltas: [0.5], mix: DEFAULT_MIX, pretrainSteps: 0, pretrainImages: 2000,
  };
  const plan = buildPlan(profile, () => ({ lr: 0.01 }));
  // AP of each finetune: baseline 10/12/14, CA-SSL 20/21/22 except seed 3 unfinished; cs 15/15/15.
  const ap: Record<string, number | undefined> = {
    'baseline/seed-1': 0.10, 'baseline/seed-2': 0.12, 'baseline/seed-3': 0.14,
    'finetune/ca-ssl/seed-1': 0.20, 'finetune/ca-ssl/seed-2': 0.22, 'finetune/ca-ssl/seed-3': 0.99,
    'finetune/cs-pseudo/seed-1': 0.15, 'finetune/cs-pseudo/seed-2': 0.15, 'finetune/cs-pseudo/seed-3': 0.15,
  };
  const outcomes = new Map<string, Outcome>();
  for (const s of plan.stages) {
    const d = path.join(dir, s.id.replaceAll('/', '_'));
    mkdirSync(d);
    const v = ap[s.id] ?? 0.05;
    if (s.kind === 'train') writeFileSync(path.join(d, 'result.json'), JSON.stringify({ stage: 'x', eval: { AP: v, AP50: 2 * v, AP75: v / 2, APs: v, APm: v, APl: v } }) + '\n');
    if (s.kind === 'eval-agnostic') writeFileSync(path.join(d, 'eval.json'), JSON.stringify({ eval: { AP: 0.3 } }, null, 2));
    if (s.kind === 'select') writeFileSync(path.join(d, 'quality.json'), JSON.stringify({ precision: 0.8, recall: 0.6, imagesKept: 10, instances: 30 }));
    // The third CA-SSL finetune did not finish: its 0.99 must not count.
    const status = s.id === 'finetune/ca-ssl/seed-3' ? 'failed' : 'done';
    outcomes.set(s.id, { id: s.id, key: s.id, dir: d, status, seconds: 60 });
  }
  const r = collectResults(plan, outcomes, 30);
  const ca = r.rows.find((x) => x.key === 'ca-ssl')!;
  t.same(ca.seeds, [1, 2]);
  t.same(ca.missing, [3]);
  t.ok(Math.abs(ca.finetune.AP.mean - 0.21) < 1e-12);
  const base = r.rows.find((x) => x.key === 'baseline')!;
  t.ok(Math.abs(base.finetune.AP.std - 0.02) < 1e-12);
  t.ok(Number.isNaN(base.warmupAPa.mean), 'the baseline has no warmup');
  t.equal(r.rows.find((x) => x.key === 'cs-pseudo')!.warmupAPa.mean, 0.3, 'class-specific warmup: AP^det-a from its eval-agnostic stage');
  const md = formatTable(r);
  t.match(md, /COCO box AP \(points\) on the val split, mean/);
  t.match(md, /Budget: S = \d+, B = \d+; steps: labelers/, 'from scratch: no pretrain steps');
  t.match(formatTable({ ...r, profile: { ...r.profile, pretrainSteps: 5000 } }), /steps: pretrain 5000 \(2000 images of other shapes; every model not started from a warmup starts from its backbone\), labelers/);
  t.match(formatTable({ ...r, scoredOn: '9 labeled images held out' }), /COCO box AP \(points\) on 9 labeled images held out, mean/, '--holdout: the table says what it scored');
  t.match(md, /\| class-agnostic pseudo labels \(δ = 0\.5\) — CA-SSL \| 2 \(seeds 3 unfinished\) \| 5\.0 ± 0\.0 \| 21\.0 ± 1\.4 \| 42\.0 ± 2\.8 /);
  t.match(md, /\| none \(labeled GT only, from scratch\) \| 3 \| — \| 12\.0 ± 2\.0 /);
  t.match(md, /S = 64, B = 2; steps: labelers 5, warmup 4, finetune 3/);
  t.match(md, /CA-SSL − baseline: \+9\.0 AP\^det points \(larger std 2\.0\): holds/);
  t.match(md, /class-agnostic − class-specific pseudo-label warmup: \+6\.0 AP\^det points \(larger std 1\.4\): holds/);
  // A lead smaller than the seeds' spread is not called a win.
  const cs = r.rows.find((x) => x.key === 'cs-pseudo')!;
  const close = { ...r, rows: r.rows.map((x) => (x === cs ? { ...cs, finetune: { ...cs.finetune, AP: { ...cs.finetune.AP, mean: ca.finetune.AP.mean - 0.001 } } } : x)) };
  t.match(verdict(close).join('\n'), /class-specific pseudo-label warmup: \+0\.1 AP\^det points \(larger std 1\.4\): ahead, but not by more than the std/);
  t.match(md, /precision 0\.800, recall 0\.600/);
  // One seed (a --holdout run): no std, so no lead is called a win, and none a loss.
  const one = (x: (typeof r.rows)[number], mean: number) => ({ ...x, finetune: { ...x.finetune, AP: { mean, std: NaN, n: 1 } } });
  const single = (ca1: number, base1: number, cs1: number) => verdict({ ...r, rows: r.rows.map((x) => (x.key === 'ca-ssl' ? one(x, ca1) : x.key === 'baseline' ? one(x, base1) : x.key === 'cs-pseudo' ? one(x, cs1) : x)) }).join('\n');
  t.match(single(0.357, 0.233, 0.397), /CA-SSL − baseline: \+12\.4 AP\^det points \(one seed: no std\): ahead by ≥ 3, but one seed cannot show it is more than the std/);
  t.match(single(0.357, 0.233, 0.397), /class-specific pseudo-label warmup: -4\.0 AP\^det points \(one seed: no std\): does NOT hold/);
  t.match(single(0.17, 0.15, 0.155), /CA-SSL − baseline: \+2\.0 .*: does NOT hold/);
  t.match(single(0.17, 0.15, 0.155), /class-specific pseudo-label warmup: \+1\.5 .*: ahead, but one seed cannot show it is more than the std/);
});
