// Image decoding with sharp (libvips): any file sharp reads (JPEG, PNG, WebP,
// GIF, TIFF, AVIF/HEIF, SVG) becomes HWC RGB bytes, the convention every
// stage after decode shares:
//
//   RgbImage { data: Uint8Array  [H, W, 3] row-major RGB, width: W, height: H }
//
// - EXIF orientation is applied, so width and height are those of the image
//   as viewed (detectron2's read_image does the same; pycocotools never
//   looks at pixels, so annotations must be made on the oriented image).
// - Alpha is composited over black, not dropped: a transparent pixel's colour
//   is arbitrary (palette entries, premultiplication leftovers), black is
//   what the letterbox padding already is.
// - Grayscale becomes 3 equal channels, 16-bit is scaled to 8-bit, CMYK and
//   other colour spaces are converted to sRGB (embedded ICC profile if any).
// - A pixel limit guards against decompression bombs: the header's claimed
//   width × height is checked before any pixel is decoded.
//
// The fast path (`decodeLetterboxed`) decodes and resizes in one step at a
// reduced scale: libjpeg decodes at 1/2, 1/4 or 1/8 (shrink on load,
// Pillow's draft mode), libwebp at the target size. Plain JPEGs and PNGs go
// through casl's addon (native/jpeg/jpeg_letterbox.c: libjpeg-turbo or
// libpng, triangle filter, orientation, flip and placement on the canvas in
// one call on libuv's pool), which costs less than half of sharp's CPU an
// image, sharp's being mostly its fixed cost per pipeline; the addon declines
// what it does not decode exactly as sharp (CMYK, ICC profiles, 16-bit PNG,
// any libjpeg or libpng warning) and sharp decodes those. Other formats, and
// everything when the addon is not built, go through one sharp pipeline, the
// zero padding a row copy in JS (cheaper than libvips' extend). The training
// loader makes its augmented views with the same addon call (`addonView`).
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PROJECT_ROOT } from '../cli/options.js';
import type { ImageRecord } from '../records.js';
import { orderedMap } from '../streams/ordered-map.js';
import type { OrError, Stage } from '../streams/stage.js';
import { readJpegHeader } from './jpeg-header.js';
import { scaleBytes } from './scale-bytes.js';
import { readPngHeader } from './png-header.js';
import { IDENTITY_LETTERBOX, type Letterbox, type LetterboxPlan, planLetterbox } from './letterbox.js';

/** Decoded image: HWC RGB bytes. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Default pixel limit: 100 megapixels (300 MB of decoded RGB). Pillow warns
 * at 89 MP and refuses at twice that; no detection dataset comes close.
 */
export const DEFAULT_MAX_PIXELS = 100_000_000;

// libvips' operation cache keeps recent results (50 MB by default) for
// reuse; every image here is decoded once, so it would only hold memory.
sharp.cache(false);
// Threads libvips gives one image. Images are decoded `concurrency` at a
// time on libuv's pool instead: at these sizes per-image threads only add
// hand-offs, and one thread per image keeps `concurrency` the one knob.
sharp.concurrency(1);

/**
 * Bilinear, antialiased when shrinking (a triangle filter widened by the
 * scale, as Pillow's BILINEAR): the resize of mmdetection's and detectron2's
 * defaults, and about 6% less CPU a photo than sharp's default lanczos3.
 * (sharp 0.33's typings omit 'linear'; its resize accepts it.)
 */
const RESIZE_KERNEL = 'linear' as keyof sharp.KernelEnum;

/** native/jpeg/jpeg_letterbox.c; `declined` is null when `out` holds the view. */
interface JpegAddon {
  view(
    bytes: Uint8Array, out: Uint8Array, canvasWidth: number, canvasHeight: number, width: number, height: number, orientation: number,
    storedWidth: number, storedHeight: number, flip: number, offsetX: number, offsetY: number,
    callback: (err: Error | null, declined: string | null) => void,
  ): void;
  /** The whole file in one trip to libuv's pool; `code` is the errno name, or EFBIG over maxBytes. */
  readFile(path: string, maxBytes: number, callback: (err: Error | null, bytes: Buffer | null, code: string | null, size: number) => void): void;
  /** True when view() writes every byte of `out` (zeroes what the view does not cover); older builds need a zeroed canvas. */
  writesWholeCanvas?: boolean;
}

