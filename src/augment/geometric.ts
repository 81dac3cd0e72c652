// Axis-aligned affine transforms of an image and of its boxes and masks:
// per axis `view = original · s + t` (s < 0 is a flip), onto an output canvas
// of a given size. Resizes, flips, translations, scale jitter and the
// letterbox of decoding ({ scale, offsetX, offsetY }) are all of this form,
// so a chain of them composes into one, the image is resampled once, and a
// box maps exactly (and back exactly through `inverse()`).
//
// Coordinates are continuous pixels: pixel (i, j) covers [j, j+1) × [i, i+1),
// so a box [0, 0, W, H] is the whole image. Boxes are x1y1x2y2.

/** Decoded image, HWC RGB, as src/io/decode.ts makes them. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** A binary mask, row-major, one byte per pixel (0 or 1). */
export interface BinaryMask {
  data: Uint8Array;
  width: number;
  height: number;
}

export type Box = [number, number, number, number];

export interface Affine {
  sx: number;
  tx: number;
  sy: number;
  ty: number;
}

export class GeometricTransform {
  constructor(
    readonly affine: Affine,
    /** The original canvas the transform expects. */
    readonly inWidth: number,
    readonly inHeight: number,
    /** The view's canvas. */
    readonly outWidth: number,
    readonly outHeight: number,
  ) {
    if (affine.sx === 0 || affine.sy === 0 || !Number.isFinite(affine.sx + affine.sy + affine.tx + affine.ty)) {
      throw new Error(`GeometricTransform: degenerate affine ${JSON.stringify(affine)}`);
    }
  }

  static identity(width: number, height: number): GeometricTransform {
    return new GeometricTransform({ sx: 1, tx: 0, sy: 1, ty: 0 }, width, height, width, height);
  }

  /**
   * The letterbox of decoding as a transform: the longer side becomes `size`,
   * the image sits top-left on a size × size canvas, padding right/bottom.
   */
  static letterbox(width: number, height: number, size: number): GeometricTransform {
    const scale = size / Math.max(width, height);
    return new GeometricTransform({ sx: scale, tx: 0, sy: scale, ty: 0 }, width, height, size, size);
  }

  /** Resize to outWidth × outHeight (aspect not kept). */
  static resize(width: number, height: number, outWidth: number, outHeight: number): GeometricTransform {
    return new GeometricTransform({ sx: outWidth / width, tx: 0, sy: outHeight / height, ty: 0 }, width, height, outWidth, outHeight);
  }

  /** Mirror left–right within the same canvas. */
  static hflip(width: number, height: number): GeometricTransform {
    return new GeometricTransform({ sx: -1, tx: width, sy: 1, ty: 0 }, width, height, width, height);
  }

  /** The io engineer's letterbox description `{ scale, offsetX, offsetY }`. */
  static fromLetterbox(lb: { scale: number; offsetX: number; offsetY: number }, inWidth: number, inHeight: number, outWidth: number, outHeight: number): GeometricTransform {
    return new GeometricTransform({ sx: lb.scale, tx: lb.offsetX, sy: lb.scale, ty: lb.offsetY }, inWidth, inHeight, outWidth, outHeight);
  }

  /** This transform followed by `next` (next's input is this one's output). */
  then(next: GeometricTransform): GeometricTransform {
    if (next.inWidth !== this.outWidth || next.inHeight !== this.outHeight) {
      throw new Error(`GeometricTransform.then: canvas ${this.outWidth}×${this.outHeight} does not feed ${next.inWidth}×${next.inHeight}`);
    }
    const a = this.affine;
    const b = next.affine;
    return new GeometricTransform(
      { sx: a.sx * b.sx, tx: a.tx * b.sx + b.tx, sy: a.sy * b.sy, ty: a.ty * b.sy + b.ty },
      this.inWidth, this.inHeight, next.outWidth, next.outHeight,
    );
  }

