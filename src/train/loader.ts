// The streamed training loader: one highland stream of batches from a
// training source (source.ts), for every stage.
//
//   sample index g = 0, 1, 2, …  (epoch e = ⌊g/N⌋, position p = g mod N)
//     → record order[e][p]          (order[e] = seeded shuffle of 0…N−1)
//     → [α: every category → channel 0]
//     → read the file and its header → draw the view (policy, seeded by (seed, e, p))
//     → its pixels in one call of casl's decode addon on libuv's pool (decode,
//       resize, orientation, flip, placement; sharp for what it declines)
//     → colour ops
//     → batch(B) → FCOS targets → prefetch(P) → train step
//
// Every random choice is a function of (seed, g), so the batch at any point
// is reproducible from the sample index alone: a resumed run restarts the
// stream at the checkpoint's `nextSample` and sees exactly the batches the
// uninterrupted run saw. Memory is bounded by B·(P + 1) samples plus the
// decode concurrency, never by N.
//
// Shapes, B images, S the model side, L locations:
//   images [B, S, S, 3] float32 in [0, 1] (HWC RGB / 255)
//   targets  fcosTargets over the view's boxes (model/targets.ts)
//   masks    with a CondInst model (`mask`): each instance's mask (COCO
//            polygons or RLE, ground truth or pseudo label) decoded in
//            original pixels, through the same view as the image, sampled
//            at the mask output stride [S/outStride]², then mask targets
//            (model/condinst/mask-targets.ts); an instance without a mask
//            trains the box losses only
import _ from 'highland';
import path from 'node:path';
import type { RgbImage } from '../augment/geometric.js';
import { type EncodedImage, readEncodedImage, toFloat32 } from '../io/decode.js';
import { type PolicyName, drawTransform } from '../augment/policy.js';
import type { AugmentTransform } from '../augment/transform.js';
import { Rng, deriveSeed } from '../augment/rng.js';
import type { Points } from '../model/points.js';
import { decodeMask, segmentationToRle } from '../geometry/mask.js';
import type { MaskConfig } from '../model/condinst/mask-config.js';
import { type MaskTargets, maskTargets, sampleMask } from '../model/condinst/mask-targets.js';
import { type Targets, fcosTargets } from '../model/targets.js';
import { type ErrorRecord, isErrorRecord } from '../records.js';
import { batch } from '../streams/batch.js';
import { orderedMap } from '../streams/ordered-map.js';
import type { OrError, Stream } from '../streams/stage.js';
import type { SourceRecord, TrainSource } from './source.js';

export interface LoaderOptions {
  batchSize: number;
  /** S: the model's input side. */
  size: number;
  policy: PolicyName;
  seed: number;
  /** Class-agnostic: every category becomes channel 0 ("object"). */
  classAgnostic: boolean;
  points: Points;
  centerRadius: number;
  /** First sample index (0 for a fresh run, the checkpoint's nextSample on resume). */
  startSample?: number;
  /** Stop after this sample index (exclusive); unbounded when absent. */
  endSample?: number;
  /** Batches made ahead of the consumer. */
  prefetch?: number;
  /** Images decoded at once. */
  concurrency?: number;
  /** Boxes narrower or lower than this (view pixels) after augmentation are dropped. */
  minBoxSize?: number;
  /** Decodes a file at full resolution (then sharp resamples the view); by default the view is decoded straight from the file. */
  decode?: (file: string) => Promise<RgbImage>;
  /** Make views with casl's decode addon when it takes the file (default true); false: sharp's decode and resize. */
  decodeAddon?: boolean;
  /** A CondInst model's mask config: samples carry masks and batches mask targets. */
  mask?: MaskConfig;
}

/** One augmented image, on its way into a batch. */
export interface Sample {
  g: number;
  image_id: number;
  view: RgbImage;
  boxes: number[][];
  labels: number[];
  /** With `mask`: per kept instance, its view mask sampled at the mask output stride, or null. */
  masks?: (Uint8Array | null)[];
}

export interface TrainBatch {
  images: Float32Array;
  B: number;
  S: number;
  targets: Targets;
  /** With `mask`: the dice loss's targets. */
  masks?: MaskTargets;
  imageIds: number[];
  /** Index of the sample after this batch's last: where a resumed stream starts. */
  nextSample: number;
  /** Epoch of the batch's first sample. */
  epoch: number;
  instances: number;
}

/** The shuffled order of epoch e: a permutation of 0…n−1 from (seed, e); 4n bytes. */
export function epochOrder(seed: number, epoch: number, n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return new Rng(deriveSeed(seed, 0x0e, epoch)).shuffle(order);
}

