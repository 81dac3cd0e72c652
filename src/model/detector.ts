// FCOS detector = backbone → FPN → shared head, its parameters as named
// tf.Variables. B images, S input side, L locations over all levels, K classes:
//   input     [B, S, S, 3] float32 in [0, 1]
//   cls       [B, L, K]   classifier logits
//   box       [B, L, 4]   ltrb distances in input pixels
//   ctr       [B, L, 1]   centerness logits
//   features  C2..C5 and P3..P7 (NHWC), only when asked for
// With CondInst (`config.mask`, condinst/):
//   boxTowers  [B, h_l, h_l, F] per level: the controller reads them at the
//              locations it is asked for (condinst/controller.ts controllerRows)
//   maskFeats  [B, S/8, S/8, C] the mask branch's output on P3..P5
// L = 341 for tiny-fcos at S = 128 (16² + 8² + 4² + 2² + 1²).
import * as tf from '@tensorflow/tfjs-core';
import { type ModelConfig, validateModelConfig } from './config.js';
import { backbone, backboneSpecs } from './backbone.js';
import { fpn, fpnSpecs } from './fpn.js';
import { headLevel, headSpecs } from './head.js';
import { flattenLevel } from './ops.js';
import { type ParamSpec, type Params, initValues, numel, seededRandom } from './params.js';
import { controllerSpecs } from './condinst/controller.js';
import { maskBranch, maskBranchSpecs } from './condinst/mask-branch.js';

export interface Detector {
  config: ModelConfig;
  /** Parameter name (PyTorch state_dict style) → variable, in declaration order. */
  params: Params;
  specs: ParamSpec[];
}

export interface DetectorOutput {
  cls: tf.Tensor3D;
  box: tf.Tensor3D;
  ctr: tf.Tensor3D;
  features?: { C: tf.Tensor4D[]; P: tf.Tensor4D[] };
  /** CondInst only. */
  boxTowers?: tf.Tensor4D[];
  maskFeats?: tf.Tensor4D;
}

export function paramSpecs(cfg: ModelConfig): ParamSpec[] {
  const mask = cfg.mask ? [...controllerSpecs(cfg, cfg.mask), ...maskBranchSpecs(cfg, cfg.mask)] : [];
  return [...backboneSpecs(cfg), ...fpnSpecs(cfg), ...headSpecs(cfg), ...mask];
}

export function countParams(cfg: ModelConfig): number {
  return paramSpecs(cfg).reduce((n, s) => n + numel(s.shape), 0);
}

// tfjs variable names are global to the engine: a per-detector prefix lets
// several detectors (teacher, student, a checkpoint being compared) coexist.
let detectorCount = 0;

/** Fresh detector, initialised as the spec says; the same seed gives the same weights on every backend. */
export function createDetector(cfg: ModelConfig, opts: { seed?: number } = {}): Detector {
  validateModelConfig(cfg);
  const rand = seededRandom(opts.seed ?? 0);
  const specs = paramSpecs(cfg);
  const prefix = `det${detectorCount++}`;
  const params: Params = new Map();
  for (const s of specs) {
    const init = tf.tensor(initValues(s, rand), s.shape, 'float32');
    params.set(s.name, tf.variable(init, true, `${prefix}/${s.name}`));
    init.dispose();
  }
  return { config: cfg, params, specs };
}

export function disposeDetector(det: Detector): void {
  for (const v of det.params.values()) v.dispose();
  det.params.clear();
}

/** The whole network. Tensors returned are the caller's to dispose. */
export function forward(det: Detector, x: tf.Tensor4D, opts: { features?: boolean } = {}): DetectorOutput {
  const cfg = det.config;
  if (x.rank !== 4 || x.shape[3] !== 3 || x.shape[1] !== x.shape[2]) {
    throw new Error(`detector input must be square, [B, S, S, 3], got [${x.shape}]: letterbox the images to S × S`);
  }
  const deepest = cfg.strides[cfg.fpn.inputs - 1];
  if (x.shape[1] % deepest !== 0 || x.shape[2] % deepest !== 0) {
    throw new Error(`detector input side ${x.shape[1]}×${x.shape[2]} must be a multiple of ${deepest}: letterbox to the model's size`);
  }
  return tf.tidy(() => {
    const C = backbone(det.params, cfg, x);
    const P = fpn(det.params, cfg, C);
    const cls: tf.Tensor3D[] = [];
    const box: tf.Tensor3D[] = [];
    const ctr: tf.Tensor3D[] = [];
    const boxTowers: tf.Tensor4D[] = [];
    P.forEach((f, l) => {
      const h = headLevel(det.params, cfg, f, l);
      cls.push(flattenLevel(h.cls));
      box.push(flattenLevel(h.box));
      ctr.push(flattenLevel(h.ctr));
      if (cfg.mask) boxTowers.push(h.boxTower);
    });
    const out: DetectorOutput = { cls: tf.concat(cls, 1), box: tf.concat(box, 1), ctr: tf.concat(ctr, 1) };
    if (cfg.mask) {
      out.boxTowers = boxTowers;
      out.maskFeats = maskBranch(det.params, cfg, cfg.mask, P);
    }
    if (opts.features) out.features = { C, P };
    return out as unknown as tf.TensorContainer;
  }) as unknown as DetectorOutput;
}

export function disposeOutput(out: DetectorOutput): void {
  tf.dispose([out.cls, out.box, out.ctr]);
  if (out.boxTowers) tf.dispose([...out.boxTowers, out.maskFeats!]);
  if (out.features) tf.dispose([...out.features.C, ...out.features.P]);
}
