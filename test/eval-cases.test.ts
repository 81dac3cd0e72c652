// pycocotools' own figures on the shared COCO cases (../shared/coco-eval-cases,
// printed by pycocotools 2.0.11), reproduced to 1e-6 — in practice bit for
// bit — in-process, through prediction JSONL, and through the casl command.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { evaluateFiles } from '../src/eval/detections.js';
import { SUMMARY_KEYS } from '../src/eval/evaluator.js';
import { readGroundTruth } from '../src/eval/ground-truth.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const CASES = path.resolve(ROOT, '..', 'shared', 'coco-eval-cases');
const VARIANTS = ['bbox', 'segm', 'bbox_agnostic', 'segm_agnostic'] as const;

type Expected = Record<(typeof VARIANTS)[number], Record<string, number>>;

if (!existsSync(CASES)) {
  t.comment(`skipping: ${CASES} is absent (the shared COCO cases with pycocotools' answers)`);
  t.pass('nothing to compare against');
} else {
  const cases = readdirSync(CASES).filter((d) => d.startsWith('case-')).sort();
  const tmp = mkdtempSync(path.join(tmpdir(), 'casl-eval-'));

  t.test('every figure of every case, as pycocotools printed it', async (t) => {
    t.ok(cases.length > 0, `${cases.length} cases`);
    for (const c of cases) {
      const dir = path.join(CASES, c);
      const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
      for (const v of VARIANTS) {
        if (!expected[v]) continue;
        const iouType = v.startsWith('bbox') ? 'bbox' : 'segm';
        const r = await evaluateFiles({
          gt: path.join(dir, 'gt.json'), dets: path.join(dir, `dets_${iouType}.json`), iouType, agnostic: v.endsWith('agnostic'),
        });
        for (const k of SUMMARY_KEYS) {
          const diff = Math.abs(r.summary[k] - expected[v][k]);
          t.ok(diff <= 1e-6, `${c} ${v} ${k}: casl ${r.summary[k]} vs pycocotools ${expected[v][k]}`);
        }
      }
    }
  });

  t.test('prediction JSONL gives the figures of the same detections as a results file', async (t) => {
    for (const c of cases) {
      const dir = path.join(CASES, c);
      const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
      const gt = readGroundTruth(path.join(dir, 'gt.json'));
      const boxes = JSON.parse(readFileSync(path.join(dir, 'dets_bbox.json'), 'utf8')) as { image_id: number }[];
      const masks = JSON.parse(readFileSync(path.join(dir, 'dets_segm.json'), 'utf8')) as { image_id: number; segmentation: unknown }[];
      // casl records carry box and mask together; pair the two files' detections (same order, same images).
      const both = boxes.map((b, i) => ({ ...b, segmentation: masks[i].segmentation }));
      const lines = new Map<number, object[]>();
      for (const { image_id, ...inst } of both) {
        if (!lines.has(image_id)) lines.set(image_id, []);
        lines.get(image_id)!.push(inst);
      }
      const jsonl = path.join(tmp, `${c}.jsonl`);
      writeFileSync(jsonl, [...lines].map(([id, instances]) => JSON.stringify({ image_id: id, file_name: `${id}.jpg`, instances }) + '\n').join('')
        + JSON.stringify({ error: 'cannot decode', stage: 'decode', file_name: 'broken.jpg' }) + '\n');
      const flat = path.join(tmp, `${c}-flat.json`);
      writeFileSync(flat, JSON.stringify(both));

      const bbox = await evaluateFiles({ gt, dets: jsonl, iouType: 'bbox' });
      t.equal(bbox.errorRecords, 1, 'error records are counted');
      for (const k of SUMMARY_KEYS) t.ok(Math.abs(bbox.summary[k] - expected.bbox[k]) <= 1e-6, `${c} JSONL bbox ${k}`);
      // With a bbox on every detection, pycocotools takes each area from the box even for masks; so does casl.
      const segmJsonl = await evaluateFiles({ gt, dets: jsonl, iouType: 'segm' });
      const segmFlat = await evaluateFiles({ gt, dets: flat, iouType: 'segm' });
      t.same(segmJsonl.summary, segmFlat.summary, `${c} JSONL segm = results file segm`);
    }
  });

  t.test('casl eval prints pycocotools\' summary and --json', async (t) => {
    const dir = path.join(CASES, cases[0]);
    const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
    const cli = (...args: string[]) => spawnSync('node', ['bin/casl.js', 'eval', ...args], { cwd: ROOT, encoding: 'utf8' });
    const json = cli('--gt', path.join(dir, 'gt.json'), '--dets', path.join(dir, 'dets_segm.json'), '--iou', 'segm', '--agnostic', '--json');
    t.equal(json.status, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    for (const k of SUMMARY_KEYS) t.ok(Math.abs(out[k] - expected.segm_agnostic[k]) <= 1e-6, `--json ${k}`);
    t.same(out.per_category.length, 1);

    const text = cli('--gt', path.join(dir, 'gt.json'), '--dets', path.join(dir, 'dets_bbox.json'));
    t.equal(text.status, 0, text.stderr);
    const lines = text.stdout.split('\n');
    t.equal(lines[0], ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ${expected.bbox.AP.toFixed(3)}`);
    t.equal(lines[1], ` Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = ${expected.bbox.AP50.toFixed(3)}`);
    t.equal(lines[6], ` Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = ${expected.bbox.AR1.toFixed(3)}`);
    t.match(lines[11], /^ Average Recall {5}\(AR\) @\[ IoU=0\.50:0\.95 \| area= large \| maxDets=100 \] = \d\.\d{3}$/);
    t.match(text.stdout, /\| id +\| category +\| AP \(bbox\) ×100 \|/);

    const bad = path.join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ image_id: 999999999, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }]));
    const err = cli('--gt', path.join(dir, 'gt.json'), '--dets', bad);
    t.equal(err.status, 2);
    t.match(err.stderr, /casl eval: .*bad\.json: detection 0: image_id 999999999 is not an image of/);
    const missing = cli('--dets', bad);
    t.equal(missing.status, 2);
    t.match(missing.stderr, /--gt GT\.json is required/);
  });
}
