// casl eval on a generated case of 500 images × 100 detections (8
// categories, polygon objects of all sizes, ~6% crowd regions as RLE, score
// ties), bbox and segm, with pycocotools evaluating the same files side by
// side when it can be imported.
//
// `bbox_s` / `segm_s` are what a user waits for: a fresh process (cold JIT)
// reading the files and evaluating, timed inside it as pycocotools times
// itself (ground truth and results loading, evaluate, accumulate, summarize;
// interpreter start-up and imports of the language's own modules excluded).
// pycocotools runs the same way, in its own Python process on the same files,
// interleaved with casl's runs so both see the same machine load; each
// figure is the best of the runs, and its CPU seconds are that run's.
// pycocotools is found by `CASL_PYTHON` (default /usr/bin/python3) importing
// it, from `CASL_PYCOCOTOOLS` (a directory put first on sys.path, e.g. a
// source build), else from the system or /tmp/pycoco; when it cannot, its
// figures are null.
// Its 12 figures are compared with casl's on each file (`*_identical`).
// Set CASL_BENCH_EVAL_DIR=DIR to keep the generated files.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { evaluateResultsBytes } from '../src/eval/detections.js';
import { SUMMARY_KEYS } from '../src/eval/evaluator.js';
import { readGroundTruth } from '../src/eval/ground-truth.js';
import { syntheticCase, toResults } from '../src/eval/synthetic.js';

type Iou = 'bbox' | 'segm';
interface Timed {
  wall: number;
  cpu: number;
  stats: number[];
}

const PYTHON = process.env.CASL_PYTHON ?? '/usr/bin/python3';
/** Where to import pycocotools from: CASL_PYCOCOTOOLS, else the system's, else a source build in /tmp/pycoco. */
const PYCOCO_PATHS = process.env.CASL_PYCOCOTOOLS ? [process.env.CASL_PYCOCOTOOLS] : ['', '/tmp/pycoco'];

/** What pycocotools' users run, timed as casl times itself; prints {wall, cpu, stats}. */
const PYCOCO_SCRIPT = `
import sys, io, json, time, contextlib
if sys.argv[1]: sys.path.insert(0, sys.argv[1])
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
if len(sys.argv) == 2:
    import pycocotools
    print(pycocotools.__file__)
    sys.exit(0)
gt_file, dets_file, iou = sys.argv[2:5]
t0, c0 = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(gt_file)
    dt = gt.loadRes(dets_file)
    E = COCOeval(gt, dt, iou)
    E.evaluate()
    E.accumulate()
    E.summarize()
print(json.dumps({'wall': time.perf_counter() - t0, 'cpu': time.process_time() - c0, 'stats': [float(x) for x in E.stats]}))
`;

/** The sys.path entry pycocotools is imported with ('' for the system's) and its file, or why it cannot be. */
function findPycocotools(): { path: string; found: string } | { missing: string } {
  if (!existsSync(PYTHON)) return { missing: `${PYTHON} does not exist (set CASL_PYTHON)` };
  let why = '';
  for (const p of PYCOCO_PATHS) {
    const r = spawnSync(PYTHON, ['-c', PYCOCO_SCRIPT, p], { encoding: 'utf8' });
    if (r.status === 0) return { path: p, found: r.stdout.trim() };
    why = (r.stderr || '').trim().split('\n').pop() ?? '';
  }
  const where = PYCOCO_PATHS.map((p) => p || 'the system').join(' or ');
  return { missing: `${PYTHON} cannot import pycocotools from ${where} (${why}); set CASL_PYCOCOTOOLS=DIR to a directory holding it` };
}

function pycocoRun(sysPath: string, gt: string, dets: string, iou: Iou): Timed {
  return JSON.parse(execFileSync(PYTHON, ['-c', PYCOCO_SCRIPT, sysPath, gt, dets, iou], { encoding: 'utf8', maxBuffer: 1 << 20 }));
}