  /** Maps the view back to the original canvas. */
  inverse(): GeometricTransform {
    const { sx, tx, sy, ty } = this.affine;
    return new GeometricTransform({ sx: 1 / sx, tx: -tx / sx, sy: 1 / sy, ty: -ty / sy }, this.outWidth, this.outHeight, this.inWidth, this.inHeight);
  }

  get isIdentity(): boolean {
    const { sx, tx, sy, ty } = this.affine;
    return sx === 1 && sy === 1 && tx === 0 && ty === 0 && this.inWidth === this.outWidth && this.inHeight === this.outHeight;
  }

  /** Where the original image lands on the view, clipped to it: [x1, y1, x2, y2] in whole pixels. */
  contentRect(): Box {
    const [b] = this.applyBoxes([[0, 0, this.inWidth, this.inHeight]], 0).boxes;
    if (!b) return [0, 0, 0, 0];
    return [Math.floor(b[0]), Math.floor(b[1]), Math.ceil(b[2]), Math.ceil(b[3])];
  }

  /** One box mapped, unclipped. */
  mapBox(b: readonly number[]): Box {
    const { sx, tx, sy, ty } = this.affine;
    const xa = b[0] * sx + tx;
    const xb = b[2] * sx + tx;
    const ya = b[1] * sy + ty;
    const yb = b[3] * sy + ty;
    return [Math.min(xa, xb), Math.min(ya, yb), Math.max(xa, xb), Math.max(ya, yb)];
  }

  /**
   * Boxes mapped onto the view and clipped to it; a box left narrower or
   * lower than `minSize` view pixels is dropped. `keep` lists the indices of
   * the input boxes that survive, to drop their masks and labels with them.
   */
  applyBoxes(boxes: readonly (readonly number[])[], minSize = 1): { boxes: Box[]; keep: number[] } {
    const out: Box[] = [];
    const keep: number[] = [];
    boxes.forEach((b, i) => {
      const m = this.mapBox(b);
      const c: Box = [
        Math.min(Math.max(m[0], 0), this.outWidth), Math.min(Math.max(m[1], 0), this.outHeight),
        Math.min(Math.max(m[2], 0), this.outWidth), Math.min(Math.max(m[3], 0), this.outHeight),
      ];
      if (c[2] - c[0] >= minSize && c[3] - c[1] >= minSize && (minSize > 0 || (c[2] > c[0] && c[3] > c[1]))) {
        out.push(c);
        keep.push(i);
      }
    });
    return { boxes: out, keep };
  }

  /** A mask resampled onto the view (nearest neighbour; outside the original is 0). */
  applyMask(mask: BinaryMask): BinaryMask {
    this.checkInput(mask.width, mask.height, 'mask');
    const { outWidth: W, outHeight: H } = this;
    const cols = nearestIndex(this.affine.sx, this.affine.tx, W, this.inWidth);
    const rows = nearestIndex(this.affine.sy, this.affine.ty, H, this.inHeight);
    const data = new Uint8Array(W * H);
    for (let v = 0; v < H; v++) {
      const r = rows[v];
      if (r < 0) continue;
      const src = r * this.inWidth;
      const dst = v * W;
      for (let u = 0; u < W; u++) {
        const c = cols[u];
        if (c >= 0) data[dst + u] = mask.data[src + c];
      }
    }
    return { data, width: W, height: H };
  }

