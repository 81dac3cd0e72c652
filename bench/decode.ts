// casl bench decode: decode + letterbox throughput of 640×480 JPEGs to
// 128×128 through the decodeImages stage at concurrency 1 and 2, Pillow
// doing the same job side by side (when /usr/bin/python3 has PIL; casl never
// needs Python), and the peak RSS of `casl ingest` over 20,000 files. casl
// letterboxes these JPEGs with its libjpeg-turbo addon when it is built
// (jpeg_decoder says which); the sharp path runs beside it at concurrency 2,
// so the addon's gain is measured in the same rounds. The same images as
// PNGs (how a third of the fixtures are stored) go through the same rounds,
// addon and sharp path and Pillow; and training views (the weak policy's
// resize + flip, as the loader makes them) of the JPEGs and PNGs, the addon's
// one call against the sharp path's decode + resize, for CPU per image.
//
// Rounds interleave casl c1, casl c2 and Pillow, so load from elsewhere on
// the machine hits all three alike; each figure is the best round. CPU time
// per image is reported too: on a shared machine it is the steadier
// comparison, since a process with more threads (casl's decode runs on
// libuv's and libvips' threads) gets a larger share of contended cores.
// Pillow gets its fastest comparable path: draft mode (libjpeg DCT scaling,
// as sharp's shrink on load), bilinear resize, paste into a zero canvas,
// np.asarray: the same HWC uint8 casl produces, with the same kind of resize.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import _ from 'highland';
import sharp from 'sharp';
import type { Benchmark } from './benchmark.js';
import { PROJECT_ROOT } from '../src/cli/options.js';
import { Rng } from '../src/fixtures/prng.js';
import { drawTransform } from '../src/augment/policy.js';
import { Rng as AugmentRng } from '../src/augment/rng.js';
import { viewFromEncoded } from '../src/augment/sharp-resample.js';
import { decodeImages, jpegDecoder, readEncodedImage } from '../src/io/decode.js';
import type { OrError } from '../src/streams/stage.js';
import { type ImageRecord, isErrorRecord } from '../src/records.js';

const W = 640;
const H = 480;
const S = 128;
const PYTHON = '/usr/bin/python3';
const TIME = '/usr/bin/time';

/**
 * Photo-like 640×480 JPEGs: a smooth random colour field (sky, walls),
 * a few hard-edged shapes (objects), grain; quality 75–95, some 4:4:4.
 */