/** One cold `casl eval`-equivalent run in a child process. */
function caslRun(gt: string, dets: string, iou: Iou): Timed {
  const entry = path.join(PROJECT_ROOT, 'dist', 'src', 'eval', 'detections.js');
  const script = `const t0 = performance.now(), c0 = process.cpuUsage();
const { evaluateFiles } = await import(${JSON.stringify(entry)});
const r = await evaluateFiles({ gt: ${JSON.stringify(gt)}, dets: ${JSON.stringify(dets)}, iouType: '${iou}' });
const c = process.cpuUsage(c0);
console.log(JSON.stringify({ wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6, stats: ${JSON.stringify(SUMMARY_KEYS)}.map((k) => r.summary[k]) }));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

const best = (runs: Timed[]): Timed => runs.reduce((a, b) => (b.wall < a.wall ? b : a));
const round = (x: number, digits = 3) => +x.toFixed(digits);

export const benchmark: Benchmark = {
  name: 'eval',
  summary: 'COCO evaluation of 500 images × 100 detections, bbox and segm, beside pycocotools on the same files',
  async run(opts) {
    const images = opts.quick ? 50 : 500;
    const runs = opts.quick ? 1 : 3;
    const load0 = loadavg()[0];
    const pyco = findPycocotools();
    opts.log('found' in pyco ? `pycocotools: ${pyco.found}` : `no pycocotools: ${pyco.missing}`);
    opts.log(`generating ${images} images × 100 detections`);
    const c = syntheticCase({ images, detsPerImage: 100, seed: 7 });
    const boxes = toResults(c.predictions, 'bbox');
    const masks = toResults(c.predictions, 'segm');
    const keep = process.env.CASL_BENCH_EVAL_DIR;
    const dir = keep ?? mkdtempSync(path.join(tmpdir(), 'casl-bench-eval-'));
    mkdirSync(dir, { recursive: true });
    try {
      const gtFile = path.join(dir, 'gt.json');
      const detFile = { bbox: path.join(dir, 'dets_bbox.json'), segm: path.join(dir, 'dets_segm.json') };
      writeFileSync(gtFile, JSON.stringify(c.gt));
      writeFileSync(detFile.bbox, JSON.stringify(boxes));
      writeFileSync(detFile.segm, JSON.stringify(masks));
      const casl: Record<Iou, Timed[]> = { bbox: [], segm: [] };
      const ref: Record<Iou, Timed[]> = { bbox: [], segm: [] };
      for (let i = 0; i < runs; i++) {
        for (const iou of ['bbox', 'segm'] as const) {
          opts.log(`run ${i + 1}/${runs}, ${iou}: casl${'found' in pyco ? ', pycocotools' : ''}`);
          casl[iou].push(caslRun(gtFile, detFile[iou], iou));
          if ('found' in pyco) ref[iou].push(pycocoRun(pyco.path, gtFile, detFile[iou], iou));
        }
      }
      opts.log('warm, in process');
      const warm = (iou: Iou) => {
        const gt = readGroundTruth(gtFile, { masks: iou === 'segm' });
        const bytes = readFileSync(detFile[iou]);
        let s = Infinity;
        for (let i = 0; i < runs + 1; i++) {
          const t0 = performance.now();
          evaluateResultsBytes(gt, bytes, iou, detFile[iou]);
          s = Math.min(s, (performance.now() - t0) / 1000);
        }
        return s;
      };
      const bboxWarm = warm('bbox');
      const segmWarm = warm('segm');
      const load1 = loadavg()[0];

      const figure = (iou: Iou) => {
        const a = best(casl[iou]);
        const b = ref[iou].length ? best(ref[iou]) : undefined;
        return {
          [`${iou}_s`]: round(a.wall),
          [`${iou}_cpu_s`]: round(a.cpu),
          [`pycocotools_${iou}_s`]: b ? round(b.wall) : null,
          [`pycocotools_${iou}_cpu_s`]: b ? round(b.cpu) : null,
          [`${iou}_speedup`]: b ? round(b.wall / a.wall, 2) : null,
          [`${iou}_cpu_speedup`]: b ? round(b.cpu / a.cpu, 2) : null,
          // The 12 figures, equal to the last bit on every run.
          [`${iou}_identical`]: b ? String([...casl[iou], ...ref[iou]].every((r) => r.stats.every((v, k) => v === a.stats[k]))) : null,
        };
      };
      const figures: Record<string, number | string | null> = {
        images,
        detections: boxes.length,
        ...figure('bbox'),
        ...figure('segm'),
        bbox_warm_s: round(bboxWarm),
        segm_warm_s: round(segmWarm),
        load_average_start: round(load0, 2),
        load_average_end: round(load1, 2),
      };
      const row = (iou: Iou, warmS: number) => {
        const a = best(casl[iou]);
        const b = ref[iou].length ? best(ref[iou]) : undefined;
        return [iou, a.wall, a.cpu, warmS, b ? b.wall : 'n/a', b ? b.cpu : 'n/a',
          b ? `${figures[`${iou}_speedup`]}×, ${figures[`${iou}_cpu_speedup`]}×` : 'n/a', String(figures[`${iou}_identical`] ?? 'n/a')];
      };
      return {
        figures,
        table: [
          ['iou', 'casl (s)', 'its CPU (s)', 'casl warm, parsed (s)', 'pycocotools (s)', 'its CPU (s)', 'speed-up (wall, CPU)', '12 figures identical'],
          row('bbox', bboxWarm),
          row('segm', segmWarm),
        ],
        notes: [
          `${images} images, ${boxes.length} detections, ${c.gt.annotations.length} ground-truth objects in ${c.gt.categories.length} categories; best of ${runs} runs each, casl and pycocotools interleaved.`,
          'Each run is a fresh process reading the files and evaluating, timed inside it (loading, evaluate, accumulate, summarize). Warm: casl again in this process on the results file\'s bytes already read, code already compiled.',
          'found' in pyco ? `pycocotools: ${pyco.found} run by ${PYTHON}.` : `pycocotools figures are null: ${pyco.missing}.`,
          `Load average (1 min) ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end: on a shared machine compare the figures of one run, and the CPU seconds.`,
          ...(keep ? [`files kept in ${dir}`] : []),
        ],
      };
    } finally {
      if (!keep) rmSync(dir, { recursive: true, force: true });
    }
  },
};
