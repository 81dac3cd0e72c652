// Decoding odd images: each is made here (sharp, or a PNG written byte by
// byte), decoded, and checked pixel by pixel where the pixels are known.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import _ from 'highland';
import sharp from 'sharp';
import {
  type DecodedRecord, type RgbImage, decodeImage, decodeImages, decodeLetterboxed, letterboxImage, readImageHeader, toFloat32,
} from '../src/io/decode.js';
import { readJpegHeader } from '../src/io/jpeg-header.js';
import { boxToOriginal, boxToOriginalClipped, boxToView, planLetterbox } from '../src/io/letterbox.js';
import { type ErrorRecord, type ImageRecord, isErrorRecord } from '../src/records.js';

const dir = mkdtempSync(path.join(tmpdir(), 'casl-decode-'));

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A PNG from its parts: colorType 0 gray, 2 RGB, 3 palette; rows unfiltered. */
function png(width: number, height: number, bitDepth: number, colorType: number, rows: Uint8Array[], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const raw = Buffer.concat(rows.flatMap((r) => [Buffer.from([0]), Buffer.from(r)]));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...extra,
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

function px(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
}

function near(t: Tap.Test, got: number[], want: number[], tol: number, what: string): void {
  t.ok(got.every((v, k) => Math.abs(v - want[k]) <= tol), `${what}: got [${got}], want [${want}] ±${tol}`);
}

/** W × H RGB where the top-left 8 × 8 block is red and the rest green: the red block shows where the origin went. */
async function cornerJpeg(w: number, h: number, orientation: number): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const red = x < 8 && y < 8;
    raw.set(red ? [255, 0, 0] : [0, 255, 0], (y * w + x) * 3);
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).withMetadata({ orientation }).jpeg({ quality: 100 }).toBuffer();
}

t.test('EXIF orientation is applied: sizes swap and the stored origin lands where the viewer shows it', async (t) => {
  const W = 48;
  const H = 24;
  // Where the stored top-left 8×8 block appears once oriented (centre of the block).
  const cases: [number, number, number, number, number][] = [
    // orientation, oriented w, h, x, y
    [1, W, H, 4, 4],
    [3, W, H, W - 5, H - 5], // 180°
    [6, H, W, H - 5, 4], // 90° clockwise: top-left → top-right
    [8, H, W, 4, W - 5], // 90° counter-clockwise: top-left → bottom-left
  ];
  for (const [o, w, h, x, y] of cases) {
    const buf = await cornerJpeg(W, H, o);
    t.equal((await readImageHeader(buf)).orientation, o, `the file carries orientation ${o}`);
    const img = await decodeImage(buf);
    t.same([img.width, img.height], [w, h], `orientation ${o}: size`);
    near(t, px(img, x, y), [255, 0, 0], 40, `orientation ${o}: red block at (${x}, ${y})`);
    near(t, px(img, w - 1 - x, h - 1 - y), [0, 255, 0], 40, `orientation ${o}: green opposite`);
    const asStored = await decodeImage(buf, { exifOrientation: false });
    t.same([asStored.width, asStored.height], [W, H], `orientation ${o} not applied: stored size`);
    near(t, px(asStored, 4, 4), [255, 0, 0], 40, `orientation ${o} not applied: red block where it was stored`);
    // The fast path orients before resizing: the letterbox is of the oriented image.
    const lb = await decodeLetterboxed(buf, 24, {});
    t.same([lb.width, lb.height], [w, h], `orientation ${o}: letterboxed original size`);
    const v = boxToView([x, y, 0, 0], lb.letterbox);
    near(t, px(lb.image, Math.floor(v[0]), Math.floor(v[1])), [255, 0, 0], 60, `orientation ${o}: red block in the letterbox`);
  }
});

/** A JPEG with an APP1 EXIF segment, written by hand, put right after SOI. */
function withExif(jpeg: Buffer, orientation: number, little: boolean): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 + 4);
  const u16 = (v: number, o: number) => (little ? tiff.writeUInt16LE(v, o) : tiff.writeUInt16BE(v, o));
  const u32 = (v: number, o: number) => (little ? tiff.writeUInt32LE(v, o) : tiff.writeUInt32BE(v, o));
  tiff.write(little ? 'II' : 'MM', 0, 'latin1');
  u16(42, 2);
  u32(8, 4); // IFD0 right after the header
  u16(1, 8); // one entry
  u16(0x0112, 10); // Orientation
  u16(3, 12); // SHORT
  u32(1, 14);
  u16(orientation, 18);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const seg = Buffer.alloc(4);
  seg.writeUInt16BE(0xffe1, 0);
  seg.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), seg, payload, jpeg.subarray(2)]);
}

