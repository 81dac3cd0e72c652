// Checkpoints: the standard tfjs weights format plus casl's manifest.
//
//   DIR/model.json   { format, weightsManifest: [{ paths, weights: [{name, shape, dtype}] }],
//                      casl: { config, numClasses, classNames, stage, step, backend,
//                              weightsSha256, savedAt, optimizer? } }
//   DIR/weights-<sha8>-<i>of<n>.bin   float32 little-endian shards (≤ 4 MiB, tfjs's size)
//   DIR/optimizer-<sha8>-<i>of<n>.bin optimizer slots, when saved with one
//
// Tensor names are the detector's parameter names (backbone.stem.0.weight …),
// conv weights HWIO. Any tfjs `loadWeights` reads the weights group.
//
// Atomic: shards are content-named and written (temp file, fsync, rename)
// before model.json, which is committed last by one rename. A crash at any
// point leaves either the previous model.json with its shards, or the new
// one with its shards — never a mixture. (Renaming a whole temp directory
// over an existing non-empty one is not possible atomically on POSIX.)
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync, existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { backendInfo, describeBackend } from './backend/index.js';
import { type ModelConfig, validateModelConfig } from './config.js';
import { type Detector, createDetector } from './detector.js';
import { type Part, PARTS, numel } from './params.js';
import { Optimizer, type OptimizerConfig } from './optim.js';

export const CHECKPOINT_FORMAT = 'casl-checkpoint/1';
const SHARD_BYTES = 4 * 1024 * 1024;

export type Stage = 'labeler' | 'warmup' | 'finetune' | 'init';

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

interface WeightsGroup {
  paths: string[];
  weights: WeightEntry[];
}

export interface CheckpointManifest {
  config: ModelConfig;
  numClasses: number;
  classNames: string[];
  stage: Stage;
  step: number;
  backend: string;
  weightsSha256: string;
  savedAt: string;
  optimizer?: {
    config: OptimizerConfig;
    step: number;
    paramSteps: Record<string, number>;
    weightsManifest: WeightsGroup[];
  };
}

interface ModelJson {
  format: string;
  generatedBy: string;
  weightsManifest: WeightsGroup[];
  casl: CheckpointManifest;
}

/** The backend as casl's selection describes it ('wasm (SIMD, 2 threads)'), else tfjs's registry name. */
function backendName(): string {
  const info = backendInfo();
  return info ? describeBackend(info) : tf.getBackend();
}

export interface SaveOptions {
  classNames: string[];
  stage: Stage;
  step: number;
  /** Default: the backend in use, as casl's backend selection describes it. */
  backend?: string;
  optimizer?: Optimizer;
}

/** A checkpoint read into memory: tensors as plain float arrays, by name. */
export interface Checkpoint {
  dir: string;
  manifest: CheckpointManifest;
  weights: Map<string, { shape: number[]; data: Float32Array }>;
  optimizerSlots?: Map<string, { shape: number[]; data: Float32Array }>;
}

// JSON has no Infinity; the last FCOS size range is open-ended.
const replacer = (_k: string, v: unknown) => (v === Infinity ? 'Infinity' : v);
const reviver = (_k: string, v: unknown) => (v === 'Infinity' ? Infinity : v);

function writeFileDurable(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function tensorsToBytes(named: [string, tf.Tensor][]): Promise<{ entries: WeightEntry[]; bytes: Uint8Array }> {
  const arrays = await Promise.all(named.map(([, t]) => t.data() as Promise<Float32Array>));
  const total = arrays.reduce((n, a) => n + a.byteLength, 0);
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const a of arrays) {
    bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), off);
    off += a.byteLength;
  }
  return { entries: named.map(([name, t]) => ({ name, shape: t.shape.slice(), dtype: 'float32' })), bytes };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes shards named by content; returns their file names. */
