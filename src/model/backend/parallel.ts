// Data parallelism over worker_threads, the way casl uses more than one core
// on the wasm backend: a batch is split between this thread and R − 1
// workers, each with its own single-threaded wasm backend and a copy of the
// weights. One synchronisation per batch, against XNNPACK's threaded build
// which forks and joins inside every kernel (see wasm.ts and README "Speed").
//
// Training is exact, not an approximation: GroupNorm is per image, and the
// loss's normalisers (N_pos, Σ c*) are batch-wide sums, so replica r's loss
// terms are re-weighted by its share of them,
//   L = Σ_r [ cls_r·n_r + reg_r·c_r + ctr_r·n_r ],
//   n_r = max(N_r, 1) / max(N, 1),   c_r = max(C_r, 1e-6) / max(C, 1e-6),
// and the summed gradients are the full batch's. The optimiser runs here;
// the new weights go to the workers before their next batch.
//
// Shapes: images [B, S, S, 3] split along B into R contiguous chunks; weights
// and gradients travel as one flat float32 buffer in parameter order.
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { type Detector, forward } from '../detector.js';
import { fcosLoss } from '../loss.js';
import type { Optimizer } from '../optim.js';
import { type Points, makePoints } from '../points.js';
import { type Detections } from '../postprocess.js';
import { type View, predict } from '../predict.js';
import { type GtInstances, fcosTargets } from '../targets.js';
import type { Batch, StepOptions, StepResult } from '../train-step.js';

/** How much of the batch-wide loss a replica's chunk carries (see the top of this file). */
export interface LossShare {
  n: number;
  c: number;
}

export interface ChunkLoss {
  cls: number;
  reg: number;
  ctr: number;
}

/** Loss terms of a chunk, weighted by its share, and the gradients of their sum, keyed by parameter name. */
export function chunkGradients(det: Detector, images: tf.Tensor4D, gt: GtInstances[], share: LossShare, points: Points, names: string[]):
  { grads: Map<string, tf.Tensor>; loss: ChunkLoss } {
  const targets = fcosTargets(points, gt, det.config.centerRadius);
  const vars = names.map((n) => det.params.get(n)!);
  const byTfName = new Map(names.map((n) => [det.params.get(n)!.name, n]));
  let terms: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const out = forward(det, images);
    const l = fcosLoss(out, targets, points);
    terms = [tf.keep(tf.mul(l.cls, share.n)), tf.keep(tf.mul(l.reg, share.c)), tf.keep(tf.mul(l.ctr, share.n))];
    return tf.addN(terms) as tf.Scalar;
  }, vars);
  const [cls, reg, ctr] = terms.map((t) => t.dataSync()[0]);
  tf.dispose([value, ...terms]);
  const named = new Map<string, tf.Tensor>();
  for (const [tfName, g] of Object.entries(grads)) named.set(byTfName.get(tfName)!, g);
  return { grads: named, loss: { cls, reg, ctr } };
}