t.test('the JS JPEG header reader agrees with sharp (size, orientation) and defers the unusual', async (t) => {
  const raw = Buffer.alloc(40 * 24 * 3, 90);
  const base = sharp(raw, { raw: { width: 40, height: 24, channels: 3 } });
  const files: [string, Buffer][] = [
    ['baseline', await base.clone().jpeg().toBuffer()],
    ['progressive', await base.clone().jpeg({ progressive: true }).toBuffer()],
    ['4:4:4', await base.clone().jpeg({ chromaSubsampling: '4:4:4' }).toBuffer()],
    ['CMYK', await base.clone().toColourspace('cmyk').jpeg().toBuffer()],
    ['gray', await base.clone().toColourspace('b-w').jpeg().toBuffer()],
  ];
  for (let o = 1; o <= 8; o++) files.push([`sharp EXIF ${o}`, await base.clone().withMetadata({ orientation: o }).jpeg().toBuffer()]);
  const plain = files[0][1];
  for (const o of [3, 6, 8]) {
    files.push([`hand-made EXIF ${o}, little-endian`, withExif(plain, o, true)]);
    files.push([`hand-made EXIF ${o}, big-endian`, withExif(plain, o, false)]);
  }
  for (const [what, buf] of files) {
    const meta = await sharp(buf).metadata();
    t.same(readJpegHeader(buf), { width: meta.width, height: meta.height, orientation: meta.orientation ?? 1 }, what);
  }
  t.equal((await decodeImage(withExif(plain, 6, true))).width, 24, 'the decoder orients by the same tag');
  t.equal(readJpegHeader(plain.subarray(0, 30)), null, 'cut before the frame header: left to sharp');
  t.equal(readJpegHeader(Buffer.from('not a jpeg')), null);
});

t.test('CMYK JPEG is converted to sRGB', async (t) => {
  const red = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 220, g: 30, b: 30 } } })
    .toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
  t.equal((await sharp(red).metadata()).space, 'cmyk', 'the test file really is CMYK');
  const img = await decodeImage(red);
  t.equal(img.data.length, 16 * 16 * 3, '3 channels');
  const [r, g, b] = px(img, 8, 8);
  t.ok(r > 170 && g < 90 && b < 90, `red stays red: [${r}, ${g}, ${b}]`);
});

t.test('16-bit PNG (RGB and gray) is scaled to 8-bit', async (t) => {
  const rgb16 = new Uint8Array([0xff, 0xff, 0x00, 0x00, 0x80, 0x80, /* */ 0x00, 0x00, 0x40, 0x40, 0xff, 0xff]);
  const img = await decodeImage(png(2, 1, 16, 2, [rgb16]));
  t.same([img.width, img.height], [2, 1]);
  t.same(px(img, 0, 0), [255, 0, 128]);
  t.same(px(img, 1, 0), [0, 64, 255]);
  const gray16 = await decodeImage(png(2, 1, 16, 0, [new Uint8Array([0x12, 0x34, 0xc8, 0xc8])]));
  t.same(px(gray16, 0, 0), [0x12, 0x12, 0x12], 'gray 16 → 3 equal 8-bit channels');
  t.same(px(gray16, 1, 0), [0xc8, 0xc8, 0xc8]);
});

t.test('palette PNG with transparency: alpha composited over black', async (t) => {
  const plte = chunk('PLTE', new Uint8Array([255, 255, 255, 0, 200, 0, 255, 255, 255]));
  const trns = chunk('tRNS', new Uint8Array([0, 255, 128])); // index 0 transparent white, 1 opaque green, 2 half white
  const img = await decodeImage(png(3, 1, 8, 3, [new Uint8Array([0, 1, 2])], [plte, trns]));
  t.same(px(img, 0, 0), [0, 0, 0], 'transparent → black, not the palette colour');
  t.same(px(img, 1, 0), [0, 200, 0], 'opaque kept');
  near(t, px(img, 2, 0), [128, 128, 128], 1, 'half transparent white → half grey');
});

