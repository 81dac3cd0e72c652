// CondInst's mask branch (Tian et al. 2020, §3.2; AdelaiDet `mask_branch.py`):
// the FPN's finest levels merged at P3's resolution, a few convs, C channels
// of mask features at stride 8 that every instance's dynamic head reads.
// B images, F FPN channels, C_b branch channels, C mask channels, h3 P3's side:
//   P3, P4, P5   [B, h3, h3, F], [B, h3/2, …], [B, h3/4, …]
//   refine i     conv3x3 F→C_b, GN, ReLU on P(3+i)
//   merged       Σ_i up(refine i), nearest ×2^i to h3          [B, h3, h3, C_b]
//   tower        branchConvs × (conv3x3 C_b→C_b, GN, ReLU)    [B, h3, h3, C_b]
//   out          conv1x1 C_b→C (bias)                          [B, h3, h3, C]
// Nearest ×2 (the FPN's own up2) instead of AdelaiDet's aligned bilinear:
// its gradient is a kernel every backend has, and the refine convs after it
// smooth the blocks the same way the FPN's do.
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { convGnRelu, conv, up2 } from '../ops.js';
import { type ParamSpec, type Params, convSpecs, gnSpecs, param } from '../params.js';
import type { MaskConfig } from './mask-config.js';

/** FPN levels the branch merges: P3, P4, P5 (fewer when the FPN has fewer). */
export function branchLevels(cfg: ModelConfig): number {
  return Math.min(3, cfg.strides.length);
}

export function maskBranchSpecs(cfg: ModelConfig, m: MaskConfig): ParamSpec[] {
  const F = cfg.fpn.channels;
  const Cb = m.branchChannels;
  const he = { kind: 'he' } as const;
  const block = (name: string, cin: number) => [...convSpecs(`${name}.0`, 3, cin, Cb, 'head', he, false), ...gnSpecs(`${name}.1`, Cb, 'head')];
  return [
    ...Array.from({ length: branchLevels(cfg) }, (_, i) => block(`mask_branch.refine.${i}`, F)).flat(),
    ...Array.from({ length: m.branchConvs }, (_, i) => block(`mask_branch.tower.${i}`, Cb)).flat(),
    ...convSpecs('mask_branch.out', 1, Cb, m.maskChannels, 'head', he, true),
  ];
}

/** Mask features [B, h3, h3, C] from the FPN outputs P (P3 first). */
export function maskBranch(params: Params, cfg: ModelConfig, m: MaskConfig, P: tf.Tensor4D[]): tf.Tensor4D {
  return tf.tidy(() => {
    const block = (name: string, x: tf.Tensor4D) => convGnRelu(
      x, param(params, `${name}.0.weight`), param(params, `${name}.1.weight`), param(params, `${name}.1.bias`), 1, cfg.gnGroups, cfg.gnEps);
    // Coarsest first, each sum upsampled once on the way down (P5 → P4 → P3):
    // the same sum as upsampling each level to P3 (nearest ×2 twice is ×4), one resize fewer.
    let x: tf.Tensor4D | undefined;
    for (let i = branchLevels(cfg) - 1; i >= 0; i--) {
      const r = block(`mask_branch.refine.${i}`, P[i]);
      if (x) {
        x = up2(x);
        // An odd side upsampled overshoots by a row or column: cut to this level's.
        if (x.shape[1] !== r.shape[1] || x.shape[2] !== r.shape[2]) x = tf.slice(x, [0, 0, 0, 0], [-1, r.shape[1], r.shape[2], -1]);
        x = tf.add(x, r) as tf.Tensor4D;
      } else x = r;
    }
    for (let i = 0; i < m.branchConvs; i++) x = block(`mask_branch.tower.${i}`, x!);
    return conv(x!, param(params, 'mask_branch.out.weight'), 1, param(params, 'mask_branch.out.bias'));
  });
}
