// The pseudo-label stream (issue 6): piped stages equal the one-process
// command; δ is strict; empty images are dropped and accounted for; a run
// cut at any moment and resumed equals an uninterrupted one; bad images
// become error records; test-time views map back onto the original.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { filterByScore } from '../src/label/filter.js';
import { repairTornTail } from '../src/label/ledger.js';
import _ from 'highland';
import { inferImages, viewsOf } from '../src/label/infer.js';
import { InferencePool } from '../src/label/infer-pool.js';
import { decodeImages } from '../src/io/decode.js';
import { GeometricTransform } from '../src/augment/geometric.js';
import { AugmentTransform } from '../src/augment/transform.js';
import { command as pseudoLabel } from '../src/cli/commands/pseudo-label.js';
import { parseArgs } from '../src/cli/options.js';
import { initBackend } from '../src/model/backend/index.js';
import { createDetector, loadDetector, loadTorchWeights, saveCheckpoint, TINY_FCOS, disposeDetector } from '../src/model/index.js';
import type { PredictionRecord } from '../src/records.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CASL = path.join(REPO, 'bin', 'casl.js');
const PARITY = path.resolve(REPO, '..', 'shared', 'parity', 'tiny-fcos-k1');
const SAMPLE = path.join(REPO, 'fixtures', 'sample', 'images', 'unlabeled');

const work = mkdtempSync(path.join(tmpdir(), 'casl-pl-'));
const ckpt = path.join(work, 'labeler');

/** Runs `casl pseudo-label` in this process; returns its exit code and stderr. */
async function runPseudoLabel(args: string[]): Promise<{ code: number; stderr: string }> {
  const { opts, positionals } = parseArgs(pseudoLabel, args);
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (d) => (text += d));
  const code = await pseudoLabel.run({ ...opts, quiet: true }, positionals, { stdout: new PassThrough(), stderr, stdin: new PassThrough() });
  return { code, stderr: text };
}