t.test('grayscale becomes 3 equal channels', async (t) => {
  const img = await decodeImage(png(2, 2, 8, 0, [new Uint8Array([0, 77]), new Uint8Array([200, 255])]));
  t.same(Array.from(img.data), [0, 0, 0, 77, 77, 77, 200, 200, 200, 255, 255, 255]);
});

t.test('WebP (lossless) decodes exactly', async (t) => {
  const raw = new Uint8Array(4 * 3 * 3).map((_, i) => (i * 37) % 256);
  const webp = await sharp(raw, { raw: { width: 4, height: 3, channels: 3 } }).webp({ lossless: true }).toBuffer();
  t.equal((await readImageHeader(webp)).format, 'webp');
  const img = await decodeImage(webp);
  t.same([img.width, img.height], [4, 3]);
  t.same(Array.from(img.data), Array.from(raw));
});

t.test('bad files are refused with the reason and the file', async (t) => {
  const noise = Buffer.from(new Uint8Array(256 * 192 * 3).map((_, i) => (i * 7919) % 251));
  const good = await sharp(noise, { raw: { width: 256, height: 192, channels: 3 } }).jpeg().toBuffer();
  const goodPng = await sharp(noise, { raw: { width: 256, height: 192, channels: 3 } }).png().toBuffer();
  const files: Record<string, Buffer> = {
    'truncated.jpg': good.subarray(0, Math.floor(good.length * 0.6)),
    'truncated.png': goodPng.subarray(0, Math.floor(goodPng.length * 0.6)),
    'header-only.jpg': (await cornerJpeg(64, 48, 6)).subarray(0, 100),
    'empty.jpg': Buffer.alloc(0),
    'text.jpg': Buffer.from('this is not a JPEG, it is a text file\n'),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes);
  await t.rejects(decodeImage(path.join(dir, 'truncated.jpg')), { name: 'DecodeError', message: /truncated jpeg data \(.*Premature end.*\): .*truncated\.jpg/ });
  await t.rejects(decodeLetterboxed(path.join(dir, 'truncated.jpg'), 16), { message: /truncated jpeg data.*truncated\.jpg/ }, 'also with shrink on load');
  await t.rejects(decodeImage(path.join(dir, 'truncated.png')), { message: /truncated png data.*truncated\.png/ });
  await t.rejects(decodeImage(path.join(dir, 'header-only.jpg')), { message: /truncated image, header unreadable.*header-only\.jpg/ });
  await t.rejects(decodeImage(path.join(dir, 'empty.jpg')), { message: /empty file \(0 bytes\).*empty\.jpg/ });
  await t.rejects(decodeImage(path.join(dir, 'text.jpg')), { message: /not an image sharp can decode .*starts with text "this is ".*text\.jpg/ });
  await t.rejects(decodeImage(path.join(dir, 'missing.jpg')), { message: /file not found: .*missing\.jpg/ });
});

t.test('a PNG header claiming 50000×50000 is refused by the pixel limit before decoding', async (t) => {
  // A valid IHDR for 50000×50000 RGB and one tiny IDAT: 60-odd bytes that would decode to 7.5 GB.
  const bomb = png(50000, 50000, 8, 2, [new Uint8Array(3)]);
  t.ok(bomb.length < 100, `the file is tiny (${bomb.length} bytes)`);
  const file = path.join(dir, 'bomb.png');
  writeFileSync(file, bomb);
  const before = process.memoryUsage().rss;
  await t.rejects(decodeImage(file), { message: /50000×50000 = 2\.50e\+9 pixels, over the pixel limit of 1\.00e\+8.*bomb\.png.*raise maxPixels/ });
  await t.rejects(decodeLetterboxed(file, 128), { message: /over the pixel limit/ });
  await t.rejects(decodeImage(file, { maxPixels: 3e9 }), { message: /bomb\.png/ }, 'even allowed, the missing data is an error, not a hang');
  t.ok(process.memoryUsage().rss - before < 200e6, 'nothing near the claimed size was allocated');
  // The limit is configurable either way.
  const small = await cornerJpeg(100, 100, 1);
  await t.rejects(decodeImage(small, { maxPixels: 5000 }), { message: /100×100 = 1\.00e\+4 pixels, over the pixel limit of 5\.00e\+3/ });
  t.equal((await decodeImage(small, { maxPixels: 10000 })).width, 100);
  // A file too large for any image within the limit is not even read in.
  const big = path.join(dir, 'big.jpg');
  writeFileSync(big, Buffer.concat([small, Buffer.alloc(2 ** 20 + 50_000)]));
  await t.rejects(decodeImage(big, { maxPixels: 10000 }), { message: /file is 1 MB, more than an image within the pixel limit can need \(1 MB\): .*big\.jpg/ });
});

