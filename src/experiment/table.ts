// The results table in the paper's shape (Table 2: warmup data; AP^det-a of
// the warmup model; AP^det, AP50, AP75, APs, APm, APl of the finetuned model
// on val), each cell the mean ± sample std over the row's seeds — every seed
// counted, never the best one.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describeMix } from '../fixtures/scene.js';
import type { Plan } from './plan.js';
import type { Outcome } from './runner.js';

export const AP_KEYS = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'] as const;
export type ApKey = (typeof AP_KEYS)[number];

export interface Stat {
  mean: number;
  /** Sample standard deviation (n − 1); NaN for one value. */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): Stat {
  const n = xs.length;
  if (n === 0) return { mean: NaN, std: NaN, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, std, n };
}

/** AP in points (×100), one decimal; '± std' when there are two values or more. */
export function formatStat(s: Stat): string {
  if (s.n === 0 || Number.isNaN(s.mean)) return '—';
  const m = (100 * s.mean).toFixed(1);
  return s.n > 1 ? `${m} ± ${(100 * s.std).toFixed(1)}` : m;
}

/** The final val figures of a finished stage: a training run's last eval, or an eval-agnostic stage's. */
export function stageEval(dir: string): Record<string, number> | undefined {
  // casl train prints its summary as the last line of its stdout.
  const result = path.join(dir, 'result.json');
  if (existsSync(result)) {
    const lines = readFileSync(result, 'utf8').trim().split('\n').filter(Boolean);
    if (lines.length > 0) return (JSON.parse(lines[lines.length - 1]) as { eval?: Record<string, number> }).eval;
  }
  const ev = path.join(dir, 'eval.json');
  return existsSync(ev) ? (JSON.parse(readFileSync(ev, 'utf8')) as { eval?: Record<string, number> }).eval : undefined;
}

export interface TableRow {
  key: string;
  warmupData: string;
  seeds: number[];
  /** Seeds of the row whose stages did not finish (left out of the means, and said so). */
  missing: number[];
  warmupAPa: Stat;
  finetune: Record<ApKey, Stat>;
}

export interface SweepResult {
  delta: number;
  fraction: number;
  imagesKept?: number;
  instances?: number;
  precision?: number;
  recall?: number;
  warmupAPa?: number;
  AP?: number;
}

export interface Results {
  profile: Plan['profile'];
  rows: TableRow[];
  sweep: SweepResult[];
  sweepBaselineAP?: number;
  /** Steps, S and B as run; wall time of every stage the table reads, and of this invocation. */
  budget: { stageSeconds: number; invocationSeconds: number; stages: number; cached: number; failed: number };
  /** Precision/recall of the main pseudo labels against the hidden GT. */
  pseudoQuality: { agnostic?: Record<string, number>; specific?: Record<string, number> };
  /** What the AP figures score (default: the val split). */
  scoredOn?: string;
}

function finishedDir(outcomes: Map<string, Outcome>, id: string | undefined): string | undefined {
  if (!id) return undefined;
  const o = outcomes.get(id);
  return o && (o.status === 'done' || o.status === 'cached') ? o.dir : undefined;
}

function readJson(file: string): Record<string, number> | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>) : undefined;
}

