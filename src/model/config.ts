// The detector's configuration: every size is a parameter, `tiny-fcos` is a
// named preset (../shared/tiny-fcos.md). Bigger models are other values here,
// never other code. Validated once, in `validateModelConfig`.
//
// Shapes it implies, S the input side (a multiple of the largest backbone
// stride), B images:
//   input            [B, S, S, 3] in [0, 1]
//   stem             [B, S/2, S/2, stemChannels]
//   stage i → C(i+2) [B, S/2^(i+2), …, stageChannels[i]]
//   P3..P5           from the last `fpnInputs` stages, [B, S/stride, …, fpn.channels]
//   P6, P7           extra stride-2 levels on P5
//   head outputs     cls [B, L, K], box [B, L, 4], ctr [B, L, 1]
//   with `mask`      controller [B, L, P], mask features [B, S/8, S/8, C]
//                    (condinst/mask-config.ts)

import { type MaskConfig, TINY_CONDINST_MASK, validateMaskConfig } from './condinst/mask-config.js';

export interface InferenceConfig {
  /** score = sqrt(σ(cls)·σ(ctr)) must exceed this to become a candidate. */
  scoreThreshold: number;
  /** Candidates kept per level before NMS. */
  topkPerLevel: number;
  /** Class-wise NMS suppresses a box whose IoU with a better one is above this. */
  nmsIou: number;
  maxDetections: number;
}

export interface ModelConfig {
  /** The preset this came from, or a user's name for it. */
  name: string;
  /** S: input side in pixels. */
  inputSize: number;
  /** K: classifier channels; 1 is the class-agnostic detector. */
  numClasses: number;
  backbone: {
    stemChannels: number;
    /** One entry per stride-2 stage: C2, C3, C4, C5, … */
    stageChannels: number[];
    /** Convs per stage (the first one has stride 2). */
    stageDepths: number[];
  };
  fpn: {
    channels: number;
    /** How many of the deepest backbone stages feed laterals (3: C3–C5). */
    inputs: number;
    /** Stride-2 levels stacked on the last FPN output (2: P6, P7). */
    extraLevels: number;
  };
  head: {
    /** conv3x3 + GN + ReLU blocks in each of the cls and box towers. */
    towerDepth: number;
    /** Initial foreground probability of the classifier (sets its bias). */
    priorProb: number;
  };
  gnGroups: number;
  gnEps: number;
  /** Stride of each FPN level, P3 first; must match the architecture. */
  strides: number[];
  /** FCOS size range per level at S = 256; scaled by S/256. */
  sizeRanges: [number, number][];
  /** Center sampling radius, in strides. */
  centerRadius: number;
  inference: InferenceConfig;
  /** CondInst's mask branch and controller; absent, the detector is box-only FCOS. */
  mask?: MaskConfig;
}

export const TINY_FCOS: ModelConfig = Object.freeze({
  name: 'tiny-fcos',
  inputSize: 128,
  numClasses: 1,
  backbone: { stemChannels: 16, stageChannels: [32, 64, 128, 256], stageDepths: [2, 2, 2, 2] },
  fpn: { channels: 64, inputs: 3, extraLevels: 2 },
  head: { towerDepth: 2, priorProb: 0.01 },
  gnGroups: 8,
  gnEps: 1e-5,
  strides: [8, 16, 32, 64, 128],
  sizeRanges: [[0, 64], [64, 128], [128, 256], [256, 512], [512, Infinity]],
  centerRadius: 1.5,
  inference: { scoreThreshold: 0.05, topkPerLevel: 1000, nmsIou: 0.6, maxDetections: 100 },
}) as ModelConfig;

/** tiny-fcos with CondInst's mask branch and controller (README, "CondInst masks"). */
export const TINY_CONDINST: ModelConfig = Object.freeze({ ...TINY_FCOS, name: 'tiny-condinst', mask: TINY_CONDINST_MASK }) as ModelConfig;

export const PRESETS: Record<string, ModelConfig> = { 'tiny-fcos': TINY_FCOS, 'tiny-condinst': TINY_CONDINST };

/** A preset with overrides, validated: `modelConfig('tiny-fcos', { numClasses: 8 })`. */
export function modelConfig(preset: string, overrides: Partial<ModelConfig> = {}): ModelConfig {
  const base = PRESETS[preset];
  if (!base) throw new Error(`unknown model preset '${preset}' (have: ${Object.keys(PRESETS).join(', ')})`);
  const cfg = structuredClone({ ...base, ...overrides });
  validateModelConfig(cfg);
  return cfg;
}

/** Stride of the backbone's stage i output (stem stride 2, each stage ×2). */
export function stageStride(i: number): number {
  return 2 ** (i + 2);
}

/** Stride of each level implied by the architecture, P3 first. */
export function architectureStrides(cfg: ModelConfig): number[] {
  const n = cfg.backbone.stageChannels.length;
  const first = n - cfg.fpn.inputs;
  const out: number[] = [];
  for (let i = first; i < n; i++) out.push(stageStride(i));
  for (let e = 0; e < cfg.fpn.extraLevels; e++) out.push(out[out.length - 1] * 2);
  return out;
}