t.test('letterbox: long side S, top-left, zero padding, boxes map back exactly', async (t) => {
  for (const [w, h] of [[640, 480], [480, 640], [333, 517], [1000, 3], [7, 7]]) {
    const p = planLetterbox(w, h, 128);
    t.equal(Math.max(p.resizedWidth, p.resizedHeight), 128, `${w}×${h}: long side is S`);
    t.same([p.offsetX, p.offsetY], [0, 0]);
    for (const box of [[0, 0, w, h], [12.5, 3.25, 40.75, 2], [w / 3, h / 7, w / 5, h / 11]]) {
      const back = boxToOriginal(boxToView(box, p), p);
      t.ok(back.every((v, i) => Math.abs(v - box[i]) < 1e-9 * Math.max(w, h)), `${w}×${h}: [${box}] round trip`);
    }
  }
  t.throws(() => planLetterbox(0, 10, 128), RangeError, 'an empty image has no letterbox');
  t.throws(() => planLetterbox(10, 10, 12.5), RangeError, 'S is a whole number of pixels');
  // On pixels: a white rectangle in a 333×517 photo; its box found on the
  // 128 × 128 canvas and mapped back lands on the drawn box within one
  // original pixel per view pixel (1/scale).
  const W = 333;
  const H = 517;
  const box = [100, 200, 150, 120];
  const raw = Buffer.alloc(W * H * 3, 40);
  for (let y = box[1]; y < box[1] + box[3]; y++) raw.fill(255, (y * W + box[0]) * 3, (y * W + box[0] + box[2]) * 3);
  const file = path.join(dir, 'rect.png');
  await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).png().toFile(file);
  const lb = await decodeLetterboxed(file, 128);
  t.same([lb.width, lb.height, lb.image.width, lb.image.height], [W, H, 128, 128]);
  let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
    if (px(lb.image, x, y)[0] > 150) {
      x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x + 1); y2 = Math.max(y2, y + 1);
    }
  }
  const found = boxToOriginal([x1, y1, x2 - x1, y2 - y1], lb.letterbox);
  const tol = 1 / lb.letterbox.scale;
  t.ok(found.every((v, i) => Math.abs(v - box[i]) <= tol), `found [${found.map((v) => v.toFixed(1))}] ≈ drawn [${box}] within ${tol.toFixed(2)} px`);
  // Padding right of the content is zero; the content's last column is not.
  const contentW = lb.letterbox.resizedWidth;
  t.equal(contentW, Math.round(W * 128 / H));
  t.same(px(lb.image, contentW, 64), [0, 0, 0], 'first padding column is black');
  t.same(px(lb.image, 127, 127), [0, 0, 0]);
  near(t, px(lb.image, contentW - 1, 5), [40, 40, 40], 2, 'last content column is the photo');
  t.same(boxToOriginalClipped([-5, -5, 200, 200], lb.letterbox, W, H), [0, 0, W, H], 'clipped to the image');
  // Letterboxing an already decoded image gives the same plan, and the
  // pixels of the one-pipeline sharp path (the addon's PNG path resizes with
  // Pillow's filter instead: test/decode-view.test.ts).
  const again = await letterboxImage(await decodeImage(file), 128);
  t.same(again.letterbox, lb.letterbox);
  const viaSharp = await decodeLetterboxed(file, 128, { jpegAddon: false });
  t.ok(Buffer.from(again.image.data).equals(Buffer.from(viaSharp.image.data)), 'same pixels as the one-pipeline sharp path');
});

