// Backbone: a plain conv–GN–ReLU network, each stage halving the resolution.
// For tiny-fcos at S = 128 (B images):
//   x     [B, 128, 128, 3]
//   stem  conv3x3 s2 3→16, GN, ReLU           [B, 64, 64, 16]
//   C2    (conv3x3 s2 16→32, GN, ReLU) + (conv3x3 s1, GN, ReLU)  [B, 32, 32, 32]
//   C3    same, 32→64                          [B, 16, 16, 64]
//   C4    64→128                               [B, 8, 8, 128]
//   C5    128→256                              [B, 4, 4, 256]
// Convs followed by GN have no bias.
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';
import { convGnRelu as convGnReluOp } from './ops.js';
import { type ParamSpec, type Params, convSpecs, gnSpecs, param } from './params.js';

function convGnSpecs(name: string, cin: number, cout: number): ParamSpec[] {
  return [...convSpecs(`${name}.0`, 3, cin, cout, 'backbone', { kind: 'he' }, false), ...gnSpecs(`${name}.1`, cout, 'backbone')];
}

export function backboneSpecs(cfg: ModelConfig): ParamSpec[] {
  const { stemChannels, stageChannels, stageDepths } = cfg.backbone;
  const specs = convGnSpecs('backbone.stem', 3, stemChannels);
  let cin = stemChannels;
  stageChannels.forEach((cout, i) => {
    for (let j = 0; j < stageDepths[i]; j++) {
      specs.push(...convGnSpecs(`backbone.stages.${i}.${j}`, j === 0 ? cin : cout, cout));
    }
    cin = cout;
  });
  return specs;
}

/** conv3x3 (no bias) → GN → ReLU; `name` is the block prefix (NAME.0 the conv, NAME.1 the GN). */
export function convGnRelu(params: Params, name: string, x: tf.Tensor4D, stride: number, cfg: ModelConfig): tf.Tensor4D {
  return convGnReluOp(
    x, param(params, `${name}.0.weight`), param(params, `${name}.1.weight`), param(params, `${name}.1.bias`),
    stride, cfg.gnGroups, cfg.gnEps);
}

/** Returns the output of every stage: [C2, C3, C4, C5] for tiny-fcos. */
export function backbone(params: Params, cfg: ModelConfig, x: tf.Tensor4D): tf.Tensor4D[] {
  return tf.tidy(() => {
    let h = convGnRelu(params, 'backbone.stem', x, 2, cfg);
    const outs: tf.Tensor4D[] = [];
    cfg.backbone.stageDepths.forEach((depth, i) => {
      for (let j = 0; j < depth; j++) h = convGnRelu(params, `backbone.stages.${i}.${j}`, h, j === 0 ? 2 : 1, cfg);
      outs.push(h);
    });
    return outs;
  });
}
