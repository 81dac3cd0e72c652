// casl's decode addon making views (native/jpeg/jpeg_letterbox.c `view`):
// PNGs decoded pixel for pixel as sharp decodes them (before any resize),
// what it must leave to sharp declined; and the training loader's views
// (resize + EXIF orientation + flip + placement, crops included) against the
// TypeScript resampler (GeometricTransform.applyImage, the path makeSample
// takes) on sharp's full-resolution decode.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { GeometricTransform } from '../src/augment/geometric.js';
import { POLICIES, drawTransform } from '../src/augment/policy.js';
import { Rng } from '../src/augment/rng.js';
import { viewFromEncoded, wholePixelPlacement } from '../src/augment/sharp-resample.js';
import {
  type LetterboxedImage, type RgbImage, addonView, decodeImage, decodeLetterboxed, jpegDecoder, readEncodedImage, readImageHeader,
} from '../src/io/decode.js';
import { readPngHeader } from '../src/io/png-header.js';

const built = jpegDecoder().decoder === 'libjpeg-turbo addon';
const skip = built ? false : `the addon is not built (${jpegDecoder().detail}): images decode with sharp`;

/** A photo-like W × H image with `channels` bands: smooth fields, hard-edged blocks, grain; the 4th band sweeps every alpha. */
function photo(w: number, h: number, seed: number, channels = 3): Buffer {
  const raw = Buffer.alloc(w * h * channels);
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const block = ((x >> 4) + (y >> 4)) % 3 === 0;
    const i = (y * w + x) * channels;
    raw[i] = block ? 230 : Math.floor(127 + 100 * Math.sin(x / 13 + seed));
    raw[i + 1] = block ? 40 : Math.floor(127 + 100 * Math.cos(y / 11));
    raw[i + 2] = Math.min(255, Math.floor(((x + y) % 256) * 0.8 + rnd() * 40));
    if (channels === 4) raw[i + 3] = (x * 7 + y * 3) % 256;
  }
  return raw;
}

/** The addon's decode at full size (a canvas of the image's own size, no resize): the decoder's pixels alone. */
async function fullSize(buf: Buffer): Promise<{ data: Uint8Array } | { declined: string }> {
  const h = await readImageHeader(buf);
  return addonView(buf, h, { canvasWidth: h.width, canvasHeight: h.height, width: h.width, height: h.height, flip: false, offsetX: 0, offsetY: 0 });
}

/** IHDR colour type and interlace method, to show a test PNG is of the kind it claims. */
const pngKind = (b: Buffer) => ({ depth: b[24], colorType: b[25], interlace: b[28] });

t.test('PNGs decode pixel for pixel as sharp decodes them: the fixtures\' and every 8-bit colour type', { skip }, async (t) => {
  const sample = path.join(import.meta.dirname, '..', 'fixtures', 'sample', 'images');
  const fixtures = readdirSync(sample).flatMap((d) => readdirSync(path.join(sample, d)).filter((f) => f.endsWith('.png')).map((f) => path.join(sample, d, f)));
  t.ok(fixtures.length >= 10, `${fixtures.length} fixture PNGs`);
  const rgb = () => sharp(photo(97, 61, 1), { raw: { width: 97, height: 61, channels: 3 } });
  const rgba = () => sharp(photo(97, 61, 2, 4), { raw: { width: 97, height: 61, channels: 4 } });
  const made: [string, Buffer, { colorType: number; interlace?: number }][] = [
    ['RGB', await rgb().png().toBuffer(), { colorType: 2 }],
    ['RGBA, every alpha value', await rgba().png().toBuffer(), { colorType: 6 }],
    ['grayscale', await rgb().toColourspace('b-w').png().toBuffer(), { colorType: 0 }],
    ['grayscale + alpha', await rgba().toColourspace('b-w').png().toBuffer(), { colorType: 4 }],
    ['palette', await rgb().png({ palette: true, colours: 200 }).toBuffer(), { colorType: 3 }],
    ['palette + tRNS', await rgba().png({ palette: true, colours: 200 }).toBuffer(), { colorType: 3 }],
    ['palette, 2 colours (1 bit)', await rgb().png({ palette: true, colours: 2 }).toBuffer(), { colorType: 3 }],
    ['RGB, Adam7 interlaced', await rgb().png({ progressive: true }).toBuffer(), { colorType: 2, interlace: 1 }],
    ['RGBA, Adam7 interlaced', await rgba().png({ progressive: true }).toBuffer(), { colorType: 6, interlace: 1 }],
  ];
  const tRNS = made[5][1].includes(Buffer.from('tRNS'));
  t.ok(tRNS, 'the palette + alpha file carries tRNS');
  for (const [what, buf, kind] of made) t.match(pngKind(buf), kind, `${what}: the file is of that kind`);
  for (const [what, buf] of [...fixtures.map((f): [string, Buffer] => [path.basename(f), readFileSync(f)]), ...made.map(([w, b]): [string, Buffer] => [w, b])]) {
    const fast = await fullSize(buf);
    if (!('data' in fast)) {
      t.fail(`${what}: declined (${fast.declined})`);
      continue;
    }
    const viaSharp = await decodeImage(buf);
    t.ok(Buffer.from(fast.data).equals(Buffer.from(viaSharp.data)), `${what}: identical to sharp's decode`);
  }
});

