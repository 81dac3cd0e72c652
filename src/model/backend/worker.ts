// One data-parallel replica (parallel.ts): its own single-threaded wasm
// backend and copy of the detector; computes a chunk's gradients into a
// shared buffer, or a chunk's detections.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './index.js';
import { type FromWorker, type ToWorker, chunkGradients } from './parallel.js';
import { type Detector, createDetector } from '../detector.js';
import { assignFlatParams } from '../params.js';
import { makePoints, type Points } from '../points.js';
import { predict } from '../predict.js';

if (!parentPort) throw new Error('src/model/backend/worker is a worker_threads script, started by DataParallel');
const port = parentPort;

let det: Detector | undefined;
let weights: Float32Array;
let grads: Float32Array;
const points = new Map<number, Points>();

async function handle(msg: ToWorker): Promise<FromWorker> {
  switch (msg.type) {
    case 'init':
      await initBackend('wasm', { log: () => {} });
      det = createDetector(msg.config);
      weights = new Float32Array(msg.weights);
      grads = new Float32Array(msg.grads);
      return { type: 'ready' };
    case 'weights':
      assignFlatParams(det!.params, weights);
      return { type: 'loaded' };
    case 'grads': {
      const S = msg.shape[1];
      if (!points.has(S)) points.set(S, makePoints(det!.config, S));
      const images = tf.tensor4d(msg.images, msg.shape as [number, number, number, number]);
      const { grads: g, loss } = chunkGradients(det!, images, msg.gt, msg.share, points.get(S)!, msg.names);
      images.dispose();
      let offset = 0;
      for (const [name, v] of det!.params) {
        const t = g.get(name);
        if (t) grads.set(t.dataSync() as Float32Array, offset);
        offset += v.size;
      }
      tf.dispose([...g.values()]);
      return { type: 'grads', loss };
    }
    case 'predict': {
      const images = tf.tensor4d(msg.images, msg.shape as [number, number, number, number]);
      const dets = await predict(det!, images, msg.views);
      images.dispose();
      return { type: 'predict', dets };
    }
  }
}

port.on('message', (msg: ToWorker) => {
  handle(msg).then(
    (reply) => port.postMessage(reply),
    (e: Error) => port.postMessage({ type: 'error', message: e.stack ?? e.message } satisfies FromWorker),
  );
});
