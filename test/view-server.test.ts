// The viewer without a browser: the JSONL index, its δ counts against the
// strict rule, the filters' orders, recall against GT, path safety, and the
// HTTP API of an in-process server.
import t from 'tap';
import { open, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { JsonlIndex, Kind } from '../src/view/jsonl-index.js';
import { GroundTruth, iou } from '../src/view/ground-truth.js';
import { createViewServer, type Tile } from '../src/view/server.js';
import { lexicalRefusal, resolveUnderRoot } from '../src/view/safe-path.js';
import { Lru } from '../src/view/thumbnails.js';
import { decodeRle, countsFromString, paintRle } from '../src/view/static/rle.js';
import { EDGE_SCORES, expectedCounts, makeViewFixture, rng } from './view-fixture.js';
import type { PredictionRecord } from '../src/records.js';
import { decodeMask, encodeMask, rleFromString, rleToJson } from '../src/geometry/mask.js';

const fx = await makeViewFixture(12);
const gt = await GroundTruth.load(fx.gt);
const index = await JsonlIndex.build(fx.jsonl, gt);
const DELTAS = [0, 0.05, 0.3, 0.5, 0.7, 0.9, ...EDGE_SCORES];

t.test('index: one entry per non-blank line, kinds and counts by the strict rule', async (t) => {
  t.equal(index.count, fx.records.length + fx.nonRecords, 'records + error record + torn line + no image_id; the blank line is skipped');
  t.equal([...index.kinds].filter((k) => k === Kind.ErrorRecord).length, 1);
  t.equal([...index.kinds].filter((k) => k === Kind.Invalid).length, 2);
  t.equal(index.lines[index.count - 1], index.count + 1, 'line numbers count the blank line');
  for (const d of DELTAS) {
    const c = index.counts(d);
    const e = expectedCounts(fx.records, d);
    t.same({ images: c.images, imagesKept: c.imagesKept, imagesDropped: c.imagesDropped, instancesKept: c.instancesKept }, e, `δ = ${d}`);
    t.equal(c.errors, fx.nonRecords);
  }
  t.ok(expectedCounts(fx.records, 0.3).imagesDropped > 0, 'the fixture has images dropped at 0.3');
});

t.test('index: positioned reads give back each line, across 1 MB read chunks and UTF-8 names', async (t) => {
  const file = path.join(fx.dir, 'big.jsonl');
  const r = rng(3);
  const recs: PredictionRecord[] = [];
  for (let i = 0; i < 9000; i++) {
    recs.push({ image_id: i, file_name: `ordner-ü/${i}-€.jpg`, instances: Array.from({ length: i % 7 }, () => ({ bbox: [r() * 9, 1, 2, 3], score: r(), category_id: 1 })) });
  }
  await writeFile(file, recs.map((x) => JSON.stringify(x)).join('\n'));
  const big = await JsonlIndex.build(file);
  t.ok(big.bytes > 2 ** 21, 'more than two read chunks');
  t.equal(big.count, recs.length, 'a last line without a newline is indexed');
  const fh = await open(file, 'r');
  let bad = 0;
  for (let i = 0; i < big.count; i += 97) if (JSON.stringify(JSON.parse(await big.readLine(fh, i))) !== JSON.stringify(recs[i])) bad += 1;
  await fh.close();
  t.equal(bad, 0);
  t.same(big.counts(0.5).instancesKept, expectedCounts(recs, 0.5).instancesKept);
});

t.test('recall: per-GT match scores give the greedy IoU ≥ 0.5 recall at every δ', async (t) => {
  const fh = await open(fx.jsonl, 'r');
  let checked = 0;
  for (const d of [0, 0.3, 0.5, 0.7]) {
    for (let i = 0; i < index.count; i++) {
      if (index.kinds[i] !== Kind.Prediction) continue;
      const rec = JSON.parse(await index.readLine(fh, i)) as PredictionRecord;
      const g = gt.lookup(rec);
      if (!g) {
        t.equal(index.recallAt(i, d), null, 'no GT image, no recall');
        continue;
      }
      checked += 1;
      // Brute force: greedy matching with only the predictions above δ.
      const preds = rec.instances.filter((p) => p.score > d).sort((a, b) => b.score - a.score);
      const taken = new Set<number>();
      for (const p of preds) {
        let best = -1;
        let bestIou = 0.5;
        g.boxes.forEach((b, k) => {
          const o = iou(p.bbox, b);
          if (!taken.has(k) && o >= bestIou) [best, bestIou] = [k, o];
        });
        if (best >= 0) taken.add(best);
      }
      t.equal(index.recallAt(i, d), taken.size / g.boxes.length, `record ${i} δ ${d}`);
    }
  }
  await fh.close();
  t.equal(checked, 4 * 12);
});

t.test('path safety: names that leave the root are refused, lexically and through symlinks', async (t) => {
  const root = realpathSync(fx.root);
  for (const bad of ['../secret.png', 'a/../../x', '/etc/passwd', 'C:\\x.jpg', '..\\x', 'a\0b', '']) t.ok(lexicalRefusal(bad), bad);
  t.equal(lexicalRefusal('sub dir/bild-0-ü.png'), null);
  t.equal(lexicalRefusal('a..b/c..jpg'), null, "'..' inside a name is fine");
  t.match(await resolveUnderRoot(root, 'escape.png'), { ok: false, status: 403, error: /symlink out of --root/ });
  t.match(await resolveUnderRoot(root, 'missing.jpg'), { ok: false, status: 404 });
  t.match(await resolveUnderRoot(root, 'sub dir'), { ok: false, status: 404 }, 'a folder is not an image');
  t.match(await resolveUnderRoot(root, 'img-1.jpg'), { ok: true, path: path.join(root, 'img-1.jpg') });
});

t.test('RLE: the browser decoder agrees with src/geometry/mask.ts (pycocotools port)', async (t) => {
  t.same(countsFromString('053M'), [0, 5, 3, 2], 'a negative delta (2 − 5) and its sign bit');
  const r = rng(7);
  for (const [h, w] of [[1, 1], [3, 5], [37, 23], [480, 640]]) {
    const m = new Uint8Array(h * w);
    for (let i = 0; i < m.length; i++) m[i] = r() < 0.3 ? 1 : 0;
    // Long runs too, so counts need several characters.
    if (h * w > 1000) m.fill(1, 1000, 200_000);
    const rle = rleToJson(encodeMask(m, h, w));
    const d = decodeRle(rle);
    t.same([d.height, d.width], [h, w]);
    t.ok(Buffer.from(d.data).equals(Buffer.from(m)), `${h}×${w}`);
    t.ok(Buffer.from(d.data).equals(Buffer.from(decodeMask(rleFromString(rle.counts as string, h, w)))));
  }
  t.same(Array.from(decodeRle({ size: [2, 2], counts: [1, 2, 1] }).data), [0, 1, 1, 0], 'uncompressed counts, column-major');
  // paintRle: at the mask's own size it is decodeRle; smaller, a display pixel
  // is painted when any of its source pixels is foreground; larger, each
  // source pixel becomes a block.
  const [h, w] = [37, 23];
  const m = new Uint8Array(h * w);
  for (let i = 0; i < m.length; i++) m[i] = r() < 0.2 ? 1 : 0;
  const rle = rleToJson(encodeMask(m, h, w));
  const paint = (W: number, H: number) => {
    const out = new Uint8ClampedArray(W * H * 4);
    paintRle(rle, out, W, H, [1, 2, 3, 200]);
    return Array.from({ length: W * H }, (_, p) => (out[4 * p + 3] === 200 ? 1 : 0));
  };
  t.same(paint(w, h), Array.from(m), 'same size: the decoded mask');
  const half = paint(12, 19);
  const want = Array.from({ length: 12 * 19 }, (_, p) => {
    const [X, Y] = [p % 12, Math.floor(p / 12)];
    let any = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const X0 = Math.floor((x * 12) / w);
      const X1 = Math.max(X0 + 1, Math.floor(((x + 1) * 12) / w));
      const Y0 = Math.floor((y * 19) / h);
      const Y1 = Math.max(Y0 + 1, Math.floor(((y + 1) * 19) / h));
      if (m[y * w + x] && X >= X0 && X < X1 && Y >= Y0 && Y < Y1) any = 1;
    }
    return any;
  });
  t.same(half, want, 'smaller: any foreground source pixel paints its display pixel');
  const big = paint(3 * w, 3 * h);
  t.ok(big.every((v, p) => v === m[Math.floor(Math.floor(p / (3 * w)) / 3) * w + Math.floor((p % (3 * w)) / 3)]), '3× larger: 3×3 blocks');
  t.throws(() => decodeRle({ size: [2, 2], counts: [1, 9] }), /overrun/);
});

