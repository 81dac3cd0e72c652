// The real executor: each training, labelling and prediction stage is a
// `casl` child process (its memory is its own, a crash stays in it; stdout
// to OUT/result.json or the stage's files, stderr to OUT/log.txt); the
// pseudo-label selection (δ, share of the unlabeled split, COCO for the
// class-specific warmup) is a small in-process step.
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import fg from 'fast-glob';
import { stringify as toYaml } from 'yaml';
import { PROJECT_ROOT } from '../cli/options.js';
import { filterByScore } from '../label/filter.js';
import { pseudoLabelQuality } from '../label/quality.js';
import { loadCoco, type CocoDataset } from '../io/coco.js';
import { evaluateFiles } from '../eval/detections.js';
import type { PredictionRecord } from '../records.js';
import { readBaseYaml, withoutThroughput, type StageSpec } from './plan.js';
import type { Executor } from './runner.js';

export function fixturePaths(dir: string) {
  return {
    labeled: path.join(dir, 'annotations/labeled.json'),
    labeledRoot: path.join(dir, 'images/labeled'),
    val: path.join(dir, 'annotations/val.json'),
    valRoot: path.join(dir, 'images/val'),
    unlabeledRoot: path.join(dir, 'images/unlabeled'),
    hidden: path.join(dir, 'annotations/unlabeled_hidden_gt.json'),
  };
}

const CASL_BIN = path.join(PROJECT_ROOT, 'bin/casl.js');

const running = new Set<ChildProcess>();

/** Sends `signal` to every stage process still running (casl experiment's own SIGINT / SIGTERM). */
export function signalStages(signal: NodeJS.Signals): number {
  for (const child of running) child.kill(signal);
  return running.size;
}

/** Runs `casl ARGS`, stdout to `stdoutFile`, stderr appended to DIR/log.txt; rejects with the log's tail on failure. `env` adds to this process's. */
export function runCasl(args: string[], dir: string, stdoutFile: string, env: Record<string, string> = {}): Promise<void> {
  const logFile = path.join(dir, 'log.txt');
  const err = openSync(logFile, 'a');
  const out = openSync(stdoutFile, 'w');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [CASL_BIN, ...args], { stdio: ['ignore', out, err], cwd: PROJECT_ROOT, env: { ...process.env, ...env } });
    running.add(child);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      running.delete(child);
      closeSync(err);
      closeSync(out);
      if (code === 0) return resolve();
      const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
      reject(new Error(`casl ${args[0]} exited with ${signal ?? code} (${logFile}): ${tail}`));
    });
  });
}

async function* jsonl(file: string): AsyncGenerator<PredictionRecord> {
  if (!existsSync(file)) return;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.trim()) yield JSON.parse(line) as PredictionRecord;
  }
}

async function trainStage(s: StageSpec, dir: string, inputs: Record<string, string>, env: Record<string, string> = {}): Promise<void> {
  const f = fixturePaths(inputs.fixtures);
  const { data, ...settings } = s.config;
  const train = data === 'labeled' ? f.labeled : path.join(inputs.data, data === 'pseudo' ? 'pseudo.jsonl' : 'train.json');
  // The throughput knobs are not in the stage's identity (plan.ts): today's values from the stage's YAML.
  const base = readBaseYaml(settings.stage as 'labeler' | 'warmup' | 'finetune');
  const throughput = Object.fromEntries(Object.entries(base).filter(([k]) => withoutThroughput({ [k]: 1 })[k] === undefined));
  const config: Record<string, unknown> = {
    ...throughput,
    ...settings,
    train,
    root: data === 'labeled' ? f.labeledRoot : f.unlabeledRoot,
    val: f.val,
    'val-root': f.valRoot,
    out: path.join(dir, 'run'),
    // '' trains from scratch (the baselines, the K-class labeler).
    ...(inputs.init ? { init: path.join(inputs.init, 'run/model') } : settings.stage === 'finetune' ? { init: '' } : {}),
    resume: true,
    quiet: true,
  };
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, `# written by casl experiment for stage ${s.id}\n${toYaml(config)}`);
  await runCasl(['train', '--config', file], dir, path.join(dir, 'result.json'), env);
}

async function pseudoLabelStage(s: StageSpec, dir: string, inputs: Record<string, string>): Promise<void> {
  const f = fixturePaths(inputs.fixtures);
  const out = path.join(dir, 'pseudo.jsonl');
  const shards = s.config.shards as number;
  await runCasl(['pseudo-label', `${f.unlabeledRoot}/*`, '--root', f.unlabeledRoot, '--model', path.join(inputs.model, 'run/model'),
    '--out', out, '--delta', String(s.config.delta), '--gt', f.hidden, '--stats', path.join(dir, 'stats.json'), '--quiet',
    ...(shards > 1 ? ['--shard', `0/${shards}`] : []), ...(existsSync(out) ? ['--resume'] : [])], dir, path.join(dir, 'stdout.txt'));
}

/**
 * The pseudo labels of one table row: the images with image_id mod n = 0
 * (n = 1 / fraction: nested subsets), cut at δ, with their precision and
 * recall against the hidden ground truth; as COCO too for a K-class warmup.
 */
