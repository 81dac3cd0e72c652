// The CondInst part of a model configuration (`ModelConfig.mask`): present,
// the detector grows a mask branch on P3..P5 and a controller on the box
// tower; absent, it is the box-only FCOS, unchanged.
//
// Dynamic mask head, D = dynamicChannels, C = maskChannels, n = dynamicLayers:
//   layer 1  (C + 2) → D     (mask features ⊕ relative coordinates)
//   layer i  D → D           (1 < i < n)
//   layer n  D → 1           (one logit)
// parameters per instance = Σ (in·out + out); 169 for C = D = 8, n = 3.

export interface MaskConfig {
  /** C_b: channels of the mask branch's refine and tower convs. */
  branchChannels: number;
  /** conv3x3 + GN + ReLU blocks after P3..P5 are merged at P3's resolution. */
  branchConvs: number;
  /** C: channels of the mask features the dynamic head reads (8 in CondInst). */
  maskChannels: number;
  /** D: width of the dynamic head's hidden layers. */
  dynamicChannels: number;
  /** n: dynamic 1×1 layers, ReLU between them. */
  dynamicLayers: number;
  /** Stride of the mask logits the dice loss sees (the stride-8 logits upsampled), and of the sampled ground truth. */
  outStride: number;
  /** Per FPN level at S = 256, scaled by S/256: relative coordinates are divided by the instance's level's size. */
  sizesOfInterest: number[];
  /**
   * At most this many positive locations per image feed the mask loss (those
   * with the highest centerness target): CondInst's cap on the dynamic
   * heads a step runs (AdelaiDet's MAX_PROPOSALS).
   */
  maxInstancesPerImage: number;
  /** Weight of the dice term in the total loss. */
  lossWeight: number;
  /** Mask probability above which a pixel is inside the predicted mask. */
  threshold: number;
}

export const TINY_CONDINST_MASK: MaskConfig = Object.freeze({
  branchChannels: 32,
  branchConvs: 2,
  maskChannels: 8,
  dynamicChannels: 8,
  dynamicLayers: 3,
  outStride: 4,
  sizesOfInterest: [64, 128, 256, 512, 1024],
  // AdelaiDet trains on at most 500 positives per batch of 16 (≈ 31 an
  // image of ~20,000 locations at 800 × 1333); tiny-condinst has 341
  // locations an image at S = 128. Each slot is a dynamic head run forward
  // and backward on the backend's slow batched-matmul path: 64 an image
  // made the mask step 1.7× the box-only step, 16 brings it under 1.5×
  // (README, "CondInst masks and entities").
  maxInstancesPerImage: 16,
  lossWeight: 1,
  threshold: 0.5,
}) as MaskConfig;

/** [in, out] of each dynamic layer. */
export function dynamicLayerShapes(m: MaskConfig): [number, number][] {
  const shapes: [number, number][] = [];
  for (let i = 0; i < m.dynamicLayers; i++) {
    const cin = i === 0 ? m.maskChannels + 2 : m.dynamicChannels;
    const cout = i === m.dynamicLayers - 1 ? 1 : m.dynamicChannels;
    shapes.push([cin, cout]);
  }
  return shapes;
}

/** Controller outputs per location: every dynamic layer's weights, then every layer's biases (AdelaiDet's order). */
export function dynamicParamCount(m: MaskConfig): number {
  return dynamicLayerShapes(m).reduce((n, [i, o]) => n + i * o + o, 0);
}

/** Throws through `bad(key, why)` for the first unsound key. */
export function validateMaskConfig(m: MaskConfig, levels: number, gnGroups: number, bad: (key: string, why: string) => never): void {
  const posInt = (key: string, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 1) bad(`mask.${key}`, `must be a positive integer, got ${JSON.stringify(v)}`);
  };
  posInt('branchChannels', m.branchChannels);
  posInt('maskChannels', m.maskChannels);
  posInt('dynamicChannels', m.dynamicChannels);
  posInt('maxInstancesPerImage', m.maxInstancesPerImage);
  if (!Number.isInteger(m.branchConvs) || m.branchConvs < 0) bad('mask.branchConvs', 'must be an integer ≥ 0');
  if (!Number.isInteger(m.dynamicLayers) || m.dynamicLayers < 2) bad('mask.dynamicLayers', `must be an integer ≥ 2, got ${m.dynamicLayers}`);
  if (m.branchChannels % gnGroups !== 0) bad('mask.branchChannels', `= ${m.branchChannels} is not divisible by gnGroups = ${gnGroups}`);
  if (![1, 2, 4, 8].includes(m.outStride)) bad('mask.outStride', `must be 1, 2, 4 or 8 (a divisor of P3's stride 8), got ${m.outStride}`);
  if (!Array.isArray(m.sizesOfInterest) || m.sizesOfInterest.length !== levels || !m.sizesOfInterest.every((v) => v > 0)) {
    bad('mask.sizesOfInterest', `needs one positive size per level (${levels}), got ${JSON.stringify(m.sizesOfInterest)}`);
  }
  if (!(m.lossWeight >= 0)) bad('mask.lossWeight', 'must be ≥ 0');
  if (!(m.threshold > 0 && m.threshold < 1)) bad('mask.threshold', 'must be in (0, 1)');
}