const ADDON_FILE = path.join(PROJECT_ROOT, 'native', 'jpeg', 'build', 'Release', 'casl_jpeg.node');

function loadJpegAddon(): { addon: JpegAddon | null; why: string } {
  try {
    const addon = createRequire(import.meta.url)(ADDON_FILE) as Partial<JpegAddon>;
    if (typeof addon.view !== 'function') {
      return { addon: null, why: `${ADDON_FILE} is an older build without view(); rebuild it with: make build (or node native/jpeg/build.mjs)` };
    }
    return { addon: addon as JpegAddon, why: ADDON_FILE };
  } catch (e) {
    return { addon: null, why: `${ADDON_FILE} did not load (${firstLine((e as Error).message)}); build it with: make build (or node native/jpeg/build.mjs)` };
  }
}

const jpegAddon = loadJpegAddon();

/**
 * Which decoder letterboxes plain JPEGs (and 8-bit PNGs): casl's addon
 * (libjpeg-turbo, libpng), or sharp when the addon is not built (and why),
 * for benchmarks and reports.
 */
export function jpegDecoder(): { decoder: 'libjpeg-turbo addon' | 'sharp'; detail: string } {
  return { decoder: jpegAddon.addon ? 'libjpeg-turbo addon' : 'sharp', detail: jpegAddon.why };
}

export interface DecodeOptions {
  /** Refuse images whose header claims more pixels than this; default DEFAULT_MAX_PIXELS. */
  maxPixels?: number;
  /**
   * Apply the EXIF orientation (default true). False keeps the stored
   * pixels, for datasets annotated on them (a viewer-unaware labelling tool).
   */
  exifOrientation?: boolean;
  /**
   * Letterbox plain JPEGs and PNGs with casl's addon when it is built
   * (default true); false always uses sharp (tests compare the two).
   */
  jpegAddon?: boolean;
  /**
   * Where the addon's canvases come from (the fast path): a pool the
   * consumer gives each canvas back to once it has copied the pixels out,
   * so that a long stream reuses a few buffers instead of allocating one
   * an image. Without it every canvas is new.
   */
  canvases?: CanvasPool;
}

/**
 * Recycled canvases of one size. Each image otherwise got a new 196 KB
 * (256² RGB) buffer that lived until its batch was copied: past two
 * scavenges, so V8 promoted them and had to mark the whole old space again
 * and again to free them (in some runs a mark-compact a second, 0.5–0.8 ms
 * of CPU an image on V8's threads). The addon writes every byte of a canvas,
 * so a recycled one needs no clearing.
 */
export class CanvasPool {
  private readonly free: Uint8Array[] = [];

  /** Keeps at most `max` free canvases; more are left to the garbage collector. */
  constructor(readonly max = 64) {}

  /** A canvas of `bytes` bytes with arbitrary contents. */
  take(bytes: number): Uint8Array {
    const top = this.free.pop();
    return top && top.length === bytes ? top : new Uint8Array(bytes);
  }

  /** Gives a canvas back: the caller must not touch it again. */
  give(canvas: Uint8Array): void {
    if (this.free.length < this.max) this.free.push(canvas);
  }
}

/** A file that cannot be decoded; the message says why, for the error record. */
export class DecodeError extends Error {
  override name = 'DecodeError';
}

/** What the header says, before any pixel is decoded. */
export interface ImageHeader {
  format: string;
  /** Size as stored in the file. */
  storedWidth: number;
  storedHeight: number;
  /** EXIF orientation, 1 (none) to 8, as the file says (applied unless exifOrientation is false). */
  orientation: number;
  /** Size of the decoded image: oriented, or as stored when exifOrientation is false. */
  width: number;
  height: number;
}

/** A letterboxed image: the S × S canvas, the mapping, and the original (oriented) size. */
export interface LetterboxedImage {
  image: RgbImage;
  letterbox: LetterboxPlan;
  width: number;
  height: number;
}

type Input = string | Uint8Array;

/** An image read in but not decoded: its bytes, where they came from, and its header. */
export interface EncodedImage {
  bytes: Uint8Array;
  where: string;
  header: ImageHeader;
}