/** Side of each level for an S×S input: a pad-1 stride-2 3×3 conv maps h → ceil(h/2). */
export function levelSizes(cfg: ModelConfig, S = cfg.inputSize): number[] {
  const n = cfg.backbone.stageChannels.length;
  const stageSide: number[] = [];
  let h = Math.ceil(S / 2); // the stem
  for (let i = 0; i < n; i++) stageSide.push((h = Math.ceil(h / 2)));
  const sizes = stageSide.slice(n - cfg.fpn.inputs);
  for (let e = 0; e < cfg.fpn.extraLevels; e++) sizes.push(Math.ceil(sizes[sizes.length - 1] / 2));
  return sizes;
}

/** Per-level [lo, hi] of max(l, t, r, b) at input size S. */
export function scaledSizeRanges(cfg: ModelConfig, S = cfg.inputSize): [number, number][] {
  const f = S / 256;
  return cfg.sizeRanges.map(([lo, hi]) => [lo * f, hi * f]);
}

/** Throws naming the key and what to do; returns nothing when the config is sound. */
export function validateModelConfig(cfg: ModelConfig): void {
  const bad = (key: string, why: string): never => {
    throw new Error(`model config '${cfg.name}': ${key} ${why}`);
  };
  const posInt = (key: string, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 1) bad(key, `must be a positive integer, got ${JSON.stringify(v)}`);
  };
  posInt('numClasses', cfg.numClasses);
  posInt('inputSize', cfg.inputSize);
  posInt('backbone.stemChannels', cfg.backbone.stemChannels);
  posInt('fpn.channels', cfg.fpn.channels);
  posInt('fpn.inputs', cfg.fpn.inputs);
  posInt('gnGroups', cfg.gnGroups);
  if (!Number.isInteger(cfg.fpn.extraLevels) || cfg.fpn.extraLevels < 0) bad('fpn.extraLevels', 'must be an integer ≥ 0');
  if (!Number.isInteger(cfg.head.towerDepth) || cfg.head.towerDepth < 0) bad('head.towerDepth', 'must be an integer ≥ 0');
  const { stageChannels, stageDepths } = cfg.backbone;
  if (stageChannels.length !== stageDepths.length) {
    bad('backbone.stageDepths', `has ${stageDepths.length} entries but backbone.stageChannels has ${stageChannels.length}`);
  }
  stageChannels.forEach((c, i) => posInt(`backbone.stageChannels[${i}]`, c));
  stageDepths.forEach((d, i) => posInt(`backbone.stageDepths[${i}]`, d));
  if (cfg.fpn.inputs > stageChannels.length) bad('fpn.inputs', `is ${cfg.fpn.inputs} but the backbone has ${stageChannels.length} stages`);
  const gnChannels: [string, number][] = [
    ['backbone.stemChannels', cfg.backbone.stemChannels],
    ...stageChannels.map((c, i): [string, number] => [`backbone.stageChannels[${i}]`, c]),
  ];
  if (cfg.head.towerDepth > 0) gnChannels.push(['fpn.channels', cfg.fpn.channels]);
  for (const [key, c] of gnChannels) {
    if (c % cfg.gnGroups !== 0) bad(key, `= ${c} is not divisible by gnGroups = ${cfg.gnGroups}`);
  }
  const arch = architectureStrides(cfg);
  if (cfg.strides.length !== arch.length || cfg.strides.some((s, i) => s !== arch[i])) {
    bad('strides', `= [${cfg.strides}] but the architecture gives [${arch}]: set strides to that`);
  }
  if (cfg.sizeRanges.length !== arch.length) bad('sizeRanges', `needs one [lo, hi] per level (${arch.length}), got ${cfg.sizeRanges.length}`);
  const deepest = stageStride(stageChannels.length - 1);
  if (cfg.inputSize % deepest !== 0) bad('inputSize', `= ${cfg.inputSize} must be a multiple of ${deepest}, the deepest stride`);
  if (!(cfg.head.priorProb > 0 && cfg.head.priorProb < 1)) bad('head.priorProb', 'must be in (0, 1)');
  if (!(cfg.centerRadius > 0)) bad('centerRadius', 'must be > 0');
  const inf = cfg.inference;
  if (!(inf.nmsIou > 0 && inf.nmsIou <= 1)) bad('inference.nmsIou', 'must be in (0, 1]');
  posInt('inference.topkPerLevel', inf.topkPerLevel);
  posInt('inference.maxDetections', inf.maxDetections);
  if (cfg.mask !== undefined) {
    if (cfg.strides[0] !== 8) bad('strides', `start at ${cfg.strides[0]}, but the mask branch sits on a stride-8 P3`);
    validateMaskConfig(cfg.mask, cfg.strides.length, cfg.gnGroups, bad);
  }
}