const lineSet = (file: string) => new Set(existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

t.before(async () => {
  await initBackend('wasm', { log: () => {} });
  // The parity weights (a trained tiny-fcos) give a real spread of scores;
  // without the shared folder a seeded fresh model still exercises the plumbing.
  const det = createDetector(TINY_FCOS, { seed: 3 });
  if (existsSync(PARITY)) loadTorchWeights(det, PARITY);
  await saveCheckpoint(ckpt, det, { classNames: ['object'], stage: 'labeler', step: 0 });
  disposeDetector(det);
});

t.test('δ is strict: a score equal to δ is dropped, and an image left empty is dropped', async (t) => {
  const rec: PredictionRecord = {
    image_id: 1, file_name: 'a.jpg',
    instances: [{ bbox: [0, 0, 1, 1], score: 0.5, category_id: 1 }, { bbox: [0, 0, 2, 2], score: 0.50001, category_id: 1 }],
  };
  t.same(filterByScore(rec, 0.5)?.instances.map((i) => i.score), [0.50001]);
  t.equal(filterByScore(rec, 0.50001), null, 'nothing strictly above δ: the image is dropped');
  t.equal(filterByScore({ ...rec, instances: [] }, 0), null, 'an image with no prediction is dropped at any δ');
});

t.test('a detection on a flipped, rescaled view lands on the original box', async (t) => {
  const W = 240, H = 160, S = 128;
  const gt = [30, 40, 90, 120];
  const flipThenScale = new AugmentTransform(GeometricTransform.hflip(W, H).then(GeometricTransform.resize(W, H, 96, 64)));
  const onView = flipThenScale.applyBoxes([gt]).boxes[0];
  t.not(onView[0], gt[0] * 0.4, 'the view box is flipped');
  const back = flipThenScale.inverse().mapBox(onView);
  for (let i = 0; i < 4; i++) t.ok(Math.abs(back[i] - gt[i]) < 1e-9, `coordinate ${i}: ${back[i]} vs ${gt[i]}`);
  // The views of an image depend on (seed, image_id, view) only.
  const img = { data: new Uint8Array(W * H * 3).fill(90), width: W, height: H };
  const rec = { image_id: 7, file_name: 'x.jpg', width: W, height: H, image: img, letterbox: { scale: 1, offsetX: 0, offsetY: 0 } };
  const a = viewsOf(rec, S, 'weak', 4, 11).map((v) => JSON.stringify(v.transform.toJSON()));
  const b = viewsOf(rec, S, 'weak', 4, 11).map((v) => JSON.stringify(v.transform.toJSON()));
  t.same(a, b, 'same seed and image, same views');
  t.equal(a[0], JSON.stringify(new AugmentTransform(GeometricTransform.letterbox(W, H, S)).toJSON()), 'view 0 is the plain letterbox');
  for (const v of viewsOf(rec, S, 'weak', 4, 11)) {
    const mapped = v.transform.applyBoxes([gt]).boxes[0];
    const round = v.transform.inverse().mapBox(mapped);
    for (let i = 0; i < 4; i++) t.ok(Math.abs(round[i] - gt[i]) < 1e-6, 'each weak view maps back');
  }
});

t.test('piped stages and the one-process command give the same pseudo labels', async (t) => {
  const out = path.join(work, 'inproc.jsonl');
  const r = await runPseudoLabel([path.join(SAMPLE, '*'), '--root', SAMPLE, '--model', ckpt, '--out', out, '--delta', '0.3', '--batch', '8']);
  t.equal(r.code, 0, r.stderr);
  const piped = spawnSync('sh', ['-c',
    `node ${CASL} ingest '${SAMPLE}/*' --root ${SAMPLE} --quiet | node ${CASL} infer --model ${ckpt} --root ${SAMPLE} --batch 8 --backend wasm --quiet`
    + ` | node ${CASL} filter --delta 0.3 --dropped ${path.join(work, 'piped.dropped')} --quiet`], { encoding: 'utf8', maxBuffer: 1 << 26 });
  t.equal(piped.status, 0, piped.stderr);
  const pipedLines = new Set(piped.stdout.split('\n').filter(Boolean));
  t.ok(pipedLines.size > 0, `${pipedLines.size} images kept`);
  t.same([...pipedLines].sort(), [...lineSet(out)].sort(), 'kept records are identical line for line');
  t.same([...lineSet(path.join(work, 'piped.dropped'))].sort(), [...lineSet(`${out}.dropped`)].sort(), 'the same images dropped as empty');
  t.equal(lineSet(out).size + lineSet(`${out}.dropped`).size, readdirSync(SAMPLE).length, 'every image accounted for');
});

t.test('a run cut at any moment and resumed equals an uninterrupted one', async (t) => {
  const ref = path.join(work, 'ref.jsonl');
  // δ high enough that some images are dropped, so all three files matter.
  const args = (out: string) => [path.join(SAMPLE, '*'), '--root', SAMPLE, '--model', ckpt, '--out', out, '--delta', '0.5', '--batch', '4'];
  t.equal((await runPseudoLabel(args(ref))).code, 0);
  const files = ['', '.dropped', '.errors'];
  const refText = files.map((f) => (existsSync(ref + f) ? readFileSync(ref + f) : Buffer.alloc(0)));
  t.ok(lineSet(ref).size > 0 && lineSet(`${ref}.dropped`).size > 0, 'the reference keeps some images and drops others');
  // A crash leaves a prefix of each file, cut anywhere (torn lines included).
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 6; trial++) {
    const out = path.join(work, `cut${trial}.jsonl`);
    files.forEach((f, i) => writeFileSync(out + f, refText[i].subarray(0, Math.floor(rand() * (refText[i].length + 1)))));
    const r = await runPseudoLabel([...args(out), '--resume']);
    t.equal(r.code, 0, r.stderr);
    for (const f of files) t.same([...lineSet(out + f)].sort(), [...lineSet(ref + f)].sort(), `trial ${trial}: ${f || 'OUT'} equals the uninterrupted run`);
  }
});

t.test('SIGKILL at a random moment, then --resume, equals an uninterrupted run', async (t) => {
  const ref = path.join(work, 'ref.jsonl');
  const argv = (out: string) => [CASL, 'pseudo-label', path.join(SAMPLE, '*'), '--root', SAMPLE, '--model', ckpt, '--out', out,
    '--delta', '0.5', '--batch', '4', '--quiet', '--backend', 'wasm'];
  // How long a whole run takes here, so the kills land inside one (start-up included).
  const t0 = performance.now();
  t.equal(spawnSync(process.execPath, argv(path.join(work, 'timed.jsonl'))).status, 0);
  const runMs = performance.now() - t0;
  for (const fraction of [0.35, 0.6, 0.85]) {
    const out = path.join(work, `kill${fraction}.jsonl`);
    const child = spawn(process.execPath, argv(out), { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, fraction * runMs));
    child.kill('SIGKILL');
    await exited;
    const resumed = spawnSync(process.execPath, [...argv(out), '--resume'], { encoding: 'utf8' });
    t.equal(resumed.status, 0, resumed.stderr);
    for (const f of ['', '.dropped']) t.same([...lineSet(out + f)].sort(), [...lineSet(ref + f)].sort(), `killed at ${Math.round(fraction * 100)}% of a run: ${f || 'OUT'} equals`);
  }
});