/** Category id → classifier channel: α maps all to 0, otherwise the source's category order. */
export function categoryChannels(source: TrainSource, classAgnostic: boolean): (categoryId: number) => number {
  if (classAgnostic) return () => 0;
  const map = new Map(source.categories.map((c, k) => [c.id, k]));
  return (id) => {
    const k = map.get(id);
    if (k === undefined) throw new Error(`category_id ${id} is not one of the source's categories (${[...map.keys()].join(', ')})`);
    return k;
  };
}

/** The sample indices g = start, start+1, … (to end), as records to load, one epoch order in memory at a time. */
type SampleAt = { g: number; epoch: number; pos: number; index: number };

function sampleIndices(source: TrainSource, seed: number, start: number, end: number): Stream<OrError<SampleAt>> {
  const N = source.size;
  let g = start;
  let epoch = -1;
  let order: Uint32Array = new Uint32Array(0);
  return _<OrError<SampleAt>>((push, next) => {
    if (g >= end) {
      push(null, _.nil);
      return;
    }
    const e = Math.floor(g / N);
    if (e !== epoch) {
      epoch = e;
      order = epochOrder(seed, e, N);
    }
    const pos = g % N;
    push(null, { g, epoch: e, pos, index: order[pos] });
    g++;
    next();
  });
}

/** The view drawn for one record, and the sample's boxes, labels (α applied) and masks on it; the pixels are the caller's to make. */
function drawSample(
  rec: SourceRecord, img: { width: number; height: number }, at: { g: number; epoch: number; pos: number },
  opts: Pick<LoaderOptions, 'policy' | 'seed' | 'size' | 'minBoxSize' | 'mask'>, channel: (id: number) => number,
): { transform: AugmentTransform; sample: Omit<Sample, 'view'> } {
  const rng = new Rng(deriveSeed(opts.seed, 0xa0, at.epoch, at.pos));
  const tf = drawTransform(opts.policy, rng, img.width, img.height, opts.size);
  const boxes = rec.instances.map((x) => [x.bbox[0], x.bbox[1], x.bbox[0] + x.bbox[2], x.bbox[1] + x.bbox[3]]);
  const labels = rec.instances.map((x) => channel(x.category_id));
  const mapped = tf.applyBoxes(boxes, opts.minBoxSize ?? 1);
  const sample: Omit<Sample, 'view'> = { g: at.g, image_id: rec.image_id, boxes: mapped.boxes, labels: mapped.keep.map((i) => labels[i]) };
  if (opts.mask) {
    const stride = opts.mask.outStride;
    sample.masks = mapped.keep.map((i) => {
      const segm = rec.instances[i].segmentation;
      if (!segm) return null;
      let data: Uint8Array;
      try {
        data = decodeMask(segmentationToRle(segm, img.height, img.width));
      } catch (e) {
        throw new Error(`instance ${i} (category ${rec.instances[i].category_id}): bad segmentation: ${(e as Error).message}`);
      }
      if (data.length !== img.width * img.height) {
        throw new Error(`instance ${i}: segmentation is for another image size than the decoded ${img.width}×${img.height}`);
      }
      return sampleMask(tf.geometric.applyMask({ data, width: img.width, height: img.height }), stride);
    });
  }
  return { transform: tf, sample };
}

/** One record → one sample, the view resampled in TypeScript on the calling thread. */
export function makeSample(
  rec: SourceRecord, img: RgbImage, at: { g: number; epoch: number; pos: number },
  opts: Pick<LoaderOptions, 'policy' | 'seed' | 'size' | 'minBoxSize' | 'mask'>, channel: (id: number) => number,
): Sample {
  const { transform, sample } = drawSample(rec, img, at, opts, channel);
  return { ...sample, view: transform.applyImage(img) };
}

/** The same sample with the resampling done by sharp off the main thread (the loader's path). */
export async function makeSampleOffThread(
  rec: SourceRecord, img: RgbImage, at: { g: number; epoch: number; pos: number },
  opts: Pick<LoaderOptions, 'policy' | 'seed' | 'size' | 'minBoxSize' | 'mask'>, channel: (id: number) => number,
): Promise<Sample> {
  const { transform, sample } = drawSample(rec, img, at, opts, channel);
  return { ...sample, view: await transform.applyImageOffThread(img) };
}

/**
 * The same sample straight from the encoded file: the view is drawn from
 * the header's size and its pixels made in one addon call off the main
 * thread (the loader's path); sharp for what the addon declines.
 */
