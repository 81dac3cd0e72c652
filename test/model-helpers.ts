// Shared by the model tests: the backend they run on, and small configs.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type ModelConfig, modelConfig } from '../src/model/config.js';
import { initBackend } from '../src/model/backend/index.js';
import { enableGradients } from '../src/model/gradients.js';
import type { GtInstances } from '../src/model/targets.js';
import { readF32 } from '../src/model/torch-import.js';

/**
 * The wasm backend, the embedded default the issue asks the tests to run on,
 * through casl's backend selection (its Conv2DBackprop kernels, both cores).
 */
export async function useTestBackend(): Promise<string> {
  // tap runs two test files at once on this 2-core machine, and XNNPACK's
  // thread pool spin-waits: two threads a process made model-train.test.ts
  // 4× slower (124 s vs 34 s wall) than one. Speed is the benchmark's business.
  process.env.CASL_THREADS ??= '1';
  return (await initBackend('wasm', { log: () => {} })).name;
}

/** The same backend, ready to take gradients. */
export async function useTrainBackend(): Promise<string> {
  await enableGradients();
  return useTestBackend();
}

/** A model small enough for many training steps in a test: S = 64, narrow. */
export function smallConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return modelConfig('tiny-fcos', {
    name: 'test-small',
    inputSize: 64,
    backbone: { stemChannels: 8, stageChannels: [8, 16, 16, 16], stageDepths: [1, 1, 1, 1] },
    fpn: { channels: 16, inputs: 3, extraLevels: 2 },
    head: { towerDepth: 1, priorProb: 0.01 },
    ...overrides,
  });
}

/** A batch of random images with boxes on them. */
export function randomBatch(B: number, S: number, K: number, seed: number) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const images = tf.randomUniform([B, S, S, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
  const gt = Array.from({ length: B }, () => {
    const n = 1 + Math.floor(rand() * 3);
    const boxes: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const w = (0.1 + 0.6 * rand()) * S, h = (0.1 + 0.6 * rand()) * S;
      const x1 = rand() * (S - w), y1 = rand() * (S - h);
      boxes.push([x1, y1, x1 + w, y1 + h]);
      labels.push(Math.floor(rand() * K));
    }
    return { boxes, labels };
  });
  return { images, gt };
}

/** The PyTorch reference's parity bundle (../shared/parity/tiny-fcos-k1), or CASL_PARITY_DIR. */
export const PARITY_DIR = process.env.CASL_PARITY_DIR ?? path.resolve(import.meta.dirname ?? '.', '..', '..', 'shared', 'parity', 'tiny-fcos-k1');

/** The bundle's fixed batch: input [B, S, S, 3] and the valid gt rows of each image. */
export function parityBatch(dir: string, B: number, S: number): { images: tf.Tensor4D; gt: GtInstances[] } {
  const ref = (name: string) => readF32(path.join(dir, `${name}.f32`));
  const [boxes, labels, valid] = [ref('gt_boxes'), ref('gt_labels'), ref('gt_valid')];
  const M = valid.length / B;
  const gt = Array.from({ length: B }, (_, b) => {
    const rows = Array.from({ length: M }, (_, m) => b * M + m).filter((r) => valid[r] > 0);
    return { boxes: rows.map((r) => Array.from(boxes.subarray(4 * r, 4 * r + 4))), labels: rows.map((r) => labels[r]) };
  });
  return { images: tf.tensor4d(ref('input'), [B, S, S, 3]), gt };
}
