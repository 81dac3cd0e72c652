// Inference in worker threads, so that the forward pass of one batch runs
// while this thread decodes, converts and writes the others.
//
//   this thread:  decode → letterbox → uint8 batch ──(transfer)──┐
//   worker i:     own wasm backend, 1 XNNPACK thread, the weights  │
//                 bytes → float32 [0, 1], forward + post-processing │
//                 on [n, S, S, 3]  ◄───────────────────────────────┘
//                 → Detections[] in view pixels (and the batch's buffer back)
//
// The batch crosses as the decoded bytes, not as float32: a quarter of the
// memory to write and move, and the conversion (a table lookup) is done once,
// in the worker, instead of on the thread that also decodes and writes. The
// pixels are transferred, not copied, both ways: the worker hands the buffer
// back with its answer and the next batch is written into it, so the batches
// in flight cost the same memory whatever the number of images.
// Each worker runs its requests one at a time, in the order sent; a batch
// goes to the worker with the fewest in flight. Workers are referenced only
// while they have work, so an idle pool never keeps Node alive, and
// `close()` ends them.
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../model/config.js';
import type { Detector } from '../model/detector.js';
import { flattenParams } from '../model/params.js';
import type { Detections } from '../model/postprocess.js';

export type ToInferWorker =
  | { type: 'init'; config: ModelConfig; weights: Float32Array }
  | { type: 'predict'; id: number; pixels: Uint8Array; n: number };
export type FromInferWorker =
  | { type: 'ready'; backend: string }
  | { type: 'predict'; id: number; dets: Detections[]; pixels: Uint8Array; tensors: number; busyMs: number }
  | { type: 'error'; id?: number; message: string };

interface Pending {
  resolve: (d: Detections[]) => void;
  reject: (e: Error) => void;
}

class InferWorker {
  readonly pending = new Map<number, Pending>();
  tensors = 0;
  busyMs = 0;
  private failure: Error | undefined;

  constructor(readonly worker: Worker, private readonly recycle: (buf: Uint8Array) => void) {
    worker.on('message', (m: FromInferWorker) => {
      if (m.type === 'ready') return;
      const p = m.id === undefined ? undefined : this.pending.get(m.id);
      if (m.id !== undefined) this.pending.delete(m.id);
      if (m.type === 'predict') {
        this.tensors = m.tensors;
        this.busyMs += m.busyMs;
        this.recycle(m.pixels);
        p?.resolve(m.dets);
      } else {
        p?.reject(new Error(`inference worker: ${m.message}`));
      }
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`inference worker exited (code ${code}) with ${this.pending.size} batch(es) in flight`)));
  }

  send(id: number, pixels: Uint8Array, n: number): Promise<Detections[]> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker.ref();
    return new Promise<Detections[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'predict', id, pixels, n } satisfies ToInferWorker, [pixels.buffer as ArrayBuffer]);
    });
  }
}

export class InferencePool {
  private nextId = 0;
  private readonly free: Uint8Array[] = [];
  private readonly workers: InferWorker[] = [];
  /** describeBackend() of the workers' backend, e.g. 'wasm (SIMD, 1 thread)'. */
  backend = '';

  private constructor() {}

  /** `n` workers, each with its own single-threaded wasm backend and a copy of `det`'s weights as they are now. */
  static async start(det: Detector, n: number): Promise<InferencePool> {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`InferencePool: workers must be a positive integer, got ${n}`);
    const pool = new InferencePool();
    try {
      for (let i = 0; i < n; i++) await pool.spawn(det, i);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  private async spawn(det: Detector, i: number): Promise<void> {
    const ext = path.extname(fileURLToPath(import.meta.url));
    const worker = new Worker(new URL(`./infer-worker${ext}`, import.meta.url), { env: { ...process.env, CASL_BACKEND: 'wasm', CASL_THREADS: '1' } });
    this.workers.push(new InferWorker(worker, (buf) => this.give(buf)));
    const weights = flattenParams(det.params);
    this.backend = await new Promise<string>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: FromInferWorker) => {
        worker.off('error', reject);
        if (m.type === 'ready') resolve(m.backend);
        else reject(new Error(`inference worker ${i}: ${m.type === 'error' ? m.message : `unexpected reply ${m.type}`}`));
      });
      worker.postMessage({ type: 'init', config: det.config, weights } satisfies ToInferWorker, [weights.buffer as ArrayBuffer]);
    });
    worker.unref();
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * A buffer of at least `bytes` bytes to write a batch into (one a worker
   * handed back, or a new one); it goes to a worker with predict().
   */
  take(bytes: number): Uint8Array {
    const i = this.free.findIndex((b) => b.length >= bytes);
    return i >= 0 ? this.free.splice(i, 1)[0] : new Uint8Array(bytes);
  }

  // As many as can be in flight (inferImages keeps workers + 1 batches going): more would only hold memory.
  private give(buf: Uint8Array): void {
    if (this.free.length <= this.workers.length) this.free.push(buf);
  }

  /**
   * Forward + post-processing of the first `n` images of `pixels`
   * ([n, S, S, 3] RGB bytes, as decoded; the worker scales them to [0, 1]
   * exactly as toFloat32 does); the buffer is transferred to the worker and
   * must not be used again. Detections in model-input pixels.
   */
  predict(pixels: Uint8Array, n: number): Promise<Detections[]> {
    let w = this.workers[0];
    for (const c of this.workers) if (c.pending.size < w.pending.size) w = c;
    return w.send(this.nextId++, pixels, n);
  }

  /** Live tensors in the workers, as each last reported after a batch. */
  get numTensors(): number {
    return this.workers.reduce((s, w) => s + w.tensors, 0);
  }

  /**
   * Wall milliseconds the workers spent on batches (tensor in, detections
   * out), summed: against a run's wall time, how much of it the model had
   * work — what a pipeline that never starves the model would reach.
   */
  get busyMs(): number {
    return this.workers.reduce((s, w) => s + w.busyMs, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