t.test('LRU: bounded by cost, least recently used goes first', async (t) => {
  const lru = new Lru<string>(10, (v) => v.length);
  lru.set('a', 'xxxx');
  lru.set('b', 'xxxx');
  lru.get('a');
  lru.set('c', 'xxxx');
  t.equal(lru.get('b'), undefined);
  t.equal(lru.get('a'), 'xxxx');
  t.ok(lru.bytes <= 10);
  lru.set('huge', 'x'.repeat(11));
  t.equal(lru.get('huge'), undefined, 'a value above the bound is not kept');
});

t.test('HTTP API', async (t) => {
  const fh = await open(fx.jsonl, 'r');
  const server = createViewServer({
    index, file: fx.jsonl, jsonl: fh, root: realpathSync(fx.root), gt, pageSize: 5, thumbSize: 64, imageSize: 128, cacheBytes: 1 << 20, loopbackOnly: true,
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await fh.close();
  });
  const json = async (p: string) => (await fetch(base + p)).json();

  t.test('counts equal the strict rule', async (t) => {
    for (const d of [0.3, 0.5, 0.7]) t.match(await json(`/api/counts?delta=${d}`), expectedCounts(fx.records, d));
    t.equal((await fetch(`${base}/api/counts?delta=abc`)).status, 400);
  });

  t.test('pages cover every record once, errors as error tiles', async (t) => {
    const info = await json('/api/info');
    t.match(info, { records: index.count, gt: true, pageSize: 5, categories: { 1: 'c1', 2: 'c2', 3: 'c3' } });
    const all = fx.records.flatMap((r) => r.instances);
    t.equal(info.profile.instances.reduce((a: number, b: number) => a + b, 0), all.length, 'the histogram holds every score');
    t.equal(info.profile.instances[30], all.filter((i) => i.score >= 0.3 && i.score < 0.31).length, 'bin [0.30, 0.31)');
    t.equal(info.profile.imagesKept[70], expectedCounts(fx.records, 0.7).imagesKept, 'images kept at δ = 0.7');
    const seen: Tile[] = [];
    const first = await json('/api/page?delta=0.5&filter=all&page=0');
    for (let p = 0; p < first.pages; p++) seen.push(...(await json(`/api/page?delta=0.5&filter=all&page=${p}`)).items);
    t.same(seen.map((x) => x.index), [...Array(index.count).keys()]);
    const errors = seen.filter((x) => x.error);
    t.equal(errors.length, fx.nonRecords + fx.refused);
    t.ok(errors.every((x) => x.thumb === undefined), 'no image URL for an error tile');
    t.match(errors.map((x) => x.error).join('\n'), /stage 'decode'.*\n.*not JSON.*\n.*'image_id'.*\n.*no 'file_name'.*\n.*'\.\.' segment.*\n.*absolute.*\n.*symlink out/s);
    const ok = seen.filter((x) => !x.error);
    t.ok(ok.every((x) => x.width! > 0 && x.height! > 0), 'sizes filled in from the image header when the record has none');
  });

  t.test('filters: dropped, most, recall, errors', async (t) => {
    const all = async (f: string, d: number) => {
      const out: Tile[] = [];
      const first = await json(`/api/page?delta=${d}&filter=${f}&page=0`);
      for (let p = 0; p < first.pages; p++) out.push(...(await json(`/api/page?delta=${d}&filter=${f}&page=${p}`)).items);
      t.equal(out.length, first.total);
      return out;
    };
    const dropped = await all('dropped', 0.3);
    t.equal(dropped.length, expectedCounts(fx.records, 0.3).imagesDropped);
    t.ok(dropped.every((x) => x.instances!.every((i) => i.score <= 0.3)));
    const most = await all('most', 0.3);
    const kept = most.map((x) => x.instances!.filter((i) => i.score > 0.3).length);
    t.same(kept, [...kept].sort((a, b) => b - a), 'most instances first');
    const recall = await all('recall', 0.5);
    const r = recall.map((x) => x.gtMatch!.filter((s) => s !== null && s > 0.5).length / x.gtMatch!.length);
    t.same(r, [...r].sort((a, b) => a - b), 'lowest recall first');
    t.ok(r[0] < 1 && r[r.length - 1] === 1, 'the fixture spans recall');
    const errs = await all('errors', 0.5);
    t.equal(errs.length, fx.nonRecords + fx.refused - 1, 'all but the symlink, which only a disk access finds');
  });

  t.test('images: thumbnails for good records; 403/404 for anything else', async (t) => {
    const page = await json('/api/page?delta=0.5&filter=all&page=0');
    const good = page.items.find((x: Tile) => !x.error);
    const res = await fetch(base + good.thumb);
    t.equal(res.status, 200);
    t.equal(res.headers.get('content-type'), 'image/jpeg');
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    t.equal(Math.max(meta.width!, meta.height!), 64);
    const n = index.count;
    for (const [i, status] of [[n - 3, 403], [n - 2, 403], [n - 1, 403], [3, 404], [5, 404], [n, 404]]) {
      const r = await fetch(`${base}/thumb/${i}`);
      t.equal(r.status, status, `record ${i}`);
      t.notMatch(Buffer.from(await r.arrayBuffer()).toString('latin1'), /PNG/, 'never the image bytes');
    }
    for (const p of ['/static/../package.json', '/static/%2e%2e/package.json', '/static/..%2f..%2fpackage.json', '/static/%2fetc%2fpasswd',
      '/../../etc/passwd', '/thumb/..%2f..%2fetc%2fpasswd', '/image/-1', '/static/view.d.ts', '/static/rle.d.ts']) {
      const r = await fetch(base + p);
      t.ok(r.status === 403 || r.status === 404, `${p} → ${r.status}`);
    }
    // fetch() will not set Host; node:http will.
    const evil = await new Promise<number>((ok, fail) => {
      http.get(`${base}/api/info`, { headers: { Host: 'evil.example:80' } }, (res) => {
        res.resume();
        ok(res.statusCode!);
      }).on('error', fail);
    });
    t.equal(evil, 403, 'a non-loopback Host is refused (DNS rebinding)');
    const html = await fetch(`${base}/`);
    t.match(html.headers.get('content-security-policy'), /default-src 'self'/);
  });
});

