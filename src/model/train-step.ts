// One training step on a batch: forward, FCOS targets, loss, backward, update.
//   images [B, S, S, 3] in [0, 1]; gt[b] boxes [M, 4] x1y1x2y2 in input pixels,
//   labels [M] classifier channels 0…K−1.
// Only the loss values leave the step (as numbers); every tensor it makes is
// disposed, so tf.memory().numTensors stays flat over any number of steps.
import * as tf from '@tensorflow/tfjs-core';
import { type Detector, forward } from './detector.js';
import { enableGradients, gradientsEnabled } from './gradients.js';
import { fcosLoss } from './loss.js';
import type { Optimizer } from './optim.js';
import { type Points, makePoints } from './points.js';
import { type GtInstances, fcosTargets } from './targets.js';

export interface Batch {
  images: tf.Tensor4D;
  gt: GtInstances[];
}

export interface StepResult {
  total: number;
  cls: number;
  reg: number;
  ctr: number;
  numPos: number;
}

export interface StepOptions {
  lr: number;
  /** Parameters to update (default: all); the rest are frozen. */
  trainable?: (name: string) => boolean;
  /** Precomputed locations for the batch's input size (default: made from the config). */
  points?: Points;
}

/** Loss and gradients for the batch, without updating anything. Gradients are keyed by parameter name. */
export function lossAndGrads(det: Detector, batch: Batch, opts: Omit<StepOptions, 'lr'> = {}): {
  grads: Map<string, tf.Tensor>;
  /** total, cls, reg, ctr: scalars the caller disposes with the gradients. */
  loss: tf.Scalar[];
  numPos: number;
} {
  if (!gradientsEnabled()) throw new Error("tfjs-core's gradient functions are not registered: await enableGradients() (src/model/gradients.ts) first; trainStep does it itself");
  const S = batch.images.shape[1];
  const points = opts.points ?? makePoints(det.config, S);
  const targets = fcosTargets(points, batch.gt, det.config.centerRadius);
  const names = [...det.params.keys()].filter((n) => opts.trainable?.(n) ?? true);
  const byTfName = new Map(names.map((n) => [det.params.get(n)!.name, n]));
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const out = forward(det, batch.images);
    const l = fcosLoss(out, targets, points);
    parts = [tf.keep(l.cls), tf.keep(l.reg), tf.keep(l.ctr)];
    return l.total;
  }, names.map((n) => det.params.get(n)!));
  const named = new Map<string, tf.Tensor>();
  for (const [tfName, g] of Object.entries(grads)) named.set(byTfName.get(tfName)!, g);
  return {
    grads: named,
    loss: [value, ...parts],
    numPos: targets.numPos,
  };
}

/** Forward, targets, loss, backward and one optimiser update; resolves to the loss terms. */
export async function trainStep(det: Detector, opt: Optimizer, batch: Batch, opts: StepOptions): Promise<StepResult> {
  await enableGradients();
  const { grads, loss, numPos } = lossAndGrads(det, batch, opts);
  try {
    opt.apply(det.params, grads, opts.lr);
    const [total, cls, reg, ctr] = (await Promise.all(loss.map((t) => t.data()))).map((v) => v[0]);
    return { total, cls, reg, ctr, numPos };
  } finally {
    tf.dispose([...grads.values(), ...loss]);
  }
}
