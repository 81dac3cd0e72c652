// casl report: SVG from vega-lite specs rendered headless by vega, and the
// report assembled from an experiment directory.
import t from 'tap';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { apBarsSpec, curvesSpec, readCurve, renderSvg, writeReport } from '../src/experiment/report.js';

t.test('vega renders the AP bars and the curves as SVG', async (t) => {
  const svg = await renderSvg(apBarsSpec([{ row: 'baseline', mean: 12, lo: 10, hi: 14, n: 3 }, { row: 'CA-SSL', mean: 20, lo: 19, hi: 21, n: 3 }], 'bars'));
  t.match(svg, /^<svg /);
  t.match(svg, />baseline</);
  t.match(svg, />CA-SSL</);
  t.match(svg, /role-mark/);
  t.match(svg, /AP\^det on val \(points\)/, 'the axis names what was scored');
  t.match(await renderSvg(apBarsSpec([{ row: 'baseline', mean: 12, lo: 10, hi: 14, n: 1 }], 'bars', 'held-out labeled images')), /AP\^det on held-out labeled images \(points\)/, '--holdout runs say so');
  const curves = await renderSvg(curvesSpec([{ stage: 'labeler', seed: '1', step: 1, loss: 2 }, { stage: 'labeler', seed: '1', step: 2, loss: 1.5 }]));
  t.match(curves, />labeler</);
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  t.ok(png.length > 1000, 'the SVG is well formed (librsvg renders it)');
});

t.test('curves are window means of the step losses', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'metrics.jsonl');
  const lines = Array.from({ length: 10 }, (_, i) => JSON.stringify({ step: i + 1, loss: i + 1 }));
  lines.splice(5, 0, JSON.stringify({ step: 5, eval: { AP: 0.1 } }));
  writeFileSync(f, lines.join('\n') + '\n');
  t.same(readCurve(f, 's', '1', 5).map((p) => [p.step, p.loss]), [[2, 1.5], [4, 3.5], [6, 5.5], [8, 7.5], [10, 9.5]]);
});

t.test('the report from an experiment directory', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stage = path.join(dir, 'stages/train-1');
  mkdirSync(path.join(stage, 'run'), { recursive: true });
  writeFileSync(path.join(stage, 'run/metrics.jsonl'), [1, 2, 3].map((s) => JSON.stringify({ step: s, loss: 3 - s / 2 })).join('\n') + '\n');
  writeFileSync(path.join(dir, 'table.md'), '| warmup data | AP |\n|---|---|\n| none | 1.0 |\n');
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify({
    profile: { name: 'test', galleryDeltas: [0.3, 0.5] },
    rows: [{ key: 'baseline', warmupData: 'none', seeds: [1], finetune: { AP: { mean: 0.01, std: null, n: 1 } } }],
    stages: [{ id: 'baseline/seed-1', kind: 'train', dir: 'stages/train-1', status: 'done' }, { id: 'pseudo/agnostic', kind: 'pseudo-label', dir: 'stages/p', status: 'failed' }],
    plan: { galleryPseudo: 'pseudo/agnostic' },
  }));
  const file = await writeReport({ dir, galleryLimit: 2 });
  const md = readFileSync(file, 'utf8');
  t.match(md, /\| none \| 1\.0 \|/);
  t.match(md, /!\[training curves\]\(figures\/curves\.svg\)/);
  t.match(md, /did not finish: no gallery/);
  t.match(readFileSync(path.join(dir, 'figures/curves.svg'), 'utf8'), />baseline</);
  t.ok(existsSync(path.join(dir, 'figures/ap-bars.svg')));
  await t.rejects(writeReport({ dir: path.join(dir, 'nope'), galleryLimit: 1 }), /results\.json is missing: run casl experiment/);
});