  /**
   * The image resampled onto the view with a separable triangle filter whose
   * support widens when shrinking (antialiased, like PIL's bilinear resize);
   * outside the original is 0 (the letterbox padding).
   */
  applyImage(img: RgbImage): RgbImage {
    this.checkInput(img.width, img.height, 'image');
    if (this.isIdentity) return { data: img.data.slice(), width: img.width, height: img.height };
    const W = this.outWidth;
    const H = this.outHeight;
    const cols = filterTaps(this.affine.sx, this.affine.tx, W, this.inWidth);
    const rows = filterTaps(this.affine.sy, this.affine.ty, H, this.inHeight);
    // Horizontal pass, only on the source rows some output row reads.
    const needed = new Uint8Array(this.inHeight);
    for (let v = 0; v < H; v++) for (let k = 0; k < rows.count[v]; k++) needed[rows.start[v] + k] = 1;
    const tmp = new Float32Array(this.inHeight * W * 3);
    const src = img.data;
    const cw = cols.weights;
    const cs = cols.stride;
    for (let y = 0; y < this.inHeight; y++) {
      if (!needed[y]) continue;
      const rowIn = y * this.inWidth * 3;
      let q = y * W * 3;
      for (let u = 0; u < W; u++, q += 3) {
        const n = cols.count[u];
        let r = 0;
        let g = 0;
        let b = 0;
        let p = rowIn + cols.start[u] * 3;
        for (let k = 0, wi = u * cs; k < n; k++, wi++, p += 3) {
          const w = cw[wi];
          r += w * src[p];
          g += w * src[p + 1];
          b += w * src[p + 2];
        }
        tmp[q] = r;
        tmp[q + 1] = g;
        tmp[q + 2] = b;
      }
    }
    // Vertical pass, accumulated row by row so the inner loop runs along memory.
    const data = new Uint8Array(W * H * 3);
    const stride = W * 3;
    const acc = new Float32Array(stride);
    for (let v = 0; v < H; v++) {
      const n = rows.count[v];
      if (n === 0) continue;
      acc.fill(0);
      for (let k = 0; k < n; k++) {
        const w = rows.weights[v * rows.stride + k];
        const off = (rows.start[v] + k) * stride;
        for (let x = 0; x < stride; x++) acc[x] += w * tmp[off + x];
      }
      const dst = v * stride;
      for (let x = 0; x < stride; x++) {
        const a = acc[x];
        data[dst + x] = a <= 0 ? 0 : a >= 255 ? 255 : Math.round(a);
      }
    }
    return { data, width: W, height: H };
  }

  private checkInput(width: number, height: number, what: string): void {
    if (width !== this.inWidth || height !== this.inHeight) {
      throw new Error(`GeometricTransform: ${what} is ${width}×${height} but the transform was drawn for ${this.inWidth}×${this.inHeight}`);
    }
  }
}

/** For each output index, the source index its centre falls in, or -1 outside. */
function nearestIndex(s: number, t: number, outLen: number, inLen: number): Int32Array {
  const idx = new Int32Array(outLen);
  for (let u = 0; u < outLen; u++) {
    const x = Math.floor((u + 0.5 - t) / s);
    idx[u] = x >= 0 && x < inLen ? x : -1;
  }
  return idx;
}

/** Per output index along one axis: its first source index, its tap count, and `stride` weights (the first `count` used). */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  stride: number;
}

/**
 * Triangle-filter taps for each output index along one axis: the source
 * centre is (u + 0.5 − t)/s − 0.5, the support max(1, 1/|s|). An output
 * whose centre falls outside the source gets no taps (stays 0); taps that
 * run off the edge are dropped and the rest renormalised (some source centre
 * is always within 0.5 of c, so the sum is positive).
 */
function filterTaps(s: number, t: number, outLen: number, inLen: number): Taps {
  const support = Math.max(1, 1 / Math.abs(s));
  const stride = Math.ceil(2 * support) + 1;
  const start = new Int32Array(outLen);
  const count = new Int32Array(outLen);
  const weights = new Float32Array(outLen * stride);
  for (let u = 0; u < outLen; u++) {
    const c = (u + 0.5 - t) / s - 0.5;
    if (c < -0.5 || c >= inLen - 0.5) continue;
    const lo = Math.max(0, Math.ceil(c - support));
    const hi = Math.min(inLen - 1, Math.floor(c + support));
    let sum = 0;
    for (let x = lo; x <= hi; x++) sum += Math.max(0, 1 - Math.abs(x - c) / support);
    start[u] = lo;
    count[u] = hi - lo + 1;
    for (let x = lo; x <= hi; x++) weights[u * stride + x - lo] = Math.max(0, 1 - Math.abs(x - c) / support) / sum;
  }
  return { start, count, weights, stride };
}