function writeShards(dir: string, prefix: string, bytes: Uint8Array, hash: string): string[] {
  const n = Math.max(1, Math.ceil(bytes.byteLength / SHARD_BYTES));
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${hash.slice(0, 16)}-${i + 1}of${n}.bin`;
    writeFileDurable(path.join(dir, name), bytes.subarray(i * SHARD_BYTES, Math.min((i + 1) * SHARD_BYTES, bytes.byteLength)));
    paths.push(name);
  }
  return paths;
}

/** Saves the detector (and optionally its optimizer) to DIR atomically; returns the weights' sha256. */
export async function saveCheckpoint(dir: string, det: Detector, opts: SaveOptions): Promise<string> {
  if (opts.classNames.length !== det.config.numClasses) {
    throw new Error(`saveCheckpoint ${dir}: ${opts.classNames.length} class names for a model with K = ${det.config.numClasses}`);
  }
  mkdirSync(dir, { recursive: true });
  const { entries, bytes } = await tensorsToBytes([...det.params]);
  const hash = sha256(bytes);
  const manifest: CheckpointManifest = {
    config: det.config,
    numClasses: det.config.numClasses,
    classNames: opts.classNames,
    stage: opts.stage,
    step: opts.step,
    backend: opts.backend ?? backendName(),
    weightsSha256: hash,
    savedAt: new Date().toISOString(),
  };
  const keep = new Set(['model.json']);
  const weightPaths = writeShards(dir, 'weights', bytes, hash);
  weightPaths.forEach((p) => keep.add(p));
  if (opts.optimizer) {
    const state = opts.optimizer.getState();
    try {
      const o = await tensorsToBytes([...state.slots]);
      const oPaths = writeShards(dir, 'optimizer', o.bytes, sha256(o.bytes));
      oPaths.forEach((p) => keep.add(p));
      manifest.optimizer = { config: state.config, step: state.step, paramSteps: state.paramSteps, weightsManifest: [{ paths: oPaths, weights: o.entries }] };
    } finally {
      tf.dispose([...state.slots.values()]);
    }
  }
  const json: ModelJson = {
    format: CHECKPOINT_FORMAT,
    generatedBy: 'casl',
    weightsManifest: [{ paths: weightPaths, weights: entries }],
    casl: manifest,
  };
  fsyncDir(dir);
  writeFileDurable(path.join(dir, 'model.json'), JSON.stringify(json, replacer, 1));
  fsyncDir(dir);
  // Only now are the previous shards unreferenced.
  for (const f of readdirSync(dir)) {
    if (!keep.has(f) && /^(weights|optimizer)-.*\.bin$|\.tmp-\d+$/.test(f)) rmSync(path.join(dir, f), { force: true });
  }
  return hash;
}

function readGroup(dir: string, groups: WeightsGroup[], what: string): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const g of groups) {
    const parts = g.paths.map((p) => {
      const file = path.join(dir, p);
      if (!existsSync(file)) throw new Error(`checkpoint ${dir}: ${what} shard '${p}' listed in model.json is missing`);
      return readFileSync(file);
    });
    const buf = Buffer.concat(parts);
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    let off = 0;
    for (const w of g.weights) {
      if (w.dtype !== 'float32') throw new Error(`checkpoint ${dir}: ${what} tensor '${w.name}' is ${w.dtype}; only float32 is supported`);
      const n = numel(w.shape);
      if (off + n > all.length) throw new Error(`checkpoint ${dir}: ${what} shards end before tensor '${w.name}' (truncated file?)`);
      out.set(w.name, { shape: w.shape, data: all.subarray(off, off + n) });
      off += n;
    }
    if (off !== all.length) throw new Error(`checkpoint ${dir}: ${what} shards hold ${all.length - off} floats more than model.json lists`);
  }
  return out;
}

/** Reads DIR/model.json and its shards, checking the weights' hash. */
export function readCheckpoint(dir: string): Checkpoint {
  const file = path.join(dir, 'model.json');
  if (!existsSync(file)) throw new Error(`checkpoint ${dir}: no model.json (is this a casl checkpoint directory?)`);
  let json: ModelJson;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'), reviver) as ModelJson;
  } catch (e) {
    throw new Error(`checkpoint ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (json.format !== CHECKPOINT_FORMAT || !json.casl) {
    throw new Error(`checkpoint ${file}: format '${json.format}' is not '${CHECKPOINT_FORMAT}'`);
  }
  const weights = readGroup(dir, json.weightsManifest, 'weights');
  const h = createHash('sha256');
  for (const w of weights.values()) h.update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
  const hash = h.digest('hex');
  if (hash !== json.casl.weightsSha256) {
    throw new Error(`checkpoint ${dir}: weights hash ${hash.slice(0, 16)}… does not match model.json's ${json.casl.weightsSha256.slice(0, 16)}… (corrupted shard?)`);
  }
  validateModelConfig(json.casl.config);
  const ckpt: Checkpoint = { dir, manifest: json.casl, weights };
  if (json.casl.optimizer) ckpt.optimizerSlots = readGroup(dir, json.casl.optimizer.weightsManifest, 'optimizer');
  return ckpt;
}

