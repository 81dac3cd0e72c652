// Photometric operations on HWC RGB bytes, in place, restricted to a region
// (the part of the view the image covers, so letterbox padding stays 0).
// They change pixels only: boxes and masks pass through untouched. Each is
// described by plain data (`ColorOp`) so a drawn view can be logged and
// replayed. Factor conventions follow PIL's ImageEnhance (1 = identity),
// as RandAugment and Soft Teacher use them.
import type { Box, RgbImage } from './geometric.js';

export type ColorOp =
  | { op: 'brightness'; factor: number }
  | { op: 'contrast'; factor: number }
  | { op: 'saturation'; factor: number }
  /** Hue rotation in turns, in [-0.5, 0.5]. */
  | { op: 'hue'; shift: number }
  | { op: 'sharpness'; factor: number }
  /** Keep the top `bits` bits of each channel. */
  | { op: 'posterize'; bits: number }
  /** Invert every channel value ≥ threshold. */
  | { op: 'solarize'; threshold: number }
  | { op: 'equalize' }
  | { op: 'autocontrast' }
  /** Fill a rectangle (view pixels) with one colour: random erasing / cutout. */
  | { op: 'erase'; rect: Box; fill: [number, number, number] };

const clamp = (v: number): number => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));

/** ITU-R 601 luma, as PIL's convert('L'). */
const luma = (r: number, g: number, b: number): number => 0.299 * r + 0.587 * g + 0.114 * b;

