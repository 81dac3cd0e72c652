// Test data for the viewer, made on the spot: a few images drawn by sharp, a
// prediction JSONL over them (boxes, RLE masks, scores exactly at the δs the
// tests use, an error record, a broken line, names escaping the root) and a
// COCO ground truth. Also the pieces the tests share: the strict δ rule,
// `casl filter`'s counts, starting `casl view`, counting a colour on screen.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import sharp from 'sharp';
import type { Instance, PredictionRecord } from '../src/records.js';
import { encodeMask, rleToJson } from '../src/geometry/mask.js';
import { Rng } from '../src/augment/rng.js';

export const PROJECT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

export function rectMask(h: number, w: number, [x0, y0, bw, bh]: number[]): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let y = Math.max(0, y0); y < Math.min(h, y0 + bh); y++) for (let x = Math.max(0, x0); x < Math.min(w, x0 + bw); x++) m[y * w + x] = 1;
  return m;
}

/** Seeded uniform [0, 1) (the project's mulberry32): the fixture is the same on every run. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

export interface ViewFixture {
  dir: string;
  root: string;
  jsonl: string;
  gt: string;
  /** A file outside the root that must never be served. */
  secret: string;
  records: PredictionRecord[];
  /** Lines that are not prediction records: an error record, a torn line, a record without image_id. */
  nonRecords: number;
  /** Records shown as error tiles though they count as images: no file_name, '..', absolute, symlink out. */
  refused: number;
}

/** Scores the filter tests pin: exactly at each tested δ (must not survive it) and just above. */
export const EDGE_SCORES = [0.3, 0.5, 0.7, 0.30000001, 0.5000001, 0.70001];

export async function makeViewFixture(nImages = 10, seed = 1): Promise<ViewFixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'casl-view-'));
  const root = path.join(dir, 'images');
  mkdirSync(path.join(root, 'sub dir'), { recursive: true });
  const secret = path.join(dir, 'secret.png');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ff00ff' } }).png().toFile(secret);
  symlinkSync(secret, path.join(root, 'escape.png'));
  const rand = rng(seed);
  const records: PredictionRecord[] = [];
  const gtImages: object[] = [];
  const gtAnns: object[] = [];
  for (let k = 0; k < nImages; k++) {
    const width = 160 + 16 * (k % 4);
    const height = 120 + 8 * (k % 3);
    // Unicode and spaces in names: offsets are bytes, names are UTF-8.
    const fileName = k % 3 === 0 ? `sub dir/bild-${k}-ü.png` : `img-${k}.jpg`;
    const objects: number[][] = [];
    const composites: sharp.OverlayOptions[] = [];
    for (let o = 0; o < 1 + (k % 3); o++) {
      const bw = 20 + Math.floor(rand() * 40);
      const bh = 20 + Math.floor(rand() * 40);
      const x = Math.floor(rand() * (width - bw));
      const y = Math.floor(rand() * (height - bh));
      objects.push([x, y, bw, bh]);
      composites.push({
        input: { create: { width: bw, height: bh, channels: 3, background: { r: 40 + o * 80, g: 200 - o * 60, b: 90 } } },
        left: x, top: y,
      });
    }
    const img = sharp({ create: { width, height, channels: 3, background: '#30343c' } }).composite(composites);
    await (fileName.endsWith('.png') ? img.png() : img.jpeg()).toFile(path.join(root, fileName));
    gtImages.push({ id: k + 1, file_name: fileName, width, height });
    objects.forEach((b, o) => gtAnns.push({ id: gtAnns.length + 1, image_id: k + 1, category_id: 1 + o, bbox: b, area: b[2] * b[3], iscrowd: 0 }));
    const instances: Instance[] = [];
    objects.forEach((b, o) => {
      // Every other object found (with a jittered box), scored across [0, 1).
      if ((k + o) % 2 === 1 && k % 5 !== 4) return;
      const bbox = [b[0] + 1, b[1] + 1, b[2] - 2, b[3] - 1] as [number, number, number, number];
      const inst: Instance = { bbox, score: EDGE_SCORES[(k + o) % EDGE_SCORES.length], category_id: 1 };
      if (o === 0) inst.segmentation = rleToJson(encodeMask(rectMask(height, width, bbox), height, width));
      instances.push(inst);
    });
    for (let f = 0; f < k % 4; f++) {
      instances.push({ bbox: [rand() * 100, rand() * 60, 10 + rand() * 30, 10 + rand() * 30], score: Math.round(rand() * 1000) / 1000, category_id: 1 });
    }
    // Some images end with nothing above any δ: the "dropped" filter has work.
    if (k % 5 === 2) for (const inst of instances) inst.score = Math.min(inst.score, 0.25);
    records.push({ image_id: k + 1, file_name: fileName, ...(k % 2 ? { width, height } : {}), instances, meta: { model: 'fixture', delta: 0.05 } });
  }
  const bad: PredictionRecord[] = [
    { image_id: 1001, file_name: '../secret.png', instances: [{ bbox: [0, 0, 4, 4], score: 0.9, category_id: 1 }] },
    { image_id: 1002, file_name: secret, instances: [{ bbox: [0, 0, 4, 4], score: 0.8, category_id: 1 }] },
    { image_id: 1003, file_name: 'escape.png', instances: [{ bbox: [0, 0, 4, 4], score: 0.6, category_id: 1 }] },
  ];
  const lines = records.map((r) => JSON.stringify(r));
  lines.splice(3, 0, JSON.stringify({ error: 'cannot decode: truncated JPEG', stage: 'decode', file_name: 'broken.jpg', image_id: 999 }));
  lines.splice(5, 0, '{"image_id": 77, "file_name": "torn.jpg", "instan');
  lines.splice(7, 0, JSON.stringify({ file_name: 'img-1.jpg', instances: [{ bbox: [1, 1, 2, 2], score: 0.9, category_id: 1 }] }));
  const nameless = { image_id: 2001, instances: [{ bbox: [1, 1, 2, 2], score: 0.95, category_id: 1 }] } as unknown as PredictionRecord;
  lines.splice(9, 0, JSON.stringify(nameless));
  records.splice(7, 0, nameless);
  lines.push('', ...bad.map((r) => JSON.stringify(r)));
  records.push(...bad);
  const jsonl = path.join(dir, 'pred.jsonl');
  writeFileSync(jsonl, lines.join('\n') + '\n');
  const gt = path.join(dir, 'gt.json');
  writeFileSync(gt, JSON.stringify({ images: gtImages, annotations: gtAnns, categories: [1, 2, 3].map((id) => ({ id, name: `c${id}` })) }));
  return { dir, root, jsonl, gt, secret, records, nonRecords: 3, refused: 4 };
}

