// One drawn view: a deterministic transform (detectron2's `Transform`) made
// of one composed geometric map and a list of colour ops. A policy draws it
// (policy.ts); from then on it is plain data, so the same view is applied to
// the image, its boxes and its masks, and boxes or masks predicted on the
// view are mapped back to the original with `inverse()`.
import { type BinaryMask, type Box, GeometricTransform, type RgbImage } from './geometric.js';
import { type ColorOp, applyColorOp } from './photometric.js';
import type { EncodedImage } from '../io/decode.js';
import { resampleWithSharp, viewFromEncoded } from './sharp-resample.js';

/** Instances travelling with an image: boxes x1y1x2y2, optional masks and any per-instance fields. */
export interface ViewInstances {
  boxes: Box[];
  masks?: BinaryMask[];
}

export class AugmentTransform {
  constructor(
    readonly geometric: GeometricTransform,
    readonly color: readonly ColorOp[] = [],
  ) {}

  get inWidth(): number {
    return this.geometric.inWidth;
  }

  get inHeight(): number {
    return this.geometric.inHeight;
  }

  get outWidth(): number {
    return this.geometric.outWidth;
  }

  get outHeight(): number {
    return this.geometric.outHeight;
  }

  /** The view of `img`: resampled once, then the colour ops inside the image's footprint. */
  applyImage(img: RgbImage): RgbImage {
    return this.colorize(this.geometric.applyImage(img));
  }

  /**
   * The same view with the resampling done by sharp on libuv's threads, off
   * the main thread (the train step's), when the geometry is a whole-pixel
   * resize + flip + offset as the policies draw it; else as applyImage.
   */
  async applyImageOffThread(img: RgbImage): Promise<RgbImage> {
    return this.colorize(await resampleWithSharp(img, this.geometric));
  }

  /**
   * The same view straight from the encoded file (io/decode.ts
   * readEncodedImage): one call of casl's decode addon on libuv's pool when
   * it takes the file, else sharp's full decode then as applyImageOffThread.
   */
  async applyEncoded(img: EncodedImage, useAddon = true): Promise<RgbImage> {
    return this.colorize((await viewFromEncoded(img, this.geometric, useAddon)).view);
  }

  private colorize(out: RgbImage): RgbImage {
    if (this.color.length > 0) {
      const region = this.geometric.contentRect();
      for (const op of this.color) applyColorOp(out, op, region);
    }
    return out;
  }

  applyBoxes(boxes: readonly (readonly number[])[], minSize = 1): { boxes: Box[]; keep: number[] } {
    return this.geometric.applyBoxes(boxes, minSize);
  }

  applyMasks(masks: readonly BinaryMask[]): BinaryMask[] {
    return masks.map((m) => this.geometric.applyMask(m));
  }

  /**
   * Boxes and masks together: boxes clipped to the view, those left smaller
   * than `minSize` dropped along with their masks; `keep` indexes the input,
   * so labels (or any other per-instance field) can follow.
   */
  applyInstances(inst: ViewInstances, minSize = 1): ViewInstances & { keep: number[] } {
    const { boxes, keep } = this.applyBoxes(inst.boxes, minSize);
    const masks = inst.masks ? keep.map((i) => this.geometric.applyMask(inst.masks![i])) : undefined;
    return masks ? { boxes, masks, keep } : { boxes, keep };
  }

  /** Maps boxes and masks predicted on the view back to the original image (colour ops have no inverse to apply). */
  inverse(): GeometricTransform {
    return this.geometric.inverse();
  }

  /** A JSON description (for logs and pseudo-label metadata). */
  toJSON(): { affine: GeometricTransform['affine']; in: [number, number]; out: [number, number]; color: readonly ColorOp[] } {
    return {
      affine: this.geometric.affine,
      in: [this.inWidth, this.inHeight],
      out: [this.outWidth, this.outHeight],
      color: this.color,
    };
  }
}