t.test('EXIF orientation: sizes and thumbnails are in the turned frame, where boxes are', async (t) => {
  // 40 wide × 20 high as stored, orientation 6 (turn 90° clockwise): shown 20 × 40.
  await sharp({ create: { width: 40, height: 20, channels: 3, background: '#336699' } }).withMetadata({ orientation: 6 }).jpeg().toFile(path.join(fx.root, 'turned.jpg'));
  const file = path.join(fx.dir, 'turned.jsonl');
  await writeFile(file, JSON.stringify({ image_id: 1, file_name: 'turned.jpg', instances: [{ bbox: [1, 1, 5, 5], score: 0.9, category_id: 1 }] }) + '\n');
  const ix = await JsonlIndex.build(file);
  const fh = await open(file, 'r');
  const server = createViewServer({ index: ix, file, jsonl: fh, root: realpathSync(fx.root), pageSize: 5, thumbSize: 64, imageSize: 128, cacheBytes: 1 << 20, loopbackOnly: true });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const page = await (await fetch(`${base}/api/page?delta=0&page=0`)).json();
  t.match(page.items[0], { width: 20, height: 40 });
  const thumb = await sharp(Buffer.from(await (await fetch(base + page.items[0].thumb)).arrayBuffer())).metadata();
  t.same([thumb.width, thumb.height], [20, 40], 'the thumbnail is turned too (and not enlarged)');
  server.closeAllConnections();
  await new Promise((ok) => server.close(ok));
  await fh.close();
});