export function collectResults(plan: Plan, outcomes: Map<string, Outcome>, invocationSeconds: number): Results {
  const rows: TableRow[] = plan.rows.map((r) => {
    const warm: number[] = [];
    const fin: Record<string, number[]> = Object.fromEntries(AP_KEYS.map((k) => [k, []]));
    const seeds: number[] = [];
    const missing: number[] = [];
    for (const s of r.seeds) {
      const fd = finishedDir(outcomes, s.finetune);
      const ev = fd ? stageEval(fd) : undefined;
      const wd = finishedDir(outcomes, s.warmup);
      const wev = wd ? stageEval(wd) : undefined;
      if (!ev || (s.warmup && !wev)) {
        missing.push(s.seed);
        continue;
      }
      seeds.push(s.seed);
      for (const k of AP_KEYS) fin[k].push(ev[k]);
      if (wev) warm.push(wev.AP);
    }
    return {
      key: r.key, warmupData: r.warmupData, seeds, missing,
      warmupAPa: meanStd(warm),
      finetune: Object.fromEntries(AP_KEYS.map((k) => [k, meanStd(fin[k])])) as Record<ApKey, Stat>,
    };
  });
  const sweep: SweepResult[] = plan.sweep.map((s) => {
    const sd = finishedDir(outcomes, s.select);
    const q = sd ? readJson(path.join(sd, 'quality.json')) : undefined;
    const wd = finishedDir(outcomes, s.warmup);
    const fd = finishedDir(outcomes, s.finetune);
    return {
      delta: s.delta, fraction: s.fraction,
      imagesKept: q?.imagesKept, instances: q?.instances, precision: q?.precision, recall: q?.recall,
      warmupAPa: wd ? stageEval(wd)?.AP : undefined,
      AP: fd ? stageEval(fd)?.AP : undefined,
    };
  });
  const sbd = finishedDir(outcomes, plan.sweepBaseline);
  const quality = (id: string) => {
    const d = finishedDir(outcomes, id);
    return d ? readJson(path.join(d, 'quality.json')) : undefined;
  };
  const all = [...outcomes.values()].filter((o) => o.id !== 'fixtures');
  const unique = new Map(all.map((o) => [o.key, o]));
  return {
    profile: plan.profile, rows, sweep,
    sweepBaselineAP: sbd ? stageEval(sbd)?.AP : undefined,
    budget: {
      stageSeconds: [...unique.values()].reduce((a, o) => a + (o.status === 'done' || o.status === 'cached' ? o.seconds : 0), 0),
      invocationSeconds,
      stages: unique.size,
      cached: [...unique.values()].filter((o) => o.status === 'cached').length,
      failed: [...unique.values()].filter((o) => o.status === 'failed' || o.status === 'skipped').length,
    },
    pseudoQuality: { agnostic: quality('select/agnostic'), specific: quality('select/specific') },
  };
}

function hms(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(0)} s`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return h > 0 ? `${h} h ${String(m).padStart(2, '0')} min` : `${m} min`;
}

function pts(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '—' : (100 * x).toFixed(1);
}

/** The table, the budget line and the verdict on the issue's two claims, as Markdown. */
export function formatTable(r: Results): string {
  const p = r.profile;
  const lines: string[] = [];
  lines.push(`CA-SSL on the fixtures (${describeMix(p.mix)}), profile **${p.name}**: COCO box AP (points) on ${r.scoredOn ?? 'the val split'}, mean ± sample std over seeds ${p.seeds.join(', ')} (n per row below).`);
  lines.push('');
  lines.push('| warmup data | n | AP^det-a (warmup) | AP^det | AP50 | AP75 | APs | APm | APl |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    const n = `${row.seeds.length}${row.missing.length ? ` (seeds ${row.missing.join(', ')} unfinished)` : ''}`;
    lines.push(`| ${row.warmupData} | ${n} | ${formatStat(row.warmupAPa)} | ${AP_KEYS.map((k) => formatStat(row.finetune[k])).join(' | ')} |`);
  }
  lines.push('');
  lines.push(`Budget: S = ${p.size}, B = ${p.batchSize}; steps: ${p.pretrainSteps ? `pretrain ${p.pretrainSteps} (${p.pretrainImages} images of other shapes; every model not started from a warmup starts from its backbone), ` : ''}labelers ${p.labelerSteps}, warmup ${p.warmupSteps}, finetune ${p.finetuneSteps} `
    + `(baseline ${p.finetuneSteps}: the finetune's steps, not the warmup's${p.baselineLongSeeds.length ? `; baseline-long ${p.warmupSteps + p.finetuneSteps}` : ''}); `
    + `unlabeled split: ${p.unlabeledShards > 1 ? `1 image in ${p.unlabeledShards}` : 'all of it'}; δ = ${p.delta}. `
    + `Wall time: ${hms(r.budget.stageSeconds)} of stage runs (${r.budget.stages} stages, each timed when it ran), this invocation ${hms(r.budget.invocationSeconds)} `
    + `(${r.budget.cached} stages from the cache${r.budget.failed ? `, ${r.budget.failed} failed or skipped` : ''}).`);
  const q = r.pseudoQuality;
  const fq = (x?: Record<string, number>) => (x ? `precision ${x.precision.toFixed(3)}, recall ${x.recall.toFixed(3)}, ${x.imagesKept} images, ${x.instances} instances` : '—');
  lines.push('');
  lines.push(`Pseudo labels vs the unlabeled split's hidden GT (class-agnostic, IoU ≥ 0.5): class-agnostic labeler ${fq(q.agnostic)}; class-specific labeler ${fq(q.specific)}.`);
  if (r.sweep.length) {
    lines.push('');
    lines.push(`Sweeps at a reduced budget (warmup and finetune ${p.sweepSteps} steps each, seed 1; the baseline at that budget: AP^det ${pts(r.sweepBaselineAP)}):`);
    lines.push('');
    lines.push('| δ | share of unlabeled | images kept | pseudo instances | precision | recall | AP^det-a (warmup) | AP^det |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const s of r.sweep) {
      lines.push(`| ${s.delta} | ${s.fraction * 100} % | ${s.imagesKept ?? '—'} | ${s.instances ?? '—'} | ${s.precision?.toFixed(3) ?? '—'} | ${s.recall?.toFixed(3) ?? '—'} | ${pts(s.warmupAPa)} | ${pts(s.AP)} |`);
    }
  }
  lines.push('');
  lines.push(...verdict(r));
  return lines.join('\n') + '\n';
}

