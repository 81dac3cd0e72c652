// The FCOS head, shared by every level (weights shared, one scale per level).
// Per level l with side h (B images, F FPN channels, K classes):
//   f          [B, h, h, F]
//   cls tower  towerDepth × (conv3x3 F→F, GN, ReLU)   [B, h, h, F]
//   box tower  the same, its own weights               [B, h, h, F]
//   cls        conv3x3 F→K on the cls tower            [B, h, h, K]   logits
//   box        relu(scale_l · conv3x3 F→4(box tower)) · stride_l  [B, h, h, 4]  ltrb pixels
//   ctr        conv3x3 F→1 on the box tower            [B, h, h, 1]   logits
// Flattened and concatenated over levels: [B, L, K], [B, L, 4], [B, L, 1].
//
// CondInst adds its controller here: a conv3x3 on the *box* tower output
// (`HeadLevel.boxTower`), giving each location its dynamic mask-head
// parameters; the mask branch runs on P3 (DetectorOutput.features.P[0]).
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';
import { convGnRelu } from './backbone.js';
import { conv } from './ops.js';
import { type ParamSpec, type Params, convSpecs, gnSpecs, param } from './params.js';

export function headSpecs(cfg: ModelConfig): ParamSpec[] {
  const F = cfg.fpn.channels;
  const small = { kind: 'normal', std: 0.01 } as const;
  const tower = (t: string) =>
    Array.from({ length: cfg.head.towerDepth }, (_, i) => [
      ...convSpecs(`head.${t}.${i}.0`, 3, F, F, 'head', small, false),
      ...gnSpecs(`head.${t}.${i}.1`, F, 'head'),
    ]).flat();
  const prior = -Math.log((1 - cfg.head.priorProb) / cfg.head.priorProb);
  const cls = convSpecs('head.cls_logits', 3, F, cfg.numClasses, 'classifier', small, true);
  cls[1].init = { kind: 'const', value: prior };
  return [
    { name: 'head.scales', shape: [cfg.strides.length], init: { kind: 'const', value: 1 }, part: 'head' },
    ...tower('cls_tower'),
    ...tower('box_tower'),
    ...cls,
    ...convSpecs('head.bbox_pred', 3, F, 4, 'head', small, true),
    ...convSpecs('head.centerness', 3, F, 1, 'head', small, true),
  ];
}

export interface HeadLevel {
  cls: tf.Tensor4D;
  box: tf.Tensor4D;
  ctr: tf.Tensor4D;
  /** The box tower's output, where CondInst's controller will sit. */
  boxTower: tf.Tensor4D;
}

/** Runs the shared head on one level. */
export function headLevel(params: Params, cfg: ModelConfig, f: tf.Tensor4D, level: number): HeadLevel {
  return tf.tidy(() => {
    let c = f;
    let b = f;
    for (let i = 0; i < cfg.head.towerDepth; i++) {
      c = convGnRelu(params, `head.cls_tower.${i}`, c, 1, cfg);
      b = convGnRelu(params, `head.box_tower.${i}`, b, 1, cfg);
    }
    const p = (name: string, x: tf.Tensor4D) => conv(x, param(params, `${name}.weight`), 1, param(params, `${name}.bias`));
    const scale = tf.slice(param<tf.Rank.R1>(params, 'head.scales'), [level], [1]);
    const box = tf.mul(tf.relu(tf.mul(p('head.bbox_pred', b), scale)), cfg.strides[level]) as tf.Tensor4D;
    return { cls: p('head.cls_logits', c), box, ctr: p('head.centerness', b), boxTower: b };
  });
}