/** Contiguous chunks of 0…B−1, as even as possible, at most `r` of them, none empty. */
export function splitBatch(B: number, r: number): [number, number][] {
  const n = Math.min(r, B);
  const out: [number, number][] = [];
  for (let i = 0, start = 0; i < n; i++) {
    const size = Math.floor(B / n) + (i < B % n ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

/** Each chunk's share of the batch-wide normalisers N_pos and Σ c*. */
export function lossShares(points: Points, gt: GtInstances[], chunks: [number, number][], centerRadius: number): LossShare[] {
  const stats = chunks.map(([a, b]) => {
    const t = fcosTargets(points, gt.slice(a, b), centerRadius);
    let c = 0;
    for (let i = 0; i < t.ctr.length; i++) if (t.pos[i]) c += t.ctr[i];
    return { n: t.numPos, c };
  });
  const N = stats.reduce((s, x) => s + x.n, 0);
  const C = stats.reduce((s, x) => s + x.c, 0);
  return stats.map((x) => ({ n: Math.max(x.n, 1) / Math.max(N, 1), c: Math.max(x.c, 1e-6) / Math.max(C, 1e-6) }));
}

// Messages between this thread and a worker (worker.ts).
export type ToWorker =
  | { type: 'init'; config: ModelConfig; weights: SharedArrayBuffer; grads: SharedArrayBuffer }
  | { type: 'weights' }
  | { type: 'grads'; images: Float32Array; shape: number[]; gt: GtInstances[]; share: LossShare; names: string[] }
  | { type: 'predict'; images: Float32Array; shape: number[]; views?: View[] };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'loaded' }
  | { type: 'grads'; loss: ChunkLoss }
  | { type: 'predict'; dets: Detections[] }
  | { type: 'error'; message: string };

/** The weights of `det`, in parameter order, as offsets into one flat buffer. */
function layout(det: Detector): { name: string; offset: number; size: number }[] {
  let offset = 0;
  return [...det.params.entries()].map(([name, v]) => {
    const e = { name, offset, size: v.size };
    offset += v.size;
    return e;
  });
}

class Replica {
  private waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;
  constructor(readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (!w) return;
      if (m.type === 'error') w.reject(new Error(`data-parallel worker: ${m.message}`));
      else w.resolve(m);
    });
    worker.on('error', (e) => {
      this.waiting?.reject(e);
      this.waiting = undefined;
    });
  }

  request(msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.waiting) throw new Error('data-parallel worker: a request is already in flight');
    // Referenced only while a request is in flight: an idle pool must not keep the process alive.
    this.worker.ref();
    return new Promise<FromWorker>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    }).finally(() => this.worker.unref());
  }
}

export class DataParallel {
  private pushed: object[] = [];
  private readonly points = new Map<number, Points>();

  private constructor(
    readonly det: Detector,
    private readonly replicas: Replica[],
    private readonly weights: Float32Array,
    private readonly grads: Float32Array[],
    private readonly slots: { name: string; offset: number; size: number }[],
  ) {}

  /**
   * `replicas` − 1 workers beside this thread for `det` (its config; the
   * weights follow it at every call). This thread must run the wasm backend
   * on one thread (CASL_THREADS=1), as the workers do.
   */
  static async start(det: Detector, replicas: number): Promise<DataParallel> {
    const slots = layout(det);
    const total = slots.reduce((s, x) => s + x.size, 0);
    const weights = new SharedArrayBuffer(4 * total);
    const ext = path.extname(fileURLToPath(import.meta.url));
    const script = new URL(`./worker${ext}`, import.meta.url);
    const reps: Replica[] = [];
    const grads: Float32Array[] = [];
    for (let i = 1; i < replicas; i++) {
      const g = new SharedArrayBuffer(4 * total);
      const worker = new Worker(script, { env: { ...process.env, CASL_BACKEND: 'wasm', CASL_THREADS: '1' } });
      worker.unref();
      const rep = new Replica(worker);
      reps.push(rep);
      grads.push(new Float32Array(g));
      const m = await rep.request({ type: 'init', config: det.config, weights, grads: g });
      if (m.type !== 'ready') throw new Error(`data-parallel worker ${i}: unexpected reply ${m.type}`);
    }
    return new DataParallel(det, reps, new Float32Array(weights), grads, slots);
  }

  get size(): number {
    return this.replicas.length + 1;
  }

  /** Sends the weights if any parameter changed since the last push (a tf.Variable gets a new dataId on assign). */
  private async syncWeights(): Promise<void> {
    const vars = this.slots.map((s) => this.det.params.get(s.name)!);
    if (vars.every((v, i) => v.dataId === this.pushed[i])) return;
    for (const [i, s] of this.slots.entries()) this.weights.set(vars[i].dataSync() as Float32Array, s.offset);
    await Promise.all(this.replicas.map((r) => r.request({ type: 'weights' })));
    this.pushed = vars.map((v) => v.dataId);
  }

