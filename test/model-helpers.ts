// Shared by the model tests: choose the backend they run on.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

/** The wasm backend, the embedded default the issue asks the tests to run on. */
export async function useTestBackend(): Promise<string> {
  await tf.setBackend('wasm');
  await tf.ready();
  return tf.getBackend();
}