/** Applies `op` to the pixels of `img` inside `region` ([x1, y1, x2, y2], whole pixels). */
export function applyColorOp(img: RgbImage, op: ColorOp, region: Box): void {
  const x1 = Math.max(0, region[0]);
  const y1 = Math.max(0, region[1]);
  const x2 = Math.min(img.width, region[2]);
  const y2 = Math.min(img.height, region[3]);
  if (x2 <= x1 || y2 <= y1) return;
  const d = img.data;
  const W = img.width;
  const each = (f: (p: number) => void): void => {
    for (let y = y1; y < y2; y++) for (let x = x1, p = (y * W + x1) * 3; x < x2; x++, p += 3) f(p);
  };
  switch (op.op) {
    case 'brightness':
      each((p) => {
        d[p] = clamp(d[p] * op.factor);
        d[p + 1] = clamp(d[p + 1] * op.factor);
        d[p + 2] = clamp(d[p + 2] * op.factor);
      });
      return;
    case 'contrast': {
      let sum = 0;
      each((p) => {
        sum += luma(d[p], d[p + 1], d[p + 2]);
      });
      const mean = sum / ((x2 - x1) * (y2 - y1));
      const f = op.factor;
      each((p) => {
        d[p] = clamp(mean + (d[p] - mean) * f);
        d[p + 1] = clamp(mean + (d[p + 1] - mean) * f);
        d[p + 2] = clamp(mean + (d[p + 2] - mean) * f);
      });
      return;
    }
    case 'saturation': {
      const f = op.factor;
      each((p) => {
        const l = luma(d[p], d[p + 1], d[p + 2]);
        d[p] = clamp(l + (d[p] - l) * f);
        d[p + 1] = clamp(l + (d[p + 1] - l) * f);
        d[p + 2] = clamp(l + (d[p + 2] - l) * f);
      });
      return;
    }
    case 'hue': {
      // Rotation of the chroma plane in YIQ: a hue shift without the HSV round trip.
      const a = op.shift * 2 * Math.PI;
      const c = Math.cos(a);
      const s = Math.sin(a);
      each((p) => {
        const r = d[p];
        const g = d[p + 1];
        const b = d[p + 2];
        const Y = 0.299 * r + 0.587 * g + 0.114 * b;
        const I = 0.596 * r - 0.274 * g - 0.322 * b;
        const Q = 0.211 * r - 0.523 * g + 0.312 * b;
        const I2 = c * I - s * Q;
        const Q2 = s * I + c * Q;
        d[p] = clamp(Y + 0.956 * I2 + 0.621 * Q2);
        d[p + 1] = clamp(Y - 0.272 * I2 - 0.647 * Q2);
        d[p + 2] = clamp(Y - 1.106 * I2 + 1.703 * Q2);
      });
      return;
    }
    case 'sharpness': {
      // PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13 is the degenerate
      // image; border pixels of the region stay as they are, as in PIL.
      if (x2 - x1 < 3 || y2 - y1 < 3) return;
      const src = d.slice();
      const f = op.factor;
      for (let y = y1 + 1; y < y2 - 1; y++) {
        for (let x = x1 + 1; x < x2 - 1; x++) {
          const p = (y * W + x) * 3;
          for (let ch = 0; ch < 3; ch++) {
            let s = 4 * src[p + ch];
            for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += src[p + (dy * W + dx) * 3 + ch];
            const blur = s / 13;
            d[p + ch] = clamp(blur + (src[p + ch] - blur) * f);
          }
        }
      }
      return;
    }
    case 'posterize': {
      const mask = (0xff << (8 - Math.max(1, Math.min(8, op.bits)))) & 0xff;
      each((p) => {
        d[p] &= mask;
        d[p + 1] &= mask;
        d[p + 2] &= mask;
      });
      return;
    }
    case 'solarize':
      each((p) => {
        for (let ch = 0; ch < 3; ch++) if (d[p + ch] >= op.threshold) d[p + ch] = 255 - d[p + ch];
      });
      return;
    case 'equalize':
    case 'autocontrast': {
      const luts = [0, 1, 2].map((ch) => {
        const hist = new Uint32Array(256);
        each((p) => {
          hist[d[p + ch]]++;
        });
        return op.op === 'equalize' ? equalizeLut(hist) : autocontrastLut(hist);
      });
      each((p) => {
        d[p] = luts[0][d[p]];
        d[p + 1] = luts[1][d[p + 1]];
        d[p + 2] = luts[2][d[p + 2]];
      });
      return;
    }
    case 'erase': {
      const [fr, fg, fb] = op.fill;
      const rx1 = Math.max(x1, Math.floor(op.rect[0]));
      const ry1 = Math.max(y1, Math.floor(op.rect[1]));
      const rx2 = Math.min(x2, Math.ceil(op.rect[2]));
      const ry2 = Math.min(y2, Math.ceil(op.rect[3]));
      for (let y = ry1; y < ry2; y++) {
        for (let x = rx1, p = (y * W + rx1) * 3; x < rx2; x++, p += 3) {
          d[p] = fr;
          d[p + 1] = fg;
          d[p + 2] = fb;
        }
      }
      return;
    }
  }
}

/** PIL's ImageOps.equalize: the step is the histogram's total minus its last bin over 255. */
function equalizeLut(hist: Uint32Array): Uint8Array {
  const lut = new Uint8Array(256);
  let total = 0;
  let last = 0;
  for (let i = 0; i < 256; i++) {
    total += hist[i];
    if (hist[i] > 0) last = hist[i];
  }
  const step = Math.floor((total - last) / 255);
  if (step === 0) {
    for (let i = 0; i < 256; i++) lut[i] = i;
    return lut;
  }
  let n = Math.floor(step / 2);
  for (let i = 0; i < 256; i++) {
    lut[i] = Math.min(255, Math.floor(n / step));
    n += hist[i];
  }
  return lut;
}

/** Stretch [min, max] of the channel to [0, 255]. */
function autocontrastLut(hist: Uint32Array): Uint8Array {
  const lut = new Uint8Array(256);
  let lo = 0;
  while (lo < 255 && hist[lo] === 0) lo++;
  let hi = 255;
  while (hi > 0 && hist[hi] === 0) hi--;
  for (let i = 0; i < 256; i++) lut[i] = hi <= lo ? i : clamp(((i - lo) * 255) / (hi - lo));
  return lut;
}