/** Reads a file (or takes bytes) and its header, the pixel limit checked; no pixel is decoded. */
export async function readEncodedImage(input: Input, opts: DecodeOptions = {}): Promise<EncodedImage> {
  const { bytes, where } = await readInput(input, opts);
  return { bytes, where, header: await readImageHeader(bytes, opts, where) };
}

async function readInput(input: Input, opts: DecodeOptions): Promise<{ bytes: Uint8Array; where: string }> {
  if (typeof input !== 'string') return { bytes: input, where: 'buffer' };
  // No image within the pixel limit needs more than 4 bytes a pixel (even
  // uncompressed RGBA); a larger file is refused before it is read in.
  const maxBytes = 4 * limitOf(opts) + 2 ** 20;
  const tooBig = (size: number) => new DecodeError(`file is ${(size / 2 ** 20).toFixed(0)} MB, more than an image within the pixel limit can need (${(maxBytes / 2 ** 20).toFixed(0)} MB): ${input}; raise maxPixels (--max-pixels) if it is a trusted image`);
  const addon = jpegAddon.addon;
  if (addon && !input.includes('\0')) {
    // One trip to the pool instead of fs's four (open, stat, read, close),
    // each of which needs a turn of the main thread to start the next.
    const { bytes, code, size } = await new Promise<{ bytes: Buffer | null; code: string | null; size: number }>((resolve, reject) => {
      addon.readFile(input, maxBytes, (err, bytes, code, size) => (err ? reject(err) : resolve({ bytes, code, size })));
    });
    if (bytes) return { bytes, where: input };
    if (code === 'EFBIG') throw tooBig(size);
    throw readError(input, code ?? 'unknown error', code ?? 'unknown error');
  }
  // One open, one stat, one read: fs.readFile's chunked reads cost a pool
  // round trip each (about 0.2 ms of CPU an image, measured on 640×480 JPEGs).
  let fh: FileHandle | undefined;
  try {
    fh = await open(input, 'r');
    const { size } = await fh.stat();
    if (size > maxBytes) throw tooBig(size);
    const bytes = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(bytes, got, size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return { bytes: bytes.subarray(0, got), where: input };
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw readError(input, (e as NodeJS.ErrnoException).code, (e as Error).message);
  } finally {
    await fh?.close();
  }
}

function readError(file: string, code: string | undefined, message: string): DecodeError {
  if (code === 'ENOENT') return new DecodeError(`file not found: ${file}`);
  if (code === 'EISDIR') return new DecodeError(`is a directory, not an image: ${file}`);
  if (code === 'EACCES') return new DecodeError(`permission denied reading ${file}`);
  return new DecodeError(`cannot read ${file}: ${message}`);
}

function limitOf(opts: DecodeOptions): number {
  const limit = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(limit > 0)) throw new RangeError(`maxPixels must be positive, got ${limit}`);
  return limit;
}

function describeBytes(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 8));
  const printable = /^[\x20-\x7e\t\r\n]*$/.test(head.toString('latin1'));
  return printable ? `starts with text ${JSON.stringify(head.toString('latin1'))}` : `starts with bytes ${head.toString('hex')}`;
}

// libjpeg, libpng, libwebp and libtiff each word a short file differently.
function isTruncation(msg: string): boolean {
  return /premature end|truncat|unexpected end|not enough data|end of (file|stream|data)/i.test(msg);
}

function firstLine(msg: string): string {
  return msg.trim().split('\n')[0];
}

/** Reads the header only (no pixels) and enforces the pixel limit. */
export async function readImageHeader(bytes: Uint8Array, opts: DecodeOptions = {}, where = 'buffer'): Promise<ImageHeader> {
  if (bytes.length === 0) throw new DecodeError(`empty file (0 bytes): ${where}`);
  const jpeg = readJpegHeader(bytes);
  if (jpeg) return checkedHeader('jpeg', jpeg.width, jpeg.height, jpeg.orientation, opts, where);
  const png = readPngHeader(bytes);
  if (png) return checkedHeader('png', png.width, png.height, png.orientation, opts, where);
  let meta: sharp.Metadata;
  try {
    // The limit is checked below, with a message that says what to do.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    const msg = (e as Error).message;
    if (/unsupported image format/i.test(msg)) {
      throw new DecodeError(`not an image sharp can decode (${bytes.length} bytes, ${describeBytes(bytes)}): ${where}`);
    }
    throw new DecodeError(`${isTruncation(msg) ? 'truncated' : 'corrupt or truncated'} image, header unreadable (${firstLine(msg)}): ${where}`);
  }
  const { format, width: storedWidth, height: storedHeight } = meta;
  if (!format || !storedWidth || !storedHeight) {
    throw new DecodeError(`image header has no size (format ${format ?? 'unknown'}): ${where}`);
  }
  return checkedHeader(format, storedWidth, storedHeight, meta.orientation ?? 1, opts, where);
}