t.test('bad images become error records; the run goes on and says it failed', async (t) => {
  const dir = path.join(work, 'mixed');
  mkdirSync(dir);
  const good = readdirSync(SAMPLE).slice(0, 3);
  for (const f of good) copyFileSync(path.join(SAMPLE, f), path.join(dir, f));
  writeFileSync(path.join(dir, 'empty.jpg'), '');
  writeFileSync(path.join(dir, 'notes.jpg'), 'this is text, not a JPEG\n');
  writeFileSync(path.join(dir, 'cut.jpg'), readFileSync(path.join(SAMPLE, good.find((f) => f.endsWith('.jpg'))!)).subarray(0, 300));
  const out = path.join(work, 'mixed.jsonl');
  const r = await runPseudoLabel([path.join(dir, '*'), '--root', dir, '--model', ckpt, '--out', out, '--delta', '0.05']);
  t.equal(r.code, 1, 'exit status 1: some images failed');
  const errors = [...lineSet(`${out}.errors`)].map((l) => JSON.parse(l) as { file_name: string; stage: string; image_id: number });
  t.same(errors.map((e) => e.file_name).sort(), ['cut.jpg', 'empty.jpg', 'notes.jpg']);
  t.ok(errors.every((e) => e.stage === 'decode' && typeof e.image_id === 'number'), 'decode errors carry the image id');
  t.equal(lineSet(out).size + lineSet(`${out}.dropped`).size, 3, 'every good image is in the output');
  t.match(r.stderr, /3 failed/);
});

t.test('a torn last line is cut off before resuming', async (t) => {
  const f = path.join(work, 'torn.jsonl');
  writeFileSync(f, '{"image_id":1}\n{"image_id":2}\n{"image_');
  t.equal(repairTornTail(f), 8, "the 8 bytes after the last newline");
  t.equal(readFileSync(f, 'utf8'), '{"image_id":1}\n{"image_id":2}\n');
  t.equal(repairTornTail(f), 0, 'a clean file is left alone');
});

t.test('an existing output is never overwritten by accident', async (t) => {
  const out = path.join(work, 'inproc.jsonl');
  await t.rejects(runPseudoLabel([path.join(SAMPLE, '*'), '--root', SAMPLE, '--model', ckpt, '--out', out]), /--resume to finish that run, or --overwrite/);
});

t.test('an image gets the same predictions whatever its batch, on this thread or in inference workers', async (t) => {
  const { det } = loadDetector(ckpt);
  const files = readdirSync(SAMPLE).sort();
  const records = files.map((f, i) => ({ image_id: i + 1, file_name: f }));
  const predict = (recs: typeof records, pool?: InferencePool) => new Promise<PredictionRecord[]>((resolve, reject) => {
    _(recs).through(decodeImages({ root: SAMPLE, size: det.config.inputSize, concurrency: 2 }))
      .through(inferImages({ detector: det, batchSize: 4, aug: 'none', views: 1, seed: 0, meta: {}, pool }))
      .errors(reject).toArray((xs) => resolve(xs as PredictionRecord[]));
  });
  const instances = (rs: PredictionRecord[]) => new Map(rs.map((r) => [r.image_id, JSON.stringify(r.instances)]));
  const all = instances(await predict(records));
  // 24 images in batches of 4 from the 3rd on: the last batch holds a lone image.
  const rest = instances(await predict(records.slice(3)));
  const lone = records.slice(-1);
  t.equal(rest.get(lone[0].image_id), all.get(lone[0].image_id), 'the lone image of a last batch predicts as among others');
  for (const [id, text] of rest) t.equal(text, all.get(id), `image ${id}: same instances when the batches start elsewhere`);
  const pool = await InferencePool.start(det, 1);
  t.teardown(() => pool.close());
  const inWorker = await predict(records, pool);
  t.ok(inWorker.every((r) => r.meta?.backend?.endsWith('× 1 worker thread')), 'the metadata names the workers\' backend');
  for (const [id, text] of instances(inWorker)) t.equal(text, all.get(id), `image ${id}: the worker predicts what this thread does`);
  t.ok(pool.numTensors > 0, 'the worker reports its live tensors');
  disposeDetector(det);
});
