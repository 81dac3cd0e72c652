// Mask targets for the dice loss, a pure function on plain arrays.
// B images, L locations, N instance slots per image (the most any image
// uses, ≥ 1), Hm×Wm the ground truth sampled at the mask output stride
// (S/outStride a side):
//   targets    fcosTargets' pos, ctr and matched [B, L]
//   masks[b]   per gt instance of image b: its mask at Hm×Wm, or null (no mask: box loss only)
//   → rows     [B·N]      each slot's row b·L + location in the controller's
//                          [B·L, P]; B·L (one past the end) for padding
//     centers  [B·N, 2]   the location (x, y) in input pixels
//     soi      [B·N]      its level's size of interest, scaled by S/256
//     valid    [B·N]      1 for a real slot, 0 for padding
//     masks    [B·N, Hm·Wm] 0/1
// A positive is a slot when its matched instance has a mask; an image with
// more than maxInstancesPerImage of them keeps those with the highest
// centerness target (ties to the lower location), so the cost is bounded
// and the choice deterministic (a resumed run sees the same targets).
import type { BinaryMask } from '../../augment/geometric.js';
import type { Points } from '../points.js';
import type { Targets } from '../targets.js';
import type { MaskConfig } from './mask-config.js';

export interface MaskTargets {
  B: number;
  N: number;
  L: number;
  Hm: number;
  Wm: number;
  rows: Int32Array;
  centers: Float32Array;
  soi: Float32Array;
  valid: Float32Array;
  masks: Float32Array;
  /** Real slots over the batch. */
  count: number;
}

/**
 * A view-sized mask sampled every `stride` pixels at offset ⌊stride/2⌋
 * (AdelaiDet's `bitmasks[start::stride, start::stride]`): the pixel at the
 * centre of each output cell.
 */
export function sampleMask(mask: BinaryMask, stride: number): Uint8Array {
  const Hm = Math.floor(mask.height / stride);
  const Wm = Math.floor(mask.width / stride);
  const start = Math.floor(stride / 2);
  const out = new Uint8Array(Hm * Wm);
  for (let v = 0; v < Hm; v++) {
    const row = (v * stride + start) * mask.width;
    for (let u = 0; u < Wm; u++) out[v * Wm + u] = mask.data[row + u * stride + start] ? 1 : 0;
  }
  return out;
}

/** Each location's size of interest: mask.sizesOfInterest of its level, scaled by S/256. */
export function locationSoi(points: Points, m: MaskConfig, S: number): Float32Array {
  const soi = new Float32Array(points.L);
  for (let l = 0; l + 1 < points.levelStart.length; l++) soi.fill(m.sizesOfInterest[l] * (S / 256), points.levelStart[l], points.levelStart[l + 1]);
  return soi;
}

export function maskTargets(
  targets: Targets, points: Points, masks: (Uint8Array | null)[][], Hm: number, Wm: number, m: MaskConfig, S: number,
): MaskTargets {
  const { B, L, pos, ctr, matched } = targets;
  if (!matched) throw new Error('maskTargets: the targets carry no matched instance indices (make them with fcosTargets)');
  if (masks.length !== B) throw new Error(`maskTargets: masks for ${masks.length} images, targets for ${B}`);
  const levelSoi = locationSoi(points, m, S);
  const chosen: number[][] = [];
  for (let b = 0; b < B; b++) {
    const cand: number[] = [];
    for (let i = 0; i < L; i++) {
      const o = b * L + i;
      if (pos[o] && masks[b][matched[o]]) cand.push(i);
    }
    if (cand.length > m.maxInstancesPerImage) {
      cand.sort((p, q) => ctr[b * L + q] - ctr[b * L + p] || p - q);
      cand.length = m.maxInstancesPerImage;
      cand.sort((p, q) => p - q);
    }
    chosen.push(cand);
  }
  const N = Math.max(1, ...chosen.map((c) => c.length));
  const n = Hm * Wm;
  const out: MaskTargets = {
    B, N, L, Hm, Wm,
    rows: new Int32Array(B * N).fill(B * L),
    centers: new Float32Array(B * N * 2),
    // Padding slots get a harmless size (no division by zero in the head).
    soi: new Float32Array(B * N).fill(1),
    valid: new Float32Array(B * N),
    masks: new Float32Array(B * N * n),
    count: 0,
  };
  chosen.forEach((cand, b) => cand.forEach((i, k) => {
    const r = b * N + k;
    const mask = masks[b][matched[b * L + i]]!;
    if (mask.length !== n) throw new Error(`maskTargets: image ${b}'s mask has ${mask.length} pixels, expected ${Hm}×${Wm}`);
    out.rows[r] = b * L + i;
    out.centers[2 * r] = points.data[5 * i];
    out.centers[2 * r + 1] = points.data[5 * i + 1];
    out.soi[r] = levelSoi[i];
    out.valid[r] = 1;
    for (let p = 0; p < n; p++) out.masks[r * n + p] = mask[p];
    out.count++;
  }));
  return out;
}
