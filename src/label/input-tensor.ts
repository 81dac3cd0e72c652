// The inference worker's model input, made on the wasm backend's heap from
// the batch's decoded bytes (infer-worker.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm that place a tensor on its heap. */
interface WasmHeap {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

/**
 * [n, S, S, 3] float32 in [0, 1] from the first n·S·S·3 bytes of `bytes`
 * (HWC RGB, as decoded), on the wasm backend. The bytes are widened to
 * float32 straight into the tensor's heap memory by TypedArray.set (native
 * code), then divided by 255 by the wasm Div kernel: 0.95 + 2.7 ms a batch
 * of sixteen 256² images, against 7.5 for scaleBytes' table in JavaScript
 * plus 1 for tf.tensor4d's copy onto the heap. The same float32 bits as
 * toFloat32: float32 division rounds v / 255 once, the table rounds the
 * double quotient, and a quotient with 255's repeating binary expansion is
 * never a float32 tie, so they agree (test/input-tensor.test.ts, all 256).
 */
export function inputFromBytes(bytes: Uint8Array, n: number, S: number): tf.Tensor4D {
  if (tf.getBackend() !== 'wasm') throw new Error(`inputFromBytes: needs the wasm backend (its heap), this is '${tf.getBackend()}'`);
  const size = n * S * S * 3;
  if (bytes.length < size) throw new RangeError(`inputFromBytes: ${bytes.length} bytes for ${n} images of ${S} × ${S} × 3`);
  const heap = tf.backend() as unknown as WasmHeap;
  const info = heap.makeOutput([n, S, S, 3], 'float32');
  const x = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor4D;
  try {
    // The view is taken and filled before anything else can grow (and so detach) the heap.
    heap.typedArrayFromHeap(info).set(bytes.subarray(0, size));
    return tf.tidy(() => tf.div<tf.Tensor4D>(x, 255));
  } finally {
    x.dispose();
  }
}