t.test('PNGs the addon cannot decode as sharp does are declined, and sharp decodes them', { skip }, async (t) => {
  const raw = photo(80, 50, 3);
  const base = () => sharp(raw, { raw: { width: 80, height: 50, channels: 3 } });
  const good = await base().png().toBuffer();
  const idat = good.indexOf(Buffer.from('IDAT'));
  const badCrc = Buffer.from(good);
  badCrc[idat + 10] ^= 0xff;
  const files: [string, Buffer, RegExp][] = [
    ['16-bit', await base().toColourspace('rgb16').png().toBuffer(), /16-bit PNG/],
    ['Display P3 ICC profile', await base().withIccProfile('p3').png().toBuffer(), /ICC profile \(iCCP\)/],
    ['truncated', good.subarray(0, Math.floor(good.length * 0.6)), /libpng: /],
    ['corrupt image data', badCrc, /libpng: /],
  ];
  t.equal(pngKind(files[0][1]).depth, 16, 'the 16-bit file is 16-bit');
  for (const [what, buf, why] of files) {
    t.match(await fullSize(buf), { declined: why }, `${what}: declined`);
    const viaDefault = await decodeLetterboxed(buf, 32).catch((e: Error) => e.message);
    const viaSharp = await decodeLetterboxed(buf, 32, { jpegAddon: false }).catch((e: Error) => e.message);
    if (typeof viaSharp === 'string') t.equal(viaDefault, viaSharp, `${what}: the same error as sharp's (${viaSharp.slice(0, 60)}…)`);
    else t.same(Buffer.from((viaDefault as LetterboxedImage).image.data), Buffer.from(viaSharp.image.data), `${what}: decoded by sharp, byte for byte`);
  }
  // EXIF in a PNG (an eXIf chunk, orientation 6, written here: sharp's
  // withMetadata would add an sRGB iCCP too): the header comes from sharp,
  // orientation included, and the addon orients as sharp does.
  const tiff = Buffer.from([0x4d, 0x4d, 0, 0x2a, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
  const chunk = Buffer.concat([Buffer.from('eXIf'), tiff]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(tiff.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(chunk));
  const rotated = Buffer.concat([good.subarray(0, 33), head, chunk, crc, good.subarray(33)]);
  t.equal(readPngHeader(rotated), null, 'a PNG with EXIF: its header is left to sharp');
  const header = await readImageHeader(rotated);
  t.same([header.format, header.width, header.height, header.orientation], ['png', 50, 80, 6], 'sharp reads its orientation');
  const fast = await fullSize(rotated);
  t.ok('data' in fast && Buffer.from(fast.data).equals(Buffer.from((await decodeImage(rotated)).data)), 'oriented as sharp orients it, pixel for pixel');
});

/** `plain` (width × height, unflipped, at the origin) placed as `p` says: the view the addon must make. */
function placeView(plain: Uint8Array, p: NonNullable<ReturnType<typeof wholePixelPlacement>>): Uint8Array {
  const out = new Uint8Array(p.canvasWidth * p.canvasHeight * 3);
  for (let Y = 0; Y < p.canvasHeight; Y++) for (let X = 0; X < p.canvasWidth; X++) {
    const y = Y - p.offsetY;
    let x = X - p.offsetX;
    if (x < 0 || x >= p.width || y < 0 || y >= p.height) continue;
    if (p.flip) x = p.width - 1 - x;
    out.set(plain.subarray((y * p.width + x) * 3, (y * p.width + x) * 3 + 3), (Y * p.canvasWidth + X) * 3);
  }
  return out;
}

const meanDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
};

/** Footprint and content of a view against the reference: pixels differing in zero-ness, max and mean |Δ| inside. */
function compare(got: RgbImage, want: RgbImage, rect: [number, number, number, number]): { outside: number; max: number; mean: number } {
  let outside = 0;
  let max = 0;
  let sum = 0;
  let n = 0;
  for (let y = 0; y < got.height; y++) for (let x = 0; x < got.width; x++) {
    const i = (y * got.width + x) * 3;
    const inside = x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3];
    for (let c = 0; c < 3; c++) {
      if (!inside) {
        if (got.data[i + c] !== 0 || want.data[i + c] !== 0) outside++;
        continue;
      }
      const d = Math.abs(got.data[i + c] - want.data[i + c]);
      max = Math.max(max, d);
      sum += d;
      n++;
    }
  }
  return { outside, max, mean: n ? sum / n : 0 };
}

t.test('training views from the addon match the TypeScript resampler: placement, flips, crops, orientations', { skip }, async (t) => {
  const S = 128;
  const jpeg = (w: number, h: number, orientation?: number) => {
    let img = sharp(photo(w, h, w), { raw: { width: w, height: h, channels: 3 } });
    if (orientation) img = img.withMetadata({ orientation });
    return img.jpeg({ quality: 92 }).toBuffer();
  };
  const images: [string, Buffer][] = [
    ['PNG 247×267', await sharp(photo(247, 267, 5), { raw: { width: 247, height: 267, channels: 3 } }).png().toBuffer()],
    ['PNG 90×60 (enlarged)', await sharp(photo(90, 60, 6), { raw: { width: 90, height: 60, channels: 3 } }).png().toBuffer()],
    ['JPEG 306×212', await jpeg(306, 212)],
    ['JPEG 150×110, EXIF orientation 6', await jpeg(150, 110, 6)],
    ['JPEG 150×110, EXIF orientation 7', await jpeg(150, 110, 7)],
    ['JPEG 300×200, EXIF orientation 3', await jpeg(300, 200, 3)],
    ['JPEG 640×480 (DCT scaling)', await jpeg(640, 480)],
  ];
  let flips = 0;
  let crops = 0;
  for (const [what, buf] of images) {
    const enc = await readEncodedImage(buf);
    const full = await decodeImage(buf);
    for (const policy of POLICIES) {
      for (let seed = 0; seed < 6; seed++) {
        const g = drawTransform(policy, new Rng(seed), enc.header.width, enc.header.height, S).geometric;
        const p = wholePixelPlacement(g)!;
        t.ok(p, 'the policies draw whole-pixel placements');
        if (p.flip) flips++;
        if (p.offsetX < 0 || p.offsetY < 0 || p.offsetX + p.width > S || p.offsetY + p.height > S) crops++;
        const { view, decoder } = await viewFromEncoded(enc, g);
        const label = `${what}, ${policy} seed ${seed} (${p.width}×${p.height} at ${p.offsetX}, ${p.offsetY}${p.flip ? ', flipped' : ''})`;
        t.equal(decoder, 'addon', `${label}: the addon made it`);
        const again = await viewFromEncoded(enc, g);
        t.ok(Buffer.from(again.view.data).equals(Buffer.from(view.data)), `${label}: same bytes twice`);
        const r = compare(view, g.applyImage(full), g.contentRect());
        t.equal(r.outside, 0, `${label}: zero outside the image's footprint, as the TypeScript view`);
        const dct = Math.min(enc.header.width / p.width, enc.header.height / p.height) >= 2 && what.startsWith('JPEG');
        if (!dct) {
          // The same triangle filter on the same pixels: they differ by rounding.
          t.ok(r.max <= 1, `${label}: within rounding of the TypeScript resampler (max |Δ| ${r.max})`);
          continue;
        }
        // With DCT scaling (Pillow's draft mode) the addon resizes a reduced
        // decode, so the pixels depart from a full-resolution resize. The
        // view must be its plain resize to the same size, placed exactly;
        // and that resize (orientation 1: sharp orients at full size) no
        // further from the full-resolution one than sharp's shrink on load.
        const plainPlacement = { canvasWidth: p.width, canvasHeight: p.height, width: p.width, height: p.height, flip: false, offsetX: 0, offsetY: 0 };
        const plain = await addonView(enc.bytes, enc.header, plainPlacement);
        t.ok('data' in plain && Buffer.from(view.data).equals(Buffer.from(placeView(plain.data, p))), `${label}: DCT-scaled; exactly the plain resize, placed`);
        if (enc.header.orientation === 1 && 'data' in plain) {
          const ref = GeometricTransform.resize(full.width, full.height, p.width, p.height).applyImage(full).data;
          const viaSharp = await sharp(buf).resize(p.width, p.height, { fit: 'fill', kernel: 'linear' as keyof sharp.KernelEnum }).raw().toBuffer();
          const e = meanDiff(plain.data, ref);
          const es = meanDiff(viaSharp, ref);
          t.ok(e <= es + 0.25, `${label}: mean |Δ| from a full-resolution resize ${e.toFixed(2)}, sharp's shrink on load ${es.toFixed(2)}`);
        }
      }
    }
  }
  t.ok(flips > 10 && crops > 3, `the cases cover flips (${flips}) and crops (${crops})`);
});

t.test('files are read in one trip to the pool: the bytes fs reads, and fs\'s errors', { skip }, async (t) => {
  const png = path.join(import.meta.dirname, '..', 'fixtures', 'sample', 'images', 'labeled', 'labeled_000001.png');
  const enc = await readEncodedImage(png);
  t.ok(Buffer.from(enc.bytes).equals(readFileSync(png)), 'the same bytes as readFileSync');
  t.same([enc.where, enc.header.format], [png, 'png']);
  await t.rejects(readEncodedImage(path.dirname(png)), { message: /is a directory, not an image: .*labeled$/ });
  await t.rejects(readEncodedImage(`${png}.missing`), { message: /file not found: .*labeled_000001\.png\.missing/ });
});
