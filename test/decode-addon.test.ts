// casl's libjpeg-turbo addon (native/jpeg/jpeg_letterbox.c) against the sharp
// path it stands in for and against a reference resize written here: the
// same letterbox as sharp; Pillow's antialiased bilinear exactly where no
// DCT scaling is involved, and no further from a full-resolution resize than
// sharp's shrink on load where it is; EXIF orientations included. What it
// must leave to sharp (CMYK, non-sRGB ICC profiles, broken data) is declined,
// so those decode exactly as before.
import t from 'tap';
import sharp from 'sharp';
import {
  type LetterboxedImage, type RgbImage, addonLetterbox, decodeImage, decodeLetterboxed, jpegDecoder, readImageHeader,
} from '../src/io/decode.js';
import { planLetterbox } from '../src/io/letterbox.js';

const built = jpegDecoder().decoder === 'libjpeg-turbo addon';
const skip = built ? false : `the addon is not built (${jpegDecoder().detail}): JPEGs decode with sharp`;

/** A photo-like W × H RGB: smooth colour field, hard-edged blocks, grain. */
function photo(w: number, h: number, seed: number): Buffer {
  const raw = Buffer.alloc(w * h * 3);
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const block = ((x >> 5) + (y >> 5)) % 3 === 0;
    const i = (y * w + x) * 3;
    raw[i] = block ? 230 : Math.floor(127 + 100 * Math.sin(x / 23 + seed));
    raw[i + 1] = block ? 40 : Math.floor(127 + 100 * Math.cos(y / 17));
    raw[i + 2] = Math.min(255, Math.floor(((x + y) % 256) * 0.8 + rnd() * 40));
  }
  return raw;
}

async function jpeg(w: number, h: number, opts: { orientation?: number; chroma?: string; progressive?: boolean; gray?: boolean } = {}): Promise<Buffer> {
  let img = sharp(photo(w, h, w + h), { raw: { width: w, height: h, channels: 3 } });
  if (opts.gray) img = img.toColourspace('b-w');
  if (opts.orientation) img = img.withMetadata({ orientation: opts.orientation });
  return img.jpeg({ quality: 90, chromaSubsampling: opts.chroma ?? '4:2:0', progressive: opts.progressive ?? false }).toBuffer();
}

/**
 * The reference: Pillow's antialiased bilinear (a triangle filter widened by
 * the reduction factor), separable, in float64, on the full-resolution decode.
 */
function triangleResize(img: RgbImage, dw: number, dh: number): Float64Array {
  const taps = (n: number, out: number) => Array.from({ length: out }, (_, o) => {
    const scale = n / out;
    const fs = Math.max(scale, 1);
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - fs + 0.5));
    const hi = Math.min(n, Math.floor(center + fs + 0.5));
    const w = Array.from({ length: hi - lo }, (_, k) => Math.max(0, 1 - Math.abs((k + lo - center + 0.5) / fs)));
    const total = w.reduce((a, b) => a + b, 0);
    return { lo, w: w.map((v) => v / total) };
  });
  const tx = taps(img.width, dw);
  const ty = taps(img.height, dh);
  const mid = new Float64Array(img.height * dw * 3);
  for (let y = 0; y < img.height; y++) for (let x = 0; x < dw; x++) for (let c = 0; c < 3; c++) {
    let v = 0;
    tx[x].w.forEach((w, k) => { v += w * img.data[(y * img.width + tx[x].lo + k) * 3 + c]; });
    mid[(y * dw + x) * 3 + c] = v;
  }
  const out = new Float64Array(dw * dh * 3);
  for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) for (let c = 0; c < 3; c++) {
    let v = 0;
    ty[y].w.forEach((w, k) => { v += w * mid[((ty[y].lo + k) * dw + x) * 3 + c]; });
    out[(y * dw + x) * 3 + c] = v;
  }
  return out;
}

