// The training loader on a worker thread. A train step is synchronous wasm
// on the main thread, so a loader on that thread only advances between
// steps, and every gap it needs is data wait. Here the same loader
// (loader.ts: same seeds, same batches) runs in a worker_threads worker with
// its own event loop; finished batches cross by transfer (their typed
// arrays move, nothing is copied), `prefetch` of them requested ahead of the
// consumer.
//
//   main                                  worker (loader-thread-worker.ts)
//   trainBatchesInThread(spec, opts) ──start──▶ openSource(spec), trainBatches(…)
//   consumer pulls                  ──pull───▶ pulls one batch
//                                   ◀─item──── a TrainBatch | error record | error | end
import _ from 'highland';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { OrError, Stream } from '../streams/stage.js';
import type { LoaderOptions, TrainBatch } from './loader.js';
import type { SourceSpec } from './source.js';

/** The loader options that cross to the worker (a custom `decode` function cannot). */
export type ThreadLoaderOptions = Omit<LoaderOptions, 'decode'>;

export type ToLoader = { type: 'start'; spec: SourceSpec; opts: ThreadLoaderOptions } | { type: 'pull' };
export type FromLoader =
  | { type: 'item'; item: OrError<TrainBatch> }
  | { type: 'error'; message: string }
  | { type: 'end' };

/** The typed arrays of a batch, handed over rather than copied. */
export function batchBuffers(b: TrainBatch): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [b.images, b.targets.pos, b.targets.labels, b.targets.boxes, b.targets.ctr];
  if (b.targets.matched) arrays.push(b.targets.matched);
  for (const v of Object.values(b.masks ?? {})) if (ArrayBuffer.isView(v)) arrays.push(v);
  // A view of a shared or partial buffer cannot be transferred whole; those few are copied.
  const own = arrays.filter((a) => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer);
  return [...new Set(own.map((a) => a.buffer as ArrayBuffer))];
}

/** trainBatches(openSource(spec), opts), made on a worker thread. Destroying the stream ends the worker. */
export function trainBatchesInThread(spec: SourceSpec, opts: ThreadLoaderOptions): Stream<OrError<TrainBatch>> {
  const ext = path.extname(fileURLToPath(import.meta.url));
  const worker = new Worker(new URL(`./loader-thread-worker${ext}`, import.meta.url));
  worker.unref();
  const ahead = Math.max(1, opts.prefetch ?? 2);
  const ready: FromLoader[] = [];
  let requested = 0;
  let ended = false;
  let wake: (() => void) | null = null;
  const request = (): void => {
    while (!ended && requested < ahead) {
      requested++;
      worker.postMessage({ type: 'pull' } satisfies ToLoader);
    }
  };
  const arrive = (m: FromLoader): void => {
    requested--;
    if (m.type !== 'item') ended = true;
    ready.push(m);
    const w = wake;
    wake = null;
    w?.();
  };
  worker.on('message', arrive);
  worker.on('error', (e) => arrive({ type: 'error', message: `training loader thread: ${e.message}` }));
  worker.on('exit', (code) => {
    if (!ended) arrive({ type: 'error', message: `training loader thread exited (code ${code})` });
  });
  worker.postMessage({ type: 'start', spec, opts } satisfies ToLoader);
  request();

  const stream = _<OrError<TrainBatch>>((push, next) => {
    const give = (): void => {
      const m = ready.shift()!;
      if (m.type === 'item') {
        request();
        push(null, m.item);
        next();
      } else if (m.type === 'error') {
        // The stream ends on the pull after its error, as highland streams do.
        ready.unshift({ type: 'end' });
        push(new Error(m.message));
        next();
      } else {
        void worker.terminate();
        push(null, _.nil);
      }
    };
    if (ready.length > 0) give();
    else wake = give;
  });
  const destroy = stream.destroy.bind(stream);
  stream.destroy = () => {
    void worker.terminate();
    return destroy();
  };
  return stream;
}