function checkedHeader(format: string, storedWidth: number, storedHeight: number, orientation: number, opts: DecodeOptions, where: string): ImageHeader {
  const limit = limitOf(opts);
  if (storedWidth * storedHeight > limit) {
    throw new DecodeError(
      `image is ${storedWidth}×${storedHeight} = ${(storedWidth * storedHeight).toExponential(2)} pixels, over the pixel limit of ${limit.toExponential(2)}`
      + ` (a decompression-bomb guard, checked on the header before decoding): ${where}; raise maxPixels (--max-pixels) if the file is trusted`,
    );
  }
  // Orientations 5–8 transpose the image.
  const swap = opts.exifOrientation !== false && orientation >= 5 && orientation <= 8;
  return {
    format,
    storedWidth,
    storedHeight,
    orientation,
    width: swap ? storedHeight : storedWidth,
    height: swap ? storedWidth : storedHeight,
  };
}

function pipeline(bytes: Uint8Array, opts: DecodeOptions): sharp.Sharp {
  // failOn 'error': truncated and corrupt data fail; libjpeg's warnings
  // (e.g. extraneous bytes before a marker) do not, as in Pillow and OpenCV.
  const img = sharp(bytes, { failOn: 'error', limitInputPixels: limitOf(opts) });
  return (opts.exifOrientation === false ? img : img.rotate())
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace('srgb');
}