  private pointsFor(S: number): Points {
    let p = this.points.get(S);
    if (!p) this.points.set(S, (p = makePoints(this.det.config, S)));
    return p;
  }

  /** One optimiser step on the whole batch, the gradient computed in parallel; the loss terms are the full batch's. */
  async trainStep(opt: Optimizer, batch: Batch, opts: StepOptions): Promise<StepResult> {
    const det = this.det;
    await this.syncWeights();
    const [B, S] = batch.images.shape;
    const points = opts.points ?? this.pointsFor(S);
    const chunks = splitBatch(B, this.size);
    const shares = lossShares(points, batch.gt, chunks, det.config.centerRadius);
    const names = [...det.params.keys()].filter((n) => opts.trainable?.(n) ?? true);
    const remote = chunks.slice(1).map(([a, b], i) => {
      const images = tf.tidy(() => tf.slice(batch.images, [a, 0, 0, 0], [b - a, -1, -1, -1]).dataSync() as Float32Array);
      return this.replicas[i].request(
        { type: 'grads', images, shape: [b - a, ...batch.images.shape.slice(1)], gt: batch.gt.slice(a, b), share: shares[i + 1], names },
        [images.buffer as ArrayBuffer]);
    });
    const [a0, b0] = chunks[0];
    const local = tf.tidy(() => tf.slice(batch.images, [a0, 0, 0, 0], [b0 - a0, -1, -1, -1]) as tf.Tensor4D);
    const mine = chunkGradients(det, local, batch.gt.slice(a0, b0), shares[0], points, names);
    local.dispose();
    const replies = await Promise.all(remote);
    const summed = new Map<string, tf.Tensor>();
    for (const s of this.slots) {
      const g = mine.grads.get(s.name);
      if (!g) continue;
      summed.set(s.name, tf.tidy(() => this.grads.slice(0, replies.length).reduce<tf.Tensor>(
        (acc, buf) => tf.add(acc, tf.tensor(buf.subarray(s.offset, s.offset + s.size), g.shape)), g)));
    }
    tf.dispose([...mine.grads.values()]);
    try {
      opt.apply(det.params, summed, opts.lr);
    } finally {
      tf.dispose([...summed.values()]);
    }
    const losses = [mine.loss, ...replies.map((m) => (m as { loss: ChunkLoss }).loss)];
    const cls = losses.reduce((s, l) => s + l.cls, 0);
    const reg = losses.reduce((s, l) => s + l.reg, 0);
    const ctr = losses.reduce((s, l) => s + l.ctr, 0);
    const numPos = fcosTargets(points, batch.gt, det.config.centerRadius).numPos;
    return { total: cls + reg + ctr, cls, reg, ctr, numPos };
  }

  /** predict() (src/model/predict.ts) with the batch split across the replicas. */
  async predict(images: tf.Tensor4D, views?: View[]): Promise<Detections[]> {
    await this.syncWeights();
    const chunks = splitBatch(images.shape[0], this.size);
    const remote = chunks.slice(1).map(([a, b], i) => {
      const data = tf.tidy(() => tf.slice(images, [a, 0, 0, 0], [b - a, -1, -1, -1]).dataSync() as Float32Array);
      return this.replicas[i].request(
        { type: 'predict', images: data, shape: [b - a, ...images.shape.slice(1)], views: views?.slice(a, b) }, [data.buffer as ArrayBuffer]);
    });
    const [a0, b0] = chunks[0];
    const local = tf.slice(images, [a0, 0, 0, 0], [b0 - a0, -1, -1, -1]) as tf.Tensor4D;
    const mine = await predict(this.det, local, views?.slice(a0, b0));
    local.dispose();
    const replies = await Promise.all(remote);
    return [...mine, ...replies.flatMap((m) => (m as { dets: Detections[] }).dets)];
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.worker.terminate()));
  }
}
