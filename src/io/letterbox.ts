// The letterbox of decoding: an image of W × H becomes the model's square
// input S × S by a resize keeping the aspect ratio so the longer side is S,
// the image at the top-left and zero padding right and bottom.
//
//     view = original · scale + offset      (offsetX = offsetY = 0 here)
//
// Coordinates are continuous pixels: pixel (i, j) covers [j, j+1) × [i, i+1),
// so [0, 0, W, H] is the whole image and maps to [0, 0, W·scale, H·scale].
// The long side is exact (W·scale = S); the short side is resampled to
// round(H·scale) pixels, so its content is off the mapping by at most half a
// view pixel at the far edge, as in every integer-sized resize (mmdetection,
// detectron2). Boxes map forward and back through these pure functions, so a
// round trip is exact up to floating point.

export interface Letterbox {
  scale: number;
  offsetX: number;
  offsetY: number;
}

/** The letterbox of a width × height image into size × size, and the resized content's pixel size. */
export interface LetterboxPlan extends Letterbox {
  /** The model side S. */
  size: number;
  /** Pixel size of the resized image inside the S × S canvas. */
  resizedWidth: number;
  resizedHeight: number;
}

export function planLetterbox(width: number, height: number, size: number): LetterboxPlan {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new RangeError(`letterbox: image size must be positive integers, got ${width}×${height}`);
  }
  if (!(Number.isInteger(size) && size > 0)) throw new RangeError(`letterbox: size must be a positive integer, got ${size}`);
  const scale = size / Math.max(width, height);
  // min(size, …) guards the long side against round(W · S/W) drifting to S+1 in floating point.
  const resizedWidth = Math.min(size, Math.max(1, Math.round(width * scale)));
  const resizedHeight = Math.min(size, Math.max(1, Math.round(height * scale)));
  return { scale, offsetX: 0, offsetY: 0, size, resizedWidth, resizedHeight };
}

/** The identity: an image used at its own size. */
export const IDENTITY_LETTERBOX: Letterbox = Object.freeze({ scale: 1, offsetX: 0, offsetY: 0 });

/** COCO box [x, y, w, h] in original pixels → the same box in the view. */
export function boxToView(box: readonly number[], lb: Letterbox): [number, number, number, number] {
  return [box[0] * lb.scale + lb.offsetX, box[1] * lb.scale + lb.offsetY, box[2] * lb.scale, box[3] * lb.scale];
}

/** COCO box [x, y, w, h] in view pixels (e.g. a prediction) → original pixels. */
export function boxToOriginal(box: readonly number[], lb: Letterbox): [number, number, number, number] {
  return [(box[0] - lb.offsetX) / lb.scale, (box[1] - lb.offsetY) / lb.scale, box[2] / lb.scale, box[3] / lb.scale];
}

/**
 * A view box clipped to the original image: predictions on the padding or
 * past the resized content's rounded edge are cut to [0, W] × [0, H].
 */
export function boxToOriginalClipped(box: readonly number[], lb: Letterbox, width: number, height: number): [number, number, number, number] {
  const [x, y, w, h] = boxToOriginal(box, lb);
  const x1 = Math.min(width, Math.max(0, x));
  const y1 = Math.min(height, Math.max(0, y));
  const x2 = Math.min(width, Math.max(0, x + w));
  const y2 = Math.min(height, Math.max(0, y + h));
  return [x1, y1, x2 - x1, y2 - y1];
}
