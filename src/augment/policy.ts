// Augmentation policies: a seeded random draw of an `AugmentTransform` for
// one image onto the model's S × S input. The magnitudes are all here, in
// AUGMENT_DEFAULTS, and nowhere else.
//
//   none:   the letterbox of decoding (longer side → S, top-left, zero pad,
//           sides rounded to whole pixels as io/letterbox.ts plans them).
//   weak:   multi-scale resize (longer side → S · one of `scales`) + flip.
//   strong: weak's flip, continuous scale jitter (which can push the image
//           past the canvas: boxes are clipped, degenerate ones dropped),
//           a small translation, colour jitter, one RandAugment colour op,
//           and random erasing (cutout).
import { GeometricTransform } from './geometric.js';
import type { ColorOp } from './photometric.js';
import { Rng } from './rng.js';
import { AugmentTransform } from './transform.js';

export const POLICIES = ['none', 'weak', 'strong'] as const;
export type PolicyName = (typeof POLICIES)[number];

export const AUGMENT_DEFAULTS = {
  weak: {
    /** Longer side as a fraction of S, one drawn per image (detectron2's ResizeShortestEdge choice, at a fixed canvas). */
    scales: [0.75, 0.875, 1.0],
    flipProb: 0.5,
  },
  strong: {
    flipProb: 0.5,
    /** Longer side as a fraction of S, uniform; Soft Teacher's strong view resizes over a 3× range. */
    scaleRange: [0.5, 1.25] as [number, number],
    /** Translation as a fraction of S per axis (Soft Teacher's translate magnitude 0.1). */
    translate: 0.1,
    /** torchvision ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, as Unbiased Teacher's strong view. */
    jitterProb: 0.8,
    brightness: 0.4,
    contrast: 0.4,
    saturation: 0.4,
    hue: 0.1,
    /**
     * Then one of Soft Teacher's RandAugment colour ops (or none), with its
     * magnitude drawn uniformly: ImageEnhance factors in [0.1, 1.9], posterize
     * to 4–8 bits, solarize at a threshold in [0, 256).
     */
    enhanceRange: [0.1, 1.9] as [number, number],
    posterizeBits: [4, 8] as [number, number],
    solarizeRange: [0, 256] as [number, number],
    /** Random erasing: 1–5 square patches, side up to 0.2 of the image's shorter side, filled with the ImageNet mean colour. */
    eraseCount: [1, 5] as [number, number],
    eraseMaxSide: 0.2,
    eraseFill: [124, 116, 104] as [number, number, number],
  },
};

const RANDAUG_COLOR_OPS = ['identity', 'autocontrast', 'equalize', 'solarize', 'posterize', 'sharpness', 'color', 'contrast', 'brightness'] as const;

/**
 * Draws the transform for one image of width × height onto a size × size
 * view. `rng` is consumed in a fixed order, so one seed gives one view.
 */
export function drawTransform(policy: PolicyName, rng: Rng, width: number, height: number, size: number): AugmentTransform {
  const long = Math.max(width, height);
  if (policy === 'none') return new AugmentTransform(placed(width, height, size, size / long, false, 0, 0));
  if (policy === 'weak') {
    const cfg = AUGMENT_DEFAULTS.weak;
    const s = (size * rng.choice(cfg.scales)) / long;
    const flip = rng.bernoulli(cfg.flipProb);
    return new AugmentTransform(placed(width, height, size, s, flip, 0, 0));
  }
  const cfg = AUGMENT_DEFAULTS.strong;
  const flip = rng.bernoulli(cfg.flipProb);
  const s = (size * rng.uniform(cfg.scaleRange[0], cfg.scaleRange[1])) / long;
  // An image larger than the canvas is cropped at a random place; then the small translation.
  const cropX = rng.uniform(Math.min(0, size - width * s), 0);
  const cropY = rng.uniform(Math.min(0, size - height * s), 0);
  const tx = cropX + rng.uniform(-cfg.translate, cfg.translate) * size;
  const ty = cropY + rng.uniform(-cfg.translate, cfg.translate) * size;
  const geometric = placed(width, height, size, s, flip, tx, ty);

  const color: ColorOp[] = [];
  if (rng.bernoulli(cfg.jitterProb)) {
    const jitter: ColorOp[] = [
      { op: 'brightness', factor: rng.uniform(1 - cfg.brightness, 1 + cfg.brightness) },
      { op: 'contrast', factor: rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) },
      { op: 'saturation', factor: rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) },
      { op: 'hue', shift: rng.uniform(-cfg.hue, cfg.hue) },
    ];
    color.push(...rng.shuffle(jitter));
  }
  const op = rng.choice(RANDAUG_COLOR_OPS);
  const enhance = (): number => rng.uniform(cfg.enhanceRange[0], cfg.enhanceRange[1]);
  switch (op) {
    case 'identity': break;
    case 'autocontrast': color.push({ op: 'autocontrast' }); break;
    case 'equalize': color.push({ op: 'equalize' }); break;
    case 'solarize': color.push({ op: 'solarize', threshold: Math.floor(rng.uniform(cfg.solarizeRange[0], cfg.solarizeRange[1])) }); break;
    case 'posterize': color.push({ op: 'posterize', bits: rng.int(cfg.posterizeBits[0], cfg.posterizeBits[1]) }); break;
    case 'sharpness': color.push({ op: 'sharpness', factor: enhance() }); break;
    case 'color': color.push({ op: 'saturation', factor: enhance() }); break;
    case 'contrast': color.push({ op: 'contrast', factor: enhance() }); break;
    case 'brightness': color.push({ op: 'brightness', factor: enhance() }); break;
  }
  const [cx1, cy1, cx2, cy2] = geometric.contentRect();
  const side = Math.min(cx2 - cx1, cy2 - cy1);
  const n = rng.int(cfg.eraseCount[0], cfg.eraseCount[1]);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(0, cfg.eraseMaxSide) * side;
    const x = rng.uniform(cx1, Math.max(cx1, cx2 - a));
    const y = rng.uniform(cy1, Math.max(cy1, cy2 - a));
    if (a >= 1) color.push({ op: 'erase', rect: [x, y, x + a, y + a], fill: cfg.eraseFill });
  }
  return new AugmentTransform(geometric, color);
}

/**
 * Scale by s (flipped within the scaled image if asked), shift by (tx, ty),
 * onto size × size. Snapped like detectron2's ResizeTransform: the scaled
 * image has whole-pixel sides (so each axis has its own s = round(W·s)/W)
 * and sits at a whole-pixel offset, so the view is one resize (which sharp
 * can do off the main thread) and a copy, and the box map stays exact.
 */
function placed(width: number, height: number, size: number, s: number, flip: boolean, tx: number, ty: number): GeometricTransform {
  const w = Math.max(1, Math.round(width * s));
  const h = Math.max(1, Math.round(height * s));
  const ox = Math.round(tx);
  return new GeometricTransform(
    { sx: flip ? -w / width : w / width, tx: ox + (flip ? w : 0), sy: h / height, ty: Math.round(ty) },
    width, height, size, size,
  );
}

export function isPolicy(x: string): x is PolicyName {
  return (POLICIES as readonly string[]).includes(x);
}
