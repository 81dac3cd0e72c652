// FPN (the neck) on the deepest `fpn.inputs` backbone stages, plus extra
// stride-2 levels. For tiny-fcos at S = 128, F = 64 channels:
//   L5 = conv1x1(C5) 256→F                     [B, 4, 4, F]
//   L4 = conv1x1(C4) 128→F + up2(L5)           [B, 8, 8, F]
//   L3 = conv1x1(C3)  64→F + up2(L4)           [B, 16, 16, F]
//   P3, P4, P5 = conv3x3 s1 F→F (bias, no activation) on L3, L4, L5
//   P6 = conv3x3 s2 (P5)                       [B, 2, 2, F]
//   P7 = conv3x3 s2 (ReLU(P6))                 [B, 1, 1, F]
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config.js';
import { conv, relu, up2 } from './ops.js';
import { type ParamSpec, type Params, convSpecs, param } from './params.js';

/** Name of the e-th extra level's conv (`fpn.p6`, `fpn.p7` for tiny-fcos). */
function extraName(cfg: ModelConfig, e: number): string {
  const firstLevel = Math.log2(cfg.strides[cfg.fpn.inputs]);
  return `fpn.p${firstLevel + e}`;
}

export function fpnSpecs(cfg: ModelConfig): ParamSpec[] {
  const F = cfg.fpn.channels;
  const chans = cfg.backbone.stageChannels.slice(-cfg.fpn.inputs);
  const he = { kind: 'he' } as const;
  return [
    ...chans.flatMap((c, i) => convSpecs(`fpn.lateral.${i}`, 1, c, F, 'neck', he, true)),
    ...chans.flatMap((_, i) => convSpecs(`fpn.output.${i}`, 3, F, F, 'neck', he, true)),
    ...Array.from({ length: cfg.fpn.extraLevels }, (_, e) => convSpecs(extraName(cfg, e), 3, F, F, 'neck', he, true)).flat(),
  ];
}

/** stages: every backbone stage output; returns [P3, …, P7]. */
export function fpn(params: Params, cfg: ModelConfig, stages: tf.Tensor4D[]): tf.Tensor4D[] {
  return tf.tidy(() => {
    const ins = stages.slice(-cfg.fpn.inputs);
    const c = (name: string, x: tf.Tensor4D, stride = 1) =>
      conv(x, param(params, `${name}.weight`), stride, param(params, `${name}.bias`));
    const lat: tf.Tensor4D[] = new Array(ins.length);
    for (let i = ins.length - 1; i >= 0; i--) {
      const l = c(`fpn.lateral.${i}`, ins[i]);
      lat[i] = i === ins.length - 1 ? l : tf.add(l, up2(lat[i + 1]));
    }
    const outs = lat.map((l, i) => c(`fpn.output.${i}`, l));
    for (let e = 0; e < cfg.fpn.extraLevels; e++) {
      const prev = outs[outs.length - 1];
      outs.push(c(extraName(cfg, e), e === 0 ? prev : relu(prev), 2));
    }
    return outs;
  });
}