export async function makeSampleFromEncoded(
  rec: SourceRecord, img: EncodedImage, at: { g: number; epoch: number; pos: number },
  opts: Pick<LoaderOptions, 'policy' | 'seed' | 'size' | 'minBoxSize' | 'mask' | 'decodeAddon'>, channel: (id: number) => number,
): Promise<Sample> {
  const { transform, sample } = drawSample(rec, img.header, at, opts, channel);
  return { ...sample, view: await transform.applyEncoded(img, opts.decodeAddon !== false) };
}

/** B samples → one batch: the input tensor's floats and the FCOS targets. */
export function collate(samples: Sample[], opts: Pick<LoaderOptions, 'size' | 'points' | 'centerRadius' | 'mask'>, N: number): TrainBatch {
  const S = opts.size;
  const B = samples.length;
  const images = new Float32Array(B * S * S * 3);
  samples.forEach((s, b) => toFloat32(s.view, images, b * S * S * 3));
  const targets = fcosTargets(opts.points, samples.map((s) => ({ boxes: s.boxes, labels: s.labels })), opts.centerRadius);
  const side = opts.mask ? Math.floor(S / opts.mask.outStride) : 0;
  const masks = opts.mask
    ? maskTargets(targets, opts.points, samples.map((s) => s.masks ?? s.boxes.map(() => null)), side, side, opts.mask, S)
    : undefined;
  return {
    images, B, S, targets, ...(masks ? { masks } : {}),
    imageIds: samples.map((s) => s.image_id),
    nextSample: samples[B - 1].g + 1,
    epoch: Math.floor(samples[0].g / N),
    instances: samples.reduce((n, s) => n + s.boxes.length, 0),
  };
}

/**
 * Pulls up to `n` items ahead of the consumer, so the next batch is being
 * made while the train step runs. Errors and end of stream keep their place.
 */
export function prefetch<T>(n: number): (s: Stream<T>) => Stream<T> {
  return (s) => {
    const ready: { err?: Error; x?: T; end?: boolean }[] = [];
    let pulling = false;
    let done = false;
    let wake: (() => void) | null = null;
    const fill = (): void => {
      if (pulling || done || ready.length >= n) return;
      pulling = true;
      s.pull((err, x) => {
        pulling = false;
        if (err) ready.push({ err });
        else if (_.isNil(x)) {
          ready.push({ end: true });
          done = true;
        } else ready.push({ x: x as T });
        const w = wake;
        wake = null;
        w?.();
        fill();
      });
    };
    return _<T>((push, next) => {
      const give = (): void => {
        const item = ready.shift()!;
        fill();
        if (item.end) push(null, _.nil);
        else {
          if (item.err) push(item.err);
          else push(null, item.x as T);
          next();
        }
      };
      if (ready.length > 0) give();
      else {
        wake = give;
        fill();
      }
    });
  };
}

/**
 * The batches of a run from `startSample` on, with error records (an image
 * that failed to decode, a bad record) travelling beside them. A run of N
 * consecutive failures (a whole epoch) ends the stream with an error rather
 * than spinning forever.
 */
export function trainBatches(source: TrainSource, opts: LoaderOptions): Stream<OrError<TrainBatch>> {
  if (source.size === 0) throw new Error(`${source.file}: no trainable images`);
  const channel = categoryChannels(source, opts.classAgnostic);
  const N = source.size;
  let failedInARow = 0;
  return sampleIndices(source, opts.seed, opts.startSample ?? 0, opts.endSample ?? Infinity)
    .through(orderedMap(opts.concurrency ?? 4, async (at: SampleAt): Promise<OrError<Sample>> => {
      const rec = await source.read(at.index);
      try {
        const file = path.join(source.root, rec.file_name);
        if (opts.decode) return await makeSampleOffThread(rec, await opts.decode(file), at, opts, channel);
        return await makeSampleFromEncoded(rec, await readEncodedImage(file), at, opts, channel);
      } catch (e) {
        const err: ErrorRecord = { error: (e as Error).message, stage: 'loader', file_name: rec.file_name, image_id: rec.image_id };
        return err;
      }
    }, { stage: 'loader' }))
    .consume<OrError<Sample>>((err, x, push, next) => {
      if (err) {
        push(err);
        next();
        return;
      }
      if (_.isNil(x)) {
        push(null, x);
        return;
      }
      if (isErrorRecord(x)) {
        if (++failedInARow >= N) {
          push(new Error(`${source.file}: the last ${N} images (a whole epoch) all failed to load; last error: ${x.error}`));
          push(null, _.nil);
          return;
        }
      } else failedInARow = 0;
      push(null, x);
      next();
    })
    .through(batch<Sample>(opts.batchSize))
    .map((x) => (isErrorRecord(x) ? x : collate(x, opts, N)))
    .through(prefetch(opts.prefetch ?? 2));
}