async function runToRgb(img: sharp.Sharp, where: string, header: ImageHeader): Promise<RgbImage> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    const msg = (e as Error).message;
    throw new DecodeError(`${isTruncation(msg) ? 'truncated' : 'corrupt or truncated'} ${header.format} data (${firstLine(msg)}): ${where}`);
  }
  const { data, info } = out;
  if (info.channels !== 3) {
    // flatten + sRGB always give 3 bands; anything else is a libvips surprise worth naming.
    throw new DecodeError(`decoded to ${info.channels} channels, expected 3 (format ${header.format}): ${where}`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/** Decodes a file (path) or encoded bytes at full resolution: HWC RGB, orientation applied. */
export async function decodeImage(input: Input, opts: DecodeOptions = {}): Promise<RgbImage> {
  return (await decodeWithHeader(input, undefined, opts)).image;
}

/** Decodes an image already read in (readEncodedImage) at full resolution with sharp. */
export async function decodeEncoded(img: EncodedImage, opts: DecodeOptions = {}): Promise<RgbImage> {
  return runToRgb(pipeline(img.bytes, opts), img.where, img.header);
}

/**
 * The fast path: decode + orient + resize (shrink on load) in one sharp
 * pipeline, then pad to size × size. Returns the canvas, the letterbox and
 * the original (oriented) size, so a box on the canvas maps back with
 * `boxToOriginal(box, letterbox)`.
 */
export async function decodeLetterboxed(input: Input, size: number, opts: DecodeOptions = {}): Promise<LetterboxedImage> {
  const { image, header, plan } = await decodeWithHeader(input, size, opts);
  return { image, letterbox: plan!, width: header.width, height: header.height };
}

async function decodeWithHeader(input: Input, size: number | undefined, opts: DecodeOptions): Promise<{ image: RgbImage; header: ImageHeader; plan?: LetterboxPlan }> {
  const { bytes, where, header } = await readEncodedImage(input, opts);
  if (size === undefined) return { image: await runToRgb(pipeline(bytes, opts), where, header), header };
  const plan = planLetterbox(header.width, header.height, size);
  if (opts.jpegAddon !== false) {
    const fast = await addonLetterbox(bytes, header, plan, opts);
    if ('data' in fast) return { image: { data: fast.data, width: size, height: size }, header, plan };
  }
  // fit 'fill' with the planned size: sharp resizes each axis to exactly the
  // size computed here, so the letterbox is ours, not a second rounding.
  const resized = await runToRgb(pipeline(bytes, opts).resize(plan.resizedWidth, plan.resizedHeight, { fit: 'fill', kernel: RESIZE_KERNEL }), where, header);
  const image = { data: padTopLeft(resized.data, resized.width, resized.height, size), width: size, height: size };
  return { image, header, plan };
}

/**
 * Letterboxes a JPEG or PNG with casl's addon: the S × S canvas, or why the
 * addon declined (not built; another format; CMYK, ICC profile, 16-bit PNG,
 * a libjpeg or libpng warning such as truncated data), in which case sharp
 * decodes the file.
 */
export async function addonLetterbox(bytes: Uint8Array, header: ImageHeader, plan: LetterboxPlan, opts: DecodeOptions = {}): Promise<{ data: Uint8Array } | { declined: string }> {
  const placement = { canvasWidth: plan.size, canvasHeight: plan.size, width: plan.resizedWidth, height: plan.resizedHeight, flip: false, offsetX: 0, offsetY: 0 };
  return addonView(bytes, header, placement, opts);
}

/**
 * Where a view's pixels come from: the (oriented) image resized to width ×
 * height, mirrored left-right if `flip`, its top-left pixel at (offsetX,
 * offsetY) on a zeroed canvasWidth × canvasHeight canvas; what falls outside
 * is cropped. The letterbox is the case flip false, offsets 0.
 */
export interface ViewPlacement {
  canvasWidth: number;
  canvasHeight: number;
  width: number;
  height: number;
  flip: boolean;
  offsetX: number;
  offsetY: number;
}

/**
 * Decodes a JPEG or PNG straight into a view with casl's addon, in one call
 * on libuv's pool (decode with DCT scaling, antialiased resize, EXIF
 * orientation, flip, placement): the canvas, or why the addon declined, in
 * which case the caller decodes with sharp.
 */
export async function addonView(bytes: Uint8Array, header: ImageHeader, p: ViewPlacement, opts: DecodeOptions = {}): Promise<{ data: Uint8Array } | { declined: string }> {
  const addon = jpegAddon.addon;
  if (!addon) return { declined: jpegAddon.why };
  if (header.format !== 'jpeg' && header.format !== 'png') return { declined: `${header.format}: the addon decodes JPEG and PNG only` };
  const n = p.canvasWidth * p.canvasHeight * 3;
  const data = opts.canvases ? opts.canvases.take(n) : new Uint8Array(n);
  // An addon built before it cleared the canvas itself (a checkout whose
  // native/jpeg was not rebuilt) would leave a recycled canvas's old pixels.
  if (opts.canvases && addon.writesWholeCanvas !== true) data.fill(0);
  const orientation = opts.exifOrientation === false ? 1 : header.orientation;
  const declined = await new Promise<string | null>((resolve, reject) => {
    addon.view(bytes, data, p.canvasWidth, p.canvasHeight, p.width, p.height, orientation, header.storedWidth, header.storedHeight,
      p.flip ? 1 : 0, p.offsetX, p.offsetY, (err, why) => (err ? reject(err) : resolve(why)));
  });
  if (declined === null) return { data };
  opts.canvases?.give(data);
  return { declined };
}

/** Copies a w × h RGB image into the top-left of a zeroed size × size canvas. */
function padTopLeft(src: Uint8Array, w: number, h: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  if (w === size) {
    out.set(src.subarray(0, w * h * 3));
  } else {
    const row = w * 3;
    for (let y = 0; y < h; y++) out.set(src.subarray(y * row, (y + 1) * row), y * size * 3);
  }
  return out;
}

/** Letterboxes an already decoded image (e.g. after augmentation) to size × size. */
export async function letterboxImage(img: RgbImage, size: number): Promise<{ image: RgbImage; letterbox: LetterboxPlan }> {
  const plan = planLetterbox(img.width, img.height, size);
  let data: Uint8Array = img.data;
  if (plan.resizedWidth !== img.width || plan.resizedHeight !== img.height) {
    data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(plan.resizedWidth, plan.resizedHeight, { fit: 'fill', kernel: RESIZE_KERNEL })
      .raw()
      .toBuffer();
  }
  return {
    image: { data: padTopLeft(data, plan.resizedWidth, plan.resizedHeight, size), width: size, height: size },
    letterbox: plan,
  };
}

/**
 * HWC RGB bytes → float32 in [0, 1], the model's input layout. Writes into
 * `out` at `offset` (e.g. image b of a [B, S, S, 3] batch at b·S·S·3), or a
 * new array.
 */
export function toFloat32(img: RgbImage, out?: Float32Array, offset = 0): Float32Array {
  const n = img.width * img.height * 3;
  const dst = out ?? new Float32Array(n);
  if (offset + n > dst.length) throw new RangeError(`toFloat32: ${n} values at offset ${offset} do not fit in ${dst.length}`);
  // A table lookup (scale-bytes.ts): the division cost 0.5 ms a 128² image
  // on the loader's main thread, where every millisecond is data wait.
  scaleBytes(img.data, dst.subarray(offset, offset + n), n);
  return dst;
}

/** An image record after decoding: its fields, the pixels, and how they map to the original. */
export interface DecodedRecord extends ImageRecord {
  /** Original size, EXIF orientation applied (the size annotations are in). */
  width: number;
  height: number;
  /** S × S letterboxed canvas when a size was given, else the image at full resolution. */
  image: RgbImage;
  /** view = original · scale + offset; the identity at full resolution. */
  letterbox: Letterbox;
}

export interface DecodeImagesOptions extends DecodeOptions {
  /** Directory the records' `file_name`s are relative to. */
  root: string;
  /** Letterbox to size × size (the model side S); full resolution when absent. */
  size?: number;
  /** Images decoded at once; default min(4, cores). */
  concurrency?: number;
}

export function defaultDecodeConcurrency(): number {
  return Math.min(4, availableParallelism());
}

/** Decodes one image record; throws DecodeError with the reason. */
export async function decodeRecord(rec: ImageRecord, opts: DecodeImagesOptions): Promise<DecodedRecord> {
  if (typeof rec.file_name !== 'string' || rec.file_name === '') {
    throw new DecodeError(`record has no file_name (got ${JSON.stringify(rec).slice(0, 120)})`);
  }
  const file = path.resolve(opts.root, rec.file_name);
  const { image, header, plan } = await decodeWithHeader(file, opts.size, opts);
  const { width, height, orientation } = header;
  // A record that states a size (COCO images do) must match the decoded
  // image, or its boxes are in some other frame: detectron2 refuses these too.
  if ((rec.width !== undefined && rec.width !== width) || (rec.height !== undefined && rec.height !== height)) {
    const rotated = opts.exifOrientation !== false && orientation >= 5 && rec.width === header.storedWidth && rec.height === header.storedHeight;
    throw new DecodeError(
      `record says ${rec.width}×${rec.height} but the image decodes to ${width}×${height}: ${file}`
      + (rotated
        ? ` (EXIF orientation ${orientation} is applied; the record's size is of the stored, unrotated pixels: if the annotations are on those, decode with exifOrientation: false, else fix the record)`
        : '; fix the record or the file'),
    );
  }
  const letterbox: Letterbox = plan ? { scale: plan.scale, offsetX: plan.offsetX, offsetY: plan.offsetY } : { ...IDENTITY_LETTERBOX };
  return { ...rec, width, height, image, letterbox };
}

/**
 * Image records → decoded records, in input order, at most `concurrency`
 * images decoding at once. A bad image (missing, empty, not an image,
 * truncated, over the pixel limit) becomes an ErrorRecord with stage
 * 'decode' and the reason; error records from upstream pass through.
 *
 *     {image_id, file_name} → {image_id, file_name, width, height, image, letterbox}
 *
 * Example: `ingested.through(decodeImages({ root, size: 128, concurrency: 2 }))`
 */
export function decodeImages(opts: DecodeImagesOptions): Stage<OrError<ImageRecord>, OrError<DecodedRecord>> {
  if (opts.size !== undefined) planLetterbox(1, 1, opts.size);
  limitOf(opts);
  const concurrency = opts.concurrency ?? defaultDecodeConcurrency();
  return orderedMap<ImageRecord, DecodedRecord>(concurrency, (rec) => decodeRecord(rec, opts), { stage: 'decode' });
}