export async function selectPseudoLabels(src: string, dir: string, o: { delta: number; fraction: number; format: 'jsonl' | 'coco'; hidden: string; categoriesFrom?: string }): Promise<void> {
  const n = Math.round(1 / o.fraction);
  const outFile = path.join(dir, 'pseudo.jsonl');
  const out = createWriteStream(outFile);
  const dropped = createWriteStream(`${outFile}.dropped`);
  const coco: CocoDataset | undefined = o.format === 'coco'
    ? { images: [], annotations: [], categories: loadCoco(o.categoriesFrom!).categories } : undefined;
  const counts = { imagesIn: 0, imagesKept: 0, instances: 0 };
  for (const file of [path.join(src, 'pseudo.jsonl'), path.join(src, 'pseudo.jsonl.dropped')]) {
    for await (const rec of jsonl(file)) {
      if (rec.image_id % n !== 0) continue;
      counts.imagesIn += 1;
      const kept = rec.instances?.length ? filterByScore(rec, o.delta) : null;
      if (!kept) {
        dropped.write(JSON.stringify({ ...rec, instances: [] }) + '\n');
        continue;
      }
      counts.imagesKept += 1;
      counts.instances += kept.instances.length;
      out.write(JSON.stringify(kept) + '\n');
      if (coco) {
        if (!kept.width || !kept.height) throw new Error(`${file}: image ${kept.image_id} has no width/height, which COCO needs`);
        coco.images.push({ id: kept.image_id, file_name: kept.file_name, width: kept.width, height: kept.height });
        for (const x of kept.instances) {
          coco.annotations.push({ id: coco.annotations.length + 1, image_id: kept.image_id, category_id: x.category_id, bbox: x.bbox, area: x.bbox[2] * x.bbox[3], iscrowd: 0 });
        }
      }
    }
  }
  await Promise.all([out, dropped].map((w) => new Promise((r) => w.end(r))));
  if (coco) writeFileSync(path.join(dir, 'train.json'), JSON.stringify(coco));
  const quality = await pseudoLabelQuality(loadCoco(o.hidden), outFile, `${outFile}.dropped`);
  writeFileSync(path.join(dir, 'quality.json'), JSON.stringify({ delta: o.delta, fraction: o.fraction, ...counts, ...quality }, null, 2) + '\n');
}

async function evalAgnosticStage(s: StageSpec, dir: string, inputs: Record<string, string>): Promise<void> {
  const f = fixturePaths(inputs.fixtures);
  const pred = path.join(dir, 'val.jsonl');
  // The ground truth's own images, not the folder's: under --holdout the
  // folder is the labeled one, and the evaluator refuses detections on
  // images its ground truth does not have.
  const files = (JSON.parse(readFileSync(f.val, 'utf8')) as CocoDataset).images.map((im) => path.join(f.valRoot, fg.escapePath(im.file_name)));
  await runCasl(['pseudo-label', ...files, '--root', f.valRoot, '--model', path.join(inputs.model, 'run/model'),
    '--out', pred, '--delta', String(s.config.delta), '--overwrite', '--quiet'], dir, path.join(dir, 'stdout.txt'));
  // Images left without a detection went to val.jsonl.dropped: for AP they simply have none.
  const r = await evaluateFiles({ gt: f.val, dets: pred, iouType: 'bbox', agnostic: true });
  writeFileSync(path.join(dir, 'eval.json'), JSON.stringify({ eval: { ...r.summary, images: r.images, detections: r.detections }, metric: 'AP^det-a' }, null, 2) + '\n');
}

/** casl fixtures into `dir`; `options` are its own (seed, the class mix when not the default, split sizes). */
function makeFixtures(dir: string, options: Record<string, unknown>, logDir: string): Promise<void> {
  return runCasl(['fixtures', '--out', dir, ...Object.entries(options).flatMap(([k, v]) => [`--${k}`, String(v)])], logDir, path.join(logDir, 'fixtures.stdout'));
}

export const caslExecutor: Executor = async (s, dir, inputs) => {
  switch (s.kind) {
    case 'fixtures':
      mkdirSync(path.dirname(dir), { recursive: true });
      return makeFixtures(dir, s.config, path.dirname(dir));
    case 'pretrain': {
      // Its own scenes (of the other shapes) in the stage directory, then the
      // training on them, on every core: every other training waits for it.
      const { fixtures, ...train } = s.config;
      const fx = path.join(dir, 'fixtures');
      if (!existsSync(path.join(fx, 'fixtures.json'))) await makeFixtures(fx, fixtures as Record<string, unknown>, dir);
      return trainStage({ ...s, config: train }, dir, { fixtures: fx }, { CASL_THREADS: String(os.availableParallelism()) });
    }
    case 'train': return trainStage(s, dir, inputs);
    case 'pseudo-label': return pseudoLabelStage(s, dir, inputs);
    case 'select': {
      const f = fixturePaths(inputs.fixtures);
      return selectPseudoLabels(inputs.pseudo, dir, { ...(s.config as { delta: number; fraction: number; format: 'jsonl' | 'coco' }), hidden: f.hidden, categoriesFrom: f.labeled });
    }
    case 'eval-agnostic': return evalAgnosticStage(s, dir, inputs);
  }
};