t.test('usage errors say what and what to do', async (t) => {
  const { command } = await import('../src/cli/commands/view.js');
  const ctx = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
  const opts = { port: 0, host: '127.0.0.1', 'page-size': 48, 'thumb-size': 256, 'image-size': 1280, 'cache-mb': 64 };
  await t.rejects(command.run(opts, [], ctx), /name the prediction JSONL/);
  await t.rejects(command.run(opts, [fx.jsonl], ctx), /--root IMAGES is required/);
  await t.rejects(command.run({ ...opts, root: path.join(fx.dir, 'nope') }, [fx.jsonl], ctx), /--root .*nope.*give the images folder/);
  await t.rejects(command.run({ ...opts, root: fx.root }, [path.join(fx.dir, 'missing.jsonl')], ctx), /cannot open .*missing\.jsonl/);
  const badGt = path.join(fx.dir, 'bad-gt.json');
  await writeFile(badGt, JSON.stringify({ images: [{ id: 1, file_name: 'a.jpg' }], annotations: [{ image_id: 2, bbox: [0, 0, 1, 1] }] }));
  await t.rejects(command.run({ ...opts, root: fx.root, gt: badGt }, [fx.jsonl], ctx), /bad-gt\.json: annotations\[0\]\.image_id 2 is not in 'images'/);
  await t.rejects(command.run({ ...opts, root: fx.root, 'page-size': 0 }, [fx.jsonl], ctx), /--page-size must be at least 1/);
});

