import t from 'tap';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/model/backend/index.js';
import { toFloat32 } from '../src/io/decode.js';
import { inputFromBytes } from '../src/label/input-tensor.js';

// The inference worker's input must be the float32s toFloat32 gives on the
// main thread, bit for bit: the pseudo labels of --workers 1 and 0 are equal.
t.test('inputFromBytes equals toFloat32, every byte value, on the wasm heap', async (t) => {
  await initBackend('wasm', { log: () => {} });
  const S = 16, n = 3;
  const bytes = new Uint8Array(n * S * S * 3 + 5); // longer than needed: only the first n images count
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) & 255;
  for (let v = 0; v < 256; v++) bytes[S * S * 3 + v] = v; // every value, in the second image
  const expected = new Float32Array(n * S * S * 3);
  for (let b = 0; b < n; b++) {
    toFloat32({ data: bytes.subarray(b * S * S * 3, (b + 1) * S * S * 3), width: S, height: S }, expected, b * S * S * 3);
  }
  const before = tf.memory().numTensors;
  const x = inputFromBytes(bytes, n, S);
  t.same(x.shape, [n, S, S, 3]);
  const got = x.dataSync() as Float32Array;
  let bad = -1;
  for (let i = 0; i < expected.length; i++) if (!Object.is(got[i], expected[i])) { bad = i; break; }
  t.equal(bad, -1, 'every value has toFloat32\'s bits');
  x.dispose();
  t.equal(tf.memory().numTensors, before, 'no tensor left behind');
  t.throws(() => inputFromBytes(bytes.subarray(0, 10), n, S), RangeError, 'too few bytes is an error');
  t.equal(tf.memory().numTensors, before, 'nor after the error');
});