async function makePhotos(dir: string, n: number): Promise<{ files: string[]; meanKb: number }> {
  const rng = new Rng(7);
  const r = () => rng.next();
  const files: string[] = [];
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const lw = 4 + Math.floor(r() * 16);
    const lh = 3 + Math.floor(r() * 12);
    const low = Buffer.alloc(lw * lh * 3);
    for (let i = 0; i < low.length; i++) low[i] = Math.floor(r() * 256);
    const field = await sharp(low, { raw: { width: lw, height: lh, channels: 3 } }).resize(W, H, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    const grain = 10 + r() * 40;
    for (let i = 0; i < field.length; i++) field[i] = Math.max(0, Math.min(255, field[i] + (r() - 0.5) * grain));
    const shapes = Array.from({ length: 2 + Math.floor(r() * 6) }, () => {
      const w = 20 + Math.floor(r() * 200);
      const h = 20 + Math.floor(r() * 200);
      const fill = `rgb(${Math.floor(r() * 256)},${Math.floor(r() * 256)},${Math.floor(r() * 256)})`;
      const svg = r() < 0.5
        ? `<svg width="${w}" height="${h}"><ellipse cx="${w / 2}" cy="${h / 2}" rx="${w / 2}" ry="${h / 2}" fill="${fill}"/></svg>`
        : `<svg width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="${fill}" stroke="black" stroke-width="3"/></svg>`;
      return { input: Buffer.from(svg), left: Math.floor(r() * (W - w)), top: Math.floor(r() * (H - h)) };
    });
    const file = `photo-${String(k).padStart(4, '0')}.jpg`;
    const flat = await sharp(field, { raw: { width: W, height: H, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    await sharp(flat).composite(shapes)
      .jpeg({ quality: 75 + Math.floor(r() * 21), chromaSubsampling: r() < 0.2 ? '4:4:4' : '4:2:0' })
      .toFile(path.join(dir, file));
    bytes += statSync(path.join(dir, file)).size;
    files.push(file);
  }
  return { files, meanKb: bytes / n / 1024 };
}

/** Decodes `passes` passes of `files` through decodeImages; any error record fails the benchmark. */
async function caslDecode(root: string, files: string[], passes: number, concurrency: number, jpegAddon = true): Promise<void> {
  const records: ImageRecord[] = [];
  for (let p = 0; p < passes; p++) files.forEach((file_name, i) => records.push({ image_id: p * files.length + i + 1, file_name }));
  await new Promise<void>((resolve, reject) => {
    _<OrError<ImageRecord>>(records)
      .through(decodeImages({ root, size: S, concurrency, jpegAddon }))
      .stopOnError(reject)
      .each((r) => {
        if (isErrorRecord(r)) reject(new Error(`bench decode: ${r.file_name}: ${r.error}`));
      })
      .done(resolve);
  });
}

/**
 * Training views of `files` (the weak policy, seeded per image, S × S), at
 * most `concurrency` at once, as the loader makes them; fails if the addon
 * was asked for and did not make every one.
 */
async function viewRun(root: string, files: string[], passes: number, concurrency: number, useAddon: boolean): Promise<Run> {
  const n = files.length * passes;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) {
      const enc = await readEncodedImage(path.join(root, files[i % files.length]));
      const g = drawTransform('weak', new AugmentRng(i), enc.header.width, enc.header.height, S).geometric;
      const { decoder } = await viewFromEncoded(enc, g, useAddon);
      if (useAddon && decoder !== 'addon' && jpegDecoder().decoder !== 'sharp') throw new Error(`bench decode: the addon declined ${files[i % files.length]}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const c = process.cpuUsage(c0);
  return { perS: n / ((performance.now() - t0) / 1000), cpuMs: (c.user + c.system) / 1000 / n };
}

/** The JPEGs re-encoded as 8-bit RGB PNGs, as the fixtures write theirs. */
async function makePngs(from: string, to: string, files: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) {
    const png = f.replace(/\.jpg$/, '.png');
    await sharp(path.join(from, f)).png({ compressionLevel: 9, adaptiveFiltering: false, palette: false }).toFile(path.join(to, png));
    out.push(png);
  }
  return out;
}

const PILLOW_SCRIPT = `
import io, sys, time
import numpy as np
from PIL import Image, ImageOps
root, size, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sys.argv[4:]
def one(path):
    im = Image.open(path)
    im.draft('RGB', (size, size))
    im = ImageOps.exif_transpose(im).convert('RGB')
    w, h = im.size
    s = size / max(w, h)
    im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    canvas = Image.new('RGB', (size, size))
    canvas.paste(im, (0, 0))
    return np.asarray(canvas)
t, c = time.perf_counter(), time.process_time()
for _ in range(passes):
    for f in files:
        a = one(root + '/' + f)
        assert a.shape == (size, size, 3)
n = passes * len(files)
print(n / (time.perf_counter() - t), (time.process_time() - c) * 1000 / n)
`;

function pillowAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import PIL, numpy'], { stdio: 'ignore' }).status === 0;
}

/** One Pillow measurement: images per second, and CPU milliseconds per image. */
function pillowRun(script: string, root: string, files: string[], passes: number): Run {
  const res = spawnSync(PYTHON, [script, root, String(S), String(passes), ...files], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`bench decode: the Pillow script failed: ${res.stderr}`);
  const [perS, cpuMs] = res.stdout.trim().split(/\s+/).map(Number);
  return { perS, cpuMs };
}

interface Run {
  perS: number;
  cpuMs: number;
}

/** One casl measurement: wall rate, and the process's CPU time (all threads: JS, libuv, libvips) per image. */
async function caslRun(root: string, files: string[], passes: number, concurrency: number, jpegAddon = true): Promise<Run> {
  const n = files.length * passes;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await caslDecode(root, files, passes, concurrency, jpegAddon);
  const c = process.cpuUsage(c0);
  return { perS: n / ((performance.now() - t0) / 1000), cpuMs: (c.user + c.system) / 1000 / n };
}

/** The best of each: highest rate, least CPU per image (both as measured, possibly in different rounds). */
function better(a: Run | undefined, b: Run): Run {
  return a ? { perS: Math.max(a.perS, b.perS), cpuMs: Math.min(a.cpuMs, b.cpuMs) } : b;
}

/** `count` tiny files, 200 to a directory, named like a dataset's images (ingest never opens them). */
function makeFiles(dir: string, count: number): void {
  for (let d = 0; d * 200 < count; d++) {
    const sub = path.join(dir, `part-${String(d).padStart(3, '0')}`);
    mkdirSync(sub, { recursive: true });
    for (let i = d * 200; i < Math.min(count, (d + 1) * 200); i++) writeFileSync(path.join(sub, `img_${String(i).padStart(6, '0')}.jpg`), 'x');
  }
}

/**
 * Runs a node command and returns its peak RSS in MB (the kernel's maximum
 * resident set size, from GNU time, or the last VmHWM seen while polling
 * /proc when GNU time is absent) and its stdout line count.
 */
async function peakRss(args: string[]): Promise<{ mb: number; lines: number; how: string }> {
  const useTime = existsSync(TIME);
  const out = path.join(tmpdir(), `casl-bench-time-${process.pid}`);
  const child = useTime
    ? spawn(TIME, ['-f', '%M', '-o', out, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = 0;
  child.stdout!.on('data', (b: Buffer) => {
    for (const c of b) if (c === 10) lines++;
  });
  let hwmKb = 0;
  const poll = useTime ? undefined : setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
    } catch {
      // the process has just exited
    }
  }, 10);
  const code: number = await new Promise((resolve) => child.on('close', resolve));
  if (poll) clearInterval(poll);
  if (code !== 0) throw new Error(`bench decode: node ${args.join(' ')} exited with ${code}`);
  if (useTime) {
    hwmKb = Number(readFileSync(out, 'utf8').trim().split('\n').pop());
    rmSync(out);
  }
  return { mb: hwmKb / 1024, lines, how: useTime ? 'GNU time %M' : 'VmHWM polled every 10 ms' };
}

export const benchmark: Benchmark = {
  name: 'decode',
  summary: 'decode + letterbox of 640×480 JPEGs and PNGs to 128×128 (casl at concurrency 1 and 2, its sharp path and Pillow beside it), training views (addon vs sharp); casl ingest peak RSS over 20,000 files',
  async run(opts) {
    const nPhotos = opts.quick ? 40 : 200;
    const passes = opts.quick ? 1 : 3;
    const rounds = opts.quick ? 1 : 3;
    const nFiles = opts.quick ? 2_000 : 20_000;
    const dir = mkdtempSync(path.join(tmpdir(), 'casl-bench-decode-'));
    const loadBefore = loadavg()[0];
    try {
      const photos = path.join(dir, 'photos');
      mkdirSync(photos);
      opts.log(`making ${nPhotos} photo-like ${W}×${H} JPEGs`);
      const { files, meanKb } = await makePhotos(photos, nPhotos);
      const pillow = pillowAvailable();
      const script = path.join(dir, 'pillow_decode.py');
      writeFileSync(script, PILLOW_SCRIPT);
      if (!pillow) opts.log(`no Pillow (${PYTHON} with PIL and numpy): pillow_images_per_s is null`);
      const pngDir = path.join(dir, 'pngs');
      mkdirSync(pngDir);
      const pngs = await makePngs(photos, pngDir, files.slice(0, Math.max(10, Math.floor(files.length / 4))));
      // A warm-up pass: page cache, JIT, libvips start-up.
      await caslDecode(photos, files, 1, 2);
      await caslDecode(pngDir, pngs, 1, 2);
      let c1: Run | undefined;
      let c2: Run | undefined;
      let c2Sharp: Run | undefined;
      let pil: Run | undefined;
      let png2: Run | undefined;
      let png2Sharp: Run | undefined;
      let pilPng: Run | undefined;
      let viewJpeg: Run | undefined;
      let viewJpegSharp: Run | undefined;
      let viewPng: Run | undefined;
      let viewPngSharp: Run | undefined;
      const decoder = jpegDecoder();
      opts.log(`JPEG decoder: ${decoder.decoder} (${decoder.detail})`);
      for (let r = 0; r < rounds; r++) {
        c1 = better(c1, await caslRun(photos, files, passes, 1));
        c2 = better(c2, await caslRun(photos, files, passes, 2));
        c2Sharp = better(c2Sharp, await caslRun(photos, files, passes, 2, false));
        if (pillow) pil = better(pil, pillowRun(script, photos, files, passes));
        png2 = better(png2, await caslRun(pngDir, pngs, passes, 2));
        png2Sharp = better(png2Sharp, await caslRun(pngDir, pngs, passes, 2, false));
        if (pillow) pilPng = better(pilPng, pillowRun(script, pngDir, pngs, passes));
        viewJpeg = better(viewJpeg, await viewRun(photos, files, passes, 2, true));
        viewJpegSharp = better(viewJpegSharp, await viewRun(photos, files, passes, 2, false));
        viewPng = better(viewPng, await viewRun(pngDir, pngs, passes, 2, true));
        viewPngSharp = better(viewPngSharp, await viewRun(pngDir, pngs, passes, 2, false));
        opts.log(`round ${r + 1}/${rounds}: best so far c1 ${c1.perS.toFixed(0)}, c2 ${c2.perS.toFixed(0)}, c2 sharp ${c2Sharp.perS.toFixed(0)}${pil ? `, Pillow ${pil.perS.toFixed(0)}` : ''} images/s;`
          + ` PNG c2 ${png2.perS.toFixed(0)}, sharp ${png2Sharp.perS.toFixed(0)}${pilPng ? `, Pillow ${pilPng.perS.toFixed(0)}` : ''}`);
      }
      if (!c1 || !c2 || !c2Sharp || !png2 || !png2Sharp || !viewJpeg || !viewJpegSharp || !viewPng || !viewPngSharp) throw new Error('bench decode: no round ran');

      const tree = path.join(dir, 'many');
      opts.log(`making ${nFiles} files for casl ingest`);
      makeFiles(tree, nFiles);
      const bin = path.join(PROJECT_ROOT, 'bin', 'casl.js');
      const ingest = await peakRss([bin, 'ingest', `${tree}/**/*.jpg`, '--root', tree, '--quiet']);
      if (ingest.lines !== nFiles) throw new Error(`bench decode: casl ingest printed ${ingest.lines} records for ${nFiles} files`);
      const bare = await peakRss(['-e', '0']);

      const vs = (x: number, y: number | undefined) => (y ? Number((x / y).toFixed(2)) : null);
      const figures = {
        decode_images_per_s_c1: Math.round(c1.perS),
        decode_images_per_s_c2: Math.round(c2.perS),
        pillow_images_per_s: pil ? Math.round(pil.perS) : null,
        speedup_c1_vs_pillow: vs(c1.perS, pil?.perS),
        speedup_c2_vs_pillow: vs(c2.perS, pil?.perS),
        decode_cpu_ms_per_image_c1: Number(c1.cpuMs.toFixed(2)),
        decode_cpu_ms_per_image_c2: Number(c2.cpuMs.toFixed(2)),
        jpeg_decoder: decoder.decoder,
        decode_images_per_s_c2_sharp: Math.round(c2Sharp.perS),
        decode_cpu_ms_per_image_c2_sharp: Number(c2Sharp.cpuMs.toFixed(2)),
        pillow_cpu_ms_per_image: pil ? Number(pil.cpuMs.toFixed(2)) : null,
        png_images_per_s_c2: Math.round(png2.perS),
        png_images_per_s_c2_sharp: Math.round(png2Sharp.perS),
        pillow_png_images_per_s: pilPng ? Math.round(pilPng.perS) : null,
        png_cpu_ms_per_image_c2: Number(png2.cpuMs.toFixed(2)),
        png_cpu_ms_per_image_c2_sharp: Number(png2Sharp.cpuMs.toFixed(2)),
        pillow_png_cpu_ms_per_image: pilPng ? Number(pilPng.cpuMs.toFixed(2)) : null,
        view_jpeg_cpu_ms_per_image: Number(viewJpeg.cpuMs.toFixed(2)),
        view_jpeg_cpu_ms_per_image_sharp: Number(viewJpegSharp.cpuMs.toFixed(2)),
        view_png_cpu_ms_per_image: Number(viewPng.cpuMs.toFixed(2)),
        view_png_cpu_ms_per_image_sharp: Number(viewPngSharp.cpuMs.toFixed(2)),
        ingest_peak_rss_mb: Number(ingest.mb.toFixed(1)),
        node_bare_rss_mb: Number(bare.mb.toFixed(1)),
        ingest_files: nFiles,
      };
      const times = (x: number, y: number | undefined) => (y ? `${(x / y).toFixed(2)}× Pillow` : '');
      return {
        figures,
        table: [
          ['what', 'figure', 'unit', 'compared'],
          ['casl decode+letterbox, concurrency 1', Math.round(c1.perS), 'images/s', times(c1.perS, pil?.perS)],
          ['casl decode+letterbox, concurrency 2', Math.round(c2.perS), 'images/s', times(c2.perS, pil?.perS)],
          ['Pillow draft+bilinear+pad, 1 process', pil ? Math.round(pil.perS) : 'n/a', 'images/s', pil ? '' : `no ${PYTHON} with PIL and numpy`],
          ['casl CPU time per image, concurrency 1', Number(c1.cpuMs.toFixed(2)), 'ms', pil ? `Pillow: ${pil.cpuMs.toFixed(2)} ms` : ''],
          ['casl CPU time per image, concurrency 2', Number(c2.cpuMs.toFixed(2)), 'ms', ''],
          ['casl, sharp path only, concurrency 2', Math.round(c2Sharp.perS), 'images/s', `${c2Sharp.cpuMs.toFixed(2)} ms CPU an image; ${times(c2Sharp.perS, pil?.perS)}`],
          ['PNG: casl decode+letterbox, concurrency 2', Math.round(png2.perS), 'images/s', `${png2.cpuMs.toFixed(2)} ms CPU an image; ${times(png2.perS, pilPng?.perS)}`],
          ['PNG: casl, sharp path only, concurrency 2', Math.round(png2Sharp.perS), 'images/s', `${png2Sharp.cpuMs.toFixed(2)} ms CPU an image`],
          ['PNG: Pillow, 1 process', pilPng ? Math.round(pilPng.perS) : 'n/a', 'images/s', pilPng ? `${pilPng.cpuMs.toFixed(2)} ms CPU an image` : ''],
          ['training view (weak), JPEG, CPU per image', Number(viewJpeg.cpuMs.toFixed(2)), 'ms', `sharp path: ${viewJpegSharp.cpuMs.toFixed(2)} ms`],
          ['training view (weak), PNG, CPU per image', Number(viewPng.cpuMs.toFixed(2)), 'ms', `sharp path: ${viewPngSharp.cpuMs.toFixed(2)} ms`],
          [`casl ingest, ${nFiles} files, peak RSS`, Number(ingest.mb.toFixed(1)), 'MB', `bare node: ${bare.mb.toFixed(1)} MB`],
        ],
        notes: [
          `${nPhotos} JPEGs of ${W}×${H}, mean ${meanKb.toFixed(0)} KB, and the first ${pngs.length} as PNGs; ${passes} passes a round, best of ${rounds} rounds (casl c1, c2, c2 on the sharp path and Pillow interleaved); peak RSS by ${ingest.how}.`,
          `JPEG decoder: ${decoder.decoder} (${decoder.detail}).`,
          `Load average (1 min) ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after, on ${availableParallelism()} cores: figures from a busy machine understate both sides.`,
        ],
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
