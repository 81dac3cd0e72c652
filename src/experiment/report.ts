// `casl report`: OUT/report.md from what `casl experiment` left in OUT —
// the table, the training curves of every stage and the AP bars as SVG
// (vega-lite specs compiled and rendered headless by vega), and a gallery of
// pseudo labels at two δ values drawn by casl viz.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { vizFile } from '../cli/commands/viz.js';

/** A vega-lite spec rendered to SVG text, without a browser. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface CurvePoint { stage: string; seed: string; step: number; loss: number }

/** The loss of every step of a run, as a mean over windows so a long run stays a few hundred points. */
export function readCurve(metricsFile: string, stage: string, seed: string, maxPoints = 150): CurvePoint[] {
  const steps: { step: number; loss: number }[] = [];
  for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line) as { step?: number; loss?: number };
    if (typeof m.loss === 'number' && typeof m.step === 'number' && Number.isFinite(m.loss)) steps.push({ step: m.step, loss: m.loss });
  }
  const w = Math.max(1, Math.ceil(steps.length / maxPoints));
  const out: CurvePoint[] = [];
  for (let i = 0; i < steps.length; i += w) {
    const chunk = steps.slice(i, i + w);
    out.push({ stage, seed, step: chunk[chunk.length - 1].step, loss: chunk.reduce((a, c) => a + c.loss, 0) / chunk.length });
  }
  return out;
}

export function curvesSpec(points: CurvePoint[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: { values: points },
    facet: { field: 'stage', type: 'nominal', title: null },
    columns: 3,
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      width: 220, height: 130,
      mark: { type: 'line', strokeWidth: 1.2 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: { field: 'loss', type: 'quantitative', title: 'training loss', scale: { zero: false } },
        color: { field: 'seed', type: 'nominal', title: 'seed' },
      },
    },
  } as TopLevelSpec;
}

export interface Bar { row: string; mean: number; lo: number; hi: number; n: number }

export function apBarsSpec(bars: Bar[], title: string, scoredOn = 'val'): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values: bars },
    width: 360,
    height: { step: 26 },
    encoding: { y: { field: 'row', type: 'nominal', title: null, sort: null } },
    layer: [
      { mark: { type: 'bar', color: '#4e79a7' }, encoding: { x: { field: 'mean', type: 'quantitative', title: `AP^det on ${scoredOn} (points), mean ± std over seeds` } } },
      { mark: { type: 'rule', color: 'black' }, encoding: { x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
      { mark: { type: 'text', align: 'left', dx: 4, dy: -8, fontSize: 10 }, encoding: { x: { field: 'hi', type: 'quantitative' }, text: { field: 'mean', type: 'quantitative', format: '.1f' } } },
    ],
  } as TopLevelSpec;
}

interface StageEntry { id: string; kind: string; dir: string; status: string }
interface RowEntry { key: string; warmupData: string; seeds: number[]; finetune: { AP: { mean: number; std: number; n: number } } }
interface ResultsFile {
  profile: { name: string; galleryDeltas: number[] };
  /** Set by `casl experiment --holdout`. */
  scoredOn?: string;
  rows: RowEntry[];
  stages: StageEntry[];
  plan: { galleryPseudo: string };
}

export interface ReportOptions { dir: string; galleryLimit: number; log?: (line: string) => void }

export async function writeReport(o: ReportOptions): Promise<string> {
  const resultsFile = path.join(o.dir, 'results.json');
  if (!existsSync(resultsFile)) throw new Error(`${resultsFile} is missing: run casl experiment (make ca-ssl) first`);
  const r = JSON.parse(readFileSync(resultsFile, 'utf8')) as ResultsFile;
  const table = readFileSync(path.join(o.dir, 'table.md'), 'utf8');
  const done = (s: StageEntry) => s.status === 'done' || s.status === 'cached';

  const points: CurvePoint[] = [];
  const seen = new Set<string>();
  for (const s of r.stages) {
    const metrics = path.join(o.dir, s.dir, 'run/metrics.jsonl');
    if ((s.kind !== 'train' && s.kind !== 'pretrain') || !done(s) || seen.has(s.dir) || !existsSync(metrics)) continue;
    seen.add(s.dir);
    const m = /^(.*)\/seed-(\d+)$/.exec(s.id);
    points.push(...readCurve(metrics, m ? m[1] : s.id, m ? m[2] : '1'));
  }
  const figs = path.join(o.dir, 'figures');
  mkdirSync(figs, { recursive: true });
  writeFileSync(path.join(figs, 'curves.svg'), await renderSvg(curvesSpec(points)));
  const bars: Bar[] = r.rows.filter((x) => x.seeds.length > 0).map((x) => {
    const s = x.finetune.AP;
    const sd = Number.isFinite(s.std) ? s.std : 0;
    return { row: x.warmupData, mean: 100 * s.mean, lo: 100 * (s.mean - sd), hi: 100 * (s.mean + sd), n: s.n };
  });
  writeFileSync(path.join(figs, 'ap-bars.svg'), await renderSvg(apBarsSpec(bars, `CA-SSL on the fixtures (profile ${r.profile.name}): finetuned AP^det by warmup data`, r.scoredOn ? 'held-out labeled images' : 'val')));

  const gallery: string[] = [];
  const pseudo = r.stages.find((s) => s.id === r.plan.galleryPseudo);
  if (pseudo && done(pseudo)) {
    // The fixtures the pseudo labels were made from, as the runner recorded them.
    const inputs = (JSON.parse(readFileSync(path.join(o.dir, pseudo.dir, 'stage.json'), 'utf8')) as { inputs: { fixtures: string } }).inputs;
    const root = path.join(inputs.fixtures, 'images/unlabeled');
    const cols: string[][] = [];
    for (const d of r.profile.galleryDeltas) {
      const out = path.join(o.dir, 'gallery', `delta-${d}`);
      const v = await vizFile(path.join(o.dir, pseudo.dir, 'pseudo.jsonl'), { root, out, delta: d, limit: o.galleryLimit, minSide: 256, log: o.log });
      cols.push(v.written.map((f) => path.relative(o.dir, f)));
    }
    gallery.push(`| ${r.profile.galleryDeltas.map((d) => `δ = ${d}`).join(' | ')} |`, `|${r.profile.galleryDeltas.map(() => '---').join('|')}|`);
    for (let i = 0; i < Math.max(...cols.map((c) => c.length)); i++) gallery.push(`| ${cols.map((c) => (c[i] ? `![](${c[i]})` : '')).join(' | ')} |`);
  } else {
    gallery.push('The class-agnostic pseudo labels did not finish: no gallery.');
  }

  const md = [
    `# CA-SSL on the fixtures: report (profile ${r.profile.name})`,
    '',
    'Written by `casl report` from `casl experiment`\'s outputs in this folder (results.json, stages/).',
    '',
    '## Table',
    '',
    table.trim(),
    '',
    '## AP^det of the finetuned models',
    '',
    '![AP bars](figures/ap-bars.svg)',
    '',
    '## Training curves',
    '',
    'Training loss (focal + GIoU + centerness) per step, averaged over windows, of every training stage; one colour per seed.',
    '',
    '![training curves](figures/curves.svg)',
    '',
    '## Pseudo labels on unlabeled images',
    '',
    `The class-agnostic labeler's pseudo labels on the first ${o.galleryLimit} unlabeled images, at two δ (boxes drawn with casl viz).`,
    '',
    ...gallery,
    '',
  ].join('\n');
  const file = path.join(o.dir, 'report.md');
  writeFileSync(file, md);
  return file;
}