/** Mean and max |difference| of the letterboxed content from the reference. */
function error(lb: LetterboxedImage, ref: Float64Array): { max: number; mean: number } {
  const { resizedWidth: rw, resizedHeight: rh, size } = lb.letterbox;
  let max = 0;
  let sum = 0;
  for (let y = 0; y < rh; y++) for (let i = 0; i < rw * 3; i++) {
    const d = Math.abs(lb.image.data[y * size * 3 + i] - ref[y * rw * 3 + i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / (rw * rh * 3) };
}

t.test('the addon letterboxes with the right geometry and an antialiased resize, as well as the sharp path', { skip }, async (t) => {
  const cases: [string, number, number, number, Parameters<typeof jpeg>[2]][] = [
    ['640×480 → 128 (1/4 DCT scale, then 1.25×)', 640, 480, 128, {}],
    ['480×640 portrait', 480, 640, 128, {}],
    ['333×517, odd sizes (1/2 DCT scale)', 333, 517, 128, {}],
    ['2560×1920 (1/8 DCT scale)', 2560, 1920, 128, {}],
    ['256×192 → 128 (exactly 2×: the filter, no DCT scale)', 256, 192, 128, {}],
    ['1000×30, very wide', 1000, 30, 128, {}],
    ['64×40 → 128: enlarged', 64, 40, 128, {}],
    ['4:4:4', 640, 480, 128, { chroma: '4:4:4' }],
    ['progressive', 640, 480, 128, { progressive: true }],
    ['grayscale', 640, 480, 128, { gray: true }],
    ['333×517 → 300 (1.7×: the filter alone)', 333, 517, 300, {}],
  ];
  cases.push(['320×200 → 96, the orientations\' image unrotated', 320, 200, 96, {}]);
  for (const [what, w, h, size, opts] of cases) {
    const buf = await jpeg(w, h, opts);
    const header = await readImageHeader(buf);
    const plan = planLetterbox(header.width, header.height, size);
    t.ok('data' in await addonLetterbox(buf, header, plan), `${what}: the addon takes it`);
    const fast = await decodeLetterboxed(buf, size);
    const viaSharp = await decodeLetterboxed(buf, size, { jpegAddon: false });
    t.same([fast.width, fast.height, fast.letterbox], [viaSharp.width, viaSharp.height, viaSharp.letterbox], `${what}: same size and letterbox as sharp`);
    // Full resolution, oriented: sharp's decode (libjpeg-turbo, as the addon's).
    const ref = triangleResize(await decodeImage(buf), plan.resizedWidth, plan.resizedHeight);
    const e = error(fast, ref);
    const es = error(viaSharp, ref);
    if (Math.max(header.width / plan.resizedWidth, header.height / plan.resizedHeight) < 2) {
      t.ok(e.max <= 1, `${what}: no DCT scaling, so the reference's pixels within rounding (max ${e.max.toFixed(2)})`);
    } else {
      // DCT scaling (draft mode) departs from a full-resolution resize; by no more than sharp's shrink on load does.
      t.ok(e.mean <= es.mean + 0.25, `${what}: mean error from a full-resolution resize ${e.mean.toFixed(2)}, sharp's ${es.mean.toFixed(2)}`);
    }
    const { resizedWidth: rw, resizedHeight: rh } = fast.letterbox;
    let pad = 0;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      if (x >= rw || y >= rh) for (let c = 0; c < 3; c++) pad += fast.image.data[(y * size + x) * 3 + c];
    }
    t.equal(pad, 0, `${what}: the padding is zero`);
  }
  // An orientation permutes the pixels, so the error from the reference
  // (resized after sharp orients the full-resolution image) is the unrotated
  // image's. (sharp itself gives up shrink on load to orient: less error, far
  // more CPU, so it is no yardstick here.) Any mix-up of the eight is tens of levels off.
  const upright = await jpeg(320, 200);
  const uprightError = error(await decodeLetterboxed(upright, 96), triangleResize(await decodeImage(upright), 96, 60)).mean;
  for (let o = 2; o <= 8; o++) {
    const buf = await jpeg(320, 200, { orientation: o });
    if (o === 2) {
      // sharp's withMetadata tags the file with its sRGB profile; sRGB to sRGB needs no conversion, so the addon takes it.
      const icc = (await sharp(buf).metadata()).icc ?? Buffer.alloc(0);
      t.ok(icc.includes(Buffer.from('\0s\0R\0G\0B', 'latin1')), 'the file carries an ICC profile described (UTF-16) as sRGB');
      const header = await readImageHeader(buf);
      t.ok('data' in await addonLetterbox(buf, header, planLetterbox(header.width, header.height, 96)), 'an sRGB profile: the addon takes it');
    }
    const lb = await decodeLetterboxed(buf, 96);
    const { resizedWidth: rw, resizedHeight: rh } = lb.letterbox;
    t.same([lb.width, lb.height, rw, rh], o >= 5 ? [200, 320, 60, 96] : [320, 200, 96, 60], `EXIF orientation ${o}: oriented size`);
    const e = error(lb, triangleResize(await decodeImage(buf), rw, rh)).mean;
    t.ok(Math.abs(e - uprightError) < 0.05, `EXIF orientation ${o}: mean error from the oriented reference ${e.toFixed(3)}, unrotated ${uprightError.toFixed(3)}`);
  }
  // exifOrientation false: the stored pixels.
  const rotated = await jpeg(320, 200, { orientation: 6 });
  const stored = await decodeLetterboxed(rotated, 96, { exifOrientation: false });
  t.same([stored.width, stored.height], [320, 200], 'exifOrientation false: the stored size');
  const ref = triangleResize(await decodeImage(rotated, { exifOrientation: false }), 96, 60);
  const viaSharp = await decodeLetterboxed(rotated, 96, { exifOrientation: false, jpegAddon: false });
  t.ok(error(stored, ref).mean <= error(viaSharp, ref).mean + 0.25, 'exifOrientation false: the stored pixels');
});

t.test('what the addon cannot decode as sharp does is declined and decoded by sharp', { skip }, async (t) => {
  const raw = photo(160, 120, 3);
  const base = () => sharp(raw, { raw: { width: 160, height: 120, channels: 3 } });
  const good = await base().jpeg().toBuffer();
  const sos = good.indexOf(Buffer.from([0xff, 0xda]));
  const files: [string, Buffer, RegExp][] = [
    ['CMYK', await base().toColourspace('cmyk').jpeg().toBuffer(), /colour space .*CMYK/],
    ['Display P3 ICC profile', await base().withIccProfile('p3').jpeg().toBuffer(), /ICC profile that is not sRGB/],
    ['extraneous bytes before a marker (a libjpeg warning)', Buffer.concat([good.subarray(0, sos), Buffer.from([0x00, 0x00]), good.subarray(sos)]), /libjpeg: Corrupt JPEG data: 2 extraneous bytes before marker 0xda/],
  ];
  for (const [what, buf, why] of files) {
    const header = await readImageHeader(buf);
    const plan = planLetterbox(header.width, header.height, 64);
    t.match(await addonLetterbox(buf, header, plan), { declined: why }, `${what}: declined`);
    const viaDefault = await decodeLetterboxed(buf, 64);
    const viaSharp = await decodeLetterboxed(buf, 64, { jpegAddon: false });
    t.same(Buffer.from(viaDefault.image.data), Buffer.from(viaSharp.image.data), `${what}: decoded by sharp, byte for byte`);
  }
  const truncated = good.subarray(0, Math.floor(good.length * 0.6));
  const header = await readImageHeader(truncated);
  t.match(await addonLetterbox(truncated, header, planLetterbox(160, 120, 64)), { declined: /libjpeg: Premature end of JPEG file/ }, 'truncated: declined');
  await t.rejects(decodeLetterboxed(truncated, 64), { message: /truncated jpeg data/ }, 'truncated: sharp words the error');
  const lying = { ...header, storedWidth: 161, width: 161 };
  t.match(await addonLetterbox(good, lying, planLetterbox(161, 120, 64)), { declined: /libjpeg reads 160×120, the header said 161×120/ }, 'a header the decoder disagrees with: declined');
});

// decodeImages may hand the addon a recycled canvas (CanvasPool): the view
// must not depend on what the buffer held, padding included.
t.test('a recycled canvas gives the same letterbox as a new one', { skip }, async (t) => {
  const { CanvasPool } = await import('../src/io/decode.js');
  const S = 96;
  const pool = new CanvasPool(1);
  const garbage = new Uint8Array(S * S * 3).fill(0xab);
  const cases: [string, Buffer][] = [
    ['wide JPEG (padding below)', await jpeg(200, 90)],
    ['tall JPEG with orientation 6 (padding right)', await jpeg(90, 200, { orientation: 6 })],
    ['small PNG, upscaled', await sharp(photo(40, 30, 3), { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer()],
  ];
  for (const [what, bytes] of cases) {
    const header = await readImageHeader(bytes);
    const plan = planLetterbox(header.width, header.height, S);
    const fresh = await addonLetterbox(bytes, header, plan);
    pool.give(garbage.fill(0xab));
    const recycled = await addonLetterbox(bytes, header, plan, { canvases: pool });
    t.ok('data' in fresh && 'data' in recycled, `${what}: decoded by the addon`);
    if (!('data' in fresh) || !('data' in recycled)) continue;
    t.equal(recycled.data, garbage, `${what}: the pool's canvas was used`);
    t.ok(Buffer.from(recycled.data).equals(Buffer.from(fresh.data)), `${what}: same bytes as a new canvas`);
  }
});
