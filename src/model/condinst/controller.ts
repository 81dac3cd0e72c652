// CondInst's controller (Tian et al. 2020, §3.1): one conv on the box tower,
// shared by every level like the rest of the head, giving each location the
// P parameters of its instance's dynamic mask head. B images, F channels,
// h the level's side, P = dynamicParamCount (169 for the reference sizes):
//   box tower   [B, h, h, F]
//   controller  conv3x3 F→P (bias), N(0, 0.01) like the other head outputs  [B, h, h, P]
// Flattened over levels like the box outputs: [B, L, P].
//
// The P numbers of one location, AdelaiDet's `parse_dynamic_params` order:
// the weights of layer 1, 2, …, n, then the biases of layer 1, 2, …, n; a
// layer's weights row-major [out, in] (a 1×1 conv's [out, in, 1, 1]).
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { conv } from '../ops.js';
import { type ParamSpec, type Params, convSpecs, param } from '../params.js';
import { type MaskConfig, dynamicLayerShapes, dynamicParamCount } from './mask-config.js';

export function controllerSpecs(cfg: ModelConfig, m: MaskConfig): ParamSpec[] {
  return convSpecs('head.controller', 3, cfg.fpn.channels, dynamicParamCount(m), 'head', { kind: 'normal', std: 0.01 }, true);
}

/** The controller on one level's box tower: [B, h, h, F] → [B, h, h, P]. */
export function controllerLevel(params: Params, boxTower: tf.Tensor4D): tf.Tensor4D {
  return conv(boxTower, param(params, 'head.controller.weight'), 1, param(params, 'head.controller.bias'));
}

export interface DynamicLayers {
  /** Per layer [R, out, in]. */
  weights: tf.Tensor3D[];
  /** Per layer [R, 1, out]. */
  biases: tf.Tensor3D[];
}

/** R rows of P parameters [R, P] → each dynamic layer's weights and biases. */
export function splitDynamicParams(p: tf.Tensor2D, m: MaskConfig): DynamicLayers {
  const shapes = dynamicLayerShapes(m);
  const R = p.shape[0];
  if (p.shape[1] !== dynamicParamCount(m)) throw new Error(`dynamic parameters are [${p.shape}] but the mask config needs ${dynamicParamCount(m)} per instance`);
  const sizes = [...shapes.map(([i, o]) => i * o), ...shapes.map(([, o]) => o)];
  const parts = tf.split(p, sizes, 1);
  return {
    weights: shapes.map(([i, o], l) => tf.reshape(parts[l], [R, o, i]) as tf.Tensor3D),
    biases: shapes.map(([, o], l) => tf.reshape(parts[shapes.length + l], [R, 1, o]) as tf.Tensor3D),
  };
}