/** The δ filter's counts by the strict rule, straight from the records. */
export function expectedCounts(records: PredictionRecord[], delta: number) {
  let imagesKept = 0;
  let instancesKept = 0;
  for (const r of records) {
    const k = r.instances.filter((i) => i.score > delta).length;
    instancesKept += k;
    if (k > 0) imagesKept += 1;
  }
  return { images: records.length, imagesKept, imagesDropped: records.length - imagesKept, instancesKept };
}

export interface Running {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `node bin/casl.js view …` on a free port and waits for its URL. */
export function startView(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [path.join(PROJECT, 'bin/casl.js'), 'view', ...args, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`casl view did not start in 60 s:\n${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1].replace(/\/$/, ''),
          child,
          stop: () => new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`casl view exited with ${code}:\n${err}`));
    });
  });
}

/** What `casl filter --delta δ` reports for the JSONL (its --summary JSON), in the viewer's names. */
export function filterCounts(dir: string, jsonl: string, delta: number) {
  const summary = path.join(dir, `filter-${delta}.json`);
  const r = spawnSync(process.execPath, [path.join(PROJECT, 'bin/casl.js'), 'filter', jsonl, '--delta', String(delta), '--quiet',
    '--summary', summary, '--errors', path.join(dir, `filter-${delta}.errors.jsonl`)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  // It exits 1 when the input had bad lines and still writes its summary.
  if ((r.status !== 0 && r.status !== 1) || !existsSync(summary)) throw new Error(`casl filter exited ${r.status} without a summary:\n${r.stderr}`);
  const j = JSON.parse(readFileSync(summary, 'utf8')) as Record<string, number>;
  return { images: j.images_in, imagesKept: j.images_out, imagesDropped: j.images_dropped_empty, instancesKept: j.instances_out };
}

/** Pixels of a screenshot within `tol` (L1 over r, g, b) of a colour: how much of a box colour is on screen. */
export async function colourPixels(png: Buffer, [r, g, b]: number[], tol = 40): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < info.width * info.height * 3; i += 3) {
    if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < tol) n += 1;
  }
  return n;
}

/** The viewer's counts as the page shows them (run in the page: `page.evaluate(shownCounts)`). */
export const shownCounts = () => ({
  images: Number(document.getElementById('count-images')!.textContent),
  imagesKept: Number(document.getElementById('count-images-kept')!.textContent),
  imagesDropped: Number(document.getElementById('count-dropped')!.textContent),
  instancesKept: Number(document.getElementById('count-instances-kept')!.textContent),
});