/** The issue's acceptance claims, checked on the figures above (not a judgement on the method beyond them). */
export function verdict(r: Results): string[] {
  const get = (k: string) => r.rows.find((x) => x.key === k);
  const base = get('baseline');
  const ca = get('ca-ssl');
  const cs = get('cs-pseudo');
  // The difference of the means in points; whether it exceeds the larger of the two rows' std (never, with one seed: no std).
  const compare = (a: TableRow, b: TableRow): { d: number; oneSeed: boolean; beyondStd: boolean; spread: string } => {
    const d = 100 * (a.finetune.AP.mean - b.finetune.AP.mean);
    const stds = [a.finetune.AP.std, b.finetune.AP.std].filter((x) => !Number.isNaN(x)).map((x) => 100 * x);
    const oneSeed = stds.length === 0;
    const maxStd = Math.max(...stds);
    const spread = oneSeed ? ' (one seed: no std)' : ` (larger std ${maxStd.toFixed(1)})`;
    return { d, oneSeed, beyondStd: !oneSeed && d > maxStd, spread };
  };
  const signed = (d: number) => `${d >= 0 ? '+' : ''}${d.toFixed(1)}`;
  const out: string[] = [];
  if (base && ca && base.seeds.length && ca.seeds.length) {
    const { d, oneSeed, beyondStd, spread } = compare(ca, base);
    const word = d < 3 ? 'does NOT hold' : beyondStd ? 'holds' : oneSeed ? 'ahead by ≥ 3, but one seed cannot show it is more than the std' : 'does NOT hold';
    out.push(`- CA-SSL − baseline: ${signed(d)} AP^det points${spread}: ${word} (the issue asks ≥ 3 points and more than the std).`);
  }
  if (ca && cs && ca.seeds.length && cs.seeds.length) {
    const { d, oneSeed, beyondStd, spread } = compare(ca, cs);
    const word = d <= 0 ? 'does NOT hold' : beyondStd ? 'holds' : oneSeed ? 'ahead, but one seed cannot show it is more than the std' : 'ahead, but not by more than the std';
    out.push(`- class-agnostic − class-specific pseudo-label warmup: ${signed(d)} AP^det points${spread}: ${word}.`);
  }
  return out;
}
