// One inference worker of InferencePool (infer-pool.ts): its own wasm
// backend (CASL_THREADS=1, set by the pool) and copy of the detector;
// forward + post-processing of each batch it is sent, one at a time in the
// order received, handing the pixel buffer back with the detections.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../model/backend/index.js';
import { type Detector, createDetector } from '../model/detector.js';
import { assignFlatParams } from '../model/params.js';
import { predict } from '../model/predict.js';
import type { FromInferWorker, ToInferWorker } from './infer-pool.js';
import { inputFromBytes } from './input-tensor.js';

if (!parentPort) throw new Error('src/label/infer-worker is a worker_threads script, started by InferencePool');
const port = parentPort;

let det: Detector | undefined;

async function handle(msg: ToInferWorker): Promise<{ reply: FromInferWorker; transfer: ArrayBuffer[] }> {
  switch (msg.type) {
    case 'init': {
      const info = await initBackend('wasm', { log: () => {} });
      det = createDetector(msg.config);
      const offset = assignFlatParams(det.params, msg.weights);
      if (offset !== msg.weights.length) throw new Error(`init: ${msg.weights.length} weight values for a model of ${offset}`);
      return { reply: { type: 'ready', backend: describeBackend(info) }, transfer: [] };
    }
    case 'predict': {
      if (!det) throw new Error('predict before init');
      const t0 = performance.now();
      const images = inputFromBytes(msg.pixels, msg.n, det.config.inputSize);
      let dets;
      try {
        dets = await predict(det, images);
      } finally {
        images.dispose();
      }
      // The detections are small and copied; the pixels go back for the next batch.
      const busyMs = performance.now() - t0;
      return { reply: { type: 'predict', id: msg.id, dets, pixels: msg.pixels, tensors: tf.memory().numTensors, busyMs }, transfer: [msg.pixels.buffer as ArrayBuffer] };
    }
  }
}

// One request at a time, in the order received: the pool counts on it.
let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: ToInferWorker) => {
  queue = queue.then(() => handle(msg).then(
    ({ reply, transfer }) => port.postMessage(reply, transfer),
    (e: Error) => port.postMessage({ type: 'error', id: msg.type === 'predict' ? msg.id : undefined, message: e.stack ?? e.message } satisfies FromInferWorker),
  ));
});