function mismatch(ckpt: Checkpoint, det: Detector, name: string, want: number[], got: number[] | undefined): Error {
  const where = `checkpoint ${ckpt.dir} (model '${ckpt.manifest.config.name}', K = ${ckpt.manifest.numClasses})`;
  if (!got) return new Error(`${where} has no tensor '${name}' that model '${det.config.name}' needs: it was saved from another configuration`);
  return new Error(`${where}: tensor '${name}' is [${got}] but model '${det.config.name}' (K = ${det.config.numClasses}) needs [${want}]: the checkpoint is from another configuration`);
}

function assign(det: Detector, name: string, data: Float32Array, shape: number[]): void {
  const t = tf.tensor(data, shape, 'float32');
  det.params.get(name)!.assign(t);
  t.dispose();
}

/** Loads every weight into `det`; throws naming the first tensor that is missing, extra or of another shape. */
export function loadWeightsInto(det: Detector, ckpt: Checkpoint): void {
  for (const [name, v] of det.params) {
    const w = ckpt.weights.get(name);
    if (!w || w.shape.join() !== v.shape.join()) throw mismatch(ckpt, det, name, v.shape, w?.shape);
  }
  const extra = [...ckpt.weights.keys()].filter((n) => !det.params.has(n));
  if (extra.length) throw new Error(`checkpoint ${ckpt.dir}: tensor '${extra[0]}' has no parameter in model '${det.config.name}': the checkpoint is from another configuration`);
  for (const [name, w] of ckpt.weights) assign(det, name, w.data, w.shape);
}

/** A detector with the checkpoint's own configuration and weights. */
export function loadDetector(dir: string): { det: Detector; ckpt: Checkpoint } {
  const ckpt = readCheckpoint(dir);
  const det = createDetector(ckpt.manifest.config);
  loadWeightsInto(det, ckpt);
  return { det, ckpt };
}

/** Restores the optimizer saved with the checkpoint into `opt` (same kind). */
export function loadOptimizerInto(opt: Optimizer, ckpt: Checkpoint): void {
  const o = ckpt.manifest.optimizer;
  if (!o || !ckpt.optimizerSlots) throw new Error(`checkpoint ${ckpt.dir} was saved without optimizer state: resume needs one saved with --optimizer`);
  const slots = new Map<string, tf.Tensor>();
  for (const [k, v] of ckpt.optimizerSlots) slots.set(k, tf.tensor(v.data, v.shape, 'float32'));
  try {
    opt.setState({ config: o.config, step: o.step, paramSteps: o.paramSteps, slots });
  } finally {
    tf.dispose([...slots.values()]);
  }
}

export interface PartialInit {
  /** Parts taken from the checkpoint; the rest keep their fresh initialisation. */
  take: Part[];
  /**
   * For a K-class model from a K = 1 checkpoint with 'classifier' taken:
   * 'copy' puts the single channel into every one of the K (the paper's
   * option b), 'random' keeps the fresh classifier (option a).
   */
  classifier?: 'copy' | 'random';
}

/**
 * Finetuning initialisation: the chosen parts of `det` from `ckpt`, checked
 * tensor by tensor (names and shapes), the others untouched.
 */
export function initFromCheckpoint(det: Detector, ckpt: Checkpoint, init: PartialInit): void {
  for (const p of init.take) if (!PARTS.includes(p)) throw new Error(`partial initialisation: unknown part '${p}' (choose from ${PARTS.join(', ')})`);
  const take = new Set(init.take);
  const Kc = ckpt.manifest.numClasses;
  const K = det.config.numClasses;
  const plan: [string, Float32Array, number[]][] = [];
  for (const spec of det.specs) {
    if (!take.has(spec.part)) continue;
    const w = ckpt.weights.get(spec.name);
    const want = spec.shape;
    if (spec.part === 'classifier' && Kc !== K) {
      if (!w || Kc !== 1) {
        throw new Error(`checkpoint ${ckpt.dir}: classifier '${spec.name}' has K = ${Kc}, the model K = ${K}; only a K = 1 classifier can initialise a K-class one (or leave 'classifier' out)`);
      }
      if ((init.classifier ?? 'copy') === 'random') continue;
      if (w.shape.slice(0, -1).join() !== want.slice(0, -1).join()) throw mismatch(ckpt, det, spec.name, want, w.shape);
      const tiled = new Float32Array(numel(want));
      for (let i = 0; i < w.data.length; i++) tiled.fill(w.data[i], i * K, (i + 1) * K);
      plan.push([spec.name, tiled, want]);
      continue;
    }
    if (!w || w.shape.join() !== want.join()) throw mismatch(ckpt, det, spec.name, want, w?.shape);
    plan.push([spec.name, w.data, want]);
  }
  // Everything is checked before anything is assigned: a failed init leaves the model as it was.
  for (const [name, data, shape] of plan) assign(det, name, data, shape);
}