t.test('toFloat32 writes [0, 1] into a batch at an offset', async (t) => {
  const img = { data: new Uint8Array([0, 51, 255]), width: 1, height: 1 };
  const batch = new Float32Array(6);
  toFloat32(img, batch, 3);
  t.same(Array.from(batch), [0, 0, 0, 0, 0.2, 1].map(Math.fround));
  t.throws(() => toFloat32(img, batch, 4), RangeError);
});

t.test('decodeImages: one record per good image, one error record per bad one, in order', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'casl-decode-stage-'));
  writeFileSync(path.join(root, 'a.jpg'), await cornerJpeg(64, 32, 1));
  writeFileSync(path.join(root, 'b.png'), png(2, 2, 8, 0, [new Uint8Array([1, 2]), new Uint8Array([3, 4])]));
  writeFileSync(path.join(root, 'c.jpg'), await cornerJpeg(40, 20, 6));
  writeFileSync(path.join(root, 'bad.jpg'), Buffer.from('nope'));
  writeFileSync(path.join(root, 'zero.jpg'), Buffer.alloc(0));
  const upstream: ErrorRecord = { error: 'line 9: invalid JSON', stage: 'parse', line: 9 };
  const input: (ImageRecord | ErrorRecord)[] = [
    { image_id: 1, file_name: 'a.jpg', extra: 'kept' } as ImageRecord,
    { image_id: 2, file_name: 'bad.jpg' },
    upstream,
    { image_id: 3, file_name: 'b.png', width: 2, height: 2 },
    { image_id: 4, file_name: 'gone.jpg' },
    { image_id: 5, file_name: 'zero.jpg' },
    { image_id: 6, file_name: 'c.jpg', width: 40, height: 20 }, // stored size; the oriented image is 20×40
    { image_id: 7, file_name: 'c.jpg' },
  ];
  const out = (await _(input).through(decodeImages({ root, size: 32, concurrency: 3 })).collect().toPromise(Promise)) as (DecodedRecord | ErrorRecord)[];
  t.equal(out.length, input.length, 'nothing dropped, nothing added');
  t.same(out.map((r) => (isErrorRecord(r) ? `E:${r.stage}` : (r as DecodedRecord).image_id)), [1, 'E:decode', 'E:parse', 3, 'E:decode', 'E:decode', 'E:decode', 7]);
  const a = out[0] as DecodedRecord & { extra: string };
  t.same([a.width, a.height, a.image.width, a.image.height, a.extra], [64, 32, 32, 32, 'kept']);
  t.same(a.letterbox, { scale: 0.5, offsetX: 0, offsetY: 0 });
  t.equal(out[2], upstream, 'upstream error passes through untouched');
  const errs = out.filter((r): r is ErrorRecord => isErrorRecord(r) && r.stage === 'decode');
  t.match(errs[0], { file_name: 'bad.jpg', image_id: 2, error: /not an image/ });
  t.match(errs[1], { file_name: 'gone.jpg', image_id: 4, error: /file not found/ });
  t.match(errs[2], { file_name: 'zero.jpg', image_id: 5, error: /empty file/ });
  t.match(errs[3], { file_name: 'c.jpg', image_id: 6, error: /record says 40×20 but the image decodes to 20×40.*EXIF orientation 6/ });
  t.same([(out[7] as DecodedRecord).width, (out[7] as DecodedRecord).height], [20, 40]);

  // Annotations made on the stored pixels: decode them as stored.
  const stored = (await _([input[6]]).through(decodeImages({ root, size: 32, exifOrientation: false })).collect().toPromise(Promise)) as DecodedRecord[];
  t.same([stored[0].width, stored[0].height, stored[0].letterbox.scale], [40, 20, 0.8], 'exifOrientation false: the stored 40×20');

  const full = (await _([{ image_id: 1, file_name: 'a.jpg' }]).through(decodeImages({ root })).collect().toPromise(Promise)) as DecodedRecord[];
  t.same([full[0].image.width, full[0].image.height, full[0].letterbox.scale], [64, 32, 1], 'no size: full resolution, identity letterbox');
  t.throws(() => decodeImages({ root, size: 0 }), RangeError);
});
