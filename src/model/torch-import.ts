// Loading weights exported from the PyTorch reference (a parity bundle's
// manifest.json + weights.f32): conv weights OIHW → HWIO by the permutation
// (2, 3, 1, 0), everything else as is. Names are the state_dict's, which are
// the detector's own.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Detector } from './detector.js';

export interface TorchWeightEntry {
  name: string;
  shape: number[];
  offset_floats: number;
  layout: 'OIHW' | 'flat';
}

export interface ParityManifest {
  S: number;
  K: number;
  B: number;
  weights: TorchWeightEntry[];
  tensors: { name: string; shape: number[]; layout: string }[];
  loss: { total: number; cls: number; reg: number; ctr: number; num_pos: number };
  detections_img0: { boxes: number[][]; scores: number[]; labels: number[] };
}

export function readParityManifest(dir: string): ParityManifest {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as ParityManifest;
}

/** A raw little-endian float32 file as a Float32Array. */
export function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/**
 * Assigns every detector parameter from the bundle in `dir`; throws naming
 * the parameter when one is missing, extra or of another shape.
 */
export function loadTorchWeights(det: Detector, dir: string): void {
  const man = readParityManifest(dir);
  const all = readF32(path.join(dir, 'weights.f32'));
  const seen = new Set<string>();
  for (const w of man.weights) {
    const v = det.params.get(w.name);
    if (!v) throw new Error(`${path.join(dir, 'manifest.json')}: weight '${w.name}' has no parameter in model '${det.config.name}'`);
    const n = w.shape.reduce((a, b) => a * b, 1);
    const data = all.subarray(w.offset_floats, w.offset_floats + n);
    const value = tf.tidy(() => {
      const t = tf.tensor(data, w.shape);
      return w.layout === 'OIHW' ? tf.transpose(t, [2, 3, 1, 0]) : t;
    });
    if (value.shape.join() !== v.shape.join()) {
      value.dispose();
      throw new Error(`${path.join(dir, 'manifest.json')}: weight '${w.name}' is [${w.shape}] (${w.layout}) but the parameter is [${v.shape}]`);
    }
    v.assign(value);
    value.dispose();
    seen.add(w.name);
  }
  const missing = [...det.params.keys()].filter((k) => !seen.has(k));
  if (missing.length) throw new Error(`${path.join(dir, 'manifest.json')}: no weights for ${missing.join(', ')}`);
}