t.test('while the index is built: the first pages and their images are served, counts wait for it', async (t) => {
  let finish!: (ix: JsonlIndex) => void;
  const building = new Promise<JsonlIndex>((ok) => (finish = ok));
  const fh = await open(fx.jsonl, 'r');
  const server = createViewServer({
    index: building, file: fx.jsonl, jsonl: fh, root: realpathSync(fx.root), gt, pageSize: 4, thumbSize: 64, imageSize: 128,
    cacheBytes: 1 << 20, loopbackOnly: true,
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    await fh.close();
  });
  const json = async (p: string) => (await fetch(base + p)).json();
  t.match(await json('/api/info'), { indexing: true, records: null, profile: null, meta: { model: 'fixture' } });
  const p0 = await json('/api/page?delta=0.5&filter=all&page=0');
  t.match(p0, { total: null, pages: null, page: 0 });
  const p1 = await json('/api/page?delta=0.5&filter=all&page=1');
  t.same([...p0.items, ...p1.items].map((x: Tile) => x.index), [0, 1, 2, 3, 4, 5, 6, 7]);
  // The same tiles as the indexed server gives: kept counts, recall data, errors.
  const fromHead = [...p0.items, ...p1.items];
  t.equal((await fetch(base + fromHead.find((x: Tile) => x.thumb).thumb)).status, 200, 'a thumbnail before the index exists');
  let counted = false;
  const counts = json('/api/counts?delta=0.5').then((c) => {
    counted = true;
    return c;
  });
  await new Promise((ok) => setTimeout(ok, 50));
  t.notOk(counted, 'counts wait for the index');
  finish(index);
  t.match(await counts, expectedCounts(fx.records, 0.5));
  t.match(await json('/api/info'), { indexing: false, records: index.count });
  const indexed = [...(await json('/api/page?delta=0.5&filter=all&page=0')).items, ...(await json('/api/page?delta=0.5&filter=all&page=1')).items];
  t.same(fromHead, indexed, 'tiles read from the head equal tiles read through the index');
});
