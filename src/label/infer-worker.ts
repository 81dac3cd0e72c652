// One inference worker of InferencePool (infer-pool.ts): its own wasm
// backend (CASL_THREADS=1, set by the pool) and copy of the detector;
// forward + post-processing of each batch it is sent, one at a time in the
// order received, handing the pixel buffer back with the detections.
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { describeBackend, initBackend } from '../model/backend/index.js';
import { scaleBytes } from '../io/scale-bytes.js';
import { type Detector, createDetector } from '../model/detector.js';
import { assignFlatParams } from '../model/params.js';
import { predict } from '../model/predict.js';
import type { FromInferWorker, ToInferWorker } from './infer-pool.js';

if (!parentPort) throw new Error('src/label/infer-worker is a worker_threads script, started by InferencePool');
const port = parentPort;

let det: Detector | undefined;

/** The parts of tfjs-backend-wasm's BackendWasm that place a tensor on its heap. */
interface WasmHeap {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

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
      const S = det.config.inputSize;
      const size = msg.n * S * S * 3;
      if (msg.pixels.length < size) throw new Error(`predict: ${msg.pixels.length} bytes for ${msg.n} images of ${S} × ${S} × 3`);
      // The floats are written where the model reads them, on the wasm heap,
      // instead of into an array tf.tensor4d would then copy there (12.6 MB
      // a batch of sixteen 256² images).
      const heap = tf.backend() as unknown as WasmHeap;
      const info = heap.makeOutput([msg.n, S, S, 3], 'float32');
      const images = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor4D;
      let dets;
      try {
        scaleBytes(msg.pixels, heap.typedArrayFromHeap(info), size);
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
